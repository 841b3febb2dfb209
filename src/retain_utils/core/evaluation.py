"""Measuring a policy: accuracy per task (greedy, held-out, Wilson 95% interval), the paper's gain and
drop, KL[pi_0 || pi_theta] on held-out prompts, and tables of the results.
"""

from __future__ import annotations

import base64
import json
import time
import zlib
from contextlib import nullcontext
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import torch

from .generation import generate
from .logprobs import KL_CHUNK, completion_hidden, token_kl
from .intervals import wilson_interval
from .repetition import is_looping
from .tasks import ALL_TASK_NAMES, TASK_NAMES, Example, Task, forgetting_tasks, get_task, transfer_tasks
from .validate import check_int


@dataclass(frozen=True)
class TaskScore:
    """Accuracy of one model on one task's examples; ``n_unparsed`` answers had no parsable answer."""

    task: str
    accuracy: float
    ci_low: float
    ci_high: float
    n: int
    n_correct: int
    n_unparsed: int
    n_truncated: int = 0  # responses cut off by max_new_tokens
    n_tokens: int = 0  # generated tokens, all responses
    seconds: float = 0.0  # generation time (its share by generated tokens, when tasks share batches)
    correct: tuple[int, ...] = ()  # 1 / 0 per example, in order: two models compare question by question
    # generated token ids per example (EOS included when it finished), kept by ``evaluate(keep_answers=True)``:
    # the baseline's answers, whose likelihood under a trained model measures retention without generating
    answer_ids: tuple[tuple[int, ...], ...] = ()
    # knowledge vs format: the lenient score (the right answer anywhere in the reply, ``Task.lenient``) per example,
    # and which answers looped (``repetition.is_looping``) or were cut off by the budget
    n_lenient: int = 0
    n_looping: int = 0
    lenient: tuple[int, ...] = ()
    looping: tuple[int, ...] = ()
    truncated: tuple[int, ...] = ()
    texts: tuple[str, ...] = ()  # the answers themselves, so a reader can open the worst cases

    def to_dict(self) -> dict:
        """As stored in logs and results files (JSON: tuples as lists, the texts packed: ``pack_texts``), so a
        resumed run's scores, read back from its logs, equal a fresh run's."""
        return {**asdict(self), **{k: list(getattr(self, k)) for k in _VECTORS}, "texts": pack_texts(self.texts),
                "answer_ids": [list(a) for a in self.answer_ids]}

    @classmethod
    def from_dict(cls, d: dict) -> "TaskScore":
        """The TaskScore that ``to_dict`` (or its JSON) came from; fields a log lacks take their defaults."""
        d = dict(d)
        for k in _VECTORS:
            d[k] = tuple(int(c) for c in d.get(k, ()))
        texts = d.get("texts", ())
        d["texts"] = tuple(unpack_texts(texts) if isinstance(texts, str) else (str(t) for t in texts))
        d["answer_ids"] = tuple(tuple(int(t) for t in a) for a in d.get("answer_ids", ()))
        return cls(**d)


_VECTORS = ("correct", "lenient", "looping", "truncated")  # per-example 0/1 fields of a TaskScore


def pack_json(value) -> str:
    """A JSON value as one compact string (JSON, zlib, base64) for results files; ``unpack_json`` reverses it."""
    return base64.b64encode(zlib.compress(json.dumps(value).encode(), 9)).decode("ascii")


def unpack_json(packed: str, what: str = "packed value"):
    """The value ``pack_json`` packed; a damaged string raises ValueError naming ``what``."""
    try:
        return json.loads(zlib.decompress(base64.b64decode(packed.encode("ascii"), validate=True)))
    except (ValueError, zlib.error) as e:
        raise ValueError(f"{what} damaged: {e}") from None


def pack_texts(texts) -> str:
    """Answer texts as one compact string (``pack_json``); ``unpack_texts`` reverses it."""
    return pack_json(list(texts))


def unpack_texts(packed: str) -> list[str]:
    """The texts ``pack_texts`` packed; a damaged string raises ValueError."""
    texts = unpack_json(packed, "packed answer texts are")
    if not (isinstance(texts, list) and all(isinstance(t, str) for t in texts)):
        raise ValueError("packed answer texts do not hold a list of strings")
    return texts


