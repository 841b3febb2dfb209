"""Are the generated knowledge-bank questions neither trivial nor impossible for the embedded model?

Greedy accuracy (``evaluation.evaluate``, the task's open format) of the embedded model on a seeded sample of
held-out questions of each generated subject: ``python scripts/check_knowledge_bank.py [--per-subject 20]``.
Prints the accuracy per subject and overall, with Wilson 95 % intervals, the dtype and the CPU flags that matter.
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from build_knowledge_bank import GENERATED_SUBJECTS  # noqa: E402

from retain_utils.evaluation import evaluate, wilson_interval  # noqa: E402
from retain_utils.models import EMBEDDED_MODEL, load_model  # noqa: E402
from retain_utils.tasks import get_task  # noqa: E402
from retain_utils.tasks.mmlu import OPEN_PROMPT  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-subject", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    task = get_task("mmlu")
    held_out = task.make_examples(task.n_questions("eval"), seed=args.seed, split="eval")
    def group(q):  # chemistry asks two kinds of question: kept apart
        return q.subject if q.subject != "chemistry" else ("chemistry: symbol" if "symbol" in q.question
                                                           else "chemistry: atomic number")
    group_of = {OPEN_PROMPT.format(question=q.question): group(q) for q in task._questions
                if q.subject in GENERATED_SUBJECTS}
    rng = random.Random(args.seed)
    groups = sorted(set(group_of.values()))
    sample = {g: rng.sample(sorted((e for e in held_out if group_of.get(e.prompt) == g), key=lambda e: e.prompt),
                            args.per_subject) for g in groups}
    model, tokenizer = load_model(EMBEDDED_MODEL)
    dtype = next(model.parameters()).dtype
    scores = evaluate(model, tokenizer, sample, tasks={s: task for s in sample}, progress=True)
    flags = set(Path("/proc/cpuinfo").read_text().split()) if Path("/proc/cpuinfo").exists() else set()
    print(f"{EMBEDDED_MODEL}, {dtype}, CPU flags: {' '.join(sorted(flags & {'avx2', 'avx512f', 'avx512_bf16', 'amx_bf16'}))}")
    total = 0
    for s, score in scores.items():
        total += score.n_correct
        print(f"{s}: {score.n_correct}/{score.n} = {100 * score.accuracy:.1f} % "
              f"(95 % {100 * score.ci_low:.1f} to {100 * score.ci_high:.1f}), unparsed {score.n_unparsed}")
        for e, c in list(zip(sample[s], score.correct))[:3]:
            print(f"   {'right' if c else 'wrong'}: {e.prompt[:70]}")
    n = sum(x.n for x in scores.values())
    lo, hi = wilson_interval(total, n)
    print(f"all: {total}/{n} = {100 * total / n:.1f} % (95 % {100 * lo:.1f} to {100 * hi:.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
