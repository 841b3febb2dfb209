"""The committed campaign's answer each LLM chapter opens with (``chapters.evidence``): its numbers on hand-made runs
whose differences are known, on the committed fixture campaign, on an empty campaign, and in the executed chapters."""

import dataclasses
from pathlib import Path
from types import SimpleNamespace

import nbformat
import pandas as pd
import pytest

from retain_utils.analysis import tables
from retain_utils.batch import campaign, runner
from retain_utils.chapters import evidence, experiment, findings, settings
from retain_utils.core import results
from retain_utils.core.intervals import seed_t_interval
from retain_utils.core.records import RunRecord

FIXTURE = Path(__file__).parent / "data" / "campaign"
N = 10  # held-out questions per task in the hand-made runs


def hand_run(variant: str, method: str, seed: int, gained: int, lost: int, lenient_lost: int | None,
             tokens: int = 0, target: str = "mmlu") -> RunRecord:
    """A run evaluated at steps 0 and 4: ``gained`` more target questions right of ``N``, ``lost`` of ``N`` lost on
    each other task, of which all but ``lenient_lost`` still hold the right answer somewhere (None: no lenient
    scores, as in older results files)."""
    others = [t for t in ("ifeval", "mmlu", "countdown") if t != target]
    start = {target: [1] * 3 + [0] * (N - 3), **{t: [1] * N for t in others}}
    end = {target: [1] * (3 + gained) + [0] * (N - 3 - gained), **{t: [0] * lost + [1] * (N - lost) for t in others}}
    evals = [{"step": 0, "correct": start}, {"step": 4, "correct": end}]
    if lenient_lost is not None:
        evals[0]["lenient"] = start
        evals[1]["lenient"] = {**end, **{t: [0] * lenient_lost + [1] * (N - lenient_lost) for t in others}}
        evals[1]["truncated"] = evals[1]["looping"] = {t: [0] * N for t in start}
    return RunRecord(variant=variant, method=method, target=target, seed=seed, gain=100.0 * gained / N,
                     drop=100.0 * lost / N, gain_interval=(-5.0, 5.0), drop_interval=(-5.0, 5.0), kl=0.0,
                     accuracy_initial={}, accuracy_final={}, n_eval={t: N for t in start}, trajectory=[],
                     status="finished", seconds=1.0, train_seconds=60.0, generated_tokens=tokens,
                     config={"steps": 4, "batch_size": 2}, evals=evals)


# three seeds: SFT gains 3, 4, 5 questions and loses 3, 4, 5 on each other task (1 of them knowledge); GRPO gains the
# same and loses 0, 1, 0 (all knowledge)
SEEDS = (0, 1, 2)
SFT = [hand_run("SFT", "sft", s, 3 + s, 3 + s, 1) for s in SEEDS]
GRPO = [hand_run("GRPO", "grpo", s, 3 + s, [0, 1, 0][s], [0, 1, 0][s], tokens=1000) for s in SEEDS]


def test_gains_and_drops_carry_their_interval_over_seeds():
    gains = evidence.gain_drop(SFT + GRPO).set_index(["target", "variant"])
    sft = gains.loc[("mmlu", "SFT")]
    assert sft["seeds"] == 3 and sft["interval over"] == "seeds"
    assert sft["gain (pp)"] == pytest.approx(40.0)
    assert (sft["gain low (pp)"], sft["gain high (pp)"]) == pytest.approx(seed_t_interval([30.0, 40.0, 50.0]))
    assert (sft["drop low (pp)"], sft["drop high (pp)"]) == pytest.approx(seed_t_interval([30.0, 40.0, 50.0]))
    assert bool(sft["learned"]) and gains.loc[("mmlu", "GRPO"), "drop (pp)"] == pytest.approx(10 / 3)
    shown = tables.seed_gains(evidence.gain_drop(SFT + GRPO))
    assert shown.loc[("mmlu", "SFT"), "Gain beyond noise"] == "yes"
    assert shown.loc[("mmlu", "SFT"), "Interval over"] == "seeds (t)"


def test_one_seed_reads_its_interval_over_questions_and_says_so():
    (row,) = evidence.gain_drop(SFT[:1]).to_dict("records")
    assert row["interval over"] == "questions" and (row["gain low (pp)"], row["gain high (pp)"]) == (-5.0, 5.0)
    assert not row["learned"]  # the interval reaches zero
    sentence = evidence.learned_sentence(evidence.gain_drop(SFT[:1]))
    assert "No: none of the 1 gains" in sentence and "over held-out questions only" in sentence


