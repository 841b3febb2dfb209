"""Is a committed campaign run's drop on one task the token budget? Retrain the run from its record (same config,
seed, training examples; fp32), then evaluate that task's held-out questions at several answer budgets.

``python scripts/budget_probe.py results/campaign/02_rl_vs_sft/KEY/runs/GRPO-s0-.../record.json --task countdown``
prints per budget the correct, unparsed and cut-off answers, then the first answers at the largest budget. At the
run's own budget the counts must equal the committed evaluation's (same seed, same machine: same numbers).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
from pathlib import Path

from retain_utils.core import evaluation, training
from retain_utils.core.generation import generate
from retain_utils.core.models import DTYPE_ENV, EMBEDDED_MODEL, load_model
from retain_utils.core.tasks import TASK_NAMES, get_task
from retain_utils.core.training import TrainConfig


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("record", type=Path, help="a run's record.json inside a committed campaign point")
    parser.add_argument("--task", default="countdown", choices=TASK_NAMES)
    parser.add_argument("--budgets", type=int, nargs="+", default=[96, 384], help="answer budgets, tokens")
    parser.add_argument("--show", type=int, default=3, help="answers printed at the largest budget")
    args = parser.parse_args(argv)
    if any(b < 1 for b in args.budgets):
        parser.error("--budgets must be positive token counts")
    if (not args.record.is_file() or len(args.record.resolve().parents) < 3
            or not (args.record.resolve().parents[2] / "done.json").is_file()):
        parser.error(f"{args.record}: not a run's record.json inside a finished campaign point "
                     "(results/campaign/NOTEBOOK/KEY/runs/RUN/record.json)")
    record = json.loads(args.record.read_text())
    profile = json.loads((args.record.resolve().parents[2] / "done.json").read_text())["stamp"]["profile"]
    os.environ[DTYPE_ENV] = "fp32"  # as the campaign ran
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    config = TrainConfig(**{**{k: v for k, v in record["config"].items() if k in fields},
                            "out_dir": None, "eval_every": 10**6})  # evaluations at the start and the end only
    tasks = {name: get_task(name) for name in TASK_NAMES}
    train = tasks[config.task].make_examples(profile["n_train"], seed=0, split="train")
    held_out = tasks[args.task].make_examples(record["n_eval"][args.task], seed=0, split="eval")
    model, tokenizer = load_model(EMBEDDED_MODEL)
    check = {config.task: tasks[config.task].make_examples(8, seed=0, split="eval")}  # train() needs one
    trained = training.train(config, model, tokenizer, tasks, train, check, progress=True).model.eval()
    print(f"{record['variant']}, target {config.task}, seed {config.seed}: {args.task}, "
          f"{len(held_out)} held-out questions")
    for budget in args.budgets:
        s = evaluation.evaluate(trained, tokenizer, {args.task: held_out}, max_new_tokens=budget, tasks=tasks,
                                progress=True)[args.task]
        print(f"budget {budget} tokens: {s.n_correct} correct, {s.n_unparsed} unparsed, {s.n_truncated} cut off, "
              f"{s.n_tokens} tokens")
    shown = generate(trained, tokenizer, [tasks[args.task].messages(e) for e in held_out[:args.show]],
                     max_new_tokens=max(args.budgets))
    for c in shown:
        print(f"--- finished: {c.finished}\n{c.text[:600]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
