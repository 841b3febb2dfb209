"""What the LLM notebooks' runs say, against the paper: the comparisons, the paper's claims beside them and the
computed sentences each chapter ends with. Every sentence is built from the tables it is given."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import experiment, profiles
from ..analysis import forgetting, retention
from ..core import results
from ..core.intervals import t_quantile
from ..core.records import as_records
from ..core.tasks import TASK_NAMES, forgetting_tasks
from .variants import self_sft_label

# ----- 02: RL vs SFT ------------------------------------------------------------------------------------------


def rl_vs_sft_sentence(table, setup, n_eval_target: int) -> str:
    """02's sentence: which variant gained most and which dropped least, against the paper's ordering."""
    best_gain, least_drop = table["gain_mean"].idxmax(), table["drop_mean"].idxmin()
    cfg = setup.cfg
    return (f"On **{setup.target}** with `{setup.model}` ({len(cfg.seeds)} seed(s), {n_eval_target} held-out prompts "
            f"of the target and {cfg.n_eval} of each other task, {cfg.steps} steps): the largest mean gain is "
            f"**{best_gain}** ({table.loc[best_gain, 'gain_mean']:+.1f} pp), the smallest mean drop **{least_drop}** "
            f"({table.loc[least_drop, 'drop_mean']:+.1f} pp). The paper (Table 1, 7-8B models) finds GRPO with far "
            "less drop than SFT at a comparable gain; "
            + ("this run agrees on the ordering of drops." if least_drop == "GRPO" else
               "this run does **not** show GRPO forgetting least; see the caveats below."))


def rl_vs_sft_per_target_sentence(records: list) -> str:
    """``results.rl_vs_sft_verdict`` on a notebook's own runs (its plain GRPO and SFT variants)."""
    return results.rl_vs_sft_verdict(results.paper_table(results.runs_frame(records))[1])


# ----- 03: ablations --------------------------------------------------------------------------------------------

OWN_ANSWERS, STALE = "model's own vs expert answers (SFT)", "fresh vs stale rollouts"
# (factor, variant with it, variant without it)
COMPARISONS = [("KL penalty (GRPO)", "GRPO", "GRPO, β=0"), ("KL penalty (SFT)", "SFT + KL", "SFT"),
               ("baseline + std normalisation", "GRPO", "REINFORCE"),
               ("std normalisation", "GRPO", "GRPO, baseline only"), (STALE, "GRPO", "GRPO, stale rollouts"),
               (OWN_ANSWERS, "SFT on GRPO's rollouts", "SFT")]
PAPER = {  # the paper's conclusion for each comparison
    "KL penalty (GRPO)": "small: GRPO without the KL term forgets about as little (one exception)",
    "KL penalty (SFT)": "not tested in the paper",
    "baseline + std normalisation": "small: REINFORCE also forgets little (Table 1)",
    "std normalisation": "not tested separately",
    STALE: "not tested; the paper's account predicts stale (off-policy) rollouts forget more",
    OWN_ANSWERS: "large: on-policy data is the main factor",
    "lower Self-SFT learning rate": "Self-SFT can still forget badly; a smaller learning rate / fewer epochs "
                                    "trade gain for less drop",
}
PAPER["fewer Self-SFT steps (epochs)"] = PAPER["lower Self-SFT learning rate"]


def comparisons(cfg: profiles.LLMSettings) -> list[tuple[str, str, str]]:
    """03's comparisons for its settings: the fixed ones, and with the Self-SFT sweep its two."""
    chosen = list(COMPARISONS)
    if "self_sft" in cfg.ablations:
        low, high = min(cfg.self_sft_lrs), max(cfg.self_sft_lrs)
        few, many = min(cfg.self_sft_steps), max(cfg.self_sft_steps)
        chosen += [("lower Self-SFT learning rate", self_sft_label(low, many), self_sft_label(high, many)),
                   ("fewer Self-SFT steps (epochs)", self_sft_label(high, few), self_sft_label(high, many))]
    return chosen


def ablation_effects(records: list, cfg: profiles.LLMSettings):
    """``experiment.effects`` of every comparison both of whose variants ran, with the paper's conclusion."""
    ran = {r.variant for r in as_records(records)}
    table = experiment.effects(records, [c for c in comparisons(cfg) if c[1] != c[2] and {c[1], c[2]} <= ran])
    table["paper"] = table["factor"].map(PAPER)
    return table


