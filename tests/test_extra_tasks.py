"""The forgetting probes besides the paper's tasks: arithmetic word problems, two-way knowledge questions and
antonyms."""

import time

import pytest

from retain_utils.core.tasks import ALL_TASK_NAMES, EXTRA_TASK_NAMES, TASK_NAMES, Example, get_task
from retain_utils.core.tasks.antonym import PAIR_LIST, parse_opposite
from retain_utils.core.tasks.arithmetic import last_number, parse_number


def test_registered_but_not_among_the_papers_tasks():
    assert TASK_NAMES == ("ifeval", "mmlu", "countdown")
    assert set(EXTRA_TASK_NAMES) == {"arithmetic", "knowledge_pair", "antonym"}
    assert ALL_TASK_NAMES == TASK_NAMES + EXTRA_TASK_NAMES
    with pytest.raises(ValueError, match="valid tasks: .*arithmetic, knowledge_pair, antonym"):
        get_task("sudoku")


@pytest.mark.parametrize("name", EXTRA_TASK_NAMES)
def test_protocol_splits_disjoint_deterministic_and_experts_pass(name):
    task = get_task(name)
    train = task.make_examples(200, seed=0, split="train")
    evals = task.make_examples(60, seed=0, split="eval")
    assert len(train) == 200 and len(evals) == 60 and all(e.task == name for e in train + evals)
    assert not {e.prompt for e in train} & {e.prompt for e in evals}
    assert len({e.prompt for e in evals}) == 60
    assert task.make_examples(60, seed=0, split="eval") == evals
    assert task.make_examples(60, seed=1, split="eval") != evals
    assert all(task.reward(e, e.expert) == 1.0 and task.lenient(e, e.expert) for e in train + evals)
    assert len({e.expert.splitlines()[0].split(",")[0] for e in train}) > 20  # worded in many ways
    assert task.score(evals[0], "") == (0.0, False)
    assert task.score(evals[0], "\x00{{{\\boxed{")[0] == 0.0


def _arith(answer):
    return Example("arithmetic", "Sam has 12 apples and gets 7 more. How many?", answer, "")


@pytest.mark.parametrize("text, strict, lenient", [
    ("The answer is: 19", True, True),
    ("12 + 7 = 19. The answer is 19.", True, True),
    ("**The answer is:** 19", True, True),
    ("The Answer Is: $19", True, True),
    ("The answer is: 18", False, False),
    ("12 + 7 = 19", True, True),  # no answer line: a reply ending in "= <number>" states it
    ("12 + 7 = 19, I think", False, True),  # ... and only when it ends there
    ("It is 19 apples", False, True),
    ("The answer is: 19 or 20", False, False),
    ("The answer is: 19. Check: 12 + 7 = 19", True, True),
    ("The answer is: 19.5", False, False),
    ("I think 19 apples, not 20", False, False),  # the last number is 20
    ("the answer is 1,9", False, False),
])
def test_arithmetic_strict_and_lenient_rules(text, strict, lenient):
    task = get_task("arithmetic")
    assert task.reward(_arith(19), text) == float(strict)
    assert task.lenient(_arith(19), text) == lenient
    assert parse_number("The answer is: 1,900") == 1900 and last_number("so -3") == -3


def _pair():
    return Example("knowledge_pair", "What is the capital of Fiji? Is it Suva or Apia?",
                   {"correct": ["Suva"], "wrong": ["Apia", "Lima", "Rome"]}, "")


@pytest.mark.parametrize("text, strict, lenient", [
    ("The answer is: Suva", True, True),
    ("Suva is the capital of Fiji.\nThe answer is: Suva.", True, True),
    ("The capital of Fiji is Suva.", True, True),  # no answer line: the first line after " is "
    ("The answer is: Suva or Apia", False, False),
    ("The answer is: Apia", False, False),
    ("Not Apia.\nSuva, on Viti Levu.", False, False),  # names a wrong option
    ("Well.\nIt has to be Suva.", False, True),  # strict reads the first line only
    ("", False, False),
])
def test_knowledge_pair_strict_and_lenient_rules(text, strict, lenient):
    task = get_task("knowledge_pair")
    assert task.reward(_pair(), text) == float(strict)
    assert task.lenient(_pair(), text) == lenient


def test_knowledge_pair_holds_out_the_knowledge_tasks_eval_questions():
    pair, knowledge = get_task("knowledge_pair"), get_task("mmlu")
    n = pair.n_questions("eval")
    assert n == knowledge.n_questions("eval") >= 60
    questions = {e.prompt.split("? Is it")[0] + "?" for e in pair.make_examples(n, split="eval")}
    held_out = {e.prompt.split(" Answer in the form")[0] for e in knowledge.make_examples(n, split="eval")}
    assert questions == held_out
    for e in pair.make_examples(50, split="eval"):
        first, second = e.prompt.split("? Is it ")[1].split("? Answer")[0].split(" or ")
        assert e.target["correct"][0] in (first, second) and first != second


