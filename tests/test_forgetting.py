import math

import numpy as np
import pytest

from retain_utils.evaluation import TaskScore
from retain_utils.forgetting import (DropReading, check_gain_level, correct_vector, difference_sentence, discordance,
                                     drop_difference, drop_differences, min_detectable_difference, paired_bootstrap,
                                     paper_differences, power_sentence, read_at_gain, read_end)


def _eval(step, **correct):
    return {"step": step, "scores": {task: {"correct": list(c)} for task, c in correct.items()}}


def _k_of(n, k):
    return [1] * k + [0] * (n - k)


def test_paired_difference_interval_by_hand():
    # run a forgets ifeval's second question, run b forgets nothing: per-question differences (0, 1)
    a = [_eval(0, mmlu=[0, 0], ifeval=[1, 1]), _eval(10, mmlu=[1, 0], ifeval=[1, 0])]
    b = [_eval(0, mmlu=[0, 0], ifeval=[1, 1]), _eval(10, mmlu=[1, 1], ifeval=[1, 1])]
    d = drop_difference(read_end(a, "mmlu"), read_end(b, "mmlu"), labels=("SFT", "GRPO"), n_boot=20000)
    assert (d.drop_a, d.drop_b, d.difference) == (50.0, 0.0, 50.0) and d.n == {"ifeval": 2}
    # a resample of 2 questions holds the forgotten one 0, 1 or 2 times (probability 1/4, 1/2, 1/4):
    # the mean is 0, 50 or 100 pp, so the 2.5 / 97.5 % percentiles are 0 and 100, the 30 / 70 % ones both 50
    assert (d.low, d.high) == (0.0, 100.0) and d.verdict == "not told apart"
    narrow = drop_difference(read_end(a, "mmlu"), read_end(b, "mmlu"), level=0.4, n_boot=20000)
    assert (narrow.low, narrow.high) == (50.0, 50.0)
    # the drop is a mean over the other tasks: one question each, nothing to resample, exactly (1 + 0) / 2
    assert paired_bootstrap({"x": np.array([1.0]), "y": np.array([0.0])}) == (0.5, 0.5)
    assert drop_difference(read_end(a, "mmlu"), read_end(a, "mmlu")).low == 0.0  # a run against itself: 0


def test_paired_difference_interval_matches_the_normal_approximation():
    rng = np.random.default_rng(1)
    n = 400
    initial = np.ones(n, dtype=int)
    final_a = (rng.random(n) > 0.30).astype(int)  # a forgets ~30 %, b ~10 %, on the same questions
    final_b = np.where(final_a == 0, (rng.random(n) > 0.6).astype(int), (rng.random(n) > 0.02).astype(int))
    a = [_eval(0, t=_k_of(10, 5), o=initial), _eval(1, t=_k_of(10, 9), o=final_a)]
    b = [_eval(0, t=_k_of(10, 5), o=initial), _eval(1, t=_k_of(10, 9), o=final_b)]
    d = drop_difference(read_end(a, "t"), read_end(b, "t"), n_boot=20000)
    diff = final_b - final_a
    half = 1.96 * diff.std() / math.sqrt(n) * 100
    assert d.difference == pytest.approx(100 * diff.mean())
    assert d.low == pytest.approx(d.difference - half, abs=0.6) and d.high == pytest.approx(d.difference + half, abs=0.6)
    # paired beats unpaired: the interval is narrower than the two drops' independent intervals would give
    unpaired = 1.96 * math.sqrt(final_a.var() / n + final_b.var() / n) * 100
    assert half < unpaired and d.verdict.endswith("forgets more") and d.low > 0
    assert drop_difference(read_end(a, "t"), read_end(b, "t"), n_boot=20000) == d  # seeded


