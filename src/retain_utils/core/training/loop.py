"""The loop every trainer shares: policy set-up, batches of (prompt, completion) sequences, per-token
log-probabilities, AdamW with warm-up + cosine, clipping and accumulation, evaluation at intervals,
JSON-lines metrics, checkpoint / resume and a NaN guard.

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
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint
from tqdm.auto import tqdm

from ..generation import cache_kwarg, generate
from ..heap import keep_freed_memory, release_freed_memory
from .config import TrainConfig


SUMMED_METRICS = ("generated_tokens", "gen_seconds", "data_gen_seconds")  # per-step totals, not averages


class TrainingDiverged(RuntimeError):
    """The loss or the gradient became NaN / inf; the last good checkpoint and metrics are kept."""


# ---------------------------------------------------------------------------------------------- batches


@dataclass
class Batch:
    """Sequences laid out like generation: prompts left-padded to ``start`` columns, completions after.

    ``mask`` (B, C) marks the completion tokens that are scored; ``extra`` holds per-sequence or
    per-token tensors a method needs (advantages, reference log-probs, ...); ``scale`` turns the sum of
    per-token (or per-sequence) losses of this micro batch into its share of the step's loss.
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    position_ids: torch.Tensor
    start: int
    mask: torch.Tensor
    extra: dict[str, torch.Tensor] = field(default_factory=dict)
    scale: float = 1.0

    @property
    def completion_ids(self) -> torch.Tensor:
        return self.input_ids[:, self.start:]

    def to(self, device) -> "Batch":
        move = lambda t: t.to(device)
        return Batch(move(self.input_ids), move(self.attention_mask), move(self.position_ids), self.start,
                     move(self.mask), {k: move(v) for k, v in self.extra.items()}, self.scale)


def collate(prompts: list[list[int]], completions: list[list[int]], pad_id: int) -> Batch:
    """Left-pad the prompts, right-pad the completions (as in TRL), so every completion starts at one column."""
    if len(prompts) != len(completions):
        raise ValueError(f"{len(prompts)} prompts but {len(completions)} completions")
    p_len, c_len = max(map(len, prompts)), max(max(map(len, completions)), 1)
    n = len(prompts)
    ids = torch.full((n, p_len + c_len), pad_id, dtype=torch.long)
    attn = torch.zeros((n, p_len + c_len), dtype=torch.long)
    for i, (p, c) in enumerate(zip(prompts, completions)):
        ids[i, p_len - len(p):p_len] = torch.tensor(p, dtype=torch.long)
        attn[i, p_len - len(p):p_len] = 1
        if c:
            ids[i, p_len:p_len + len(c)] = torch.tensor(c, dtype=torch.long)
            attn[i, p_len:p_len + len(c)] = 1
    position_ids = (attn.cumsum(-1) - 1).clamp(min=0)
    return Batch(ids, attn, position_ids, p_len, attn[:, p_len:].clone())


def chunks(n: int, size: int) -> list[range]:
    return [range(i, min(i + size, n)) for i in range(0, n, size)]


def micro_batches(prompt_lens: list[int], completion_lens: list[int], max_seqs: int, max_tokens: int,
                  prompts: list[int] | None = None) -> list[list[int]]:
    """Group sequences (sorted by length) into micro batches of at most ``max_seqs`` sequences and at most
    ``max_tokens`` padded token positions per pass (a longer single sequence goes alone): activation memory
    stays bounded whatever the completion lengths. ``prompts`` (an id per sequence) puts the sequences of one
    prompt side by side, so that they share a pass over it (``completion_logprobs``): a shared prompt's
    positions count once."""
    if prompts is None:
        key = lambda i: prompt_lens[i] + completion_lens[i]
    else:
        key = lambda i: (prompt_lens[i], prompts[i], completion_lens[i])
    order = sorted(range(len(prompt_lens)), key=key)
    groups: list[list[int]] = []
    for i in order:
        if groups:
            g = groups[-1] + [i]
            n_prompts = len(g) if prompts is None else len({prompts[j] for j in g})
            padded = n_prompts * max(prompt_lens[j] for j in g) + len(g) * max(completion_lens[j] for j in g)
            if len(g) <= max_seqs and padded <= max_tokens:
                groups[-1] = g
                continue
        groups.append([i])
    return groups


def epoch_order(n: int, index: int, seed: int, salt: int = 0) -> list[int]:
    """Item ``index`` of an endless stream that visits all ``n`` items once per epoch, in a seeded order."""
    epoch, pos = divmod(index, n)
    return int(np.random.default_rng([seed, salt, epoch]).permutation(n)[pos])


