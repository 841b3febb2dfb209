"""Freed memory kept for reuse within bounds (heap.py): a large tensor allocated again after being freed does not
page-fault afresh, where glibc's defaults hand it back to the kernel; what a phase freed goes back between phases.
Each case runs in its own process."""

import subprocess
import sys

import pytest

SCRIPT = """
import resource, sys, torch
from retain_utils.core.heap import keep_freed_memory
applied = keep_freed_memory() if sys.argv[1] == "keep" else None
def fresh():  # a 64 MiB tensor, written and freed, as a training step's gradients are, amid small objects
    torch.empty(16 * 2**20).fill_(1.0)
    return [str(i) * 3 for i in range(1000)]
for _ in range(20):  # the heap settles: freed blocks fit later ones once small objects stop splitting them
    fresh()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    fresh()
print(applied, (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) // 5)
"""


def page_faults(mode: str) -> tuple[str, int]:
    out = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, check=True).stdout
    applied, faults = out.split()
    return applied, int(faults)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_freed_memory_is_reused_instead_of_page_faulted_again():
    assert page_faults("default")[1] > 8000  # 16,384 pages of 4 KiB per 64 MiB: all of them, every time
    applied, faults = page_faults("keep")
    assert applied == "True" and faults < 500


BOUNDS = """
import sys, torch
from retain_utils.core import heap
def rss():
    return int(next(l for l in open("/proc/self/status") if l.startswith("VmRSS")).split()[1]) * 1024
assert heap.keep_freed_memory()
# First, on a heap with no free block that could hold it, a block over the threshold gets its own mapping.
# It is larger than the free top the heap may keep (TRIM_THRESHOLD), which could otherwise serve it, as could
# a free stretch left by the blocks below if it were measured after them.
huge = torch.empty(heap.TRIM_THRESHOLD // 4 + 2**20).fill_(1.0)
before = rss()
del huge
huge_released = before - rss()
keep = [str(i) * 3 for i in range(1000)]
blocks = [torch.empty(16 * 2**20).fill_(1.0) for _ in range(12)]  # 768 MiB from the heap, amid small objects
pinned = [str(i) * 3 for i in range(1000)]  # allocated after: the blocks' pages lie below them
base = rss()
del blocks
kept = base - rss()
heap.release_freed_memory()
released = base - rss()
print(kept >> 20, released >> 20, huge_released >> 20)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_freed_memory_is_kept_within_bounds_and_released_between_phases():
    kept, released, huge = map(int, subprocess.run([sys.executable, "-c", BOUNDS], capture_output=True, text=True,
                                                   check=True).stdout.split())
    assert kept < 600, "most freed pages stay resident for the next step (beyond the trim threshold the top goes)"
    assert released > 700, "release_freed_memory hands the freed pages back"
    assert huge > 500, "a block over MMAP_THRESHOLD goes back as soon as it is freed"


def test_load_model_and_training_keep_freed_memory(monkeypatch):
    from test_training import config, run  # the tiny GRPO run of the training tests

    from retain_utils.core import models
    from retain_utils.core.training import loop

    calls = []
    monkeypatch.setattr(models, "keep_freed_memory", lambda: calls.append("load_model"))
    monkeypatch.setattr(loop, "keep_freed_memory", lambda: calls.append("fit"))
    with pytest.raises(ValueError, match="unknown model"):  # set before the model is even looked for
        models.load_model("no-such-model", device="cpu")
    run(config(steps=1, eval_every=1))
    assert calls == ["load_model", "fit"]
