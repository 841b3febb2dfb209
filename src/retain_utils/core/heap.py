"""Keep freed memory for the next step, within bounds: how glibc's malloc is set for CPU training.

By default glibc serves every block above a threshold (at most 32 MiB) with its own ``mmap`` and hands it back
to the kernel when freed, and trims the top of the heap as soon as 128 KiB of it are free. A training step
allocates and frees the same large tensors every time (a vocabulary-sized gradient is 113 MB for SmolLM2), so
each of them page-faults afresh on first touch: on a 2-core Xeon a GRPO step's forward + backward (~8 s) spent
2.9 s in the kernel on 622,000 page faults (package 0.5.0; benchmarks/PROFILE.md). Here blocks up to ``MMAP_THRESHOLD`` come
from the heap and up to ``TRIM_THRESHOLD`` of free memory stays at its top, so a step reuses the last one's
pages. Kept for ever, the free pages of a whole notebook (evaluation batches, reference passes, one run after
another) add up: ``release_freed_memory`` hands them back between those phases, once each, not every step.
Results are bitwise the same.
"""

from __future__ import annotations

import ctypes
import sys
from functools import lru_cache

M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3  # mallopt's parameters (<malloc.h>)
MMAP_THRESHOLD = 256 * 2**20  # bytes: larger blocks get their own mapping, handed back when freed
TRIM_THRESHOLD = 512 * 2**20  # bytes of free memory the heap's top keeps; beyond it the top goes back
TOP_PAD = 256 * 2**20  # bytes the heap grows by beyond a request: address space only until touched


@lru_cache(maxsize=1)
def _glibc():
    """glibc's handle with mallopt and malloc_trim typed, or None (not Linux, or another C library: musl and
    others have their own allocator, nothing to set)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt.argtypes, libc.mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
        libc.malloc_trim.argtypes, libc.malloc_trim.restype = [ctypes.c_size_t], ctypes.c_int
    except (OSError, AttributeError):
        return None
    return libc


def keep_freed_memory() -> bool:
    """Serve blocks up to ``MMAP_THRESHOLD`` from the heap and keep up to ``TRIM_THRESHOLD`` free at its top
    (glibc ``mallopt``); True if applied. Idempotent and process-wide; a no-op (False) without glibc."""
    libc = _glibc()
    return libc is not None and all(libc.mallopt(param, value) for param, value in (
        (M_MMAP_THRESHOLD, MMAP_THRESHOLD), (M_TRIM_THRESHOLD, TRIM_THRESHOLD), (M_TOP_PAD, TOP_PAD)))


def release_freed_memory() -> bool:
    """Hand every free page of the heap back to the kernel (glibc ``malloc_trim``), so that what one phase freed
    (an evaluation's KV caches, a finished run's model and optimizer) does not stay resident through the next;
    the next phase's first touches page-fault once. True if anything was released; a no-op without glibc."""
    libc = _glibc()
    return libc is not None and bool(libc.malloc_trim(0))
