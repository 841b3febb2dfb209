"""The toy KL experiment: densities, gradients, batching, reading, bad input, and the paper's numbers."""

import numpy as np
import pytest

from retain_utils import toy


# ---------------------------------------------------------------- mixtures


@pytest.mark.parametrize("mix", [toy.target(), toy.UNI_START, toy.BI_START, toy.target(6.5, 0.4)])
def test_mixture_density_integrates_to_one(mix):
    xs = np.linspace(-20, 25, 20001)
    assert np.trapezoid(mix.pdf(xs), xs) == pytest.approx(1.0, abs=1e-8)
    assert np.allclose(np.exp(mix.logpdf(xs[::50])), mix.pdf(xs[::50]), rtol=1e-12, atol=1e-300)


def test_mixture_sampling_moments():
    mix = toy.target()
    x = mix.sample(np.random.default_rng(0), 200_000)
    se_mean = np.sqrt(mix.var() / x.size)
    assert abs(x.mean() - mix.mean()) < 5 * se_mean
    assert x.var() == pytest.approx(mix.var(), rel=0.02)
    # the share of samples in the right-hand mode is its weight
    assert (x > 0.5).mean() == pytest.approx(0.25, abs=5 * np.sqrt(0.25 * 0.75 / x.size))


# ---------------------------------------------------------------- gradients


def _consts(**kw):
    return toy.estimators.Consts.of([toy.RunSpec(method="fkl", lr=0.1, **kw)])


def _log_q(theta, x, start):
    w, mu1, s1, mu2, s2 = theta
    if start == "uni":
        return toy.normal_logpdf(x, mu2, s2)
    return np.logaddexp(np.log(w) + toy.normal_logpdf(x, mu1, s1), np.log1p(-w) + toy.normal_logpdf(x, mu2, s2))


@pytest.mark.parametrize("start", ["uni", "bi"])
def test_scores_match_finite_differences(start):
    """The forward-KL direction on fixed points is sum_i b_i d log q(x_i)/d theta: check every component."""
    theta = np.array([0.6, -2.0, 1.3, 1.0, 0.8]) if start == "bi" else np.array([0.0, 0.5, 1.1, 0.5, 1.1])
    x = np.linspace(-5, 4, 37)[None, :]
    b = np.full(x.shape, 1 / x.size)
    g = toy.gradient("fkl", start, theta[None, :], x, b, _consts(start=start))[0]
    h = 1e-6
    for i in range(5):
        if start == "uni" and i < 3:
            assert g[i] == 0
            continue
        up, dn = theta.copy(), theta.copy()
        up[i] += h
        dn[i] -= h
        fd = (np.sum(b * _log_q(up, x, start)) - np.sum(b * _log_q(dn, x, start))) / (2 * h)
        assert g[i] == pytest.approx(fd, rel=1e-6, abs=1e-8), toy.PARAM_NAMES[i]


def test_forward_kl_quadrature_is_the_exact_gradient():
    """E_{p_new}[log N(mu, s)] has gradient ((m - mu) / s^2, -1/s + (sp^2 + (m - mu)^2) / s^3)."""
    mu, s, m, sp = -1.0, 1.5, 3.5, 0.7
    nodes, wts = toy.quadrature_nodes(1000)
    k = _consts()
    theta = np.array([[0.0, mu, s, mu, s]])
    x, b = toy.points("fkl", "uni", theta, nodes[None, :], None, wts, k, quadrature=True)
    g = toy.gradient("fkl", "uni", theta, x, b, k)[0]
    assert g[3] == pytest.approx((m - mu) / s**2, rel=1e-9)
    assert g[4] == pytest.approx(-1 / s + (sp**2 + (m - mu) ** 2) / s**3, rel=1e-9)


