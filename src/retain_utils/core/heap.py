"""Keep freed memory for the next step: how glibc's malloc is set for CPU training.

By default glibc serves every block above a threshold (at most 32 MiB) with its own ``mmap`` and hands it back
to the kernel when freed, and trims the top of the heap as soon as it is free. A training step allocates and
frees the same large tensors every time (a vocabulary-sized gradient is 113 MB for SmolLM2), so each of them
page-faults afresh on first touch: on a 2-core Xeon a GRPO step's forward + backward (~8 s) spent 2.9 s in the
kernel on 622,000 page faults (package 0.5.0; benchmarks/PROFILE.md). Served from the heap and never trimmed, freed
memory stays mapped and is reused. Results are bitwise the same; the process keeps its peak memory.
"""

from __future__ import annotations

import ctypes
import sys

M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_MAX = -1, -2, -4  # mallopt's parameters (<malloc.h>)
NEVER_TRIM = 2**31 - 1  # bytes: mallopt takes a C int
TOP_PAD = 256 * 2**20  # bytes the heap grows by beyond a request: address space only until touched


def keep_freed_memory() -> bool:
    """Serve every allocation from the heap and never trim it (glibc ``mallopt``); True if applied.

    Idempotent and process-wide; a no-op (False) off Linux or where the C library is not glibc."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and others: their own allocator, nothing to set
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return all(mallopt(param, value) for param, value in
               ((M_MMAP_MAX, 0), (M_TRIM_THRESHOLD, NEVER_TRIM), (M_TOP_PAD, TOP_PAD)))
