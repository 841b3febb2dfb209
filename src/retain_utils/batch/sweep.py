"""Batch execution: one notebook over a grid of parameters (seeds x methods x targets), resumable.

Each point runs in its own folder (layout: ``retain_utils.core.layout``). A point is claimed with ``flock`` on its ``.lock`` while it runs, so two
sweeps sharing a folder never run a point twice, and a killed sweep leaves no lock behind (the OS drops it).
Rerunning a sweep skips finished points and retries failed or unfinished ones.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import socket
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from tqdm.auto import tqdm

from ..core import results
from . import runner, sharing
from ..chapters import settings
from ..core.layout import DONE_FILE, ERROR_FILE, LOCK_FILE, PARAMS_FILE, finished_record, results_file, unreadable
from ..chapters.profiles import check_profile

BACKENDS = ("local", "ray")
RAY_PIN = "ray==2.60.0"


@dataclass(frozen=True)
class Point:
    """One grid point: a notebook, a profile and the parameters injected on top of them."""

    notebook: str
    profile: str
    params: dict[str, Any]
    key: str


@dataclass(frozen=True)
class Outcome:
    """What running (or trying to claim) one point gave: status is done, skipped, failed or busy."""

    key: str
    status: str
    seconds: float = 0.0
    error: str = ""


@dataclass
class Summary:
    """What one sweep did with each point: ran it, found it done, saw it fail, or left it to another sweep."""

    sweep_dir: Path
    points: int
    done: list[str] = field(default_factory=list)  # ran now and finished
    skipped: list[str] = field(default_factory=list)  # finished already (before, or by another sweep meanwhile)
    failed: dict[str, str] = field(default_factory=dict)  # key -> error
    busy: list[str] = field(default_factory=list)  # being run by another sweep on the same folder
    seconds: float = 0.0

    def __str__(self) -> str:
        text = (f"{self.points} point{'s' * (self.points != 1)} in {self.sweep_dir}: {len(self.done)} ran, "
                f"{len(self.skipped)} already done, {len(self.failed)} failed, "
                f"{len(self.busy)} running in another sweep ({self.seconds:.0f} s)")
        for key, error in self.failed.items():
            first = error.splitlines()[0] if error else ""
            text += f"\n  failed {key}: {first} (see {self.sweep_dir / key / ERROR_FILE})"
        return text


# ----- the grid -------------------------------------------------------------------------------------------

def _split_values(text: str) -> list[str]:
    """``0,1,[2,3],"a,b"`` -> ``['0', '1', '[2,3]', '"a,b"']``: commas inside brackets or JSON strings don't split."""
    parts, depth, in_string, escaped, start = [], 0, False, False, 0
    for i, ch in enumerate(text):
        if in_string:
            in_string = escaped or ch != '"'
            escaped = not escaped and ch == "\\"
        elif ch == '"' and (depth or not text[start:i].strip()):
            in_string = True
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts]


def parse_grid(items: list[str]) -> dict[str, list[Any]]:
    """``["seed=0,1", "method=sft,grpo"]`` -> ``{"seed": [0, 1], "method": ["sft", "grpo"]}``.

    Each value is parsed like ``runner.parse_value``: JSON where it parses (numbers, lists, true), else a string.
    """
    grid: dict[str, list[Any]] = {}
    for item in items:
        name, sep, values = item.partition("=")
        name = name.strip()
        if not sep or not name.isidentifier():
            raise ValueError(f"grid item {item!r} must look like name=value1,value2,...")
        if name in grid:
            raise ValueError(f"grid names {name!r} twice")
        texts = _split_values(values)
        if any(t == "" for t in texts):
            raise ValueError(f"grid item {item!r} has an empty value")
        grid[name] = [runner.parse_value(t) for t in texts]
    return grid


def undeclared(notebook: str, grid: dict[str, Any], notebook_dir: Path = runner.NOTEBOOK_DIR) -> list[str]:
    """The grid's names that the notebook's parameters cell does not declare."""
    declared = runner.declared_parameters(runner.find_notebook(notebook, notebook_dir))
    return sorted(set(grid) - set(declared))


