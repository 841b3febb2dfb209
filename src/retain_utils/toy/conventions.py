"""Numerical conventions of the toy: the authors' (what their published simulation computes) or exact.

The paper's description leaves three numerical details open, and its authors' code settles them:

- ``density_floor``: 1e-12 added to the mixture density, q(x) = w N1(x) + (1-w) N2(x) + 1e-12, wherever q
  divides. Forward KL (and the SFT variants): the responsibilities are w N1 / q and (1-w) N2 / q, so for a
  point far from both components they are damped towards 0 instead of summing to 1. Reverse KL: in q, in
  the weighted new component (1-w) N2 + 1e-12 and so in the importance weight q / ((1-w) N2 + 1e-12).
- ``reward_floor``: 1e-12 added inside the reward's log, log(p_new / q_new_w / 0.1 + 1e-12), which caps how
  negative a reward can get.
- The overlap grid: [-8, 8] (bi-modal start) and [-10, 10] (uni-modal start), 500 points. A new mode at
  6.5 with std 0.7 is cut off 2.1 std right of its mean by [-8, 8].

``"density_floor"`` and ``"reward_floor"`` keep one floor each, on the wide grid, to tell their effects apart.
``"exact"`` drops both floors (every estimate is the exact formula) and reads overlaps on [-10, 12], which
holds every mode of the chapter with at least five std to spare. Near the paper's setting the two agree; a
new mode far from both components is where they part (see the chapter's distance section).
"""

from __future__ import annotations

from dataclasses import dataclass

# Wide overlap grid of the exact conventions: 500 points like the paper's; covers the target (old mode at
# -3, new mode up to 6.5 + 5 std) and the starts with >= 5 std to spare, so no mode is cut off.
GRID = (-10.0, 12.0, 500)


@dataclass(frozen=True)
class Conventions:
    """Floors of the estimators and the overlap grid (lo, hi, points) per start."""

    name: str
    density_floor: float
    reward_floor: float
    grid_bi: tuple[float, float, int]
    grid_uni: tuple[float, float, int]

    def grid(self, start: str) -> tuple[float, float, int]:
        return self.grid_uni if start == "uni" else self.grid_bi


CONVENTIONS = {
    "authors": Conventions("authors", density_floor=1e-12, reward_floor=1e-12, grid_bi=(-8.0, 8.0, 500),
                           grid_uni=(-10.0, 10.0, 500)),
    "exact": Conventions("exact", density_floor=0.0, reward_floor=0.0, grid_bi=GRID, grid_uni=GRID),
    # one floor at a time, on the wide grid: which of the authors' conventions carries which result
    "density_floor": Conventions("density_floor", density_floor=1e-12, reward_floor=0.0, grid_bi=GRID, grid_uni=GRID),
    "reward_floor": Conventions("reward_floor", density_floor=0.0, reward_floor=1e-12, grid_bi=GRID, grid_uni=GRID),
}
CONVENTION_LABELS = {
    "authors": "authors' conventions (floors 1e-12)",
    "exact": "exact (no floor)",
    "density_floor": "density floor only",
    "reward_floor": "reward floor only",
}