def drop_sentence(effects, factor: str) -> str:
    """How much ``factor`` changes drop (mean ± sd over seeds), and whether that stands out of the spread over
    seeds: whether the seeds' 95 % t-interval of the effect excludes zero."""
    rows = effects.set_index("factor")
    if factor not in rows.index:
        return "was not run"
    effect, sd, n = rows.loc[factor, "drop_effect"], rows.loc[factor, "drop_effect_std"], rows.loc[factor, "seeds"]
    shown = round(effect, 1) + 0.0  # no "-0.0"
    if n < 2:
        return f"changes drop by {shown:+.1f} pp (a single seed: not a finding)"
    # beyond seed noise: the seeds' t-interval (t_{n-1} sd / sqrt(n) either side) excludes zero
    half = t_quantile(0.975, int(n) - 1) * sd / math.sqrt(n)
    return (f"changes drop by {shown:+.1f} ± {sd:.1f} pp over {n} seeds"
            + ("" if abs(effect) > half else ", within seed noise"))


def ablation_sentence(effects, table, setup) -> str:
    """03's closing paragraph: the largest factor, each factor's effect, and whether on-policy data leads as in
    the paper."""
    cfg = setup.cfg
    if effects.empty:
        return "No comparison had both of its variants run, so there is no factor to rank."
    largest = effects["factor"].iloc[0]
    on_policy_leads = largest in (OWN_ANSWERS, STALE) and effects["drop_effect"].iloc[0] > 0
    text = (f"On **{setup.target}** the largest effect on drop comes from **{largest}**. "
            f"The KL penalty in GRPO {drop_sentence(effects, 'KL penalty (GRPO)')}; GRPO's advantage normalisation "
            f"{drop_sentence(effects, 'baseline + std normalisation')}; fresh instead of stale rollouts "
            f"{drop_sentence(effects, STALE)}; the model's own answers instead of the expert's in SFT "
            f"{drop_sentence(effects, OWN_ANSWERS)}. "
            + ("Like the paper, on-policy data reduces drop more than the KL penalty and the advantage estimator do"
               if on_policy_leads else
               "Unlike the paper, on-policy data is **not** the largest factor *reducing* drop in this run")
            + (" (one seed: an illustration, not a finding)." if len(cfg.seeds) < 2 else "."))
    if "GRPO" in table.index:
        text += " " + experiment.not_learned("GRPO", table.loc["GRPO", "gain_mean"], cfg.n_eval, setup.budget_text)
    return text.strip()


def ablation_variants(setup, key: str, table) -> list[str]:
    """The variants of comparison ``key`` (a variants.ABLATIONS key) that ran, in run order."""
    return [v.label for v in setup.variants if key in v.ablations and v.label in set(table.index)]


def section_sentence(setup, key: str, labels: list[str]) -> str:
    """Why 03's Self-SFT section compares nothing when its profile runs a single setting; empty otherwise."""
    if key != "self_sft" or len(labels) >= 2:
        return ""
    full = profiles.apply(setup.notebook, "full")
    return (f"The `{setup.profile}` profile runs a single Self-SFT setting, so there is no sweep to compare here; "
            f"the `full` profile sweeps learning rates {full.self_sft_lrs} and step counts {full.self_sft_steps}.")


# ----- 04: Iterative-SFT -----------------------------------------------------------------------------------------


def recommendation(table, setup) -> str:
    """04's recommendation: among the Iterative-SFT settings with at least half of SFT's gain, the one that forgets
    least, its cost against GRPO's, and whether it reproduces the paper's finding."""
    cfg = setup.cfg
    iterative = [label for label in table.index if label.startswith("Iterative-SFT")]
    sft, grpo = table.loc["SFT"], table.loc["GRPO"]
    useful = table.loc[iterative][table.loc[iterative, "gain_mean"] >= 0.5 * max(sft["gain_mean"], 1e-9)]
    lines = [f"SFT: gain {sft['gain_mean']:+.1f}, drop {sft['drop_mean']:+.1f} pp, no sampling. "
             f"GRPO: gain {grpo['gain_mean']:+.1f}, drop {grpo['drop_mean']:+.1f} pp, "
             f"{grpo['gen_ktokens']:.1f}k generated tokens, {grpo['train_min']:.1f} training min per run."]
    if useful.empty:
        lines.append("No Iterative-SFT setting reached half of SFT's gain in this run, so none can be recommended "
                     "over SFT or GRPO from these numbers.")
    else:
        best = useful["drop_mean"].idxmin()
        row = useful.loc[best]
        lines.append(f"Of the Iterative-SFT settings with at least half of SFT's gain, **{best}** forgets least: gain "
                     f"{row['gain_mean']:+.1f}, drop {row['drop_mean']:+.1f} pp, {row['gen_ktokens']:.1f}k generated "
                     f"tokens ({row['gen_ktokens'] / max(grpo['gen_ktokens'], 1e-9):.0%} of GRPO's), "
                     f"{row['train_min']:.1f} training min. ")
        lines.append(f"Its drop is {'below' if row['drop_mean'] < sft['drop_mean'] else '**not** below'} SFT's "
                     f"and {'at or below' if row['drop_mean'] <= grpo['drop_mean'] else 'above'} GRPO's.")
        lines.append("The paper finds Iterative-SFT matching SFT's gain with mild or no forgetting; "
                     + ("this run is consistent with that" if row["drop_mean"] < sft["drop_mean"] else
                        "this run does not reproduce that") + f" ({len(cfg.seeds)} seed(s): "
                     + ("compare the differences with the spreads in the table)." if len(cfg.seeds) > 1 else
                        "a single seed, so read it as an illustration, not a finding)."))
    lines.append(experiment.not_learned("GRPO", grpo["gain_mean"], cfg.n_eval, setup.budget_text))
    return " ".join(lines)


