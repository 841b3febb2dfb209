"""Telling forgetting apart: the difference of two methods' drops paired on the same held-out questions (at the
end of training and at matched gain), and the smallest drop difference an evaluation of a given size can detect.

An *evaluation* here maps task -> per-question results: a ``TaskScore``, a TaskScore as a dict (logs, results
files) or a plain sequence of 0/1. A *trajectory* is a run's list of evaluations in training order (its
``TrainResult.evals``: entries with a ``"scores"`` mapping, and a ``"step"``), the first being step 0.

Pairing. Two runs started from the same model are scored on the same held-out questions, so question i of a
task is one paired unit: its drop contribution in run a, (initial - final correctness), sits beside run b's.
The bootstrap resamples each task's questions (with both runs' values together) and recomputes the paper's
drop (mean over the other tasks) of each run and their difference. At a matched gain level between two
evaluations k-1 and k, a run's per-question value is the linear interpolation (1 - w) d_{k-1,i} + w d_{k,i},
with w fixed where the observed target gain crosses the level; since the drop is linear in the per-question
values, bootstrapping the two bracketing evaluations' results and interpolating each resample gives the same
numbers. The interval is therefore conditional on where each run crossed the level: it holds the other tasks'
evaluation noise, not the noise in the target gain that located the crossing.

Seeds. A claim about two *methods* rests on the spread of their difference over training seeds: the per-seed
differences' Student t-interval with n - 1 degrees of freedom (``seed_t_interval``), and the smallest difference
that many seeds detect (``seed_min_detectable_difference``). A percentile bootstrap over 3 seeds is too narrow
(it uses the normal's 1.96 where t with 2 df needs 4.30, and the seeds' spread shrunk by (n - 1) / n). The paired
interval over held-out questions (evaluation noise only, seeds fixed) stays as a second, labelled view, and is
the only one a single seed has.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any, Mapping, Sequence

import numpy as np

from ..core.intervals import check_seed_values, seed_t_interval, t_quantile
from ..core.tasks import forgetting_tasks


# ---------------------------------------------------------------------------------------------- reading runs


def correct_vector(scores: Mapping, task: str) -> np.ndarray:
    """The 0/1 per-question results of ``task`` in one evaluation (TaskScore, its dict, or a sequence)."""
    if task not in scores:
        raise ValueError(f"no results for task {task!r}; tasks in this evaluation: {', '.join(scores)}")
    value = scores[task]
    if hasattr(value, "correct"):  # a TaskScore
        value = value.correct
    elif isinstance(value, Mapping):
        value = value.get("correct")
    if value is None or isinstance(value, (str, bytes, float, int)) or len(value) == 0:
        raise ValueError(f"task {task!r} has no per-question results (``correct``); an accuracy alone cannot be paired")
    out = np.asarray(value, dtype=float)
    if out.ndim != 1 or not np.isin(out, (0.0, 1.0)).all():
        raise ValueError(f"task {task!r}: per-question results must be a flat list of 0/1")
    return out


def _scores(entry: Mapping) -> Mapping:
    """The task -> results mapping of one trajectory entry (a TrainResult.evals entry or a bare evaluation)."""
    scores = entry.get("scores") if isinstance(entry, Mapping) else None
    return scores if isinstance(scores, Mapping) else entry


def _check_trajectory(evals: Sequence, target: str) -> list[Mapping]:
    if isinstance(evals, Mapping) or not isinstance(evals, Sequence) or len(evals) == 0:
        raise ValueError("a trajectory is a non-empty list of evaluations (the first one at step 0)")
    out = [_scores(e) for e in evals]
    tasks = list(out[0])
    if target not in tasks:
        raise ValueError(f"target {target!r} is not evaluated; tasks: {', '.join(tasks)}")
    if not forgetting_tasks(tasks, target):
        raise ValueError(f"drop needs a task besides the target {target!r} and the probes that ask its own "
                         f"questions; got {tasks}")
    for k, scores in enumerate(out):
        if sorted(scores) != sorted(tasks):
            raise ValueError(f"evaluation {k} scores tasks {sorted(scores)}, the first one {sorted(tasks)}")
        for task in tasks:
            if len(correct_vector(scores, task)) != len(correct_vector(out[0], task)):
                raise ValueError(f"evaluation {k}, task {task!r}: a different number of questions than at step 0")
    return out


def check_gain_level(level: float) -> float:
    """A matched-gain level in percentage points, in (0, 100]; anything else is refused."""
    if isinstance(level, bool) or not isinstance(level, (int, float)) or not math.isfinite(level) \
            or not 0 < level <= 100:
        raise ValueError(f"gain level must be a number in (0, 100] percentage points, got {level!r}")
    return float(level)


@dataclass(frozen=True)
class DropReading:
    """One run read at one point: per other task and question, initial - then correctness (1: forgotten,
    -1: newly right; a fraction between two evaluations). Empty ``per_question`` when the run never reached it."""

    where: str                      # "end" or "gain 20 pp"
    reached: bool
    gain: float                     # target gain (pp) at this point; when not reached, the run's best gain
    step: float | None              # training step (interpolated), None when not reached
    per_question: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def drop(self) -> float:
        """The paper's drop (pp): mean over the other tasks of the mean per-question loss; NaN when not reached."""
        if not self.reached:
            return float("nan")
        return 100.0 * float(np.mean([v.mean() for v in self.per_question.values()]))


