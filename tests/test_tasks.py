import json
from pathlib import Path

import pytest

from retain_utils.core.tasks import TASK_NAMES, Example, get_task
from retain_utils.core.tasks.countdown import CountdownTask, check, last_boxed, load_countdown, safe_eval, solve
from retain_utils.core.tasks.ifeval import (CHECKERS, DEFAULT_KINDS, GENERATED_KINDS, IFEvalTask, check_constraint,
                                            load_ifeval_rlvr)
from retain_utils.core.tasks.mmlu import MMLUTask, load_mmlu, open_answer_correct, parse_answer, parse_open

DATA = Path(__file__).parent / "data"


# ---------------------------------------------------------------------------------------------- registry / protocol


def test_get_task_lists_valid_names_and_options():
    with pytest.raises(ValueError, match="valid tasks: ifeval, mmlu, countdown"):
        get_task("gsm8k")
    with pytest.raises(ValueError, match="valid options:.*n_numbers"):
        get_task("countdown", digits=3)


@pytest.mark.parametrize("name", TASK_NAMES)
def test_protocol_splits_disjoint_deterministic_and_experts_pass(name):
    task = get_task(name)
    train = task.make_examples(200, seed=0, split="train")
    evals = task.make_examples(100, seed=0, split="eval")
    assert len(train) == 200 and len(evals) == 100
    assert all(isinstance(e, Example) and e.task == name for e in train + evals)
    assert not {e.prompt for e in train} & {e.prompt for e in evals}
    assert len({e.prompt for e in evals}) == 100  # held-out prompts are distinct
    assert task.make_examples(100, seed=0, split="eval") == evals  # same seed, same examples
    assert task.make_examples(100, seed=1, split="eval") != evals
    assert all(task.reward(e, e.expert) == 1.0 for e in train + evals)
    messages = task.messages(evals[0])
    assert messages[-1] == {"role": "user", "content": evals[0].prompt}
    # a wrong answer scores 0; garbage is unparsed, never an exception
    assert task.score(evals[0], "") == (0.0, False)
    assert task.score(evals[0], "\x00{{{\\boxed{") [0] == 0.0


def test_bad_split_and_n():
    task = get_task("countdown")
    with pytest.raises(ValueError, match="valid splits: train, eval"):
        task.make_examples(3, split="test")
    with pytest.raises(ValueError, match="n \\(number of examples\\)"):
        task.make_examples(-1)


def test_knowledge_eval_cannot_repeat_questions():
    task = get_task("mmlu")
    n = task.n_questions("eval")
    assert n >= 100
    with pytest.raises(ValueError, match=f"has only {n}"):
        task.make_examples(n + 1, split="eval")
    # training cycles through its questions (epochs)
    assert len(task.make_examples(task.n_questions("train") + 5, split="train")) == task.n_questions("train") + 5


# ---------------------------------------------------------------------------------------------- countdown


def test_safe_eval_arithmetic_and_rejections():
    assert safe_eval("(3 + 5) * 2 - 8 / 4") == (14, [3, 5, 2, 8, 4])
    assert safe_eval("7 / 2")[0] * 2 == 7  # exact fractions
    for bad in ["__import__('os')", "2 ** 10", "-3 + 4", "1.5 + 2", "x + 1", "3 / (2 - 2)", "abs(3)", "9" * 300]:
        with pytest.raises(ValueError):
            safe_eval(bad)


def test_countdown_check_requires_exact_numbers():
    assert check("(6 - 4) * 12", [4, 6, 12], 24)
    assert not check("6 * 4", [4, 6, 12], 24)  # 12 unused
    assert not check("(6 - 4) * 12 * 1", [4, 6, 12], 24)  # extra number
    assert not check("12 + 12", [4, 12], 24)  # 12 twice
    assert not check("(6 + 4) * 12", [4, 6, 12], 24)  # wrong value


