"""The seeded campaign behind the results chapter: notebooks 2-4 over targets and seeds in the ``campaign``
profile, pinned to fp32, each finished point committed to git as it lands.

``python -m retain_utils campaign`` (``make campaign``) runs or resumes it; every point is a sweep point
(``sweep.run_point``: locked, resumable) under ``results/campaign/NOTEBOOK/KEY/``, and each run that finishes
inside it is committed too, so a point stopped half-way resumes from its finished runs. Points run seed by seed, so
a campaign stopped half-way has every target at the seeds it reached. Each point's ``done.json`` carries a
``stamp`` (``provenance.stamp``): package version, source hash, commit, CPU flags, dtype. The package version
is the campaign's code version: bump ``retain_utils.__version__`` whenever a change alters any number a run
produces, and ``run`` refuses to add points of one version to a campaign holding another (or to run from a
tree with uncommitted changes) unless told to.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import os
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from tqdm.auto import tqdm

from .. import __version__
from ..chapters import calibration, profiles
from ..core import baseline_cache, provenance, results
from . import runner, sharing, sweep
from ..core.layout import (DONE_FILE, RECORD_FILE, finished_record, finished_runs, point_folders, read_done,
                           read_params, read_record, results_file, unreadable)
from ..core.models import DTYPE_ENV, cache_dir
from ..core.results import load

PROFILE = "campaign"
CAMPAIGN_DIR = runner.ROOT / "results" / "campaign"
DTYPE = "fp32"  # comparable across this workplace's CPUs (bf16 is native on some, emulated ~50x slower on others)
SEEDS = tuple(range(calibration.CAMPAIGN_SEEDS))
RUN_POLL_SECONDS = 30.0  # how often a running campaign looks for runs that finished, to commit them
BASELINE_CACHE = "baselines"  # under the model cache (``models.cache_dir``): the initial model's evaluations, per machine
# notebook -> the grid of one seed (the seed is added per point as ``seeds=[s]``): calibration.CAMPAIGN_PLAN's
# targets; everything else a point runs is the campaign profile's (profiles.PROFILES) and the calibration's choice
GRIDS: dict[str, dict[str, list]] = {nb: {"target": list(p.targets)} for nb, p in calibration.CAMPAIGN_PLAN.items()}


def uncommitted(dirty: list[str]) -> str:
    """Why points may not run from a tree with these changed paths (the first five named)."""
    return (f"the tree has uncommitted changes ({', '.join(dirty[:5])}{', ...' if len(dirty) > 5 else ''}): points "
            "would not name the code they ran")


@dataclass(frozen=True)
class Refusal:
    """Why ``run`` will not start: uncommitted changes, or finished points of another code version."""

    dirty: list[str]
    mixed: dict[str, str]  # point folder (relative) -> what it was computed with

    def __bool__(self) -> bool:
        return bool(self.dirty or self.mixed)

    def __str__(self) -> str:
        lines = []
        if self.dirty:
            lines.append(uncommitted(self.dirty))
        if self.mixed:
            versions = sorted(set(self.mixed.values()))
            lines.append(f"{len(self.mixed)} finished point(s) ran {', '.join(versions)} (this is version "
                         f"{__version__} with profiles.PROFILES' campaign values): new points would mix code "
                         f"versions ({', '.join(sorted(self.mixed)[:5])})")
        return "; ".join(lines) + ". Pass --allow-mixed to run anyway."


# once the calibration's choice is written (``python -m retain_utils calibration --write``), every target trains
# at its calibrated learning rates and budget
CHOICE = calibration.CALIBRATION_DIR / calibration.CHOICE_FILE


def grids(choice_file: str | Path = CHOICE) -> dict[str, list[dict]]:
    """Each notebook's grids of one seed: ``GRIDS`` as they stand while no calibration choice is written (what
    ``status`` and the chapters count; ``run`` refuses to start without one); with one, a grid per calibrated
    target carrying its ``lr_sft``, ``lr_rl`` and ``steps`` (``calibration.campaign_params``). A target the choice
    does not name yet (its calibration still runs) has no grid: its points wait (``waiting``)."""
    if not Path(choice_file).is_file():
        return {nb: [grid] for nb, grid in GRIDS.items()}
    calibrated = calibration.campaign_params(calibration.read_choice(choice_file))
    out = {}
    for nb, grid in GRIDS.items():
        if "target" not in grid:  # a grid without targets (a test's) has nothing to calibrate
            out[nb] = [grid]
            continue
        out[nb] = [{**grid, "target": [t], **{k: [v] for k, v in calibrated[t].items()}}
                   for t in grid["target"] if t in calibrated]
    return out


def campaign_targets() -> list[str]:
    """The targets the campaign's notebooks train on (``GRIDS``), each once, in order."""
    return list(dict.fromkeys(t for grid in GRIDS.values() for t in grid.get("target", [])))