def _gains(evals: list[Mapping], target: str) -> np.ndarray:
    first = correct_vector(evals[0], target)
    # from counts, so that e.g. 2 more right of 20 is exactly 10 pp and matches a 10 pp level
    return np.array([100.0 * (correct_vector(e, target).sum() - first.sum()) / len(first) for e in evals])


def _drops(evals: list[Mapping], k: int, target: str) -> dict[str, np.ndarray]:
    return {t: correct_vector(evals[0], t) - correct_vector(evals[k], t) for t in forgetting_tasks(evals[0], target)}


def _step(entry: Any, k: int) -> float:
    return float(entry.get("step", k)) if isinstance(entry, Mapping) and "scores" in entry else float(k)


def read_end(evals: Sequence, target: str) -> DropReading:
    """A run's per-question drops at its last evaluation, against its first (step 0)."""
    scores = _check_trajectory(evals, target)
    return DropReading("end", True, float(_gains(scores, target)[-1]), _step(evals[-1], len(evals) - 1),
                       _drops(scores, len(scores) - 1, target))


def read_at_gain(evals: Sequence, target: str, gain_level: float) -> DropReading:
    """A run's per-question drops where its target gain first reaches ``gain_level`` pp, interpolated
    linearly between the two evaluations around that crossing (see the module's docstring for the pairing).
    A run whose gain never reaches the level gives ``reached=False`` and its best gain."""
    level = check_gain_level(gain_level)
    scores = _check_trajectory(evals, target)
    gains = _gains(scores, target)
    where = f"gain {level:g} pp"
    hits = np.flatnonzero(gains >= level - 1e-9)
    if len(hits) == 0:
        return DropReading(where, False, float(gains.max()), None)
    k = int(hits[0])  # >= 1: the gain at step 0 is 0 < level
    w = min(1.0, (level - gains[k - 1]) / (gains[k] - gains[k - 1]))
    before, after = _drops(scores, k - 1, target), _drops(scores, k, target)
    per_question = {t: (1 - w) * before[t] + w * after[t] for t in before}
    step = (1 - w) * _step(evals[k - 1], k - 1) + w * _step(evals[k], k)
    return DropReading(where, True, level, float(step), per_question)


# ---------------------------------------------------------------------------------------------- differences


def _check_interval_args(level: float, n_boot: int) -> None:
    if isinstance(level, bool) or not isinstance(level, (int, float)) or not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 1:
        raise ValueError(f"n_boot must be a positive int, got {n_boot!r}")


def _check_values(values: Mapping, name: str, ndim: int) -> dict[str, np.ndarray]:
    """``values`` (task -> array of ``ndim`` dims, none empty, all finite) as float arrays, else a ValueError."""
    shape = "questions" if ndim == 1 else "(seeds, questions)"
    if not isinstance(values, Mapping) or not values:
        raise ValueError(f"{name} needs a non-empty mapping task -> {shape} array, got {values!r:.80}")
    out = {}
    for task, v in values.items():
        arr = np.asarray(v, dtype=float)
        if arr.ndim != ndim or arr.size == 0:
            raise ValueError(f"{name}: values[{task!r}] must be a non-empty {shape} array, got shape {arr.shape}")
        if not np.isfinite(arr).all():
            raise ValueError(f"{name}: values[{task!r}] holds NaN or infinite values")
        out[task] = arr
    return out


