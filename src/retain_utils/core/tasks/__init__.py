"""The three task families of the paper (instruction following, knowledge (MMLU), Countdown) and three more
forgetting probes (arithmetic, two-way knowledge questions, antonyms) that are used only where named.

``get_task(name, **options)`` builds one; each has ``make_examples(n, seed, split)``, ``messages``,
``parse`` and ``reward`` (see ``tasks.base``).
"""

from __future__ import annotations

from .antonym import AntonymTask
from .arithmetic import ArithmeticTask
from .base import SPLITS, Example, Task
from .countdown import CountdownTask
from .ifeval import IFEvalTask
from .knowledge_pair import KnowledgePairTask
from .mmlu import MMLUTask

TASK_NAMES = ("ifeval", "mmlu", "countdown")  # the paper's three, in Table 1's order: the default everywhere
EXTRA_TASK_NAMES = ("arithmetic", "knowledge_pair", "antonym")  # more forgetting probes, used only where named
TASKS = {"ifeval": IFEvalTask, "mmlu": MMLUTask, "countdown": CountdownTask,
         "arithmetic": ArithmeticTask, "knowledge_pair": KnowledgePairTask, "antonym": AntonymTask}
ALL_TASK_NAMES = TASK_NAMES + EXTRA_TASK_NAMES

# Probes that ask a task's own held-out questions in another form: knowledge_pair asks mmlu's held-out questions
# of the same knowledge bank as a choice of two. With one of them trained, the other measures transfer, not
# forgetting, so a drop leaves it out (it lifted knowledge_pair ~30 pp in mmlu runs and hid other tasks' losses).
# Arithmetic stays an "other task" of countdown, as the paper keeps MATH beside its Countdown target.
RELATED = {"mmlu": ("knowledge_pair",), "knowledge_pair": ("mmlu",)}


def transfer_tasks(tasks, target: str) -> list[str]:
    """The tasks among ``tasks`` that ask ``target``'s own questions in another form (``RELATED``), in order."""
    return [t for t in tasks if t in RELATED.get(target, ())]


def forgetting_tasks(tasks, target: str) -> list[str]:
    """The tasks among ``tasks`` a drop averages when ``target`` is trained: all but the target and the probes
    that ask its own questions (``transfer_tasks``), in order."""
    return [t for t in tasks if t != target and t not in RELATED.get(target, ())]


def get_task(name: str, **options) -> Task:
    """The task called ``name`` with its options (e.g. ``get_task("countdown", n_numbers=3)``)."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; valid tasks: {', '.join(ALL_TASK_NAMES)}")
    cls = TASKS[name]
    valid = sorted(f for f in cls.__dataclass_fields__ if not f.startswith("_") and f != "name")
    bad = sorted(set(options) - set(valid))
    if bad:
        raise ValueError(f"unknown option(s) {', '.join(bad)} for task {name!r}; valid options: {', '.join(valid)}")
    return cls(**options)


__all__ = ["SPLITS", "TASKS", "RELATED", "TASK_NAMES", "EXTRA_TASK_NAMES", "ALL_TASK_NAMES", "Example", "Task",
           "get_task", "forgetting_tasks", "transfer_tasks",
           "IFEvalTask", "MMLUTask", "CountdownTask", "ArithmeticTask", "KnowledgePairTask", "AntonymTask"]
