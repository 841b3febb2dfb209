import json
import math
from types import SimpleNamespace

import pytest
import torch

from conftest import diverse_tiny_model
from retain_utils.core import results
from retain_utils.core.tasks.base import Example, Task
from retain_utils.core.training import METHODS, TrainConfig, TrainingDiverged, grpo, resolve, sft, train
from retain_utils.core.logprobs import collate, completion_logprobs, kl_penalty, micro_batches
from retain_utils.core.training.loop import lr_multiplier


class VowelTask(Task):
    """Trivially learnable: reward 1 when the answer starts with a vowel; the expert says "a"."""

    name = "vowel"
    max_new_tokens = 4

    def make_examples(self, n, seed=0, split="train"):
        return [Example("vowel", f"{split} {seed} {i}: say a vowel.", None, "a") for i in range(n)]

    def parse(self, response):
        return response[:1] or None

    def verify(self, example, parsed):
        return parsed in "aeiou"


class DigitTask(VowelTask):
    name = "digit"

    def make_examples(self, n, seed=0, split="train"):
        return [Example("digit", f"{split} {seed} {i}: say a digit.", None, "7") for i in range(n)]

    def verify(self, example, parsed):
        return parsed.isdigit()


VOWEL, DIGIT = VowelTask(), DigitTask()
EOS = diverse_tiny_model(seed=0)[1].eos_token_id
TRAIN = VOWEL.make_examples(16)
EVAL = {"vowel": VOWEL.make_examples(24, split="eval"), "digit": DIGIT.make_examples(24, split="eval")}


def config(**kw):
    base = dict(method="grpo", task="vowel", lr=3e-3, steps=6, batch_size=4, group_size=4, temperature=1.0,
                max_new_tokens=4, eval_every=3, eval_max_new_tokens=4, precision="fp32", warmup_frac=0.0,
                micro_batch_size=8, checkpoint_every=3, require_eos=False)  # 4-token answers rarely reach EOS
    base.update(kw)
    return TrainConfig(**base)


def run(cfg, model=None, **kw):
    model, tok = model or diverse_tiny_model(seed=0)
    return train(cfg, model, tok, [VOWEL, DIGIT], TRAIN, EVAL, progress=False, **kw)


# ---------------------------------------------------------------------------------------------- pieces


def test_completion_logprobs_score_only_completion_tokens(tiny):
    model, tok = tiny
    batch = collate([[1, 5, 6, 7], [1, 9]], [[10, 11, 12], [13]], tok.pad_token_id)
    assert batch.mask.tolist() == [[1, 1, 1], [1, 0, 0]]
    with torch.no_grad():
        logp = completion_logprobs(model, batch, temperature=0.7)
        for i, (prompt, completion) in enumerate([([1, 5, 6, 7], [10, 11, 12]), ([1, 9], [13])]):
            ids = torch.tensor([prompt + completion])
            ref = torch.log_softmax(model(ids).logits[0, len(prompt) - 1:-1] / 0.7, -1)
            expected = ref.gather(-1, torch.tensor(completion)[:, None]).squeeze(-1)
            assert torch.allclose(logp[i, :len(completion)], expected, atol=1e-5)
    assert (logp[1, 1:] == 0).all()


def _grads(model) -> torch.Tensor:
    return torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])


