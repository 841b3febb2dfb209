"""Trainers: SFT, Self-SFT, Iterative-SFT, GRPO and REINFORCE over one shared loop (``training.loop``).

``train(config, model, tokenizer, tasks, train_examples, eval_examples)`` checks everything, fine-tunes
``model`` (in place; full fine-tuning keeps fp32 master weights) and evaluates every task on its held-out
examples at steps 0, ``eval_every``, 2 ``eval_every``, ... and at the end.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import results
from . import memory
from ..evaluation import TaskScore
from ..tasks import forgetting_tasks
from . import grpo, self_sft, sft
from .config import KL_ESTIMATORS, METHOD_NAMES, TrainConfig, for_device, resolve
from .loop import CHECKPOINT, EVALS_LOG, Run, TrainingDiverged, fit, prepare_policy

# method name -> module with step_data(run, step, accum) and loss(run, batch)
METHODS = {"sft": sft, "self_sft": self_sft, "iterative_sft": self_sft, "grpo": grpo, "reinforce": grpo}
assert tuple(METHODS) == METHOD_NAMES


@dataclass
class TrainResult:
    model: Any               # the trained policy (peft-wrapped with LoRA)
    config: TrainConfig      # with the method's defaults filled in
    steps: list[dict]        # per-step metrics (loss, reward, kl, lr, grad_norm, seconds, tokens/s, ...)
    evals: list[dict]        # {"step", "accuracy": {task: acc}, "scores": {task: TaskScore dict}, "seconds"}
    status: str
    seconds: float
    correct: list[dict] = dataclasses.field(default_factory=list)  # keep_correct: accepted rollouts

    def trajectory(self) -> list[dict]:
        """[{"step", "gain", "drop"}] of every evaluation against step 0's (percentage points)."""
        return trajectory(self.evals, self.config.task)

    def record(self) -> dict:
        return {"config": self.config.to_dict(), "steps": self.steps, "evals": self.evals,
                "status": self.status, "seconds": self.seconds}


def trajectory(evals: list[dict], target: str) -> list[dict]:
    """Gain on ``target`` and drop on the other tasks at each evaluation, relative to the first (step 0)."""
    from ..evaluation import drop, gain

    if not evals:
        return []
    first = evals[0]["accuracy"]
    others = bool(forgetting_tasks(first, target))
    return [{"step": e["step"], "gain": gain(first, e["accuracy"], target),
             "drop": drop(first, e["accuracy"], target) if others else float("nan")} for e in evals]


def _task_map(tasks) -> dict:
    tasks = list(tasks.values()) if isinstance(tasks, dict) else list(tasks)
    names = [t.name for t in tasks]
    if len(set(names)) != len(names):
        raise ValueError(f"tasks must have distinct names, got {names}")
    return dict(zip(names, tasks))


def _group(examples) -> dict[str, list]:
    if isinstance(examples, dict):
        return {k: list(v) for k, v in examples.items()}
    out: dict[str, list] = {}
    for e in examples:
        out.setdefault(e.task, []).append(e)
    return out


def check_inputs(config: TrainConfig, tasks: dict, train_examples: list, eval_examples: dict) -> None:
    if config.task not in tasks:
        raise ValueError(f"target task {config.task!r} is not among the tasks given ({', '.join(tasks)})")
    if not train_examples:
        raise ValueError("train_examples is empty")
    wrong = sorted({e.task for e in train_examples} - {config.task})
    if wrong:
        raise ValueError(f"train_examples must all be of the target task {config.task!r}; found {', '.join(wrong)}")
    unknown = sorted(set(eval_examples) - set(tasks))
    if unknown:
        raise ValueError(f"eval_examples of unknown task(s) {', '.join(unknown)}; tasks given: {', '.join(tasks)}")
    for name, exs in eval_examples.items():
        bad = sorted({e.task for e in exs} - {name})
        if bad:
            raise ValueError(f"eval_examples[{name!r}] holds examples of {', '.join(bad)}")
    if config.method == "sft" and any(not e.expert for e in train_examples):
        raise ValueError("method='sft' needs an expert response for every training example")


def train(config: TrainConfig, model, tokenizer, tasks, train_examples, eval_examples=(), *,
          initial_scores: dict | None = None, results_path=None, progress: bool = True) -> TrainResult:
    """Fine-tune ``model`` with ``config.method`` on ``train_examples`` of ``config.task``.

    ``tasks``: Task objects (list or name -> task) for the target and every evaluated task.
    ``eval_examples``: held-out examples, a list or {task name: examples}; every task is evaluated.
    With ``config.out_dir`` the run checkpoints there and resumes from it when called again with the same
    config and the same initial model. ``results_path``: the results file gets ``training[run_name]``.
    ``initial_scores`` ({task: TaskScore}): ``model``'s greedy scores on exactly ``eval_examples``, measured
    by ``evaluation.evaluate`` with ``config.eval_batch_size``; they stand in for the step-0 evaluation,
    which would repeat that measurement (one evaluation saved per run).
    """
    cfg = resolve(config)
    tasks = _task_map(tasks)
    train_examples = list(train_examples)
    eval_examples = _group(eval_examples)
    check_inputs(cfg, tasks, train_examples, eval_examples)
    if initial_scores is not None:
        initial_scores = {k: v.to_dict() if isinstance(v, TaskScore) else dict(v)
                          for k, v in initial_scores.items()}
        if set(initial_scores) != set(eval_examples) or any(
                initial_scores[k]["n"] != len(v) for k, v in eval_examples.items()):
            raise ValueError("initial_scores must score exactly eval_examples (same tasks, same counts): got "
                             f"{ {k: v['n'] for k, v in initial_scores.items()} } for "
                             f"{ {k: len(v) for k, v in eval_examples.items()} }")
    cfg = for_device(cfg, next(model.parameters()).device.type)  # micro batch sizes: larger on a CPU
    cfg = memory.fit_to_device(model, cfg)  # lora_rank "auto" resolved; on CUDA a run that would not fit is refused
    policy, sampler, reference, autocast_dtype = prepare_policy(model, cfg)
    run = Run(cfg, policy, tokenizer, tasks, train_examples, eval_examples, sampler, reference,
              next(policy.parameters()).device, autocast_dtype, progress=progress, initial_scores=initial_scores)
    if cfg.rollouts_from == "initial" and reference is not None:
        run.initial_sampler = copy.deepcopy(sampler).eval().requires_grad_(False)  # before any resume
    method = METHODS[cfg.method]
    t0 = time.time()
    history: dict = {"steps": [], "evals": [], "status": "running"}
    try:
        history = fit(run, method.step_data, method.loss)
    except TrainingDiverged as e:
        history = {"steps": [], "evals": [], **getattr(e, "history", {}), "status": "diverged"}
        _save(results_path, TrainResult(policy, cfg, history["steps"], history["evals"], str(e), time.time() - t0))
        raise
    result = TrainResult(policy, cfg, history["steps"], history["evals"], history["status"], time.time() - t0,
                         run.data.get("correct", []))
    _save(results_path, result)
    return result


def _save(results_path, result: TrainResult) -> None:
    if results_path is None:
        return
    # Under "training", not "runs": "runs" holds the tidy per-run summaries that results.collect reads.
    runs = results.load(results_path).get("training", {}) if Path(results_path).exists() else {}
    runs[result.config.run_name] = result.record()
    results.save(results_path, training=runs)


__all__ = ["METHODS", "METHOD_NAMES", "KL_ESTIMATORS", "TrainConfig", "TrainResult", "TrainingDiverged",
           "train", "resolve", "trajectory"]
