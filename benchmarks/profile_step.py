"""Where one greedy evaluation and one GRPO step spend their time on this CPU (simple wall-clock timers).

    PYTHONPATH=$PWD/src .venv/bin/python benchmarks/profile_step.py --dtype fp32 --part eval
    PYTHONPATH=$PWD/src .venv/bin/python benchmarks/profile_step.py --dtype fp32 --part grpo

eval: greedy decoding of ``--n`` ifeval prompts (batch = n), split into prefill forward, decode forwards and
the rest of the loop (argmax, host syncs, cache bookkeeping: Python overhead), then the same prompts through
transformers' ``model.generate``. grpo: one GRPO step at bench_grpo.py's defaults split into rollout
(prefill, decode, sampling noise), reference pass, policy forward, backward and the optimizer/rest.
Prints one JSON line with the CPU flags, thread count and load average.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections import defaultdict
from contextlib import contextmanager

import torch

from machine import cpu_flags  # benchmarks/machine.py

TIMES: dict[str, float] = defaultdict(float)
COUNTS: dict[str, int] = defaultdict(int)


@contextmanager
def timed(name):
    t0 = time.perf_counter()
    try:
        yield
    finally:
        TIMES[name] += time.perf_counter() - t0
        COUNTS[name] += 1


def wrap_forward(model, prefix):
    """Time a model's forward calls, split by prefill (more than one new token) and decode (one token)."""
    inner = model.forward

    def forward(*args, **kw):
        ids = kw.get("input_ids", args[0] if args else None)
        kind = "prefill" if ids is not None and ids.shape[-1] > 1 else "decode"
        with timed(f"{prefix}{kind}"):
            return inner(*args, **kw)

    model.forward = forward
    return inner


def profile_eval(a, dtype):
    from retain_utils.core import generation
    from retain_utils.core.evaluation import eval_examples
    from retain_utils.core.models import load_model
    from retain_utils.core.tasks import get_task

    model, tok = load_model(dtype=dtype, device="cpu")
    task = get_task("ifeval")
    exs = eval_examples(a.n, 0, {"ifeval": task})["ifeval"]
    msgs = [task.messages(e) for e in exs]
    generation.generate(model, tok, msgs[:2], max_new_tokens=2)  # warm-up
    TIMES.clear()
    inner = wrap_forward(model, "ours_")
    t0 = time.perf_counter()
    ours = generation.generate(model, tok, msgs, max_new_tokens=a.tokens, batch_size=a.n)
    total = time.perf_counter() - t0
    model.forward = inner
    out = {"ours_total": total, **{k: v for k, v in TIMES.items()}, "ours_decode_calls": COUNTS["ours_decode"]}
    out["ours_other"] = total - TIMES["ours_prefill"] - TIMES["ours_decode"]
    out["generated_tokens"] = sum(len(c.completion_ids) for c in ours)
    out["prompt_tokens"] = sum(len(c.prompt_ids) for c in ours)
    out["max_prompt"] = max(len(c.prompt_ids) for c in ours)
    # transformers' own generate on the same prompts, one batch, left padding
    enc = tok([tok.decode(c.prompt_ids) for c in ours], return_tensors="pt", padding=True, add_special_tokens=False)
    TIMES.clear()
    inner = wrap_forward(model, "hf_")
    t0 = time.perf_counter()
    with torch.inference_mode():
        hf = model.generate(**enc, do_sample=False, max_new_tokens=a.tokens, pad_token_id=tok.pad_token_id)
    out["hf_total"] = time.perf_counter() - t0
    model.forward = inner
    out.update({k: v for k, v in TIMES.items()})
    out["hf_other"] = out["hf_total"] - TIMES["hf_prefill"] - TIMES["hf_decode"]
    return out


