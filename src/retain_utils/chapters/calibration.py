"""The calibrated protocol: per target and method, the learning rate (and budget) under which the target is
actually learned, chosen on calibration seeds that the campaign never uses.

A calibration is a sweep of chapter 2's notebook (``sweep 02_rl_vs_sft --grid ...``, one method, one learning rate
and one seed per point). ``summary`` reads its run records into one row per (target, method, learning rate):
the mean held-out gain over seeds with a seed-level t-interval, the mean drop, the mean transfer (the gain on
probes that ask the target's own questions, which the drop leaves out) and the diagnostics flags.
``choose`` applies the rule: the largest mean gain among settings whose runs did not collapse on their target
(no ``diagnostics`` flag of the run itself or of the target's answers: no signal, shrunk answers, the target's
answers looping or cut off). Flags on the other tasks are forgetting, the quantity the campaign measures: a rule
that excluded them would pick for each method the setting that forgets least, so they are shown, not excluded.
``write_choice`` records the choice and its reason beside the sweeps (``python -m retain_utils calibration --write``).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..core import layout, provenance
from ..core.intervals import seed_t_interval
from ..core.provenance import REPOSITORY
from ..core.training.config import DEFAULT_LR
from ..core.records import as_records
from ..core.results import LEARNED_PP, write_json_atomic  # LEARNED_PP: a target's learned gain (pp), interval > 0

CALIBRATION_SEEDS = (100, 101, 102)  # never a campaign seed
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
    transfer_mean: float = math.nan  # gain on the probes that ask the target's own questions (nan: none scored)

    @property
    def learned(self) -> bool:
        return self.gain_mean >= LEARNED_PP and self.gain_low > 0

    @property
    def collapsed(self) -> tuple[str, ...]:
        """The flags that rule the setting out: the run's own (``no_signal``, ``shrunk``) and its target's format
        flags (``looping:<target>``, ``cut_off:<target>``); another task's flags are forgetting, not collapse."""
        return tuple(f for f in self.flags if ":" not in f or f.split(":", 1)[1] == self.target)


def summary(records) -> list[Setting]:
    """One Setting per (target, method, learning rate, steps) of a calibration's run records, in a stable order."""
    groups: dict[tuple, list] = {}
    for r in as_records(records):
        groups.setdefault((r.target, r.method, float(r.config["lr"]), int(r.config["steps"])), []).append(r)
    out = []
    for (target, method, lr, steps), runs in sorted(groups.items()):
        gains = [r.gain for r in runs]
        low, high = seed_t_interval(gains) if len(runs) > 1 else (math.nan, math.nan)
        transfers = [r.transfer for r in runs if r.transfer is not None]
        out.append(Setting(target, method, lr, steps, tuple(sorted(r.seed for r in runs)),
                           sum(gains) / len(gains), low, high, sum(r.drop for r in runs) / len(runs),
                           tuple(sorted({f for r in runs for f in r.flags})),
                           sum(transfers) / len(transfers) if transfers else math.nan))
    return out


@dataclass(frozen=True)
class Choice:
    target: str
    method: str
    lr: float | None  # None: no setting of the sweep qualified and the paper's rate was not tried
    steps: int | None
    learned: bool
    reason: str
    fallback: bool = False  # every setting collapsed: the paper's learning rate, its runs flagged


# each method's family: the calibrated method whose learning rate it trains at (the SFT family at SFT's, the RL
# family at GRPO's)
FAMILY = {"sft": "sft", "self_sft": "sft", "grpo": "grpo", "reinforce": "grpo"}
# the paper's learning rates (the trainers' defaults): where every setting tried collapsed, the campaign runs these
PAPER_LR = {method: DEFAULT_LR["rl" if family == "grpo" else "sft"] for method, family in FAMILY.items()}


