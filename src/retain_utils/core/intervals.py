"""Intervals, one home: the Wilson score interval of a proportion (every accuracy's and every toy share's interval in
the book) and the Student t-interval over training seeds (every claim about a method difference)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np


def wilson_interval(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for k successes in n trials (95 % for z = 1.96), sensible at k = 0 or k = n;
    (0, 1) when n == 0: no trials leave every proportion possible."""
    if n == 0:
        return 0.0, 1.0
    p = k / n
    denom = 1 + z * z / n
    center = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, center - half), min(1.0, center + half)


def _t_central_mass(t: float, df: int) -> float:
    """P(|T| < t) for Student's t with integer ``df`` >= 1: the exact finite sums of Abramowitz & Stegun 26.7.3
    (odd df) and 26.7.4 (even df), in theta = atan(t / sqrt(df))."""
    theta = math.atan(abs(t) / math.sqrt(df))
    c2, total, term = math.cos(theta) ** 2, 1.0, 1.0
    if df % 2:
        if df == 1:
            return 2 * theta / math.pi
        for k in range(1, (df - 1) // 2):  # coefficients (2 4 ... 2k) / (3 5 ... (2k + 1))
            term *= c2 * (2 * k) / (2 * k + 1)
            total += term
        return 2 / math.pi * (theta + math.sin(theta) * math.cos(theta) * total)
    for k in range(1, df // 2):  # coefficients (1 3 ... (2k - 1)) / (2 4 ... 2k)
        term *= c2 * (2 * k - 1) / (2 * k)
        total += term
    return math.sin(theta) * total


def t_quantile(p: float, df: int) -> float:
    """The ``p`` quantile of Student's t with integer ``df`` degrees of freedom (exact, by bisection on the
    closed-form distribution; scipy.stats.t.ppf gives the same to 1e-9): 4.303 for p = 0.975 and df = 2."""
    if isinstance(df, bool) or not isinstance(df, (int, np.integer)) or df < 1:
        raise ValueError(f"df must be a positive int (seeds - 1), got {df!r}")
    if not 0 < p < 1:
        raise ValueError(f"p must be in (0, 1), got {p!r}")
    if p == 0.5:
        return 0.0
    if p < 0.5:
        return -t_quantile(1 - p, df)
    target, hi = 2 * p - 1, 1.0
    while _t_central_mass(hi, df) < target:
        hi *= 2
    lo = 0.0
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if _t_central_mass(mid, df) < target else (lo, mid)
    return (lo + hi) / 2


def check_seed_values(values_per_seed: Sequence[float], name: str) -> np.ndarray:
    if isinstance(values_per_seed, (str, bytes, Mapping)) or not isinstance(values_per_seed, (Sequence, np.ndarray)):
        raise ValueError(f"{name} needs a sequence of one number per seed, got {values_per_seed!r:.80}")
    v = np.asarray(values_per_seed, dtype=float)
    if v.ndim != 1 or not np.isfinite(v).all():
        raise ValueError(f"{name} needs finite numbers, one per seed, got {values_per_seed!r:.80}")
    if len(v) < 2:
        raise ValueError(f"{name} needs at least 2 seeds, got {len(v)}: one seed has no spread over seeds, so no "
                         "seed-level interval exists (use the interval over held-out questions, labelled as such)")
    return v


def seed_t_interval(values_per_seed: Sequence[float], level: float = 0.95) -> tuple[float, float]:
    """The ``level`` Student t-interval of the mean of ``values_per_seed`` (one method difference per training
    seed): mean -+ t_{1 - (1 - level) / 2, n - 1} s / sqrt(n), s the seeds' sample standard deviation. Needs
    n >= 2 seeds; it holds training noise and each seed's evaluation noise alike."""
    if isinstance(level, bool) or not isinstance(level, (int, float)) or not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    v = check_seed_values(values_per_seed, "seed_t_interval")
    n = len(v)
    half = t_quantile(1 - (1 - level) / 2, n - 1) * float(v.std(ddof=1)) / math.sqrt(n)
    mean = float(v.mean())
    return mean - half + 0.0, mean + half + 0.0  # no -0.0
