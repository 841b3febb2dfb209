"""Instruction following with verifiable constraints (IFEval style, one constraint per prompt).

A constraint is a ground-truth dict ``{"func_name": ..., **kwargs}`` in the schema of the RLVR-IFeval
dataset, so the same checkers score generated prompts and the real data. Generated prompts pair a short
writing request about a topic with one constraint; topics (not just prompts) are split between train and
eval. The expert response is a short natural paragraph, drawn from sentence banks by a seed and written to
satisfy the constraint: correct, and off-policy (not the model's own words).
"""

from __future__ import annotations

import json
import random
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .base import Example, Task, check_common, check_names_option, check_n, check_split, read_rows, row_error, sample_items, split_of, split_seed

NAME = "ifeval"

# ---------------------------------------------------------------------------------------------- checkers
# One function per RLVR-IFeval ``func_name``: (response, **kwargs) -> bool. Written from the IFEval
# instruction descriptions; word counts split on whitespace, keyword checks are case-insensitive.


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


# Sentence splitting after IFEval's ``instructions_util.split_into_sentences``: periods in titles (Mr., Dr.),
# initials and acronyms (U.S., p.m.), decimals (3.5) and web addresses do not end a sentence. Deliberate
# difference: an ellipsis followed by a lowercase word does not end one either. Every pattern below is a
# fixed-width look-around or a single bounded token, so the split runs in time linear in the text.
_PREFIXES = re.compile(r"\b(Mr|St|Mrs|Ms|Dr|Prof|Capt|Lt|Jr|Sr|Inc|Ltd|Co|e\.g|i\.e)\.", flags=re.I)
_INITIALS = re.compile(r"(?<![^\W\d_])([^\W\d_])\.(?=[^\W\d_]\.|\s|$)")  # a single letter then a period: U.S., p.m., J. Smith
_DECIMAL = re.compile(r"(?<=\d)\.(?=\d)")
_WEBSITE = re.compile(r"\.(?=(?:com|net|org|io|gov|edu|me)\b)")
_ELLIPSIS_GO_ON = re.compile(r"(?:\.\.\.|\u2026)(?=\s*[a-z])")
_ACRONYM_STOP = re.compile(r"(?<!\x00)((?:[A-Z]\x00){2,}) (?=(?:Mr|Mrs|Ms|Dr|Prof|Capt|Cpt|Lt|He|She|It|They|Their|Our|We|But|"
                           r"However|That|This|Wherever)\b)")
_SENTENCE_END = re.compile(r"[.!?\u2026]+[\"'\u201d)\]]*(?=\s|$)")  # a period inside a token (a.b) ends nothing
_PRD = "\x00"


def _sentences(text: str) -> list[str]:
    text = text.replace("\n", " ").replace(_PRD, " ")
    text = _PREFIXES.sub(lambda m: m.group(0)[:-1].replace(".", _PRD) + _PRD, text)
    text = _WEBSITE.sub(_PRD, text)
    text = _DECIMAL.sub(_PRD, text)
    text = _ELLIPSIS_GO_ON.sub(_PRD * 3, text)
    text = _INITIALS.sub(lambda m: m.group(1) + _PRD, text)
    # an acronym before a sentence starter ("... in the U.S. He left") ends the sentence, as in IFEval
    text = _ACRONYM_STOP.sub(lambda m: m.group(1)[:-1] + ". ", text)
    pieces, start = [], 0
    for m in _SENTENCE_END.finditer(text):
        pieces.append(text[start:m.end()])
        start = m.end()
    pieces.append(text[start:])
    return [p.strip().replace(_PRD, ".") for p in pieces if p.strip(" \t" + _PRD)]


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


QUANTIFIERS = ("at least", "at most", "around", "less than")


def _strip_fences(text: str) -> str:
    """The text inside a markdown code fence (```json ... ```), else the text; plain string operations."""
    text = text.strip()
    if len(text) >= 6 and text.startswith("```") and text.endswith("```"):
        inner = text[3:-3]
        if inner[:4].lower() == "json":
            inner = inner[4:]
        return inner.strip()
    return text