def paired_bootstrap(values: Mapping[str, np.ndarray], *, level: float = 0.95, n_boot: int = 2000,
                     seed: int = 0) -> tuple[float, float]:
    """Percentile interval of the mean over tasks of each task's mean per-question value, resampling every
    task's questions independently (a question's value already holds both runs' results: paired)."""
    _check_interval_args(level, n_boot)
    values = _check_values(values, "paired_bootstrap", ndim=1)
    rng = np.random.default_rng(seed)
    means = []
    for task in sorted(values):  # sorted: the same draws whatever order the tasks came in
        v = values[task]
        means.append(v[rng.integers(0, len(v), size=(n_boot, len(v)))].mean(axis=1))
    stat = np.mean(means, axis=0)
    tail = 100 * (1 - level) / 2
    return float(np.percentile(stat, tail)) + 0.0, float(np.percentile(stat, 100 - tail)) + 0.0  # no -0.0


def seeds_and_questions_bootstrap(values: Mapping[str, np.ndarray], *, level: float = 0.95, n_boot: int = 2000,
                                  seed: int = 0, scale: float = 1.0, within_seed: bool = False) -> tuple[float, float]:
    """Percentile interval of ``scale`` x the mean over tasks and seeds of ``values`` (task -> (seeds, questions)
    paired differences), resampling the seeds and then each task's questions: jointly across seeds (the same
    questions for every seed, as they were asked), or with ``within_seed`` anew within each drawn seed. Training
    noise and evaluation noise both widen it; with few seeds it is still too narrow (see the module's docstring),
    so method claims use ``seed_t_interval``."""
    _check_interval_args(level, n_boot)
    values = _check_values(values, "seeds_and_questions_bootstrap", ndim=2)
    n_seeds = {t: v.shape[0] for t, v in values.items()}
    if len(set(n_seeds.values())) != 1:
        raise ValueError(f"seeds_and_questions_bootstrap: every task needs the same seeds, got seeds per task "
                         f"{n_seeds}")
    rng = np.random.default_rng(seed)
    n_seeds = next(iter(n_seeds.values()))
    seeds = rng.integers(0, n_seeds, size=(n_boot, n_seeds))
    stat = np.zeros(n_boot)
    for t in sorted(values):
        v = values[t]                                                   # (S, Q)
        if within_seed:
            q = rng.integers(0, v.shape[1], size=(n_boot, n_seeds, v.shape[1]))  # (B, S, Q), one draw per seed
            stat += v[seeds[:, :, None], q].mean(axis=(1, 2))
            continue
        q = rng.integers(0, v.shape[1], size=(n_boot, v.shape[1]))      # (B, Q), shared by the seeds
        per_seed = v[:, q].mean(axis=2).T                               # (B, S): each resample's mean per seed
        stat += np.take_along_axis(per_seed, seeds, axis=1).mean(axis=1)  # (B,)
    stat = scale * stat / len(values)
    tail = 100 * (1 - level) / 2
    return float(np.percentile(stat, tail)) + 0.0, float(np.percentile(stat, 100 - tail)) + 0.0  # no -0.0


# ---------------------------------------------------------------------------------------------- seed level


def _t_test_power(lam: float, df: int, crit: float) -> float:
    """P(|T'| > crit) for T' noncentral t with ``df`` and noncentrality ``lam``: the mean over U = sqrt(chi2_df)
    of P(|Z + lam| > crit U / sqrt(df)), integrated on a grid (trapezoid, error ~1e-7)."""
    u = np.linspace(0.0, math.sqrt(df) + 12.0, 4001)
    log_density = (math.log(2.0) + (df - 1) * np.log(np.where(u > 0, u, 1.0)) - u**2 / 2
                   - (df / 2) * math.log(2.0) - math.lgamma(df / 2))
    density = np.exp(log_density) * (u > 0 if df > 1 else 1.0)
    cut = crit * u / math.sqrt(df)
    cdf = np.vectorize(NormalDist().cdf)
    reject = cdf(lam - cut) + cdf(-lam - cut)
    y = density * reject
    return float(np.sum((y[1:] + y[:-1]) / 2 * np.diff(u)))


