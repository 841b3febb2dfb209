"""The project says what is true now: no sentence dates a change by the sitting or the issue it came from, and no
file is named for one (how things changed is CHANGELOG.md's job, by package version)."""

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HISTORY = re.compile(r"\bsessions? \d+|\bsittings? \d+|\b(?:this|next|previous|last|earlier|later) sitting\b"
                     r"|\bissues? #?\d+|_s\d\d\b", re.IGNORECASE)
# references to an upstream project's issue tracker are not this project's history
UPSTREAM = ("hendrycks/test iss" "ue 29",)  # split, so that no tool reads it as this project's history
TOP = ("README.md", "Makefile", "pyproject.toml", "_config.yml", "_toc.yml")
FOLDERS = ("book", "benchmarks", "src", "tests", "notebooks", "scripts")
TEXT = {".md", ".py", ".txt", ".ipynb", ".yml", ".toml", ".cfg", ".json"}
SKIP = (ROOT / "tests" / "data", Path(__file__).resolve())  # recorded data; this file spells out the pattern


def project_files() -> list[Path]:
    files = [ROOT / name for name in TOP if (ROOT / name).is_file()]
    for folder in FOLDERS:
        files += [p for p in sorted((ROOT / folder).rglob("*")) if p.is_file() and "__pycache__" not in p.parts
                  and not any(p == s or s in p.parents for s in SKIP)]
    return files


def text_of(path: Path) -> str:
    if path.suffix == ".ipynb":  # the cells' sources, not their (uncommitted) outputs
        return "\n".join("".join(c["source"]) for c in json.loads(path.read_text())["cells"])
    return path.read_text(errors="replace")


def history_phrases(text: str) -> list[str]:
    for allowed in UPSTREAM:
        text = text.replace(allowed, "")
    return [text[max(0, m.start() - 30):m.end() + 30].replace("\n", " ") for m in HISTORY.finditer(text)]


def test_the_pattern_finds_history_and_spares_the_rest():
    for phrase in ("measured in sess" "ion 14", "Sess" "ions 3-4", "under iss" "ue 18's budget", "sitt" "ing 2",
                   "bench_grpo_fp32_s" "16.json", "issue #" "7"):
        assert history_phrases(phrase), phrase
    for phrase in ("one free Colab session", "seed 0 (s0)", "SFT-s0-a60fe56bb9", "an issue with padding",
                   "package 0.6.0", "see hendrycks/test iss" "ue 29"):
        assert not history_phrases(phrase), phrase


def test_no_file_dates_its_content_by_sitting_or_issue():
    files = project_files()
    assert any(p.suffix == ".ipynb" for p in files) and any(p.name == "README.md" for p in files)
    found = {str(p.relative_to(ROOT)): hits for p in files if p.suffix in TEXT and (hits := history_phrases(text_of(p)))}
    assert not found, found


def test_no_file_is_named_for_a_sitting():
    named = [str(p.relative_to(ROOT)) for p in project_files() if HISTORY.search(p.name)]
    assert not named, named