def _json_ok(text: str) -> bool:
    try:
        json.loads(_strip_fences(text))
    except (ValueError, RecursionError):
        return False
    return True


def _paragraph_count_ok(text: str, N: int) -> bool:
    text = "\n".join(line.strip() for line in text.splitlines()).strip()
    parts = [p.strip() for p in text.split("* * *")]
    return all(parts) and len(parts) == N


def _paragraphs_ok(text: str, N: int, first_word: str, i: int) -> bool:
    """Paragraphs are separated by blank lines (lines with only whitespace)."""
    parts, current = [], []
    for line in text.strip().split("\n"):
        if line.strip():
            current.append(line)
        elif current:
            parts.append("\n".join(current))
            current = []
    if current:
        parts.append("\n".join(current))
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
    return len(re.findall(rf"(?<!\S){re.escape(section_splitter)}\s?\d", text, flags=re.I)) >= N


def _bullets(text: str) -> int:
    """Lines that start (after indentation) with '*' or '-', whitespace, then text."""
    count = 0
    for line in text.splitlines():
        line = line.lstrip()
        if line[:1] in ("*", "-") and line[1:2].isspace() and line[1:].strip():
            count += 1
    return count


def _capital_words(text: str) -> int:
    """Words written entirely in capitals, as IFEval counts them (``word.isupper()`` over its tokens).

    Tokens are runs of word characters joined by '-' or '.' (``WELL-KNOWN``, ``U.S``); an apostrophe splits
    a token as nltk's word_tokenize does (``NASA's`` -> ``NASA``, ``s``). Single capitals (``I``, ``A``) count.
    """
    return sum(1 for w in re.findall(r"\w+(?:[-.]\w+)*", text) if w.isupper())


def _choice_ok(text: str, options: list[str]) -> bool:
    """One of the options appears as whole words ("no" is not found inside "not")."""
    return any(re.search(rf"(?<!\w){re.escape(o.strip())}(?!\w)", text) for o in options if o.strip())


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
    "verify_bullet_points": lambda t, N: _bullets(t) == N,
    "validate_highlighted_sections": lambda t, N: len(re.findall(r"\*[^\n*]+\*", t)) >= N,
    "validate_sections": _sections_ok,
    "validate_two_responses": _two_responses_ok,
    "validate_repeat_prompt": lambda t, original_prompt: t.strip().startswith(original_prompt.strip()),
    "validate_choice": _choice_ok,
    "validate_frequency_capital_words": lambda t, N, quantifier: _quantified(
        _capital_words(t), N, quantifier, max(round(N * 0.1), 1)),
}

# The arguments each constraint takes and what they must be: rows are checked when loaded, so that a bad
# row fails there, naming its file and line, not later as a silent 0 reward.
_INT, _STR, _STRS, _QUANT = "a non-negative int", "a non-empty string", "a list of non-empty strings", "a quantifier"
ARGUMENTS: dict[str, dict[str, str]] = {
    "validate_end": {"end_phrase": _STR},
    "verify_keywords": {"keyword_list": _STRS},
    "verify_keyword_frequency": {"word": _STR, "N": _INT},
    "validate_forbidden_words": {"forbidden_words": _STRS},
    "verify_letter_frequency": {"letter": _STR, "N": _INT},
    "validate_word_constraint": {"N": _INT, "quantifier": _QUANT},
    "verify_sentence_constraint": {"N": _INT, "quantifier": _QUANT},
    "verify_paragraph_count": {"N": _INT},
    "validate_paragraphs": {"N": _INT, "first_word": _STR, "i": _INT},
    "verify_postscript": {"postscript_marker": _STR},
    "validate_placeholders": {"N": _INT},
    "verify_bullet_points": {"N": _INT},
    "validate_highlighted_sections": {"N": _INT},
    "validate_sections": {"N": _INT, "section_splitter": _STR},
    "validate_repeat_prompt": {"original_prompt": _STR},
    "validate_choice": {"options": _STRS},
    "validate_frequency_capital_words": {"N": _INT, "quantifier": _QUANT},
}


