"""Are the generated knowledge-bank questions neither trivial nor impossible for the embedded model?

Greedy accuracy (the task's open format and scorer, as ``evaluation.evaluate`` scores it) of the embedded
model on a seeded sample of held-out questions of each generated kind, and how many it gets right when a
sentence answer without "The answer is:" is read too: ``python scripts/check_knowledge_bank.py [--per-subject 20]``.
Prints the accuracy per subject and overall, with Wilson 95 % intervals, the dtype and the CPU flags that matter.
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from build_knowledge_bank import GENERATED_SUBJECTS  # noqa: E402

from retain_utils.evaluation import wilson_interval  # noqa: E402
from retain_utils.generation import generate  # noqa: E402
from retain_utils.models import EMBEDDED_MODEL, load_model  # noqa: E402
from retain_utils.tasks import get_task  # noqa: E402
from retain_utils.tasks.mmlu import OPEN_PROMPT, open_answer_correct  # noqa: E402


def sentence_answer(response: str) -> str | None:
    """What a sentence answer ("The currency of Monaco is the Euro.") names: the text after the first line's
    last " is ". Not the task's parser (which needs "answer is"): a reading of what the model knows."""
    line = response.strip().split("\n")[0]
    return line.lower().rsplit(" is ", 1)[1].strip(" .") if " is " in line.lower() else None


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
    flags = set(Path("/proc/cpuinfo").read_text().split()) if Path("/proc/cpuinfo").exists() else set()
    print(f"{EMBEDDED_MODEL}, {dtype}, CPU flags: {' '.join(sorted(flags & {'avx2', 'avx512f', 'avx512_bf16', 'amx_bf16'}))}")
    totals = [0, 0, 0]
    for g, examples in sample.items():
        texts = [c.text for c in generate(model, tokenizer, [task.messages(e) for e in examples],
                                          max_new_tokens=task.max_new_tokens, temperature=0.0, progress=True)]
        scored = [task.score(e, t) for e, t in zip(examples, texts)]
        right = sum(int(r) for r, _ in scored)
        parsed = sum(ok for _, ok in scored)
        known = sum(bool(r) or bool((a := sentence_answer(t)) and open_answer_correct(
            a, e.target["correct"], e.target["wrong"])) for e, t, (r, _) in zip(examples, texts, scored))
        totals = [totals[0] + right, totals[1] + known, totals[2] + len(examples)]
        lo, hi = wilson_interval(right, len(examples))
        print(f"{g}: task score {right}/{len(examples)} ({100 * lo:.0f} to {100 * hi:.0f} %), parsed {parsed}; "
              f"right when a sentence answer counts too: {known}/{len(examples)}")
        for e, t in list(zip(examples, texts))[:2]:
            print(f"   {e.prompt.split(' Answer in')[0]} -> {t[:80]!r}")
    right, known, n = totals
    lo, hi = wilson_interval(right, n)
    klo, khi = wilson_interval(known, n)
    print(f"all: task score {right}/{n} = {100 * right / n:.1f} % (95 % {100 * lo:.1f} to {100 * hi:.1f}); "
          f"with sentence answers {known}/{n} = {100 * known / n:.1f} % (95 % {100 * klo:.1f} to {100 * khi:.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