@pytest.mark.parametrize("layout", ["packed", "rows"])
@pytest.mark.parametrize("lora", [False, True])
def test_rows_of_one_prompt_share_a_pass_over_it(lora, layout, monkeypatch):
    """A GRPO group's rows run their prompt once, their completions either packed into one row per prompt or one
    row each on a copy of the prompt's KV cache: the same log-probs and gradients as one pass per row, up to
    rounding; prompts of different lengths (left padding), completions of different lengths (right padding),
    packed rows of different widths and a prompt with a single row included."""
    from retain_utils.core import logprobs

    model, tok = diverse_tiny_model(seed=0)
    assert model.config._attn_implementation == "sdpa"
    if layout == "rows":
        monkeypatch.setattr(logprobs, "_can_pack", lambda backbone, device: False)
    packed = []
    monkeypatch.setattr(logprobs, "_packed_completions",
                        lambda *a, _f=logprobs._packed_completions: packed.append(a[-1]) or _f(*a))
    if lora:
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=2, target_modules=["q_proj", "v_proj"], lora_dropout=0.0))
        with torch.no_grad():
            for n, p in model.named_parameters():
                if "lora_B" in n:
                    p.add_(0.1)
    g = torch.Generator().manual_seed(0)
    draw = lambda n: torch.randint(3, model.config.vocab_size, (n,), generator=g).tolist()
    a, b, c = draw(9), draw(5), draw(7)
    prompts = [a, a, a, b, b, c]
    completions = [draw(n) for n in (4, 1, 6, 3, 5, 2)]
    batch = collate(prompts, completions, tok.pad_token_id)
    out = {}
    for share in (False, True):
        model.zero_grad()
        logp = completion_logprobs(model, batch, temperature=0.7, share_prompts=share)
        (logp * torch.linspace(-1, 1, logp.numel()).view_as(logp)).sum().backward()
        out[share] = logp.detach(), _grads(model)
    # packed: 3 rows of 4 + 1 + 6 = 11 columns (33 positions) instead of 6 rows of 6 (36)
    assert packed == ([11] if layout == "packed" else [])
    assert torch.allclose(out[True][0], out[False][0], atol=1e-5)
    assert (out[True][0][batch.mask == 0] == 0).all()
    assert (out[True][1] - out[False][1]).norm() <= 1e-4 * out[False][1].norm()


def test_completions_stay_one_row_each_where_packing_saves_nothing(tiny, monkeypatch):
    """Packing is chosen only where it computes fewer positions: one prompt with three long completions beside
    one with a short one would pack into 2 rows of 30 columns, more than 4 rows of 10."""
    from retain_utils.core import logprobs

    model, tok = tiny
    packed = []
    monkeypatch.setattr(logprobs, "_packed_completions", lambda *a: packed.append(a) or 1 / 0)
    g = torch.Generator().manual_seed(1)
    draw = lambda n: torch.randint(3, model.config.vocab_size, (n,), generator=g).tolist()
    a, b = draw(6), draw(6)
    batch = collate([a, a, a, b], [draw(10), draw(10), draw(10), draw(2)], tok.pad_token_id)
    with torch.no_grad():
        logp = completion_logprobs(model, batch)
    assert packed == [] and logp.shape == (4, 10)


def test_micro_batches_keep_a_prompts_rows_together():
    prompt_lens, completion_lens = [7, 5, 7, 5, 7, 5], [9, 1, 2, 8, 4, 3]
    groups = micro_batches(prompt_lens, completion_lens, max_seqs=3, max_tokens=10**6, prompts=[0, 1, 0, 1, 0, 1])
    assert groups == [[1, 5, 3], [2, 4, 0]]  # prompt 1's rows (shorter prompt) first, each by completion length


def test_a_shared_prompts_positions_count_once_toward_the_token_bound():
    # four samples of one prompt: a pass computes 10 prompt + 4 x 5 completion positions, not 4 x 15
    lens = dict(prompt_lens=[10] * 4, completion_lens=[5] * 4, max_seqs=8, max_tokens=30)
    assert micro_batches(**lens, prompts=[0, 0, 0, 0]) == [[0, 1, 2, 3]]
    assert micro_batches(**lens) == [[0, 1], [2, 3]]  # distinct prompts (SFT): every row's positions count
    assert micro_batches(**lens, prompts=[0, 0, 1, 1]) == [[0, 1], [2, 3]]  # two prompts: 2 x 10 + 4 x 5 > 30


def test_micro_batch_sizes_left_to_the_device():
    from retain_utils.core.training.config import MICRO_BATCH, for_device

    cfg = TrainConfig()
    assert (cfg.micro_batch_size, cfg.micro_batch_tokens) == (None, None)
    cpu, cuda = for_device(cfg, "cpu"), for_device(cfg, "cuda")
    assert (cpu.micro_batch_size, cpu.micro_batch_tokens) == MICRO_BATCH["cpu"] == (32, 4096)
    assert (cuda.micro_batch_size, cuda.micro_batch_tokens) == MICRO_BATCH["accelerator"] == (8, 1024)
    mine = for_device(TrainConfig(micro_batch_size=3, micro_batch_tokens=100), "cpu")
    assert (mine.micro_batch_size, mine.micro_batch_tokens) == (3, 100)
    with pytest.raises(ValueError, match="micro_batch_tokens"):
        resolve(TrainConfig(micro_batch_tokens=0))
    trained = run(config(method="sft", steps=1, micro_batch_size=None))  # train() fills them in for the model's device
    assert (trained.config.micro_batch_size, trained.config.micro_batch_tokens) == (32, 4096)


