"""02's "does SFT forget more than GRPO?" on made-up run records (no model): paired drop differences at the end
and at matched gain, retention differences, the sentences, and old records that hold no per-question results."""

import math

import pytest

from retain_utils.chapters import findings
from retain_utils.analysis import forgetting, tables
from retain_utils.core.records import RunRecord

N = 40  # held-out questions per task


def evals(target_right, other_right):
    """A run's evaluations: at each step, how many of the N target and N other-task questions are right (the
    first ones)."""
    return [{"step": 10 * k, "correct": {"mmlu": [1] * t + [0] * (N - t), "countdown": [1] * o + [0] * (N - o)}}
            for k, (t, o) in enumerate(zip(target_right, other_right))]


def retention_dict(per_question):
    task = {"task": "countdown", "index": list(range(len(per_question))), "per_question": per_question,
            "mean": sum(per_question) / len(per_question), "low": min(per_question), "high": max(per_question)}
    return {"tasks": {"countdown": task}, "mean": task["mean"], "low": task["low"], "high": task["high"],
            "level": 0.95}


def record(variant, seed, run_evals, kept=None):
    return RunRecord(variant=variant, method=variant.lower().replace("-", "_"), target="mmlu", seed=seed, gain=0.0,
                     drop=0.0, gain_interval=None, drop_interval=None, kl=0.1, accuracy_initial={},
                     accuracy_final={}, n_eval={"mmlu": N, "countdown": N}, trajectory=[], status="done",
                     seconds=1.0, train_seconds=1.0, generated_tokens=0, config={}, retention=kept, evals=run_evals)


def test_sft_that_forgets_much_more_is_told_apart_at_the_end_and_at_matched_gain():
    sft = record("SFT", 0, evals([10, 20, 30], [30, 20, 5]), retention_dict([-2.0, -1.5, -1.8, -2.2]))
    grpo = record("GRPO", 0, evals([10, 14, 18], [30, 30, 29]), retention_dict([-0.1, 0.0, -0.05, 0.05]))
    out = findings.forgetting_comparison([sft, grpo], n_boot=500)
    # best gains 50 and 20 pp: three levels up to 20
    assert out.gain_levels == (6.6, 13.3, 20.0)
    end = out.differences.loc[("SFT - GRPO", 0, "end")]
    assert end["method drop (pp)"] == 62.5 and end["GRPO drop (pp)"] == 2.5 and end["difference (pp)"] == 60.0
    assert end["95 % low (pp)"] > 0 and end["verdict"] == "SFT forgets more"
    at20 = out.differences.loc[("SFT - GRPO", 0, "gain 20 pp")]
    # SFT reaches +20 pp at 0.8 of the way from step 0 to 10 (drop 0.8 * 25 pp); GRPO at its last step (drop 2.5 pp)
    assert at20["method drop (pp)"] == pytest.approx(20.0) and at20["GRPO drop (pp)"] == pytest.approx(2.5)
    r = out.retention.loc[("SFT - GRPO", 0)]
    assert r["difference (nats/token)"] == pytest.approx(-1.85) and r["95 % high (nats/token)"] < 0
    assert "One seed: no seed-level interval exists, so what follows is over held-out questions only" in out.sentence
    assert "+60.0 pp, 95 % interval over held-out questions only" in out.sentence
    assert "this SFT run forgets more than this GRPO run" in out.sentence and "keeps less" in out.sentence
    assert "smallest drop difference this chapter detects" in out.power and "+38.7 pp" in out.power
    assert out.power.startswith("No seed-level smallest detectable difference: one seed has no spread")


