"""Bad input, as a new user would type it, is refused before any compute: at the command line with exit status 2
and one line naming the parameter, in the API with a ValueError naming it; no model is loaded and no kernel
starts."""

import json
import math
from pathlib import Path

import pytest

from retain_utils import experiment, models, settings
from retain_utils.__main__ import main
from retain_utils.training import TrainConfig, resolve

NAN = float("nan")


@pytest.fixture(autouse=True)
def no_model(monkeypatch):
    """Any model load fails the test: every refusal must come before one."""
    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(models, "load_model", refuse)
    monkeypatch.setattr(experiment, "load_model", refuse)


# ----- the command line: (arguments, the parameter the one-line error names) -------------------------------------
RUN = [
    (["02_rl_vs_sft", "-p", "seeds", "5"], "seeds"),                 # an int where a list is expected
    (["02_rl_vs_sft", "-p", "seeds", "[-1]"], "seeds"),
    (["02_rl_vs_sft", "-p", "seeds", "[0, 0]"], "seeds"),
    (["02_rl_vs_sft", "-p", "seeds", "[0.5]"], "seeds"),
    (["02_rl_vs_sft", "-p", "lr_rl", "abc"], "lr_rl"),
    (["02_rl_vs_sft", "-p", "lr_rl", "-0.00001"], "lr_rl"),
    (["02_rl_vs_sft", "-p", "lr_sft", "NaN"], "lr_sft"),
    (["02_rl_vs_sft", "-p", "lr_sft", "Infinity"], "lr_sft"),
    (["02_rl_vs_sft", "-p", "methods", "sft"], "methods"),           # a string where a list is expected
    (["02_rl_vs_sft", "-p", "methods", '["dpo"]'], "methods"),
    (["02_rl_vs_sft", "-p", "methods", "[]"], "methods"),
    (["02_rl_vs_sft", "-p", "steps", "0"], "steps"),
    (["02_rl_vs_sft", "-p", "steps", "true"], "steps"),
    (["02_rl_vs_sft", "-p", "steps", "2.5"], "steps"),
    (["02_rl_vs_sft", "-p", "group_size", "1"], "group_size"),
    (["02_rl_vs_sft", "-p", "group_size", "2.5"], "group_size"),
    (["02_rl_vs_sft", "-p", "n_eval", "0"], "n_eval"),
    (["02_rl_vs_sft", "-p", "n_eval_target", "-3"], "n_eval_target"),
    (["02_rl_vs_sft", "-p", "batch_size", "0"], "batch_size"),
    (["02_rl_vs_sft", "-p", "target", "chess"], "target"),
    (["02_rl_vs_sft", "-p", "temperature", "0"], "temperature"),
    (["02_rl_vs_sft", "-p", "max_tokens", "0"], "max_tokens"),
    (["02_rl_vs_sft", "-p", "model", "3"], "model"),
    (["02_rl_vs_sft", "-p", "profile", "full"], "profile"),          # the runner sets it: --profile
    (["02_rl_vs_sft", "-p", "results_path", "X"], "results_path"),
    (["02_rl_vs_sft", "-p", "seed", "3"], "seed"),                   # not a parameter of 02 (seeds is)
    (["03_ablations", "-p", "ablations", '["dropout"]'], "ablations"),
    (["03_ablations", "-p", "ablations", "[]"], "ablations"),
    (["03_ablations", "-p", "beta", "-0.1"], "beta"),
    (["03_ablations", "-p", "self_sft_lrs", "[0]"], "self_sft_lrs"),
    (["03_ablations", "-p", "self_sft_steps", "[0]"], "self_sft_steps"),
    (["04_iterative_sft", "-p", "intervals", "[-1]"], "intervals"),
    (["04_iterative_sft", "-p", "intervals", "2"], "intervals"),
    (["01_toy_kl", "-p", "n_seeds", "1"], "n_seeds"),
    (["01_toy_kl", "-p", "seeds", "3"], "seeds"),                    # book/running.md once showed this
    (["01_toy_kl", "-p", "sweep_lrs", "[0.1, -1]"], "sweep_lrs"),
    (["01_toy_kl", "-p", "distances", '["far"]'], "distances"),
    (["05_results", "-p", "workers", "0"], "workers"),
    (["05_results", "-p", "sweep_dir", "/no/such/folder"], "sweep_dir"),
]
SWEEP = [
    (["01_toy_kl", "--grid", "n_seeds=0,1"], "n_seeds"),
    (["02_rl_vs_sft", "--grid", "seeds=5"], "seeds"),
    (["02_rl_vs_sft", "--grid", "lr_rl=abc"], "lr_rl"),
    (["02_rl_vs_sft", "--grid", "methods=sft"], "methods"),
    (["02_rl_vs_sft", "--grid", "profile=full"], "profile"),
    (["02_rl_vs_sft", "--grid", "results_path=X"], "results_path"),
    (["02_rl_vs_sft", "--grid", "steps=2,0"], "steps"),
    (["04_iterative_sft", "--grid", "intervals=[1],[-2]"], "intervals"),
]


