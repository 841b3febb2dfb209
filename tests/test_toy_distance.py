"""The distance experiment's read-outs (both conventions side by side, collapse shares with Wilson intervals,
computed prose) and the chapter's paper checks (readings, verdicts, noise-free table)."""

import math

import numpy as np
import pytest

from retain_utils import toy
from retain_utils.core.intervals import wilson_interval


@pytest.fixture(scope="module")
def far_summary():
    """The appendix's fastest runs at the paper's main and farthest distances, 4 seeds, 200 steps."""
    specs = toy.distance_specs([3.5, 6.5], range(4), runs=(("fkl", 0.15), ("rkl", 0.01)))
    return toy.distance_summary(toy.simulate(specs, 200, 500))


def test_wilson_interval():
    lo, hi = wilson_interval(0, 20)
    assert lo == 0 and hi == pytest.approx(0.161, abs=1e-3)  # (z^2 / n) / (1 + z^2 / n)
    lo, hi = wilson_interval(10, 20)
    assert lo == pytest.approx(0.299, abs=1e-3) and hi == pytest.approx(0.701, abs=1e-3)
    lo, hi = wilson_interval(20, 20)
    assert hi == 1.0 and lo == pytest.approx(1 - 0.161, abs=1e-3)
    assert wilson_interval(0, 0) == (0.0, 1.0)  # no trials: every proportion possible


def test_distance_specs_cover_the_appendix_experiment():
    specs = toy.distance_specs(toy.DISTANCE_EXPERIMENT["distances"], range(3))
    assert len(specs) == 3 * 5 * 3 * 2
    assert {(s.method, s.lr) for s in specs} == set(toy.DISTANCE_EXPERIMENT["runs"])
    assert {s.conventions for s in specs} == {"authors", "exact"} and {s.start for s in specs} == {"bi"}


def test_summary_counts_and_collapse(far_summary):
    s = far_summary
    assert len(s) == 2 * 2 * 2 and (s.seeds == 4).all()
    assert ((s.collapsed >= 0) & (s.collapsed <= s.seeds)).all()
    assert (s.collapsed_lo <= s.collapsed / s.seeds).all() and (s.collapsed / s.seeds <= s.collapsed_hi).all()
    fkl = s[(s.method == "fkl") & (s.new_mean == 6.5)].set_index("conventions")
    assert fkl.loc["authors", "reached"] == 4 and fkl.loc["exact", "reached"] == 0  # the floor carries it
    assert fkl.loc["authors", "step1_s_new"] < fkl.loc["exact", "step1_s_new"] / 3


def test_collapse_is_counted_from_the_final_drop():
    fit = toy.simulate(toy.distance_specs([6.5], range(3), conventions=("authors",), runs=(("rkl", 0.01),)), 30, 200)
    r = fit.read()
    for cut in (-1.0, 0.0, 0.02, 2.0):
        s = toy.distance_summary(fit, collapse_drop=cut)
        assert s.collapsed.iloc[0] == int((r.final_drop >= cut).sum())


def test_disagreements_and_prose_name_the_far_distance_only(far_summary):
    d = toy.disagreements(far_summary).set_index(["new_mean", "method", "lr"])
    assert not d.loc[(3.5, "fkl", 0.15), "disagree"] and not d.loc[(3.5, "rkl", 0.01), "disagree"]
    assert d.loc[(6.5, "fkl", 0.15), "disagree"]
    text = toy.distance_sentence(far_summary, 200)
    assert "At new-mode mean 3.5 the two conventions agree" in text and "They disagree at 6.5" in text
    assert "4/4 seeds reach Gain 0.9 with the floor, 0/4 without" in text
    assert "mean" in toy.first_step_sentence(far_summary) and "Reverse KL" in toy.collapse_sentence(far_summary, 200)


def test_distance_table_puts_the_conventions_side_by_side(far_summary):
    t = toy.distance_table(far_summary, 200)
    assert list(t.columns.get_level_values(0).unique()) == [toy.CONVENTION_LABELS["authors"], toy.CONVENTION_LABELS["exact"]]
    assert t.index.names == ["new-mode mean", "method", "learning rate"] and len(t) == 4
    assert all("±" in v or v == "-" for v in t.xs("Gain after 200 steps (mean ± sd)", axis=1, level=1).values.ravel())


def test_floor_ablation_attributes_each_far_result_to_one_floor():
    fit = toy.simulate(toy.floor_ablation_specs(6.5, range(3)), 200, 500)
    s = toy.distance_summary(fit)
    assert set(s.conventions) == set(toy.CONVENTIONS)
    assert toy.carried_by(s, "fkl", 0.15) == "the density floor"
    assert "density floor" in toy.floor_ablation_sentence(s, 200)
    assert len(toy.floor_ablation_table(s, 200)) == len(toy.CONVENTIONS)


def test_paper_checks_and_their_sentences():
    readings = toy.compare_readings([0, 1], 200)
    assert len(readings) == 1 + len(toy.READINGS) and "uni fkl 0.05" in readings.columns
    fits = {start: toy.simulate(toy.paper_specs(start, [0, 1]), toy.PAPER[start]["steps"], 200) for start in toy.STARTS}
    paper = toy.compare_with_paper(fits)
    assert set(paper.conventions) == {"authors"}
    verdict = toy.paper_sentence(paper)
    assert "uni-modal start" in verdict and "bi-modal start" in verdict and "authors' conventions" in verdict
    noise = toy.noise_free_table(paper, toy.noise_free_fits(200))
    assert len(noise) == len(paper) and noise.filter(like="noise-free").notna().all().all()
    assert "Uni-modal start: the noise-free fits" in toy.noise_free_sentence(noise)


def test_section_prose_from_tables():
    fit = toy.simulate(toy.grid_specs(["fkl", "rkl"], [0.01, 0.15], [0, 1]), 200, 300)
    text = toy.lr_sweep_sentence(toy.summarise(fit))
    assert "(lr 0.15)" in text and text.count("\n") == 1
    eg = toy.drop_at_gain(fit, [0.5])
    text = toy.equal_gain_sentence(eg, 0.5, 0.15)
    assert text.startswith("Drop when Gain first reaches 0.5") and "forward KL (SFT)" in text and "reverse KL (RL)" in text
