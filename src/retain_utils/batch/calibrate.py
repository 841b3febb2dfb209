"""Running the calibration: chapter 2's notebook at the campaign budget, one (target, method, learning rate,
seed) per point, written straight into ``results/calibration/<target>/`` and committed as each lands.

``python -m retain_utils calibration --run TARGET METHOD LR SEED [--run ...] --workers 2 --commit`` runs the
points through the campaign's machinery (``campaign.execute``: fp32, the baseline kept across points, two points
side by side when their expected peak memory fits, each stamped with code and machine). Run it from a clean tree
that is not edited meanwhile (a git worktree): a point's kernel imports the package as it is on disk.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..chapters import calibration
from ..core import provenance
from ..core.layout import results_file
from ..core.records import METHOD_LABELS
from ..core.results import load
from ..core.tasks import TASK_NAMES
from . import campaign, runner, sharing, sweep

NOTEBOOK = "02_rl_vs_sft"
# the notebook parameter of each method's learning rate: its family's (lr_sft for the SFT family, lr_rl for RL)
LR_PARAM = {method: calibration.LR_PARAM[family] for method, family in calibration.FAMILY.items()}


@dataclass(frozen=True)
class Spec:
    """One calibration point: a method on a target at a learning rate and a calibration seed."""

    target: str
    method: str
    lr: float
    seed: int

    @classmethod
    def parse(cls, values: Sequence[str]) -> "Spec":
        """From the command line's four words; every bad value is a ValueError naming it."""
        target, method, lr, seed = values
        if target not in TASK_NAMES:
            raise ValueError(f"--run: unknown target {target!r}; valid targets: {', '.join(TASK_NAMES)}")
        if method not in LR_PARAM:
            raise ValueError(f"--run: unknown method {method!r}; valid methods: {', '.join(LR_PARAM)}")
        try:
            rate = float(lr)
        except ValueError:
            raise ValueError(f"--run: learning rate {lr!r} is not a number") from None
        if not (math.isfinite(rate) and rate > 0):
            raise ValueError(f"--run: learning rate must be a positive finite number, got {lr}")
        if not seed.isdigit() or int(seed) not in calibration.CALIBRATION_SEEDS:
            raise ValueError(f"--run: seed {seed!r} is not a calibration seed; valid: "
                             f"{', '.join(map(str, calibration.CALIBRATION_SEEDS))} (the campaign's seeds stay unseen)")
        return cls(target, method, rate, int(seed))


def plan(specs: Sequence[Spec], calibration_dir: str | Path = calibration.CALIBRATION_DIR,
         notebook_dir: str | Path = runner.NOTEBOOK_DIR) -> list[tuple[Path, sweep.Point]]:
    """Each spec as (its target's sweep folder, the point), validated against the notebook; nothing runs."""
    return [(Path(calibration_dir) / s.target, point) for s in specs
            for point in sweep.plan(NOTEBOOK, {"target": [s.target], "seeds": [[s.seed]], "methods": [[s.method]],
                                               LR_PARAM[s.method]: [s.lr]}, campaign.PROFILE, Path(notebook_dir))]


def describe(point: str | Path, stamp: dict) -> str:
    """The commit message of a finished point, read from its results file: the setting, where and how it ran,
    gain and drop (per task), KL, flags, time and peak memory."""
    saved = load(results_file(Path(point), NOTEBOOK))
    run = saved["runs"][0]
    machine = saved.get("machine") or {}
    config = run.get("config") or {}
    tasks = ", ".join(f"{t} {run['accuracy_initial'][t]:.1f} -> {run['accuracy_final'][t]:.1f}"
                      for t in run.get("accuracy_final", {}) if t != run["target"])
    minutes = ((saved.get("timings") or {}).get("notebook_seconds") or 0) / 60
    peak = (machine.get("peak_rss_bytes") or 0) / 2**30
    return (f"Calibration, {run['target']}, {METHOD_LABELS.get(run['method'], run['method'])} lr {config.get('lr'):g}, "
            f"{config.get('steps')} steps x {config.get('batch_size')} prompts, seed {run['seed']} (package "
            f"{stamp.get('version')} at {str(stamp.get('commit') or 'no commit')[:10]}, {machine.get('dtype')}, "
            f"{machine.get('torch_threads')} torch thread(s), CPU flags {' '.join(machine.get('cpu_flags') or [])}): "
            f"gain {run['gain']:+.1f} pp, drop {run['drop']:+.1f} pp ({tasks}), KL {run['kl']:.2f}, flags "
            f"{' '.join(run.get('flags') or []) or 'none'}; {minutes:.1f} min, peak {peak:.1f} GiB")


def run(specs: Sequence[Spec], *, commit_points: bool = False, workers: int = 1, root: str | Path = runner.ROOT,
        calibration_dir: str | Path = calibration.CALIBRATION_DIR,
        notebook_dir: str | Path = runner.NOTEBOOK_DIR) -> sweep.Summary:
    """Run every unfinished spec's point (``campaign.execute``); ``commit_points``: commit each as it lands with
    ``describe``'s message. Refuses (ValueError) a tree with uncommitted changes outside ``results/``: a point
    names the commit it ran."""
    sharing.threads_per_worker(workers)  # validates workers before anything runs
    planned = plan(specs, calibration_dir, notebook_dir)
    dirty = provenance.git_state(root, exclude=("results",))["dirty"]
    if dirty:
        raise ValueError(f"calibration not started: {campaign.uncommitted(dirty)}")
    return campaign.execute(planned, commit_points=commit_points, workers=workers, root=root,
                            notebook_dir=notebook_dir,
                            peaks=lambda todo: campaign.expected_peaks(todo, calibration_dir=calibration_dir),
                            message=lambda folder, point, outcome, stamp: describe(folder, stamp),
                            summary_dir=calibration_dir, desc="calibration")

