"""The loop every trainer shares: policy set-up, AdamW with the method's schedule (constant, or warm-up + cosine),
clipping and accumulation, evaluation at intervals, JSON-lines metrics, checkpoint / resume and a NaN guard.
Batches of (prompt, completion) sequences and their log-probabilities come from ``core.logprobs``.

A method supplies two functions: ``step_data(run, step, accum_index) -> (micro_batches, metrics)`` (what
to train on; GRPO samples rollouts here) and ``loss(run, micro_batch) -> (loss, metrics)``. Each micro
batch's loss is already scaled so that summing over the micro batches of a step gives the step's loss.
"""

from __future__ import annotations

import copy
import json
import math
import os
import pickle
import time
from contextlib import nullcontext
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from ..generation import generate
from ..heap import keep_freed_memory, release_freed_memory
from ..logprobs import Batch, completion_logprobs
from .config import TrainConfig


SUMMED_METRICS = ("generated_tokens", "gen_seconds", "data_gen_seconds")  # per-step totals, not averages


class TrainingDiverged(RuntimeError):
    """The loss or the gradient became NaN / inf; the last good checkpoint and metrics are kept."""


# ---------------------------------------------------------------------------------------------- batches


def epoch_order(n: int, index: int, seed: int, salt: int = 0) -> list[int]:
    """Item ``index`` of an endless stream that visits all ``n`` items once per epoch, in a seeded order."""
    epoch, pos = divmod(index, n)
    return int(np.random.default_rng([seed, salt, epoch]).permutation(n)[pos])


# ---------------------------------------------------------------------------------------------- the run


@dataclass
class Run:
    """What a method's functions see: the config, the models, the tasks and examples, and ``data``:
    the method's own state (Self-SFT's filtered samples, reused rollouts), saved with each checkpoint."""

    config: TrainConfig
    policy: torch.nn.Module
    tokenizer: Any
    tasks: dict
    train_examples: list
    eval_examples: dict
    sampler: torch.nn.Module  # generates rollouts and evaluation answers: a bf16 copy of the policy or itself
    reference: torch.nn.Module | None  # frozen initial policy; None with LoRA (adapters disabled instead)
    device: torch.device
    autocast_dtype: torch.dtype | None
    data: dict = field(default_factory=dict)
    progress: bool = True
    initial_scores: dict | None = None  # {task: TaskScore dict} of the initial model, if already measured
    initial_sampler: torch.nn.Module | None = None  # frozen copy of the sampler at step 0 (stale rollouts)

    @property
    def pad_id(self) -> int:
        tok = self.tokenizer
        return tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id

    def autocast(self):
        if self.autocast_dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    @torch.no_grad()
    def reference_logprobs(self, batch: Batch, temperature: float = 1.0) -> torch.Tensor:
        with self.autocast():
            if self.reference is not None:
                return completion_logprobs(self.reference, batch, temperature)
            with self.policy.disable_adapter():
                return completion_logprobs(self.policy, batch, temperature)

    def generate(self, messages, *, initial: bool = False, **kw):
        """Sample from the current policy, or (``initial``) from the initial model: stale rollouts."""
        with self.autocast():
            if not initial:
                return generate(self.sampler, self.tokenizer, messages, **kw)
            if self.reference is None:  # LoRA: the base model with its adapters off is the initial model
                with self.policy.disable_adapter():
                    return generate(self.policy, self.tokenizer, messages, **kw)
            return generate(self.initial_sampler, self.tokenizer, messages, **kw)

    def sync_sampler(self) -> None:
        if self.sampler is not self.policy:
            with torch.no_grad():
                for s, p in zip(self.sampler.parameters(), self.policy.parameters()):
                    s.copy_(p)


def sample_reward(run: Run, example, completion) -> float:
    """The verifier's 0/1 reward of one sampled answer (RL rewards, Self-SFT's filter); 0 when the answer was cut
    off before EOS and ``require_eos`` (the authors' rule: otherwise a method is rewarded for not stopping)."""
    if run.config.require_eos and not completion.finished:
        return 0.0
    return run.tasks[example.task].reward(example, completion.text)


PRECISION_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


