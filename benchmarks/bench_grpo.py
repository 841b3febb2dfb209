"""One GRPO step of ours against TRL's GRPOTrainer on the same model, prompts, group size, completion
length, precision and loss (loss_type="grpo", beta, k3 KL for TRL / our estimator, no KL bias correction).

    PYTHONPATH=$PWD/src .venv/bin/python benchmarks/bench_grpo.py [--dtype fp32] [--prompts 4 --group 4 --tokens 64]

Precision: ``--dtype`` or the default (models.default_dtype: fp32 on a CPU, or $RETAIN_UTILS_DTYPE; bf16 is
autocast over fp32 master weights), the same for both. Each implementation runs in its own
subprocess (so peak RSS is its own), one after the other; the first step is warm-up, the reported step
time is the mean over the later steps. Also measures this dtype's matmul peak in each subprocess (before
and after its run) and the model FLOP utilisation (MFU) of the training part (policy forward + backward)
and of the whole step, and records the CPU flags and load averages. Needs trl (benchmarks and tests only).

Ours keeps freed memory for reuse (``heap.keep_freed_memory``, applied by ``load_model``); TRL's process runs
with glibc's malloc as shipped unless ``--trl-heap kept`` gives it the same setting.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import torch

from machine import DTYPES, code_and_machine, cpu_flags, matmul_peak  # benchmarks/machine.py


def resolve_dtype(name: str | None) -> str:
    from retain_utils.core.models import default_dtype

    return name or ("bf16" if default_dtype("cpu") == torch.bfloat16 else "fp32")


def matmul_params(model) -> int:
    """Parameters that take part in matmuls: every Linear weight (the tied LM head counted once as such)."""
    return sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))


def examples(n: int, seed: int):
    from retain_utils.core.tasks import get_task

    task = get_task("countdown")
    return task, task.make_examples(n, seed=seed, split="train")


def run_ours(a) -> dict:
    from retain_utils.core.models import load_model
    from retain_utils.core.training import TrainConfig, train

    model, tok = load_model(dtype="fp32", device="cpu")  # fp32 master weights; bf16 (if asked) by autocast
    n_matmul = matmul_params(model)
    task, exs = examples(a.prompts * a.steps, a.seed)
    cfg = TrainConfig(method="grpo", task="countdown", lr=5e-6, steps=a.steps, batch_size=a.prompts,
                      group_size=a.group, micro_batch_size=a.micro, rollout_batch_size=a.prompts * a.group,
                      temperature=0.8, max_new_tokens=a.tokens, beta=a.beta, kl_estimator="k3",
                      warmup_frac=0.0, eval_every=10**6, seed=a.seed,
                      precision=a.dtype)
    res = train(cfg, model, tok, [task], exs, progress=False)
    later = res.steps[1:] or res.steps
    mean = lambda k: sum(s[k] for s in later) / len(later)
    return {"step_seconds": mean("seconds"), "gen_seconds": mean("gen_seconds"),
            "train_seconds": mean("seconds") - mean("data_seconds"), "completion_len": mean("completion_len"),
            "train_tokens": mean("train_tokens_per_s") * (mean("seconds") - mean("data_seconds")),
            "matmul_params": n_matmul, "steps": res.steps}


def run_trl(a) -> dict:
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from retain_utils.core.heap import keep_freed_memory
    from retain_utils.core.models import _load_embedded_tokenizer, embedded_model_dir

    if a.trl_heap == "kept":  # the malloc setting our load_model applies (heap.py); TRL as shipped has glibc's
        keep_freed_memory()
    tok = _load_embedded_tokenizer()
    task, exs = examples(a.prompts * a.steps, a.seed)
    ds = Dataset.from_dict({"prompt": [task.messages(e) for e in exs], "index": list(range(len(exs)))})

    def reward(completions, index, **_):
        return [task.reward(exs[i], c[0]["content"] if isinstance(c, list) else c) for c, i in zip(completions, index)]

    times, gen = [], []

    class Timer(TrainerCallback):
        def on_step_begin(self, *args, **kw):
            self.t0 = time.perf_counter()

        def on_step_end(self, *args, **kw):
            times.append(time.perf_counter() - self.t0)

    args = GRPOConfig(
        output_dir=tempfile.mkdtemp(), max_steps=a.steps, learning_rate=5e-6, lr_scheduler_type="cosine",
        warmup_steps=0, per_device_train_batch_size=a.prompts * a.group, gradient_accumulation_steps=1,
        num_generations=a.group, max_completion_length=a.tokens, temperature=0.8, top_k=0, top_p=1.0,
        beta=a.beta, loss_type="grpo", scale_rewards="group", use_bias_correction_kl=False,
        bf16=a.dtype == "bf16", gradient_checkpointing=False, use_cpu=True, report_to=[], logging_steps=1,
        save_strategy="no", seed=a.seed, model_init_kwargs={"dtype": torch.float32}, shuffle_dataset=False,
        max_grad_norm=1.0)
    trainer = GRPOTrainer(model=str(embedded_model_dir()), reward_funcs=[reward], args=args, train_dataset=ds,
                          processing_class=tok, callbacks=[Timer()])
    generate = trainer._generate

    def timed_generate(*args, **kw):
        t0 = time.perf_counter()
        out = generate(*args, **kw)
        gen.append(time.perf_counter() - t0)
        return out

    trainer._generate = timed_generate
    trainer.train()
    later = slice(1, None) if len(times) > 1 else slice(None)
    mean = lambda xs: sum(xs[later]) / len(xs[later])
    logs = [h for h in trainer.state.log_history if "completions/mean_length" in h]
    return {"step_seconds": mean(times), "gen_seconds": mean(gen),
            "completion_len": sum(h["completions/mean_length"] for h in logs[later]) / len(logs[later]),
            "steps": times}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--prompts", type=int, default=4)
    p.add_argument("--group", type=int, default=4)
    p.add_argument("--tokens", type=int, default=64)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--micro", type=int, default=None,
                   help="our micro batch (sequences per forward/backward; default: the device's, 32 on a CPU)")
    p.add_argument("--beta", type=float, default=0.05)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--impl", choices=["ours", "trl", "both"], default="both")
    p.add_argument("--dtype", choices=sorted(DTYPES), default=None, help="default: the machine's")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--rounds", type=int, default=1, help="alternate ours and TRL this many times (best of each)")
    p.add_argument("--trl-heap", choices=["default", "kept"], default="default",
                   help="TRL's process: glibc's malloc as shipped, or with freed memory kept as ours (heap.py)")
    p.add_argument("--json", help="write the results here")
    a = p.parse_args()
    a.dtype = resolve_dtype(a.dtype)
    if a.threads is not None:
        torch.set_num_threads(a.threads)
    if a.impl != "both":  # the CPU is shared: measure the peak right before and after the run, in-process
        load = [os.getloadavg()]
        before = matmul_peak(DTYPES[a.dtype], seconds=2.0)
        out = run_ours(a) if a.impl == "ours" else run_trl(a)
        out["peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        after = matmul_peak(DTYPES[a.dtype], seconds=2.0)
        out["matmul_peak"] = (before + after) / 2
        out["matmul_peak_before_after"] = [before, after]
        out["load_average"] = load + [os.getloadavg()]
        out["threads"] = torch.get_num_threads()
        print("RESULT " + json.dumps(out))
        return
    results = {"provenance": code_and_machine(), "config": vars(a), "torch_threads": a.threads or torch.get_num_threads(), "cpu_flags": cpu_flags(),
               "cpu_count": os.cpu_count(), "torch": torch.__version__}
    # On a shared machine the load changes within minutes: alternate the two over --rounds (ours, TRL, TRL,
    # ours, ...) and keep each one's fastest run; every run is kept under "runs".
    runs: dict[str, list] = {"ours": [], "trl": []}
    for r in range(a.rounds):
        for impl in (("ours", "trl") if r % 2 == 0 else ("trl", "ours")):
            args = [sys.executable, __file__, "--impl", impl] + [f"--{k.replace('_', '-')}={v}" for k, v in vars(a).items()
                                                                 if k not in ("impl", "json") and v is not None]
            proc = subprocess.run(args, capture_output=True, text=True)
            line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
            if proc.returncode or not line:
                sys.exit(f"{impl} failed:\n{proc.stderr[-3000:]}")
            runs[impl].append(json.loads(line[-1][len("RESULT "):]))
    for impl, xs in runs.items():
        results[impl] = min(xs, key=lambda x: x["step_seconds"])
    results["runs"] = runs
    ours, trl = results["ours"], results["trl"]
    n, peak = ours["matmul_params"], ours["matmul_peak"]
    results["matmul_peak_tflops"] = peak / 1e12
    train_flops = 6 * n * ours["train_tokens"]  # policy forward + backward on prompt + completion tokens
    ref_flops = 2 * n * ours["train_tokens"] if a.beta > 0 else 0.0
    gen_tokens = a.prompts * a.group * ours["completion_len"]
    gen_flops = 2 * n * (gen_tokens + ours["train_tokens"] - gen_tokens)  # decode + prefill (approximately)
    results["speedup_vs_trl"] = trl["step_seconds"] / ours["step_seconds"]
    results["mfu_train"] = train_flops / ours["train_seconds"] / peak
    results["mfu_step"] = (train_flops + ref_flops + gen_flops) / ours["step_seconds"] / peak
    summary = {k: results[k] for k in ("config", "cpu_flags", "torch_threads", "matmul_peak_tflops", "speedup_vs_trl",
                                       "mfu_train", "mfu_step")}
    summary.update({f"{impl}_{k}": results[impl][k] for impl in ("ours", "trl")
                    for k in ("step_seconds", "gen_seconds", "completion_len", "peak_rss_gib", "load_average")})
    print(json.dumps(summary, indent=2))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
