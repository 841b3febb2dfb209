"""Knowledge as a choice between two named answers: "<question> Is it X or Y?", answered by name.

A forgetting probe besides the paper's three tasks, on the shipped knowledge bank: the question comes with its
correct answer and one wrong option (drawn, order shuffled, from the seed), and is answered by naming one -
not by an option letter, which SmolLM2-135M cannot map to knowledge (see ``tasks.mmlu``). Questions are split
between train and eval exactly as the knowledge task splits them, so its held-out questions are the same.
Strict rule: the knowledge task's open rule - the last "answer is" line names the correct answer (or an alias)
and no option besides it; without that phrase, the first line after its last " is ".
Lenient rule: the correct answer named anywhere in the reply and no wrong option besides it.
SmolLM2-135M-Instruct (fp32, greedy) answers 45% of 60 held-out questions right (27 of 60; lenient 50%), no
better than a coin between the two options although it answers 40% of the same questions asked openly: read
its drops against that 50% floor.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from .base import (Example, Task, check_common, check_n, check_names_option, in_split, sample_items, split_of,
                   split_seed)
from .mmlu import BANK_EVAL_FRACTION, expert_answer, load_mmlu, open_answer_correct, parse_open

NAME = "knowledge_pair"
PROMPT = "{question} Is it {first} or {second}? Answer in the form 'The answer is: <answer>'."


@dataclass
class KnowledgePairTask(Task):
    """Two-way knowledge questions from the shipped bank; ``subjects`` narrows the bank."""

    subjects: tuple[str, ...] | None = None
    name: str = NAME
    system_prompt: str | None = None
    max_new_tokens: int = 48
    _questions: list = field(default_factory=list, init=False, repr=False)

    def __post_init__(self):
        check_common(self)
        if self.subjects is not None:
            self.subjects = check_names_option("subjects", self.subjects)
        self._questions = load_mmlu(subjects=self.subjects)

    def n_questions(self, split: str) -> int:
        """How many distinct questions the split holds (the most eval examples one can ask for)."""
        return len(in_split(self._questions, _split, split))

    def make_examples(self, n: int, seed: int = 0, split: str = "train") -> list[Example]:
        check_n(n)
        pool = in_split(self._questions, _split, split)
        rng = random.Random(split_seed(seed, split, NAME, "options"))
        phrasing = random.Random(split_seed(seed, split, NAME, "expert"))
        out = []
        for q in sample_items(pool, n, seed, split, repeat=split == "train"):
            answer = q.choices[q.answer]
            wrong = rng.choice([c for c in q.choices if c != answer])
            first, second = (answer, wrong) if rng.random() < 0.5 else (wrong, answer)
            prompt = PROMPT.format(question=q.question.rstrip(), first=first, second=second)
            target = {"correct": [answer, *q.aliases], "wrong": [c for c in q.choices if c != answer]}
            out.append(Example(NAME, prompt, target, expert_answer(q.question, answer, phrasing)))
        return out

    def parse(self, response: str) -> str | None:
        return parse_open(response)

    def verify(self, example: Example, parsed: str) -> bool:
        return open_answer_correct(parsed, example.target["correct"], example.target["wrong"])

    def lenient_answer(self, example: Example, response: str) -> bool:
        """Lenient rule: the correct answer named anywhere in the reply, and no wrong option besides it."""
        return open_answer_correct(response, example.target["correct"], example.target["wrong"])


def _split(q) -> str:
    return split_of(f"mmlu:{q.question}", BANK_EVAL_FRACTION)  # the knowledge task's own split of the bank
