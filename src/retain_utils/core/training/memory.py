"""Planning a run on a GPU before any compute: its peak memory against the device's, and LoRA when full
fine-tuning would not fit (``chapters.colab`` holds the ``colab`` profile's device check, Drive folder and
time projection).

The memory estimate is a model of what ``training.loop.prepare_policy`` and ``experiment`` keep on the
device (weights, copies, gradients, AdamW, activations, chunked logits, KV cache); it is a projection,
checked against measured peaks by ``benchmarks/gpu_check.py``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from ..models import LORA_TARGETS, default_dtype

GIB = 2**30
LORA_DEFAULT_RANK = 16           # the rank "auto" picks when full fine-tuning does not fit
LORA_MIN_PARAMS = 0.3e9          # smaller models always fine-tune fully (they fit, and LoRA would change results)
OVERHEAD_BYTES = int(0.75 * GIB)  # CUDA context, cuBLAS workspaces, allocator slack
FRAGMENTATION = 1.10             # the caching allocator rarely packs tensors perfectly
LOGIT_CHUNK = 256                # core.logprobs.completion_logprobs scores this many tokens at a time
PROMPT_TOKENS = 256              # a chat-templated prompt of the paper's tasks, with room to spare



class DoesNotFit(ValueError):
    """The run's estimated peak GPU memory exceeds what the device has; the message says what to change."""


# ---------------------------------------------------------------------------------------------- shapes


@dataclass(frozen=True)
class ModelShape:
    """What the memory estimate needs from a model: sizes only, no weights."""

    n_params: int
    n_layers: int
    hidden: int
    intermediate: int
    vocab: int
    kv_dim: int                 # key (= value) width per token per layer: kv heads x head dim
    lora_params_per_rank: int   # LoRA parameters at rank 1 on LORA_TARGETS (scales linearly with the rank)


def model_shape(model_or_config) -> ModelShape:
    """The shape of a loaded model or of a transformers config (built on the meta device: no memory)."""
    config = getattr(model_or_config, "config", model_or_config)
    if isinstance(model_or_config, torch.nn.Module):
        model = model_or_config
    else:
        from transformers import AutoModelForCausalLM

        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(config)
    seen, n_params = set(), 0
    for p in model.parameters():  # tied embeddings count once
        if id(p) not in seen:
            seen.add(id(p))
            n_params += p.numel()
    lora = 0
    for name, module in model.named_modules():
        if name.rsplit(".", 1)[-1] in LORA_TARGETS and isinstance(module, torch.nn.Linear):
            lora += module.in_features + module.out_features
        elif hasattr(module, "base_layer") and name.rsplit(".", 1)[-1] in LORA_TARGETS:  # peft-wrapped
            lora += module.base_layer.in_features + module.base_layer.out_features
    hidden = _attr(config, "hidden_size", "n_embd", "d_model")
    heads = _attr(config, "num_attention_heads", "n_head")
    head_dim = _attr(config, "head_dim", default=None) or hidden // heads
    kv_heads = _attr(config, "num_key_value_heads", default=None) or heads
    if hasattr(model, "peft_config"):  # a peft model: count the base only
        n_params -= sum(p.numel() for n, p in model.named_parameters() if "lora_" in n)
    return ModelShape(n_params, _attr(config, "num_hidden_layers", "n_layer"), hidden,
                      _attr(config, "intermediate_size", "n_inner", default=None) or 4 * hidden,
                      _attr(config, "vocab_size"), kv_heads * head_dim, lora)


def _attr(config, *names, default=...):
    for name in names:
        value = getattr(config, name, None)
        if value is not None:
            return value
    if default is ...:
        raise ValueError(f"model config {type(config).__name__} has none of {', '.join(names)}")
    return default


# The shapes of the Colab-sized models (from their hub config.json), so estimates and benchmarks need no hub.
QWEN25_SHAPES = {
    "0.5b": dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                 num_key_value_heads=2),
    "1.5b": dict(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12,
                 num_key_value_heads=2),
}


