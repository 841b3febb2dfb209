"""The book's table of times: each notebook's wall time and its kernel's peak memory, per build, as markdown.

``python scripts/times_table.py _build/executed/quick --record --readme`` reads every ``*.results.json`` of the
build (the runner wrote ``timings.notebook_seconds`` and ``machine.peak_rss_bytes`` into each), merges them into
the committed ``results/book_times.json`` (one row per CPU kind, dtype, package version, profile and notebook)
and rewrites the README's table from that file. Without ``--record`` it only prints the build's table; without
paths, the recorded one. The chapters' "Time to run" lines read the same file (``chapters.book_times``).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from retain_utils.chapters import book_times

README = book_times.REPOSITORY / "README.md"
START, END = "<!-- times-table:start -->", "<!-- times-table:end -->"


def readme_block(rows: list[book_times.NotebookTime]) -> str:
    """The README's block between its markers: what the table is, the table, and whether the CPU kinds agree."""
    return (f"{START}\nEach notebook's wall time and its kernel's peak memory, executed by `make book` alone on the "
            "machine, written by the runner into the notebook's results file and collected in "
            "`results/book_times.json` (`scripts/times_table.py`); one build per CPU kind measured.\n\n"
            f"{book_times.table(rows)}\n\n{book_times.agreement_sentence(rows)}\n{END}")


def rewrite_readme(rows: list[book_times.NotebookTime], readme: Path = README) -> None:
    text = readme.read_text()
    if START not in text or END not in text:
        raise ValueError(f"{readme}: no {START} ... {END} markers to write the table between")
    readme.write_text(re.sub(re.escape(START) + ".*?" + re.escape(END), lambda _: readme_block(rows), text,
                             flags=re.S))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", type=Path, nargs="*", help="executed-notebook folders or results files")
    parser.add_argument("--record", action="store_true", help=f"merge them into {book_times.TIMES_FILE.name}")
    parser.add_argument("--readme", action="store_true", help="rewrite the README's table from the record")
    parser.add_argument("--times-file", type=Path, default=book_times.TIMES_FILE, help=argparse.SUPPRESS)
    parser.add_argument("--readme-file", type=Path, default=README, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        rows = [book_times.measured(f) for f in book_times.results_files(args.paths)] if args.paths else []
        if args.record:
            book_times.record(rows, args.times_file)
        if args.readme:
            rewrite_readme(book_times.read(args.times_file), args.readme_file)
        shown = rows if args.paths else book_times.read(args.times_file)
        print(book_times.table(shown))
        print(f"\n{book_times.agreement_sentence(book_times.read(args.times_file) if args.record else shown)}")
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