def choose(settings: Sequence[Setting]) -> list[Choice]:
    """Per (target, method): the setting with the largest mean gain among those that did not collapse on their
    target (``Setting.collapsed``), and why. Where every setting collapsed, the paper's learning rate
    (``PAPER_LR``) if it was tried, marked as a fallback: the campaign still measures that method's forgetting
    there, every table flagging its runs."""
    by_pair: dict[tuple[str, str], list[Setting]] = {}
    for s in settings:
        by_pair.setdefault((s.target, s.method), []).append(s)
    out = []
    for (target, method), group in sorted(by_pair.items()):
        tried = ", ".join(f"{s.lr:g}" for s in sorted(group, key=lambda s: s.lr))
        clean = [s for s in group if not s.collapsed]
        if not clean:
            paper = [g for g in group if method in PAPER_LR and math.isclose(g.lr, PAPER_LR[method], rel_tol=1e-9)]
            if not paper:
                out.append(Choice(target, method, None, None, False,
                                  f"every learning rate tried ({tried}) collapsed on its target: none qualifies"))
                continue
            p = paper[0]
            out.append(Choice(target, method, p.lr, p.steps, False,
                              f"every learning rate tried ({tried}) collapsed on its target, none qualifies: the "
                              f"campaign runs the paper's, {p.lr:g} ({p.steps} steps; {p.gain_mean:+.1f} pp over "
                              f"{len(p.seeds)} seed{'s' * (len(p.seeds) != 1)}, flags {', '.join(p.collapsed)}), "
                              "and every table flags its runs", fallback=True))
            continue
        best = max(clean, key=lambda s: (s.gain_mean, -s.lr))
        flagged = sorted({s.lr for s in group if s.collapsed})
        interval = ("" if math.isnan(best.gain_low) else
                    f" (95 % interval over {len(best.seeds)} seeds {best.gain_low:+.1f} to {best.gain_high:+.1f})")
        forgetting = [f for f in best.flags if f not in best.collapsed]
        reason = (f"largest mean held-out gain among settings that did not collapse on their target: "
                  f"{best.gain_mean:+.1f} pp{interval} at lr {best.lr:g}, {best.steps} steps; tried {tried}"
                  + (f"; collapsed (excluded): {', '.join(f'{lr:g}' for lr in flagged)}" if flagged else "")
                  + (f"; flagged on other tasks (forgetting, shown): {', '.join(forgetting)}" if forgetting else "")
                  + ("" if best.learned else _not_learned(best)))
        out.append(Choice(target, method, best.lr, best.steps, best.learned, reason))
    return out


def _not_learned(s: Setting) -> str:
    """Why a setting does not (yet) count as having learned its target."""
    if s.gain_mean < LEARNED_PP:
        return f"; below the {LEARNED_PP:g} pp bar for a learned target"
    if math.isnan(s.gain_low):
        return f"; at the {LEARNED_PP:g} pp bar on one seed, not yet an interval over seeds"
    return "; its interval over seeds reaches zero"


def write_choice(path: str | Path, settings: Sequence[Setting], choices: Sequence[Choice],
                 pending: Sequence[str] = ()) -> None:
    """The calibration's outcome as JSON: every setting tried, the choice per (target, method) and, where some
    targets still calibrate (their choices left out), what they lack (``pending``)."""
    write_json_atomic(path, {"settings": [asdict(s) for s in settings], "choices": [asdict(c) for c in choices],
                             "rule": "largest mean held-out gain among settings that did not collapse on their "
                                     "target (no flag of the run or of the target's answers)",
                             "seeds": list(CALIBRATION_SEEDS), "pending": list(pending)})


def read_choice(path: str | Path) -> list[Choice]:
    """The choices ``write_choice`` wrote; a damaged file names itself."""
    try:
        data = json.loads(Path(path).read_text())
        return [Choice(**c) for c in data["choices"]]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{path}: not a calibration choice file ({e})") from None


# the notebook parameter each calibrated method sets: the SFT family trains at SFT's rate, the RL family at GRPO's
LR_PARAM = {"sft": "lr_sft", "grpo": "lr_rl"}


