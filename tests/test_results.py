"""A sweep's results: the tidy table, the paper table, the gain-drop scatter, CSV, and the results chapter."""

import json
import math
from pathlib import Path

import matplotlib
import pandas as pd
import pytest

from retain_utils.batch import campaign, runner, sweep
from retain_utils.chapters import evidence, experiment, findings, plots
from retain_utils.core import results

matplotlib.use("Agg")

# gain, drop per (method, target) and seed: known means and standard deviations.
GAINS = {("SFT", "countdown"): [10.0, 12.0, 14.0], ("GRPO", "countdown"): [8.0, 9.0, 10.0],
         ("SFT", "ifeval"): [20.0, 22.0, 24.0], ("GRPO", "ifeval"): [15.0, 15.0, 18.0]}
DROPS = {("SFT", "countdown"): [5.0, 6.0, 7.0], ("GRPO", "countdown"): [0.0, -1.0, 1.0],
         ("SFT", "ifeval"): [9.0, 9.0, 9.0], ("GRPO", "ifeval"): [1.0, 2.0, 3.0]}


CAMPAIGN = Path(__file__).parent / "data" / "campaign"  # scripts/make_campaign_fixture.py wrote it


def empty_dir(tmp_path):
    (tmp_path / "no_campaign").mkdir(exist_ok=True)
    return tmp_path / "no_campaign"


def make_point(sweep_dir, params, runs=None, status="done", notebook="02_rl_vs_sft", profile="quick"):
    """A point folder as ``sweep.run_point`` leaves it."""
    key = sweep.point_key(notebook, profile, params)
    folder = sweep_dir / key
    results.write_json_atomic(folder / sweep.PARAMS_FILE,
                              {"notebook": notebook, "profile": profile, "params": params, "key": key})
    if status in ("done", "failed"):
        results.save(folder / f"{notebook}.results.json", notebook=notebook, config={"profile": profile},
                     **({"runs": runs} if runs is not None else {}))
    if status == "done":
        results.write_json_atomic(folder / sweep.DONE_FILE, {"seconds": 2.5, "code": "abc"})
    if status == "failed":
        results.write_json_atomic(folder / sweep.ERROR_FILE, {"error": "NotebookError: out of memory", "seconds": 1.0})
    return key


def run_record(variant, target, seed, gain, drop):
    return {"variant": variant, "method": variant.lower(), "target": target, "seed": seed, "gain": gain, "drop": drop, "kl": 0.01 * seed,
            "accuracy_initial": {"ifeval": 30.0, "mmlu": 60.0, "countdown": 10.0},
            "accuracy_final": {"ifeval": 30.0 + gain, "mmlu": 60.0 - drop, "countdown": 10.0}, "n_eval": 100}


@pytest.fixture
def sweep_dir(tmp_path):
    """A sweep over seed x method x target, one run per point, plus one failed and one unfinished point."""
    root = tmp_path / "sweep"
    for (variant, target), gains in GAINS.items():
        for seed, (gain, drop) in enumerate(zip(gains, DROPS[variant, target])):
            make_point(root, {"seed": seed, "method": variant.lower(), "target": target},
                       [run_record(variant, target, seed, gain, drop)])
    make_point(root, {"seed": 3, "method": "sft", "target": "mmlu"}, status="failed")
    make_point(root, {"seed": 4, "method": "sft", "target": "mmlu"}, status="unfinished")
    return root


def test_collect_is_one_row_per_run_with_the_points_parameters(sweep_dir):
    runs = results.collect(sweep_dir)
    assert len(runs) == 12, "the failed and the unfinished point add no rows"
    assert {"point", "notebook", "profile", "run", "seed", "variant", "method", "target", "gain", "drop", "kl",
            "accuracy_final.mmlu", "accuracy_initial.ifeval", "n_eval"} <= set(runs.columns)
    row = runs[(runs["variant"] == "GRPO") & (runs["target"] == "ifeval") & (runs["seed"] == 2)].iloc[0]
    assert (row["gain"], row["drop"], row["accuracy_final.mmlu"]) == (18.0, 3.0, 57.0)
    assert row["point"] == sweep.point_key("02_rl_vs_sft", "quick", {"seed": 2, "method": "grpo", "target": "ifeval"})


def test_a_point_with_several_runs_and_one_with_none(tmp_path):
    make_point(tmp_path, {"seed": 0}, [run_record("SFT", "mmlu", 0, 1.0, 2.0), run_record("GRPO", "mmlu", 0, 3.0, 4.0)])
    make_point(tmp_path, {"seed": 1})  # a placeholder notebook: finished, no runs
    runs = results.collect(tmp_path)
    assert list(runs["run"]) == [0, 1] and list(runs["method"]) == ["sft", "grpo"]
    assert list(results.points(tmp_path)["status"]) == ["done", "done"]


