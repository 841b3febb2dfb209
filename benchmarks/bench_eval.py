"""Greedy decoding: ``retain_utils.core.generation.generate`` against transformers' ``model.generate`` in one process.

    PYTHONPATH=$PWD/src .venv/bin/python benchmarks/bench_eval.py                  # the machine's dtype
    PYTHONPATH=$PWD/src .venv/bin/python benchmarks/bench_eval.py --dtype fp32 --threads 1 --json out.json

The same ``--n`` held-out prompts of ``--task`` (default ifeval), one batch of ``--batch-size``, ``--tokens``
new tokens, greedy. Checks that both give identical tokens (up to each row's first EOS) and how many of
``model.generate``'s own answers change at half the batch size (none in fp32; in bf16 many), and reports
tokens/s of each, their ratio, the peak memory (``ours_peak_rss_gib``: the process once ours has run at full
batch, before ``model.generate`` has; ``peak_rss_gib``: after both), the matmul peak of this dtype measured in the same process (before and
after) and the CPU flags and load. The two are timed alternately ``--repeats`` times (best of each), so
a change of load on a shared machine hits both.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch

from retain_utils.core.evaluation import eval_examples
from retain_utils.core.generation import eos_token_ids, encode_prompts, generate
from retain_utils.core.models import EMBEDDED_MODEL, default_dtype, load_model
from retain_utils.core.tasks import get_task
from retain_utils.core.results import peak_rss_bytes

from machine import DTYPES, code_and_machine, cpu_flags, matmul_peak  # benchmarks/machine.py


def hf_greedy(model, tokenizer, prompts: list[list[int]], max_new_tokens: int, pad_id: int, eos: set[int]):
    """transformers' generate on left-padded prompts; each row cut after its first EOS."""
    width = max(map(len, prompts))
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, p in enumerate(prompts):
        ids[i, width - len(p):], mask[i, width - len(p):] = torch.tensor(p), 1
    with torch.inference_mode():
        out = model.generate(input_ids=ids, attention_mask=mask, do_sample=False, max_new_tokens=max_new_tokens,
                             pad_token_id=pad_id, top_k=None, top_p=None, temperature=None)
    rows = []
    for row in out[:, width:].tolist():
        end = next((i for i, t in enumerate(row) if t in eos), None)
        rows.append(row if end is None else row[: end + 1])
    return rows


def hf_in_batches(model, tokenizer, prompts: list[list[int]], batch_size: int, max_new_tokens: int, pad_id: int,
                  eos: set[int]):
    """``hf_greedy`` over consecutive batches of ``batch_size`` prompts, answers in prompt order."""
    return [r for i in range(0, len(prompts), batch_size)
            for r in hf_greedy(model, tokenizer, prompts[i:i + batch_size], max_new_tokens, pad_id, eos)]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=EMBEDDED_MODEL)
    parser.add_argument("--task", default="ifeval")
    parser.add_argument("--n", type=int, default=32, help="held-out prompts")
    parser.add_argument("--tokens", type=int, default=32, help="new tokens per prompt")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--dtype", choices=sorted(DTYPES), default=None,
                        help="default: models.default_dtype's (fp32 on a CPU, or $RETAIN_UTILS_DTYPE)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="write the results here")
    a = parser.parse_args()
    if a.threads is not None:
        torch.set_num_threads(a.threads)
    dtype = DTYPES[a.dtype] if a.dtype else default_dtype("cpu")
    model, tok = load_model(a.model, dtype=dtype, device="cpu")
    task = get_task(a.task)
    msgs = [task.messages(e) for e in eval_examples(a.n, a.seed, {a.task: task})[a.task]]
    prompts = encode_prompts(tok, msgs)
    eos = eos_token_ids(model, tok)
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else min(eos)
    load = [os.getloadavg()]
    peak_before = matmul_peak(dtype)
    generate(model, tok, msgs[:2], max_new_tokens=2)  # warm-up of both paths
    hf_greedy(model, tok, prompts[:2], 2, pad_id, eos)
    ours_s, hf_s, ours, hf, ours_peak = [], [], None, None, None
    for _ in range(a.repeats):
        t0 = time.perf_counter()
        ours = generate(model, tok, msgs, max_new_tokens=a.tokens, batch_size=a.batch_size)
        ours_s.append(time.perf_counter() - t0)
        ours_peak = ours_peak or peak_rss_bytes()  # before model.generate's first full batch
        t0 = time.perf_counter()
        hf = hf_in_batches(model, tok, prompts, a.batch_size, a.tokens, pad_id, eos)
        hf_s.append(time.perf_counter() - t0)
        load.append(os.getloadavg())
    # model.generate against itself in half-size batches: in bf16 rounding follows the padding, so a greedy
    # answer depends on its batch and "identical" can only be asked of fp32
    hf_half = hf_in_batches(model, tok, prompts, max(1, a.batch_size // 2), a.tokens, pad_id, eos)
    peak_after = matmul_peak(dtype)
    ours_ids = [c.completion_ids for c in ours]
    n_tokens = sum(map(len, ours_ids))
    hf_tokens = sum(map(len, hf))
    identical = ours_ids == hf
    res = {
        "provenance": code_and_machine(),
        "model": a.model, "task": a.task, "n": a.n, "max_new_tokens": a.tokens, "batch_size": a.batch_size,
        "dtype": str(dtype), "threads": torch.get_num_threads(), "cpu_count": os.cpu_count(), "cpu_flags": cpu_flags(),
        "load_average": load, "torch": torch.__version__,
        "matmul_peak_tflops": [peak_before / 1e12, peak_after / 1e12],
        "ours_seconds": ours_s, "hf_seconds": hf_s, "ours_peak_rss_gib": ours_peak / 2**30,
        "peak_rss_gib": peak_rss_bytes() / 2**30, "ours_tokens": n_tokens, "hf_tokens": hf_tokens,
        "ours_tokens_per_s": n_tokens / min(ours_s), "hf_tokens_per_s": hf_tokens / min(hf_s),
        "identical_outputs": identical,
        "rows_differing": sum(x != y for x, y in zip(ours_ids, hf)),
        "hf_rows_differing_at_half_batch": sum(x != y for x, y in zip(hf_half, hf)),
        "prompt_tokens": sum(map(len, prompts)),
    }
    res["speedup_vs_hf"] = min(hf_s) / min(ours_s)
    # square-matmul bound of the generated tokens alone (prefill excluded): 2 x matmul params x tokens / peak
    n_matmul = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
    res["ours_fraction_of_matmul_bound"] = 2 * n_matmul * n_tokens / min(ours_s) / max(peak_before, peak_after)
    print(json.dumps({k: v for k, v in res.items() if k not in ("load_average",)}, indent=1))
    if not identical:
        print(f"WARNING: {res['rows_differing']} of {len(hf)} rows differ from model.generate "
              f"(model.generate itself at half the batch size: {res['hf_rows_differing_at_half_batch']})")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=2)


if __name__ == "__main__":
    main()