# ---------------------------------------------------------------------------------------------- log-probs


def _backbone_and_head(model):
    base = model.get_base_model() if hasattr(model, "get_base_model") else model  # unwrap peft
    return base.base_model, base.get_output_embeddings()


def _recompute_head(device: torch.device) -> bool:
    return device.type != "cpu"


def _chunk_logprobs(hidden, weight, bias, labels, temperature):
    """-> (log p of each label, entropy of each position's distribution; the entropy carries no gradient)."""
    logits = F.linear(hidden, weight, bias).float() / temperature
    norm = torch.logsumexp(logits, dim=-1)
    with torch.no_grad():  # H = logsumexp - E_p[logit], from the logits already in memory
        entropy = norm - (torch.softmax(logits, dim=-1) * logits).sum(-1)
    return logits.gather(-1, labels[:, None]).squeeze(-1) - norm, entropy


def _prompt_groups(batch: Batch) -> tuple[list[int], list[int]]:
    """(the first row of each distinct prompt, each row's distinct-prompt index): a GRPO group's rows share one."""
    firsts, index, rows = [], {}, []
    for i, prompt in enumerate(map(tuple, batch.input_ids[:, :batch.start].tolist())):
        if prompt not in index:
            index[prompt] = len(firsts)
            firsts.append(i)
        rows.append(index[prompt])
    return firsts, rows


def _scoring_hidden(backbone, batch: Batch, share_prompts: bool) -> torch.Tensor:
    """The final hidden states at the positions that predict the completion tokens: (B, C, hidden).

    Rows that repeat a prompt (a group's samples) share one pass over it: the distinct prompts run once and the
    completions run on top of their KV cache, either packed (``_packed_completions``) or, where packing would
    not save positions or cannot be used, one row each with the prompt's cache copied out to every row (the
    rows' gradients add up in it). The logits equal the one-pass ones up to rounding."""
    firsts, rows = _prompt_groups(batch) if share_prompts else ([], [])
    if len(firsts) == len(rows):  # nothing repeats (or sharing is off): one pass over every row
        hidden = backbone(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                          position_ids=batch.position_ids, use_cache=False).last_hidden_state
        return hidden[:, batch.start - 1:-1]  # position t predicts token t + 1
    start, device = batch.start, batch.input_ids.device
    first, row = torch.tensor(firsts, device=device), torch.tensor(rows, device=device)
    kwarg = cache_kwarg(backbone)  # "cache" in newer transformers, "past_key_values" before
    prompt = backbone(input_ids=batch.input_ids[first, :start], attention_mask=batch.attention_mask[first, :start],
                      position_ids=batch.position_ids[first, :start], use_cache=True)
    if _can_pack(backbone, device):
        lengths = batch.attention_mask[:, start:].sum(-1).tolist()
        offsets, widths = [], [0] * len(firsts)  # each row's first column in its prompt's packed row; their widths
        for r, g in enumerate(rows):
            offsets.append(widths[g])
            widths[g] += lengths[r]
        if 0 < len(firsts) * max(widths) < len(rows) * batch.mask.shape[1]:  # fewer positions than a row each
            return _packed_completions(backbone, batch, prompt, first, rows, lengths, offsets, max(widths))
    cache = prompt[kwarg]
    cache.batch_select_indices(row)  # (distinct, heads, P, d) -> (B, heads, P, d), by indexing: differentiable
    rest = backbone(input_ids=batch.input_ids[:, start:], attention_mask=batch.attention_mask,
                    position_ids=batch.position_ids[:, start:], use_cache=True, **{kwarg: cache}).last_hidden_state
    return torch.cat([prompt.last_hidden_state[row, -1:], rest[:, :-1]], dim=1)


def _can_pack(backbone, device: torch.device) -> bool:
    """Packing needs a custom attention mask, which PyTorch's SDPA takes (on a CPU its flash kernel, forward and
    backward). On an accelerator such a mask moves SDPA off its flash kernel, untried on a GPU: rows stay apart."""
    return device.type == "cpu" and getattr(backbone.config, "_attn_implementation", None) == "sdpa"


