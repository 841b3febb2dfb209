"""The simulation: many fits (seeds x learning rates x settings) advancing together as ``(runs, points)`` arrays."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .estimators import ESTIMATORS, Consts, gradient, points, quadrature_nodes
from .mixture import BI_START, TARGET_OLD, UNI_START, weighted_pdf
from .conventions import CONVENTIONS
from .readout import Fit, make_grid, overlaps
from .specs import METHODS, STARTS, RunSpec
from ..core.validate import check_choice, check_positive_int

PARAMETRISATIONS = ("direct", "natural")
W_CLIP = 1e-3  # weight kept in [W_CLIP, 1 - W_CLIP], stds >= S_MIN, as in the paper's simulation
S_MIN = 1e-3


def update(start: str, theta: np.ndarray, grad: np.ndarray, k: Consts, param: str = "direct") -> np.ndarray:
    """One plain gradient-ascent step; the old mode moves at ``slow`` x lr (not at all in a uni-modal start)."""
    lr, old = k.lr[:, 0], (k.lr * k.slow)[:, 0]
    new = theta.copy()
    if start == "uni":
        if param == "direct":
            new[:, 3:] += lr[:, None] * grad[:, 3:]
        else:
            new[:, 3] += lr * grad[:, 3]
            new[:, 4] = theta[:, 4] * np.exp(lr * grad[:, 4] * theta[:, 4])
        new[:, 4] = np.maximum(new[:, 4], S_MIN)
        return new
    step = np.stack([old, old, old, lr, lr], axis=1)
    if param == "direct":
        new += step * grad
        new[:, 0] = np.clip(new[:, 0], W_CLIP, 1 - W_CLIP)
    else:  # natural: ascend in logit(w) and log(s); same gradient by the chain rule
        w = theta[:, 0]
        new[:, 0] = 1 / (1 + np.exp(-(np.log(w / (1 - w)) + step[:, 0] * grad[:, 0] * w * (1 - w))))
        new[:, (1, 3)] += step[:, (1, 3)] * grad[:, (1, 3)]
        new[:, (2, 4)] = theta[:, (2, 4)] * np.exp(step[:, (2, 4)] * grad[:, (2, 4)] * theta[:, (2, 4)])
        new[:, 0] = np.clip(new[:, 0], W_CLIP, 1 - W_CLIP)
    new[:, (2, 4)] = np.maximum(new[:, (2, 4)], S_MIN)
    return new


def initial_params(specs: Sequence[RunSpec]) -> np.ndarray:
    """Start parameters ``(runs, 5)`` in PARAM_NAMES order; a uni-modal start has w_old = 0 and its one
    component in the "new" slot (the old slot repeats it, unused)."""
    rows = []
    for s in specs:
        if s.start == "uni":
            m, sd = UNI_START.means[0], UNI_START.stds[0]
            rows.append((0.0, m, sd, m, sd))
        else:
            rows.append((BI_START.weights[0], BI_START.means[0], BI_START.stds[0], BI_START.means[1],
                         BI_START.stds[1]))
    return np.array(rows, dtype=float)


CHUNK_ELEMENTS = 65_536  # rows x points per array operation: keeps temporaries in cache (~3x faster)
DTYPES = ("float32", "float64")


def simulate(
    specs: Sequence[RunSpec],
    steps: int,
    n_samples: int = 1000,
    estimator: str = "mc",
    param: str = "direct",
    grid=None,
    progress: bool = False,
    dtype: str = "float32",
) -> Fit:
    """Run every spec for ``steps`` gradient steps, all runs advancing together.

    ``estimator="mc"``: each step's expectation from ``n_samples`` Monte-Carlo samples (the paper);
    ``"quadrature"``: the exact expectation of the same estimator, from ``n_samples`` deterministic
    standard-normal nodes per run (noise-free); ``"quadrature_new"``: the same, except that rkl's
    expectation keeps only q's new component, E_{q_new}[R d log q] - the part its Monte-Carlo samples
    (drawn from the new component) see; the importance-weighted old-component part, which they reach only
    in rare draws, is left out.
    Randomness comes from the run's seed alone: runs with the same seed share their draws (common random
    numbers), so a run gives the same numbers alone as in any batch. ``dtype`` is that of the points and
    the per-point arithmetic (float32: ~2.5x faster, relative error ~1e-5, far below the Monte-Carlo noise
    of ~3% at 1,000 samples); parameters, sums over points and accuracies are float64.
    ``grid``: the overlap grid (lo, hi, points) of every run; None: each run's conventions' grid for its start
    (``toy.conventions``). Each spec's ``conventions`` also sets the floors of its estimator.
    """
    specs = tuple(specs)
    if not specs or not all(isinstance(s, RunSpec) for s in specs):
        raise ValueError("specs must be a non-empty sequence of RunSpec")
    check_positive_int("steps", steps)
    check_positive_int("n_samples", n_samples)
    check_choice("estimator", estimator, ESTIMATORS)
    check_choice("param", param, PARAMETRISATIONS)
    check_choice("dtype", dtype, DTYPES)
    f = np.dtype(dtype)
    if estimator != "mc" and n_samples < 8:
        raise ValueError(f"n_samples must be >= 8 for quadrature, got {n_samples}")
    if grid is not None:
        make_grid(grid)  # a bad grid fails here, before any compute
    grids = tuple(tuple(grid) if grid is not None else CONVENTIONS[s.conventions].grid(s.start) for s in specs)

    R = len(specs)
    mc = estimator == "mc"
    if mc:
        n, b = n_samples, f.type(1.0 / n_samples)
    else:
        nodes, b = quadrature_nodes(n_samples)
        nodes, b = nodes.astype(f), b.astype(f)
        n = nodes.size
    chunk = max(1, CHUNK_ELEMENTS // n)
    # groups of runs sharing (start, method, conventions, grid), cut into row chunks: one code path per chunk
    groups: dict[tuple, list[int]] = {}
    for i, s in enumerate(specs):
        groups.setdefault((STARTS.index(s.start), METHODS.index(s.method), s.conventions, grids[i]), []).append(i)
    work = []
    for (start, method, _, g), idx in sorted(groups.items()):
        start, method = STARTS[start], METHODS[method]
        xs, tw = (a.astype(f) for a in make_grid(g))
        for j in range(0, len(idx), chunk):
            rows = np.array(idx[j : j + chunk], dtype=int)
            sub = [specs[i] for i in rows]
            col = lambda name: np.array([getattr(s, name) for s in sub], dtype=f)[:, None]  # noqa: E731
            p_old = weighted_pdf(xs, 1 - col("new_weight"), f.type(TARGET_OLD[0]), f.type(TARGET_OLD[1]))
            p_new = weighted_pdf(xs, col("new_weight"), col("new_mean"), col("new_std"))
            k = Consts.of(sub)
            work.append(dict(start=start, method=method, rows=rows, k=k, kf=k.astype(f), xs=xs, tw=tw, p_old=p_old,
                             p_new=p_new, buf=None))

    seeds, seed_of = np.unique([s.seed for s in specs], return_inverse=True)
    streams = [np.random.SeedSequence(int(s)).spawn(2) for s in seeds]
    normal_rng = [np.random.default_rng(ss[0]) for ss in streams]
    uniform_rng = [np.random.default_rng(ss[1]) for ss in streams]
    method_of = np.array([s.method for s in specs])
    start_of = np.array([s.start for s in specs])
    # seeds whose normals / uniforms some run needs after step 0 (Self-SFT only needs step 0's)
    normals_later = np.zeros(len(seeds), bool)
    normals_later[np.unique(seed_of[method_of != "self_sft"])] = True
    uniforms_at_0 = np.zeros(len(seeds), bool)
    uniforms_at_0[np.unique(seed_of[np.isin(method_of, ("iter_sft", "self_sft")) & (start_of == "bi")])] = True
    uniforms_later = np.zeros(len(seeds), bool)
    uniforms_later[np.unique(seed_of[(method_of == "iter_sft") & (start_of == "bi")])] = True
    noise = np.zeros((len(seeds), n), dtype=f) if mc else None
    unif = np.zeros((len(seeds), n), dtype=f) if mc and uniforms_at_0.any() else None

    theta = initial_params(specs)
    params = np.empty((R, steps + 1, 5))
    acc_old = np.empty((R, steps + 1))
    acc_new = np.empty((R, steps + 1))
    params[:, 0] = theta
    for wk in work:
        acc_old[wk["rows"], 0], acc_new[wk["rows"], 0] = overlaps(wk["start"], theta[wk["rows"]], wk["xs"],
                                                                 wk["tw"], wk["p_old"], wk["p_new"])

    iterator = range(steps)
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(iterator, desc=f"toy fits ({R} runs)")
    for t in iterator:
        if mc:
            for j in range(len(seeds)):
                if t == 0 or normals_later[j]:
                    normal_rng[j].standard_normal(out=noise[j], dtype=f)
                if unif is not None and (uniforms_later[j] or (t == 0 and uniforms_at_0[j])):
                    uniform_rng[j].random(out=unif[j], dtype=f)
        for wk in work:
            start, method, rows, k = wk["start"], wk["method"], wk["rows"], wk["k"]
            th = theta[rows]
            thf = th.astype(f)
            if method == "self_sft" and wk["buf"] is not None:
                x, bw = wk["buf"]
            else:
                eps = noise[seed_of[rows]] if mc else nodes[None, :]
                u = unif[seed_of[rows]] if mc and method in ("iter_sft", "self_sft") and start == "bi" else None
                quad = not mc and not (method == "rkl" and estimator == "quadrature_new")
                x, bw = points(method, start, thf, eps, u, b, wk["kf"], quadrature=quad)
                if method == "self_sft":
                    wk["buf"] = (x, bw)
            grad = gradient(method, start, thf, x, bw, wk["kf"], importance=mc or start == "uni")
            th = update(start, th, grad, k, param)
            theta[rows] = th
            acc_old[rows, t + 1], acc_new[rows, t + 1] = overlaps(start, th, wk["xs"], wk["tw"], wk["p_old"],
                                                               wk["p_new"])
        params[:, t + 1] = theta
    return Fit(specs, params, acc_old, acc_new, estimator, param, grids)
