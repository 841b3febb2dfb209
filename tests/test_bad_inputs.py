"""Bad input, as a new user would type it, is refused before any compute: at the command line with exit status 2
and one line naming the parameter, in the API with a ValueError naming it; no model is loaded and no kernel
starts."""

import errno
import json
import math
import os
import re
from pathlib import Path

import papermill
import pytest
import torch

from retain_utils.batch import campaign, runner, sweep
from retain_utils.chapters import experiment, settings
from retain_utils.core import layout, models, results
from retain_utils.__main__ import main
from retain_utils.core.training import TrainConfig, resolve

NAN = float("nan")


@pytest.fixture(autouse=True)
def no_model(monkeypatch):
    """Any model load fails the test: every refusal must come before one."""
    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(models, "load_model", refuse)
    monkeypatch.setattr(experiment, "load_model", refuse)


@pytest.fixture(autouse=True)
def no_kernel(monkeypatch):
    """Any kernel start fails the test (a fault test that means to run one patches papermill itself)."""
    def refuse(*args, **kwargs):
        raise AssertionError("a kernel was started")

    monkeypatch.setattr(papermill, "execute_notebook", refuse)


@pytest.fixture(autouse=True)
def embedded_config(tmp_path_factory, monkeypatch):
    """The embedded model's converted config.json (its context: 8192 tokens), as a first use leaves it in the
    cache, so the context-length checks read it here whether or not this machine converted the model."""
    cache = tmp_path_factory.mktemp("cache")
    (cache / models.EMBEDDED_MODEL).mkdir()
    (cache / models.EMBEDDED_MODEL / "config.json").write_text(json.dumps({"max_position_embeddings": 8192}))
    monkeypatch.setenv("RETAIN_UTILS_CACHE", str(cache))


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
    (["02_rl_vs_sft", "-p", "probe_tasks", '["chess"]'], "probe_tasks"),   # an unknown forgetting probe
    (["03_ablations", "-p", "probe_tasks", '["arithmetic", "arithmetic"]'], "probe_tasks"),
    (["04_iterative_sft", "-p", "probe_tasks", "arithmetic"], "probe_tasks"),  # a string where a list is expected
    (["03_ablations", "-p", "rescore_longer", "yes"], "rescore_longer"),  # a string where True / False is expected
    (["04_iterative_sft", "-p", "reuse_runs_from", "README.md"], "reuse_runs_from"),  # a file, not a folder
    (["03_ablations", "-p", "reuse_runs_from", "3"], "reuse_runs_from"),  # a number where a folder is expected
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
    (["02_rl_vs_sft", "-p", "campaign_dir", "/no/such/folder"], "campaign_dir"),
    (["03_ablations", "-p", "campaign_dir", "/no/such/folder"], "campaign_dir"),
    (["04_iterative_sft", "-p", "campaign_dir", "/no/such/folder"], "campaign_dir"),
    # the toy's values, checked by the runner as by the chapter's own check_settings
    (["01_toy_kl", "-p", "threshold", "5"], "threshold"),
    (["01_toy_kl", "-p", "threshold", "0"], "threshold"),
    (["01_toy_kl", "-p", "distance_seeds", "1"], "distance_seeds"),
    (["01_toy_kl", "-p", "distance_seeds", "2.5"], "distance_seeds"),
    (["01_toy_kl", "-p", "sweep_lrs", "[50]"], "sweep_lrs"),
    (["01_toy_kl", "-p", "sweep_lrs", "[0.1, 0.1]"], "sweep_lrs"),
    (["01_toy_kl", "-p", "distances", "[0.5]"], "distances"),
    (["01_toy_kl", "-p", "distances", "[4.5, 9]"], "distances"),
    # values checked together, as setup does in the kernel: bank sizes, the model's context
    (["02_rl_vs_sft", "-p", "n_eval", "400"], "n_eval"),
    (["02_rl_vs_sft", "-p", "n_eval_target", "400"], "n_eval_target"),
    (["04_iterative_sft", "-p", "n_eval", "1000"], "n_eval"),
    (["02_rl_vs_sft", "-p", "max_tokens", "100000"], "max_tokens"),
    (["03_ablations", "-p", "max_tokens", "8192"], "max_tokens"),
    # 05's notebook is a name of the project's notebooks, never a path; its grid is checked like a sweep's
    (["05_results", "-p", "notebook", "../../../../elsewhere/02_rl_vs_sft"], "notebook"),
    (["05_results", "-p", "notebook", "02_rl_vs_sft.ipynb"], "notebook"),
    (["05_results", "-p", "notebook", "chess"], "notebook"),
    (["05_results", "-p", "grid", '{"target": ["chess"]}'], "target"),
    (["05_results", "-p", "grid", '{"seeds": [5]}'], "seeds"),
    (["05_results", "-p", "grid", '{"steps": [1, 0]}'], "steps"),
    # a parameter given twice: which value was meant?
    (["02_rl_vs_sft", "-p", "steps", "0", "-p", "steps", "1"], "steps"),
    (["01_toy_kl", "-p", "n_seeds", "3", "-p", "n_seeds", "3"], "n_seeds"),
    # notebook names that are no notebook: a folder named like one, a name too long for the file system
    (["x.ipynb"], "notebook"),
    (["y" * 300], "notebook"),
]
SWEEP = [
    (["01_toy_kl", "--grid", "n_seeds=0,1"], "n_seeds"),
    (["02_rl_vs_sft", "--grid", "seeds=5"], "seeds"),
    (["02_rl_vs_sft", "--grid", "lr_rl=abc"], "lr_rl"),
    (["02_rl_vs_sft", "--grid", "lr_rl=5e-6,0"], "lr_rl"),              # a calibration grid with a non-positive rate
    (["02_rl_vs_sft", "--grid", "lr_sft=1e-4,-1e-5"], "lr_sft"),
    (["02_rl_vs_sft", "--grid", 'probe_tasks=["mmlu"]'], "probe_tasks"),  # a paper task is no extra probe
    (["02_rl_vs_sft", "--grid", "methods=sft"], "methods"),
    (["02_rl_vs_sft", "--grid", "profile=full"], "profile"),
    (["02_rl_vs_sft", "--grid", "results_path=X"], "results_path"),
    (["02_rl_vs_sft", "--grid", "steps=2,0"], "steps"),
    (["04_iterative_sft", "--grid", "intervals=[1],[-2]"], "intervals"),
    (["01_toy_kl", "--grid", "threshold=0.5,5"], "threshold"),
    (["01_toy_kl", "--grid", "distance_seeds=1"], "distance_seeds"),
    (["01_toy_kl", "--grid", "sweep_lrs=[50]"], "sweep_lrs"),
    (["01_toy_kl", "--grid", "distances=[0.5]"], "distances"),
    (["02_rl_vs_sft", "--grid", "n_eval=50,400"], "n_eval"),
    (["02_rl_vs_sft", "--grid", "max_tokens=100000"], "max_tokens"),
    (["05_results", "--grid", "notebook=../02_rl_vs_sft"], "notebook"),
    (["y" * 300, "--grid", "steps=1"], "notebook"),
]