def test_sft_loss_ignores_prompt_tokens(tiny):
    """The loss is the mean NLL of the response tokens: changing the prompt's own tokens' likelihood (by
    changing what follows them in the prompt) changes nothing but the context."""
    model, tok = tiny
    run_ = SimpleNamespace(policy=model, config=resolve(TrainConfig(method="sft", task="vowel")))
    batch = collate([[1, 5, 6, 7]], [[10, 11]], tok.pad_token_id)
    batch.scale = 1 / 2
    with torch.no_grad():
        loss, _ = sft.loss(run_, batch)
        logits = model(torch.tensor([[1, 5, 6, 7, 10, 11]])).logits[0]
    full_ce = torch.nn.functional.cross_entropy(logits[:-1], torch.tensor([5, 6, 7, 10, 11]), reduction="none")
    assert math.isclose(loss.item(), full_ce[-2:].mean().item(), rel_tol=1e-5)
    assert not math.isclose(loss.item(), full_ce.mean().item(), rel_tol=1e-3)


def test_sft_sequences_end_with_eos(tiny):
    model, tok = tiny
    run_ = SimpleNamespace(tokenizer=tok, tasks={"vowel": VOWEL}, train_examples=TRAIN[:2])
    seqs = sft.expert_sequences(run_)
    assert seqs[0][1] == tok("a", add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    assert tok.decode(seqs[0][0]).endswith("<|im_start|>assistant\n")


def test_advantages():
    r = torch.tensor([[1.0, 0.0, 0.0, 1.0], [1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 1.0]])
    a = grpo.advantages(r)
    assert torch.allclose(a.mean(1), torch.zeros(3), atol=1e-6)
    assert torch.allclose(a[0], torch.tensor([1.0, -1.0, -1.0, 1.0]) * 0.5 / (math.sqrt(1 / 3) + 1e-4))
    assert (a[1] == 0).all()  # a group that all agree teaches nothing
    no_std = grpo.advantages(r, normalize_std=False)
    assert torch.allclose(no_std[2], torch.tensor([-0.25, -0.25, -0.25, 0.75]))
    assert torch.equal(grpo.advantages(r, use_baseline=False, normalize_std=False), r)  # REINFORCE


def test_kl_estimators():
    logp, ref = torch.tensor([-1.0, -2.0, -0.5]), torch.tensor([-1.5, -2.0, -0.1])
    d = [0.5, 0.0, -0.4]
    assert torch.allclose(kl_penalty(logp, ref, "sq"), torch.tensor([0.5 * x * x for x in d]))
    assert torch.allclose(kl_penalty(logp, ref, "k3"), torch.tensor([math.exp(-x) + x - 1 for x in d]))
    assert (kl_penalty(logp, ref, "k3") >= 0).all()
    with pytest.raises(ValueError, match="kl_estimator"):
        kl_penalty(logp, ref, "k2")


def test_grpo_loss_by_hand():
    logp = torch.tensor([[-1.0, -2.0], [-0.5, -3.0]], requires_grad=True)
    ref = torch.tensor([[-1.0, -1.0], [-0.5, -2.0]])
    adv, mask = torch.tensor([2.0, -1.0]), torch.tensor([[1, 1], [1, 0]])
    seq, kl = grpo.grpo_loss(logp, logp.detach(), ref, adv, mask, beta=0.1, kl_estimator="sq")
    # ratio = 1: loss_i = mean_t(-A_i) + beta * mean_t 0.5 d^2
    assert torch.allclose(seq, torch.tensor([-2.0 + 0.1 * (0 + 0.5) / 2, 1.0]))
    assert torch.allclose(kl, torch.tensor([0.25, 0.0]))
    seq.sum().backward()  # d/dlogp = -A / len + beta * d / len
    assert torch.allclose(logp.grad, torch.tensor([[-1.0, -1.0 + 0.1 * -1.0 / 2], [1.0, 0.0]]))


def test_ratio_clipping():
    old = torch.zeros(1, 3)
    logp = torch.log(torch.tensor([[1.5, 1.0, 0.5]]))  # ratios 1.5, 1, 0.5
    for adv, expected in [(1.0, [-1.2, -1.0, -0.5]), (-1.0, [1.5, 1.0, 0.8])]:
        seq, _ = grpo.grpo_loss(logp, old, None, torch.tensor([adv]), torch.ones(1, 3), beta=0.0, clip_eps=0.2)
        assert torch.allclose(seq, torch.tensor([sum(expected) / 3]))


def test_micro_batches_bound_tokens_and_cover_everything():
    prompts, completions = [5, 9, 3, 7, 20, 4], [10, 2, 30, 8, 1, 6]
    groups = micro_batches(prompts, completions, max_seqs=3, max_tokens=40)
    assert sorted(i for g in groups for i in g) == list(range(6))
    for g in groups:
        assert len(g) <= 3
        assert len(g) == 1 or len(g) * (max(prompts[i] for i in g) + max(completions[i] for i in g)) <= 40


def test_micro_batching_does_not_change_training():
    one = run(config(method="sft", steps=2, micro_batch_size=1))
    many = run(config(method="sft", steps=2, micro_batch_size=8, micro_batch_tokens=10**6))
    for a, b in zip(one.steps, many.steps):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5)
    for p, q in zip(one.model.parameters(), many.model.parameters()):  # Adam amplifies ~0 gradients' noise
        assert (p - q).norm() <= 1e-5 * p.norm()