def test_no_runs_is_an_empty_table_and_a_missing_folder_an_error(tmp_path):
    make_point(tmp_path, {"seed": 0})
    assert results.collect(tmp_path).empty
    with pytest.raises(FileNotFoundError, match="no sweep folder"):
        results.collect(tmp_path / "typo")


def test_a_run_contradicting_its_point_is_an_error(tmp_path):
    make_point(tmp_path, {"seed": 1}, [run_record("SFT", "mmlu", 0, 1.0, 2.0)])
    with pytest.raises(ValueError, match="run 0 has seed=0 but the point ran with seed=1"):
        results.collect(tmp_path)


def test_points_and_failures(sweep_dir):
    table = results.points(sweep_dir)
    assert table["status"].value_counts().to_dict() == {"done": 12, "failed": 1, "unfinished": 1}
    assert list(table.columns[:4]) == ["point", "status", "notebook", "profile"]
    assert list(table.columns[-2:]) == ["seconds", "error"]
    failed = results.failures(sweep_dir)
    assert len(failed) == 1 and failed.loc[0, "error"] == "NotebookError: out of memory"
    assert failed.loc[0, "seed"] == 3


def test_paper_table_means_spreads_and_counts(sweep_dir):
    text, numeric = results.paper_table(results.collect(sweep_dir))
    assert list(text.index) == ["GRPO", "SFT"] and list(text.columns) == ["countdown", "ifeval"]
    assert text.loc["SFT", "countdown"] == "12.0 ± 2.0 / 6.0 ± 1.0 (n=3)"
    assert text.loc["GRPO", "ifeval"] == "16.0 ± 1.7 / 2.0 ± 1.0 (n=3)"
    row = numeric.loc[("GRPO", "countdown")]
    assert (row["gain_mean"], row["gain_std"], row["drop_mean"], row["drop_std"], row["n"]) == (9.0, 1.0, 0.0, 1.0, 3)
    assert math.isclose(numeric.loc[("GRPO", "ifeval"), "gain_std"], math.sqrt(3))
    _, sem = results.paper_table(results.collect(sweep_dir), spread="sem")
    assert math.isclose(sem.loc[("GRPO", "ifeval"), "gain_sem"], 1.0)
    chosen, _ = results.paper_table(results.collect(sweep_dir), variants=["SFT", "GRPO"], targets=["ifeval"])
    assert list(chosen.index) == ["SFT", "GRPO"] and list(chosen.columns) == ["ifeval"]
    with pytest.raises(ValueError, match="no runs with variant 'REINFORCE'; variants in the runs: GRPO, SFT"):
        results.paper_table(results.collect(sweep_dir), variants=["REINFORCE"])


def test_paper_table_with_one_seed_and_missing_cells():
    runs = pd.DataFrame([run_record("SFT", "mmlu", 0, 5.0, 1.0), run_record("GRPO", "ifeval", 0, 2.0, 0.5)])
    text, numeric = results.paper_table(runs)
    assert text.loc["SFT", "mmlu"] == "5.0 / 1.0 (n=1)", "no spread from a single seed"
    assert text.loc["SFT", "ifeval"] == "–"
    assert math.isnan(numeric.loc[("SFT", "mmlu"), "gain_std"])


def test_paper_table_refuses_what_it_cannot_tabulate():
    with pytest.raises(ValueError, match="runs lack gain, drop"):
        results.paper_table(pd.DataFrame({"variant": ["SFT"], "target": ["mmlu"], "seed": [0]}))
    twice = pd.DataFrame([run_record("SFT", "mmlu", 0, 5.0, 1.0), {**run_record("SFT", "mmlu", 0, 7.0, 1.0), "lr": 1}])
    with pytest.raises(ValueError, match="variant SFT, target mmlu has seed 0 more than once"):
        results.paper_table(twice)
    with pytest.raises(ValueError, match="no runs"):
        results.paper_table(pd.DataFrame(columns=list(results.RUN_KEYS)))
    with pytest.raises(ValueError, match="unknown spread 'var'"):
        results.paper_table(twice, spread="var")


