"""Telling a looping answer from a long one: an n-gram repetition detector over token ids (or words).

A collapsed policy often repeats one phrase until its token budget runs out ("= 24 = 24 = 24 ..."). Such an
answer is not a long answer that merely grew past a budget: training diagnostics and evaluations count it apart.
An answer *loops* when some run of ``n`` consecutive tokens occurs at least ``repeats`` times in it. With the
defaults (8 tokens, 4 times) ordinary prose, lists and JSON rarely trigger it, while a loop of any period up to
8 tokens triggers it after 32 + 8 tokens. Time is linear in the answer's length (one pass, a dict of n-grams).
"""

from __future__ import annotations

from collections.abc import Sequence

LOOP_N = 8        # tokens per n-gram
LOOP_REPEATS = 4  # occurrences of one n-gram that make an answer a loop


def check_loop_settings(n, repeats) -> None:
    """Refuse an n-gram size or a repeat count that is not an int >= 1 (>= 2 for ``repeats``), naming it."""
    for name, value, minimum in (("loop_n", n, 1), ("loop_repeats", repeats, 2)):
        if not (isinstance(value, int) and not isinstance(value, bool) and value >= minimum):
            raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")


def is_looping(tokens: Sequence, n: int = LOOP_N, repeats: int = LOOP_REPEATS) -> bool:
    """True when some ``n`` consecutive items of ``tokens`` (token ids, or a text's words) occur ``repeats``
    times or more. A string is split into words first."""
    check_loop_settings(n, repeats)
    items = tokens.split() if isinstance(tokens, str) else list(tokens)
    counts: dict[tuple, int] = {}
    for i in range(len(items) - n + 1):
        gram = tuple(items[i:i + n])
        counts[gram] = counts.get(gram, 0) + 1
        if counts[gram] >= repeats:
            return True
    return False


def looping_share(answers: Sequence[Sequence], n: int = LOOP_N, repeats: int = LOOP_REPEATS) -> float:
    """Share of ``answers`` (each a token-id sequence or a text) that loop; 0 for no answers."""
    check_loop_settings(n, repeats)
    return sum(is_looping(a, n, repeats) for a in answers) / len(answers) if len(answers) else 0.0