def test_lr_schedule():
    assert lr_multiplier(0, 100, 0.03) == pytest.approx(1 / 3)
    assert lr_multiplier(2, 100, 0.03) == 1.0
    assert lr_multiplier(3, 100, 0.03) == 1.0
    assert lr_multiplier(99, 100, 0.03) < 0.01
    assert lr_multiplier(51, 100, 0.03) == pytest.approx(0.5, abs=0.02)


# ---------------------------------------------------------------------------------------------- learning


@pytest.mark.parametrize("method, lr", [("grpo", 3e-3), ("reinforce", 3e-3), ("sft", 3e-3), ("self_sft", 1e-3),
                                        ("iterative_sft", 1e-3)])
def test_methods_learn_the_toy_task(method, lr):
    extra = {"regenerate_every": 3} if method == "iterative_sft" else {}
    res = run(config(method=method, lr=lr, steps=6, **extra))
    first, last = res.evals[0]["accuracy"], res.evals[-1]["accuracy"]
    assert [e["step"] for e in res.evals] == [0, 3, 6]
    traj = res.trajectory()
    assert traj[0] == {"step": 0, "gain": 0.0, "drop": 0.0}
    assert traj[-1]["gain"] == pytest.approx(100 * (res.evals[-1]["accuracy"]["vowel"] - first["vowel"]))
    assert traj[-1]["drop"] == pytest.approx(100 * (first["digit"] - res.evals[-1]["accuracy"]["digit"]))
    assert set(first) == {"vowel", "digit"}
    assert last["vowel"] >= first["vowel"] + 0.4, (first, last)
    if method in ("grpo", "reinforce"):
        assert res.steps[-1]["reward"] > res.steps[0]["reward"]
    else:
        assert res.steps[-1]["nll"] < res.steps[0]["nll"]
    assert res.status == "finished" and len(res.steps) == 6


def test_grpo_with_kl_lora_and_bf16():
    res = run(config(lora_rank=4, beta=0.05, steps=3, precision="bf16", lr=1e-2))
    model = res.model
    assert hasattr(model, "peft_config")
    assert all(("lora_" in n) == p.requires_grad for n, p in model.named_parameters())
    assert res.steps[0]["kl"] == pytest.approx(0.0, abs=1e-6)  # the first step starts at the reference
    assert res.steps[-1]["kl"] > 0


def test_reuse_with_clipping_runs():
    res = run(config(reuse=2, steps=4, beta=0.05))
    assert res.config.clip_eps == 0.2
    assert res.steps[0]["reward"] == res.steps[1]["reward"]  # step 2 reuses step 1's rollouts