def test_reverse_kl_uni_is_minus_the_gradient_of_kl():
    """With the exact log-ratio reward, REINFORCE's expectation is -grad KL(q || p_new) (uni-modal q):
    d/dmu = -(mu - m) / sp^2, d/ds = 1/s - s / sp^2."""
    mu, s, m, sp = 0.3, 1.2, 3.5, 0.7
    nodes, wts = toy.quadrature_nodes(2000)
    k = toy.estimators.Consts.of([toy.RunSpec(method="rkl", lr=0.1, start="uni", conventions="exact")])
    theta = np.array([[0.0, mu, s, mu, s]])
    x, b = toy.points("rkl", "uni", theta, nodes[None, :], None, wts, k, quadrature=True)
    g = toy.gradient("rkl", "uni", theta, x, b, k)[0]
    assert g[3] == pytest.approx(-(mu - m) / sp**2, rel=1e-8)
    assert g[4] == pytest.approx(1 / s - s / sp**2, rel=1e-8)


@pytest.mark.parametrize("method", ["rkl", "iter_sft"])
def test_quadrature_is_the_expectation_of_the_monte_carlo_estimate(method):
    """Bi-modal, components close enough that the importance weights are tame: the mean of many
    Monte-Carlo estimates matches quadrature within 5 standard errors, for every parameter."""
    theta = np.array([[0.7, -1.0, 1.0, 0.8, 0.9]])
    k = toy.estimators.Consts.of([toy.RunSpec(method=method, lr=0.1, new_mean=2.0)])
    nodes, wts = toy.quadrature_nodes(4000)
    xq, bq = toy.points(method, "bi", theta, nodes[None, :], None, wts, k, quadrature=True)
    exact = toy.gradient(method, "bi", theta, xq, bq, k, importance=False if method == "rkl" else True)[0]
    rng = np.random.default_rng(0)
    n, reps = 4000, 300
    eps = rng.standard_normal((reps, n))
    u = rng.random((reps, n))
    th = np.repeat(theta, reps, axis=0)
    kk = toy.estimators.Consts(**{a: np.repeat(v, reps, axis=0) for a, v in vars(k).items()})
    x, b = toy.points(method, "bi", th, eps, u, 1.0 / n, kk)
    est = toy.gradient(method, "bi", th, x, b, kk)
    se = est.std(0) / np.sqrt(reps)
    assert np.all(np.abs(est.mean(0) - exact) < 5 * se + 1e-9), (est.mean(0), exact, se)


def test_float32_matches_float64():
    specs = toy.paper_specs("bi", [0])
    a = toy.simulate(specs, 100, 400, estimator="quadrature", dtype="float32")
    b = toy.simulate(specs, 100, 400, estimator="quadrature", dtype="float64")
    assert np.allclose(a.params, b.params, rtol=1e-4, atol=1e-4)
    assert np.allclose(a.acc_old, b.acc_old, atol=1e-4)


# ---------------------------------------------------------------- batching, determinism, reading


def _mixed_specs():
    return [
        toy.RunSpec("fkl", 0.15, seed=0),
        toy.RunSpec("rkl", 0.01, seed=0),
        toy.RunSpec("rkl", 0.005, seed=1, start="uni"),
        toy.RunSpec("fkl", 0.05, seed=2, start="uni", new_mean=5.0),
        toy.RunSpec("iter_sft", 0.15, seed=1),
        toy.RunSpec("self_sft", 0.1, seed=0),
        toy.RunSpec("rkl", 0.02, seed=3, new_weight=0.4, new_mean=4.5),
        toy.RunSpec("iter_sft", 0.05, seed=2, start="uni"),
    ]


@pytest.mark.parametrize("estimator", ["mc", "quadrature"])
def test_batched_equals_per_run(estimator):
    specs = _mixed_specs()
    batch = toy.simulate(specs, 40, 300, estimator=estimator)
    for i, s in enumerate(specs):
        alone = toy.simulate([s], 40, 300, estimator=estimator)
        np.testing.assert_array_equal(batch.params[i], alone.params[0])
        np.testing.assert_array_equal(batch.acc_old[i], alone.acc_old[0])
        np.testing.assert_array_equal(batch.acc_new[i], alone.acc_new[0])


