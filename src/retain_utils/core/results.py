"""Results files: each executed notebook writes one JSON beside its executed copy.

Later steps (the book, sweeps, the results chapter) read these files, never a notebook's cell outputs.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
import resource
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from .. import __version__
from . import provenance
from .layout import ERROR_FILE, finished_record, point_folders, read_params, read_record, results_file, unreadable
from .tasks import TASK_NAMES

_LIBRARIES = ("torch", "transformers", "peft", "numpy", "pandas", "papermill", "retain_utils")


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in _LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    versions["retain_utils"] = __version__  # the code that ran, whatever an older install's metadata says
    return versions


def _jsonable(obj: Any) -> Any:
    """numpy scalars/arrays and dataclass-like objects -> plain JSON types."""
    if dataclasses.is_dataclass(obj) and hasattr(obj, "to_dict"):
        return obj.to_dict()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "__dict__") and not isinstance(obj, type):
        return vars(obj)
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot write {type(obj).__name__} to a results file")


def finite(obj: Any) -> Any:
    """``obj`` with every NaN or infinity replaced by None: JSON has no NaN (``json`` would write a bare ``NaN``
    that other readers reject); ``null`` reads back as NaN in a pandas float column and in ``RunRecord``."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    return obj


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_atomic(path: str | os.PathLike, write: Any) -> None:
    """Call ``write(f)`` on a temporary file in the same folder, then rename it into ``path``: readers never see
    half a file, and a failed write (a full disk) leaves the old file, if any, as it was. The file gets the
    permissions the umask gives a new file (``mkstemp`` alone would make it private)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "w") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: str | os.PathLike, data: Any) -> None:
    """Write ``data`` as JSON through ``write_atomic``: readers never see half a file."""
    text = json.dumps(finite(json.loads(json.dumps(data, default=_jsonable))), indent=2, allow_nan=False)
    write_atomic(path, lambda f: f.write(text))


def save(path: str | os.PathLike | None, **sections: Any) -> dict:
    """Merge ``sections`` (e.g. ``config=..., metrics=...``) into the results file at ``path``.

    Call it as each part of a notebook finishes: a later failure keeps what was already written.
    ``path=None`` (an interactive session the runner did not start) only returns the merged record.
    """
    record: dict[str, Any] = {}
    if path is not None and Path(path).exists():
        record = load(path)
    record.update(finite(json.loads(json.dumps(sections, default=_jsonable))))
    record["versions"] = library_versions()
    record["saved_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    if path is not None:
        write_json_atomic(path, record)
    return record


def load(path: str | os.PathLike) -> dict:
    """A results (or point) file's JSON object; one that does not parse is a ValueError naming the file and
    line (``layout.read_record``)."""
    return read_record(path)


def peak_rss_bytes() -> int:
    """The most resident memory this process has held so far, in bytes (``ru_maxrss``: KiB on Linux, bytes on
    macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def save_footprint(path: str | os.PathLike | None, started: float) -> dict:
    """Record what running the notebook took: ``timings.notebook_seconds`` (wall time since ``started``, a
    ``time.time()``) and ``machine.peak_rss_bytes`` (this kernel's peak memory) beside the CPU flags and dtype.
    The runner makes a call to it every notebook's last cell, so every results file carries both; a notebook
    that wrote no results file gets none (the runner reports it)."""
    peak, seconds = peak_rss_bytes(), time.time() - started
    if path is None or not Path(path).exists():
        return {}
    record = load(path)
    return save(path, timings={**record.get("timings", {}), "notebook_seconds": seconds},
                machine={**provenance.machine(), **record.get("machine", {}), "peak_rss_bytes": peak})


# ----- a sweep's results (folder layout: retain_utils.core.layout) -------------------------------------------------

RUN_KEYS = ("variant", "target", "seed", "gain", "drop")  # what paper_table needs from each run


def _flatten(record: dict, prefix: str = "") -> dict:
    """``{"accuracy_final": {"mmlu": 60.0}}`` -> ``{"accuracy_final.mmlu": 60.0}``."""
    flat = {}
    for key, value in record.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _point_columns(meta: dict, fixed: dict) -> dict:
    """The point's fixed columns, then its parameters (prefixed ``param.`` where a name is taken)."""
    row = dict(fixed)
    for name, value in meta["params"].items():
        row[f"param.{name}" if name in fixed else name] = value
    return row


def _sorted(table, columns):
    """Rows in the order of the parameters' values (point folders are named by hash, in no useful order)."""
    columns = [c for c in columns if c in table.columns]
    try:
        return table.sort_values(columns, kind="stable").reset_index(drop=True) if columns else table
    except TypeError:  # values of mixed types: keep the folders' order
        return table


def points(sweep_dir: str | os.PathLike):
    """One row per point of a sweep: ``point`` (its folder), ``status`` (done / failed / unfinished /
    unreadable), notebook, profile, its parameters, ``seconds`` and ``error``. Unfinished: killed, or running
    now; unreadable: a point file cut short (named in ``error``), so the point reruns."""
    import pandas as pd

    rows, params = [], {}
    for folder in point_folders(sweep_dir):
        try:
            meta = read_params(folder)
        except ValueError as e:
            rows.append({"point": folder.name, "status": "unreadable", "seconds": None, "error": str(e)})
            continue
        params.update(dict.fromkeys(meta["params"]))
        row = _point_columns(meta, {"point": meta["key"], "status": "unfinished", "notebook": meta["notebook"],
                                    "profile": meta["profile"], "seconds": None, "error": None})
        done = finished_record(folder, meta["notebook"])
        broken = unreadable(folder, meta["notebook"])
        if done is not None:
            row.update(status="done", seconds=done["seconds"], error="")
        elif broken is not None:
            row.update(status="unreadable", error=f"{broken} (the point reruns)")
        elif (folder / ERROR_FILE).exists():
            try:
                error = read_record(folder / ERROR_FILE, ("error",))
                row.update(status="failed", seconds=error.get("seconds"), error=error["error"])
            except ValueError as e:
                row.update(status="failed", error=str(e))
        rows.append(row)
    fixed = ["point", "status", "notebook", "profile", "seconds", "error"]
    table = pd.DataFrame(rows).reindex(columns=list(dict.fromkeys([*fixed, *(k for r in rows for k in r)])))
    return _sorted(table[[*fixed[:4], *(c for c in table.columns if c not in fixed), *fixed[4:]]], params)


def status_line(points_table, sweep_dir: str | os.PathLike) -> str:
    """``3 point(s) in /abs/sweep: 2 done, 1 failed`` from :func:`points`."""
    counts = points_table["status"].value_counts()
    return (f"{len(points_table)} point(s) in {Path(sweep_dir).resolve()}: "
            + (", ".join(f"{n} {status}" for status, n in counts.items()) or "none"))


def no_runs_note(points_table) -> str:
    """Why a sweep has no table yet: no point finished, or the finished ones wrote no per-run results."""
    done = int((points_table["status"] == "done").sum()) if len(points_table) else 0
    return "No runs yet: " + (f"the {done} finished point(s) of this sweep wrote no per-run results"
                              if done else "no point of this sweep has finished") + ", so there is no table to show."


def failures(sweep_dir: str | os.PathLike):
    """The sweep's failed points, with their error (the executed copy in the point's folder has the traceback)."""
    table = points(sweep_dir)
    return table[table["status"] == "failed"].reset_index(drop=True)


def _finished_points(sweep_dir: str | os.PathLike) -> list[tuple[Path, dict]]:
    """(folder, parameters) of every finished point whose files all parse; a point with a file cut short is
    left out (``points`` lists it as unreadable, naming the file)."""
    out = []
    for folder in point_folders(sweep_dir):
        try:
            meta = read_params(folder)
        except ValueError:
            continue
        if finished_record(folder, meta["notebook"]) is not None:
            out.append((folder, meta))
    return out


def collect(sweep_dir: str | os.PathLike):
    """Every run of every finished point of a sweep, as one tidy table: one row per (point, run).

    Columns: ``point``, ``notebook``, ``profile``, the point's parameters, ``run`` (its index in the
    notebook's ``runs`` list), then the run's own fields, nested ones flattened (``accuracy_final.mmlu``).
    A point whose notebook wrote no ``runs`` adds no rows; failed and unfinished points are in :func:`points`.
    """
    import pandas as pd

    rows, params = [], {}
    for folder, meta in _finished_points(sweep_dir):
        params.update(dict.fromkeys(meta["params"]))
        record = load(results_file(folder, meta["notebook"]))
        base = _point_columns(meta, {"point": meta["key"], "notebook": meta["notebook"], "profile": meta["profile"]})
        for i, run in enumerate(record.get("runs") or []):
            flat = _flatten(_tidy(run))
            for name, value in meta["params"].items():
                if name in flat and flat[name] != value:
                    raise ValueError(f"point {meta['key']}: run {i} has {name}={flat[name]!r} "
                                     f"but the point ran with {name}={value!r}")
            rows.append({**base, "run": i, **flat})
    if not rows:
        return pd.DataFrame(columns=["point", "notebook", "profile", "run"])
    return _sorted(pd.DataFrame(rows), [*params, "run"])


def _tidy(run: dict) -> dict:
    """A run record as one table row holds it: no per-question lists (``evals``, rollouts), retention as its mean
    (nats/token)."""
    row = {k: v for k, v in run.items() if k not in ("evals", "correct_rollouts", "retention")}
    row["retention"] = (run.get("retention") or {}).get("mean")
    return row


def records(sweep_dir: str | os.PathLike, keep=None) -> list:
    """Every run record (``records.RunRecord``) of every finished point of a sweep, in point order. A run's
    ``config["out_dir"]`` (its logs), relative to the notebook's working folder when it ran, is made to name
    the point folder's copy, so the logs are found from wherever the sweep is read. ``keep(saved)``: a filter on
    each point's whole results file (e.g. on the package version that wrote it)."""
    from .records import RunRecord

    out = []
    for folder, meta in _finished_points(sweep_dir):
        saved = load(results_file(folder, meta["notebook"]))
        if keep is not None and not keep(saved):
            continue
        for run in saved.get("runs") or []:
            record = RunRecord.from_dict(run)
            if record.config.get("out_dir"):
                record.config["out_dir"] = str(folder / record.config["out_dir"])  # absolute stays as it is
            out.append(record)
    return out


def runs_frame(records: list) -> "Any":
    """A notebook's run records as one tidy table, like :func:`collect`'s (nested fields flattened), so
    :func:`paper_table` and :func:`rl_vs_sft_verdict` read 02's, 03's and 04's runs alike."""
    import pandas as pd

    from .records import as_records

    return pd.DataFrame([_flatten(_tidy(r.to_dict())) for r in as_records(records)])


def paper_table(runs, spread: str = "std", variants: list[str] | None = None, targets: list[str] | None = None):
    """Table 1 of the paper from :func:`collect`'s (or :func:`runs_frame`'s) table: rows variant (a method's
    plain run is labelled "SFT", "GRPO", ...), columns target, cells ``gain / drop`` as mean ± spread over seeds
    with the number of seeds. Returns ``(text, numeric)``; ``numeric`` has one row per (variant, target):
    gain_mean, gain_std, drop_mean, drop_std, n.

    ``spread``: ``std`` (sample standard deviation over seeds) or ``sem`` (its standard error).
    ``variants`` / ``targets``: which rows / columns, in that order (default: all, in the runs' order).
    """
    if spread not in ("std", "sem"):
        raise ValueError(f"unknown spread {spread!r}; valid: std, sem")
    missing = [k for k in RUN_KEYS if k not in runs.columns]
    if missing:
        raise ValueError(f"runs lack {', '.join(missing)}; columns: {', '.join(map(str, runs.columns))}")
    if runs.empty:
        raise ValueError("no runs to tabulate")
    for name, chosen in (("variant", variants), ("target", targets)):
        unknown = sorted(set(chosen or []) - set(runs[name]))
        if unknown:
            raise ValueError(f"no runs with {name} {', '.join(map(repr, unknown))}; "
                             f"{name}s in the runs: {', '.join(map(str, dict.fromkeys(runs[name])))}")
    variants = list(variants or dict.fromkeys(runs["variant"]))
    targets = list(targets or dict.fromkeys(runs["target"]))
    runs = runs[runs["variant"].isin(variants) & runs["target"].isin(targets)]
    twice = runs[runs.duplicated(["variant", "target", "seed"], keep=False)]
    if not twice.empty:
        row = twice.iloc[0]
        raise ValueError(f"variant {row['variant']}, target {row['target']} has seed {row['seed']} more than once: "
                         "the runs differ in something besides the seed; select one setting first")
    numeric = runs.groupby(["variant", "target"], sort=False).agg(
        gain_mean=("gain", "mean"), gain_std=("gain", "std"),
        drop_mean=("drop", "mean"), drop_std=("drop", "std"), n=("seed", "nunique"))
    if spread == "sem":
        numeric[["gain_std", "drop_std"]] = numeric[["gain_std", "drop_std"]].div(numeric["n"] ** 0.5, axis=0)
        numeric = numeric.rename(columns={"gain_std": "gain_sem", "drop_std": "drop_sem"})

    def cell(row) -> str:
        def one(name):
            mean, sd = row[f"{name}_mean"], row[f"{name}_{spread}"]
            return f"{mean:.1f}" if row["n"] < 2 else f"{mean:.1f} ± {sd:.1f}"
        return f"{one('gain')} / {one('drop')} (n={int(row['n'])})"

    text = numeric.apply(cell, axis=1).unstack("target")
    text = text.reindex(index=variants, columns=targets)
    text.columns.name = f"gain / drop, pp (mean ± {spread} over seeds)"
    return text.fillna("–"), numeric


def table_1(records: list, variants: list[str] | None = None):
    """``paper_table`` of run records with the variants that ran (in ``variants``' order): ``(text, numeric)``,
    or a one-cell note and None when there are no runs."""
    import pandas as pd

    runs = runs_frame(records)
    if runs.empty:
        return pd.DataFrame({"Table 1": ["no runs committed yet"]}), None
    present = [v for v in (variants or []) if v in set(runs["variant"])] or None
    targets = [t for t in TASK_NAMES if t in set(runs["target"])]  # Table 1's order
    return paper_table(runs, variants=present, targets=targets)


# A method counts as having learned its target at a mean held-out gain of this many pp (the calibration's bar):
# below it, a difference in forgetting does not test the paper's claim, which compares methods at a useful gain.
LEARNED_PP = 10.0


def rl_vs_sft_verdict(numeric, rl: str = "GRPO", sft: str = "SFT") -> str:
    """One sentence per target, from :func:`paper_table`'s numeric table: does variant ``rl`` forget less than
    ``sft``, as the paper finds on every target of its Table 1? Where either gained less than ``LEARNED_PP`` on the
    target, the sentence says the claim is not tested there. The defaults are the plain GRPO and SFT runs' labels in
    every notebook (``records.METHOD_LABELS``). Empty when no target has both."""
    lines, seeds = [], []
    for target in dict.fromkeys(numeric.index.get_level_values("target")):
        rows = numeric.xs(target, level="target")
        if not {rl, sft} <= set(rows.index):
            continue
        a, b = rows.loc[rl], rows.loc[sft]
        seeds.append(int(min(a["n"], b["n"])))
        less = a["drop_mean"] < b["drop_mean"]
        unlearned = [name for name, row in ((rl, a), (sft, b)) if row["gain_mean"] < LEARNED_PP]
        if unlearned:
            verb = "drops less" if less else "drops no less"
            verdict = (f", but {' and '.join(unlearned)} gained less than {LEARNED_PP:g} pp on the target: the "
                       "paper's claim (less forgetting at a useful gain) is not tested here.")
        else:
            verb = "forgets less" if less else "does **not** forget less"
            verdict = f": {'as in' if less else 'unlike'} the paper."
        lines.append(f"On **{target}**, {rl} (gain {a['gain_mean']:+.1f}, drop {a['drop_mean']:+.1f} pp) {verb} than "
                     f"{sft} (gain {b['gain_mean']:+.1f}, drop {b['drop_mean']:+.1f} pp){verdict}")
    if not lines:
        return ""
    if min(seeds) < 2:
        lines.append("Some cells rest on a single seed: read them as illustrations, not findings.")
    else:
        lines.append("Compare each difference with the spreads over seeds in the table above.")
    return " ".join(lines)


def export_csv(sweep_dir: str | os.PathLike, out_dir: str | os.PathLike | None = None) -> list[Path]:
    """Write ``runs.csv``, ``points.csv`` and (when the runs have gain and drop) ``paper_table.csv`` into
    ``out_dir`` (default: the sweep folder), each atomically. Returns the paths written."""
    out_dir = Path(out_dir if out_dir is not None else sweep_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    runs = collect(sweep_dir)
    tables = {"runs.csv": (runs, False), "points.csv": (points(sweep_dir), False)}
    if not runs.empty and all(k in runs.columns for k in RUN_KEYS):
        tables["paper_table.csv"] = (paper_table(runs)[1], True)
    written = []
    for name, (table, index) in tables.items():
        write_atomic(out_dir / name, lambda f: table.to_csv(f, index=index))
        written.append(out_dir / name)
    return written
