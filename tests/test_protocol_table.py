"""The settings table: ours read from the trainers, TRL's from its installed defaults."""

import dataclasses

import pytest

from retain_utils.chapters import protocol
from retain_utils.core.training import config


def test_every_setting_has_our_value():
    assert set(protocol.ours()) == set(protocol.CITED)
    table = protocol.settings_table()
    assert list(table.index) == list(protocol.CITED)
    assert table.loc["Sampling temperature", "Ours"] == "0.8" and table.loc["Answer without EOS", "Ours"] == "reward 0"


def test_our_column_follows_the_trainers_defaults(monkeypatch):
    monkeypatch.setitem(config.DEFAULT_LR, "rl", 2e-5)
    assert protocol.ours()["RL learning rate"].startswith("2e-05")


def test_trl_column_is_read_from_trl():
    trl = pytest.importorskip("trl")
    from trl import GRPOConfig

    defaults = {f.name: f.default for f in dataclasses.fields(GRPOConfig)}
    table = protocol.settings_table()
    column = f"TRL {trl.__version__} GRPO default"
    assert table.loc["KL penalty beta", column] == str(defaults["beta"])
    assert table.loc["Samples per prompt", column] == str(defaults["num_generations"])