def test_stale_rollouts_come_from_the_initial_model():
    fresh = run(config(steps=4, seed=3))
    stale = run(config(steps=4, seed=3, rollouts_from="initial"))
    assert stale.config.clip_eps is None and stale.config.importance_cap == 2.0  # truncated weights, no trust region
    assert stale.steps[0]["reward"] == fresh.steps[0]["reward"]  # step 1: both sample the initial model
    frozen = run(config(steps=4, seed=3, rollouts_from="initial", lr=1e-12))  # the policy barely moves
    assert [s["reward"] for s in stale.steps] == [s["reward"] for s in frozen.steps]  # whatever it learns
    assert fresh.steps[-1]["reward"] > stale.steps[-1]["reward"]  # on-policy rollouts improve, stale ones cannot


def test_keep_correct_collects_accepted_rollouts_and_counts_tokens(monkeypatch):
    from retain_utils.core.training import loop

    sampled, accepted = [], []

    def every_other_finishes(*args, **kw):  # the tiny model rarely says EOS within 4 tokens: make half finish
        comps = real_generate(*args, **kw)
        for i, c in enumerate(comps):
            if i % 2 == 0:
                c.completion_ids, c.finished = [*c.completion_ids, EOS], True
            if c.finished and c.text[:1] in "aeiou":
                accepted.append(c.completion_ids)
        sampled.extend(comps)
        return comps

    real_generate = loop.generate
    monkeypatch.setattr(loop, "generate", every_other_finishes)
    res = run(config(steps=3, keep_correct=True, require_eos=True))
    rewards = sum(s["reward"] for s in res.steps) * 4 * 4  # batch_size x group_size per step
    assert len(res.correct) == round(rewards) == len(accepted) > 0  # a cut-off answer earns 0 and is not kept
    assert [r["completion_ids"] for r in res.correct] == accepted  # the sampled ids themselves, EOS last
    assert all(r["text"][:1] in "aeiou" and 0 <= r["example"] < len(TRAIN) for r in res.correct)
    monkeypatch.setattr(loop, "generate", real_generate)
    assert all(0 < s["generated_tokens"] <= 4 * 4 * 5 for s in res.steps)  # 4 tokens + the EOS added above
    reused = run(config(steps=4, reuse=2))
    assert [s["generated_tokens"] > 0 for s in reused.steps] == [True, False, True, False]
    iterative = run(config(method="iterative_sft", regenerate_every=2, steps=4, lr=1e-3))
    assert [s["generated_tokens"] > 0 for s in iterative.steps] == [True, False, True, False]
    assert run(config(method="grpo", steps=1)).correct == []  # only kept when asked


# ---------------------------------------------------------------------------------------------- checkpoints


class Interrupt(Exception):
    pass


@pytest.mark.parametrize("method, extra", [("grpo", {}), ("self_sft", {}), ("grpo", {"reuse": 2})],
                         ids=["grpo", "self_sft", "grpo-reused-rollouts"])
def test_resume_matches_uninterrupted_run(tmp_path, monkeypatch, method, extra):
    kw = dict(method=method, steps=6, checkpoint_every=3, grad_accum=2, lr=1e-3, **extra)
    whole = run(config(out_dir=str(tmp_path / "a"), **kw))
    module = METHODS[method]
    original = module.step_data

    def crash_at_step_4(run_, step, accum):
        if step == 4:
            raise Interrupt
        return original(run_, step, accum)

    monkeypatch.setattr(module, "step_data", crash_at_step_4)
    with pytest.raises(Interrupt):
        run(config(out_dir=str(tmp_path / "b"), **kw))
    assert len((tmp_path / "b" / "metrics.jsonl").read_text().splitlines()) == 4  # steps 1-4, checkpoint at 3
    monkeypatch.setattr(module, "step_data", original)
    resumed = run(config(out_dir=str(tmp_path / "b"), **kw))
    keys = ("loss", "reward", "nll", "grad_norm", "lr")
    strip = lambda rows: [{k: r[k] for k in keys if k in r} for r in rows]
    assert strip(resumed.steps) == strip(whole.steps)
    assert [e["accuracy"] for e in resumed.evals] == [e["accuracy"] for e in whole.evals]
    for (n, p), q in zip(whole.model.named_parameters(), resumed.model.parameters()):
        assert torch.equal(p, q), n
    lines = [json.loads(x) for x in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert strip(lines) == strip(whole.steps)


def test_a_checkpoint_holding_code_is_refused_unloaded(tmp_path):
    """A planted pickle in a run folder (on Colab a shared Google Drive) must not run: checkpoints load with
    weights_only=True, and anything beyond tensors and plain data is a ValueError naming the file."""
    import os
    import pickle

    class Planted:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "pwned"),))

    (tmp_path / "checkpoint.pt").write_bytes(pickle.dumps({"step": 1, "x": Planted()}))
    with pytest.raises(ValueError, match="checkpoint.pt is not a checkpoint this package wrote"):
        run(config(out_dir=str(tmp_path), steps=3))
    assert not (tmp_path / "pwned").exists()


