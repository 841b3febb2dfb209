"""The record of one training run (one variant, one seed): what every LLM notebook writes to its results file
under ``runs``, and what ``experiment`` and ``results`` read back."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from .evaluation import pack_json, paired_intervals, unpack_json
from .tasks import forgetting_tasks, transfer_tasks

# The variant label a method's plain run gets in every notebook, so that tables and verdicts find "GRPO" and
# "SFT" whichever chapter ran them.
METHOD_LABELS = {"sft": "SFT", "self_sft": "Self-SFT", "iterative_sft": "Iterative-SFT", "grpo": "GRPO",
                 "reinforce": "REINFORCE"}


@dataclass
class RunRecord:
    """One run's outcome. Accuracies, gain and drop in percentage points on the held-out examples; gain and drop
    against the run's own step-0 evaluation; intervals are 95 % paired-bootstrap intervals over the held-out
    questions (``None`` when the evaluation kept no per-question results)."""

    variant: str                    # the label in tables, e.g. "GRPO, β=0" (a method's plain run: METHOD_LABELS)
    method: str                     # the training method, one of training.METHOD_NAMES
    target: str                     # the task trained on
    seed: int                       # the training seed
    gain: float                     # target accuracy after minus before (pp)
    drop: float                     # mean over tasks.forgetting_tasks of accuracy before minus after (pp)
    gain_interval: tuple[float, float] | None
    drop_interval: tuple[float, float] | None
    kl: float                       # KL[pi_0 || pi_theta] per response on held-out prompts (nats)
    accuracy_initial: dict[str, float]  # task -> accuracy at step 0 (%)
    accuracy_final: dict[str, float]    # task -> accuracy after training (%)
    n_eval: dict[str, int]          # task -> held-out examples
    trajectory: list[dict]          # [{"step", "gain", "drop", "accuracy": {task: %}}] at every evaluation
    status: str                     # how training ended (see training.train)
    seconds: float                  # wall time of the whole run, evaluations included
    train_seconds: float            # training time, sampling included, evaluations not
    generated_tokens: int           # tokens sampled for training
    config: dict[str, Any]          # the TrainConfig as run (defaults filled in)
    correct_rollouts: list[dict] | None = field(default=None, repr=False)  # keep_correct: accepted rollouts
    # trained - initial log-likelihood of the initial model's correct answers (retention.Retention.to_dict);
    # None when the initial model answered no other task's question right, or in older results files
    retention: dict | None = field(default=None, repr=False)
    # every evaluation: {"step", "correct": {task: [0/1 per held-out question]}, "lenient", "looping", "truncated"
    # (the same shape), and at the first and last evaluation "answers": {task: packed texts}}
    evals: list[dict] = field(default_factory=list, repr=False)
    flags: list[str] = field(default_factory=list)  # diagnostics.flags: collapse, loops, cut-off answers
    # the first and last evaluation scored again at evaluation.LONGER_BUDGET x each task's budget for the answers
    # cut off without looping (experiment.longer_budget): {"factor", "gain", "drop", "transfer", "accuracy_initial",
    # "accuracy_final", "truncated_initial", "truncated_final", "rescored_initial", "rescored_final"}; None in
    # older files
    longer_budget: dict | None = field(default=None, repr=False)
    # where the run's time went (s): "train" (sampling included), "evaluate" (every evaluation during training),
    # then after training "kl", "longer_budget", "retention"; empty in older files
    phase_seconds: dict[str, float] = field(default_factory=dict, repr=False)
    # mean accuracy after minus before (pp) on the probes that ask the target's own questions in another form
    # (tasks.transfer_tasks; left out of the drop); None where none is scored
    transfer: float | None = None
    # the run folder this record was read from, relative to the notebook's ``reuse_runs_from``, when another
    # notebook's identical run was reused (experiment.find_finished); None for a run trained here
    reused_from: str | None = None

    def to_dict(self) -> dict:
        """Plain JSON types; no ``correct_rollouts`` key when there are none, else packed into one string
        (``evaluation.pack_json``: a GRPO run keeps hundreds of rollouts with their token ids)."""
        record = dataclasses.asdict(self)
        if record["correct_rollouts"] is None:
            del record["correct_rollouts"]
        else:
            record["correct_rollouts"] = pack_json(record["correct_rollouts"])
        return record

    @classmethod
    def from_dict(cls, record: dict) -> "RunRecord":
        """Read a record back from a results file: ``null`` floats (how results files store NaN) become NaN,
        intervals tuples. Older files named the variant ``method`` and the method ``algorithm``."""
        record = dict(record)
        if "variant" not in record:
            record["variant"], record["method"] = record["method"], record.pop("algorithm")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(record) - known)
        if unknown:
            raise ValueError(f"unknown run-record field(s) {', '.join(unknown)}; fields: {', '.join(sorted(known))}")
        for name in ("gain", "drop", "kl", "seconds", "train_seconds"):
            record[name] = math.nan if record.get(name) is None else float(record[name])
        for name in ("gain_interval", "drop_interval"):
            if record.get(name) is not None:
                record[name] = tuple(math.nan if v is None else float(v) for v in record[name])
        record.setdefault("train_seconds", record["seconds"])
        record.setdefault("generated_tokens", 0)
        record.setdefault("gain_interval", None)
        record.setdefault("drop_interval", None)
        if isinstance(record.get("correct_rollouts"), str):
            rollouts = unpack_json(record["correct_rollouts"], "packed correct_rollouts are")
            if not (isinstance(rollouts, list) and all(isinstance(r, dict) for r in rollouts)):
                raise ValueError("packed correct_rollouts do not hold a list of rollouts")
            record["correct_rollouts"] = rollouts
        if "transfer" not in record:
            _leave_out_related(record)
        return cls(**record)


def _drop(initial: dict, final: dict, target: str) -> float:
    others = forgetting_tasks(initial, target)
    return sum(initial[t] - final[t] for t in others) / len(others) if others else math.nan


def _leave_out_related(record: dict) -> None:
    """A record written before drops left out the probes that ask the target's own questions
    (``tasks.RELATED``): its drops recomputed from its per-task accuracies, those probes' gain as ``transfer``."""
    target, initial, final = record["target"], record["accuracy_initial"], record["accuracy_final"]
    related = transfer_tasks(initial, target)
    if not related:
        return
    record["transfer"] = sum(final[t] - initial[t] for t in related) / len(related)
    record["drop"] = _drop(initial, final, target)
    record["trajectory"] = [{**p, "drop": _drop(record["trajectory"][0]["accuracy"], p["accuracy"], target)}
                            if "accuracy" in p else p for p in record["trajectory"]]
    if record.get("longer_budget"):
        longer = record["longer_budget"]
        before, after = longer["accuracy_initial"], longer["accuracy_final"]
        record["longer_budget"] = {**longer, "drop": _drop(before, after, target),
                                   "transfer": sum(after[t] - before[t] for t in related) / len(related)}
    evals = record.get("evals") or []
    if record["drop_interval"] is not None:  # the same paired bootstrap as a new record's, on the kept answers
        scores = [{t: {"accuracy": sum(c) / len(c), "correct": c} for t, c in e["correct"].items()}
                  for e in (evals[0], evals[-1])] if evals else None
        intervals = scores and paired_intervals(scores[0], scores[1], target)
        record["drop_interval"] = tuple(intervals["drop"]) if intervals else None


def as_records(runs: list) -> list[RunRecord]:
    """RunRecords from records or their dicts (a results file's ``runs``)."""
    return [r if isinstance(r, RunRecord) else RunRecord.from_dict(r) for r in runs]
