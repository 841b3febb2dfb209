"""The checks of user values every layer shares (the settings, the trainers' config, the toy): a bad value is
refused before any compute, naming the parameter and why."""

from __future__ import annotations

import math

import numpy as np


def is_int(value) -> bool:
    """A Python int that is not a bool (True is an int to Python, not to a setting)."""
    return isinstance(value, int) and not isinstance(value, bool)


def check_int(name: str, value, low: int | None = None, high: int | None = None) -> None:
    """``value`` is an int (a NumPy integer too, not a bool) within [low, high]; the error names ``name``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an int, got {value!r} ({type(value).__name__})")
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f">= {low}" if high is None else (f"<= {high}" if low is None else f"in {low}..{high}")
        raise ValueError(f"{name} must be {bounds}, got {value}")


def check_int_at_least(name: str, value, minimum: int, note: str = "", *, say_positive: bool = True) -> None:
    """Refuse anything but an int >= ``minimum`` (``say_positive``: worded "a positive int" when it is 1)."""
    if not (is_int(value) and value >= minimum):
        what = "a positive int" if minimum == 1 and say_positive else f"an int >= {minimum}"
        raise ValueError(f"{name} must be {what}{note}, got {value!r}")


def check_threshold(threshold: float) -> None:
    if not (is_real(threshold) and 0 < threshold <= 1):
        raise ValueError(f"threshold must lie in (0, 1] (Gain is a change of overlap, at most 1), got {threshold!r}")


def check_positive_int(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def check_choice(name: str, value, choices) -> None:
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; valid: {', '.join(choices)}")


def is_real(value) -> bool:
    """A finite real number (bools and strings are not)."""
    return (isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))
            and math.isfinite(value))


def check_real(name: str, value, why: str = "") -> None:
    """Refuse anything but a finite real number (nan, inf, strings, bools), naming the parameter."""
    if not is_real(value):
        raise ValueError(f"{name}{f' ({why})' if why else ''} must be a finite number, got {value!r}")


def check_reals(name: str, values, lo: float | None = None, hi: float | None = None, why: str = "") -> None:
    """A non-empty list of distinct finite numbers, each in [lo, hi] where given."""
    if isinstance(values, (str, bytes)) or not isinstance(values, (list, tuple, np.ndarray)) or len(values) == 0:
        raise ValueError(f"{name} must be a non-empty list of numbers, got {values!r}")
    for v in values:
        check_real(f"{name} value", v, why)
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            raise ValueError(f"{name} value {v!r} out of range [{lo}, {hi}]{f' ({why})' if why else ''}")
    if len(set(float(v) for v in values)) != len(values):
        raise ValueError(f"{name} has repeated values: {list(values)!r}")