def prepare_policy(model, config: TrainConfig):
    """-> (policy, sampler, reference, autocast dtype).

    Full fine-tuning: fp32 master weights under 16-bit autocast where ``models.default_dtype`` picks one (bf16
    on Ampere+, fp16 with loss scaling before Ampere, bf16 on a CPU where $RETAIN_UTILS_DTYPE asks), a frozen
    fp32 copy as the reference, a 16-bit copy for sampling (synced after every step). LoRA: fp32 adapters on the frozen 16-bit
    base; the policy samples itself and the reference is the base with adapters disabled (no copy)."""
    from ..models import LORA_TARGETS, cast_parameters, default_dtype

    device = next(model.parameters()).device
    if config.lora_rank == "auto":  # train() resolves it first; direct callers get the same choice
        from .memory import fit_to_device

        config = fit_to_device(model, config)
    low = default_dtype(device) if config.precision == "auto" else PRECISION_DTYPES[config.precision]
    autocast_dtype = None if low == torch.float32 else low
    if config.lora_rank > 0:
        from peft import LoraConfig, get_peft_model

        if hasattr(model, "peft_config"):
            raise ValueError("the model already has LoRA adapters; pass the base model and set lora_rank")
        names = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
        targets = [t for t in LORA_TARGETS if t in names]
        if not targets:
            raise ValueError(f"lora_rank={config.lora_rank} but the model has none of the LoRA target modules "
                             f"{', '.join(LORA_TARGETS)}; use lora_rank=0 (full fine-tuning)")
        model = cast_parameters(model, low)
        policy = get_peft_model(model, LoraConfig(
            r=config.lora_rank, lora_alpha=config.lora_alpha or 2 * config.lora_rank,
            target_modules=targets, lora_dropout=0.0, task_type="CAUSAL_LM"))
        for p in policy.parameters():
            if p.requires_grad:
                p.data = p.data.float()
        return policy, policy, None, autocast_dtype
    # The reference keeps the policy's own dtype so that both compute identically at step 0 (KL exactly 0);
    # the sampler is a bf16 copy, as bf16 decoding is ~2x faster than fp32 weights under autocast.
    sampler = (cast_parameters(copy.deepcopy(model), low).eval().requires_grad_(False)
               if low != torch.float32 else None)
    policy = model.float().requires_grad_(True)
    reference = copy.deepcopy(policy).eval().requires_grad_(False)
    return policy, sampler if sampler is not None else policy, reference, autocast_dtype


def lr_multiplier(step: int, steps: int, warmup_frac: float, schedule: str = "cosine") -> float:
    """``cosine``: linear warm-up over the first ``ceil(warmup_frac * steps)`` steps, then cosine decay towards 0;
    ``constant``: 1 at every step (the authors' RL)."""
    if schedule == "constant":
        return 1.0
    warmup = math.ceil(warmup_frac * steps)
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * progress))


@torch.no_grad()
def evaluate_tasks(run: Run) -> dict[str, dict]:
    """Greedy accuracy on every task's held-out examples, exactly as ``evaluation.evaluate`` measures the
    baseline (by default each task's own token budget), so step 0 of every run equals the initial model's scores."""
    from ..evaluation import evaluate

    with run.autocast():
        scores = evaluate(run.sampler, run.tokenizer, run.eval_examples, tasks=run.tasks,
                          max_new_tokens=run.config.eval_max_new_tokens, batch_size=run.config.eval_batch_size)
    return {name: s.to_dict() for name, s in scores.items()}


# ---------------------------------------------------------------------------------------------- checkpoints


def _trainable_state(policy) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in policy.named_parameters() if p.requires_grad}


def _plain(value):
    """``value`` with every ``Batch`` (GRPO's reused rollouts) as a tagged dict of tensors: a checkpoint holds
    tensors and plain data only, so it loads with ``torch.load(weights_only=True)``, which runs no code."""
    if isinstance(value, Batch):
        return {"__batch__": {f.name: _plain(getattr(value, f.name)) for f in fields(Batch)}}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    return value


