"""Sweeps: grid parsing and validation before anything runs, resume, failures, concurrent sweeps, Ray."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from retain_utils.core import results
from retain_utils.batch import sweep
from retain_utils.__main__ import main

FIXTURES = Path(__file__).parent / "data" / "notebooks"
SWEEP_FIXTURES = FIXTURES / "sweep"  # kept apart: test_runner lists the notebooks in FIXTURES


def executions(counter_dir: Path) -> list[str]:
    """One line per notebook execution ("method target seed pid"), written by the seeded fixture."""
    log = counter_dir / "executions.log"
    return sorted(" ".join(line.split()[:3]) for line in log.read_text().splitlines()) if log.exists() else []


def run(tmp_path, grid, **kw):
    counter = tmp_path / "counter"
    counter.mkdir(exist_ok=True)
    grid = {**grid, "counter_dir": [str(counter)]}
    kw = {"profile": "smoke", "sweep_dir": tmp_path / "sweep", "notebook_dir": SWEEP_FIXTURES, "progress": False, **kw}
    return sweep.run_sweep("seeded", grid, **kw)


def test_parse_grid():
    grid = sweep.parse_grid(["seed=0,1,2", "method=sft,grpo", "lr=1e-4", 'x=[1,2],[3,4]', 'name="a,b",c'])
    assert grid == {"seed": [0, 1, 2], "method": ["sft", "grpo"], "lr": [1e-4], "x": [[1, 2], [3, 4]],
                    "name": ["a,b", "c"]}
    for items, message in [
        (["seed"], "grid item 'seed' must look like name=value1,value2"),
        (["seed=0,,1"], "grid item 'seed=0,,1' has an empty value"),
        (["seed="], "has an empty value"),
        (["seed=0", "seed=1"], "grid names 'seed' twice"),
    ]:
        with pytest.raises(ValueError, match=message):
            sweep.parse_grid(items)


def test_command_line_reads_back_as_the_same_grid():
    import shlex

    grid = {"seed": [0, 1], "method": ["sft", "self_sft"], "lr": [1e-4], "tag": ["a,b", "1", "it's"], "x": [[1, 2]]}
    args = shlex.split(sweep.command_line("02_rl_vs_sft", grid, "full"))
    assert args[:7] == ["python", "-m", "retain_utils", "sweep", "02_rl_vs_sft", "--profile", "full"]
    assert sweep.parse_grid(args[args.index("--grid") + 1:]) == grid


def test_point_key_is_stable_and_names_everything_that_matters():
    key = sweep.point_key("seeded", "smoke", {"seed": 0, "method": "sft"})
    assert key == "bf4a7f7c405c", "a changed hash would orphan every finished point of existing sweeps"
    assert sweep.point_key("seeded", "smoke", {"method": "sft", "seed": 0}) == key
    others = {sweep.point_key("seeded", "quick", {"seed": 0, "method": "sft"}),
              sweep.point_key("ok", "smoke", {"seed": 0, "method": "sft"}),
              sweep.point_key("seeded", "smoke", {"seed": 1, "method": "sft"}),
              sweep.point_key("seeded", "smoke", {"seed": 0.0, "method": "sft"})}
    assert key not in others and len(others) == 4


@pytest.mark.parametrize(
    "grid, kwargs, message",
    [
        ({}, {}, "empty grid: give at least one parameter"),
        ({"steps": [1]}, {}, "seeded.ipynb declares no parameter 'steps'; its parameters: profile, results_path, seed"),
        ({"seed": ["abc"]}, {}, "grid value 'abc' for 'seed' does not parse as int (its default is 0)"),
        ({"seed": [1.5]}, {}, "grid value 1.5 for 'seed' does not parse as int"),
        ({"lr": ["fast"]}, {}, "grid value 'fast' for 'lr' does not parse as float"),
        ({"method": [3]}, {}, "grid value 3 for 'method' does not parse as str"),
        ({"seed": [0, 0]}, {}, "grid parameter 'seed' lists 0 twice"),
        ({"seed": []}, {}, "grid parameter 'seed' needs a non-empty list of values"),
        ({"profile": ["quick"]}, {}, "'profile' cannot be in the grid"),
        ({"seed": [0]}, {"profile": "huge"}, "unknown profile 'huge'; valid profiles: smoke, quick, full"),
        ({"seed": [0]}, {"backend": "dask"}, "unknown backend 'dask'; valid backends: local, ray"),
        ({"seed": [0]}, {"workers": 0}, "workers must be a positive integer"),
        ({"seed": [0]}, {"gpus_per_point": 1}, "gpus_per_point needs --backend ray"),
    ],
)
def test_bad_input_fails_before_anything_runs(tmp_path, grid, kwargs, message):
    kwargs = {"profile": "smoke", "sweep_dir": tmp_path / "sweep", "notebook_dir": SWEEP_FIXTURES, **kwargs}
    with pytest.raises(ValueError) as e:
        sweep.run_sweep("seeded", grid, progress=False, **kwargs)
    assert message in str(e.value)
    assert not any(tmp_path.iterdir()), "nothing may be run or written on bad input"


def test_type_check_uses_the_profile_value_when_the_default_is_none():
    from retain_utils.chapters import profiles

    profiles.PROFILES["seeded"] = {p: {"n_steps": 10} for p in profiles.PROFILE_NAMES}
    nb = SWEEP_FIXTURES / "seeded.ipynb"
    try:
        with pytest.MonkeyPatch.context() as mp:
            declared = sweep.runner.declared_parameters(nb)
            declared["n_steps"] = {"name": "n_steps", "default": "None"}
            mp.setattr(sweep.runner, "declared_parameters", lambda path: declared)
            with pytest.raises(ValueError, match=r"'n_steps' does not parse as int \(its smoke profile value is 10\)"):
                sweep.check_grid(nb, "smoke", {"n_steps": ["many"]})
            sweep.check_grid(nb, "smoke", {"n_steps": [5, 20]})
    finally:
        del profiles.PROFILES["seeded"]


def test_runs_every_point_records_failures_and_the_others_go_on(tmp_path, capsys):
    summary = run(tmp_path, {"seed": [0, 1], "method": ["sft", "broken"]}, workers=2, progress=True)
    assert (len(summary.done), len(summary.failed), summary.points) == (2, 2, 4)
    assert "done=2, failed=2, remaining=0" in capsys.readouterr().err, "progress shows done / failed / remaining"
    table = results.points(summary.sweep_dir)
    assert sorted(table["status"]) == ["done", "done", "failed", "failed"]
    failed = results.failures(summary.sweep_dir)
    assert set(failed["point"]) == set(summary.failed)
    assert all("RuntimeError: planted failure for seed" in e for e in failed["error"])
    for key in summary.failed:  # the executed copy with the traceback stays in the point's folder
        assert "planted failure" in (summary.sweep_dir / key / "seeded.ipynb").read_text()
        assert not (summary.sweep_dir / key / sweep.DONE_FILE).exists()
    params = json.loads((summary.sweep_dir / summary.done[0] / sweep.PARAMS_FILE).read_text())
    assert params["notebook"] == "seeded" and params["profile"] == "smoke" and params["key"] == summary.done[0]
    assert not list(summary.sweep_dir.rglob("*.tmp")), "no temporary files left behind"

    # The next run retries the failed points only.
    again = run(tmp_path, {"seed": [0, 1], "method": ["sft", "broken"]})
    assert sorted(again.skipped) == sorted(summary.done) and again.failed.keys() == summary.failed.keys()
    assert executions(tmp_path / "counter") == sorted(
        ["sft countdown 0", "sft countdown 1"] + 2 * ["broken countdown 0", "broken countdown 1"])


def test_resume_skips_finished_points_and_reruns_the_rest(tmp_path):
    first = run(tmp_path, {"seed": [0]})  # a sweep "killed" after its first point...
    key0 = first.done[0]
    stamp = (first.sweep_dir / key0 / sweep.DONE_FILE).stat().st_mtime_ns
    # ...and one killed mid-point: its folder has a half-written results file but no done marker.
    half = sweep.point_key("seeded", "smoke", {"seed": 1, "counter_dir": str(tmp_path / "counter")})
    (first.sweep_dir / half).mkdir()
    results.save(first.sweep_dir / half / "seeded.results.json", runs=[{"stale": True}])

    again = run(tmp_path, {"seed": [0, 1, 2]})
    assert again.skipped == [key0] and len(again.done) == 2 and not again.failed
    assert (first.sweep_dir / key0 / sweep.DONE_FILE).stat().st_mtime_ns == stamp, "finished point untouched"
    assert executions(tmp_path / "counter") == ["sft countdown 0", "sft countdown 1", "sft countdown 2"]
    runs = results.collect(again.sweep_dir)
    assert sorted(runs["seed"]) == [0, 1, 2] and "stale" not in runs.columns, "the half run's results are gone"

    third = run(tmp_path, {"seed": [0, 1, 2]})
    assert len(third.skipped) == 3 and not third.done, "nothing runs twice"


def test_changed_notebook_code_is_kept_unless_asked_to_rerun(tmp_path, capsys):
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    shutil.copy(SWEEP_FIXTURES / "seeded.ipynb", notebooks)
    run(tmp_path, {"seed": [0]}, notebook_dir=notebooks)
    nb = nbformat.read(notebooks / "seeded.ipynb", as_version=4)
    nb.cells[0].source += "\n\nProse edits are not a new version."
    nbformat.write(nb, notebooks / "seeded.ipynb")
    assert len(run(tmp_path, {"seed": [0]}, notebook_dir=notebooks).skipped) == 1
    nb.cells[-1].source += "\n# a code edit"
    nbformat.write(nb, notebooks / "seeded.ipynb")
    capsys.readouterr()
    assert len(run(tmp_path, {"seed": [0]}, notebook_dir=notebooks).skipped) == 1
    assert "1 finished point(s) ran other code of seeded; kept" in capsys.readouterr().out
    assert len(run(tmp_path, {"seed": [0]}, notebook_dir=notebooks, rerun_changed=True).done) == 1
    assert len(executions(tmp_path / "counter")) == 2


def test_two_sweeps_on_one_folder_share_the_work_without_running_a_point_twice(tmp_path):
    counter = tmp_path / "counter"
    counter.mkdir()
    cmd = [sys.executable, "-m", "retain_utils", "sweep", str(SWEEP_FIXTURES / "seeded.ipynb"), "--profile", "smoke",
           "-o", str(tmp_path / "sweep"), "--grid", "seed=0,1,2,3,4,5", "sleep=0.3", f"counter_dir={counter}"]
    env = {**os.environ, "TQDM_DISABLE": "1"}
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert executions(counter) == [f"sft countdown {s}" for s in range(6)], "every point ran exactly once"
    table = results.points(tmp_path / "sweep")
    assert list(table["status"]) == ["done"] * 6
    runs = results.collect(tmp_path / "sweep")
    assert sorted(runs["seed"]) == list(range(6)) and sorted(runs["gain"]) == [20.0 + s for s in range(6)]
    ran = [int(out.split(" ran,")[0].split()[-1]) for out, _ in outs]
    assert sum(ran) == 6 and min(ran) > 0, f"both sweeps did part of the work: {ran}"


def test_command_line_runs_a_sweep_and_writes_csv(tmp_path, capsys):
    code = main(["sweep", str(SWEEP_FIXTURES / "seeded.ipynb"), "--profile", "smoke", "-o", str(tmp_path / "s"),
                 "--grid", "seed=0", "method=grpo"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "1 point in" in out and "1 ran" in out
    assert {p.name for p in (tmp_path / "s").glob("*.csv")} == {"runs.csv", "points.csv", "paper_table.csv"}
    assert main(["sweep", str(SWEEP_FIXTURES / "seeded.ipynb"), "--grid", "method=broken", "-o",
                 str(tmp_path / "f"), "--profile", "smoke"]) == 1, "a failed point makes the exit status 1"


def test_command_line_reports_bad_grids_with_exit_code_2(tmp_path, capsys):
    nb = str(SWEEP_FIXTURES / "seeded.ipynb")
    for grid, message in [([], "empty grid"), (["steps=1,2"], "declares no parameter 'steps'"),
                          (["seed=a"], "grid value 'a' for 'seed' does not parse as int")]:
        assert main(["sweep", nb, "-o", str(tmp_path / "s"), "--grid", *grid]) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


def test_ray_backend_runs_the_same_points(tmp_path):
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        summary = run(tmp_path, {"seed": [1], "method": ["grpo", "broken"]}, backend="ray")
    finally:
        ray.shutdown()
    assert (len(summary.done), len(summary.failed)) == (1, 1)
    lock = json.loads((summary.sweep_dir / summary.done[0] / sweep.LOCK_FILE).read_text())
    assert lock["pid"] != os.getpid(), "the point ran in a Ray worker, not in this process"
    assert "RuntimeError: planted failure for seed 1" in list(summary.failed.values())[0]
    assert list(results.collect(summary.sweep_dir)["gain"]) == [16.0]
    # Same points, same folders as the local backend: a local rerun finds them finished.
    assert len(run(tmp_path, {"seed": [1], "method": ["grpo"]}).skipped) == 1


def test_ray_missing_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(ValueError, match=r"--backend ray needs the ray package: pip install 'ray==2.60.0'"):
        run(tmp_path, {"seed": [0]}, backend="ray")
