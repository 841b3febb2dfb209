"""The LLM chapters and the results chapter are thin and read like a book: the same skeleton, setup collapsed,
code cells that are short calls into the package, no block of code repeated across chapters."""

import nbformat
import pytest

from retain_utils.batch import runner

THIN = ["02_rl_vs_sft", "03_ablations", "04_iterative_sft", "05_results"]
SKELETON = ["## What you will see", "## The experiment", "## What this chapter showed"]


def cells(stem):
    return nbformat.read(runner.NOTEBOOK_DIR / f"{stem}.ipynb", as_version=4).cells


def logic(source: str) -> list[str]:
    return [line for line in source.splitlines()
            if line.strip() and not line.strip().startswith(("#", "import ", "from ", "%"))]


@pytest.mark.parametrize("stem", THIN)
def test_every_chapter_has_the_skeleton_in_order(stem):
    headings = [line for c in cells(stem) if c.cell_type == "markdown" for line in c.source.splitlines()
                if line.startswith("## ")]
    found = [h for h in headings if h in SKELETON]
    assert found == SKELETON, headings
    last = [c for c in cells(stem) if c.cell_type == "markdown"][-1]
    assert last.source.startswith("## What this chapter showed") and cells(stem)[-1].cell_type == "code", \
        "the chapter ends with its computed summary"


@pytest.mark.parametrize("stem", THIN)
def test_code_cells_are_short_calls_into_the_package(stem):
    code = [c for c in cells(stem) if c.cell_type == "code"]
    setup = code[2]
    assert "hide-input" in setup.metadata.get("tags", []), "the setup cell is collapsed in the book"
    assert "settings." in setup.source
    for c in code[2:]:
        assert "def " not in c.source and "lambda" not in c.source, c.source
        assert len(logic(c.source)) <= 15, c.source


def test_no_block_of_six_lines_repeats_across_the_chapters():
    """Six consecutive code lines (whitespace aside, parameters cells apart) appear in one chapter at most."""
    seen = {}
    for stem in THIN:
        lines = [line.strip() for c in cells(stem) if c.cell_type == "code" and "parameters" not in
                 c.metadata.get("tags", []) for line in logic(c.source)]
        for i in range(len(lines) - 5):
            block = tuple(lines[i:i + 6])
            assert seen.setdefault(block, stem) == stem, f"{stem} repeats {seen[block]}: {block}"


@pytest.mark.parametrize("stem", runner.notebook_names())
def test_papermill_reads_every_name_of_the_parameters_cell(stem):
    """A comment papermill cannot parse (e.g. one holding ``0 = never``) silently drops the parameter from
    ``run -p`` and ``sweep --grid``."""
    path = runner.NOTEBOOK_DIR / f"{stem}.ipynb"
    cell = next(c for c in cells(stem) if "parameters" in c.metadata.get("tags", []))
    names = {line.split("=")[0].strip() for line in cell.source.splitlines() if "=" in line and not line.startswith("#")}
    assert names <= set(runner.declared_parameters(path))
