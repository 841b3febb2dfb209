"""The paper's appendix experiment read out: the new mode moved right (``specs.distance_specs``), both numerical
conventions side by side, and the share of seeds in which the old mode collapses, with its interval.

``distance_summary`` gives one numeric row per (distance, method, learning rate, conventions);
``distance_table`` formats it for a reader; ``disagreements`` and ``distance_sentence`` say, in computed
sentences, at which distances the two conventions part and by how much.
"""

from __future__ import annotations

import math

import numpy as np

from .conventions import CONVENTION_LABELS, CONVENTIONS
from .mixture import BI_START
from .readout import THRESHOLD, Fit, read
from .specs import METHOD_LABELS, distance_specs
from ..core.intervals import wilson_interval
from ..core.validate import check_threshold

# A seed's old mode "collapses" when it has lost at least half of its overlap after the last step. Reverse
# KL's final Drops cluster below 0.25 or above 0.7 at far new modes, so any cut in between counts the same.
COLLAPSE_DROP = 0.5
# Two conventions "disagree" on a run when the share of seeds reaching the threshold differs by more than
# SHARE_TOL, or the mean Gain / Drop after the last step by more than VALUE_TOL (overlap, 0-1).
SHARE_TOL = 0.25
VALUE_TOL = 0.05


def distance_summary(fit: Fit, threshold: float = THRESHOLD, collapse_drop: float = COLLAPSE_DROP):
    """One row per (new-mode mean, method, lr, conventions) over seeds: how many seeds reach Gain >= threshold,
    Drop at that reading (mean, sd, over the seeds that reach it), Gain and Drop after the last step (mean, sd),
    the new component's mean and std after the first step, and how many seeds' old mode collapsed (final
    Drop >= ``collapse_drop``) with the 95 % Wilson interval of that share."""
    import pandas as pd

    check_threshold(threshold)
    r = read(fit, threshold)
    groups: dict[tuple, list[int]] = {}
    for i, s in enumerate(fit.specs):
        groups.setdefault((s.new_mean, s.method, s.lr, s.conventions), []).append(i)
    rows = []
    for (d, m, lr, conv), idx in groups.items():
        idx = np.array(idx)
        ok = idx[r.reached[idx]]
        collapsed = int((r.final_drop[idx] >= collapse_drop).sum())
        lo, hi = wilson_interval(collapsed, idx.size)
        sd = lambda v: float(np.std(v, ddof=1)) if v.size > 1 else math.nan  # noqa: E731
        rows.append({
            "new_mean": d, "method": m, "lr": lr, "conventions": conv, "seeds": idx.size,
            "reached": ok.size, "drop_mean": float(r.drop[ok].mean()) if ok.size else math.nan,
            "drop_sd": sd(r.drop[ok]), "step_mean": float(r.step[ok].mean()) if ok.size else math.nan,
            "final_gain_mean": float(r.final_gain[idx].mean()), "final_gain_sd": sd(r.final_gain[idx]),
            "final_drop_mean": float(r.final_drop[idx].mean()), "final_drop_sd": sd(r.final_drop[idx]),
            "step1_mu_new": float(fit.params[idx, 1, 3].mean()), "step1_s_new": float(fit.params[idx, 1, 4].mean()),
            "collapsed": collapsed, "collapsed_lo": lo, "collapsed_hi": hi,
        })
    return pd.DataFrame(rows)


def _pm(m: float, s: float) -> str:
    return "-" if math.isnan(m) else (f"{m:.2f}" if math.isnan(s) else f"{m:.2f} ± {s:.2f}")


def distance_table(summary, steps: int, threshold: float = THRESHOLD):
    """``distance_summary`` for a reader: one row per (new-mode mean, method, lr), the two conventions side by
    side (column groups), readable headers; Gain and Drop are overlaps (fractions of the mode's area, 0-1)."""
    import pandas as pd

    rows = {}
    for _, x in summary.iterrows():
        key = (x.new_mean, METHOD_LABELS[x.method], x.lr)
        row = rows.setdefault(key, {})
        conv = CONVENTION_LABELS[x.conventions]
        row[(conv, f"seeds reaching Gain {threshold:g}")] = f"{x.reached}/{x.seeds}"
        row[(conv, f"Drop at Gain {threshold:g} (mean ± sd)")] = _pm(x.drop_mean, x.drop_sd)
        row[(conv, f"Gain after {steps} steps (mean ± sd)")] = _pm(x.final_gain_mean, x.final_gain_sd)
        row[(conv, f"Drop after {steps} steps (mean ± sd)")] = _pm(x.final_drop_mean, x.final_drop_sd)
        row[(conv, "old mode collapsed: seeds (95 % CI of share)")] = (
            f"{x.collapsed}/{x.seeds} ({x.collapsed_lo:.2f}-{x.collapsed_hi:.2f})")
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index = pd.MultiIndex.from_tuples(table.index, names=["new-mode mean", "method", "learning rate"])
    table.columns = pd.MultiIndex.from_tuples(table.columns)
    return table


