import math

import numpy as np
import pytest

from retain_utils.core.evaluation import TaskScore
from retain_utils.analysis.forgetting import (DropReading, check_gain_level, correct_vector, difference_sentence,
                                              discordance, drop_difference, drop_differences,
                                              min_detectable_difference, paired_bootstrap, paper_differences,
                                              power_sentence, read_at_gain, read_end, seed_min_detectable_difference,
                                              seeds_and_questions_bootstrap)
from retain_utils.core.intervals import seed_t_interval, t_quantile


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
    from retain_utils.analysis.forgetting import pooled_difference

    def reading(per_question, reached=True):
        return DropReading("end", reached, 5.0, 12.0 if reached else None,
                           {"ifeval": np.array(per_question, dtype=float)} if reached else {})

    none = reading([0, 0, 0, 0])
    # seed 0: a forgets 2 of 4 more than b (+50 pp); seed 1: 1 of 4 (+25 pp) -> mean +37.5
    d = pooled_difference([(reading([1, 1, 0, 0]), none), (reading([1, 0, 0, 0]), none)], labels=("SFT", "GRPO"),
                          n_boot=4000)
    assert d.difference == 37.5 and (d.drop_a, d.drop_b) == (37.5, 0.0) and d.n == {"ifeval": 4} and d.note == ""
    # the interval is over the 2 seeds: sd |50 - 25| / sqrt(2), standard error 12.5, t_{0.975, 1} = 12.706205
    assert d.basis == "seeds" and d.seeds == 2 and d.seed_sd == pytest.approx(25 / math.sqrt(2))
    assert (d.low, d.high) == pytest.approx((37.5 - 12.706205 * 12.5, 37.5 + 12.706205 * 12.5))
    assert d.verdict == "not told apart"
    # the question-level view: the seed-averaged per-question differences (1, 0.5, 0, 0) resampled, seeds fixed
    assert 0.0 <= d.question_low < 37.5 < d.question_high <= 100.0 and d.question_low > d.low
    assert "95 % interval over 2 seeds (t, 1 df) -121.3 to +196.3" in difference_sentence(d)
    # three seeds, +50, +25 and 0 pp: mean 25, sd 25, t_{0.975, 2} = 4.302653
    three = pooled_difference([(reading([1, 1, 0, 0]), none), (reading([1, 0, 0, 0]), none), (none, none)])
    half = 4.302653 * 25 / math.sqrt(3)
    assert (three.low, three.high) == pytest.approx((25 - half, 25 + half))
    assert three.detectable() == pytest.approx(seed_min_detectable_difference(25.0, 3))
    # one seed: no seed-level interval; the question-level one, exactly drop_difference's, labelled so
    one = pooled_difference([(reading([1, 1, 0, 0]), none)], n_boot=4000)
    alone = drop_difference(reading([1, 1, 0, 0]), none, n_boot=4000)
    assert one.basis == "questions" and math.isnan(one.seed_sd) and math.isnan(one.detectable())
    assert one.difference == alone.difference == 50.0
    assert (one.low, one.high) == (one.question_low, one.question_high) == (alone.low, alone.high)
    assert "95 % interval over held-out questions only +0.0 to +100.0: the interval includes zero, so the two runs " \
        "cannot be told apart" in difference_sentence(one)
    # a seed whose run never reached the point is left out and named; none reached: NaN
    partial = pooled_difference([(reading([1, 1, 0, 0]), none), (reading([], False), none)])
    assert partial.difference == 50.0 and partial.note == "both reach it in 1 of 2 seeds" and partial.seeds == 1
    nothing = pooled_difference([(reading([], False), none)])
    assert math.isnan(nothing.difference) and nothing.verdict == "not reached"
    with pytest.raises(ValueError, match="at least one pair"):
        pooled_difference([])
    with pytest.raises(ValueError, match=r"pairs\[1\] must be an \(a, b\) pair of DropReadings"):
        pooled_difference([(none, none), (none,)])
    with pytest.raises(ValueError, match="level must be in"):
        pooled_difference([(none, none)], level=95)


