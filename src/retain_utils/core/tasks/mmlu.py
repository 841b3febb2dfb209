"""Knowledge: questions answered with "The answer is: X".

Two formats. ``"choice"`` is the paper's MMLU setting: four lettered options, the answer is a letter.
``"open"`` asks the bare question and checks the answer text against the correct option (and its
aliases), rejecting answers that also name a wrong option. Offline the questions come from an MMLU-style
factual bank that ships with the package - not MMLU itself - (``data/knowledge_bank.jsonl``: 307 hand-written
questions on capitals, geography, science and everyday facts, and 464 that ``scripts/build_knowledge_bank.py``
generates from packaged data: chemical symbols, currencies, official languages) in MMLU's schema (``question``, ``choices``, ``answer``, ``subject``, optional ``aliases``); with
``source="hub"`` it is MMLU itself (cais/mmlu). The offline default is ``"open"``: SmolLM2-135M cannot map
knowledge to option letters (its letter accuracy is at chance, see notes/calibration.md), so the
multiple-choice format would leave no baseline to forget. Questions, not prompts, are split between
train and eval; option order is shuffled per example from the seed.
"""

from __future__ import annotations

import numbers
import random
import warnings
import re
import unicodedata
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from .base import EVAL_FRACTION, Example, Task, check_n, check_split, read_rows, row_error, sample_items, split_of, split_seed

NAME = "mmlu"
LETTERS = "ABCD"
BANK = "knowledge_bank.jsonl"
BANK_EVAL_FRACTION = 0.4  # the bank is small (771 questions): hold out 315 so that evaluation can use 300

PROMPT = (
    "The following is a multiple choice question about {subject}.\n\n{question}\n{options}\n\n"
    "Answer with the letter of the correct option, in the form 'The answer is: X'."
)
OPEN_PROMPT = "{question} Answer in the form 'The answer is: <answer>'."
FORMATS = ("open", "choice")

_ANSWER = re.compile(r"answer is\s*:?\s*\**\s*\(?([A-D])\b")


@dataclass(frozen=True)
class Question:
    question: str
    choices: tuple[str, ...]
    answer: int
    subject: str
    aliases: tuple[str, ...] = ()


def bank_path() -> Path:
    return Path(str(resources.files("retain_utils").joinpath("data", BANK)))


def load_mmlu(source: str | Path | None = None, *, subjects: tuple[str, ...] | None = None) -> list[Question]:
    """Questions from a file in MMLU's schema (default: the shipped bank) or from the hub (``"hub"``).

    ``answer`` may be an index 0-3 or a letter A-D. A malformed row names the file and line. Questions whose
    choices repeat (a few in MMLU's test split, see hendrycks/test issue 29) are skipped with a warning.
    """
    if str(source) == "hub":
        from datasets import load_dataset

        records = enumerate(load_dataset("cais/mmlu", "all", split="test"), 1)
    else:
        source = bank_path() if source is None else Path(source)
        records = read_rows(source, list_columns=("choices", "aliases"))
    out, duplicates = [], 0
    for lineno, row in records:
        q, choices, answer = row.get("question"), row.get("choices"), row.get("answer")
        if not isinstance(q, str) or not q.strip():
            raise row_error(source, lineno, "'question' must be a non-empty string")
        if isinstance(choices, str) or not hasattr(choices, "__len__") or len(choices) != 4 \
                or not all(isinstance(c, str) and c.strip() for c in choices):
            raise row_error(source, lineno, f"'choices' must be a list of 4 non-empty strings, got {choices!r}")
        if isinstance(answer, str) and answer in LETTERS:
            answer = LETTERS.index(answer)
        if not isinstance(answer, numbers.Integral) or not 0 <= answer < 4:
            raise row_error(source, lineno, f"'answer' must be 0-3 or A-D, got {answer!r}")
        if len({c.strip() for c in choices}) != 4:  # the answer would be ambiguous
            duplicates += 1
            continue
        subject = str(row.get("subject") or "general knowledge").replace("_", " ")
        aliases = row.get("aliases")
        aliases = () if aliases is None else aliases
        if isinstance(aliases, str) or not hasattr(aliases, "__iter__") or not all(isinstance(a, str) and a.strip() for a in aliases):
            raise row_error(source, lineno, f"'aliases' must be a list of non-empty strings, got {aliases!r}")
        out.append(Question(q.strip(), tuple(c.strip() for c in choices), int(answer), subject, tuple(aliases)))
    if duplicates:
        warnings.warn(f"{source}: skipped {duplicates} questions whose choices repeat (the answer is ambiguous)")
    if subjects:
        known = sorted({q.subject for q in out})
        bad = [s for s in subjects if s not in known]
        if bad:
            raise ValueError(f"unknown subjects {bad}; subjects in {source}: {', '.join(known)}")
        out = [q for q in out if q.subject in subjects]
    if not out:
        raise ValueError(f"{source}: no questions")
    return out


def parse_answer(response: str) -> str | None:
    """The letter after the first "answer is[:]" (case-insensitive phrase, capital letter), or None."""
    m = _ANSWER.search(response.replace("Answer is", "answer is").replace("ANSWER IS", "answer is"))
    return m.group(1) if m else None


