"""The GPU plan, on CPU: model shapes without weights, the memory estimate and its refusal, the LoRA
default, the colab profile's device check, time projections and the Drive run folder."""

import pytest
import torch

from conftest import diverse_tiny_model
from retain_utils.chapters import colab
from retain_utils.core.training import memory
from retain_utils.chapters import profiles
from retain_utils.core.training import TrainConfig, train

GB15 = colab.T4_MEMORY  # a T4


@pytest.fixture(scope="module")
def qwen():
    return {size: memory.model_shape(memory.qwen25_config(size)) for size in memory.QWEN25_SHAPES}


def test_shapes_from_a_config_without_weights(qwen):
    assert qwen["0.5b"].n_params == pytest.approx(494e6, rel=0.01)  # Qwen2.5-0.5B: 0.49B
    assert qwen["1.5b"].n_params == pytest.approx(1.54e9, rel=0.01)  # Qwen2.5-1.5B: 1.54B
    assert qwen["1.5b"].kv_dim == 256 and qwen["1.5b"].vocab == 151936
    model, _ = diverse_tiny_model()
    from_model, from_config = memory.model_shape(model), memory.model_shape(model.config)
    assert from_model == from_config
    assert from_model.n_params == sum(p.numel() for p in model.parameters())  # tied embeddings once


def test_full_fine_tuning_vs_lora_estimate(qwen):
    cfg = TrainConfig()
    full = memory.estimate_memory(qwen["1.5b"], cfg, lora_rank=0)
    lora = memory.estimate_memory(qwen["1.5b"], cfg, lora_rank=16)
    # ~24 bytes per parameter before activations (the usual count for AdamW): 34 GiB for 1.5B
    weights = sum(full.static.values()) / qwen["1.5b"].n_params
    assert weights == pytest.approx(24, abs=0.1)
    assert 34 < full.gib < 45 and 5 < lora.gib < 12
    with pytest.raises(memory.DoesNotFit, match=r"needs ~\d+\.\d GiB .*this GPU has 14\.5 GiB: set lora_rank=16 or use a smaller model"):
        memory.check_fits(full, GB15, model="Qwen2.5-1.5B")
    memory.check_fits(lora, GB15)
    memory.check_fits(full, None)  # off CUDA there is nothing to check
    too_small = memory.estimate_memory(qwen["1.5b"], cfg, lora_rank=16)
    with pytest.raises(memory.DoesNotFit, match="lower micro_batch_tokens"):  # LoRA already on: another fix
        memory.check_fits(too_small, 4 * memory.GIB)


def test_estimate_grows_with_what_it_models(qwen):
    base = memory.estimate_memory(qwen["0.5b"], TrainConfig(), lora_rank=16)
    more_tokens = memory.estimate_memory(qwen["0.5b"], TrainConfig(micro_batch_tokens=4096), lora_rank=16)
    more_rows = memory.estimate_memory(qwen["0.5b"], TrainConfig(rollout_batch_size=400), lora_rank=16)
    assert more_tokens.training["activations"] == 4 * base.training["activations"]
    assert more_rows.generation["KV cache"] > base.generation["KV cache"]
    fp32 = memory.estimate_memory(qwen["0.5b"], TrainConfig(), lora_rank=16, dtype=torch.float32)
    assert fp32.total > base.total


def test_lora_default(qwen):
    cfg = TrainConfig()
    assert cfg.lora_rank == "auto"
    assert memory.choose_lora_rank(qwen["1.5b"], cfg, None, torch.float32) == 0  # CPU: full fine-tuning
    assert memory.choose_lora_rank(qwen["1.5b"], cfg, GB15, torch.float16) == memory.LORA_DEFAULT_RANK  # a T4
    assert memory.choose_lora_rank(qwen["1.5b"], cfg, 139 * memory.GIB, torch.bfloat16) == 0  # an H200: it fits
    assert memory.choose_lora_rank(qwen["0.5b"], cfg, GB15, torch.float16) == memory.LORA_DEFAULT_RANK  # 12 GiB + acts
    small = memory.model_shape(diverse_tiny_model()[0])
    assert memory.choose_lora_rank(small, cfg, 1 * memory.GIB, torch.float16) == 0  # under 0.3B: always full
    assert memory.choose_lora_rank(qwen["1.5b"], TrainConfig(lora_rank=0), GB15, torch.float16) == 0  # as asked