def run_cli(argv, capsys) -> tuple[int, str]:
    try:
        status = main(argv)
    except SystemExit as e:  # argparse's own refusals (an unknown flag or profile)
        status = e.code
    return status, capsys.readouterr().err.strip()


@pytest.mark.parametrize("args, name", RUN, ids=[" ".join(a) for a, _ in RUN])
def test_run_refuses_a_bad_value_before_a_kernel_starts(args, name, tmp_path, capsys):
    out = tmp_path / "out"
    status, err = run_cli(["run", *args, "--profile", "smoke", "-o", str(out)], capsys)
    assert status == 2 and len(err.splitlines()) == 1 and (repr(name) in err or f"{name} " in err), err
    assert status == 2 and not out.exists(), "nothing may run or be written on bad input"


@pytest.mark.parametrize("args, name", SWEEP, ids=[" ".join(a) for a, _ in SWEEP])
def test_sweep_refuses_a_bad_value_before_any_point_runs(args, name, tmp_path, capsys):
    out = tmp_path / "sweep"
    status, err = run_cli(["sweep", *args, "--profile", "smoke", "-o", str(out)], capsys)
    assert status == 2 and len(err.splitlines()) == 1 and (repr(name) in err or f"{name} " in err), err
    assert not out.exists()


def test_run_and_sweep_refuse_the_same_values(tmp_path, capsys):
    for value in ("5", "[-1]", "[0, 0]"):
        run, _ = run_cli(["run", "02_rl_vs_sft", "--profile", "smoke", "-o", str(tmp_path / "r"), "-p", "seeds", value], capsys)
        grid, _ = run_cli(["sweep", "02_rl_vs_sft", "--profile", "smoke", "-o", str(tmp_path / "s"),
                           "--grid", f"seeds={value}"], capsys)
        assert run == grid == 2, value


def output_cases(tmp_path):
    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder")
    cases = [(a_file, "is a file"), (a_file / "sub", "cannot create")]
    if Path("/sys").is_dir():
        cases.append((Path("/sys/retain_utils_out"), "cannot create"))  # a read-only file system, even for root
    return cases


@pytest.mark.parametrize("command", ["run", "sweep"])
def test_output_folder_problems_are_one_line_errors(command, tmp_path, capsys):
    for out, message in output_cases(tmp_path):
        args = ["02_rl_vs_sft", "-p", "steps", "1"] if command == "run" else ["02_rl_vs_sft", "--grid", "steps=1"]
        status, err = run_cli([command, *args, "--profile", "smoke", "-o", str(out)], capsys)
        assert status == 2 and message in err and len(err.splitlines()) == 1, err


def test_argparse_refusals_exit_2_and_name_the_flag(capsys):
    status, err = run_cli(["run", "02_rl_vs_sft", "--profile", "huge"], capsys)
    assert status == 2 and "--profile" in err


# ----- the API: (call, the parameter the ValueError names) ---------------------------------------------------------
def setup(notebook="02_rl_vs_sft", **params):
    return lambda: settings.setup(notebook, "smoke", model=params.pop("model", "m"),
                                  target=params.pop("target", "mmlu"), **params)


