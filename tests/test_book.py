"""Every notebook, executed with the smoke profile, and the book built from the executed copies.

This is the suite's one execution of every notebook: the book build reuses it.
"""

import json
import shutil
from pathlib import Path

import nbformat
import pytest
import yaml

from retain_utils.batch import campaign, runner
from test_evidence import chapter_answer

ROOT = runner.ROOT
NOTEBOOKS = runner.notebook_names()


def toc_files() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc["parts"]:
        files += [chapter["file"] for chapter in part["chapters"]]
    return files


@pytest.fixture(scope="session")
def smoke_book(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("book")
    for item in (*runner.BOOK_SOURCES, "notebooks"):
        src = ROOT / item
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, root / item)
    runner.build_book("smoke", root=root)
    return root


@pytest.mark.parametrize("stem", NOTEBOOKS)
def test_notebook_is_committed_clean_and_runnable_anywhere(stem):
    nb = nbformat.read(ROOT / "notebooks" / f"{stem}.ipynb", as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert not any(c.outputs for c in code), "commit notebooks without outputs"
    raw = json.loads((ROOT / "notebooks" / f"{stem}.ipynb").read_text())  # nbformat.read would add missing ids
    assert all(c.get("id") for c in raw["cells"]), "every cell has an id (nbformat 4.5)"
    assert 'if "google.colab" in sys.modules' in code[0].source, "first code cell installs the package on Colab"
    assert f'book_times.time_sentence("{stem}")' in code[0].source, "then shows the measured time to run"
    assert "parameters" in code[1].metadata.get("tags", []), "second code cell is tagged parameters"
    declared = runner.declared_parameters(ROOT / "notebooks" / f"{stem}.ipynb")
    assert {"profile", "results_path"} <= set(declared)
    assert f"notebooks/{stem}" in toc_files(), "every notebook is a chapter"


def test_every_chapter_in_the_toc_has_a_source():
    for page in toc_files():
        assert any((ROOT / f"{page}{ext}").exists() for ext in (".md", ".ipynb")), page


@pytest.mark.slow
@pytest.mark.parametrize("stem", NOTEBOOKS)
def test_notebook_smoke_run_wrote_its_results(smoke_book, stem):
    record = json.loads((smoke_book / "_build" / "executed" / "smoke" / f"{stem}.results.json").read_text())
    assert record["notebook"] == stem
    assert record["config"]["profile"] == "smoke"
    assert record["versions"]["retain_utils"]
    assert record["timings"]["notebook_seconds"] > 0 and record["machine"]["peak_rss_bytes"] > 2**20
    assert record["machine"]["dtype"] == "float32", "the book's one precision on every CPU"
    if stem in ("02_rl_vs_sft", "03_ablations", "04_iterative_sft"):  # the LLM chapters name their machine
        assert record["machine"]["weights"] in ("float32", "bfloat16") and record["machine"]["device"] == "cpu"
        assert record["machine"]["cpu_count"] >= 1 and isinstance(record["machine"]["cpu_flags"], list)


@pytest.mark.slow
def test_book_has_every_chapter_with_executed_outputs(smoke_book):
    html = smoke_book / "_build" / "html"
    for page in toc_files():
        assert (html / f"{page}.html").exists(), page
    for stem in NOTEBOOKS:
        text = (html / "notebooks" / f"{stem}.html").read_text()
        assert "cell_output" in text, f"{stem}: no executed output rendered"
        assert f"colab.research.google.com/github/retaining-by-doing/retaining-by-doing/blob/main/notebooks/{stem}.ipynb" in text
    assert "Retaining by doing" in (html / "book" / "bibliography.html").read_text()


@pytest.mark.slow
@pytest.mark.parametrize("stem", ["02_rl_vs_sft", "03_ablations", "04_iterative_sft"])
def test_llm_chapters_open_with_the_committed_campaign_then_the_demonstration(smoke_book, stem):
    """Each LLM chapter, as the book runs it (the repository's campaign), shows the campaign's answer computed from
    its committed files before its small live demonstration."""
    executed = (smoke_book / "_build" / "executed" / "smoke" / f"{stem}.ipynb").read_text()
    answer = chapter_answer(stem, campaign.CAMPAIGN_DIR)
    assert (answer.scope or answer.sentence)[:80] in executed
    assert executed.index("What the committed campaign shows") < executed.index("A small demonstration you can rerun")
