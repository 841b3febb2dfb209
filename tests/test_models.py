import time

import pytest
import torch

from retain_utils.core import models
from retain_utils.core.models import EMBEDDED_MODEL, default_dtype, load_model, tiny_model


def test_tiny_model_is_seeded_and_ready_for_batched_generation():
    m1, tok = tiny_model(seed=0)
    m2, _ = tiny_model(seed=0)
    m3, _ = tiny_model(seed=1)
    p1, p2, p3 = (next(m.parameters()) for m in (m1, m2, m3))
    assert torch.equal(p1, p2) and not torch.equal(p1, p3)
    assert tok.padding_side == "left" and tok.pad_token_id is not None
    assert m1.config.vocab_size == len(tok) and not m1.training
    text = tok.apply_chat_template([{"role": "user", "content": "hé, 2+2?"}], tokenize=False,
                                   add_generation_prompt=True)
    assert text.endswith("<|im_start|>user\nhé, 2+2?<|im_end|>\n<|im_start|>assistant\n")
    assert tok.decode(tok(text)["input_ids"]) == text  # byte-level: lossless round trip
    big, _ = tiny_model(vocab_size=512, hidden_size=32, num_layers=1)
    assert big.config.vocab_size == 512 and big.config.hidden_size == 32
    with pytest.raises(ValueError, match="smaller than the tokenizer"):
        tiny_model(vocab_size=10)
    with pytest.raises(ValueError, match="valid: 'byte', 'embedded'"):
        tiny_model(tokenizer="bpe")


def test_default_dtype_is_fp32_on_every_cpu_and_bf16_a_choice(monkeypatch):
    monkeypatch.delenv(models.DTYPE_ENV, raising=False)
    assert default_dtype("cpu") == torch.float32 and default_dtype(torch.device("cpu")) == torch.float32
    monkeypatch.setattr(models, "cpuinfo", lambda: "flags\t\t: fpu avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n")
    assert default_dtype("cpu") == torch.float32, "a CPU with AMX too: the same numbers on every CPU kind"
    monkeypatch.setenv(models.DTYPE_ENV, "bf16")
    assert default_dtype("cpu") == torch.bfloat16
    model, _ = tiny_model(seed=0)
    model.to(default_dtype("cpu"))
    from retain_utils.core.training import loop
    from retain_utils.core.training.config import TrainConfig

    config = TrainConfig(method="grpo", task="mmlu", steps=1, lora_rank=0)
    policy, sampler, _, autocast = loop.prepare_policy(model, config)
    assert autocast == next(sampler.parameters()).dtype == torch.bfloat16, "the pin reaches training's sampler"
    monkeypatch.delenv(models.DTYPE_ENV)
    policy, sampler, _, autocast = loop.prepare_policy(model.float(), config)
    assert autocast is None and sampler is policy, "fp32: no autocast, the policy samples itself"
    assert models._resolve_dtype("fp32", torch.device("cpu")) == torch.float32
    with pytest.raises(ValueError, match="unknown dtype 'int3'"):
        models._resolve_dtype("int3", torch.device("cpu"))


def test_unknown_short_name_lists_valid_names():
    with pytest.raises(ValueError, match=f"valid short names: {EMBEDDED_MODEL}, qwen2.5-0.5b-instruct"):
        load_model("gpt-17")
    with pytest.raises(ValueError, match="lora_rank"):
        load_model(EMBEDDED_MODEL, lora_rank=-1)


def test_hub_id_offline_fails_fast_naming_the_default(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(OSError, match=f"use the embedded default: load_model\\('{EMBEDDED_MODEL}'\\)"):
        load_model("no-such-org/no-such-model-xyz")
    assert time.perf_counter() - start < 5


def test_local_path_with_lora(tmp_path):
    model, tok = tiny_model(seed=0)
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    loaded, tok2 = load_model(str(tmp_path), dtype="fp32", device="cpu", lora_rank=4)
    assert tok2.padding_side == "left" and tok2.pad_token_id == tok.pad_token_id
    trainable = {n for n, p in loaded.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    assert any("mlp" in n for n in trainable)  # attention and MLP projections both adapted
    ids = torch.tensor([[1, 5, 6, 7]])
    with torch.no_grad():  # LoRA starts as the identity: same logits as the saved model
        assert torch.allclose(loaded(ids).logits, model(ids).logits, atol=1e-5)
    only_q, _ = load_model(str(tmp_path), dtype="fp32", lora_rank=2, lora_target_modules=["q_proj"])
    assert all("q_proj" in n for n, p in only_q.named_parameters() if p.requires_grad)


@pytest.mark.slow
def test_embedded_model_loads_from_cache_and_answers():
    """Converts the GGUF on first use (~30 s), then loads the cached safetensors in about a second."""
    models.embedded_model_dir()
    start = time.perf_counter()
    model, tok = load_model(EMBEDDED_MODEL, device="cpu")
    assert time.perf_counter() - start < 20
    assert model.dtype == default_dtype("cpu") and tok.padding_side == "left"
    assert model.config.num_hidden_layers == 30 and len(tok) == 49152
    ids = tok.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                  add_generation_prompt=True, return_tensors="pt", return_dict=True)
    out = model.generate(**ids, max_new_tokens=12, do_sample=False)
    assert "Paris" in tok.decode(out[0, ids["input_ids"].shape[1]:])


def test_cast_parameters_keeps_buffers_in_their_precision():
    import torch

    from retain_utils.core.models import cast_parameters, tiny_model

    model, _ = tiny_model(seed=0)
    buffers = {name: b.dtype for name, b in model.named_buffers()}
    assert any("inv_freq" in name for name in buffers), "the tiny Llama has RoPE's inv_freq buffer"
    cast_parameters(model, torch.bfloat16)
    assert all(p.dtype == torch.bfloat16 for p in model.parameters())
    assert {name: b.dtype for name, b in model.named_buffers()} == buffers


def test_cuda_precision_by_compute_capability(monkeypatch):
    # a T4 (7.5) reports is_bf16_supported() but emulates bf16: the capability decides
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    for capability, dtype in [((7, 5), torch.float16), ((7, 0), torch.float16), ((8, 0), torch.bfloat16),
                              ((8, 9), torch.bfloat16), ((9, 0), torch.bfloat16)]:
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None, c=capability: c)
        assert default_dtype("cuda") == dtype, capability
    assert default_dtype("cpu") == torch.float32  # CPUs unchanged
