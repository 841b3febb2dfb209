"""What every benchmark writes beside its times: the precision-relevant CPU flags and the matmul peak of a
dtype measured in the same process (machines here differ: AMX, AVX512-BF16 or AVX2 only)."""

from __future__ import annotations

import time

import torch

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")


def cpu_flags() -> list[str]:
    """The precision-relevant flags of /proc/cpuinfo (empty where it cannot be read)."""
    try:
        line = next((x for x in open("/proc/cpuinfo").read().split("\n") if x.startswith("flags")), "")
    except OSError:
        return []
    return [f for f in FLAGS if f in line.split()]


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
