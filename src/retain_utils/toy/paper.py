"""The chapter's checks against the paper: which reading of the setup reproduces its numbers, whether the
result is sampling noise (noise-free fits), and the computed sentences that state both."""

from __future__ import annotations

import math

import numpy as np

from .conventions import CONVENTION_LABELS
from .engine import simulate
from .readout import THRESHOLD, compare_with_paper
from .specs import METHOD_LABELS, PAPER, STARTS, paper_specs

# The readings of the setup compared with the paper: (label, RunSpec overrides, parametrisation).
READINGS = (
    ("weight, std; authors' conventions (this chapter)", {}, "direct"),
    ("weight, std; exact estimators (no floors)", {"conventions": "exact"}, "direct"),
    ("logit weight, log std; authors' conventions", {}, "natural"),
)


def _fits(seeds, n_samples: int, estimator: str = "mc", param: str = "direct", **overrides) -> dict:
    return {start: simulate(paper_specs(start, seeds, **overrides), PAPER[start]["steps"], n_samples,
                            estimator=estimator, param=param) for start in STARTS}


def compare_readings(seeds, n_samples: int, threshold: float = THRESHOLD):
    """The paper's runs under each reading of ``READINGS``: mean Drop over seeds at the reading (in brackets:
    seeds reaching Gain >= threshold), beside the paper's one-seed Drop; one row per reading."""
    import pandas as pd

    rows = [{"reading": "paper (Drop; one seed)", **{f"{s} {r['method']} {r['lr']:g}": f"{r['drop']:.2f}"
                                                     for s in STARTS for r in PAPER[s]["runs"]}}]
    for name, overrides, param in READINGS:
        t = compare_with_paper(_fits(seeds, n_samples, param=param, **overrides), threshold)
        rows.append({"reading": name, **{f"{r.start} {r.method} {r.lr:g}": f"{r['Drop mean']:.2f} ({r['seeds reaching']})"
                                         for _, r in t.iterrows()}})
    return pd.DataFrame(rows).set_index("reading")


def paper_sentence(paper_table) -> str:
    """Markdown: which method forgets less from each start, by our mean Drop, beside the paper's."""
    drops = paper_table.set_index(["start", "method", "lr"])
    lines = []
    for start, (fkl, rkl) in (("uni", (0.05, 0.005)), ("bi", (0.15, 0.01))):
        ours = drops.loc[(start, "fkl", fkl), "Drop mean"], drops.loc[(start, "rkl", rkl), "Drop mean"]
        paper = drops.loc[(start, "fkl", fkl), "paper Drop"], drops.loc[(start, "rkl", rkl), "paper Drop"]
        less = "forward" if ours[0] < ours[1] else "reverse"
        paper_less = "forward" if paper[0] < paper[1] else "reverse"
        lines.append(f"- {start}-modal start: Drop {ours[0]:.2f} ({METHOD_LABELS['fkl']}, lr {fkl:g}) against "
                     f"{ours[1]:.2f} ({METHOD_LABELS['rkl']}, lr {rkl:g}): **{less} KL forgets less**; the paper: "
                     f"{paper[0]:.2f} against {paper[1]:.2f} ({paper_less} KL)"
                     + (", the same verdict." if less == paper_less else ", a different verdict."))
    conv = sorted(set(paper_table.get("conventions", ["authors"])))
    return (f"With the {' and '.join(CONVENTION_LABELS[c] for c in conv)} (means over seeds):\n\n"
            + "\n".join(lines))


def noise_free_fits(n_samples: int) -> dict:
    """The paper's runs, one per setting, with the noise-free estimators: {"quadrature" | "quadrature_new" |
    "quadrature_exact": {"uni": Fit, "bi": Fit}}; the last is the exact expectation without the authors' floors."""
    fits = {est: _fits([0], n_samples, estimator=est) for est in ("quadrature", "quadrature_new")}
    fits["quadrature_exact"] = _fits([0], n_samples, estimator="quadrature", conventions="exact")
    return fits


def noise_free_table(paper_table, noise_free: dict, threshold: float = THRESHOLD):
    """Monte-Carlo Drop (mean, sd, median over seeds, from ``paper_table``) beside the noise-free Drops: the
    exact expectation (with the authors' floors, and without), and its new-component part only; one row per
    paper run."""
    import pandas as pd

    free = {est: compare_with_paper(fits, threshold).set_index(["start", "method", "lr"])
            for est, fits in noise_free.items()}
    rows = []
    for _, r in paper_table.iterrows():
        key = (r.start, r.method, r.lr)
        rows.append({"start": r.start, "method": r.method, "lr": r.lr, "read at": r["read at"],
                     "Monte Carlo: Drop mean": r["Drop mean"], "Drop sd": r["Drop std"], "Drop median": r["Drop median"],
                     "noise-free, exact expectation: Drop": free["quadrature"].loc[key, "Drop mean"],
                     "noise-free, new-component part: Drop": free["quadrature_new"].loc[key, "Drop mean"],
                     "noise-free, exact expectation, no floors: Drop": free["quadrature_exact"].loc[key, "Drop mean"]})
    return pd.DataFrame(rows)


def noise_free_sentence(noise_table, tol: float = 0.02) -> str:
    """Markdown: whether the noise-free uni-modal fits match the Monte-Carlo means (within ``tol``), and the
    bi-modal Drops of the noise-free forward and reverse KL against reverse KL's Monte-Carlo median."""
    nt = noise_table.set_index(["start", "method", "lr"])
    exact, mc = "noise-free, exact expectation: Drop", "Monte Carlo: Drop mean"
    gaps = [abs(nt.loc[("uni", m, lr), exact] - nt.loc[("uni", m, lr), mc]) for m, lr in (("fkl", 0.05), ("rkl", 0.005))]
    same = all(g < tol for g in gaps if not math.isnan(g))
    rkl = nt.loc[("bi", "rkl", 0.01)]
    fkl = nt.loc[("bi", "fkl", 0.15), exact]
    return (f"Uni-modal start: the noise-free fits {'match' if same else 'differ from'} the Monte-Carlo means "
            f"(largest gap {np.nanmax(gaps):.3f}). Bi-modal start: noise-free forward KL (lr 0.15) Drop {fkl:.2f}; "
            f"reverse KL (lr 0.01): exact expectation {rkl[exact]:.2f} with the authors' floors and "
            f"{rkl['noise-free, exact expectation, no floors: Drop']:.2f} without, new-component part only "
            f"{rkl['noise-free, new-component part: Drop']:.2f}, Monte-Carlo median {rkl['Drop median']:.2f}.")