# Greedy answers depend slightly on the batch (padding changes bf16 rounding): every evaluation - the
# baseline and each trainer's - uses this one batch size, so a run's step 0 equals the baseline. It holds a
# task's whole held-out set at chapter 2's size (150 questions), all three tasks' at chapters 3 and 4's (24
# each, answered together since 0.4.0): a decode step reads every weight whatever the rows, so fewer, fuller
# batches cost fewer steps (0.2.0 used 64; in fp32 all 450 held-out answers of chapter 2's evaluation came out
# the same, though logits move in their last bits: benchmarks/PROFILE.md).
EVAL_BATCH_SIZE = 160


def score_texts(task: Task, examples: list[Example], texts: list[str], *, truncated: list[bool] | None = None,
                n_tokens: int = 0, seconds: float = 0.0, answer_ids: list[list[int]] | None = None,
                looping: list[bool] | None = None) -> TaskScore:
    """TaskScore of responses ``texts`` (one per example); ``answer_ids``: their token ids, to keep; ``looping``:
    which answers loop (default: judged on the texts' words)."""
    if len(texts) != len(examples):
        raise ValueError(f"{len(texts)} responses for {len(examples)} examples")
    if answer_ids is not None and len(answer_ids) != len(texts):
        raise ValueError(f"{len(answer_ids)} answer token lists for {len(texts)} responses")
    scores = [task.score(e, t) for e, t in zip(examples, texts)]
    lenient = [int(task.lenient(e, t)) for e, t in zip(examples, texts)]
    looping = [int(bool(x)) for x in looping] if looping is not None else [int(is_looping(t)) for t in texts]
    cut = [int(bool(t)) for t in truncated] if truncated is not None else [0] * len(texts)
    k = int(sum(r for r, _ in scores))
    lo, hi = wilson_interval(k, len(scores))
    return TaskScore(task.name, k / len(scores) if scores else 0.0, lo, hi, len(scores), k,
                     sum(not ok for _, ok in scores), sum(cut), n_tokens, seconds,
                     tuple(int(r) for r, _ in scores), tuple(tuple(a) for a in answer_ids or ()),
                     n_lenient=sum(lenient), n_looping=sum(looping), lenient=tuple(lenient), looping=tuple(looping),
                     truncated=tuple(cut), texts=tuple(texts))


def _tasks_for(examples_by_task: dict[str, list[Example]], tasks: dict[str, Task] | None) -> dict[str, Task]:
    tasks = dict(tasks or {})
    for label, examples in examples_by_task.items():
        if label in tasks:
            continue
        names = {e.task for e in examples}
        if len(names) > 1:
            raise ValueError(f"examples under {label!r} mix tasks {sorted(names)}; pass tasks=")
        name = names.pop() if names else label
        if name not in ALL_TASK_NAMES:
            raise ValueError(f"unknown task {name!r} for {label!r}; valid tasks: {', '.join(ALL_TASK_NAMES)}")
        tasks[label] = get_task(name)
    return tasks


def _budget(task: Task, label: str, max_new_tokens: int | dict[str, int] | None) -> int:
    """A task's answer budget in an evaluation: ``max_new_tokens`` as ``evaluate`` takes it, else the task's own."""
    if isinstance(max_new_tokens, dict):
        return max_new_tokens.get(label, task.max_new_tokens)
    return max_new_tokens or task.max_new_tokens