def _packed_completions(backbone, batch: Batch, prompt, first: torch.Tensor, rows: list[int],
                        lengths: list[int], offsets: list[int], width: int) -> torch.Tensor:
    """A prompt's completions side by side in one row of ``width`` columns on top of its KV cache (row r's from
    column ``offsets[r]``), each attending to the prompt and to its own earlier tokens only (positions restart
    after the prompt for each), so no row pays for padding up to the batch's longest completion: chapter 2's
    GRPO completions (~16 of up to 48 tokens) were two thirds padding. -> (B, C, hidden), as ``_scoring_hidden``."""
    n, start, device = len(first), batch.start, batch.input_ids.device
    ids = torch.zeros((n, width), dtype=torch.long, device=device)  # columns past a row's completions: unused
    position = torch.zeros((n, width), dtype=torch.long, device=device)
    owner = torch.full((n, width), -1, device=device)  # which row's completion each column holds
    prompt_lengths = batch.attention_mask[first, :start].sum(-1)
    for r, (g, o, k) in enumerate(zip(rows, offsets, lengths)):
        ids[g, o:o + k] = batch.input_ids[r, start:start + k]
        position[g, o:o + k] = prompt_lengths[g] + torch.arange(k, device=device)
        owner[g, o:o + k] = r
    column = torch.arange(width, device=device)
    own = (owner[:, :, None] == owner[:, None, :]) & (column[:, None] >= column[None, :])  # (n, S, S), causal
    sees_prompt = batch.attention_mask[first, :start].bool()[:, None, :].expand(n, width, start)
    mask = torch.cat([sees_prompt, own], dim=-1)[:, None]  # (n, 1, S, P + S); every column sees at least itself
    kwarg = cache_kwarg(backbone)
    rest = backbone(input_ids=ids, attention_mask=mask, position_ids=position, use_cache=True,
                    **{kwarg: prompt[kwarg]}).last_hidden_state
    # Completion token j of row r is predicted by the prompt's last position (j = 0) or by its column o_r + j - 1.
    table = torch.cat([prompt.last_hidden_state[:, -1:], rest], dim=1)  # (n, 1 + S, hidden)
    j = torch.arange(batch.mask.shape[1], device=device)
    group = torch.tensor(rows, device=device)[:, None]
    offset = torch.tensor(offsets, device=device)[:, None]
    index = group * (width + 1) + torch.where(j == 0, 0, offset + j).clamp(max=width)  # (B, C); past a row's end: unused
    return table.flatten(0, 1)[index]


def completion_logprobs(model, batch: Batch, temperature: float = 1.0, chunk: int = 256,
                        share_prompts: bool = True, with_entropy: bool = False):
    """log p(token) of every completion token under softmax(logits / temperature): (B, C), 0 where masked;
    with ``with_entropy`` also each scored position's entropy (nats, no gradient): a (logp, entropy) pair.

    Rows with the same prompt share one pass over it (``_scoring_hidden``; ``share_prompts=False``: a pass
    per row). Only scored positions go through the LM head, a chunk at a time. On an accelerator each chunk is
    recomputed in the backward pass, so the (tokens x vocabulary) logits never exist in memory all at once;
    on the CPU memory is ample and the recomputation cost ~6 % of the training passes (same gradients; fp32,
    2-core AMX Xeon, benchmarks/PROFILE.md).
    """
    backbone, head = _backbone_and_head(model)
    hidden = _scoring_hidden(backbone, batch, share_prompts)
    mask = batch.mask.bool()
    h, labels = hidden[mask], batch.completion_ids[mask]
    parts, entropies = [], []
    recompute = torch.is_grad_enabled() and _recompute_head(h.device)
    for r in chunks(h.shape[0], chunk):
        args = (h[r.start:r.stop], head.weight, head.bias, labels[r.start:r.stop], temperature)
        logp, entropy = checkpoint(_chunk_logprobs, *args, use_reentrant=False) if recompute else _chunk_logprobs(*args)
        parts.append(logp)
        entropies.append(entropy)
    flat = torch.cat(parts) if parts else hidden.new_zeros(0, dtype=torch.float32)
    full = lambda values: torch.zeros(mask.shape, dtype=values.dtype, device=values.device).masked_scatter(mask, values)
    if with_entropy:
        return full(flat), full(torch.cat(entropies) if entropies else flat.detach())
    return full(flat)


def kl_penalty(logp: torch.Tensor, ref_logp: torch.Tensor, estimator: str) -> torch.Tensor:
    """Per-token estimate of KL(pi || pi_ref) from tokens sampled from pi."""
    d = logp - ref_logp
    if estimator == "sq":
        return 0.5 * d**2
    if estimator == "k3":
        return torch.exp(-d) + d - 1
    raise ValueError(f"unknown kl_estimator {estimator!r}; valid: sq, k3")


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