def seed_min_detectable_difference(sd: float, n_seeds: int, *, level: float = 0.95, power: float = 0.8) -> float:
    """The smallest method difference that a two-sided one-sample t-test over ``n_seeds`` per-seed differences,
    at ``level``, detects with probability ``power``, when those differences spread with standard deviation
    ``sd`` (same units as ``sd``).

    With lambda = delta sqrt(n) / sd, the t statistic is noncentral t with n - 1 df; delta is the root of
        P(|T'_{n-1}(lambda)| > t_{1 - (1 - level)/2, n - 1}) = power,
    solved exactly (numerically). The textbook shortcut (t_{1 - (1 - level)/2, n - 1} + t_{power, n - 1}) sd /
    sqrt(n) falls short of it: at 95 % and 3 seeds it gives 5.36 sd / sqrt(3) with 77 % power, the exact root
    5.65 sd / sqrt(3) with 80 %.
    """
    if not 0 < level < 1 or not 0 < power < 1:
        raise ValueError(f"level and power must be in (0, 1), got {level} and {power}")
    if isinstance(n_seeds, bool) or not isinstance(n_seeds, (int, np.integer)) or n_seeds < 2:
        raise ValueError(f"n_seeds must be an int >= 2 (one seed has no spread over seeds), got {n_seeds!r}")
    if isinstance(sd, bool) or not isinstance(sd, (int, float, np.floating)) or not math.isfinite(sd) or sd < 0:
        raise ValueError(f"sd must be a finite number >= 0 (the seeds' standard deviation), got {sd!r}")
    if power <= 1 - level:
        return 0.0  # the test rejects that often with no difference at all
    df = n_seeds - 1
    crit = t_quantile(1 - (1 - level) / 2, df)
    lo, hi = 0.0, crit + 4 * t_quantile(0.999, df)
    for _ in range(50):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if _t_test_power(mid, df, crit) < power else (lo, mid)
    return hi * float(sd) / math.sqrt(n_seeds)


@dataclass(frozen=True)
class Difference:
    """Drop of run ``a`` minus drop of run ``b`` (pp) at one point, with its interval ``low``-``high``: over seeds
    (``basis`` "seeds": the t-interval of the per-seed differences) where there are two or more, else over the held-out
    questions (``basis`` "questions": paired bootstrap, evaluation noise only). ``question_low``-``question_high``
    is always the question-level view. Positive: ``a`` forgets more. NaN with a ``note`` when a run never reached
    the point."""

    a: str
    b: str
    where: str
    difference: float
    low: float
    high: float
    level: float
    drop_a: float
    drop_b: float
    n: dict[str, int]               # held-out questions per other task
    note: str = ""
    basis: str = "questions"        # what low-high is over: "seeds" or "questions"
    seeds: int = 1                  # seeds pooled
    seed_sd: float = float("nan")   # the per-seed differences' standard deviation (pp), NaN below 2 seeds
    question_low: float = float("nan")
    question_high: float = float("nan")

    @property
    def verdict(self) -> str:
        """"a forgets more", "b forgets more", "not told apart" or "not reached" (from ``low``-``high``)."""
        if math.isnan(self.difference):
            return "not reached"
        if self.low > 0:
            return f"{self.a} forgets more"
        if self.high < 0:
            return f"{self.b} forgets more"
        return "not told apart"

    def detectable(self, power: float = 0.8) -> float:
        """The smallest difference (pp) these seeds detect (``seed_min_detectable_difference``); NaN below 2."""
        if self.seeds < 2 or math.isnan(self.seed_sd):
            return float("nan")
        return seed_min_detectable_difference(self.seed_sd, self.seeds, level=self.level, power=power)