def cost_sentence(table, variant: str, baseline: str = "GRPO") -> str:
    """What ``variant``'s training data cost against ``baseline``'s, from ``experiment.summary``: generated tokens
    and training minutes per run (the paper's cost axis for Iterative-SFT)."""
    missing = [v for v in (variant, baseline) if v not in table.index]
    if missing:
        return f"No runs of {' or '.join(missing)}: no cost to compare."
    row, base = table.loc[variant], table.loc[baseline]
    share = f" ({row['gen_ktokens'] / base['gen_ktokens']:.0%} of {forgetting.possessive(baseline)})" \
        if base["gen_ktokens"] > 0 else ""
    seeds = int(row["seeds"])
    return (f"**Cost:** {variant} generated {row['gen_ktokens']:.1f}k tokens per run for its training data{share} "
            f"and trained {row['train_min']:.1f} min per run against {forgetting.possessive(baseline)} "
            f"{base['gen_ktokens']:.1f}k and {base['train_min']:.1f} min (mean of {seeds} seed{'s' * (seeds != 1)}, "
            f"sampling included).")


# ----- 02: does SFT forget more than GRPO? ----------------------------------------------------------------------


@dataclass(frozen=True)
class Forgetting:
    """02's forgetting comparison of every method against GRPO, per seed: drop differences (pp) at the end and at
    matched gain, retention differences (nats/token), and the sentences built from their intervals."""

    differences: Any        # DataFrame: comparison, seed, at, drops, difference (pp) and its 95 % interval
    retention: Any          # DataFrame: comparison, seed, retention of each run and their difference (nats/token)
    gain_levels: tuple[float, ...]
    sentence: str           # the answer to "does SFT forget more than GRPO?"
    power: str              # the smallest detectable drop difference, beside the paper's


def _trajectory(record) -> list[dict]:
    if not record.evals:
        raise ValueError(f"run {record.variant!r} (seed {record.seed}) holds no per-question evaluations "
                         "(a results file from an older version): its drops cannot be paired")
    return [{"step": e["step"], "scores": e["correct"]} for e in record.evals]


def _best_gain(record) -> float:
    """The highest target gain (pp) over a run's evaluations, from counts as ``forgetting`` reads it."""
    first = record.evals[0]["correct"][record.target] if record.evals else None
    _trajectory(record)  # an older record fails here, with its reason
    return max(100.0 * (sum(e["correct"][record.target]) - sum(first)) / len(first) for e in record.evals)


def matched_gain_levels(runs: list, n: int = 3) -> tuple[tuple[float, ...], float]:
    """``n`` gain levels (pp) every run reaches: evenly up to the smallest best gain over the runs (rounded down
    to 0.1 pp); none when some run never gains. Also returns that smallest best gain."""
    top = min(_best_gain(r) for r in runs)
    if top <= 0:
        return (), top
    return tuple(sorted({math.floor(10 * top * k / n) / 10 for k in range(1, n + 1)} - {0.0})), top


def gain_sentence(pairs: list, labels: tuple[str, str]) -> str:
    """Which of the two variants' end gains on the target are not told apart from zero (their 95 % interval
    reaches 0), or "": a drop "at matched gain" then compares the methods at a gain within the noise."""
    weak = []
    for label, runs in zip(labels, zip(*pairs)):
        low = [r for r in runs if r.gain_interval is not None and r.gain_interval[0] <= 0]
        if len(runs) == 1 and low:
            lo, hi = low[0].gain_interval
            weak.append((label, f"({low[0].gain:+.1f} pp, 95 % interval {lo:+.1f} to {hi:+.1f})"))
        elif low:
            mean = sum(r.gain for r in runs) / len(runs)
            weak.append((label, f"in {len(low)} of {len(runs)} seeds (mean {mean:+.1f} pp)"))
    if len(weak) == 1:
        return f"{forgetting.possessive(weak[0][0])} gain {weak[0][1]} is not told apart from zero"
    if weak:
        return (f"{forgetting.possessive(weak[0][0])} gain {weak[0][1]} and "
                f"{forgetting.possessive(weak[1][0])} {weak[1][1]} are not told apart from zero")
    return ""


