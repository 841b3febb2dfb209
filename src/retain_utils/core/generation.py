"""Batched sampling from a chat model: the one place that turns prompts into completions.

Evaluation (greedy) and the trainers' rollouts (temperature sampling) both call ``generate``. It is a
plain KV-cache decode loop with left padding rather than ``model.generate``: the prompts' shared opening
(the chat template's system prompt) is prefilled once per batch and a prompt shared by several samples once,
the KV cache is preallocated and written in place, finished rows leave the batch, rows may carry budgets of
their own (several tasks' questions in one batch), and sampling is reproducible row by row: every (prompt,
sample) pair draws from its own seeded generator on the model's device, so in fp32 a sample does not depend
on the batch size or on which other prompts share its batch (same device, same numbers), and greedy tokens are
identical to ``model.generate``'s; on the book's evaluation (150 ifeval prompts, 128 tokens, one batch) it is
1.6x faster on a 2-core AMX Xeon, on 32 prompts x 32 tokens 1.2x (benchmarks/PROFILE.md: both are bound by
the model's matmuls, and every decode step reads all weights). In bf16 rounding follows a batch's padding,
so some answers change with the batch they were decoded in, ``model.generate``'s too (benchmarks/PROFILE.md);
the same batches still give the same answers.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

from .repetition import is_looping
from .validate import check_int, check_real


@dataclass
class Completion:
    """One sampled answer. ``completion_ids`` ends with the EOS token when ``finished``."""

    prompt_index: int
    prompt_ids: list[int]
    completion_ids: list[int]
    text: str
    finished: bool


def eos_token_ids(model, tokenizer) -> set[int]:
    """Every token that ends an answer: the tokenizer's EOS plus the model's generation-config EOS list."""
    ids = set()
    for source in (tokenizer.eos_token_id, getattr(getattr(model, "generation_config", None), "eos_token_id", None)):
        if source is None:
            continue
        ids.update([source] if isinstance(source, int) else source)
    if not ids:
        raise ValueError("neither the tokenizer nor the model's generation config names an EOS token")
    return ids


def encode_prompts(tokenizer, messages_list: list[list[dict]]) -> list[list[int]]:
    """Chat-template each conversation, ending with the assistant header the answer continues."""
    prompts = []
    for messages in messages_list:
        ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
        if not isinstance(ids, list):  # transformers >= 5 returns a BatchEncoding
            ids = ids["input_ids"]
        prompts.append(list(ids))
    return prompts


def _row_generator(seed: int, prompt_index: int, sample_index: int, device: torch.device) -> torch.Generator:
    """The noise source of one (prompt, sample) row, on the model's device (no per-token host copies).
    On the CPU these are the same numbers as always; another device's generator gives other, equally
    reproducible, numbers (a sample is reproducible per device)."""
    state = np.random.SeedSequence([seed, prompt_index, sample_index]).generate_state(2, dtype=np.uint64)
    return torch.Generator(device=device).manual_seed(int(state[0] >> np.uint64(1)))


class PreallocatedLayer(DynamicLayer):
    """A layer's KV cache written in place into a buffer sized for the whole answer at prefill.

    ``DynamicLayer`` concatenates every token's keys and values onto a copy of the whole cache: on an idle
    2-core AMX Xeon that copying was a tenth of a decode step at 32 rows (benchmarks/PROFILE.md). Here
    ``keys`` and ``values`` are views of the filled part of the buffer, the same numbers in the same shape, so
    attention computes exactly what it did over the concatenated cache.
    """

    def __init__(self, capacity: int):
        super().__init__()
        self.capacity = capacity  # positions the buffer holds beyond the first update's

    def update(self, key_states, value_states, *args, **kwargs):
        if not self.is_initialized:  # the (first) prefill: allocate for it and all that follows
            self.device, self.is_initialized = key_states.device, True
            self._store(key_states, value_states, key_states.shape[-2] + self.capacity)
            return self.keys, self.values
        n, add = self.keys.shape[-2], key_states.shape[-2]
        if n + add > self._k.shape[-2]:  # more tokens than planned: grow (never on generate's own path)
            self._store(self.keys, self.values, n + add + self.capacity)
        self._k[:, :, n:n + add] = key_states
        self._v[:, :, n:n + add] = value_states
        self.keys, self.values = self._k[:, :, :n + add], self._v[:, :, :n + add]
        return self.keys, self.values

    def _store(self, keys, values, length: int) -> None:
        """A fresh buffer of ``length`` positions holding ``keys``/``values`` at its start."""
        n = keys.shape[-2]
        self._k = keys.new_empty((*keys.shape[:2], length, keys.shape[-1]))
        self._v = values.new_empty((*values.shape[:2], length, values.shape[-1]))
        self._k[:, :, :n], self._v[:, :, :n] = keys, values
        self.keys, self.values = self._k[:, :, :n], self._v[:, :, :n]

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        """Keep rows ``indices``: only the filled part is copied, into a buffer with the same room left."""
        if self.get_seq_length() > 0:
            self._store(self.keys[indices], self.values[indices], self._k.shape[-2])


def _new_cache(model, capacity: int) -> DynamicCache:
    """A KV cache whose ordinary layers are preallocated for ``capacity`` new tokens (others stay dynamic)."""
    try:
        cache = DynamicCache(config=model.config)
    except TypeError:  # transformers < 4.56
        return DynamicCache()
    cache.layers = [PreallocatedLayer(capacity) if type(layer) is DynamicLayer else layer for layer in cache.layers]
    return cache


def cache_kwarg(model) -> str:
    """Newer transformers call the KV-cache argument ``cache`` (``past_key_values`` is deprecated)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "cache" if "cache" in inspect.signature(type(base).forward).parameters else "past_key_values"


