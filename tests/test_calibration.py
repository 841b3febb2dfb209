"""Choosing the calibrated learning rate: the rule on hand-made run records."""

import dataclasses
import math

import pytest

from retain_utils.chapters import calibration
from retain_utils.core.records import RunRecord


def _record(lr, seed, gain, flags=(), method="grpo", target="ifeval"):
    return RunRecord(variant="GRPO", method=method, target=target, seed=seed, gain=gain, drop=1.0,
                     gain_interval=None, drop_interval=None, kl=0.1, accuracy_initial={}, accuracy_final={},
                     n_eval={}, trajectory=[], status="finished", seconds=1.0, train_seconds=1.0,
                     generated_tokens=0, config={"lr": lr, "steps": 60}, flags=list(flags))


def test_summary_gives_the_seed_level_interval():
    rows = calibration.summary([_record(1e-5, s, g) for s, g in zip((100, 101, 102), (9.0, 12.0, 15.0))])
    (s,) = rows
    assert s.gain_mean == pytest.approx(12.0) and s.seeds == (100, 101, 102)
    half = 4.302652729911275 * 3.0 / math.sqrt(3)  # t_{0.975, 2} x sd / sqrt(3), sd = 3
    assert (s.gain_low, s.gain_high) == pytest.approx((12.0 - half, 12.0 + half))
    assert s.learned  # 12 pp >= 10, and the interval's low end 12 - 7.45 is above zero

def test_choice_skips_flagged_settings_and_says_why():
    records = ([_record(5e-6, s, 2.0) for s in (100, 101, 102)]
               + [_record(2e-5, s, 12.0 + s - 101) for s in (100, 101, 102)]
               + [_record(4e-5, s, 30.0, flags=["no_signal"] if s == 101 else []) for s in (100, 101, 102)]
               + [_record(1e-4, s, 0.0, method="sft") for s in (100, 101)])
    choices = {c.method: c for c in calibration.choose(calibration.summary(records))}
    assert choices["grpo"].lr == 2e-5 and choices["grpo"].learned
    assert "collapsed (excluded): 4e-05" in choices["grpo"].reason and "tried 5e-06, 2e-05, 4e-05" in choices["grpo"].reason
    assert choices["sft"].lr == 1e-4 and not choices["sft"].learned and "below the 10 pp bar" in choices["sft"].reason


def test_a_setting_at_the_bar_on_one_seed_or_with_an_interval_reaching_zero_is_not_yet_learned():
    (one,) = calibration.choose(calibration.summary([_record(1e-4, 100, 12.7, method="sft")]))
    assert not one.learned and "at the 10 pp bar on one seed, not yet an interval over seeds" in one.reason
    (wide,) = calibration.choose(calibration.summary([_record(1e-4, s, g, method="sft")
                                                      for s, g in ((100, 30.0), (101, -5.0), (102, 12.0))]))
    assert not wide.learned and "its interval over seeds reaches zero" in wide.reason


def test_another_tasks_flags_are_forgetting_shown_not_a_reason_to_exclude():
    records = ([_record(2e-5, s, 15.0, flags=["looping:mmlu"] if s == 101 else []) for s in (100, 101, 102)]
               + [_record(1e-5, s, 11.0) for s in (100, 101, 102)])
    (choice,) = calibration.choose(calibration.summary(records))
    assert choice.lr == 2e-5 and "flagged on other tasks (forgetting, shown): looping:mmlu" in choice.reason
    (target,) = calibration.choose(calibration.summary([_record(2e-5, 100, 15.0, flags=["cut_off:ifeval"]),
                                                        _record(1e-5, 100, 11.0)]))
    assert target.lr == 1e-5 and "collapsed (excluded): 2e-05" in target.reason  # the target's own answers


def test_no_qualifying_setting_is_said(tmp_path):
    settings = calibration.summary([_record(4e-5, 100, 30.0, flags=["shrunk", "looping:mmlu"])])
    (choice,) = calibration.choose(settings)
    assert choice.lr is None and "none qualifies" in choice.reason
    path = tmp_path / "choice.json"
    calibration.write_choice(path, settings, [choice])
    assert calibration.read_choice(path) == [choice]
    path.write_text('{"choices": [')
    with pytest.raises(ValueError, match="choice.json: not a calibration choice file"):
        calibration.read_choice(path)