def test_no_matched_gain_level_when_a_run_never_gains_and_old_records_are_refused():
    sft = record("SFT", 0, evals([10, 12], [30, 28]))
    grpo = record("GRPO", 0, evals([10, 9], [30, 30]))
    self_sft = record("Self-SFT", 0, evals([10, 11], [30, 29]))
    out = findings.forgetting_comparison([sft, self_sft, grpo], n_boot=200)
    assert out.gain_levels == () and "No matched-gain level" in out.sentence and "+0.0 pp" in out.sentence
    assert {c for c, _, _ in out.differences.index} == {"SFT - GRPO", "Self-SFT - GRPO"}
    assert out.retention.empty
    assert "discordance 0" not in out.power  # they differ on some question
    same = record("GRPO", 0, evals([10, 12], [30, 28]))
    assert "no estimate" in findings.forgetting_comparison([sft, same], n_boot=200).power
    one = findings.forgetting_comparison([record("SFT", 0, evals([10, 12], [30, 28]), retention_dict([-1.0])),
                                          record("GRPO", 0, evals([10, 12], [30, 28]), retention_dict([0.0]))])
    assert "too few answers to resample" in one.sentence and "keeps less" not in one.sentence
    # a level one run never reaches: NaN with the reason, not an error
    out = findings.forgetting_comparison([sft, grpo], gain_levels=[5], n_boot=200)
    row = out.differences.loc[("SFT - GRPO", 0, "gain 5 pp")]
    assert math.isnan(row["difference (pp)"]) and "GRPO never reaches gain 5 pp" in row["note"]
    with pytest.raises(ValueError, match=r"gain level must be a number in \(0, 100\]"):
        findings.forgetting_comparison([sft, grpo], gain_levels=[0])
    alone = findings.forgetting_comparison([sft])  # one method (a calibration run): said, not an error
    assert alone.differences.empty and "No forgetting comparison: these runs (SFT) hold no GRPO run" in alone.sentence
    assert tables.drop_differences(alone.differences).empty
    old = record("SFT", 0, [])
    with pytest.raises(ValueError, match="holds no per-question evaluations"):
        findings.forgetting_comparison([old, grpo])


def test_old_results_files_read_without_the_new_fields():
    d = record("SFT", 0, evals([1], [1])).to_dict()
    del d["retention"], d["evals"]
    back = RunRecord.from_dict(d)
    assert back.retention is None and back.evals == []


def test_the_readable_tables_keep_every_row():
    from retain_utils.analysis import tables

    sft = record("SFT", 0, evals([10, 20], [30, 20]), retention_dict([-2.0, -1.0]))
    grpo = record("GRPO", 0, evals([10, 14], [30, 30]), retention_dict([0.0, 0.0]))
    out = findings.forgetting_comparison([sft, grpo], n_boot=200)
    shown = tables.drop_differences(out.differences)
    assert len(shown) == len(out.differences) and shown.iloc[0]["Difference (pp)"] == "+25.0"
    assert "95 % interval over questions (pp)" in shown.columns
    kept = tables.retention_differences(out.retention)
    assert kept.iloc[0]["Difference (nats/token)"] == "-1.500" and "95 % interval (nats/token)" in kept.columns


def test_pooled_comparisons_over_seeds_and_the_campaign_sentences():
    # seed 0: SFT forgets 25 of 40 more than GRPO at the end, seed 1: 15 of 40
    runs = [record("SFT", 0, evals([10, 20, 30], [30, 20, 5])), record("GRPO", 0, evals([10, 14, 18], [30, 30, 30])),
            record("SFT", 1, evals([10, 20, 30], [30, 25, 15])), record("GRPO", 1, evals([10, 14, 18], [30, 30, 30])),
            record("REINFORCE", 0, evals([10, 12, 14], [30, 30, 30]))]
    frame = findings.campaign_forgetting(runs, [("SFT", "GRPO"), ("REINFORCE", "GRPO"), ("Nope", "GRPO")], n_boot=500)
    assert set(frame["comparison"]) == {"SFT - GRPO", "REINFORCE - GRPO"}, "a variant that never ran is left out"
    end = frame[(frame["comparison"] == "SFT - GRPO") & (frame["at"] == "end")].iloc[0]
    assert end["seeds"] == 2 and end["difference (pp)"] == pytest.approx((62.5 + 37.5) / 2)
    # over the 2 seeds: +62.5 and +37.5, standard error 12.5, t_{0.975, 1} = 12.706205: not told apart, though the
    # questions alone would tell them apart
    assert end["interval over"] == "seeds" and end["low (pp)"] == pytest.approx(50 - 12.706205 * 12.5)
    assert end["verdict"] == "not told apart" and end["questions low (pp)"] > 0
    assert end["detectable (pp)"] == pytest.approx(forgetting.seed_min_detectable_difference(25 / 2 ** 0.5, 2))
    # levels both runs of a comparison reach in every seed: GRPO's best gain is 20 pp; REINFORCE's 10 pp caps only its own
    assert list(frame[frame["comparison"] == "SFT - GRPO"]["at"]) == ["end", "gain 6.6 pp", "gain 13.3 pp", "gain 20 pp"]
    assert list(frame[frame["comparison"] == "REINFORCE - GRPO"]["at"]) == ["end", "gain 3.3 pp", "gain 6.6 pp", "gain 10 pp"]
    sentence = findings.pooled_sentence(frame, "SFT", "GRPO", "Does SFT forget more than GRPO?")
    assert sentence.startswith("**Does SFT forget more than GRPO?** on mmlu, at matched gain 20 pp")
    assert "(95 % interval over 2 seeds" in sentence and "t with 1 df): not told apart (2 seeds detect" in sentence
    assert "over held-out questions alone +" in sentence and "not beyond the spread over seeds" in sentence
    assert "No runs of both" in findings.pooled_sentence(frame, "Self-SFT", "GRPO", "Q?")
    empty = findings.campaign_forgetting([], [("SFT", "GRPO")])
    assert empty.empty and "No runs of both" in findings.pooled_sentence(empty, "SFT", "GRPO", "Q?")
    assert findings.versus(runs) == [("SFT", "GRPO"), ("REINFORCE", "GRPO")]
    assert "smallest drop difference" in findings.power(runs) and "No runs of both" in findings.power(runs, b="X")


