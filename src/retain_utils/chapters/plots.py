"""The LLM chapters' plots, one home: gain and drop over training, drop against KL and against compute, the
campaign's gain-vs-drop scatter, the calibration's curves and the RL diagnostics per step. Each takes run records
(``core.records.RunRecord``) or their table and returns what it drew on."""

from __future__ import annotations

import numpy as np

from ..analysis import diagnostics
from ..core.records import RunRecord, as_records
from ..core.tasks import TASK_NAMES
from . import calibration


def plot_cost(records: list, cost: str = "generated_tokens", ax=None):
    """Drop against compute per variant (mean ± std over seeds), each point labelled with its mean gain:
    the cost-vs-forgetting frontier. ``cost``: ``generated_tokens`` or ``train_seconds``."""
    import matplotlib.pyplot as plt

    if cost not in ("generated_tokens", "train_seconds"):
        raise ValueError(f"unknown cost {cost!r}; valid: generated_tokens, train_seconds")
    ax = ax or plt.gca()
    scale, unit = (1e3, "thousand generated tokens") if cost == "generated_tokens" else (60, "training minutes")
    groups: dict[str, list[RunRecord]] = {}
    for r in as_records(records):
        groups.setdefault(r.variant, []).append(r)
    for label, runs in groups.items():
        x = np.array([getattr(r, cost) for r in runs]) / scale
        drop, gain = np.array([r.drop for r in runs]), np.mean([r.gain for r in runs])
        ax.errorbar(x.mean(), drop.mean(), xerr=x.std(), yerr=drop.std(), marker="o", capsize=3, label=label)
        ax.annotate(f"gain {gain:+.1f}", (x.mean(), drop.mean()), textcoords="offset points", xytext=(5, 5),
                    fontsize=8)
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_xlabel(f"compute per run ({unit})")
    ax.set_ylabel("drop on the other tasks (percentage points)")
    ax.legend(fontsize=8)
    return ax


def plot_trajectories(records: list, ax=None):
    """Gain against drop at every evaluation during training, mean over seeds, one line per variant."""
    import matplotlib.pyplot as plt
    import pandas as pd

    ax = ax or plt.gca()
    rows = [{"variant": r.variant, "seed": r.seed, **point} for r in as_records(records) for point in r.trajectory]
    frame = pd.DataFrame(rows).groupby(["variant", "step"], sort=False)[["gain", "drop"]].mean().reset_index()
    for variant, line in frame.groupby("variant", sort=False):
        ax.plot(line["drop"], line["gain"], marker="o", label=variant)
        ax.annotate(f"step {line['step'].iloc[-1]}", (line["drop"].iloc[-1], line["gain"].iloc[-1]), fontsize=8)
    ax.axhline(0, color="grey", lw=0.5)
    ax.axvline(0, color="grey", lw=0.5)
    ax.set_xlabel("drop on the other tasks (percentage points)")
    ax.set_ylabel("gain on the target task (percentage points)")
    ax.legend()
    return ax


def plot_kl(records: list, ax=None):
    """Drop against KL[pi_0 || pi_theta] to the initial model, one point per run, coloured by variant."""
    import matplotlib.pyplot as plt

    ax = ax or plt.gca()
    groups: dict[str, list[RunRecord]] = {}
    for r in as_records(records):
        groups.setdefault(r.variant, []).append(r)
    for variant, runs in groups.items():
        ax.scatter([r.kl for r in runs], [r.drop for r in runs], label=variant)
    ax.set_xlabel("KL[π₀ ‖ π_θ] per response (nats)")
    ax.set_ylabel("drop on the other tasks (percentage points)")
    ax.set_title("Drop against KL to the initial model")
    ax.axhline(0, color="grey", lw=0.5)
    ax.legend()
    return ax


def plot_trajectory_panels(records: list, targets: tuple[str, ...] = TASK_NAMES):
    """``plot_trajectories`` once per target the records hold (in ``targets``' order), side by side."""
    import matplotlib.pyplot as plt

    runs = as_records(records)
    shown = [t for t in targets if any(r.target == t for r in runs)]
    fig, axes = plt.subplots(1, max(1, len(shown)), figsize=(5.5 * max(1, len(shown)), 4.5), squeeze=False)
    for ax, target in zip(axes[0], shown):
        plot_trajectories([r for r in runs if r.target == target], ax=ax)
        ax.set_title(f"target {target} (mean over {len({r.seed for r in runs if r.target == target})} seeds)")
    if not shown:
        axes[0][0].set_title("no runs yet")
        axes[0][0].set_axis_off()
    fig.suptitle("Gain against drop during training")
    fig.tight_layout()
    return fig


