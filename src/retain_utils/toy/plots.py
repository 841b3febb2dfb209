"""Figures of the toy KL chapter: overlaid iterations, Gain / Drop curves, sweeps, the animation and the
interactive explorer. Every function takes a ``toy.Fit`` (or a summary table) and draws; none computes."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import matplotlib.pyplot as plt
from matplotlib.colors import to_rgb

from .. import toy

COLOURS = {  # (first iteration, reading) colour of each method; the gradient runs between them
    "fkl": ("red", "gold"),
    "rkl": ("#0096c7", "#5a189a"),
    "iter_sft": ("#2d6a4f", "#95d5b2"),
    "self_sft": ("#6c584c", "#c9ada7"),
}
LINE = {"fkl": "tab:red", "rkl": "tab:blue", "iter_sft": "tab:green", "self_sft": "tab:brown"}
XLIM = (-8.0, 8.0)
STYLES = ["-", "--", ":", "-."]  # the k-th group of a method gets the k-th style
AXIS_NAMES = {"lr": "learning rate", "new_mean": "mean of the new mode", "new_weight": "weight of the new mode"}


def _label(spec: toy.RunSpec) -> str:
    return f"{toy.METHOD_LABELS[spec.method]}, lr {spec.lr:g}"


def _stop(fit: toy.Fit, run: int, threshold: float) -> tuple[int, bool]:
    """The step a run is read at, and whether it reached the threshold (else: its last step)."""
    r = toy.read(fit, threshold)
    return (int(r.step[run]), True) if r.reached[run] else (fit.steps, False)


def _target_curve(ax, spec: toy.RunSpec, xs):
    p = toy.target(spec.new_mean, spec.new_weight, spec.new_std).pdf(xs)
    ax.plot(xs, p, "k--", lw=2, label="target $\\pi^*$")


def _reading_text(fit: toy.Fit, run: int, threshold: float) -> str:
    step, reached = _stop(fit, run, threshold)
    g, d = fit.gain[run, step], fit.drop[run, step]
    if reached:
        return f"Gain {g:.2f}, Drop {d:.2f}\nat step {step}"
    return f"never reached Gain {threshold:g}\nafter {step} steps: Gain {g:.2f}, Drop {d:.2f}"


def plot_overlaid(fit: toy.Fit, runs: Sequence[int], threshold: float = toy.THRESHOLD, n_curves: int = 10,
                  axes=None, xlim=XLIM):
    """One panel per run: q(x) at ``n_curves`` iterations from the start to the reading (or the last step
    when the threshold is never reached), coloured from early to late, over the dashed target."""
    runs = list(runs)
    if axes is None:
        _, axes = plt.subplots(1, len(runs), figsize=(4.6 * len(runs), 3.6), squeeze=False, sharey=True)
        axes = axes[0]
    xs = np.linspace(*xlim, 600)
    for ax, run in zip(axes, runs):
        spec = fit.specs[run]
        stop, _ = _stop(fit, run, threshold)
        start_c, end_c = (np.array(to_rgb(c)) for c in COLOURS[spec.method])
        for j, t in enumerate(np.unique(np.linspace(0, stop, n_curves).round().astype(int))):
            frac = (t / stop) ** 0.7 if stop else 1.0
            ax.plot(xs, fit.mixture(run, t).pdf(xs), color=start_c + (end_c - start_c) * frac, lw=2,
                    label="q, start" if t == 0 else ("q, read here" if t == stop else None))
        _target_curve(ax, spec, xs)
        ax.text(0.03, 0.97, _reading_text(fit, run, threshold), transform=ax.transAxes, va="top", fontsize=9)
        ax.set_title(f"{_label(spec)}\n({spec.start}-modal start, seed {spec.seed})", fontsize=10)
        ax.set_xlabel("x")
        ax.set_xlim(*xlim)
        ax.set_ylim(0, 0.75)
    axes[0].set_ylabel("density")
    axes[0].legend(loc="center left", fontsize=8, frameon=False)
    plt.tight_layout()
    return axes


def _groups(fit: toy.Fit, by: Sequence[str]) -> dict[tuple, np.ndarray]:
    out: dict[tuple, list[int]] = {}
    for i, s in enumerate(fit.specs):
        out.setdefault(tuple(getattr(s, k) for k in by), []).append(i)
    return {k: np.array(v) for k, v in out.items()}


def plot_curves(fit: toy.Fit, threshold: float = toy.THRESHOLD, by: Sequence[str] = ("method", "lr"), axes=None,
                title: str = ""):
    """Gain and Drop over training steps: mean over seeds (line) and +- one std (band), one line per group."""
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    steps = np.arange(fit.steps + 1)
    seen: dict[str, int] = {}
    for key, idx in _groups(fit, by).items():
        spec = fit.specs[idx[0]]
        ls = STYLES[seen.setdefault(spec.method, 0) % len(STYLES)]
        seen[spec.method] += 1
        label = ", ".join(f"{k} {v:g}" if isinstance(v, float) else f"{v}" for k, v in zip(by, key))
        for ax, y in zip(axes, (fit.gain[idx], fit.drop[idx])):
            m, s = y.mean(0), y.std(0)
            ax.plot(steps, m, ls, color=LINE[spec.method], label=f"{label} ({len(idx)} seeds)")
            ax.fill_between(steps, m - s, m + s, color=LINE[spec.method], alpha=0.15, lw=0)
    axes[0].axhline(threshold, color="grey", lw=0.8)
    axes[0].text(0, threshold + 0.01, f"read at Gain {threshold:g}", color="grey", fontsize=8, va="bottom")
    for ax, name in zip(axes, ("Gain (new-mode overlap, change from start)", "Drop (old-mode overlap lost)")):
        ax.set_xlabel("training step")
        ax.set_ylabel(name)
        ax.set_title((title + ": " if title else "") + name.split(" (")[0] + " over training", fontsize=10)
    axes[1].legend(fontsize=8, frameon=False)
    plt.tight_layout()
    return axes


def plot_drop_vs_gain(fit: toy.Fit, by: Sequence[str] = ("method", "lr"), ax=None, threshold=toy.THRESHOLD):
    """The trade-off along training: mean Drop against mean Gain (over seeds), one curve per group; lower
    and further right is better."""
    if ax is None:
        _, ax = plt.subplots(figsize=(5.5, 4))
    seen: dict[str, int] = {}
    for key, idx in _groups(fit, by).items():
        spec = fit.specs[idx[0]]
        ls = STYLES[seen.setdefault(spec.method, 0) % len(STYLES)]  # as in plot_curves
        seen[spec.method] += 1
        label = ", ".join(f"{k} {v:g}" if isinstance(v, float) else f"{v}" for k, v in zip(by, key))
        ax.plot(fit.gain[idx].mean(0), fit.drop[idx].mean(0), ls, color=LINE[spec.method], label=label)
        ax.plot(fit.gain[idx].mean(0)[-1], fit.drop[idx].mean(0)[-1], "o", color=LINE[spec.method], ms=4)
    ax.axvline(threshold, color="grey", lw=0.8)
    ax.set_xlabel("Gain (mean over seeds)")
    ax.set_ylabel("Drop (mean over seeds)")
    ax.set_title("Drop against Gain along training (dot: last step)", fontsize=10)
    ax.legend(fontsize=7, frameon=False)
    plt.tight_layout()
    return ax


def plot_sweep(fit: toy.Fit, x: str, threshold: float = toy.THRESHOLD, by: Sequence[str] = ("method",), axes=None,
               logx: bool = False, title: str = ""):
    """Left: Drop at the reading against spec field ``x``, one dot per seed and the median as a line.
    Right: the share of seeds that reach the threshold at all (the others are not read, so not on the left)."""
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(12, 3.8), gridspec_kw={"width_ratios": [2, 1]})
    r = toy.read(fit, threshold)
    groups = _groups(fit, by)
    xs_all = np.unique([getattr(s, x) for s in fit.specs]).astype(float)
    spacing = np.diff(np.log(xs_all) if logx else xs_all).min(initial=1.0)
    for off, (key, idx) in zip(np.linspace(-0.15, 0.15, len(groups)), groups.items()):
        spec = fit.specs[idx[0]]
        xv = np.array([getattr(fit.specs[i], x) for i in idx], dtype=float)
        label = ", ".join(f"{k} {v:g}" if isinstance(v, float) else toy.METHOD_LABELS.get(v, str(v))
                          for k, v in zip(by, key))
        meds, share, xs_ = [], [], np.unique(xv)
        for xval in xs_:
            sel = idx[xv == xval]
            ok = sel[r.reached[sel]]
            xj = xval * np.exp(off * spacing) if logx else xval + off * spacing
            axes[0].plot(np.full(ok.size, xj), r.drop[ok], ".", color=LINE[spec.method], alpha=0.4, ms=5)
            meds.append(np.median(r.drop[ok]) if ok.size else np.nan)
            share.append(ok.size / sel.size)
        axes[0].plot(xs_, meds, "-o", color=LINE[spec.method], label=f"{label}: median (dots: seeds)", ms=3)
        axes[1].plot(xs_, share, "-o", color=LINE[spec.method], label=label, ms=3)
    for ax in axes:
        if logx:
            ax.set_xscale("log")
        ax.set_xlabel(AXIS_NAMES.get(x, x.replace("_", " ")))
    axes[0].set_ylabel(f"Drop at the first step with Gain >= {threshold:g}")
    axes[1].set_ylabel(f"share of seeds reaching Gain {threshold:g}")
    axes[1].set_ylim(-0.05, 1.05)
    axes[0].set_title(title or f"Drop against {AXIS_NAMES.get(x, x)}", fontsize=10)
    axes[1].set_title(f"Runs that reach Gain {threshold:g} within {fit.steps} steps", fontsize=10)
    axes[0].legend(fontsize=8, frameon=False, loc="upper left")
    plt.tight_layout()
    return axes


def plot_noise_free(mc: toy.Fit, exact: toy.Fit, new_only: toy.Fit, threshold: float = toy.THRESHOLD,
                    title: str = ""):
    """Monte Carlo (mean +- std over seeds, solid) against the noise-free fits of the same specs: the exact
    expectation (dashed) and, for reverse KL, its new-component part only (dotted). Third panel: reverse
    KL's Drop at the reading, seed by seed, against the two noise-free readings."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 3.8))
    steps = np.arange(mc.steps + 1)
    for key, idx in _groups(mc, ("method", "lr")).items():
        spec = mc.specs[idx[0]]
        colour = LINE[spec.method]
        label = f"{spec.method} lr {spec.lr:g}"
        for ax, y, yq, yn in zip(axes[:2], (mc.gain, mc.drop), (exact.gain, exact.drop), (new_only.gain, new_only.drop)):
            m, sd = y[idx].mean(0), y[idx].std(0)
            ax.plot(steps, m, color=colour, lw=1.5, label=f"{label}: Monte Carlo ({len(idx)} seeds)")
            ax.fill_between(steps, m - sd, m + sd, color=colour, alpha=0.15, lw=0)
            q = exact.select(method=spec.method, lr=spec.lr)[0]
            ax.plot(steps, yq[q], "--", color=colour, lw=1.5, label=f"{label}: exact expectation")
            if spec.method == "rkl":
                ax.plot(steps, yn[new_only.select(method="rkl", lr=spec.lr)[0]], ":", color="k", lw=1.5,
                        label=f"{label}: new-component part only")
    axes[0].axhline(threshold, color="grey", lw=0.8)
    for ax, name in zip(axes[:2], ("Gain", "Drop")):
        ax.set_xlabel("training step")
        ax.set_ylabel(name)
        ax.set_title(f"{title + ': ' if title else ''}{name}, sampled vs noise-free", fontsize=10)
    axes[1].legend(fontsize=7, frameon=False)
    ax = axes[2]
    r, rq, rn = toy.read(mc, threshold), toy.read(exact, threshold), toy.read(new_only, threshold)
    idx = mc.select(method="rkl")
    ok = idx[r.reached[idx]]
    ax.plot(r.drop[ok], np.random.default_rng(0).uniform(-0.3, 0.3, ok.size), "o", color=LINE["rkl"], alpha=0.5,
            label=f"reverse KL, Monte Carlo: one dot per seed ({ok.size}/{idx.size} reach)")
    ax.axvline(rq.drop[exact.select(method="rkl")[0]], color=LINE["rkl"], ls="--", label="reverse KL, exact expectation")
    ax.axvline(rn.drop[new_only.select(method="rkl")[0]], color="k", ls=":", label="reverse KL, new-component part")
    fk = mc.select(method="fkl")
    fk = fk[r.reached[fk]]
    if fk.size:
        ax.axvline(np.mean(r.drop[fk]), color=LINE["fkl"], label="forward KL (reaching runs), Monte-Carlo mean")
    ax.set_yticks([])
    ax.set_ylim(-0.6, 2.4)
    ax.set_xlabel(f"Drop at the first step with Gain >= {threshold:g}")
    ax.set_title("Reverse KL's Drop, seed by seed", fontsize=10)
    ax.legend(fontsize=7, frameon=False, loc="upper right")
    fig.tight_layout()
    return fig


