"""The authors' numerical conventions (density and reward floors of 1e-12, their overlap grids) against the
exact estimators: first steps computed by hand, first-step numbers under both conventions, and the grids."""

import math

import numpy as np
import pytest

from retain_utils import toy
from retain_utils.toy.estimators import Consts

FLOOR = 1e-12


def _npdf(x, m, s):
    return np.exp(-0.5 * ((x - m) / s) ** 2) / (s * math.sqrt(2 * math.pi))


def _hand_fkl(theta, x, f):
    """Forward KL's ascent direction, written from the description: q = w N1 + (1-w) N2 + f."""
    w, m1, s1, m2, s2 = theta
    n1, n2 = _npdf(x, m1, s1), _npdf(x, m2, s2)
    q = w * n1 + (1 - w) * n2 + f
    r1, r2 = w * n1 / q, (1 - w) * n2 / q
    return np.array([
        np.mean((n1 - n2) / q),
        np.mean(r1 * (x - m1) / s1**2), np.mean(r1 * (-1 / s1 + (x - m1) ** 2 / s1**3)),
        np.mean(r2 * (x - m2) / s2**2), np.mean(r2 * (-1 / s2 + (x - m2) ** 2 / s2**3)),
    ])


def _hand_rkl(theta, x, f, new_mean, rf=None, scale=0.1, new_std=0.7):
    """Reverse KL (bi-modal) under the authors' conventions: reward log(p_new / q2 / 0.1 + rf), importance weight
    q / (q2 + f), q = q1 + q2 + f, r1 = q1 / q, and the new component's score weighted by 1 - r1."""
    rf = f if rf is None else rf
    w, m1, s1, m2, s2 = theta
    n1, n2 = _npdf(x, m1, s1), _npdf(x, m2, s2)
    q1, q2 = w * n1, (1 - w) * n2
    q = q1 + q2 + f
    r1 = q1 / q
    one_minus_r1 = (q2 + f) / q  # = 1 - r1, without the cancellation of 1 - r1 where q1 >> q2
    reward = np.log(_npdf(x, new_mean, new_std) / q2 / scale + rf)
    iw = q / (q2 + f)
    return np.array([
        np.mean(reward * iw * (n1 - n2) / q),
        np.mean(reward * iw * r1 * (x - m1) / s1**2), np.mean(reward * iw * r1 * (-1 / s1 + (x - m1) ** 2 / s1**3)),
        np.mean(reward * iw * one_minus_r1 * (x - m2) / s2**2),
        np.mean(reward * iw * one_minus_r1 * (-1 / s2 + (x - m2) ** 2 / s2**3)),
    ])


def _toy_step(spec, x):
    """One step of the package's estimator and update on the points ``x``, from the spec's start."""
    theta = toy.initial_params([spec])
    k = Consts.of([spec])
    g = toy.gradient(spec.method, spec.start, theta, x[None, :], 1.0 / x.size, k)[0]
    return g, toy.update(spec.start, theta, g[None, :], k)[0]


def _hand_step(theta, g, lr, slow):
    step = lr * np.array([slow, slow, slow, 1, 1]) * g
    new = theta + step
    new[0] = np.clip(new[0], 1e-3, 1 - 1e-3)
    new[[2, 4]] = np.maximum(new[[2, 4]], 1e-3)
    return new


# points of the far new mode (fkl: samples of N(5.5, 0.7)) and of q's new component N(0.5, 0.7) (rkl)
X_FKL = np.array([4.4, 4.9, 5.2, 5.5, 5.8, 6.3, 6.9])
X_RKL = np.array([-1.3, -0.4, 0.1, 0.5, 0.9, 1.6, 2.4, 4.6])


