"""Arithmetic: one or two operations on small whole numbers ("What is 23 minus 3?" or a short word problem),
answered "The answer is: <int>".

A forgetting probe besides the paper's three tasks: generated from a seed, verified exactly. Problems are
split between train and eval by their content (template and numbers), so no held-out problem is trained on.
Strict rule: the integer right after the last "answer is" (a colon, spaces, ``**`` or ``$`` may stand between),
or, in a reply without that phrase, the number its last line ends with after "=" ("7 + 5 = 12").
Lenient rule: the last number anywhere in the reply.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from .base import Example, Task, check_common, check_int, check_n, check_split, split_of, split_seed

NAME = "arithmetic"
OPS = "+-*/"
PROMPT = "{problem} Answer in the form 'The answer is: <number>'."

NAMES = ["Sam", "Mia", "Leo", "Ana", "Tom", "Zoe", "Raj", "Eva", "Ben", "Lily", "Omar", "Nina", "Kai", "Ivy"]
THINGS = ["apples", "books", "coins", "stickers", "marbles", "pencils", "cards", "shells", "stamps", "cookies"]

# One step per operator: (problem text, phrasing of the solution); {x} and {y} are the operands.
STEPS = {
    "+": [("{name} has {x} {thing} and gets {y} more. How many {thing} does {name} have now?",
           "{name} had {x} {thing} and got {y} more"),
          ("A shelf holds {x} {thing}. Someone adds {y} more. How many {thing} are on the shelf?",
           "the shelf had {x} {thing} and {y} were added")],
    "-": [("{name} has {x} {thing} and gives away {y}. How many {thing} are left?",
           "{name} had {x} {thing} and gave away {y}"),
          ("A jar holds {x} {thing}. {name} takes out {y}. How many {thing} are still in the jar?",
           "the jar had {x} {thing} and {y} were taken out")],
    "*": [("There are {x} bags with {y} {thing} in each. How many {thing} are there in total?",
           "there are {x} bags of {y} {thing}"),
          ("{name} buys {x} packs of {thing}. Each pack has {y} {thing}. How many {thing} does {name} buy?",
           "{name} bought {x} packs of {y} {thing}")],
    "/": [("{name} shares {x} {thing} equally among {y} friends. How many {thing} does each friend get?",
           "{x} {thing} shared among {y} friends"),
          ("{x} {thing} are packed {y} to a box. How many boxes are filled?",
           "{x} {thing} packed {y} to a box")],
}
PLAIN = {"+": "What is {x} plus {y}?", "-": "What is {x} minus {y}?", "*": "What is {x} times {y}?",
         "/": "What is {x} divided by {y}?"}
PLAIN_PHRASES = {"+": "adding {y} to {x}", "-": "taking {y} from {x}", "*": "multiplying {x} by {y}",
                 "/": "dividing {x} by {y}"}
PLAIN_SECOND = {"+": "then adding {y}", "-": "then taking away {y}"}
WORDINGS = ("story", "plain")
SECOND = {  # a follow-up step on the first result r: (text, phrasing)
    "+": ("Then {name} finds {y} more. How many {thing} does {name} have now?", "then {y} more were found"),
    "-": ("Then {name} loses {y} of them. How many {thing} are left?", "then {y} were lost"),
}


@dataclass(frozen=True)
class Problem:
    text: str
    answer: int
    steps: tuple[tuple[int, str, int, int], ...]  # (left, op, right, result) in order
    phrases: tuple[str, ...]
    key: str


def _apply(x: int, op: str, y: int) -> int:
    return {"+": x + y, "-": x - y, "*": x * y, "/": x // y}[op]


def draw_problem(rng: random.Random, ops: str, low: int, high: int, steps: int,
                 wording: str = "story") -> Problem | None:
    """One problem, or None when the draw does not work out (a negative or fractional result)."""
    op = rng.choice(ops)
    name, thing = rng.choice(NAMES), rng.choice(THINGS)
    t = rng.randrange(2)
    x, y = rng.randint(low, high), rng.randint(low, high)
    if op == "*":
        y = rng.randint(2, 9)
    if op == "/":
        y = rng.randint(2, 9)
        x = y * rng.randint(max(1, low // y), max(1, high // y))
    if op == "-" and x < y:
        x, y = y, x
    r = _apply(x, op, y)
    text, phrase = STEPS[op][t]
    if wording == "plain":
        text, phrase, t = PLAIN[op], PLAIN_PHRASES[op], 2
    fill = {"name": name, "thing": thing}
    problem, phrases, chain = text.format(x=x, y=y, **fill), [phrase.format(x=x, y=y, **fill)], [(x, op, y, r)]
    key = f"{op}{t}:{x}:{y}"
    if steps == 2:
        op2 = rng.choice("+-")
        y2 = rng.randint(low, high)
        if op2 == "-" and y2 > r:
            return None
        r2 = _apply(r, op2, y2)
        if wording == "plain":
            problem = f"What is {x} {PLAIN[op].split()[3]} {y} {'plus' if op2 == '+' else 'minus'} {y2}?"
        else:
            first = problem.rsplit(". ", 1)[0] + "."  # the first step's statement without its question
            problem = f"{first} {SECOND[op2][0].format(y=y2, **fill)}"
        phrases.append((PLAIN_SECOND if wording == "plain" else {k: v[1] for k, v in SECOND.items()})[op2]
                       .format(y=y2, **fill))
        chain.append((r, op2, y2, r2))
        key += f"|{op2}:{y2}"
        r = r2
    return Problem(problem, r, tuple(chain), tuple(phrases), key)


# ---------------------------------------------------------------------------------------------- answers

_STRICT = re.compile(r"(?i:answer is)[ :*$]{0,8}(-?\d[\d,]*(?:\.\d+)?)")
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


_HEDGE = re.compile(r"[ .]{0,4}(?:or|/)[ :$]{0,4}-?\d")
_FINAL_EQUATION = re.compile(r"=[ $]{0,4}(-?\d[\d,]*(?:\.\d+)?)[ .$]{0,4}$")


def parse_number(response: str) -> int | None:
    """The integer after the last "answer is" that has one (thousands commas allowed); without that phrase,
    the number a reply ends with when its last line ends in "= <number>" ("7 + 5 = 12"). A hedged answer
    ("19 or 20") is None."""
    found = list(_STRICT.finditer(response))
    if not found:
        lines = response.strip().splitlines()
        m = _FINAL_EQUATION.search(lines[-1][-40:]) if lines else None
        return _as_int(m.group(1)) if m else None
    last = found[-1]
    return None if _HEDGE.match(response, last.end()) else _as_int(last.group(1))


def last_number(response: str) -> int | None:
    """The last number in the reply as an integer (None if there is none or it has a fraction)."""
    found = _NUMBER.findall(response)
    return _as_int(found[-1]) if found else None


def _as_int(text: str) -> int | None:
    """An integer written plainly or with thousands commas (1,900); None for decimals or odd commas (1,9)."""
    text = text.rstrip(".,")
    if "," in text and not re.fullmatch(r"-?\d{1,3}(?:,\d{3})+", text):
        return None
    text = text.replace(",", "")
    return int(text) if re.fullmatch(r"-?\d+", text) else None


_OPENERS = ["", "Let's work it out. ", "Step by step: ", "Okay. ", ""]
_LINKS = ["so", "which gives", "and that makes", "so we get"]


def expert_answer(problem: Problem, rng: random.Random) -> str:
    """A short worked answer, varied in wording, ending in the strict answer line."""
    parts = []
    for (x, op, y, r), phrase in zip(problem.steps, problem.phrases):
        sign = {"+": "+", "-": "-", "*": "×", "/": "÷"}[op]
        parts.append(f"{phrase[:1].upper() + phrase[1:]}, {rng.choice(_LINKS)} {x} {sign} {y} = {r}.")
    return f"{rng.choice(_OPENERS)}{' '.join(parts)}\nThe answer is: {problem.answer}"


@dataclass
class ArithmeticTask(Task):
    """Arithmetic questions. ``ops``: operators drawn from; ``low`` / ``high``: operand range (``*`` and
    ``/`` use a one-digit second operand); ``steps``: 1 or 2 operations per problem; ``wording``: "story" (a
    short word problem) or "plain" ("What is 7 plus 5?")."""

    # Defaults calibrated on SmolLM2-135M-Instruct (fp32, greedy): plain sums and differences of numbers up to
    # 30 it gets right 40% of the time (24 of 60 held-out questions); single-digit word problems about a sixth,
    # word problems with numbers up to 30 almost never.
    ops: str = "+-"
    low: int = 1
    high: int = 30
    steps: int = 1
    wording: str = "plain"
    name: str = NAME
    system_prompt: str | None = None
    max_new_tokens: int = 64

    def __post_init__(self):
        check_common(self)
        check_int("low", self.low, 1)
        check_int("high", self.high, 2)
        check_int("steps", self.steps, 1, 2)
        if self.low > self.high:
            raise ValueError(f"need low <= high, got low={self.low}, high={self.high}")
        if self.wording not in WORDINGS:
            raise ValueError(f"unknown wording {self.wording!r}; valid: {', '.join(WORDINGS)}")
        if not isinstance(self.ops, str) or not self.ops or set(self.ops) - set(OPS):
            raise ValueError(f"ops must be a non-empty string of operators from {OPS!r}, got {self.ops!r}")

    def make_examples(self, n: int, seed: int = 0, split: str = "train") -> list[Example]:
        check_n(n)
        check_split(split)
        rng = random.Random(split_seed(seed, split, NAME, self.ops, self.low, self.high, self.steps,
                                            self.wording))
        out, seen = [], set()
        for _ in range(200 * max(n, 1)):
            if len(out) == n:
                break
            problem = draw_problem(rng, self.ops, self.low, self.high, self.steps, self.wording)
            if problem is None or split_of(f"{NAME}:{problem.key}") != split or problem.key in seen:
                continue
            seen.add(problem.key)
            out.append(Example(NAME, PROMPT.format(problem=problem.text), problem.answer, expert_answer(problem, rng)))
        if len(out) < n:
            raise ValueError(f"could only draw {len(out)} distinct {split} arithmetic problems with these settings; "
                             f"widen low/high or ops")
        return out

    def parse(self, response: str) -> int | None:
        return parse_number(response)

    def verify(self, example: Example, parsed: int) -> bool:
        return parsed == example.target

    def lenient_answer(self, example: Example, response: str) -> bool:
        """Lenient rule: the last number in the reply is the answer (e.g. "12 + 7 = 19")."""
        return last_number(response) == example.target
