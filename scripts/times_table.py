"""The book's table of times: each notebook's wall time and its kernel's peak memory, per build, as markdown.

``python scripts/times_table.py _build/executed/quick [OTHER_BUILD ...]`` reads every ``*.results.json`` of
each folder (or the results files named) and prints one row per notebook, and one row per build for the whole
book (times added, the largest peak), with the package version, the CPU flags and the dtype each ran with: one
build per CPU kind measured. The numbers come from the results files (``timings.notebook_seconds``,
``machine.peak_rss_bytes``, written by the runner), never from memory.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

SUFFIX = ".results.json"
HEADER = ("| CPU flags | dtype | retain_utils | profile | notebook | time (min) | peak memory (GiB) |\n"
          "|---|---|---|---|---|---:|---:|")


def results_files(paths: list[Path]) -> list[Path]:
    """Every results file named or inside a named folder; a path that is neither is an error naming it."""
    files = []
    for path in paths:
        if path.is_dir():
            found = sorted(path.glob(f"*{SUFFIX}"))
            if not found:
                raise ValueError(f"{path}: no {SUFFIX} files in this folder")
            files += found
        elif path.is_file() and path.name.endswith(SUFFIX):
            files.append(path)
        else:
            raise ValueError(f"{path}: neither a folder nor a {SUFFIX} file")
    return files


def row(path: Path) -> dict:
    """One notebook's facts from its results file; a file without the runner's records names what it lacks."""
    try:
        record = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not JSON ({e})") from None
    machine, timings = record.get("machine") or {}, record.get("timings") or {}
    missing = [name for name, value in (("timings.notebook_seconds", timings.get("notebook_seconds")),
                                        ("machine.peak_rss_bytes", machine.get("peak_rss_bytes"))) if value is None]
    if missing:
        raise ValueError(f"{path}: no {' or '.join(missing)} (written when the runner executes the notebook)")
    config = record.get("config") if isinstance(record.get("config"), dict) else {}
    return {"flags": " ".join(machine.get("cpu_flags") or []) or "(none)", "dtype": machine.get("dtype", "?"),
            "version": (record.get("versions") or {}).get("retain_utils", "?"),
            "profile": config.get("profile") or path.parent.name,
            "notebook": path.name[: -len(SUFFIX)], "seconds": float(timings["notebook_seconds"]),
            "peak": int(machine["peak_rss_bytes"])}


def table(rows: list[dict]) -> str:
    """Markdown: the rows grouped by build (CPU flags, dtype, version, profile), each build closed by its book
    total (sum of times, largest peak)."""
    builds: dict[tuple, list[dict]] = {}
    for r in rows:
        builds.setdefault((r["flags"], r["dtype"], r["version"], r["profile"]), []).append(r)
    lines = [HEADER]
    for key, members in builds.items():
        cells = " | ".join(key)
        for r in sorted(members, key=lambda r: r["notebook"]):
            lines.append(f"| {cells} | {r['notebook']} | {r['seconds'] / 60:.1f} | {r['peak'] / 2**30:.1f} |")
        total, peak = sum(r["seconds"] for r in members), max(r["peak"] for r in members)
        lines.append(f"| {cells} | **book** | **{total / 60:.1f}** | **{peak / 2**30:.1f}** |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", type=Path, nargs="+", help="executed-notebook folders or results files")
    args = parser.parse_args(argv)
    try:
        print(table([row(f) for f in results_files(args.paths)]))
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