def test_same_seed_same_numbers_other_seed_other_numbers():
    specs = toy.paper_specs("bi", [0, 1])
    a, b = toy.simulate(specs, 30), toy.simulate(specs, 30)
    np.testing.assert_array_equal(a.params, b.params)
    rkl = a.select(method="rkl")
    assert not np.array_equal(a.params[rkl[0]], a.params[rkl[1]])


def test_old_mode_frozen_in_uni_and_slow_in_bi():
    fit = toy.simulate([toy.RunSpec("fkl", 0.15), toy.RunSpec("fkl", 0.05, start="uni")], 20)
    assert np.all(fit.params[1, :, 0] == 0)  # uni-modal: no old component
    step_old = np.abs(np.diff(fit.params[0, :, 1])).max()
    step_new = np.abs(np.diff(fit.params[0, :, 3])).max()
    assert 0 < step_old < 0.05 * step_new


def test_reading_is_the_first_step_at_threshold():
    fit = toy.simulate(toy.paper_specs("bi", [0]), 200)
    r = fit.read(0.9)
    for i in np.flatnonzero(r.reached):
        t = r.step[i]
        assert fit.gain[i, t] >= 0.9 and np.all(fit.gain[i, 1:t] < 0.9)
        assert r.drop[i] == fit.drop[i, t]


def test_never_reaching_the_threshold_is_reported_as_such():
    fit = toy.simulate([toy.RunSpec("fkl", 0.01), toy.RunSpec("fkl", 0.15)], 200)
    r = fit.read(0.9)
    assert list(r.reached) == [False, True]
    assert r.step[0] == -1 and np.isnan(r.gain[0]) and np.isnan(r.drop[0])
    assert 0 < r.final_gain[0] < 0.9
    table = toy.summarise(fit)
    assert table.loc[0, "reached"] == 0 and np.isnan(table.loc[0, "drop_mean"])


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda: toy.Mixture((0.5, 0.5), (0, 1), (1, 0)), "stds"),
        (lambda: toy.Mixture((0.5, 0.5), (0, 1), (1, -1)), "stds"),
        (lambda: toy.Mixture((1.2, -0.2), (0, 1), (1, 1)), "weights"),
        (lambda: toy.Mixture((0.0, 1.0), (0, 1), (1, 1)), "weights"),
        (lambda: toy.RunSpec("fkl", 0.0), "lr"),
        (lambda: toy.RunSpec("fkl", -0.1), "lr"),
        (lambda: toy.RunSpec("fkl", 0.1, new_weight=1.0), "new_weight"),
        (lambda: toy.RunSpec("fkl", 0.1, new_weight=0.0), "new_weight"),
        (lambda: toy.RunSpec("fkl", 0.1, new_std=0.0), "new_std"),
        (lambda: toy.RunSpec("sft", 0.1), "method"),
        (lambda: toy.RunSpec("fkl", 0.1, start="tri"), "start"),
        (lambda: toy.simulate([toy.RunSpec("fkl", 0.1)], 10, n_samples=0), "n_samples"),
        (lambda: toy.simulate([toy.RunSpec("fkl", 0.1)], 10, n_samples=-5), "n_samples"),
        (lambda: toy.simulate([toy.RunSpec("fkl", 0.1)], 0), "steps"),
        (lambda: toy.simulate([toy.RunSpec("fkl", 0.1)], 10, estimator="exact"), "estimator"),
        (lambda: toy.read(toy.simulate([toy.RunSpec("fkl", 0.1)], 2), 0.0), "threshold"),
        (lambda: toy.read(toy.simulate([toy.RunSpec("fkl", 0.1)], 2), 1.5), "threshold"),
        (lambda: toy.paper_specs("tri", [0]), "start"),
        (lambda: toy.RunSpec("fkl", 0.1, new_mean=float("nan")), "new_mean"),
        (lambda: toy.RunSpec("fkl", 0.1, new_mean=float("inf")), "new_mean"),
        (lambda: toy.RunSpec("fkl", 0.1, new_mean="5"), "new_mean"),
        (lambda: toy.RunSpec("fkl", float("nan")), "lr"),
        (lambda: toy.RunSpec("fkl", float("inf")), "lr"),
        (lambda: toy.RunSpec("fkl", "0.1"), "lr"),
        (lambda: toy.RunSpec("fkl", 0.1, new_weight=float("nan")), "new_weight"),
        (lambda: toy.RunSpec("fkl", 0.1, new_std=float("inf")), "new_std"),
        (lambda: toy.RunSpec("fkl", 0.1, slow=float("nan")), "slow"),
        (lambda: toy.RunSpec("rkl", 0.1, reward_scale=float("nan")), "reward_scale"),
        (lambda: toy.RunSpec("iter_sft", 0.1, accept_sigmas=float("inf")), "accept_sigmas"),
        (lambda: toy.RunSpec("fkl", 0.1, new_mean=True), "new_mean"),
        (lambda: toy.RunSpec("fkl", 0.1, seed="1"), "seed"),
        (lambda: toy.RunSpec("fkl", 0.1, seed=-1), "seed"),
        (lambda: toy.RunSpec("fkl", 0.1, seed=1.5), "seed"),
        (lambda: toy.RunSpec("fkl", 0.1, conventions="paper"), "conventions"),
        (lambda: toy.simulate([toy.RunSpec("fkl", 0.1)], 10, grid=(8, -8, 500)), "grid"),
        (lambda: toy.distance_specs([5.5, "far"], [0]), "distances"),
        (lambda: toy.distance_specs([-2.0], [0]), "distances"),
    ],
)
def test_bad_input_names_the_parameter(call, name):
    with pytest.raises(ValueError, match=name):
        call()


