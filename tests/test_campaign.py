"""The seeded campaign: its plan, provenance stamps, the fp32 pin, refusals (dirty tree, mixed versions), status,
and an end-to-end run (committed point by point) on a tiny fixture notebook."""

import json
import os
import re
import subprocess
from pathlib import Path

import nbformat
import pytest
import torch

from retain_utils import __version__
from retain_utils.batch import campaign, sweep
from retain_utils.core import baseline_cache, layout, models, provenance
from retain_utils.chapters import profiles
from retain_utils.__main__ import main

SWEEP_FIXTURES = Path(__file__).parent / "data" / "notebooks" / "sweep"


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout


def make_repo(path: Path) -> Path:
    """A git repository with one committed file (and ``.lock`` ignored, as in this project)."""
    path.mkdir(parents=True)
    git(path, "init", "-q")
    git(path, "config", "user.email", "test@example.com")
    git(path, "config", "user.name", "Test")
    git(path, "config", "commit.gpgsign", "false")
    (path / "code.py").write_text("x = 1\n")
    (path / ".gitignore").write_text(".lock\n")
    git(path, "add", ".")
    git(path, "commit", "-q", "-m", "initial")
    return path


@pytest.fixture(autouse=True)
def no_git_above(tmp_path, monkeypatch):
    """git never looks above tmp_path for a repository, so a folder there that is not one really is not."""
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))


def fake_point(campaign_dir: Path, notebook: str, stamp: dict, seconds: float = 600.0, index: int = 0) -> Path:
    """A finished point folder as ``layout.finished_record`` and ``campaign.stamps`` read it: the ``index``-th
    planned point of ``notebook``."""
    planned = campaign.plan(campaign_dir, choice_file=campaign_dir / "no-choice.json")  # every target's points
    folder, point = [(f, p) for f, p in planned if p.notebook == notebook][index]
    folder = folder / point.key
    folder.mkdir(parents=True)
    (folder / layout.PARAMS_FILE).write_text(json.dumps(
        {"notebook": notebook, "profile": point.profile, "params": point.params, "key": point.key}))
    (folder / layout.DONE_FILE).write_text(json.dumps({"seconds": seconds, "code": "abc", "stamp": stamp}))
    layout.results_file(folder, notebook).write_text(json.dumps({"notebook": notebook}))
    assert layout.finished_record(folder, notebook) is not None
    return folder


def current(notebook: str) -> dict:
    """The stamp fields ``check`` compares, as this code would write them."""
    return {"version": __version__, "profile": campaign.profile_values(notebook)}


# ----- provenance ---------------------------------------------------------------------------------------------

def test_source_hash_is_twelve_hex_digits_and_stable():
    digest = provenance.source_hash()
    assert re.fullmatch(r"[0-9a-f]{12}", digest)
    assert provenance.source_hash.__wrapped__() == digest  # recomputed from the files, not only the cache


def test_git_state_lists_changed_and_untracked_files_except_excluded_folders(tmp_path):
    repo = make_repo(tmp_path / "repo")
    state = provenance.git_state(repo)
    assert state["dirty"] == [] and state["commit"] == git(repo, "rev-parse", "HEAD").strip()
    (repo / "code.py").write_text("x = 2\n")
    (repo / "new.py").write_text("y = 1\n")
    (repo / "results" / "campaign").mkdir(parents=True)
    (repo / "results" / "campaign" / "point.json").write_text("{}")
    assert sorted(provenance.git_state(repo)["dirty"]) == ["code.py", "new.py", "results/campaign/point.json"]
    assert sorted(provenance.git_state(repo, exclude=("results",))["dirty"]) == ["code.py", "new.py"]
    (tmp_path / "plain").mkdir()
    assert provenance.git_state(tmp_path / "plain") == {"commit": None, "dirty": []}


def test_cpu_flags_come_from_the_flags_line_of_cpuinfo(monkeypatch):
    info = "processor\t: 0\nmodel name\t: AMD EPYC (flags of its own)\nflags\t\t: fpu avx2 fma avx512f\nbugs\t: avx512_bf16\n"
    assert models.flags_of(info) == {"fpu", "avx2", "fma", "avx512f"}, "only the flags line, not its label"
    assert models.flags_of("") == set()
    monkeypatch.setattr(models, "cpuinfo", lambda: info)
    assert provenance.cpu_flags() == ["avx2", "avx512f"], "the precision-relevant ones, in CPU_FLAGS' order"


def test_stamp_names_code_commit_and_machine(tmp_path, monkeypatch):
    monkeypatch.setenv(models.DTYPE_ENV, "fp32")
    repo = make_repo(tmp_path / "repo")
    stamp = provenance.stamp(repo)
    assert {"version", "source", "commit", "dirty", "cpu_flags", "dtype"} <= set(stamp)
    assert stamp["version"] == __version__ and stamp["source"] == provenance.source_hash()
    assert stamp["commit"] == git(repo, "rev-parse", "HEAD").strip() and stamp["dirty"] == []
    assert stamp["dtype"] == "float32" and set(stamp["cpu_flags"]) <= set(provenance.CPU_FLAGS)
    json.dumps(stamp)  # goes into done.json as it is


# ----- the dtype pin --------------------------------------------------------------------------------------------

def test_dtype_env_wins_over_the_cpu(monkeypatch):
    monkeypatch.setenv(models.DTYPE_ENV, "")  # recorded: undone after the test
    assert models.default_dtype("cpu") == torch.float32
    monkeypatch.setenv(models.DTYPE_ENV, "bf16")
    assert models.default_dtype("cpu") == torch.bfloat16
    monkeypatch.setenv(models.DTYPE_ENV, "fp64")
    with pytest.raises(ValueError, match=r"^\$RETAIN_UTILS_DTYPE: unknown dtype 'fp64'; valid: bf16, bfloat16, "
                                         r"fp16, float16, fp32, float32$"):
        models.default_dtype("cpu")


# ----- the plan ------------------------------------------------------------------------------------------------

