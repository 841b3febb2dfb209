"""The training variants each LLM notebook compares: a label, the TrainConfig it runs (every seed), and for
chained variants whose run's accepted rollouts it trains on.

``for_notebook`` builds a notebook's list from its checked settings; variants run in list order, so a
variant whose rollouts feed another comes first.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..core.records import METHOD_LABELS
from ..core.training.config import TrainConfig
from .profiles import ABLATIONS, LLMSettings  # ABLATIONS: 03's comparisons, key -> section heading


@dataclass(frozen=True)
class Variant:
    """One row of a notebook's comparison, run once per seed."""

    label: str                            # the run record's ``variant``, the row in every table
    config: TrainConfig                   # seed left at the default: the runner sets it
    ablations: tuple[str, ...] = ()       # 03: the comparisons (ABLATIONS keys) it takes part in
    rollouts_of: str | None = None        # train on the accepted rollouts of this variant's run of the same seed


def _base(cfg: LLMSettings, target: str, budget: int) -> TrainConfig:
    return TrainConfig(task=target, steps=cfg.steps, batch_size=cfg.batch_size, group_size=cfg.group_size,
                       eval_every=cfg.eval_every, temperature=cfg.temperature, max_new_tokens=budget)


def _lr(cfg: LLMSettings, method: str) -> float:
    return cfg.lr_rl if method in ("grpo", "reinforce") else cfg.lr_sft


def rl_vs_sft_variants(cfg: LLMSettings, target: str, budget: int) -> list[Variant]:
    """02: each method of ``cfg.methods`` at its learning rate, labelled by METHOD_LABELS. GRPO keeps its accepted
    rollouts, so that notebook 3's "SFT on GRPO's rollouts" can read this very run instead of training it again."""
    base = _base(cfg, target, budget)
    return [Variant(METHOD_LABELS[m], dataclasses.replace(base, method=m, lr=_lr(cfg, m), keep_correct=m == "grpo"))
            for m in cfg.methods]


def self_sft_label(lr: float, steps: int) -> str:
    return f"Self-SFT, lr {lr:g}, {steps} steps"


def ablation_variants(cfg: LLMSettings, target: str, budget: int) -> list[Variant]:
    """03: every variant that takes part in one of ``cfg.ablations``. GRPO keeps its accepted rollouts, and
    "SFT on GRPO's rollouts" trains on them (SFT's learning rate and step count)."""
    base = _base(cfg, target, budget)
    rl = dataclasses.replace(base, method="grpo", lr=cfg.lr_rl, beta=cfg.beta)
    sft = dataclasses.replace(base, method="sft", lr=cfg.lr_sft)
    table = [
        Variant("GRPO", dataclasses.replace(rl, keep_correct=True), ("kl", "reinforce", "normalisation", "on_policy")),
        Variant("GRPO, β=0", dataclasses.replace(rl, beta=0.0), ("kl",)),
        Variant("SFT", sft, ("sft_kl", "on_policy")),
        Variant("SFT + KL", dataclasses.replace(sft, beta=cfg.beta), ("sft_kl",)),
        Variant("REINFORCE", dataclasses.replace(rl, method="reinforce"), ("reinforce",)),
        Variant("GRPO, baseline only", dataclasses.replace(rl, normalize_std=False), ("normalisation",)),
        Variant("GRPO, stale rollouts", dataclasses.replace(rl, rollouts_from="initial"), ("on_policy",)),
        Variant("SFT on GRPO's rollouts", sft, ("on_policy",), rollouts_of="GRPO"),
        *(Variant(self_sft_label(lr, n), dataclasses.replace(base, method="self_sft", lr=lr, steps=n), ("self_sft",))
          for lr in cfg.self_sft_lrs for n in cfg.self_sft_steps),
    ]
    return [v for v in table if set(v.ablations) & set(cfg.ablations)]


def interval_label(every: int) -> str:
    """04's label of a regeneration interval (0 = never: Self-SFT)."""
    return "Self-SFT (never)" if every == 0 else f"Iterative-SFT, every {every} step{'s' * (every > 1)}"


def iterative_variants(cfg: LLMSettings, target: str, budget: int) -> list[Variant]:
    """04: SFT, Iterative-SFT at each regeneration interval (0: Self-SFT), GRPO."""
    base = dataclasses.replace(_base(cfg, target, budget), lr=cfg.lr_sft)
    regenerating = [Variant(interval_label(k), dataclasses.replace(base, method="self_sft") if k == 0 else
                            dataclasses.replace(base, method="iterative_sft", regenerate_every=k))
                    for k in sorted(cfg.intervals)]
    return [Variant("SFT", dataclasses.replace(base, method="sft")), *regenerating,
            Variant("GRPO", dataclasses.replace(base, method="grpo", lr=cfg.lr_rl, keep_correct=True))]  # as 02's


BUILDERS = {"02_rl_vs_sft": rl_vs_sft_variants, "03_ablations": ablation_variants, "04_iterative_sft": iterative_variants}


def for_notebook(notebook: str, cfg: LLMSettings, target: str, budget: int) -> list[Variant]:
    """The variants of ``notebook`` (one of BUILDERS) from its resolved settings."""
    if notebook not in BUILDERS:
        raise ValueError(f"no training variants for notebook {notebook!r}; known: {', '.join(BUILDERS)}")
    return BUILDERS[notebook](cfg, target, budget)