def check_grid(source: Path, profile: str, grid: dict[str, Any]) -> None:
    """Every name declared by the notebook, every value of its parameter's type and in range, every point's values
    together (the checks ``run`` and the notebooks' setup make: ``settings.check_value``, ``settings.check_run``);
    raise ValueError if not."""
    if not isinstance(grid, dict) or not grid:
        raise ValueError("empty grid: give at least one parameter, e.g. --grid target=mmlu,countdown")
    for name in runner.RUNNER_PARAMETERS:
        if name in grid:
            raise ValueError(f"{name!r} cannot be in the grid: the sweep sets it (use --profile for the profile)")
    runner.check_parameters(source, {name: None for name in grid})
    declared = runner.declared_parameters(source)
    for name, values in grid.items():
        if not isinstance(values, (list, tuple)) or not values:
            raise ValueError(f"grid parameter {name!r} needs a non-empty list of values, got {values!r}")
        seen = set()
        for value in values:
            token = json.dumps(value, sort_keys=True, default=str)
            if token in seen:
                raise ValueError(f"grid parameter {name!r} lists {value!r} twice")
            seen.add(token)
            settings.check_value(source.stem, profile, name, value, declared[name]["default"], what="grid value")
    defaults = {name: info["default"] for name, info in declared.items()}
    for point in expand(grid):  # the checks across values (bank sizes, context), point by point
        settings.check_run(source.stem, profile, point, defaults)


def expand(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """The grid's points, in order: the last name varies fastest."""
    names = list(grid)
    return [dict(zip(names, combo)) for combo in itertools.product(*(grid[n] for n in names))]


def point_key(notebook: str, profile: str, params: dict[str, Any]) -> str:
    """A stable 12-hex-digit name for a point: same notebook, profile and parameters -> same folder."""
    canonical = json.dumps({"notebook": notebook, "profile": profile, "params": params},
                           sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def plan(notebook: str, grid: dict[str, list[Any]], profile: str = "quick",
         notebook_dir: Path = runner.NOTEBOOK_DIR) -> list[Point]:
    """Validate everything and list the points; nothing is run or written."""
    check_profile(profile)
    source = runner.find_notebook(notebook, notebook_dir)
    check_grid(source, profile, grid)
    return [Point(source.stem, profile, p, point_key(source.stem, profile, p)) for p in expand(grid)]


def code_hash(source: Path) -> str:
    """Hash of the notebook's code cells: prose edits don't count as a new version, code edits do."""
    import nbformat

    nb = nbformat.read(source, as_version=4)
    code = "\n\0".join(c.source for c in nb.cells if c.cell_type == "code")
    return hashlib.sha256(code.encode()).hexdigest()[:12]


# ----- one point --------------------------------------------------------------------------------------------

@contextmanager
def _claim(folder: Path) -> Iterator[bool]:
    """Hold an exclusive lock on the point while it runs; yields False if another process holds it."""
    import fcntl  # POSIX only; imported here so the rest of the command line works elsewhere

    fd = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                 "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")}).encode())
        yield True
    finally:
        os.close(fd)  # releases the lock


