"""The toy KL experiment: fit a 1-D Gaussian mixture to a target's *new* mode with forward KL (SFT) or
reverse KL (RL), and measure how much of the *old* mode each fit destroys on the way.

Every model is a two-component mixture q = w N(mu_old, s_old) + (1 - w) N(mu_new, s_new); a uni-modal
start is the same mixture with w = 0, so all runs of a batch share one code path. Many runs (seeds x
learning rates x settings) advance together as ``(runs, samples)`` arrays; a run's randomness comes from
``numpy`` Generators seeded by its seed alone, so it gives the same numbers alone or inside any batch.

Parameters are (weight, mean, std) updated by plain gradient ascent, the weight clipped to [1e-3, 1 - 1e-3]
and the stds to >= 1e-3, as in the authors' published simulation. Its numerical conventions (a floor of
1e-12 on q's density and inside the reward's log, its overlap grids) are ``RunSpec(conventions="authors")``,
the default, which reproduces the paper's numbers; ``conventions="exact"`` drops the floors and reads
overlaps on a wide grid (``toy.conventions``). ``param="natural"`` (logit weight, log std) is the other
reading of the parameters, kept for comparison.

Modules, each importing only those above it:
``validate`` (checks of user values), ``conventions`` (floors and grids), ``mixture`` (Gaussian mixtures, the
target, the starts), ``specs`` (``RunSpec``, the paper's runs and its distance experiment, the chapter's
settings check), ``estimators`` (gradient estimates), ``readout`` (overlaps, ``Fit``, its reading and
summaries), ``engine`` (``simulate``), ``paper`` (readings of the setup against the paper's numbers,
noise-free fits), ``distance`` (the appendix distance experiment read out, both
conventions side by side).
"""

from ..core.validate import check_threshold
from .conventions import CONVENTION_LABELS, CONVENTIONS, GRID, Conventions
from .mixture import BI_START, TARGET_OLD, UNI_START, Mixture, normal_logpdf, normal_pdf, target
from .specs import (DISTANCE_EXPERIMENT, DISTANCE_RANGE, METHOD_LABELS, METHODS, PAPER, STARTS, RunSpec,
                    check_settings, distance_specs, grid_specs, paper_specs, with_seeds)
from .estimators import ESTIMATORS, gradient, points, quadrature_nodes
from .readout import (PARAM_NAMES, THRESHOLD, Fit, Reading, compare_with_paper, drop_at_gain, equal_gain_sentence,
                      lr_sweep_sentence, make_grid, overlaps, read, summarise)
from .engine import CHUNK_ELEMENTS, DTYPES, PARAMETRISATIONS, S_MIN, W_CLIP, initial_params, simulate, update
from .distance import (COLLAPSE_DROP, FLOOR_ABLATION_RUNS, carried_by, collapse_sentence, disagreements, distance_sentence,
                       distance_summary, distance_table, first_step_sentence, floor_ablation_sentence, floor_ablation_specs,
                       floor_ablation_table)
from .paper import READINGS, compare_readings, noise_free_fits, noise_free_table, noise_free_sentence, paper_sentence

__all__ = [
    "CONVENTIONS", "CONVENTION_LABELS", "Conventions", "DISTANCE_EXPERIMENT", "DISTANCE_RANGE", "check_settings",
    "distance_specs", "COLLAPSE_DROP", "collapse_sentence", "disagreements", "distance_sentence", "distance_summary",
    "distance_table", "first_step_sentence", "FLOOR_ABLATION_RUNS", "carried_by", "floor_ablation_sentence",
    "floor_ablation_specs", "floor_ablation_table", "READINGS", "compare_readings", "noise_free_fits",
    "noise_free_table", "noise_free_sentence", "paper_sentence", "equal_gain_sentence", "lr_sweep_sentence",
    "BI_START", "CHUNK_ELEMENTS", "DTYPES", "ESTIMATORS", "GRID", "METHODS", "METHOD_LABELS", "PAPER",
    "PARAMETRISATIONS", "PARAM_NAMES", "STARTS", "S_MIN", "TARGET_OLD", "THRESHOLD", "UNI_START", "W_CLIP",
    "Fit", "Mixture", "Reading", "RunSpec", "check_threshold", "compare_with_paper", "drop_at_gain", "gradient",
    "grid_specs", "initial_params", "make_grid", "normal_logpdf", "normal_pdf", "overlaps", "paper_specs",
    "points", "quadrature_nodes", "read", "simulate", "summarise", "target", "update", "with_seeds",
]