def test_the_drop_difference_splits_into_knowledge_and_format_over_seeds():
    split, unsplit = evidence.knowledge_format(SFT + GRPO, [("SFT", "GRPO")])
    (row,) = split.to_dict("records")
    assert unsplit == 0 and row["seeds"] == 3 and row["interval over"] == "seeds"
    assert row["strict (pp)"] == pytest.approx((30 + 30 + 50) / 3)
    knowledge, form = [10.0, 0.0, 10.0], [20.0, 30.0, 40.0]  # SFT's 10 each minus GRPO's 0, 10, 0; SFT's format
    assert row["knowledge (pp)"] == pytest.approx(20 / 3) and row["format (pp)"] == pytest.approx(30.0)
    assert (row["knowledge low (pp)"], row["knowledge high (pp)"]) == pytest.approx(seed_t_interval(knowledge))
    assert (row["format low (pp)"], row["format high (pp)"]) == pytest.approx(seed_t_interval(form))
    sentence = evidence.split_sentence(split, [("SFT", "GRPO")], unsplit)
    assert "knowledge +6.7 pp" in sentence and "not told apart from zero" in sentence  # the knowledge interval
    assert "format +30.0 pp" in sentence and "beyond zero" in sentence


def test_runs_without_lenient_scores_take_no_part_in_the_split():
    old = [hand_run("SFT", "sft", s, 3, 3, None) for s in SEEDS]
    split, unsplit = evidence.knowledge_format(old + GRPO, [("SFT", "GRPO")])
    assert split.empty and unsplit == 3
    assert "3 runs kept no lenient scores" in evidence.split_sentence(split, [("SFT", "GRPO")], unsplit)


def test_chapter_2_answer_on_hand_made_runs():
    answer = evidence.rl_vs_sft(SFT + GRPO)
    assert answer.runs == 6
    end = answer.differences.query("comparison == 'SFT - GRPO' and at == 'end'").iloc[0]
    assert end["difference (pp)"] == pytest.approx(110 / 3)
    assert (end["low (pp)"], end["high (pp)"]) == pytest.approx(seed_t_interval([30.0, 30.0, 50.0]))
    assert end["verdict"] == "SFT forgets more" and end["interval over"] == "seeds"
    assert set(answer.differences["at"]) == {"end", "gain 10 pp", "gain 20 pp", "gain 30 pp"}
    assert "*SFT against GRPO:* SFT forgets more on mmlu (at matched gain 30 pp)" in answer.sentence
    assert "**And at the end:**" in answer.sentence and "**Knowledge or format?**" in answer.sentence
    assert "Gains whose 95 % interval over training seeds lies above zero: SFT on mmlu" in answer.sentence
    assert "6 committed campaign runs" in answer.scope and "seeds 0, 1, 2" in answer.scope
    assert "4 steps x 2 prompts" in answer.scope and "10 held-out questions per task" in answer.scope


def test_chapter_2_answer_on_the_fixture_campaign():
    records = campaign.records(FIXTURE, "02_rl_vs_sft")
    answer = evidence.rl_vs_sft(records)
    assert answer.runs == 3 and list(answer.gains["variant"]) == ["SFT", "Self-SFT", "GRPO"]
    assert list(answer.gains["gain (pp)"]) == [0.0, 0.0, 0.0] and not answer.gains["learned"].any()
    expected = findings.campaign_forgetting(records, [("SFT", "GRPO"), ("Self-SFT", "GRPO")])
    pd.testing.assert_frame_equal(answer.differences, expected)
    sft = expected.set_index("comparison").loc["SFT - GRPO"]
    assert sft["difference (pp)"] == -18.75  # SFT's drop over 4 other tasks (countdown +25, antonym +50 pp), GRPO's 0
    assert list(answer.split["comparison"]) == ["SFT - GRPO", "Self-SFT - GRPO"]
    assert "**Knowledge or format?** At the end of training (one seed): on mmlu, of SFT's drop minus GRPO's" \
        in answer.sentence
    assert answer.sentence.startswith("**Did the runs learn their targets?** No: none of the 3 gains")
    assert findings.pooled_sentence(expected, "SFT", "GRPO", "Does SFT forget more than GRPO?") in answer.sentence
    assert "seed 0; trained 2 steps x 2 prompts, evaluated at steps 0, 2 on 4 held-out" in answer.scope