def _trajectories():
    # target "t" (10 questions): run a gains 0, 10, 30 pp; other task "o" (10 questions): drops 0, 10, 30 pp
    a = [_eval(0, t=_k_of(10, 2), o=_k_of(10, 10)), _eval(5, t=_k_of(10, 3), o=_k_of(10, 9)),
         _eval(10, t=_k_of(10, 5), o=_k_of(10, 7))]
    # run b gains only 0, 5 -> 10 pp (20 questions) and forgets nothing
    b = [_eval(0, t=_k_of(20, 4), o=_k_of(10, 10)), _eval(5, t=_k_of(20, 5), o=_k_of(10, 10)),
         _eval(10, t=_k_of(20, 6), o=_k_of(10, 10))]
    return a, b


def test_matched_gain_interpolates_between_evaluations():
    a, b = _trajectories()
    r = read_at_gain(a, "t", 20)
    # 20 pp lies halfway between 10 (step 5) and 30 (step 10): step 7.5, each question's drop halfway too
    assert r.reached and r.step == 7.5 and r.gain == 20 and r.drop == pytest.approx(20.0)
    assert list(r.per_question["o"]) == pytest.approx([0] * 7 + [0.5, 0.5, 1])
    assert read_at_gain(a, "t", 10).drop == pytest.approx(10.0) and read_at_gain(a, "t", 10).step == 5
    assert read_at_gain(a, "t", 5).drop == pytest.approx(5.0)
    assert read_end(a, "t").drop == pytest.approx(30.0) and read_end(a, "t").gain == pytest.approx(30.0)
    # b reaches 10 pp exactly at its last evaluation, 20 pp never
    assert read_at_gain(b, "t", 10).reached and read_at_gain(b, "t", 10).step == 10
    never = read_at_gain(b, "t", 20)
    assert not never.reached and never.gain == pytest.approx(10.0) and math.isnan(never.drop)
    d = drop_difference(read_at_gain(a, "t", 20), never, labels=("SFT", "GRPO"))
    assert math.isnan(d.difference) and d.verdict == "not reached"
    assert "GRPO never reaches gain 20 pp (its best gain: +10.0 pp)" in d.note
    assert "no comparison" in difference_sentence(d)
    at10 = drop_difference(read_at_gain(a, "t", 10), read_at_gain(b, "t", 10), labels=("SFT", "GRPO"))
    assert at10.difference == pytest.approx(10.0) and at10.where == "gain 10 pp"


def test_matched_gain_table_and_refused_levels():
    a, b = _trajectories()
    table = drop_differences({"SFT": a, "GRPO": b}, "t", [("SFT", "GRPO")], gain_levels=(10, 20))
    assert list(table["at"]) == ["end", "gain 10 pp", "gain 20 pp"]
    assert table["difference (pp)"].iloc[0] == pytest.approx(30.0) and math.isnan(table["difference (pp)"].iloc[2])
    assert "never reaches" in table["note"].iloc[2] and table["verdict"].iloc[2] == "not reached"
    for bad in (0, -5, 100.5, float("nan"), True, "20", None):
        with pytest.raises(ValueError, match=r"gain level must be a number in \(0, 100\]"):
            check_gain_level(bad)
        with pytest.raises(ValueError, match="gain level"):  # before any run is read: unknown labels are not reached
            drop_differences({}, "t", [("x", "y")], gain_levels=(bad,))
    assert check_gain_level(100) == 100.0
    with pytest.raises(ValueError, match="no run called 'PPO'; runs: SFT, GRPO"):
        drop_differences({"SFT": a, "GRPO": b}, "t", [("PPO", "GRPO")])


