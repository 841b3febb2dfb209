"""What every benchmark writes beside its times: the precision-relevant CPU flags and the matmul peak of a
dtype measured in the same process (machines here differ: AMX, AVX512-BF16 or AVX2 only)."""

from __future__ import annotations

import time
from pathlib import Path

import torch

from retain_utils import __version__
from retain_utils.core import provenance

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
FLAGS = provenance.CPU_FLAGS
cpu_flags = provenance.cpu_flags  # the precision-relevant flags of /proc/cpuinfo
ROOT = Path(__file__).resolve().parents[1]


def code_and_machine() -> dict:
    """The package version, git commit (and uncommitted paths) and CPU flags a result file was measured with,
    so that a result names the code and the machine behind it."""
    git = provenance.git_state(ROOT)
    return {"package_version": __version__, "commit": git["commit"], "dirty": git["dirty"], "cpu_flags": cpu_flags()}


def matmul_peak(dtype: torch.dtype = torch.float32, n: int = 2048, seconds: float = 2.0, warmup: int = 2) -> float:
    """Sustained FLOP/s of a square matmul in ``dtype`` (the machine's practical peak)."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    for _ in range(warmup):
        a @ b
    count, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        a @ b
        count += 1
    return 2 * n**3 * count / (time.perf_counter() - t0)
