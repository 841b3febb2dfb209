"""Checks of user values for the toy: a bad value is refused before any compute, naming the parameter."""

from __future__ import annotations

import numpy as np

def check_threshold(threshold: float) -> None:
    if not (isinstance(threshold, (int, float)) and 0 < threshold <= 1):
        raise ValueError(f"threshold must lie in (0, 1] (Gain is a change of overlap, at most 1), got {threshold!r}")


def check_positive_int(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def check_choice(name: str, value, choices) -> None:
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; valid: {', '.join(choices)}")
