#!/bin/bash
# Two cores, two ways: one process at 2 torch threads alone, then two processes at 1 thread each side by side,
# for a GRPO step (bench_grpo.py, ours) and greedy decoding (bench_eval.py). Run from the repository root, alone,
# with the venv installed; writes benchmarks/parallel/*.json.
set -e
export PYTHONPATH=$PWD/src
out=benchmarks/parallel
mkdir -p $out
G=".venv/bin/python benchmarks/bench_grpo.py --impl ours --prompts 4 --group 5 --tokens 96 --steps 3 --dtype fp32"
E=".venv/bin/python benchmarks/bench_eval.py --n 64 --tokens 64 --batch-size 32 --dtype fp32 --repeats 2"
result() { grep '^RESULT ' | sed 's/^RESULT //'; }
OMP_NUM_THREADS=2 $G --threads 2 | result > $out/grpo_alone2.json
(OMP_NUM_THREADS=1 $G --threads 1 | result > $out/grpo_par1a.json &
 OMP_NUM_THREADS=1 $G --threads 1 | result > $out/grpo_par1b.json; wait)
OMP_NUM_THREADS=2 $E --threads 2 --json $out/eval_alone2.json > /dev/null
(OMP_NUM_THREADS=1 $E --threads 1 --json $out/eval_par1a.json > /dev/null &
 OMP_NUM_THREADS=1 $E --threads 1 --json $out/eval_par1b.json > /dev/null; wait)
