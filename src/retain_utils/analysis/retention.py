"""Retention without generation: how much a trained model still gives to the initial model's own correct answers.

The toy's Drop is the old mode's lost mass; its language-model analogue is the probability that the trained
model still puts on the answers the initial model gave. On the held-out questions of a non-target task that
the initial model answered correctly (greedy, in the baseline evaluation, which keeps the answers' token ids:
``evaluation.evaluate(keep_answers=True)``), retention is the trained model's mean per-token log-likelihood of
those exact answer tokens minus the initial model's, in nats per token, per question. 0: the trained model
gives the initial answers the same likelihood; negative: it moved mass elsewhere. Forward passes only, so it
can run on every held-out prompt. It sits beside the accuracy drop, never instead of it: a greedy answer can
survive a large likelihood loss (another answer must overtake it), and can flip on a small one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from ..core.evaluation import TaskScore
from .forgetting import correct_vector, paired_bootstrap, seeds_and_questions_bootstrap
from ..core.generation import encode_prompts
from ..core.tasks import Example, Task, forgetting_tasks, get_task
from ..core.logprobs import collate, completion_logprobs, micro_batches

BATCH_SIZE = 16  # sequences per forward pass; the initial and the trained model must use the same one


@torch.inference_mode()
def answer_logliks(model, tokenizer, prompt_ids: list[list[int]], answer_ids: list[list[int]], *,
                   batch_size: int = BATCH_SIZE, progress: bool = False) -> np.ndarray:
    """Mean per-token log-likelihood (nats/token) of each answer given its prompt, in float32 log-softmax.

    Sequences are grouped by length (the grouping depends on the lengths alone, so two models score the
    very same batches and an unchanged copy of a model gives bitwise the same numbers)."""
    if len(prompt_ids) != len(answer_ids):
        raise ValueError(f"{len(prompt_ids)} prompts for {len(answer_ids)} answers")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if any(len(a) == 0 for a in answer_ids):
        raise ValueError("every answer needs at least one token")
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = np.zeros(len(answer_ids))
    groups = micro_batches([len(p) for p in prompt_ids], [len(a) for a in answer_ids], batch_size, 1 << 62)
    try:
        for group in tqdm(groups, desc="retention", disable=not progress, leave=False):
            batch = collate([prompt_ids[i] for i in group], [answer_ids[i] for i in group], pad_id).to(device)
            logp = completion_logprobs(model, batch).float()  # (B, C), 0 where masked
            means = (logp.sum(-1) / batch.mask.sum(-1)).cpu().numpy()
            out[group] = means
    finally:
        model.train(was_training)
    return out


@dataclass(frozen=True)
class Answers:
    """The initial model's correct answers on one task's held-out questions: which questions, their prompts'
    and answers' token ids."""

    task: str
    index: tuple[int, ...]                  # positions among the task's held-out examples
    prompt_ids: tuple[tuple[int, ...], ...]
    answer_ids: tuple[tuple[int, ...], ...]


def baseline_answers(tokenizer, examples_by_task: dict[str, list[Example]], baseline: dict, *, target: str,
                     tasks: dict[str, Task] | None = None) -> dict[str, Answers]:
    """Per task a drop averages (``tasks.forgetting_tasks``), the held-out questions the initial model answered correctly, with its answers.

    ``baseline``: task -> TaskScore (or its dict) from ``evaluate(..., keep_answers=True)`` on exactly
    ``examples_by_task``."""
    if target not in examples_by_task:
        raise ValueError(f"target {target!r} is not among the tasks: {', '.join(examples_by_task)}")
    others = forgetting_tasks(examples_by_task, target)
    if not others:
        raise ValueError(f"retention needs a task besides the target {target!r} and the probes that ask its own "
                         "questions")
    out = {}
    for name in others:
        examples = examples_by_task[name]
        if name not in baseline:
            raise ValueError(f"no baseline score for task {name!r}; scored tasks: {', '.join(baseline)}")
        score = baseline[name]
        answers = score.answer_ids if isinstance(score, TaskScore) else score.get("answer_ids", ())
        correct = correct_vector(baseline, name)
        if len(answers) != len(examples) or len(correct) != len(examples):
            raise ValueError(f"{name}: the baseline holds {len(answers)} answers and {len(correct)} results for "
                             f"{len(examples)} held-out examples; evaluate them with keep_answers=True")
        task = (tasks or {}).get(name) or get_task(examples[0].task if examples else name)
        index = [i for i, c in enumerate(correct) if c == 1 and len(answers[i]) > 0]
        prompts = encode_prompts(tokenizer, [task.messages(examples[i]) for i in index])
        out[name] = Answers(name, tuple(index), tuple(tuple(p) for p in prompts),
                            tuple(tuple(answers[i]) for i in index))
    return out


