"""The decode loop's speed work changes no output: greedy and sampled tokens equal those recorded before it
(tests/data/generation_golden.json, made with the previous loop), and sampling stays reproducible row by row."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from retain_utils.core import generation
from retain_utils.core.generation import generate

from test_generation import PROMPTS

GOLDEN = json.loads((Path(__file__).parent / "data" / "generation_golden.json").read_text())


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_outputs_equal_the_previous_loop(tiny, name):
    model, tok = tiny
    case = GOLDEN[name]
    out = generate(model, tok, PROMPTS, **case["kwargs"])
    assert [c.completion_ids for c in out] == case["completion_ids"]
    assert [c.finished for c in out] == case["finished"]


def test_row_reproducible_whatever_the_batch(tiny):
    """A (seed, prompt, sample) row gives the same tokens alone, in any batch, and among other prompts."""
    model, tok = tiny
    kw = dict(max_new_tokens=9, temperature=0.9, seed=4)
    full = generate(model, tok, PROMPTS, num_samples=3, batch_size=12, **kw)
    for batch_size in (1, 5):
        assert [c.completion_ids for c in generate(model, tok, PROMPTS, num_samples=3, batch_size=batch_size, **kw)] \
            == [c.completion_ids for c in full]
    # prompt 2 alone is prompt index 0 there: its rows depend on the index, so compare with prompt 2 at index 0
    moved = generate(model, tok, [PROMPTS[2], PROMPTS[0]], num_samples=3, batch_size=6, **kw)
    first = generate(model, tok, [PROMPTS[2]], num_samples=3, batch_size=1, **kw)
    assert [c.completion_ids for c in moved[:3]] == [c.completion_ids for c in first]


def test_finished_rows_leave_without_changing_others(tiny, monkeypatch):
    """Rows that hit an EOS early leave the batch; the others' tokens equal those decoded with no EOS at all."""
    model, tok = tiny
    kw = dict(max_new_tokens=10, temperature=0.7, num_samples=2, seed=1, batch_size=8)
    full = generate(model, tok, PROMPTS, **kw)
    stop = full[0].completion_ids[2]
    monkeypatch.setattr(model.generation_config, "eos_token_id", [tok.eos_token_id, stop])
    cut = generate(model, tok, PROMPTS, **kw)
    assert any(c.finished for c in cut) and not all(c.finished for c in cut)
    for f, c in zip(full, cut):
        k = f.completion_ids.index(stop) + 1 if stop in f.completion_ids else len(f.completion_ids)
        assert c.completion_ids == f.completion_ids[:k]
        assert c.finished == (stop in f.completion_ids)


def test_delayed_sync_gives_the_same_tokens(tiny, monkeypatch):
    """On an accelerator finished rows leave only every SYNC_EVERY tokens (no host sync per token); the
    answers are the same as with the CPU's sync every token."""
    model, tok = tiny
    kw = dict(max_new_tokens=10, temperature=0.7, num_samples=2, seed=1, batch_size=8)
    stop = generate(model, tok, PROMPTS, **kw)[0].completion_ids[2]
    monkeypatch.setattr(model.generation_config, "eos_token_id", [tok.eos_token_id, stop])
    every = generate(model, tok, PROMPTS, **kw)
    greedy = generate(model, tok, PROMPTS, max_new_tokens=10)
    monkeypatch.setattr(generation, "_sync_every", lambda device: 3)
    late = generate(model, tok, PROMPTS, **kw)
    late_greedy = generate(model, tok, PROMPTS, max_new_tokens=10)
    assert any(c.finished for c in every)
    assert [(c.completion_ids, c.finished) for c in late] == [(c.completion_ids, c.finished) for c in every]
    assert [(c.completion_ids, c.finished) for c in late_greedy] == [(c.completion_ids, c.finished) for c in greedy]


def test_noise_is_drawn_on_the_model_device():
    g = generation._row_generator(0, 1, 2, torch.device("cpu"))
    assert g.device.type == "cpu"
    state = np.random.SeedSequence([0, 1, 2]).generate_state(2, dtype=np.uint64)
    assert g.initial_seed() == int(state[0] >> np.uint64(1))  # the same seeds as the previous CPU loop


@pytest.mark.parametrize("kw, name, error", [
    (dict(max_new_tokens=4, temperature=math.nan), "temperature", ValueError),
    (dict(max_new_tokens=4, temperature=math.inf), "temperature", ValueError),
    (dict(max_new_tokens=4, temperature=-1.0), "temperature", ValueError),
    (dict(max_new_tokens=4, temperature="0.5"), "temperature", ValueError),
    (dict(max_new_tokens=4, temperature=True), "temperature", ValueError),
    (dict(max_new_tokens=2.5), "max_new_tokens", ValueError),
    (dict(max_new_tokens=True), "max_new_tokens", ValueError),
    (dict(max_new_tokens=-3), "max_new_tokens", ValueError),
    (dict(max_new_tokens=4, num_samples=1.0), "num_samples", ValueError),
    (dict(max_new_tokens=4, batch_size="8"), "batch_size", ValueError),
    (dict(max_new_tokens=4, seed=-1), "seed", ValueError),
    (dict(max_new_tokens=4, seed=1.5), "seed", ValueError),
])
def test_bad_arguments_are_named(tiny, kw, name, error):
    model, tok = tiny
    with pytest.raises(error, match=name):
        generate(model, tok, PROMPTS, **kw)


def test_bad_messages_list(tiny):
    model, tok = tiny
    with pytest.raises(TypeError, match="messages_list"):
        generate(model, tok, "hi", max_new_tokens=2)
    assert generate(model, tok, [], max_new_tokens=2) == []


