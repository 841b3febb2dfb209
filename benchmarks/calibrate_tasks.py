"""Calibrate task difficulty on a model (default: the embedded SmolLM2-135M-Instruct).

For each task setting: greedy accuracy and the success rate of temperature samples on held-out
prompts. A target task needs a non-zero sampled rate (RL signal) and room to grow; a prior task needs a
baseline high enough for a drop to show. Writes a markdown table (stdout, and --out if given).

    .venv/bin/python benchmarks/calibrate_tasks.py --n 64 --out /work/notes/calibration.md
    .venv/bin/python benchmarks/calibrate_tasks.py --ifeval-kinds --n 16 --samples 2 --temperatures 1.0
        # per-constraint screening
"""

from __future__ import annotations

import argparse
import time

import torch

from retain_utils.core.evaluation import evaluate, sampled_success
from retain_utils.core.models import EMBEDDED_MODEL, load_model
from retain_utils.core.tasks import get_task
from retain_utils.core.tasks.ifeval import DEFAULT_KINDS, GENERATED_KINDS

SETTINGS = [  # (task, options) - the defaults first, then the alternatives they were chosen over
    ("mmlu", {}),
    ("mmlu", {"format": "choice"}),
    ("countdown", {}),
    ("countdown", {"ops": "+-"}),
    ("countdown", {"n_numbers": 3, "high": 20}),
    ("ifeval", {}),
]


def run(model, tok, settings, n, samples, temperatures, seed, batch_size):
    rows = []
    for name, options in settings:
        task = get_task(name, **options)
        examples = task.make_examples(n, seed=seed, split="eval")
        start = time.perf_counter()
        greedy = evaluate(model, tok, {name: examples}, tasks={name: task}, batch_size=batch_size)[name]
        sampled = [sampled_success(model, tok, task, examples, num_samples=samples, temperature=t,
                                   batch_size=batch_size, seed=seed) for t in temperatures]
        label = ", ".join(f"{k}={v}" for k, v in options.items()) or "default"
        rows.append((name, label, greedy, sampled, time.perf_counter() - start))
        rates = " ".join(f"T={t}: {s.accuracy:5.1%}" for t, s in zip(temperatures, sampled))
        print(f"{name:9s} {label:40s} greedy {greedy.accuracy:5.1%} (unparsed {greedy.n_unparsed}) "
              f"sampled {rates} [{time.perf_counter() - start:.0f}s]", flush=True)
    return rows


def _pct(s) -> str:
    return f"{100 * s.accuracy:.1f} [{100 * s.ci_low:.1f}, {100 * s.ci_high:.1f}]"


def table(rows, n, samples, temperatures) -> str:
    sampled_cols = " | ".join(f"sampled success % T={t} [95% CI]" for t in temperatures)
    lines = [f"| task | setting | greedy acc % [95% CI] | {sampled_cols} | unparsed (greedy) | truncated (greedy) "
             f"| n prompts | samples/prompt/T |",
             "|---|---|---|" + "---|" * len(temperatures) + "---|---|---|---|"]
    for name, label, g, sampled, _ in rows:
        cols = " | ".join(_pct(s) for s in sampled)
        lines.append(f"| {name} | {label} | {_pct(g)} | {cols} | {g.n_unparsed} | {g.n_truncated} | {n} | {samples} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=EMBEDDED_MODEL)
    parser.add_argument("--n", type=int, default=64, help="held-out prompts per setting")
    parser.add_argument("--samples", type=int, default=1, help="samples per prompt and temperature")
    parser.add_argument("--temperatures", type=float, nargs="+", default=[1.0, 0.8, 0.6])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--ifeval-kinds", action="store_true", help="screen every generated constraint kind")
    parser.add_argument("--out", help="also write the markdown table here")
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    model, tok = load_model(args.model)
    settings = [("ifeval", {"kinds": (k,)}) for k in GENERATED_KINDS] if args.ifeval_kinds else SETTINGS
    rows = run(model, tok, settings, args.n, args.samples, args.temperatures, args.seed, args.batch_size)
    text = table(rows, args.n, args.samples, args.temperatures)
    if not args.ifeval_kinds:
        text += f"\n\nifeval default kinds: {', '.join(DEFAULT_KINDS)}"
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(f"model: {args.model}, seed {args.seed}, threads {torch.get_num_threads()}\n\n{text}\n")


if __name__ == "__main__":
    main()
