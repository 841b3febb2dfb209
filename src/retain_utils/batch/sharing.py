"""How points that run at once share one machine: each worker gets an equal share of the cores as torch threads,
and a point starts only when its expected peak memory fits beside the running points' peaks.

On a 2-core CPU two one-thread points do ~1.35x the work of one two-thread point (``benchmarks/README.md``), but
a chapter-2 point on ifeval peaks at ~12 GiB in fp32, and two of them do not fit a 24 GiB machine without swap.
"""

from __future__ import annotations

import os
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from ..core.layout import read_record, results_file

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")  # a notebook's kernel inherits them: torch reads OMP's
MEMORY_SHARE = 0.9  # of the machine's memory that the running points' expected peaks may fill together


def threads_per_worker(workers: int, cores: int | None = None) -> int:
    """Each worker's torch threads: an equal share of the cores, at least one."""
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    return max(1, (cores or os.cpu_count() or 1) // workers)


def machine_memory() -> int:
    """This machine's physical memory in bytes."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def peak(point: str | Path, notebook: str) -> int | None:
    """The peak memory (bytes) a finished point's kernel recorded (``machine.peak_rss_bytes``), None if none."""
    try:
        value = (read_record(results_file(Path(point), notebook)).get("machine") or {}).get("peak_rss_bytes")
    except (OSError, ValueError):  # no results file, or an unreadable one
        return None
    return int(value) if isinstance(value, (int, float)) and value > 0 else None


def fits(expected: int | None, running: Sequence[int | None], memory: int) -> bool:
    """Whether a point expected to peak at ``expected`` bytes may start beside points expected to peak at
    ``running``: always when nothing runs; never beside or as a point of unknown peak."""
    if not running:
        return True
    if expected is None or any(p is None for p in running):
        return False
    return expected + sum(running) <= MEMORY_SHARE * memory


def pick(queue: Sequence[int], running: Sequence[int], peaks: Sequence[int | None] | None, memory: int,
         after: Sequence[int | None] | None = None) -> int | None:
    """The first queued item that ``fits`` beside the running ones (the first queued one without ``peaks``) and
    whose ``after`` item (one it reads results from) is neither queued nor running, or None: the queue waits for
    a running item to finish."""
    unfinished = {*queue, *running}
    for i in queue:
        if after is not None and after[i] is not None and after[i] in unfinished:
            continue
        if peaks is None or fits(peaks[i], [peaks[j] for j in running], memory):
            return i
    return None


def _call_with_threads(threads: int, call: Callable, args: tuple) -> Any:
    """In a worker process: set the thread variables the point's kernel will inherit, then run the point."""
    for name in THREAD_VARIABLES:
        os.environ[name] = str(threads)
    return call(*args)


def run_shared(todo: Sequence[tuple], call: Callable, workers: int, peaks: Sequence[int | None] | None = None,
               memory: int | None = None, cores: int | None = None,
               after: Sequence[int | None] | None = None) -> Iterator[tuple[int, Any]]:
    """Run ``call(*todo[i])`` for every i in ``workers`` spawned processes, each at ``threads_per_worker`` torch
    threads, yielding ``(i, result)`` as each finishes. With ``peaks`` (each item's expected peak bytes, None if
    unknown), the first queued item that ``fits`` beside the running ones starts next; without, items start in
    order. With ``after`` (per item, the index of an item it must wait for, or None), an item starts only once
    that one has finished (e.g. a point that reads another's runs). ``call`` must not raise (a sweep point records
    its own failure). Once stopped (an exception or a closed iterator) nothing more starts and the running items
    are waited for."""
    threads = threads_per_worker(workers, cores)
    memory = memory or machine_memory()
    queue, running = list(range(len(todo))), {}
    # spawn, not fork: the parent may be a Jupyter kernel with threads running
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"))
    try:
        while queue or running:
            while queue and len(running) < workers:
                chosen = pick(queue, list(running.values()), peaks, memory, after)
                if chosen is None:
                    break
                queue.remove(chosen)
                running[pool.submit(_call_with_threads, threads, call, todo[chosen])] = chosen
            if not running:  # nothing runs and nothing may start: the items wait for each other
                raise ValueError(f"items {queue} wait for one another (after: {list(after or [])})")
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                yield running.pop(future), future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