def config(**kw):
    return lambda: resolve(TrainConfig(task="mmlu", **kw))


def toy_run_spec_nan():
    from retain_utils import toy
    toy.RunSpec(method="fkl", lr=0.1, new_mean=NAN)


def toy_bad_distances():
    from retain_utils import toy
    toy.grid_specs(["fkl"], [0.15], range(2), start="bi", new_mean=[NAN])


def toy_chapter_distances(value):
    def call():
        from retain_utils import profiles, toy
        toy.check_settings(profiles.apply("01_toy_kl", "smoke", distances=value), 0.9)
    return call


def generate_nan_temperature():
    from retain_utils.generation import generate
    model, tokenizer = models.tiny_model(seed=0)
    generate(model, tokenizer, [[{"role": "user", "content": "hi"}]], max_new_tokens=2, temperature=NAN)


API = [
    (setup(seeds=5), "seeds"),
    (setup(seeds=[-1]), "seeds"),
    (setup(seeds=[True]), "seeds"),
    (setup(methods="sft"), "methods"),
    (setup(methods=["sft", "dpo"]), "methods"),
    (setup(lr_rl="abc"), "lr_rl"),
    (setup(lr_sft=NAN), "lr_sft"),
    (setup(steps=True), "steps"),
    (setup(group_size=2.5), "group_size"),
    (setup(temperature=-0.5), "temperature"),
    (setup(target="chess"), "target"),
    (setup(model=""), "model"),
    (setup(profile_typo=1), "profile_typo"),
    (setup("03_ablations", ablations=["kl", "nope"], beta=0.05), "ablations"),
    (setup("03_ablations", ablations=["kl"], beta=NAN), "beta"),
    (setup("04_iterative_sft", intervals=[1.5]), "intervals"),
    (setup(target="countdown", n_eval=400), r"n_eval=400 asks mmlu \(another task here, target 'countdown'\).*<= 315"),
    (setup(n_eval_target=400), r"n_eval_target=400 asks mmlu \(the target"),
    (config(seed=-1), "seed"),
    (config(steps=True), "steps"),
    (config(group_size=2.5), "group_size"),
    (config(checkpoint_every=NAN), "checkpoint_every"),
    (config(lr=math.inf), "lr"),
    (config(temperature=NAN), "temperature"),
    (config(beta=-1.0), "beta"),
    (config(warmup_frac=NAN), "warmup_frac"),
    (config(keep_correct=1), "keep_correct"),
    (config(lora_rank=1.0), "lora_rank"),
    (config(eval_every=0), "eval_every"),
    (config(method="ppo"), "method"),
    (lambda: experiment.make_bench("m", "mmlu", 4, 0), "n_eval"),
    (lambda: experiment.make_bench("m", "chess", 4, 2), "task"),
    (toy_run_spec_nan, "new_mean"),
    (toy_bad_distances, "new_mean|distances"),
    (toy_chapter_distances(["far"]), "distances"),                   # notebook 01's setup, before any fit
    (toy_chapter_distances([4.5, NAN]), "distances"),
    (generate_nan_temperature, "temperature"),
]


@pytest.mark.parametrize("call, name", API)
def test_the_api_refuses_a_bad_value_naming_it(call, name):
    with pytest.raises(ValueError, match=name):
        call()


def test_an_mmlu_parquet_saved_by_pandas_with_an_aliases_column_loads(tmp_path):
    import pandas as pd

    from retain_utils.tasks.mmlu import load_mmlu

    rows = [json.loads(line) for line in (Path(__file__).parent / "data" / "mmlu_sample.jsonl").read_text().splitlines()]
    pd.DataFrame([{**r, "aliases": []} for r in rows]).to_parquet(tmp_path / "bank.parquet")
    assert len(load_mmlu(tmp_path / "bank.parquet")) == len(rows)


def test_the_table_is_large_enough():
    assert len(RUN) + len(SWEEP) + len(API) >= 40