def drop_difference(a: DropReading, b: DropReading, *, labels: tuple[str, str] = ("a", "b"), level: float = 0.95,
                    n_boot: int = 2000, seed: int = 0) -> Difference:
    """Drop of ``a`` minus drop of ``b``, paired on the same held-out questions, with a ``level`` interval."""
    if a.where != b.where:
        raise ValueError(f"readings at different points: {a.where!r} and {b.where!r}")
    missing = [(label, r) for label, r in zip(labels, (a, b)) if not r.reached]
    if missing:
        note = "; ".join(f"{label} never reaches {r.where} (its best gain: {r.gain:+.1f} pp)" for label, r in missing)
        nan = float("nan")
        return Difference(*labels, a.where, nan, nan, nan, level, a.drop, b.drop, {}, note)
    if sorted(a.per_question) != sorted(b.per_question):
        raise ValueError(f"runs evaluated on different tasks: {sorted(a.per_question)} and {sorted(b.per_question)}")
    for task in a.per_question:
        if len(a.per_question[task]) != len(b.per_question[task]):
            raise ValueError(f"{task}: {len(a.per_question[task])} and {len(b.per_question[task])} questions; "
                             "a paired difference needs the same held-out questions")
    values = {t: a.per_question[t] - b.per_question[t] for t in a.per_question}
    low, high = paired_bootstrap(values, level=level, n_boot=n_boot, seed=seed)
    return Difference(*labels, a.where, a.drop - b.drop, 100 * low, 100 * high, level, a.drop, b.drop,
                      {t: len(v) for t, v in values.items()}, question_low=100 * low, question_high=100 * high)


def drop_differences(runs: Mapping[str, Sequence], target: str, pairs: Sequence[tuple[str, str]], *,
                     gain_levels: Sequence[float] = (), level: float = 0.95, n_boot: int = 2000, seed: int = 0):
    """Table of drop differences (pp) for each (a, b) pair of run labels in ``runs`` (label -> trajectory):
    at the end and at each matched ``gain_levels`` value, with the interval and whether a run never got there."""
    import pandas as pd

    levels = [check_gain_level(g) for g in gain_levels]  # refused before any compute
    for a, b in pairs:
        for label in (a, b):
            if label not in runs:
                raise ValueError(f"no run called {label!r}; runs: {', '.join(runs)}")
    rows = []
    for a, b in pairs:
        readers = [("end", lambda ev: read_end(ev, target))]
        readers += [(g, lambda ev, g=g: read_at_gain(ev, target, g)) for g in levels]
        for _, read in readers:
            d = drop_difference(read(runs[a]), read(runs[b]), labels=(a, b), level=level, n_boot=n_boot, seed=seed)
            rows.append({"comparison": f"{a} - {b}", "at": d.where, "drop a (pp)": d.drop_a, "drop b (pp)": d.drop_b,
                         "difference (pp)": d.difference, f"{100 * level:g} % low": d.low,
                         f"{100 * level:g} % high": d.high, "verdict": d.verdict, "note": d.note})
    return pd.DataFrame(rows)


