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
import math
from pathlib import Path

from retain_utils.campaign import COMPARED


def leaves(value, path: str = "") -> dict[str, object]:
    """Every scalar inside nested dicts and lists, keyed by its path."""
    if isinstance(value, dict):
        return {k: v for key, item in value.items() for k, v in leaves(item, f"{path}/{key}").items()}
    if isinstance(value, list):
        return {k: v for i, item in enumerate(value) for k, v in leaves(item, f"{path}[{i}]").items()}
    return {path: value}


def difference(a, b) -> str:
    """'identical', or the largest absolute difference between the numbers of ``a`` and ``b``."""
    la, lb = leaves(a), leaves(b)
    if la.keys() != lb.keys():
        return f"different shapes ({len(la)} and {len(lb)} values)"
    moved = [(k, la[k], lb[k]) for k in la if la[k] != lb[k]]
    if not moved:
        return f"identical ({len(la)} value{'s' * (len(la) != 1)})"
    if not all(isinstance(x, (int, float)) and isinstance(y, (int, float)) for _, x, y in moved):
        return f"{len(moved)} of {len(la)} values differ, not all numbers (first: {moved[0][0] or 'the value'})"
    largest = max(abs(x - y) for _, x, y in moved)
    scale = max(max(abs(x), abs(y)) for _, x, y in moved)
    return (f"{len(moved)} of {len(la)} values differ, largest by {largest:.3g} "
            f"(relative {largest / scale if scale else math.inf:.1g})")


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
        print(f"{key}: {difference(a.get(key), b.get(key))}")
    for key in ("loss", "grad_norm"):
        print(f"per-step {key}: {difference([s.get(key) for s in steps_a], [s.get(key) for s in steps_b])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
