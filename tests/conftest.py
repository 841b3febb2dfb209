"""Shared fixtures: tiny random models (built in memory, milliseconds) for the unit tests."""

import pytest
import torch

from retain_utils.core.models import tiny_model


def diverse_tiny_model(seed: int = 0, std: float = 0.3, **kw):
    """``tiny_model`` with weights drawn at std ``std``: at the usual 0.02 a tied-embedding tiny Llama just
    repeats its last input token, which would make generation tests vacuous."""
    model, tokenizer = tiny_model(seed=seed, **kw)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" not in name:
                p.copy_(torch.randn(p.shape, generator=gen) * std)
    return model, tokenizer


@pytest.fixture(scope="session")
def tiny():
    """A tiny random Llama (hidden 64, 2 layers, fp32, diverse outputs) and the byte-level ChatML tokenizer.
    Shared by the session: tests must not modify it."""
    return diverse_tiny_model(seed=0)


@pytest.fixture
def fresh_tiny():
    """A tiny model of one's own, for tests that train or modify it."""
    return diverse_tiny_model(seed=0)


@pytest.fixture(autouse=True)
def _no_campaign_environment(monkeypatch):
    """Every test sees the CPU's own default dtype and keeps no baseline across benches, and code that sets
    ``$RETAIN_UTILS_DTYPE`` or ``$RETAIN_UTILS_BASELINE_CACHE`` (the campaign) is undone after the test
    (monkeypatch restores a variable it set, not one it found absent)."""
    from retain_utils.core.baseline_cache import CACHE_ENV
    from retain_utils.core.models import DTYPE_ENV

    monkeypatch.setenv(DTYPE_ENV, "")
    monkeypatch.setenv(CACHE_ENV, "")


@pytest.fixture(autouse=True)
def _no_figure_left_open():
    """A test that draws on the current axes (``plt.gca()``) gets fresh ones, not another test's open figure."""
    yield
    import sys

    if "matplotlib.pyplot" in sys.modules:
        sys.modules["matplotlib.pyplot"].close("all")