def test_a_checkpoint_holds_tensors_and_plain_data_only(tmp_path):
    run(config(out_dir=str(tmp_path), steps=3, reuse=3))
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert state["step"] == 3 and "rollouts" in state["data"]


def test_resume_with_another_config_is_refused(tmp_path):
    run(config(out_dir=str(tmp_path), steps=3))
    with pytest.raises(ValueError, match="different config.*lr"):
        run(config(out_dir=str(tmp_path), steps=3, lr=1e-4))


def test_nan_guard_keeps_last_good_checkpoint(tmp_path, monkeypatch):
    original, calls = sft.loss, []

    def nan_from_third_step(run_, batch):  # one micro batch per step here
        calls.append(1)
        loss, metrics = original(run_, batch)
        return (loss * float("nan") if len(calls) > 2 else loss), metrics

    monkeypatch.setattr(sft, "loss", nan_from_third_step)
    path = tmp_path / "results.json"
    with pytest.raises(TrainingDiverged, match="step 2.*last good checkpoint.*step 2"):
        run(config(method="sft", out_dir=str(tmp_path / "run"), checkpoint_every=1), results_path=path)
    assert len((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()) == 2
    assert torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)["step"] == 2
    record = results.load(path)["training"]["sft-vowel-s0"]
    assert record["status"].startswith("sft-vowel-s0: non-finite loss") and len(record["steps"]) == 2


def test_logs_and_results_file(tmp_path):
    path = tmp_path / "results.json"
    res = run(config(steps=3, out_dir=str(tmp_path / "run"), run_name="toy"), results_path=path)
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert {"loss", "reward", "lr", "grad_norm", "train_tokens_per_s", "gen_tokens_per_s"} <= set(rows[0])
    evals = [json.loads(x) for x in (tmp_path / "run" / "evals.jsonl").read_text().splitlines()]
    assert [e["step"] for e in evals] == [0, 3]
    record = results.load(path)["training"]["toy"]
    assert record["status"] == "finished" and record["evals"] == res.evals
    assert record["config"]["beta"] == 0.05 and record["config"]["lr"] == 3e-3


# ---------------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("kw, message", [
    (dict(method="ppo"), "unknown method 'ppo'; valid methods: sft, self_sft"),
    (dict(task="gsm8k"), "target task 'gsm8k' is not among the tasks given"),
    (dict(group_size=1), "group_size must be >= 2"),
    (dict(temperature=0.0), "temperature must be a positive"),
    (dict(lr=0.0), "lr must be a positive"),
    (dict(lr=-1e-5), "lr must be a positive"),
    (dict(kl_estimator="k2"), "unknown kl_estimator"),
    (dict(method="reinforce", use_baseline=True), "method='reinforce' has no baseline"),
    (dict(method="iterative_sft"), "needs regenerate_every"),
    (dict(steps=0), "steps must be a positive"),
    (dict(rollouts_from="replay"), "unknown rollouts_from 'replay'; valid: policy, initial"),
    (dict(method="sft", keep_correct=True), "keep_correct=True is for RL methods"),
])
def test_bad_config(kw, message):
    with pytest.raises(ValueError, match=message):
        run(config(**kw))


def test_lora_on_model_without_target_modules():
    from transformers import GPT2Config, GPT2LMHeadModel

    _, tok = diverse_tiny_model()
    gpt2 = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=len(tok)))
    with pytest.raises(ValueError, match="none of the LoRA target modules"):
        run(config(lora_rank=4), model=(gpt2, tok))


def test_examples_of_wrong_task():
    model, tok = diverse_tiny_model()
    with pytest.raises(ValueError, match="target task 'vowel'; found digit"):
        train(config(), model, tok, [VOWEL, DIGIT], DIGIT.make_examples(2), progress=False)
    with pytest.raises(ValueError, match="unknown task"):
        train(config(), model, tok, [VOWEL], TRAIN, {"digit": DIGIT.make_examples(2)}, progress=False)