def seed_pairs(runs: list, a: str, b: str) -> list:
    """(run of ``a``, run of ``b``) for every seed both variants ran, in seed order."""
    by_key = {(r.variant, r.seed): r for r in runs}
    return [(by_key[(a, s)], by_key[(b, s)]) for s in sorted({r.seed for r in runs})
            if (a, s) in by_key and (b, s) in by_key]


def forgetting_comparison(records: list, *, baseline: str = "GRPO", gain_levels=None, level: float = 0.95,
                          n_boot: int = 2000) -> Forgetting:
    """Every variant's drop minus ``baseline``'s, paired on the same held-out questions within each seed, at the end
    and at ``gain_levels`` (pp; default ``matched_gain_levels`` of the runs), its retention difference, and the
    sentences: whether SFT forgets more than GRPO, and the smallest difference these evaluations could detect."""
    import pandas as pd

    runs = as_records(records)
    if gain_levels is not None:
        gain_levels = tuple(forgetting.check_gain_level(g) for g in gain_levels)  # refused before any compute
    variants = list(dict.fromkeys(r.variant for r in runs))
    if baseline not in variants or len(variants) < 2:  # e.g. a calibration run of one method: nothing to pair
        empty = pd.DataFrame(columns=["comparison", "seed"]).set_index(["comparison", "seed"])
        return Forgetting(empty, empty, (), f"No forgetting comparison: these runs ({', '.join(variants)}) hold no "
                          f"{baseline} run beside another method.", "")
    targets = sorted({r.target for r in runs})
    if len(targets) != 1:
        raise ValueError(f"runs of one target at a time; got targets {', '.join(targets)}")
    target = targets[0]
    pairs = [pair for v in variants if v != baseline for pair in seed_pairs(runs, v, baseline)]
    if not pairs:
        raise ValueError(f"no variant shares a seed with {baseline}: nothing to pair")
    involved = list({id(r): r for pair in pairs for r in pair}.values())
    top = None
    if gain_levels is None:
        gain_levels, top = matched_gain_levels(involved)
    low_name, high_name = f"{100 * level:g} % low", f"{100 * level:g} % high"
    rows, kept, sentences = [], [], {}
    for a, b in pairs:
        ta, tb = _trajectory(a), _trajectory(b)
        readings = [(forgetting.read_end(ta, target), forgetting.read_end(tb, target))]
        readings += [(forgetting.read_at_gain(ta, target, g), forgetting.read_at_gain(tb, target, g))
                     for g in gain_levels]
        comparison = f"{a.variant} - {b.variant}"
        for ra, rb in readings:
            d = forgetting.drop_difference(ra, rb, labels=(a.variant, b.variant), level=level, n_boot=n_boot)
            rows.append({"comparison": comparison, "seed": a.seed, "at": d.where, "method drop (pp)": d.drop_a,
                         f"{b.variant} drop (pp)": d.drop_b, "difference (pp)": d.difference,
                         f"{low_name} (pp)": d.low, f"{high_name} (pp)": d.high, "verdict": d.verdict,
                         "note": d.note})
            sentences.setdefault((a.variant, a.seed), []).append(forgetting.difference_sentence(d))
        if a.retention is not None and b.retention is not None:
            r = retention.retention_difference(retention.Retention.from_dict(a.retention),
                                               retention.Retention.from_dict(b.retention),
                                               labels=(a.variant, b.variant), level=level, n_boot=n_boot)
            kept.append({"comparison": comparison, "seed": a.seed,
                         "method retention (nats/token)": a.retention["mean"],
                         f"{b.variant} retention (nats/token)": b.retention["mean"],
                         "difference (nats/token)": r.difference, f"{low_name} (nats/token)": r.low,
                         f"{high_name} (nats/token)": r.high})
            sentences[(a.variant, a.seed)].append(
                _retention_sentence(r, sum(len(t["index"]) for t in a.retention["tasks"].values())))
    differences = pd.DataFrame(rows).set_index(["comparison", "seed", "at"])
    kept_frame = (pd.DataFrame(kept).set_index(["comparison", "seed"]) if kept else
                  pd.DataFrame(columns=["comparison", "seed"]).set_index(["comparison", "seed"]))
    focus = "SFT" if any(a.variant == "SFT" for a, _ in pairs) else pairs[0][0].variant
    pooled = pooled_comparisons([r for r in runs if r.variant in (focus, baseline)], [(focus, baseline)],
                                gain_levels=gain_levels, level=level, n_boot=n_boot)
    return Forgetting(differences, kept_frame, tuple(gain_levels),
                      _forgetting_sentence(pairs, sentences, gain_levels, top, baseline, focus, pooled),
                      _power(pairs, target, baseline, level))