def run_point(point: Point, sweep_dir: str | Path, notebook_dir: str | Path = runner.NOTEBOOK_DIR,
              version: str = "", rerun_changed: bool = False, stamp: dict | None = None) -> Outcome:
    """Claim, run and record one point. Any error is recorded in ``error.json`` and returned, never raised; one
    that stops the point's own files being written (a full disk) leaves the point unfinished, to rerun.
    ``stamp`` (e.g. ``provenance.stamp``) goes into ``done.json`` as it is."""
    folder = Path(sweep_dir) / point.key
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with _claim(folder) as claimed:
            if not claimed:
                return Outcome(point.key, "busy")
            return _run_claimed(point, folder, Path(notebook_dir), version, rerun_changed, stamp)
    except OSError as e:
        error = f"cannot write the point's files in {folder}: {e.strerror or e}" + (
            f" ({e.filename})" if e.filename else "")
        try:
            results.write_json_atomic(folder / ERROR_FILE, {
                "error": error, "seconds": 0.0, "host": socket.gethostname(),
                "failed_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
        except OSError:
            pass  # the disk is still full: the outcome says it
        return Outcome(point.key, "failed", 0.0, error)


def _run_claimed(point: Point, folder: Path, notebook_dir: Path, version: str, rerun_changed: bool,
                 stamp: dict | None) -> Outcome:
    record = finished_record(folder, point.notebook)
    if record is not None and (not rerun_changed or record.get("code") == version):
        return Outcome(point.key, "skipped")  # another sweep finished it meanwhile
    # Start clean: results.save merges into an existing file, so a half-run's results must go.
    for stale in (folder / DONE_FILE, folder / ERROR_FILE, results_file(folder, point.notebook),
                  folder / f"{point.notebook}.ipynb"):
        stale.unlink(missing_ok=True)
    results.write_json_atomic(folder / PARAMS_FILE, {
        "notebook": point.notebook, "profile": point.profile, "params": point.params, "key": point.key})
    start = time.perf_counter()
    try:
        runner.run_notebook(point.notebook, point.profile, point.params, output_dir=folder,
                            notebook_dir=notebook_dir, progress=False)
    except Exception as e:  # a failed point is recorded and must not stop the others
        seconds = time.perf_counter() - start
        error = f"{type(e).__name__}: {e}"
        results.write_json_atomic(folder / ERROR_FILE, {
            "error": error, "seconds": seconds, "host": socket.gethostname(),
            "failed_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
        return Outcome(point.key, "failed", seconds, error)
    seconds = time.perf_counter() - start
    results.write_json_atomic(folder / DONE_FILE, {
        "seconds": seconds, "code": version, "host": socket.gethostname(),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **({"stamp": stamp} if stamp else {})})
    return Outcome(point.key, "done", seconds)


# ----- the sweep ---------------------------------------------------------------------------------------------

def _local(todo: list[Point], run_args: tuple, workers: int) -> Iterator[Outcome]:
    if workers == 1:
        for point in todo:
            yield run_point(point, *run_args)
        return
    # each worker at its share of the cores (``sharing``): torch's default in each would oversubscribe them
    for _, outcome in sharing.run_shared([(point, *run_args) for point in todo], run_point, workers):
        yield outcome


def _import_ray():
    try:
        import ray
    except ImportError:
        raise ValueError(f"--backend ray needs the ray package: pip install '{RAY_PIN}'") from None
    return ray


def _ray(todo: list[Point], run_args: tuple, workers: int | None, gpus: float = 0) -> Iterator[Outcome]:
    """Each point a Ray task (1 CPU, ``gpus`` GPUs). Uses the Ray instance already initialised, else ``ray.init()``
    (which joins the cluster named by ``RAY_ADDRESS`` if set, else starts a local one)."""
    if not todo:
        return
    ray = _import_ray()
    started = not ray.is_initialized()
    if started:
        ray.init(include_dashboard=False)
    task = ray.remote(num_cpus=1, num_gpus=gpus)(run_point)
    limit = workers or len(todo)
    queue, running, keys = list(todo), [], {}
    try:
        while queue or running:
            while queue and len(running) < limit:
                point = queue.pop(0)
                running.append(task.remote(point, *run_args))
                keys[running[-1]] = point.key
            finished, running = ray.wait(running, num_returns=1)
            try:
                outcome = ray.get(finished[0])
            except ray.exceptions.RayError as e:  # the worker itself died (e.g. killed for memory)
                outcome = Outcome(keys[finished[0]], "failed", error=f"{type(e).__name__}: {e}")
                results.write_json_atomic(Path(run_args[0]) / outcome.key / ERROR_FILE, {
                    "error": outcome.error, "seconds": 0.0, "failed_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
            yield outcome
    finally:
        for ref in running:
            ray.cancel(ref, force=True)
        if started:
            ray.shutdown()


def run_sweep(
    notebook: str,
    grid: dict[str, list[Any]],
    profile: str = "quick",
    sweep_dir: str | Path | None = None,
    workers: int | None = None,
    backend: str = "local",
    notebook_dir: str | Path = runner.NOTEBOOK_DIR,
    rerun_changed: bool = False,
    progress: bool = True,
    gpus_per_point: float = 0,
) -> Summary:
    """Run every grid point of ``notebook`` not finished yet; failures are recorded, the others go on.

    ``sweep_dir`` defaults to ``sweeps/NOTEBOOK/PROFILE`` (relative to the working directory).
    ``workers``: notebooks at once (local default 1, each worker at an equal share of the cores as torch threads;
    ray default: as many as the cluster fits).
    ``rerun_changed``: also rerun points that finished with other code in the notebook (else they are kept).
    ``gpus_per_point``: GPUs Ray reserves for each point (Ray sets CUDA_VISIBLE_DEVICES for it).
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; valid backends: {', '.join(BACKENDS)}")
    if workers is not None and (not isinstance(workers, int) or workers < 1):
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    if not isinstance(gpus_per_point, (int, float)) or gpus_per_point < 0:
        raise ValueError(f"gpus_per_point must be a number >= 0, got {gpus_per_point!r}")
    if gpus_per_point and backend != "ray":
        raise ValueError("gpus_per_point needs --backend ray: the local pool does not hand out GPUs")
    if backend == "ray":
        _import_ray()
    check_profile(profile)
    source = runner.find_notebook(notebook, Path(notebook_dir)).resolve()
    notebook_dir = source.parent  # a notebook given by path runs from its own folder
    points = plan(source.stem, grid, profile, notebook_dir)
    stem = source.stem
    version = code_hash(source)
    sweep_dir = runner.output_folder(sweep_dir if sweep_dir is not None else Path("sweeps") / stem / profile,
                                     "sweep folder")

    summary = Summary(sweep_dir, len(points))
    todo, changed = [], 0
    for point in points:
        record = finished_record(sweep_dir / point.key, stem)
        if record is None:
            if (broken := unreadable(sweep_dir / point.key, stem)) is not None:
                print(f"note: {broken}: point {point.key} reruns")
            todo.append(point)
        elif record.get("code") != version and rerun_changed:
            todo.append(point)
        else:
            changed += record.get("code") != version
            summary.skipped.append(point.key)
    if changed:
        print(f"note: {changed} finished point(s) ran other code of {stem}; kept "
              f"(rerun them with --rerun-changed, or delete their folders)")

    start = time.perf_counter()
    bar = tqdm(total=len(points), initial=len(summary.skipped), desc=f"sweep {stem} ({profile})",
               unit="point", disable=not progress)

    def show(refresh: bool = True):
        remaining = len(points) - len(summary.skipped) - len(summary.done) - len(summary.failed) - len(summary.busy)
        bar.set_postfix(done=len(summary.skipped) + len(summary.done), failed=len(summary.failed),
                        remaining=remaining, **({"busy": len(summary.busy)} if summary.busy else {}),
                        refresh=refresh)

    show()
    run_args = (sweep_dir, notebook_dir, version, rerun_changed)
    outcomes = (_ray(todo, run_args, workers, gpus_per_point) if backend == "ray"
                else _local(todo, run_args, workers or 1))
    try:
        for outcome in outcomes:
            if outcome.status == "done":
                summary.done.append(outcome.key)
            elif outcome.status == "skipped":
                summary.skipped.append(outcome.key)
            elif outcome.status == "busy":
                summary.busy.append(outcome.key)
            else:
                summary.failed[outcome.key] = outcome.error
            show(refresh=False)
            bar.update()
    finally:
        outcomes.close()  # on an interrupt: shut the pool down / cancel the Ray tasks
        bar.close()
        summary.seconds = time.perf_counter() - start
    return summary


def ensure(notebook: str, grid: dict[str, list[Any]], profile: str = "quick", sweep_dir: str | Path | None = None,
           workers: int = 1) -> Path:
    """The folder of a sweep to read: ``sweep_dir`` as given, else ``notebook``'s sweep over ``grid`` run now (or
    resumed) into ``sweeps/NOTEBOOK/PROFILE``, rerunning points whose notebook code changed. An empty grid, or a
    notebook that does not declare the grid's names, gets an empty folder and a note, so a reader still gets the
    chapter."""
    if sweep_dir is not None:
        return Path(sweep_dir)
    sweep_dir = Path("sweeps") / notebook / profile
    missing = undeclared(notebook, grid)
    if not grid:
        print(f"The {profile} profile runs no sweep of its own (its grid is empty), so the tables below stay empty.")
        sweep_dir.mkdir(parents=True, exist_ok=True)
    elif missing:
        print(f"{notebook} does not take the parameter(s) {', '.join(missing)}: there is no sweep to run, "
              "and the tables below stay empty.")
        sweep_dir.mkdir(parents=True, exist_ok=True)
    else:
        print(run_sweep(notebook, grid, profile, sweep_dir, workers=workers, rerun_changed=True))
    return sweep_dir


def command_line(notebook: str, grid: dict[str, list[Any]], profile: str = "quick") -> str:
    """The shell command that runs this sweep (``parse_grid`` reads its ``--grid`` back to ``grid``)."""
    import shlex

    def text(value: Any) -> str:
        plain = isinstance(value, str) and runner.parse_value(value) == value and "," not in value
        return value if plain else json.dumps(value)

    items = [f"{name}={','.join(text(v) for v in values)}" for name, values in grid.items()]
    return " ".join(["python -m retain_utils sweep", shlex.quote(notebook), "--profile", profile, "--grid",
                     *map(shlex.quote, items)])


__all__ = ["BACKENDS", "Point", "Outcome", "Summary", "parse_grid", "check_grid", "undeclared", "expand",
           "point_key", "plan", "code_hash", "run_point", "run_sweep", "ensure", "command_line"]