def disagreements(summary, share_tol: float = SHARE_TOL, value_tol: float = VALUE_TOL):
    """The runs (new-mode mean, method, lr) on which the two conventions disagree, with both sides' numbers:
    reaching share, or mean Gain / Drop after the last step, apart by more than the tolerances."""
    import pandas as pd

    wide = summary.pivot_table(index=["new_mean", "method", "lr"], columns="conventions",
                               values=["reached", "seeds", "final_gain_mean", "final_drop_mean", "collapsed"])
    rows = []
    for (d, m, lr), x in wide.iterrows():
        share = {c: x["reached", c] / x["seeds", c] for c in ("authors", "exact")}
        gaps = {"share": abs(share["authors"] - share["exact"]) > share_tol,
                "gain": abs(x["final_gain_mean", "authors"] - x["final_gain_mean", "exact"]) > value_tol,
                "drop": abs(x["final_drop_mean", "authors"] - x["final_drop_mean", "exact"]) > value_tol}
        rows.append({"new_mean": d, "method": m, "lr": lr, "disagree": any(gaps.values()),
                     **{f"{k} differs": v for k, v in gaps.items()},
                     "reached authors": int(x["reached", "authors"]), "reached exact": int(x["reached", "exact"]),
                     "seeds": int(x["seeds", "authors"]),
                     **{f"final {q} {c}": x[f"final_{q}_mean", c] for q in ("gain", "drop") for c in ("authors", "exact")}})
    return pd.DataFrame(rows)


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def distance_sentence(summary, steps: int, threshold: float = THRESHOLD) -> str:
    """Markdown: at which distances the conventions disagree and on which runs (with both sides' numbers),
    the first step at the far modes, and the collapse share of reverse KL's old mode at each distance."""
    dis = disagreements(summary)
    where = sorted({d for d in dis.new_mean[dis.disagree]})
    agree = sorted(set(dis.new_mean) - set(where))
    parts = []
    if agree:
        parts.append(f"At new-mode mean{'s' if len(agree) > 1 else ''} {_join([f'{d:g}' for d in agree])} the two "
                     f"conventions agree on every run (reaching share within {SHARE_TOL:g}, mean Gain and Drop after "
                     f"{steps} steps within {VALUE_TOL:g}).")
    if where:
        parts.append(f"They disagree at {_join([f'{d:g}' for d in where])}:")
        items = []
        for d in where:
            for _, x in dis[(dis.new_mean == d) & dis.disagree].iterrows():
                items.append(f"- new mode at {d:g}, {METHOD_LABELS[x.method]} at lr {x.lr:g}: "
                             f"{x['reached authors']}/{x.seeds} seeds reach Gain {threshold:g} with the floor, "
                             f"{x['reached exact']}/{x.seeds} without; Gain after {steps} steps "
                             f"{x['final gain authors']:.2f} vs {x['final gain exact']:.2f}, Drop "
                             f"{x['final drop authors']:.2f} vs {x['final drop exact']:.2f}.")
        parts = [" ".join(parts), "\n".join(items)]
    else:
        parts = [" ".join(parts) + " They disagree at no distance of this run."]
    return "\n\n".join(parts)


def first_step_sentence(summary, method: str = "fkl", lr: float = 0.15) -> str:
    """Markdown: where one step of ``method`` at ``lr`` puts the new component under each convention, at each
    distance of the summary: the floor's effect in number pairs."""
    rows = summary[(summary.method == method) & np.isclose(summary.lr, lr)]
    if rows.empty:
        return ""
    parts = []
    for d, g in rows.groupby("new_mean"):
        by = g.set_index("conventions")
        a, e = by.loc["authors"], by.loc["exact"]
        parts.append(f"new mode at {d:g}: mean {a.step1_mu_new:.2f}, std {a.step1_s_new:.2f} with the floor, "
                     f"mean {e.step1_mu_new:.2f}, std {e.step1_s_new:.2f} without")
    return (f"After one step of {METHOD_LABELS[method]} at lr {lr:g} the new component (which starts at mean "
            f"{BI_START.means[1]:g}, std {BI_START.stds[1]:g}) sits at: " + "; ".join(parts)
            + f" (means over {int(rows.seeds.iloc[0])} seeds).")