def profile_grpo(a, dtype):
    from retain_utils.core import generation
    from retain_utils.core.models import load_model
    from retain_utils.core.tasks import get_task
    from retain_utils.core.training import TrainConfig, train
    from retain_utils.core.training import grpo, loop

    model, tok = load_model(dtype="fp32", device="cpu")
    task = get_task("countdown")
    exs = task.make_examples(a.prompts * a.steps, seed=0, split="train")
    precision = "bf16" if dtype == torch.bfloat16 else "fp32"
    cfg = TrainConfig(method="grpo", task="countdown", lr=5e-6, steps=a.steps, batch_size=a.prompts,
                      group_size=a.group, rollout_batch_size=a.prompts * a.group,
                      temperature=0.8, max_new_tokens=a.tokens, beta=0.05, kl_estimator="k3", warmup_frac=0.0,
                      eval_every=10**6, seed=0, precision=precision)
    # rollout: generate (with its prefill/decode forwards timed by wrapping the sampler's forward at call time)
    gen = loop.generate

    def timed_generate(m, *args, **kw):
        inner = wrap_forward(m, "rollout_")
        try:
            with timed("rollout_total"):
                return gen(m, *args, **kw)
        finally:
            m.forward = inner

    loop.generate = timed_generate
    ref = loop.Run.reference_logprobs

    def timed_ref(self, *args, **kw):
        with timed("reference_pass"):
            return ref(self, *args, **kw)

    loop.Run.reference_logprobs = timed_ref
    loss = grpo.loss

    def timed_loss(*args, **kw):
        with timed("policy_forward"):
            return loss(*args, **kw)

    grpo.loss = timed_loss  # fit looks it up on the module at each call
    backward = torch.autograd.backward

    def timed_backward(*args, **kw):
        with timed("policy_backward"):
            return backward(*args, **kw)

    torch.autograd.backward = timed_backward
    # sampling noise alone: the per-row generator draws of one decode step at the rollout's batch
    gens = [generation._row_generator(0, p, s, torch.device("cpu")) for p in range(a.prompts) for s in range(a.group)]
    vocab = model.config.vocab_size
    t0 = time.perf_counter()
    for _ in range(10):
        u = torch.stack([torch.rand(vocab, generator=g) for g in gens])
        torch.log(-torch.log(u))
    noise_per_token = (time.perf_counter() - t0) / 10
    res = train(cfg, model, tok, [task], exs, progress=False)
    steps = res.steps
    out = {k: v / a.steps for k, v in TIMES.items()}
    out["rollout_decode_calls"] = COUNTS["rollout_decode"] / a.steps
    out["noise_seconds_per_decode_step_estimate"] = noise_per_token
    out["step_seconds"] = sum(s["seconds"] for s in steps) / len(steps)
    out["step_seconds_each"] = [s["seconds"] for s in steps]
    out["generated_tokens"] = sum(s["generated_tokens"] for s in steps) / len(steps)
    out["rollout_other"] = out["rollout_total"] - out.get("rollout_prefill", 0) - out.get("rollout_decode", 0)
    out["rest"] = out["step_seconds"] - out["rollout_total"] - out["reference_pass"] - out["policy_forward"] \
        - out["policy_backward"]
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--part", choices=["eval", "grpo"], default="eval")
    p.add_argument("--dtype", choices=["fp32", "bf16", "auto"], default="auto")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--n", type=int, default=32)
    p.add_argument("--tokens", type=int, default=32, help="new tokens (eval); grpo uses --grpo-tokens")
    p.add_argument("--prompts", type=int, default=4)
    p.add_argument("--group", type=int, default=4)
    p.add_argument("--grpo-tokens", type=int, default=64)
    p.add_argument("--steps", type=int, default=1)
    a = p.parse_args()
    from retain_utils.core.models import default_dtype

    if a.threads:
        torch.set_num_threads(a.threads)
    dtype = default_dtype("cpu") if a.dtype == "auto" else {"fp32": torch.float32, "bf16": torch.bfloat16}[a.dtype]
    load_before = os.getloadavg()
    if a.part == "eval":
        out = profile_eval(a, dtype)
    else:
        a.tokens = a.grpo_tokens
        out = profile_grpo(a, dtype)
    out.update(part=a.part, dtype=str(dtype), threads=torch.get_num_threads(), cpu_flags=cpu_flags(),
               load_before=load_before, load_after=os.getloadavg(), torch=torch.__version__)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
