"""What one fit is (``RunSpec``), the paper's runs and what it reports for them, and builders of spec lists."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Iterable, Sequence

import numpy as np

from .conventions import CONVENTIONS
from ..core.validate import check_choice, check_positive_int, check_real, check_reals, check_threshold

METHODS = ("fkl", "rkl", "iter_sft", "self_sft")
METHOD_LABELS = {
    "fkl": "forward KL (SFT)",
    "rkl": "reverse KL (RL)",
    "iter_sft": "on-policy SFT (Iterative-SFT)",
    "self_sft": "initial-model SFT (Self-SFT)",
}
STARTS = ("uni", "bi")


@dataclass(frozen=True)
class RunSpec:
    """One fit. ``slow`` scales the learning rate of the old mode's (weight, mean, std) in a bi-modal start;
    ``reward_scale`` is the 0.1 in the reverse-KL reward log(p_new / q_new / reward_scale) (the paper's "beta",
    renamed: beta is the KL coefficient elsewhere in the project); ``accept_sigmas`` is the on-policy SFT
    verifier: a sample is "correct" when it lies within that many stds of the target's new mode;
    ``conventions`` picks the numerical conventions (``"authors"``: density and reward floors of 1e-12 and the
    authors' overlap grid; ``"exact"``: no floors, a wide grid; see ``toy.conventions``)."""

    method: str
    lr: float
    seed: int = 0
    start: str = "bi"
    new_mean: float = 3.5
    new_weight: float = 0.25
    new_std: float = 0.7
    slow: float = 0.005
    reward_scale: float = 0.1
    accept_sigmas: float = 2.0
    conventions: str = "authors"

    def __post_init__(self):
        check_choice("method", self.method, METHODS)
        check_choice("start", self.start, STARTS)
        check_choice("conventions", self.conventions, tuple(CONVENTIONS))
        for name, why in (("lr", "learning rate"), ("new_mean", "mean of the new mode"),
                          ("new_weight", "weight of the new mode"), ("new_std", "sigma of the new mode"),
                          ("slow", "old-mode learning-rate factor"),
                          ("reward_scale", "divides the reverse-KL reward's ratio"),
                          ("accept_sigmas", "the on-policy SFT verifier's width in stds")):
            check_real(name, getattr(self, name), why)
        if not self.lr > 0:
            raise ValueError(f"lr (learning rate) must be a positive number, got {self.lr!r}")
        if not 0 < self.new_weight < 1:
            raise ValueError(f"new_weight (a mixture weight) must lie in (0, 1), got {self.new_weight}")
        grid = CONVENTIONS[self.conventions].grid(self.start)
        if not grid[0] <= self.new_mean <= grid[1]:  # outside, the new mode has no mass on the grid: Gain is 0 / 0
            raise ValueError(f"new_mean (mean of the new mode) must lie in the overlap grid [{grid[0]:g}, {grid[1]:g}] "
                             f"of conventions {self.conventions!r} ({self.start} start), got {self.new_mean}")
        if not self.new_std > 0:
            raise ValueError(f"new_std (sigma of the new mode) must be > 0, got {self.new_std}")
        if not 0 <= self.slow <= 1:
            raise ValueError(f"slow (old-mode learning-rate factor) must lie in [0, 1], got {self.slow}")
        if not self.reward_scale > 0:
            raise ValueError(f"reward_scale (divides the reverse-KL reward's ratio) must be > 0, "
                             f"got {self.reward_scale}")
        if not self.accept_sigmas > 0:
            raise ValueError(f"accept_sigmas must be > 0, got {self.accept_sigmas}")
        if isinstance(self.seed, (bool, np.bool_)) or not isinstance(self.seed, (int, np.integer)) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed!r}")

    @property
    def label(self) -> str:
        return f"{self.method} lr={self.lr:g}"


