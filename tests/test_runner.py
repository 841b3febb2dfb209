"""The notebook runner: validation before any kernel starts, parameter injection, results files, failures."""

import json
from pathlib import Path

import pytest

from retain_utils.chapters import profiles
from retain_utils.core import results
from retain_utils.batch import runner
from retain_utils.__main__ import main

FIXTURES = Path(__file__).parent / "data" / "notebooks"


def run(name, tmp_path, profile="smoke", **params):
    return runner.run_notebook(name, profile, params, output_dir=tmp_path, notebook_dir=FIXTURES, progress=False)


def test_injects_profile_and_parameters_and_collects_results(tmp_path):
    done = run("ok", tmp_path, n=7)
    record = json.loads(done.results.read_text())
    assert record["config"] == {"profile": "smoke", "n": 7}
    assert record["metrics"] == {"square": 49}
    assert record["versions"]["torch"] != "not installed"
    assert done.executed == tmp_path.resolve() / "ok.ipynb"
    assert "square is 49" in done.executed.read_text()
    import nbformat

    injected = [c for c in nbformat.read(done.executed, as_version=4).cells
                if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1 and "remove-cell" in injected[0].metadata["tags"], "the book hides papermill's cell"


def test_every_results_file_records_the_notebooks_time_and_peak_memory(tmp_path):
    done = run("ok", tmp_path, n=3)
    record = json.loads(done.results.read_text())
    assert 0 < record["timings"]["notebook_seconds"] <= done.seconds
    # a kernel that imported retain_utils (torch) holds well over 20 MiB and far below 4 GiB: bytes, not KiB
    assert 20 * 2**20 < record["machine"]["peak_rss_bytes"] < 4 * 2**30
    assert {"cpu_flags", "dtype", "torch"} <= set(record["machine"]), "beside the CPU flags and dtype"
    assert record["metrics"] == {"square": 9}, "the notebook's own sections stay"
    import nbformat

    last = nbformat.read(done.executed, as_version=4).cells[-1]
    assert "save_footprint" in last.source and "remove-cell" in last.metadata["tags"], "hidden in the book"
    assert "save_footprint" not in (runner.find_notebook("ok", FIXTURES)).read_text(), "the source stays as it is"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"name": "ok", "profile": "huge"}, "unknown profile 'huge'; valid profiles: smoke, quick, full"),
        ({"name": "nope"}, "unknown notebook 'nope'; valid notebooks: fails, ok, silent"),
        ({"name": "ok", "params": {"steps": 5}}, "ok.ipynb declares no parameter 'steps'; its parameters: profile, results_path, n"),
    ],
)
def test_bad_input_fails_before_a_kernel_starts(tmp_path, kwargs, message):
    kwargs = {"profile": "smoke", **kwargs}
    with pytest.raises(ValueError) as e:
        runner.run_notebook(**kwargs, output_dir=tmp_path, notebook_dir=FIXTURES, progress=False)
    assert message in str(e.value)
    assert not any(tmp_path.iterdir()), "nothing may be executed or written on bad input"


def test_a_failing_cell_names_notebook_and_cell_and_keeps_the_copy(tmp_path):
    with pytest.raises(runner.NotebookError) as e:
        run("fails", tmp_path)
    text = str(e.value)
    assert "notebook fails failed in cell" in text
    assert "ZeroDivisionError: planted failure" in text
    assert "planted failure" in (tmp_path / "fails.ipynb").read_text()
    # What the notebook saved before the failure is still there.
    assert json.loads((tmp_path / "fails.results.json").read_text())["config"] == {"n": 3}


def test_a_notebook_that_writes_no_results_is_an_error(tmp_path):
    with pytest.raises(runner.NotebookError, match="wrote no results file"):
        run("silent", tmp_path)


