"""Calendar offsets: which weekday or month lies a few steps after or before a given one.

A forgetting probe besides the paper's three tasks: a small, fully enumerated item space (weekday or month,
start, offset, direction), split between train and eval by item, verified exactly.
Strict rule: the rest of the line after the last "answer is" names exactly one day (or month), the right one.
Lenient rule: the last day (or month) named anywhere in the reply is the right one.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from .base import (Example, Task, check_common, check_int, check_n, check_names_option, check_split, sample_items,
                   split_of, split_seed)

NAME = "calendar"
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")
LETTERS = tuple("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
UNITS = {"weekday": ("day", DAYS), "month": ("month", MONTHS), "letter": ("letter", LETTERS)}
CYCLIC = {"weekday", "month"}  # the alphabet does not wrap around: Z has no letter after it
DIRECTIONS = ("after", "before")
PROMPT = "{question} Answer in the form 'The answer is: <{unit}>'."
EVAL_FRACTION = 0.4  # the item space is small (228 items at max_offset 6): hold out enough for 60+ questions
_WORDS = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six"}


def question(kind: str, start: str, offset: int, direction: str) -> str:
    unit = UNITS[kind][0]
    count = f"{_WORDS.get(offset, offset)} {unit}{'s' if offset > 1 else ''}"
    if kind == "weekday":
        return f"Which day of the week is {count} {direction} {start}?"
    if kind == "letter":
        return f"Which letter of the alphabet comes {count} {direction} {start}?"
    return f"Which month comes {count} {direction} {start}?"


def _shifted(kind: str, start: str, offset: int, direction: str) -> int:
    return UNITS[kind][1].index(start) + (offset if direction == "after" else -offset)


def answer_of(kind: str, start: str, offset: int, direction: str) -> str:
    names = UNITS[kind][1]
    return names[_shifted(kind, start, offset, direction) % len(names)]


def names_in(text: str, kind: str) -> list[str]:
    """The day (or month) names in ``text``, in order, as whole words in any of the usual cases; for letters,
    the capital letters standing alone (or quoted: "F", 'F')."""
    return [(m.group(1) or m.group(2)).capitalize() for m in _NAME_PATTERNS[kind].finditer(text)]


def _name_pattern(names: tuple[str, ...]) -> re.Pattern:
    """Names capitalised, in capitals or in lower case - but not "may", which is mostly the verb. Letters: a
    capital standing alone, but not "A" or "I" followed by a lower-case word (the article, the pronoun)."""
    if names == LETTERS:
        return re.compile(r"(?<![\w'])([A-Z])(?![\w']|\s+(?:[a-z]))|(?<=[\"'])([A-Z])(?=[\"'])")
    spellings = [s for n in names for s in (n, n.upper(), n.lower()) if s != "may"]
    return re.compile(r"\b(" + "|".join(spellings) + r")\b")


_NAME_PATTERNS = {kind: _name_pattern(names) for kind, (_, names) in UNITS.items()}


_PHRASE = re.compile(r"answer is", flags=re.I)


def parse_line(response: str) -> str | None:
    """The rest of the line after the last "answer is" that has text after it, or None."""
    for m in reversed(list(_PHRASE.finditer(response))):
        end = response.find("\n", m.end())
        rest = response[m.end(): len(response) if end < 0 else end].strip(" \t:*")
        if rest:
            return rest
    return None


_OPENERS = ["", "Let's count. ", "Counting it out: ", "Okay. "]


def expert_answer(kind: str, start: str, offset: int, direction: str, rng: random.Random) -> str:
    """Counts the steps out loud, in varied words, then states the strict answer line."""
    names = UNITS[kind][1]
    step = 1 if direction == "after" else -1
    i = names.index(start)
    path = [names[(i + step * k) % len(names)] for k in range(1, offset + 1)]
    target = path[-1]
    verb = "forward" if direction == "after" else "back"
    if offset == 1:
        body = rng.choice([f"The {UNITS[kind][0]} {direction} {start} is {target}.",
                           f"Right {direction} {start} comes {target}."])
    else:
        body = rng.choice([f"Going {verb} from {start}: {', '.join(path)}.",
                           f"Counting {offset} {verb} from {start} gives {', '.join(path)}.",
                           f"From {start}, step {verb} {offset} times: {', '.join(path)}."])
    return f"{rng.choice(_OPENERS)}{body}\nThe answer is: {target}"


@dataclass
class CalendarTask(Task):
    """Weekday, month and alphabet offsets. ``kinds``: any of "weekday", "month", "letter"; ``max_offset``:
    the largest step count (1-6); ``directions``: "after" and/or "before"."""

    kinds: tuple[str, ...] = ("weekday", "month")
    max_offset: int = 6
    directions: tuple[str, ...] = DIRECTIONS
    name: str = NAME
    system_prompt: str | None = None
    max_new_tokens: int = 48

    def __post_init__(self):
        check_common(self)
        self.kinds = check_names_option("kinds", self.kinds)
        self.directions = check_names_option("directions", self.directions)
        check_int("max_offset", self.max_offset, 1, 6)
        for option, values, valid in (("kinds", self.kinds, tuple(UNITS)), ("directions", self.directions, DIRECTIONS)):
            bad = [v for v in values if v not in valid]
            if bad or not values:
                raise ValueError(f"{option}: unknown {bad}; valid: {', '.join(valid)}")

    def items(self) -> list[tuple[str, str, int, str]]:
        """Every (kind, start, offset, direction) these options allow."""
        return [(k, s, o, d) for k in self.kinds for s in UNITS[k][1] for o in range(1, self.max_offset + 1)
                for d in self.directions if k in CYCLIC or 0 <= _shifted(k, s, o, d) < len(UNITS[k][1])]

    def make_examples(self, n: int, seed: int = 0, split: str = "train") -> list[Example]:
        check_n(n)
        check_split(split)
        pool = [item for item in self.items() if split_of(f"{NAME}:{item}", EVAL_FRACTION) == split]
        rng = random.Random(split_seed(seed, split, NAME, "expert"))
        out = []
        for kind, start, offset, direction in sample_items(pool, n, seed, split, repeat=split == "train"):
            prompt = PROMPT.format(question=question(kind, start, offset, direction), unit=UNITS[kind][0])
            target = {"kind": kind, "answer": answer_of(kind, start, offset, direction)}
            out.append(Example(NAME, prompt, target, expert_answer(kind, start, offset, direction, rng)))
        return out

    def parse(self, response: str) -> str | None:
        return parse_line(response)

    def verify(self, example: Example, parsed: str) -> bool:
        return names_in(parsed, example.target["kind"]) == [example.target["answer"]]

    def lenient_answer(self, example: Example, response: str) -> bool:
        """Lenient rule: the last day (or month) named in the reply is the answer."""
        found = names_in(response, example.target["kind"])
        return bool(found) and found[-1] == example.target["answer"]