def test_plan_runs_seed_by_seed_chapter_2s_targets_first(tmp_path):
    planned = campaign.plan(tmp_path, choice_file=tmp_path / "none.json")
    assert len(planned) == 30  # 6 points per seed (calibration.CAMPAIGN_PLAN), 5 seeds
    notebooks = [p.notebook for _, p in planned]
    assert notebooks[:6] == ["02_rl_vs_sft"] * 3 + ["03_ablations"] + ["04_iterative_sft"] * 2
    assert [p.params["target"] for _, p in planned[:6]] == ["ifeval", "mmlu", "countdown", "mmlu", "ifeval",
                                                           "countdown"]
    seeds = [p.params["seeds"] for _, p in planned]
    assert seeds[:6] == [[0]] * 6 and seeds == sorted(seeds) and seeds[-1] == [4]
    assert len({p.key for _, p in planned}) == 30
    assert all(folder == tmp_path / p.notebook and p.profile == "campaign" for folder, p in planned)
    assert notebooks.count("02_rl_vs_sft") == 15 and notebooks.count("03_ablations") == 5


def test_a_written_calibration_choice_sets_each_targets_learning_rates_and_budget(tmp_path):
    from retain_utils.chapters import calibration

    choices = [calibration.Choice(t, m, lr, 40, True, "chosen") for t in ("mmlu", "ifeval", "countdown")
               for m, lr in (("sft", 3e-4 if t == "mmlu" else 1e-4), ("grpo", 2e-5))]
    choice = tmp_path / "choice.json"
    calibration.write_choice(choice, [], choices)
    planned = campaign.plan(tmp_path / "campaign", choice_file=choice)
    assert len(planned) == 30  # one grid per target, the same points as without a choice
    mmlu = [p.params for _, p in planned if p.params["target"] == "mmlu"]
    assert all((p["lr_sft"], p["lr_rl"], p["steps"]) == (3e-4, 2e-5, 40) for p in mmlu)
    assert {p.params["lr_sft"] for _, p in planned if p.params["target"] == "ifeval"} == {1e-4}
    assert "lr_sft" not in campaign.plan(tmp_path / "campaign", choice_file=tmp_path / "none.json")[0][1].params
    assert campaign.waiting(choice) == [] and campaign.waiting(tmp_path / "none.json") == []
    # countdown still calibrating: its points wait, the others' are planned as before
    calibration.write_choice(choice, [], [c for c in choices if c.target != "countdown"])
    partial = campaign.plan(tmp_path / "campaign", choice_file=choice)
    assert {p.params["target"] for _, p in partial} == {"ifeval", "mmlu"}
    assert [p.key for _, p in partial] == [p.key for _, p in planned if p.params["target"] != "countdown"]
    assert len(partial) == 20 and campaign.total_points() == 30 and campaign.total_points("04_iterative_sft") == 10
    assert campaign.waiting(choice) == ["countdown"]
    (tmp_path / "campaign").mkdir()
    text = campaign.status(tmp_path / "campaign", calibration_dir=tmp_path)
    assert "02_rl_vs_sft: 0/15 done" in text and "03_ablations: 0/5 done" in text and "04_iterative_sft: 0/10" in text
    assert "waiting for the calibration's choice: the points of countdown (planned once" in text


def test_notebooks_3_and_4_read_notebook_2s_runs_and_train_only_what_the_plan_counts():
    """A variant of notebook 3 or 4 with the same bench, KL prompts and resolved training config as one of notebook
    2's campaign runs on its target has that run's fingerprint, so it is read from it (``reuse_runs_from``), not
    trained; ``calibration.CAMPAIGN_PLAN`` counts, per point, exactly the runs that are left."""
    from retain_utils.chapters import calibration, settings
    from retain_utils.core.models import EMBEDDED_MODEL
    from retain_utils.core.training import resolve

    calibrated = {"lr_sft": 2e-4, "lr_rl": 1e-5, "steps": 40}  # what the calibration's choice adds to every grid
    own = {"03_ablations": {"beta": 0.05}}  # the notebook's own parameter cell (the paper's KL coefficient)

    def built(notebook: str, target: str):
        s = settings.setup(notebook, campaign.PROFILE, model=EMBEDDED_MODEL, target=target, **calibrated,
                           **own.get(notebook, {}))
        bench = (s.model, s.task_names, json.dumps(s.task_options, sort_keys=True), s.cfg.n_train, s.cfg.n_eval,
                 getattr(s.cfg, "n_eval_target", None) or s.cfg.n_eval, s.kl_prompts, s.cfg.rescore_longer)
        runs = [(v, json.dumps({k: x for k, x in resolve(v.config).to_dict().items() if k not in ("out_dir", "run_name")},
                               sort_keys=True)) for v in s.variants]
        return bench, runs

    for notebook, planned in calibration.CAMPAIGN_PLAN.items():
        assert profiles.values(notebook, campaign.PROFILE)["reuse_runs_from"] in (None, profiles.CAMPAIGN_RUNS)
        for target in planned.targets:
            bench_2, runs_2 = built("02_rl_vs_sft", target)
            if notebook == "02_rl_vs_sft":
                trained = [v for v, _ in runs_2]
            else:
                bench, runs = built(notebook, target)
                assert bench == bench_2, f"{notebook} on {target} would not find notebook 2's runs"
                readable = {config for _, config in runs_2}
                trained = [v for v, config in runs if v.rollouts_of or config not in readable]
                assert len(trained) < len(runs), f"{notebook} on {target} reads nothing from notebook 2"
            counted: dict[str, int] = {}
            for v in trained:
                counted[v.config.method] = counted.get(v.config.method, 0) + 1
            assert counted == planned.runs, (notebook, target, [v.label for v in trained])


def test_campaign_points_evaluate_with_each_tasks_own_budget():
    """The results chapter reads budgets from the tasks' defaults (``experiment.truncation`` without tasks)."""
    assert all(profiles.values(nb, campaign.PROFILE).get("max_tokens") is None for nb in campaign.GRIDS)