def test_chapter_3_answer_on_the_fixture_campaign():
    answer = evidence.ablations(campaign.records(FIXTURE, "03_ablations"), campaign.records(FIXTURE, "02_rl_vs_sft"))
    assert list(dict.fromkeys(answer.differences["comparison"])) == [
        "GRPO, β=0 - GRPO", "REINFORCE - GRPO", "GRPO, stale rollouts - GRPO", "SFT - SFT on GRPO's rollouts",
        "SFT on GRPO's rollouts - GRPO"]
    rows = answer.differences.set_index("comparison")
    assert rows.loc["SFT - SFT on GRPO's rollouts", "difference (pp)"] == -18.75  # SFT's drop -18.75 pp, its 0.0
    assert answer.runs == 6 and "read from notebook 2" not in answer.sentence  # notebook 3 runs REINFORCE itself
    assert "Does SFT on expert answers forget more than SFT on GRPO's own rollouts?" in answer.sentence
    assert answer.sentence.endswith("Not in the campaign: SFT - SFT + KL.")


def test_chapter_3_reads_a_comparison_it_did_not_run_from_notebook_2():
    three = [hand_run(v, "grpo", 0, 2, 1, 1) for v in ("GRPO", "GRPO, β=0")]
    two = [hand_run("GRPO", "grpo", 0, 2, 1, 1), hand_run("REINFORCE", "reinforce", 0, 2, 3, 1)]
    answer = evidence.ablations(three, two)
    rows = answer.differences[answer.differences["comparison"] == "REINFORCE - GRPO"].reset_index(drop=True)
    borrowed = findings.campaign_forgetting(two, [("REINFORCE", "GRPO")])
    pd.testing.assert_frame_equal(rows, borrowed)
    assert rows["drop a (pp)"].iloc[0] == 30.0  # REINFORCE lost 3 of 10 answers on each other task
    assert "REINFORCE" in set(answer.gains["variant"]) and answer.runs == 2  # notebook 3's own runs
    assert "REINFORCE against GRPO is read from notebook 2's campaign runs" in answer.sentence


def test_table_1_takes_reinforce_from_notebook_3_without_counting_its_copies_of_notebook_2s_runs():
    two = [hand_run(v, m, s, 4, 2, 1, target="countdown") for v, m in (("SFT", "sft"), ("GRPO", "grpo"))
           for s in (0, 1)]
    copies = [dataclasses.replace(r, reused_from="02_rl_vs_sft/k/runs/x") for r in two]  # 03's GRPO and SFT
    reinforce = [hand_run("REINFORCE", "reinforce", s, 3, 1, 1, target="countdown") for s in (0, 1)]
    stale = [hand_run("GRPO, stale rollouts", "grpo", 0, 1, 1, 1, target="countdown")]
    runs = evidence.table_1_runs(two, copies + reinforce + stale)
    assert runs == two + reinforce
    table, _ = results.table_1(runs, variants=evidence.TABLE_1)
    assert list(table.index) == ["SFT", "REINFORCE", "GRPO"]


def test_chapter_4_answer_compares_iterative_sft_with_each_method_and_its_cost():
    records = campaign.records(FIXTURE, "04_iterative_sft")
    answer = evidence.iterative(records)
    label = "Iterative-SFT, every 1 step"
    assert set(answer.differences["comparison"]) == {f"{label} - SFT", f"{label} - Self-SFT (never)",
                                                     f"{label} - GRPO"}
    row = answer.differences.set_index("comparison").loc[f"{label} - SFT"]
    assert row["difference (pp)"] == 12.5  # its drop +6.25 pp, SFT's -6.25
    tokens = answer.gains.set_index("variant")["generated tokens (k per run)"]
    assert tokens[label] == pytest.approx(0.752) and tokens["SFT"] == 0
    assert findings.cost_sentence(experiment.summary(records), label) in answer.sentence
    assert "Generated tokens (k per run)" in tables.seed_gains(answer.gains).columns


@pytest.mark.parametrize("stem", ["02_rl_vs_sft", "03_ablations", "04_iterative_sft"])
def test_an_empty_campaign_says_it_has_no_answer_yet(stem, tmp_path):
    answers = {"02_rl_vs_sft": lambda: evidence.rl_vs_sft(campaign.records(tmp_path, stem)),
               "03_ablations": lambda: evidence.ablations(campaign.records(tmp_path, stem), []),
               "04_iterative_sft": lambda: evidence.iterative(campaign.records(tmp_path, stem))}
    answer = answers[stem]()
    assert answer.runs == 0 and answer.scope == ""
    assert answer.sentence.startswith("**No campaign answer yet.** No campaign point of notebook")
    assert tables.seed_gains(answer.gains).empty and tables.pooled_differences(answer.differences).empty


