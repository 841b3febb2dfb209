"""The initial model's evaluation kept on disk, so that points which evaluate the same model on the same questions
compute it once: every campaign point of a target (each seed, each notebook) starts from the same weights and asks
the same held-out questions, and its baseline, its answers' log-likelihoods and its answers at the longer budget
are the same numbers each time.

A stored value is read back only when everything it depends on matches: the package's code, the weights
themselves (a hash of every parameter), the tasks, the questions, the precision, the torch version and threads and
the CPU flags. Anything else (no file, another key, a file that is not JSON) computes afresh and overwrites it.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch

from . import provenance, results

CACHE_ENV = "RETAIN_UTILS_BASELINE_CACHE"  # a folder: the campaign sets it for its kernels; unset, nothing is kept


def folder() -> Path | None:
    """Where baselines are kept (``$RETAIN_UTILS_BASELINE_CACHE``), None when unset: computed every time."""
    value = os.environ.get(CACHE_ENV)
    return Path(value) if value else None


def digest(value: Any) -> str:
    """A sha256 of ``value`` as sorted JSON: the same value gives the same hex digest in every process."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def weights_hash(model) -> str:
    """A hash of every parameter and buffer of ``model`` (names, shapes, dtypes, bytes): another model, another
    conversion or a model trained in place never matches (~1 s for 135M parameters)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{tuple(t.shape)}:{t.dtype}\0".encode())
        digest.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def key(what: str, model, tasks: dict, questions: dict[str, list], **extra: Any) -> dict:
    """Everything a stored ``what`` depends on: the code, the weights, the tasks (their settings), the prompts of
    the held-out questions, precision and machine, and ``extra`` (e.g. a budget)."""
    weights = next(model.parameters())
    return {"what": what, "code": provenance.source_hash(), "weights": weights_hash(model),
            "dtype": str(weights.dtype), "device": str(weights.device), "torch": torch.__version__,
            "threads": torch.get_num_threads(), "cpu_flags": provenance.cpu_flags(),
            "tasks": {name: repr(task) for name, task in sorted(tasks.items())},
            "questions": digest({name: [e.prompt for e in examples] for name, examples in questions.items()}),
            **extra}


def path(where: str | Path, stored_key: dict) -> Path:
    """The file of one key in the folder ``where``."""
    return Path(where) / f"{stored_key['what']}-{digest(stored_key)[:16]}.json"


def read(where: str | Path | None, stored_key: dict) -> Any | None:
    """The value stored under ``stored_key``; None when there is no folder, no file, or the file holds another key
    or is not readable JSON (said, then computed afresh)."""
    if where is None:
        return None
    file = path(where, stored_key)
    if not file.exists():
        return None
    try:
        stored = json.loads(file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        print(f"note: {file} is unreadable ({e}): computed again")
        return None
    if not isinstance(stored, dict) or stored.get("key") != stored_key or "value" not in stored:
        print(f"note: {file} holds another baseline than the one asked for: computed again")
        return None
    print(f"the initial model's {stored_key['what']}: read from {file}")
    return stored["value"]


def write(where: str | Path | None, stored_key: dict, value: Any) -> None:
    """Keep ``value`` under ``stored_key`` (atomically: a reader never sees half a file); nothing without a
    folder."""
    if where is not None:
        Path(where).mkdir(parents=True, exist_ok=True)
        results.write_json_atomic(path(where, stored_key), {"key": stored_key, "value": value})
