"""A sweep's folder layout, read by ``sweep`` (which writes it) and ``results`` (which tabulates it).

``<sweep_dir>/<key>/`` per point, ``key`` a stable hash of (notebook, profile, parameters). A point folder holds
``params.json``, the executed notebook, its results JSON, then ``done.json`` once it finished (or ``error.json``
if it failed), and ``.lock`` while a sweep runs it; ``runs/`` holds each run's folder (its logs, then its record). A point is finished only when its done record, its
parameters and its results all parse: a file cut short (a full disk, a killed copy) makes it unfinished, so it
is rerun.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

PARAMS_FILE, DONE_FILE, ERROR_FILE, LOCK_FILE = "params.json", "done.json", "error.json", ".lock"
# a notebook runs in its point folder and trains each run in ``runs/<run>/``; a finished run leaves its record there
# (``record.json``), which a rerun of the point reads back instead of training the run again
RUNS_DIR, RECORD_FILE = "runs", "record.json"


def results_file(folder: str | os.PathLike, notebook: str) -> Path:
    """The results JSON an executed notebook wrote into its point folder."""
    return Path(folder) / f"{notebook}.results.json"


def read_json(path: str | os.PathLike) -> Any:
    """The JSON value in ``path``; a file that is not JSON (cut short, not text) is a ValueError naming the
    file, its line and column."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        where = f"line {e.lineno}, column {e.colno}"
        what = f"{e.msg} {where}" if e.msg.endswith(" at") else f"{e.msg} at {where}"
        raise ValueError(f"{path} is not valid JSON: {what} (a file cut short? delete it, or rerun what wrote "
                         "it)") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not a text file") from None


def read_record(path: str | os.PathLike, keys: tuple[str, ...] = ()) -> dict:
    """``read_json`` of a file holding a JSON object with (at least) ``keys``; else a ValueError naming the file."""
    record = read_json(path)
    if not isinstance(record, dict):
        raise ValueError(f"{path} holds a {type(record).__name__}, not a JSON object")
    missing = [k for k in keys if k not in record]
    if missing:
        raise ValueError(f"{path} lacks {', '.join(map(repr, missing))}")
    return record


def read_params(folder: str | os.PathLike) -> dict:
    """A point's ``params.json``: notebook (a plain name), profile and params (an object); else a ValueError
    naming the file."""
    path = Path(folder) / PARAMS_FILE
    meta = read_record(path, ("notebook", "profile", "params"))
    if not isinstance(meta["notebook"], str) or Path(meta["notebook"]).name != meta["notebook"] \
            or meta["notebook"] in ("", ".", ".."):
        raise ValueError(f"{path}: 'notebook' must be a notebook's name, got {meta['notebook']!r}")
    if not isinstance(meta["profile"], str) or not isinstance(meta["params"], dict):
        raise ValueError(f"{path}: 'profile' must be a string and 'params' an object")
    meta.setdefault("key", Path(folder).name)
    return meta


def read_done(folder: str | os.PathLike) -> dict:
    """A point's ``done.json``, with its ``seconds`` a finite number >= 0; else a ValueError naming the file."""
    path = Path(folder) / DONE_FILE
    record = read_record(path, ("seconds",))
    seconds = record["seconds"]
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not math.isfinite(seconds) \
            or seconds < 0:
        raise ValueError(f"{path}: 'seconds' must be a number >= 0, got {seconds!r}")
    return record


def unreadable(folder: str | os.PathLike, notebook: str) -> str | None:
    """The error of a point file that is there but does not parse (cut short), naming the file; else None."""
    folder = Path(folder)
    checks = ((folder / DONE_FILE, read_done), (results_file(folder, notebook), read_record),
              (folder / PARAMS_FILE, read_params))
    for path, read in checks:
        if path.exists():
            try:
                read(folder if read is not read_record else path)
            except (ValueError, OSError) as e:
                return str(e)
    return None


def finished_record(folder: str | os.PathLike, notebook: str) -> dict | None:
    """The point's done record if it finished (done record and results there, every point file readable),
    else None: a point with a file cut short counts as unfinished and is rerun."""
    folder = Path(folder)
    if not (folder / DONE_FILE).exists() or not results_file(folder, notebook).exists():
        return None
    if unreadable(folder, notebook) is not None or "incomplete" in read_record(results_file(folder, notebook)):
        return None  # "incomplete": the notebook stopped half-way (runner.mark_incomplete)
    return read_done(folder)


def finished_runs(folder: str | os.PathLike) -> list[Path]:
    """The run folders of a point (``runs/*/`` in it) whose run finished (its record is there), sorted."""
    return sorted(p.parent for p in (Path(folder) / RUNS_DIR).glob(f"*/{RECORD_FILE}"))


def point_folders(sweep_dir: str | os.PathLike) -> list[Path]:
    """Every point folder of a sweep (those with a ``params.json``), sorted by key."""
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise FileNotFoundError(f"no sweep folder {sweep_dir}")
    return sorted(p.parent for p in sweep_dir.glob(f"*/{PARAMS_FILE}"))
