"""The authors' RL rules and the collapse diagnostics: EOS rule, truncated importance weights, constant
learning rate, AdamW betas, the loop detector, run flags and packed answer texts."""

from types import SimpleNamespace

import pytest
import torch

from retain_utils.analysis import diagnostics
from retain_utils.chapters import plots
from retain_utils.core import evaluation
from retain_utils.core.generation import Completion
from retain_utils.core.repetition import is_looping, looping_share
from retain_utils.core.tasks.base import Example, Task
from retain_utils.core.training import TrainConfig, grpo, resolve, self_sft
from retain_utils.core.training.loop import lr_multiplier, sample_reward


class Always(Task):
    """Every answer is right: only the EOS rule can make a reward 0."""

    name = "always"

    def parse(self, response):
        return response

    def verify(self, example, parsed):
        return True


EX = Example("always", "say anything", None, "ok")


def _run(**kw):
    cfg = resolve(TrainConfig(method="grpo", task="always", **kw))
    return SimpleNamespace(config=cfg, tasks={"always": Always()})


def _completion(finished: bool) -> Completion:
    return Completion(0, [1, 2], [5, 6, 0] if finished else [5, 6, 7], "ok", finished)


@pytest.mark.parametrize("method", ["grpo", "reinforce", "self_sft", "iterative_sft"])
def test_an_answer_cut_off_before_eos_earns_nothing(method):
    extra = {"regenerate_every": 2} if method == "iterative_sft" else {}
    run = SimpleNamespace(config=resolve(TrainConfig(method=method, task="always", **extra)), tasks={"always": Always()})
    assert run.config.require_eos
    assert sample_reward(run, EX, _completion(True)) == 1.0
    assert sample_reward(run, EX, _completion(False)) == 0.0
    lax = SimpleNamespace(config=resolve(TrainConfig(method=method, task="always", require_eos=False, **extra)),
                          tasks=run.tasks)
    assert sample_reward(lax, EX, _completion(False)) == 1.0


def test_self_sft_keeps_only_finished_correct_answers():
    run = SimpleNamespace(config=resolve(TrainConfig(method="self_sft", task="always", group_size=2)),
                          tasks={"always": Always()}, train_examples=[EX], data={}, progress=False,
                          generate=lambda *a, **k: [_completion(True), _completion(False)])
    self_sft.regenerate(run, 0)
    assert run.data["sequences"] == [([1, 2], [5, 6, 0])]
    assert run.data["metrics"]["data_accept_rate"] == 0.5


def test_rl_defaults_follow_the_authors():
    cfg = resolve(TrainConfig(method="grpo", task="always"))
    assert (cfg.lr, cfg.lr_schedule, cfg.temperature, cfg.group_size, cfg.beta) == (5e-6, "constant", 0.8, 5, 0.05)
    assert (cfg.adam_beta1, cfg.adam_beta2) == (0.9, 0.95) and cfg.clip_eps is None
    assert resolve(TrainConfig(method="sft", task="always")).lr_schedule == "cosine"
    assert [lr_multiplier(s, 12, 0.03, "constant") for s in range(12)] == [1.0] * 12
    assert grpo.LOGPROB_TEMPERATURE == 1.0


def test_stale_rollouts_use_truncated_importance_weights():
    cfg = resolve(TrainConfig(method="grpo", task="always", rollouts_from="initial"))
    assert cfg.importance_cap == 2.0 and cfg.clip_eps is None
    old = torch.zeros(1, 3)
    logp = torch.log(torch.tensor([[3.0, 1.0, 0.5]])).requires_grad_(True)  # ratios 3, 1, 0.5
    seq, _ = grpo.grpo_loss(logp, old, None, torch.tensor([1.0]), torch.ones(1, 3), beta=0.0, importance_cap=2.0)
    seq.sum().backward()
    # gradient of -w_t A / T with respect to log pi: -min(r, 2) A / 3; no token is cut off as PPO's clip would
    assert torch.allclose(logp.grad, torch.tensor([[-2.0, -1.0, -0.5]]) / 3)
    assert torch.allclose(seq, torch.tensor([-(2.0 + 1.0 + 0.5) / 3]))


@pytest.mark.parametrize("kw, message", [
    (dict(importance_cap=2.0), "importance_cap is for stale rollouts"),
    (dict(importance_cap=0.0), "importance_cap must be a positive"),
    (dict(adam_beta2=1.0), r"adam_beta2 must be in \[0, 1\)"),
    (dict(lr_schedule="linear"), "unknown lr_schedule 'linear'; valid: constant, cosine"),
    (dict(require_eos="yes"), "require_eos must be True or False"),
])
def test_bad_protocol_settings_are_refused(kw, message):
    with pytest.raises(ValueError, match=message):
        resolve(TrainConfig(method="grpo", task="always", **kw))


