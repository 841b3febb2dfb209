"""One path from parameters to results: the setup call, the variants, the run record, the findings and the
readable tables, on made-up records (no model)."""

import dataclasses
import json
import math

import pandas as pd
import pytest

from retain_utils.chapters import experiment, findings, profiles, settings, variants
from retain_utils.core import records, results
from retain_utils.analysis import tables
from retain_utils.core.records import RunRecord

LLM = {
    "02_rl_vs_sft": dict(methods=None, seeds=None, steps=None, n_train=None, n_eval=None, n_eval_target=None),
    "03_ablations": dict(ablations=["kl", "sft_kl", "reinforce", "normalisation", "on_policy", "self_sft"], seeds=None, steps=None,
                         self_sft_lrs=None, self_sft_steps=None, beta=0.05),
    "04_iterative_sft": dict(intervals=None, seeds=None, steps=None),
}


def setup(notebook, profile="smoke", **params):
    return settings.setup(notebook, profile, model="m", target="mmlu", **{**LLM[notebook], **params})


def record(variant, seed, gain, drop, method="grpo", target="mmlu", **kw):
    fields = dict(gain_interval=None, drop_interval=None, kl=0.1, accuracy_initial={}, accuracy_final={}, n_eval={},
                  trajectory=[], status="done", seconds=60.0, train_seconds=30.0,
                  generated_tokens=kw.pop("tokens", 1000), config={})
    return RunRecord(variant=variant, method=method, target=target, seed=seed, gain=gain, drop=drop,
                     **{**fields, **kw})


def test_setup_builds_each_notebooks_variants_with_the_shared_defaults():
    s = setup("02_rl_vs_sft")
    assert [v.label for v in s.variants] == ["SFT", "Self-SFT", "GRPO"]
    assert [v.config.lr for v in s.variants] == [1e-4, 1e-4, 5e-6]  # profiles.LLM_SHARED: the trainers' defaults
    assert {v.config.temperature for v in s.variants} == {0.8} and s.budget == 16 and s.kl_prompts == 12
    probes = ("arithmetic", "knowledge_pair", "antonym")
    assert s.task_names == ("ifeval", "mmlu", "countdown", *probes)
    assert s.task_options == {t: {"max_new_tokens": 16} for t in s.task_names}
    assert [v.config.temperature for v in setup("02_rl_vs_sft", temperature=0.6).variants] == [0.6] * 3
    assert setup("02_rl_vs_sft", probe_tasks=[]).task_names == ("ifeval", "mmlu", "countdown")
    # KL: KL_PROMPTS held-out prompts in all, whatever the number of tasks (at most 3 per task's held-out count)
    assert setup("02_rl_vs_sft", n_eval=100).kl_prompts == settings.KL_PROMPTS == 60
    assert setup("02_rl_vs_sft", n_eval=100, probe_tasks=[]).kl_prompts == 60
    s = setup("04_iterative_sft")
    assert [v.label for v in s.variants] == ["SFT", "Self-SFT (never)", "Iterative-SFT, every 1 step", "GRPO"]
    assert [v.config.method for v in s.variants] == ["sft", "self_sft", "iterative_sft", "grpo"]
    assert s.variants[2].config.regenerate_every == 1 and s.variants[3].config.lr == 5e-6


def test_the_setup_cell_shows_one_row_per_setting():
    s = setup("02_rl_vs_sft", temperature=0.6)
    table = s.table()
    assert list(table.columns) == ["Value"] and table.index.name == "Setting"
    assert list(table.index[:4]) == ["notebook", "profile", "model", "target"]
    assert set(s.cfg.to_dict()) <= set(table.index) and table.index[-1] == "variants"
    assert table.loc["temperature", "Value"] == "0.6" and table.loc["lr_rl", "Value"] == "5e-06"
    assert table.loc["variants", "Value"] == "SFT, Self-SFT, GRPO" and table.loc["target", "Value"] == "mmlu"
    assert table.loc["n_eval_target", "Value"] == "none"  # n_eval, as the parameters cell says


