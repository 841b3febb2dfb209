"""Instruction following with verifiable constraints (IFEval style, one constraint per prompt).

A constraint is a ground-truth dict ``{"func_name": ..., **kwargs}`` in the schema of the RLVR-IFeval
dataset, so the same checkers score generated prompts and the real data. Generated prompts pair a short
writing request about a topic with one constraint; topics (not just prompts) are split between train and
eval. The expert response is a templated paragraph rewritten to satisfy the constraint: correct, but in
a style the model would never produce itself (off-policy by construction).
"""

from __future__ import annotations

import json
import random
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .base import Example, Task, check_n, check_split, read_rows, row_error, sample_items, split_of, split_seed

NAME = "ifeval"

# ---------------------------------------------------------------------------------------------- checkers
# One function per RLVR-IFeval ``func_name``: (response, **kwargs) -> bool. Written from the IFEval
# instruction descriptions; word counts split on whitespace, keyword checks are case-insensitive.


def _words(text: str) -> list[str]:
    return re.findall(r"\b\w+\b", text.lower())


def _sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s]


def _quantified(actual: int, n: int, quantifier: str, around: int) -> bool:
    if quantifier == "at least":
        return actual >= n
    if quantifier == "at most":
        return actual <= n
    if quantifier == "around":
        return abs(actual - n) <= around
    if quantifier == "less than":
        return actual < n
    raise ValueError(f"unknown quantifier {quantifier!r}")


def _strip_fences(text: str) -> str:
    text = text.strip()
    m = re.fullmatch(r"```(?:json|JSON)?\s*(.*?)\s*```", text, flags=re.S)
    return m.group(1) if m else text


def _json_ok(text: str) -> bool:
    try:
        json.loads(_strip_fences(text))
    except ValueError:
        return False
    return True


def _paragraph_count_ok(text: str, N: int) -> bool:
    text = "\n".join(line.strip() for line in text.splitlines()).strip()
    parts = re.split(r"\s*\* \* \*\s*", text)
    return all(p.strip() for p in parts) and len(parts) == N


def _paragraphs_ok(text: str, N: int, first_word: str, i: int) -> bool:
    parts = [p for p in re.split(r"\n\s*\n", text.strip())]
    if len(parts) != N or not 1 <= i <= N:
        return False
    words = parts[i - 1].strip().split()
    return bool(words) and words[0].strip(".,:;!?\"'*").lower() == first_word.lower()


def _postscript_ok(text: str, postscript_marker: str) -> bool:
    at = text.find(postscript_marker)
    return at >= 0 and len(text[at:].strip()) > len(postscript_marker)


def _two_responses_ok(text: str) -> bool:
    parts = text.split("******")
    return len(parts) == 2 and all(p.strip() for p in parts) and parts[0].strip() != parts[1].strip()


def _sections_ok(text: str, N: int, section_splitter: str) -> bool:
    return len(re.findall(rf"(?:^|\s){re.escape(section_splitter)}\s?\d+", text, flags=re.I)) >= N