def _retention_sentence(r, n: int) -> str:
    span = (f"{r.difference:+.3f} nats/token ({100 * r.level:g} % interval {r.low:+.3f} to {r.high:+.3f}, "
            f"on {n} initial answers)")
    if r.low == r.high:
        return (f"Retention: {r.a} minus {r.b} is {span}; the interval has no width, too few answers to resample, "
                "so it tells nothing apart.")
    if r.low > 0:
        return f"Retention: {r.a} keeps more of the initial answers' likelihood than {r.b}, {span}."
    if r.high < 0:
        return f"Retention: {r.a} keeps less of the initial answers' likelihood than {r.b}, {span}."
    return (f"Retention: {r.a} minus {r.b} is {span}, within ±{max(abs(r.low), abs(r.high)):.3f} nats/token "
            "of zero: not told apart.")


def _forgetting_sentence(pairs, sentences, levels, top, baseline, focus, pooled) -> str:
    text = f"**Does {focus} forget more than {baseline}?** "
    if not levels:
        text += (f"No matched-gain level: the smallest best gain among the runs is {top:+.1f} pp, so at least one "
                 "run never gains on the target and drops can only be compared at the end of training. "
                 if top is not None else "No matched-gain level was asked for. ")
    else:
        text += f"Matched-gain levels: {', '.join(f'{g:g}' for g in levels)} pp. "
    n_seeds = sum(a.variant == focus for a, _ in pairs)
    if n_seeds >= 2:
        text += (f"Over the {n_seeds} seeds (the interval a claim about the methods rests on): "
                 + _pooled_parts(pooled, focus, baseline) + ". Each seed alone, over its held-out questions only "
                 "(evaluation noise, not the spread over seeds): ")
    else:
        text += ("One seed: no seed-level interval exists, so what follows is over held-out questions only "
                 "(evaluation noise, not the spread over training seeds) and says how these two runs differ, "
                 "not the methods. ")
    for a, b in pairs:
        if a.variant == focus:
            text += f"Seed {a.seed}: " + " ".join(sentences[(a.variant, a.seed)]) + " "
            if note := gain_sentence([(a, b)], (a.variant, b.variant)):
                text += f"{note[0].upper()}{note[1:]}, so a matched gain there is matched within the noise. "
    return text.strip()


def _power(pairs, target: str, baseline: str, level: float) -> str:
    """The power sentence of SFT - ``baseline`` from the runs' final evaluations (mean discordance over seeds)."""
    sft = [(a, b) for a, b in pairs if a.variant == "SFT"]
    papered = sorted(forgetting.PAPER_DROPS["Llama-3.1-8B"])
    if not sft or baseline not in papered or target not in forgetting.PAPER_DROPS["Llama-3.1-8B"]["SFT"]:
        return f"No SFT - {baseline} comparison on a target of the paper's Table 1: no power statement."
    others = forgetting_tasks(sft[0][0].n_eval, target)
    psi = [forgetting.discordance(a.evals[-1]["correct"], b.evals[-1]["correct"], others) for a, b in sft]
    mean_psi = {t: float(np.mean([p[t] for p in psi])) for t in others}
    if not any(mean_psi.values()):
        return (f"SFT and {baseline} answered every held-out question of the other tasks alike (discordance 0), so "
                "these runs give no estimate of the smallest drop difference this chapter could detect.")
    per_seed = [forgetting.read_end(_trajectory(a), target).drop - forgetting.read_end(_trajectory(b), target).drop
                for a, b in sft]
    return forgetting.power_sentence({t: sft[0][0].n_eval[t] for t in others}, mean_psi, target, a="SFT", b=baseline,
                                     level=level, seed_differences=per_seed)


# ----- 05: the committed campaign -------------------------------------------------------------------------------

POOLED_COLUMNS = ["target", "comparison", "at", "seeds", "drop a (pp)", "drop b (pp)", "difference (pp)", "low (pp)",
                  "high (pp)", "interval over", "seeds reached", "seed sd (pp)", "detectable (pp)",
                  "questions low (pp)", "questions high (pp)", "verdict", "note", "gain note"]


