"""scripts/times_table.py: the book's table of times and peak memory, read from results files."""

import dataclasses
import importlib.util
import json
import os
from pathlib import Path

import pytest

from retain_utils.chapters import book_times
from retain_utils.core import results

spec = importlib.util.spec_from_file_location("times_table", Path(__file__).parents[1] / "scripts" / "times_table.py")
times_table = importlib.util.module_from_spec(spec)
spec.loader.exec_module(times_table)


def executed(folder: Path, notebook: str, seconds: float, peak_gib: float, flags=("avx2", "avx512f")) -> Path:
    """A results file as the runner leaves it: the notebook's sections, then its footprint."""
    path = folder / f"{notebook}.results.json"
    results.save(path, config={"profile": folder.name}, timings={"total_s": 1.0})
    results.save_footprint(path, started=0.0)
    record = results.load(path)
    record["timings"]["notebook_seconds"] = seconds
    record["machine"].update(peak_rss_bytes=int(peak_gib * 2**30), cpu_flags=list(flags), dtype="float32")
    path.write_text(json.dumps(record))
    return path


def test_one_row_per_notebook_and_a_book_total_per_build(tmp_path, capsys):
    amx, epyc = tmp_path / "amx" / "quick", tmp_path / "epyc" / "quick"
    amx.mkdir(parents=True), epyc.mkdir(parents=True)
    executed(amx, "01_toy_kl", 90, 0.5, flags=("avx2", "avx512f", "amx_bf16"))
    executed(amx, "02_rl_vs_sft", 600, 4.3, flags=("avx2", "avx512f", "amx_bf16"))
    executed(epyc, "02_rl_vs_sft", 1200, 4.0)
    assert times_table.main([str(amx), str(epyc / "02_rl_vs_sft.results.json")]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    version, cores = results.library_versions()["retain_utils"], os.cpu_count()
    assert lines[-1] == "No build with a digest of its answers is recorded yet."
    assert lines[2:-2] == [
        f"| avx2 avx512f amx_bf16 | {cores} | float32 | {version} | quick | 01_toy_kl | 1.5 | 0.5 |",
        f"| avx2 avx512f amx_bf16 | {cores} | float32 | {version} | quick | 02_rl_vs_sft | 10.0 | 4.3 |",
        f"| avx2 avx512f amx_bf16 | {cores} | float32 | {version} | quick | **book** | **11.5** | **4.3** |",
        f"| avx2 avx512f | {cores} | float32 | {version} | quick | 02_rl_vs_sft | 20.0 | 4.0 |",
        f"| avx2 avx512f | {cores} | float32 | {version} | quick | **book** | **20.0** | **4.0** |"]


def test_a_build_is_recorded_and_the_readme_and_chapters_read_the_record(tmp_path, capsys):
    build = tmp_path / "quick"
    build.mkdir()
    executed(build, "02_rl_vs_sft", 600, 4.3)
    times, readme = tmp_path / "book_times.json", tmp_path / "README.md"
    readme.write_text("intro\n<!-- times-table:start -->\nold\n<!-- times-table:end -->\nrest\n")
    args = ["--times-file", str(times), "--readme-file", str(readme)]
    assert times_table.main([str(build), "--record", "--readme", *args]) == 0
    text = readme.read_text()
    assert text.startswith("intro\n<!-- times-table:start -->\nEach notebook's wall time") and "old" not in text
    assert "| 02_rl_vs_sft | 10.0 | 4.3 |" in text and text.endswith("<!-- times-table:end -->\nrest\n")
    executed(build, "02_rl_vs_sft", 540, 4.1)  # measured again on the same kind: the row is replaced
    executed(build, "01_toy_kl", 30, 0.4)
    assert times_table.main([str(build), "--record", *args]) == 0
    rows = book_times.read(times)
    assert [(r.notebook, r.seconds) for r in rows] == [("01_toy_kl", 30.0), ("02_rl_vs_sft", 540.0)]
    line = book_times.time_sentence("02_rl_vs_sft", path=times)
    assert line.startswith("**Time to run:** with the `quick` profile, 9.0 min and 4.1 GiB at peak")
    assert "30 s and 0.4 GiB" in book_times.time_sentence("01_toy_kl", path=times)
    assert "not yet measured" in book_times.time_sentence("03_ablations", path=times)
    newer = dataclasses.replace(rows[1], version="9.9.9", seconds=480.0)  # a newer package on the same CPU kind
    other = dataclasses.replace(rows[0], flags="avx2")                    # an older build on another kind
    book_times.record([other], times)
    assert [(r.flags, r.version) for r in book_times.record([newer], times)] == [
        ("avx2", rows[0].version), (rows[1].flags, "9.9.9")], "one current build per CPU kind"
    assert book_times.read(tmp_path / "absent.json") == []
    assert "repository's `results/book_times.json`" in book_times.time_sentence("01_toy_kl", path=tmp_path / "x.json")
    times.write_text('{"notebooks": [{"notebook": 1}]}')
    with pytest.raises(ValueError, match="book_times.json: not a record of notebook times"):
        book_times.read(times)
    (tmp_path / "plain.md").write_text("no markers")
    assert times_table.main(["--readme", "--times-file", str(tmp_path / "absent.json"),
                             "--readme-file", str(tmp_path / "plain.md")]) == 2
    assert "no <!-- times-table:start --> ... <!-- times-table:end --> markers" in capsys.readouterr().err


def test_a_results_file_without_the_runners_records_is_named(tmp_path, capsys):
    path = tmp_path / "03_ablations.results.json"
    results.save(path, config={"profile": "quick"})
    assert times_table.main([str(path)]) == 2
    assert "03_ablations.results.json: no timings.notebook_seconds or machine.peak_rss_bytes" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty: no .results.json files in this folder"):
        book_times.results_files([tmp_path / "empty"])


def test_save_footprint_merges_into_the_notebooks_own_sections(tmp_path):
    path = tmp_path / "n.results.json"
    assert results.save_footprint(path, started=0.0) == {} and not path.exists(), "no results file: none made"
    results.save(path, timings={"uni": 2.0}, machine={"device": "cpu", "weights": "float32"})
    record = results.save_footprint(path, started=results.time.time() - 3.0)
    assert record["timings"]["uni"] == 2.0 and 3.0 <= record["timings"]["notebook_seconds"] < 60
    assert record["machine"]["device"] == "cpu" and 0 < record["machine"]["peak_rss_bytes"] <= results.peak_rss_bytes()
    assert {"cpu_flags", "dtype"} <= set(record["machine"])


def test_the_answers_digest_ignores_timings_and_sees_one_changed_answer(tmp_path):
    def record(answer="a", seconds=1.0, kl=1.0):
        evals = [{"step": 0, "correct": {"mmlu": [1, 0]}, "answers": {"mmlu": answer}}]
        return {"baseline": [{"task": "mmlu", "n": 2, "n_correct": 1, "seconds": seconds, "tokens_per_s": 9 / seconds}],
                "runs": [{"variant": "SFT", "seed": 0, "target": "mmlu", "evals": evals, "kl": kl,
                          "seconds": seconds, "phase_seconds": {"train": seconds}}],
                "timings": {"notebook_seconds": seconds}, "machine": {"cpu_flags": ["avx2"]}}

    digest = book_times.answers_digest(record())
    assert len(digest) == 16
    assert book_times.answers_digest(record(seconds=7.0, kl=1.0 + 1e-12)) == digest, "times and float means: left out"
    assert book_times.answers_digest(record(answer="b")) != digest
    assert book_times.answers_digest({"runs": [], "timings": {}}) is None, "the toy: no answers"


def test_the_kinds_answers_are_compared_at_one_version(tmp_path):
    row = book_times.NotebookTime("avx2", 2, "float32", "1.0", "quick", "02_rl_vs_sft", 60.0, 2**30, answers="x")
    amx = dataclasses.replace(row, flags="avx2 avx512f amx_bf16")
    assert "02_rl_vs_sft at 1.0: recorded on one CPU kind only (avx2 (float32))" in book_times.agreement_sentence([row])
    assert "the same answers on every kind recorded" in book_times.agreement_sentence([row, amx])
    differ = book_times.agreement_sentence([row, dataclasses.replace(amx, answers="y")])
    assert "**answers differ** between kinds (avx2 (float32) vs avx2 avx512f amx_bf16 (float32))" in differ
    older = dataclasses.replace(amx, version="0.9", answers="y")
    assert "differ" not in book_times.agreement_sentence([row, older]), "another version is never compared"
    build = tmp_path / "quick"
    build.mkdir()
    path = executed(build, "02_rl_vs_sft", 600, 4.3)
    data = json.loads(path.read_text())
    data["runs"] = [{"variant": "SFT", "seed": 0, "evals": [{"step": 0, "correct": {"mmlu": [1]}}]}]
    path.write_text(json.dumps(data))
    assert book_times.measured(path).answers == book_times.answers_digest(data) is not None