def test_where_every_rate_collapsed_the_campaign_falls_back_to_the_papers_and_says_so():
    records = ([_record(lr, 100, 13.3, flags=["no_signal", "shrunk"]) for lr in (5e-6, 2e-5)]
               + [_record(1e-5, s, 10.0, flags=["no_signal"] * (s == 102)) for s in (100, 101, 102)])
    settings = calibration.summary(records)
    (choice,) = calibration.choose(settings)
    assert (choice.lr, choice.steps, choice.learned, choice.fallback) == (5e-6, 60, False, True)
    assert ("every learning rate tried (5e-06, 1e-05, 2e-05) collapsed on its target, none qualifies: the campaign "
            "runs the paper's, 5e-06 (60 steps; +13.3 pp over 1 seed, flags no_signal, shrunk), and every table "
            "flags its runs") == choice.reason
    # its seeds are not asked for (its flags stay whatever they show); the sweep's untried rate is
    assert calibration.incomplete(settings, [choice]) == ["ifeval, grpo: learning rate 4e-05 of the sweep not tried",
                                                          "ifeval, sft: no run"]
    (sft,) = calibration.choose(calibration.summary([_record(3e-4, 100, 5.0, method="sft", flags=["shrunk"])]))
    assert sft.lr is None and not sft.fallback  # the paper's rate was not tried: nothing to fall back to


def test_status_and_table_of_an_empty_and_a_partial_calibration(tmp_path):
    assert calibration.load(tmp_path / "none") == []
    assert "No calibration run is committed yet" in calibration.status_sentence([], [])
    settings = calibration.summary([_record(2e-5, 100, 12.0)])
    text = calibration.status_sentence(settings, calibration.choose(settings))
    assert "1 setting(s) over 1 run(s)" in text
    assert ("the calibration lacks: ifeval, grpo: learning rates 5e-06, 1e-05, 4e-05 of the sweep not tried; "
            "ifeval, sft: no run; ifeval, grpo: the chosen lr 2e-05 lacks seeds 101, 102.") in text
    frame = calibration.settings_frame(settings)
    assert frame.loc[0, "Gain 95 % interval over seeds (pp)"] == "one seed" and frame.loc[0, "Learning rate"] == "2e-05"