def _opposite():
    return Example("antonym", "What is the opposite of 'hot'?", ["cold", "chilly", "cool", "freezing"], "")


@pytest.mark.parametrize("text, strict, lenient", [
    ("The answer is: cold", True, True),
    ("The answer is: **Cold**.", True, True),
    ("**The answer is:** 'cold'", True, True),
    ("The Answer Is: COLD", True, True),
    ("The answer is:\n\ncold", True, True),  # the word may stand on a later line
    ("The answer is: the cold", True, True),
    ("The answer is: freezing", True, True),  # an accepted alternative
    ("The opposite of \"hot\" is \"cold\".", True, True),  # no answer line: the word after the first " is "
    ("It is cold, not hot.", True, True),
    ("This one is easy.\nThe answer is: cold", True, True),
    ("The opposite of 'hot' is 'cold'.\nThe answer is: heat", False, True),  # the last answer line decides
    ("The answer is: cold or freezing", False, True),  # a hedge is no strict answer
    ("The answer is: cold/warm", False, True),
    ("The opposite of 'hot' is 'warm' or 'cold'.", False, True),
    ("Hot things burn.\nThe opposite: cold.", False, True),  # strict reads the first line with words only
    ("Cold.", False, True),
    ("The answer is: coldness", False, False),  # words are matched whole
    ("The answer is: hot", False, False),
    ("The opposite of hot is heat.", False, False),
    ("", False, False),
])
def test_antonym_strict_and_lenient_rules(text, strict, lenient):
    task = get_task("antonym")
    assert task.reward(_opposite(), text) == float(strict)
    assert task.lenient(_opposite(), text) == lenient


def test_antonym_parser_takes_linear_time():
    assert parse_opposite("The opposite of \"up\" is **Down**!") == "down" and parse_opposite("\n\n") is None
    for text in ["is " * 6000 + "or", "answer is " * 3000, "The answer is" + " :*" * 4000 + "cold",
                 "a " * 8000 + "is" + " \"" * 4000]:
        start = time.perf_counter()
        get_task("antonym").score(_opposite(), text)
        assert time.perf_counter() - start < 0.5


def test_antonym_pairs_are_split_whole_and_hold_out_150_questions():
    words = [p.word for pair in PAIR_LIST for p in pair]
    assert len(words) == len(set(words))  # each word is asked in one pair only
    assert all(a.answers[0] == b.word and b.answers[0] == a.word and a.key == b.key for a, b in PAIR_LIST)
    task = get_task("antonym")
    n = task.n_questions("eval")
    assert n >= 150 and n + task.n_questions("train") == len(words)
    evals = task.make_examples(n, seed=0, split="eval")
    assert len({e.prompt for e in evals}) == n and task.make_examples(150, seed=0, split="eval") == evals[:150]
    asked = {e.prompt.split("'")[1]: e.target for e in evals}
    assert all(asked[target[0]][0] == word for word, target in asked.items())  # both directions held out
    trained = {e.prompt.split("'")[1] for e in task.make_examples(400, seed=0, split="train")}
    assert not trained & (set(asked) | {t[0] for t in asked.values()})  # neither direction of a held-out pair
    with pytest.raises(ValueError, match=f"asked for n={n + 1} eval examples but the eval split has only {n}"):
        task.make_examples(n + 1, split="eval")


@pytest.mark.parametrize("name, options, message", [
    ("arithmetic", {"steps": 3}, r"steps must be in 1\.\.2"),
    ("arithmetic", {"low": 0}, r"low must be >= 1"),
    ("arithmetic", {"high": 1.5}, r"high must be an int"),
    ("arithmetic", {"ops": "^"}, r"ops must be a non-empty string"),
    ("arithmetic", {"low": 9, "high": 3}, r"need low <= high"),
    ("arithmetic", {"max_new_tokens": 0}, r"max_new_tokens must be >= 1"),
    ("arithmetic", {"wording": "poem"}, r"unknown wording 'poem'; valid: story, plain"),
    ("knowledge_pair", {"subjects": "geography"}, r"subjects must be a list or tuple of strings"),
    ("knowledge_pair", {"subjects": ["astrology"]}, r"unknown subjects"),
    ("knowledge_pair", {"max_new_tokens": 0}, r"max_new_tokens must be >= 1"),
    ("antonym", {"max_new_tokens": 0}, r"max_new_tokens must be >= 1"),
    ("antonym", {"system_prompt": 3}, r"system_prompt must be a string or None"),
    ("antonym", {"pairs": ["hot cold"]}, r"unknown option\(s\) pairs for task 'antonym'; valid options: "
                                         r"max_new_tokens, system_prompt"),
])
def test_bad_options_name_the_option(name, options, message):
    with pytest.raises(ValueError, match=message):
        get_task(name, **options)
