"""Reading a fit: overlap "accuracy" of each target mode on a grid, the ``Fit`` record, its reading at a Gain
threshold, and the pandas summaries the chapter shows."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Sequence

import numpy as np

from .conventions import GRID
from .mixture import Mixture, weighted_pdf
from .specs import METHOD_LABELS, PAPER, RunSpec
from ..core.validate import check_threshold

PARAM_NAMES = ("w_old", "mu_old", "s_old", "mu_new", "s_new")
# The reading the paper reports: the first step where Gain >= 0.9.
THRESHOLD = 0.9


def make_grid(grid=GRID) -> tuple[np.ndarray, np.ndarray]:
    """Grid points and trapezoid weights, so that ``f @ weights`` is the trapezoid rule on the grid."""
    lo, hi, n = grid
    if not (hi > lo and int(n) == n and n >= 3):
        raise ValueError(f"grid must be (lo, hi, n) with hi > lo and integer n >= 3, got {grid}")
    xs = np.linspace(lo, hi, int(n))
    tw = np.full(int(n), xs[1] - xs[0])
    tw[[0, -1]] /= 2
    return xs, tw


def overlaps(start: str, theta: np.ndarray, xs, tw, p_old, p_new) -> tuple[np.ndarray, np.ndarray]:
    """Overlap "accuracy" of each target mode (old, new): integral of min(p_mode, q_mode) over the area
    of p_mode (trapezoid rule on the grid ``xs`` with weights ``tw``), with weighted components; p_old,
    p_new are ``(rows, G)`` and computed in their dtype; a uni-modal q is compared whole with each target mode."""
    th = theta.astype(p_old.dtype)
    w, mu1, s1, mu2, s2 = (th[:, i : i + 1] for i in range(5))
    q_new = weighted_pdf(xs, 1 - w, mu2, s2)
    q_old = q_new if start == "uni" else weighted_pdf(xs, w, mu1, s1)
    trapz = lambda f: np.einsum("ij,j->i", f, tw).astype(float)  # noqa: E731  (row by row, unlike BLAS)
    acc_old = trapz(np.minimum(p_old, q_old))
    acc_new = trapz(np.minimum(p_new, q_new, out=q_new))
    return acc_old / trapz(p_old), acc_new / trapz(p_new)


@dataclass
class Fit:
    """A batch of fits: parameters and mode accuracies at every step (index 0 = start)."""

    specs: tuple[RunSpec, ...]
    params: np.ndarray  # (runs, steps + 1, 5) in PARAM_NAMES order
    acc_old: np.ndarray  # (runs, steps + 1)
    acc_new: np.ndarray
    estimator: str
    param: str
    grids: tuple  # each run's overlap grid (lo, hi, points)

    @property
    def gain(self) -> np.ndarray:
        return self.acc_new - self.acc_new[:, :1]

    @property
    def drop(self) -> np.ndarray:
        return self.acc_old[:, :1] - self.acc_old

    @property
    def steps(self) -> int:
        return self.params.shape[1] - 1

    def read(self, threshold: float = THRESHOLD) -> "Reading":
        return read(self, threshold)

    def select(self, **match) -> np.ndarray:
        """Indices of the runs whose spec fields equal ``match`` (floats compared with np.isclose)."""
        names = {f.name for f in fields(RunSpec)}
        bad = sorted(set(match) - names)
        if bad:
            raise ValueError(f"unknown RunSpec fields {bad}; valid: {sorted(names)}")
        same = lambda a, v: bool(np.isclose(a, v)) if isinstance(v, float) else a == v  # noqa: E731
        return np.array([i for i, s in enumerate(self.specs)
                         if all(same(getattr(s, k), v) for k, v in match.items())], dtype=int)

    def subset(self, runs) -> "Fit":
        """The fits of the runs with indices ``runs``, in that order."""
        runs = np.asarray(runs, dtype=int)
        return Fit(tuple(self.specs[i] for i in runs), self.params[runs], self.acc_old[runs], self.acc_new[runs],
                   self.estimator, self.param, tuple(self.grids[i] for i in runs))

    def mixture(self, run: int, step: int) -> Mixture:
        """The model of run ``run`` after ``step`` steps."""
        w, mu1, s1, mu2, s2 = self.params[run, step]
        if self.specs[run].start == "uni":
            return Mixture((1.0,), (mu2,), (s2,))
        return Mixture((w, 1 - w), (mu1, mu2), (s1, s2))


@dataclass
class Reading:
    """Each run read at the first step where Gain >= threshold; runs that never get there are marked, not read."""

    threshold: float
    reached: np.ndarray  # bool (runs,)
    step: np.ndarray  # first step with Gain >= threshold, -1 where never reached
    gain: np.ndarray  # at that step; NaN where never reached
    drop: np.ndarray
    final_gain: np.ndarray  # after the last step, for every run
    final_drop: np.ndarray


def read(fit: Fit, threshold: float = THRESHOLD) -> Reading:
    check_threshold(threshold)
    hit = fit.gain[:, 1:] >= threshold
    reached = hit.any(1)
    step = np.where(reached, hit.argmax(1) + 1, -1)
    idx = np.maximum(step, 0)
    rows = np.arange(len(step))
    nan = np.full(len(step), np.nan)
    return Reading(
        threshold=threshold,
        reached=reached,
        step=step,
        gain=np.where(reached, fit.gain[rows, idx], nan),
        drop=np.where(reached, fit.drop[rows, idx], nan),
        final_gain=fit.gain[:, -1].copy(),
        final_drop=fit.drop[:, -1].copy(),
    )


def summarise(fit: Fit, threshold: float = THRESHOLD, by: Sequence[str] = ("start", "method", "lr")):
    """One row per group of runs (over seeds): how many reached the threshold, and mean / std of the
    step, Gain and Drop at the reading (over the runs that reached it) and of the final Gain / Drop."""
    import pandas as pd

    r = read(fit, threshold)
    df = pd.DataFrame([{k: getattr(s, k) for k in by} for s in fit.specs])
    df["reached"] = r.reached
    df["step"] = np.where(r.reached, r.step, np.nan)
    df["gain"], df["drop"] = r.gain, r.drop
    df["final_gain"], df["final_drop"] = r.final_gain, r.final_drop
    g = df.groupby(list(by), sort=False)
    out = g.agg(
        runs=("reached", "size"),
        reached=("reached", "sum"),
        step_mean=("step", "mean"),
        drop_mean=("drop", "mean"),
        drop_std=("drop", "std"),
        gain_mean=("gain", "mean"),
        final_gain_mean=("final_gain", "mean"),
        final_gain_std=("final_gain", "std"),
        final_drop_mean=("final_drop", "mean"),
        final_drop_std=("final_drop", "std"),
    )
    return out.reset_index()


def drop_at_gain(fit: Fit, levels: Sequence[float], by: Sequence[str] = ("method", "lr")):
    """Forgetting at equal learning: for each group of runs and each Gain level, the median Drop at the
    first step where Gain reaches that level (over the seeds that reach it), and how many seeds do."""
    import pandas as pd

    for level in levels:
        check_threshold(level)
    groups: dict[tuple, list[int]] = {}
    for i, s in enumerate(fit.specs):
        groups.setdefault(tuple(getattr(s, k) for k in by), []).append(i)
    rows = []
    for key, idx in groups.items():
        row = dict(zip(by, key))
        for level in levels:
            r = read(fit.subset(idx), level)
            row[f"Drop at Gain {level:g} (median)"] = np.nanmedian(r.drop) if r.reached.any() else np.nan
            row[f"reached {level:g}"] = f"{r.reached.sum()}/{len(idx)}"
        rows.append(row)
    return pd.DataFrame(rows)


def compare_with_paper(fits: dict, threshold: float = THRESHOLD):
    """Our numbers next to the paper's, one row per paper run. ``fits``: {"uni": Fit, "bi": Fit} of
    ``paper_specs`` runs. Runs that reach the threshold are read there; the paper's run that never does
    (bi-modal forward KL, lr 0.01) is compared after its last step."""
    import pandas as pd

    rows = []
    for start, fit in fits.items():
        r = read(fit, threshold)
        for ref in PAPER[start]["runs"]:
            idx = fit.select(method=ref["method"], lr=ref["lr"], start=start)
            reached = r.reached[idx]
            at_end = ref["gain"] < threshold  # the paper reads this run after its last step
            gain = r.final_gain[idx] if at_end else r.gain[idx[reached]]
            drop = r.final_drop[idx] if at_end else r.drop[idx[reached]]
            rows.append({
                "start": start, "method": ref["method"], "lr": ref["lr"],
                "conventions": ", ".join(sorted({fit.specs[i].conventions for i in idx})),
                "read at": f"step {PAPER[start]['steps']} (end)" if at_end else f"Gain >= {threshold:g}",
                "paper Gain": ref["gain"], "paper Drop": ref["drop"],
                "seeds reaching": f"{reached.sum()}/{idx.size}",
                "Gain mean": np.mean(gain) if gain.size else np.nan,
                "Drop mean": np.mean(drop) if drop.size else np.nan,
                "Drop std": np.std(drop, ddof=1) if drop.size > 1 else np.nan,
                "Drop median": np.median(drop) if drop.size else np.nan,
                "Drop min": np.min(drop) if drop.size else np.nan,
                "Drop max": np.max(drop) if drop.size else np.nan,
            })
    return pd.DataFrame(rows)


def equal_gain_sentence(equal_gain, level: float, lr: float) -> str:
    """Markdown: each method's median Drop when Gain first reaches ``level`` at learning rate ``lr``, from a
    ``drop_at_gain`` table."""
    col = f"Drop at Gain {level:g} (median)"
    t = equal_gain.set_index(["method", "lr"])
    parts = []
    for m in dict.fromkeys(equal_gain.method):
        v = t.loc[(m, lr), col] if (m, lr) in t.index else np.nan
        parts.append(f"{METHOD_LABELS[m]} " + ("never reaches it" if np.isnan(v) else f"{v:.3f}"))
    return f"Drop when Gain first reaches {level:g} (median over seeds), learning rate {lr:g}: " + ", ".join(parts) + "."


def lr_sweep_sentence(lr_table, threshold: float = THRESHOLD, methods=("fkl", "rkl")) -> str:
    """Markdown: mean Drop at each learning rate where some seeds reach the threshold, per method, from a
    ``summarise`` table."""
    ok = lr_table[lr_table.reached > 0]
    lines = []
    for m in methods:
        d = ok[ok.method == m].sort_values("lr")
        if len(d):
            lines.append(f"- {METHOD_LABELS[m]}: mean Drop " + ", ".join(f"{x.drop_mean:.2f} (lr {x.lr:g})"
                                                                      for x in d.itertuples())
                         + f", over the learning rates at which some seeds reach Gain {threshold:g}.")
        else:
            lines.append(f"- {METHOD_LABELS[m]}: no seed reaches Gain {threshold:g} at any learning rate.")
    return "\n".join(lines)