def test_the_campaigns_cost_is_projected_from_measured_points_in_core_seconds(tmp_path):
    import json

    def point(overhead, *runs, target="ifeval"):  # core-seconds, as point_costs reads them
        return calibration.PointCost(target, 2, 2, 60, overhead, tuple(runs))

    assert calibration.projected_campaign([point(300.0, ("sft", 600.0))]) is None, "needs a GRPO run too"
    assert "none yet" in calibration.cost_sentence(None)
    p = calibration.projected_campaign([point(300.0, ("sft", 600.0)), point(500.0, ("sft", 1200.0), ("grpo", 3600.0))])
    assert p.run_seconds == {"sft": 900.0, "grpo": 3600.0, "self_sft": 2250.0, "iterative_sft": 2250.0}
    assert p.measured == ("grpo", "sft") and p.point_seconds == p.later_point_seconds == 400.0 and p.steps == 60
    # 6 targets' points x 5 seeds; runs per plan (03 and 04 train only what 02's points do not hold)
    assert (p.points, p.runs) == (30, 5 * (3 * 3 + 4 + 2 * 1))
    # REINFORCE, not measured, is costed as GRPO
    hand = (30 * 400 + 5 * (3 * (900 + 2250 + 3600) + (3 * 3600 + 900) + 2 * 2250)) / 3600
    assert p.cpu_hours == pytest.approx(hand) and p.hours == pytest.approx(hand / 2), "two cores kept busy"
    text = calibration.cost_sentence(p)
    assert "grpo 60" in text and "self_sft 38 (costed)" in text and "over its budget of 50" in text
    # a target measured on its own costs its own time; the others the method's mean over targets
    q = calibration.projected_campaign([point(400.0, ("sft", 900.0), ("grpo", 3600.0)),
                                        point(400.0, ("grpo", 1200.0), target="mmlu")])
    assert q.run_seconds["grpo"] == 2400.0 and q.target_seconds[("mmlu", "grpo")] == 1200.0
    # 02: ifeval GRPO 3600, mmlu 1200, countdown the mean 2400; 03 (mmlu): 3 RL runs at mmlu's GRPO 1200 (REINFORCE
    # costed as GRPO on its target) and an SFT; 04 (ifeval, countdown): Iterative-SFT costed as SFT and GRPO's mean
    # on its target where both are measured (ifeval), else overall
    hand = (30 * 400 + 5 * (3 * 900 + (2250 + 1650 + 1650) + (3600 + 1200 + 2400) + (3 * 1200 + 900)
                            + (2250 + 1650))) / 3600
    assert q.cpu_hours == pytest.approx(hand)
    assert "(by target: grpo on ifeval 60, sft on ifeval 15, grpo on mmlu 20)" in calibration.cost_sentence(q)
    # a point's cost from its results file: wall seconds x its torch threads; its overhead is its notebook's time
    # besides its runs', and a run read from another point took no time here
    for name, threads in (("a", 1), ("b", 2)):
        folder = tmp_path / "ifeval" / name
        folder.mkdir(parents=True)
        (folder / "params.json").write_text(json.dumps({"notebook": "02_rl_vs_sft", "profile": "campaign",
                                                        "params": {}}))
        (folder / "done.json").write_text(json.dumps({"seconds": 1000}))
        (folder / "02_rl_vs_sft.results.json").write_text(json.dumps(
            {"timings": {"notebook_seconds": 1000.0}, "versions": {"retain_utils": "9.9.9"},
             "machine": {"cpu_count": 2, "torch_threads": threads, "cpu_flags": ["avx2"] * (threads == 1)},
             "runs": [{"method": "sft", "seconds": 600.0, "config": {"steps": 40}}, {"method": "grpo", "seconds": 250.0},
                      {"method": "sft", "seconds": 900.0, "reused_from": "x/runs/SFT-s0-f"}]}))
    one, two = calibration.point_costs(tmp_path)
    assert one == calibration.PointCost("ifeval", 1, 2, 40, 150.0, (("sft", 600.0), ("grpo", 250.0)),
                                        machine="CPU flags avx2, package 9.9.9")
    assert two.machine == "CPU flags none of avx2 and up, package 9.9.9"
    assert ("with CPU flags avx2, package 9.9.9 (1 point); CPU flags none of avx2 and up, package 9.9.9 (1 point)."
            in calibration.cost_sentence(calibration.projected_campaign([one, two])))
    assert (two.overhead, two.runs) == (300.0, (("sft", 1200.0), ("grpo", 500.0)))
    assert calibration.point_costs(tmp_path / "none") == []
    # the first point of a target answers the baseline's questions, a later one reads them back
    computed = point(400.0, ("sft", 900.0), ("grpo", 3600.0))
    computed = dataclasses.replace(computed, baseline=300.0)
    r = calibration.projected_campaign([computed])
    assert (r.point_seconds, r.later_point_seconds) == (400.0, 100.0)
    n_targets = len({t for p in calibration.CAMPAIGN_PLAN.values() for t in p.targets})
    runs_only = calibration.projected_campaign([point(0.0, ("sft", 900.0), ("grpo", 3600.0))]).cpu_hours
    assert r.cpu_hours == pytest.approx(runs_only + (n_targets * 400 + (r.points - n_targets) * 100) / 3600)
    read = dataclasses.replace(point(150.0, ("sft", 900.0)), baseline_read=True)
    assert calibration.projected_campaign([computed, read]).later_point_seconds == (100.0 + 150.0) / 2
    assert "for a target's first point, 2 for each later one" in calibration.cost_sentence(r)
    # a run's KL, longer budget and retention come after training: each planned run pays them, not each point
    with_after = dataclasses.replace(point(400.0, ("sft", 900.0), ("grpo", 3600.0)), after=200.0)  # 100 per run
    a = calibration.projected_campaign([with_after, point(300.0, ("sft", 900.0))])  # the second recorded none
    assert (a.after_seconds, a.after_measured, a.point_seconds) == (100.0, 1, (200.0 + 200.0) / 2)
    plain = calibration.projected_campaign([dataclasses.replace(with_after, overhead=200.0, after=None),
                                            point(200.0, ("sft", 900.0))])
    assert a.cpu_hours == pytest.approx(plain.cpu_hours + a.runs * 100 / 3600)
    assert "retention 2 (measured on 1 point)" in calibration.cost_sentence(a)
    folder = tmp_path / "ifeval" / "c"
    folder.mkdir()
    (folder / "params.json").write_text(json.dumps({"notebook": "02_rl_vs_sft", "profile": "campaign", "params": {}}))
    (folder / "done.json").write_text(json.dumps({"seconds": 1000}))
    for read_back in (False, True):
        (folder / "02_rl_vs_sft.results.json").write_text(json.dumps(
            {"timings": {"notebook_seconds": 1000.0}, "machine": {"cpu_count": 2, "torch_threads": 1},
             "baseline": [{"task": "ifeval", "seconds": 100.0}, {"task": "mmlu", "seconds": 50.0}],
             "baseline_read": read_back, "runs": [{"method": "sft", "seconds": 600.0, "phase_seconds": {
                 "train": 300.0, "evaluate": 300.0, "kl": 20.0, "longer_budget": 30.0, "retention": 10.0}}]}))
        cost = calibration.point_costs(tmp_path)[-1]
        assert (cost.baseline, cost.baseline_read) == ((0.0, True) if read_back else (150.0, False))
        assert cost.after == 60.0 and cost.overhead == 400.0
    assert one.after is None  # its run recorded no phases