def test_ablation_variants_chain_rollouts_by_a_field():
    s = setup("03_ablations")
    by = {v.label: v for v in s.variants}
    assert len(by) == 9 and list(by)[0] == "GRPO" and by["GRPO"].config.keep_correct
    chained = [v for v in s.variants if v.rollouts_of]
    assert [(v.label, v.rollouts_of) for v in chained] == [("SFT on GRPO's rollouts", "GRPO")]
    assert by["GRPO, β=0"].config.beta == 0.0 and by["SFT + KL"].config.beta == 0.05
    assert by["GRPO, stale rollouts"].config.rollouts_from == "initial"
    assert by["GRPO, baseline only"].config.normalize_std is False
    assert [v.label for v in setup("03_ablations", ablations=["kl"]).variants] == ["GRPO", "GRPO, β=0"]
    assert [v.label for v in setup("03_ablations", ablations=["sft_kl"]).variants] == ["SFT", "SFT + KL"]
    assert [v.label for v in setup("03_ablations", ablations=["reinforce", "normalisation"]).variants] == [
        "GRPO", "REINFORCE", "GRPO, baseline only"]


def test_run_variants_feeds_the_named_variants_rollouts(monkeypatch):
    s = setup("03_ablations", ablations=["on_policy"], seeds=[0, 1])
    calls = []

    def fake_run(bench, config, *, label, train_examples, **kw):
        calls.append((label, config.seed, train_examples))
        keep = [{"example": 0, "text": "A"}] if config.keep_correct and config.seed == 0 else []
        return record(label, config.seed, 1.0, 0.0, method=config.method,
                      correct_rollouts=keep if config.keep_correct else None)

    monkeypatch.setattr(experiment, "run_variant", fake_run)
    monkeypatch.setattr(experiment, "examples_from_rollouts", lambda bench, rollouts: [r["text"] for r in rollouts])
    bench = type("B", (), {"seconds": 0.0})()
    runs = experiment.run_variants(bench, s, progress=False)
    assert [(c[0], c[1]) for c in calls] == [("GRPO", 0), ("SFT", 0), ("GRPO, stale rollouts", 0),
                                             ("SFT on GRPO's rollouts", 0), ("GRPO", 1), ("SFT", 1),
                                             ("GRPO, stale rollouts", 1)]  # seed 1's GRPO accepted nothing
    assert calls[3][2] == ["A"] and all(r.correct_rollouts is None for r in runs)


def test_profiles_share_the_llm_values_and_a_profile_may_override_them():
    assert "lr_sft" not in profiles.PROFILES["02_rl_vs_sft"]["quick"]
    assert profiles.values("03_ablations", "full")["lr_rl"] == 5e-6
    assert profiles.apply("04_iterative_sft", "quick", temperature=None).temperature == 0.8
    assert profiles.values("02_rl_vs_sft", "smoke")["probe_tasks"] == ["arithmetic", "knowledge_pair", "antonym"]
    assert profiles.values("nothing", "quick") == {}


def test_check_value_types_from_defaults_or_profiles_and_ranges_from_the_validators():
    settings.check_value("02_rl_vs_sft", "smoke", "seeds", [0, 3])
    settings.check_value("02_rl_vs_sft", "smoke", "n_eval_target", None)
    with pytest.raises(ValueError, match=r"value 5 for 'seeds' does not parse as list \(its smoke profile value"):
        settings.check_value("02_rl_vs_sft", "smoke", "seeds", 5)
    with pytest.raises(ValueError, match=r"seeds must be a non-empty list of ints >= 0, got \[-1\]"):
        settings.check_value("02_rl_vs_sft", "smoke", "seeds", [-1])
    with pytest.raises(ValueError, match="does not parse as int"):
        settings.check_value("ok", "smoke", "n", "x", default="3")