def campaign_params(choices: Sequence[Choice]) -> dict[str, dict[str, float | int]]:
    """Per target, the notebook parameters the campaign takes from the calibration: ``lr_sft`` (SFT's choice),
    ``lr_rl`` (GRPO's) and ``steps`` (theirs, which must agree). A target with a method that has no qualifying
    setting, or whose methods chose different budgets, is a ValueError naming it."""
    out: dict[str, dict[str, float | int]] = {}
    for c in choices:
        if c.method not in LR_PARAM:
            continue
        if c.lr is None or c.steps is None:
            raise ValueError(f"calibration: {c.target}, {c.method} has no qualifying setting ({c.reason})")
        params = out.setdefault(c.target, {"steps": c.steps})
        if params["steps"] != c.steps:
            raise ValueError(f"calibration: {c.target}'s methods chose different budgets "
                             f"({params['steps']} and {c.steps} steps); the campaign runs one per target")
        params[LR_PARAM[c.method]] = c.lr
    for target, params in out.items():
        missing = sorted(set(LR_PARAM.values()) - set(params))
        if missing:
            raise ValueError(f"calibration: {target} has no choice for {', '.join(missing)}")
    return out


CALIBRATION_DIR = REPOSITORY / "results" / "calibration"  # one sweep folder per target


# A scoring fix that moved a target's own numbers supersedes that target's calibration points computed before it:
# their gains were read, and their RL rewards given, by the old rule. Target -> the first package version with the
# fix (0.9.0: a Countdown equation that states a wrong result is wrong).
SUPERSEDED_BEFORE = {"countdown": "0.9.0"}


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", text or "0")[:3])


def _current(saved: dict) -> bool:
    """Whether a calibration point's results file was written after every fix that moved its target's numbers."""
    target = ((saved.get("runs") or [{}])[0]).get("target")
    first = SUPERSEDED_BEFORE.get(target)
    return first is None or _version((saved.get("versions") or {}).get("retain_utils", "")) >= _version(first)


def load(folder: str | Path = CALIBRATION_DIR, superseded: bool = False) -> list:
    """Every finished calibration run record under ``folder`` (its sweeps, one per target), in a stable order;
    points superseded by a scoring fix of their target (``SUPERSEDED_BEFORE``) are left out, or, with
    ``superseded``, are all that is returned."""
    from ..core.results import records

    folder = Path(folder)
    sweeps = sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
    return [r for sweep in sweeps for r in records(sweep, keep=lambda saved: _current(saved) != superseded)]


def superseded_sentence(folder: str | Path = CALIBRATION_DIR) -> str:
    """Which committed calibration runs a scoring fix superseded (left out of the choice), and what the fix did to
    the runs that stay; "" when none."""
    old = sorted(load(folder, superseded=True), key=lambda r: (r.target, r.method, r.config.get("lr"), r.seed))
    if not old:
        return ""
    runs = "; ".join(f"{r.target}, {r.method} lr {r.config.get('lr'):g}, seed {r.seed}" for r in old)
    fixes = ", ".join(f"{t} before package {v}" for t, v in SUPERSEDED_BEFORE.items())
    return (f"Left out of the choice, superseded by a scoring fix ({fixes}: an equation that states a wrong result "
            f"was scored right): {len(old)} run{'s' * (len(old) != 1)} ({runs}). The other targets' runs from "
            "before the fix stay: their gains and collapse flags do not depend on it, but the Countdown part of "
            "their drops was read by the old rule (CHANGELOG 0.9.0).")


def settings_frame(settings: Sequence[Setting]):
    """The calibration's settings as a table with readable headers (pp, seeds)."""
    import pandas as pd

    rows = [{"Target": s.target, "Method": s.method, "Learning rate": f"{s.lr:g}", "Steps": s.steps,
             "Seeds": len(s.seeds), "Gain, mean (pp)": round(s.gain_mean, 1),
             "Gain 95 % interval over seeds (pp)": "one seed" if math.isnan(s.gain_low)
             else f"{s.gain_low:+.1f} to {s.gain_high:+.1f}",
             "Drop, mean (pp)": round(s.drop_mean, 1), "Transfer, mean (pp)": round(s.transfer_mean, 1),
             "Flags": ", ".join(s.flags)} for s in settings]
    frame = pd.DataFrame(rows)
    # transfer: the gain on probes that ask the target's own questions in another form, left out of the drop
    return frame if frame.empty or frame["Transfer, mean (pp)"].notna().any() else frame.drop(
        columns="Transfer, mean (pp)")