def animate(fit: toy.Fit, runs: Sequence[int], frames: int = 30, threshold: float = toy.THRESHOLD, xlim=XLIM,
            dpi: int = 60):
    """A matplotlib FuncAnimation of q(x) over training, one panel per run, ``frames`` frames from the
    first to the last step (text: step, Gain, Drop, and whether Gain has reached the threshold).
    In a notebook: ``IPython.display.HTML(animate(...).to_jshtml())`` plays in the static book too."""
    from matplotlib.animation import FuncAnimation

    runs = list(runs)
    fig, axes = plt.subplots(1, len(runs), figsize=(4.2 * len(runs), 3.2), squeeze=False, sharey=True, dpi=dpi)
    axes = axes[0]
    xs = np.linspace(*xlim, 400)
    ts = np.unique(np.linspace(0, fit.steps, frames).round().astype(int))
    lines, texts = [], []
    r = toy.read(fit, threshold)
    for ax, run in zip(axes, runs):
        spec = fit.specs[run]
        _target_curve(ax, spec, xs)
        (line,) = ax.plot(xs, fit.mixture(run, 0).pdf(xs), color=LINE[spec.method], lw=2.5)
        lines.append(line)
        texts.append(ax.text(0.03, 0.97, "", transform=ax.transAxes, va="top", fontsize=9))
        ax.set_title(_label(spec), fontsize=10)
        ax.set_xlim(*xlim)
        ax.set_ylim(0, 0.75)
        ax.set_xlabel("x")
    axes[0].set_ylabel("density")
    fig.tight_layout()

    def draw(k):
        t = ts[k]
        for line, text, run in zip(lines, texts, runs):
            line.set_ydata(fit.mixture(run, t).pdf(xs))
            hit = "  (reached)" if r.reached[run] and t >= r.step[run] else ""
            text.set_text(f"step {t}\nGain {fit.gain[run, t]:.2f}{hit}\nDrop {fit.drop[run, t]:.2f}")
        return lines + texts

    anim = FuncAnimation(fig, draw, frames=len(ts), interval=150, blit=False)
    plt.close(fig)
    return anim