def test_countdown_parse_boxed_and_fallback():
    task = CountdownTask()
    ex = Example("countdown", "", {"nums": [9, 32], "target": 41}, "")
    assert last_boxed(r"so \boxed{(1+2)} then \boxed{9 + {32}}") == "9 + {32}"
    assert task.reward(ex, r"The answer is \boxed{9 + 32}.") == 1.0
    assert task.reward(ex, r"$\boxed{32 + 9 = 41}$") == 1.0
    assert task.reward(ex, "9 + 32 = 41") == 1.0  # no box: the last equation's left side
    assert task.reward(ex, r"\boxed{41}") == 0.0
    assert task.reward(ex, "9 + 32 = 41\nThen 41 - 9 = 32") == 0.0  # the last equation counts
    assert task.score(ex, "I cannot do this.") == (0.0, False)


def test_countdown_an_equation_that_states_a_wrong_result_is_wrong():
    """"42 + 44 = 96" reaches the target 86 on its left side but states 96: the reply does not know the answer
    (the authors' checker, which parses the box, scores any '=' in it 0)."""
    task = CountdownTask()
    ex = Example("countdown", "", {"nums": [42, 44], "target": 86}, "")
    for text in ["42 + 44 = 96", "42 + 44 = 96\n\nThe final equation is: 42 + 44 = 96", r"\boxed{42 + 44 = 96}",
                 "42 + 44 = 86.5", r"\boxed{86 = 42 + 44 = 87}"]:
        assert task.reward(ex, text) == 0.0, text
    for text in ["42 + 44 = 96"]:
        assert not task.lenient(ex, text), text  # nor does it hold the right answer anywhere
    for text in ["42 + 44 = 86", "42 + 44 = 86.", "42 + 44 = 86.0", r"\boxed{42 + 44 = 86}", r"\boxed{86 = 44 + 42}",
                 "42 + 44 = 96, no: 42 + 44 = 86"]:
        assert task.reward(ex, text) == 1.0 and task.lenient(ex, text), text
    assert task.lenient(ex, "42 + 44 = 96, no: 42 + 44 = 86") and task.lenient(ex, "42 + 44 = 86 and 42 + 45 = 96")
    assert check("42 + 44 = 86", [42, 44], 86) and not check("42 + 44 = 86 = 85", [42, 44], 86)
    assert not check("42 + 44 = 40 + 46", [42, 44], 86)  # two sides with operators: no single answer


def test_solver_and_generator_difficulty_knobs():
    assert check(solve([4, 6, 1], 24), [4, 6, 1], 24)
    assert solve([1, 1], 5) is None
    task = CountdownTask(n_numbers=4, low=1, high=9, ops="+-*/")
    for e in task.make_examples(20, seed=3, split="train"):
        assert len(e.target["nums"]) == 4 and all(1 <= x <= 9 for x in e.target["nums"])
        assert 1 <= e.target["target"] <= task.max_target
        assert "+, -, * or /" in e.prompt
    with pytest.raises(ValueError, match="ops must be"):
        CountdownTask(ops="+^")
    with pytest.raises(ValueError, match="n_numbers"):
        CountdownTask(n_numbers=9)


def test_countdown_loader_and_task_from_file(tmp_path):
    rows = load_countdown(DATA / "countdown_sample.jsonl")
    assert rows[0] == ([4, 6, 1], 24) and len(rows) == 8
    task = CountdownTask(source=str(DATA / "countdown_sample.jsonl"))
    train = task.make_examples(10, split="train")
    assert all(task.reward(e, e.expert) == 1.0 for e in train)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"target": 3, "nums": [1, 2]}\n{"target": "x", "nums": [1, 2]}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl, line 2: 'target' must be an int"):
        load_countdown(bad)
    bad.write_text('{"target": 3, "nums": [1, 2]}\n{not json\n')
    with pytest.raises(ValueError, match=r"bad.jsonl, line 2: not valid JSON"):
        load_countdown(bad)


# ---------------------------------------------------------------------------------------------- ifeval


