"""A notebook's settings, checked in one place: the same checks serve the notebooks' setup call, ``run -p`` and
``sweep --grid``, so a value refused by one is refused by all, before any model loads or kernel starts.

``setup(notebook, profile, **params)`` is an LLM notebook's first call: it resolves the profile, checks every
value (types and ranges), builds and checks the TrainConfig of every variant, and writes the settings to the
results file.
"""

from __future__ import annotations

import ast
import json
import math
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

from ..core.training import memory
from . import colab, profiles, variants
from ..core import results
from ..core.evaluation import LONGER_BUDGET
from ..core.models import EMBEDDED_MODEL, MODEL_ALIASES, cache_dir
from ..core.provenance import REPOSITORY
from ..core.tasks import EXTRA_TASK_NAMES, TASK_NAMES, get_task
from ..core.training import config as train_config
from ..core.training.config import METHOD_NAMES
from ..toy.specs import DISTANCE_RANGE, SWEEP_LR_RANGE
from ..core.validate import check_int_at_least, check_reals, check_threshold, is_int

# ----- validators: each raises ValueError naming the parameter ---------------------------------------------


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _int_at_least(minimum: int) -> Callable:
    return lambda name, value: check_int_at_least(name, value, minimum, say_positive=False)


def _positive_number(name, value):
    if not (_is_number(value) and value > 0):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")


def _non_negative_number(name, value):
    if not (_is_number(value) and value >= 0):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")


def _finite_number(name, value):
    if not _is_number(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")


def _optional(check: Callable) -> Callable:
    def optional(name, value):
        if value is not None:
            check(name, value)
    return optional


def _list_of(check: Callable, what: str) -> Callable:
    """A non-empty list without repeats, each item passing ``check``."""
    def check_list(name, value):
        if not isinstance(value, (list, tuple)) or not value:
            raise ValueError(f"{name} must be a non-empty list of {what}, got {value!r}")
        for item in value:
            try:
                check(name, item)
            except ValueError:
                raise ValueError(f"{name} must be a non-empty list of {what}, got {value!r}") from None
        if len({repr(v) for v in value}) < len(value):
            raise ValueError(f"{name} lists a value twice: {value!r}")
    return check_list


def _names_from(valid: tuple[str, ...]) -> Callable:
    """A list (possibly empty) of distinct names out of ``valid``."""
    def check(name, value):
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise ValueError(f"{name} must be a list of task names ({', '.join(valid)}; [] for none), got {value!r}")
        unknown = [v for v in value if v not in valid]
        if unknown:
            raise ValueError(f"unknown {name} {', '.join(map(repr, unknown))}; valid: {', '.join(valid)}")
        if len(set(value)) < len(value):
            raise ValueError(f"{name} lists a task twice: {value!r}")
    return check


def _one_of(valid) -> Callable:
    def check(name, value):
        if value not in valid:
            raise ValueError(f"unknown {name} {value!r}; valid: {', '.join(valid)}")
    return check


def _flag(name, value):
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}")


def _text(name, value):
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name} must be a non-empty string, got {value!r}")


def _optional_folder(name, value):
    from pathlib import Path

    if value is not None and not (isinstance(value, str) and Path(value).is_dir()):
        raise ValueError(f"{name} must be an existing folder (or None), got {value!r}")


def _reuse_folder(name, value):
    if value is None:
        return
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name} must be a folder path (absolute or relative to the repository) or None, "
                         f"got {value!r}")
    if reuse_folder(value).exists() and not reuse_folder(value).is_dir():
        raise ValueError(f"{name} {value!r} is a file, not a folder of finished points")


def reuse_folder(value: str | None) -> Path | None:
    """``reuse_runs_from`` as a path: relative paths are relative to the repository, so that a campaign point's
    parameters (and its key) are the same on every machine."""
    if value is None:
        return None
    path = Path(value)
    return path if path.is_absolute() else REPOSITORY / path


def _grid(name, value):
    if value is not None and (not isinstance(value, dict)
                              or not all(isinstance(v, list) and v for v in value.values())):
        raise ValueError(f"{name} must be a dict of parameter -> non-empty list of values ({{}}: no sweep; or None), "
                         f"got {value!r}")