def test_runs_without_per_question_evaluations_are_named_not_paired():
    old = [RunRecord.from_dict({**SFT[0].to_dict(), "evals": []})]
    answer = evidence.rl_vs_sft(old)
    assert answer.runs == 0 and "Its 1 run kept no per-question evaluations" in answer.sentence


def test_the_demonstration_says_what_one_seed_cannot_show():
    one = SimpleNamespace(profile="quick", cfg=SimpleNamespace(seeds=[0], steps=8, batch_size=4, n_eval=40))
    text = evidence.demonstration(one)
    assert "`quick` profile, 1 seed, 8 steps x 4 prompts, 40 held-out questions" in text
    assert "cannot tell methods apart" in text
    three = SimpleNamespace(profile="full", cfg=SimpleNamespace(seeds=[0, 1, 2], steps=8, batch_size=4, n_eval=40,
                                                                n_eval_target=100))
    text = evidence.demonstration(three)
    assert "40 held-out questions per task (100 of the target)" in text
    assert "over 3 seeds at this budget its intervals are wide" in text


@pytest.mark.parametrize("stem", ["02_rl_vs_sft", "03_ablations", "04_iterative_sft"])
def test_a_campaign_folder_that_is_not_there_is_refused_in_the_chapter_naming_the_parameter(stem, tmp_path):
    """The chapter's own check (the command line's is in test_bad_inputs), before any model loads."""
    with pytest.raises(ValueError, match="campaign_dir must be an existing folder"):
        settings.checked(stem, "smoke", campaign_dir=str(tmp_path / "missing"))


def evidence_section(stem: str, folder: Path) -> None:
    """A copy of the chapter holding its cells up to its live experiment (``## The experiment``), then a cell that
    writes its results file: its evidence section as the chapter runs it, without the training that follows
    (test_book executes the whole chapter)."""
    nb = nbformat.read(runner.NOTEBOOK_DIR / f"{stem}.ipynb", as_version=4)
    end = next(i for i, c in enumerate(nb.cells)
               if c.cell_type == "markdown" and c.source.startswith("## The experiment"))
    nb.cells = nb.cells[:end] + [nbformat.v4.new_code_cell(  # the runner reads every chapter's results file
        f'from retain_utils.core import results\nresults.save(results_path, notebook="{stem}")')]
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, folder / f"{stem}.ipynb")


def chapter_answer(stem: str, folder: Path) -> evidence.Answer:
    """What the chapter's evidence section computes from the campaign in ``folder``."""
    records = {nb: campaign.records(folder, nb) for nb in ("02_rl_vs_sft", "03_ablations", "04_iterative_sft")}
    if stem == "03_ablations":
        return evidence.ablations(records[stem], records["02_rl_vs_sft"])
    return (evidence.rl_vs_sft if stem == "02_rl_vs_sft" else evidence.iterative)(records[stem])


@pytest.mark.slow
@pytest.mark.parametrize("stem", ["02_rl_vs_sft", "03_ablations", "04_iterative_sft"])
def test_each_chapter_opens_with_the_fixture_campaigns_answer(stem, tmp_path):
    """The chapter's evidence section at smoke, reading the fixture campaign: the answer and the campaign it rests on,
    computed from the committed files alone."""
    evidence_section(stem, tmp_path / "notebooks")
    done = runner.run_notebook(stem, "smoke", {"campaign_dir": str(FIXTURE)}, output_dir=tmp_path / "out",
                               notebook_dir=tmp_path / "notebooks", progress=False)
    executed = done.executed.read_text()
    answer = chapter_answer(stem, FIXTURE)
    assert answer.runs and answer.sentence[:90] in executed and answer.scope[:90] in executed
    assert "No: none of the" in answer.sentence[:90], "the fixture's one-seed gains are all within the noise"
    assert campaign.describe(FIXTURE)[:80] in executed


@pytest.mark.slow
def test_an_empty_campaign_folder_renders_in_the_chapter(tmp_path):
    evidence_section("02_rl_vs_sft", tmp_path / "notebooks")
    (tmp_path / "empty").mkdir()
    done = runner.run_notebook("02_rl_vs_sft", "smoke", {"campaign_dir": str(tmp_path / "empty")},
                               output_dir=tmp_path / "out", notebook_dir=tmp_path / "notebooks", progress=False)
    assert "**No campaign answer yet.** No campaign point of notebook 2" in done.executed.read_text()