_OPEN = re.compile(r"answer is\s*:?\s*([^\n]*)", flags=re.I)
_NUMBER_WORDS = {w: str(i) for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty".split())}


def parse_open(response: str) -> str | None:
    """The rest of the line after the last "answer is[:]" that has text after it, or None.

    A response that never says "answer is" is read by its first line with words on it, after that line's last
    " is " when it has one: small models answer in a sentence ("The official language of Uruguay is Spanish.").
    Only the part after " is " counts, so that the question's subject, which such a sentence repeats before " is ",
    is not read as the answer; answers that are common words ("In", "As") can still match by chance, which is why
    the shipped bank does not ask them (scripts/build_knowledge_bank.py)."""
    found = [m.group(1).strip() for m in _OPEN.finditer(response)]
    if not found:
        lines = [line.strip() for line in response.splitlines() if _normalize(line)]
        found = [re.split(r"\bis\s+", lines[0], flags=re.I)[-1]] if lines else []
    found = [f for f in found if _normalize(f)]
    return found[-1] if found else None


def _normalize(text: str) -> str:
    """Lowercase ASCII words, no punctuation or articles, number words as digits, thousands commas gone."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    text = re.sub(r"(?<=\d),(?=\d{3})", "", text)
    words = re.findall(r"[a-z0-9]+", text)
    return " ".join(_NUMBER_WORDS.get(w, w) for w in words if w not in ("the", "a", "an"))


def open_answer_correct(answer: str, correct: list[str], wrong: list[str]) -> bool:
    """``answer`` names a correct spelling as whole words and names no wrong option besides it."""
    text = f" {_normalize(answer)} "
    for spelling in sorted(correct, key=len, reverse=True):
        key = f" {_normalize(spelling)} "
        if key.strip() and key in text:
            rest = text.replace(key, " ")
            return not any(f" {_normalize(w)} " in rest for w in wrong if _normalize(w))
    return False


@dataclass
class MMLUTask(Task):
    """Knowledge questions; ``source``: None (the shipped MMLU-style factual bank, not MMLU), a file in MMLU's
    schema, or ``"hub"`` (MMLU itself)."""

    source: str | None = None
    subjects: tuple[str, ...] | None = None
    format: str | None = None  # None: "open" for the shipped bank, "choice" for MMLU files / the hub
    name: str = NAME
    system_prompt: str | None = None
    max_new_tokens: int = 48
    _questions: list = field(default_factory=list, init=False, repr=False)

    def __post_init__(self):
        if self.format is None:
            self.format = "open" if self.source is None else "choice"
        if self.format not in FORMATS:
            raise ValueError(f"unknown format {self.format!r}; valid formats: {', '.join(FORMATS)}")
        self._questions = load_mmlu(self.source, subjects=tuple(self.subjects) if self.subjects else None)

    def make_examples(self, n: int, seed: int = 0, split: str = "train") -> list[Example]:
        check_n(n)
        check_split(split)
        pool = [q for q in self._questions if self._split(q) == split]
        rng = random.Random(split_seed(seed, split, NAME, "options"))
        out = []
        for q in sample_items(pool, n, seed, split, repeat=split == "train"):
            if self.format == "open":
                answer = q.choices[q.answer]
                target = {"correct": [answer, *q.aliases], "wrong": [c for c in q.choices if c != answer]}
                expert = f"Short answer: {answer}.\nThe answer is: {answer}"
                out.append(Example(NAME, OPEN_PROMPT.format(question=q.question), target, expert))
                continue
            order = list(range(4))
            rng.shuffle(order)
            choices = [q.choices[i] for i in order]
            letter = LETTERS[order.index(q.answer)]
            options = "\n".join(f"{LETTERS[i]}. {c}" for i, c in enumerate(choices))
            prompt = PROMPT.format(subject=q.subject, question=q.question, options=options)
            expert = f"Correct option: {letter}) {choices[LETTERS.index(letter)]}.\nThe answer is: {letter}"
            out.append(Example(NAME, prompt, letter, expert))
        return out

    def n_questions(self, split: str) -> int:
        """How many distinct questions the split holds (the most eval examples one can ask for)."""
        check_split(split)
        return sum(self._split(q) == split for q in self._questions)

    def _split(self, q: Question) -> str:
        return split_of(f"mmlu:{q.question}", BANK_EVAL_FRACTION if self.source is None else EVAL_FRACTION)

    def parse(self, response: str) -> str | None:
        return parse_open(response) if self.format == "open" else parse_answer(response)

    def parse_for(self, example: Example, response: str) -> str | None:
        """Parse by the example's own format, so scoring never depends on how this task was configured."""
        return parse_open(response) if isinstance(example.target, dict) else parse_answer(response)

    def verify(self, example: Example, parsed: str) -> bool:
        if isinstance(example.target, dict):  # open format
            return open_answer_correct(parsed, example.target["correct"], example.target["wrong"])
        return parsed == example.target
