"""Benchmark of the batched toy simulation: 400 runs x 200 steps x 1,000 Monte-Carlo samples.

    .venv/bin/python benchmarks/bench_toy.py [--repeats 3] [--conventions authors|exact]

Target: under 2 s on the project's 2-core machine. Reports the best of ``--repeats`` wall-clock
and CPU times (the CPU is shared: the CPU time is the steadier number), for
  * the chapter's case: 20 seeds x 10 learning rates x {forward, reverse KL}, bi-modal start
    (runs with the same seed share their random draws);
  * the worst case for random-number generation: 400 runs with 400 distinct seeds;
  * the same work as a Python loop over runs (20 runs timed, scaled to 400), for comparison.
``--conventions``: the runs' numerical conventions; "authors" (the default, density floor on) takes the
floored estimator path, "exact" the unfloored one.
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np

from retain_utils import toy

TARGET_S = 2.0


def timed(fn, repeats: int) -> tuple[float, float]:
    best_wall = best_cpu = float("inf")
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        fn()
        best_wall = min(best_wall, time.perf_counter() - w)
        best_cpu = min(best_cpu, time.process_time() - c)
    return best_wall, best_cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--conventions", choices=sorted(toy.CONVENTIONS), default="authors")
    args = ap.parse_args()

    lrs = np.geomspace(0.005, 0.2, 10)
    cases = {
        "20 seeds x 10 lrs x 2 methods": toy.grid_specs(["fkl", "rkl"], lrs, range(20), start="bi",
                                                        conventions=args.conventions),
        "400 distinct seeds": [toy.RunSpec(m, float(lr), seed=i, conventions=args.conventions) for i, (m, lr) in
                               enumerate((m, lr) for m in ("fkl", "rkl") for lr in lrs for _ in range(20))],
    }
    print(f"python {platform.python_version()}, numpy {np.__version__}, {platform.machine()}")
    print(f"{args.steps} steps x {args.samples} samples, {args.conventions} conventions, best of {args.repeats}")
    toy.simulate(cases["400 distinct seeds"][:8], 5, args.samples)  # warm-up (imports, caches)
    for name, specs in cases.items():
        wall, cpu = timed(lambda: toy.simulate(specs, args.steps, args.samples), args.repeats)
        ok = "OK" if wall < TARGET_S else "SLOWER THAN TARGET"
        print(f"batched, {name:32s} {len(specs)} runs: wall {wall:5.2f} s  cpu {cpu:5.2f} s  [{ok}, target {TARGET_S} s]")
    sub = cases["20 seeds x 10 lrs x 2 methods"][::20]
    wall, cpu = timed(lambda: [toy.simulate([s], args.steps, args.samples) for s in sub], 1)
    scale = 400 / len(sub)
    print(f"python loop over runs ({len(sub)} timed, x{scale:.0f}):        wall {wall * scale:5.2f} s  cpu {cpu * scale:5.2f} s")


if __name__ == "__main__":
    main()
