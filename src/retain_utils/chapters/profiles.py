"""Named run sizes (smoke / quick / full), one table per notebook.

A notebook's parameters cell sets profile-controlled names to ``None``; ``apply`` fills each ``None``
from the chosen profile, so the same notebook runs in CI (``smoke``), in the book build (``quick``) and
as the real reproduction (``full``), from papermill or by editing one line in Colab.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from types import SimpleNamespace
from typing import Any

from ..core.tasks import EXTRA_TASK_NAMES
from ..core.training.config import DEFAULT_LR, TrainConfig

# colab: a free Colab T4, Qwen2.5-0.5B (chapters/colab.py); campaign: the seeded, committed campaign on a 2-core CPU (campaign.py)
PROFILE_NAMES = ("smoke", "quick", "full", "colab", "campaign")

# 03's comparisons: key -> section heading (variants builds their runs); the profiles below pick among them
ABLATIONS = {"kl": "KL penalty in GRPO", "sft_kl": "KL penalty in SFT", "reinforce": "REINFORCE against GRPO",
             "normalisation": "GRPO's advantage normalisation", "on_policy": "On-policy data",
             "self_sft": "Self-SFT learning rate and steps"}
ALL_ABLATIONS = list(ABLATIONS)

# notebook stem -> profile -> values of its profile-controlled parameters.
# Every profile of a notebook must name the same parameters; SHARED below adds those every profile shares.
CAMPAIGN_RUNS = "results/campaign"  # relative to the repository: where chapters 3 and 4 find chapter 2's campaign runs
# The campaign's budget, one for notebooks 2-4 so that 3 and 4 read notebook 2's identical runs instead of training
# them again: the calibration's (40 steps x 8 prompts = two epochs over 160 training examples; 150 held-out
# questions per task; evaluations at steps 0, 20 and 40). Its learning rates and steps per target come from the
# calibration's choice (campaign.grids), one seed per point.
CAMPAIGN_BUDGET = {"seeds": [0], "steps": 40, "n_train": 160, "n_eval": 150, "group_size": 5, "batch_size": 8,
                   "eval_every": 20, "max_tokens": None}
EPOCH_STEPS = CAMPAIGN_BUDGET["n_train"] // CAMPAIGN_BUDGET["batch_size"]  # Iterative-SFT's round: one epoch, as the paper

PROFILES: dict[str, dict[str, dict[str, Any]]] = {
    # The toy KL chapter: seeds per setting, Monte-Carlo samples per step, the learning-rate sweep, the paper's
    # distance experiment (new-mode means, its seeds and steps; the paper: 4.5, 5.5, 6.5 and 200 steps; 3.5,
    # the main setting, for reference) and the animation.
    "01_toy_kl": {
        "smoke": {"n_seeds": 2, "n_samples": 200, "sweep_lrs": [0.01, 0.15],
                  "distances": [4.5, 5.5, 6.5], "distance_seeds": 2, "distance_steps": 50, "anim_frames": 6},
        "quick": {"n_seeds": 10, "n_samples": 1000,
                  "sweep_lrs": [0.005, 0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3],
                  "distances": [3.5, 4.5, 5.5, 6.5], "distance_seeds": 20, "distance_steps": 200, "anim_frames": 30},
        "full": {"n_seeds": 30, "n_samples": 1000,
                 "sweep_lrs": [0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3],
                 "distances": [3.5, 4.0, 4.5, 5.0, 5.5, 6.0, 6.5], "distance_seeds": 50, "distance_steps": 200,
                 "anim_frames": 30},
    },
    # RL vs SFT: methods, seeds and the training budget. quick, one seed, is sized for ~20 min in fp32 on a 2-core
    # CPU: every task gets 150 held-out questions (the shipped knowledge bank holds out 315), so that an SFT - GRPO
    # drop difference has a 95 % interval of about +-6 pp (forgetting.min_detectable_difference); the tasks are
    # evaluated at the start and the end only (an evaluation of 450 questions costs ~2 min in fp32). full runs
    # three seeds, with 200 held-out questions per task.
    "02_rl_vs_sft": {
        "smoke": {"methods": ["sft", "self_sft", "grpo"], "seeds": [0], "steps": 2, "n_train": 8, "n_eval": 4,
                  "n_eval_target": None, "group_size": 2, "batch_size": 2, "eval_every": 2, "max_tokens": 16},
        "quick": {"methods": ["sft", "self_sft", "grpo"], "seeds": [0], "steps": 12, "n_train": 64, "n_eval": 150,
                  "n_eval_target": None, "group_size": 5, "batch_size": 6, "eval_every": 12, "max_tokens": None},
        "full": {"methods": ["sft", "self_sft", "grpo"], "seeds": [0, 1, 2], "steps": 100, "n_train": 800,
                 "n_eval": 200, "n_eval_target": None, "group_size": 5, "batch_size": 16, "eval_every": 10,
                 "max_tokens": None},
        # colab: a free Colab T4 with Qwen2.5-0.5B-Instruct and the hub datasets (colab.COLAB_MODEL,
        # colab.COLAB_TASK_OPTIONS; LoRA where full fine-tuning does not fit), projected <= 1 hour (colab.projected_minutes).
        # Its learning rates and temperature are SHARED's (the paper's and the authors'), not calibrated for LoRA on Qwen.
        "colab": {"methods": ["sft", "self_sft", "grpo"], "seeds": [0], "steps": 100, "n_train": 800, "n_eval": 100,
                  "n_eval_target": 118, "group_size": 5, "batch_size": 8, "eval_every": 20, "max_tokens": None},
        # campaign: one (target, seed) per point (campaign.py), in fp32 on a 2-core CPU, the paper's Table 1
        # methods (REINFORCE is one of 03's ablations); 150 held-out questions per task (power analysis: +-6 pp
        # per seed).
        "campaign": {"methods": ["sft", "self_sft", "grpo"], **CAMPAIGN_BUDGET, "n_eval_target": None},
    },
    # Ablations: one target, every variant at the same budget. quick: one seed, the KL and on-policy comparisons
    # (six variants) and an evaluation only at the end; smoke, full and colab run every comparison; full: three
    # seeds, the Self-SFT sweep, trajectories.
    # rescore_longer: each run's ends scored again at 4x the budget (02's table), off where nothing shows it.
    "03_ablations": {
        "smoke": {"ablations": ALL_ABLATIONS, "seeds": [0], "steps": 2, "n_train": 8, "n_eval": 3, "group_size": 2,
                  "batch_size": 2, "eval_every": 2, "max_tokens": 16, "self_sft_lrs": [1e-4], "self_sft_steps": [2],
                  "rescore_longer": False, "reuse_runs_from": None},
        "quick": {"ablations": ["kl", "sft_kl", "on_policy"], "seeds": [0], "steps": 6, "n_train": 32, "n_eval": 24,
                  "group_size": 4, "batch_size": 4, "eval_every": 6, "max_tokens": None, "self_sft_lrs": [1e-4],
                  "self_sft_steps": [6], "rescore_longer": False, "reuse_runs_from": None},
        "full": {"ablations": ALL_ABLATIONS, "seeds": [0, 1, 2], "steps": 60, "n_train": 400, "n_eval": 100,
                 "group_size": 5, "batch_size": 8, "eval_every": 10, "max_tokens": None,
                 "self_sft_lrs": [3e-5, 1e-4, 3e-4], "self_sft_steps": [30, 60], "rescore_longer": True,
                 "reuse_runs_from": None},
        "colab": {"ablations": ALL_ABLATIONS, "seeds": [0], "steps": 40, "n_train": 320, "n_eval": 100,
                  "group_size": 4, "batch_size": 8, "eval_every": 20, "max_tokens": None, "self_sft_lrs": [1e-4],
                  "self_sft_steps": [40], "rescore_longer": True, "reuse_runs_from": None},
        # campaign: the ablations the paper's argument rests on (GRPO without its KL term, REINFORCE, stale
        # rollouts, SFT on GRPO's rollouts) at 02's campaign budget. GRPO and SFT, identical to 02's campaign
        # runs of the same target and seed, are read from them (GRPO keeps its rollouts there).
        "campaign": {"ablations": ["kl", "reinforce", "on_policy"], **CAMPAIGN_BUDGET,
                     "self_sft_lrs": [DEFAULT_LR["sft"]], "self_sft_steps": [CAMPAIGN_BUDGET["steps"]],
                     "rescore_longer": True, "reuse_runs_from": CAMPAIGN_RUNS},
    },
    # Iterative-SFT: regeneration every k steps (0 = never, Self-SFT) beside SFT and GRPO. quick: every 4 steps and
    # never, evaluated at the start and the end only (the quick book's time limit);
    # full: every 1, 2 and 4 steps and never.
    "04_iterative_sft": {
        "smoke": {"intervals": [1, 0], "seeds": [0], "steps": 2, "n_train": 16, "n_eval": 3, "group_size": 2,
                  "batch_size": 2, "eval_every": 2, "max_tokens": 16, "rescore_longer": False, "reuse_runs_from": None},
        "quick": {"intervals": [4, 0], "seeds": [0], "steps": 8, "n_train": 32, "n_eval": 24, "group_size": 4,
                  "batch_size": 4, "eval_every": 8, "max_tokens": None, "rescore_longer": False,
                  "reuse_runs_from": None},
        "full": {"intervals": [1, 2, 4, 0], "seeds": [0, 1, 2], "steps": 60, "n_train": 200, "n_eval": 100,
                 "group_size": 5, "batch_size": 8, "eval_every": 10, "max_tokens": None, "rescore_longer": True,
                 "reuse_runs_from": None},
        "colab": {"intervals": [5, 10, 0], "seeds": [0], "steps": 40, "n_train": 160, "n_eval": 100,
                  "group_size": 4, "batch_size": 8, "eval_every": 20, "max_tokens": None, "rescore_longer": True,
                  "reuse_runs_from": None},
        # campaign: Iterative-SFT regenerating once per epoch (the paper's rounds); SFT, Self-SFT and GRPO are
        # read from 02's campaign runs of the same target and seed
        "campaign": {"intervals": [EPOCH_STEPS, 0], **CAMPAIGN_BUDGET, "rescore_longer": True,
                     "reuse_runs_from": CAMPAIGN_RUNS},
    },
    "05_results": {  # each point of its own sweep runs 02_rl_vs_sft at the same profile (seeds, methods: 02's profile)
        "smoke": {"grid": {"target": ["mmlu"]}},
        "quick": {"grid": {}},  # no sweep of its own: the book's table is the committed campaign (campaign.py)
        "full": {"grid": {"target": ["ifeval", "mmlu", "countdown"]}},
    },
}

# 01 (the toy model, CPU-sized) and 05 (a sweep over 02 at the same profile) need no rows of their own.
for _notebook in ("01_toy_kl", "05_results"):
    PROFILES[_notebook]["colab"] = PROFILES[_notebook]["campaign"] = PROFILES[_notebook]["quick"]


# The LLM notebooks' values that every profile shares, from the trainers' own defaults (one source): the paper's
# learning rates and the authors' sampling temperature. A profile's own value of the same name wins.
LLM_SHARED = {"lr_sft": DEFAULT_LR["sft"], "lr_rl": DEFAULT_LR["rl"], "temperature": TrainConfig.temperature,
              "probe_tasks": list(EXTRA_TASK_NAMES), "rescore_longer": True, "reuse_runs_from": None}
SHARED: dict[str, dict[str, Any]] = {
    "02_rl_vs_sft": LLM_SHARED,
    "03_ablations": LLM_SHARED,
    "04_iterative_sft": LLM_SHARED,
}


@dataclass(repr=False)
class LLMSettings:
    """An LLM notebook's checked settings, profile values filled in: what ``variants`` builds the runs from and
    ``findings`` reads. A setting the notebook does not declare stays None and is left out of ``to_dict``."""

    profile: str
    seeds: list[int]
    steps: int
    n_train: int
    n_eval: int
    group_size: int
    batch_size: int
    eval_every: int
    max_tokens: int | None            # None: each task's own answer budget
    lr_sft: float
    lr_rl: float
    temperature: float
    n_eval_target: int | None = None  # 02: held-out questions of the target (None: n_eval)
    methods: list[str] | None = None  # 02
    ablations: list[str] | None = None  # 03: variants.ABLATIONS keys
    beta: float | None = None         # 03: the KL coefficient of the KL variants
    self_sft_lrs: list[float] | None = None  # 03
    self_sft_steps: list[int] | None = None  # 03
    intervals: list[int] | None = None  # 04: steps between regenerations (0 = never)
    probe_tasks: list[str] | None = None  # extra forgetting probes evaluated beside the paper's three tasks
    rescore_longer: bool = True       # score each run's ends again at evaluation.LONGER_BUDGET x the budget
    # a folder of earlier points (relative to the repository, e.g. the campaign's): a run identical to one
    # finished there (same fingerprint: code, data, settings) is read from it instead of trained again
    reuse_runs_from: str | None = None
    declared: tuple[str, ...] = field(default=(), repr=False, compare=False)  # the notebook's names, in order

    @classmethod
    def of(cls, values: dict[str, Any]) -> "LLMSettings":
        """From the checked values of one notebook (``settings.checked``), keeping which names it declares."""
        known = [f.name for f in fields(cls) if f.name != "declared"]
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ValueError(f"not an LLM notebook setting: {', '.join(unknown)}; settings: {', '.join(known)}")
        return cls(**values, declared=tuple(values))

    def to_dict(self) -> dict[str, Any]:
        """The declared settings, as the results file's ``config`` holds them."""
        return {name: getattr(self, name) for name in self.declared}

    def __repr__(self) -> str:  # the declared settings only, in the notebook's order
        return f"LLMSettings({', '.join(f'{k}={v!r}' for k, v in self.to_dict().items())})"


def check_profile(profile: str) -> None:
    if profile not in PROFILE_NAMES:
        raise ValueError(f"unknown profile {profile!r}; valid profiles: {', '.join(PROFILE_NAMES)}")


def apply(notebook: str, profile: str, **params: Any) -> SimpleNamespace:
    """The notebook's settings: each parameter given as ``None`` takes its value from ``profile``."""
    check_profile(profile)
    if notebook not in PROFILES:
        raise ValueError(f"no profiles for notebook {notebook!r}; known: {', '.join(sorted(PROFILES))}")
    table = values(notebook, profile)
    unknown = sorted(set(params) - set(table))
    if unknown:
        raise ValueError(
            f"{notebook}: {', '.join(unknown)} not profile-controlled; "
            f"profile-controlled parameters: {', '.join(sorted(table))}"
        )
    return SimpleNamespace(profile=profile, **{k: (table[k] if params.get(k) is None else params[k]) for k in table})


def values(notebook: str, profile: str) -> dict[str, Any]:
    """The profile-controlled values of ``notebook`` in ``profile``: the notebook's shared ones, then the
    profile's own ({} for a notebook without profiles)."""
    return {**SHARED.get(notebook, {}), **PROFILES.get(notebook, {}).get(profile, {})}
