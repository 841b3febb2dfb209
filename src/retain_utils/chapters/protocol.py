"""The training settings side by side: the paper's, the authors' released scripts' where they differ, TRL's GRPO
defaults (read from the installed ``trl``) and ours (read from ``training.config.resolve``), with the reason
wherever ours differ from the authors'.

The paper's and the authors' values are citations (arXiv:2510.18874 v3, its appendix; princeton-pli/
retaining-by-doing, ``scripts/rl.sh`` and ``scripts/sft.sh``); every other column is computed.
"""

from __future__ import annotations

import dataclasses

from ..core.training.config import TrainConfig, resolve

# setting -> (the paper's, the authors' scripts', why ours differ from the authors' where they do)
CITED = {
    "RL learning rate": ("5e-6", "5e-6", "chosen per target by calibration (CALIBRATION_SEEDS), sweep from 5e-6"),
    "RL schedule": ("not stated", "constant, no warm-up", ""),
    "SFT learning rate": ("1e-4 (1-1.5B models)", "1e-4 (5e-5 for 7-8B)", "calibrated for a 135M model"),
    "SFT schedule": ("cosine, 3 % warm-up", "cosine, 3 % warm-up", ""),
    "SFT batch (sequences)": ("not stated", "256", "a 2-core CPU: 8 per step, the learning rate calibrated for it"),
    "RL batch": ("not stated", "32 per step", "a 2-core CPU: 8 prompts x 5 samples per step"),
    "Samples per prompt": ("5", "5", ""),
    "Sampling temperature": ("0.8", "0.8", ""),
    "KL penalty beta": ("0.05", "0.05", ""),
    "KL estimator": ("0.5 (log pi - log pi_ref)^2", "0.5 (log pi - log pi_ref)^2", ""),
    "Log-probs taken at": ("not stated", "temperature 1", ""),
    "Answer without EOS": ("not stated", "reward 0", ""),
    "AdamW betas": ("not stated", "(0.9, 0.95)", ""),
    "Gradient clipping": ("not stated", "1.0", ""),
    "Epochs": ("2", "2", "a fixed step budget per target, chosen by calibration"),
    "Max new tokens (RL)": ("not stated", "3000", "each task's own budget: the 135M model's answers are short"),
}

# setting -> name of TRL GRPOConfig's field that holds its default
_TRL_FIELDS = {"RL learning rate": "learning_rate", "RL schedule": "lr_scheduler_type", "Samples per prompt":
               "num_generations", "Sampling temperature": "temperature", "KL penalty beta": "beta",
               "Gradient clipping": "max_grad_norm", "Max new tokens (RL)": "max_completion_length"}


def ours() -> dict[str, str]:
    """Our value of each setting in CITED, from the trainers' resolved defaults."""
    rl = resolve(TrainConfig(method="grpo", task="target"))
    sft = resolve(TrainConfig(method="sft", task="target"))
    return {
        "RL learning rate": f"{rl.lr:g} (default; the campaign: calibrated)",
        "RL schedule": f"{rl.lr_schedule}" + ("" if rl.lr_schedule == "constant" else f", {rl.warmup_frac:.0%} warm-up"),
        "SFT learning rate": f"{sft.lr:g} (default; the campaign: calibrated)",
        "SFT schedule": f"{sft.lr_schedule}, {sft.warmup_frac:.0%} warm-up",
        "SFT batch (sequences)": f"{sft.batch_size}",
        "RL batch": f"{rl.batch_size} prompts x {rl.group_size} samples",
        "Samples per prompt": f"{rl.group_size}",
        "Sampling temperature": f"{rl.temperature:g}",
        "KL penalty beta": f"{rl.beta:g}",
        "KL estimator": "0.5 (log pi - log pi_ref)^2" if rl.kl_estimator == "sq" else "k3",
        "Log-probs taken at": "temperature 1",
        "Answer without EOS": "reward 0" if rl.require_eos else "scored as any answer",
        "AdamW betas": f"({rl.adam_beta1:g}, {rl.adam_beta2:g})",
        "Gradient clipping": f"{rl.grad_clip:g}",
        "Epochs": "by steps",
        "Max new tokens (RL)": "the task's budget",
    }


def trl_defaults() -> dict[str, str]:
    """TRL's GRPOConfig field defaults for the settings it has ("" where it has none); {} without trl."""
    try:
        import trl
        from trl import GRPOConfig
    except ImportError:
        return {}
    fields = {f.name: f.default for f in dataclasses.fields(GRPOConfig)}
    out = {name: f"{fields[field]}" for name, field in _TRL_FIELDS.items() if field in fields}
    out["_version"] = trl.__version__
    out["_loss"] = str(fields.get("loss_type"))
    return out


def settings_table():
    """The comparison as a DataFrame, one row per setting."""
    import pandas as pd

    trl = trl_defaults()
    trl_column = f"TRL {trl['_version']} GRPO default" if trl else "TRL (not installed)"
    now = ours()
    rows = [{"Setting": name, "Paper": paper, "Authors' scripts": scripts, trl_column: trl.get(name, ""),
             "Ours": now[name], "Why ours differ": why} for name, (paper, scripts, why) in CITED.items()]
    return pd.DataFrame(rows).set_index("Setting")