def plot_setup(ax=None, xlim=XLIM):
    """The target and the two starts of the toy."""
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3.4))
    xs = np.linspace(*xlim, 600)
    ax.plot(xs, toy.target().pdf(xs), "k--", lw=2, label="target: 0.75 N(-3, 1) + 0.25 N(3.5, 0.7)")
    ax.plot(xs, toy.UNI_START.pdf(xs), color="tab:orange", lw=2, label="uni-modal start: N(-3.5, 1)")
    ax.plot(xs, toy.BI_START.pdf(xs), color="tab:purple", lw=2,
            label="bi-modal start: 0.75 N(-3.5, 1) + 0.25 N(0.5, 0.7)")
    ax.text(-3, 0.33, "old mode\n(old knowledge)", ha="center", fontsize=9)
    ax.text(3.5, 0.2, "new mode\n(new task)", ha="center", fontsize=9)
    ax.set_xlabel("x")
    ax.set_ylabel("density")
    ax.set_ylim(0, 0.5)
    ax.set_title("The toy: a target with an old and a new mode, and the two starting models", fontsize=10)
    ax.legend(fontsize=8, frameon=False, loc="upper right")
    plt.tight_layout()
    return ax


def explore(method: str = "rkl", lr: float = 0.01, new_mean: float = 3.5, new_weight: float = 0.25,
            start: str = "bi", steps: int = 200, n_seeds: int = 3, threshold: float = toy.THRESHOLD):
    """Run one setting for ``n_seeds`` seeds and draw it: the overlaid iterations of seed 0 and the Gain /
    Drop curves over seeds. The function behind the chapter's interactive explorer."""
    spec = toy.RunSpec(method=method, lr=lr, start=start, new_mean=new_mean, new_weight=new_weight)
    fit = toy.simulate(toy.with_seeds(spec, range(n_seeds)), steps)
    fig = plt.figure(figsize=(14, 3.8))
    ax0 = fig.add_subplot(1, 3, 1)
    plot_overlaid(fit, [0], threshold, axes=[ax0], xlim=(-8.0, max(8.0, new_mean + 3)))
    plot_curves(fit, threshold, axes=[fig.add_subplot(1, 3, 2), fig.add_subplot(1, 3, 3)])
    r = toy.read(fit, threshold)
    reached = f"{r.reached.sum()}/{n_seeds} seeds reach Gain {threshold:g}"
    if r.reached.any():
        reached += f"; Drop there {np.nanmean(r.drop):.2f} (mean)"
    fig.suptitle(f"{_label(spec)}, new mode N({new_mean:g}, 0.7) weight {new_weight:g}, {start}-modal start: "
                 + reached, fontsize=10)
    fig.tight_layout()
    return fig