def test_the_command_line_shows_the_choice_and_writes_it_where_the_campaign_reads_it(tmp_path, capsys):
    import json

    from retain_utils.__main__ import main

    assert main(["calibration", "-o", str(tmp_path / "none")]) == 2
    assert f"error: no calibration folder {tmp_path / 'none'}" in capsys.readouterr().err
    assert main(["calibration", "-o", str(tmp_path), "--write"]) == 2
    assert "holds no finished calibration run: nothing to choose from" in capsys.readouterr().err
    def add(lr, seed, gain, method="grpo"):  # one point folder per run, as a calibration sweep writes it
        point = tmp_path / "ifeval" / f"{method}{lr:g}-{seed}"
        point.mkdir(parents=True)
        (point / "params.json").write_text(json.dumps({"notebook": "02_rl_vs_sft", "profile": "campaign",
                                                       "params": {"seeds": [seed]}, "key": point.name}))
        (point / "done.json").write_text(json.dumps({"seconds": 60.0}))
        record = _record(lr, seed, gain, method=method)
        (point / "02_rl_vs_sft.results.json").write_text(json.dumps({"runs": [record.to_dict()]}))

    add(2e-5, 100, 12.0)
    add(2e-5, 101, 15.0)
    assert main(["calibration", "-o", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "2e-05" in out and "1 setting(s) over 2 run(s) are committed" in out and "choice:" not in out
    # incomplete: the sweep's other learning rates untried, the chosen one short of a seed
    assert main(["calibration", "-o", str(tmp_path), "--write"]) == 2
    assert ("error: the calibration is incomplete, so its choice is not written: ifeval, grpo: learning rates 5e-06, "
            "1e-05, 4e-05 of the sweep not tried; ifeval, sft: no run; ifeval, grpo: the chosen lr 2e-05 lacks seed "
            "102\n") == capsys.readouterr().err
    assert not (tmp_path / calibration.CHOICE_FILE).exists()
    for lr in (5e-6, 1e-5, 4e-5):
        add(lr, 100, 3.0)
    add(2e-5, 102, 13.0)
    for seed in (100, 101, 102):
        add(1e-4, seed, 11.0, method="sft")
    assert main(["calibration", "-o", str(tmp_path), "--write"]) == 0
    out = capsys.readouterr().out
    assert "The calibration is complete: its choice sets the campaign." in out
    assert out.rstrip().endswith(f"choice: {tmp_path / calibration.CHOICE_FILE}")  # nothing waits
    grpo, sft = calibration.read_choice(tmp_path / calibration.CHOICE_FILE)
    assert (grpo.target, grpo.method, grpo.lr, grpo.steps) == ("ifeval", "grpo", 2e-5, 60)
    assert (sft.method, sft.lr) == ("sft", 1e-4)


def test_a_target_whose_calibration_is_complete_is_written_while_another_still_calibrates(tmp_path, capsys):
    import json

    from retain_utils.__main__ import main

    def add(target, method, lr, seed, gain):
        point = tmp_path / target / f"{method}{lr:g}-{seed}"
        point.mkdir(parents=True)
        (point / "params.json").write_text(json.dumps({"notebook": "02_rl_vs_sft", "profile": "campaign",
                                                       "params": {"seeds": [seed]}, "key": point.name}))
        (point / "done.json").write_text(json.dumps({"seconds": 60.0}))
        record = _record(lr, seed, gain, method=method, target=target)
        (point / "02_rl_vs_sft.results.json").write_text(json.dumps({"runs": [record.to_dict()]}))

    for target in ("mmlu", "ifeval"):
        for seed in (100, 101, 102):
            add(target, "sft", 1e-4, seed, 12.0)
            add(target, "grpo", 2e-5, seed, 11.0)
    for lr in (5e-6, 1e-5, 4e-5):
        add("mmlu", "grpo", lr, 100, 3.0)
    add("ifeval", "grpo", 4e-5, 100, 3.0)  # ifeval's 5e-6 and 1e-5 not tried yet
    settings = calibration.summary(calibration.load(tmp_path))
    choices = calibration.choose(settings)
    assert calibration.complete_targets(settings, choices) == ["mmlu"]
    assert ("Complete on mmlu: its choice may set the campaign's points there. Before its choice may set the "
            "campaign on the other targets, the calibration lacks: ifeval, grpo: learning rates 5e-06, 1e-05 of the "
            "sweep not tried.") in calibration.status_sentence(settings, choices)
    assert main(["calibration", "-o", str(tmp_path), "--write"]) == 0
    assert (f"choice: {tmp_path / calibration.CHOICE_FILE} (targets mmlu; the others' points wait: ifeval, grpo: "
            "learning rates 5e-06, 1e-05 of the sweep not tried)") in capsys.readouterr().out
    written = calibration.read_choice(tmp_path / calibration.CHOICE_FILE)
    assert {c.target for c in written} == {"mmlu"} and calibration.campaign_params(written) == {
        "mmlu": {"steps": 60, "lr_sft": 1e-4, "lr_rl": 2e-5}}
    assert json.loads((tmp_path / calibration.CHOICE_FILE).read_text())["pending"] == [
        "ifeval, grpo: learning rates 5e-06, 1e-05 of the sweep not tried"]
    # a target whose method has no qualifying setting is not complete, whatever its sweep
    flagged = calibration.summary([_record(lr, s, 12.0, flags=["no_signal"], method="sft", target="countdown")
                                   for lr in (1e-4,) for s in (100, 101, 102)]
                                  + [_record(lr, 100, 9.0, target="countdown") for lr in calibration.GRPO_SWEEP])
    assert calibration.complete_targets(flagged, calibration.choose(flagged)) == []


def test_the_campaign_takes_each_targets_rates_and_budget_from_the_choice_or_says_why_not():
    def choice(target, method, lr, steps=40):
        return calibration.Choice(target, method, lr, None if lr is None else steps, True, "why")

    params = calibration.campaign_params([choice("mmlu", "sft", 3e-4), choice("mmlu", "grpo", 2e-5),
                                          choice("ifeval", "grpo", 1e-5), choice("ifeval", "sft", 1e-4)])
    assert params == {"mmlu": {"steps": 40, "lr_sft": 3e-4, "lr_rl": 2e-5},
                      "ifeval": {"steps": 40, "lr_rl": 1e-5, "lr_sft": 1e-4}}
    with pytest.raises(ValueError, match="mmlu, grpo has no qualifying setting \\(why\\)"):
        calibration.campaign_params([choice("mmlu", "sft", 3e-4), choice("mmlu", "grpo", None)])
    with pytest.raises(ValueError, match="mmlu's methods chose different budgets \\(40 and 60 steps\\)"):
        calibration.campaign_params([choice("mmlu", "sft", 3e-4), choice("mmlu", "grpo", 2e-5, steps=60)])
    with pytest.raises(ValueError, match="calibration: countdown has no choice for lr_rl"):
        calibration.campaign_params([choice("countdown", "sft", 1e-4)])


def test_a_scoring_fix_supersedes_its_targets_earlier_points_only(tmp_path, capsys):
    """Countdown points written before the package fixed its scorer (``SUPERSEDED_BEFORE``) leave the choice and
    are named; other targets' earlier points stay."""
    import json

    from retain_utils.__main__ import main

    def point(target, name, version, gain):
        folder = tmp_path / target / name
        folder.mkdir(parents=True)
        (folder / "params.json").write_text(json.dumps({"notebook": "02_rl_vs_sft", "profile": "campaign",
                                                        "params": {}, "key": name}))
        (folder / "done.json").write_text(json.dumps({"seconds": 60.0}))
        (folder / "02_rl_vs_sft.results.json").write_text(json.dumps(
            {"versions": {"retain_utils": version},
             "runs": [_record(2e-5, 100, gain, target=target).to_dict()]}))
    point("countdown", "old", "0.7.0", 4.0)
    point("countdown", "new", "0.9.0", 13.0)
    point("ifeval", "kept", "0.7.0", 17.0)
    kept = calibration.load(tmp_path)
    assert sorted((r.target, r.gain) for r in kept) == [("countdown", 13.0), ("ifeval", 17.0)]
    (old,) = calibration.load(tmp_path, superseded=True)
    assert (old.target, old.gain) == ("countdown", 4.0)
    sentence = calibration.superseded_sentence(tmp_path)
    assert "countdown before package 0.9.0" in sentence and "1 run (countdown, grpo lr 2e-05, seed 100)" in sentence
    assert main(["calibration", "-o", str(tmp_path)]) == 0 and sentence in capsys.readouterr().out
    assert calibration.superseded_sentence(tmp_path / "ifeval") == ""