@pytest.mark.parametrize("gt, good, bad", [
    ({"func_name": "validate_lowercase"}, "all small here.", "Not all small."),
    ({"func_name": "validate_uppercase"}, "ALL BIG.", "ALL BIG but one."),
    ({"func_name": "validate_no_commas"}, "No commas here.", "One, two."),
    ({"func_name": "validate_quotation"}, '"Quoted text."', 'Quoted "text."'),
    ({"func_name": "validate_json_format"}, '```json\n{"a": 1}\n```', "{a: 1}"),
    ({"func_name": "validate_title"}, "<<My title>>\nText", "<My title>"),
    ({"func_name": "validate_end", "end_phrase": "Any other questions?"}, "Text. Any other questions?",
     "Any other questions? More text."),
    ({"func_name": "verify_keywords", "keyword_list": ["night", "Feather"]}, "A feather at Night.", "A night."),
    ({"func_name": "verify_keyword_frequency", "word": "sun", "N": 2}, "Sun and sun.", "Sun, sun, sun."),
    ({"func_name": "validate_forbidden_words", "forbidden_words": ["very"]}, "Everything is fine.", "Very fine."),
    ({"func_name": "verify_letter_frequency", "letter": "e", "N": 3}, "eee", "eeeE e"),
    ({"func_name": "validate_word_constraint", "N": 3, "quantifier": "at most"}, "one two three", "one two three four"),
    ({"func_name": "validate_word_constraint", "N": 3, "quantifier": "at least"}, "one two three", "one two"),
    ({"func_name": "verify_sentence_constraint", "N": 2, "quantifier": "at most"}, "One. Two!", "One. Two. Three?"),
    ({"func_name": "verify_paragraph_count", "N": 2}, "First.\n* * *\nSecond.", "First.\n* * *\n* * *\nSecond."),
    ({"func_name": "validate_paragraphs", "N": 2, "first_word": "then", "i": 2}, "A.\n\nThen b.", "A.\n\nSo b."),
    ({"func_name": "verify_postscript", "postscript_marker": "P.S."}, "Hi.\nP.S. bye", "Hi. P.S."),
    ({"func_name": "validate_placeholders", "N": 2}, "[name] at [place]", "[name] only"),
    ({"func_name": "verify_bullet_points", "N": 2}, "* one\n- two", "* one\n* two\n* three"),
    ({"func_name": "validate_highlighted_sections", "N": 2}, "*a* and *b*", "*a* only"),
    ({"func_name": "validate_sections", "N": 2, "section_splitter": "Section"}, "Section 1\na\nSECTION 2\nb",
     "Section 1 only"),
    ({"func_name": "validate_two_responses"}, "a\n******\nb", "a\n******\na"),
    ({"func_name": "validate_repeat_prompt", "original_prompt": "Say hi."}, "Say hi. Hi!", "Hi! Say hi."),
    ({"func_name": "validate_choice", "options": ["My answer is yes."]}, "My answer is yes.", "Yes."),
    ({"func_name": "validate_frequency_capital_words", "N": 2, "quantifier": "at least"}, "BIG and LOUD", "BIG"),
])
def test_ifeval_checkers(gt, good, bad):
    assert check_constraint(good, gt)
    assert not check_constraint(bad, gt)


def test_ifeval_covers_paper_constraints_and_rejects_unknown():
    assert len(CHECKERS) >= 24 and len(GENERATED_KINDS) >= 20
    assert len(DEFAULT_KINDS) >= 10 and set(DEFAULT_KINDS) <= set(GENERATED_KINDS)
    kinds = {e.target["func_name"] for e in IFEvalTask().make_examples(100, split="eval")}
    assert kinds == set(DEFAULT_KINDS)  # every calibrated kind is represented in an eval set
    with pytest.raises(ValueError, match="supported:"):
        check_constraint("x", {"func_name": "validate_haiku"})
    with pytest.raises(ValueError, match="valid kinds:"):
        IFEvalTask(kinds=("lowercase_please",))