def evaluate(
    model,
    tokenizer,
    examples_by_task: dict[str, list[Example]],
    *,
    max_new_tokens: int | dict[str, int] | None = None,
    batch_size: int = EVAL_BATCH_SIZE,
    tasks: dict[str, Task] | None = None,
    progress: bool = False,
    keep_answers: bool = False,
) -> dict[str, TaskScore]:
    """Greedy accuracy of ``model`` on each list of held-out examples.

    ``max_new_tokens``: one budget for all tasks, a dict per label, or None for each task's own default.
    ``tasks`` maps a label to the Task that scores it (default: ``get_task(example.task)``).
    ``keep_answers``: keep each answer's token ids (``TaskScore.answer_ids``), e.g. the baseline's, which
    ``retention.retention`` scores under a trained model.
    An answer that loops (``repetition.is_looping``) stops where the loop shows, cut off: a greedy loop repeats to
    any budget, so its budget would buy nothing.
    Every task's questions are answered in the same batches, each within its task's budget: a decode step
    reads all the weights however few rows it has, so a few dozen questions per task cost one task's decoding,
    not three. A task's ``seconds`` is its share of that time, by generated tokens.
    """
    tasks = _tasks_for(examples_by_task, tasks)
    messages, budgets, spans = [], [], {}
    for label, examples in examples_by_task.items():
        task = tasks[label]
        budget = _budget(task, label, max_new_tokens)
        spans[label] = slice(len(messages), len(messages) + len(examples))
        messages += [task.messages(e) for e in examples]
        budgets += [budget] * len(examples)
    start = time.perf_counter()
    completions = generate(model, tokenizer, messages, max_new_tokens=budgets, temperature=0.0,
                           batch_size=batch_size, progress=progress, stop_loops=True) if messages else []
    seconds = time.perf_counter() - start
    total = max(sum(len(c.completion_ids) for c in completions), 1)
    out = {}
    for label, examples in examples_by_task.items():
        answers = completions[spans[label]]
        n_tokens = sum(len(c.completion_ids) for c in answers)
        out[label] = score_texts(tasks[label], examples, [c.text for c in answers],
                                 truncated=[not c.finished for c in answers], n_tokens=n_tokens,
                                 seconds=seconds * n_tokens / total,
                                 answer_ids=[c.completion_ids for c in answers] if keep_answers else None,
                                 looping=[is_looping(c.completion_ids) for c in answers])
    return out


# The end of training is scored again with this many times each task's budget, for the answers it cut off: a drop
# must not be an answer that merely grew past a budget (the authors evaluate with 4,096 new tokens).
LONGER_BUDGET = 4


def cut_off_not_looping(score: TaskScore) -> list[int]:
    """The answers ``rescore_cut_off`` answers again: cut off by the budget, and not looping."""
    return [i for i, (cut, loop) in enumerate(zip(score.truncated, score.looping)) if cut and not loop]


def rescore_cut_off(model, tokenizer, examples_by_task: dict[str, list[Example]], scores: dict[str, TaskScore], *,
                    factor: int = LONGER_BUDGET, max_new_tokens: int | dict[str, int] | None = None,
                    batch_size: int = EVAL_BATCH_SIZE, tasks: dict[str, Task] | None = None) -> dict[str, TaskScore]:
    """The scores an evaluation at ``factor`` x each task's budget gives, for the cost of the cut-off answers only.

    ``scores`` (with their texts) came from ``evaluate(model, ..., max_new_tokens=max_new_tokens)`` on the same
    examples. Answers it cut off without looping are answered again, greedily, with the longer budget; the others
    keep their text: a finished answer is the same at any budget, and a greedy loop repeats to any budget, so a
    looping answer stays cut off. (In fp32 a greedy answer does not depend on its batch: this equals a whole
    evaluation at the longer budget.)"""
    check_int("factor", factor, 2)
    tasks = _tasks_for(examples_by_task, tasks)
    redo, longer_budgets = {}, {}
    for label, s in scores.items():
        if len(s.texts) != len(examples_by_task[label]):
            raise ValueError(f"{label}: {len(s.texts)} answer texts for {len(examples_by_task[label])} examples; "
                             "rescore_cut_off needs the evaluation's texts")
        redo[label] = cut_off_not_looping(s)
        longer_budgets[label] = factor * _budget(tasks[label], label, max_new_tokens)
    again = {label: [examples_by_task[label][i] for i in idx] for label, idx in redo.items() if idx}
    longer = evaluate(model, tokenizer, again, max_new_tokens=longer_budgets, batch_size=batch_size,
                      tasks=tasks) if again else {}
    out = {}
    for label, s in scores.items():
        texts, cut, loop = list(s.texts), list(s.truncated), list(s.looping)
        n_tokens, seconds = s.n_tokens, s.seconds
        if label in longer:
            new = longer[label]
            for j, i in enumerate(redo[label]):
                texts[i], cut[i], loop[i] = new.texts[j], new.truncated[j], new.looping[j]
            n_tokens, seconds = n_tokens + new.n_tokens, seconds + new.seconds
        out[label] = score_texts(tasks[label], examples_by_task[label], texts, truncated=cut, looping=loop,
                                 n_tokens=n_tokens, seconds=seconds)
    return out