def run_cli(argv, capsys) -> tuple[int, str]:
    try:
        status = main(argv)
    except SystemExit as e:  # argparse's own refusals (an unknown flag or profile)
        status = e.code
    return status, capsys.readouterr().err.strip()


@pytest.mark.parametrize("args, name", RUN, ids=[" ".join(a)[:80] for a, _ in RUN])
def test_run_refuses_a_bad_value_before_a_kernel_starts(args, name, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "x.ipynb").mkdir()  # a folder named like a notebook
    out = tmp_path / "out"
    status, err = run_cli(["run", *args, "--profile", "smoke", "-o", str(out)], capsys)
    assert status == 2 and len(err.splitlines()) == 1 and (repr(name) in err or f"{name} " in err), err
    assert status == 2 and not out.exists(), "nothing may run or be written on bad input"


@pytest.mark.parametrize("args, name", SWEEP, ids=[" ".join(a)[:80] for a, _ in SWEEP])
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
    cases = [(a_file, "is a file"), (a_file / "sub", "cannot create"),
             (tmp_path / ("n" * 300), "cannot create"),  # a name longer than the file system allows
             ("", "folder is empty"), ("  ", "folder is empty")]  # not "the current folder"
    if Path("/sys").is_dir():
        cases.append((Path("/sys/retain_utils_out"), "cannot create"))  # a read-only file system, even for root
    return cases