def explorer():
    """ipywidgets controls over ``explore`` (method, learning rate, new-mode mean and weight, start); moving
    one reruns the fit and redraws. Nothing is drawn until a control moves: executing a widget that draws at
    creation can deadlock headless runs (papermill / nbclient), and the default view is ``explore()``."""
    import ipywidgets as W
    from IPython.display import clear_output

    style = {"description_width": "initial"}
    controls = {
        "method": W.Dropdown(options=[(toy.METHOD_LABELS[m], m) for m in toy.METHODS], value="rkl",
                             description="method", style=style),
        "lr": W.FloatLogSlider(value=0.01, base=10, min=-3, max=-0.3, step=0.05, description="learning rate",
                               continuous_update=False, style=style),
        "new_mean": W.FloatSlider(value=3.5, min=2.0, max=7.0, step=0.25, description="new-mode mean",
                                  continuous_update=False, style=style),
        "new_weight": W.FloatSlider(value=0.25, min=0.05, max=0.95, step=0.05, description="new-mode weight",
                                    continuous_update=False, style=style),
        "start": W.ToggleButtons(options=list(toy.STARTS), value="bi", description="start", style=style),
    }
    out = W.Output()

    def rerun(_change=None):
        with out:
            clear_output(wait=True)
            explore(**{name: c.value for name, c in controls.items()})
            plt.show()

    for c in controls.values():
        c.observe(rerun, names="value")
    boxes = list(controls.values())
    return W.VBox([W.HBox(boxes[:3]), W.HBox(boxes[3:]), out])


