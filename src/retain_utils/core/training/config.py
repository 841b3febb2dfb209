"""One flat config for every trainer, checked before any compute."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from ..evaluation import EVAL_BATCH_SIZE
from ..validate import check_int_at_least, is_int

METHOD_NAMES = ("sft", "self_sft", "iterative_sft", "grpo", "reinforce")
KL_ESTIMATORS = ("sq", "k3")  # sq: 0.5 (log pi - log pi_ref)^2 (the paper's); k3: exp(-d) + d - 1 (TRL's)
PRECISIONS = ("auto", "bf16", "fp16", "fp32")  # fp16 trains with a GradScaler
ROLLOUT_SOURCES = ("policy", "initial")
LR_SCHEDULES = ("constant", "cosine")  # constant: the authors' RL; cosine (after linear warm-up): their SFT
DEFAULT_LR = {"sft": 1e-4, "rl": 5e-6}  # the paper's: SFT family (1-1.5B models), RL
STALE_IMPORTANCE_CAP = 2.0  # stale rollouts: per-token importance weight pi / pi_initial truncated here
# (sequences, token positions) per forward/backward pass where the config says None. A CPU has memory to spare
# and runs larger matmuls faster (a GRPO step's passes 6.9 -> 5.7 s at 30 rows, package 0.5.0 on a
# 2-core AMX Xeon); an accelerator's activations must fit beside the weights (gpu.estimate_memory).
MICRO_BATCH = {"cpu": (32, 4096), "accelerator": (8, 1024)}


@dataclass
class TrainConfig:
    """Everything a training run depends on. ``None`` means "the method's default" (see ``resolve``)."""

    method: str = "grpo"              # one of METHOD_NAMES
    task: str = "countdown"           # the target task: one of the tasks given to train(); its examples train
    lr: float | None = None           # peak learning rate; default 1e-4 for the SFT family, 5e-6 for RL (the paper's)
    lr_schedule: str | None = None    # see LR_SCHEDULES; default constant for RL, cosine for the SFT family
    steps: int = 100                  # optimizer steps
    batch_size: int = 8               # prompts per step (GRPO) / sequences per step (SFT family)
    grad_accum: int = 1               # batches accumulated into one optimizer step
    micro_batch_size: int | None = None    # at most this many sequences per forward/backward pass ...
    micro_batch_tokens: int | None = None  # ... and token positions: memory knobs; None: by device (MICRO_BATCH)
    group_size: int = 5               # GRPO: samples per prompt; Self-SFT: samples per prompt before filtering
    temperature: float = 0.8          # sampling temperature of rollouts and Self-SFT data
    max_new_tokens: int = 256         # completion budget of rollouts and Self-SFT samples
    beta: float | None = None         # KL penalty to the initial model; default 0.05 for RL, 0 for the SFT family
    kl_estimator: str = "sq"          # see KL_ESTIMATORS
    use_baseline: bool | None = None  # subtract the group-mean reward (GRPO: True; REINFORCE: False)
    normalize_std: bool | None = None  # divide the advantage by the group std + 1e-4 (GRPO: True; REINFORCE: False)
    reuse: int = 1                    # optimizer steps per batch of rollouts (>1 turns on importance ratios)
    clip_eps: float | None = None     # PPO ratio clipping; default 0.2 when rollouts are reused, else off
    rollouts_from: str = "policy"     # RL: sample from the current "policy" (on-policy) or the "initial" model
                                      # (stale, off-policy: weighted by pi / pi_initial, truncated)
    importance_cap: float | None = None  # stale rollouts: importance weights truncated here (STALE_IMPORTANCE_CAP)
    require_eos: bool = True          # a sampled answer that did not end with EOS earns reward 0 and is never
                                      # kept as training data (the authors' rule)
    keep_correct: bool = False        # RL: keep the rollouts the verifier accepted (TrainResult.correct)
    regenerate_every: int | None = None  # iterative_sft: steps per round (data regenerated from the current model)
    warmup_frac: float = 0.03         # cosine schedule: share of steps with linear warm-up, then decay to 0
    adam_beta1: float = 0.9           # AdamW betas: the authors' (0.9, 0.95)
    adam_beta2: float = 0.95
    weight_decay: float = 0.0
    grad_clip: float = 1.0            # max global gradient norm (0 = no clipping)
    precision: str = "auto"           # bf16 autocast where the hardware has it ("auto"), or forced
    lora_rank: int | str = "auto"     # 0 = full fine-tuning; "auto": LoRA (rank 16) only where full FT would not fit the GPU
    lora_alpha: float | None = None   # default 2 x rank
    eval_every: int = 10              # evaluate every task every this many steps (and at steps 0 and the end)
    eval_max_new_tokens: int | None = None  # None = each task's own budget
    eval_batch_size: int = EVAL_BATCH_SIZE  # as the baseline's (see evaluation.EVAL_BATCH_SIZE)
    rollout_batch_size: int = 160     # sequences decoded together during rollouts / Self-SFT sampling (0.2.0: 40)
    checkpoint_every: int = 10        # 0 = only at the end
    seed: int = 0
    out_dir: str | None = None        # checkpoints and metrics.jsonl; None = keep nothing on disk
    run_name: str | None = None       # key of this run in the results file; default "<method>-<task>-s<seed>"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


_RL = ("grpo", "reinforce")


def _number(name: str, value, *, positive: bool = False, optional: bool = False, note: str = "") -> None:
    """A finite real number (not a bool), > 0 with ``positive`` else >= 0; ``None`` allowed with ``optional``."""
    if value is None and optional:
        return
    ok = (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
          and (value > 0 if positive else value >= 0))
    if not ok:
        what = "a positive finite number" if positive else "a finite number >= 0"
        raise ValueError(f"{name} must be {what}{note}{' (or None)' if optional else ''}, got {value!r}")


def _flag(name: str, value, optional: bool = False) -> None:
    if not (isinstance(value, bool) or (optional and value is None)):
        raise ValueError(f"{name} must be True or False{' (or None)' if optional else ''}, got {value!r}")


def _check_types(c: TrainConfig) -> None:
    """Every field of the right type and range, whatever the method: names the field and the bad value."""
    for name, valid in (("method", METHOD_NAMES), ("kl_estimator", KL_ESTIMATORS), ("precision", PRECISIONS),
                        ("rollouts_from", ROLLOUT_SOURCES), ("lr_schedule", LR_SCHEDULES)):
        value = getattr(c, name)
        if name == "lr_schedule" and value is None:
            continue
        if not isinstance(value, str) or value not in valid:
            listing = "valid methods" if name == "method" else "valid"
            raise ValueError(f"unknown {name} {value!r}; {listing}: {', '.join(valid)}")
    if not isinstance(c.task, str) or not c.task:
        raise ValueError(f"task must be the name of the target task, got {c.task!r}")
    for name in ("steps", "batch_size", "grad_accum", "max_new_tokens", "reuse", "eval_every", "eval_batch_size",
                 "rollout_batch_size"):
        check_int_at_least(name, getattr(c, name), 1)
    check_int_at_least("group_size", c.group_size, 1)
    check_int_at_least("seed", c.seed, 0)
    if c.lora_rank != "auto":
        check_int_at_least("lora_rank", c.lora_rank, 0, " (0 = full fine-tuning, or 'auto')")
    check_int_at_least("checkpoint_every", c.checkpoint_every, 0, " (0 = only at the end)")
    for name in ("micro_batch_size", "micro_batch_tokens", "eval_max_new_tokens", "regenerate_every"):
        if getattr(c, name) is not None:
            check_int_at_least(name, getattr(c, name), 1)
    _number("lr", c.lr, positive=True, optional=True)
    _number("lora_alpha", c.lora_alpha, positive=True, optional=True)
    _number("clip_eps", c.clip_eps, positive=True, optional=True)
    _number("importance_cap", c.importance_cap, positive=True, optional=True)
    for name in ("adam_beta1", "adam_beta2"):
        _number(name, getattr(c, name))
        if not getattr(c, name) < 1:
            raise ValueError(f"{name} must be in [0, 1), got {getattr(c, name)}")
    _number("beta", c.beta, optional=True)
    _number("temperature", c.temperature)
    for name in ("weight_decay", "grad_clip", "warmup_frac"):
        _number(name, getattr(c, name))
    if not c.warmup_frac < 1:
        raise ValueError(f"warmup_frac must be in [0, 1), got {c.warmup_frac}")
    _flag("keep_correct", c.keep_correct)
    _flag("require_eos", c.require_eos)
    for name in ("use_baseline", "normalize_std"):
        _flag(name, getattr(c, name), optional=True)
    for name in ("out_dir", "run_name"):
        if getattr(c, name) is not None and not isinstance(getattr(c, name), str):
            raise ValueError(f"{name} must be a string (or None), got {getattr(c, name)!r}")


def resolve(config: TrainConfig) -> TrainConfig:
    """A copy with the method's defaults filled in; raises ValueError on any bad value, before any compute."""
    c = dataclasses.replace(config)
    _check_types(c)
    rl = c.method in _RL
    if c.lr is None:
        c.lr = DEFAULT_LR["rl" if rl else "sft"]
    if c.beta is None:
        c.beta = 0.05 if rl else 0.0
    if c.lr_schedule is None:
        c.lr_schedule = "constant" if rl else "cosine"
    if c.method == "reinforce":
        if c.use_baseline or c.normalize_std:
            raise ValueError("method='reinforce' has no baseline and no std normalisation; "
                             "use method='grpo' to switch use_baseline / normalize_std on")
        c.use_baseline = c.normalize_std = False
    else:
        c.use_baseline = True if c.use_baseline is None else c.use_baseline
        c.normalize_std = True if c.normalize_std is None else c.normalize_std
    if c.clip_eps is None and c.reuse > 1:
        c.clip_eps = 0.2
    if c.rollouts_from == "initial" and c.importance_cap is None:
        c.importance_cap = STALE_IMPORTANCE_CAP
    if c.importance_cap is not None and c.rollouts_from != "initial":
        raise ValueError("importance_cap is for stale rollouts (rollouts_from='initial'), "
                         f"not rollouts_from={c.rollouts_from!r}")
    if c.method == "iterative_sft" and c.regenerate_every is None:
        raise ValueError("method='iterative_sft' needs regenerate_every (steps per round of regenerated data)")
    if c.method != "iterative_sft" and c.regenerate_every is not None:
        raise ValueError(f"regenerate_every is only for method='iterative_sft', not {c.method!r}")
    if c.run_name is None:
        c.run_name = f"{c.method}-{c.task}-s{c.seed}"
    if c.method in ("grpo", "reinforce", "self_sft", "iterative_sft"):
        _number("temperature", c.temperature, positive=True, note=" (rollouts are sampled: 0 would be greedy)")
    if c.method in _RL and c.group_size < 2:
        raise ValueError(f"group_size must be >= 2 for {c.method} (advantages compare samples of one prompt), "
                         f"got {c.group_size}")
    if c.reuse > 1 and c.method not in _RL:
        raise ValueError(f"reuse > 1 (several steps per batch of rollouts) is for RL methods, not {c.method!r}")
    for name, off in (("rollouts_from", "policy"), ("keep_correct", False)):
        if getattr(c, name) != off and c.method not in _RL:
            raise ValueError(f"{name}={getattr(c, name)!r} is for RL methods, not {c.method!r}")
    return c


def for_device(config: TrainConfig, device_type: str) -> TrainConfig:
    """A copy with the micro batch sizes the config leaves to the device (``None``) filled in (MICRO_BATCH)."""
    size, tokens = MICRO_BATCH["cpu" if device_type == "cpu" else "accelerator"]
    return dataclasses.replace(config, micro_batch_size=config.micro_batch_size or size,
                               micro_batch_tokens=config.micro_batch_tokens or tokens)