# every target's GRPO is swept over these learning rates (the paper's 5e-6 up to 8x it) before its choice is written
GRPO_SWEEP = (5e-6, 1e-5, 2e-5, 4e-5)


def _gaps(settings: Sequence[Setting], choices: Sequence[Choice]) -> list[tuple[str, str]]:
    """(target, what it lacks) for ``incomplete``."""
    out = []
    for target in sorted({s.target for s in settings}):
        tried = {s.lr for s in settings if (s.target, s.method) == (target, "grpo")}
        untried = [lr for lr in GRPO_SWEEP if not any(math.isclose(lr, t, rel_tol=1e-9) for t in tried)]
        if untried:
            out.append((target, f"{target}, grpo: learning rate{'s' * (len(untried) > 1)} "
                                f"{', '.join(f'{lr:g}' for lr in untried)} of the sweep not tried"))
        # every method the campaign takes a rate from needs a setting that qualifies on each target
        for method in LR_PARAM:
            chosen = [c for c in choices if (c.target, c.method) == (target, method)]
            if not any(s.method == method for s in settings if s.target == target):
                out.append((target, f"{target}, {method}: no run"))
            elif chosen and chosen[0].lr is None:
                out.append((target, f"{target}, {method}: no setting qualifies"))
    # the choices that set the campaign's parameters; a fallback cannot change with more seeds (its flags stay)
    for c in (c for c in choices if c.method in LR_PARAM and not c.fallback):
        chosen = [s for s in settings if (s.target, s.method, s.lr, s.steps) == (c.target, c.method, c.lr, c.steps)]
        seeds = set(chosen[0].seeds) if chosen else set()
        if c.lr is not None and not set(CALIBRATION_SEEDS) <= seeds:
            left = sorted(set(CALIBRATION_SEEDS) - seeds)
            out.append((c.target, f"{c.target}, {c.method}: the chosen lr {c.lr:g} lacks seed{'s' * (len(left) > 1)} "
                                  f"{', '.join(map(str, left))}"))
    return out


def incomplete(settings: Sequence[Setting], choices: Sequence[Choice]) -> list[str]:
    """What the calibration lacks before its choice may set the campaign: on every target GRPO tried at each
    learning rate of ``GRPO_SWEEP``, a qualifying setting of every method that sets a campaign parameter
    (``LR_PARAM``), and each such chosen setting run on all ``CALIBRATION_SEEDS``, a fallback to the paper's rate
    aside. Empty: complete."""
    return [gap for _, gap in _gaps(settings, choices)]


def complete_targets(settings: Sequence[Setting], choices: Sequence[Choice]) -> list[str]:
    """The targets whose calibration is complete (``incomplete`` names nothing of theirs): their choice may set
    the campaign's points on them while the other targets still calibrate."""
    return sorted({s.target for s in settings} - {target for target, _ in _gaps(settings, choices)})


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
        parts.append(f"{len(missing)} setting(s) have fewer than the {len(CALIBRATION_SEEDS)} calibration seeds.")
    left = incomplete(settings, choices)
    done = complete_targets(settings, choices)
    if not left:
        parts.append("The calibration is complete: its choice sets the campaign.")
    else:
        parts.append((f"Complete on {', '.join(done)}: its choice may set the campaign's points there. " if done else "")
                     + f"Before its choice may set the campaign{' on the other targets' if done else ''}, the "
                     "calibration lacks: " + "; ".join(left) + ".")
    return " ".join(parts)


