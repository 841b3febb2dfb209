"""The three task families of the paper: instruction following, knowledge (MMLU), Countdown.

``get_task(name, **options)`` builds one; each has ``make_examples(n, seed, split)``, ``messages``,
``parse`` and ``reward`` (see ``tasks.base``).
"""

from __future__ import annotations

from .base import SPLITS, Example, Task
from .countdown import CountdownTask
from .ifeval import IFEvalTask
from .mmlu import MMLUTask

TASKS = {"ifeval": IFEvalTask, "mmlu": MMLUTask, "countdown": CountdownTask}
TASK_NAMES = tuple(TASKS)


def get_task(name: str, **options) -> Task:
    """The task called ``name`` with its options (e.g. ``get_task("countdown", n_numbers=3)``)."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; valid tasks: {', '.join(TASK_NAMES)}")
    cls = TASKS[name]
    valid = sorted(f for f in cls.__dataclass_fields__ if not f.startswith("_") and f != "name")
    bad = sorted(set(options) - set(valid))
    if bad:
        raise ValueError(f"unknown option(s) {', '.join(bad)} for task {name!r}; valid options: {', '.join(valid)}")
    return cls(**options)


__all__ = ["SPLITS", "TASKS", "TASK_NAMES", "Example", "Task", "get_task",
           "IFEvalTask", "MMLUTask", "CountdownTask"]
