"""Do two runs of the same configuration agree? Compare two run folders (record.json, metrics.jsonl): every
number ``campaign.verify`` compares, and each training step's loss and gradient norm.

``python scripts/compare_runs.py RUN_A RUN_B`` prints, per number, "identical" or the largest absolute
difference. Made to compare one campaign run computed on two kinds of CPU (fp32 both): accuracies come from
greedy answers, so they are identical unless a last-bit difference flips an answer; KL and retention are
float means and differ in the last bits.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from retain_utils.batch.campaign import COMPARED, gap


def read_run(folder: Path) -> tuple[dict, list[dict]]:
    if not (folder / "record.json").is_file():
        raise SystemExit(f"{folder}: no record.json (a finished run's folder holds one)")
    metrics = folder / "metrics.jsonl"
    steps = [json.loads(line) for line in metrics.read_text().splitlines()] if metrics.is_file() else []
    return json.loads((folder / "record.json").read_text()), steps


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", type=Path, nargs=2, help="two run folders (each with record.json)")
    args = parser.parse_args(argv)
    (a, steps_a), (b, steps_b) = (read_run(folder) for folder in args.runs)
    print(f"{a.get('variant')} (target {a.get('target')}, seed {a.get('seed')}) against "
          f"{b.get('variant')} (target {b.get('target')}, seed {b.get('seed')})")
    for key in COMPARED:
        print(f"{key}: {gap(a.get(key), b.get(key))}")
    for key in ("loss", "grad_norm"):
        print(f"per-step {key}: {gap([s.get(key) for s in steps_a], [s.get(key) for s in steps_b])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
