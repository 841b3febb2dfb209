"""What one fit is (``RunSpec``), the paper's runs and what it reports for them, and builders of spec lists."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Iterable, Sequence

import numpy as np

from .validate import check_choice

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
    verifier: a sample is "correct" when it lies within that many stds of the target's new mode."""

    method: str
    lr: float
    seed: int = 0
    start: str = "bi"
    new_mean: float = 3.5
    new_weight: float = 0.25
    new_std: float = 0.7
    slow: float = 0.005
    reward_scale: float = 0.1
    reward_floor: float = 1e-12
    accept_sigmas: float = 2.0

    def __post_init__(self):
        check_choice("method", self.method, METHODS)
        check_choice("start", self.start, STARTS)
        if not (isinstance(self.lr, (int, float)) and self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr (learning rate) must be a positive number, got {self.lr!r}")
        if not 0 < self.new_weight < 1:
            raise ValueError(f"new_weight (a mixture weight) must lie in (0, 1), got {self.new_weight}")
        if not self.new_std > 0:
            raise ValueError(f"new_std (sigma of the new mode) must be > 0, got {self.new_std}")
        if not 0 <= self.slow <= 1:
            raise ValueError(f"slow (old-mode learning-rate factor) must lie in [0, 1], got {self.slow}")
        if not self.reward_scale > 0:
            raise ValueError(f"reward_scale (divides the reverse-KL reward's ratio) must be > 0, got {self.reward_scale}")
        if not self.reward_floor >= 0:
            raise ValueError(f"reward_floor must be >= 0, got {self.reward_floor}")
        if not self.accept_sigmas > 0:
            raise ValueError(f"accept_sigmas must be > 0, got {self.accept_sigmas}")
        if int(self.seed) != self.seed or self.seed < 0:
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