def sampled_success(model, tokenizer, task: Task, examples: list[Example], *, num_samples: int = 1,
                    temperature: float = 1.0, max_new_tokens: int | None = None, batch_size: int = 32,
                    seed: int = 0, progress: bool = False) -> TaskScore:
    """Success rate of temperature samples (``num_samples`` per example): the signal RL would see."""
    start = time.perf_counter()
    completions = generate(model, tokenizer, [task.messages(e) for e in examples],
                           max_new_tokens=max_new_tokens or task.max_new_tokens, temperature=temperature,
                           num_samples=num_samples, batch_size=batch_size, seed=seed, progress=progress)
    repeated = [examples[c.prompt_index] for c in completions]
    return score_texts(task, repeated, [c.text for c in completions],
                       truncated=[not c.finished for c in completions],
                       n_tokens=sum(len(c.completion_ids) for c in completions),
                       seconds=time.perf_counter() - start)


# ---------------------------------------------------------------------------------------------- gain / drop


def _accuracy(scores, task: str) -> float:
    if task not in scores:
        raise ValueError(f"no score for task {task!r}; scored tasks: {', '.join(scores)}")
    value = scores[task]
    if isinstance(value, TaskScore):
        return value.accuracy
    if isinstance(value, dict):  # a TaskScore stored as a dict (asdict / JSON)
        return float(value["accuracy"])
    return float(value)


def gain(initial: dict, final: dict, target: str) -> float:
    """Target-task accuracy change, final - initial, in percentage points (the paper's Gain).

    ``initial`` and ``final`` map task -> TaskScore, a TaskScore as a dict, or an accuracy in [0, 1].
    """
    return 100.0 * (_accuracy(final, target) - _accuracy(initial, target))


def _others(initial: dict, target: str) -> list[str]:
    others = forgetting_tasks(initial, target)
    if not others:
        raise ValueError(f"drop needs a task besides the target {target!r} and the probes that ask its own "
                         f"questions ({', '.join(transfer_tasks(initial, target)) or 'none'}); got {list(initial)}")
    return others


def drop(initial: dict, final: dict, target: str) -> float:
    """Mean over the other tasks of initial - final accuracy, in percentage points (the paper's Drop).

    Positive = forgetting, negative = the other tasks improved. The other tasks are ``tasks.forgetting_tasks``:
    not the target, nor a probe that asks the target's own questions (those are ``transfer``).
    """
    others = _others(initial, target)
    return 100.0 * sum(_accuracy(initial, t) - _accuracy(final, t) for t in others) / len(others)


def transfer(initial: dict, final: dict, target: str) -> float | None:
    """Mean final - initial accuracy (pp) on the probes that ask the target's own questions in another form
    (``tasks.transfer_tasks``); None when none of them is scored."""
    related = transfer_tasks(initial, target)
    if not related:
        return None
    return 100.0 * sum(_accuracy(final, t) - _accuracy(initial, t) for t in related) / len(related)


def _correct(scores, task: str) -> np.ndarray | None:
    value = scores[task]
    if isinstance(value, TaskScore):
        value = value.correct
    elif isinstance(value, dict):  # a TaskScore stored as a dict; logs written before ``correct`` existed lack it
        value = value.get("correct")
    else:  # a bare accuracy
        return None
    return np.asarray(value, dtype=float) if value else None


def paired_intervals(initial: dict, final: dict, target: str, *, level: float = 0.95, n_boot: int = 2000,
                     seed: int = 0) -> dict[str, tuple[float, float]] | None:
    """Intervals (pp) of gain and drop over the held-out questions: a bootstrap that resamples each task's
    questions with both models' answers to them kept together (paired). It measures evaluation noise only,
    not the spread over training seeds. None when a score lacks per-question results (``correct``)."""
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    gain(initial, final, target)  # for their checks: the target and at least one other task are scored
    drop(initial, final, target)
    rng = np.random.default_rng(seed)
    diffs = {}  # task -> n_boot resampled accuracy changes, final - initial
    for task in initial:
        a, b = _correct(initial, task), _correct(final, task)
        if a is None or b is None:
            return None
        if len(a) != len(b):
            raise ValueError(f"{task}: {len(a)} initial and {len(b)} final answers; the questions must be the same")
        idx = rng.integers(0, len(a), size=(n_boot, len(a)))
        diffs[task] = (b[idx] - a[idx]).mean(axis=1)
    others = _others(initial, target)
    samples = {"gain": 100 * diffs[target], "drop": -100 * np.mean([diffs[t] for t in others], axis=0)}
    tail = 100 * (1 - level) / 2
    return {name: (float(np.percentile(v, tail)) + 0.0, float(np.percentile(v, 100 - tail)) + 0.0)  # no -0.0
            for name, v in samples.items()}