def test_a_record_round_trips_through_a_results_file_without_nan(tmp_path):
    r = record("SFT", 0, 5.0, float("nan"), method="sft", gain_interval=(1.0, 9.0), drop_interval=(float("nan"), 2.0))
    path = tmp_path / "r.json"
    results.save(path, runs=[r], metrics={"std": float("nan"), "inf": float("inf")})
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    json.loads(text, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    back = RunRecord.from_dict(results.load(path)["runs"][0])
    assert math.isnan(back.drop) and math.isnan(back.drop_interval[0])
    assert dataclasses.replace(back, drop=0.0, drop_interval=None) == dataclasses.replace(r, drop=0.0,
                                                                                        drop_interval=None)
    assert results.load(path)["metrics"] == {"std": None, "inf": None}


def test_old_records_read_with_label_in_method_and_method_in_algorithm():
    old = {**record("GRPO, β=0", 0, 1.0, 2.0).to_dict(), "method": "GRPO, β=0", "algorithm": "grpo"}
    del old["variant"]
    back = RunRecord.from_dict(old)
    assert (back.variant, back.method) == ("GRPO, β=0", "grpo")
    with pytest.raises(ValueError, match="unknown run-record field"):
        RunRecord.from_dict({**record("a", 0, 1, 1).to_dict(), "extra": 1})


@pytest.mark.parametrize("labels", [["SFT", "Self-SFT", "GRPO"],  # 02
                                    ["GRPO", "GRPO, β=0", "SFT", "SFT + KL"],  # 03
                                    ["SFT", "Iterative-SFT, every 1 step", "GRPO"]])  # 04
def test_the_rl_vs_sft_verdict_reads_every_notebooks_runs(labels):
    runs = [record(label, seed, 10.0, 5.0 if label == "SFT" else 1.0 + seed) for label in labels for seed in (0, 1)]
    text = findings.rl_vs_sft_per_target_sentence(runs)
    assert text.startswith("On **mmlu**, GRPO (gain +10.0, drop +1.5 pp) forgets less than SFT")


def test_ablation_findings_rank_factors_and_judge_them_against_seed_noise():
    s = setup("03_ablations", seeds=[0, 1])
    runs = [record("GRPO", seed, 5.0, 1.0) for seed in (0, 1)] + \
           [record("GRPO, β=0", seed, 5.0, 1.0 + seed) for seed in (0, 1)] + \
           [record("SFT", seed, 20.0, 10.0, method="sft") for seed in (0, 1)] + \
           [record("SFT on GRPO's rollouts", seed, 15.0, 2.0 + seed, method="sft") for seed in (0, 1)]
    effects = findings.ablation_effects(runs, s.cfg)
    assert list(effects["factor"]) == [findings.OWN_ANSWERS, "KL penalty (GRPO)"]
    assert effects["paper"].iloc[0] == "large: on-policy data is the main factor"
    assert findings.drop_sentence(effects, "KL penalty (GRPO)") == \
        "changes drop by +0.5 ± 0.7 pp over 2 seeds, within seed noise"
    assert findings.drop_sentence(effects, findings.STALE) == "was not run"
    text = findings.ablation_sentence(effects, experiment.summary(runs), s)
    assert "largest effect on drop comes from **model's own vs expert answers (SFT)**" in text
    assert "Like the paper, on-policy data reduces drop more" in text
    labels = findings.ablation_variants(s, "self_sft", experiment.summary(runs))
    assert labels == [] and "runs a single Self-SFT setting" in findings.section_sentence(s, "self_sft", labels)


def test_recommendation_picks_the_iterative_setting_that_forgets_least():
    s = setup("04_iterative_sft", intervals=[1, 2, 0])
    runs = [record("SFT", 0, 20.0, 8.0, method="sft", tokens=0), record("GRPO", 0, 10.0, 1.0, tokens=4000),
            record("Iterative-SFT, every 1 step", 0, 15.0, 2.0, method="iterative_sft", tokens=2000),
            record("Iterative-SFT, every 2 steps", 0, 12.0, 3.0, method="iterative_sft", tokens=1000),
            record("Iterative-SFT, every 4 steps", 0, 5.0, 0.0, method="iterative_sft")]  # under half SFT's gain
    text = findings.recommendation(experiment.summary(runs), s)
    assert "**Iterative-SFT, every 1 step** forgets least: gain +15.0, drop +2.0 pp, 2.0k generated tokens (50% of GRPO's)" in text
    assert "Its drop is below SFT's and above GRPO's." in text and "this run is consistent with that" in text
    weak = [r for r in runs if not r.variant.startswith("Iterative")] + [runs[-1]]
    assert "No Iterative-SFT setting reached half of SFT's gain" in findings.recommendation(experiment.summary(weak), s)


def test_cost_sentence_sets_generated_tokens_against_grpo():
    runs = [record("GRPO", 0, 10.0, 1.0, tokens=4000), record("GRPO", 1, 10.0, 1.0, tokens=6000),
            record("Iterative-SFT, every 4 steps", 0, 5.0, 0.0, method="iterative_sft", tokens=2000),
            record("Iterative-SFT, every 4 steps", 1, 5.0, 0.0, method="iterative_sft", tokens=3000)]
    text = findings.cost_sentence(experiment.summary(runs), "Iterative-SFT, every 4 steps")
    assert "Iterative-SFT, every 4 steps generated 2.5k tokens per run for its training data (50% of GRPO's)" in text
    assert "against GRPO's 5.0k and 0.5 min (mean of 2 seeds" in text
    assert findings.cost_sentence(experiment.summary(runs[:2]), "Iterative-SFT, every 4 steps") == \
        "No runs of Iterative-SFT, every 4 steps: no cost to compare."


def test_readable_tables_have_units_and_no_exponents():
    runs = [record("SFT", 0, 12.5, 3.25, method="sft"), record("SFT", 1, 7.5, 1.25, method="sft"),
            dataclasses.replace(record("GRPO", 0, 2.0, 0.0), kl=0.00067)]
    shown = tables.summary(experiment.summary(runs))
    assert list(shown.columns)[:3] == ["Gain (pp, mean ± sd)", "Drop (pp, mean ± sd)", "KL to initial (nats, mean)"]
    assert shown.loc["SFT", "Gain (pp, mean ± sd)"] == "+10.0 ± 3.5" and shown.loc["GRPO", "Gain (pp, mean ± sd)"] == "+2.0"
    assert shown.loc["GRPO", "KL to initial (nats, mean)"] == "0.0007" and shown.index.name == "Variant"
    effects = experiment.effects(runs, [("on-policy", "GRPO", "SFT")])
    assert tables.effects(effects).loc["on-policy", "Effect on drop (pp, mean ± sd)"] == "+3.2"
    frame = pd.DataFrame({"accuracy": [50.0], "ci_low": [30.0], "ci_high": [70.0], "n": [10], "n_unparsed": [1]},
                         index=pd.Index(["mmlu"], name="task"))
    assert tables.baseline(frame).loc["mmlu", "95 % interval (%)"] == "30.0 to 70.0"
    assert tables.mean_sd(1.234, float("nan")) == "+1.2" and tables.mean_sd(-1.0, 0.25) == "-1.0 ± 0.2"


def test_every_ablation_is_in_the_profiles_list_of_all():
    from retain_utils.chapters import profiles, variants

    assert profiles.ALL_ABLATIONS == list(variants.ABLATIONS) == ["kl", "sft_kl", "reinforce", "normalisation",
                                                                  "on_policy", "self_sft"]
    assert profiles.values("03_ablations", "quick")["ablations"] == ["kl", "sft_kl", "on_policy"]
    assert profiles.values("03_ablations", "campaign")["ablations"] == ["kl", "reinforce", "on_policy"]
    assert profiles.values("03_ablations", "smoke")["ablations"] == profiles.ALL_ABLATIONS  # CI runs every variant


def test_the_api_reference_documents_every_field_of_the_run_record():
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "book" / "api.md").read_text()
    rows = {line.split("|")[1].strip().strip("`") for line in text.splitlines() if line.startswith("| `")}
    assert {f.name for f in dataclasses.fields(RunRecord)} <= rows


