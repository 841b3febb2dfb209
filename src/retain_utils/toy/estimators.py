"""Gradient estimates of the fits: every method is sum_i c_i * d log q(x_i) / d theta over weighted points x_i.

``points`` says where a method evaluates its expectation (Monte-Carlo samples or quadrature nodes), ``gradient``
turns those points into the ascent direction of (weight, mean, std) of both components.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .conventions import CONVENTIONS
from .mixture import LOG_SQRT_2PI
from .specs import RunSpec

ESTIMATORS = ("mc", "quadrature", "quadrature_new")


def _log_add_floor(a, log_floor):
    """log(exp(a) + exp(log_floor)), elementwise; np.logaddexp is exact too but ~10x slower here."""
    m = np.maximum(a, log_floor)
    return m + np.log1p(np.exp(-np.abs(a - log_floor)))


@dataclass
class Consts:
    """Per-run constants of a group of runs, shaped ``(rows, 1)`` to broadcast against points."""

    lr: np.ndarray
    slow: np.ndarray
    new_mean: np.ndarray
    new_std: np.ndarray
    log_reward_scale: np.ndarray
    log_floor: np.ndarray  # log of the reward floor; -inf where there is none
    log_density_floor: np.ndarray  # log of the floor added to q's density; -inf where there is none
    accept: np.ndarray

    @classmethod
    def of(cls, specs: Sequence[RunSpec]) -> "Consts":
        col = lambda v: np.array(v, dtype=float)[:, None]  # noqa: E731
        conv = [CONVENTIONS[s.conventions] for s in specs]
        with np.errstate(divide="ignore"):
            log_floor = np.log([c.reward_floor for c in conv])
            log_density_floor = np.log([c.density_floor for c in conv])
        return cls(
            lr=col([s.lr for s in specs]),
            slow=col([s.slow if s.start == "bi" else 0.0 for s in specs]),
            new_mean=col([s.new_mean for s in specs]),
            new_std=col([s.new_std for s in specs]),
            log_reward_scale=col(np.log([s.reward_scale for s in specs])),
            log_floor=col(log_floor),
            log_density_floor=col(log_density_floor),
            accept=col([s.accept_sigmas for s in specs]),
        )

    def astype(self, dtype) -> "Consts":
        return Consts(**{k: v.astype(dtype) for k, v in vars(self).items()})


def gradient(method: str, start: str, theta: np.ndarray, x: np.ndarray, b, k: Consts,
             importance: bool = True) -> np.ndarray:
    """The ascent direction ``(rows, 5)`` that ``method`` estimates from points ``x`` ``(rows, n)`` with
    weights ``b`` (a scalar 1/n for samples, or quadrature weights: each row sums to 1).

    fkl: d/dtheta of E_{x ~ p_new}[log q(x)] (x are samples of the target's new mode).
    rkl: REINFORCE, reward R = log(p_new(x) / q_new_w(x) / reward_scale), no baseline; x ~ q's new component and
         the score of the whole mixture importance-weighted by q(x) / q_new_w(x), q_new_w = (1-w) N(mu_new, s_new).
    iter_sft / self_sft: maximum likelihood on the points (of q) that the verifier accepts.
    ``importance=False``: rkl points already carry the importance weight (quadrature over both components).
    Written with in-place operations: this function is most of the toy's run time.
    """
    w, mu1, s1, mu2, s2 = (theta[:, i : i + 1] for i in range(5))
    bi = start == "bi"
    if np.isfinite(k.log_density_floor).any():
        return _gradient_floored(method, bi, theta, x, b, k, importance)
    z2 = x - mu2
    z2 /= s2
    z2sq = z2 * z2
    if bi:
        z1 = x - mu1
        z1 /= s1
        z1sq = z1 * z1
        # e = w N1(x) / ((1-w) N2(x)), so the old component's responsibility is r1 = e / (1 + e)
        e = z2sq - z1sq
        e *= 0.5
        e += np.log(w / (1 - w) * s2 / s1)
        np.clip(e, -_lim(x), _lim(x), out=e)
        np.exp(e, out=e)
    if method == "rkl":
        # reward log(p_new / q_new_w / reward_scale): the 1/sqrt(2 pi) of both densities cancel
        r = x - k.new_mean
        r /= k.new_std
        r *= r
        np.subtract(z2sq, r, out=r)
        r *= 0.5
        r += -np.log(k.new_std) - (np.log((1 - w) / s2) if bi else -np.log(s2)) - k.log_reward_scale
        r = _reward_floor(r, k)
        if importance:
            c2 = r * b  # c * r2 with c = b R q / q_new_w: the importance weight (1 + e) cancels r2
            c1 = c2 * e if bi else None  # c * r1 = b R e
        else:
            c2 = r * b
            if bi:
                c1 = e + 1.0
                np.divide(e, c1, out=c1)
                c1 *= c2
                c2 -= c1
    else:
        c = _sft_weights(method, x, b, k)
        if bi:
            c1 = e + 1.0
            np.divide(e, c1, out=c1)
            c1 *= c
            c2 = c - c1
        else:
            c2 = c
    if not bi:
        z1 = z1sq = c1 = None
    return _ascent(bi, theta, x, (z1, z1sq, z2, z2sq), c1, c2, c2)


def _gradient_floored(method: str, bi: bool, theta, x, b, k: Consts, importance: bool) -> np.ndarray:
    """``gradient`` with the floor f added to q's density (the authors' conventions, ``toy.conventions``).

    With q1 = w N1, q2 = (1-w) N2 and q = q1 + q2 + f:
    fkl / SFT: responsibilities r1 = q1 / q, r2 = q2 / q (no longer summing to 1 far from both components);
    the weight's score is (N1 - N2) / q = r1 / w - r2 / (1-w).
    rkl: importance weight q / (q2 + f); the score terms it multiplies give the coefficients
    b R q1 / (q2 + f) (old component), b R (new component's mean and std: the weight times 1 - r1 is 1) and,
    for the weight, (N1 - N2) / (q2 + f), i.e. new-component coefficient b R q2 / (q2 + f). The reward's q2
    carries no floor (as in the authors' code); a uni-modal reward uses log(q + f). ``importance=False``
    (quadrature over both components, nodes weighted by q / (1-w)): every coefficient times q2 / (q1 + q2).
    """
    w, mu1, s1, mu2, s2 = (theta[:, i : i + 1] for i in range(5))
    lf = k.log_density_floor
    z2 = (x - mu2) / s2
    z2sq = z2 * z2
    z1 = z1sq = l1 = None
    # log of the weighted component densities, normalising constants kept: the floor is added to a density
    l2 = -0.5 * z2sq + (np.log((1 - w) / s2) if bi else -np.log(s2)) - LOG_SQRT_2PI
    if bi:
        z1 = (x - mu1) / s1
        z1sq = z1 * z1
        l1 = -0.5 * z1sq + np.log(w / s1) - LOG_SQRT_2PI
    zs = (z1, z1sq, z2, z2sq)
    if method == "rkl":
        zp = (x - k.new_mean) / k.new_std
        r = -0.5 * zp * zp - np.log(k.new_std) - LOG_SQRT_2PI - k.log_reward_scale  # log p_new / reward_scale
        r -= l2 if bi else _log_add_floor(l2, lf)
        c2 = _reward_floor(r, k) * b
        if not bi:
            return _ascent(False, theta, x, zs, None, c2, c2)
        if not importance:
            c2 = c2 * np.exp(l2 - _log_add_floor(l1, l2))  # q2 / (q1 + q2)
        l2f = _log_add_floor(l2, lf)
        c1 = c2 * np.exp(np.clip(l1 - l2f, -_lim(x), _lim(x)))  # q1 / (q2 + f)
        c2w = c2 * np.exp(l2 - l2f)  # q2 / (q2 + f)
        return _ascent(True, theta, x, zs, c1, c2, c2w)
    c = _sft_weights(method, x, b, k)
    if not bi:
        return _ascent(False, theta, x, zs, None, c, c)
    lq = _log_add_floor(_log_add_floor(l1, l2), lf)
    c1, c2 = c * np.exp(l1 - lq), c * np.exp(l2 - lq)
    return _ascent(True, theta, x, zs, c1, c2, c2)


def _lim(x) -> float:
    return 60.0 if x.dtype == np.float32 else 600.0  # exp(lim) x reward x n stays finite


def _reward_floor(r, k: Consts):
    """log(exp(r) + reward floor), in place; skipped where the floor adds less than 1 ulp."""
    if np.isfinite(k.log_floor).any() and (r - k.log_floor).min() < 40:
        m = np.maximum(r, k.log_floor)
        r -= k.log_floor
        np.abs(r, out=r)
        np.negative(r, out=r)
        np.exp(r, out=r)
        np.log1p(r, out=r)
        r += m
    return r


def _sft_weights(method: str, x, b, k: Consts):
    """Point weights of maximum likelihood: all points (fkl), or those the verifier accepts, renormalised."""
    if method == "fkl":
        return np.broadcast_to(np.asarray(b, dtype=x.dtype), x.shape)
    ok = np.abs(x - k.new_mean) <= k.accept * k.new_std
    c = ok * b
    n_ok = c.sum(1, keepdims=True)
    c /= np.where(n_ok > 0, n_ok, x.dtype.type(1))
    return c


def _ascent(bi: bool, theta, x, zs, c1, c2, c2w) -> np.ndarray:
    """sum_i of the point coefficients times the scores: c1 for the old component, c2 for the new one's
    mean and std, c2w for the new component's part of the weight's score; ``zs`` = (z1, z1^2, z2, z2^2),
    the points standardised by each component."""
    w, s1, s2 = theta[:, 0], theta[:, 2], theta[:, 4]
    z1, z1sq, z2, z2sq = zs
    g = np.zeros((x.shape[0], 5))
    dot = lambda a, z: np.einsum("ij,ij->i", a, z)  # noqa: E731
    if bi:
        s_c1 = c1.sum(1)
        g[:, 0] = s_c1 / w - c2w.sum(1) / (1 - w)
        g[:, 1] = dot(c1, z1) / s1
        g[:, 2] = (dot(c1, z1sq) - s_c1) / s1
    g[:, 3] = dot(c2, z2) / s2
    g[:, 4] = (dot(c2, z2sq) - c2.sum(1)) / s2
    return g


def points(method: str, start: str, theta: np.ndarray, eps: np.ndarray, u, b, k: Consts, quadrature: bool = False):
    """Where ``method`` evaluates its expectation: ``x = loc + scale * eps``. Returns x and weights b.

    Monte Carlo (``eps`` standard-normal samples, b = 1/n): fkl samples the target's new mode, rkl q's new
    component, SFT the whole of q (component picked by uniforms ``u``). Quadrature (``eps`` the nodes of
    ``quadrature_nodes``, b their weights): where an expectation runs over the whole mixture, the first half
    of the nodes go to the old component; for rkl that is the importance-weighted E_{q_new}[R q/q_new_w ...]
    = E_q[R ...] / (1 - w), so its nodes carry the mixture weights over (1 - w) and no importance weight.
    """
    w, mu1, s1, mu2, s2 = (theta[:, i : i + 1] for i in range(5))
    if method == "fkl":
        return k.new_mean + k.new_std * eps, b
    if start == "uni" or (method == "rkl" and not quadrature):
        return mu2 + s2 * eps, b
    if not quadrature:  # SFT: Monte Carlo from the whole mixture
        return np.where(u < w, mu1 + s1 * eps, mu2 + s2 * eps), b
    m = eps.shape[1] // 2
    x = np.concatenate([mu1 + s1 * eps[:, :m], mu2 + s2 * eps[:, m:]], axis=1)
    w1, w2 = (w / (1 - w), np.ones_like(w)) if method == "rkl" else (w, 1 - w)
    bw = np.concatenate([2 * w1 * b[:m], 2 * w2 * b[m:]], axis=1)
    return x, bw



def quadrature_nodes(n: int, half_width: float = 8.0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` standard-normal nodes on [-half_width, half_width] and their weights (summing to 1), as two
    interleaved halves of ``n // 2`` nodes that each carry weight 1/2: together one uniform grid, or one
    half per mixture component."""
    m = n // 2
    z = np.linspace(-half_width, half_width, m)
    both = np.concatenate([z, z + (z[1] - z[0]) / 2])
    p = np.exp(-0.5 * both**2)
    p[:m] /= 2 * p[:m].sum()
    p[m:] /= 2 * p[m:].sum()
    return both, p


# ----------------------------------------------------------------------------------------------------
