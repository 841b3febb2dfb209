"""The commands the README and the book's prose tell a reader to type name notebooks, profiles and parameters
that exist: each is checked the way the command line checks it, without running anything."""

import ast
import re
import shlex
from pathlib import Path

import pytest

from retain_utils.batch import runner, sweep
from retain_utils.__main__ import _params, build_parser

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "book").glob("*.md"))]
COMMAND = re.compile(r"python -m retain_utils (run|sweep) [^`]*")
PLACEHOLDER = re.compile(r"retain_utils (run|sweep) [A-Z]+\b")  # `run NOTEBOOK` in prose


def documented_commands() -> list[tuple[str, str]]:
    found = []
    for doc in DOCS:
        for line in doc.read_text().splitlines():
            for match in COMMAND.finditer(line):
                if not PLACEHOLDER.search(match.group(0)):
                    found.append((f"{doc.name}: {match.group(0).strip()}", match.group(0)))
    return found


def check(command: str) -> None:
    """Parse ``command`` with the command line's own parser, then raise ValueError as ``run`` / ``sweep`` would
    before any notebook starts (argparse itself exits on an unknown flag or profile)."""
    args = build_parser().parse_args(shlex.split(command, comments=True)[3:])
    source = runner.find_notebook(args.notebook)
    if args.command == "run":
        # a folder under $PWD is one the reader's earlier command (the sweep) creates: any folder stands in for it
        params = {k: str(ROOT) if str(v).startswith("$PWD/") else v for k, v in _params(args.param).items()}
        runner.check_parameters(source, params, args.profile)  # names, types and ranges
    else:
        sweep.check_grid(source, args.profile, sweep.parse_grid(args.grid))


SNIPPET = re.compile(r'run_notebook\("(\w+)", profile="(\w+)", params=(\{[^}]*\})\)')


def documented_snippets() -> list[tuple[str, str, str]]:
    """``runner.run_notebook("NB", profile="P", params={...})`` calls shown in the docs."""
    return [m.groups() for doc in DOCS for m in SNIPPET.finditer(doc.read_text())]


def test_every_documented_run_notebook_call_is_valid():
    snippets = documented_snippets()
    assert snippets, "book/running.md shows a run_notebook call"
    for notebook, profile, params in snippets:
        runner.check_parameters(runner.find_notebook(notebook), ast.literal_eval(params), profile)


def test_the_docs_have_commands_to_check():
    kinds = {command.split()[3] for _, command in documented_commands()}
    assert kinds == {"run", "sweep"}


@pytest.mark.parametrize("where,command", documented_commands(), ids=[w for w, _ in documented_commands()])
def test_every_documented_command_is_valid(where, command):
    check(command)


def test_the_check_catches_an_undeclared_parameter():
    with pytest.raises(ValueError, match="declares no parameter 'seeds'"):
        check("python -m retain_utils run 01_toy_kl --profile smoke -p seeds 3")
    with pytest.raises(ValueError, match="n_seeds must be an int >= 2"):
        check("python -m retain_utils run 01_toy_kl --profile smoke -p n_seeds 1")
    with pytest.raises(ValueError, match="declares no parameter 'method'"):
        check("python -m retain_utils sweep 02_rl_vs_sft --profile full --grid method=sft,grpo")