def test_rl_vs_sft_verdict_says_where_the_paper_holds(sweep_dir):
    _, numeric = results.paper_table(results.collect(sweep_dir))
    text = results.rl_vs_sft_verdict(numeric)
    assert ("On **countdown**, GRPO (gain +9.0, drop +0.0 pp) drops less than SFT (gain +12.0, drop +6.0 pp), but GRPO "
            "gained less than 10 pp on the target: the paper's claim (less forgetting at a useful gain) is not tested "
            "here.") in text
    assert "On **ifeval**" in text and "spreads over seeds" in text
    runs = pd.DataFrame([run_record("SFT", "mmlu", 0, 15.0, 1.0), run_record("GRPO", "mmlu", 0, 12.0, 3.0),
                         run_record("SFT", "countdown", 0, 5.0, 1.0)])
    text = results.rl_vs_sft_verdict(results.paper_table(runs)[1])
    assert "does **not** forget less than SFT" in text and "unlike the paper" in text and "single seed" in text
    assert "countdown" not in text, "a target without both methods gets no sentence"
    assert results.rl_vs_sft_verdict(results.paper_table(runs)[1], rl="REINFORCE") == ""


def test_gain_drop_scatter_has_title_units_and_one_mean_per_cell(sweep_dir):
    ax = plots.gain_drop_scatter(results.collect(sweep_dir))
    assert ax.get_title() and "percentage points" in ax.get_xlabel() and "percentage points" in ax.get_ylabel()
    labels = ax.get_legend_handles_labels()[1]
    assert labels == ["GRPO on countdown (n=3)", "GRPO on ifeval (n=3)",
                      "SFT on countdown (n=3)", "SFT on ifeval (n=3)"]
    assert len(ax.collections) >= 4, "one faint marker set per cell"
    import matplotlib.pyplot as plt

    plt.close("all")


def test_export_csv_round_trips(sweep_dir, tmp_path):
    paths = results.export_csv(sweep_dir, tmp_path / "csv")
    assert sorted(p.name for p in paths) == ["paper_table.csv", "points.csv", "runs.csv"]
    back = pd.read_csv(tmp_path / "csv" / "runs.csv")
    assert len(back) == 12 and back["gain"].sum() == sum(sum(g) for g in GAINS.values())
    table = pd.read_csv(tmp_path / "csv" / "paper_table.csv", index_col=[0, 1])
    assert table.loc[("SFT", "countdown"), "gain_mean"] == 12.0
    assert not list((tmp_path / "csv").glob("*.tmp"))


def test_records_name_their_runs_logs_inside_the_point_folder():
    """A run's out_dir was relative to the notebook's working folder: read back, it names the point's copy."""
    records = campaign.records(CAMPAIGN, "02_rl_vs_sft")
    point = next((CAMPAIGN / "02_rl_vs_sft").iterdir())
    assert records and all(r.config["out_dir"] == str(point / "runs" / Path(r.config["out_dir"]).name)
                           for r in records)


@pytest.mark.slow
def test_results_chapter_renders_a_sweeps_tables(sweep_dir, tmp_path):
    done = runner.run_notebook("05_results", "smoke", {"sweep_dir": str(sweep_dir), "campaign_dir": str(empty_dir(tmp_path))},
                               output_dir=tmp_path / "out", progress=False)
    record = json.loads(done.results.read_text())
    assert record["notebook"] == "05_results" and record["config"]["profile"] == "smoke"
    assert record["config"]["sweep_dir"] == str(sweep_dir.resolve())
    assert (record["metrics"]["n_points"], record["metrics"]["n_failed"], record["metrics"]["n_runs"]) == (14, 1, 12)
    cell = {(r["variant"], r["target"]): r for r in record["metrics"]["table"]}
    assert cell["SFT", "countdown"]["gain_mean"] == 12.0 and cell["GRPO", "countdown"]["drop_mean"] == 0.0
    executed = done.executed.read_text()
    assert "12.0 ± 2.0 / 6.0 ± 1.0 (n=3)" in executed and "image/png" in executed
    assert (sweep_dir / "paper_table.csv").exists()


@pytest.mark.slow
def test_results_chapter_says_plainly_when_there_are_no_runs(tmp_path):
    make_point(tmp_path / "sweep", {"seed": 0})  # what the placeholder notebook 02 leaves: finished, no runs
    done = runner.run_notebook("05_results", "smoke", {"sweep_dir": str(tmp_path / "sweep"),
                                                       "campaign_dir": str(empty_dir(tmp_path))},
                               output_dir=tmp_path / "out", progress=False)
    executed = done.executed.read_text()
    assert "No campaign point has been committed yet (0 of 30)" in executed
    assert "No runs yet: the 1 finished point(s) of this sweep wrote no per-run results" in executed
    assert "No runs yet: nothing to plot." in executed
    assert json.loads(done.results.read_text())["metrics"]["n_runs"] == 0


