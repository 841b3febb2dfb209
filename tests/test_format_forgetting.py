"""Knowledge vs format: the split of a drop on hand-made evaluations."""

import pytest

from retain_utils.analysis import format_forgetting
from retain_utils.core import evaluation
from retain_utils.core.records import RunRecord


def _eval(step, correct, lenient, truncated, looping, unparsed, texts):
    return {"step": step, "correct": {"mmlu": correct, "ifeval": [1, 0]}, "lenient": {"mmlu": lenient, "ifeval": [1, 0]},
            "truncated": {"mmlu": truncated, "ifeval": [0, 0]}, "looping": {"mmlu": looping, "ifeval": [0, 0]},
            "unparsed": {"mmlu": unparsed, "ifeval": 0},
            "answers": {"mmlu": evaluation.pack_texts(texts), "ifeval": evaluation.pack_texts(["a", "b"])}}


def _record(evals):
    return RunRecord(variant="SFT", method="sft", target="ifeval", seed=0, gain=0.0, drop=0.0, gain_interval=None,
                     drop_interval=None, kl=0.0, accuracy_initial={}, accuracy_final={}, n_eval={}, trajectory=[],
                     status="finished", seconds=1.0, train_seconds=1.0, generated_tokens=0, config={}, evals=evals)


RECORD = _record([_eval(0, [1, 1, 1, 0], [1, 1, 1, 0], [0, 0, 0, 0], [0, 0, 0, 0], 0, ["A", "B", "C", "D"]),
                  _eval(12, [1, 0, 0, 0], [1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 0], 2, ["A", "B b b", "x x", "D"])])


def test_a_drop_splits_into_knowledge_and_format():
    (row,) = format_forgetting.split_table([RECORD]).to_dict("records")
    assert row["task"] == "mmlu"
    assert row["strict drop (pp)"] == 50.0  # 3 of 4 right -> 1 of 4
    assert row["knowledge drop (pp)"] == 25.0  # the right answer still somewhere in 2 of 4 (was 3)
    assert row["format drop (pp)"] == 25.0
    assert (row["unparsed at end (%)"], row["cut off at end (%)"], row["looping at end (%)"]) == (50.0, 50.0, 25.0)


def test_worst_answers_show_both_texts():
    lost = format_forgetting.worst_answers(RECORD, "mmlu")
    assert lost == [{"question": 1, "before": "B", "after": "B b b", "still right somewhere": True},
                    {"question": 2, "before": "C", "after": "x x", "still right somewhere": False}]


def test_records_without_lenient_results_are_refused():
    old = _record([{"step": 0, "correct": {"mmlu": [1], "ifeval": [1]}}, {"step": 1, "correct": {"mmlu": [0], "ifeval": [1]}}])
    with pytest.raises(ValueError, match="keep no lenient results for 'mmlu'"):
        format_forgetting.split_table([old])


def test_lost_answers_frame_reads_the_worst_task():
    frame = format_forgetting.lost_answers_frame([RECORD], n=1)
    assert frame.to_dict("records") == [{"variant": "SFT", "seed": 0, "task": "mmlu", "question": 1, "before": "B",
                                         "after": "B b b", "still right somewhere": True}]
