import copy
import dataclasses
import json
import math

import numpy as np
import pytest
import torch

from retain_utils.core.evaluation import TaskScore, evaluate
from retain_utils.core.generation import encode_prompts
from retain_utils.analysis.retention import (Retention, answer_logliks, baseline_answers, reference_logliks,
                                             retention, retention_difference)
from retain_utils.core.tasks import get_task
from retain_utils.core.logprobs import collate, completion_logprobs


def _bench(model, tok, n=6):
    examples = {name: get_task(name).make_examples(n, seed=0, split="eval") for name in ("mmlu", "ifeval", "countdown")}
    baseline = evaluate(model, tok, examples, max_new_tokens=6, batch_size=4, keep_answers=True)
    # a random model answers nothing correctly: call most answers correct so that there is something to keep
    baseline = {k: dataclasses.replace(s, correct=tuple(int(i % 3 != 2) for i in range(n)))
                for k, s in baseline.items()}
    return examples, baseline


def test_evaluate_keeps_the_answers_and_they_survive_json(tiny):
    model, tok = tiny
    examples = {"mmlu": get_task("mmlu").make_examples(3, seed=0, split="eval")}
    kept = evaluate(model, tok, examples, max_new_tokens=5, batch_size=2, keep_answers=True)["mmlu"]
    plain = evaluate(model, tok, examples, max_new_tokens=5, batch_size=2)["mmlu"]
    assert plain.answer_ids == () and len(kept.answer_ids) == 3 and all(0 < len(a) <= 5 for a in kept.answer_ids)
    assert dataclasses.replace(kept, answer_ids=(), seconds=plain.seconds) == plain  # nothing else changes
    assert sum(map(len, kept.answer_ids)) == kept.n_tokens
    assert [tok.decode(list(a), skip_special_tokens=True) for a in kept.answer_ids][0] is not None
    back = TaskScore.from_dict(json.loads(json.dumps(kept.to_dict())))
    assert back == kept and TaskScore.from_dict(plain.to_dict()) == plain
    old_log = {k: v for k, v in plain.to_dict().items() if k not in ("answer_ids", "correct")}
    assert TaskScore.from_dict(old_log).answer_ids == ()  # logs from before the field existed still load


def test_an_unchanged_copy_retains_exactly_everything(tiny):
    model, tok = tiny
    examples, baseline = _bench(model, tok)
    answers = baseline_answers(tok, examples, baseline, target="mmlu")
    assert sorted(answers) == ["countdown", "ifeval"] and answers["ifeval"].index == (0, 1, 3, 4)
    ref = reference_logliks(model, tok, answers)
    assert all(np.all(v < 0) for v in ref.values())  # log-likelihoods of real tokens
    out = retention(copy.deepcopy(model), tok, answers, ref)
    assert out.mean == 0.0 and (out.low, out.high) == (0.0, 0.0)
    assert all(set(t.per_question) == {0.0} for t in out.tasks.values())
    assert out.frame().loc["mean over tasks", "questions"] == 8
    json.dumps(out.to_dict())
    # the log-likelihood is the mean over the answer's tokens of log p(token | prompt, earlier tokens)
    a = answers["ifeval"]
    ids = torch.tensor([list(a.prompt_ids[0]) + list(a.answer_ids[0])])
    with torch.no_grad():
        logp = torch.log_softmax(model(ids).logits[0].float(), -1)
    n = len(a.answer_ids[0])
    by_hand = float(np.mean([logp[len(a.prompt_ids[0]) - 1 + j, a.answer_ids[0][j]] for j in range(n)]))
    assert ref["ifeval"][0] == pytest.approx(by_hand, abs=1e-4)
    # batching does not change the numbers beyond rounding
    alone = answer_logliks(model, tok, [list(p) for p in a.prompt_ids], [list(x) for x in a.answer_ids], batch_size=1)
    assert np.allclose(alone, ref["ifeval"], atol=1e-4)


def test_a_model_trained_to_answer_otherwise_loses_retention(tiny, fresh_tiny):
    model, tok = tiny
    examples, baseline = _bench(model, tok)
    answers = baseline_answers(tok, examples, baseline, target="mmlu")
    ref = reference_logliks(model, tok, answers)
    trained, _ = fresh_tiny  # the same weights as ``model``: train it to answer every prompt with "zzzz"
    prompts = encode_prompts(tok, [get_task(e.task).messages(e) for ex in examples.values() for e in ex])
    other = tok.encode("zzzz", add_special_tokens=False)
    batch = collate(prompts, [other] * len(prompts), tok.pad_token_id)
    opt = torch.optim.Adam(trained.parameters(), lr=1e-2)
    for _ in range(8):  # one batch of every prompt, a few steps: enough to move the mass
        loss = -completion_logprobs(trained, batch).sum() / batch.mask.sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    out = retention(trained, tok, answers, ref)
    assert out.mean < -2.0 and out.high < -1.0 and out.low <= out.mean <= out.high  # nats per token
    assert all(t.mean < -1.0 for t in out.tasks.values())
    same = retention(copy.deepcopy(model), tok, answers, ref)
    assert Retention.from_dict(json.loads(json.dumps(out.to_dict()))) == out  # a run record keeps it whole
    d = retention_difference(out, same, labels=("trained", "copy"))
    assert d.difference == pytest.approx(out.mean) and d.high < 0
    assert retention(trained, tok, answers, ref) == out  # seeded: the same numbers every time


def test_retention_refuses_what_it_cannot_measure(tiny):
    model, tok = tiny
    examples, baseline = _bench(model, tok, n=3)
    with pytest.raises(ValueError, match="evaluate them with keep_answers=True"):
        baseline_answers(tok, examples, {k: dataclasses.replace(s, answer_ids=()) for k, s in baseline.items()},
                         target="mmlu")
    with pytest.raises(ValueError, match="target 'gsm8k' is not among the tasks"):
        baseline_answers(tok, examples, baseline, target="gsm8k")
    none_right = {k: dataclasses.replace(s, correct=(0, 0, 0)) for k, s in baseline.items()}
    answers = baseline_answers(tok, examples, none_right, target="mmlu")
    with pytest.raises(ValueError, match="answered no held-out question"):
        retention(model, tok, answers, reference_logliks(model, tok, answers))
    # a task without correct answers is left out of the mean, not counted as 0
    some = {**none_right, "ifeval": baseline["ifeval"]}
    answers = baseline_answers(tok, examples, {k: v.to_dict() for k, v in some.items()}, target="mmlu")  # dicts too
    out = retention(model, tok, answers, reference_logliks(model, tok, answers))
    assert math.isnan(out.tasks["countdown"].mean) and out.mean == 0.0
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        answer_logliks(model, tok, [[1]], [[2]], batch_size=0)