# ----- the results chapter's cross-cutting views -------------------------------------------------------------------

def test_split_overview_averages_each_method_over_seeds_and_tasks_and_says_how_much_is_format():
    old = hand_run("SFT", "sft", 3, 3, 3, None)  # no lenient scores: left out, and counted
    frame, sentence = evidence.split_overview(SFT + GRPO + [old])
    rows = frame.set_index(["target", "variant"])
    sft, grpo = rows.loc[("mmlu", "SFT")], rows.loc[("mmlu", "GRPO")]
    assert sft["seeds"] == 3 and sft["strict drop (pp)"] == pytest.approx(40.0)
    assert sft["knowledge drop (pp)"] == pytest.approx(10.0) and sft["format drop (pp)"] == pytest.approx(30.0)
    assert grpo["strict drop (pp)"] == pytest.approx(10 / 3) and grpo["format drop (pp)"] == pytest.approx(0.0)
    # the 4 runs that lost accuracy (3 SFT, GRPO seed 1): (30 + 40 + 50 + 10) / 4 = 32.5 pp; knowledge 10 each
    assert "(6 runs): the 4 runs that lost accuracy on the other tasks dropped 32.5 pp" in sentence
    assert "+10.0 pp knowledge" in sentence and "+22.5 pp format" in sentence
    assert "1 run kept no lenient scores" in sentence
    shown = tables.split_overview(frame)
    assert shown.loc[("mmlu", "SFT"), "Format drop (pp)"] == "+30.0" and "Looping at end (%)" in shown.columns
    assert "no drop can be split" in evidence.split_overview([old])[1]


def test_flag_summary_counts_each_methods_flagged_runs_and_their_flags():
    import dataclasses

    flagged = [dataclasses.replace(r, flags=f) for r, f in zip(GRPO, (["no_signal", "shrunk"], ["shrunk"], []))]
    table = evidence.flag_summary(SFT + flagged)
    assert table.loc[("mmlu", "GRPO"), "Flagged runs"] == 2 and table.loc[("mmlu", "GRPO"), "Runs"] == 3
    assert table.loc[("mmlu", "GRPO"), "Flags (runs)"] == "no_signal (1), shrunk (2)"
    assert table.loc[("mmlu", "SFT"), "Flags (runs)"] == "none"


def test_verdicts_give_one_line_per_comparison_of_a_difference_table():
    frame = findings.campaign_forgetting(SFT + GRPO, [("SFT", "GRPO")])
    (line,) = evidence.verdicts(frame)
    assert line == evidence.verdict_summary(frame, "SFT", "GRPO") and line.startswith("*SFT against GRPO:*")
    assert evidence.verdicts(findings.campaign_forgetting([], [])) == []


def test_diagnostic_means_average_each_rl_variant_over_its_seeds(tmp_path):
    import dataclasses
    import json

    import matplotlib
    matplotlib.use("Agg")
    runs = []
    for seed, lengths in ((0, (40, 20)), (1, (60, 30))):
        folder = tmp_path / f"grpo{seed}"
        folder.mkdir()
        (folder / "metrics.jsonl").write_text("".join(json.dumps({"step": i + 1, "reward": 0.5, "completion_len": n})
                                                      + "\n" for i, n in enumerate(lengths)))
        runs.append(dataclasses.replace(GRPO[seed], config={**GRPO[seed].config, "out_dir": str(folder)}))
    from retain_utils.chapters import plots

    assert plots.plot_diagnostic_means(SFT) is None, "no RL run kept metrics: nothing to draw"
    fig = plots.plot_diagnostic_means(runs + [runs[0]])  # the same run twice counts once
    line = fig.axes[0].get_lines()[0]
    assert list(line.get_ydata()) == [50.0, 25.0] and "(2 seeds)" in line.get_label()
    assert fig.axes[0].get_title() == "completion length (tokens), target mmlu"
    faster = dataclasses.replace(runs[1], config={**runs[1].config, "lr": 4e-5})
    slower = dataclasses.replace(runs[0], config={**runs[0].config, "lr": 2e-5})
    labels = [line.get_label() for line in plots.plot_diagnostic_means([slower, faster], by_lr=True).axes[0].get_lines()]
    assert labels == ["GRPO, lr 2e-05 (1 seed)", "GRPO, lr 4e-05 (1 seed)"], "a calibration's sweep: one line per rate"
    import matplotlib.pyplot as plt

    plt.close("all")  # no figure left current for the next test's plt.gca()
