"""A sweep's folder layout, read by ``sweep`` (which writes it) and ``results`` (which tabulates it).

``<sweep_dir>/<key>/`` per point, ``key`` a stable hash of (notebook, profile, parameters). A point folder holds
``params.json``, the executed notebook, its results JSON, then ``done.json`` once it finished (or ``error.json``
if it failed), and ``.lock`` while a sweep runs it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

PARAMS_FILE, DONE_FILE, ERROR_FILE, LOCK_FILE = "params.json", "done.json", "error.json", ".lock"


def results_file(folder: str | os.PathLike, notebook: str) -> Path:
    """The results JSON an executed notebook wrote into its point folder."""
    return Path(folder) / f"{notebook}.results.json"


def finished_record(folder: str | os.PathLike, notebook: str) -> dict | None:
    """The point's done record if it finished (done marker and results file both there), else None."""
    done = Path(folder) / DONE_FILE
    if done.exists() and results_file(folder, notebook).exists():
        return json.loads(done.read_text())
    return None


def point_folders(sweep_dir: str | os.PathLike) -> list[Path]:
    """Every point folder of a sweep (those with a ``params.json``), sorted by key."""
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise FileNotFoundError(f"no sweep folder {sweep_dir}")
    return sorted(p.parent for p in sweep_dir.glob(f"*/{PARAMS_FILE}"))
