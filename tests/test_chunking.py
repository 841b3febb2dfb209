"""Log-probs and KL a chunk of tokens at a time: the same numbers as the full-vocabulary computation, so
peak memory need not scale with vocabulary x batch."""

import pytest
import torch
import torch.nn.functional as F

from conftest import diverse_tiny_model
from retain_utils.core import evaluation, logprobs
from retain_utils.core.logprobs import collate, completion_logprobs

SEQUENCES = [([5, 6, 7, 8, 9], [10, 11, 12]), ([13, 14], [15, 16, 17, 18, 19, 20]), ([21, 22, 23], [24])]


def full_logprobs(model, sequences, pad_id):
    """The unchunked reference: every position's logits at once, as evaluation computed them before."""
    width = max(len(p) + len(c) for p, c in sequences)
    ids = torch.full((len(sequences), width), pad_id)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for i, (p, c) in enumerate(sequences):
        ids[i, width - len(p) - len(c):] = torch.tensor(p + c)
        mask[i, width - len(p) - len(c):] = 1
    logits = model(input_ids=ids, attention_mask=mask, position_ids=(mask.cumsum(-1) - 1).clamp(min=0)).logits
    return [F.log_softmax(logits[i, width - len(c) - 1: width - 1].float(), -1) for i, (_, c) in enumerate(sequences)]


@pytest.mark.parametrize("chunk", [1, 4, 10_000])
def test_evaluation_logprobs_chunked_equal_unchunked(tiny, chunk):
    model, tok = tiny
    with torch.no_grad():
        want = full_logprobs(model, SEQUENCES, tok.pad_token_id)
        got = logprobs.vocabulary_logprobs(model, SEQUENCES, tok.pad_token_id, "cpu", chunk=chunk)
    assert [g.shape for g in got] == [w.shape for w in want]
    assert all(torch.allclose(g, w, atol=1e-5) for g, w in zip(got, want))


def test_kl_chunked_equals_the_full_vocabulary_sum(tiny, fresh_tiny):
    model, tok = tiny
    other, _ = fresh_tiny
    with torch.no_grad():
        for p in other.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(1)))
        a, b = full_logprobs(model, SEQUENCES, tok.pad_token_id), full_logprobs(other, SEQUENCES, tok.pad_token_id)
        want = torch.cat([(x.exp() * (x - y)).sum(-1) for x, y in zip(a, b)])
        from contextlib import nullcontext
        ref_hidden = logprobs.completion_hidden(model, SEQUENCES, tok.pad_token_id, "cpu")
        for chunk in (1, 3, 10_000):
            got = logprobs.token_kl(model, other, nullcontext, SEQUENCES, ref_hidden, tok.pad_token_id, "cpu", chunk)
            assert torch.allclose(got, want, atol=1e-6), chunk
    messages = [[{"role": "user", "content": "Name a colour."}], [{"role": "user", "content": "Hi"}]]
    small = evaluation.kl_to_initial(other, model, tok, messages, max_new_tokens=6, num_samples=2, chunk=2)
    large = evaluation.kl_to_initial(other, model, tok, messages, max_new_tokens=6, num_samples=2, chunk=10_000)
    assert small > 0 and small == pytest.approx(large, rel=1e-5)


def test_training_logprobs_and_gradients_chunked_equal_unchunked():
    model, tok = diverse_tiny_model(seed=0)
    batch = collate([p for p, _ in SEQUENCES], [c for _, c in SEQUENCES], tok.pad_token_id)
    results = []
    for chunk in (1, 5, 10_000):
        model.zero_grad()
        lp = completion_logprobs(model, batch, chunk=chunk)
        lp.sum().backward()
        results.append((lp.detach(), model.lm_head.weight.grad.clone()))
    for lp, grad in results[1:]:
        assert torch.allclose(lp, results[0][0], atol=1e-5) and torch.allclose(grad, results[0][1], atol=1e-5)
    want = full_logprobs(model, SEQUENCES, tok.pad_token_id)
    for i, (_, c) in enumerate(SEQUENCES):  # right-padded completions: the first len(c) columns are scored
        expected = want[i].gather(-1, torch.tensor(c)[:, None]).squeeze(-1)
        assert torch.allclose(results[0][0][i, :len(c)], expected.detach(), atol=1e-5)


def test_head_recomputed_on_accelerators_gives_the_same_numbers(monkeypatch):
    """On an accelerator the LM head is recomputed in the backward pass (memory), on the CPU kept: the same
    log-probabilities and gradients, bit for bit."""

    model, tok = diverse_tiny_model(seed=1)
    batch = collate([p for p, _ in SEQUENCES], [c for _, c in SEQUENCES], tok.pad_token_id)
    results = []
    for recompute in (False, True):
        monkeypatch.setattr(logprobs, "_recompute_head", lambda device: recompute)
        model.zero_grad()
        lp = completion_logprobs(model, batch, chunk=3)
        lp.sum().backward()
        results.append((lp.detach(), [p.grad.clone() for p in model.parameters()]))
    (lp_kept, grads_kept), (lp_again, grads_again) = results
    assert torch.equal(lp_kept, lp_again)
    assert all(torch.equal(a, b) for a, b in zip(grads_kept, grads_again))
    monkeypatch.undo()
    assert logprobs._recompute_head(torch.device("cuda")) and not logprobs._recompute_head(torch.device("cpu"))