LOOPS = ["= 24 " * 20, "The answer is: 7. " * 12, "a b c " * 15, list(range(5)) * 8]
NOT_LOOPS = ["The capital of France is Paris. It sits on the Seine and has about two million people.",
             "- apples\n- pears\n- plums\n- figs\n- dates\n- limes\n- kiwis\n- grapes",
             '{"name": "Ada", "born": 1815, "field": "mathematics", "known for": "the analytical engine"}',
             "one two three four five six seven eight " * 3,  # an 8-gram three times: not yet a loop
             list(range(40))]


@pytest.mark.parametrize("text", LOOPS)
def test_loop_detector_flags_loops(text):
    assert is_looping(text)


@pytest.mark.parametrize("text", NOT_LOOPS)
def test_loop_detector_passes_ordinary_answers(text):
    assert not is_looping(text)


def test_loop_detector_share_and_settings():
    assert looping_share(LOOPS + NOT_LOOPS) == pytest.approx(len(LOOPS) / (len(LOOPS) + len(NOT_LOOPS)))
    assert looping_share([]) == 0.0
    with pytest.raises(ValueError, match="loop_n must be an int >= 1, got 0"):
        is_looping("x", n=0)
    with pytest.raises(ValueError, match="loop_repeats must be an int >= 2"):
        is_looping("x", repeats=1)


def test_loop_detector_is_linear_in_the_answer():
    import time
    t0 = time.perf_counter()
    is_looping(list(range(200_000)))
    assert time.perf_counter() - t0 < 2.0


def test_flags_of_a_collapsed_run():
    healthy = [{"zero_std_frac": 0.3, "completion_len": 60.0}] * 8
    assert diagnostics.flags(healthy, {"mmlu": {"looping": [0] * 10, "truncated": [1] + [0] * 9}}) == []
    dead = healthy[:4] + [{"zero_std_frac": 1.0, "completion_len": 10.0}] * 4
    final = {"mmlu": {"looping": [1] * 3 + [0] * 7, "truncated": [1] * 3 + [0] * 7}}
    assert diagnostics.flags(dead, final) == ["no_signal", "shrunk", "looping:mmlu", "cut_off:mmlu"]
    assert diagnostics.flags([], {}) == []  # SFT: no rollouts, no evaluation flags


def test_answer_texts_pack_and_unpack():
    texts = ["The answer is: B", "", "ünïcode ✓", "x" * 5000]
    packed = evaluation.pack_texts(texts)
    assert evaluation.unpack_texts(packed) == texts and len(packed) < 2000
    with pytest.raises(ValueError, match="packed answer texts are damaged"):
        evaluation.unpack_texts(packed[:-7] + "!")


def test_task_score_keeps_formats_and_texts():
    task, examples = Always(), [EX] * 3
    score = evaluation.score_texts(task, examples, ["a", "b " * 40, "c"], truncated=[False, True, False])
    assert (score.n_truncated, score.truncated, score.n_looping, score.looping) == (1, (0, 1, 0), 1, (0, 1, 0))
    assert score.texts == ("a", "b " * 40, "c") and score.n_lenient == 3
    assert evaluation.TaskScore.from_dict(score.to_dict()) == score
    assert isinstance(score.to_dict()["texts"], str), "a log line holds the answers packed"
    unpacked = {**score.to_dict(), "texts": list(score.texts)}  # as older logs hold them
    assert evaluation.TaskScore.from_dict(unpacked) == score


def test_step_metrics_are_read_from_the_run_log(tmp_path):
    import json

    (tmp_path / "metrics.jsonl").write_text("\n".join(json.dumps({"step": s, "reward": 0.5, "entropy": 1.0 / s})
                                                      for s in (1, 2)))
    record = SimpleNamespace(config={"out_dir": str(tmp_path)}, variant="GRPO", seed=0, flags=[])
    assert [r["step"] for r in diagnostics.step_metrics(record)] == [1, 2]
    assert diagnostics.step_metrics(SimpleNamespace(config={})) == []
    fig = plots.plot_diagnostics([record], keys=("entropy",))
    assert fig.axes[0].get_title() == "token entropy (nats)" and len(fig.axes[0].lines) == 1
    (tmp_path / "metrics.jsonl").write_text('{"step": 1}\n{"step"')
    with pytest.raises(ValueError, match="metrics.jsonl, line 2: not valid JSON"):
        diagnostics.step_metrics(record)
