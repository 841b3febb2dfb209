"""Choosing the calibrated learning rate: the rule on hand-made run records."""

import math

import pytest

from retain_utils.chapters import calibration
from retain_utils.core.records import RunRecord


def _record(lr, seed, gain, flags=(), method="grpo", target="ifeval"):
    return RunRecord(variant="GRPO", method=method, target=target, seed=seed, gain=gain, drop=1.0,
                     gain_interval=None, drop_interval=None, kl=0.1, accuracy_initial={}, accuracy_final={},
                     n_eval={}, trajectory=[], status="finished", seconds=1.0, train_seconds=1.0,
                     generated_tokens=0, config={"lr": lr, "steps": 60}, flags=list(flags))


def test_summary_gives_the_seed_level_interval():
    rows = calibration.summary([_record(1e-5, s, g) for s, g in zip((100, 101, 102), (9.0, 12.0, 15.0))])
    (s,) = rows
    assert s.gain_mean == pytest.approx(12.0) and s.seeds == (100, 101, 102)
    half = 4.302652729911275 * 3.0 / math.sqrt(3)  # t_{0.975, 2} x sd / sqrt(3), sd = 3
    assert (s.gain_low, s.gain_high) == pytest.approx((12.0 - half, 12.0 + half))
    assert s.learned  # 12 pp >= 10, and the interval's low end 12 - 7.45 is above zero

def test_choice_skips_flagged_settings_and_says_why():
    records = ([_record(5e-6, s, 2.0) for s in (100, 101, 102)]
               + [_record(2e-5, s, 12.0 + s - 101) for s in (100, 101, 102)]
               + [_record(4e-5, s, 30.0, flags=["no_signal"] if s == 101 else []) for s in (100, 101, 102)]
               + [_record(1e-4, s, 0.0, method="sft") for s in (100, 101)])
    choices = {c.method: c for c in calibration.choose(calibration.summary(records))}
    assert choices["grpo"].lr == 2e-5 and choices["grpo"].learned
    assert "flagged (excluded): 4e-05" in choices["grpo"].reason and "tried 5e-06, 2e-05, 4e-05" in choices["grpo"].reason
    assert choices["sft"].lr == 1e-4 and not choices["sft"].learned and "below the 10 pp bar" in choices["sft"].reason


def test_no_qualifying_setting_is_said(tmp_path):
    settings = calibration.summary([_record(4e-5, 100, 30.0, flags=["looping:mmlu"])])
    (choice,) = calibration.choose(settings)
    assert choice.lr is None and "none qualifies" in choice.reason
    path = tmp_path / "choice.json"
    calibration.write_choice(path, settings, [choice])
    assert calibration.read_choice(path) == [choice]
    path.write_text('{"choices": [')
    with pytest.raises(ValueError, match="choice.json: not a calibration choice file"):
        calibration.read_choice(path)


def test_status_and_table_of_an_empty_and_a_partial_calibration(tmp_path):
    assert calibration.load(tmp_path / "none") == []
    assert "No calibration run is committed yet" in calibration.status_sentence([], [])
    settings = calibration.summary([_record(2e-5, 100, 12.0)])
    text = calibration.status_sentence(settings, calibration.choose(settings))
    assert "1 setting(s) over 1 run(s)" in text and "provisional" in text
    frame = calibration.settings_frame(settings)
    assert frame.loc[0, "Gain 95 % interval over seeds (pp)"] == "one seed" and frame.loc[0, "Learning rate"] == "2e-05"
