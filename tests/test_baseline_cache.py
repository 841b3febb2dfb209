"""The initial model's evaluation kept on disk: read back only under the very same key, and a run from a bench
that read it equals a run from a bench that computed it."""

import dataclasses
import json

import numpy as np

from retain_utils.chapters import experiment
from retain_utils.core import baseline_cache, models
from retain_utils.core.training import TrainConfig

COMPARED = ("gain", "drop", "kl", "accuracy_initial", "accuracy_final", "retention", "longer_budget", "evals",
            "trajectory", "flags")


def _untimed(scores):
    """Scores without their generation seconds (a clock reading, not a result)."""
    return {t: dataclasses.replace(s, seconds=0.0) for t, s in scores.items()}


def _bench(monkeypatch, cache, seed=0):
    monkeypatch.setattr(experiment, "load_model", lambda name, dtype=None: models.tiny_model(seed=seed))
    return experiment.make_bench("tiny", "mmlu", 4, 3, task_names=("mmlu", "countdown"), cache=cache, progress=False)


def _run(bench, method="sft"):
    config = TrainConfig(method=method, task="mmlu", steps=1, batch_size=2, group_size=2, eval_every=1,
                         max_new_tokens=4, eval_max_new_tokens=4)
    return experiment.run_variant(bench, config, kl_prompts=2, progress=False).to_dict()


def test_a_kept_baseline_reads_back_and_its_runs_equal_a_fresh_one(tmp_path, monkeypatch, capsys):
    fresh = _bench(monkeypatch, None)
    first = _bench(monkeypatch, tmp_path)
    stored = sorted(p.name for p in tmp_path.iterdir())
    assert len(stored) == 1 and stored[0].startswith("baseline-")
    capsys.readouterr()
    again = _bench(monkeypatch, tmp_path)
    assert "read from" in capsys.readouterr().out
    assert (fresh.baseline_read, first.baseline_read, again.baseline_read) == (False, False, True)
    for bench in (first, again):
        assert _untimed(bench.baseline) == _untimed(fresh.baseline) and bench.answers == fresh.answers
        assert set(bench.reference_ll) == set(fresh.reference_ll)
        for task, values in fresh.reference_ll.items():
            assert bench.reference_ll[task].dtype == values.dtype and np.array_equal(bench.reference_ll[task], values)
    run_fresh, run_first, run_again = _run(fresh), _run(first), _run(again)
    assert len(list(tmp_path.glob("longer_budget-*.json"))) == 1, "the initial model's longer answers are kept too"
    run_later = _run(_bench(monkeypatch, tmp_path))  # both stored evaluations read back
    for key in COMPARED:
        assert run_fresh[key] == run_first[key] == run_again[key] == run_later[key], key
    sampled_fresh, sampled_again = _run(fresh, "grpo"), _run(again, "grpo")  # sampling sees the same generator
    for key in COMPARED:
        assert sampled_fresh[key] == sampled_again[key], key


def test_another_model_or_a_broken_file_computes_afresh(tmp_path, monkeypatch, capsys):
    _bench(monkeypatch, tmp_path, seed=0)
    _bench(monkeypatch, tmp_path, seed=1)  # other weights under the same name: another key, another file
    files = sorted(tmp_path.glob("baseline-*.json"))
    assert len(files) == 2
    files[0].write_text("{not json")
    files[1].write_text(json.dumps({"key": {"what": "baseline"}, "value": {}}))
    capsys.readouterr()
    reference = _bench(monkeypatch, None, seed=0)
    for seed in (0, 1):
        bench = _bench(monkeypatch, tmp_path, seed=seed)
        assert "computed again" in capsys.readouterr().out
    assert _untimed(_bench(monkeypatch, tmp_path, seed=0).baseline) == _untimed(reference.baseline)  # rewritten, now read back
    assert "read from" in capsys.readouterr().out


def test_the_key_holds_what_the_evaluation_depends_on():
    model, _ = models.tiny_model(seed=0)
    tasks = {"mmlu": experiment.get_task("mmlu")}
    questions = {"mmlu": tasks["mmlu"].make_examples(2, seed=0, split="eval")}
    key = baseline_cache.key("baseline", model, tasks, questions)
    assert key == baseline_cache.key("baseline", model, tasks, questions)
    assert key != baseline_cache.key("baseline", model, tasks, {"mmlu": questions["mmlu"][:1]})
    assert key != baseline_cache.key("baseline", model, tasks, questions, max_new_tokens=8)
    next(model.parameters()).data[0, 0] += 1.0
    assert baseline_cache.key("baseline", model, tasks, questions)["weights"] != key["weights"]
    assert baseline_cache.read(None, key) is None