# On the CPU a host sync is free, so the loop looks for finished rows after every token; on an accelerator
# every SYNC_EVERY tokens, so the device runs ahead instead of waiting on the host each token. Finished rows
# leave the batch once they are 1 / COMPACT_FRACTION of it (at once in batches under that size): leaving
# copies the whole cache, while a finished row left in costs one row of a step.
SYNC_EVERY = 8
COMPACT_FRACTION = 8
# With stop_loops, rows are looked at for a loop every this many tokens: a loop of period <= repetition.LOOP_N shows
# after LOOP_N * LOOP_REPEATS + LOOP_N tokens, so a looping answer stops within this many tokens of that.
LOOP_CHECK_EVERY = 16


def _sync_every(device: torch.device) -> int:
    return 1 if device.type == "cpu" else SYNC_EVERY


# A batch whose prompts open with the same tokens (the chat template's system prompt: 24 of SmolLM2's ~55)
# prefills that prefix once; shorter shared openings are not worth the extra forward call.
MIN_SHARED_PREFIX = 8


def shared_prefix_length(prompts: list[list[int]]) -> int:
    """Tokens every prompt opens with, leaving each at least one token of its own (whose logits start the answer)."""
    first, n = prompts[0], min(map(len, prompts)) - 1
    for i in range(n):
        if any(p[i] != first[i] for p in prompts):
            return i
    return max(n, 0)


def _prefill(model, prompts: list[list[int]], pad_id: int, max_new_tokens: int, device):
    """Prefill ``prompts`` (one row each) -> (cache, last logits, attention mask, last positions).

    Rows are laid out [shared prefix | left padding | own tokens]: the prefix is computed once for the batch
    and copied to every row, the rest left-padded. Position ids skip the padding, so every token sees the
    same positions and the same unmasked keys as in a plain left-padded prefill."""
    shared = shared_prefix_length(prompts) if len(prompts) > 1 else 0
    shared = shared if shared >= MIN_SHARED_PREFIX else 0
    own = [p[shared:] for p in prompts]
    width = max(map(len, own))
    input_ids = torch.full((len(own), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(own), shared + width), dtype=torch.long)
    mask[:, :shared] = 1
    for i, p in enumerate(own):
        input_ids[i, width - len(p):] = torch.tensor(p)
        mask[i, shared + width - len(p):] = 1
    position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
    cache = _new_cache(model, max_new_tokens + (width if shared else 0))  # room beyond the first forward's tokens
    kw = {cache_kwarg(model): cache, "use_cache": True}
    if shared:
        model(input_ids=torch.tensor([prompts[0][:shared]], device=device), attention_mask=mask[:1, :shared].to(device),
              position_ids=position_ids[:1, :shared].to(device), logits_to_keep=1, **kw)
        cache.batch_select_indices(torch.zeros(len(own), dtype=torch.long, device=device))
    mask, position_ids = mask.to(device), position_ids.to(device)
    out = model(input_ids=input_ids.to(device), attention_mask=mask, position_ids=position_ids[:, shared:],
                logits_to_keep=1, **kw)
    return cache, out.logits[:, -1], mask, position_ids[:, -1]


