"""How long each notebook takes and how much memory it needs, as measured, never remembered.

The runner writes each notebook's wall time (``timings.notebook_seconds``) and its kernel's peak memory
(``machine.peak_rss_bytes``) into its results file, beside the CPU flags and dtype. ``measured`` reads those
facts back; ``record`` keeps them, one row per (CPU kind, dtype, package version, profile, notebook), in the
committed ``results/book_times.json``; the README's table of times (``table``) and each chapter's "Time to run"
line (``time_sentence``) are written from that file. Each row also keeps a digest of the build's greedy answers
(``answers_digest``), so that builds on different CPU kinds can be checked to give the same numbers
(``agreement_sentence``): in fp32 they should, answer for answer.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from ..core.provenance import REPOSITORY
from ..core.results import write_json_atomic

SUFFIX = ".results.json"
TIMES_FILE = REPOSITORY / "results" / "book_times.json"
HEADER = ("| CPU flags | cores | dtype | retain_utils | profile | notebook | time (min) | peak memory (GiB) |\n"
          "|---|---:|---|---|---|---|---:|---:|")


@dataclass(frozen=True)
class NotebookTime:
    """One notebook's execution: where it ran, with what, how long and how much memory."""

    flags: str  # the CPU's relevant flags, space-separated (provenance.cpu_flags)
    cores: int
    dtype: str
    version: str  # retain_utils
    profile: str
    notebook: str
    seconds: float
    peak: int  # bytes
    answers: str | None = None  # answers_digest of its results file (None: no evaluated answers, or not recorded)

    @property
    def build(self) -> tuple:
        return (self.flags, self.cores, self.dtype, self.version, self.profile)

    @property
    def kind(self) -> tuple:
        """The CPU kind and settings a build ran with, whatever the package version."""
        return (self.flags, self.cores, self.dtype, self.profile)


def results_files(paths: list[Path]) -> list[Path]:
    """Every results file named or inside a named folder; a path that is neither is an error naming it."""
    files = []
    for path in map(Path, paths):
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


# What a results file's numbers are made of, and no timing: the initial model's counts per task, and per run every
# evaluation's per-question results and answer texts, and its ends scored at the longer budget.
_BASELINE_COUNTS = ("task", "n", "n_correct", "n_lenient", "n_unparsed", "n_truncated", "n_looping")
_RUN_KEYS = ("variant", "seed", "target", "evals", "longer_budget")