def test_ifeval_generated_kinds_and_topic_split():
    for kind in GENERATED_KINDS:
        task = IFEvalTask(kinds=(kind,))
        examples = task.make_examples(8, seed=0, split="eval")
        assert all(e.target["func_name"] == kind and task.reward(e, e.expert) == 1.0 for e in examples)
    import re

    from retain_utils.core.tasks.ifeval import REQUESTS

    patterns = [re.compile(re.escape(r).replace(re.escape("{topic}"), "(.+?)") + " ") for r in REQUESTS]

    def topic(prompt):
        return next(m.group(1) for p in patterns if (m := p.match(prompt)))

    task = IFEvalTask()
    seen = {split: {topic(e.prompt) for e in task.make_examples(300, seed=0, split=split)}
            for split in ("train", "eval")}
    assert len(seen["eval"]) >= 10
    assert not seen["train"] & seen["eval"]  # held-out topics never appear in training prompts


def test_ifeval_rlvr_loader(tmp_path):
    with pytest.warns(UserWarning, match="skipped 1 rows"):
        rows = load_ifeval_rlvr(DATA / "ifeval_rlvr_sample.jsonl")
    assert len(rows) == 11 and rows[0][1]["func_name"] == "validate_lowercase"
    with pytest.warns(UserWarning):
        task = IFEvalTask(source=str(DATA / "ifeval_rlvr_sample.jsonl"))
    examples = task.make_examples(20, split="train")
    assert all(task.reward(e, e.expert) == 1.0 for e in examples)
    assert task.reward(examples[0], "") == 0.0
    bad = tmp_path / "rlvr.jsonl"
    bad.write_text(json.dumps({"messages": [{"role": "user", "content": "hi"}], "ground_truth": "{oops"}) + "\n")
    with pytest.raises(ValueError, match=r"rlvr.jsonl, line 1: 'ground_truth' is not valid JSON"):
        load_ifeval_rlvr(bad)


# ---------------------------------------------------------------------------------------------- knowledge


def test_parse_choice_and_open_answers():
    assert parse_answer("The answer is: C. Kigali") == "C"
    assert parse_answer("the answer is (B)") == "B"
    assert parse_answer("The answer is X.") is None
    assert parse_answer("I think A") is None
    assert parse_open("Sure.\nThe answer is: Paris.") == "Paris."
    assert parse_open("The answer is: ") is None
    # a sentence answer, without "answer is": what follows the first line's last " is "
    assert parse_open("The official language of Cuba is Spanish.\nIt is spoken by 11 million.") == "Spanish."
    assert parse_open("\nParis, of course.") == "Paris, of course."
    assert parse_open("   \n") is None
    task = MMLUTask()
    every = [x for split in ("train", "eval") for x in task.make_examples(task.n_questions(split), split=split)]
    e = next(x for x in every if x.prompt.startswith("What is the chemical symbol for hafnium?"))
    assert task.score(e, "The chemical symbol for hafnium is Hf.") == (1.0, True)
    assert task.score(e, "Hafnium is a metal.")[0] == 0.0
    assert open_answer_correct("Paris, France", ["Paris"], ["Rome", "Lyon", "Nice"])
    assert not open_answer_correct("Paris or Rome", ["Paris"], ["Rome", "Lyon", "Nice"])
    assert open_answer_correct("six", ["6"], ["4", "8", "10"]) and not open_answer_correct("16", ["6"], ["4"])
    assert open_answer_correct("Brasília", ["Brasilia"], ["Lima"])
    assert open_answer_correct("Mexico City", ["Mexico City"], ["Mexico", "Lima", "Quito"])


def test_bank_is_well_formed():
    questions = load_mmlu()
    assert len(questions) >= 300
    assert len({q.question for q in questions}) == len(questions)
    subjects = {q.subject for q in questions}
    assert {"geography", "science"} <= subjects


def test_knowledge_formats_and_option_shuffle():
    choice = MMLUTask(format="choice")
    examples = choice.make_examples(100, seed=0, split="eval")
    assert {e.target for e in examples} == set("ABCD")  # the answer's position is shuffled
    e = examples[0]
    assert choice.reward(e, f"The answer is: {e.target}") == 1.0
    assert choice.reward(e, "The answer is: " + next(x for x in "ABCD" if x != e.target)) == 0.0
    open_ = MMLUTask()
    e = open_.make_examples(1, seed=0, split="eval")[0]
    assert "Answer in the form 'The answer is: <answer>'" in e.prompt and "A." not in e.prompt
    assert open_.reward(e, f"The answer is: {e.target['correct'][0]}") == 1.0
    # scoring follows the example's format, whichever way the scoring task was configured
    assert open_.reward(examples[0], f"The answer is: {examples[0].target}") == 1.0
    with pytest.raises(ValueError, match="valid formats: open, choice"):
        MMLUTask(format="essay")