def waiting(choice_file: str | Path = CHOICE) -> list[str]:
    """The campaign's targets that a written calibration choice does not name yet: their points are planned once
    ``calibration --write`` names them. Empty without a choice file (``run`` refuses then)."""
    if not Path(choice_file).is_file():
        return []
    calibrated = calibration.campaign_params(calibration.read_choice(choice_file))
    return [t for t in campaign_targets() if t not in calibrated]


def total_points(notebook: str | None = None) -> int:
    """How many points the campaign plans in all (or for ``notebook``): its targets x ``SEEDS``, whether or not the
    calibration has chosen every target's rates yet."""
    return len(SEEDS) * sum(len(grid.get("target", [None])) for nb, grid in GRIDS.items()
                            if notebook in (None, nb))


def plan(campaign_dir: str | Path = CAMPAIGN_DIR, notebook_dir: str | Path = runner.NOTEBOOK_DIR,
         choice_file: str | Path = CHOICE) -> list[tuple[Path, sweep.Point]]:
    """Every point as (its sweep folder, the point), seed by seed; within a seed in ``GRIDS`` order, so chapter
    2's three targets (the results chapter's Table 1) come first, then the ablations and Iterative-SFT.
    Validates everything."""
    campaign_dir = Path(campaign_dir)
    return [(campaign_dir / nb, point) for seed in SEEDS for nb, nb_grids in grids(choice_file).items()
            for grid in nb_grids
            for point in sweep.plan(nb, {**grid, "seeds": [[seed]]}, PROFILE, Path(notebook_dir))]


def finished(campaign_dir: str | Path = CAMPAIGN_DIR) -> dict[Path, dict]:
    """Point folder -> its done record, for every finished point in the campaign's notebook folders (whatever
    profile it ran: a small fixture campaign reads like the real one)."""
    out = {}
    for notebook in GRIDS:
        if (Path(campaign_dir) / notebook).is_dir():
            for folder in point_folders(Path(campaign_dir) / notebook):
                record = finished_record(folder, notebook)
                if record is not None:
                    out[folder] = record
    return out


def check(campaign_dir: str | Path = CAMPAIGN_DIR, root: str | Path = runner.ROOT) -> Refusal:
    """What would stop ``run``: changed files outside ``results/``, finished points of another version."""
    campaign_dir = Path(campaign_dir)
    dirty = provenance.git_state(root, exclude=("results",))["dirty"]
    mixed = {}
    for folder, record in finished(campaign_dir).items():
        stamp = record.get("stamp", {})
        if stamp.get("version") != __version__:
            mixed[str(folder.relative_to(campaign_dir))] = f"version {stamp.get('version', 'unknown')}"
        elif stamp.get("profile") != profile_values(folder.parent.name):
            mixed[str(folder.relative_to(campaign_dir))] = "other campaign profile values"
    return Refusal(dirty, mixed)


def profile_values(notebook: str) -> dict:
    """The campaign profile's values for ``notebook``, as JSON stores them (a point's key does not hash them,
    so a point records them and ``check`` compares)."""
    return json.loads(json.dumps(profiles.values(notebook, PROFILE)))


_GIT = threading.Lock()  # a process's point commits and run commits take turns on the index


def commit(folder: Path, message: str, tries: int = 5) -> bool:
    """``git add`` + ``git commit`` of one folder only (checkpoints are git-ignored); retried while another git
    command holds the index. True when it is committed (also when nothing in it changed); False (with a note) if
    git refused."""
    with _GIT:
        for attempt in range(tries):
            add = subprocess.run(["git", "-C", str(folder), "add", "--", "."], capture_output=True, text=True)
            if add.returncode == 0 and subprocess.run(["git", "-C", str(folder), "diff", "--cached", "--quiet", "--",
                                                       "."]).returncode == 0:
                return True  # nothing new to commit
            done = add.returncode == 0 and subprocess.run(
                ["git", "-C", str(folder), "commit", "-q", "-m", message, "--", "."],
                capture_output=True, text=True).returncode == 0
            if done:
                return True
            time.sleep(2 * (attempt + 1))
    print(f"note: could not commit {folder} (git: {add.stderr.strip() or 'commit failed'}); commit it by hand")
    return False


def run_message(run: Path, point: sweep.Point, stamp: dict) -> str:
    """The commit message of one finished run of a point still running: what it measured, and why it lands alone."""
    try:
        record = read_record(run / RECORD_FILE, ("gain", "drop"))
        numbers = f"gain {record['gain']:+.1f} pp, drop {record['drop']:+.1f} pp"
    except (ValueError, OSError, TypeError) as e:
        numbers = f"record unreadable: {e}"
    return (f"campaign: {point.notebook} {point.params}, run {run.name} finished ({numbers}, {stamp.get('version')}); "
            "committed alone so that the point, if stopped, resumes from it")