# ---------------------------------------------------------------------------------------------- TRL


def test_grpo_loss_equals_trl(tmp_path):
    """Our GRPO trainer's loss and gradient equal TRL's GRPOTrainer._compute_loss on one fixed batch
    (loss_type="grpo", beta 0.05 with TRL's k3 estimator, group std scaling; log-probs at temperature 1, as
    the authors': TRL takes them at its sampling temperature, so TRL samples at 1 here). TRL 1.x by
    default also multiplies the KL term by the importance ratio (use_bias_correction_kl), which adds
    KL x grad log pi to the gradient; the paper's loss (and ours) has no such term, so it is off here."""
    pytest.importorskip("trl")
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    model, tok = diverse_tiny_model(seed=0)
    model.save_pretrained(tmp_path / "init")
    tok.save_pretrained(tmp_path / "init")
    args = GRPOConfig(output_dir=str(tmp_path / "trl"), beta=0.05, loss_type="grpo", scale_rewards="group",
                      num_generations=4, per_device_train_batch_size=8, temperature=1.0, max_completion_length=8,
                      use_bias_correction_kl=False, use_cpu=True, report_to=[], bf16=False)
    prompts = Dataset.from_dict({"prompt": [[{"role": "user", "content": "hi"}]] * 2})
    trainer = GRPOTrainer(model=str(tmp_path / "init"), reward_funcs=[lambda completions, **_: [0.0] * len(completions)],
                          args=args, train_dataset=prompts, processing_class=tok)
    torch.manual_seed(1)
    with torch.no_grad():  # move the policy away from the reference so the KL term is not zero
        for p_trl, p_ours in zip(trainer.model.parameters(), model.parameters()):
            p_trl.add_(0.05 * torch.randn_like(p_trl))
            p_ours.copy_(p_trl)
    g = torch.Generator().manual_seed(0)
    prompt_ids = [[1, 5, 6, 7, 8], [1, 9, 10]] * 4
    completions = [torch.randint(3, len(tok), (n,), generator=g).tolist() for n in (5, 2, 7, 3, 6, 1, 4, 7)]
    batch = collate(prompt_ids, completions, tok.pad_token_id)
    rewards = torch.tensor([[1.0, 0.0, 0.0, 1.0], [0.0, 0.0, 1.0, 0.0]])
    cfg = resolve(TrainConfig(method="grpo", task="vowel", beta=0.05, kl_estimator="k3", temperature=0.8))
    ours = SimpleNamespace(config=cfg, policy=model)
    ref_model, _ = diverse_tiny_model(seed=0)
    with torch.no_grad():
        batch.extra["ref_logp"] = completion_logprobs(ref_model, batch, 1.0)
    batch.extra["adv"] = grpo.advantages(rewards).flatten()
    batch.scale = 1 / 8
    loss, _ = grpo.loss(ours, batch)
    loss.backward()

    start = batch.start
    inputs = {"prompt_ids": batch.input_ids[:, :start], "prompt_mask": batch.attention_mask[:, :start],
              "completion_ids": batch.input_ids[:, start:], "completion_mask": batch.mask,
              "advantages": batch.extra["adv"]}
    ids, attn = batch.input_ids, batch.attention_mask
    with torch.no_grad():
        trl_ref = trainer._get_per_token_logps_and_entropies(trainer.ref_model, ids, attn, ids.shape[1] - start)[0]
    inputs["ref_per_token_logps"] = trl_ref
    assert torch.allclose(trl_ref * batch.mask, batch.extra["ref_logp"], atol=1e-5)
    trainer.model.eval()  # "eval" mode: TRL then divides by no gradient-accumulation count
    trl_loss = trainer._compute_loss(trainer.model, inputs)
    trl_loss.backward()
    assert trl_loss.item() == pytest.approx(loss.item(), rel=1e-5, abs=1e-7)
    assert abs(loss.item()) > 1e-3
    for (name, p_trl), p_ours in zip(trainer.model.named_parameters(), model.parameters()):
        assert (p_trl.grad - p_ours.grad).norm() <= 1e-4 * p_ours.grad.norm(), name


