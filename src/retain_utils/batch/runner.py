"""Execute the book's notebooks with papermill, and build the book from the executed copies.

Layout of one run: ``<output_dir>/<stem>.ipynb`` (the executed copy) beside ``<stem>.results.json``
(written by the notebook itself through :func:`retain_utils.core.results.save`).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from ..chapters.profiles import PROFILE_NAMES, check_profile

ROOT = Path(__file__).resolve().parents[3]  # the repository, for an editable install
NOTEBOOK_DIR = ROOT / "notebooks"
BUILD_DIR = ROOT / "_build"
KERNEL = "python3"
# Injected by the runner into every notebook; a notebook must declare them in its parameters cell.
RUNNER_PARAMETERS = ("profile", "results_path")
# Appended by the runner as every notebook's last cell (hidden in the book): its wall time and peak memory.
FOOTPRINT_CELL = "from retain_utils.core import results\n_ = results.save_footprint({results!r}, started={started!r})"


class NotebookError(RuntimeError):
    """A notebook failed: names the notebook, the cell and where the executed copy with the traceback is."""


@dataclass(frozen=True)
class NotebookRun:
    notebook: str
    executed: Path
    results: Path
    seconds: float


def notebook_names(notebook_dir: Path = NOTEBOOK_DIR) -> list[str]:
    return sorted(p.stem for p in Path(notebook_dir).glob("*.ipynb"))


def find_notebook(name: str, notebook_dir: Path = NOTEBOOK_DIR) -> Path:
    """``01_toy_kl``, ``01_toy_kl.ipynb`` or a path -> the notebook file; unknown names list the valid ones."""
    path = Path(name)
    try:
        if path.suffix == ".ipynb" and path.is_file():
            return path.resolve()
        candidate = Path(notebook_dir) / f"{path.stem}.ipynb"
        if path.stem and candidate.is_file():
            return candidate
    except OSError:  # a name too long for the file system, say: no notebook of that name
        pass
    valid = ", ".join(notebook_names(notebook_dir)) or "(none)"
    raise ValueError(f"unknown notebook {name!r}; valid notebooks: {valid}")


def declared_parameters(path: Path) -> dict[str, Any]:
    """Names (and inferred defaults) in the notebook's cell tagged ``parameters``."""
    import papermill

    return papermill.inspect_notebook(str(path))


def check_parameters(path: Path, params: dict[str, Any], profile: str | None = None, what: str = "value") -> None:
    """Every name declared by the notebook and not set by the runner; with ``profile``, every value of its
    parameter's type and in range (``settings.check_value``, the checks the notebooks' setup makes)."""
    from ..chapters import settings  # the checks import the trainers' config, which a bare ``--help`` need not load

    for name in RUNNER_PARAMETERS:
        if name in params:
            raise ValueError(f"{name!r} cannot be set as a parameter: the runner sets it"
                             + (" (use --profile for the profile)" if name == "profile" else ""))
    declared = declared_parameters(path)
    if not declared:
        raise ValueError(f"{path.name} has no cell tagged 'parameters'")
    missing = [p for p in RUNNER_PARAMETERS if p not in declared]
    if missing:
        raise ValueError(f"{path.name} must declare {', '.join(missing)} in its parameters cell")
    unknown = sorted(set(params) - set(declared))
    if unknown:
        raise ValueError(
            f"{path.name} declares no parameter {', '.join(map(repr, unknown))}; "
            f"its parameters: {', '.join(declared)}"
        )
    if profile is not None:
        for name, value in params.items():
            settings.check_value(path.stem, profile, name, value, declared[name]["default"], what=what)
        settings.check_run(path.stem, profile, params, {n: d["default"] for n, d in declared.items()})


