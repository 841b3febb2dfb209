"""The shipped knowledge bank: grown by scripts/build_knowledge_bank.py from packaged data, hand-written rows kept."""

import importlib.util
import json
from pathlib import Path

import pytest

from retain_utils.tasks import get_task
from retain_utils.tasks.mmlu import bank_path

ROOT = Path(__file__).resolve().parent.parent


def _builder():
    spec = importlib.util.spec_from_file_location("build_knowledge_bank", ROOT / "scripts" / "build_knowledge_bank.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_bank_is_large_enough_and_holds_out_200():
    rows = [json.loads(line) for line in bank_path().read_text(encoding="utf-8").splitlines()]
    assert len(rows) >= 600 and len({r["question"] for r in rows}) == len(rows)
    task = get_task("mmlu")
    assert task.n_questions("eval") >= 200 and task.n_questions("train") + task.n_questions("eval") == len(rows)
    generated = [r for r in rows if r["subject"] in _builder().GENERATED_SUBJECTS]
    assert len(rows) - len(generated) == 307  # the hand-written questions, kept
    assert all(len(set(r["choices"])) == 4 and 0 <= r["answer"] < 4 for r in rows)


def test_the_shipped_bank_is_what_the_builder_builds():
    pytest.importorskip("periodictable")  # a build-time dependency only
    builder = _builder()
    assert builder.build() == bank_path().read_text(encoding="utf-8")  # deterministic and up to date
    assert builder.main(["--check"]) == 0