@contextlib.contextmanager
def committing_runs(points: list[tuple[Path, sweep.Point]], message, interval: float = RUN_POLL_SECONDS):
    """While ``points`` run, commit every run that finishes in them (its folder under ``runs/``: logs and record)
    within ``interval`` seconds, with ``message(run_folder, point)``: a point stopped half-way (a session's end, a
    crash) then resumes in a fresh checkout from its committed runs instead of training them again. Runs already
    finished when it starts are left to their point's commit."""
    folders = [(f / p.key, p) for f, p in points]
    seen = {run for folder, _ in folders for run in finished_runs(folder)}
    stop = threading.Event()

    def poll() -> None:
        for folder, point in folders:
            for run in finished_runs(folder):
                if run not in seen:
                    seen.add(run)
                    if not _reused(run):  # a copy of another point's run: cheap to read again, left to its point
                        commit(run, message(run, point))

    def loop() -> None:
        while not stop.wait(interval):
            poll()

    thread = threading.Thread(target=loop, name="run-commits", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        poll()  # the runs of points that failed or were stopped after their last poll


def _reused(run: Path) -> bool:
    """Whether a finished run's record is a copy of another point's run (``reused_from``)."""
    try:
        return bool(read_record(run / RECORD_FILE).get("reused_from"))
    except (ValueError, OSError):
        return False


def resumed_runs(runs: list[Path]) -> dict[str, float]:
    """Run folder name -> seconds, for runs a point found finished when it started (trained by an earlier, stopped
    attempt at it): its notebook read them back, so its own time leaves them out. Runs it read from another point
    (``reused_from``) are that point's time, not this one's."""
    out = {}
    for run in runs:
        try:
            record = read_record(run / RECORD_FILE, ("seconds",))
        except (ValueError, OSError):
            continue  # cut short: the notebook trained that run again
        if not record.get("reused_from") and isinstance(record["seconds"], (int, float)):
            out[run.name] = float(record["seconds"])
    return out


def point_seconds(record: dict) -> float:
    """A finished point's time: its own (``done.json`` seconds) plus that of the runs an earlier, stopped attempt
    trained (``resumed_runs``)."""
    return record["seconds"] + sum((record.get("resumed_runs") or {}).values())


def expected_peaks(planned: list[tuple[Path, sweep.Point]], campaign_dir: str | Path = CAMPAIGN_DIR,
                   calibration_dir: str | Path = calibration.CALIBRATION_DIR) -> list[int | None]:
    """Each planned point's expected peak memory (bytes): the largest a finished campaign point of the same notebook
    and target recorded, else the largest of the calibration's points on that target (chapter 2's methods), else
    None (unknown: the point runs alone)."""
    def largest(folders) -> dict[tuple[str, str], int]:
        out: dict[tuple[str, str], int] = {}
        for folder in folders:
            try:
                meta = read_params(folder)
            except ValueError:
                continue
            if (value := sharing.peak(folder, meta["notebook"])) is not None:
                key = meta["notebook"], meta["params"].get("target")
                out[key] = max(value, out.get(key, 0))
        return out
    done = largest(finished(campaign_dir))
    calibration_dir = Path(calibration_dir)
    calibrated = largest(point for sweep_dir in (sorted(calibration_dir.iterdir()) if calibration_dir.is_dir() else [])
                         if sweep_dir.is_dir() for point in point_folders(sweep_dir))
    by_target: dict[str, int] = {}
    for (_, target), value in calibrated.items():
        by_target[target] = max(value, by_target.get(target, 0))
    return [done.get((p.notebook, p.params.get("target")), by_target.get(p.params.get("target")))
            for _, p in planned]


def run(campaign_dir: str | Path = CAMPAIGN_DIR, *, commit_points: bool = False, allow_mixed: bool = False,
        limit: int | None = None, workers: int = 1, root: str | Path = runner.ROOT,
        notebook_dir: str | Path = runner.NOTEBOOK_DIR,
        calibration_dir: str | Path = calibration.CALIBRATION_DIR,
        targets: Sequence[str] | None = None) -> sweep.Summary:
    """Run every unfinished point in order (at most ``limit`` of them; only ``targets``' when given), in fp32;
    ``commit_points``: commit each finished point at once. ``workers`` > 1: that many points at once, each at an equal share of the
    cores, a point starting only when its ``expected_peaks`` fit beside the running ones (``sharing``).
    Refuses first (ValueError) without the calibration's choice in ``calibration_dir`` (the points would train
    at uncalibrated learning rates), and as ``check`` says unless ``allow_mixed``."""
    campaign_dir = Path(campaign_dir)
    sharing.threads_per_worker(workers)  # validates workers before anything runs
    known = campaign_targets()
    unknown = [t for t in targets or () if t not in known]
    if targets is not None and (not targets or unknown):
        raise ValueError(f"targets: {'unknown ' + ', '.join(map(repr, unknown)) if unknown else 'none given'}; the "
                         f"campaign's targets are {', '.join(known)}")
    choice_file = Path(calibration_dir) / calibration.CHOICE_FILE
    if not choice_file.is_file():
        raise ValueError(f"campaign not started: no calibration choice {choice_file}, so its points would train at "
                         "uncalibrated learning rates; finish the calibration and write its choice with "
                         "`python -m retain_utils calibration --write` first")
    planned = [(f, p) for f, p in plan(campaign_dir, notebook_dir, choice_file)
               if targets is None or p.params.get("target") in targets]
    refusal = check(campaign_dir, root)
    if refusal and not allow_mixed:
        raise ValueError(f"campaign not started: {refusal}")
    if later := [t for t in waiting(choice_file) if targets is None or t in targets]:
        print(f"note: the calibration's choice does not name {', '.join(later)} yet: their points wait for "
              "`calibration --write`; this run runs the others'")
    return execute(planned, commit_points=commit_points, workers=workers, root=root, notebook_dir=notebook_dir,
                   peaks=lambda todo: expected_peaks(todo, campaign_dir, calibration_dir), after=reads_from,
                   message=lambda folder, point, outcome, stamp: (f"campaign: {point.notebook} {point.params} "
                                                                  f"({outcome.seconds / 60:.0f} min, {stamp['version']})"),
                   limit=limit, summary_dir=campaign_dir, desc="campaign", commit_runs=commit_points)


def execute(planned: list[tuple[Path, sweep.Point]], *, commit_points: bool, workers: int, root: str | Path,
            notebook_dir: str | Path, peaks, message, after=None, limit: int | None = None,
            summary_dir: str | Path = CAMPAIGN_DIR, desc: str = "campaign",
            commit_runs: bool = False) -> sweep.Summary:
    """Run the unfinished ones of ``planned`` points (at most ``limit``) in fp32, each stamped with the code and
    machine (``provenance.stamp``) and the campaign profile's values; ``commit_points``: commit each finished
    point's folder at once with ``message(folder, point, outcome, stamp)``; ``commit_runs``: also each run as it
    finishes inside a point (``committing_runs``). ``peaks(todo)`` and ``after(todo)`` give ``sharing.run_shared``
    each point's expected memory and what it waits for. The campaign's and the calibration's points both run
    here. A point that reads back runs an earlier attempt finished records their time in its ``done.json``
    (``resumed_runs``)."""
    os.environ[DTYPE_ENV] = DTYPE  # the notebooks' kernels inherit it
    # every point of a target evaluates the same initial model on the same questions: the first one keeps it
    os.environ[baseline_cache.CACHE_ENV] = str(cache_dir() / BASELINE_CACHE)
    stamp = provenance.stamp(root, exclude=("results",))
    summary = sweep.Summary(Path(summary_dir), len(planned))
    todo = [(f, p) for f, p in planned if finished_record(f / p.key, p.notebook) is None]
    for folder, point in todo:
        if (broken := unreadable(folder / point.key, point.notebook)) is not None:
            print(f"note: {broken}: point {point.key} reruns")
    summary.skipped = [p.key for f, p in planned if (f, p) not in todo]
    todo = todo[:limit] if limit is not None else todo
    earlier = [finished_runs(folder / point.key) for folder, point in todo]
    calls = [(point, folder, notebook_dir, sweep.code_hash(runner.find_notebook(point.notebook, notebook_dir)),
              False, {**stamp, "profile": profile_values(point.notebook)}) for folder, point in todo]
    if workers == 1:
        outcomes = ((i, sweep.run_point(*call)) for i, call in enumerate(calls))
    else:
        outcomes = sharing.run_shared(calls, sweep.run_point, workers, peaks(todo),
                                      after=after(todo) if after else None)
    start = time.perf_counter()
    bar = tqdm(total=len(planned), initial=len(summary.skipped), desc=desc, unit="point")
    runs = (committing_runs(todo, lambda run, point: run_message(run, point, stamp)) if commit_runs
            else contextlib.nullcontext())
    try:
        with runs:
            for i, outcome in outcomes:
                folder, point = todo[i]
                bar.set_postfix_str(f"finished {point.notebook} {point.params}")
                bar.update()
                if outcome.status == "done":
                    summary.done.append(point.key)
                    if resumed := resumed_runs(earlier[i]):
                        done = folder / point.key / DONE_FILE
                        results.write_json_atomic(done, {**read_done(done.parent), "resumed_runs": resumed})
                    if commit_points:
                        commit(folder / point.key, message(folder / point.key, point, outcome, stamp))
                elif outcome.status == "busy":
                    summary.busy.append(point.key)
                else:
                    summary.failed[point.key] = outcome.error
    finally:
        outcomes.close()
        bar.close()
        summary.seconds = time.perf_counter() - start
    return summary


def reads_from(todo: list[tuple[Path, sweep.Point]]) -> list[int | None]:
    """Per unfinished point, the index of the unfinished notebook-2 point of its target and seeds when it reads
    runs from the campaign (its profile's ``reuse_runs_from``): it starts only once that one has finished, or it
    would train those runs again. None where it reads nothing, or that point is finished."""
    where = {(p.params.get("target"), str(p.params.get("seeds"))): i
             for i, (_, p) in enumerate(todo) if p.notebook == "02_rl_vs_sft"}
    return [where.get((p.params.get("target"), str(p.params.get("seeds"))))
            if p.notebook != "02_rl_vs_sft" and profile_values(p.notebook).get("reuse_runs_from") else None
            for _, p in todo]


def status(campaign_dir: str | Path = CAMPAIGN_DIR, notebook_dir: str | Path = runner.NOTEBOOK_DIR,
           calibration_dir: str | Path = calibration.CALIBRATION_DIR) -> str:
    """Points done per notebook, hours spent, and the projected total: each notebook's unfinished points at the
    mean time of its finished ones; then what the calibration's measured points project for the whole campaign,
    in CPU-hours against its budget."""
    campaign_dir = Path(campaign_dir)
    if not campaign_dir.is_dir():
        raise FileNotFoundError(f"no campaign folder {campaign_dir}")
    lines, spent, projected, unknown = [], 0.0, 0.0, []
    choice_file = Path(calibration_dir) / calibration.CHOICE_FILE
    planned = plan(campaign_dir, notebook_dir, choice_file)
    broken = [why for f, p in planned if (why := unreadable(f / p.key, p.notebook)) is not None]
    for notebook in GRIDS:
        mine = [(f, p) for f, p in planned if p.notebook == notebook]
        times = [point_seconds(rec) for f, p in mine if (rec := finished_record(f / p.key, notebook)) is not None]
        left = total_points(notebook) - len(times)
        spent += sum(times)
        if times:
            mean = sum(times) / len(times)
            projected += sum(times) + left * mean
            lines.append(f"{notebook}: {len(times)}/{total_points(notebook)} done, {mean / 60:.0f} min per point")
        else:
            unknown.append(notebook)
            lines.append(f"{notebook}: 0/{total_points(notebook)} done")
    total = (f"projected total {projected / 3600:.1f} h" if not unknown else
             f"no projection until one point of {', '.join(unknown)} has finished")
    notes = [f"unreadable, counted as not done (the next run reruns it): {why}" for why in broken]
    if later := waiting(choice_file):
        notes.append(f"waiting for the calibration's choice: the points of {', '.join(later)} (planned once "
                     "`calibration --write` names them)")
    partial = {p.key: n for f, p in planned if finished_record(f / p.key, p.notebook) is None
               and (n := len(finished_runs(f / p.key)))}
    if partial:
        notes.append(f"{sum(partial.values())} finished run(s) of {len(partial)} unfinished point(s) are there; "
                     "the next run reads them back instead of training them again")
    projection = calibration.projected_campaign(calibration.point_costs(calibration_dir))
    before = ("from the calibration: no projection until an SFT and a GRPO calibration point have finished"
              if projection is None else
              f"from the calibration's measured points: {projection.cpu_hours:.0f} CPU-hours for the {projection.points} "
              f"points ({projection.hours:.0f} h with all {projection.cores} cores busy), budget "
              f"{calibration.CPU_HOURS_BUDGET:g} CPU-hours")
    return "\n".join([f"campaign in {campaign_dir}: {spent / 3600:.1f} h spent; {total}", *lines, *notes, before])


def stamps(campaign_dir: str | Path = CAMPAIGN_DIR) -> list[dict]:
    """Every finished point's stamp with its notebook, params and seconds (for the chapter's provenance line)."""
    out = []
    for folder, record in finished(campaign_dir).items():
        meta = read_params(folder)
        out.append({"notebook": meta["notebook"], "params": meta["params"], "seconds": point_seconds(record),
                    **record.get("stamp", {})})
    return out


def describe(campaign_dir: str | Path = CAMPAIGN_DIR) -> str:
    """One paragraph for the chapter, read from the points' files: how much is done, the code (commits and
    versions), the machines (CPU flags, dtype) and the hours the finished points took."""
    campaign_dir = Path(campaign_dir)
    done = stamps(campaign_dir)
    total = total_points()
    if not done:
        return (f"No campaign point has been committed yet (0 of {total}); `make campaign` runs them. The tables "
                "below stay empty until it has.")
    def listing(key: str) -> str:
        values = [" ".join(v) if isinstance(v, list) else str(v) for v in (d.get(key, "unknown") for d in done)]
        counts = {v: values.count(v) for v in dict.fromkeys(values)}
        return "; ".join(f"{v} ({n} point{'s' * (n != 1)})" for v, n in counts.items())
    hours = sum(d["seconds"] for d in done) / 3600
    known = [d for d in done if isinstance(d.get("cpu_count"), int)]
    cpu_hours = (f" ({sum(d['seconds'] * d['cpu_count'] for d in known) / 3600:.1f} CPU-hours"
                 f"{'' if len(known) == len(done) else f' over the {len(known)} points that name their cores'})"
                 if known else "")
    for d in done:
        d["commit"] = (d.get("commit") or "not a git checkout")[:10]
    return (f"{len(done)} campaign point{'s are' if len(done) != 1 else ' is'} committed, of the {total} the "
            f"campaign plans; together they took "
            f"{hours:.1f} hours of wall time{cpu_hours}. Code: package version {listing('version')}; commit "
            f"{listing('commit')}. Cores: {listing('cpu_count')}; CPU flags {listing('cpu_flags')}; "
            f"dtype {listing('dtype')}.")


def records(campaign_dir: str | Path, notebook: str) -> list:
    """The run records of ``notebook``'s finished campaign points (none when it has no folder yet)."""
    folder = Path(campaign_dir) / notebook
    return results.records(folder) if folder.is_dir() else []


def folder(campaign_dir: str | Path | None) -> Path:
    """The campaign folder a chapter reads: the one given, else the repository's ``results/campaign``."""
    return CAMPAIGN_DIR if campaign_dir is None else Path(campaign_dir)


COMPARED = ("gain", "drop", "kl", "accuracy_initial", "accuracy_final", "generated_tokens", "evals", "retention")
FLOAT_MEANS = ("kl", "retention")  # means of floats: differ in the last bits between CPUs; the rest come from answers
BOOKKEEPING = ("out_dir", "keep_correct")  # config fields that change no number of a run
NOTEBOOK_SETTINGS = ("model", "n_train", "n_eval", "n_eval_target", "max_tokens")  # set per notebook, not per run


def leaves(value, path: str = "") -> dict[str, object]:
    """Every scalar inside nested dicts and lists, keyed by its path."""
    if isinstance(value, dict):
        return {k: v for key, item in value.items() for k, v in leaves(item, f"{path}/{key}").items()}
    if isinstance(value, list):
        return {k: v for i, item in enumerate(value) for k, v in leaves(item, f"{path}[{i}]").items()}
    return {path: value}


@dataclass(frozen=True)
class Gap:
    """How far apart two runs' values of one number are: how many scalars differ, and by how much at most."""

    values: int
    differ: int
    largest: float = 0.0    # absolute; NaN when a differing value is not a number
    relative: float = 0.0   # largest / the largest magnitude among the differing values
    values_b: int | None = None  # set when the second value has other scalars than the first

    def __str__(self) -> str:
        if self.values_b is not None:
            return f"different shapes ({self.values} and {self.values_b} values)"
        if not self.differ:
            return f"identical ({self.values} value{'s' * (self.values != 1)})"
        if math.isnan(self.largest):
            return f"{self.differ} of {self.values} values differ, not all numbers"
        return (f"{self.differ} of {self.values} values differ, largest by {self.largest:.3g} "
                f"(relative {self.relative:.1g})")


def gap(a, b) -> Gap:
    """Compare two values (nested dicts and lists of numbers) scalar by scalar."""
    la, lb = leaves(a), leaves(b)
    if la.keys() != lb.keys():
        return Gap(len(la), len(la), math.nan, math.nan, values_b=len(lb))
    moved = [(la[k], lb[k]) for k in la if la[k] != lb[k]]
    if not moved:
        return Gap(len(la), 0)
    if not all(isinstance(x, (int, float)) and isinstance(y, (int, float)) for x, y in moved):
        return Gap(len(la), len(moved), math.nan, math.nan)
    largest = max(abs(x - y) for x, y in moved)
    scale = max(max(abs(x), abs(y)) for x, y in moved)
    return Gap(len(la), len(moved), largest, largest / scale if scale else math.inf)


@dataclass(frozen=True)
class Repeat:
    """One run configuration that two finished points both computed (GRPO on mmlu is in notebooks 2, 3 and 4),
    and how far apart the two came out: the campaign's own reruns, often on different machines."""

    run: str                  # "GRPO, target mmlu, seed 0"
    points: tuple[str, str]   # the two point folders, relative to the campaign folder
    flags: tuple[str, str]    # each point's CPU flags
    exact: bool               # every number read from answers (accuracies, evaluations, tokens) the same
    relative: float           # the largest relative difference in KL and retention


def repeats(campaign_dir: str | Path = CAMPAIGN_DIR) -> list[Repeat]:
    """Every pair of finished points that ran the same configuration (target, seed, training config with its
    bookkeeping fields aside, and the notebook's model, data and evaluation sizes), compared number by number.
    A run one point read from another (``reused_from``) is a copy, not a rerun: left out."""
    campaign_dir = Path(campaign_dir)
    seen: dict[str, list[tuple[str, str, dict]]] = {}
    for folder, record in finished(campaign_dir).items():
        flags = " ".join(record.get("stamp", {}).get("cpu_flags") or ["unknown"])
        saved = load(folder / f"{folder.parent.name}.results.json")
        settings = [saved.get("config", {}).get(name) for name in NOTEBOOK_SETTINGS]
        for run in saved.get("runs") or []:
            if run.get("reused_from"):  # a copy of another point's run (experiment.find_finished), not a rerun
                continue
            config = {k: v for k, v in (run.get("config") or {}).items() if k not in BOOKKEEPING}
            key = json.dumps([run.get("target"), run.get("seed"), run.get("n_eval"), settings, config], sort_keys=True)
            seen.setdefault(key, []).append((str(folder.relative_to(campaign_dir)), flags, run))
    out = []
    for group in seen.values():
        for (point_a, flags_a, a), (point_b, flags_b, b) in itertools.combinations(group, 2):
            gaps = {key: gap(a.get(key), b.get(key)) for key in COMPARED}
            out.append(Repeat(f"{a['variant']}, target {a.get('target')}, seed {a.get('seed')}", (point_a, point_b),
                              (flags_a, flags_b),
                              all(not g.differ for k, g in gaps.items() if k not in FLOAT_MEANS),
                              max(math.inf if math.isnan(gaps[k].relative) else gaps[k].relative
                                  for k in FLOAT_MEANS)))
    return out


def describe_repeats(campaign_dir: str | Path = CAMPAIGN_DIR) -> str:
    """The chapter's paragraph on the campaign's own reruns (``repeats``): did the same configuration give the
    same numbers in two points, and on how many pairs of different machines."""
    pairs = repeats(campaign_dir)
    if not pairs:
        return "No run configuration appears in two finished points yet, so the campaign holds no rerun of itself."
    exact = [p for p in pairs if p.exact]
    other = [p for p in pairs if p.flags[0] != p.flags[1]]
    same = [p for p in pairs if p.flags[0] == p.flags[1]]
    runs = "; ".join(dict.fromkeys(p.run for p in pairs))
    def largest(group: list[Repeat]) -> str:
        worst = max(p.relative for p in group)
        return "are bitwise the same" if worst == 0 else f"differ by at most {worst:.1g} relative"
    text = (f"{len(pairs)} pair{'s' * (len(pairs) != 1)} of campaign runs share a configuration, computed in "
            f"different points ({runs}): {len(other)} pair{'s' * (len(other) != 1)} on machines with different "
            f"CPU flags, {len(same)} with the same. In {len(exact)} of {len(pairs)} every greedy answer, accuracy "
            f"and generated-token count is the same.")
    for label, group in (("different", other), ("the same", same)):
        if group:
            text += f" KL and retention (means of floats) {largest(group)} on {label} CPU flags."
    for p in pairs:
        if not p.exact:
            text += f" {p.run} differs between {p.points[0]} ({p.flags[0]}) and {p.points[1]} ({p.flags[1]})."
    return text


def verify(point: str | Path, out_dir: str | Path) -> list[str]:
    """Rerun one committed point from its ``params.json`` into ``out_dir`` (same notebook, profile and parameters,
    fp32; every run trained, none read from another point) and compare every run's numbers with the committed
    ones. Returns the differences: none means the point reproduced exactly. Only the project's own notebooks run,
    and a point with no committed run (nothing to compare) is refused, both before a kernel starts (ValueError
    naming the file)."""
    point = Path(point)
    meta = read_params(point)
    names = runner.notebook_names()
    if meta["notebook"] not in names:
        raise ValueError(f"{point / 'params.json'} names notebook {meta['notebook']!r}, not one of the project's: "
                         f"{', '.join(names)}")
    try:
        profiles.check_profile(meta["profile"])
        runner.check_parameters(runner.find_notebook(meta["notebook"]), meta["params"], meta["profile"])
    except ValueError as e:
        raise ValueError(f"{point / 'params.json'}: {e}") from None
    committed_file = results_file(point, meta["notebook"])
    committed = load(committed_file).get("runs") or []
    if not committed:
        raise ValueError(f"{committed_file} holds no runs: there is nothing to compare a rerun with")
    os.environ[DTYPE_ENV] = DTYPE
    os.environ.pop(baseline_cache.CACHE_ENV, None)  # the rerun computes its baseline afresh: it is checked too
    # and trains every run: read from the campaign, a run would be read back from this very point's committed files
    nothing = Path(out_dir) / "reuse-nothing"
    nothing.mkdir(parents=True, exist_ok=True)
    params = {**meta["params"], "reuse_runs_from": str(nothing.resolve())}
    done = runner.run_notebook(meta["notebook"], meta["profile"], params, output_dir=out_dir)
    again = load(done.results).get("runs") or []
    if len(again) != len(committed):
        return [f"{len(committed)} committed runs, {len(again)} on rerunning"]
    return [f"{a.get('variant')} seed {a.get('seed')}: {key} {a.get(key)!r} committed, {b.get(key)!r} rerun"[:300]
            for a, b in zip(committed, again) for key in COMPARED if a.get(key) != b.get(key)]


VERIFIED_FILE = "verified.json"  # in the campaign folder: every recorded ``--verify``, for the results chapter


@dataclass(frozen=True)
class Verification:
    """One committed point rerun with ``verify``: where it was computed and rerun, and what moved."""

    point: str                       # its folder, relative to the campaign folder
    params: dict
    computed: str                    # package version and CPU flags of the point's own stamp
    rerun: str                       # the same of the rerun
    runs: int                        # runs compared
    differences: tuple[str, ...]     # empty: every number identical

    @staticmethod
    def from_dict(d: dict) -> "Verification":
        return Verification(str(d["point"]), dict(d["params"]), str(d["computed"]), str(d["rerun"]), int(d["runs"]),
                            tuple(str(x) for x in d["differences"]))


def record_verification(campaign_dir: str | Path, point: str | Path, differences: list[str]) -> Path:
    """Keep ``verify``'s outcome for ``point`` (a folder inside ``campaign_dir``) in its ``VERIFIED_FILE``, beside
    earlier ones (the same point rerun on the same kind of machine replaces its entry). Returns the file."""
    campaign_dir, point = Path(campaign_dir).resolve(), Path(point).resolve()
    if not point.is_relative_to(campaign_dir):
        raise ValueError(f"{point} is not a point of the campaign in {campaign_dir}")
    meta = read_params(point)
    stamp = (finished_record(point, meta["notebook"]) or {}).get("stamp", {})
    entry = Verification(point.relative_to(campaign_dir).as_posix(), meta["params"],
                         provenance.where(stamp.get("version", "unknown"), stamp.get("cpu_flags")),
                         provenance.where(__version__, provenance.cpu_flags()),
                         len(load(results_file(point, meta["notebook"])).get("runs") or []), tuple(differences))
    file = campaign_dir / VERIFIED_FILE
    kept = [v for v in verifications(campaign_dir) if (v.point, v.rerun) != (entry.point, entry.rerun)]
    results.write_json_atomic(file, {"verifications": [vars(v) for v in [*kept, entry]]})
    return file


def verifications(campaign_dir: str | Path = CAMPAIGN_DIR) -> list[Verification]:
    """The recorded verifications (``record_verification``); a malformed file is a ValueError naming it."""
    file = Path(campaign_dir) / VERIFIED_FILE
    if not file.exists():
        return []
    entries = load(file).get("verifications")
    try:
        return [Verification.from_dict(d) for d in entries]
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{file}: not a list of verifications ({e!r})") from None


def describe_verifications(campaign_dir: str | Path = CAMPAIGN_DIR) -> str:
    """The chapter's sentence on the points rerun from scratch with ``campaign --verify``."""
    done = verifications(campaign_dir)
    if not done:
        return "No committed point has been rerun from scratch with `campaign --verify` yet."
    parts = []
    for v in done:
        what = ", ".join(f"{k} {v.params[k]}" for k in ("target", "seeds") if k in v.params)
        outcome = (f"all {v.runs} runs' numbers identical" if not v.differences else
                   f"{len(v.differences)} number{'s' * (len(v.differences) != 1)} moved, e.g. {v.differences[0]}")
        parts.append(f"{v.point.split('/')[0]} ({what}), computed with {v.computed}, rerun with {v.rerun}: {outcome}")
    return ("Rerun from scratch with `campaign --verify` (baseline included) and compared number by number: "
            + "; ".join(parts) + ".")