SYSTEM = {"role": "system", "content": "You are a careful assistant. Answer in one short sentence, then stop."}
SHARED = [[SYSTEM, *m[-1:]] for m in PROMPTS]  # four prompts opening with the same long system prompt


def test_shared_prefix_length():
    assert generation.shared_prefix_length([[1, 2, 3, 4], [1, 2, 5], [1, 2, 3]]) == 2
    assert generation.shared_prefix_length([[7, 8, 9], [7, 8, 9]]) == 2  # each keeps one token of its own
    assert generation.shared_prefix_length([[1, 2], [3, 2]]) == 0
    assert generation.shared_prefix_length([[5]]) == 0


@pytest.mark.parametrize("kw", [dict(max_new_tokens=9), dict(max_new_tokens=9, temperature=0.8, num_samples=2, seed=3)])
def test_shared_prefix_prefilled_once_gives_the_same_tokens(tiny, monkeypatch, kw):
    """A long common opening is prefilled once for the batch and copied to every row: the tokens equal those of
    a plain left-padded prefill, and greedy ones those of ``model.generate`` on each prompt alone."""
    model, tok = tiny
    prompts = generation.encode_prompts(tok, SHARED)
    assert generation.shared_prefix_length(prompts) >= 2 * generation.MIN_SHARED_PREFIX
    calls = []
    forward = model.forward
    monkeypatch.setattr(model, "forward", lambda *a, **k: calls.append(k["input_ids"].shape) or forward(*a, **k))
    shared = generate(model, tok, SHARED, batch_size=8, **kw)
    assert calls[0][0] == 1  # the prefix, once, for the whole batch
    monkeypatch.setattr(generation, "MIN_SHARED_PREFIX", 10**6)
    plain = generate(model, tok, SHARED, batch_size=8, **kw)
    assert [c.completion_ids for c in shared] == [c.completion_ids for c in plain]
    if "temperature" not in kw:
        from test_generation import hf_greedy

        assert [c.completion_ids for c in shared] == [hf_greedy(model, tok, m, 9) for m in SHARED]


def test_preallocated_cache_holds_what_concatenation_holds():
    """Keys and values written in place equal DynamicLayer's concatenated ones, through a row selection and
    past the planned capacity."""
    from transformers.cache_utils import DynamicLayer

    torch.manual_seed(0)
    plain, ours = DynamicLayer(), generation.PreallocatedLayer(capacity=2)
    for i, n in enumerate((5, 1, 1, 1, 1)):  # a prefill, then four tokens: two past the capacity
        if i == 2:  # two of the three rows go on, in another order
            plain.batch_select_indices(torch.tensor([2, 0]))
            ours.batch_select_indices(torch.tensor([2, 0]))
        k = torch.randn(3 if i < 2 else 2, 2, n, 4)
        a, b = plain.update(k, -k), ours.update(k, -k)
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert ours.get_seq_length() == plain.get_seq_length() == 9


def test_finished_rows_left_in_a_large_batch_change_nothing(tiny, monkeypatch):
    """In a batch of 20 rows, finished rows stay until they are 1 / COMPACT_FRACTION of it, decoding past their
    EOS: every answer still equals the one decoded alone, cut at its first EOS."""
    model, tok = tiny
    kw = dict(max_new_tokens=10, temperature=0.7, num_samples=5, seed=2)
    stop = generate(model, tok, PROMPTS, batch_size=20, **kw)[0].completion_ids[1]
    sizes = []
    monkeypatch.setattr(model.generation_config, "eos_token_id", [tok.eos_token_id, stop])
    select = generation.PreallocatedLayer.batch_select_indices
    monkeypatch.setattr(generation.PreallocatedLayer, "batch_select_indices",
                        lambda self, i: sizes.append((self.keys.shape[0], len(i))) or select(self, i))
    together = generate(model, tok, PROMPTS, batch_size=20, **kw)
    dropped = [before - after for before, after in dict.fromkeys(sizes) if after < before]
    alone = generate(model, tok, PROMPTS, batch_size=1, **kw)
    assert 0 < sum(c.finished for c in together) < len(together)
    assert [(c.completion_ids, c.finished) for c in together] == [(c.completion_ids, c.finished) for c in alone]
    assert dropped and min(dropped) >= 20 // generation.COMPACT_FRACTION  # rows left two or more at a time


@pytest.mark.parametrize("temperature", [0.0, 0.8])
def test_budgets_per_prompt_cut_each_row_at_its_own(tiny, temperature):
    """Several tasks' questions in one batch, each within its own budget: every row equals the same row decoded
    with the largest budget, cut at its own (finished only if its EOS came within it)."""
    model, tok = tiny
    kw = dict(temperature=temperature, num_samples=2, seed=5, batch_size=8)
    budgets = [3, 9, 1, 6]
    uniform = generate(model, tok, PROMPTS, max_new_tokens=9, **kw)
    mixed = generate(model, tok, PROMPTS, max_new_tokens=budgets, **kw)
    for u, m in zip(uniform, mixed):
        b = budgets[m.prompt_index]
        assert m.completion_ids == u.completion_ids[:b]
        assert m.finished == (u.finished and len(u.completion_ids) <= b)
    assert [len(c.completion_ids) for c in mixed if not c.finished] \
        == [budgets[c.prompt_index] for c in mixed if not c.finished]
    with pytest.raises(ValueError, match="max_new_tokens lists 3 budgets for 4 conversations"):
        generate(model, tok, PROMPTS, max_new_tokens=budgets[:3])
    with pytest.raises(ValueError, match="max_new_tokens must be >= 1"):
        generate(model, tok, PROMPTS, max_new_tokens=[3, 0, 1, 1])
