"""The LLM experiment layer on a tiny random model: names checked first, records, incremental saving."""

import json

import pytest

import dataclasses

from retain_utils.analysis import tables
from retain_utils.chapters import experiment, plots
from retain_utils.core import models
from retain_utils.core.records import RunRecord
from retain_utils.core.training import TrainConfig


def test_unknown_names_fail_before_any_model_loads():
    with pytest.raises(ValueError, match="unknown task 'chess'; valid tasks: ifeval, mmlu, countdown"):
        experiment.check_names("chess", ["mmlu", "countdown"])
    with pytest.raises(ValueError, match="unknown method 'dpo'; valid methods: sft, self_sft"):
        experiment.check_names("mmlu", ["mmlu", "countdown"], ["dpo"])
    with pytest.raises(ValueError, match="at least one task besides the target"):
        experiment.check_names("mmlu", ["mmlu"])
    with pytest.raises(ValueError, match="n_eval must be a positive int"):
        experiment.make_bench("no-such-model", "mmlu", 4, 0)
    with pytest.raises(ValueError, match="n_eval_target must be a positive int"):
        experiment.make_bench("no-such-model", "mmlu", 4, 2, n_eval_target=0)
    with pytest.raises(ValueError, match="mmlu: asked for n=500 eval examples but the eval split has only"):
        experiment.make_bench("no-such-model", "countdown", 4, 500, n_eval_target=4, task_names=("countdown", "mmlu"))


def test_run_variant_records_gain_drop_and_saves_each_run(tmp_path, monkeypatch):
    monkeypatch.setattr(experiment, "load_model", lambda name, dtype=None: models.tiny_model(seed=0))
    bench = experiment.make_bench("tiny", "mmlu", 4, 2, task_names=("mmlu", "countdown"), progress=False)
    path = tmp_path / "r.json"
    for method in ("sft", "grpo"):
        config = TrainConfig(method=method, task="mmlu", steps=1, batch_size=2, group_size=2, eval_every=1,
                             max_new_tokens=4, eval_max_new_tokens=4)
        record = experiment.run_variant(bench, config, results_path=path, kl_prompts=2, progress=False)
        assert record.trajectory[0]["gain"] == 0 and record.trajectory[0]["drop"] == 0
        assert record.kl >= 0 and record.method == method
        lo, hi = record.gain_interval  # over the 2 held-out questions: it holds the point estimate
        assert lo <= record.gain <= hi and record.drop_interval[0] <= record.drop
        assert [e["step"] for e in record.evals] == [0, 1]  # every evaluation's per-question results
        assert {t: len(c) for t, c in record.evals[0]["correct"].items()} == {"mmlu": 2, "countdown": 2}
        assert record.evals[0]["correct"]["mmlu"] == list(bench.baseline["mmlu"].correct)
        longer = record.longer_budget  # the ends scored again at 4x the budget for answers cut off, not looping
        assert longer["factor"] == 4 and set(longer["truncated_final"]) == {"mmlu", "countdown"}
        for end in ("initial", "final"):
            assert all(0 <= longer[f"rescored_{end}"][t] <= record.n_eval[t] for t in record.n_eval)
        assert longer["gain"] == pytest.approx(longer["accuracy_final"]["mmlu"] - longer["accuracy_initial"]["mmlu"])
    assert list(bench.kl_samples) == [(0, 2)], "pi_0's KL responses are sampled once per seed, for every run"
    assert len(bench.longer_baseline) == 1, "the initial model's longer answers are generated once, for every run"
    runs = json.loads(path.read_text())["runs"]
    assert [(r["variant"], r["method"]) for r in runs] == [("SFT", "sft"), ("GRPO", "grpo")]
    assert set(runs[0]["accuracy_final"]) == {"mmlu", "countdown"}
    assert RunRecord.from_dict(runs[1]) == record, "a record reads back from the results file as it was"
    table = experiment.summary(runs)
    assert list(table.index) == ["SFT", "GRPO"] and (table["seeds"] == 1).all()
    longer = experiment.longer_budget_frame(runs)
    assert list(longer["variant"]) == ["SFT", "GRPO"] and (longer["n"] == 4).all()
    shown = tables.longer_budget(longer)
    assert "Drop at 4× budget (pp)" in shown.columns and list(shown["Seeds"]) == [1, 1]