# The campaign this protocol is sized for (one point per target and seed) and the CPU time it may take.
@dataclass(frozen=True)
class PlannedNotebook:
    """One notebook's share of the campaign: its targets (a point per target and seed) and the runs each point
    trains, by method. A run identical to one of notebook 2's points (same target, seed and settings) is read from
    it, not trained again (``profiles.CAMPAIGN_RUNS``), so it is not counted here."""

    targets: tuple[str, ...]
    runs: dict[str, int] = field(default_factory=dict)


CAMPAIGN_SEEDS = 5
CAMPAIGN_PLAN: dict[str, PlannedNotebook] = {
    # the paper's Table 1: every target, SFT, Self-SFT and GRPO
    "02_rl_vs_sft": PlannedNotebook(("ifeval", "mmlu", "countdown"), {"sft": 1, "self_sft": 1, "grpo": 1}),
    # GRPO with beta = 0 and on stale rollouts, REINFORCE, SFT on GRPO's rollouts (GRPO and SFT: notebook 2's), on
    # a target with a short answer where GRPO learns without collapsing (on Countdown every GRPO rate collapsed)
    "03_ablations": PlannedNotebook(("mmlu",), {"grpo": 2, "reinforce": 1, "sft": 1}),
    # Iterative-SFT (SFT, Self-SFT and GRPO: notebook 2's) on two targets
    "04_iterative_sft": PlannedNotebook(("ifeval", "countdown"), {"iterative_sft": 1}),
}
CPU_HOURS_BUDGET = 50.0
# Self-SFT and Iterative-SFT sample like RL and train like SFT: until a run of theirs is measured, each is costed as
# the mean of an SFT and a GRPO run; REINFORCE samples and trains as GRPO does: costed as GRPO on its target
COSTED_AS_MEAN = ("self_sft", "iterative_sft")
COSTED_AS = {"reinforce": "grpo"}


@dataclass(frozen=True)
class PointCost:
    """What one finished calibration point cost, in core-seconds (wall seconds x the torch threads it ran with), so
    that a point run at two threads alone and one run at one thread beside another compare."""

    target: str
    threads: int                      # torch threads of its kernel
    cores: int                        # the machine's cores
    steps: int                        # its runs' training steps
    overhead: float                   # core-seconds besides its runs: model, baseline evaluation, KL samples
    runs: tuple[tuple[str, float], ...]  # (method, core-seconds) per run trained here, evaluations included
    baseline: float = 0.0             # core-seconds of the overhead spent answering the baseline's questions
    baseline_read: bool = False       # it read the initial model's evaluation another point kept (``baseline_cache``)
    # core-seconds of the overhead its runs spent after training (KL, longer budget, retention); None where a run
    # of an older results file did not record them
    after: float | None = None
    machine: str = "unknown"          # its CPU flags and package version (``provenance.where``): every time names them


@dataclass(frozen=True)
class Projection:
    """The campaign's projected cost from measured calibration points, in core-seconds."""

    run_seconds: dict[str, float]  # method -> core-seconds of one run, evaluations included, mean over its targets
    measured: tuple[str, ...]      # the methods whose time is measured (the others are costed)
    point_seconds: float           # core-seconds of a point besides its runs: model, baseline evaluation, KL samples
    later_point_seconds: float     # the same for a point that reads its target's baseline another point kept
    steps: int                     # the calibration runs' steps
    points: int
    runs: int
    cpu_hours: float               # core-hours in all
    cores: int
    # (target, method) -> core-seconds of one run where measured on that target; elsewhere the method's mean is used
    target_seconds: dict[tuple[str, str], float] = field(default_factory=dict)
    after_seconds: float = 0.0     # core-seconds of a run's KL, longer-budget rescoring and retention, after training
    after_measured: int = 0        # the points that recorded them
    machines: dict[str, int] = field(default_factory=dict)  # CPU flags and package version -> points measured there

    @property
    def hours(self) -> float:
        """Wall hours with every core busy (one point at ``cores`` threads, or that many one-thread points)."""
        return self.cpu_hours / self.cores