def pooled_difference(pairs: Sequence[tuple[DropReading, DropReading]], *, labels: tuple[str, str] = ("a", "b"),
                      level: float = 0.95, n_boot: int = 2000, seed: int = 0) -> Difference:
    """Drop of ``a`` minus drop of ``b`` averaged over seeds: one (a, b) reading pair per seed, every seed scored on
    the same held-out questions. Its interval is the seeds' t-interval (``seed_t_interval``) where two or more seeds
    reach the point; with one, none exists and the interval is over the held-out questions (``basis``
    "questions"). The question-level view (the seed-averaged per-question differences, questions resampled, seeds
    fixed) is kept beside it. Seeds where a run never reached the point are left out and named in the note."""
    if isinstance(pairs, (str, bytes, Mapping)) or not isinstance(pairs, Sequence) or not pairs:
        raise ValueError("pooled_difference needs at least one pair of readings (one (a, b) pair per seed)")
    for k, pair in enumerate(pairs):
        if not (isinstance(pair, (tuple, list)) and len(pair) == 2 and all(isinstance(r, DropReading) for r in pair)):
            raise ValueError(f"pairs[{k}] must be an (a, b) pair of DropReadings, got {pair!r:.80}")
    _check_interval_args(level, n_boot)
    where = {r.where for pair in pairs for r in pair}
    if len(where) != 1:
        raise ValueError(f"readings at different points: {sorted(where)}")
    where = where.pop()
    reached = [(a, b) for a, b in pairs if a.reached and b.reached]
    note = f"both reach it in {len(reached)} of {len(pairs)} seeds" if len(reached) < len(pairs) else ""
    nan = float("nan")
    if not reached:
        return Difference(*labels, where, nan, nan, nan, level, nan, nan, {},
                          f"no seed where both reach {where}", seeds=0)
    diffs = [drop_difference(a, b, labels=labels, level=level, n_boot=1) for a, b in reached]  # checks pairing
    tasks = sorted(reached[0][0].per_question)
    if any(len({len(a.per_question.get(t, ())) for a, _ in reached}) != 1 for t in tasks):
        raise ValueError("seeds evaluated on different numbers of held-out questions: cannot pool them")
    values = {t: np.stack([a.per_question[t] - b.per_question[t] for a, b in reached]) for t in tasks}  # (S, Q)
    q_low, q_high = paired_bootstrap({t: v.mean(axis=0) for t, v in values.items()}, level=level, n_boot=n_boot,
                                     seed=seed)
    q_low, q_high = 100 * q_low + 0.0, 100 * q_high + 0.0
    per_seed = [d.difference for d in diffs]
    if len(per_seed) >= 2:
        (low, high), basis, sd = seed_t_interval(per_seed, level), "seeds", float(np.std(per_seed, ddof=1))
    else:
        low, high, basis, sd = q_low, q_high, "questions", nan
    mean = lambda xs: float(np.mean(xs))  # noqa: E731
    return Difference(*labels, where, mean(per_seed), low, high, level, mean([d.drop_a for d in diffs]),
                      mean([d.drop_b for d in diffs]), {t: values[t].shape[1] for t in tasks}, note, basis=basis,
                      seeds=len(per_seed), seed_sd=sd, question_low=q_low, question_high=q_high)


def interval_label(d: Difference) -> str:
    """What ``d``'s interval is over, for a sentence: "95 % interval over 3 seeds (t, 2 df)" or, with one seed,
    "95 % interval over held-out questions only"."""
    if d.basis == "seeds":
        return f"{100 * d.level:g} % interval over {d.seeds} seeds (t, {d.seeds - 1} df)"
    return f"{100 * d.level:g} % interval over held-out questions only"


def pearson_interval(x: Sequence[float], y: Sequence[float], *, level: float = 0.95) -> tuple[float, float, float, int]:
    """Pearson's r of ``x`` and ``y`` with its Fisher-z ``level`` interval, and n; NaN interval below 4 points."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.ndim != 1 or x.shape != y.shape:
        raise ValueError(f"pearson_interval needs x and y of the same length, one number per point; got shapes "
                         f"{x.shape} and {y.shape}")
    keep = np.isfinite(x) & np.isfinite(y)
    x, y, n = x[keep], y[keep], int(keep.sum())
    if n < 3 or x.std() == 0 or y.std() == 0:
        return float("nan"), float("nan"), float("nan"), n
    r = float(np.corrcoef(x, y)[0, 1])
    if n < 4:
        return r, float("nan"), float("nan"), n
    z, half = math.atanh(max(min(r, 1 - 1e-12), -1 + 1e-12)), NormalDist().inv_cdf(0.5 + level / 2) / math.sqrt(n - 3)
    return r, math.tanh(z - half), math.tanh(z + half), n


def possessive(name: str) -> str:
    """``name``'s for a variant label in a sentence; a label ending in s ("SFT on GRPO's rollouts") takes the
    apostrophe alone."""
    return name + ("'" if name.endswith("s") else "'s")


def difference_sentence(d: Difference) -> str:
    """One sentence that answers "does ``a`` forget more than ``b``?" from the interval, saying what it is over:
    over seeds a claim about the methods, over one seed's questions one about these two runs."""
    if d.verdict == "not reached":
        return f"At matched {d.where}: no comparison, {d.note}."
    span = f"{d.difference:+.1f} pp, {interval_label(d)} {d.low:+.1f} to {d.high:+.1f}"
    at = "at the end of training" if d.where == "end" else f"at matched {d.where}"
    runs = "" if d.basis == "seeds" else " runs"
    if d.verdict == "not told apart":
        return (f"{at.capitalize()}, {possessive(d.a)} drop minus {possessive(d.b)} is {span}: the interval includes "
                f"zero, so the two{runs} cannot be told apart (the interval rules out differences beyond it).")
    more, less = (d.a, d.b) if d.low > 0 else (d.b, d.a)
    if d.basis == "seeds":
        return (f"{at.capitalize()}, {possessive(d.a)} drop minus {possessive(d.b)} is {span}: {more} forgets more "
                f"than {less}.")
    return (f"{at.capitalize()}, {possessive(d.a)} drop minus {possessive(d.b)} is {span}: this {more} run forgets "
            f"more than this {less} run.")


