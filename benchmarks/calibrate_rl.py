"""Choose notebook 2's quick-profile hyperparameters: train each given variant on the target task with the
embedded model and print gain, drop and wall time (one line per run, appended to a JSON-lines log).

    .venv/bin/python benchmarks/calibrate_rl.py --target mmlu --variant grpo:lr=1e-5 --variant sft:lr=1e-4
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

from retain_utils.chapters import experiment
from retain_utils.core.models import EMBEDDED_MODEL
from retain_utils.core.training import TrainConfig


def parse_variant(text: str) -> tuple[str, dict]:
    """'grpo:lr=1e-5,beta=0' -> ('grpo', {'lr': 1e-5, 'beta': 0.0})."""
    method, _, rest = text.partition(":")
    fields = {f.name: f.type for f in dataclasses.fields(TrainConfig)}
    kw = {}
    for item in filter(None, rest.split(",")):
        key, value = item.split("=")
        if key not in fields:
            raise SystemExit(f"unknown TrainConfig field {key!r}")
        kw[key] = json.loads(value) if value not in ("None",) else None
    return method, kw


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--target", default="mmlu")
    ap.add_argument("--variant", action="append", required=True, help="method[:field=value,...]")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--n-train", type=int, default=96)
    ap.add_argument("--n-eval", type=int, default=40)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--group-size", type=int, default=5)
    ap.add_argument("--temperature", type=float, default=0.6)
    ap.add_argument("--eval-every", type=int, default=6)
    ap.add_argument("--log", default="benchmarks/calibrate_rl.jsonl")
    args = ap.parse_args()
    variants = [parse_variant(v) for v in args.variant]
    bench = experiment.make_bench(EMBEDDED_MODEL, args.target, args.n_train, args.n_eval)
    print(f"baseline ({bench.seconds:.0f} s):", {k: round(100 * s.accuracy, 1) for k, s in bench.baseline.items()})
    budget = bench.tasks[args.target].max_new_tokens
    for seed in args.seeds:
        for (method, kw), text in zip(variants, args.variant):
            config = TrainConfig(method=method, task=args.target, steps=args.steps, batch_size=args.batch_size,
                                 group_size=args.group_size, temperature=args.temperature, max_new_tokens=budget,
                                 eval_every=args.eval_every, seed=seed, **kw)
            t0 = time.time()
            r = experiment.run_variant(bench, config, label=text, progress=False)
            row = {"variant": text, "target": args.target, "seed": seed, "steps": args.steps,
                   "n_eval": args.n_eval, "temperature": args.temperature, "gain": r.gain, "drop": r.drop,
                   "kl": round(r.kl, 4), "trajectory": [(p["step"], p["gain"], p["drop"]) for p in r.trajectory],
                   "final": r.accuracy_final, "seconds": round(time.time() - t0, 1)}
            print(json.dumps(row), flush=True)
            with open(args.log, "a") as f:
                f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