@pytest.mark.slow
def test_results_chapter_renders_a_committed_campaign_from_its_files_alone(tmp_path):
    """The fixture campaign (smoke-sized: one point of each notebook, seed 0) through the chapter, no sweep and no
    training: its Table 1, the matched-gain differences, the ablations and the provenance paragraph come out as the
    package computes them from the files."""
    done = runner.run_notebook("05_results", "smoke", {"campaign_dir": str(CAMPAIGN), "grid": {}},
                               output_dir=tmp_path / "out", progress=False)
    executed = done.executed.read_text()
    records = campaign.records(CAMPAIGN, "02_rl_vs_sft")
    assert {r.target for r in records} == {"mmlu"} and {r.variant for r in records} == {"SFT", "Self-SFT", "GRPO"}
    table_runs = evidence.table_1_runs(records, campaign.records(CAMPAIGN, "03_ablations"))  # REINFORCE from 03
    text, numeric = results.table_1(table_runs, variants=evidence.TABLE_1)
    assert numeric.loc[("SFT", "mmlu"), "n"] == 1 and list(text.index) == ["SFT", "Self-SFT", "REINFORCE", "GRPO"]
    assert text.loc["SFT", "mmlu"] in executed and text.loc["REINFORCE", "mmlu"] in executed
    frame = findings.campaign_forgetting(table_runs, [("SFT", "GRPO"), ("Self-SFT", "GRPO"), ("REINFORCE", "GRPO")])
    assert set(frame["comparison"]) == {"SFT - GRPO", "Self-SFT - GRPO", "REINFORCE - GRPO"}
    sentence = findings.pooled_sentence(frame, "SFT", "GRPO", "Does SFT forget more than GRPO?")
    assert sentence.split("** ", 1)[1][:60] in executed
    ablations = findings.campaign_forgetting(campaign.records(CAMPAIGN, "03_ablations"), [("GRPO, β=0", "GRPO")])
    assert findings.pooled_sentence(ablations, "GRPO, β=0", "GRPO", "Q")[5:60] in executed
    assert findings.pooled_retention_sentence(findings.campaign_retention(records, [("SFT", "GRPO")]), "SFT",
                                              "GRPO")[:60] in executed
    assert "No run's evaluation log was found" in executed, "the fixture keeps no run logs"
    assert "3 campaign points are committed, of the 30 the campaign plans" in executed
    assert campaign.describe(CAMPAIGN)[:80] in executed and "CPU-hours" in executed
    assert campaign.describe_repeats(CAMPAIGN) in executed  # the fixture's notebooks differ in evaluation sizes
    summary_04 = experiment.summary(campaign.records(CAMPAIGN, "04_iterative_sft"))
    assert findings.cost_sentence(summary_04, "Iterative-SFT, every 1 step")[:90] in executed
    everything = records + campaign.records(CAMPAIGN, "03_ablations") + campaign.records(CAMPAIGN, "04_iterative_sft")
    assert evidence.split_overview(everything)[1][:90] in executed
    assert "Flagged runs" in executed and "Did RL collapse?" in executed
    assert "The smoke profile runs no sweep of its own" in executed
    assert executed.count("image/png") >= 2, "the trajectories and drop against KL"
    for heading in ("Table 1 on the embedded model", "Retention: what the initial answers keep",
                    "Answers cut off by the token budget", "Ablations: the KL term", "Iterative-SFT: closing the gap"):
        assert heading in executed


def test_a_runs_accepted_rollouts_are_packed_in_its_record_and_read_back():
    import json

    from retain_utils.core.records import RunRecord

    rollouts = [{"example": i, "text": f"answer {i} " * 20, "step": i // 4, "completion_ids": list(range(60))}
                for i in range(40)]
    record = RunRecord(variant="GRPO", method="grpo", target="mmlu", seed=0, gain=1.0, drop=0.5, gain_interval=None,
                       drop_interval=None, kl=0.1, accuracy_initial={}, accuracy_final={}, n_eval={}, trajectory=[],
                       status="finished", seconds=1.0, train_seconds=1.0, generated_tokens=10, config={},
                       correct_rollouts=rollouts)
    stored = record.to_dict()
    assert isinstance(stored["correct_rollouts"], str)  # one string, not thousands of indented JSON lines
    assert len(stored["correct_rollouts"]) < len(json.dumps(rollouts)) / 5
    assert RunRecord.from_dict(json.loads(json.dumps(stored))) == record
    assert RunRecord.from_dict({**stored, "correct_rollouts": rollouts}) == record, "a list, as older files hold"
    with pytest.raises(ValueError, match="packed correct_rollouts are damaged"):
        RunRecord.from_dict({**stored, "correct_rollouts": "not base64!"})
