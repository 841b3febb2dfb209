"""The knowledge-bank builder (scripts/build_knowledge_bank.py): grows the bank from packaged data, hand-written
rows kept, and the shipped bank is what it builds."""

import importlib.util
import json
from pathlib import Path

from retain_utils.core.tasks.base import split_of
from retain_utils.core.tasks.mmlu import BANK_EVAL_FRACTION, bank_path

ROOT = Path(__file__).resolve().parent.parent


def _builder():
    spec = importlib.util.spec_from_file_location("build_knowledge_bank", ROOT / "scripts" / "build_knowledge_bank.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_built_bank_is_large_enough_and_holds_out_200():
    builder = _builder()
    text = builder.build()
    assert text == builder.build()  # deterministic
    rows = [json.loads(line) for line in text.splitlines()]
    assert len(rows) >= 600 and len({r["question"] for r in rows}) == len(rows)
    held_out = sum(split_of(f"mmlu:{r['question']}", BANK_EVAL_FRACTION) == "eval" for r in rows)
    assert held_out >= 200
    written = [line for line in bank_path().read_text(encoding="utf-8").splitlines()
               if json.loads(line)["subject"] not in builder.GENERATED_SUBJECTS]
    assert len(written) == 307 and text.splitlines()[: len(written)] == written  # hand-written: verbatim, first
    assert all(len(set(r["choices"])) == 4 and 0 <= r["answer"] < 4 for r in rows)


def test_the_shipped_bank_is_the_built_one():
    assert bank_path().read_text(encoding="utf-8") == _builder().build()


def test_the_shipped_bank_holds_600_questions_with_300_held_out():
    rows = [json.loads(line) for line in bank_path().read_text(encoding="utf-8").splitlines()]
    assert len(rows) >= 600 and {r["subject"] for r in rows} >= set(_builder().GENERATED_SUBJECTS)
    assert sum(split_of(f"mmlu:{r['question']}", BANK_EVAL_FRACTION) == "eval" for r in rows) >= 300
    # symbols a sentence could hold by chance ("in", "as", "'s") are not asked
    symbols = [r["choices"][r["answer"]] for r in rows if r["subject"] == "chemistry"]  # the generated ones
    assert len(symbols) > 80 and not [s for s in symbols if len(s) < 2 or s.lower() in ("in", "as", "he", "no")]