def _settings(**change):
    from types import SimpleNamespace

    base = dict(n_seeds=2, n_samples=100, sweep_lrs=[0.01, 0.1], distances=[4.5, 6.5], distance_seeds=2,
                distance_steps=10, anim_frames=3)
    return SimpleNamespace(**{**base, **change})


def test_check_settings_accepts_every_profile():
    from retain_utils.chapters import profiles

    for name in profiles.PROFILE_NAMES:
        toy.check_settings(profiles.apply("01_toy_kl", name), 0.9)


@pytest.mark.parametrize(
    "change, name",
    [
        (dict(distances="5.5"), "distances"),
        (dict(distances=5.5), "distances"),
        (dict(distances=[]), "distances"),
        (dict(distances=[4.5, "six"]), "distances"),
        (dict(distances=[4.5, -1.0]), "distances"),
        (dict(distances=[float("nan")]), "distances"),
        (dict(distances=[4.5, float("inf")]), "distances"),
        (dict(distances=[4.5, 4.5]), "distances"),
        (dict(distances=[20.0]), "distances"),
        (dict(n_seeds=1), "n_seeds"),
        (dict(n_seeds=2.0), "n_seeds"),
        (dict(n_seeds="10"), "n_seeds"),
        (dict(distance_seeds=1), "distance_seeds"),
        (dict(anim_frames=1), "anim_frames"),
        (dict(distance_steps=0), "distance_steps"),
        (dict(distance_steps=True), "distance_steps"),
        (dict(n_samples=0), "n_samples"),
        (dict(n_samples=1.5), "n_samples"),
        (dict(sweep_lrs=[0.01, -0.1]), "sweep_lrs"),
        (dict(sweep_lrs=[float("nan")]), "sweep_lrs"),
        (dict(sweep_lrs=0.1), "sweep_lrs"),
    ],
)
def test_check_settings_refuses_a_bad_value_naming_it(change, name):
    with pytest.raises(ValueError, match=name):
        toy.check_settings(_settings(**change), 0.9)


@pytest.mark.parametrize("threshold", [0.0, 1.5, float("nan"), "0.9", True])
def test_check_settings_refuses_a_bad_threshold(threshold):
    with pytest.raises(ValueError, match="threshold"):
        toy.check_settings(_settings(), threshold)


def test_unknown_method_lists_the_valid_ones():
    with pytest.raises(ValueError, match="fkl, rkl, iter_sft, self_sft"):
        toy.RunSpec("ppo", 0.1)


# ---------------------------------------------------------------- the paper's numbers

