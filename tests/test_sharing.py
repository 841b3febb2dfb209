"""Points that run at once: each worker's share of the cores, the memory rule that decides which point starts
next, the peaks it reads, and a shared run whose workers really see their thread count."""

import json
import os

import pytest

from retain_utils.batch import campaign, sharing
from retain_utils.core import layout

GIB = 2**30


def test_each_worker_gets_an_equal_share_of_the_cores_and_at_least_one():
    assert sharing.threads_per_worker(2, cores=2) == 1
    assert sharing.threads_per_worker(1, cores=16) == 16
    assert sharing.threads_per_worker(3, cores=16) == 5
    assert sharing.threads_per_worker(4, cores=2) == 1
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="workers must be a positive integer"):
            sharing.threads_per_worker(bad, cores=2)


def test_a_point_starts_only_where_its_peak_fits_beside_the_running_ones():
    memory = 24 * GIB  # 0.9 of it: 21.6 GiB
    assert sharing.fits(12 * GIB, [], memory) and sharing.fits(None, [], memory), "alone, anything runs"
    assert not sharing.fits(12 * GIB, [12 * GIB], memory), "two ifeval GRPO points do not fit 24 GiB"
    assert sharing.fits(12 * GIB, [8 * GIB], memory)
    assert not sharing.fits(None, [1 * GIB], memory) and not sharing.fits(1 * GIB, [None], memory)
    # queue order, except that a point which does not fit lets the next one that does go first
    peaks = [12 * GIB, 12 * GIB, 7 * GIB, None]
    assert sharing.pick([0, 1, 2, 3], [], peaks, memory) == 0
    assert sharing.pick([1, 2, 3], [0], peaks, memory) == 2
    assert sharing.pick([1, 3], [0], peaks, memory) is None, "the queue waits for the running point"
    assert sharing.pick([1, 3], [0, 2], None, memory) == 1, "without peaks, plain queue order"
    # a point that reads another's runs waits until that one has finished, queued or running
    after = [None, 0, None, None]
    assert sharing.pick([0, 1, 2], [], None, memory, after) == 0
    assert sharing.pick([1, 2], [0], None, memory, after) == 2
    assert sharing.pick([1], [0], None, memory, after) is None
    assert sharing.pick([1], [2], None, memory, after) == 1, "once its point finished, it goes"


def test_peak_reads_what_the_kernel_recorded_and_none_otherwise(tmp_path):
    point = tmp_path / "abc"
    point.mkdir()
    assert sharing.peak(point, "02_rl_vs_sft") is None
    layout.results_file(point, "02_rl_vs_sft").write_text(json.dumps({"machine": {"peak_rss_bytes": 5 * GIB}}))
    assert sharing.peak(point, "02_rl_vs_sft") == 5 * GIB
    layout.results_file(point, "02_rl_vs_sft").write_text("{not json")
    assert sharing.peak(point, "02_rl_vs_sft") is None


def test_shared_workers_run_every_item_at_their_share_of_the_cores():
    todo = [("OMP_NUM_THREADS",), ("MKL_NUM_THREADS",), ("OMP_NUM_THREADS",)]
    got = dict(sharing.run_shared(todo, os.getenv, workers=2, cores=4))
    assert got == {0: "2", 1: "2", 2: "2"}
    got = dict(sharing.run_shared(todo, os.getenv, workers=3, peaks=[GIB, None, GIB], memory=100 * GIB, cores=2))
    assert got == {0: "1", 1: "1", 2: "1"}, "an item of unknown peak still runs (alone)"
    order = [i for i, _ in sharing.run_shared(todo, os.getenv, workers=2, cores=2, after=[None, 0, None])]
    assert sorted(order) == [0, 1, 2] and order.index(0) < order.index(1), "item 1 started after item 0 finished"
    with pytest.raises(ValueError, match=r"items \[0, 1\] wait for one another"):
        list(sharing.run_shared(todo[:2], os.getenv, workers=2, cores=2, after=[1, 0]))


def test_campaign_expects_each_points_peak_from_its_own_kind_else_the_calibration(tmp_path):
    def point(folder, notebook, target, peak, done=True):
        folder.mkdir(parents=True)
        (folder / layout.PARAMS_FILE).write_text(json.dumps(
            {"notebook": notebook, "profile": "campaign", "params": {"target": target}}))
        layout.results_file(folder, notebook).write_text(json.dumps({"machine": {"peak_rss_bytes": peak}}))
        if done:
            (folder / layout.DONE_FILE).write_text(json.dumps({"seconds": 1.0}))
    calib = tmp_path / "calibration"
    point(calib / "ifeval" / "a", "02_rl_vs_sft", "ifeval", 12 * GIB)
    point(calib / "ifeval" / "b", "02_rl_vs_sft", "ifeval", 6 * GIB)
    point(calib / "mmlu" / "c", "02_rl_vs_sft", "mmlu", 7 * GIB)
    camp = tmp_path / "campaign"
    point(camp / "02_rl_vs_sft" / "d", "02_rl_vs_sft", "mmlu", 9 * GIB)
    point(camp / "02_rl_vs_sft" / "e", "02_rl_vs_sft", "ifeval", 30 * GIB, done=False)  # still running: not read
    planned = [(camp / nb, campaign.sweep.Point(nb, "campaign", {"target": t}, "k"))
               for nb, t in (("02_rl_vs_sft", "mmlu"), ("02_rl_vs_sft", "ifeval"), ("03_ablations", "mmlu"),
                             ("02_rl_vs_sft", "countdown"))]
    assert campaign.expected_peaks(planned, camp, calib) == [9 * GIB, 12 * GIB, 7 * GIB, None]


def test_a_point_that_reads_chapter_2s_runs_waits_for_its_chapter_2_point(tmp_path):
    from retain_utils.batch.sweep import Point

    def point(notebook, target, seed):
        return tmp_path, Point(notebook, "campaign", {"target": target, "seeds": [seed]}, f"{notebook}{target}{seed}")

    todo = [point("02_rl_vs_sft", "mmlu", 0), point("03_ablations", "mmlu", 0), point("04_iterative_sft", "ifeval", 0),
            point("04_iterative_sft", "mmlu", 1), point("02_rl_vs_sft", "mmlu", 1)]
    # 04 on ifeval, seed 0: its chapter-2 point is finished (not in the list); 04 on mmlu, seed 1 waits for item 4
    assert campaign.reads_from(todo) == [None, 0, None, 4, None]