def reference_logliks(reference, tokenizer, answers: dict[str, Answers], *, batch_size: int = BATCH_SIZE,
                      progress: bool = False) -> dict[str, np.ndarray]:
    """The initial model's mean per-token log-likelihood of its own answers: computed once per bench, reused by
    every trained variant (with the same ``batch_size``)."""
    return {name: answer_logliks(reference, tokenizer, [list(p) for p in a.prompt_ids],
                                 [list(x) for x in a.answer_ids], batch_size=batch_size, progress=progress)
            if a.index else np.zeros(0) for name, a in answers.items()}


@dataclass(frozen=True)
class TaskRetention:
    """Retention on one task: per question the initial model answered correctly, trained - initial mean
    per-token log-likelihood of that answer (nats/token); mean and paired bootstrap interval (NaN: none)."""

    task: str
    index: tuple[int, ...]
    per_question: tuple[float, ...]
    mean: float
    low: float
    high: float


@dataclass(frozen=True)
class Retention:
    """Retention on every non-target task and its mean over the tasks that have questions (nats/token)."""

    tasks: dict[str, TaskRetention]
    mean: float
    low: float
    high: float
    level: float

    def to_dict(self) -> dict:
        """JSON-ready (tuples as lists)."""
        return {"tasks": {k: {**vars(v), "index": list(v.index), "per_question": list(v.per_question)}
                          for k, v in self.tasks.items()},
                "mean": self.mean, "low": self.low, "high": self.high, "level": self.level}

    @classmethod
    def from_dict(cls, d: dict) -> "Retention":
        """The Retention that ``to_dict`` (or its JSON) came from: run records can be compared after loading."""
        tasks = {k: TaskRetention(v["task"], tuple(v["index"]), tuple(v["per_question"]), v["mean"], v["low"],
                                  v["high"]) for k, v in d["tasks"].items()}
        return cls(tasks, d["mean"], d["low"], d["high"], d["level"])

    def frame(self):
        """One row per task, then the mean: questions, retention and interval (nats/token)."""
        import pandas as pd

        rows = [{"task": t.task, "questions": len(t.index), "retention (nats/token)": t.mean,
                 "low": t.low, "high": t.high} for t in self.tasks.values()]
        rows.append({"task": "mean over tasks", "questions": sum(len(t.index) for t in self.tasks.values()),
                     "retention (nats/token)": self.mean, "low": self.low, "high": self.high})
        return pd.DataFrame(rows).set_index("task")