def collapse_sentence(summary, steps: int, method: str = "rkl", collapse_drop: float = COLLAPSE_DROP) -> str:
    """Markdown: in how many seeds reverse KL's old mode collapses (final Drop >= ``collapse_drop``), with the
    95 % Wilson interval of the share: the settings where some seed collapsed one by one, the rest together."""
    rows = summary[summary.method == method].sort_values(["new_mean", "lr", "conventions"])
    name = METHOD_LABELS[method][0].upper() + METHOD_LABELS[method][1:]
    some = rows[rows.collapsed > 0]
    lines = [f"- new mode at {x.new_mean:g}, lr {x.lr:g}, {CONVENTION_LABELS[x.conventions]}: {x.collapsed}/{x.seeds} "
             f"seeds (95 % interval of the share {x.collapsed_lo:.2f}-{x.collapsed_hi:.2f})" for x in some.itertuples()]
    rest = rows[rows.collapsed == 0]
    head = f"{name}: seeds whose old mode collapses (Drop $\\geq$ {collapse_drop:g} after {steps} steps)"
    if rest.empty:
        tail = ""
    elif some.empty:
        tail = (f" - none, in any setting of either convention (0/{rest.seeds.min()} per setting, 95 % interval of "
                f"the share up to {rest.collapsed_hi.max():.2f}).")
    else:
        tail = (f"; in the {len(rest)} other settings (distance x lr x conventions) none (0/{rest.seeds.min()} each, "
                f"95 % interval up to {rest.collapsed_hi.max():.2f}).")
    if not lines:
        return head + tail
    tail = tail.lstrip("; ")
    return head + ":\n\n" + "\n".join(lines) + "\n\n" + tail[:1].upper() + tail[1:]


# The floor ablation: the appendix's fastest runs at one far distance, under each floor alone.
FLOOR_ABLATION_RUNS = (("fkl", 0.15), ("rkl", 0.01))


def floor_ablation_specs(new_mean: float, seeds) -> list:
    """``FLOOR_ABLATION_RUNS`` at new-mode mean ``new_mean`` under every convention of ``toy.CONVENTIONS``
    (both floors, each alone, none)."""
    return distance_specs([new_mean], seeds, conventions=tuple(CONVENTIONS), runs=FLOOR_ABLATION_RUNS)


def _close(a, b, share_tol: float = SHARE_TOL, value_tol: float = VALUE_TOL) -> bool:
    return (abs(a.reached / a.seeds - b.reached / b.seeds) <= share_tol
            and abs(a.final_gain_mean - b.final_gain_mean) <= value_tol
            and abs(a.final_drop_mean - b.final_drop_mean) <= value_tol)


def carried_by(summary, method: str, lr: float) -> str:
    """Which of the authors' floors a run's result rests on, from a ``floor_ablation_specs`` summary: the
    floor whose run alone matches the authors' conventions while the other floor alone matches exact."""
    rows = summary[(summary.method == method) & np.isclose(summary.lr, lr)].set_index("conventions")
    a, e, d, r = (rows.loc[c] for c in ("authors", "exact", "density_floor", "reward_floor"))
    if _close(a, e):
        return "neither floor (the conventions agree)"
    if _close(d, a) and _close(r, e):
        return "the density floor"
    if _close(r, a) and _close(d, e):
        return "the reward floor"
    if _close(d, a) and _close(r, a):
        return "either floor alone"
    return "both floors together"


def floor_ablation_table(summary, steps: int, threshold: float = THRESHOLD):
    """One row per convention, one column group per run: seeds reaching the threshold, Gain and Drop after
    the last step (mean ± sd), seeds whose old mode collapsed."""
    import pandas as pd

    rows = {}
    for _, x in summary.iterrows():
        row = rows.setdefault(CONVENTION_LABELS[x.conventions], {})
        run = f"{METHOD_LABELS[x.method]}, lr {x.lr:g}"
        row[(run, f"seeds reaching Gain {threshold:g}")] = f"{x.reached}/{x.seeds}"
        row[(run, f"Gain after {steps} steps (mean ± sd)")] = _pm(x.final_gain_mean, x.final_gain_sd)
        row[(run, f"Drop after {steps} steps (mean ± sd)")] = _pm(x.final_drop_mean, x.final_drop_sd)
        row[(run, "old mode collapsed (seeds)")] = f"{x.collapsed}/{x.seeds}"
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.columns = pd.MultiIndex.from_tuples(table.columns)
    table.index.name = f"conventions (new mode at {summary.new_mean.iloc[0]:g})"
    return table


def floor_ablation_sentence(summary, steps: int, threshold: float = THRESHOLD) -> str:
    """Markdown: for each ablated run, which floor its result under the authors' conventions rests on, with
    the numbers of each convention."""
    d = summary.new_mean.iloc[0]
    out = []
    for m, lr in dict.fromkeys(zip(summary.method, summary.lr)):
        rows = summary[(summary.method == m) & np.isclose(summary.lr, lr)].set_index("conventions")
        nums = ", ".join(f"{CONVENTION_LABELS[c]} {x.final_gain_mean:.2f} / {x.final_drop_mean:.2f}"
                         for c, x in rows.iterrows())
        out.append(f"- {METHOD_LABELS[m]} at lr {lr:g}, new mode at {d:g}: the authors' result rests on "
                   f"**{carried_by(summary, m, lr)}** (Gain / Drop after {steps} steps: {nums}).")
    return "\n".join(out)