def test_the_longer_budget_sentence_names_the_drop_that_moved_most():
    import pandas as pd

    from retain_utils.chapters import findings

    def frame(drops):
        return pd.DataFrame([{"target": "ifeval", "variant": v, "seed": 0, "factor": 4, "gain": 5.0,
                              "gain_longer": 6.0, "drop": d, "drop_longer": dl} for v, (d, dl) in drops.items()])

    moved = findings.longer_budget_sentence(frame({"SFT": (10.0, 4.0), "GRPO": (2.0, 2.5)}))
    assert "SFT's" in moved and "+10.0 → +4.0 pp" in moved and "not lost skill" in moved
    still = findings.longer_budget_sentence(frame({"SFT": (10.0, 9.0), "GRPO": (2.0, 2.5)}))
    assert "No drop moved by 2 pp or more" in still
    assert "older versions" in findings.longer_budget_sentence(frame({}).iloc[:0])


def test_trainer_samples_greedily_like_the_baseline_model():
    """Why run_variant may reuse the baseline as step 0: the trainer's sampler (a bf16 copy of the fp32
    policy, under autocast) writes exactly the tokens the bf16 initial model writes."""
    import copy
    from contextlib import nullcontext

    import torch

    from retain_utils.core import training
    from retain_utils.core.evaluation import EVAL_BATCH_SIZE
    from retain_utils.core.generation import generate
    from retain_utils.core.training.loop import prepare_policy

    model, tok = models.tiny_model(seed=1, dtype=torch.bfloat16)
    config = training.resolve(TrainConfig(method="grpo", task="mmlu", precision="bf16"))
    _, sampler, _, autocast = prepare_policy(copy.deepcopy(model), config)
    assert sampler is not model and autocast == torch.bfloat16
    messages = [[{"role": "user", "content": f"question {i} " * (i + 1)}] for i in range(6)]
    before = generate(model, tok, messages, max_new_tokens=24, batch_size=EVAL_BATCH_SIZE)
    with torch.autocast("cpu", dtype=autocast):
        after = generate(sampler, tok, messages, max_new_tokens=24, batch_size=EVAL_BATCH_SIZE)
    assert [c.completion_ids for c in after] == [c.completion_ids for c in before]


def test_load_bench_writes_the_baseline_and_the_machine_it_ran_on(tmp_path, monkeypatch):
    from retain_utils.chapters import settings

    monkeypatch.setattr(experiment, "load_model", lambda name, dtype=None: models.tiny_model(seed=0))
    setup = settings.setup("02_rl_vs_sft", "smoke", model="tiny", target="mmlu")
    experiment.load_bench(setup, tmp_path / "r.json", progress=False)
    saved = json.loads((tmp_path / "r.json").read_text())
    assert {row["task"] for row in saved["baseline"]} == {"ifeval", "mmlu", "countdown", "arithmetic", "knowledge_pair",
                                                          "antonym"}
    machine = saved["machine"]
    assert machine["device"] == "cpu" and machine["weights"] == "float32"  # tiny_model's default
    assert machine["dtype"] == str(models.default_dtype("cpu")).replace("torch.", "")
    assert machine["torch_threads"] >= 1 and isinstance(machine["cpu_flags"], list)
    assert saved["baseline_read"] is False  # no cache folder: computed here
    monkeypatch.setenv("RETAIN_UTILS_BASELINE_CACHE", str(tmp_path / "kept"))  # the campaign's kernels
    for path in ("first.json", "second.json"):
        experiment.load_bench(setup, tmp_path / path, progress=False)
    assert [json.loads((tmp_path / p).read_text())["baseline_read"] for p in ("first.json", "second.json")] == [False, True]
    first, second = (json.loads((tmp_path / p).read_text())["baseline"] for p in ("first.json", "second.json"))
    assert second == first  # the very numbers the first point computed, its generation seconds included