def test_bad_trajectories_are_refused():
    a, _ = _trajectories()
    with pytest.raises(ValueError, match="target 'x' is not evaluated"):
        read_end(a, "x")
    with pytest.raises(ValueError, match="needs a task besides the target"):
        read_end([_eval(0, t=[1])], "t")
    with pytest.raises(ValueError, match="no per-question results"):
        read_end([{"t": {"accuracy": 0.5}, "o": {"accuracy": 1.0}}], "t")
    with pytest.raises(ValueError, match="a different number of questions"):
        read_end([_eval(0, t=[1], o=[1, 1]), _eval(1, t=[1], o=[1])], "t")
    with pytest.raises(ValueError, match="non-empty list"):
        read_end([], "t")
    short = [_eval(0, t=_k_of(10, 2), o=[1] * 4), _eval(5, t=_k_of(10, 5), o=[1] * 4)]
    with pytest.raises(ValueError, match="the same held-out questions"):
        drop_difference(read_end(a, "t"), read_end(short, "t"))
    # TaskScores and bare 0/1 lists are read too
    s = TaskScore("t", 0.5, 0, 1, 2, 1, 0, correct=(1, 0))
    assert list(correct_vector({"t": s}, "t")) == [1, 0] and list(correct_vector({"t": (0, 1)}, "t")) == [0, 1]


def _simulated_rejection_rate(n, psi, delta, reps=4000, seed=0):
    """Share of simulated paired evaluations (M tasks, n questions each) in which the two-sided McNemar-style
    z-test of a zero drop difference rejects at 5 %: each question's difference is +1 w.p. (psi + delta) / 2,
    -1 w.p. (psi - delta) / 2, else 0."""
    rng = np.random.default_rng(seed)
    m = len(n)
    means, var = np.zeros(reps), np.zeros(reps)
    psi = [psi] * m if isinstance(psi, float) else psi
    for size, p in zip(n, psi):
        u = rng.random((reps, size))
        d = np.where(u < (p + delta) / 2, 1.0, np.where(u < p, -1.0, 0.0))
        means += d.mean(axis=1) / m
        var += (d != 0).mean(axis=1) / size / m**2
    return float(np.mean(np.abs(means) > 1.96 * np.sqrt(var)))


def test_min_detectable_difference_has_the_stated_power():
    n, psi = {"ifeval": 150, "countdown": 150}, {"ifeval": 0.3, "countdown": 0.3}
    mdd = min_detectable_difference(n, psi)
    # the textbook approximation (z_0.975 + z_0.8) sqrt(psi / n) / sqrt(M) when delta^2 << psi; slightly below it (the variance shrinks by delta^2)
    approx = 100 * (1.959964 + 0.841621) * math.sqrt(0.3 / 150 / 2)
    assert 0.98 * approx < mdd < approx and mdd == pytest.approx(8.8, abs=0.2)
    assert _simulated_rejection_rate([150, 150], 0.3, mdd / 100) == pytest.approx(0.80, abs=0.03)
    assert _simulated_rejection_rate([150, 150], 0.3, 0.0) == pytest.approx(0.05, abs=0.015)
    # quadrupling the questions halves it; more discordance raises it; an unequal pair of tasks works too
    assert min_detectable_difference({"a": 600, "b": 600}, {"a": 0.3, "b": 0.3}) == pytest.approx(mdd / 2, rel=0.02)
    assert min_detectable_difference(n, {"ifeval": 0.5, "countdown": 0.5}) > mdd
    uneven = min_detectable_difference({"a": 40, "b": 200}, {"a": 0.2, "b": 0.4})
    assert _simulated_rejection_rate([40, 200], [0.2, 0.4], uneven / 100) == pytest.approx(0.80, abs=0.03)
    assert min_detectable_difference({"a": 100}, {"a": 0.0}) == 0.0
    with pytest.raises(ValueError, match="same tasks"):
        min_detectable_difference({"a": 10}, {"b": 0.1})
    with pytest.raises(ValueError, match=r"n\['a'\] must be a positive int"):
        min_detectable_difference({"a": 0}, {"a": 0.1})
    with pytest.raises(ValueError, match=r"discordance\['a'\] must be in \[0, 1\]"):
        min_detectable_difference({"a": 10}, {"a": 1.5})
    with pytest.raises(ValueError, match="level and power"):
        min_detectable_difference(n, psi, power=80)