def test_a_rerun_into_the_same_folder_writes_only_its_own_results(tmp_path):
    """The results file describes one execution: runs an earlier execution appended are not carried over (a
    resumed notebook reads its finished runs back from their own folders), and a stale file does not hide a
    notebook that wrote none."""
    stale = {"config": {"n": 1}, "runs": [{"variant": "SFT", "seed": 0}], "metrics": {"square": 1}}
    (tmp_path / "ok.results.json").write_text(json.dumps(stale))
    record = json.loads(run("ok", tmp_path, n=4).results.read_text())
    assert record["metrics"] == {"square": 16} and "runs" not in record
    (tmp_path / "silent.results.json").write_text(json.dumps(stale))
    with pytest.raises(runner.NotebookError, match="wrote no results file"):
        run("silent", tmp_path)


def test_run_all_keeps_going_past_a_failure(tmp_path):
    runs, failures = runner.run_all("smoke", tmp_path, notebook_dir=FIXTURES, names=["fails", "ok"])
    assert [r.notebook for r in runs] == ["ok"]
    assert set(failures) == {"fails"}
    assert json.loads((tmp_path / "ok.results.json").read_text())["metrics"]["square"] == 9


def test_command_line_reports_bad_input_with_exit_code_2(capsys):
    assert main(["run", "no_such_notebook", "--profile", "smoke"]) == 2
    assert "unknown notebook 'no_such_notebook'; valid notebooks: " in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["run", "01_toy_kl", "--profile", "huge"])
    assert e.value.code == 2


def test_parse_value():
    assert runner.parse_value("3") == 3
    assert runner.parse_value("0.5") == 0.5
    assert runner.parse_value("[1, 2]") == [1, 2]
    assert runner.parse_value("true") is True
    assert runner.parse_value("grpo") == "grpo"


def test_profiles_fill_only_what_is_left_at_none():
    profiles.PROFILES["_test"] = {"smoke": {"a": 1, "b": 2}, "quick": {"a": 10, "b": 20}, "full": {"a": 100, "b": 200}}
    try:
        cfg = profiles.apply("_test", "quick", a=None, b=5)
        assert (cfg.profile, cfg.a, cfg.b) == ("quick", 10, 5)
        with pytest.raises(ValueError, match="c not profile-controlled; profile-controlled parameters: a, b"):
            profiles.apply("_test", "quick", c=1)
        with pytest.raises(ValueError, match="unknown profile"):
            profiles.apply("_test", "medium")
    finally:
        del profiles.PROFILES["_test"]


def test_every_profile_of_a_notebook_names_the_same_parameters():
    for notebook, table in profiles.PROFILES.items():
        assert set(table) == set(profiles.PROFILE_NAMES), notebook
        keys = {name: set(values) for name, values in table.items()}
        assert len({frozenset(k) for k in keys.values()}) == 1, f"{notebook}: {keys}"


def test_results_save_merges_and_writes_atomically(tmp_path):
    path = tmp_path / "r.json"
    results.save(path, config={"a": 1})
    results.save(path, metrics={"m": 0.5})
    record = results.load(path)
    assert record["config"] == {"a": 1} and record["metrics"] == {"m": 0.5}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"], "no temporary files left behind"
    with pytest.raises(TypeError, match="cannot write"):
        results.save(path, bad=object.__new__(type("Opaque", (), {"__slots__": ()})))
    assert results.load(path)["metrics"] == {"m": 0.5}, "a failed write leaves the old file intact"


def test_held_out_sizes_of_every_profile_fit_the_question_banks():
    """A profile may not ask a task for more held-out questions than its bank holds (mmlu's shipped bank: 315) at
    the notebook's default target (mmlu): n_eval_target for the target, n_eval for the others."""
    from retain_utils.core.tasks import TASK_NAMES, get_task

    banks = {name: get_task(name) for name in TASK_NAMES if hasattr(get_task(name), "n_questions")}
    assert "mmlu" in banks
    for notebook, table in profiles.PROFILES.items():
        for profile, values in table.items():
            for name, task in banks.items():
                key = "n_eval_target" if name == "mmlu" and values.get("n_eval_target") is not None else "n_eval"
                if values.get(key) is not None and profile != "colab":  # colab: the hub's MMLU
                    assert values[key] <= task.n_questions("eval"), f"{notebook} {profile} {key}: {name}"
