"""What every task provides: examples from a seed, chat messages, a parser, a 0/1 verifier, expert answers.

A task is a small object with ``name``, ``make_examples(n, seed, split)``, ``messages(example)``,
``parse(response)`` and ``reward(example, response)``. ``Task`` below implements the shared parts;
each family (ifeval, mmlu, countdown) fills in the rest.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from ..validate import check_int

SPLITS = ("train", "eval")
EVAL_FRACTION = 0.25  # share of a task's item space that is held out for evaluation


@dataclass(frozen=True)
class Example:
    """One prompt: the user message, what the verifier needs, and an off-policy expert response."""

    task: str
    prompt: str
    target: Any
    expert: str
    # the expert response as token ids ending with EOS, where they are the data itself (an RL run's accepted
    # rollouts as sampled): SFT trains on them as they are instead of tokenising ``expert``
    expert_ids: tuple[int, ...] | None = None


def check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; valid splits: {', '.join(SPLITS)}")


def in_split(items: list, split_of_item, split: str) -> list:
    """The items whose split (``split_of_item(item)``) is ``split``, in order; an unknown split is refused."""
    check_split(split)
    return [item for item in items if split_of_item(item) == split]


def check_n(n: int) -> None:
    check_int("n (number of examples)", n, 0)


def check_common(task: "Task") -> None:
    """The options every task has: a positive token budget, an optional system prompt and source."""
    check_int("max_new_tokens", task.max_new_tokens, 1)
    if task.system_prompt is not None and not isinstance(task.system_prompt, str):
        raise ValueError(f"system_prompt must be a string or None, got {type(task.system_prompt).__name__}")
    source = getattr(task, "source", None)
    if source is not None and not isinstance(source, (str, Path)):
        raise ValueError(f"source must be a file path, 'hub' or None, got {type(source).__name__}")


def check_names_option(name: str, value: Any) -> tuple[str, ...]:
    """A list / tuple of strings as a tuple; a bare string is refused (it would be read letter by letter)."""
    if isinstance(value, str) or not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{name} must be a list or tuple of strings, got {value!r}")
    return tuple(value)


def split_of(key: str, eval_fraction: float = EVAL_FRACTION) -> str:
    """The split a content key belongs to, by a stable hash: the same item is never in both splits."""
    h = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")
    return "eval" if (h % 10_000) < eval_fraction * 10_000 else "train"


def split_seed(seed: int, split: str, *salt: Any) -> int:
    """A 64-bit seed for (seed, split, salt...) so train and eval streams differ for the same seed."""
    text = json.dumps([seed, split, *[str(s) for s in salt]])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


class Task:
    """Shared behaviour: chat messages and the 0/1 reward built on ``parse`` and ``verify``.

    Subclasses set ``name`` and implement ``make_examples``, ``parse`` and ``verify``.
    """

    name: str = "task"
    system_prompt: str | None = None
    max_new_tokens: int = 128  # generation budget that fits the task's answers

    def make_examples(self, n: int, seed: int = 0, split: str = "train") -> list[Example]:
        raise NotImplementedError

    def messages(self, example: Example) -> list[dict]:
        """The chat to send: an optional system prompt, then the user prompt."""
        msgs = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        return msgs + [{"role": "user", "content": example.prompt}]

    def parse(self, response: str) -> Any | None:
        """The answer extracted from a response, or None when there is none to verify."""
        raise NotImplementedError

    def parse_for(self, example: Example, response: str) -> Any | None:
        """``parse`` for this example (a task whose answer format varies per example overrides this)."""
        return self.parse(response)

    def verify(self, example: Example, parsed: Any) -> bool:
        raise NotImplementedError

    def score(self, example: Example, response: str) -> tuple[float, bool]:
        """(reward, parsed_ok): unparsable responses score 0 and are reported as such, never raise."""
        try:
            parsed = self.parse_for(example, response)
        except Exception:  # a parser bug or odd input must not end a long run; it counts as unparsed
            parsed = None
        if parsed is None:
            return 0.0, False
        try:
            return (1.0 if self.verify(example, parsed) else 0.0), True
        except Exception:
            return 0.0, True

    def reward(self, example: Example, response: str) -> float:
        """1.0 when the response passes the verifier, else 0.0."""
        return self.score(example, response)[0]

    def lenient(self, example: Example, response: str) -> bool:
        """Is the right answer anywhere in the response, whatever its format? Each task documents its rule in
        ``lenient_answer``; the strict ``reward`` implies it. A separate measure: knowledge the model still has
        but no longer states in the asked-for form counts here and not in ``reward``."""
        if self.reward(example, response) == 1.0:
            return True
        try:
            return bool(self.lenient_answer(example, response))
        except Exception:  # as in score: odd input is a wrong answer, never a crash
            return False

    def lenient_answer(self, example: Example, response: str) -> bool:
        """The task's own lenient rule (the default: none beyond the strict one)."""
        return False

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


