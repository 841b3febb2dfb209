"""The CUDA path, checked in one command (under ~8 minutes on a T4 or an H200), no hub needed:

    PYTHONPATH=src python benchmarks/gpu_check.py --out OUT_DIR            # on a machine with a GPU
    PYTHONPATH=src python benchmarks/gpu_check.py --out OUT_DIR --cpu-dry-run  # the tiny part, on CPU

1. A tiny random model, end to end on the device: greedy evaluation of the three tasks, seeded sampling
   (the same rows whatever the batch), GRPO and SFT steps in the device's default precision, fp16 with the
   GradScaler, LoRA (adapters-off reference = the initial model), an interrupted run resumed from its
   checkpoint, KL to the initial model, and the memory check refusing a run that cannot fit.
2. Qwen2.5-0.5B- and 1.5B-shaped models with random weights (a transformers Qwen2Config): peak memory and
   throughput of one GRPO step (40 rollouts of 128 tokens, LoRA rank 16 and, where it fits, full
   fine-tuning) and of greedy evaluation (64 rows, 128 tokens), in fp16 and bf16; against memory.estimate_memory;
   and the projected time of each notebook's `colab` profile at the measured speeds (a projection).

Writes OUT_DIR/gpu_check.json; exits 1 when a check of part 1 fails.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import platform
import sys
import time
import traceback
from pathlib import Path

import torch

from retain_utils.core import evaluation, models, provenance, training
from retain_utils.chapters import colab
from retain_utils.core.training import memory
from retain_utils.core.generation import generate
from retain_utils.core.tasks import Example, Task, get_task
from retain_utils.core.training import TrainConfig, train
from retain_utils.core.logprobs import collate, completion_logprobs

COLAB_NOTEBOOKS = ("02_rl_vs_sft", "03_ablations", "04_iterative_sft")


class CoinTask(Task):
    """A task whose 0/1 reward is a hash of the response: varied rewards from a random model, any vocabulary."""

    name = "coin"
    max_new_tokens = 16

    def make_examples(self, n, seed=0, split="train"):
        return [Example("coin", f"{split} {seed} {i}: flip a coin and say what it shows.", None, "heads")
                for i in range(n)]

    def parse(self, response):
        return response

    def verify(self, example, parsed):
        return hashlib.sha256(parsed.encode()).digest()[0] % 2 == 0


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_gib(device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / memory.GIB if device.type == "cuda" else None


def reset_peak(device):
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def device_info(device) -> dict:
    info = {"torch": torch.__version__, "python": platform.python_version(), "device": str(device),
            "default_dtype": str(models.default_dtype(device))}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(name=props.name, capability=list(torch.cuda.get_device_capability(device)),
                    total_gib=props.total_memory / memory.GIB, available_gib=memory.device_memory(device) / memory.GIB,
                    is_bf16_supported=torch.cuda.is_bf16_supported())
    else:
        info["cpu_flags"] = provenance.cpu_flags()
    return info


# ---------------------------------------------------------------------------------------------- part 1


def tiny_checks(device, out: Path) -> list[dict]:
    """Every check: {"check", "ok", "seconds", "detail"}; a failing check records its traceback and the rest run."""
    coin = CoinTask()
    train_ex = coin.make_examples(16)
    results: list[dict] = []

    def tiny():
        model, tok = models.tiny_model(seed=0)
        with torch.no_grad():  # diverse outputs: a tiny model at std 0.02 repeats its last token
            gen = torch.Generator().manual_seed(0)
            for name, p in model.named_parameters():
                if "norm" not in name:
                    p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
        return model.to(device), tok

    def base(**kw):
        c = dict(method="grpo", task="coin", lr=1e-3, steps=3, batch_size=4, group_size=4, temperature=1.0,
                 max_new_tokens=8, eval_every=3, eval_max_new_tokens=8, warmup_frac=0.0, checkpoint_every=1)
        c.update(kw)
        return TrainConfig(**c)

    def check(name):
        def wrap(fn):
            t0 = time.perf_counter()
            try:
                detail = fn()
                results.append({"check": name, "ok": True, "seconds": time.perf_counter() - t0, "detail": detail})
            except Exception:
                results.append({"check": name, "ok": False, "seconds": time.perf_counter() - t0,
                                "detail": traceback.format_exc(limit=6)})
            row = results[-1]
            print(f"  [{'ok' if row['ok'] else 'FAIL'}] {name} ({row['seconds']:.1f} s)"
                  + ("" if row["ok"] else "\n" + row["detail"]), flush=True)
            return fn
        return wrap

    @check("greedy evaluation of ifeval, mmlu, countdown")
    def _():
        model, tok = tiny()
        tasks = {n: get_task(n) for n in ("ifeval", "mmlu", "countdown")}
        exs = {n: t.make_examples(6, split="eval") for n, t in tasks.items()}
        scores = evaluation.evaluate(model, tok, exs, tasks=tasks, max_new_tokens=8)
        again = evaluation.evaluate(model, tok, exs, tasks=tasks, max_new_tokens=8, batch_size=4)
        assert {n: s.correct for n, s in scores.items()} == {n: s.correct for n, s in again.items()}
        return {n: s.n_tokens for n, s in scores.items()}

    @check("seeded sampling: a row does not depend on its batch")
    def _():
        model, tok = tiny()
        msgs = [[{"role": "user", "content": f"prompt {i} " * (i + 1)}] for i in range(5)]
        a = generate(model, tok, msgs, max_new_tokens=12, temperature=1.0, num_samples=3, batch_size=15, seed=7)
        b = generate(model, tok, msgs, max_new_tokens=12, temperature=1.0, num_samples=3, batch_size=4, seed=7)
        assert [c.completion_ids for c in a] == [c.completion_ids for c in b]
        assert len({tuple(c.completion_ids) for c in a}) > 1, "all samples identical"
        return None

    runs = {}

    @check("GRPO, default precision (3 steps, eval, checkpoint)")
    def _():
        model, tok = tiny()
        res = train(base(out_dir=str(out / "grpo")), model, tok, [coin], train_ex, {"coin": coin.make_examples(8)},
                    progress=False)
        assert res.status == "finished" and all(s["grad_norm"] is not None for s in res.steps)
        runs["grpo"] = res
        return {"losses": [s["loss"] for s in res.steps], "lora_rank": res.config.lora_rank}

    @check("SFT (2 steps)")
    def _():
        model, tok = tiny()
        res = train(base(method="sft", steps=2), model, tok, [coin], train_ex, (), progress=False)
        assert res.status == "finished" and res.steps[-1]["loss"] > 0
        return {"losses": [s["loss"] for s in res.steps]}

    @check("fp16 autocast with GradScaler (GRPO, 2 steps)")
    def _():
        model, tok = tiny()
        res = train(base(precision="fp16", steps=2), model, tok, [coin], train_ex, (), progress=False)
        assert res.status == "finished" and "loss_scale" in res.steps[-1]
        return {"loss_scale": res.steps[-1]["loss_scale"], "skipped": [s["overflow_skipped"] for s in res.steps]}

    @check("LoRA: adapters-off reference = initial model, only adapters train")
    def _():
        model, tok = tiny()
        initial, _ = tiny()
        res = train(base(lora_rank=4, beta=0.05, steps=2, lr=1e-2, precision="fp32"), model, tok, [coin], train_ex, (), progress=False)
        policy = res.model
        batch = collate([[5, 6, 7, 8], [9, 10]], [[11, 12, 13], [14]], tok.pad_token_id).to(device)
        with torch.no_grad():
            want = completion_logprobs(initial, batch)
            with policy.disable_adapter():
                ref = completion_logprobs(policy, batch)
        assert torch.allclose(ref, want, atol=1e-4), float((ref - want).abs().max())
        assert all(p.requires_grad == ("lora_" in n) for n, p in policy.named_parameters())
        runs["lora"] = res
        return {"max_ref_diff": float((ref - want).abs().max()), "kl_last": res.steps[-1]["kl"]}

    @check("interrupted run resumes from its checkpoint and ends like an uninterrupted one")
    def _():
        from retain_utils.core.training import grpo

        model, tok = tiny()
        whole = train(base(), model, tok, [coin], train_ex, (), progress=False)
        original = grpo.step_data

        def interrupt(run, step, accum):
            if step == 2:
                raise KeyboardInterrupt("simulated disconnect")
            return original(run, step, accum)

        cfg = base(out_dir=str(out / "resume"))
        model, tok = tiny()
        grpo.step_data = interrupt  # fit looks the method's functions up at each call
        try:
            train(cfg, model, tok, [coin], train_ex, (), progress=False)
            raise AssertionError("the interruption did not happen")
        except KeyboardInterrupt:
            pass
        finally:
            grpo.step_data = original
        model, tok = tiny()
        resumed = train(cfg, model, tok, [coin], train_ex, (), progress=False)
        assert resumed.status == "finished" and len(resumed.steps) == 3
        diff = abs(resumed.steps[-1]["loss"] - whole.steps[-1]["loss"])
        assert diff < 1e-3, diff
        return {"final_loss_diff": diff}

    @check("KL to the initial model (chunked)")
    def _():
        initial, tok = tiny()
        msgs = [[{"role": "user", "content": "Name a colour."}], [{"role": "user", "content": "Hi"}]]
        kl = evaluation.kl_to_initial(runs["grpo"].model, initial, tok, msgs, max_new_tokens=8, num_samples=2)
        zero = evaluation.kl_to_initial(initial, initial, tok, msgs, max_new_tokens=8)
        assert kl >= 0 and abs(zero) < 1e-4
        lora = evaluation.kl_to_initial(runs["lora"].model, None, tok, msgs, max_new_tokens=8)
        return {"kl_grpo": kl, "kl_self": zero, "kl_lora": lora}

    @check("memory check refuses a run that cannot fit, before any compute")
    def _():
        model, tok = tiny()
        real = memory.device_memory
        memory.device_memory = lambda device=None: int(0.1 * memory.GIB)
        try:
            train(base(), model, tok, [coin], train_ex, (), progress=False)
            raise AssertionError("not refused")
        except memory.DoesNotFit as e:
            return str(e)
        finally:
            memory.device_memory = real

    return results


# ---------------------------------------------------------------------------------------------- part 2


def shaped_model(size: str, dtype: torch.dtype, device, tok):
    from transformers import Qwen2ForCausalLM

    config = memory.qwen25_config(size)
    config.bos_token_id, config.eos_token_id, config.pad_token_id = tok.bos_token_id, tok.eos_token_id, tok.pad_token_id
    torch.manual_seed(0)
    with torch.device(device):
        model = Qwen2ForCausalLM(config)
    model = models.cast_parameters(model, dtype).eval()
    model.generation_config.pad_token_id = tok.pad_token_id
    model.generation_config.eos_token_id = tok.eos_token_id
    return model


def measure(size: str, dtype_name: str, lora_rank: int, device, tokens: int) -> dict:
    """Greedy evaluation and one GRPO step (after a warm-up step) of a random Qwen2.5-shaped model."""
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}[dtype_name]
    tok = models.byte_tokenizer()
    coin = CoinTask()
    coin.max_new_tokens = tokens
    row = {"size": size, "dtype": dtype_name, "lora_rank": lora_rank, "tokens": tokens}
    cfg = TrainConfig(method="grpo", task="coin", lr=1e-5, steps=2, batch_size=8, group_size=5, temperature=1.0,
                      max_new_tokens=tokens, precision=dtype_name, lora_rank=lora_rank, eval_every=10**6,
                      warmup_frac=0.0, checkpoint_every=0, beta=0.05)
    shape = memory.model_shape(memory.qwen25_config(size))
    row["estimate_gib"] = memory.estimate_memory(shape, cfg, dtype=dtype, bench_copy=False).gib  # as measured here
    with_bench = memory.estimate_memory(shape, cfg, dtype=dtype)  # what train() checks (the experiment keeps a copy)
    available = memory.device_memory(device)
    if available is not None and with_bench.total > available:
        row["skipped"] = f"needs ~{with_bench.gib:.1f} GiB with the experiment's copy, {available / memory.GIB:.1f} GiB available"
        return row
    reset_peak(device)
    model = shaped_model(size, dtype, device, tok)
    row["weights_gib"] = peak_gib(device)
    exs = {"coin": coin.make_examples(64, split="eval")}
    evaluation.evaluate(model, tok, {"coin": exs["coin"][:8]}, tasks={"coin": coin}, max_new_tokens=4)  # warm-up
    sync(device)
    t0 = time.perf_counter()
    scores = evaluation.evaluate(model, tok, exs, tasks={"coin": coin}, max_new_tokens=tokens, batch_size=64)
    sync(device)
    seconds = time.perf_counter() - t0
    row.update(eval_seconds=seconds, eval_tokens=scores["coin"].n_tokens,
               eval_steps_per_s=scores["coin"].n_tokens / 64 / seconds, eval_peak_gib=peak_gib(device))
    reset_peak(device)
    res = train(cfg, model, tok, [coin], coin.make_examples(64), (), progress=False)
    sync(device)
    step = res.steps[-1]  # the second step: kernels warm
    rollout_rows = cfg.batch_size * cfg.group_size
    row.update(grpo_step_seconds=step["seconds"], gen_seconds=step["gen_seconds"],
               rollout_steps_per_s=step["generated_tokens"] / rollout_rows / step["gen_seconds"],
               train_tokens_per_s=step["train_tokens_per_s"], grpo_peak_gib=peak_gib(device),
               lora_rank_used=res.config.lora_rank)
    del model, res
    gc.collect()
    reset_peak(device)
    return row


def projections(rows: list[dict], device_name: str) -> list[dict]:
    out = []
    for r in rows:
        if "rollout_steps_per_s" not in r:
            continue
        speed = colab.Throughput(r["rollout_steps_per_s"], r["eval_steps_per_s"], r["train_tokens_per_s"],
                               source=f"measured: {device_name}, Qwen2.5-{r['size']}-shaped, {r['dtype']}, "
                                      f"lora_rank {r['lora_rank']}")
        out.append({"source": speed.source, **{nb: colab.projected_minutes(nb, "colab", speed) for nb in COLAB_NOTEBOOKS}})
    return out


# ---------------------------------------------------------------------------------------------- main


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="folder for gpu_check.json (and the tiny runs' checkpoints)")
    ap.add_argument("--cpu-dry-run", action="store_true", help="run part 1 on the CPU (no GPU needed), skip part 2")
    ap.add_argument("--sizes", default="0.5b,1.5b")
    ap.add_argument("--dtypes", default="fp16,bf16")
    ap.add_argument("--tokens", type=int, default=128, help="tokens per rollout and per evaluation answer")
    ap.add_argument("--budget-s", type=float, default=420.0, help="part 2 stops starting measurements after this")
    a = ap.parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    if a.cpu_dry_run:
        device = torch.device("cpu")
    elif torch.cuda.is_available():
        device = torch.device("cuda")
    else:
        print("no CUDA device: run with --cpu-dry-run to check the tiny part on the CPU", file=sys.stderr)
        return 2
    t_start = time.perf_counter()
    report = {"device": device_info(device), "argv": sys.argv[1:]}
    print(json.dumps(report["device"]), flush=True)
    print("part 1: tiny model, end to end", flush=True)
    report["tiny"] = tiny_checks(device, out / "tiny_runs")
    report["shaped"] = []
    if device.type == "cuda":
        print("part 2: Qwen2.5-shaped random models", flush=True)
        for dtype_name in a.dtypes.split(","):  # fp16 first: on a T4 bf16 is emulated (slow) and may be cut by the budget
            for size in a.sizes.split(","):
                for rank in (16, 0):
                    key = {"size": size, "dtype": dtype_name, "lora_rank": rank}
                    if time.perf_counter() - t_start > a.budget_s:
                        report["shaped"].append({**key, "skipped": "time budget"})
                        continue
                    try:
                        row = measure(size, dtype_name, rank, device, a.tokens)
                    except Exception as e:  # e.g. bf16 kernels missing on a pre-Ampere card
                        row = {**key, "error": f"{type(e).__name__}: {e}"[:500]}
                        gc.collect()
                        reset_peak(device)
                    report["shaped"].append(row)
                    print("  " + json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}),
                          flush=True)
        report["projected_colab_minutes"] = projections(report["shaped"], report["device"].get("name", "cuda"))
        report["projected_colab_minutes_assumed_t4"] = {
            nb: colab.projected_minutes(nb, "colab") for nb in COLAB_NOTEBOOKS}
        for p in report["projected_colab_minutes"]:
            print("  projected (not measured end to end) colab minutes, " + p["source"] + ": "
                  + ", ".join(f"{nb} {p[nb]:.0f}" for nb in COLAB_NOTEBOOKS), flush=True)
    report["seconds"] = time.perf_counter() - t_start
    (out / "gpu_check.json").write_text(json.dumps(report, indent=1, default=str))
    failed = [r["check"] for r in report["tiny"] if not r["ok"]]
    print(f"{len(report['tiny']) - len(failed)}/{len(report['tiny'])} checks passed in {report['seconds']:.0f} s; "
          f"wrote {out / 'gpu_check.json'}" + (f"; FAILED: {', '.join(failed)}" if failed else ""), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
