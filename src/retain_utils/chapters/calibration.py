"""The calibrated protocol: per target and method, the learning rate (and budget) under which the target is
actually learned, chosen on calibration seeds that the campaign never uses.

A calibration is a sweep of chapter 2's notebook (``sweep 02_rl_vs_sft --grid ...``, one method, one learning rate
and one seed per point). ``summary`` reads its run records into one row per (target, method, learning rate):
the mean held-out gain over seeds with a seed-level t-interval, the mean drop and the diagnostics flags.
``choose`` applies the rule fixed before any calibrated run: the largest mean gain among settings whose runs
earned no flag (no collapse, no loops, no answers cut off: ``diagnostics``); ``write_choice`` records the choice
and its reason beside the sweep, where the campaign and the book read it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from ..core.intervals import seed_t_interval
from ..core.provenance import REPOSITORY
from ..core.records import as_records
from ..core.results import write_json_atomic

CALIBRATION_SEEDS = (100, 101, 102)  # never a campaign seed
LEARNED_PP = 10.0  # a target counts as learned at a mean held-out gain of this many pp, interval above zero
CHOICE_FILE = "choice.json"


@dataclass(frozen=True)
class Setting:
    """One calibrated setting's outcome over its seeds (gains and drops in pp)."""

    target: str
    method: str
    lr: float
    steps: int
    seeds: tuple[int, ...]
    gain_mean: float
    gain_low: float  # seed-level 95 % t-interval (nan with one seed)
    gain_high: float
    drop_mean: float
    flags: tuple[str, ...]  # every flag any of its runs earned

    @property
    def learned(self) -> bool:
        return self.gain_mean >= LEARNED_PP and self.gain_low > 0


def summary(records) -> list[Setting]:
    """One Setting per (target, method, learning rate, steps) of a calibration's run records, in a stable order."""
    groups: dict[tuple, list] = {}
    for r in as_records(records):
        groups.setdefault((r.target, r.method, float(r.config["lr"]), int(r.config["steps"])), []).append(r)
    out = []
    for (target, method, lr, steps), runs in sorted(groups.items()):
        gains = [r.gain for r in runs]
        low, high = seed_t_interval(gains) if len(runs) > 1 else (math.nan, math.nan)
        out.append(Setting(target, method, lr, steps, tuple(sorted(r.seed for r in runs)),
                           sum(gains) / len(gains), low, high, sum(r.drop for r in runs) / len(runs),
                           tuple(sorted({f for r in runs for f in r.flags}))))
    return out


@dataclass(frozen=True)
class Choice:
    target: str
    method: str
    lr: float | None  # None: no setting of the sweep qualified
    steps: int | None
    learned: bool
    reason: str


def choose(settings: Sequence[Setting]) -> list[Choice]:
    """Per (target, method): the unflagged setting with the largest mean gain, and why."""
    by_pair: dict[tuple[str, str], list[Setting]] = {}
    for s in settings:
        by_pair.setdefault((s.target, s.method), []).append(s)
    out = []
    for (target, method), group in sorted(by_pair.items()):
        tried = ", ".join(f"{s.lr:g}" for s in sorted(group, key=lambda s: s.lr))
        clean = [s for s in group if not s.flags]
        if not clean:
            out.append(Choice(target, method, None, None, False,
                              f"every learning rate tried ({tried}) earned a diagnostics flag: none qualifies"))
            continue
        best = max(clean, key=lambda s: (s.gain_mean, -s.lr))
        flagged = sorted({s.lr for s in group if s.flags})
        interval = ("" if math.isnan(best.gain_low) else
                    f" (95 % interval over {len(best.seeds)} seeds {best.gain_low:+.1f} to {best.gain_high:+.1f})")
        reason = (f"largest mean held-out gain among unflagged settings: {best.gain_mean:+.1f} pp{interval} at lr "
                  f"{best.lr:g}, {best.steps} steps; tried {tried}"
                  + (f"; flagged (excluded): {', '.join(f'{lr:g}' for lr in flagged)}" if flagged else "")
                  + ("" if best.learned else f"; below the {LEARNED_PP:g} pp bar for a learned target"))
        out.append(Choice(target, method, best.lr, best.steps, best.learned, reason))
    return out


def write_choice(path: str | Path, settings: Sequence[Setting], choices: Sequence[Choice]) -> None:
    """The calibration's outcome as JSON: every setting tried and the choice per (target, method)."""
    write_json_atomic(path, {"settings": [asdict(s) for s in settings], "choices": [asdict(c) for c in choices],
                             "rule": "largest mean held-out gain among settings with no diagnostics flag",
                             "seeds": list(CALIBRATION_SEEDS)})


def read_choice(path: str | Path) -> list[Choice]:
    """The choices ``write_choice`` wrote; a damaged file names itself."""
    try:
        data = json.loads(Path(path).read_text())
        return [Choice(**c) for c in data["choices"]]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{path}: not a calibration choice file ({e})") from None


CALIBRATION_DIR = REPOSITORY / "results" / "calibration"  # one sweep folder per target


def load(folder: str | Path = CALIBRATION_DIR) -> list:
    """Every finished calibration run record under ``folder`` (its sweeps, one per target), in a stable order."""
    from ..core.results import records

    folder = Path(folder)
    sweeps = sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
    return [r for sweep in sweeps for r in records(sweep)]


def settings_frame(settings: Sequence[Setting]):
    """The calibration's settings as a table with readable headers (pp, seeds)."""
    import pandas as pd

    rows = [{"Target": s.target, "Method": s.method, "Learning rate": f"{s.lr:g}", "Steps": s.steps,
             "Seeds": len(s.seeds), "Gain, mean (pp)": round(s.gain_mean, 1),
             "Gain 95 % interval over seeds (pp)": "one seed" if math.isnan(s.gain_low)
             else f"{s.gain_low:+.1f} to {s.gain_high:+.1f}",
             "Drop, mean (pp)": round(s.drop_mean, 1), "Flags": ", ".join(s.flags)} for s in settings]
    return pd.DataFrame(rows)


def status_sentence(settings: Sequence[Setting], choices: Sequence[Choice]) -> str:
    """What the committed calibration shows so far: how many settings, which are chosen, which targets learned."""
    if not settings:
        return ("No calibration run is committed yet (`results/calibration/` is empty): the protocol's learning rates "
                "are still the trainers' defaults, and no target has been shown to be learned.")
    runs = sum(len(s.seeds) for s in settings)
    parts = [f"{len(settings)} setting(s) over {runs} run(s) are committed."]
    for c in choices:
        parts.append(f"{c.target}, {c.method}: {c.reason}.")
    missing = [s for s in settings if len(s.seeds) < len(CALIBRATION_SEEDS)]
    if missing:
        parts.append(f"{len(missing)} setting(s) have fewer than the {len(CALIBRATION_SEEDS)} calibration seeds: "
                     "their choice is provisional.")
    return " ".join(parts)