def _restore(value):
    """The inverse of ``_plain``."""
    if isinstance(value, dict):
        if set(value) == {"__batch__"}:
            return Batch(**{k: _restore(v) for k, v in value["__batch__"].items()})
        return {k: _restore(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_restore(v) for v in value)
    return value


def read_checkpoint(path: Path) -> dict:
    """A checkpoint's contents, read with ``weights_only=True``: tensors and plain data, never code (run folders
    may live on a shared drive). A file holding anything else, or not a checkpoint at all, is a ValueError
    naming it."""
    try:
        state = torch.load(path, weights_only=True, map_location="cpu")
    except (pickle.UnpicklingError, RuntimeError, EOFError, AttributeError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(f"{path} is not a checkpoint this package wrote (it holds more than tensors and plain "
                         f"data, or is cut short: {first[:160]}); it was not loaded: delete it to start the run "
                         "afresh") from None
    if not isinstance(state, dict) or not {"step", "config", "policy", "optimizer", "history"} <= set(state):
        raise ValueError(f"{path} is not a checkpoint this package wrote (it lacks step, config, policy, optimizer "
                         "or history); delete it to start the run afresh")
    return state


def save_checkpoint(path: Path, run: Run, optimizer, step: int, history: dict, scaler=None) -> None:
    """One file, written beside and renamed into place: a crash never leaves half a checkpoint. Tensors and
    plain data only (``read_checkpoint``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {"step": step, "config": run.config.to_dict(), "policy": _trainable_state(run.policy),
             "optimizer": optimizer.state_dict(), "data": _plain(run.data), "history": history,
             "torch_rng": torch.get_rng_state(), "scaler": scaler.state_dict() if scaler is not None else None}
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path, run: Run, optimizer, scaler=None) -> tuple[int, dict]:
    state = read_checkpoint(path)
    ignore = {"out_dir", "progress"}
    saved = {k: v for k, v in state["config"].items() if k not in ignore}
    now = {k: v for k, v in run.config.to_dict().items() if k not in ignore}
    if saved != now:
        diff = sorted(k for k in now if saved.get(k) != now[k])
        raise ValueError(f"{path} was written by a run with a different config ({', '.join(diff)}); "
                         f"use another out_dir or the same config")
    params = dict(run.policy.named_parameters())
    with torch.no_grad():
        for name, value in state["policy"].items():
            params[name].copy_(value)
    optimizer.load_state_dict(state["optimizer"])
    if scaler is not None and state.get("scaler"):
        scaler.load_state_dict(state["scaler"])
    run.data = _restore(state["data"])
    torch.set_rng_state(state["torch_rng"])
    run.sync_sampler()
    return state["step"], state["history"]


def _rewrite_jsonl(path: Path, rows: list[dict]) -> None:
    with open(path, "w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")


# ---------------------------------------------------------------------------------------------- the loop


CHECKPOINT = "checkpoint.pt"  # in config.out_dir: weights, optimizer and history, for a resume
EVALS_LOG = "evals.jsonl"  # in config.out_dir: one line per evaluation (its full TaskScores)


def fit(run: Run, step_data: Callable, loss_fn: Callable) -> dict:
    """Train ``run.policy`` for ``config.steps`` optimizer steps; returns the history
    {"steps": [per-step metrics], "evals": [{"step", "accuracy": {task: acc}}], "status"}."""
    cfg = run.config
    if run.device.type == "cpu":
        keep_freed_memory()  # each step's large tensors reuse the last step's memory (heap.py)
    params = [p for p in run.policy.parameters() if p.requires_grad]
    # fused: one kernel per step and no full-size temporaries (the foreach default needs several)
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, betas=(cfg.adam_beta1, cfg.adam_beta2),
                                  weight_decay=cfg.weight_decay, fused=True)
    # fp16's range is too narrow for small gradients: scale the loss, unscale before clipping, and skip
    # (and halve the scale on) a step whose gradient overflowed. A no-op under bf16 / fp32.
    scaler = torch.amp.GradScaler(run.device.type, enabled=run.autocast_dtype == torch.float16)
    out = Path(cfg.out_dir) if cfg.out_dir else None
    ckpt = out / CHECKPOINT if out else None
    history: dict = {"steps": [], "evals": [], "status": "running"}
    start = 0
    if ckpt is not None and ckpt.exists():
        start, history = load_checkpoint(ckpt, run, optimizer, scaler)
        if run.progress:
            print(f"resuming {cfg.run_name} from step {start} ({ckpt})")
    if out is not None:  # the logs say exactly what the checkpoint says (a crash may have left later lines)
        out.mkdir(parents=True, exist_ok=True)
        _rewrite_jsonl(out / "metrics.jsonl", history["steps"])
        _rewrite_jsonl(out / EVALS_LOG, history["evals"])

    def log(kind: str, row: dict) -> None:
        history[kind].append(row)
        if out is not None:
            with open(out / (EVALS_LOG if kind == "evals" else "metrics.jsonl"), "a") as f:
                f.write(json.dumps(row) + "\n")

    def run_eval(step: int) -> None:
        if run.eval_examples:
            t0 = time.time()
            scores = run.initial_scores if step == 0 and run.initial_scores else evaluate_tasks(run)
            if run.device.type == "cpu":
                release_freed_memory()  # the evaluation's KV caches: training steps allocate other sizes
            log("evals", {"step": step, "accuracy": {k: v["accuracy"] for k, v in scores.items()},
                          "scores": scores, "seconds": time.time() - t0})

    if start == 0 and not history["evals"]:
        run_eval(0)
    bar = tqdm(total=cfg.steps, initial=start, desc=cfg.run_name, disable=not run.progress)
    for step in range(start, cfg.steps):
        t0 = time.time()
        for group in optimizer.param_groups:
            group["lr"] = cfg.lr * lr_multiplier(step, cfg.steps, cfg.warmup_frac, cfg.lr_schedule)
        optimizer.zero_grad(set_to_none=True)
        metrics: dict[str, float] = {}
        loss_total, n_tokens, t_data = 0.0, 0, 0.0
        for accum in range(cfg.grad_accum):
            td = time.time()
            micro_batches, data_metrics = step_data(run, step, accum)
            t_data += time.time() - td
            for k, v in data_metrics.items():  # averaged over the accumulated batches, counts summed
                metrics[k] = metrics.get(k, 0.0) + (v if k in SUMMED_METRICS else v / cfg.grad_accum)
            for mb in micro_batches:
                mb = mb.to(run.device)
                with run.autocast():
                    loss, loss_metrics = loss_fn(run, mb)
                scaler.scale(loss / cfg.grad_accum).backward()
                loss_total += loss.item() / cfg.grad_accum
                n_tokens += int(mb.attention_mask.sum())
                for k, v in loss_metrics.items():
                    metrics[k] = metrics.get(k, 0.0) + v / cfg.grad_accum
        for p in params:  # a step whose every sequence was skipped still is an (all-zero gradient) Adam step
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        scaler.unscale_(optimizer)
        grad_norm = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip if cfg.grad_clip > 0 else float("inf"))
        overflow = scaler.is_enabled() and not torch.isfinite(grad_norm)  # the scaler skips this step
        if not (math.isfinite(loss_total) and (overflow or torch.isfinite(grad_norm))):
            history["status"] = f"diverged at step {step}"
            bar.close()
            where = (f"last good checkpoint: {ckpt} (step {read_checkpoint(ckpt)['step']})"
                     if ckpt is not None and ckpt.exists() else "no checkpoint was written")
            err = TrainingDiverged(
                f"{cfg.run_name}: non-finite loss ({loss_total}) or gradient norm ({float(grad_norm)}) at step "
                f"{step}; training stopped. {where}; metrics of steps < {step} are kept"
                + (f" in {out / 'metrics.jsonl'}" if out else "") + ". Try a lower lr.")
            err.history = history
            raise err
        scaler.step(optimizer)
        scaler.update()
        run.sync_sampler()
        if scaler.is_enabled():
            metrics.update(loss_scale=scaler.get_scale(), overflow_skipped=float(overflow))
        seconds = time.time() - t0
        row = {"step": step + 1, "loss": loss_total, "lr": optimizer.param_groups[0]["lr"],
               "grad_norm": float(grad_norm) if torch.isfinite(grad_norm) else None, "seconds": seconds, "data_seconds": t_data,
               "train_tokens_per_s": n_tokens / max(seconds - t_data, 1e-9), **metrics}
        log("steps", row)
        bar.update(1)
        bar.set_postfix({k: f"{row[k]:.3g}" for k in ("loss", "reward") if k in row})
        done = step + 1
        if done % cfg.eval_every == 0 or done == cfg.steps:
            run_eval(done)
        if ckpt is not None and ((cfg.checkpoint_every and done % cfg.checkpoint_every == 0) or done == cfg.steps):
            save_checkpoint(ckpt, run, optimizer, done, history, scaler)
    bar.close()
    history["status"] = "finished"
    return history
