"""A probe that asks the target's own questions (knowledge_pair for mmlu) is transfer, not forgetting: every drop
leaves it out, and older records are read under that rule."""

import copy
import math

import pytest

from retain_utils.analysis import format_forgetting, forgetting
from retain_utils.core import evaluation
from retain_utils.core.records import RunRecord
from retain_utils.core.tasks import RELATED, TASKS, forgetting_tasks, transfer_tasks

ALL = ["ifeval", "mmlu", "countdown", "arithmetic", "knowledge_pair"]


def test_only_knowledge_pair_and_mmlu_are_related():
    assert forgetting_tasks(ALL, "mmlu") == ["ifeval", "countdown", "arithmetic"]
    assert transfer_tasks(ALL, "mmlu") == ["knowledge_pair"]
    assert forgetting_tasks(ALL, "knowledge_pair") == ["ifeval", "countdown", "arithmetic"]
    assert forgetting_tasks(ALL, "countdown") == ["ifeval", "mmlu", "arithmetic", "knowledge_pair"]
    assert transfer_tasks(ALL, "ifeval") == [] and transfer_tasks(["mmlu", "ifeval"], "mmlu") == []
    assert all(t in TASKS and all(r in TASKS for r in rs) for t, rs in RELATED.items())
    assert all(t in RELATED[r] for t, rs in RELATED.items() for r in rs)  # symmetric


def test_drop_leaves_out_the_related_probe_and_transfer_reports_it():
    initial = {"mmlu": 0.4, "ifeval": 0.5, "countdown": 0.4, "knowledge_pair": 0.5}
    final = {"mmlu": 0.5, "ifeval": 0.3, "countdown": 0.4, "knowledge_pair": 0.8}
    assert evaluation.drop(initial, final, "mmlu") == pytest.approx(10.0)  # (20 + 0) / 2, not (20 + 0 - 30) / 3
    assert evaluation.transfer(initial, final, "mmlu") == pytest.approx(30.0)
    assert evaluation.transfer(initial, final, "ifeval") is None
    assert evaluation.drop(initial, final, "ifeval") == pytest.approx((0.0 + 0.0 - 30.0 - 10.0) / 3)
    with pytest.raises(ValueError, match="probes that ask its own questions \\(knowledge_pair\\)"):
        evaluation.drop({"mmlu": 0.4, "knowledge_pair": 0.5}, {"mmlu": 0.5, "knowledge_pair": 0.5}, "mmlu")


def _scores(correct: dict) -> dict:
    return {t: {"accuracy": sum(c) / len(c), "correct": c} for t, c in correct.items()}


def test_the_paired_interval_of_a_drop_ignores_a_related_probe_scored_last():
    first = {"mmlu": [0, 0, 1, 0, 1, 0], "ifeval": [1, 1, 0, 1, 1, 0], "countdown": [1, 0, 1, 1, 0, 0]}
    last = {"mmlu": [1, 0, 1, 1, 1, 0], "ifeval": [0, 1, 0, 0, 1, 0], "countdown": [1, 0, 0, 1, 0, 0]}
    plain = evaluation.paired_intervals(_scores(first), _scores(last), "mmlu")
    with_probe = evaluation.paired_intervals(_scores({**first, "knowledge_pair": [0, 0, 0, 0, 0, 0]}),
                                             _scores({**last, "knowledge_pair": [1, 1, 1, 1, 1, 1]}), "mmlu")
    assert with_probe == plain


def _evals(kp_first, kp_last):
    base = {"mmlu": [0, 1, 0, 0], "ifeval": [1, 1, 0, 0], "countdown": [1, 1, 1, 0]}
    end = {"mmlu": [1, 1, 1, 0], "ifeval": [1, 0, 0, 0], "countdown": [1, 1, 0, 0]}
    out = []
    for step, correct, kp in ((0, base, kp_first), (10, end, kp_last)):
        c = {**correct, "knowledge_pair": kp}
        out.append({"step": step, "correct": c, "lenient": c, "truncated": {t: [0] * 4 for t in c},
                    "looping": {t: [0] * 4 for t in c}, "unparsed": {t: 0 for t in c}})
    return out