def test_a_gain_within_the_noise_is_named_beside_the_drop_difference():
    import dataclasses

    runs = [record("SFT", 0, evals([10, 20, 30], [30, 20, 5])), record("GRPO", 0, evals([10, 12, 11], [30, 30, 30]))]
    runs = [dataclasses.replace(runs[0], gain=50.0, gain_interval=(30.0, 70.0)),
            dataclasses.replace(runs[1], gain=2.5, gain_interval=(-5.0, 10.0))]
    frame = findings.campaign_forgetting(runs, [("SFT", "GRPO")], n_boot=200)
    note = "GRPO's gain (+2.5 pp, 95 % interval -5.0 to +10.0) is not told apart from zero"
    assert set(frame["gain note"]) == {note}, "every row of the comparison, SFT's clear gain not named"
    from retain_utils.analysis import tables
    assert set(tables.pooled_differences(frame)["Note"]) == {note}
    one = findings.pooled_sentence(frame, "SFT", "GRPO", "Q?")
    assert "(one seed, so no seed-level interval; 95 % interval over held-out questions only +" in one
    assert f"SFT forgets more in this seed, not tested against the spread over seeds, though {note}." in one
    assert tables.pooled_differences(frame)["95 % interval over seeds (pp)"].iloc[0] == "none: one seed"
    assert tables.pooled_differences(frame)["Verdict"].iloc[0] == "SFT forgets more (questions only)"
    seeds = runs + [dataclasses.replace(r, seed=1, gain_interval=(1.0, 9.0)) for r in runs]
    pairs = [(seeds[0], seeds[1]), (seeds[2], seeds[3])]
    assert findings.gain_sentence(pairs, ("SFT", "GRPO")) == \
        "GRPO's gain in 1 of 2 seeds (mean +2.5 pp) is not told apart from zero"
    both = [(dataclasses.replace(a, gain_interval=(-1.0, 3.0)), b) for a, b in pairs]
    assert findings.gain_sentence(both, ("SFT", "GRPO")) == ("SFT's gain in 2 of 2 seeds (mean +50.0 pp) and GRPO's in 1 "
                                                         "of 2 seeds (mean +2.5 pp) are not told apart from zero")
    assert findings.gain_sentence([(seeds[2], seeds[3])], ("SFT", "GRPO")) == ""
    one = findings.forgetting_comparison(runs, n_boot=200).sentence
    assert "GRPO's gain (+2.5 pp, 95 % interval -5.0 to +10.0) is not told apart from zero, so a matched gain" in one


def test_a_label_ending_in_s_takes_the_apostrophe_alone():
    import dataclasses

    runs = [record("SFT", 0, evals([10, 20, 30], [30, 20, 5])),
            record("SFT on GRPO's rollouts", 0, evals([10, 12, 11], [30, 30, 30]))]
    runs[1] = dataclasses.replace(runs[1], gain=2.5, gain_interval=(-5.0, 10.0))
    frame = findings.campaign_forgetting(runs, [("SFT on GRPO's rollouts", "SFT")], n_boot=200)
    sentence = findings.pooled_sentence(frame, "SFT on GRPO's rollouts", "SFT", "Q?")
    assert "SFT on GRPO's rollouts' drop minus SFT's is" in sentence
    assert "SFT on GRPO's rollouts' gain (+2.5 pp" in sentence and "rollouts's" not in sentence