def test_iterative_round_that_solves_nothing_keeps_the_previous_data(monkeypatch):
    from retain_utils.core.training import self_sft

    calls = []
    original = VowelTask.reward

    def reward_only_in_round_0(self, example, text):
        return original(self, example, text) if len(calls) == 0 else 0.0

    real = self_sft.regenerate

    def counting(run_, round_):
        out = real(run_, round_)
        calls.append(round_)
        return out

    monkeypatch.setattr(VowelTask, "reward", reward_only_in_round_0)
    monkeypatch.setattr(self_sft, "regenerate", counting)
    res = run(config(method="iterative_sft", regenerate_every=1, steps=3, lr=1e-3))
    assert calls == [0, 1, 2] and res.status == "finished"
    assert res.steps[0]["data_accept_rate"] > 0 and res.steps[1]["data_accept_rate"] == 0
    assert res.steps[1]["data_size"] == res.steps[0]["data_size"]


# ---------------------------------------------------------------------------------------------- GPU plan (on CPU)


def test_fp16_trains_with_a_grad_scaler_that_skips_overflowing_steps(monkeypatch):
    import functools

    # an absurd initial scale overflows fp16 in the backward pass: the scaler must skip and shrink, not diverge
    monkeypatch.setattr(torch.amp, "GradScaler", functools.partial(torch.amp.GradScaler, init_scale=2.0**60))
    model, tok = diverse_tiny_model(seed=0)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    res = train(config(method="sft", steps=2, precision="fp16", lr=1e-2, eval_every=100), model, tok,
                [VOWEL, DIGIT], TRAIN, (), progress=False)
    assert res.status == "finished"
    first, last = res.steps[0], res.steps[-1]
    assert first["overflow_skipped"] == 1.0 and first["grad_norm"] is None
    assert last["loss_scale"] < 2.0**60


def test_precision_auto_follows_the_device(monkeypatch):
    from retain_utils.core import models
    from retain_utils.core.training.loop import prepare_policy

    model, _ = diverse_tiny_model(seed=0)
    monkeypatch.setattr(models, "default_dtype", lambda device: torch.float16)  # as on a T4
    policy, sampler, reference, autocast = prepare_policy(model, resolve(config(precision="auto", lora_rank=0)))
    assert autocast == torch.float16 and next(sampler.parameters()).dtype == torch.float16
    assert next(policy.parameters()).dtype == torch.float32  # fp32 master weights
    model, _ = diverse_tiny_model(seed=0)
    assert prepare_policy(model, resolve(config(precision="fp16", lora_rank=0)))[3] == torch.float16


def test_lora_reference_is_the_initial_model_and_only_adapters_train():
    from retain_utils.core.logprobs import collate, completion_logprobs

    model, tok = diverse_tiny_model(seed=0)
    initial, _ = diverse_tiny_model(seed=0)
    base_before = {n: p.detach().clone() for n, p in model.named_parameters()}
    res = train(config(lora_rank=4, beta=0.05, steps=3, lr=1e-2, eval_every=100), model, tok, [VOWEL, DIGIT],
                TRAIN, (), progress=False)
    policy = res.model
    batch = collate([[5, 6, 7, 8], [9, 10]], [[11, 12, 13], [14]], tok.pad_token_id)
    with torch.no_grad():
        want = completion_logprobs(initial, batch)
        with policy.disable_adapter():
            ref = completion_logprobs(policy, batch)
        now = completion_logprobs(policy, batch)
    assert torch.allclose(ref, want, atol=1e-6)  # adapters off = the initial model, no second copy
    assert not torch.allclose(now, want, atol=1e-4)  # the adapters did train
    base_after = {n.replace("base_model.model.", "").replace(".base_layer", ""): p
                  for n, p in policy.named_parameters() if "lora_" not in n}
    assert set(base_after) == set(base_before)
    assert all(torch.equal(base_after[n], base_before[n]) for n in base_before)  # frozen base unchanged
    assert all(p.requires_grad == ("lora_" in n) for n, p in policy.named_parameters())


def test_lora_rank_auto_is_full_fine_tuning_on_cpu():
    res = run(config(steps=1, eval_every=100))
    assert TrainConfig().lora_rank == "auto" and res.config.lora_rank == 0
    assert not hasattr(res.model, "peft_config")