def constraint_error(ground_truth: dict) -> str | None:
    """Why ``ground_truth`` is not a checkable constraint (missing / mistyped / unknown argument), or None."""
    name = ground_truth.get("func_name")
    if name not in CHECKERS:
        return f"unknown constraint {name!r}; supported: {', '.join(sorted(CHECKERS))}"
    wanted = ARGUMENTS.get(name, {})
    given = {k: v for k, v in ground_truth.items() if k != "func_name" and v is not None}
    extra = sorted(set(given) - set(wanted))
    if extra:
        return f"{name} takes {', '.join(wanted) or 'no arguments'}, got also {', '.join(extra)}"
    for key, kind in wanted.items():
        value = given.get(key)
        ok = {_INT: isinstance(value, int) and not isinstance(value, bool) and value >= 1,
              _STR: isinstance(value, str) and value.strip() != "",
              _STRS: isinstance(value, list) and bool(value) and all(isinstance(v, str) and v.strip() for v in value),
              _QUANT: value in QUANTIFIERS}[kind]
        if not ok:
            what = f"one of {', '.join(QUANTIFIERS)}" if kind == _QUANT else kind
            return f"{name}: {key!r} must be {what}, got {value!r}"
    return None


UNSUPPORTED = ("validate_response_language",)  # needs a language detector; such rows are skipped


def check_constraint(response: str, ground_truth: dict) -> bool:
    """Does ``response`` satisfy the constraint? Unknown function names raise ValueError."""
    name = ground_truth.get("func_name")
    if name not in CHECKERS:
        raise ValueError(f"unknown IFEval constraint {name!r}; supported: {', '.join(sorted(CHECKERS))}")
    error = constraint_error(ground_truth)
    if error:
        raise ValueError(error)
    kwargs = {k: v for k, v in ground_truth.items() if k != "func_name" and v is not None}
    return bool(CHECKERS[name](response, **kwargs))


# ---------------------------------------------------------------------------------------------- expert writer

# Sentence banks for the expert writer: no commas, digits, abbreviations, all-capital words, markdown marks or
# the generated keywords and forbidden words, so each constraint below only has to add what it asks for.
_OPENINGS = [  # no verb agrees with the topic, which may be singular or plural
    "A closer look at {topic} is always worth the time.",
    "There is more to {topic} than most of us notice at first.",
    "Most of us meet {topic} in daily life more often than we think.",
    "It is easy to overlook {topic} until you stop and pay attention.",
    "When it comes to {topic} there is plenty to say.",
    "Few things are as quietly interesting as {topic}.",
    "Learning about {topic} can change how you see the world around you.",
]
_BODY = [
    "A little curiosity goes a long way here.",
    "Small details often explain the bigger picture.",
    "Asking a few questions is the best way to start.",
    "Once you know the basics the rest falls into place.",
    "Every visit or conversation adds something new.",
    "It helps to read a little and then see for yourself.",
    "Children and adults alike can enjoy it.",
    "There is always one more thing to discover.",
    "Some of the best ideas come from simply watching closely.",
    "Over time the main ideas start to feel familiar.",
    "Patience pays off when you want to understand it well.",
    "It is the kind of subject that rewards a second look.",
    "Sharing what you learn makes it even more fun.",
    "Most questions about it have surprisingly clear answers.",
    "You do not need special tools to enjoy it.",
    "Anyone can enjoy {topic} with a bit of time.",
    "Thinking about {topic} often leads to new questions.",
    "A short walk or a library visit is a fine place to begin.",
]
_KEYWORD_SENTENCES = ["It all connects to {word} in the end.", "Think about the role of {word} here.",
                      "{Word} is part of the story too.", "Some would say {word} is the key.",
                      "That is where {word} comes in.", "Keep {word} in mind as you go."]
