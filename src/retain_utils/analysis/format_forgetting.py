"""Forgetting split into knowledge and format: how much of a drop is answers that no longer hold the right
answer anywhere (knowledge), and how much is answers that still hold it but not in the asked-for form (format).

Per run and per task its drop averages (``tasks.forgetting_tasks``), between the first and the last evaluation:
the strict drop (the paper's scoring), the lenient drop (``Task.lenient``: the right answer anywhere in the
reply), their difference (the format part), and the final shares of answers unparsed, cut off by the budget and
looping. The inputs are run
records (``records.RunRecord``) whose evaluations kept per-answer lenient, looping and cut-off results.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..core.records import as_records
from ..core.tasks import forgetting_tasks


def _share(values: Sequence) -> float:
    return 100.0 * sum(values) / len(values) if len(values) else float("nan")


def _split_row(record, task: str) -> dict:
    first, last = record.evals[0], record.evals[-1]
    for entry in (first, last):
        if task not in entry.get("lenient", {}):
            raise ValueError(f"{record.variant} (seed {record.seed}): its evaluations keep no lenient results for "
                             f"{task!r}; it was run before answers were scored leniently")
    strict = _share(first["correct"][task]) - _share(last["correct"][task])
    lenient = _share(first["lenient"][task]) - _share(last["lenient"][task])
    n = len(last["correct"][task])
    return {"variant": record.variant, "seed": record.seed, "target": record.target, "task": task,
            "strict drop (pp)": strict, "knowledge drop (pp)": lenient, "format drop (pp)": strict - lenient,
            "unparsed at end (%)": 100.0 * last.get("unparsed", {}).get(task, float("nan")) / n,
            "cut off at end (%)": _share(last["truncated"][task]), "looping at end (%)": _share(last["looping"][task])}


def split_table(records) -> "object":
    """One row per (run, non-target task): strict, knowledge and format drops and the final format shares."""
    import pandas as pd

    rows = [_split_row(r, t) for r in as_records(records) if r.evals
            for t in forgetting_tasks(r.evals[0]["correct"], r.target)]
    return pd.DataFrame(rows)


def split_summary(records) -> "object":
    """Per (target, variant, task): the mean over seeds of ``split_table``'s columns, with the seed count."""
    table = split_table(records)
    if table.empty:
        return table
    grouped = table.groupby(["target", "variant", "task"], sort=False)
    return grouped.mean(numeric_only=True).drop(columns="seed").round(1).assign(seeds=grouped["seed"].nunique())


def worst_answers(record, task: str, n: int = 3) -> list[dict]:
    """Up to ``n`` answers of ``task`` that were right at the first evaluation and wrong at the last, with both
    texts (from the packed answers the record keeps), for a reader to open."""
    from ..core.evaluation import unpack_texts

    first, last = record.evals[0], record.evals[-1]
    if "answers" not in first or "answers" not in last:
        raise ValueError(f"{record.variant} (seed {record.seed}) kept no answer texts")
    before, after = unpack_texts(first["answers"][task]), unpack_texts(last["answers"][task])
    lost = [i for i, (a, b) in enumerate(zip(first["correct"][task], last["correct"][task])) if a and not b]
    return [{"question": i, "before": before[i], "after": after[i],
             "still right somewhere": bool(last["lenient"][task][i])} for i in lost[:n]]


def lost_answers_frame(records, n: int = 3):
    """For each run, up to ``n`` answers lost on the non-target task whose strict drop was largest, before and
    after, to read what the drop is made of."""
    import pandas as pd

    rows = []
    for r in as_records(records):
        if not r.evals or "answers" not in r.evals[-1]:
            continue
        table = [_split_row(r, t) for t in forgetting_tasks(r.evals[0]["correct"], r.target)]
        if not table:
            continue
        worst = max(table, key=lambda row: row["strict drop (pp)"])
        for answer in worst_answers(r, worst["task"], n):
            rows.append({"variant": r.variant, "seed": r.seed, "task": worst["task"], **answer})
    return pd.DataFrame(rows)