# ---------------------------------------------------------------------------------------------- power


def discordance(scores_a: Mapping, scores_b: Mapping, tasks: Sequence[str]) -> dict[str, float]:
    """Per task, the share of held-out questions two evaluations (e.g. two methods' final ones) answer
    differently: what makes a paired difference noisy."""
    if isinstance(tasks, (str, bytes)) or not isinstance(tasks, Sequence) or not tasks:
        raise ValueError(f"discordance needs a non-empty list of task names, got {tasks!r}")
    out = {}
    for task in tasks:
        a, b = correct_vector(scores_a, task), correct_vector(scores_b, task)
        if len(a) != len(b):
            raise ValueError(f"{task}: {len(a)} and {len(b)} questions; discordance needs the same questions")
        out[task] = float(np.mean(a != b))
    return out


def min_detectable_difference(n: Mapping[str, int], discordance: Mapping[str, float], *, level: float = 0.95,
                              power: float = 0.8) -> float:
    """The smallest drop difference (pp) between two methods that a two-sided paired test at ``level`` detects
    with probability ``power``, for ``n[task]`` held-out questions and discordance ``psi[task]`` per other task.

    Per question of task j the paired difference D = (drop contribution of a) - (of b) is +1, -1 or 0, with
    P(D != 0) = psi_j (McNemar). The drop difference is the mean over the M tasks of D's task means, so with
    the same true difference delta on every task its variance is V(delta) = sum_j (psi_j - delta^2) / n_j / M^2
    (V(0) under no difference). The normal approximation of paired proportions (Connor 1987, the power of
    McNemar's test) gives the detectable delta as the root of
        delta = z_{1 - (1 - level)/2} sqrt(V(0)) + z_{power} sqrt(V(delta)),
    about (z_a + z_b) sqrt(V(0)) when delta^2 << psi. Returned in percentage points.
    """
    if not 0 < level < 1 or not 0 < power < 1:
        raise ValueError(f"level and power must be in (0, 1), got {level} and {power}")
    tasks = list(n)
    if not tasks or sorted(tasks) != sorted(discordance):
        raise ValueError(f"n and discordance must name the same tasks, got {sorted(n)} and {sorted(discordance)}")
    for task in tasks:
        if isinstance(n[task], bool) or not isinstance(n[task], (int, np.integer)) or n[task] < 1:
            raise ValueError(f"n[{task!r}] must be a positive int (held-out questions), got {n[task]!r}")
        if not 0 <= discordance[task] <= 1:
            raise ValueError(f"discordance[{task!r}] must be in [0, 1], got {discordance[task]!r}")
    m = len(tasks)
    psi = np.array([discordance[t] for t in tasks], dtype=float)
    sizes = np.array([n[t] for t in tasks], dtype=float)
    z_a, z_b = NormalDist().inv_cdf(1 - (1 - level) / 2), NormalDist().inv_cdf(power)
    v0 = float(np.sum(psi / sizes)) / m**2
    if v0 == 0:
        return 0.0  # no question ever differs: any difference would show, none is possible
    def excess(delta):  # increasing in delta: its root is the detectable difference
        v1 = float(np.sum(np.clip(psi - delta**2, 0, None) / sizes)) / m**2
        return delta - z_a * math.sqrt(v0) - z_b * math.sqrt(v1)
    lo, hi = 0.0, 1.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if excess(mid) < 0 else (lo, mid)
    return 100.0 * hi