# ----- refusals ----------------------------------------------------------------------------------------------------

def test_check_refuses_a_dirty_tree_but_not_results(tmp_path):
    repo = make_repo(tmp_path / "repo")
    campaign_dir = repo / "results" / "campaign"
    assert not campaign.check(campaign_dir, repo)
    fake_point(campaign_dir, "02_rl_vs_sft", current("02_rl_vs_sft"))  # under results/: not a change
    assert not campaign.check(campaign_dir, repo)
    (repo / "code.py").write_text("x = 2\n")
    refusal = campaign.check(campaign_dir, repo)
    assert refusal and refusal.dirty == ["code.py"] and not refusal.mixed
    assert "uncommitted changes (code.py)" in str(refusal) and "--allow-mixed" in str(refusal)


def test_check_refuses_points_of_another_version_or_other_profile_values(tmp_path):
    repo = make_repo(tmp_path / "repo")
    campaign_dir = tmp_path / "campaign"
    same = fake_point(campaign_dir, "02_rl_vs_sft", current("02_rl_vs_sft"))
    assert not campaign.check(campaign_dir, repo)
    old = fake_point(campaign_dir, "03_ablations", {**current("03_ablations"), "version": "0.0.1"})
    steps = fake_point(campaign_dir, "04_iterative_sft", {**current("04_iterative_sft"), "profile": {"steps": 1}})
    refusal = campaign.check(campaign_dir, repo)
    assert refusal and not refusal.dirty
    relative = lambda folder: str(folder.relative_to(campaign_dir))  # noqa: E731
    assert refusal.mixed == {relative(old): "version 0.0.1", relative(steps): "other campaign profile values"}
    assert relative(same) not in refusal.mixed
    text = str(refusal)
    assert "2 finished point(s) ran other campaign profile values, version 0.0.1" in text
    assert "would mix code versions" in text and relative(old) in text


def calibrated(folder: Path, targets=("ifeval", "mmlu", "countdown")) -> Path:
    """A calibration folder whose choice names every target (what ``campaign.run`` needs to start)."""
    from retain_utils.chapters import calibration

    calibration.write_choice(folder / calibration.CHOICE_FILE, [],
                             [calibration.Choice(t, m, 1e-4, 40, True, "chosen") for t in targets for m in ("sft", "grpo")])
    return folder


def test_run_refuses_before_running_anything(tmp_path, monkeypatch):
    monkeypatch.setenv(models.DTYPE_ENV, "")  # recorded: undone after the test
    monkeypatch.setattr(sweep, "run_point", lambda *a, **kw: pytest.fail("a refused campaign ran a point"))
    repo = make_repo(tmp_path / "repo")
    with pytest.raises(ValueError, match=r"^campaign not started: no calibration choice .*none/choice\.json, so its "
                                         r"points would train at uncalibrated learning rates; .* calibration --write"):
        campaign.run(tmp_path / "campaign", root=repo, calibration_dir=tmp_path / "none", allow_mixed=True)
    choice = calibrated(tmp_path / "calibration")
    (repo / "code.py").write_text("x = 2\n")
    with pytest.raises(ValueError, match=r"^campaign not started: the tree has uncommitted changes \(code\.py\)"):
        campaign.run(tmp_path / "campaign", root=repo, calibration_dir=choice)
    (repo / "code.py").write_text("x = 1\n")
    fake_point(tmp_path / "campaign", "02_rl_vs_sft", {"version": "0.0.1"})
    with pytest.raises(ValueError, match="would mix code versions"):
        campaign.run(tmp_path / "campaign", root=repo, allow_mixed=False, calibration_dir=choice)
    assert not os.environ.get(models.DTYPE_ENV)  # refused before pinning anything
    assert [p.name for p in (tmp_path / "campaign").iterdir()] == ["02_rl_vs_sft"]


# ----- status -------------------------------------------------------------------------------------------------------

def test_status_projects_a_total_once_every_notebook_has_a_point(tmp_path):
    uncalibrated = tmp_path / "no-calibration"  # no choice: every target's points planned
    text = campaign.status(tmp_path, calibration_dir=uncalibrated)
    assert "0.0 h spent" in text and "no projection until one point of 02_rl_vs_sft, 03_ablations, " \
                                     "04_iterative_sft has finished" in text
    fake_point(tmp_path, "02_rl_vs_sft", current("02_rl_vs_sft"), seconds=600)
    fake_point(tmp_path, "02_rl_vs_sft", current("02_rl_vs_sft"), seconds=1800, index=1)
    fake_point(tmp_path, "03_ablations", current("03_ablations"), seconds=1200)
    assert "no projection until one point of 04_iterative_sft has finished" in campaign.status(tmp_path, calibration_dir=uncalibrated)
    fake_point(tmp_path, "04_iterative_sft", current("04_iterative_sft"), seconds=600)
    text = campaign.status(tmp_path, calibration_dir=uncalibrated)
    # 02: 15 points at 20 min, 03: 5 at 20 min, 04: 10 at 10 min -> 8.3 h; 4200 s spent
    assert text.splitlines()[0] == f"campaign in {tmp_path}: 1.2 h spent; projected total 8.3 h"
    assert "02_rl_vs_sft: 2/15 done, 20 min per point" in text and "04_iterative_sft: 1/10 done, 10 min" in text