@pytest.mark.parametrize("command", ["run", "sweep"])
def test_output_folder_problems_are_one_line_errors(command, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for out, message in output_cases(tmp_path):
        args = ["02_rl_vs_sft", "-p", "steps", "1"] if command == "run" else ["02_rl_vs_sft", "--grid", "steps=1"]
        status, err = run_cli([command, *args, "--profile", "smoke", "-o", str(out)], capsys)
        assert status == 2 and message in err and len(err.splitlines()) == 1, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"], "nothing written beside the bad folders"


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
        from retain_utils.chapters import profiles
        from retain_utils import toy
        toy.check_settings(profiles.apply("01_toy_kl", "smoke", distances=value), 0.9)
    return call


def toy_simulate(**spec):
    def call():
        from retain_utils import toy
        toy.simulate([toy.RunSpec("fkl", 0.1, **spec)], 5)
    return call


def generate_beyond_the_context():
    from retain_utils.core.generation import generate
    model, tokenizer = models.tiny_model(seed=0)
    generate(model, tokenizer, [[{"role": "user", "content": "hi"}]], max_new_tokens=10**12)


def generate_nan_temperature():
    from retain_utils.core.generation import generate
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
    (setup(probe_tasks=["chess"]), "probe_tasks"),
    (setup("04_iterative_sft", rescore_longer=1), "rescore_longer"),
    (setup("04_iterative_sft", reuse_runs_from=""), "reuse_runs_from"),
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
    (toy_simulate(new_mean=100.0), r"new_mean .*\[-8, 8\]"),         # once NaN: no mass of the new mode on the grid
    (toy_simulate(new_mean=-30.0, conventions="exact"), "new_mean"),
    (toy_simulate(new_mean=11.0, start="uni"), r"new_mean .*\[-10, 10\]"),
    (generate_beyond_the_context, r"max_new_tokens=1000000000000 plus a prompt of \d+ tokens .* context of 2048"),
    (setup(model=models.EMBEDDED_MODEL, max_tokens=100000), "max_tokens=100000 .* context of 8192"),
    # the ends of training are scored again at 4x the budget: 2048 x 4 fills the context
    (setup(model=models.EMBEDDED_MODEL, max_tokens=2048), r"max_tokens=2048 .* context of 8192 .* max_tokens < 2048"),
    (setup(n_eval=400), "n_eval=400"),
    (lambda: settings.check_value("01_toy_kl", "smoke", "threshold", 1.5), "threshold"),
    (lambda: settings.check_value("01_toy_kl", "smoke", "distances", [0.5]), "distances"),
    (lambda: settings.check_value("05_results", "smoke", "notebook", "/elsewhere/evil"), "notebook"),
    (lambda: runner.output_folder(""), "output folder is empty"),
]


@pytest.mark.parametrize("call, name", API)
def test_the_api_refuses_a_bad_value_naming_it(call, name):
    with pytest.raises(ValueError, match=name):
        call()


def test_an_mmlu_parquet_saved_by_pandas_with_an_aliases_column_loads(tmp_path):
    import pandas as pd

    from retain_utils.core.tasks.mmlu import load_mmlu

    rows = [json.loads(line) for line in (Path(__file__).parent / "data" / "mmlu_sample.jsonl").read_text().splitlines()]
    pd.DataFrame([{**r, "aliases": []} for r in rows]).to_parquet(tmp_path / "bank.parquet")
    assert len(load_mmlu(tmp_path / "bank.parquet")) == len(rows)


# ----- point files and the campaign: (how the point folder is broken, what the one-line error names) ------------------
GOOD_PARAMS = {"notebook": "02_rl_vs_sft", "profile": "campaign", "params": {"target": "mmlu", "seeds": [0]},
               "key": "k"}
GOOD_RESULTS = {"runs": [{"variant": "SFT", "seed": 0, "gain": 10.0, "drop": 2.5}]}