# Table 1 of the paper (v3): drop (pp) per model, method and target; SFT - GRPO is what the chapters compare.
PAPER_DROPS = {
    "Llama-3.1-8B": {"SFT": {"ifeval": 27.8, "mmlu": 38.5, "countdown": 36.4},
                     "REINFORCE": {"ifeval": 7.7, "mmlu": -0.1, "countdown": -0.8},
                     "GRPO": {"ifeval": 3.4, "mmlu": -0.2, "countdown": -0.5}},
    "Qwen2.5-7B": {"SFT": {"ifeval": 5.6, "mmlu": 14.6, "countdown": 29.2},
                   "REINFORCE": {"ifeval": 2.9, "mmlu": -0.6, "countdown": -0.1},
                   "GRPO": {"ifeval": 0.2, "mmlu": 0.2, "countdown": -0.3}},
}


def paper_differences(target: str, a: str = "SFT", b: str = "GRPO") -> dict[str, float]:
    """The paper's drop differences ``a`` - ``b`` (pp) on ``target``, per model (Table 1)."""
    methods = sorted(PAPER_DROPS["Llama-3.1-8B"])
    targets = sorted(PAPER_DROPS["Llama-3.1-8B"]["SFT"])
    for name, value, valid in (("a", a, methods), ("b", b, methods), ("target", target, targets)):
        if value not in valid:
            raise ValueError(f"unknown {name} {value!r}; valid: {', '.join(valid)}")
    return {model: round(drops[a][target] - drops[b][target], 1) for model, drops in PAPER_DROPS.items()}


def power_sentence(n: Mapping[str, int], discordance: Mapping[str, float], target: str, *, a: str = "SFT",
                   b: str = "GRPO", level: float = 0.95, power: float = 0.8,
                   seed_differences: Sequence[float] = ()) -> str:
    """The sentence a chapter prints beside its drop differences: the smallest difference it could detect next to
    the paper's reported differences. With two or more ``seed_differences`` (a - b's drop difference per seed, pp)
    first at the seed level (``seed_min_detectable_difference``, what a claim about the methods rests on), then
    over one evaluation's held-out questions (``min_detectable_difference``, from its sizes and the observed
    discordance), labelled as the second view; with fewer, the question level alone, saying why."""
    mdd = min_detectable_difference(n, discordance, level=level, power=power)
    paper = paper_differences(target, a, b)
    sizes = sorted(set(n.values()))
    size = f"{sizes[0]}" if len(sizes) == 1 else f"{sizes[0]}-{sizes[-1]}"
    psi = 100 * float(np.mean(list(discordance.values())))
    listed = ", ".join(f"{m} {d:+.1f} pp" for m, d in paper.items())

    def verdict(smallest):
        seen = [m for m, d in paper.items() if abs(d) >= smallest]
        return ("all would be detected at this size" if len(seen) == len(paper) else
                "none would be reliably detected at this size" if not seen else
                f"only {', '.join(seen)}'s would be reliably detected at this size")

    questions = (f"with {size} held-out questions on each of the {len(n)} other task(s) and {psi:.0f} % of them "
                 f"answered differently by the two runs (mean discordance), the smallest drop difference this "
                 f"chapter detects at a {100 * level:g} % level with {100 * power:g} % power is {mdd:.1f} pp")
    paper_text = f"The paper's {a} - {b} drop differences with {target} as target (Table 1: {listed})"
    seeds = list(seed_differences)
    if len(seeds) < 2:
        why = "one seed has" if len(seeds) == 1 else "these runs have"
        return (f"No seed-level smallest detectable difference: {why} no spread over training seeds. Over held-out "
                f"questions only (evaluation noise, not training noise), {questions}. {paper_text}: {verdict(mdd)}.")
    sd = float(np.std(check_seed_values(seeds, "seed_differences"), ddof=1))
    seed_mdd = seed_min_detectable_difference(sd, len(seeds), level=level, power=power)
    return (f"Over seeds: the {len(seeds)} seeds' {a} - {b} drop differences at the end spread with a standard "
            f"deviation of {sd:.1f} pp, so the smallest difference {len(seeds)} seeds detect (a t-test at a "
            f"{100 * level:g} % level with {100 * power:g} % power) is {seed_mdd:.1f} pp. {paper_text}: "
            f"{verdict(seed_mdd)}. Over held-out questions only (one evaluation's noise, the second view), "
            f"{questions}.")