def pooled_comparisons(records: list, comparisons: list[tuple[str, str]], *, gain_levels=None, level: float = 0.95,
                       n_boot: int = 2000):
    """For one target, each (a, b) of ``comparisons``: a's drop minus b's pooled over the seeds both ran
    (``forgetting.pooled_difference``), at the end and at matched gain levels (default: ``matched_gain_levels``
    of that comparison's runs). One row per (comparison, at); comparisons with a missing variant are left out.
    ``low``-``high`` is the seeds' t-interval ("interval over" "seeds"; with one seed the questions' interval,
    "questions"), what the verdict reads; ``detectable`` the smallest difference those seeds detect (80 % power);
    ``questions low``-``high`` the interval over held-out questions only, the second view."""
    import pandas as pd

    runs = as_records(records)
    targets = sorted({r.target for r in runs})
    if len(targets) != 1:
        raise ValueError(f"runs of one target at a time; got targets {', '.join(targets) or 'none'}")
    target = targets[0]
    paired = {(a, b): pairs for a, b in comparisons if (pairs := seed_pairs(runs, a, b))}
    if gain_levels is not None:
        gain_levels = tuple(forgetting.check_gain_level(g) for g in gain_levels)  # refused before any compute
    rows = []
    for (a, b), pairs in paired.items():
        # default levels per comparison: those both variants reach in every seed (a third variant's small gain
        # must not cap them)
        levels = gain_levels if gain_levels is not None else matched_gain_levels([r for pair in pairs for r in pair])[0]
        trajectories = [(_trajectory(ra), _trajectory(rb)) for ra, rb in pairs]
        weak = gain_sentence(pairs, (a, b))
        readers = [lambda ev: forgetting.read_end(ev, target)]
        readers += [lambda ev, g=g: forgetting.read_at_gain(ev, target, g) for g in levels]
        for read in readers:
            d = forgetting.pooled_difference([(read(ta), read(tb)) for ta, tb in trajectories], labels=(a, b),
                                             level=level, n_boot=n_boot)
            rows.append({"target": target, "comparison": f"{a} - {b}", "at": d.where, "seeds": len(pairs),
                         "drop a (pp)": d.drop_a, "drop b (pp)": d.drop_b, "difference (pp)": d.difference,
                         "low (pp)": d.low, "high (pp)": d.high, "interval over": d.basis, "seeds reached": d.seeds,
                         "seed sd (pp)": d.seed_sd, "detectable (pp)": d.detectable(),
                         "questions low (pp)": d.question_low, "questions high (pp)": d.question_high,
                         "verdict": d.verdict, "note": d.note, "gain note": weak})
    return pd.DataFrame(rows, columns=POOLED_COLUMNS)


def _pooled_part(row, a: str, b: str) -> str:
    """One ``pooled_comparisons`` row as a clause: where, the difference, its interval saying what it is over, the
    verdict; over seeds with the smallest detectable difference when not told apart, and the question-level view
    when it would have told them apart."""
    at = "at the end of training" if row["at"] == "end" else f"at matched {row['at']}"
    diff, lo, hi = row["difference (pp)"], row["low (pp)"], row["high (pp)"]
    q_lo, q_hi = row["questions low (pp)"], row["questions high (pp)"]
    claimed = row["verdict"] != "not told apart"
    if row["interval over"] == "seeds":
        n = int(row["seeds reached"])
        span = f"{diff:+.1f} pp (95 % interval over {n} seeds {lo:+.1f} to {hi:+.1f}, t with {n - 1} df)"
        verdict = row["verdict"]
        if not claimed:
            beyond = (f"; over held-out questions alone {q_lo:+.1f} to {q_hi:+.1f}, beyond the evaluation noise but "
                      "not beyond the spread over seeds" if q_lo > 0 or q_hi < 0 else "")
            verdict += f" ({n} seeds detect {row['detectable (pp)']:.1f} pp with 80 % power{beyond})"
    else:
        span = (f"{diff:+.1f} pp (one seed, so no seed-level interval; 95 % interval over held-out questions only "
                f"{lo:+.1f} to {hi:+.1f})")
        verdict = row["verdict"] + (" in this seed, not tested against the spread over seeds" if claimed else "")
    return f"on {row['target']}, {at}, {forgetting.possessive(a)} drop minus {forgetting.possessive(b)} is {span}: " \
           f"{verdict}"


def headline_rows(frame, a: str, b: str, at: str = "matched") -> list:
    """Per target (in the frame's order), the ``pooled_comparisons`` row of ``a - b`` a sentence reads: with ``at``
    "matched", the highest matched gain every seed reached, else the end; with ``at`` "end", the end."""
    if at not in ("matched", "end"):
        raise ValueError(f"at must be 'matched' or 'end', got {at!r}")
    rows = frame[frame["comparison"] == f"{a} - {b}"] if len(frame) else frame
    out = []
    for _, sub in rows.groupby("target", sort=False):
        matched = sub[(sub["at"] != "end") & sub["difference (pp)"].notna()] if at == "matched" else sub.iloc[:0]
        out.append(matched.iloc[-1] if len(matched) else sub[sub["at"] == "end"].iloc[0])
    return out