@pytest.mark.parametrize("conventions, f", [("authors", FLOOR), ("exact", 0.0)])
def test_forward_kl_first_step_by_hand_at_a_far_new_mode(conventions, f):
    spec = toy.RunSpec("fkl", 0.15, new_mean=5.5, conventions=conventions)
    theta = toy.initial_params([spec])[0]
    g, new = _toy_step(spec, X_FKL)
    hand = _hand_fkl(theta, X_FKL, f)
    np.testing.assert_allclose(g, hand, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(new, _hand_step(theta, hand, 0.15, 0.005), rtol=1e-12)


def test_the_floor_damps_forward_kl_far_from_both_components():
    """At x = 5.5 the new component N(0.5, 0.7) has weighted density ~1e-12: with the floor its
    responsibility is about one half instead of 1, and the step of its mean is much smaller."""
    theta = toy.initial_params([toy.RunSpec("fkl", 0.15)])[0]
    w, m1, s1, m2, s2 = theta
    q2 = (1 - w) * _npdf(5.5, m2, s2)
    assert 1e-13 < q2 < 1e-11
    r2_floor = q2 / (w * _npdf(5.5, m1, s1) + q2 + FLOOR)
    assert 0.3 < r2_floor < 0.7
    g_floor, _ = _toy_step(toy.RunSpec("fkl", 0.15, new_mean=5.5), X_FKL)
    g_exact, _ = _toy_step(toy.RunSpec("fkl", 0.15, new_mean=5.5, conventions="exact"), X_FKL)
    assert g_exact[3] == pytest.approx(np.mean((X_FKL - m2) / s2**2), rel=1e-4)  # responsibilities ~1
    assert g_floor[3] < 0.75 * g_exact[3]


@pytest.mark.parametrize("conventions, f", [("authors", FLOOR), ("exact", 0.0)])
@pytest.mark.parametrize("new_mean", [5.5, 6.5])
def test_reverse_kl_first_step_by_hand_at_a_far_new_mode(conventions, f, new_mean):
    spec = toy.RunSpec("rkl", 0.01, new_mean=new_mean, conventions=conventions)
    theta = toy.initial_params([spec])[0]
    g, new = _toy_step(spec, X_RKL)
    hand = _hand_rkl(theta, X_RKL, f, new_mean)
    np.testing.assert_allclose(g, hand, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(new, _hand_step(theta, hand, 0.01, 0.005), rtol=1e-12)


def test_reverse_kl_floor_changes_the_step_of_a_far_tail_sample():
    """A sample deep in the old mode, where (1-w) N2 < 1e-12: the floored importance weight is q / 1e-12
    instead of q / q2, so the floored and exact steps of the old component differ by orders of magnitude."""
    x = np.array([-5.0])
    spec_a = toy.RunSpec("rkl", 0.01, new_mean=5.5)
    spec_e = toy.RunSpec("rkl", 0.01, new_mean=5.5, conventions="exact")
    theta = toy.initial_params([spec_a])[0]
    assert (1 - theta[0]) * _npdf(-5.0, theta[3], theta[4]) < FLOOR
    g_a, _ = _toy_step(spec_a, x)
    g_e, _ = _toy_step(spec_e, x)
    np.testing.assert_allclose(g_a, _hand_rkl(theta, x, FLOOR, 5.5), rtol=1e-9)
    np.testing.assert_allclose(g_e, _hand_rkl(theta, x, 0.0, 5.5), rtol=1e-9)
    assert abs(g_e[1]) > 10 * abs(g_a[1])


@pytest.mark.parametrize("method, x", [("fkl", X_FKL), ("rkl", X_RKL)])
def test_uni_modal_first_step_by_hand(method, x):
    """Uni-modal: forward KL's score has no responsibilities (the floor cannot act); reverse KL's reward is
    log(p_new / (q + f) / 0.1 + f)."""
    for conventions, f in (("authors", FLOOR), ("exact", 0.0)):
        spec = toy.RunSpec(method, 0.05, start="uni", new_mean=5.5, conventions=conventions)
        theta = toy.initial_params([spec])[0]
        g, new = _toy_step(spec, x)
        m, s = theta[3], theta[4]
        c = np.ones_like(x) if method == "fkl" else np.log(_npdf(x, 5.5, 0.7) / (_npdf(x, m, s) + f) / 0.1 + f)
        hand = [np.mean(c * (x - m) / s**2), np.mean(c * (-1 / s + (x - m) ** 2 / s**3))]
        np.testing.assert_allclose(g[3:], hand, rtol=1e-9)
        assert np.all(g[:3] == 0)
        np.testing.assert_allclose(new[3:], theta[3:] + 0.05 * np.array(hand), rtol=1e-12)


def test_floored_quadrature_is_the_expectation_of_the_floored_estimator():
    """Noise-free reverse KL under the authors' conventions: quadrature over both components equals the
    integral of the (floored) Monte-Carlo estimator's expectation over q's new component, on a fine grid."""
    spec = toy.RunSpec("rkl", 0.01, new_mean=5.5)
    theta = toy.initial_params([spec])
    k = Consts.of([spec])
    nodes, wts = toy.quadrature_nodes(6000)
    xq, bq = toy.points("rkl", "bi", theta, nodes[None, :], None, wts, k, quadrature=True)
    quad = toy.gradient("rkl", "bi", theta, xq, bq, k, importance=False)[0]
    xs = np.linspace(-12, 12, 400_001)
    density = _npdf(xs, theta[0, 3], theta[0, 4])  # q's new component, where the samples come from
    g = toy.gradient("rkl", "bi", theta, xs[None, :], (density * (xs[1] - xs[0]))[None, :], k)[0]
    np.testing.assert_allclose(quad, g, rtol=2e-3, atol=1e-6)


# ---------------------------------------------------------------- first-step numbers under both conventions

SEEDS = range(20)


def test_first_step_at_new_mode_5_5_under_the_authors_conventions():
    """New mode at 5.5, forward KL lr 0.15, bi-modal start: step 1 moves the new component to mean 1.2
    (+- 0.05) and std 5.1 (+- 0.3) with the floor, to about 2.0 and 11.5 without it (means over seeds)."""
    runs = {c: [toy.RunSpec("fkl", 0.15, seed=s, new_mean=5.5, conventions=c) for s in SEEDS]
            for c in ("authors", "exact")}
    fit = toy.simulate(runs["authors"] + runs["exact"], 1)
    authors, exact = fit.params[: len(SEEDS), 1], fit.params[len(SEEDS):, 1]
    assert authors[:, 3].mean() == pytest.approx(1.2, abs=0.05)
    assert authors[:, 4].mean() == pytest.approx(5.1, abs=0.3)
    assert exact[:, 3].mean() == pytest.approx(2.0, abs=0.1)
    assert exact[:, 4].mean() == pytest.approx(11.5, abs=0.5)


def test_after_200_steps_only_the_floored_fit_sits_on_the_far_mode():
    """The 200-step numbers: with the floor (5.50, 0.73), without it (2.89, 8.87) (median of seeds)."""
    specs = [toy.RunSpec("fkl", 0.15, seed=s, new_mean=5.5, conventions=c) for c in ("authors", "exact") for s in range(6)]
    fit = toy.simulate(specs, 200)
    a, e = np.median(fit.params[:6, -1], 0), np.median(fit.params[6:, -1], 0)
    assert a[3] == pytest.approx(5.5, abs=0.1) and a[4] == pytest.approx(0.73, abs=0.1)
    assert e[3] == pytest.approx(2.89, abs=0.3) and e[4] == pytest.approx(8.87, abs=0.8)


# ---------------------------------------------------------------- grids and batching


def test_each_run_reads_its_overlaps_on_its_conventions_grid():
    specs = [toy.RunSpec("fkl", 0.1), toy.RunSpec("fkl", 0.1, start="uni"),
             toy.RunSpec("fkl", 0.1, conventions="exact"), toy.RunSpec("rkl", 0.1, start="uni", conventions="exact")]
    fit = toy.simulate(specs, 2)
    assert fit.grids == ((-8.0, 8.0, 500), (-10.0, 10.0, 500), toy.GRID, toy.GRID)
    assert toy.simulate(specs, 2, grid=(-9.0, 9.0, 300)).grids == ((-9.0, 9.0, 300),) * 4


def test_conventions_agree_near_the_paper_setting():
    """New mode at 3.5: the floors barely bind (only the target's far-tail samples meet densities near 1e-12),
    so both conventions take nearly the same steps, and the grids give nearly the same overlaps."""
    specs = [toy.RunSpec(m, lr, seed=0, conventions=c) for c in ("authors", "exact") for m, lr in (("fkl", 0.15), ("rkl", 0.01))]
    fit = toy.simulate(specs, 20)
    np.testing.assert_allclose(fit.params[:2, 1:], fit.params[2:, 1:], rtol=2e-2)
    assert np.abs(fit.acc_old[:2] - fit.acc_old[2:]).max() < 1e-3


def test_mixed_conventions_batch_equals_per_run():
    specs = [toy.RunSpec("fkl", 0.15, seed=1, new_mean=5.5), toy.RunSpec("fkl", 0.15, seed=1, new_mean=5.5, conventions="exact"),
             toy.RunSpec("rkl", 0.01, seed=2, new_mean=6.5), toy.RunSpec("iter_sft", 0.1, seed=0, conventions="exact")]
    batch = toy.simulate(specs, 15, 300)
    for i, s in enumerate(specs):
        alone = toy.simulate([s], 15, 300)
        np.testing.assert_array_equal(batch.params[i], alone.params[0])
        np.testing.assert_array_equal(batch.acc_new[i], alone.acc_new[0])
