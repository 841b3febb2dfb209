"""Is each kind of knowledge-bank question neither trivial nor impossible for the embedded model?

Greedy accuracy of the embedded model (the task's open format and scorer, as ``evaluation.evaluate`` scores it)
on a seeded sample of held-out questions of each subject: ``python scripts/check_knowledge_bank.py
[--per-subject 20]``. Prints the accuracy per subject and overall with Wilson 95 % intervals, two example
answers per subject, the dtype and the CPU flags that matter.
"""

from __future__ import annotations

import argparse
import random
import sys

from retain_utils.core.evaluation import wilson_interval
from retain_utils.core.generation import generate
from retain_utils.core.models import EMBEDDED_MODEL, load_model
from retain_utils.core.provenance import cpu_flags
from retain_utils.core.tasks import get_task
from retain_utils.core.tasks.mmlu import OPEN_PROMPT


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-subject", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    task = get_task("mmlu")
    held_out = task.make_examples(task.n_questions("eval"), seed=args.seed, split="eval")
    subject_of = {OPEN_PROMPT.format(question=q.question): q.subject for q in task._questions}
    rng = random.Random(args.seed)
    sample = {}
    for subject in sorted(set(subject_of.values())):
        pool = sorted((e for e in held_out if subject_of[e.prompt] == subject), key=lambda e: e.prompt)
        sample[subject] = rng.sample(pool, min(args.per_subject, len(pool)))
    model, tokenizer = load_model(EMBEDDED_MODEL)
    print(f"{EMBEDDED_MODEL}, {next(model.parameters()).dtype}, CPU flags: {' '.join(cpu_flags())}")
    right_all = n_all = 0
    for subject, examples in sample.items():
        texts = [c.text for c in generate(model, tokenizer, [task.messages(e) for e in examples],
                                          max_new_tokens=task.max_new_tokens, temperature=0.0, progress=True)]
        right = sum(int(task.score(e, t)[0]) for e, t in zip(examples, texts))
        right_all, n_all = right_all + right, n_all + len(examples)
        lo, hi = wilson_interval(right, len(examples))
        print(f"{subject}: {right}/{len(examples)} right (95 % {100 * lo:.0f} to {100 * hi:.0f} %)")
        for e, t in list(zip(examples, texts))[:2]:
            print(f"   {e.prompt.split(' Answer in')[0]} -> {t[:80]!r}")
    lo, hi = wilson_interval(right_all, n_all)
    print(f"all: {right_all}/{n_all} = {100 * right_all / n_all:.1f} % (95 % {100 * lo:.1f} to {100 * hi:.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