def output_folder(path: str | Path, what: str = "output folder") -> Path:
    """``path`` resolved and created; a file, a folder that cannot be created or one not writable is a one-line
    ValueError. An empty name is refused (it would mean the current folder)."""
    if not str(path).strip():
        raise ValueError(f"{what} is empty: give a folder (e.g. -o runs/mine)")
    path = Path(path).resolve()
    try:
        if path.exists() and not path.is_dir():
            raise ValueError(f"{what} {path} is a file, not a folder")
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ValueError(f"cannot create {what} {str(path)[:120]}{'...' if len(str(path)) > 120 else ''}: "
                         f"{e.strerror or e}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ValueError(f"{what} {path} is not writable")
    return path


def run_notebook(
    name: str,
    profile: str = "quick",
    params: dict[str, Any] | None = None,
    output_dir: str | Path | None = None,
    notebook_dir: Path = NOTEBOOK_DIR,
    progress: bool = True,
) -> NotebookRun:
    """Execute one notebook with ``profile`` and extra ``params``; raise NotebookError if a cell fails.

    Everything is checked before a kernel starts. The notebook runs with the output folder as its
    working directory, so anything it writes (checkpoints, logs) lands beside its executed copy.
    """
    import papermill
    from papermill.exceptions import PapermillExecutionError

    check_profile(profile)
    params = dict(params or {})
    source = find_notebook(name, notebook_dir)
    check_parameters(source, params, profile)
    out = output_folder(output_dir if output_dir is not None else BUILD_DIR / "executed" / profile)
    executed = out / source.name
    results = out / f"{source.stem}.results.json"
    injected = {**params, "profile": profile, "results_path": str(results)}
    # The results file records this execution only (it merges as the notebook saves): an earlier one's runs
    # would otherwise stay in it. A resumed notebook reads its finished runs back from their run folders.
    results.unlink(missing_ok=True)

    start = time.perf_counter()
    try:
        papermill.execute_notebook(
            with_footprint(source, results, time.time()), str(executed), parameters=injected, kernel_name=KERNEL,
            cwd=str(out), progress_bar=progress,
        )
    except PapermillExecutionError as e:
        mark_incomplete(results, f"the notebook failed in cell {e.cell_index}: {e.ename}: {e.evalue}"[:300])
        raise NotebookError(
            f"notebook {source.stem} failed in cell {e.cell_index} (In [{e.exec_count}]): "
            f"{e.ename}: {e.evalue}\nexecuted copy with the full traceback: {executed}"
        ) from None
    except KeyboardInterrupt:
        mark_incomplete(results, "interrupted (Ctrl-C) before the notebook finished")
        raise
    seconds = time.perf_counter() - start
    hide_injected_parameters(executed)
    if not results.exists():
        raise NotebookError(f"notebook {source.stem} ran but wrote no results file {results}")
    return NotebookRun(source.stem, executed, results, seconds)


def mark_incomplete(results_path: Path, why: str) -> None:
    """Mark a results file that a stopped notebook left half-written: ``"incomplete": why``, so no reader takes
    it for a finished run. Nothing to do when the notebook wrote none; a file that cannot be rewritten (a full
    disk) is left as it is."""
    from ..core import results

    if results_path.exists():
        try:
            results.save(results_path, incomplete=why)
        except (OSError, ValueError):
            pass


def with_footprint(source: Path, results: Path, started: float):
    """The notebook at ``source`` with ``FOOTPRINT_CELL`` appended, tagged ``remove-cell`` for the book."""
    import nbformat

    nb = nbformat.read(source, as_version=4)
    cell = nbformat.v4.new_code_cell(FOOTPRINT_CELL.format(results=str(results), started=started))
    cell.metadata["tags"] = ["remove-cell"]
    nb.cells.append(cell)
    return nb


def hide_injected_parameters(executed: Path) -> None:
    """Tag papermill's injected-parameters cell ``remove-cell``, so the book shows the notebook's own parameters
    cell (with its comments) and not a second, machine-written one."""
    import nbformat

    nb = nbformat.read(executed, as_version=4)
    for cell in nb.cells:
        tags = cell.metadata.get("tags", [])
        if "injected-parameters" in tags and "remove-cell" not in tags:
            cell.metadata["tags"] = [*tags, "remove-cell"]
    nbformat.write(nb, executed)


def run_all(
    profile: str = "quick",
    output_dir: str | Path | None = None,
    notebook_dir: Path = NOTEBOOK_DIR,
    names: list[str] | None = None,
) -> tuple[list[NotebookRun], dict[str, str]]:
    """Run every notebook; a failure is recorded and the others still run. Returns (runs, failures)."""
    check_profile(profile)
    paths = [find_notebook(n, notebook_dir) for n in (names or notebook_names(notebook_dir))]
    for path in paths:  # every notebook's refusal (colab's GPU on a CPU, say) before the first kernel starts
        check_parameters(path, {}, profile)
    runs, failures = [], {}
    for path in tqdm(paths, desc=f"notebooks ({profile})", unit="nb"):
        try:
            runs.append(run_notebook(path.stem, profile, output_dir=output_dir, notebook_dir=notebook_dir))
        except NotebookError as e:
            failures[path.stem] = str(e)
    return runs, failures


BOOK_SOURCES = ("_config.yml", "_toc.yml", "references.bib", "book")


def build_book(
    profile: str = "quick",
    root: Path = ROOT,
    executed_dir: str | Path | None = None,
    run: bool = True,
) -> Path:
    """Run every notebook (unless ``run=False``), then build the HTML book from the executed copies.

    The book is assembled in ``_build/stage``: the prose and config as they are, the notebooks replaced by
    their executed copies. Jupyter Book itself executes nothing (``execute_notebooks: 'off'``). Page paths
    match the repository's, so the Colab buttons open the source notebooks. Returns ``_build/html/index.html``.
    """
    check_profile(profile)
    root = Path(root)
    executed = Path(executed_dir) if executed_dir else root / "_build" / "executed" / profile
    failures: dict[str, str] = {}
    if run:
        _, failures = run_all(profile, executed, notebook_dir=root / "notebooks")

    stage = root / "_build" / "stage"
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    for item in BOOK_SOURCES:
        src = root / item
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, stage / item)
    (stage / "notebooks").mkdir()
    for source in sorted((root / "notebooks").glob("*.ipynb")):
        copy = executed / source.name
        if not copy.exists():
            raise FileNotFoundError(f"no executed copy of {source.stem} in {executed}: run the notebooks first")
        shutil.copy2(copy, stage / "notebooks" / source.name)

    jupyter_book = Path(sys.executable).with_name("jupyter-book")  # the venv's, whatever PATH says
    cmd = [str(jupyter_book), "build", str(stage), "--path-output", str(root), "--all"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"jupyter-book build failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}")
    if failures:
        listing = "\n\n".join(failures.values())
        raise NotebookError(f"book built, but {len(failures)} notebook(s) failed:\n{listing}")
    return root / "_build" / "html" / "index.html"


def parse_value(text: str) -> Any:
    """A command-line parameter value: JSON if it parses (numbers, lists, true/null), else the string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


__all__ = [
    "PROFILE_NAMES", "NotebookError", "NotebookRun", "notebook_names", "find_notebook",
    "declared_parameters", "run_notebook", "run_all", "build_book", "parse_value",
]