def point_folder(folder: Path, params=GOOD_PARAMS, results_=GOOD_RESULTS, done=None) -> Path:
    """A committed point: each file as given (a dict is written as JSON, a str as it is, None not at all)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in ((layout.PARAMS_FILE, params), ("02_rl_vs_sft.results.json", results_),
                          (layout.DONE_FILE, done)):
        if content is not None:
            (folder / name).write_text(content if isinstance(content, str) else json.dumps(content))
    return folder


VERIFY = [  # (params.json, results JSON, what the error names)
    ({**GOOD_PARAMS, "notebook": "/elsewhere/evil.ipynb"}, GOOD_RESULTS, r"params.json: 'notebook' must be"),
    ({**GOOD_PARAMS, "notebook": "../../elsewhere/evil"}, GOOD_RESULTS, r"params.json: 'notebook' must be"),
    ({**GOOD_PARAMS, "notebook": "evil"}, GOOD_RESULTS, r"params.json names notebook 'evil', not one of"),
    ({k: v for k, v in GOOD_PARAMS.items() if k != "notebook"}, GOOD_RESULTS, r"params.json lacks 'notebook'"),
    ({**GOOD_PARAMS, "params": [1]}, GOOD_RESULTS, r"params.json: 'profile' must be a string and 'params' an object"),
    ({**GOOD_PARAMS, "profile": "huge"}, GOOD_RESULTS, r"params.json: unknown profile 'huge'"),
    ({**GOOD_PARAMS, "params": {"steps": 0}}, GOOD_RESULTS, r"params.json: steps must be an int >= 1"),
    ({**GOOD_PARAMS, "params": {"n_eval": 400}}, GOOD_RESULTS, r"params.json: n_eval=400 asks"),
    ('{"notebook": "02_rl_vs_sft", "profi', GOOD_RESULTS,
     r"params.json is not valid JSON: Unterminated string starting at line 1, column \d+"),
    ("[1, 2]", GOOD_RESULTS, r"params.json holds a list, not a JSON object"),
    (GOOD_PARAMS, '{"runs": [{"variant": "SF',
     r"02_rl_vs_sft.results.json is not valid JSON: .* at line 1, column \d+"),
    (GOOD_PARAMS, {"runs": []}, r"02_rl_vs_sft.results.json holds no runs: there is nothing to compare"),
    (GOOD_PARAMS, None, r"02_rl_vs_sft.results.json"),
]


@pytest.mark.parametrize("params, results_, message", VERIFY, ids=[m[:50] for *_, m in VERIFY])
def test_verify_trusts_no_point_file(params, results_, message, tmp_path, capsys):
    """``campaign --verify`` runs only the project's notebooks, with checked values, and only where there is a
    committed run to compare: anything else is one line naming the file, before a kernel starts."""
    point = point_folder(tmp_path / "point", params, results_)
    status, err = run_cli(["campaign", "--verify", str(point)], capsys)
    assert status == 2 and len(err.splitlines()) == 1 and re.search(message, err), err


@pytest.mark.parametrize("value", ["", "  ", "no/such/point"])
def test_verify_without_a_point_folder_starts_nothing(value, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(campaign, "run", lambda *a, **kw: pytest.fail("the whole campaign started"))
    status, err = run_cli(["campaign", "--verify", value], capsys)
    assert status == 2 and "--verify needs a point folder holding params.json" in err and len(err.splitlines()) == 1


def campaign_with_one_point(campaign_dir: Path, **files) -> Path:
    """A campaign folder whose first planned point of 02 is finished, with its files replaced as given."""
    folder, point = campaign.plan(campaign_dir)[0]
    params = {"notebook": "02_rl_vs_sft", "profile": point.profile, "params": point.params, "key": point.key}
    return point_folder(folder / point.key, **{"params": params, "results_": GOOD_RESULTS,
                                               "done": {"seconds": 600.0}, **files})


BROKEN = [  # a point file cut short or emptied: (its replacement, the file the note names)
    ({"done": "{}"}, "done.json lacks 'seconds'"),
    ({"done": '{"seconds": "long"}'}, "done.json: 'seconds' must be a number"),
    ({"done": '{"seconds": 6'}, "done.json is not valid JSON: Expecting ',' delimiter at line 1"),
    ({"results_": '{"runs": [{"varia'}, "02_rl_vs_sft.results.json is not valid JSON: Unterminated string"),
    ({"params": '{"notebook": "02_rl_vs_sft", "pro'}, "params.json is not valid JSON: Unterminated string"),
    ({"params": {"profile": "campaign", "params": {}}}, "params.json lacks 'notebook'"),
]


@pytest.mark.parametrize("files, message", BROKEN, ids=[m for _, m in BROKEN])
def test_a_point_with_a_file_cut_short_is_not_done_and_is_named(files, message, tmp_path, capsys):
    campaign_with_one_point(tmp_path / "c", **files)
    status, out = main(["campaign", "--status", "-o", str(tmp_path / "c")]), capsys.readouterr().out
    assert status == 0 and "02_rl_vs_sft: 0/15 done" in out and message in out, out
    assert campaign.finished(tmp_path / "c") == {}
    assert results.records(tmp_path / "c" / "02_rl_vs_sft") == []      # the chapter's loaders skip it
    table = results.points(tmp_path / "c" / "02_rl_vs_sft")
    assert list(table["status"]) == ["unreadable"] and message in table["error"][0]


def test_a_finished_point_counts_once_its_files_parse(tmp_path, capsys):
    campaign_with_one_point(tmp_path / "c")
    assert main(["campaign", "--status", "-o", str(tmp_path / "c")]) == 0
    assert "02_rl_vs_sft: 1/15 done" in capsys.readouterr().out


CAMPAIGN = [  # (arguments, what the one-line error names)
    (["--status", "-o", "/no/such/campaign"], "no campaign folder /no/such/campaign"),
    (["--status", "-o", ""], "-o/--output-dir is empty"),
    (["-o", " "], "-o/--output-dir is empty"),
    (["--limit", "-1"], "--limit must be a positive integer"),
]


@pytest.mark.parametrize("args, message", CAMPAIGN, ids=[" ".join(a) for a, _ in CAMPAIGN])
def test_campaign_refuses_before_running_a_point(args, message, capsys, monkeypatch):
    monkeypatch.setattr(sweep, "run_point", lambda *a, **kw: pytest.fail("a point ran"))
    status, err = run_cli(["campaign", *args], capsys)
    assert status == 2 and message in err and len(err.splitlines()) == 1, err


# ----- faults: a file cut short, a full disk, Ctrl-C ------------------------------------------------------------------
def fake_notebook(runs=GOOD_RESULTS["runs"]):
    """A stand-in for papermill: writes the executed copy and the results file, as a notebook that ran would."""
    def execute(source, executed, parameters, **kw):
        import nbformat  # the runner hands over the notebook object (its footprint cell appended)

        nbformat.write(source, executed) if isinstance(source, nbformat.NotebookNode) else \
            Path(executed).write_text(Path(source).read_text())
        results.save(parameters["results_path"], runs=runs)
    return execute


def test_a_results_file_cut_short_is_named_and_rerun(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(papermill, "execute_notebook", fake_notebook())
    sweep_dir = tmp_path / "sweep"
    grid = {"steps": [1]}
    first = sweep.run_sweep("02_rl_vs_sft", grid, "smoke", sweep_dir, progress=False)
    assert len(first.done) == 1
    key = first.done[0]
    saved = layout.results_file(sweep_dir / key, "02_rl_vs_sft")
    saved.write_text(saved.read_text()[:40])
    assert results.points(sweep_dir)["error"][0].startswith(f"{saved} is not valid JSON: ")
    with pytest.raises(ValueError, match=rf"{saved} is not valid JSON: .* at line \d+, column \d+"):
        results.load(saved)
    again = sweep.run_sweep("02_rl_vs_sft", grid, "smoke", sweep_dir, progress=False)
    assert again.done == [key] and not again.skipped
    assert results.load(saved)["runs"] == GOOD_RESULTS["runs"]


def full_disk(monkeypatch, after: int = 0):
    """Every atomic write after the first ``after`` fails as on a full disk."""
    calls = []
    original = results.write_atomic

    def write(path, fn):
        calls.append(path)
        if len(calls) > after:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return original(path, fn)

    monkeypatch.setattr(results, "write_atomic", write)


@pytest.mark.parametrize("after", [0, 1], ids=["params.json", "done.json"])
def test_a_full_disk_during_a_sweep_leaves_a_one_line_error_and_a_rerunnable_point(after, tmp_path, monkeypatch,
                                                                                    capsys):
    monkeypatch.setattr(papermill, "execute_notebook", fake_notebook())
    sweep_dir = tmp_path / "sweep"
    point = sweep.plan("02_rl_vs_sft", {"steps": [1]}, "smoke")[0]
    with monkeypatch.context() as m:
        full_disk(m, after)
        outcome = sweep.run_point(point, sweep_dir)   # documented never to raise
    assert outcome.status == "failed" and "No space left on device" in outcome.error
    assert len(outcome.error.splitlines()) == 1
    assert layout.finished_record(sweep_dir / point.key, point.notebook) is None
    assert sweep.run_point(point, sweep_dir).status == "done"

    with monkeypatch.context() as m:
        full_disk(m, after)
        status, err = run_cli(["sweep", "02_rl_vs_sft", "--grid", "steps=2", "--profile", "smoke",
                               "-o", str(sweep_dir)], capsys)
    lines = [line for line in err.splitlines() if line.strip() and "point/s" not in line]  # not the progress bar
    assert status == 1 and lines == [f"error: cannot read or write {sweep_dir / 'runs.csv'}: No space left on device"]


def test_a_full_disk_during_a_run_is_one_line(tmp_path, monkeypatch, capsys):
    def execute(source, executed, parameters, **kw):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(executed))

    monkeypatch.setattr(papermill, "execute_notebook", execute)
    status, err = run_cli(["run", "02_rl_vs_sft", "-p", "steps", "1", "--profile", "smoke", "-o",
                           str(tmp_path / "out")], capsys)
    assert status == 1 and err == (f"error: cannot read or write {tmp_path / 'out' / '02_rl_vs_sft.ipynb'}: "
                                   "No space left on device")


def test_ctrl_c_during_a_run_exits_130_and_marks_the_results_incomplete(tmp_path, monkeypatch, capsys):
    def execute(source, executed, parameters, **kw):
        results.save(parameters["results_path"], config={"steps": 1})  # the notebook's first cells ran
        raise KeyboardInterrupt

    monkeypatch.setattr(papermill, "execute_notebook", execute)
    status, err = run_cli(["run", "02_rl_vs_sft", "-p", "steps", "1", "--profile", "smoke", "-o",
                           str(tmp_path / "out")], capsys)
    assert status == 130 and len(err.splitlines()) == 1 and "interrupted" in err
    saved = results.load(tmp_path / "out" / "02_rl_vs_sft.results.json")
    assert saved["config"] == {"steps": 1} and saved["incomplete"].startswith("interrupted (Ctrl-C)")


def test_an_incomplete_results_file_is_not_a_finished_point(tmp_path):
    folder = point_folder(tmp_path / "p", results_={**GOOD_RESULTS, "incomplete": "interrupted"},
                          done={"seconds": 1.0})
    assert layout.finished_record(folder, "02_rl_vs_sft") is None


def test_result_files_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        results.write_json_atomic(tmp_path / "a.json", {"x": 1})
        point = point_folder(tmp_path / "sweep" / "k", params={**GOOD_PARAMS, "profile": "smoke"},
                             done={"seconds": 1.0})
        written = results.export_csv(tmp_path / "sweep")
    finally:
        os.umask(old)
    for path in [tmp_path / "a.json", *written]:
        assert oct(path.stat().st_mode & 0o777) == oct(0o644), path
    assert point.is_dir()


def test_colab_on_a_cpu_is_refused_before_any_kernel(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for args in (["run", "02_rl_vs_sft", "--profile", "colab", "-o", str(tmp_path / "out")],
                 ["book", "--profile", "colab"]):
        status, err = run_cli(args, capsys)
        assert status == 2 and "profile 'colab' is sized for a GPU" in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "out").exists()


def test_a_planted_checkpoint_is_refused_unloaded(tmp_path):
    import pickle

    from retain_utils.core.training.loop import read_checkpoint

    class Planted:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'pwned'}",))

    (tmp_path / "checkpoint.pt").write_bytes(pickle.dumps({"step": 1, "x": Planted()}))
    with pytest.raises(ValueError, match=r"checkpoint.pt is not a checkpoint this package wrote"):
        read_checkpoint(tmp_path / "checkpoint.pt")
    assert not (tmp_path / "pwned").exists()
    torch.save({"step": 1}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match=r"other.pt is not a checkpoint this package wrote \(it lacks"):
        read_checkpoint(tmp_path / "other.pt")


def test_no_module_of_the_package_loads_a_pickle_that_may_run_code():
    package = Path(runner.__file__).parent
    offenders = [p for p in package.rglob("*.py") if "weights_only=False" in p.read_text()]
    assert offenders == []


def test_the_table_is_large_enough():
    assert len(RUN) + len(SWEEP) + len(API) >= 40
    assert len(VERIFY) + len(BROKEN) + len(CAMPAIGN) >= 20