def retention(model, tokenizer, answers: dict[str, Answers], reference_ll: dict[str, np.ndarray], *,
              batch_size: int = BATCH_SIZE, level: float = 0.95, n_boot: int = 2000, seed: int = 0,
              progress: bool = False) -> Retention:
    """Retention of ``model`` (a trained copy of the initial model) on the initial model's correct answers
    (``baseline_answers``), against their initial likelihoods (``reference_logliks``), with ``level``
    intervals from a seeded bootstrap over each task's questions."""
    if sorted(answers) != sorted(reference_ll):
        raise ValueError(f"answers and reference_ll name different tasks: {sorted(answers)}, {sorted(reference_ll)}")
    per_task, values = {}, {}
    for name, a in answers.items():
        ref = np.asarray(reference_ll[name], dtype=float)
        if len(ref) != len(a.index):
            raise ValueError(f"{name}: {len(ref)} reference log-likelihoods for {len(a.index)} answers")
        if not a.index:
            per_task[name] = TaskRetention(name, (), (), *(float("nan"),) * 3)
            continue
        ll = answer_logliks(model, tokenizer, [list(p) for p in a.prompt_ids], [list(x) for x in a.answer_ids],
                            batch_size=batch_size, progress=progress)
        delta = ll - ref
        values[name] = delta
        low, high = paired_bootstrap({name: delta}, level=level, n_boot=n_boot, seed=seed)
        per_task[name] = TaskRetention(name, a.index, tuple(float(d) for d in delta), float(delta.mean()), low, high)
    if not values:
        raise ValueError("the initial model answered no held-out question of the other tasks correctly: "
                         "no answers to measure retention on")
    low, high = paired_bootstrap(values, level=level, n_boot=n_boot, seed=seed)
    mean = float(np.mean([v.mean() for v in values.values()]))
    return Retention(per_task, mean, low, high, level)


@dataclass(frozen=True)
class RetentionDifference:
    """Retention of run ``a`` minus run ``b`` (nats/token), paired on the same answers; negative: ``a`` keeps less."""

    a: str
    b: str
    difference: float
    low: float
    high: float
    level: float


def retention_difference(a: Retention, b: Retention, *, labels: tuple[str, str] = ("a", "b"), level: float = 0.95,
                         n_boot: int = 2000, seed: int = 0) -> RetentionDifference:
    """The difference of two runs' retention on the same initial answers, with a paired bootstrap interval."""
    values = {}
    for name, ta in a.tasks.items():
        tb = b.tasks.get(name)
        if tb is None or ta.index != tb.index:
            raise ValueError(f"{name}: the two runs were measured on different answers; use one baseline for both")
        if ta.index:
            values[name] = np.asarray(ta.per_question) - np.asarray(tb.per_question)
    if sorted(a.tasks) != sorted(b.tasks) or not values:
        raise ValueError(f"runs measured on different tasks or on none: {sorted(a.tasks)}, {sorted(b.tasks)}")
    low, high = paired_bootstrap(values, level=level, n_boot=n_boot, seed=seed)
    return RetentionDifference(*labels, a.mean - b.mean, low, high, level)


def pooled_retention_difference(pairs: list[tuple[Retention, Retention]], *, labels: tuple[str, str] = ("a", "b"),
                                level: float = 0.95, n_boot: int = 2000, seed: int = 0) -> RetentionDifference:
    """Retention of ``a`` minus ``b`` averaged over seeds, one (a, b) pair per seed, every seed measured on the same
    initial answers; the interval resamples the seeds and, jointly across seeds, each task's answers."""
    if not pairs:
        raise ValueError("pooled_retention_difference needs at least one pair of retentions")
    diffs = [retention_difference(a, b, labels=labels, level=level, n_boot=1) for a, b in pairs]  # checks pairing
    first = pairs[0][0].tasks
    if any({k: t.index for k, t in a.tasks.items()} != {k: t.index for k, t in first.items()} for a, _ in pairs):
        raise ValueError("seeds measured on different initial answers: cannot pool them")
    values = {name: np.stack([np.asarray(a.tasks[name].per_question) - np.asarray(b.tasks[name].per_question)
                              for a, b in pairs]) for name, t in first.items() if t.index}  # (S, Q) per task
    low, high = seeds_and_questions_bootstrap(values, level=level, n_boot=n_boot, seed=seed)
    return RetentionDifference(*labels, float(np.mean([d.difference for d in diffs])), low, high, level)
