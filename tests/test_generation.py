import pytest
import torch

from retain_utils.core.generation import Completion, generate

PROMPTS = [
    [{"role": "user", "content": "hi"}],
    [{"role": "user", "content": "What is two plus two? Please answer briefly."}],
    [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "Name a colour."}],
    [{"role": "user", "content": "A much longer prompt that forces the others to be padded on the left " * 3}],
]


def hf_greedy(model, tokenizer, messages, n):
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)["input_ids"]
    out = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                         do_sample=False, max_new_tokens=n, pad_token_id=tokenizer.pad_token_id)
    return out[0, len(ids):].tolist()


def test_greedy_matches_model_generate(tiny):
    model, tok = tiny
    ours = generate(model, tok, PROMPTS, max_new_tokens=12, batch_size=4)
    assert [c.prompt_index for c in ours] == [0, 1, 2, 3]
    for c, messages in zip(ours, PROMPTS):
        assert isinstance(c, Completion)
        assert c.completion_ids == hf_greedy(model, tok, messages, 12)
        assert c.text == tok.decode(c.completion_ids, skip_special_tokens=True)


def test_batched_equals_unbatched_with_left_padding(tiny):
    model, tok = tiny
    alone = [generate(model, tok, [m], max_new_tokens=10)[0].completion_ids for m in PROMPTS]
    batched = generate(model, tok, PROMPTS, max_new_tokens=10, batch_size=16)
    assert [c.completion_ids for c in batched] == alone
    # the short prompt padded next to the long one gives the same answer as alone
    padded = generate(model, tok, [PROMPTS[0], PROMPTS[3]], max_new_tokens=10, batch_size=2)
    assert padded[0].completion_ids == alone[0]


def test_sampling_is_deterministic_and_batch_independent(tiny):
    model, tok = tiny
    kw = dict(max_new_tokens=8, temperature=1.0, num_samples=3)
    a = generate(model, tok, PROMPTS, seed=1, batch_size=16, **kw)
    b = generate(model, tok, PROMPTS, seed=1, batch_size=16, **kw)
    c = generate(model, tok, PROMPTS, seed=1, batch_size=2, **kw)
    d = generate(model, tok, PROMPTS, seed=2, batch_size=16, **kw)
    ids = lambda cs: [x.completion_ids for x in cs]
    assert [x.prompt_index for x in a] == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]
    assert ids(a) == ids(b) == ids(c)
    assert ids(a) != ids(d)
    assert len({tuple(x.completion_ids) for x in a[:3]}) > 1  # samples of one prompt differ


def test_sampling_follows_softmax(tiny):
    """First-token frequencies over many samples match softmax(logits / T) (and not another temperature)."""
    model, tok = tiny
    temperature, n = 0.5, 4000
    samples = generate(model, tok, PROMPTS[:1], max_new_tokens=1, temperature=temperature,
                       num_samples=n, batch_size=n)
    ids = tok.apply_chat_template(PROMPTS[0], add_generation_prompt=True, tokenize=True)["input_ids"]
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0, -1]
    counts = torch.bincount(torch.tensor([s.completion_ids[0] for s in samples]), minlength=logits.numel())
    freq = counts.float() / n
    tv = lambda t: 0.5 * (freq - torch.softmax(logits / t, -1)).abs().sum().item()
    assert tv(temperature) < 0.1
    assert tv(temperature) < 0.5 * tv(1.0)


def test_tiny_temperature_is_greedy(tiny):
    model, tok = tiny
    greedy = generate(model, tok, PROMPTS, max_new_tokens=8)
    cold = generate(model, tok, PROMPTS, max_new_tokens=8, temperature=1e-6)
    assert [c.completion_ids for c in cold] == [c.completion_ids for c in greedy]


def test_stops_at_eos(tiny):
    model, tok = tiny
    full = generate(model, tok, PROMPTS, max_new_tokens=12)
    stop = full[1].completion_ids[3]  # declare prompt 1's 4th greedy token an extra EOS
    saved = model.generation_config.eos_token_id
    model.generation_config.eos_token_id = [tok.eos_token_id, stop]
    try:
        cut = generate(model, tok, PROMPTS, max_new_tokens=12)
    finally:
        model.generation_config.eos_token_id = saved
    for f, c in zip(full, cut):
        if stop in f.completion_ids:
            k = f.completion_ids.index(stop)
            assert c.completion_ids == f.completion_ids[: k + 1] and c.finished
        else:
            assert c.completion_ids == f.completion_ids and not c.finished
    assert cut[1].completion_ids == full[1].completion_ids[:4]
    assert all(len(c.completion_ids) == 12 for c in full if not c.finished)


@pytest.mark.parametrize("kw, name", [
    (dict(max_new_tokens=0), "max_new_tokens"),
    (dict(max_new_tokens=4, temperature=-0.1), "temperature"),
    (dict(max_new_tokens=4, num_samples=0), "num_samples"),
    (dict(max_new_tokens=4, batch_size=0), "batch_size"),
])
def test_bad_arguments(tiny, kw, name):
    model, tok = tiny
    with pytest.raises(ValueError, match=name):
        generate(model, tok, PROMPTS, **kw)


def test_a_looping_answer_stops_where_the_loop_shows_and_the_others_are_unchanged(tiny):
    """``stop_loops``: an answer that loops stops within LOOP_CHECK_EVERY tokens of where ``is_looping`` first sees
    it, unfinished, as a prefix of what it would have written; an answer that never loops is untouched."""
    from retain_utils.core.generation import LOOP_CHECK_EVERY
    from retain_utils.core.repetition import is_looping

    from retain_utils.core.models import tiny_model

    prompts = PROMPTS + [[{"role": "user", "content": f"prompt number {i}"}] for i in range(4)]
    pairs = []
    for model, tok in (tiny, tiny_model(seed=0)):  # the diverse tiny model seldom loops, the plain one always
        full = generate(model, tok, prompts, max_new_tokens=160, batch_size=8)
        pairs += zip(full, generate(model, tok, prompts, max_new_tokens=160, batch_size=8, stop_loops=True))
    n_stopped = 0
    for a, b in pairs:
        shows = next((k for k in range(1, len(a.completion_ids) + 1) if is_looping(a.completion_ids[:k])), None)
        if shows is None or (a.finished and shows > len(a.completion_ids) - LOOP_CHECK_EVERY):
            assert b.completion_ids == a.completion_ids and b.finished == a.finished
            continue
        n_stopped += 1
        assert a.completion_ids[: len(b.completion_ids)] == b.completion_ids and not b.finished
        assert shows <= len(b.completion_ids) < shows + LOOP_CHECK_EVERY and is_looping(b.completion_ids)
    assert 0 < n_stopped < len(pairs)