@torch.inference_mode()
def _decode_batch(model, prompts, rows, *, budgets, temperature, seed, eos, pad_id, stop_loops=False):
    """Decode ``rows`` = [(prompt_index, sample_index)] together, each for at most its prompt's budget
    (``budgets[prompt_index]`` new tokens); returns {row: (ids, finished)}. With ``stop_loops`` a row whose
    tokens loop (``repetition.is_looping``, looked for every ``LOOP_CHECK_EVERY`` tokens) stops there, unfinished."""
    device = next(model.parameters()).device
    max_new_tokens = max(budgets[p] for p, _ in rows)
    budget = torch.tensor([budgets[p] for p, _ in rows], device=device)
    unique = sorted({p for p, _ in rows})
    cache, logits, mask, position = _prefill(model, [prompts[p] for p in unique], pad_id, max_new_tokens, device)
    # Several samples of one prompt share its prefill: gather the cache rows out to one row per sample.
    expand = torch.tensor([unique.index(p) for p, _ in rows], device=device)
    cache.batch_select_indices(expand)
    logits, mask, position = logits[expand].float(), mask[expand], position[expand]
    sample = temperature > 0
    generators = [_row_generator(seed, p, s, device) for p, s in rows] if sample else None
    noise = torch.empty((len(rows), logits.shape[-1]), device=device) if sample else None
    eos_ids = torch.tensor(sorted(eos), device=device)
    tokens = torch.full((len(rows), max_new_tokens), pad_id, dtype=torch.long, device=device)
    batch_rows = torch.arange(len(rows), device=device)  # row (index into rows) of each batch position
    alive = torch.ones(len(rows), dtype=torch.bool, device=device)  # no EOS yet
    sync_every = _sync_every(device)
    stopped: dict[int, int] = {}  # row (index into rows) -> tokens kept, for rows stopped because they loop
    for step in range(max_new_tokens):
        if sample:  # Gumbel-max with each row's own generator = sampling from softmax(logits / T)
            u = noise[: len(generators)]
            for i, g in enumerate(generators):
                torch.rand(u.shape[-1], generator=g, device=device, out=u[i])
            next_ids = (logits / temperature - u.log_().neg_().log_()).argmax(-1)
        else:
            next_ids = logits.argmax(-1)
        tokens[batch_rows, step] = next_ids
        alive &= ~torch.isin(next_ids, eos_ids) & (budget[batch_rows] > step + 1)  # EOS, or its budget spent
        if step == max_new_tokens - 1:
            break
        if (step + 1) % sync_every == 0:  # drop finished rows from the batch and the cache
            if stop_loops and (step + 1) % LOOP_CHECK_EVERY == 0:
                for i in alive.nonzero().squeeze(1).tolist():
                    row = int(batch_rows[i])
                    if is_looping(tokens[row, : step + 1].tolist()):
                        alive[i] = False
                        stopped[row] = step + 1
            keep = alive.nonzero().squeeze(1)
            if keep.numel() == 0:
                break
            if alive.numel() - keep.numel() >= max(1, alive.numel() // COMPACT_FRACTION):
                cache.batch_select_indices(keep)
                next_ids, mask, position = next_ids[keep], mask[keep], position[keep]
                batch_rows, alive = batch_rows[keep], alive[keep]
                if sample:
                    generators = [generators[i] for i in keep.tolist()]
        mask = torch.cat([mask, mask.new_ones((len(batch_rows), 1))], dim=-1)
        position = position + 1
        out = model(input_ids=next_ids[:, None], attention_mask=mask, position_ids=position[:, None],
                    use_cache=True, **{cache_kwarg(model): cache})
        logits = out.logits[:, -1].float()
    done: dict[tuple[int, int], tuple[list[int], bool]] = {}
    for k, (row, ids) in enumerate(zip(rows, tokens.tolist())):  # a row without EOS decoded its whole budget
        ids = ids[: stopped.get(k, budgets[row[0]])]
        end = next((i for i, t in enumerate(ids) if t in eos), None)
        done[row] = (ids, False) if end is None else (ids[: end + 1], True)
    return done


def generate(
    model,
    tokenizer,
    messages_list: list[list[dict]],
    *,
    max_new_tokens: int | list[int],
    temperature: float = 0.0,
    num_samples: int = 1,
    batch_size: int = 16,
    seed: int = 0,
    progress: bool = False,
    stop_loops: bool = False,
) -> list[Completion]:
    """Answer every conversation ``num_samples`` times; greedy when ``temperature == 0``.

    ``stop_loops``: an answer that loops (``repetition.is_looping``) stops where that is seen, unfinished, instead
    of repeating itself to its budget (evaluation: a greedy loop repeats, and its budget costs time).

    Returns prompt 0's samples, then prompt 1's, ...; in fp32 a sampled answer depends only on (seed, prompt
    index, sample index), not on ``batch_size`` (in bf16 a few change with the batch: see the module's
    docstring). ``batch_size`` counts sequences decoded together.
    ``max_new_tokens``: one budget, or one per conversation (several tasks' questions in one batch: the
    model's weights are read once per decode step for all of them).
    """
    budgets = max_new_tokens if isinstance(max_new_tokens, (list, tuple)) else None
    for b in budgets if budgets is not None else [max_new_tokens]:
        check_int("max_new_tokens", b, 1)
    check_int("num_samples", num_samples, 1)
    check_int("batch_size", batch_size, 1)
    check_int("seed", seed, 0)
    check_real("temperature", temperature)
    if temperature < 0:
        raise ValueError(f"temperature must be a finite number >= 0 (0 = greedy), got {temperature}")
    kind = type(messages_list).__name__
    messages_list = None if isinstance(messages_list, (str, dict)) else list(messages_list)  # a generator once
    if messages_list is None or not all(isinstance(m, (list, tuple)) for m in messages_list):
        raise TypeError("messages_list must be a list of conversations (each a list of {'role', 'content'} dicts), "
                        f"got {kind}")
    eos = eos_token_ids(model, tokenizer)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(eos)
    if budgets is not None and len(budgets) != len(messages_list):
        raise ValueError(f"max_new_tokens lists {len(budgets)} budgets for {len(messages_list)} conversations")
    budgets = list(budgets) if budgets is not None else [max_new_tokens] * len(messages_list)
    prompts = encode_prompts(tokenizer, messages_list)
    limit = getattr(getattr(model, "config", None), "max_position_embeddings", None)
    longest = max(range(len(prompts)), key=lambda p: len(prompts[p]) + budgets[p], default=None)
    if isinstance(limit, int) and longest is not None and len(prompts[longest]) + budgets[longest] > limit:
        raise ValueError(f"max_new_tokens={budgets[longest]} plus a prompt of {len(prompts[longest])} tokens exceeds "
                         f"the model's context of {limit} tokens (config.max_position_embeddings): give "
                         f"max_new_tokens <= {limit - len(prompts[longest])}")
    # Largest budgets, then longest prompts first, and a prompt's samples side by side: batches of like
    # budgets, little padding, shared prefills.
    rows = sorted(((p, s) for p in range(len(prompts)) for s in range(num_samples)),
                  key=lambda r: (-budgets[r[0]], -len(prompts[r[0]]), r[0], r[1]))
    batches = [rows[i:i + batch_size] for i in range(0, len(rows), batch_size)]
    was_training = model.training
    model.eval()
    results: dict[tuple[int, int], tuple[list[int], bool]] = {}
    try:
        for batch in tqdm(batches, desc="generate", disable=not progress):
            results.update(_decode_batch(model, prompts, batch, budgets=budgets, temperature=temperature,
                                         seed=seed, eos=eos, pad_id=pad_id, stop_loops=stop_loops))
    finally:
        model.train(was_training)
    completions = []
    for p in range(len(prompts)):
        for s in range(num_samples):
            ids, finished = results[(p, s)]
            completions.append(Completion(p, prompts[p], ids, tokenizer.decode(ids, skip_special_tokens=True), finished))
    return completions
