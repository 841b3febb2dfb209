"""1-D Gaussian mixtures: the target (an old and a new mode) and the two starting models."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..core.validate import check_positive_int

LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


@dataclass(frozen=True)
class Mixture:
    """A 1-D Gaussian mixture: ``weights[k] * N(means[k], stds[k])``."""

    weights: tuple[float, ...]
    means: tuple[float, ...]
    stds: tuple[float, ...]

    def __post_init__(self):
        k = len(self.weights)
        if k == 0 or len(self.means) != k or len(self.stds) != k:
            raise ValueError("Mixture: weights, means and stds need the same, non-zero length")
        for s in self.stds:
            if not s > 0:
                raise ValueError(f"Mixture: stds must be > 0 (sigma <= 0 is not a Gaussian), got {s}")
        if k == 1 and self.weights[0] != 1:
            raise ValueError(f"Mixture: a single component has weight 1, got {self.weights[0]}")
        if k > 1:
            for w in self.weights:
                if not 0 < w < 1:
                    raise ValueError(f"Mixture: weights must lie in (0, 1), got {w}")
            if abs(sum(self.weights) - 1) > 1e-9:
                raise ValueError(f"Mixture: weights must sum to 1, got {sum(self.weights)}")

    def component_pdfs(self, x) -> np.ndarray:
        """Weighted component densities, shape ``(k, *x.shape)``."""
        x = np.asarray(x, dtype=float)
        return np.stack([w * normal_pdf(x, m, s) for w, m, s in zip(self.weights, self.means, self.stds)])

    def pdf(self, x) -> np.ndarray:
        return self.component_pdfs(x).sum(0)

    def logpdf(self, x) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        logs = [math.log(w) + normal_logpdf(x, m, s) for w, m, s in zip(self.weights, self.means, self.stds)]
        return np.logaddexp.reduce(np.stack(logs), axis=0)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        check_positive_int("n", n)
        comp = rng.choice(len(self.weights), size=n, p=np.asarray(self.weights))
        return np.asarray(self.means)[comp] + np.asarray(self.stds)[comp] * rng.standard_normal(n)

    def mean(self) -> float:
        return float(np.dot(self.weights, self.means))

    def var(self) -> float:
        m2 = np.dot(self.weights, np.square(self.stds) + np.square(self.means))
        return float(m2 - self.mean() ** 2)


def normal_logpdf(x, mean, std):
    z = (x - mean) / std
    return -0.5 * z * z - np.log(std) - LOG_SQRT_2PI


def normal_pdf(x, mean, std):
    return np.exp(normal_logpdf(x, mean, std))


def weighted_pdf(xs, w, mu, s):
    """w N(xs; mu, s) for rows of parameters ``(rows, 1)`` against grid points ``(G,)``, in place."""
    z = np.broadcast_to(xs - mu, np.broadcast_shapes(np.shape(xs), np.shape(mu), np.shape(w))).copy()
    z /= s
    z *= z
    z *= -0.5
    z += np.log(w / s) - LOG_SQRT_2PI
    return np.exp(z, out=z)


TARGET_OLD = (-3.0, 1.0)  # the target's old mode: mean, std (its weight is 1 - new_weight)
UNI_START = Mixture((1.0,), (-3.5,), (1.0,))
BI_START = Mixture((0.75, 0.25), (-3.5, 0.5), (1.0, 0.7))


def target(new_mean: float = 3.5, new_weight: float = 0.25, new_std: float = 0.7) -> Mixture:
    """pi* = (1 - new_weight) N(-3, 1) + new_weight N(new_mean, new_std): old knowledge left, new task right."""
    return Mixture((1 - new_weight, new_weight), (TARGET_OLD[0], new_mean), (TARGET_OLD[1], new_std))
