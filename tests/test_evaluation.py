import math

import pytest
import torch
import torch.nn.functional as F

from retain_utils.core.intervals import wilson_interval
from retain_utils.core.evaluation import (TaskScore, baseline_table, drop, evaluate, gain, kl_samples, kl_to_initial,
                                          paired_intervals, rescore_cut_off, results_table, score_texts)
from retain_utils.core.models import tiny_model
from retain_utils.core.tasks import Example, get_task


def _score(task, acc, n=100):
    k = round(acc * n)
    lo, hi = wilson_interval(k, n)
    return TaskScore(task, k / n, lo, hi, n, k, 0)


def test_wilson_interval():
    assert wilson_interval(0, 0) == (0.0, 1.0)
    lo, hi = wilson_interval(5, 10)
    assert lo == pytest.approx(0.2366, abs=1e-4) and hi == pytest.approx(0.7634, abs=1e-4)
    lo, hi = wilson_interval(0, 50)
    assert lo == 0.0 and 0.05 < hi < 0.08  # never a degenerate [0, 0] interval
    lo, hi = wilson_interval(50, 50)
    assert hi == pytest.approx(1.0) and lo > 0.9


def test_gain_and_drop_follow_the_paper():
    initial = {"ifeval": _score("ifeval", 0.30), "mmlu": _score("mmlu", 0.50), "countdown": _score("countdown", 0.20)}
    final = {"ifeval": _score("ifeval", 0.55), "mmlu": _score("mmlu", 0.40), "countdown": _score("countdown", 0.24)}
    assert gain(initial, final, "ifeval") == pytest.approx(25.0)
    assert drop(initial, final, "ifeval") == pytest.approx((10.0 - 4.0) / 2)  # mean over the non-target tasks
    assert drop(initial, initial, "ifeval") == 0.0
    assert gain({"a": 0.1, "b": 0.2}, {"a": 0.3, "b": 0.1}, "a") == pytest.approx(20.0)  # plain floats work too
    from dataclasses import asdict

    as_dicts = {k: asdict(v) for k, v in final.items()}  # TaskScores saved as dicts (JSON) work too
    assert drop(initial, as_dicts, "ifeval") == pytest.approx(drop(initial, final, "ifeval"))
    with pytest.raises(ValueError, match="scored tasks: ifeval, mmlu, countdown"):
        gain(initial, final, "gsm8k")
    with pytest.raises(ValueError, match="needs a task besides the target"):
        drop({"a": 0.1}, {"a": 0.2}, "a")


def test_results_table():
    runs = {"initial": {"ifeval": _score("ifeval", 0.3), "mmlu": _score("mmlu", 0.5)},
            "SFT": {"ifeval": _score("ifeval", 0.6), "mmlu": _score("mmlu", 0.2)}}
    table = results_table(runs, initial="initial", target="ifeval")
    assert list(table.index) == ["initial", "SFT"]
    assert table.loc["SFT", "gain"] == pytest.approx(30.0) and table.loc["SFT", "drop"] == pytest.approx(30.0)
    assert table.loc["SFT", "ifeval acc %"] == pytest.approx(60.0)
    assert 0 < table.loc["initial", "mmlu ±95%"] < 15
    with pytest.raises(ValueError, match="initial run 'base' not among runs"):
        results_table(runs, initial="base", target="ifeval")


def test_score_texts_counts_unparsed_separately():
    task = get_task("countdown")
    examples = task.make_examples(4, seed=0, split="eval")
    texts = [examples[0].expert, "no equation at all", r"\boxed{1 + }", "2 + 2 = 4"]
    s = score_texts(task, examples, texts)
    assert (s.n, s.n_correct, s.n_unparsed) == (4, 1, 2) and s.correct == (1, 0, 0, 0)
    assert s.accuracy == 0.25 and s.ci_low < 0.25 < s.ci_high
    with pytest.raises(ValueError, match="3 responses for 4 examples"):
        score_texts(task, examples, texts[:3])


def _answers(task, correct):
    k = sum(correct)
    return TaskScore(task, k / len(correct), 0.0, 1.0, len(correct), k, 0, correct=tuple(correct))