def test_the_target_can_have_more_held_out_examples(monkeypatch):
    monkeypatch.setattr(experiment, "load_model", lambda name, dtype=None: models.tiny_model(seed=0))
    bench = experiment.make_bench("tiny", "mmlu", 4, 2, n_eval_target=5, task_names=("mmlu", "countdown"),
                                  progress=False)
    assert {k: len(v) for k, v in bench.eval.items()} == {"mmlu": 5, "countdown": 2}
    assert bench.baseline["mmlu"].n == 5 and len(bench.baseline["mmlu"].correct) == 5


def test_run_variant_reuses_the_baseline_as_step_0(monkeypatch):
    monkeypatch.setattr(experiment, "load_model", lambda name, dtype=None: models.tiny_model(seed=0, dtype=models.default_dtype("cpu")))
    bench = experiment.make_bench("tiny", "mmlu", 4, 2, task_names=("mmlu", "countdown"), progress=False)
    import dataclasses

    bench.baseline["mmlu"] = dataclasses.replace(bench.baseline["mmlu"], n_correct=1, accuracy=0.5)  # a marker
    config = TrainConfig(method="sft", task="mmlu", steps=1, batch_size=2, eval_every=1, max_new_tokens=4)
    record = experiment.run_variant(bench, config, kl_prompts=2, progress=False)
    assert record.accuracy_initial["mmlu"] == 50.0
    # where the time went, phase by phase; a run asked not to rescore at the longer budget has no such record
    assert set(record.phase_seconds) == {"train", "evaluate", "kl", "longer_budget", "retention"}
    assert all(v >= 0 for v in record.phase_seconds.values()) and record.phase_seconds["train"] > 0
    assert record.longer_budget is not None
    skipped = experiment.run_variant(bench, config, kl_prompts=2, rescore_longer=False, progress=False)
    assert skipped.longer_budget is None and skipped.drop == record.drop
    with pytest.raises(ValueError, match="initial_scores must score exactly eval_examples"):
        experiment.training.train(config, bench.reference, bench.tokenizer, bench.tasks, bench.train,
                                  {"mmlu": bench.eval["mmlu"]}, initial_scores=bench.baseline)


def test_sft_on_the_rollouts_rl_accepted(monkeypatch):
    monkeypatch.setattr(experiment, "load_model", lambda name, dtype=None: models.tiny_model(seed=0))
    bench = experiment.make_bench("tiny", "mmlu", 4, 2, task_names=("mmlu", "countdown"), progress=False)
    rollouts = [{"example": 2, "text": "Paris", "step": 1}, {"example": 0, "text": "Rome", "step": 3}]
    examples = experiment.examples_from_rollouts(bench, rollouts)
    assert [e.expert for e in examples] == ["Paris", "Rome"]
    assert examples[0].prompt == bench.train[2].prompt and examples[1].target == bench.train[0].target
    config = TrainConfig(method="sft", task="mmlu", steps=1, batch_size=2, eval_every=1, max_new_tokens=4,
                         eval_max_new_tokens=4)
    record = experiment.run_variant(bench, config, label="sft on rl", train_examples=examples, kl_prompts=2,
                                    progress=False)
    assert record.variant == "sft on rl" and record.method == "sft" and record.train_seconds > 0
    assert record.correct_rollouts is None and "correct_rollouts" not in record.to_dict()
    with pytest.raises(ValueError, match="no accepted rollouts"):
        experiment.examples_from_rollouts(bench, [])


def _record(variant, seed, gain, drop, tokens=0, method="grpo", target="mmlu"):
    return RunRecord(variant=variant, method=method, target=target, seed=seed, gain=gain, drop=drop,
                     gain_interval=None, drop_interval=None, kl=0.1, accuracy_initial={}, accuracy_final={},
                     n_eval={}, trajectory=[], status="done", seconds=60.0, train_seconds=30.0,
                     generated_tokens=tokens, config={})