def test_describe_names_hours_cpu_hours_code_and_machines(tmp_path):
    assert "No campaign point has been committed yet (0 of 30)" in campaign.describe(tmp_path)
    fake_point(tmp_path, "02_rl_vs_sft", {**current("02_rl_vs_sft"), "cpu_count": 2, "cpu_flags": ["avx2"],
                                          "commit": "a" * 40}, seconds=3600)
    fake_point(tmp_path, "03_ablations", {**current("03_ablations"), "cpu_count": 4, "cpu_flags": ["avx2", "amx_bf16"],
                                          "commit": "b" * 40}, seconds=1800)
    text = campaign.describe(tmp_path)
    assert "2 campaign points are committed, of the 30 the campaign plans; together they took 1.5 hours of wall " \
           "time (4.0 CPU-hours)." in text
    assert "commit aaaaaaaaaa (1 point); bbbbbbbbbb (1 point)" in text
    assert "CPU flags avx2 (1 point); avx2 amx_bf16 (1 point)" in text
    fake_point(tmp_path, "04_iterative_sft", current("04_iterative_sft"), seconds=1800)
    assert "(4.0 CPU-hours over the 2 points that name their cores)" in campaign.describe(tmp_path)


def test_command_line_status_and_limit(tmp_path, capsys):
    assert main(["campaign", "--status", "-o", str(tmp_path / "c")]) == 2  # a mistyped folder is no empty campaign
    assert f"error: no campaign folder {tmp_path / 'c'}" in capsys.readouterr().err
    assert main(["campaign", "--limit", "0", "-o", str(tmp_path / "c")]) == 2
    assert "error: --limit must be a positive integer, got 0" in capsys.readouterr().err
    assert main(["campaign", "--workers", "0", "-o", str(tmp_path / "c")]) == 2
    assert "error: --workers must be a positive integer, got 0" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()
    (tmp_path / "c").mkdir()
    assert main(["campaign", "--status", "-o", str(tmp_path / "c")]) == 0
    out = capsys.readouterr().out
    assert f"campaign in {tmp_path / 'c'}" in out and "02_rl_vs_sft: 0/15 done" in out


# ----- end to end -----------------------------------------------------------------------------------------------------

def campaign_notebook(folder: Path) -> Path:
    """The seeded sweep fixture, made campaign-shaped: it takes ``seeds`` (the campaign adds ``seeds=[s]`` to
    every point) and records the dtype pin and the thread count its kernel saw."""
    nb = nbformat.read(SWEEP_FIXTURES / "seeded.ipynb", as_version=4)
    params = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    nb.cells[params].source += "\nseeds = [0]"
    nb.cells.insert(params + 1, nbformat.v4.new_code_cell(
        "import os\nfrom retain_utils.core import results\nseed = seeds[0]\n"
        "results.save(results_path, dtype_env=os.environ.get('RETAIN_UTILS_DTYPE'),\n"
        "             omp_threads=os.environ.get('OMP_NUM_THREADS'),\n"
        "             baseline_cache=os.environ.get('RETAIN_UTILS_BASELINE_CACHE'))"))
    folder.mkdir()
    nbformat.write(nb, folder / "seeded.ipynb")
    return folder


def test_campaign_runs_in_fp32_commits_each_point_and_resumes(tmp_path, monkeypatch):
    notebooks = campaign_notebook(tmp_path / "notebooks")
    repo = make_repo(tmp_path / "repo")
    campaign_dir = repo / "results" / "campaign"
    monkeypatch.setattr(campaign, "GRIDS", {"seeded": {"method": ["sft"]}})
    monkeypatch.setattr(campaign, "SEEDS", (0, 1))
    monkeypatch.setattr(campaign, "PROFILE", "smoke")
    monkeypatch.setenv(models.DTYPE_ENV, "")  # campaign.run sets it: recorded, so undone after the test
    monkeypatch.setenv("RETAIN_UTILS_CACHE", str(tmp_path / "model-cache"))
    planned = campaign.plan(campaign_dir, notebooks)
    keys = [p.key for _, p in planned]
    assert [p.params for _, p in planned] == [{"method": "sft", "seeds": [0]}, {"method": "sft", "seeds": [1]}]

    choice = calibrated(tmp_path / "calibration", targets=())
    first = campaign.run(campaign_dir, commit_points=True, limit=1, root=repo, notebook_dir=notebooks,
                         calibration_dir=choice)
    assert first.done == keys[:1] and not first.failed and not first.skipped
    assert os.environ[models.DTYPE_ENV] == "fp32"
    second = campaign.run(campaign_dir, commit_points=True, root=repo, notebook_dir=notebooks, calibration_dir=choice)
    assert second.done == keys[1:] and second.skipped == keys[:1] and not second.failed

    start = git(repo, "rev-list", "--max-parents=0", "HEAD").strip()
    commits = git(repo, "rev-list", "--reverse", f"{start}..HEAD").split()
    assert len(commits) == 2  # one per point
    for sha, key in zip(commits, keys):
        files = git(repo, "show", "--name-only", "--format=", sha).split()
        assert {f.rsplit("/", 1)[0] for f in files} == {f"results/campaign/seeded/{key}"}
        assert {"done.json", "params.json", "seeded.results.json", "seeded.ipynb"} == {Path(f).name for f in files}
        assert git(repo, "log", "-1", "--format=%s", sha).startswith("campaign: seeded {'method': 'sft', 'seeds'")
    assert git(repo, "status", "--porcelain") == ""

    for (folder, point), head in zip(planned, [start, commits[0]]):  # HEAD when the run that ran it started
        done = json.loads((folder / point.key / layout.DONE_FILE).read_text())
        stamp = done["stamp"]
        assert stamp["version"] == __version__ and stamp["dtype"] == "float32" and stamp["profile"] == {}
        assert stamp["commit"] == head and stamp["dirty"] == [] and stamp["source"] == provenance.source_hash()
        assert done["code"] == sweep.code_hash(notebooks / "seeded.ipynb")
        saved = json.loads(layout.results_file(folder / point.key, "seeded").read_text())
        assert saved["dtype_env"] == "fp32"  # the notebook's kernel saw the pin
        assert saved["baseline_cache"] == str(tmp_path / "model-cache" / campaign.BASELINE_CACHE)  # and the cache
        assert saved["config"]["seed"] == point.params["seeds"][0]

    assert not campaign.check(campaign_dir, repo)
    monkeypatch.setattr(sweep, "run_point", lambda *a, **kw: pytest.fail("a finished point ran again"))
    third = campaign.run(campaign_dir, commit_points=True, root=repo, notebook_dir=notebooks, calibration_dir=choice)
    assert third.done == [] and third.skipped == keys
    assert len(git(repo, "rev-list", "HEAD").split()) == 3
    assert "seeded: 2/2 done" in campaign.status(campaign_dir, notebooks)