# Tolerance: the paper reports one seed, to 2 decimals. A single seed scatters around our mean over seeds
# with the per-seed std sigma, so we require |mean - paper| <= 0.005 (rounding) + 3 sigma, with sigma
# measured here over 10 seeds. Measured (10 seeds): uni FKL 0.639 (sigma 0.0005), uni RKL 0.696 (0.003),
# bi FKL lr 0.15 0.129 (0.003), bi RKL 0.041 (0.024; heavy-tailed: a rare seed forgets much more).
# sigma is also capped, so that a blow-up of the spread cannot make the check vacuous, and the
# comparison the paper draws (which method forgets less) is checked on its own.
SEEDS = range(10)


def _check(values, paper, sigma_cap):
    values = np.asarray(values, dtype=float)
    sigma = values.std(ddof=1)
    assert sigma < sigma_cap, f"seed spread {sigma:.4f} larger than expected"
    assert abs(values.mean() - paper) <= 0.005 + 3 * sigma, (values.mean(), sigma, paper)


def test_paper_uni_modal_numbers():
    fit = toy.simulate(toy.paper_specs("uni", SEEDS), toy.PAPER["uni"]["steps"])
    r = fit.read(0.9)
    assert r.reached.all()
    fkl, rkl = fit.select(method="fkl"), fit.select(method="rkl")
    _check(r.drop[fkl], 0.64, sigma_cap=0.01)
    _check(r.drop[rkl], 0.70, sigma_cap=0.01)
    assert r.drop[fkl].mean() < r.drop[rkl].mean() - 0.03  # uni-modal: forward KL forgets less


def test_paper_bi_modal_numbers():
    fit = toy.simulate(toy.paper_specs("bi", SEEDS), toy.PAPER["bi"]["steps"])
    r = fit.read(0.9)
    fast, slow, rkl = fit.select(method="fkl", lr=0.15), fit.select(method="fkl", lr=0.01), fit.select(method="rkl")
    assert r.reached[fast].all() and r.reached[rkl].all() and not r.reached[slow].any()
    _check(r.drop[fast], 0.12, sigma_cap=0.01)
    _check(r.drop[rkl], 0.03, sigma_cap=0.05)
    _check(r.final_gain[slow], 0.44, sigma_cap=0.01)
    _check(r.final_drop[slow], 0.02, sigma_cap=0.01)
    assert np.median(r.drop[rkl]) < r.drop[fast].mean() / 2  # bi-modal: reverse KL forgets less


def test_drop_at_gain_reads_each_level_at_its_first_step():
    fit = toy.simulate(toy.paper_specs("bi", [0, 1]), 200)
    table = toy.drop_at_gain(fit, [0.3, 0.9]).set_index(["method", "lr"])
    for (method, lr), row in table.iterrows():
        idx = fit.select(method=method, lr=lr)
        for level in (0.3, 0.9):
            r = fit.read(level)
            expect = np.nanmedian(r.drop[idx]) if r.reached[idx].any() else np.nan
            assert row[f"Drop at Gain {level:g} (median)"] == pytest.approx(expect, nan_ok=True)
            assert row[f"reached {level:g}"] == f"{r.reached[idx].sum()}/{idx.size}"


def test_toy_modules_import_each_other_without_cycles():
    """Each module of the toy package imports only modules listed before it (a DAG), never a sibling back."""
    import ast
    from pathlib import Path

    pkg = Path(toy.__file__).parent
    deps = {}
    for path in pkg.glob("*.py"):
        if path.stem == "__init__":
            continue
        tree = ast.parse(path.read_text())
        deps[path.stem] = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level == 1 and n.module}
    done: set[str] = set()

    def visit(mod, stack=()):
        assert mod not in stack, f"import cycle: {' -> '.join(stack + (mod,))}"
        if mod not in done:
            for dep in deps.get(mod, ()):
                visit(dep, stack + (mod,))
            done.add(mod)

    for mod in deps:
        visit(mod)
    assert {"mixture", "specs", "estimators", "engine", "readout", "conventions"} <= set(deps)