CHECKERS: dict[str, Callable[..., bool]] = {
    "validate_lowercase": lambda t: t == t.lower(),
    "validate_uppercase": lambda t: t == t.upper(),
    "validate_no_commas": lambda t: "," not in t,
    "validate_quotation": lambda t: len(t.strip()) >= 2 and t.strip()[0] == '"' and t.strip()[-1] == '"',
    "validate_json_format": _json_ok,
    "validate_title": lambda t: re.search(r"<<[^\n<>]+>>", t) is not None,
    "validate_end": lambda t, end_phrase: t.strip().endswith(end_phrase.strip()),
    "verify_keywords": lambda t, keyword_list: all(k.lower() in t.lower() for k in keyword_list),
    "verify_keyword_frequency": lambda t, word, N: _words(t).count(word.lower()) == N,
    "validate_forbidden_words": lambda t, forbidden_words: not any(
        re.search(rf"\b{re.escape(w.lower())}\b", t.lower()) for w in forbidden_words),
    "verify_letter_frequency": lambda t, letter, N: t.count(letter) == N,
    "validate_word_constraint": lambda t, N, quantifier: _quantified(len(t.split()), N, quantifier,
                                                                     max(round(N * 0.1), 1)),
    "verify_sentence_constraint": lambda t, N, quantifier: _quantified(len(_sentences(t)), N, quantifier, 1),
    "verify_paragraph_count": _paragraph_count_ok,
    "validate_paragraphs": _paragraphs_ok,
    "verify_postscript": _postscript_ok,
    "validate_placeholders": lambda t, N: len(re.findall(r"\[[^\[\]\n]+\]", t)) >= N,
    "verify_bullet_points": lambda t, N: sum(
        1 for line in t.splitlines() if re.match(r"\s*[*-]\s+\S", line)) == N,
    "validate_highlighted_sections": lambda t, N: len(re.findall(r"\*[^\n*]+\*", t)) >= N,
    "validate_sections": _sections_ok,
    "validate_two_responses": _two_responses_ok,
    "validate_repeat_prompt": lambda t, original_prompt: t.strip().startswith(original_prompt.strip()),
    "validate_choice": lambda t, options: any(o in t for o in options),
    "validate_frequency_capital_words": lambda t, N, quantifier: _quantified(
        len(re.findall(r"\b[A-Z]{2,}\b", t)), N, quantifier, max(round(N * 0.1), 1)),
}
UNSUPPORTED = ("validate_response_language",)  # needs a language detector; such rows are skipped


def check_constraint(response: str, ground_truth: dict) -> bool:
    """Does ``response`` satisfy the constraint? Unknown function names raise ValueError."""
    name = ground_truth.get("func_name")
    if name not in CHECKERS:
        raise ValueError(f"unknown IFEval constraint {name!r}; supported: {', '.join(sorted(CHECKERS))}")
    kwargs = {k: v for k, v in ground_truth.items() if k != "func_name" and v is not None}
    return bool(CHECKERS[name](response, **kwargs))


# ---------------------------------------------------------------------------------------------- expert writer

_SENTENCES = [
    "{Topic} is a subject that rewards a closer look.",
    "Most people meet {topic} in ordinary life without thinking much about it.",
    "A good first step is to learn the basic facts and then ask questions.",
    "Small details often explain the larger picture.",
    "Talking with people who know the field helps a great deal.",
    "Over time the main ideas become familiar and easy to use.",
    "There is always something new to notice.",
    "Patience and curiosity go a long way here.",
]


def _base_sentences(topic: str, n: int) -> list[str]:
    out = [s.format(topic=topic, Topic=topic[:1].upper() + topic[1:]) for s in _SENTENCES]
    while len(out) < n:
        out += out
    return out[:n]


