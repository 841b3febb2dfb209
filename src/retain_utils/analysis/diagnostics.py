"""Collapse made visible: the flags a run earns when its RL signal dies or its answers loop or run past the budget.

A run is flagged, in its record and in every table that includes it, when
- ``no_signal``: over the last quarter of its steps, at least ``NO_SIGNAL`` of its groups had zero reward spread on
  average (GRPO then has no gradient but the KL term's);
- ``shrunk``: its completions in the last quarter average under ``SHRUNK`` of their length at the first step;
- ``looping:<task>`` / ``cut_off:<task>``: at its final evaluation more than ``FORMAT_SHARE`` of that task's answers
  loop (``repetition.is_looping``) or were cut off by the token budget.
The thresholds are round numbers chosen before any calibrated run, not tuned on results.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

NO_SIGNAL = 0.9
SHRUNK = 0.25
FORMAT_SHARE = 0.20


def _last_quarter(steps: Sequence[Mapping], key: str) -> float | None:
    values = [s[key] for s in steps if s.get(key) is not None]
    if not values:
        return None
    tail = values[-max(1, len(values) // 4):]
    return sum(tail) / len(tail)


def _share(score, field: str) -> float:
    values = score.get(field, ()) if isinstance(score, Mapping) else getattr(score, field, ())
    return sum(values) / len(values) if len(values) else 0.0


def flags(steps: Sequence[Mapping], final_scores: Mapping) -> list[str]:
    """The flags (see the module docstring) of a run with per-step metrics ``steps`` and final evaluation
    ``final_scores`` ({task: TaskScore or its dict}); [] for a healthy run."""
    out = []
    zero = _last_quarter(steps, "zero_std_frac")
    if zero is not None and zero >= NO_SIGNAL:
        out.append("no_signal")
    lengths = [s["completion_len"] for s in steps if s.get("completion_len") is not None]
    if lengths and lengths[0] > 0 and _last_quarter(steps, "completion_len") < SHRUNK * lengths[0]:
        out.append("shrunk")
    for task, score in final_scores.items():
        for field, name in (("looping", "looping"), ("truncated", "cut_off")):
            if _share(score, field) > FORMAT_SHARE:
                out.append(f"{name}:{task}")
    return out


def flags_sentence(flags_: Sequence[str]) -> str:
    """A table cell for a run's flags: empty when healthy, else the flags joined ("no_signal, looping:mmlu")."""
    return ", ".join(flags_)


DIAGNOSTICS = {"completion_len": "completion length (tokens)", "entropy": "token entropy (nats)",
               "zero_std_frac": "groups without reward spread", "cutoff_frac": "answers cut off",
               "looping_frac": "answers looping"}  # per-step metrics of RL runs, with their axis labels


def step_metrics(record) -> list[dict]:
    """A run's per-step metrics from its log (``metrics.jsonl`` in its run folder); [] when it kept none."""
    import json
    from pathlib import Path

    folder = (record.config or {}).get("out_dir")
    path = Path(folder) / "metrics.jsonl" if folder else None
    if path is None or not path.exists():
        return []
    rows = []
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        try:
            rows.append(json.loads(line))
        except ValueError:
            raise ValueError(f"{path}, line {lineno}: not valid JSON") from None
    return rows