def qwen25_config(size: str):
    """A transformers Qwen2Config shaped like Qwen2.5-``size``-Instruct (vocabulary 151,936, tied embeddings)."""
    from transformers import Qwen2Config

    if size not in QWEN25_SHAPES:
        raise ValueError(f"unknown Qwen2.5 size {size!r}; valid: {', '.join(QWEN25_SHAPES)}")
    return Qwen2Config(vocab_size=151936, max_position_embeddings=32768, tie_word_embeddings=True,
                       rope_theta=1000000.0, **QWEN25_SHAPES[size])


def hub_config(name: str):
    """A model's transformers config from a short name, hub id or path: a few kB, no weights."""
    from transformers import AutoConfig

    from ..models import EMBEDDED_MODEL, _resolve_source, embedded_model_dir

    if name == EMBEDDED_MODEL:
        return AutoConfig.from_pretrained(embedded_model_dir())
    source, local_only = _resolve_source(name)
    return AutoConfig.from_pretrained(source, local_files_only=local_only)


# ---------------------------------------------------------------------------------------------- memory


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes per part of a run's peak: ``static`` parts live throughout; of ``training`` (activations,
    logits) and ``generation`` (KV cache) only the larger is live at once."""

    static: dict[str, int]
    training: dict[str, int]
    generation: dict[str, int]
    lora_rank: int

    @property
    def total(self) -> int:
        dynamic = max(sum(self.training.values()), sum(self.generation.values()))
        return int((sum(self.static.values()) + dynamic) * FRAGMENTATION + OVERHEAD_BYTES)

    @property
    def gib(self) -> float:
        return self.total / GIB

    def summary(self) -> str:
        """The largest parts, in GiB: what to shrink."""
        parts = {**self.static, **self.training, **self.generation}
        top = sorted(parts.items(), key=lambda kv: -kv[1])[:4]
        return ", ".join(f"{k} {v / GIB:.1f}" for k, v in top)


def estimate_memory(model_or_config, config, *, dtype: torch.dtype = torch.float16, lora_rank: int | None = None,
                    bench_copy: bool = True, prompt_tokens: int = PROMPT_TOKENS) -> MemoryEstimate:
    """Peak GPU memory of training ``config`` (a TrainConfig) on a model (loaded, or a transformers config).

    ``dtype``: the 16-bit (or fp32) type weights are kept in for sampling; ``lora_rank`` overrides the
    config's (``"auto"`` counts as full fine-tuning); ``bench_copy``: the experiment keeps the initial model
    beside the run (``experiment.Bench.reference``).
    """
    s = model_or_config if isinstance(model_or_config, ModelShape) else model_shape(model_or_config)
    rank = config.lora_rank if lora_rank is None else lora_rank
    rank = 0 if rank == "auto" else int(rank)
    low = torch.tensor([], dtype=dtype).element_size()
    n = s.n_params
    static = {"initial model": low * n} if bench_copy else {}
    if rank > 0:  # prepare_policy: 16-bit frozen base, fp32 adapters; reference = adapters off; sampler = policy
        adapters = s.lora_params_per_rank * rank
        static.update({"policy (16-bit base)": low * n, "adapters, grads, AdamW": 16 * adapters})
    else:  # fp32 master weights, fp32 reference copy, 16-bit sampler copy, fp32 grads, AdamW's two moments
        static.update({"policy (fp32)": 4 * n, "reference (fp32)": 4 * n, "gradients": 4 * n, "AdamW": 8 * n})
        if low < 4:
            static["sampler (16-bit)"] = low * n
    act = 4 if dtype == torch.float32 else 2
    from .config import for_device

    tokens = for_device(config, "cuda").micro_batch_tokens  # None: what an accelerator gets
    per_token_layer = act * (8 * s.hidden + 4 * s.intermediate + 2 * s.kv_dim)  # saved for backward
    training = {"activations": tokens * s.n_layers * per_token_layer,
                "logits (chunked)": 3 * LOGIT_CHUNK * s.vocab * 4}  # fp32 logits, softmax, their gradient
    rows = max(config.rollout_batch_size, config.eval_batch_size)
    length = prompt_tokens + max(config.max_new_tokens, config.eval_max_new_tokens or 0)
    kv = rows * length * s.n_layers * 2 * s.kv_dim * low
    generation = {"KV cache": kv, "prefill": rows * prompt_tokens * (s.hidden + s.intermediate) * low * 2}
    return MemoryEstimate(static, training, generation, rank)


def device_memory(device=None) -> int | None:
    """Bytes this process can use on a CUDA device (free + what its own allocator caches); None off CUDA."""
    device = torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type != "cuda":
        return None
    free, _ = torch.cuda.mem_get_info(device)
    return int(free + torch.cuda.memory_reserved(device))


def check_fits(estimate: MemoryEstimate, available: int | None, *, model: str = "the model") -> None:
    """Raise DoesNotFit, naming the fix, when the estimate exceeds ``available`` bytes (None: no limit)."""
    if available is None or estimate.total <= available:
        return
    fix = (f"set lora_rank={LORA_DEFAULT_RANK} or use a smaller model" if estimate.lora_rank == 0 else
           "lower micro_batch_tokens, rollout_batch_size or eval_batch_size, or use a smaller model")
    raise DoesNotFit(f"{model}: this run needs ~{estimate.gib:.1f} GiB of GPU memory ({estimate.summary()} GiB), "
                     f"this GPU has {available / GIB:.1f} GiB: {fix}")


def choose_lora_rank(shape: ModelShape, config, available: int | None, dtype: torch.dtype) -> int:
    """``config.lora_rank`` unless it is ``"auto"``: then full fine-tuning (0) off CUDA, for models under
    LORA_MIN_PARAMS and where it fits; else LORA_DEFAULT_RANK."""
    if config.lora_rank != "auto":
        return config.lora_rank
    if available is None or shape.n_params < LORA_MIN_PARAMS:
        return 0
    full = estimate_memory(shape, config, dtype=dtype, lora_rank=0)
    return 0 if full.total <= available else LORA_DEFAULT_RANK


def fit_to_device(model, config, *, bench_copy: bool = True):
    """``config`` with ``lora_rank`` resolved for ``model``'s device; on CUDA refuses (DoesNotFit) a run
    whose estimated peak exceeds the device's memory. Called by ``training.train`` before any compute."""
    device = next(model.parameters()).device
    available = device_memory(device)
    shape = model_shape(model)
    dtype = default_dtype(device)
    rank = choose_lora_rank(shape, config, available, dtype)
    config = dataclasses.replace(config, lora_rank=rank)
    check_fits(estimate_memory(shape, config, dtype=dtype, bench_copy=bench_copy), available,
               model=getattr(model.config, "_name_or_path", None) or type(model).__name__)
    return config


def check_before_load(model_name: str, configs, *, device=None, available: int | None = None) -> dict[str, int]:
    """Before the model loads: {config.run_name or method: LoRA rank it will get} for each TrainConfig, from
    the model's config alone (a few kB); raises DoesNotFit when a run cannot fit the CUDA device. Off CUDA
    (and ``available`` None) nothing is checked and "auto" means full fine-tuning."""
    configs = list(configs.values()) if isinstance(configs, dict) else list(configs)
    device = torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if available is None:
        available = device_memory(device)
    if available is None:
        return {c.run_name or c.method: 0 if c.lora_rank == "auto" else c.lora_rank for c in configs}
    dtype, shape = default_dtype(device), model_shape(hub_config(model_name))
    ranks = {}
    for c in configs:
        rank = choose_lora_rank(shape, c, available, dtype)
        check_fits(estimate_memory(shape, c, dtype=dtype, lora_rank=rank), available, model=model_name)
        ranks[c.run_name or c.method] = rank
    return ranks