def gain_drop_scatter(runs, ax=None):
    """Gain against drop: every run faint, each (variant, target) mean ± std over seeds bold. Up-left is best."""
    import matplotlib.pyplot as plt

    if ax is None:
        ax = plt.subplots(figsize=(7, 5))[1]
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    markers = "osD^vP*X"
    targets = list(dict.fromkeys(runs["target"]))
    for i, variant in enumerate(dict.fromkeys(runs["variant"])):
        for target in targets:
            sub = runs[(runs["variant"] == variant) & (runs["target"] == target)]
            if sub.empty:
                continue
            style = dict(color=colors[i % len(colors)], marker=markers[targets.index(target) % len(markers)])
            ax.scatter(sub["drop"], sub["gain"], alpha=0.3, s=20, **style)
            spread = len(sub) > 1
            ax.errorbar(sub["drop"].mean(), sub["gain"].mean(),
                        xerr=sub["drop"].std() if spread else None, yerr=sub["gain"].std() if spread else None,
                        markersize=8, capsize=3, linestyle="none", label=f"{variant} on {target} (n={len(sub)})",
                        **style)
    ax.axhline(0, color="grey", linewidth=0.8)
    ax.axvline(0, color="grey", linewidth=0.8)
    ax.set_xlabel("Drop on the other tasks (percentage points)")
    ax.set_ylabel("Gain on the target task (percentage points)")
    ax.set_title("Gain vs drop per variant and target\n(mean ± std over seeds; faint markers: single runs)")
    ax.legend(fontsize="small")
    return ax


def plot_calibration(records, ax=None):
    """Held-out gain on the target against the training step, one line per calibration run."""
    import matplotlib.pyplot as plt

    ax = ax or plt.subplots(figsize=(7, 4))[1]
    for r in as_records(records):
        steps = [p["step"] for p in r.trajectory]
        gains = [p["gain"] for p in r.trajectory]
        ax.plot(steps, gains, marker="o", label=f"{r.target} {r.method} lr {float(r.config['lr']):g} s{r.seed}"
                + (" (flagged)" if r.flags else ""), linestyle="--" if r.flags else "-")
    ax.axhline(calibration.LEARNED_PP, color="grey", linewidth=0.8, linestyle=":")
    ax.set(title="Calibration: held-out gain on the target during training", xlabel="optimizer step",
           ylabel="gain (percentage points)")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
    return ax


def _diagnostic_ylabel(key: str) -> str:
    return "share of the step's samples" if key.endswith("frac") else diagnostics.DIAGNOSTICS[key]


def plot_diagnostics(records, keys: tuple[str, ...] = tuple(diagnostics.DIAGNOSTICS)):
    """One panel per diagnostic, one line per RL run (seed), against the optimizer step: collapse made visible."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(keys), figsize=(3.2 * len(keys), 3), squeeze=False)
    for r in records:
        rows = diagnostics.step_metrics(r)
        if not rows or "reward" not in rows[0]:
            continue  # the SFT family samples no rollouts
        for ax, key in zip(axes[0], keys):
            ax.plot([s["step"] for s in rows], [s.get(key) for s in rows], marker=".",
                    label=f"{r.variant} s{r.seed}" + (" (flagged)" if r.flags else ""))
    for ax, key in zip(axes[0], keys):
        ax.set(title=diagnostics.DIAGNOSTICS[key], xlabel="optimizer step",
               ylabel=_diagnostic_ylabel(key))
    if axes[0][0].get_legend_handles_labels()[0]:
        axes[0][0].legend(fontsize=7)
    fig.suptitle("RL diagnostics per step")
    fig.tight_layout()
    return fig


def plot_diagnostic_means(records, keys: tuple[str, ...] = tuple(diagnostics.DIAGNOSTICS), by_lr: bool = False):
    """The RL diagnostics across a campaign: one row of panels per target, one line per RL variant (``by_lr``: per
    variant and learning rate, as a calibration sweeps it), the mean over its seeds at each optimizer step (a
    diagnostic a run's log lacks is left out of that mean; a configuration that several notebooks ran counts once
    per seed). None when no RL run kept per-step metrics."""
    import matplotlib.pyplot as plt

    curves: dict[str, dict[str, list[list[dict]]]] = {}
    seen = set()
    for r in as_records(records):
        label = f"{r.variant}, lr {r.config.get('lr'):g}" if by_lr else r.variant
        rows = diagnostics.step_metrics(r)
        if rows and "reward" in rows[0] and (r.target, label, r.seed) not in seen:  # SFT samples no rollouts
            seen.add((r.target, label, r.seed))
            curves.setdefault(r.target, {}).setdefault(label, []).append(rows)
    if not curves:
        return None
    fig, axes = plt.subplots(len(curves), len(keys), figsize=(3.2 * len(keys), 2.8 * len(curves)), squeeze=False)
    for row, (target, variants) in zip(axes, curves.items()):
        for label, seeds in variants.items():
            steps = sorted({s["step"] for rows in seeds for s in rows})
            for ax, key in zip(row, keys):
                means = [np.mean(v) if (v := [s[key] for rows in seeds for s in rows
                                              if s["step"] == step and s.get(key) is not None]) else np.nan
                         for step in steps]
                ax.plot(steps, means, marker=".", label=f"{label} ({len(seeds)} seed{'s' * (len(seeds) != 1)})")
        for ax, key in zip(row, keys):
            ax.set(title=f"{diagnostics.DIAGNOSTICS[key]}, target {target}", xlabel="optimizer step",
                   ylabel=_diagnostic_ylabel(key))
            ax.title.set_fontsize(8)
        row[0].legend(fontsize=7)
    fig.suptitle("RL diagnostics per step, mean over seeds")
    fig.tight_layout()
    return fig