CONVENTION_STYLES = {"authors": "-", "exact": "--"}


def plot_distances(summary, steps: int, threshold: float = toy.THRESHOLD):
    """The distance experiment (``toy.distance_summary``), both conventions side by side (solid: the authors',
    dashed: exact), one colour per run: Gain after the last step, Drop at the first step with Gain >=
    threshold (runs that never get there are not drawn), and the share of seeds whose old mode collapsed
    (95 % Wilson intervals)."""
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.2))
    runs = list(dict.fromkeys(zip(summary.method, summary.lr)))
    cmap = {"fkl": plt.cm.Reds(np.linspace(0.95, 0.45, 3)), "rkl": plt.cm.Blues(np.linspace(0.95, 0.55, 2))}
    seen: dict[str, int] = {}
    colours = {}
    for m, lr in runs:
        colours[m, lr] = cmap.get(m, plt.cm.Greys(np.linspace(0.9, 0.4, 4)))[seen.setdefault(m, 0) % 3]
        seen[m] += 1
    for (m, lr, conv), g in summary.groupby(["method", "lr", "conventions"], sort=False):
        g = g.sort_values("new_mean")
        kw = dict(color=colours[m, lr], ls=CONVENTION_STYLES.get(conv, ":"), marker="o", ms=4)
        axes[0].errorbar(g.new_mean, g.final_gain_mean, yerr=g.final_gain_sd.fillna(0), capsize=2, **kw)
        axes[1].plot(g.new_mean, g.drop_mean, **kw)
        if m == "rkl":
            share = g.collapsed / g.seeds
            axes[2].errorbar(g.new_mean + (0.04 if conv == "exact" else -0.04) + (0.08 if lr < 0.01 else 0), share,
                             yerr=[share - g.collapsed_lo, g.collapsed_hi - share], capsize=3, **kw)
    axes[0].axhline(threshold, color="grey", lw=0.8)
    axes[0].set_ylabel(f"Gain after {steps} steps (overlap, mean ± sd)")
    axes[0].set_title(f"Gain after {steps} steps", fontsize=10)
    axes[1].set_ylabel(f"Drop at the first step with Gain >= {threshold:g} (mean)")
    axes[1].set_title(f"Drop when Gain first reaches {threshold:g} (runs that get there)", fontsize=10)
    axes[2].set_ylabel("share of seeds (95 % Wilson interval)")
    axes[2].set_title(f"Reverse KL: seeds whose old mode collapsed (Drop >= {toy.COLLAPSE_DROP:g})", fontsize=10)
    axes[2].set_ylim(-0.05, 1.05)
    for ax in axes:
        ax.set_xlabel("mean of the new mode (x)")
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=colours[m, lr], marker="o", ms=4, label=f"{toy.METHOD_LABELS[m]}, lr {lr:g}")
               for m, lr in runs]
    handles += [Line2D([], [], color="k", ls=CONVENTION_STYLES.get(c, ":"), label=toy.CONVENTION_LABELS[c])
                for c in dict.fromkeys(summary.conventions)]
    fig.suptitle("New mode moved right, bi-modal start: the authors' conventions (solid) against exact (dashed)",
                 fontsize=11)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    fig.legend(handles=handles, loc="lower center", ncol=4, fontsize=8, frameon=False)
    return fig