def read_rows(path: str | Path, list_columns: tuple[str, ...] = ()) -> Iterator[tuple[int, dict]]:
    """(line number, row) for each row of a JSONL / JSON-list / parquet / CSV file.

    Parquet's array cells come back as plain lists (pandas gives numpy arrays). ``list_columns`` names the
    columns that hold lists: CSV cannot hold lists, so a CSV file with such a column is refused. A malformed
    row raises ValueError naming the file and line (JSONL) or row index (other formats).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"dataset file {path} does not exist")
    try:
        yield from _read_rows(path, list_columns)
    except UnicodeDecodeError as e:
        line = e.object[:e.start].count(b"\n") + 1 if isinstance(e.object, bytes) else "?"
        raise ValueError(f"{path}, line {line}: not UTF-8 text (byte {e.object[e.start:e.start + 1]!r}); "
                         f"save the file as UTF-8") from None


def _read_rows(path: Path, list_columns: tuple[str, ...]) -> Iterator[tuple[int, dict]]:
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        text = path.read_bytes().decode("utf-8")  # decoded whole, so a bad byte is reported before any row
        for lineno, line in enumerate(text.split("\n"), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}, line {lineno}: not valid JSON ({e.msg})") from None
            if not isinstance(row, dict):
                raise ValueError(f"{path}, line {lineno}: expected a JSON object, got {type(row).__name__}")
            yield lineno, row
    elif suffix == ".json":
        try:
            data = json.loads(path.read_bytes().decode("utf-8"))
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}, line {e.lineno}: not valid JSON ({e.msg})") from None
        if not isinstance(data, list):
            raise ValueError(f"{path}: expected a JSON list of rows")
        for i, row in enumerate(data, 1):
            if not isinstance(row, dict):
                raise ValueError(f"{path}, row {i}: expected a JSON object, got {type(row).__name__}")
            yield i, row
    elif suffix == ".parquet":
        import pandas as pd

        for i, row in enumerate(pd.read_parquet(path).to_dict("records"), 1):
            yield i, {k: _plain(v) for k, v in row.items()}
    elif suffix == ".csv":
        import pandas as pd

        frame = pd.read_csv(path)
        lists = [c for c in list_columns if c in frame.columns]
        if lists:
            raise ValueError(f"{path}: column(s) {', '.join(lists)} hold lists, which CSV cannot store; "
                             f"save the data as .jsonl or .parquet (e.g. DataFrame.to_parquet)")
        for i, row in enumerate(frame.to_dict("records"), 1):
            yield i, row
    else:
        raise ValueError(f"{path}: unsupported dataset format {suffix!r}; use .jsonl, .json, .parquet or .csv (CSV only without list columns)")


def _plain(value: Any) -> Any:
    """numpy arrays (and arrays inside dicts / lists) as lists, missing values (None / NaN) as None."""
    if hasattr(value, "tolist") and getattr(value, "ndim", 0) > 0:
        return [_plain(v) for v in value.tolist()]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, float) and value != value:
        return None
    return value


def row_error(path: str | Path, lineno: int, message: str) -> ValueError:
    return ValueError(f"{path}, line {lineno}: {message}")


def sample_items(items: list, n: int, seed: int, split: str, *, repeat: bool) -> list:
    """``n`` items drawn without replacement in a seeded order; cycles (reshuffled) when ``repeat``."""
    import random

    if not items:
        raise ValueError(f"no items in split {split!r}")
    if n > len(items) and not repeat:
        raise ValueError(f"asked for n={n} {split} examples but the {split} split has only {len(items)}")
    rng = random.Random(split_seed(seed, split, "order"))
    out: list = []
    while len(out) < n:
        order = list(items)
        rng.shuffle(order)
        out.extend(order[: n - len(out)])
    return out