def expert_text(ground_truth: dict, topic: str, prompt: str = "") -> str | None:
    """A response built to satisfy ``ground_truth``; None for constraints it cannot write."""
    gt = {k: v for k, v in ground_truth.items() if v is not None}
    name = gt["func_name"]
    base = " ".join(_base_sentences(topic, 4))
    if name == "validate_lowercase":
        return base.lower()
    if name == "validate_uppercase":
        return base.upper()
    if name == "validate_no_commas":
        return base.replace(",", "")
    if name == "validate_quotation":
        return f'"{base}"'
    if name == "validate_json_format":
        return json.dumps({"topic": topic, "summary": _base_sentences(topic, 2)}, indent=2)
    if name == "validate_title":
        return f"<<notes on {topic}>>\n{base}"
    if name == "validate_end":
        return f"{base} {gt['end_phrase']}"
    if name == "verify_keywords":
        return f"{base} Key words: {', '.join(gt['keyword_list'])}."
    if name == "verify_keyword_frequency":
        word, n = gt["word"], gt["N"]
        text = " ".join(s for s in _base_sentences(topic, 4) if word.lower() not in _words(s))
        return f"{text} " + " ".join(f"Note {i}: {word}." for i in range(1, n + 1))
    if name == "validate_forbidden_words":
        banned = [w.lower() for w in gt["forbidden_words"]]
        kept = [s for s in _base_sentences(topic, 8) if not any(re.search(rf"\b{re.escape(b)}\b", s.lower())
                                                                  for b in banned)]
        return " ".join(kept) if kept else "Done."
    if name == "verify_letter_frequency":
        letter, n = gt["letter"], gt["N"]
        text, count = base, base.count(letter)
        if count > n:  # the check is case-sensitive: swap the surplus occurrences' case
            swap = letter.swapcase()
            if swap == letter:
                return None
            parts = text.split(letter)
            text = letter.join(parts[: n + 1]) + swap + swap.join(parts[n + 1:])
        return text if count >= n else f"{text} " + " ".join(letter * (n - count))
    if name == "validate_word_constraint":
        n, q = gt["N"], gt["quantifier"]
        words = " ".join(_base_sentences(topic, 8 + n // 6)).split()
        size = {"at least": n + 2, "around": n, "at most": max(n - 2, 1), "less than": max(n - 2, 1)}[q]
        return " ".join(words[:size])
    if name == "verify_sentence_constraint":
        n, q = gt["N"], gt["quantifier"]
        size = {"at least": n + 1, "around": n, "at most": max(n - 1, 1), "less than": max(n - 1, 1)}[q]
        return " ".join(_base_sentences(topic, size))
    if name == "verify_paragraph_count":
        return "\n* * *\n".join(_base_sentences(topic, gt["N"]))
    if name == "validate_paragraphs":
        paras = _base_sentences(topic, gt["N"])
        i = gt["i"] - 1
        paras[i] = f"{gt['first_word'][:1].upper() + gt['first_word'][1:]} {paras[i][0].lower()}{paras[i][1:]}"
        return "\n\n".join(paras)
    if name == "verify_postscript":
        return f"{base}\n\n{gt['postscript_marker']} Thanks for reading."
    if name == "validate_placeholders":
        return f"{base} Contact: " + ", ".join(f"[field {i}]" for i in range(1, gt["N"] + 1)) + "."
    if name == "verify_bullet_points":
        return "\n".join(f"* {s}" for s in _base_sentences(topic, gt["N"]))
    if name == "validate_highlighted_sections":
        return " ".join(f"*{s}*" for s in _base_sentences(topic, gt["N"]))
    if name == "validate_sections":
        return "\n".join(f"{gt['section_splitter']} {i}\n{s}"
                         for i, s in enumerate(_base_sentences(topic, gt["N"]), 1))
    if name == "validate_two_responses":
        a, b = _base_sentences(topic, 2)
        return f"{a}\n******\n{b}"
    if name == "validate_repeat_prompt":
        return f"{gt['original_prompt']}\n{base}"
    if name == "validate_choice":
        return gt["options"][0]
    if name == "validate_frequency_capital_words":
        n, q = gt["N"], gt["quantifier"]
        size = {"at least": n + 1, "around": n, "at most": max(n - 1, 0), "less than": max(n - 1, 0)}[q]
        return f"{base} " + " ".join(["NOTE"] * size)
    return None


# ---------------------------------------------------------------------------------------------- prompt generator

TOPICS = [
    "the ocean", "volcanoes", "honeybees", "the moon", "rainforests", "chess", "bicycles", "coffee",
    "the piano", "deserts", "snow", "libraries", "gardening", "bread baking", "trains", "lighthouses",
    "penguins", "the internet", "photography", "mountains", "rivers", "tea", "football", "origami",
    "clocks", "bridges", "elephants", "the sun", "thunderstorms", "museums", "camping", "dolphins",
    "recycling", "the violin", "maps", "kites", "owls", "farming", "hiking", "the wind", "islands",
    "pottery", "birthdays", "autumn", "spring", "winter", "summer", "cats", "dogs", "horses",
    "airplanes", "rockets", "robots", "dinosaurs", "fossils", "caves", "glaciers", "lakes", "forests",
    "bees and flowers", "friendship", "public parks", "city buses", "street markets", "painting",
    "poetry", "dancing", "swimming", "running", "yoga", "sleep", "breakfast", "soup", "apples",
    "chocolate", "rice", "cheese", "salt", "the alphabet", "handwriting", "newspapers", "radio",
    "television", "board games", "puzzles", "magic tricks", "the circus", "zoos", "aquariums", "frogs",
    "butterflies", "spiders", "sharks", "whales", "eagles", "parrots", "the desert fox", "umbrellas",
    "shoes", "hats", "mirrors", "candles", "keys", "bells", "windmills", "solar panels", "batteries",
    "magnets", "rain", "rainbows", "stars", "comets", "the weather", "first aid", "learning a language",
    "saving money", "moving house", "a school trip", "a rainy day", "a quiet morning", "teamwork",
]

REQUESTS = [
    "Write a short paragraph about {topic}.",
    "Describe {topic} in a few sentences.",
    "Explain to a child what is interesting about {topic}.",
    "Write a short note to a friend about {topic}.",
    "Give some practical advice about {topic}.",
]

KEYWORDS = ["light", "history", "water", "friend", "simple", "future", "energy", "color", "music",
            "journey", "health", "value", "practice", "nature", "team", "memory", "balance", "season"]
FORBIDDEN = ["very", "important", "really", "many", "also", "great", "people", "good"]
END_PHRASES = ["Is there anything else I can help with?", "Let me know if you have additional questions.",
               "Any other questions?", "Hope this helps."]
LETTERS = "aeinost"


# Kinds whose instruction has no drawn parameter.
FIXED_INSTRUCTIONS = {
    "validate_lowercase": ("Your entire response should be in English, and in all lowercase letters. "
                           "No capital letters are allowed."),
    "validate_uppercase": "Your entire response should be in English, and in all capital letters.",
    "validate_no_commas": "In your entire response, refrain from the use of any commas.",
    "validate_quotation": "Wrap your entire response with double quotation marks.",
    "validate_json_format": "Entire output should be wrapped in JSON format. You can use markdown ticks such as ```.",
    "validate_title": "Your answer must contain a title, wrapped in double angular brackets, such as <<poem of joy>>.",
    "validate_two_responses": ("Give two different responses. Responses and only responses should be separated by 6 "
                               "asterisk symbols: ******."),
}


def _constraint(kind: str, rng: random.Random) -> tuple[str, dict]:
    """(instruction sentence, ground truth) for one constraint kind with rng-drawn parameters."""
    gt: dict = {"func_name": kind}
    if kind in FIXED_INSTRUCTIONS:
        return FIXED_INSTRUCTIONS[kind], gt
    if kind == "validate_end":
        gt["end_phrase"] = rng.choice(END_PHRASES)
        text = (f"Finish your response with this exact phrase: {gt['end_phrase']} "
                "No other words should follow this phrase.")
    elif kind == "verify_keywords":
        gt["keyword_list"] = rng.sample(KEYWORDS, 2)
        text = f"Include the keywords {gt['keyword_list'][0]} and {gt['keyword_list'][1]} in the response."
    elif kind == "verify_keyword_frequency":
        gt["word"], gt["N"] = rng.choice(KEYWORDS), rng.randint(2, 3)
        text = f"In your response, the word {gt['word']} should appear exactly {gt['N']} times."
    elif kind == "validate_forbidden_words":
        gt["forbidden_words"] = rng.sample(FORBIDDEN, 2)
        text = f"Do not include the words {gt['forbidden_words'][0]} or {gt['forbidden_words'][1]} in the response."
    elif kind == "verify_letter_frequency":
        gt["letter"], gt["N"] = rng.choice(LETTERS), rng.randint(5, 12)
        text = f"In your response, the letter {gt['letter']} should appear exactly {gt['N']} times."
    elif kind == "validate_word_constraint":
        gt["quantifier"] = rng.choice(["at most", "at least"])
        gt["N"] = rng.choice([20, 30, 40]) if gt["quantifier"] == "at most" else rng.choice([40, 50, 60])
        text = f"Answer with {gt['quantifier']} {gt['N']} words."
    elif kind == "verify_sentence_constraint":
        gt["quantifier"] = rng.choice(["at most", "at least"])
        gt["N"] = rng.choice([2, 3]) if gt["quantifier"] == "at most" else rng.choice([4, 5])
        text = f"Your response should contain {gt['quantifier']} {gt['N']} sentences."
    elif kind == "verify_paragraph_count":
        gt["N"] = rng.randint(2, 3)
        text = (f"There should be {gt['N']} paragraphs. Paragraphs are separated with the markdown "
                "divider: * * *")
    elif kind == "verify_postscript":
        gt["postscript_marker"] = rng.choice(["P.S.", "P.P.S"])
        text = f"At the end of your response, please explicitly add a postscript starting with {gt['postscript_marker']}"
    elif kind == "validate_placeholders":
        gt["N"] = rng.randint(1, 3)
        text = (f"The response must contain at least {gt['N']} placeholders represented by square brackets, "
                "such as [address].")
    elif kind == "verify_bullet_points":
        gt["N"] = rng.randint(2, 4)
        text = (f"Your answer must contain exactly {gt['N']} bullet points. Use the markdown bullet points "
                "such as:\n* This is point 1.\n* This is point 2")
    elif kind == "validate_highlighted_sections":
        gt["N"] = rng.randint(1, 3)
        text = f"Highlight at least {gt['N']} sections in your answer with markdown, i.e. *highlighted section*."
    elif kind == "validate_sections":
        gt["N"], gt["section_splitter"] = rng.randint(2, 3), rng.choice(["Section", "SECTION", "Part"])
        text = (f"Your response must have {gt['N']} sections. Mark the beginning of each section with "
                f"{gt['section_splitter']} X, such as: {gt['section_splitter']} 1")
    elif kind == "validate_frequency_capital_words":
        gt["quantifier"], gt["N"] = "at least", rng.randint(2, 4)
        text = f"In your response, words with all capital letters should appear at least {gt['N']} times."
    else:
        raise ValueError(f"unknown constraint kind {kind!r}; generated kinds: {', '.join(GENERATED_KINDS)}")
    return text, gt


GENERATED_KINDS = (
    "validate_lowercase", "validate_uppercase", "validate_no_commas", "validate_quotation",
    "validate_json_format", "validate_title", "validate_end", "verify_keywords", "verify_keyword_frequency",
    "validate_forbidden_words", "verify_letter_frequency", "validate_word_constraint",
    "verify_sentence_constraint", "verify_paragraph_count", "verify_postscript", "validate_placeholders",
    "verify_bullet_points", "validate_highlighted_sections", "validate_sections", "validate_two_responses",
    "validate_frequency_capital_words",
)
# Calibrated on SmolLM2-135M-Instruct (benchmarks/calibrate_tasks.py --ifeval-kinds): kinds it satisfies
# in some but not all temperature-1 samples (RL has signal, there is room to grow). Left out: kinds it never
# or almost never satisfies (uppercase, quotation, paragraph dividers, two responses, exact letter or
# capital-word counts) and ones it satisfies nearly always (title, highlighted sections).
DEFAULT_KINDS = (
    "validate_lowercase", "validate_no_commas", "validate_json_format", "validate_end", "verify_keywords",
    "verify_keyword_frequency", "validate_forbidden_words", "validate_word_constraint",
    "verify_sentence_constraint", "verify_postscript", "validate_placeholders", "verify_bullet_points",
    "validate_sections",
)


@dataclass
class IFEvalTask(Task):
    """Writing requests with one verifiable constraint each.

    ``kinds``: constraint kinds to draw from (default: the calibrated set). ``source``: None (generated),
    a file in the RLVR-IFeval schema (``messages``, ``ground_truth``), or ``"hub"`` (allenai/RLVR-IFeval).
    """

    kinds: tuple[str, ...] = DEFAULT_KINDS
    source: str | None = None
    name: str = NAME
    system_prompt: str | None = None
    max_new_tokens: int = 128
    _rows: list | None = field(default=None, init=False, repr=False)

    def __post_init__(self):
        self.kinds = tuple(self.kinds)
        bad = [k for k in self.kinds if k not in GENERATED_KINDS]
        if bad or not self.kinds:
            raise ValueError(f"unknown constraint kinds {bad}; valid kinds: {', '.join(GENERATED_KINDS)}")
        if self.source is not None:
            self._rows = load_ifeval_rlvr(self.source)

    def make_examples(self, n: int, seed: int = 0, split: str = "train") -> list[Example]:
        check_n(n)
        check_split(split)
        if self._rows is not None:
            rows = [r for r in self._rows if split_of(r[0]) == split]
            return [Example(NAME, prompt, gt, expert_text(gt, "this request", prompt) or "")
                    for prompt, gt in sample_items(rows, n, seed, split, repeat=split == "train")]
        topics = [t for t in TOPICS if split_of(f"ifeval-topic:{t}") == split]
        rng = random.Random(split_seed(seed, split, NAME, *self.kinds))
        out, seen = [], set()
        for _ in range(50 * max(n, 1)):
            if len(out) == n:
                break
            topic, kind = rng.choice(topics), self.kinds[len(out) % len(self.kinds)]
            instruction, gt = _constraint(kind, rng)
            prompt = f"{rng.choice(REQUESTS).format(topic=topic)} {instruction}"
            if split == "eval" and prompt in seen:
                continue
            seen.add(prompt)
            out.append(Example(NAME, prompt, gt, expert_text(gt, topic, prompt)))
        if len(out) < n:
            raise ValueError(f"could only draw {len(out)} distinct {split} ifeval prompts for kinds {self.kinds}")
        rng.shuffle(out)
        return out

    def parse(self, response: str) -> str | None:
        """The whole response is the answer; an empty one is unparsed."""
        return response if response.strip() else None

    def verify(self, example: Example, parsed: str) -> bool:
        return check_constraint(parsed, example.target)


def load_ifeval_rlvr(source: str | Path) -> list[tuple[str, dict]]:
    """(user prompt, ground truth) rows of RLVR-IFeval (file, or the hub when ``source == "hub"``).

    Rows whose constraint cannot be checked here (response language) are skipped with a warning.
    """
    if str(source) == "hub":
        from datasets import load_dataset

        records = enumerate(load_dataset("allenai/RLVR-IFeval", split="train"), 1)
    else:
        records = read_rows(source, list_columns=("messages",))
    rows, skipped = [], 0
    for lineno, row in records:
        messages, gt = row.get("messages"), row.get("ground_truth")
        users = [m.get("content") for m in (messages or []) if isinstance(m, dict) and m.get("role") == "user"]
        if not users or not isinstance(users[-1], str):
            raise row_error(source, lineno, "'messages' must be a list with a user message")
        if isinstance(gt, str):
            try:
                gt = json.loads(gt)
            except json.JSONDecodeError:
                raise row_error(source, lineno, "'ground_truth' is not valid JSON") from None
        if isinstance(gt, list) and len(gt) == 1:
            gt = gt[0]
        if not isinstance(gt, dict) or "func_name" not in gt:
            raise row_error(source, lineno, "'ground_truth' must be an object with a 'func_name'")
        if gt["func_name"] in UNSUPPORTED:
            skipped += 1
            continue
        if gt["func_name"] not in CHECKERS:
            raise row_error(source, lineno, f"unknown constraint {gt['func_name']!r}; "
                                            f"supported: {', '.join(sorted(CHECKERS))}")
        rows.append((users[-1], gt))
    if skipped:
        warnings.warn(f"{source}: skipped {skipped} rows with constraints not checkable here ({', '.join(UNSUPPORTED)})")
    if not rows:
        raise ValueError(f"{source}: no usable rows")
    return rows