def test_ablation_pairs_put_the_variant_without_the_factor_first():
    from types import SimpleNamespace

    runs = [record(v, 0, evals([10, 12], [30, 30])) for v in ("GRPO", "GRPO, β=0", "SFT", "REINFORCE")]
    pairs = findings.ablation_pairs(runs, SimpleNamespace(ablations=["kl", "reinforce"]))
    assert pairs == [("GRPO, β=0", "GRPO"), ("REINFORCE", "GRPO")]


def test_kl_sentence():
    assert "Pearson's r between drop and KL" in findings.kl_sentence(0.6, 0.1, 0.85, 9) and "0.52" in \
        findings.kl_sentence(0.6, 0.1, 0.85, 9)
    assert "Too few runs (2)" in findings.kl_sentence(float("nan"), float("nan"), float("nan"), 2)


def test_pooled_retention_over_seeds_by_hand():
    from retain_utils.analysis.retention import Retention, pooled_retention_difference, retention_difference

    a0, a1 = Retention.from_dict(retention_dict([-1.0] * 4)), Retention.from_dict(retention_dict([-0.5] * 4))
    b = Retention.from_dict(retention_dict([0.0] * 4))
    d = pooled_retention_difference([(a0, b), (a1, b)], labels=("SFT", "GRPO"), n_boot=2000)
    # every answer differs by -1 in seed 0 and -0.5 in seed 1: only the seeds' resampling spreads it
    assert (d.a, d.b, d.difference, d.low, d.high) == ("SFT", "GRPO", -0.75, -1.0, -0.5)
    varied = Retention.from_dict(retention_dict([-2.0, 0.0, -1.0, 1.0]))
    one = pooled_retention_difference([(varied, b)], n_boot=2000)
    assert one.difference == retention_difference(varied, b).difference == -0.5 and one.low < -0.5 < one.high
    short = Retention.from_dict(retention_dict([-1.0] * 3))
    with pytest.raises(ValueError, match="seeds measured on different initial answers"):
        pooled_retention_difference([(a0, b), (short, short)])
    with pytest.raises(ValueError, match="at least one pair"):
        pooled_retention_difference([])


def test_campaign_retention_and_its_sentence():
    from retain_utils.analysis import tables

    runs = [record("SFT", s, evals([10, 20], [30, 20]), retention_dict([-1.0 - s, -1.0, -1.0, -1.0])) for s in (0, 1)]
    runs += [record("GRPO", s, evals([10, 14], [30, 30]), retention_dict([0.0] * 4)) for s in (0, 1)]
    runs.append(record("REINFORCE", 0, evals([10, 12], [30, 30])))  # no retention: left out
    frame = findings.campaign_retention(runs, [("SFT", "GRPO"), ("REINFORCE", "GRPO")], n_boot=500)
    assert list(frame["comparison"]) == ["SFT - GRPO"]
    row = frame.iloc[0]
    assert row["seeds"] == 2 and row["answers"] == 4 and row["difference (nats/token)"] == pytest.approx(-1.125)
    assert row["high (nats/token)"] < 0
    sentence = findings.pooled_retention_sentence(frame, "SFT", "GRPO")
    assert "on mmlu, -1.125 nats/token" in sentence and "2 seeds, 4 initial answers): SFT keeps less of them" in sentence
    assert "no runs of both" in findings.pooled_retention_sentence(frame, "REINFORCE", "GRPO")
    shown = tables.pooled_retention(frame)
    assert shown.loc[("mmlu", "SFT - GRPO"), "Difference (nats/token)"] == "-1.125"
    assert findings.campaign_retention([], [("SFT", "GRPO")]).empty