def test_paired_intervals_resample_questions_with_both_answers_together():
    from dataclasses import asdict

    before = {"mmlu": _answers("mmlu", [0] * 20 + [1] * 20), "ifeval": _answers("ifeval", [1] * 40)}
    same = paired_intervals(before, before, "mmlu")
    assert same == {"gain": (0.0, 0.0), "drop": (0.0, 0.0)}  # paired: no change, no noise
    # 10 of 40 target questions flip to right, none back; the other task loses 2 of 40
    after = {"mmlu": _answers("mmlu", [1] * 10 + [0] * 10 + [1] * 20), "ifeval": _answers("ifeval", [0] * 2 + [1] * 38)}
    out = paired_intervals(before, {k: asdict(v) for k, v in after.items()}, "mmlu")  # dicts (JSON) work too
    assert 10 < out["gain"][0] < gain(before, after, "mmlu") == 25.0 < out["gain"][1] <= 40
    assert out["drop"][0] == 0.0 and 5.0 <= out["drop"][1] < 15  # no resample can show a gain on ifeval
    assert out == paired_intervals(before, after, "mmlu")  # seeded: the same numbers every time
    # one flip in 40 is inside the noise: the interval reaches zero
    one = {"mmlu": _answers("mmlu", [1] + [0] * 19 + [1] * 20), "ifeval": before["ifeval"]}
    assert paired_intervals(before, one, "mmlu")["gain"][0] == 0.0
    assert paired_intervals(before, {"mmlu": 0.6, "ifeval": 1.0}, "mmlu") is None  # no per-question results
    with pytest.raises(ValueError, match="the questions must be the same"):
        paired_intervals(before, {**after, "ifeval": _answers("ifeval", [1] * 39)}, "mmlu")
    with pytest.raises(ValueError, match="level must be in"):
        paired_intervals(before, after, "mmlu", level=95)


def test_evaluate_tiny_model(tiny):
    model, tok = tiny
    examples = {name: get_task(name).make_examples(3, seed=0, split="eval") for name in ("ifeval", "mmlu", "countdown")}
    scores = evaluate(model, tok, examples, max_new_tokens=8, batch_size=4)
    assert set(scores) == {"ifeval", "mmlu", "countdown"}
    for s in scores.values():
        assert s.n == 3 and 0 <= s.accuracy <= 1 and s.n_correct + s.n_unparsed <= 3 + 0
        assert s.n_tokens <= 3 * 8 and s.seconds > 0
    # a random model never produces a parsable countdown answer; its knowledge text is read (a first line, as a
    # sentence answer would be) but names no right answer
    assert scores["countdown"].n_unparsed == 3 and scores["mmlu"].n_correct == 0
    again = evaluate(model, tok, examples, max_new_tokens=8, batch_size=2)
    assert [s.n_correct for s in again.values()] == [s.n_correct for s in scores.values()]
    with pytest.raises(ValueError, match="valid tasks: ifeval, mmlu, countdown"):
        evaluate(model, tok, {"x": [Example("poetry", "p", None, "")]})


def test_baseline_table_with_a_given_model(tiny):
    model, tok = tiny
    table, scores = baseline_table(n_eval=2, model=model, tokenizer=tok, progress=False)
    assert list(table.index) == ["ifeval", "mmlu", "countdown"]
    assert {"accuracy", "ci_low", "ci_high", "n", "n_unparsed", "tokens_per_s"} <= set(table.columns)
    assert (table["n"] == 2).all()
    with pytest.raises(ValueError, match="n_eval must be >= 1"):
        baseline_table(n_eval=0, model=model, tokenizer=tok)


def test_tasks_answered_in_shared_batches_as_one_by_one(tiny):
    """``evaluate`` decodes every task's questions in the same batches, each within its own budget: the same
    answers as task by task; each task's time is its share of the whole by generated tokens."""
    model, tok = tiny
    tasks = {name: get_task(name) for name in ("ifeval", "mmlu", "countdown")}
    examples = {name: task.make_examples(3, seed=1, split="eval") for name, task in tasks.items()}
    budgets = {"ifeval": 12, "mmlu": 4, "countdown": 7}
    joint = evaluate(model, tok, examples, max_new_tokens=budgets, keep_answers=True)
    for name in tasks:
        alone = evaluate(model, tok, {name: examples[name]}, max_new_tokens=budgets, keep_answers=True)[name]
        assert (joint[name].answer_ids, joint[name].correct, joint[name].n_tokens) \
            == (alone.answer_ids, alone.correct, alone.n_tokens)
        assert max(map(len, joint[name].answer_ids)) <= budgets[name]
    shares = [s.seconds / s.n_tokens for s in joint.values()]
    assert shares == pytest.approx([shares[0]] * 3)


def test_cut_off_answers_rescored_at_a_longer_budget_as_a_whole_evaluation_would(tiny):
    """``rescore_cut_off`` answers again only what the budget cut off without looping, and gets what an
    evaluation at the longer budget gets for those answers; finished and looping answers keep their text."""
    model, tok = tiny
    examples = {name: get_task(name).make_examples(6, seed=2, split="eval") for name in ("ifeval", "mmlu")}
    short = evaluate(model, tok, examples, max_new_tokens=3)
    longer = evaluate(model, tok, examples, max_new_tokens=9)
    again = rescore_cut_off(model, tok, examples, short, factor=3, max_new_tokens=3)
    redone = 0
    for name, s in short.items():
        for i, text in enumerate(again[name].texts):
            if s.truncated[i] and not s.looping[i]:
                redone += 1
                assert text == longer[name].texts[i] and again[name].truncated[i] == longer[name].truncated[i]
            else:
                assert text == s.texts[i] and again[name].truncated[i] == s.truncated[i]
        assert again[name].correct == tuple(int(get_task(name).score(e, t)[0]) for e, t in
                                            zip(examples[name], again[name].texts))
        assert again[name].n_tokens > s.n_tokens or not any(s.truncated)
    assert redone > 0  # a random tiny model's answers run past 3 tokens
    with pytest.raises(ValueError, match="factor must be >= 2"):
        rescore_cut_off(model, tok, examples, short, factor=1)
    with pytest.raises(ValueError, match="needs the evaluation's texts"):
        rescore_cut_off(model, tok, {"mmlu": examples["mmlu"][:2]}, {"mmlu": short["mmlu"]})