def test_discordance_and_the_power_sentence():
    final_a = {"ifeval": _k_of(10, 5), "countdown": _k_of(10, 10)}
    final_b = {"ifeval": _k_of(10, 8), "countdown": _k_of(10, 9)}
    assert discordance(final_a, final_b, ["ifeval", "countdown"]) == {"ifeval": 0.3, "countdown": 0.1}
    assert paper_differences("mmlu") == {"Llama-3.1-8B": 38.7, "Qwen2.5-7B": 14.4}
    with pytest.raises(ValueError, match="unknown target 'gsm8k'; valid: countdown, ifeval, mmlu"):
        paper_differences("gsm8k")
    n, psi = {"ifeval": 200, "countdown": 200}, {"ifeval": 0.2, "countdown": 0.2}
    text = power_sentence(n, psi, "mmlu")
    mdd = min_detectable_difference(n, psi)
    assert f"{mdd:.1f} pp" in text and "200 held-out questions" in text and "38.7" in text and "14.4" in text
    assert "all would be detected" in text  # 38.7 and 14.4 are both above ~6.3 pp
    small = power_sentence({"ifeval": 24, "countdown": 24}, {"ifeval": 0.4, "countdown": 0.4}, "mmlu")
    assert "only Llama-3.1-8B's would be reliably detected" in small


def test_pooled_difference_over_seeds_by_hand():
    from retain_utils.forgetting import pooled_difference

    def reading(per_question, reached=True):
        return DropReading("end", reached, 5.0, 12.0 if reached else None,
                           {"ifeval": np.array(per_question, dtype=float)} if reached else {})

    none = reading([0, 0, 0, 0])
    # seed 0: a forgets 2 of 4 more than b (+50 pp); seed 1: 1 of 4 (+25 pp) -> mean +37.5
    d = pooled_difference([(reading([1, 1, 0, 0]), none), (reading([1, 0, 0, 0]), none)], labels=("SFT", "GRPO"),
                          n_boot=4000)
    assert d.difference == 37.5 and (d.drop_a, d.drop_b) == (37.5, 0.0) and d.n == {"ifeval": 4} and d.note == ""
    assert 0.0 <= d.low < 37.5 < d.high <= 100.0
    # one seed: the same estimate as drop_difference, and two identical seeds give the one seed's interval
    one = pooled_difference([(reading([1, 1, 0, 0]), none)], n_boot=4000)
    same = pooled_difference([(reading([1, 1, 0, 0]), none)] * 2, n_boot=4000)
    assert one.difference == drop_difference(reading([1, 1, 0, 0]), none).difference == 50.0
    assert (one.low, one.high) == (same.low, same.high)
    # a seed whose run never reached the point is left out and named; none reached: NaN
    partial = pooled_difference([(reading([1, 1, 0, 0]), none), (reading([], False), none)])
    assert partial.difference == 50.0 and partial.note == "both reach it in 1 of 2 seeds"
    nothing = pooled_difference([(reading([], False), none)])
    assert math.isnan(nothing.difference) and nothing.verdict == "not reached"
    with pytest.raises(ValueError, match="at least one pair"):
        pooled_difference([])


def test_pearson_interval():
    from retain_utils.forgetting import pearson_interval

    r, low, high, n = pearson_interval([1, 2, 3, 4, 5, 6], [2, 4, 5, 4, 5, 7])
    assert n == 6 and r == pytest.approx(np.corrcoef([1, 2, 3, 4, 5, 6], [2, 4, 5, 4, 5, 7])[0, 1])
    z = math.atanh(r)
    assert (low, high) == pytest.approx((math.tanh(z - 1.959964 / math.sqrt(3)), math.tanh(z + 1.959964 / math.sqrt(3))))
    r3, low3, _, n3 = pearson_interval([1, 2, 3, float("nan")], [1, 3, 2, 5])
    assert n3 == 3 and not math.isnan(r3) and math.isnan(low3), "three finite points: r, but no interval"
    assert math.isnan(pearson_interval([1, 1, 1, 1], [1, 2, 3, 4])[0]), "no spread: no correlation"