def test_seed_t_interval_by_hand_with_3_and_5_seeds():
    # 3 seeds: 2, 4, 9 -> mean 5, squared deviations 9 + 1 + 16 = 26, s^2 = 13; t_{0.975, 2} = 4.302653
    low, high = seed_t_interval([2.0, 4.0, 9.0])
    half = 4.302653 * math.sqrt(13 / 3)
    assert (low, high) == pytest.approx((5 - half, 5 + half))
    assert (low, high) == pytest.approx((-3.9567, 13.9567), abs=1e-4)
    # at 90 %: t_{0.95, 2} = 2.919986
    assert seed_t_interval([2.0, 4.0, 9.0], 0.90) == pytest.approx((5 - 2.919986 * math.sqrt(13 / 3),
                                                                   5 + 2.919986 * math.sqrt(13 / 3)))
    # 5 seeds: 1, 2, 3, 4, 10 -> mean 4, squared deviations 9 + 4 + 1 + 0 + 36 = 50, s^2 = 12.5; t_{0.975, 4} = 2.776445
    low, high = seed_t_interval([1, 2, 3, 4, 10])
    half = 2.776445 * math.sqrt(12.5 / 5)
    assert (low, high) == pytest.approx((4 - half, 4 + half))
    assert (low, high) == pytest.approx((-0.3899, 8.3899), abs=1e-4)
    assert seed_t_interval(np.array([3.0, 3.0])) == (3.0, 3.0), "no spread: no width"
    # the textbook quantiles, and scipy's where it is installed
    for p, df, value in ((0.975, 1, 12.706205), (0.975, 2, 4.302653), (0.975, 4, 2.776445), (0.8, 2, 1.060660),
                         (0.995, 9, 3.249836), (0.975, 1000, 1.962339)):
        assert t_quantile(p, df) == pytest.approx(value, abs=1e-6)
        assert t_quantile(1 - p, df) == pytest.approx(-value, abs=1e-6)
    assert t_quantile(0.5, 3) == 0.0
    with pytest.raises(ValueError, match="at least 2 seeds, got 1: one seed has no spread over seeds"):
        seed_t_interval([5.0])
    with pytest.raises(ValueError, match="finite numbers, one per seed"):
        seed_t_interval([1.0, float("nan")])
    with pytest.raises(ValueError, match="a sequence of one number per seed"):
        seed_t_interval("12")
    with pytest.raises(ValueError, match="level must be in"):
        seed_t_interval([1.0, 2.0], level=95)
    with pytest.raises(ValueError, match="df must be a positive int"):
        t_quantile(0.975, 0)


def test_t_quantile_matches_scipy():
    stats = pytest.importorskip("scipy.stats")
    for df in (1, 2, 3, 4, 7, 30):
        for p in (0.6, 0.8, 0.95, 0.975, 0.9995):
            assert t_quantile(p, df) == pytest.approx(float(stats.t.ppf(p, df)), abs=1e-9)


def test_seed_min_detectable_difference_has_the_stated_power():
    # 3 seeds, sd 1: the exact root 5.6535 / sqrt(3), above the textbook shortcut (t_{0.975,2} + t_{0.8,2}) / sqrt(3)
    mdd = seed_min_detectable_difference(1.0, 3)
    assert mdd == pytest.approx(5.6535 / math.sqrt(3), abs=1e-3) and mdd > (4.302653 + 1.060660) / math.sqrt(3)
    # simulated t-tests on 3 normal per-seed differences of that mean reject at 5 % with 80 % probability
    rng = np.random.default_rng(0)
    x = rng.normal(mdd, 1.0, size=(40000, 3))
    t = x.mean(axis=1) / (x.std(axis=1, ddof=1) / math.sqrt(3))
    assert np.mean(np.abs(t) > 4.302653) == pytest.approx(0.80, abs=0.01)
    assert seed_min_detectable_difference(4.0, 3) == pytest.approx(4 * mdd)
    assert seed_min_detectable_difference(0.0, 5) == 0.0
    assert seed_min_detectable_difference(1.0, 5) < mdd  # more seeds detect less
    with pytest.raises(ValueError, match="n_seeds must be an int >= 2"):
        seed_min_detectable_difference(1.0, 1)
    with pytest.raises(ValueError, match="sd must be a finite number >= 0"):
        seed_min_detectable_difference(-1.0, 3)