def test_the_colab_profile_is_refused_without_cuda_and_otherwise_takes_the_gpu_model_and_hub_data(monkeypatch):
    from retain_utils.chapters import colab
    from retain_utils.core.training import memory
    from retain_utils.core.models import EMBEDDED_MODEL

    monkeypatch.setattr(colab.torch.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match="profile 'colab' is sized for a GPU"):
        settings.setup("02_rl_vs_sft", "colab", model=EMBEDDED_MODEL, target="mmlu", **LLM["02_rl_vs_sft"])
    checked = []
    monkeypatch.setattr(colab, "check_profile_device", lambda profile: None)
    monkeypatch.setattr(memory, "check_before_load", lambda model, configs: checked.append((model, len(configs))))
    s = settings.setup("02_rl_vs_sft", "colab", model=EMBEDDED_MODEL, target="mmlu", **LLM["02_rl_vs_sft"])
    assert s.model == colab.COLAB_MODEL and checked == [(colab.COLAB_MODEL, 3)]
    assert s.task_options == colab.COLAB_TASK_OPTIONS and s.run_dir == colab.run_folder()
    assert settings.setup("02_rl_vs_sft", "colab", model="Qwen/Qwen2.5-1.5B-Instruct", target="mmlu",
                          **LLM["02_rl_vs_sft"]).model == "Qwen/Qwen2.5-1.5B-Instruct"  # an explicit model stays
