"""Log-probabilities and KL, one home: how a model scores completions, for training (per-token log-probs of
the sampled or expert tokens, with shared prompts and packed completions on a CPU), for retention (the initial
model's answers under a trained one) and for the KL to the initial model (full next-token distributions).

A ``Batch`` lays sequences out like generation: prompts left-padded to one column, completions after it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from .generation import cache_kwarg


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


def backbone_and_head(model):
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
    backbone, head = backbone_and_head(model)
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


# ---------------------------------------------------------------------------------------------- KL to the initial model


KL_CHUNK = 256  # completion tokens whose full-vocabulary logits exist at once (x 2 models, fp32)


def completion_hidden(model, sequences: list[tuple[list[int], list[int]]], pad_id: int, device) -> torch.Tensor:
    """The final hidden state at every position that predicts a completion token, all completions
    concatenated in order: (total completion tokens, hidden). The LM head is applied later, a chunk at a time."""
    width = max(len(p) + len(c) for p, c in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    scored = torch.zeros((len(sequences), width), dtype=torch.bool)
    for i, (p, c) in enumerate(sequences):
        seq = p + c
        ids[i, width - len(seq):] = torch.tensor(seq)
        mask[i, width - len(seq):] = 1
        scored[i, width - len(c) - 1: width - 1] = True  # position t predicts token t + 1
    position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
    backbone, _ = backbone_and_head(model)
    hidden = backbone(input_ids=ids.to(device), attention_mask=mask.to(device),
                             position_ids=position_ids.to(device), use_cache=False).last_hidden_state
    return hidden[scored.to(device)]


def head_logprobs(model, hidden: torch.Tensor) -> torch.Tensor:
    """log-softmax over the vocabulary of ``hidden`` rows (float32)."""
    return F.log_softmax(backbone_and_head(model)[1](hidden).float(), dim=-1)


def vocabulary_logprobs(model, sequences: list[tuple[list[int], list[int]]], pad_id: int, device,
                         chunk: int = KL_CHUNK) -> list[torch.Tensor]:
    """Per completion, log-softmax over the vocabulary at each completion position (float32). The LM head
    runs ``chunk`` tokens at a time; the result is (tokens x vocabulary) - ``kl_to_initial`` never keeps it."""
    hidden = completion_hidden(model, sequences, pad_id, device)
    flat = torch.cat([head_logprobs(model, hidden[i:i + chunk]) for i in range(0, hidden.shape[0], chunk)])
    return list(flat.split([len(c) for _, c in sequences]))


def token_kl(ref_model, model, ref_ctx, sequences, ref_hidden: torch.Tensor, pad_id: int, device,
              chunk: int = KL_CHUNK) -> torch.Tensor:
    """KL[ref || model] of the next-token distributions at every completion position: (total tokens,), given
    the reference's final hidden states on these sequences (``KLSamples``). Full-vocabulary logits exist for
    ``chunk`` tokens at a time only, whatever the batch."""
    hidden = completion_hidden(model, sequences, pad_id, device)
    out = []
    for i in range(0, hidden.shape[0], chunk):
        with ref_ctx():
            a = head_logprobs(ref_model, ref_hidden[i:i + chunk])
        b = head_logprobs(model, hidden[i:i + chunk])
        out.append((a.exp() * (a - b)).sum(-1))
    return torch.cat(out)