def test_kl_is_zero_for_the_same_model_and_exact_for_one_token(tiny, fresh_tiny):
    model, tok = tiny
    examples = get_task("mmlu").make_examples(3, seed=0, split="eval")
    assert kl_to_initial(model, model, tok, examples, max_new_tokens=5) == pytest.approx(0.0, abs=1e-6)
    other, _ = fresh_tiny
    with torch.no_grad():
        for p in other.parameters():
            p.add_(0.05 * torch.randn_like(p))
    # one generated token: the estimate is the exact KL of the first-token distributions
    messages = [[{"role": "user", "content": "Hello there"}]]
    est = kl_to_initial(other, model, tok, messages, max_new_tokens=1)
    ids = torch.tensor([tok.apply_chat_template(messages[0], add_generation_prompt=True, tokenize=True)["input_ids"]])
    with torch.no_grad():
        p0 = F.log_softmax(model(ids).logits[0, -1].float(), -1)
        p1 = F.log_softmax(other(ids).logits[0, -1].float(), -1)
    assert est == pytest.approx(float((p0.exp() * (p0 - p1)).sum()), rel=1e-4)
    seq = kl_to_initial(other, model, tok, examples, max_new_tokens=6, num_samples=2)
    tok_kl = kl_to_initial(other, model, tok, examples, max_new_tokens=6, num_samples=2, per_token=True)
    assert seq > 0 and 0 < tok_kl <= seq and math.isfinite(seq)


def test_kl_from_shared_samples_is_bitwise_the_same_estimate(tiny, fresh_tiny):
    """What lets every run of a seed share pi_0's responses (``Bench.kl_samples``): the same numbers, unsampled."""
    model, tok = tiny
    other, _ = fresh_tiny
    with torch.no_grad():
        for p in other.parameters():
            p.add_(0.05 * torch.randn_like(p))
    examples = get_task("countdown").make_examples(5, seed=0, split="eval")
    kw = dict(max_new_tokens=6, num_samples=2, batch_size=4, seed=3)
    shared = kl_samples(model, tok, examples, **kw)
    assert shared.n_responses == 10 and len(shared.batches) == 3
    for per_token in (False, True):
        fresh = kl_to_initial(other, model, tok, examples, per_token=per_token, **kw)
        assert kl_to_initial(other, model, tok, examples, per_token=per_token, samples=shared, **kw) == fresh
    assert fresh > 0
    with pytest.raises(ValueError, match="samples were drawn for other prompts or settings"):
        kl_to_initial(other, model, tok, examples, samples=shared, **{**kw, "seed": 4})
    with pytest.raises(ValueError, match="samples were drawn for other prompts or settings"):
        kl_to_initial(other, model, tok, examples[:4], samples=shared, **kw)


def test_kl_with_peft_reference(fresh_tiny):
    from peft import LoraConfig, get_peft_model

    model, tok = fresh_tiny
    peft_model = get_peft_model(model, LoraConfig(r=2, target_modules=["q_proj", "v_proj"], lora_dropout=0.0))
    messages = [[{"role": "user", "content": "Hi"}], [{"role": "user", "content": "Name a colour."}]]
    assert kl_to_initial(peft_model, None, tok, messages, max_new_tokens=4) == pytest.approx(0.0, abs=1e-6)
    with torch.no_grad():
        for n, p in peft_model.named_parameters():
            if "lora_B" in n:
                p.add_(0.5)
    assert kl_to_initial(peft_model, None, tok, messages, max_new_tokens=4) > 1e-4
    diverse_plain, _ = tiny_model(seed=0)
    with pytest.raises(ValueError, match="needs a peft model"):
        kl_to_initial(diverse_plain, None, tok, messages)


@pytest.mark.slow
def test_embedded_baseline_is_above_floor():
    """The embedded model on a few held-out examples: it knows some capitals and writes parsable equations."""
    table, scores = baseline_table(n_eval=4, batch_size=4, progress=False)
    assert list(table.index) == ["ifeval", "mmlu", "countdown"]
    assert scores["mmlu"].n_correct >= 1
    assert scores["countdown"].n_unparsed < 4
    assert all(s.n_tokens > 0 for s in scores.values())