def test_truncation_counts_cut_off_answers_from_the_runs_logs(tmp_path):
    import json

    from retain_utils.chapters import experiment
    from retain_utils.analysis import tables

    log = tmp_path / "runs" / "GRPO-s0"
    log.mkdir(parents=True)
    scores = lambda m, c: {"mmlu": {"n": N, "n_truncated": m}, "countdown": {"n": N, "n_truncated": c}}  # noqa: E731
    (log / "evals.jsonl").write_text("".join(json.dumps({"step": 10 * k, "scores": s}) + "\n"
                                             for k, s in enumerate([scores(2, 1), scores(2, 10), scores(3, 30)])))
    grpo = record("GRPO", 0, evals([10, 20], [30, 20]))
    grpo.config = {"out_dir": str(log)}
    lost = record("SFT", 0, evals([10, 20], [30, 20]))
    lost.config = {"out_dir": str(tmp_path / "runs" / "gone")}
    frame = experiment.truncation([grpo, lost, record("Self-SFT", 0, evals([10, 20], [30, 20]))])
    assert list(frame["variant"]) == ["GRPO", "GRPO"], "runs without a log are left out"
    countdown = frame[frame["task"] == "countdown"].iloc[0]
    assert (countdown["start"], countdown["end"], countdown["n"], countdown["budget"]) == (1, 30, N, 96)
    shown = tables.truncation(frame)
    assert shown.loc[("mmlu", "GRPO"), "countdown: cut off at 96 tokens (% start → end)"] == "2 → 75"
    assert shown.loc[("mmlu", "GRPO"), "mmlu: cut off at 48 tokens (% start → end)"] == "5 → 8"
    sentence = findings.truncation_sentence(frame)
    assert "GRPO (target mmlu, seed 0) on countdown, 1 → 30 of 40 held-out answers hit its 96-token budget" in sentence
    assert "(+72.5 pp)" in sentence and "scored wrong" in sentence
    assert "cut-off answers explain little of the drops" in findings.truncation_sentence(frame.assign(end=frame["start"] + 1))
    from retain_utils.core.tasks import get_task

    as_run = {"mmlu": get_task("mmlu", max_new_tokens=16), "countdown": get_task("countdown", max_new_tokens=16)}
    assert set(experiment.truncation([grpo], as_run)["budget"]) == {16}, "the tasks as evaluated set the budget"
    grpo.config["eval_max_new_tokens"] = 200
    assert set(experiment.truncation([grpo], as_run)["budget"]) == {200}
    assert "No run's evaluation log" in findings.truncation_sentence(experiment.truncation([lost]))
    assert tables.truncation(experiment.truncation([lost])).empty


def test_with_several_seeds_the_claims_rest_on_the_seeds_t_interval():
    from retain_utils.analysis import tables

    # end drop differences +62.5, +37.5 and +50 pp over 3 seeds (other task: 40 questions)
    runs = [record("SFT", 0, evals([10, 20, 30], [30, 20, 5])), record("GRPO", 0, evals([10, 14, 18], [30, 30, 30])),
            record("SFT", 1, evals([10, 20, 30], [30, 25, 15])), record("GRPO", 1, evals([10, 14, 18], [30, 30, 30])),
            record("SFT", 2, evals([10, 20, 30], [30, 22, 10])), record("GRPO", 2, evals([10, 14, 18], [30, 30, 30]))]
    frame = findings.campaign_forgetting(runs, [("SFT", "GRPO")], n_boot=500)
    end = frame[frame["at"] == "end"].iloc[0]
    # mean 50, sd 12.5, t_{0.975, 2} = 4.302653
    half = 4.302653 * 12.5 / 3 ** 0.5
    assert (end["low (pp)"], end["high (pp)"]) == pytest.approx((50 - half, 50 + half))
    assert end["seed sd (pp)"] == pytest.approx(12.5) and end["verdict"] == "SFT forgets more"
    shown = tables.pooled_differences(frame).loc[("mmlu", "SFT - GRPO", "end")]
    assert shown["95 % interval over seeds (pp)"] == f"{50 - half:+.1f} to {50 + half:+.1f}"
    assert shown["Detectable over seeds (pp)"] == f"{forgetting.seed_min_detectable_difference(12.5, 3):.1f}"
    out = findings.forgetting_comparison(runs, n_boot=500)
    assert "Over the 3 seeds (the interval a claim about the methods rests on): on mmlu, at matched gain 20 pp" \
        in out.sentence and "Each seed alone, over its held-out questions only" in out.sentence
    # the power sentence: seed level first (sd 12.5 pp over 3 seeds), the question level as the second view
    mdd = forgetting.seed_min_detectable_difference(12.5, 3)
    assert out.power.startswith("Over seeds: the 3 seeds' SFT - GRPO drop differences at the end spread with a "
                                f"standard deviation of 12.5 pp, so the smallest difference 3 seeds detect")
    assert f"is {mdd:.1f} pp" in out.power and "Over held-out questions only (one evaluation's noise" in out.power
    assert "none would be reliably detected" in out.power  # 38.7 and 14.4 both below ~40.6 pp