def test_train_refuses_a_run_that_does_not_fit_before_any_compute(monkeypatch, tmp_path):
    from retain_utils.core.training import grpo

    monkeypatch.setattr(memory, "device_memory", lambda device=None: int(0.5 * memory.GIB))
    monkeypatch.setattr(grpo, "step_data", lambda *a, **k: pytest.fail("computed before the memory check"))
    model, tok = diverse_tiny_model()
    from test_training import DIGIT, EVAL, TRAIN, VOWEL, config

    with pytest.raises(memory.DoesNotFit, match=r"this GPU has 0\.5 GiB"):
        train(config(out_dir=str(tmp_path / "run")), model, tok, [VOWEL, DIGIT], TRAIN, EVAL, progress=False)
    assert not (tmp_path / "run").exists()


def test_colab_profile_refuses_without_cuda():
    with pytest.raises(RuntimeError, match="profile 'colab' is sized for a GPU .* no CUDA device"):
        colab.check_profile_device("colab", cuda_available=False)
    colab.check_profile_device("colab", cuda_available=True)
    colab.check_profile_device("quick", cuda_available=False)
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="Runtime > Change runtime type > T4 GPU"):
            colab.check_profile_device("colab")


@pytest.mark.parametrize("notebook", ["02_rl_vs_sft", "03_ablations", "04_iterative_sft"])
def test_colab_profiles_project_to_about_an_hour_on_a_t4(notebook):
    minutes = colab.projected_minutes(notebook, "colab")
    assert 5 < minutes <= 65, minutes
    faster = colab.Throughput(2 * colab.T4_ASSUMED_0_5B.rollout_steps_per_s, 2 * colab.T4_ASSUMED_0_5B.eval_steps_per_s,
                            2 * colab.T4_ASSUMED_0_5B.train_tokens_per_s)
    assert colab.projected_minutes(notebook, "colab", faster) == pytest.approx(minutes / 2)
    assert colab.projected_minutes(notebook, "colab") > colab.projected_minutes(notebook, "smoke")
    with pytest.raises(ValueError, match="no time projection"):
        colab.projected_minutes("01_toy_kl")


def test_every_notebook_has_a_colab_profile():
    assert "colab" in profiles.PROFILE_NAMES
    for notebook, table in profiles.PROFILES.items():
        assert set(table["colab"]) == set(table["quick"]), notebook


def test_run_folder_on_drive_when_mounted(tmp_path):
    drive = tmp_path / "MyDrive"
    assert colab.run_folder(drive_root=drive) == colab.Path("runs")
    drive.mkdir()
    assert colab.run_folder(drive_root=drive) == drive / "retaining-by-doing" / "runs"


def test_reading_page_states_the_projected_colab_times():
    """The Colab times in book/reading.md are the projection's own numbers, not typed by hand."""
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "book" / "reading.md").read_text()
    found = dict(re.findall(r"\| `(0[234]_\w+)` \| (\d+) \|", text))
    assert set(found) == {"02_rl_vs_sft", "03_ablations", "04_iterative_sft"}
    for notebook, minutes in found.items():
        assert int(minutes) == round(colab.projected_minutes(notebook, "colab")), notebook


def test_check_before_load_reads_only_the_model_config(tmp_path):
    model, tok = diverse_tiny_model()
    model.config.save_pretrained(tmp_path)  # a config.json, no weights
    configs = {"grpo": TrainConfig(), "sft": TrainConfig(method="sft", lora_rank=0)}
    assert memory.check_before_load(str(tmp_path), configs, available=GB15) == {"grpo": 0, "sft": 0}
    with pytest.raises(memory.DoesNotFit, match=r"needs ~\d+\.\d GiB .*this GPU has 0\.1 GiB"):
        memory.check_before_load(str(tmp_path), configs, available=int(0.1 * memory.GIB))


def test_check_before_load_off_cuda_reads_nothing():
    assert memory.check_before_load("no/such-model", [TrainConfig(), TrainConfig(method="sft", lora_rank=4)],
                                 device="cpu") == {"grpo": 0, "sft": 4}