def test_matched_gain_and_the_knowledge_format_split_leave_out_the_related_probe():
    evals = _evals([0, 0, 0, 0], [1, 1, 1, 1])
    reading = forgetting.read_end([e["correct"] for e in evals], "mmlu")
    assert sorted(reading.per_question) == ["countdown", "ifeval"]
    assert reading.drop == pytest.approx(25.0)  # ifeval 50 -> 25, countdown 75 -> 50
    record = RunRecord(variant="SFT", method="sft", target="mmlu", seed=0, gain=50.0, drop=25.0, gain_interval=None,
                       drop_interval=None, kl=0.0, accuracy_initial={}, accuracy_final={}, n_eval={}, trajectory=[],
                       status="finished", seconds=1.0, train_seconds=1.0, generated_tokens=0, config={}, evals=evals)
    assert sorted(format_forgetting.split_table([record])["task"]) == ["countdown", "ifeval"]


def _older_record(target: str) -> dict:
    """A record as written before drops left out related probes: its drop averaged all four other tasks."""
    initial = {"ifeval": 50.0, "mmlu": 40.0, "countdown": 40.0, "knowledge_pair": 50.0}
    final = {"ifeval": 30.0, "mmlu": 50.0, "countdown": 40.0, "knowledge_pair": 80.0}
    others = [t for t in initial if t != target]
    old_drop = sum(initial[t] - final[t] for t in others) / len(others)
    evals = _evals([0, 0, 1, 1], [1, 1, 1, 1])
    return {"variant": "SFT", "method": "sft", "target": target, "seed": 0, "gain": 10.0, "drop": old_drop,
            "gain_interval": [0.0, 20.0], "drop_interval": [-1.0, 1.0], "kl": 1.0, "accuracy_initial": initial,
            "accuracy_final": final, "n_eval": {t: 4 for t in initial},
            "trajectory": [{"step": 0, "gain": 0.0, "drop": 0.0, "accuracy": initial},
                           {"step": 10, "gain": 10.0, "drop": old_drop, "accuracy": final}],
            "status": "finished", "seconds": 1.0, "train_seconds": 1.0, "generated_tokens": 0, "config": {},
            "evals": evals, "longer_budget": {"factor": 4, "gain": 10.0, "drop": old_drop, "accuracy_initial": initial,
                                              "accuracy_final": final}}


def test_an_older_mmlu_record_is_read_under_the_rule():
    raw = _older_record("mmlu")
    assert raw["drop"] == pytest.approx(-10 / 3)  # ifeval's 20 pp loss hidden by knowledge_pair's 30 pp rise
    kept = copy.deepcopy(raw)
    record = RunRecord.from_dict(raw)
    assert raw == kept  # the file's dict is not changed in place
    assert record.drop == pytest.approx(10.0) and record.transfer == pytest.approx(30.0)
    assert record.trajectory[-1]["drop"] == pytest.approx(10.0) and record.trajectory[0]["drop"] == 0.0
    assert record.longer_budget["drop"] == pytest.approx(10.0) and record.longer_budget["transfer"] == 30.0
    fresh = evaluation.paired_intervals(*(_scores({t: c for t, c in e["correct"].items()}) for e in raw["evals"]),
                                        "mmlu")
    assert record.drop_interval == tuple(fresh["drop"]) and record.drop_interval != (-1.0, 1.0)
    again = RunRecord.from_dict(record.to_dict())  # a record written under the rule is read as it is
    assert again.drop == record.drop and again.transfer == record.transfer


def test_an_older_record_without_a_related_probe_is_read_unchanged():
    raw = _older_record("ifeval")
    record = RunRecord.from_dict(raw)
    assert record.drop == raw["drop"] and record.transfer is None
    assert record.drop_interval == (-1.0, 1.0) and record.longer_budget == raw["longer_budget"]
    assert math.isnan(RunRecord.from_dict({**raw, "drop": None}).drop)