def test_campaign_workers_run_points_side_by_side_at_a_share_of_the_cores(tmp_path, monkeypatch):
    notebooks = campaign_notebook(tmp_path / "notebooks")
    repo = make_repo(tmp_path / "repo")
    campaign_dir = repo / "results" / "campaign"
    monkeypatch.setattr(campaign, "GRIDS", {"seeded": {"method": ["sft"]}})
    monkeypatch.setattr(campaign, "SEEDS", (0, 1, 2))
    monkeypatch.setattr(campaign, "PROFILE", "smoke")
    monkeypatch.setenv(models.DTYPE_ENV, "")
    with pytest.raises(ValueError, match="workers must be a positive integer"):
        campaign.run(campaign_dir, workers=0, root=repo, notebook_dir=notebooks)
    summary = campaign.run(campaign_dir, commit_points=True, workers=2, root=repo, notebook_dir=notebooks,
                           calibration_dir=calibrated(tmp_path / "calibration", targets=()))
    keys = [p.key for _, p in campaign.plan(campaign_dir, notebooks)]
    assert sorted(summary.done) == sorted(keys) and not summary.failed
    for key in keys:
        saved = json.loads(layout.results_file(campaign_dir / "seeded" / key, "seeded").read_text())
        assert saved["dtype_env"] == "fp32" and saved["omp_threads"] == str(max(1, os.cpu_count() // 2))
    assert len(git(repo, "rev-list", "HEAD").split()) == 1 + len(keys), "one commit per point"
    assert git(repo, "status", "--porcelain") == ""


def test_targets_runs_only_those_targets_points_and_refuses_unknown_ones(tmp_path, monkeypatch, capsys):
    repo = make_repo(tmp_path / "repo")
    monkeypatch.setenv(models.DTYPE_ENV, "")  # campaign.run sets it: recorded, so undone after the test
    ran = []
    monkeypatch.setattr(sweep, "run_point", lambda point, *a: ran.append(point) or sweep.Outcome(point.key, "busy"))
    choice = calibrated(tmp_path / "calibration")
    for targets, why in ((["gsm8k", "mmlu"], "unknown 'gsm8k'"), ([], "none given")):
        with pytest.raises(ValueError, match=f"^targets: {why}; the campaign's targets are ifeval, mmlu, countdown$"):
            campaign.run(tmp_path / "campaign", targets=targets, root=repo, calibration_dir=choice)
    assert main(["campaign", "-o", str(tmp_path / "campaign"), "--targets", "gsm8k"]) == 2
    assert "error: targets: unknown 'gsm8k'" in capsys.readouterr().err
    assert not ran
    summary = campaign.run(tmp_path / "campaign", targets=["mmlu"], root=repo, calibration_dir=choice)
    assert {p.params["target"] for p in ran} == {"mmlu"} and len(ran) == 10  # notebooks 2 and 3, 5 seeds each
    assert summary.busy == [p.key for p in ran]


def test_runs_that_finish_inside_a_running_point_are_committed_alone(tmp_path):
    import time

    repo = make_repo(tmp_path / "repo")
    point = sweep.Point("nb", "smoke", {"seeds": [0]}, "key")
    folder = repo / "results" / "nb" / point.key
    runs = folder / layout.RUNS_DIR

    def finish(name: str) -> None:
        (runs / name).mkdir(parents=True)
        (runs / name / "metrics.jsonl").write_text("{}\n")
        (runs / name / "checkpoint.pt").write_text("weights")  # git-ignored in this project
        (runs / name / layout.RECORD_FILE).write_text(json.dumps({"gain": 1.0, "drop": 0.5, "seconds": 60.0}))

    finish("earlier")  # finished before: its point's commit takes it
    (runs / "training").mkdir()  # no record yet: not committed
    (repo / ".gitignore").write_text(".lock\n*.pt\n")
    git(repo, "commit", "-qam", "ignore checkpoints")
    message = lambda run, p: campaign.run_message(run, p, {"version": "9.9"})
    with campaign.committing_runs([(repo / "results" / "nb", point)], message, interval=0.05):
        finish("copy")  # another point's run read back: left to this point's commit
        (runs / "copy" / layout.RECORD_FILE).write_text(json.dumps({"gain": 1, "drop": 0, "reused_from": "02/k/runs/x"}))
        finish("first")
        for _ in range(200):  # committed while the point still runs
            if "first" in git(repo, "log", "-1", "--name-only", "--format=%s"):
                break
            time.sleep(0.05)
        else:
            pytest.fail("a finished run was not committed while its point ran")
        finish("last")  # finishes after the last poll: committed on the way out
    subjects = git(repo, "log", "--format=%s").splitlines()
    assert subjects[:2] == [
        f"campaign: nb {{'seeds': [0]}}, run {name} finished (gain +1.0 pp, drop +0.5 pp, 9.9); committed alone so "
        "that the point, if stopped, resumes from it" for name in ("last", "first")]
    assert len(subjects) == 4
    for sha, name in zip(git(repo, "log", "-2", "--format=%H").split(), ("last", "first")):
        files = git(repo, "show", "--name-only", "--format=", sha).split()
        assert sorted(files) == [f"results/nb/key/runs/{name}/metrics.jsonl", f"results/nb/key/runs/{name}/record.json"]
    assert git(repo, "status", "--porcelain").splitlines() == ["?? results/nb/key/runs/copy/",
                                                               "?? results/nb/key/runs/earlier/"]
    assert campaign.commit(runs / "first", "nothing new")  # nothing to commit: done at once, no empty commit
    assert len(git(repo, "log", "--format=%s").splitlines()) == 4


def test_a_point_stopped_after_a_run_resumes_from_its_committed_run(tmp_path, monkeypatch):
    notebooks = campaign_notebook(tmp_path / "notebooks")
    nb = nbformat.read(notebooks / "seeded.ipynb", as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(  # two runs; the first attempt stops after the first
        "import json, os\nfrom pathlib import Path\nfor name in ('a-s0', 'b-s0'):\n"
        "    record = Path(results_path).parent / 'runs' / name / 'record.json'\n"
        "    if not record.exists():\n        record.parent.mkdir(parents=True)\n"
        "        record.write_text(json.dumps({'gain': 1.0, 'drop': 0.5, 'seconds': 60.0}))\n"
        "        if os.environ.get('STOP_AFTER_A_RUN'):\n            raise RuntimeError('stopped')"))
    nbformat.write(nb, notebooks / "seeded.ipynb")
    repo = make_repo(tmp_path / "repo")
    campaign_dir = repo / "results" / "campaign"
    monkeypatch.setattr(campaign, "GRIDS", {"seeded": {"method": ["sft"]}})
    monkeypatch.setattr(campaign, "SEEDS", (0,))
    monkeypatch.setattr(campaign, "PROFILE", "smoke")
    monkeypatch.setenv(models.DTYPE_ENV, "")
    monkeypatch.setenv("RETAIN_UTILS_CACHE", str(tmp_path / "model-cache"))
    choice = calibrated(tmp_path / "calibration", targets=())
    [(sweep_dir, point)] = campaign.plan(campaign_dir, notebooks)

    monkeypatch.setenv("STOP_AFTER_A_RUN", "1")
    stopped = campaign.run(campaign_dir, commit_points=True, root=repo, notebook_dir=notebooks, calibration_dir=choice)
    assert list(stopped.failed) == [point.key] and "stopped" in stopped.failed[point.key]
    assert "run a-s0 finished" in git(repo, "log", "-1", "--format=%s")
    git(repo, "clean", "-qfdx")  # a fresh checkout: only what was committed survives
    assert [r.name for r in layout.finished_runs(sweep_dir / point.key)] == ["a-s0"]
    assert "1 finished run(s) of 1 unfinished point(s) are there" in campaign.status(campaign_dir, notebooks)

    monkeypatch.delenv("STOP_AFTER_A_RUN")
    resumed = campaign.run(campaign_dir, commit_points=True, root=repo, notebook_dir=notebooks, calibration_dir=choice)
    assert resumed.done == [point.key] and not resumed.failed
    done = json.loads((sweep_dir / point.key / layout.DONE_FILE).read_text())
    assert done["resumed_runs"] == {"a-s0": 60.0}  # trained by the stopped attempt, read back by this one
    assert campaign.point_seconds(done) == done["seconds"] + 60.0
    assert campaign.stamps(campaign_dir)[0]["seconds"] == done["seconds"] + 60.0
    assert git(repo, "status", "--porcelain") == ""
    assert len(git(repo, "rev-list", "HEAD").split()) == 3  # initial, run a, the point (run b with it)


def test_verify_reruns_a_point_and_names_every_number_that_moved(tmp_path, monkeypatch):
    from retain_utils.core import results
    from retain_utils.batch import runner

    point = tmp_path / "point"
    runs = [{"variant": "SFT", "seed": 0, "gain": 10.0, "drop": 2.5, "kl": 0.01, "evals": [{"step": 0}]}]
    results.write_json_atomic(point / "params.json", {"notebook": "02_rl_vs_sft", "profile": "campaign",
                                                      "params": {"target": "mmlu", "seeds": [0]}, "key": "k"})
    results.save(point / "02_rl_vs_sft.results.json", runs=runs)
    rerun = {"runs": runs}

    def fake_run(notebook, profile, params, output_dir):
        nothing = Path(params.pop("reuse_runs_from"))  # every run trained: none read back from the campaign
        assert nothing.is_dir() and not any(nothing.iterdir()) and nothing.is_relative_to(output_dir)
        assert (notebook, profile, params) == ("02_rl_vs_sft", "campaign", {"target": "mmlu", "seeds": [0]})
        assert os.environ["RETAIN_UTILS_DTYPE"] == "fp32"
        assert baseline_cache.CACHE_ENV not in os.environ  # the rerun computes its baseline too
        path = Path(output_dir) / "out.results.json"
        results.save(path, **rerun)
        return runner.NotebookRun(notebook, path, path, 1.0)

    monkeypatch.setenv("RETAIN_UTILS_DTYPE", "")  # verify sets it: recorded, so undone after the test
    monkeypatch.setenv(baseline_cache.CACHE_ENV, str(tmp_path / "kept"))  # verify unsets it: restored after
    monkeypatch.setattr(runner, "run_notebook", fake_run)
    assert campaign.verify(point, tmp_path / "a") == []
    rerun = {"runs": [{**runs[0], "drop": 5.0}]}
    assert campaign.verify(point, tmp_path / "b") == ["SFT seed 0: drop 2.5 committed, 5.0 rerun"]
    rerun = {"runs": []}
    assert campaign.verify(point, tmp_path / "c") == ["1 committed runs, 0 on rerunning"]


def test_a_recorded_verification_is_what_the_results_chapter_says(tmp_path, monkeypatch, capsys):
    from retain_utils.core import results

    camp = tmp_path / "campaign"
    assert campaign.describe_verifications(camp).startswith("No committed point has been rerun")
    point = camp / "02_rl_vs_sft" / "k1"
    results.write_json_atomic(point / "params.json", {"notebook": "02_rl_vs_sft", "profile": "campaign",
                                                      "params": {"target": "countdown", "seeds": [1]}, "key": "k1"})
    results.save(point / "02_rl_vs_sft.results.json", runs=[{"variant": "SFT"}, {"variant": "GRPO"}])
    results.write_json_atomic(point / "done.json", {"seconds": 60.0, "stamp": {"version": "0.2.0",
                                                                               "cpu_flags": ["avx2"]}})
    file = campaign.record_verification(camp, point, [])
    assert file == camp / campaign.VERIFIED_FILE
    here = " ".join(provenance.cpu_flags()) or "none of avx2 and up"
    assert campaign.describe_verifications(camp) == (
        "Rerun from scratch with `campaign --verify` (baseline included) and compared number by number: "
        f"02_rl_vs_sft (target countdown, seeds [1]), computed with CPU flags avx2, package 0.2.0, rerun with "
        f"CPU flags {here}, package {__version__}: all 2 runs' numbers identical.")
    campaign.record_verification(camp, point, ["SFT seed 1: drop 2.5 committed, 5.0 rerun"])  # replaces it
    [only] = campaign.verifications(camp)
    assert only.differences == ("SFT seed 1: drop 2.5 committed, 5.0 rerun",)
    assert "1 number moved, e.g. SFT seed 1: drop 2.5" in campaign.describe_verifications(camp)
    with pytest.raises(ValueError, match="is not a point of the campaign"):
        campaign.record_verification(camp / "02_rl_vs_sft", tmp_path, [])
    monkeypatch.setattr(campaign, "verify", lambda point, out_dir: [])  # the command line records what it verified
    assert main(["campaign", "--verify", str(point), "-o", str(camp)]) == 0
    assert f"recorded in {file}" in capsys.readouterr().out and campaign.verifications(camp)[0].differences == ()
    file.write_text('{"verifications": [{"point": "x"}]}')
    with pytest.raises(ValueError, match=f"{file}: not a list of verifications"):
        campaign.verifications(camp)


def test_repeats_compare_one_configuration_run_in_two_points(tmp_path):
    campaign_dir = tmp_path / "campaign"
    assert "holds no rerun of itself" in campaign.describe_repeats(campaign_dir)
    grpo = {"variant": "GRPO", "target": "mmlu", "seed": 0, "gain": 5.0, "drop": 1.0, "kl": 0.5,
            "evals": [{"step": 0, "correct": [1, 0]}], "retention": [-0.1, -0.2],
            "config": {"method": "grpo", "lr": 4e-5, "out_dir": "runs/a", "keep_correct": False}}
    sft = {**grpo, "variant": "SFT", "config": {**grpo["config"], "method": "sft"}}
    moved = {**grpo, "kl": 0.5000001}  # a last-bit difference, as between two kinds of CPU
    points = []
    for notebook, flags, runs in [
            ("02_rl_vs_sft", ["avx2", "avx512f"], [grpo, sft]),
            ("03_ablations", ["avx2"], [{**moved, "config": {**grpo["config"], "out_dir": "runs/b",
                                                              "keep_correct": True}}]),
            ("04_iterative_sft", ["avx2"], [moved, {**sft, "drop": 2.0}])]:
        folder = fake_point(campaign_dir, notebook, {"cpu_flags": flags})
        layout.results_file(folder, notebook).write_text(json.dumps({"runs": runs}))
        points.append(str(folder.relative_to(campaign_dir)))
    pairs = campaign.repeats(campaign_dir)
    by_points = {(p.run, p.points): p for p in pairs}
    assert len(pairs) == 4  # GRPO in three points (three pairs); SFT in two; bookkeeping fields ignored
    first = by_points[("GRPO, target mmlu, seed 0", (points[0], points[1]))]
    assert first.exact and first.flags == ("avx2 avx512f", "avx2") and 0 < first.relative < 1e-6
    assert by_points[("GRPO, target mmlu, seed 0", (points[1], points[2]))].relative == 0
    assert not by_points[("SFT, target mmlu, seed 0", (points[0], points[2]))].exact
    text = campaign.describe_repeats(campaign_dir)
    assert "4 pairs of campaign runs share a configuration" in text and "In 3 of 4 every greedy answer" in text
    assert "3 pairs on machines with different CPU flags, 1 with the same" in text
    assert "are bitwise the same on the same CPU flags" in text and "differ by at most 2e-07 relative" in text
    assert f"SFT, target mmlu, seed 0 differs between {points[0]} (avx2 avx512f) and {points[2]} (avx2)." in text
    layout.results_file(campaign_dir / points[2], "04_iterative_sft").write_text(json.dumps(
        {"config": {"n_train": 16}, "runs": [moved, sft]}))  # other training data: not the same configuration
    assert [p.points for p in campaign.repeats(campaign_dir)] == [(points[0], points[1])]
    layout.results_file(campaign_dir / points[1], "03_ablations").write_text(json.dumps(
        {"runs": [{**grpo, "reused_from": f"{points[0]}/runs/GRPO-s0-abc"}]}))  # a copy, read from 02's point
    assert campaign.repeats(campaign_dir) == [], "a run read from another point is no rerun of it"


def test_budget_probe_refuses_bad_budgets_before_any_compute(capsys):
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "scripts" / "budget_probe.py"
    spec = importlib.util.spec_from_file_location("budget_probe", path)
    probe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(probe)
    with pytest.raises(SystemExit):
        probe.main(["no/such/record.json", "--budgets", "96", "0"])
    assert "--budgets must be positive token counts" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        probe.main(["no/such/record.json", "--task", "gsm8k"])
    assert "invalid choice: 'gsm8k'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        probe.main(["no/such/run/record.json"])
    assert "not a run's record.json inside a finished campaign point" in capsys.readouterr().err


def test_compare_runs_names_what_moved_and_by_how_much(tmp_path, capsys):
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "scripts" / "compare_runs.py"
    spec = importlib.util.spec_from_file_location("compare_runs", path)
    compare = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(compare)
    assert str(campaign.gap({"a": [1, 2.0]}, {"a": [1, 2.0]})) == "identical (2 values)"
    assert str(campaign.gap([0.5, 2.0, 3.0], [0.5, 2.5, 2.0])) == "2 of 3 values differ, largest by 1 (relative 0.3)"
    assert str(campaign.gap([1], [1, 2])) == "different shapes (1 and 2 values)"
    assert str(campaign.gap(["a"], ["b"])) == "1 of 1 values differ, not all numbers"
    for name, drop in (("a", 2.5), ("b", 5.0)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "record.json").write_text(json.dumps({"variant": "SFT", "drop": drop, "gain": 1.0}))
        (tmp_path / name / "metrics.jsonl").write_text('{"step": 1, "loss": 0.5}\n')
    assert compare.main([str(tmp_path / "a"), str(tmp_path / "b")]) == 0
    out = capsys.readouterr().out
    assert "gain: identical (1 value)" in out and "drop: 1 of 1 values differ, largest by 2.5" in out
    assert "per-step loss: identical (1 value)" in out
    with pytest.raises(SystemExit, match="no record.json"):
        compare.main([str(tmp_path / "a"), str(tmp_path / "missing")])


# ----- the calibration's points, through the same machinery --------------------------------------------------------

@pytest.mark.parametrize("words, message", [
    (["gsm8k", "grpo", "1e-5", "100"], "unknown target 'gsm8k'; valid targets: ifeval, mmlu, countdown"),
    (["mmlu", "ppo", "1e-5", "100"], "unknown method 'ppo'; valid methods: sft, self_sft, grpo, reinforce"),
    (["mmlu", "grpo", "fast", "100"], "learning rate 'fast' is not a number"),
    (["mmlu", "grpo", "0", "100"], "learning rate must be a positive finite number, got 0"),
    (["mmlu", "grpo", "nan", "100"], "learning rate must be a positive finite number, got nan"),
    (["mmlu", "grpo", "1e-5", "0"], "seed '0' is not a calibration seed; valid: 100, 101, 102 (the campaign's seeds stay unseen)"),
])
def test_a_calibration_point_refuses_bad_words_before_anything_runs(words, message, capsys, monkeypatch):
    monkeypatch.setattr(sweep, "run_point", lambda *a, **kw: pytest.fail("a point ran"))
    assert main(["calibration", "--run", *words]) == 2
    assert capsys.readouterr().err == f"error: --run: {message}\n"


def test_calibration_points_run_into_their_targets_folder_and_commit_with_their_numbers(tmp_path, monkeypatch):
    from retain_utils.batch import calibrate

    repo = make_repo(tmp_path / "repo")
    folder = repo / "results" / "calibration"
    monkeypatch.setenv(models.DTYPE_ENV, "")
    specs = [calibrate.Spec.parse(["countdown", "grpo", "1e-5", "101"]), calibrate.Spec.parse(["mmlu", "sft", "2e-4", "100"])]
    planned = calibrate.plan(specs, folder)
    assert [(f.name, p.notebook, p.profile, p.params) for f, p in planned] == [
        ("countdown", "02_rl_vs_sft", "campaign", {"target": "countdown", "seeds": [101], "methods": ["grpo"],
                                                   "lr_rl": 1e-5}),
        ("mmlu", "02_rl_vs_sft", "campaign", {"target": "mmlu", "seeds": [100], "methods": ["sft"], "lr_sft": 2e-4})]

    def finished(point, sweep_dir, notebook_dir, version, rerun_changed, stamp):  # what a kernel leaves behind
        out = Path(sweep_dir) / point.key
        out.mkdir(parents=True)
        (out / layout.PARAMS_FILE).write_text(json.dumps({"notebook": point.notebook, "profile": point.profile,
                                                          "params": point.params, "key": point.key}))
        run = {"target": point.params["target"], "method": point.params["methods"][0], "seed": 101, "gain": 12.5,
               "drop": -1.25, "kl": 1.5, "flags": ["looping:ifeval"], "accuracy_initial": {"countdown": 30.0, "mmlu": 40.0},
               "accuracy_final": {"countdown": 42.5, "mmlu": 41.25},
               "config": {"lr": 1e-5, "steps": 40, "batch_size": 8}}
        layout.results_file(out, point.notebook).write_text(json.dumps(
            {"runs": [run], "dtype_env": os.environ[models.DTYPE_ENV], "timings": {"notebook_seconds": 2400.0},
             "machine": {"torch_threads": 1, "cpu_flags": ["avx2"], "peak_rss_bytes": 9.5 * 2**30,
                         "dtype": "float32"}}))
        (out / layout.DONE_FILE).write_text(json.dumps({"seconds": 2400.0, "stamp": stamp}))
        return sweep.Outcome(point.key, "done", 2400.0)

    monkeypatch.setattr(sweep, "run_point", finished)
    (repo / "code.py").write_text("x = 2\n")
    with pytest.raises(ValueError, match=r"^calibration not started: the tree has uncommitted changes \(code\.py\)"):
        calibrate.run(specs, commit_points=True, root=repo, calibration_dir=folder)
    (repo / "code.py").write_text("x = 1\n")
    summary = calibrate.run(specs[:1], commit_points=True, root=repo, calibration_dir=folder)
    assert summary.done == [planned[0][1].key] and os.environ[models.DTYPE_ENV] == "fp32"
    head = git(repo, "rev-list", "--max-parents=0", "HEAD").strip()[:10]
    assert git(repo, "log", "-1", "--format=%s").strip() == (
        f"Calibration, countdown, GRPO lr 1e-05, 40 steps x 8 prompts, seed 101 (package {__version__} at {head}, float32, "
        "1 torch thread(s), CPU flags avx2): gain +12.5 pp, drop -1.2 pp (mmlu 40.0 -> 41.2), KL 1.50, flags "
        "looping:ifeval; 40.0 min, peak 9.5 GiB")
    files = git(repo, "show", "--name-only", "--format=", "HEAD").split()
    assert {f.rsplit("/", 1)[0] for f in files} == {f"results/calibration/countdown/{planned[0][1].key}"}
    again = calibrate.run(specs, root=repo, calibration_dir=folder)  # the finished one is not run again
    assert again.skipped == [planned[0][1].key] and again.done == [planned[1][1].key]