def test_seed_min_detectable_difference_matches_the_noncentral_t():
    stats = pytest.importorskip("scipy.stats")
    for n in (2, 3, 5, 10):
        lam, crit = seed_min_detectable_difference(1.0, n) * math.sqrt(n), stats.t.ppf(0.975, n - 1)
        power = 1 - stats.nct.cdf(crit, n - 1, lam) + stats.nct.cdf(-crit, n - 1, lam)
        assert power == pytest.approx(0.80, abs=1e-4)


def test_bootstraps_refuse_empty_and_mismatched_input():
    from retain_utils.analysis.forgetting import pearson_interval

    for bad, match in (({}, "non-empty mapping"), ({"x": np.array([1.0, 0.0])}, r"values\['x'\] must be a non-empty "
                                                                                  r"\(seeds, questions\) array"),
                       ({"x": np.zeros((2, 0))}, "got shape"), ({"x": np.array([[1.0, np.nan]])}, "NaN"),
                       ({"a": np.zeros((1, 2)), "b": np.zeros((2, 2))}, "the same seeds")):
        with pytest.raises(ValueError, match=match):
            seeds_and_questions_bootstrap(bad)
    with pytest.raises(ValueError, match="n_boot must be a positive int"):
        seeds_and_questions_bootstrap({"x": np.zeros((2, 2))}, n_boot=0)
    with pytest.raises(ValueError, match=r"values\['x'\] must be a non-empty questions array, got shape \(2, 2\)"):
        paired_bootstrap({"x": np.zeros((2, 2))})
    with pytest.raises(ValueError, match="non-empty mapping"):
        paired_bootstrap({})
    with pytest.raises(ValueError, match="non-empty list of task names"):
        discordance({}, {}, [])
    with pytest.raises(ValueError, match="the same length"):
        pearson_interval([1, 2, 3], [1, 2])
    # two seeds, every question alike within a seed: resampling the seeds alone spreads it, to 0 and 1 at 95 %
    # (both draws seed 1 with probability 1/4), whether the questions are drawn jointly or within each seed
    v = {"x": np.array([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0]])}
    assert seeds_and_questions_bootstrap(v, n_boot=4000) == (0.0, 1.0)
    assert seeds_and_questions_bootstrap(v, n_boot=4000, within_seed=True) == (0.0, 1.0)
    assert seeds_and_questions_bootstrap(v, n_boot=4000, level=0.4, within_seed=True) == (0.5, 0.5)


def test_pearson_interval():
    from retain_utils.analysis.forgetting import pearson_interval

    r, low, high, n = pearson_interval([1, 2, 3, 4, 5, 6], [2, 4, 5, 4, 5, 7])
    assert n == 6 and r == pytest.approx(np.corrcoef([1, 2, 3, 4, 5, 6], [2, 4, 5, 4, 5, 7])[0, 1])
    z = math.atanh(r)
    assert (low, high) == pytest.approx((math.tanh(z - 1.959964 / math.sqrt(3)), math.tanh(z + 1.959964 / math.sqrt(3))))
    r3, low3, _, n3 = pearson_interval([1, 2, 3, float("nan")], [1, 3, 2, 5])
    assert n3 == 3 and not math.isnan(r3) and math.isnan(low3), "three finite points: r, but no interval"
    assert math.isnan(pearson_interval([1, 1, 1, 1], [1, 2, 3, 4])[0]), "no spread: no correlation"
