"""Bad task options and data files are refused with a message naming the option or file:line, and no
verifier or parser takes more than linear time on adversarial answers."""

import json
import time

import pytest

from retain_utils.core.tasks import get_task
from retain_utils.core.tasks.base import split_of
from retain_utils.core.tasks.countdown import CountdownTask, last_boxed, last_equation, load_countdown, safe_eval
from retain_utils.core.tasks.ifeval import CHECKERS, check_constraint, load_ifeval_rlvr
from retain_utils.core.tasks.mmlu import MMLUTask, load_mmlu, parse_answer, parse_open

# ---------------------------------------------------------------------------------------------- adversarial answers

N = 12_000
ADVERSARIAL = {
    "spaces": " " * N,
    "newlines": "\n" * N,
    "mixed whitespace": " \n\t\r" * (N // 4),
    "unclosed fence": "```" + " " * N + "x",
    "json fence and whitespace": "```json" + " " * N,
    "json fence, newlines": "```json\n" + "\n " * (N // 2) + "```x",
    "deep braces": "```json\n" + "{" * N,
    "deep brackets": "[" * N,
    "deep parentheses": "(" * N + "1" + ")" * N,
    "deep parentheses in box": "\\boxed{" + "(" * N + "1 + 2" + ")" * N + "}",
    "unclosed box": "\\boxed{" + "{" * N,
    "many boxes": "\\boxed{1 + 2}" * (N // 12),
    "answer is, then spaces": "answer is" + " " * N + "x",
    "answer is, colons and spaces": "The answer is" + " :*(" * (N // 4) + "x",
    "answer is option, spaces": "The answer is option" + " " * N + "x",
    "repeated answer is": "answer is " * (N // 10),
    "repeated hedges": "The answer is: A or " * (N // 20),
    "operator then spaces": "1 + " + " " * N + "x = 3",
    "repeated equals": "1=" * (N // 2),
    "repeated equations": "9 + 32 = 41 " * (N // 12),
    "digits and spaces": "1 " * (N // 2) + "= 5",
    "dividers": "* * *" * (N // 5),
    "divider spaces": " * * * " + " " * N + "x",
    "titles": "<<" * (N // 2),
    "placeholders": "[" * N + "x",
    "stars": "*" * N,
    "bullets": "\n * " * (N // 4),
    "sections": "Section" + " " * N + "x",
    "abbreviations": "Mr. " * (N // 4),
    "initials": "A." * (N // 2),
    "ellipses": "..." * (N // 3),
    "separators": "******" * (N // 6),
    "capitals": "A" * N + "a",
    "capitals and hyphens": "A-" * (N // 2),
    "capitals and dots": "A." * (N // 2) + "a",
    "words": "word " * (N // 5),
    "postscript": "P.S." * (N // 4),
    "null and unicode": "\x00\u2028\u0130" * (N // 3),
}

# one valid ground truth per constraint kind, so every checker is run
GROUND_TRUTHS = {
    "validate_end": {"end_phrase": "Any other questions?"},
    "verify_keywords": {"keyword_list": ["light", "water"]},
    "verify_keyword_frequency": {"word": "light", "N": 2},
    "validate_forbidden_words": {"forbidden_words": ["very", "good"]},
    "verify_letter_frequency": {"letter": "a", "N": 5},
    "validate_word_constraint": {"N": 40, "quantifier": "at least"},
    "verify_sentence_constraint": {"N": 3, "quantifier": "at most"},
    "verify_paragraph_count": {"N": 2},
    "validate_paragraphs": {"N": 2, "first_word": "then", "i": 2},
    "verify_postscript": {"postscript_marker": "P.S."},
    "validate_placeholders": {"N": 2},
    "verify_bullet_points": {"N": 3},
    "validate_highlighted_sections": {"N": 2},
    "validate_sections": {"N": 2, "section_splitter": "Section"},
    "validate_repeat_prompt": {"original_prompt": "Say hi."},
    "validate_choice": {"options": ["yes", "no", "maybe"]},
    "validate_frequency_capital_words": {"N": 3, "quantifier": "at least"},
}


def _scorers():
    """(label, function of an answer) for every verifier and parser."""
    out = [(f"ifeval:{kind}", lambda t, k=kind: check_constraint(t, {"func_name": k, **GROUND_TRUTHS.get(k, {})}))
           for kind in CHECKERS]
    out += [("parse_answer", parse_answer), ("parse_open", parse_open), ("last_boxed", last_boxed),
            ("last_equation", last_equation)]
    tasks = [get_task("ifeval"), MMLUTask(), MMLUTask(format="choice"), CountdownTask(), CountdownTask(n_numbers=4),
             get_task("arithmetic", steps=2), get_task("knowledge_pair"), get_task("antonym")]
    for task in tasks:
        for example in task.make_examples(3, seed=0, split="eval"):
            out.append((f"{task.name}.score", lambda t, task=task, e=example: task.score(e, t)))
            if hasattr(task, "lenient"):
                out.append((f"{task.name}.lenient", lambda t, task=task, e=example: task.lenient(e, t)))
    return out


SCORERS = _scorers()


@pytest.mark.parametrize("name", list(ADVERSARIAL))
def test_verifiers_and_parsers_are_linear_on_adversarial_answers(name):
    text = ADVERSARIAL[name]
    slow = []
    for label, scorer in SCORERS:
        start = time.process_time()  # CPU time: other processes on the machine do not count
        try:
            scorer(text)
        except ValueError:  # a parser may refuse an answer; it must do so quickly
            pass
        spent = time.process_time() - start
        if spent > 0.5:
            slow.append(f"{label}: {spent:.2f} s")
    assert not slow, f"{name}: " + "; ".join(slow)


def test_safe_eval_refuses_deep_nesting_quickly():
    for expr in ["(" * 150 + "1" + ")" * 150, "-" * 199 + "1", "1" + "+1" * 99]:
        start = time.process_time()
        try:
            safe_eval(expr)
        except ValueError:
            pass
        assert time.process_time() - start < 0.5


# ---------------------------------------------------------------------------------------------- bad options

@pytest.mark.parametrize("name, options, message", [
    ("countdown", {"low": 0, "high": 0}, r"no countdown problem with a target in 1\.\.100"),
    ("countdown", {"max_target": 1, "ops": "*", "low": 2}, r"no countdown problem .* ops '\*'"),
    ("countdown", {"n_numbers": 2.5}, r"n_numbers must be an int, got 2\.5"),
    ("countdown", {"n_numbers": True}, r"n_numbers must be an int"),
    ("countdown", {"n_numbers": 9}, r"n_numbers must be in 2\.\.6"),
    ("countdown", {"low": -1}, r"low must be >= 0"),
    ("countdown", {"high": 5.0}, r"high must be an int"),
    ("countdown", {"low": 9, "high": 3}, r"need low <= high"),
    ("countdown", {"max_target": 0}, r"max_target must be >= 1"),
    ("countdown", {"ops": ["+", "-"]}, r"ops must be a non-empty string"),
    ("countdown", {"ops": ""}, r"ops must be a non-empty string"),
    ("mmlu", {"max_new_tokens": 0}, r"max_new_tokens must be >= 1, got 0"),
    ("mmlu", {"max_new_tokens": 3.0}, r"max_new_tokens must be an int"),
    ("mmlu", {"subjects": "capitals"}, r"subjects must be a list or tuple of strings, got 'capitals'"),
    ("mmlu", {"subjects": ["astrology"]}, r"unknown subjects \['astrology'\]"),
    ("mmlu", {"format": ["open"]}, r"unknown format"),
    ("mmlu", {"system_prompt": 5}, r"system_prompt must be a string or None"),
    ("ifeval", {"kinds": "validate_lowercase"}, r"kinds must be a list or tuple of strings"),
    ("ifeval", {"kinds": ()}, r"valid kinds:"),
    ("ifeval", {"max_new_tokens": -3}, r"max_new_tokens must be >= 1"),
    ("ifeval", {"source": 7}, r"source must be a file path"),
])
def test_bad_task_options_are_refused_naming_the_option(name, options, message):
    start = time.process_time()
    with pytest.raises(ValueError, match=message):
        get_task(name, **options)
    assert time.process_time() - start < 2  # refused up front, not after a long search


# ---------------------------------------------------------------------------------------------- bad files

GOOD_MMLU = {"question": "Q?", "choices": ["a", "b", "c", "d"], "answer": 1}
_IF_NONE = {k: None for k in ("N", "quantifier", "end_phrase", "keyword_list", "word", "forbidden_words", "letter",
                              "i", "first_word", "postscript_marker", "options", "section_splitter",
                              "original_prompt")}


def _ifeval_row(**gt):
    return {"messages": [{"role": "user", "content": "Write."}], "ground_truth": json.dumps({**_IF_NONE, **gt})}


@pytest.mark.parametrize("loader, rows, message", [
    (load_countdown, [{"nums": [1, 2], "target": 3}, {"nums": list(range(1, 10)), "target": 5}],
     r"line 2: 9 numbers; the exhaustive solver takes at most 6"),
    (load_countdown, [{"nums": [True, 2], "target": 3}], r"line 1: 'nums' must be a list of 2 or more"),
    (load_countdown, [{"nums": [1, 2], "target": True}], r"line 1: 'target' must be an int"),
    (load_countdown, [{"nums": [3], "target": 3}], r"line 1: 'nums' must be a list of 2 or more"),
    (load_mmlu, [GOOD_MMLU, {**GOOD_MMLU, "answer": True}], r"line 2: 'answer' must be 0-3 or A-D, got True"),
    (load_mmlu, [{**GOOD_MMLU, "answer": 1.0}], r"line 1: 'answer' must be 0-3 or A-D"),
    (load_ifeval_rlvr, [_ifeval_row(func_name="verify_keyword_frequency", word="sun")],
     r"line 1: verify_keyword_frequency: 'N' must be a non-negative int, got None"),
    (load_ifeval_rlvr, [_ifeval_row(func_name="verify_keyword_frequency", word="sun", N="3")],
     r"line 1: verify_keyword_frequency: 'N' must be a non-negative int, got '3'"),
    (load_ifeval_rlvr, [_ifeval_row(func_name="validate_lowercase"),
                        _ifeval_row(func_name="validate_word_constraint", N=30, quantifier="roughly")],
     r"line 2: validate_word_constraint: 'quantifier' must be one of at least, at most, around, less than"),
    (load_ifeval_rlvr, [_ifeval_row(func_name="validate_choice", options="yes")],
     r"line 1: validate_choice: 'options' must be a list of non-empty strings"),
    (load_ifeval_rlvr, [_ifeval_row(func_name="validate_lowercase", N=3)],
     r"line 1: validate_lowercase takes no arguments, got also N"),
    (load_ifeval_rlvr, [_ifeval_row(func_name="validate_haiku")], r"line 1: unknown constraint 'validate_haiku'"),
])
def test_bad_rows_are_refused_naming_file_and_line(tmp_path, loader, rows, message):
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(ValueError, match=r"rows\.jsonl, " + message):
        loader(path)


@pytest.mark.parametrize("loader", [load_countdown, load_mmlu, load_ifeval_rlvr])
def test_undecodable_and_invalid_files_name_file_and_line(tmp_path, loader):
    latin = tmp_path / "latin.jsonl"
    latin.write_bytes(b'{"question": "ok"}\n{"question": "caf\xe9"}\n')
    with pytest.raises(ValueError, match=r"latin\.jsonl, line 2: not UTF-8 text"):
        loader(latin)
    broken = tmp_path / "broken.json"
    broken.write_text('[\n{"nums": [1, 2],\n "target": 3\n')
    with pytest.raises(ValueError, match=r"broken\.json, line \d+: not valid JSON"):
        loader(broken)


def test_file_row_without_solution_names_its_line(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text(json.dumps({"nums": [1, 2], "target": 3}) + "\n" + json.dumps({"nums": [1, 1], "target": 50}) + "\n")
    task = CountdownTask(source=str(path))
    split = split_of("[1, 1]->50")
    with pytest.raises(ValueError, match=r"rows\.jsonl, line 2: countdown problem \[1, 1\] -> 50 has no solution"):
        for seed in range(20):  # the unsolvable row is drawn within a few seeds
            task.make_examples(1, seed=seed, split=split)


def test_check_constraint_refuses_malformed_ground_truth():
    with pytest.raises(ValueError, match="'N' must be a non-negative int"):
        check_constraint("x", {"func_name": "verify_bullet_points", "N": True})