@pytest.mark.parametrize("name", ["mmlu_sample.jsonl", "mmlu_sample.parquet"])
def test_mmlu_loader(name):
    qs = load_mmlu(DATA / name)
    assert len(qs) == 8 and qs[0].choices[qs[0].answer] == "Oslo"
    task = MMLUTask(source=str(DATA / name))
    assert task.format == "choice"
    assert all(task.reward(e, e.expert) == 1.0 for e in task.make_examples(10, split="train"))
    with pytest.raises(ValueError, match="unknown subjects"):
        load_mmlu(DATA / name, subjects=("cooking",))


def test_mmlu_loader_names_bad_line(tmp_path):
    bad = tmp_path / "mmlu.jsonl"
    good = {"question": "Q?", "choices": ["a", "b", "c", "d"], "answer": 1}
    bad.write_text(json.dumps(good) + "\n" + json.dumps({**good, "choices": ["a", "b"]}) + "\n")
    with pytest.raises(ValueError, match=r"mmlu.jsonl, line 2: 'choices' must be a list of 4"):
        load_mmlu(bad)
    bad.write_text(json.dumps({**good, "answer": 7}) + "\n")
    with pytest.raises(ValueError, match=r"line 1: 'answer' must be 0-3 or A-D"):
        load_mmlu(bad)
    with pytest.raises(FileNotFoundError):
        load_mmlu(tmp_path / "missing.jsonl")


def test_mmlu_skips_duplicate_choices_with_a_warning(tmp_path):
    good = {"question": "Q?", "choices": ["a", "b", "c", "d"], "answer": 1}
    path = tmp_path / "mmlu.jsonl"
    rows = [good, {**good, "question": "R?", "choices": ["a", "a", "c", "d"]},
            {**good, "question": "S?", "choices": ["x", "y", "x ", "z"]}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.warns(UserWarning, match="skipped 2 questions whose choices repeat"):
        qs = load_mmlu(path)
    assert [q.question for q in qs] == ["Q?"]


def test_mmlu_parquet_with_aliases_column(tmp_path):
    import pandas as pd

    rows = [json.loads(line) for line in (Path(__file__).parents[1] / "src/retain_utils/data/knowledge_bank.jsonl")
            .read_text().splitlines() if line.strip()]
    path = tmp_path / "bank.parquet"
    pd.DataFrame(rows).to_parquet(path)  # aliases: arrays in some rows, None in others
    assert "aliases" in pd.read_parquet(path).columns
    qs, ref = load_mmlu(path), load_mmlu()
    assert qs == ref and any(q.aliases for q in qs)


def test_csv_refused_for_list_columns(tmp_path):
    import pandas as pd

    path = tmp_path / "mmlu.csv"
    pd.DataFrame([{"question": "Q?", "choices": ["a", "b", "c", "d"], "answer": 1}]).to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"mmlu.csv: column\(s\) choices hold lists, which CSV cannot store; save"):
        load_mmlu(path)
    path = tmp_path / "countdown.csv"
    pd.DataFrame([{"nums": [1, 2], "target": 3}]).to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"column\(s\) nums hold lists"):
        load_countdown(path)


def test_scorers_match_whole_words_and_numbers():
    options = {"func_name": "validate_choice", "options": ["yes", "no", "maybe"]}
    assert not check_constraint("I am not sure.", options)  # "no" inside "not" is not the option "no"
    assert check_constraint("My answer: no.", options) and check_constraint("maybe", options)
    assert not open_answer_correct("The answer is: 0.63 Celsius", ["0"], ["1", "2", "3"])
    assert open_answer_correct("It is 0.63.", ["0.63"], ["0.5"])
    assert parse_open("The answer is: 0.63 Celsius") == "0.63 Celsius"