# parameter name -> its check, shared by every notebook that declares it (same name, same meaning)
VALIDATORS: dict[str, Callable[[str, Any], None]] = {
    "model": _text,
    "target": _one_of(TASK_NAMES),
    "methods": _list_of(_one_of(METHOD_NAMES), f"methods ({', '.join(METHOD_NAMES)})"),
    "seeds": _list_of(_int_at_least(0), "ints >= 0"),
    "steps": _int_at_least(1),
    "n_train": _int_at_least(1),
    "n_eval": _int_at_least(1),
    "n_eval_target": _optional(_int_at_least(1)),
    "lr_sft": _positive_number,
    "lr_rl": _positive_number,
    "group_size": _int_at_least(2),
    "batch_size": _int_at_least(1),
    "eval_every": _int_at_least(1),
    "max_tokens": _optional(_int_at_least(1)),
    "temperature": _positive_number,
    "beta": _non_negative_number,
    "ablations": _list_of(_one_of(tuple(variants.ABLATIONS)), f"ablations ({', '.join(variants.ABLATIONS)})"),
    "self_sft_lrs": _list_of(_positive_number, "positive finite numbers"),
    "self_sft_steps": _list_of(_int_at_least(1), "ints >= 1"),
    "probe_tasks": _names_from(EXTRA_TASK_NAMES),
    "rescore_longer": _flag,
    "reuse_runs_from": _reuse_folder,
    "intervals": _list_of(_int_at_least(0), "ints >= 0 (steps between regenerations; 0 = never)"),
    # 01_toy_kl
    "n_seeds": _int_at_least(2),  # a spread over seeds needs two
    "n_samples": _int_at_least(1),
    "sweep_lrs": lambda name, value: check_reals(name, value, *SWEEP_LR_RANGE, why="learning rate"),
    "distances": lambda name, value: check_reals(name, value, *DISTANCE_RANGE, why="mean of the new mode"),
    "distance_seeds": _int_at_least(2),  # a spread over seeds needs two
    "threshold": lambda name, value: check_threshold(value),
    "distance_steps": _int_at_least(1),
    "anim_frames": _int_at_least(2),
    # 05_results
    "notebook": _one_of(tuple(profiles.PROFILES)),  # a notebook's name, never a path
    "sweep_dir": _optional_folder,
    "campaign_dir": _optional_folder,
    "grid": _grid,
    "workers": _int_at_least(1),
}


# ----- the check shared by run, sweep and setup ---------------------------------------------------------------

def _literal(default: str) -> Any:
    """The Python value of a declared default (``"3"`` -> 3); ``None`` when it is not a literal."""
    try:
        return ast.literal_eval(default)
    except (ValueError, SyntaxError, TypeError):
        return None