def _pooled_parts(frame, a: str, b: str, at: str = "matched") -> str:
    """Per target, ``_pooled_part`` of ``a - b`` at its ``headline_rows`` row, with the gain note; "" when there
    are no such rows."""
    parts = []
    for row in headline_rows(frame, a, b, at):
        reached = f" ({row['note']})" if row["note"] else ""
        joiner = "and" if row["verdict"] == "not told apart" else "though"
        weak = f", {joiner} {row['gain note']}" if row.get("gain note") else ""
        parts.append(_pooled_part(row, a, b) + reached + weak)
    return "; ".join(parts)


def pooled_sentence(frame, a: str, b: str, question: str, at: str = "matched") -> str:
    """Answer ``question`` ("Does SFT forget more than GRPO?") per target from ``pooled_comparisons`` rows of
    ``a - b``: at the highest matched gain every seed reached, else at the end (``at`` "end": at the end); the
    verdict from the seeds' t-interval (from the questions' with one seed, labelled so)."""
    parts = _pooled_parts(frame, a, b, at)
    if not parts:
        return f"**{question}** No runs of both {a} and {b}."
    return f"**{question}** {parts}."


def kl_sentence(r: float, low: float, high: float, n: int, paper: float = 0.52) -> str:
    """Drop against KL[pi_0 || pi_theta] over the campaign's runs, beside the paper's correlation."""
    if math.isnan(r):
        return f"Too few runs ({n}) with a KL and a drop, or no spread in either, for a correlation."
    span = "" if math.isnan(low) else f" (95 % interval {low:+.2f} to {high:+.2f})"
    return (f"Across {n} runs, Pearson's r between drop and KL[π₀‖π_θ] is {r:+.2f}{span}; the paper reports "
            f"{paper:.2f} across its runs.")


def targets_in_order(runs: list) -> list[str]:
    """The runs' targets in Table 1's order (``TASK_NAMES``), any other after them."""
    targets = [t for t in TASK_NAMES if any(r.target == t for r in runs)]
    return targets + sorted({r.target for r in runs} - set(targets))


def campaign_forgetting(records: list, comparisons: list[tuple[str, str]], *, level: float = 0.95,
                        n_boot: int = 2000):
    """``pooled_comparisons`` for every target the records hold (Table 1's order), as one frame (empty, with its
    columns, when there are no runs)."""
    import pandas as pd

    runs = as_records(records)
    frames = [pooled_comparisons([r for r in runs if r.target == t], comparisons, level=level, n_boot=n_boot)
              for t in targets_in_order(runs)]
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=POOLED_COLUMNS)


def campaign_retention(records: list, comparisons: list[tuple[str, str]], *, level: float = 0.95,
                       n_boot: int = 2000):
    """Per target (``_targets``' order) and (a, b) of ``comparisons``: a's retention minus b's pooled over the seeds
    both ran (``retention.pooled_retention_difference``), nats/token. Runs without a retention are left out."""
    import pandas as pd

    runs = [r for r in as_records(records) if r.retention is not None]
    rows = []
    for target in targets_in_order(runs):
        mine = [r for r in runs if r.target == target]
        for a, b in comparisons:
            pairs = seed_pairs(mine, a, b)
            if not pairs:
                continue
            d = retention.pooled_retention_difference(
                [(retention.Retention.from_dict(ra.retention), retention.Retention.from_dict(rb.retention))
                 for ra, rb in pairs], labels=(a, b), level=level, n_boot=n_boot)
            rows.append({"target": target, "comparison": f"{a} - {b}", "seeds": len(pairs),
                         "retention a (nats/token)": float(np.mean([ra.retention["mean"] for ra, _ in pairs])),
                         "retention b (nats/token)": float(np.mean([rb.retention["mean"] for _, rb in pairs])),
                         "difference (nats/token)": d.difference, "low (nats/token)": d.low,
                         "high (nats/token)": d.high, "answers": sum(len(t["index"]) for t in
                                                                     pairs[0][0].retention["tasks"].values())})
    columns = ["target", "comparison", "seeds", "retention a (nats/token)", "retention b (nats/token)",
               "difference (nats/token)", "low (nats/token)", "high (nats/token)", "answers"]
    return pd.DataFrame(rows, columns=columns)