# ---------------------------------------------------------------------------------------------- KL


@dataclass(frozen=True, eq=False)  # holds tensors: compared by identity
class KLSamples:
    """The responses ``kl_to_initial`` samples from pi_0 and pi_0's final hidden states on them, batch by batch.

    Both depend on pi_0, the prompts and the seed only, so every run of a seed can share them (``Bench``): a
    run's KL estimate then costs one forward pass of the trained model instead of sampling and two passes."""

    messages: tuple          # the chat prompts, in order
    seed: int
    max_new_tokens: int
    num_samples: int
    batch_size: int
    batches: tuple           # per batch: (sequences [(prompt ids, completion ids)], pi_0's hidden states)

    @property
    def n_responses(self) -> int:
        """Every sampled response, the empty ones (in no batch) included."""
        return len(self.messages) * self.num_samples


def _messages(examples, tasks: dict[str, Task] | None) -> list:
    if not examples:
        raise ValueError("kl_to_initial needs at least one prompt")
    if not isinstance(examples[0], Example):
        return list(examples)
    task_objs = {}
    for e in examples:
        if e.task not in task_objs:
            task_objs[e.task] = (tasks or {}).get(e.task) or get_task(e.task)
    return [task_objs[e.task].messages(e) for e in examples]


def _reference(model, ref_model):
    """(pi_0, the context it runs in): ``ref_model``, or the peft ``model`` with its adapter disabled."""
    if ref_model is not None:
        return ref_model, nullcontext
    if not hasattr(model, "disable_adapter"):
        raise ValueError("ref_model=None needs a peft model (pi_0 = the model with its adapter disabled)")
    return model, model.disable_adapter


@torch.inference_mode()
def kl_samples(ref_model, tokenizer, examples: list[Example] | list[list[dict]], *, tasks: dict[str, Task] | None = None,
               max_new_tokens: int = 64, num_samples: int = 1, batch_size: int = 16, seed: int = 0,
               progress: bool = False, ref_ctx=nullcontext) -> KLSamples:
    """Sample pi_0's responses (temperature 1, ``seed``) and keep pi_0's hidden states on them, for
    ``kl_to_initial(..., samples=)``; ``ref_ctx`` is the context pi_0 runs in (e.g. a peft adapter disabled)."""
    messages = _messages(examples, tasks)
    was_training = ref_model.training
    ref_model.eval()
    device = next(ref_model.parameters()).device
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    batches = []
    try:
        with ref_ctx():
            completions = generate(ref_model, tokenizer, messages, max_new_tokens=max_new_tokens, temperature=1.0,
                                   num_samples=num_samples, batch_size=batch_size, seed=seed, progress=progress)
            for i in range(0, len(completions), batch_size):
                batch = [(c.prompt_ids, c.completion_ids) for c in completions[i:i + batch_size] if c.completion_ids]
                if batch:
                    batches.append((batch, completion_hidden(ref_model, batch, pad_id, device)))
    finally:
        ref_model.train(was_training)
    return KLSamples(tuple(messages), seed, max_new_tokens, num_samples, batch_size, tuple(batches))


@torch.inference_mode()
def kl_to_initial(
    model,
    ref_model,
    tokenizer,
    examples: list[Example] | list[list[dict]],
    *,
    tasks: dict[str, Task] | None = None,
    max_new_tokens: int = 64,
    num_samples: int = 1,
    batch_size: int = 16,
    seed: int = 0,
    per_token: bool = False,
    progress: bool = False,
    chunk: int = KL_CHUNK,
    samples: KLSamples | None = None,
) -> float:
    """KL[pi_0 || pi_theta] in nats, estimated on responses sampled from pi_0 (``ref_model``, temperature 1).

    Per response we sum, over its tokens, the exact next-token KL between the two models' distributions
    (sum over the vocabulary) - the chain rule makes this an unbiased, low-variance estimate of the
    sequence-level KL. Returns the mean per response (``per_token=False``) or per generated token.
    ``ref_model=None`` with a peft model uses the model with its adapter disabled as pi_0.
    ``examples``: Examples (chat messages built by their task) or chat message lists. The vocabulary-wide
    sum runs ``chunk`` tokens at a time, so peak memory does not grow with vocabulary x batch.
    ``samples``: pi_0's responses for these very prompts and settings, from ``kl_samples`` (bitwise the same
    estimate, without sampling again).
    """
    ref_model, ref_ctx = _reference(model, ref_model)
    if samples is None:
        samples = kl_samples(ref_model, tokenizer, examples, tasks=tasks, max_new_tokens=max_new_tokens,
                             num_samples=num_samples, batch_size=batch_size, seed=seed, progress=progress,
                             ref_ctx=ref_ctx)
    else:
        asked = (tuple(_messages(examples, tasks)), seed, max_new_tokens, num_samples, batch_size)
        kept = (samples.messages, samples.seed, samples.max_new_tokens, samples.num_samples, samples.batch_size)
        if asked != kept:
            raise ValueError("samples were drawn for other prompts or settings (seed, max_new_tokens, num_samples, "
                             "batch_size) than this estimate asks for")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    total, tokens = 0.0, 0
    try:
        for batch, ref_hidden in samples.batches:
            kl = token_kl(ref_model, model, ref_ctx, batch, ref_hidden, pad_id, device, chunk)
            total += float(kl.sum())
            tokens += kl.shape[0]
    finally:
        model.train(was_training)
    if per_token:
        return total / max(tokens, 1)
    return total / samples.n_responses