def test_effects_rank_factors_by_their_effect_on_drop():
    records = [_record("grpo", 0, 10, 1), _record("grpo", 1, 12, 3), _record("grpo no kl", 0, 10, 2),
               _record("grpo no kl", 1, 11, 4), _record("sft", 0, 20, 9), _record("sft", 1, 20, 13),
               _record("sft", 2, 20, 99)]  # seed 2 has no partner: left out of the paired difference
    table = experiment.effects(records, [("KL penalty", "grpo", "grpo no kl"), ("on-policy data", "grpo", "sft")])
    assert list(table["factor"]) == ["on-policy data", "KL penalty"]
    row = table.set_index("factor").loc["on-policy data"]
    assert row["drop_effect"] == 9.0 and row["seeds"] == 2 and row["gain_effect"] == 9.0
    assert table.set_index("factor").loc["KL penalty", "drop_effect_std"] == 0.0
    with pytest.raises(ValueError, match="no runs of variant 'reinforce'; variants: grpo, grpo no kl, sft"):
        experiment.effects(records, [("advantage", "grpo", "reinforce")])
    summary = experiment.summary(records)
    assert summary.loc["sft", "seeds"] == 3 and summary.loc["grpo", "train_min"] == 0.5


def test_plot_cost_draws_one_point_per_variant():
    import matplotlib

    matplotlib.use("Agg")
    records = [_record("a", 0, 5, 1, 1000), _record("a", 1, 7, 3, 3000), _record("b", 0, 2, 0, 500)]
    ax = plots.plot_cost(records)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["a", "b"]
    assert "thousand generated tokens" in ax.get_xlabel()
    x, y = ax.lines[0].get_data()  # the first errorbar's marker: mean compute, mean drop
    assert (x[0], y[0]) == (2.0, 2.0)
    with pytest.raises(ValueError, match="unknown cost"):
        plots.plot_cost(records, cost="flops")


def test_frontier_keeps_variants_nothing_beats():
    import pandas as pd

    table = pd.DataFrame({"gen_ktokens": [0, 50, 10, 40], "drop_mean": [5, 0, 1, 1], "gain_mean": [9, 8, 6, 5]},
                         index=["sft", "grpo", "iter", "worse"])
    assert experiment.frontier(table).to_dict() == {"sft": True, "grpo": True, "iter": True, "worse": False}


def test_run_folders_are_per_config_and_data_and_keep_only_logs(tmp_path, monkeypatch):
    monkeypatch.setattr(experiment, "load_model", lambda name, dtype=None: models.tiny_model(seed=0))
    bench = experiment.make_bench("tiny", "mmlu", 4, 2, task_names=("mmlu", "countdown"), progress=False)
    config = TrainConfig(method="sft", task="mmlu", steps=1, batch_size=2, eval_every=1, max_new_tokens=4)
    first = experiment.run_variant(bench, config, label="SFT", out_dir=tmp_path, kl_prompts=2, progress=False)
    again = experiment.run_variant(bench, config, label="SFT", out_dir=tmp_path, kl_prompts=2, progress=False)
    assert again.accuracy_final == first.accuracy_final and len(list(tmp_path.iterdir())) == 1
    other = TrainConfig(method="sft", task="mmlu", steps=1, batch_size=2, eval_every=1, max_new_tokens=4, lr=3e-4)
    experiment.run_variant(bench, other, label="SFT", out_dir=tmp_path, kl_prompts=2, progress=False)
    examples = experiment.examples_from_rollouts(bench, [{"example": 0, "text": "x"}, {"example": 1, "text": "y"}])
    experiment.run_variant(bench, config, label="SFT", out_dir=tmp_path, kl_prompts=2, train_examples=examples,
                           progress=False)
    assert len(list(tmp_path.iterdir())) == 3  # another config, other data: new folders, no clash
    assert not list(tmp_path.glob("*/checkpoint.pt")) and len(list(tmp_path.glob("*/metrics.jsonl"))) == 3


