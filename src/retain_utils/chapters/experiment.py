"""One LLM experiment: a model, every task split into training and held-out examples, and training variants
that all start from the same initial weights, each scored by gain, drop and KL to the initial model.

Notebooks 2-4 are this module's callers: ``settings.setup``, then ``load_bench`` once, then ``run_variants`` (one
``run_variant`` per variant and seed). Each finished run is appended to the results file at once, so a later
failure loses nothing; each is a ``records.RunRecord``.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..analysis import diagnostics, retention
from ..core import baseline_cache, evaluation, provenance, results, training
from ..analysis.forgetting import correct_vector
from ..core.heap import release_freed_memory
from ..core.layout import RECORD_FILE, RUNS_DIR
from ..core.models import cast_parameters, default_dtype, load_model
from ..core.records import METHOD_LABELS, RunRecord, as_records
from ..core.tasks import ALL_TASK_NAMES, TASK_NAMES, Example, Task, get_task
from ..core.training import TrainConfig


@dataclass
class Bench:
    """The fixed part of an experiment: the initial model, the tasks and their examples, the baseline."""

    model_name: str
    target: str
    tasks: dict[str, Task]
    train: list[Example]                  # the target task's training examples
    eval: dict[str, list[Example]]        # held-out examples of every task
    reference: Any                        # the initial model, frozen: every variant starts from a copy
    tokenizer: Any
    baseline: dict[str, evaluation.TaskScore]   # without answer token ids: what step 0 of every run equals
    data_seed: int
    seconds: float
    answers: dict[str, retention.Answers] = dataclasses.field(default_factory=dict)  # its correct answers, per other task
    reference_ll: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)     # their initial log-likelihoods
    kl_samples: dict[tuple[int, int], evaluation.KLSamples] = dataclasses.field(default_factory=dict)  # per (seed, prompts)
    # the initial model's answers at the longer budget (``longer_budget``), shared by the runs that evaluate alike
    longer_baseline: dict[str, dict[str, evaluation.TaskScore]] = dataclasses.field(default_factory=dict)
    cache: Path | None = None  # where the initial model's evaluations are kept across points (``baseline_cache``)
    baseline_read: bool = False  # its baseline was read from ``cache``, not computed here


def check_names(target: str, task_names: list[str] | tuple[str, ...], methods: list[str] | tuple[str, ...] = ()) -> None:
    """Unknown task or method names fail here, before a model is loaded."""
    for name in [*task_names, target]:
        if name not in ALL_TASK_NAMES:
            raise ValueError(f"unknown task {name!r}; valid tasks: {', '.join(ALL_TASK_NAMES)}")
    if target not in task_names:
        raise ValueError(f"target {target!r} must be one of the evaluated tasks {list(task_names)}")
    if len(task_names) < 2:
        raise ValueError("drop needs at least one task besides the target: give two or more tasks")
    for method in methods:
        if method not in training.METHOD_NAMES:
            raise ValueError(f"unknown method {method!r}; valid methods: {', '.join(training.METHOD_NAMES)}")


def make_bench(model_name: str, target: str, n_train: int, n_eval: int, *, n_eval_target: int | None = None,
               task_names: tuple[str, ...] = TASK_NAMES, task_options: dict[str, dict] | None = None,
               data_seed: int = 0, dtype=None, cache: str | Path | None = None, progress: bool = True) -> Bench:
    """Load the model, draw ``n_train`` target examples and ``n_eval`` held-out examples per task
    (``n_eval_target`` of the target, default ``n_eval``: a gain rests on one task, a drop on the mean of the
    others, so a gain needs more questions to be told from noise), and measure the baseline (greedy accuracy
    on the held-out examples), keeping the initial model's correct answers on the other tasks and their
    log-likelihoods once, for every run's retention (``retention``). With ``cache`` (a folder) the initial model's
    evaluations are kept there and read back by every later bench of the same model, questions, code and machine
    (``baseline_cache``)."""
    check_names(target, task_names)
    cache = Path(cache) if cache else None
    n_target = n_eval if n_eval_target is None else n_eval_target
    for name, value in (("n_train", n_train), ("n_eval", n_eval), ("n_eval_target", n_target)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    start = time.perf_counter()
    options = task_options or {}
    tasks = {name: get_task(name, **options.get(name, {})) for name in task_names}
    train = tasks[target].make_examples(n_train, seed=data_seed, split="train")
    held_out = {}
    for name, task in tasks.items():
        try:
            held_out[name] = task.make_examples(n_target if name == target else n_eval, seed=data_seed, split="eval")
        except ValueError as e:  # e.g. more than a fixed question bank holds
            raise ValueError(f"{name}: {e}") from None
    model, tokenizer = load_model(model_name, dtype=dtype)
    for p in model.parameters():
        p.requires_grad_(False)
    stored_key = baseline_cache.key("baseline", model, tasks, held_out, target=target) if cache else {}
    stored = _read_baseline(cache, stored_key) if cache else None
    if stored is None:
        scored = evaluation.evaluate(model, tokenizer, held_out, tasks=tasks, progress=progress, keep_answers=True)
        answers = retention.baseline_answers(tokenizer, held_out, scored, target=target, tasks=tasks)
        reference_ll = retention.reference_logliks(model, tokenizer, answers, progress=progress)
        baseline_cache.write(cache, stored_key, {
            "scores": {name: s.to_dict() for name, s in scored.items()},
            "reference_ll": {name: {"dtype": str(v.dtype), "values": v.tolist()} for name, v in reference_ll.items()}})
    else:
        scored, reference_ll = stored
        answers = retention.baseline_answers(tokenizer, held_out, scored, target=target, tasks=tasks)
    release_freed_memory()  # the baseline's KV caches and logits stay free through every run otherwise
    # the answers live in ``answers``; the baseline stays what a run's step-0 evaluation logs
    baseline = {name: dataclasses.replace(score, answer_ids=()) for name, score in scored.items()}
    return Bench(model_name, target, tasks, train, held_out, model, tokenizer, baseline, data_seed,
                 time.perf_counter() - start, answers, reference_ll, cache=cache, baseline_read=stored is not None)


def _read_baseline(cache: Path | None, stored_key: dict):
    """A stored baseline (``baseline_cache``) as (scores, reference log-likelihoods); None when there is none or
    it does not read back as one."""
    value = baseline_cache.read(cache, stored_key)
    if value is None:
        return None
    try:
        scores = {name: evaluation.TaskScore.from_dict(d) for name, d in value["scores"].items()}
        reference_ll = {name: np.asarray(v["values"], dtype=v["dtype"]) for name, v in value["reference_ll"].items()}
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        print(f"note: the stored baseline does not read back ({e!r}): computed again")
        return None
    return scores, reference_ll


def load_bench(setup, results_path=None, progress: bool = True) -> Bench:
    """``make_bench`` with a notebook's checked settings (``settings.setup``); the baseline and the machine it ran
    on (CPU flags, threads, the model's device and dtype) go to the results file. Kept across points where
    ``$RETAIN_UTILS_BASELINE_CACHE`` names a folder (the campaign's kernels: ``baseline_cache``)."""
    cfg = setup.cfg
    made = make_bench(setup.model, setup.target, cfg.n_train, cfg.n_eval, n_eval_target=getattr(cfg, "n_eval_target", None),
                      task_names=setup.task_names, task_options=setup.task_options, cache=baseline_cache.folder(),
                      progress=progress)
    # baseline_read: this point spent no time evaluating the initial model (the campaign's cost projection)
    results.save(results_path, baseline=baseline_frame(made).reset_index().to_dict("records"),
                 baseline_read=made.baseline_read, machine=provenance.machine(made.reference))
    return made


def baseline_frame(bench: Bench):
    """The initial model's accuracy (%, Wilson 95 % interval) on every task's held-out examples."""
    return evaluation.scores_frame(bench.baseline)


def _fingerprint(bench: Bench, config: TrainConfig, train_examples: list[Example] | None, kl_prompts: int,
                 rescore_longer: bool) -> str:
    """A short hash of everything a run's checkpoint and record depend on besides its label, the package's
    code included: after any code edit a run trains afresh. Two runs with the same fingerprint give the same
    record, whichever notebook runs them (``find_finished``)."""
    examples = train_examples or bench.train
    key = {"code": provenance.source_hash(), "model": bench.model_name, "target": bench.target, "data_seed": bench.data_seed,
           "tasks": {name: repr(task) for name, task in bench.tasks.items()},
           "train": [(e.prompt, e.expert) if e.expert_ids is None else (e.prompt, e.expert, e.expert_ids)
                     for e in examples],
           "eval": {name: len(ex) for name, ex in bench.eval.items()},
           # resolved: a default left None and the same value written out (GRPO's beta in notebooks 2 and 3) are one run
           "config": {k: v for k, v in training.resolve(config).to_dict().items() if k not in ("out_dir", "run_name")},
           "kl_prompts": kl_prompts, "rescore_longer": rescore_longer}
    return baseline_cache.digest(key)[:10]


def find_finished(folder: str | Path, seed: int, fingerprint: str) -> Path | None:
    """The record file of a finished run with this seed and fingerprint in any point's run folders under
    ``folder`` (``<point>/runs/<label>-s<seed>-<fingerprint>/``), whatever its label; None when there is none."""
    folder = Path(folder)
    if not folder.is_dir():
        return None
    found = sorted(folder.glob(f"**/{RUNS_DIR}/*-s{seed}-{fingerprint}/{RECORD_FILE}"))
    return found[0] if found else None


def _percent(scores: dict) -> dict[str, float]:
    """Accuracies (TaskScores or fractions) in %."""
    return {name: 100.0 * (s.accuracy if isinstance(s, evaluation.TaskScore) else float(s)) for name, s in scores.items()}


def _correctness(entry: dict, keep_texts: bool = False) -> dict:
    """One evaluation of a run, compactly: its step and per task the 0/1 result of every held-out question, its
    lenient result and whether it looped or was cut off (knowledge vs format); with ``keep_texts`` the answers
    themselves, packed (``evaluation.pack_texts``)."""
    scores = {t: evaluation.TaskScore.from_dict(s) if isinstance(s, dict) else s for t, s in entry["scores"].items()}
    out = {"step": entry["step"], "correct": {t: [int(c) for c in correct_vector(entry["scores"], t)] for t in scores}}
    for field in ("lenient", "looping", "truncated"):
        out[field] = {t: list(getattr(s, field)) for t, s in scores.items()}
    out["unparsed"] = {t: s.n_unparsed for t, s in scores.items()}
    if keep_texts:
        out["answers"] = {t: evaluation.pack_texts(s.texts) for t, s in scores.items()}
    return out




def run_variant(bench: Bench, config: TrainConfig, *, label: str | None = None, results_path=None,
                out_dir: str | Path | None = None, kl_prompts: int = 32, train_examples: list[Example] | None = None,
                rescore_longer: bool = True, reuse_from: str | Path | None = None, progress: bool = True) -> RunRecord:
    """Train a fresh copy of the initial model with ``config`` on the target task and score it.

    ``label`` names the variant in tables (default: the method's METHOD_LABELS name), so ablations of one method
    stay apart.
    ``train_examples`` replaces the bench's training examples (e.g. ``examples_from_rollouts``).
    The returned record (also appended to ``runs`` in the results file) holds gain, drop, KL to the
    initial model, accuracies before and after, the gain/drop trajectory over training and the compute
    spent (training seconds without evaluations, generated tokens); with ``keep_correct`` also the
    accepted rollouts. With ``out_dir`` the run checkpoints into its own folder there while it trains (an
    interrupted run resumes from it); the finished run keeps only its logs (metrics and evals JSON lines).
    ``rescore_longer`` scores the first and last evaluation again at the longer budget (``longer_budget``).
    With ``reuse_from`` (e.g. the campaign's folder) a run finished there with the same fingerprint - same code,
    model, data, tasks and config - is read instead of trained again (its record gets this variant's label),
    so chapters 3 and 4 share chapter 2's runs; each record is computed once.
    """
    if config.task != bench.target:
        raise ValueError(f"config.task {config.task!r} differs from the bench's target {bench.target!r}")
    label = label or METHOD_LABELS[config.method]
    fingerprint = _fingerprint(bench, config, train_examples, kl_prompts, rescore_longer)
    run_dir = None
    if out_dir is not None:  # one folder per (variant, config, data): a rerun resumes only the very same run
        safe = re.sub(r"[^A-Za-z0-9._=-]+", "_", label)
        run_dir = Path(out_dir) / f"{safe}-s{config.seed}-{fingerprint}"
    config = dataclasses.replace(config, out_dir=str(run_dir) if run_dir else None,
                                 run_name=f"{label}-{config.task}-s{config.seed}")
    if run_dir is not None and (run_dir / RECORD_FILE).exists():  # finished before an interruption: not retrained
        record = RunRecord.from_dict(json.loads((run_dir / RECORD_FILE).read_text()))
        print(f"{label}, seed {config.seed}: finished earlier, record read from {run_dir / RECORD_FILE}")
        _append_run(results_path, record)
        return record
    shared = find_finished(reuse_from, config.seed, fingerprint) if reuse_from is not None else None
    if shared is not None:  # the same run, finished by another notebook: read, relabelled, kept in this point too
        record = dataclasses.replace(RunRecord.from_dict(json.loads(shared.read_text())), variant=label,
                                     reused_from=shared.parent.relative_to(Path(reuse_from)).as_posix())
        print(f"{label}, seed {config.seed}: the same run finished in {shared.parent}, record read from it")
        if run_dir is not None:
            results.write_json_atomic(run_dir / RECORD_FILE, record.to_dict())
        _append_run(results_path, record)
        return record
    model = copy.deepcopy(bench.reference)
    for p in model.parameters():
        p.requires_grad_(True)
    # The baseline is step 0's evaluation (same weights, precision, batch and budgets: tests check they
    # agree), so it is reused unless the run evaluates differently.
    weights = next(bench.reference.parameters())
    same_eval = (config.precision == "auto" and weights.dtype == default_dtype(weights.device)
                 and config.eval_max_new_tokens is None and config.eval_batch_size == evaluation.EVAL_BATCH_SIZE)
    result = training.train(config, model, bench.tokenizer, bench.tasks, train_examples or bench.train, bench.eval,
                            initial_scores=bench.baseline if same_eval else None, progress=progress)
    # Gain and drop are measured against the run's own step-0 evaluation, so step 0 is exactly (0, 0).
    initial = result.evals[0]["accuracy"]
    final = result.evals[-1]["accuracy"]
    kl_examples = [e for examples in bench.eval.values() for e in examples[: max(1, kl_prompts // len(bench.eval))]]
    # Compare in the reference's precision (fp32 master weights vs bf16 would differ by rounding alone).
    dtype = next(bench.reference.parameters()).dtype
    trained = cast_parameters(result.model, dtype)
    clock = time.perf_counter()
    # pi_0's responses depend on the seed alone: sampled once, shared by every run of that seed
    key = (config.seed, kl_prompts)
    if key not in bench.kl_samples:
        bench.kl_samples[key] = evaluation.kl_samples(bench.reference, bench.tokenizer, kl_examples, tasks=bench.tasks,
                                                      seed=config.seed)
    kl = evaluation.kl_to_initial(trained, bench.reference, bench.tokenizer, kl_examples, tasks=bench.tasks,
                                  seed=config.seed, samples=bench.kl_samples[key])
    phases = {"kl": time.perf_counter() - clock}
    clock = time.perf_counter()
    longer = (longer_budget(bench, trained, result.evals[0]["scores"], result.evals[-1]["scores"], result.config)
              if rescore_longer else None)
    phases["longer_budget"] = time.perf_counter() - clock
    clock = time.perf_counter()
    # retention on the initial model's correct answers; none when it answered no other task's question right
    kept = (retention.retention(trained, bench.tokenizer, bench.answers, bench.reference_ll).to_dict()
            if any(a.index for a in bench.answers.values()) else None)
    phases["retention"] = time.perf_counter() - clock
    train_seconds = sum(s["seconds"] for s in result.steps)  # sampling included, evaluations not
    trajectory = [{**point, "accuracy": _percent(e["accuracy"])}
                  for point, e in zip(result.trajectory(), result.evals)]
    intervals = evaluation.paired_intervals(result.evals[0]["scores"], result.evals[-1]["scores"], bench.target)
    record = RunRecord(
        variant=label, method=result.config.method, target=bench.target, seed=config.seed,
        gain=trajectory[-1]["gain"], drop=trajectory[-1]["drop"],
        gain_interval=intervals and tuple(intervals["gain"]), drop_interval=intervals and tuple(intervals["drop"]),
        kl=kl, accuracy_initial=_percent(initial), accuracy_final=_percent(final),
        n_eval={name: len(ex) for name, ex in bench.eval.items()}, trajectory=trajectory, status=result.status,
        seconds=result.seconds, train_seconds=train_seconds,
        generated_tokens=int(sum(s.get("generated_tokens", 0) for s in result.steps)),
        config=result.config.to_dict(),
        correct_rollouts=result.correct if result.config.keep_correct else None,
        retention=kept, evals=[_correctness(e, keep_texts=i in (0, len(result.evals) - 1))
                               for i, e in enumerate(result.evals)],
        flags=diagnostics.flags(result.steps, result.evals[-1]["scores"]), longer_budget=longer,
        phase_seconds={"train": train_seconds, "evaluate": result.seconds - train_seconds, **phases},
        transfer=evaluation.transfer(initial, final, bench.target))
    _append_run(results_path, record)
    if run_dir is not None:  # the checkpoint only serves a resume; full fine-tuning's (weights + AdamW) is ~12 bytes/param
        results.write_json_atomic(run_dir / RECORD_FILE, record.to_dict())
        (run_dir / training.CHECKPOINT).unlink(missing_ok=True)
    del model, result
    release_freed_memory()  # this run's model, optimizer and evaluations: the next run allocates its own
    return record


def longer_budget(bench: Bench, trained, first: dict, last: dict, config: TrainConfig) -> dict:
    """A run's first and last evaluation scored again at ``evaluation.LONGER_BUDGET`` x each task's budget, for
    the answers cut off without looping (``evaluation.rescore_cut_off``): its gain and drop where no answer lost
    its score for merely running past the budget, beside the counts of answers still cut off."""
    first, last = ({t: evaluation.TaskScore.from_dict(s) if isinstance(s, dict) else s for t, s in scores.items()}
                   for scores in (first, last))
    kw = dict(max_new_tokens=config.eval_max_new_tokens, batch_size=config.eval_batch_size, tasks=bench.tasks)
    budget = {"max_new_tokens": config.eval_max_new_tokens, "batch_size": config.eval_batch_size,
              "answers": baseline_cache.digest({t: s.texts for t, s in first.items()})}
    key = json.dumps(budget, sort_keys=True)
    if key not in bench.longer_baseline:  # the initial model's answers: the same for every run that evaluates alike
        bench.longer_baseline[key] = _longer_baseline(bench, first, budget, kw)
    initial = bench.longer_baseline[key]
    was_training = trained.training
    trained.eval()
    try:
        final = evaluation.rescore_cut_off(trained, bench.tokenizer, bench.eval, last, **kw)
    finally:
        trained.train(was_training)
    return {"factor": evaluation.LONGER_BUDGET,
            "gain": evaluation.gain(initial, final, bench.target), "drop": evaluation.drop(initial, final, bench.target),
            "transfer": evaluation.transfer(initial, final, bench.target),
            "accuracy_initial": _percent(initial), "accuracy_final": _percent(final),
            "truncated_initial": {t: s.n_truncated for t, s in initial.items()},
            "truncated_final": {t: s.n_truncated for t, s in final.items()},
            "rescored_initial": {t: len(evaluation.cut_off_not_looping(s)) for t, s in first.items()},
            "rescored_final": {t: len(evaluation.cut_off_not_looping(s)) for t, s in last.items()}}


def _longer_baseline(bench: Bench, first: dict, budget: dict, kw: dict) -> dict[str, evaluation.TaskScore]:
    """The initial model's cut-off answers answered again at the longer budget, read from the bench's cache when
    it holds them (``baseline_cache``)."""
    if bench.cache is None:
        return evaluation.rescore_cut_off(bench.reference, bench.tokenizer, bench.eval, first, **kw)
    stored_key = baseline_cache.key("longer_budget", bench.reference, bench.tasks, bench.eval, **budget)
    stored = baseline_cache.read(bench.cache, stored_key)
    if stored is not None:
        try:
            return {t: evaluation.TaskScore.from_dict(d) for t, d in stored.items()}
        except (TypeError, ValueError, AttributeError) as e:
            print(f"note: the stored longer-budget baseline does not read back ({e!r}): computed again")
    scores = evaluation.rescore_cut_off(bench.reference, bench.tokenizer, bench.eval, first, **kw)
    baseline_cache.write(bench.cache, stored_key, {t: s.to_dict() for t, s in scores.items()})
    return scores


def _append_run(results_path, record: RunRecord) -> None:
    if results_path is not None:
        previous = results.load(results_path).get("runs", []) if Path(results_path).exists() else []
        results.save(results_path, runs=[*previous, record.to_dict()])


def run_variants(bench: Bench, setup, results_path=None, *, progress: bool = True) -> list[RunRecord]:
    """Every variant of ``setup`` (``settings.setup``) for every seed, in order, each saved at once. A variant with
    ``rollouts_of`` trains on the accepted rollouts of that variant's run of the same seed (skipped, with a note,
    when it accepted none). Each run checkpoints under ``setup.run_dir`` while it trains. The records returned
    hold no rollouts (the results file keeps them)."""
    start = time.perf_counter()
    records = []
    for seed in setup.cfg.seeds:
        accepted: dict[str, list[dict]] = {}
        for variant in setup.variants:
            examples = None
            if variant.rollouts_of is not None:
                if not accepted.get(variant.rollouts_of):
                    print(f"seed {seed}: {variant.rollouts_of} accepted no rollouts, so there is nothing to train "
                          f"'{variant.label}' on")
                    continue
                examples = examples_from_rollouts(bench, accepted[variant.rollouts_of])
            record = run_variant(bench, dataclasses.replace(variant.config, seed=seed), label=variant.label,
                                 train_examples=examples, results_path=results_path, out_dir=setup.run_dir,
                                 kl_prompts=setup.kl_prompts, rescore_longer=setup.cfg.rescore_longer,
                                 reuse_from=setup.reuse_dir, progress=progress)
            if record.correct_rollouts is not None:
                accepted[variant.label] = record.correct_rollouts
                print(f"seed {seed}: {variant.label} kept {len(record.correct_rollouts)} accepted rollouts "
                      f"on {len({r['example'] for r in record.correct_rollouts})} distinct prompts")
                record = dataclasses.replace(record, correct_rollouts=None)
            records.append(record)
    results.save(results_path, timings={"total_s": bench.seconds + time.perf_counter() - start})
    return records


def examples_from_rollouts(bench: Bench, rollouts: list[dict]) -> list[Example]:
    """Training examples whose responses are accepted RL rollouts (a ``keep_correct`` run's
    ``correct_rollouts``: finished and correct): SFT on them is SFT on the very tokens RL itself sampled."""
    if not rollouts:
        raise ValueError("no accepted rollouts to train on: the RL run solved nothing (or ran without keep_correct)")
    return [dataclasses.replace(bench.train[r["example"]], expert=r["text"],
                                expert_ids=tuple(r["completion_ids"]) if "completion_ids" in r else None)
            for r in rollouts]


def not_learned(label: str, gain: float, n_eval: int, budget: str) -> str:
    """A sentence when ``label`` gained at most one held-out question of ``n_eval`` on the target: it has not
    learned the target, so its drop says little about forgetting at a useful gain. Empty otherwise."""
    one_question = 100 / n_eval
    if gain > one_question:
        return ""
    return (f"{label} gained {gain:+.1f} pp, no more than one held-out question of {n_eval} ({one_question:.1f} pp), "
            f"at this budget ({budget}): it has not learned the target, so its drop is no yardstick for forgetting "
            "at a useful gain. The `full` profile trains longer.")


def summary(records: list) -> "Any":
    """Per variant: gain and drop as mean ± std over seeds, mean transfer (where a probe asks the target's own
    questions), mean KL, the seed count, and the compute of one run (mean training minutes, sampling included,
    and thousands of generated tokens). Two decimals, KL four."""
    import pandas as pd

    records = as_records(records)
    frame = pd.DataFrame([{"variant": r.variant, "seed": r.seed, "gain": r.gain, "drop": r.drop, "kl": r.kl,
                           "transfer": np.nan if r.transfer is None else r.transfer,
                           "train_seconds": r.train_seconds, "generated_tokens": r.generated_tokens}
                          for r in records])
    grouped = frame.groupby("variant", sort=False)
    table = grouped.agg(gain_mean=("gain", "mean"), gain_std=("gain", "std"), drop_mean=("drop", "mean"),
                        drop_std=("drop", "std"), kl_mean=("kl", "mean"), seeds=("seed", "nunique"),
                        train_min=("train_seconds", lambda s: float(np.mean(s)) / 60),
                        gen_ktokens=("generated_tokens", lambda s: float(np.mean(s)) / 1000))
    if frame["transfer"].notna().any():  # the target's own questions asked in another form, out of the drop
        table.insert(4, "transfer_mean", grouped["transfer"].mean())
    table = table.round(2).assign(kl_mean=table["kl_mean"].round(4))  # a short run's KL is ~1e-3 nats
    return table.assign(flags=[_flags_cell([r for r in records if r.variant == v]) for v in table.index])


def _flags_cell(runs: list) -> str:
    """The diagnostics flags of a variant's runs with the seeds that earned each: "no_signal (2/3 seeds)"."""
    names = sorted({f for r in runs for f in r.flags})
    return "; ".join(f"{n} ({sum(n in r.flags for r in runs)}/{len(runs)} seeds)" for n in names)


def truncation(records: list, tasks: dict[str, Task] | None = None) -> "Any":
    """Per run and task: held-out answers cut off by the task's token budget at the first and the last evaluation,
    read from the run's evaluation log (``evals.jsonl`` in its ``config["out_dir"]``; runs without one are left
    out). A cut-off answer is scored wrong, so a method that makes the model write longer shows a drop there.
    ``tasks``: the tasks as evaluated (``bench.tasks``: a profile's ``max_tokens`` sets their budgets); default
    each task's own budget. A run's ``eval_max_new_tokens`` overrides both."""
    import pandas as pd

    tasks = tasks or {}
    rows = []
    for r in as_records(records):
        log = Path(r.config.get("out_dir") or "") / training.EVALS_LOG
        if not r.config.get("out_dir") or not log.exists():
            continue
        evals = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
        first, last = evals[0]["scores"], evals[-1]["scores"]
        for task in first:
            budget = r.config.get("eval_max_new_tokens") or (tasks.get(task) or get_task(task)).max_new_tokens
            rows.append({"target": r.target, "variant": r.variant, "seed": r.seed, "task": task, "n": first[task]["n"],
                         "start": first[task]["n_truncated"], "end": last[task]["n_truncated"], "budget": budget})
    return pd.DataFrame(rows, columns=["target", "variant", "seed", "task", "n", "start", "end", "budget"])


def longer_budget_frame(records: list) -> "Any":
    """Per run: gain and drop at the evaluation budget and with the answers it cut off (not looping) answered again
    at ``evaluation.LONGER_BUDGET`` x that budget (``RunRecord.longer_budget``), with the answers answered again and
    those still cut off, over every task, at the start and the end. Runs of older results files have none."""
    import pandas as pd

    rows = [{"target": r.target, "variant": r.variant, "seed": r.seed, "factor": r.longer_budget["factor"],
             "gain": r.gain, "gain_longer": r.longer_budget["gain"], "drop": r.drop,
             "drop_longer": r.longer_budget["drop"],
             **{f"{what}_{end}": sum(r.longer_budget[f"{what}_{end}"].values())
                for what in ("rescored", "truncated") for end in ("initial", "final")},
             "n": sum(r.n_eval.values())}
            for r in as_records(records) if r.longer_budget]
    return pd.DataFrame(rows, columns=["target", "variant", "seed", "factor", "gain", "gain_longer", "drop",
                                       "drop_longer", "rescored_initial", "rescored_final", "truncated_initial",
                                       "truncated_final", "n"])


def effects(records: list, comparisons: list[tuple[str, str, str]]) -> "Any":
    """How much each factor changes drop and gain: for each (factor, variant with it, variant without it),
    the per-seed difference without - with, as mean ± std over the seeds both variants ran.
    Rows are sorted by the size of the effect on drop; a positive ``drop_effect`` means the factor reduces
    forgetting."""
    import pandas as pd

    by = {(r.variant, r.seed): r for r in as_records(records)}
    known = sorted({variant for variant, _ in by})
    rows = []
    for factor, with_, without in comparisons:
        for label in (with_, without):
            if label not in known:
                raise ValueError(f"no runs of variant {label!r}; variants: {', '.join(known)}")
        seeds = sorted({s for m, s in by if m == with_} & {s for m, s in by if m == without})
        d_drop = [by[without, s].drop - by[with_, s].drop for s in seeds]
        d_gain = [by[without, s].gain - by[with_, s].gain for s in seeds]
        rows.append({"factor": factor, "with": with_, "without": without,
                     "drop_effect": float(np.mean(d_drop)) if seeds else float("nan"),
                     "drop_effect_std": float(np.std(d_drop, ddof=1)) if len(seeds) > 1 else float("nan"),
                     "gain_effect": float(np.mean(d_gain)) if seeds else float("nan"), "seeds": len(seeds)})
    table = pd.DataFrame(rows)
    return table.reindex(table["drop_effect"].abs().sort_values(ascending=False).index).reset_index(drop=True)


def frontier(table) -> "Any":
    """Which variants of a ``summary`` table no other variant beats: none has at most its compute (generated
    tokens), at most its drop and at least its gain, and is strictly better in one of the three."""
    cost, drop, gain = table["gen_ktokens"], table["drop_mean"], table["gain_mean"]
    def dominated(i):
        return any(cost[j] <= cost[i] and drop[j] <= drop[i] and gain[j] >= gain[i]
                   and (cost[j] < cost[i] or drop[j] < drop[i] or gain[j] > gain[i]) for j in table.index if j != i)
    return table.index.to_series().map(lambda i: not dominated(i)).rename("on_frontier")


def intervals(records: list) -> "Any":
    """One row per run: gain and drop (pp) with their 95 % intervals over the held-out questions
    (``evaluation.paired_intervals``), and whether the gain is clear: its whole interval above zero."""
    import pandas as pd

    rows = []
    for r in as_records(records):
        gain_lo, gain_hi = r.gain_interval or (float("nan"),) * 2
        drop_lo, drop_hi = r.drop_interval or (float("nan"),) * 2
        rows.append({"variant": r.variant, "seed": r.seed, "gain": r.gain, "gain_low": gain_lo,
                     "gain_high": gain_hi, "drop": r.drop, "drop_low": drop_lo, "drop_high": drop_hi,
                     "clear_gain": bool(gain_lo > 0)})
    return pd.DataFrame(rows).set_index(["variant", "seed"]).round(1)


def gain_clarity(records: list) -> str:
    """Which variants gained clearly (interval above zero in every seed), which lost clearly (below zero in every
    seed) and which cannot be told apart from evaluation noise, with their numbers."""
    table = intervals(records)
    if table["gain_low"].isna().any():
        return "Some runs have no per-question results (logs from an older version), so no intervals are shown."

    def runs(label):
        return ", ".join(f"seed {seed}: {row.gain:+.1f} pp, {row.gain_low:+.1f} to {row.gain_high:+.1f}"
                         for (_, seed), row in table.loc[[label]].iterrows())

    labels = list(dict.fromkeys(table.index.get_level_values("variant")))
    gained = [m for m in labels if table.loc[[m], "clear_gain"].all()]
    lost = [m for m in labels if (table.loc[[m], "gain_high"] < 0).all()]
    unclear = [m for m in labels if m not in gained + lost]
    text = ("Gain with its 95 % interval over the held-out questions (evaluation noise only, not the spread over "
            "seeds). ")
    for names, heading in ((gained, "Clear gains (interval above zero)"), (lost, "Clear losses (interval below zero)")):
        if names:
            text += f"{heading}: " + "; ".join(f"**{m}** ({runs(m)})" for m in names) + ". "
    if unclear:
        text += ("Not clear (interval reaching zero, in at least one seed): "
                 + "; ".join(f"**{m}** ({runs(m)})" for m in unclear)
                 + ": at this sample size these changes cannot be told apart from evaluation noise, and the drops of "
                   "variants without a clear gain say little about forgetting at a useful gain.")
    return text.strip()