_TITLES = ["<<{Topic} in a nutshell>>", "<<A few words on {topic}>>", "<<Why {topic} matters>>",
           "<<Notes on {topic}>>"]
_PLACEHOLDERS = ["[name]", "[address]", "[date]", "[phone number]", "[email]"]
_CAPITALS = ["CURIOUS", "CALM", "CLEAR", "BOLD", "BRIGHT", "KIND"]
_POSTSCRIPTS = ["Thanks for reading.", "Write back soon.", "More on this another time."]


class _Writer:
    """Sentences about a topic, drawn without repeats (then reshuffled) from the banks by a seeded rng."""

    def __init__(self, topic: str, rng: random.Random):
        self.topic, self.rng = topic, rng
        self.fill = {"topic": topic, "Topic": topic[:1].upper() + topic[1:]}
        self.pool: list[str] = []

    def sentences(self, n: int, opening: bool = True) -> list[str]:
        out = [self.rng.choice(_OPENINGS).format(**self.fill)] if opening and n else []
        while len(out) < n:
            if not self.pool:
                self.pool = [s.format(**self.fill) for s in _BODY]
                self.rng.shuffle(self.pool)
            out.append(self.pool.pop())
        return out

    def text(self, n: int) -> str:
        return " ".join(self.sentences(n))