def point_costs(folder: str | Path = CALIBRATION_DIR) -> list[PointCost]:
    """Every finished calibration point's cost (``PointCost``); points of older results files without a notebook
    time are left out, and a run read from another point (``reused_from``) took no time here."""
    folder = Path(folder)
    out = []
    for sweep in sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []:
        for point in layout.point_folders(sweep):
            try:
                meta = layout.read_params(point)
                if layout.finished_record(point, meta["notebook"]) is None:
                    continue
                record = layout.read_record(layout.results_file(point, meta["notebook"]))
            except ValueError:
                continue
            seconds = (record.get("timings") or {}).get("notebook_seconds")
            if seconds is None:
                continue
            machine = record.get("machine") or {}
            cores = int(machine.get("cpu_count") or 1)
            threads = int(machine.get("torch_threads") or cores)
            trained = [r for r in record.get("runs") or [] if not r.get("reused_from")]
            runs = tuple((str(r.get("method")), threads * float(r.get("seconds") or 0)) for r in trained)
            phases = [r.get("phase_seconds") or {} for r in trained]
            after = (threads * sum(float(p.get(k) or 0) for p in phases for k in AFTER_TRAINING)
                     if trained and all(set(AFTER_TRAINING) <= set(p) for p in phases) else None)
            steps = [int(r["config"]["steps"]) for r in trained if (r.get("config") or {}).get("steps")]
            read = bool(record.get("baseline_read"))
            baseline = 0.0 if read else threads * sum(float(row.get("seconds") or 0)
                                                      for row in record.get("baseline") or [] if isinstance(row, dict))
            version = (record.get("versions") or {}).get("retain_utils", "unknown")
            out.append(PointCost(sweep.name, threads, cores, round(_mean(steps)) if steps else 0,
                                 threads * float(seconds) - sum(c for _, c in runs), runs, baseline, read, after,
                                 provenance.where(version, machine.get("cpu_flags"))))
    return out


AFTER_TRAINING = ("kl", "longer_budget", "retention")  # a run's phases after training (``RunRecord.phase_seconds``)


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def projected_campaign(costs: Sequence[PointCost]) -> Projection | None:
    """The campaign of ``CAMPAIGN_PLAN`` x ``CAMPAIGN_SEEDS`` seeds at the calibration points' measured core-seconds:
    a run of a (target, method) measured in the calibration costs its mean there, any other the method's mean over
    the targets measured (Self-SFT and Iterative-SFT, until measured, the mean of SFT and GRPO). None until an SFT
    and a GRPO run are measured."""
    runs = [(c.target, method, cost) for c in costs for method, cost in c.runs]
    measured = {m: [cost for _, method, cost in runs if method == m] for _, m, _ in runs}
    if not (measured.get("sft") and measured.get("grpo")):
        return None
    per_run = {m: _mean(v) for m, v in measured.items()}
    for m in COSTED_AS_MEAN:
        per_run.setdefault(m, (per_run["sft"] + per_run["grpo"]) / 2)
    by_target = {key: _mean([cost for t, m, cost in runs if (t, m) == key]) for key in {(t, m) for t, m, _ in runs}}

    def cost(target: str, method: str) -> float:
        if (target, method) in by_target:
            return by_target[target, method]
        if method in COSTED_AS and method not in measured:
            return cost(target, COSTED_AS[method])
        both = {(target, "sft"), (target, "grpo")} <= set(by_target)
        if method in COSTED_AS_MEAN and method not in measured and both:
            return (by_target[target, "sft"] + by_target[target, "grpo"]) / 2
        return per_run[method if method in per_run else "grpo"]

    # the first point of a target evaluates the initial model; every later one reads that evaluation back
    # (``baseline_cache``): measured where a point read it, else a computing point's overhead less its baseline
    # a run's KL, longer-budget rescoring and retention come after its training: each run of a point pays them,
    # so they move from the point's overhead to the run (measured where recorded, else their mean per run)
    recorded = [c.after / len(c.runs) for c in costs if c.after is not None and c.runs]
    after = _mean(recorded) if recorded else 0.0
    own = {id(c): c.overhead - (c.after if c.after is not None else after * len(c.runs)) for c in costs}
    computing = [c for c in costs if not c.baseline_read] or list(costs)
    point = _mean([own[id(c)] for c in computing])
    later = _mean([own[id(c)] - c.baseline for c in computing] + [own[id(c)] for c in costs if c.baseline_read])
    n_points = sum(len(p.targets) for p in CAMPAIGN_PLAN.values()) * CAMPAIGN_SEEDS
    n_targets = len({t for p in CAMPAIGN_PLAN.values() for t in p.targets})
    n_runs, seconds = 0, n_targets * point + (n_points - n_targets) * later
    for planned in CAMPAIGN_PLAN.values():
        for target in planned.targets:
            for method, count in planned.runs.items():
                n_runs += CAMPAIGN_SEEDS * count
                seconds += CAMPAIGN_SEEDS * count * (cost(target, method) + after)
    trained = [c for c in costs if c.runs]
    steps = round(_mean([c.steps for c in trained]))
    machines = {m: sum(c.machine == m for c in costs) for m in sorted({c.machine for c in costs})}
    return Projection(per_run, tuple(sorted(measured)), point, later, steps, n_points, n_runs, seconds / 3600,
                      max(c.cores for c in costs), by_target, after, len(recorded), machines)