def pooled_retention_sentence(frame, a: str, b: str) -> str:
    """Per target, whether ``a`` keeps more or less of the initial answers' likelihood than ``b``, with its
    interval (``campaign_retention`` rows)."""
    rows = frame[frame["comparison"] == f"{a} - {b}"] if len(frame) else frame
    if not len(rows):
        return f"**Retention, {a} against {b}:** no runs of both with a retention measure."
    parts = []
    for _, row in rows.iterrows():
        lo, hi = row["low (nats/token)"], row["high (nats/token)"]
        verdict = (f"{a} keeps more of them" if lo > 0 else f"{a} keeps less of them" if hi < 0 else
                   f"not told apart (within ±{max(abs(lo), abs(hi)):.3f} nats/token of zero)")
        seeds = int(row["seeds"])
        parts.append(f"on {row['target']}, {row['difference (nats/token)']:+.3f} nats/token (95 % interval "
                     f"{lo:+.3f} to {hi:+.3f}, {seeds} seed{'s' * (seeds != 1)}, {int(row['answers'])} initial "
                     f"answers): {verdict}")
    return (f"**Retention, {a} minus {b}** (the likelihood each keeps of the initial model's correct answers on "
            "the other tasks): " + "; ".join(parts) + ".")


def truncation_sentence(frame, rise: float = 10.0) -> str:
    """The run whose share of answers cut off by the token budget rose most (``experiment.truncation`` rows), and
    what that means for its drop when the rise is at least ``rise`` pp."""
    if not len(frame):
        return "No run's evaluation log was found, so answers cut off by the token budget are not counted."
    change = 100 * (frame["end"] - frame["start"]) / frame["n"]
    row = frame.loc[change.idxmax()]
    top = float(change.max())
    text = (f"The largest rise in answers cut off by the token budget: {row['variant']} (target {row['target']}, "
            f"seed {row['seed']}) on {row['task']}, {int(row['start'])} → {int(row['end'])} of {int(row['n'])} "
            f"held-out answers hit its {int(row['budget'])}-token budget ({top:+.1f} pp).")
    if top < rise:
        return text + f" No run's share rose by {rise:g} pp or more: cut-off answers explain little of the drops."
    return (text + " An answer cut off before it states its result is scored wrong, so such a drop can come from "
            "longer answers (or answers that repeat themselves and never end) as well as from lost skill; the "
            "ends scored again at a longer budget (below) tell the first apart. The retention measure "
            "(a forward pass, with no budget) does not see length, one reason the two measures can disagree.")


def longer_budget_sentence(frame, moved: float = 2.0) -> str:
    """How much the drops move when the answers cut off are answered again at the longer budget
    (``experiment.longer_budget_frame`` rows): the run whose drop moved most, and whether any moved ``moved`` pp."""
    if not len(frame):
        return "No run of these results scored its ends again at a longer budget (results files of older versions)."
    factor = int(frame["factor"].iloc[0])
    change = frame["drop_longer"] - frame["drop"]
    row = frame.loc[change.abs().idxmax()]
    text = (f"At {factor}× the budget, the drop that moved most is {row['variant']}'s (target {row['target']}, "
            f"seed {row['seed']}): {row['drop']:+.1f} → {row['drop_longer']:+.1f} pp; its gain "
            f"{row['gain']:+.1f} → {row['gain_longer']:+.1f} pp.")
    if abs(float(change.loc[change.abs().idxmax()])) < moved:
        return text + f" No drop moved by {moved:g} pp or more: the budget does not make these drops."
    return text + (" Part of that drop at the budget was answers running past it, not lost skill; the drop at the "
                   "longer budget is the one to read.")


def ablation_pairs(records: list, cfg: profiles.LLMSettings) -> list[tuple[str, str]]:
    """03's comparisons as (variant without the factor, variant with it) for ``pooled_comparisons``: a positive
    difference means the factor reduces forgetting. Only pairs whose variants both ran."""
    ran = {r.variant for r in as_records(records)}
    return [(without, with_) for _, with_, without in comparisons(cfg) if with_ != without and {with_, without} <= ran]


def versus(records: list, baseline: str = "GRPO") -> list[tuple[str, str]]:
    """Every other variant that ran, paired with ``baseline`` for ``pooled_comparisons``."""
    return [(v, baseline) for v in dict.fromkeys(r.variant for r in as_records(records)) if v != baseline]


def power(records: list, a: str = "SFT", b: str = "GRPO", level: float = 0.95) -> str:
    """The smallest ``a`` - ``b`` drop difference these runs' evaluations could detect (one target), from their
    sizes and the final evaluations' discordance, beside the paper's differences."""
    pairs = seed_pairs(as_records(records), a, b)
    if not pairs:
        return f"No runs of both {a} and {b}: no power statement."
    return _power(pairs, pairs[0][0].target, b, level) if a == "SFT" else \
        f"Power is stated for SFT - {b}, the paper's comparison."