def expert_text(ground_truth: dict, topic: str, prompt: str = "") -> str | None:
    """A natural response built to satisfy ``ground_truth`` (seeded by the prompt); None when it cannot."""
    gt = {k: v for k, v in ground_truth.items() if v is not None}
    name = gt["func_name"]
    rng = random.Random(split_seed(0, "expert", NAME, prompt or topic, name))
    w = _Writer(topic, rng)
    base = w.text(rng.randint(3, 5))
    if name == "validate_lowercase":
        return base.lower()
    if name == "validate_uppercase":
        return base.upper()
    if name == "validate_no_commas":
        return base.replace(",", "")
    if name == "validate_quotation":
        return f'"{base}"'
    if name == "validate_json_format":
        key = rng.choice(["summary", "answer", "text"])
        return json.dumps({"topic": topic, key: w.text(2)}, indent=2)
    if name == "validate_title":
        return f"{rng.choice(_TITLES).format(**w.fill)}\n{base}"
    if name == "validate_end":
        return f"{base} {gt['end_phrase']}"
    if name == "verify_keywords":
        words = gt["keyword_list"]
        listed = words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]
        return f"{base} It even touches on {listed}."
    if name == "verify_keyword_frequency":
        word, n = gt["word"], gt["N"]
        kept = [s for s in w.sentences(4) if word.lower() not in _words(s)]
        extra = [_KEYWORD_SENTENCES[i % len(_KEYWORD_SENTENCES)] for i in rng.sample(range(60), n)]
        extra = [e.format(word=word, Word=word[:1].upper() + word[1:]) for e in extra]
        if any(_words(e).count(word.lower()) != 1 for e in extra):
            return None
        return " ".join(kept + extra)
    if name == "validate_forbidden_words":
        banned = [x.lower() for x in gt["forbidden_words"]]
        kept = [s for s in w.sentences(6) if not any(re.search(rf"\b{re.escape(b)}\b", s.lower()) for b in banned)]
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
        limit = {"at least": None, "around": n, "at most": n, "less than": n - 1}[q]
        out: list[str] = []
        for s in w.sentences(4 + n // 5):
            size = len(" ".join(out + [s]).split())
            if limit is None and len(" ".join(out).split()) >= n + 2:
                break
            if limit is not None and size > limit - (0 if q == "around" else 1):
                break
            out.append(s)
        text = " ".join(out)
        if not _quantified(len(text.split()), n, q, max(round(n * 0.1), 1)):  # too short a limit: cut a sentence
            text = " ".join(" ".join(w.sentences(4)).split()[: max(n - 1, 1)])
        return text
    if name == "verify_sentence_constraint":
        n, q = gt["N"], gt["quantifier"]
        size = {"at least": n + 1, "around": n, "at most": max(n - 1, 1), "less than": max(n - 1, 1)}[q]
        return w.text(size)
    if name == "verify_paragraph_count":
        return "\n* * *\n".join(w.text(rng.randint(1, 2)) for _ in range(gt["N"]))
    if name == "validate_paragraphs":
        paras = [w.text(rng.randint(1, 2)) for _ in range(gt["N"])]
        i = gt["i"] - 1
        paras[i] = f"{gt['first_word'][:1].upper() + gt['first_word'][1:]} {paras[i][0].lower()}{paras[i][1:]}"
        return "\n\n".join(paras)
    if name == "verify_postscript":
        return f"{base}\n\n{gt['postscript_marker']} {rng.choice(_POSTSCRIPTS)}"
    if name == "validate_placeholders":
        n = gt["N"]
        marks = (_PLACEHOLDERS + [f"[detail {i}]" for i in range(1, n + 1)])[:max(n, 1)]
        listed = marks[0] if len(marks) == 1 else ", ".join(marks[:-1]) + " or " + marks[-1]
        return f"{base} You can reach me at {listed}."
    if name == "verify_bullet_points":
        lead = rng.choice(["", "A few thoughts:\n", "Here is what stands out:\n"])
        return lead + "\n".join(f"* {s}" for s in w.sentences(gt["N"]))
    if name == "validate_highlighted_sections":
        parts = w.sentences(gt["N"] + 1)
        return " ".join(f"*{s}*" if k < gt["N"] else s for k, s in enumerate(parts))
    if name == "validate_sections":
        return "\n\n".join(f"{gt['section_splitter']} {i}\n{w.text(rng.randint(1, 2))}"
                           for i in range(1, gt["N"] + 1))
    if name == "validate_two_responses":
        return f"{w.text(2)}\n******\n{w.text(2)}"
    if name == "validate_repeat_prompt":
        return f"{gt['original_prompt']}\n{base}"
    if name == "validate_choice":
        return rng.choice(gt["options"])
    if name == "validate_frequency_capital_words":
        n, q = gt["N"], gt["quantifier"]
        size = {"at least": n + 1, "around": n, "at most": max(n - 1, 0), "less than": max(n - 1, 0)}[q]
        caps = [_CAPITALS[k % len(_CAPITALS)] for k in range(size)]
        return f"{base} In capitals: {' '.join(caps)}." if caps else base
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
        check_common(self)
        self.kinds = check_names_option("kinds", self.kinds)
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

    def lenient_answer(self, example: Example, response: str) -> bool:
        """Lenient rule: the constraint checked on the reply without common wrappers - a code fence around the
        whole reply (```lang ... ```) and a leading line of preamble ("Sure, here is ...", "Certainly!",
        "Here's ...:"), in either order."""
        return check_constraint(unwrap(response), example.target)


_PREAMBLE = ("sure", "certainly", "of course", "here is", "here's", "here are", "okay", "ok,", "absolutely")


def unwrap(text: str) -> str:
    """``text`` without a leading preamble line and without a code fence around all of it."""
    text = text.strip()
    for _ in range(2):  # a preamble outside a fence, or a fence around a preamble
        first, _, rest = text.partition("\n")
        if rest.strip() and first.strip().lower().startswith(_PREAMBLE):
            text = rest.strip()
        if text.startswith("```") and text.endswith("```") and len(text) >= 6:
            first, _, rest = text[:-3].partition("\n")
            text = rest.strip()
    return text


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
        error = constraint_error(gt)
        if error:
            raise row_error(source, lineno, error)
        rows.append((users[-1], gt))
    if skipped:
        warnings.warn(f"{source}: skipped {skipped} rows with constraints not checkable here ({', '.join(UNSUPPORTED)})")
    if not rows:
        raise ValueError(f"{source}: no usable rows")
    return rows