# The paper's runs and what it reports for them (single seed each): steps, and Gain / Drop at the reading.
PAPER = {
    "uni": {"steps": 1000, "runs": [
        {"method": "fkl", "lr": 0.05, "gain": 0.90, "drop": 0.64},
        {"method": "rkl", "lr": 0.005, "gain": 0.90, "drop": 0.70},
    ]},
    "bi": {"steps": 200, "runs": [
        {"method": "fkl", "lr": 0.15, "gain": 0.90, "drop": 0.12},
        {"method": "fkl", "lr": 0.01, "gain": 0.44, "drop": 0.02},  # never reaches 0.9: read after 200 steps
        {"method": "rkl", "lr": 0.01, "gain": 0.90, "drop": 0.03},
    ]},
}


def paper_specs(start: str, seeds: Iterable[int], **overrides) -> list[RunSpec]:
    """The paper's runs for ``start`` ("uni" or "bi"), one per seed."""
    check_choice("start", start, STARTS)
    return [RunSpec(method=r["method"], lr=r["lr"], seed=int(s), start=start, **overrides)
            for r in PAPER[start]["runs"] for s in seeds]


def grid_specs(methods: Sequence[str], lrs: Sequence[float], seeds: Iterable[int], **common) -> list[RunSpec]:
    """The product methods x learning rates x seeds; ``common`` values may be lists, which join the product."""
    seeds = list(seeds)
    keys = sorted(k for k, v in common.items() if isinstance(v, (list, tuple, np.ndarray)))
    fixed = {k: v for k, v in common.items() if k not in keys}
    combos = [dict()]
    for k in keys:
        combos = [dict(c, **{k: v}) for c in combos for v in common[k]]
    return [RunSpec(method=m, lr=float(lr), seed=int(s), **c, **fixed)
            for c in combos for m in methods for lr in lrs for s in seeds]




def with_seeds(spec: RunSpec, seeds: Iterable[int]) -> list[RunSpec]:
    return [replace(spec, seed=int(s)) for s in seeds]


# The paper's appendix experiment: the new mode moved right, these learning rates, 200 steps, bi-modal start.
DISTANCE_EXPERIMENT = {
    "distances": (4.5, 5.5, 6.5),
    "steps": 200,
    "runs": (("fkl", 0.15), ("fkl", 0.05), ("fkl", 0.01), ("rkl", 0.01), ("rkl", 0.005)),
}
# Where a new mode may sit: right of the bi-modal start's new component (0.5), inside the authors' grid [-8, 8].
DISTANCE_RANGE = (1.0, 8.0)
SWEEP_LR_RANGE = (1e-6, 10.0)  # the chapter's learning-rate sweep: the bounds a value of sweep_lrs must lie in


def distance_specs(distances: Sequence[float], seeds: Iterable[int],
                   conventions: Sequence[str] = ("authors", "exact"),
                   runs: Sequence[tuple[str, float]] = DISTANCE_EXPERIMENT["runs"]) -> list[RunSpec]:
    """The appendix experiment's runs (``runs``: (method, lr) pairs; default ``DISTANCE_EXPERIMENT["runs"]``,
    bi-modal start) for every distance (mean of the new mode), seed and convention."""
    check_reals("distances", distances, *DISTANCE_RANGE, why="mean of the new mode")
    seeds = list(seeds)
    return [RunSpec(method=m, lr=lr, seed=int(s), start="bi", new_mean=float(d), conventions=c)
            for c in conventions for d in distances for m, lr in runs for s in seeds]


def check_settings(cfg, threshold: float) -> None:
    """Refuse a bad value of the toy chapter's settings before any fit runs, naming the parameter. ``cfg``: the
    chapter's resolved profile (``profiles.apply("01_toy_kl", ...)``): n_seeds, n_samples, sweep_lrs,
    distances, distance_seeds, distance_steps, anim_frames."""
    check_threshold(threshold)
    for name, least in (("n_seeds", 2), ("distance_seeds", 2), ("anim_frames", 2)):
        value = getattr(cfg, name)
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
            raise ValueError(f"{name} must be an integer >= {least} (a spread needs two), got {value!r}")
    check_positive_int("n_samples", cfg.n_samples)
    check_positive_int("distance_steps", cfg.distance_steps)
    check_reals("sweep_lrs", cfg.sweep_lrs, *SWEEP_LR_RANGE, why="learning rate")
    check_reals("distances", cfg.distances, *DISTANCE_RANGE, why="mean of the new mode")