# ---------------------------------------------------------------------------------------------- tables


def scores_frame(scores: dict[str, TaskScore]) -> pd.DataFrame:
    """One row per task: accuracy and interval in %, counts, throughput."""
    rows = []
    for label, s in scores.items():
        row = asdict(s)
        for per_example in (*_VECTORS, "answer_ids", "texts"):  # a row is the task's totals, not its answers
            del row[per_example]
        row["task"] = label
        for k in ("accuracy", "ci_low", "ci_high"):
            row[k] = 100.0 * row[k]
        row["tokens_per_s"] = s.n_tokens / s.seconds if s.seconds else float("nan")
        rows.append(row)
    return pd.DataFrame(rows).set_index("task")


def results_table(runs: dict[str, dict[str, TaskScore]], *, initial: str | None = None,
                  target: str | None = None) -> pd.DataFrame:
    """One row per run (e.g. initial, SFT, GRPO): accuracy % per task, its 95% half-width, and, given the
    ``initial`` run's label and the ``target`` task, the gain and drop of every run against it."""
    if initial is not None and initial not in runs:
        raise ValueError(f"initial run {initial!r} not among runs: {', '.join(runs)}")
    rows = {}
    for label, scores in runs.items():
        row = {}
        for task, s in scores.items():
            row[f"{task} acc %"] = 100.0 * s.accuracy
            row[f"{task} ±95%"] = 100.0 * (s.ci_high - s.ci_low) / 2
        if initial is not None and target is not None:
            row["gain"] = gain(runs[initial], scores, target)
            row["drop"] = drop(runs[initial], scores, target)
        rows[label] = row
    return pd.DataFrame.from_dict(rows, orient="index")


def eval_examples(n_eval: int, seed: int = 0, tasks: dict[str, Task] | None = None) -> dict[str, list[Example]]:
    """Held-out examples for each task (default: all three with their calibrated defaults)."""
    tasks = tasks or {name: get_task(name) for name in TASK_NAMES}
    return {label: task.make_examples(n_eval, seed=seed, split="eval") for label, task in tasks.items()}


def baseline_table(model_name: str | None = None, n_eval: int = 100, seed: int = 0, *,
                   tasks: dict[str, Task] | None = None, batch_size: int = EVAL_BATCH_SIZE, progress: bool = True,
                   model=None, tokenizer=None) -> tuple[pd.DataFrame, dict[str, TaskScore]]:
    """Greedy accuracy of a model (default: the embedded one) on ``n_eval`` held-out examples per task.

    Returns (table, scores). Pass ``model`` and ``tokenizer`` to reuse a loaded model.
    """
    from .models import EMBEDDED_MODEL, load_model

    if n_eval < 1:
        raise ValueError(f"n_eval must be >= 1, got {n_eval}")
    tasks = tasks or {name: get_task(name) for name in TASK_NAMES}
    examples = eval_examples(n_eval, seed, tasks)  # builds (and validates) everything before loading
    if model is None:
        model, tokenizer = load_model(model_name or EMBEDDED_MODEL)
    scores = evaluate(model, tokenizer, examples, batch_size=batch_size, tasks=tasks, progress=progress)
    return scores_frame(scores), scores