def cost_sentence(projection: Projection | None) -> str:
    """What the campaign at the calibration's budget would cost, against its CPU-hour budget."""
    if projection is None:
        return ("The campaign's cost is projected once an SFT and a GRPO calibration run have finished: none yet.")
    p = projection
    measured = ", ".join(f"{m} {p.run_seconds[m] / 60:.0f}" for m in sorted(p.measured))
    if len({t for t, _ in p.target_seconds}) > 1:  # per target where it differs: an ifeval answer is longer
        measured += " (by target: " + ", ".join(f"{m} on {t} {v / 60:.0f}"
                                               for (t, m), v in sorted(p.target_seconds.items())) + ")"
    costed = [m for m in sorted(p.run_seconds) if m not in p.measured]
    costed_part = ("" if not costed else
                   f"; not yet measured, costed as the mean of an SFT and a GRPO run: "
                   + ", ".join(f"{m} {p.run_seconds[m] / 60:.0f} (costed)" for m in costed))
    verdict = ("within" if p.cpu_hours <= CPU_HOURS_BUDGET else "over")
    after_part = ("" if not p.after_measured else
                  f"after its training, each run's KL, longer-budget rescoring and retention {p.after_seconds / 60:.0f} "
                  f"(measured on {p.after_measured} point{'s' * (p.after_measured != 1)}); ")
    return (f"At the calibration's budget ({p.steps} steps), one run cost, evaluations included, in CPU-minutes "
            f"(wall minutes x the torch threads it ran with): {measured}{costed_part}; {after_part}a point's model, baseline "
            f"evaluation and KL samples {p.point_seconds / 60:.0f} for a target's first point, "
            f"{p.later_point_seconds / 60:.0f} for each later one, which reads the initial model's evaluation back "
            f"(`baseline_cache`). The campaign it is for ({p.points} points, "
            f"{p.runs} runs over {CAMPAIGN_SEEDS} seeds) projects to {p.cpu_hours:.0f} CPU-hours, {p.hours:.0f} h "
            f"of wall time with all {p.cores} cores busy: {verdict} its budget of {CPU_HOURS_BUDGET:g} CPU-hours. "
            "The calibration points ran at two torch threads alone or at one thread beside another point (on two "
            "cores the pair does more work in all: `benchmarks/README.md`), some beside other work, on 2-core CPUs "
            "with " + "; ".join(f"{m} ({n} point{'s' * (n != 1)})" for m, n in p.machines.items()) + ".")
