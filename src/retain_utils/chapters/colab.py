"""The ``colab`` profile: its device check (refused without CUDA), its model and hub datasets, where a run
checkpoints on Colab (Google Drive when mounted, so a disconnected runtime resumes where it stopped) and the
projected wall time of a notebook, from the notebook's own variants and the tasks' own answer budgets.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch

from ..core.layout import RUNS_DIR
from ..core.tasks import TASKS
from ..core.training.config import TrainConfig
from ..core.training.memory import GIB, PROMPT_TOKENS
from . import profiles, variants

COLAB_MODEL = "qwen2.5-0.5b-instruct"  # the colab profile's model (MODEL_ALIASES short name)
COLAB_TASK_OPTIONS = {"mmlu": {"source": "hub"}, "countdown": {"source": "hub"}, "ifeval": {"source": "hub"}}
DRIVE_ROOT = Path("/content/drive/MyDrive")

def check_profile_device(profile: str, *, cuda_available: bool | None = None) -> None:
    """Refuse the GPU-sized ``colab`` profile on a machine without CUDA, before any model loads."""
    if profile != "colab":
        return
    if cuda_available is None:
        cuda_available = torch.cuda.is_available()
    if not cuda_available:
        raise RuntimeError(
            "profile 'colab' is sized for a GPU (a free Colab T4, Qwen2.5-0.5B-Instruct, ~1 hour per notebook) "
            "and this machine has no CUDA device: on a CPU it would run for days. In Colab choose Runtime > "
            "Change runtime type > T4 GPU; on a CPU use profile 'quick' (the embedded model) or 'smoke'")


def run_folder(name: str = "retaining-by-doing", *, drive_root: str | Path = DRIVE_ROOT,
               local: str | Path = RUNS_DIR) -> Path:
    """Where runs checkpoint: ``<Drive>/<name>/runs`` when Google Drive is mounted in Colab (a new runtime
    resumes from it), else the local ``runs`` folder."""
    drive_root = Path(drive_root)
    return drive_root / name / RUNS_DIR if drive_root.is_dir() else Path(local)


@dataclass(frozen=True)
class Throughput:
    """Speeds the time projection rests on: decode steps per second of a rollout batch and of a greedy
    evaluation batch (a step advances every row by one token), and training tokens per second."""

    rollout_steps_per_s: float
    eval_steps_per_s: float
    train_tokens_per_s: float
    source: str = "assumed"


# Assumed, conservatively, for Qwen2.5-0.5B in fp16 on a T4 (a Python decode loop at ~40 ms per greedy token
# step, slower when sampling, fp16 LoRA training at ~3k tokens/s); benchmarks/gpu_check.py measures the real
# values on the device it runs on and prints the projections from them.
T4_ASSUMED_0_5B = Throughput(rollout_steps_per_s=15.0, eval_steps_per_s=25.0, train_tokens_per_s=3000.0,
                             source="assumed (not measured): T4, Qwen2.5-0.5B, fp16")
T4_MEMORY = int(14.5 * GIB)  # what torch reports free on a fresh Colab T4 (15 GB card)
EXPERT_TOKENS = 40  # a typical expert answer


def task_budgets() -> dict[str, int]:
    """Each task's default answer budget (its ``max_new_tokens``), from the task classes themselves."""
    return {name: cls.max_new_tokens for name, cls in TASKS.items()}


def _runs(notebook: str, p, target: str) -> list[tuple[str, int, int]]:
    """(method, steps, regenerate_every) of every training run the notebook makes with profile values ``p``:
    its variants (``variants.for_notebook``; 03 with its profile's comparisons), once per seed."""
    if notebook not in variants.BUILDERS:
        raise ValueError(f"no time projection for {notebook!r}; notebooks: {', '.join(variants.BUILDERS)}")
    # 03's KL coefficient is a notebook literal, not profile-controlled
    extra = {"beta": TrainConfig.beta} if notebook == "03_ablations" else {}
    p = profiles.LLMSettings.of({**vars(p), **extra})
    chosen = variants.for_notebook(notebook, p, target, p.max_tokens or task_budgets()[target])
    return [(v.config.method, v.config.steps, v.config.regenerate_every) for v in chosen] * len(p.seeds)


def projected_minutes(notebook: str, profile: str = "colab", throughput: Throughput = T4_ASSUMED_0_5B, *,
                      target: str = "mmlu", rollout_batch_size: int | None = None,
                      eval_batch_size: int | None = None) -> float:
    """Projected wall time of a notebook (minutes): rollouts and evaluations decode at their full token
    budget (an upper bound), training runs at ``throughput.train_tokens_per_s``; batch sizes default to
    ``TrainConfig``'s. A projection, not a measurement."""
    rollout_batch_size = rollout_batch_size or TrainConfig.rollout_batch_size
    eval_batch_size = eval_batch_size or TrainConfig.eval_batch_size

    p = profiles.apply(notebook, profile)
    budgets = task_budgets()
    runs = _runs(notebook, p, target)
    budget = p.max_tokens or budgets[target]
    n_eval = {t: (getattr(p, "n_eval_target", None) or p.n_eval) if t == target else p.n_eval for t in budgets}

    def decode(rows: int, tokens: int, batch: int, steps_per_s: float) -> float:
        return math.ceil(rows / batch) * tokens / steps_per_s

    def evaluation() -> float:
        return sum(decode(n_eval[t], p.max_tokens or budgets[t], eval_batch_size, throughput.eval_steps_per_s)
                   for t in budgets)

    seconds = evaluation()  # the baseline
    for method, steps, every in runs:
        seq = PROMPT_TOKENS // 2 + budget  # prompts of these tasks are ~100-150 tokens
        if method in ("grpo", "reinforce"):
            samples = p.batch_size * p.group_size
            per_step = decode(samples, budget, rollout_batch_size, throughput.rollout_steps_per_s)
            per_step += 2 * samples * seq / throughput.train_tokens_per_s  # + reference forward
            seconds += steps * per_step
        else:
            seconds += steps * p.batch_size * (PROMPT_TOKENS // 2 + EXPERT_TOKENS) / throughput.train_tokens_per_s
            rounds = 0 if method == "sft" else (1 if method == "self_sft" else math.ceil(steps / every))
            seconds += rounds * decode(p.n_train * p.group_size, budget, rollout_batch_size,
                                       throughput.rollout_steps_per_s)
        seconds += (steps // p.eval_every) * evaluation()
        seconds += decode(24, 64, 16, throughput.rollout_steps_per_s)  # KL to the initial model
    return seconds / 60.0