# ---------------------------------------------------------------------------------------------- lenient score


def test_lenient_knowledge_choice_and_open():
    task = MMLUTask(format="choice")
    e = Example("mmlu", "Q?\nA. Suva\nB. Wellington\nC. Apia\nD. Nuku'alofa\n\nAnswer.", "A", "")
    for text in ["(A)", "A. Suva", "It is Suva.", "A", "Answer: A", "option A it is"]:
        assert task.lenient(e, text) and task.reward(e, text) == 0.0, text
    for text in ["The answer is B", "A or B", "(A) or (B)", "Wellington", "Suva or Apia", "", "Nothing here"]:
        assert not task.lenient(e, text), text
    assert task.lenient(e, "The answer is: A")  # the strict rule implies the lenient one
    open_ = MMLUTask()
    o = Example("mmlu", "What is the capital of Fiji?", {"correct": ["Suva"], "wrong": ["Apia", "Lima", "Rome"]}, "")
    text = "I am sure about this one.\nSuva, on Viti Levu."
    assert open_.lenient(o, text) and open_.reward(o, text) == 0.0  # strict reads the first line only
    assert not open_.lenient(o, "Suva or Apia") and not open_.lenient(o, "I do not know.")


def test_lenient_countdown_finds_any_expression():
    task = CountdownTask()
    e = Example("countdown", "", {"nums": [9, 32], "target": 41}, "")
    for text in ["(9 + 32) is 41", r"9 + 32 = 41, so \boxed{41}", "32+9 gives 41.", r"\boxed{32 + 9}",
                 "9 × 32 is too big; 32 + 9 = 41 works", "First 32 - 9 = 23. Then 9 + 32 = 41. Done."]:
        assert task.lenient(e, text), text
    for text in ["41", "9 * 32 = 288", "32 + 9 + 0 = 41", "9 + 9 + 23 = 41", r"\boxed{41}", "no idea"]:
        assert not task.lenient(e, text), text
    assert task.reward(e, r"32 + 9 = 41, so \boxed{41}") == 0.0  # strict: the box holds no expression


def test_lenient_ifeval_removes_wrappers():
    task = IFEvalTask()
    lower = Example("ifeval", "", {"func_name": "validate_lowercase"}, "")
    assert task.lenient(lower, "Sure, here is my answer:\nall lowercase words here.")
    assert task.reward(lower, "Sure, here is my answer:\nall lowercase words here.") == 0.0
    assert not task.lenient(lower, "Sure, here is my answer:\nNot lowercase.")
    json_ = Example("ifeval", "", {"func_name": "validate_json_format"}, "")
    text = 'Here is the JSON:\n```json\n{"a": 1}\n```'
    assert task.lenient(json_, text) and task.reward(json_, text) == 0.0
    quote = Example("ifeval", "", {"func_name": "validate_quotation"}, "")
    assert task.lenient(quote, '```\n"quoted"\n```') and not task.lenient(quote, "```\nnot quoted\n```")
    assert task.lenient(lower, "plain lowercase")  # the strict rule implies the lenient one


# ---------------------------------------------------------------------------------------------- expert answers


@pytest.mark.parametrize("name, options", [("ifeval", {"kinds": GENERATED_KINDS}), ("mmlu", {}),
                                           ("mmlu", {"format": "choice"}), ("countdown", {}),
                                           ("countdown", {"n_numbers": 4, "high": 20})])
def test_expert_answers_are_varied_natural_and_pass_the_strict_score(name, options):
    task = get_task(name, **options)
    examples = [e for split in ("train", "eval") for e in task.make_examples(150, seed=5, split=split)]
    assert all(task.reward(e, e.expert) == 1.0 for e in examples)
    openings = {e.expert.split()[0] for e in examples}
    assert len(openings) >= 5  # not one template
    assert not any("Note 1:" in e.expert or "Short answer:" in e.expert or "Step 1:" in e.expert for e in examples)