def fits(value: Any, example: Any) -> bool:
    """Does ``value`` have the type of ``example``? (An int is a fine float; a bool is not an int.)"""
    if isinstance(example, bool):
        return isinstance(value, bool)
    if isinstance(example, int):
        return is_int(value)
    if isinstance(example, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(example, (list, tuple)):
        return isinstance(value, list)
    for kind in (str, dict):
        if isinstance(example, kind):
            return isinstance(value, kind)
    return True


def example_of(notebook: str, profile: str, name: str, default: str | None) -> tuple[Any, str]:
    """A value of the parameter's type and where it comes from: its declared default, else its profile value
    (this profile's, else any profile's where this one leaves it at None)."""
    example = _literal(default) if default is not None else None
    if example is not None:
        return example, f"its default is {default}"
    table = profiles.PROFILES.get(notebook, {})
    for name_of_profile in [profile, *table]:
        if name_of_profile in table:
            value = profiles.values(notebook, name_of_profile).get(name)
            if value is not None:
                return value, f"its {name_of_profile} profile value is {value!r}"
    return None, ""


def check_value(notebook: str, profile: str, name: str, value: Any, default: str | None = None,
                what: str = "value") -> None:
    """One parameter value: of the type of its default or profile value, and in range (VALIDATORS). ``None``
    is always fine for a profile-controlled parameter (it takes the profile's value)."""
    if value is None and name in profiles.values(notebook, profile):
        return
    example, origin = example_of(notebook, profile, name, default)
    if example is not None and not fits(value, example):
        raise ValueError(f"{what} {value!r} for {name!r} does not parse as {type(example).__name__} ({origin}); "
                         f"values are JSON, e.g. {name} '{json.dumps(example)}'")
    if name in VALIDATORS:
        VALIDATORS[name](name, value)


# ----- an LLM notebook's setup ----------------------------------------------------------------------------------

KL_PROMPTS = 60  # held-out prompts per run for the KL to the initial model, over all tasks


@dataclass
class Setup:
    """What an LLM notebook runs: its checked settings, the variants and the task options."""

    notebook: str
    profile: str
    model: str
    target: str
    cfg: profiles.LLMSettings             # every setting, profile values filled in (``cfg.steps``, ``cfg.seeds``)
    variants: list                        # variants.Variant, in run order
    task_options: dict[str, dict] | None  # per task, e.g. the answer budget (max_tokens)
    budget: int                           # answer length in tokens, rollouts too
    run_dir: Path                         # where runs checkpoint (Google Drive when mounted: colab.run_folder)

    @property
    def task_names(self) -> tuple[str, ...]:
        """Every evaluated task: the paper's three, then the extra forgetting probes."""
        return task_names(self.cfg)

    @property
    def reuse_dir(self) -> Path | None:
        """Where finished runs identical to this notebook's may be read from (``reuse_runs_from``), or None."""
        return reuse_folder(getattr(self.cfg, "reuse_runs_from", None))

    @property
    def kl_prompts(self) -> int:
        """Held-out prompts the KL to the initial model is measured on, one response each, spread evenly over the
        tasks (``KL_PROMPTS`` in all: a run's KL is a mean over them; the drop-vs-KL correlation needs it to be
        more than sampling noise); a probe added to the tasks leaves its cost unchanged."""
        return min(KL_PROMPTS, 3 * self.cfg.n_eval)

    @property
    def budget_text(self) -> str:
        return f"{self.cfg.steps} steps x {self.cfg.batch_size} prompts"

    def table(self):
        """The settings this notebook runs with, one row each, as the setup cell shows them."""
        import pandas as pd

        rows = {"notebook": self.notebook, "profile": self.profile, "model": self.model, "target": self.target,
                **self.cfg.to_dict(), "variants": ", ".join(v.label for v in self.variants)}
        shown = {k: ("none" if v is None else ", ".join(map(str, v)) if isinstance(v, (list, tuple))
                     else f"{v:g}" if isinstance(v, float) else str(v)) for k, v in rows.items()}
        return pd.DataFrame({"Value": list(shown.values())}, index=pd.Index(list(shown), name="Setting"))

    def describe(self) -> str:
        return (f"{self.notebook} ({self.profile}): {self.model} on {self.target}, {len(self.variants)} variants x "
                f"{len(self.cfg.seeds)} seed(s): " + ", ".join(v.label for v in self.variants))


def checked(notebook: str, profile: str, /, **params: Any) -> SimpleNamespace:
    """Every parameter checked (types and ranges: ``check_value``), then the profile-controlled ones left at
    ``None`` filled from ``profile`` and checked in turn. Raises ValueError naming the parameter."""
    profiles.check_profile(profile)
    controlled = profiles.values(notebook, profile)
    unknown = sorted(set(params) - set(controlled) - set(VALIDATORS))
    if unknown:
        raise ValueError(f"{notebook}: unknown parameter(s) {', '.join(map(repr, unknown))}; "
                         f"known: {', '.join(sorted(set(controlled) | set(params) - set(unknown)))}")
    for name, value in params.items():
        check_value(notebook, profile, name, value)
    cfg = profiles.apply(notebook, profile, **{k: v for k, v in params.items() if k in controlled})
    for name in controlled:  # profile values pass the same checks
        if name in VALIDATORS:
            VALIDATORS[name](name, getattr(cfg, name))
    return SimpleNamespace(**vars(cfg), **{k: v for k, v in params.items() if k not in controlled})


def task_names(cfg) -> tuple[str, ...]:
    """Every task an LLM notebook evaluates: the paper's three, then its extra forgetting probes."""
    return TASK_NAMES + tuple(cfg.probe_tasks or ())


def _task_options(profile: str, max_tokens: int | None, names: tuple[str, ...] = TASK_NAMES) -> dict[str, dict] | None:
    """Per task, its options in this profile: the answer budget (``max_tokens``), and colab's hub datasets."""
    task_options = {t: {"max_new_tokens": max_tokens} for t in names} if max_tokens else None
    if profile == "colab":  # the hub datasets
        task_options = {t: options for t in names
                        if (options := {**colab.COLAB_TASK_OPTIONS.get(t, {}), **(task_options or {}).get(t, {})})}
    return task_options


def _model_of(profile: str, model: str) -> str:
    """The model a notebook loads: colab swaps the CPU-sized embedded default for its GPU-sized one."""
    return colab.COLAB_MODEL if profile == "colab" and model == EMBEDDED_MODEL else model


def context_length(model: str) -> int | None:
    """The model's context in tokens (``max_position_embeddings``) from a ``config.json`` already on this machine
    (the embedded model's converted copy, a local folder, the Hugging Face cache); None when there is none, and
    the check waits for ``generation.generate``. Reads no weights."""
    if model == EMBEDDED_MODEL:
        config = cache_dir() / EMBEDDED_MODEL / "config.json"
    elif Path(model).expanduser().is_dir():
        config = Path(model).expanduser() / "config.json"
    else:
        try:
            from huggingface_hub import try_to_load_from_cache

            cached = try_to_load_from_cache(MODEL_ALIASES.get(model.lower(), model), "config.json")
        except Exception:  # not a hub id: load_model names the problem
            return None
        config = Path(cached) if isinstance(cached, str) else None
    try:
        value = json.loads(config.read_text()).get("max_position_embeddings") if config else None
    except (OSError, ValueError, AttributeError):
        return None
    return value if is_int(value) and value > 0 else None


def _check_context(model: str, max_tokens: int | None) -> None:
    """The longest answer a run asks for (the ends are scored again at ``LONGER_BUDGET`` x ``max_tokens``) must
    leave room for a prompt in the model's context."""
    limit = context_length(model) if max_tokens else None
    if limit is not None and max_tokens * LONGER_BUDGET >= limit:
        raise ValueError(f"max_tokens={max_tokens} leaves no room for a prompt in {model}'s context of {limit} "
                         f"tokens (its config's max_position_embeddings) once the ends of training are scored again "
                         f"at {LONGER_BUDGET}x the budget: give max_tokens < {limit // LONGER_BUDGET}")


def check_run(notebook: str, profile: str, params: dict[str, Any], defaults: dict[str, str | None]) -> None:
    """The checks across values that an LLM notebook's ``setup`` makes in its kernel, made before one starts
    (``run``, ``sweep``): the profile's device, held-out sizes against the question banks, the answer budget
    against the model's context; for ``05_results`` every value of its sweep's grid. ``params``: the values
    given; ``defaults``: the declared defaults (text, as papermill reads them) of the others."""
    values = {**{name: _literal(text) if text is not None else None for name, text in defaults.items()}, **params}
    if notebook == "05_results":
        grid = values.get("grid")
        grid = profiles.values(notebook, profile).get("grid") if grid is None else grid
        swept = values.get("notebook")
        if isinstance(grid, dict) and swept in profiles.PROFILES:
            for name, listed in grid.items():
                if name in VALIDATORS or name in profiles.values(swept, profile):
                    for value in listed:
                        check_value(swept, profile, name, value, what=f"grid value of {swept}")
        return
    controlled = profiles.values(notebook, profile)
    if "n_eval" not in controlled:  # not an LLM notebook
        return
    try:
        colab.check_profile_device(profile)
    except RuntimeError as e:
        raise ValueError(str(e)) from None
    cfg = profiles.apply(notebook, profile, **{k: values[k] for k in controlled if k in values})
    target = values.get("target")
    if target in TASK_NAMES:
        names = task_names(cfg)
        _check_bank_sizes(cfg, target, _task_options(profile, cfg.max_tokens, names), names)
    if isinstance(values.get("model"), str):
        _check_context(_model_of(profile, values["model"]), cfg.max_tokens)


def _check_bank_sizes(cfg, target: str, task_options: dict | None, names: tuple[str, ...] = TASK_NAMES) -> None:
    """Held-out sizes against the fixed question banks (the offline mmlu bank), naming the parameter to change."""
    for name in names:
        options = (task_options or {}).get(name, {})
        if options.get("source") is not None:  # a hub or file source: checked when it loads
            continue
        task = get_task(name, **options)
        if not hasattr(task, "n_questions"):
            continue  # generated tasks draw as many as asked
        held_out = task.n_questions("eval")
        key = "n_eval_target" if name == target and getattr(cfg, "n_eval_target", None) is not None else "n_eval"
        if getattr(cfg, key) > held_out:
            role = "the target" if name == target else "another task"
            raise ValueError(f"{key}={getattr(cfg, key)} asks {name} ({role} here, target {target!r}) for more "
                             f"held-out questions than its bank holds ({held_out}): give {key} <= {held_out}")


def setup(notebook: str, profile: str, results_path=None, /, *, model: str, target: str, **params: Any) -> Setup:
    """An LLM notebook's settings: ``checked``, then every variant's TrainConfig built and checked, all before
    any model loads; then the settings written to the results file."""
    colab.check_profile_device(profile)  # the GPU-sized colab profile on a CPU-only machine: refused first
    model = _model_of(profile, model)  # the notebooks' default model is CPU-sized
    values = vars(checked(notebook, profile, model=model, target=target, **params))
    del values["model"], values["target"]
    cfg = profiles.LLMSettings.of(values)
    budget = cfg.max_tokens or get_task(target).max_new_tokens
    names = task_names(cfg)
    task_options = _task_options(profile, cfg.max_tokens, names)
    _check_bank_sizes(cfg, target, task_options, names)
    _check_context(model, cfg.max_tokens)
    chosen = variants.for_notebook(notebook, cfg, target, budget)
    for variant in chosen:
        try:
            train_config.resolve(variant.config)
        except ValueError as e:
            raise ValueError(f"variant {variant.label!r}: {e}") from None
    memory.check_before_load(model, [v.config for v in chosen])  # on CUDA: refuses a run that cannot fit
    results.save(results_path, notebook=notebook, config={**cfg.to_dict(), "model": model, "target": target})
    return Setup(notebook, profile, model, target, cfg, chosen, task_options, budget, colab.run_folder())