def test_a_finished_run_is_read_back_not_retrained_until_the_code_changes(tmp_path, monkeypatch):
    from retain_utils.core import provenance, training

    monkeypatch.setattr(experiment, "load_model", lambda name, dtype=None: models.tiny_model(seed=0))
    bench = experiment.make_bench("tiny", "mmlu", 4, 2, task_names=("mmlu", "countdown"), progress=False)
    config = TrainConfig(method="sft", task="mmlu", steps=1, batch_size=2, eval_every=1, max_new_tokens=4,
                         eval_max_new_tokens=4)  # short evaluations: the test is about folders, not scores
    trains, train = [], training.train

    def counted(*args, **kwargs):
        if not trains[-1]:
            raise AssertionError("a finished run was trained again")
        return train(*args, **kwargs)

    monkeypatch.setattr(training, "train", counted)
    runs, results_path = tmp_path / "runs", tmp_path / "r.results.json"
    kw = dict(label="SFT", results_path=results_path, out_dir=runs, kl_prompts=2, progress=False)
    trains.append(True)
    first = experiment.run_variant(bench, config, **kw)
    [folder] = list(runs.iterdir())
    assert json.loads((folder / experiment.RECORD_FILE).read_text()) == json.loads(json.dumps(first.to_dict()))
    trains.append(False)
    again = experiment.run_variant(bench, config, **kw)
    assert again == first and list(runs.iterdir()) == [folder]
    saved = json.loads(results_path.read_text())["runs"]
    assert len(saved) == 2 and saved[0] == saved[1]
    monkeypatch.setattr(provenance, "source_hash", lambda: "0123456789ab")  # any code edit: a new fingerprint
    trains.append(True)
    experiment.run_variant(bench, config, **kw)
    assert len(list(runs.iterdir())) == 2 and len(json.loads(results_path.read_text())["runs"]) == 3


def test_not_learned_flags_a_gain_of_at_most_one_held_out_question():
    note = experiment.not_learned("GRPO", 4.0, 25, "6 steps x 4 prompts")
    assert note.startswith("GRPO gained +4.0 pp, no more than one held-out question of 25 (4.0 pp)")
    assert "6 steps x 4 prompts" in note
    assert experiment.not_learned("GRPO", -8.0, 25, "b")
    assert experiment.not_learned("GRPO", 4.1, 25, "b") == ""


def test_gain_clarity_names_the_gains_whose_interval_reaches_zero():
    records = [dataclasses.replace(_record("sft", 0, 20.0, 3.8), gain_interval=(7.5, 32.5), drop_interval=(-2.5, 10.0)),
               dataclasses.replace(_record("self_sft", 0, 7.5, 2.5), gain_interval=(-5.0, 20.0), drop_interval=(-5.0, 10.0)),
               dataclasses.replace(_record("grpo", 0, 15.0, 1.2), gain_interval=(2.5, 27.5), drop_interval=(-5.0, 7.5)),
               dataclasses.replace(_record("grpo", 1, 10.0, 1.2), gain_interval=(0.0, 20.0), drop_interval=(-5.0, 7.5))]
    table = experiment.intervals(records)
    assert table.loc[("sft", 0), "clear_gain"] and not table.loc[("grpo", 1), "clear_gain"]
    text = experiment.gain_clarity(records)
    clear, unclear = text.split("Not clear")
    assert "**sft** (seed 0: +20.0 pp, +7.5 to +32.5)" in clear and "self_sft" not in clear
    assert "**self_sft** (seed 0: +7.5 pp, -5.0 to +20.0)" in unclear
    assert "**grpo** (seed 0: +15.0 pp, +2.5 to +27.5, seed 1: +10.0 pp, +0.0 to +20.0)" in unclear  # one seed is enough
    assert "Not clear" not in experiment.gain_clarity(records[:1])
    loss = dataclasses.replace(_record("stale", 0, -20.0, 0.0), gain_interval=(-35.0, -5.0), drop_interval=(-5.0, 5.0))
    assert "Clear losses (interval below zero): **stale** (seed 0: -20.0 pp, -35.0 to -5.0)." in \
        experiment.gain_clarity([records[0], loss])
    old = [dataclasses.replace(records[0], gain_interval=None, drop_interval=None)]
    assert experiment.gain_clarity(old).startswith("Some runs have no per-question results")