def answers_digest(record: dict) -> str | None:
    """A short digest of a results file's greedy answers and the counts scored from them; None for a notebook
    without evaluated answers (the toy, the results chapter). Floats averaged over tokens (KL, retention) are left
    out: across CPU kinds they differ in the last bits even in fp32, while an answer is the same or not."""
    runs = [{k: run.get(k) for k in _RUN_KEYS} for run in record.get("runs") or [] if isinstance(run, dict)]
    baseline = [{k: row.get(k) for k in _BASELINE_COUNTS} for row in record.get("baseline") or []
                if isinstance(row, dict)]
    if not any(run.get("evals") for run in runs) and not baseline:
        return None
    text = json.dumps({"baseline": baseline, "runs": runs}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def measured(path: Path) -> NotebookTime:
    """One notebook's facts from its results file; a file without the runner's records names what it lacks."""
    path = Path(path)
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
    return NotebookTime(flags=" ".join(machine.get("cpu_flags") or []) or "(none)",
                        cores=int(machine.get("cpu_count") or 0), dtype=str(machine.get("dtype", "?")),
                        version=str((record.get("versions") or {}).get("retain_utils", "?")),
                        profile=str(config.get("profile") or path.parent.name), notebook=path.name[: -len(SUFFIX)],
                        seconds=float(timings["notebook_seconds"]), peak=int(machine["peak_rss_bytes"]),
                        answers=answers_digest(record))


def read(path: Path = TIMES_FILE) -> list[NotebookTime]:
    """The recorded rows; none when the file is absent (e.g. a package installed without the repository); a file
    that is not such a record names itself."""
    path = Path(path)
    if not path.exists():
        return []
    try:
        rows = json.loads(path.read_text())["notebooks"]
        return [NotebookTime(**row) for row in rows]
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{path}: not a record of notebook times ({e})") from None


def record(rows: list[NotebookTime], path: Path = TIMES_FILE) -> list[NotebookTime]:
    """Merge ``rows`` into the record at ``path``: a row replaces the one of the same build and notebook, and a
    build of another package version on the same CPU kind replaces that kind's rows (one current build per kind;
    the times of earlier versions are in CHANGELOG.md)."""
    versions = {r.kind: r.version for r in rows}
    kept = {(r.build, r.notebook): r for r in read(path) if versions.get(r.kind, r.version) == r.version}
    kept.update({(r.build, r.notebook): r for r in rows})
    merged = sorted(kept.values(), key=lambda r: (r.version, r.flags, r.dtype, r.profile, r.notebook))
    write_json_atomic(path, {"notebooks": [asdict(r) for r in merged]})
    return merged


def table(rows: list[NotebookTime]) -> str:
    """Markdown: the rows grouped by build (CPU flags, cores, dtype, version, profile), each build closed by its
    book total (sum of times, largest peak)."""
    builds: dict[tuple, list[NotebookTime]] = {}
    for r in rows:
        builds.setdefault(r.build, []).append(r)
    lines = [HEADER]
    for key, members in builds.items():
        cells = " | ".join(map(str, key))
        for r in sorted(members, key=lambda r: r.notebook):
            lines.append(f"| {cells} | {r.notebook} | {r.seconds / 60:.1f} | {r.peak / 2**30:.1f} |")
        total, peak = sum(r.seconds for r in members), max(r.peak for r in members)
        lines.append(f"| {cells} | **book** | **{total / 60:.1f}** | **{peak / 2**30:.1f}** |")
    return "\n".join(lines)


def agreement_sentence(rows: list[NotebookTime]) -> str:
    """Do the builds recorded on different CPU kinds give the same answers? Per notebook and package version, the
    digests of the kinds that recorded one, compared (another version may change numbers: never compared)."""
    parts = []
    for notebook, version in sorted({(r.notebook, r.version) for r in rows if r.answers}):
        same = [r for r in rows if r.notebook == notebook and r.version == version and r.answers]
        names = [f"{r.flags} ({r.dtype})" for r in same]
        if len(same) < 2:
            parts.append(f"{notebook} at {version}: recorded on one CPU kind only ({names[0]})")
        elif len({r.answers for r in same}) == 1:
            parts.append(f"{notebook} at {version}: the same answers on every kind recorded ({'; '.join(names)})")
        else:
            groups: dict[str, list[str]] = {}
            for r, name in zip(same, names):
                groups.setdefault(r.answers, []).append(name)
            parts.append(f"{notebook} at {version}: **answers differ** between kinds ("
                         + " vs ".join("; ".join(g) for g in groups.values()) + ")")
    if not parts:
        return "No build with a digest of its answers is recorded yet."
    return "Greedy answers across CPU kinds (`book_times.answers_digest`): " + ". ".join(parts) + "."


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


def time_sentence(notebook: str, profile: str = "quick", path: Path = TIMES_FILE) -> str:
    """A chapter's "Time to run" line: its measured time and peak memory on every CPU kind recorded for the newest
    package version that has one, with that version, dtype and CPU flags."""
    if not Path(path).exists():  # e.g. the package installed on Colab without the repository's results
        return "**Time to run:** the measured times are in the repository's `results/book_times.json`."
    rows = [r for r in read(path) if r.notebook == notebook and r.profile == profile]
    if not rows:
        return f"**Time to run:** not yet measured for the `{profile}` profile (no row in `results/book_times.json`)."
    newest = max(rows, key=lambda r: tuple(int(p) if p.isdigit() else 0 for p in r.version.split("."))).version
    parts = [f"{_duration(r.seconds)} and {r.peak / 2**30:.1f} GiB at peak on a {r.cores}-core CPU with flags "
             f"{r.flags} ({r.dtype})" for r in rows if r.version == newest]
    return (f"**Time to run:** with the `{profile}` profile, {'; '.join(parts)}; package {newest}, measured by "
            "`make book` alone on the machine (`results/book_times.json`).")
