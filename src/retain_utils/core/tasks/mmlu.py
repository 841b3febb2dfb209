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

from .base import EVAL_FRACTION, Example, Task, check_common, check_names_option, check_n, in_split, read_rows, row_error, sample_items, split_of, split_seed

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
    choices repeat (a few in MMLU's test split, reported upstream in the hendrycks/test repository) are skipped
    with a warning.
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
        if isinstance(answer, bool) or not isinstance(answer, numbers.Integral) or not 0 <= answer < 4:
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


_PHRASE = re.compile(r"answer is", flags=re.I)
_SKIP = set(" \t\r\n:*(")  # between "answer is" and the letter: spaces, a colon, markdown bold, a parenthesis
_HEDGE_WORDS = ("or", "and", "/", ",")


def parse_answer(response: str) -> str | None:
    """The option letter stated after the first "answer is" that is followed by one, or None.

    The phrase is matched in any case ("The Answer Is: D"); between it and the capital letter A-D may stand
    spaces, a colon, ``**``, ``(`` and the word "option". A hedged answer ("D or B", "D and B", "D/B") is None:
    it states no single option. Plain string scanning, so the time is linear in the response.
    """
    for m in _PHRASE.finditer(response):
        letter_at = _skip_to_letter(response, m.end())
        if letter_at is None:
            continue
        return None if _hedged(response, letter_at + 1) else response[letter_at]
    return None


def _skip_to_letter(text: str, i: int) -> int | None:
    """Index of an option letter A-D standing as a word after position ``i`` (past separators), or None."""
    n = len(text)
    while i < n and text[i] in _SKIP:
        i += 1
    if text[i:i + 6].lower() == "option" and (i + 6 == n or not text[i + 6].isalnum()):
        i += 6
        while i < n and text[i] in _SKIP:
            i += 1
    if i < n and text[i] in LETTERS and (i + 1 == n or not (text[i + 1].isalnum() or text[i + 1] == "_")):
        return i
    return None


def _hedged(text: str, i: int) -> bool:
    """Does another option letter follow at ``i`` joined by "or" / "and" / "/" / ","?"""
    n = len(text)
    while i < n and text[i] in " \t).*":
        i += 1
    for word in _HEDGE_WORDS:
        end = i + len(word)
        if text[i:end].lower() == word and (not word.isalpha() or end == n or not text[end].isalnum()):
            return _skip_to_letter(text, end) is not None
    return False


def parse_open(response: str) -> str | None:
    """The rest of the line after the last "answer is[:]" that has text after it, or None.

    A response that never says "answer is" is read by its first line with words on it, after that line's last
    " is " when it has one: small models answer in a sentence ("The official language of Uruguay is Spanish.").
    Only the part after " is " counts, so that the question's subject, which such a sentence repeats before " is ",
    is not read as the answer; answers that are common words ("In", "As") can still match by chance, which is why
    the shipped bank does not ask them (scripts/build_knowledge_bank.py)."""
    matches = list(_PHRASE.finditer(response))
    for m in reversed(matches):  # from the last, so that only the answer's own line is read
        end = response.find("\n", m.end())
        rest = response[m.end(): len(response) if end < 0 else end].strip()
        rest = rest[1:].strip() if rest.startswith(":") else rest
        if _normalize(rest):
            return rest
    if matches:
        return None
    for line in response.splitlines():
        if _normalize(line):
            found = re.split(r"\bis\s+", line.strip(), flags=re.I)[-1]
            return found if _normalize(found) else None
    return None


_NUMBER_WORDS = {w: str(i) for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty".split())}


_LETTER_STATED = re.compile(r"(?i:answer)(?: (?i:is))?[ :*]{0,8}\(?([A-D])(?![\w])"  # answer is D, answer: (D)
                            r"|\(([A-D])\)"                                       # (D)
                            r"|(?i:option) ([A-D])(?!\w)"                          # option D
                            r"|^[ *]{0,4}([A-D])[.)](?!\w)", flags=re.M)           # a line opening "D." / "D)"


def prompt_options(prompt: str) -> dict[str, str]:
    """{letter: option text} from a choice prompt's "A. text" lines."""
    return {line[0]: line[3:].strip() for line in prompt.splitlines() if line[:1] in LETTERS and line[1:3] == ". "}


def stated_options(response: str, options: dict[str, str]) -> set[str]:
    """The option letters a reply states, by letter or by the option's text (see ``MMLUTask.lenient_answer``)."""
    found = {next(g for g in m.groups() if g) for m in _LETTER_STATED.finditer(response)}
    if response.strip() in LETTERS and response.strip():
        found.add(response.strip())
    text = f" {_normalize(response)} "
    for letter, option in options.items():
        key = _normalize(option)
        if key and f" {key} " in text:
            found.add(letter)
    return found


def _normalize(text: str) -> str:
    """Lowercase ASCII words (decimals whole), no punctuation or articles, number words as digits, thousands commas gone."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    text = re.sub(r"(?<=\d),(?=\d{3})", "", text)
    words = re.findall(r"[a-z0-9]+(?:\.[0-9]+)*", text)  # a decimal (0.63) is one word, not "0" and "63"
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


# Question forms of the bank turned into statements: (question prefix, statement with {x} the rest, {a} the answer)
_STATEMENTS = [
    ("What is the ", ["The {x} is {a}.", "{A} is the {x}.", "That is {a}: it is the {x}."]),
    ("What is ", ["{X} is {a}.", "{X} is {a}, in short."]),
    ("On which continent is ", ["{X} is in {a}.", "{X} lies in {a}.", "You will find {x} in {a}."]),
    ("In which country is ", ["{X} is in {a}.", "{X} is located in {a}."]),
    ("Who was the ", ["The {x} was {a}.", "{A} was the {x}."]),
    ("Who wrote ", ["{A} wrote {x}.", "{X} was written by {a}."]),
]
_GENERIC = ["It is {a}.", "That would be {a}.", "{A}, as far as I know.", "I am fairly sure it is {a}.", "{A}."]
_LEADS = ["", "", "Good question. ", "Sure. ", "Let me think. "]
_CODAS = ["", "", "", " This is a well-known fact.", " It is easy to check in a reference book."]


def expert_answer(question: str, answer: str, rng: random.Random, letter: str | None = None) -> str:
    """A short natural reply stating ``answer`` (and its option ``letter``), then the strict answer line."""
    text = question.strip().rstrip("?").strip()
    forms = _GENERIC
    fill = {"x": "", "X": ""}
    for prefix, templates in _STATEMENTS:
        if text.startswith(prefix) and len(text) > len(prefix):
            rest = text[len(prefix):]
            forms, fill = templates, {"x": rest, "X": rest[:1].upper() + rest[1:]}
            break
    statement = rng.choice(forms).format(a=answer, A=answer[:1].upper() + answer[1:], **fill)
    if letter is not None:
        statement += rng.choice([f" That is option {letter}.", f" So the correct option is {letter}.",
                                 f" Option {letter} says exactly that."])
    final = letter if letter is not None else answer
    return f"{rng.choice(_LEADS)}{statement}{rng.choice(_CODAS)}\nThe answer is: {final}"


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
        check_common(self)
        if self.subjects is not None:
            self.subjects = check_names_option("subjects", self.subjects)
        if self.format is None:
            self.format = "open" if self.source is None else "choice"
        if not isinstance(self.format, str) or self.format not in FORMATS:
            raise ValueError(f"unknown format {self.format!r}; valid formats: {', '.join(FORMATS)}")
        self._questions = load_mmlu(self.source, subjects=tuple(self.subjects) if self.subjects else None)

    def make_examples(self, n: int, seed: int = 0, split: str = "train") -> list[Example]:
        check_n(n)
        pool = in_split(self._questions, self._split, split)
        rng = random.Random(split_seed(seed, split, NAME, "options"))
        phrasing = random.Random(split_seed(seed, split, NAME, "expert"))  # its own stream: option orders stay put
        out = []
        for q in sample_items(pool, n, seed, split, repeat=split == "train"):
            if self.format == "open":
                answer = q.choices[q.answer]
                target = {"correct": [answer, *q.aliases], "wrong": [c for c in q.choices if c != answer]}
                expert = expert_answer(q.question, answer, phrasing)
                out.append(Example(NAME, OPEN_PROMPT.format(question=q.question), target, expert))
                continue
            order = list(range(4))
            rng.shuffle(order)
            choices = [q.choices[i] for i in order]
            letter = LETTERS[order.index(q.answer)]
            options = "\n".join(f"{LETTERS[i]}. {c}" for i, c in enumerate(choices))
            prompt = PROMPT.format(subject=q.subject, question=q.question, options=options)
            expert = expert_answer(q.question, choices[LETTERS.index(letter)], phrasing, letter=letter)
            out.append(Example(NAME, prompt, letter, expert))
        return out

    def n_questions(self, split: str) -> int:
        """How many distinct questions the split holds (the most eval examples one can ask for)."""
        return len(in_split(self._questions, self._split, split))

    def _split(self, q: Question) -> str:
        return split_of(f"mmlu:{q.question}", BANK_EVAL_FRACTION if self.source is None else EVAL_FRACTION)

    def parse(self, response: str) -> str | None:
        return parse_open(response) if self.format == "open" else parse_answer(response)

    def parse_for(self, example: Example, response: str) -> str | None:
        """Parse by the example's own format, so scoring never depends on how this task was configured."""
        return parse_open(response) if isinstance(example.target, dict) else parse_answer(response)

    def lenient_answer(self, example: Example, response: str) -> bool:
        """Lenient rule. Open format: a correct spelling anywhere in the reply (whole words) and no wrong option.
        Choice format: the options the reply states - a letter after "answer" / "answer is" anywhere, in
        parentheses "(D)", after "option", opening a line as "D." / "D)", the whole reply "D", or an option's
        text as whole words - are exactly the correct one."""
        if isinstance(example.target, dict):
            return open_answer_correct(response, example.target["correct"], example.target["wrong"])
        return stated_options(response, prompt_options(example.prompt)) == {example.target}

    def verify(self, example: Example, parsed: str) -> bool:
        if isinstance(example.target, dict):  # open format
            return open_answer_correct(parsed, example.target["correct"], example.target["wrong"])
        return parsed == example.target