def test_the_bench_keeps_the_baseline_answers_and_each_run_measures_retention(monkeypatch):
    from retain_utils.core import evaluation
    from retain_utils.analysis import retention

    monkeypatch.setattr(experiment, "load_model", lambda name, dtype=None: models.tiny_model(seed=0))
    bench = experiment.make_bench("tiny", "mmlu", 4, 3, task_names=("mmlu", "countdown"), progress=False)
    assert all(s.answer_ids == () for s in bench.baseline.values()), "step 0 logs no answer tokens"
    assert list(bench.answers) == ["countdown"] and sorted(bench.reference_ll) == ["countdown"]
    # a random tiny model answers nothing right: pretend it answered every countdown question right
    scored = evaluation.evaluate(bench.reference, bench.tokenizer, bench.eval, tasks=bench.tasks, keep_answers=True)
    scored["countdown"] = dataclasses.replace(scored["countdown"], correct=(1, 1, 1))
    bench.answers = retention.baseline_answers(bench.tokenizer, bench.eval, scored, target="mmlu", tasks=bench.tasks)
    bench.reference_ll = retention.reference_logliks(bench.reference, bench.tokenizer, bench.answers)
    config = TrainConfig(method="sft", task="mmlu", steps=2, batch_size=2, eval_every=2, max_new_tokens=4,
                         lr=1e-2)
    record = experiment.run_variant(bench, config, kl_prompts=2, progress=False)
    kept = retention.Retention.from_dict(record.retention)
    assert kept.tasks["countdown"].index == (0, 1, 2) and kept.mean != 0 and kept.low <= kept.mean <= kept.high
    assert RunRecord.from_dict(json.loads(json.dumps(record.to_dict()))) == record


def test_a_run_finished_by_another_notebook_is_read_not_trained_again(tmp_path, monkeypatch):
    monkeypatch.setattr(experiment, "load_model", lambda name, dtype=None: models.tiny_model(seed=0))
    bench = experiment.make_bench("tiny", "mmlu", 4, 2, task_names=("mmlu", "countdown"), progress=False)
    config = TrainConfig(method="sft", task="mmlu", steps=1, batch_size=2, eval_every=1, max_new_tokens=4,
                         eval_max_new_tokens=4)
    campaign = tmp_path / "campaign"
    first = experiment.run_variant(bench, config, out_dir=campaign / "02_rl_vs_sft" / "key2" / "runs",
                                   kl_prompts=2, rescore_longer=False, progress=False)
    (found,) = (campaign / "02_rl_vs_sft" / "key2" / "runs").glob("SFT-s0-*/record.json")

    def no_training(*args, **kwargs):
        raise AssertionError("an identical finished run must be read, not trained again")

    monkeypatch.setattr(experiment.training, "train", no_training)
    out = campaign / "04_iterative_sft" / "key4" / "runs"
    path = tmp_path / "04.json"
    again = experiment.run_variant(bench, config, label="SFT, as in chapter 2", out_dir=out, kl_prompts=2,
                                   rescore_longer=False, reuse_from=campaign, results_path=path, progress=False)
    assert again.variant == "SFT, as in chapter 2"
    assert again.reused_from == found.parent.relative_to(campaign).as_posix()
    assert dataclasses.replace(again, variant="SFT", reused_from=None) == first
    assert len(list(out.glob("*/record.json"))) == 1, "the point keeps its own copy of the record"
    assert RunRecord.from_dict(json.loads(path.read_text())["runs"][0]) == again
    # a default written out is the same run (GRPO's beta: left None in notebook 2, 0.05 in notebook 3's cell)
    assert config.lr is None and config.beta is None
    spelled = dataclasses.replace(config, lr=1e-4, beta=0.0)  # SFT's defaults (training.config.resolve)
    assert experiment.run_variant(bench, spelled, out_dir=out, kl_prompts=2, rescore_longer=False, reuse_from=campaign,
                                  progress=False).reused_from == again.reused_from
    # anything that changes the record changes the fingerprint: another seed, KL prompt count or config trains
    for changed, kw in ((dataclasses.replace(config, seed=1), {}), (config, {"kl_prompts": 3}),
                        (dataclasses.replace(config, lr=3e-4), {})):
        with pytest.raises(AssertionError, match="must be read, not trained again"):
            experiment.run_variant(bench, changed, out_dir=out, reuse_from=campaign, rescore_longer=False,
                                   progress=False, **{"kl_prompts": 2, **kw})
    assert experiment.find_finished(tmp_path / "nowhere", 0, "abc") is None
