"""The tables a reader sees: headers in words with units ("Gain (pp, mean ± sd)"), numbers at a sensible
precision. They format the numeric tables of ``experiment`` and ``results``, which stay as they are for
computing; the formatted ones are for display only."""

from __future__ import annotations

import math

import pandas as pd


def _number(value, digits: int = 1, sign: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:{'+' if sign else ''}.{digits}f}"


def mean_sd(mean, sd, digits: int = 1) -> str:
    """``+12.5 ± 3.1``; the mean alone where there is no spread (a single seed)."""
    if sd is None or (isinstance(sd, float) and math.isnan(sd)):
        return _number(mean, digits, sign=True)
    return f"{_number(mean, digits, sign=True)} ± {_number(sd, digits)}"


def interval(low, high, digits: int = 1) -> str:
    return f"{_number(low, digits, sign=True)} to {_number(high, digits, sign=True)}"


def kl(value) -> str:
    """KL in nats: four decimals (a short run moves the model by ~1e-3 nats), not 6.7e-04."""
    return _number(value, 4)


def baseline(frame: pd.DataFrame) -> pd.DataFrame:
    """``experiment.baseline_frame``: accuracy with its Wilson 95 % interval per task."""
    return pd.DataFrame({
        "Accuracy (%)": frame["accuracy"].map(_number),
        "95 % interval (%)": [interval(lo, hi).replace("+", "") for lo, hi in zip(frame["ci_low"], frame["ci_high"])],
        "Held-out questions": frame["n"].astype(int),
        "Unparsed answers": frame["n_unparsed"].astype(int),
    }, index=frame.index.rename("Task"))


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """``experiment.summary`` (optionally joined with ``experiment.frontier``): one row per variant."""
    out = pd.DataFrame({
        "Gain (pp, mean ± sd)": [mean_sd(m, s) for m, s in zip(table["gain_mean"], table["gain_std"])],
        "Drop (pp, mean ± sd)": [mean_sd(m, s) for m, s in zip(table["drop_mean"], table["drop_std"])],
        "KL to initial (nats, mean)": table["kl_mean"].map(kl),
        "Seeds": table["seeds"].astype(int),
        "Training (min per run)": table["train_min"].map(lambda v: _number(v, 2)),
        "Generated tokens (k per run)": table["gen_ktokens"].map(_number),
    }, index=table.index.rename("Variant"))
    if "transfer_mean" in table.columns:  # the target's own questions in another form (tasks.RELATED), not in Drop
        out.insert(2, "Transfer to related probe (pp, mean)",
                   table["transfer_mean"].map(lambda v: _number(v, sign=True)))
    if "on_frontier" in table.columns:
        out["On the frontier"] = table["on_frontier"].map({True: "yes", False: "no"})
    if "flags" in table.columns:  # diagnostics.flags: collapse, loops, answers cut off
        out["Flags (seeds)"] = table["flags"].replace("", "none")
    return out


def intervals(table: pd.DataFrame) -> pd.DataFrame:
    """``experiment.intervals``: each run's gain and drop with their 95 % intervals over held-out questions."""
    out = pd.DataFrame({
        "Gain (pp)": table["gain"].map(lambda v: _number(v, sign=True)),
        "Gain 95 % interval (pp)": [interval(lo, hi) for lo, hi in zip(table["gain_low"], table["gain_high"])],
        "Drop (pp)": table["drop"].map(lambda v: _number(v, sign=True)),
        "Drop 95 % interval (pp)": [interval(lo, hi) for lo, hi in zip(table["drop_low"], table["drop_high"])],
        "Clear gain": table["clear_gain"].map({True: "yes", False: "no"}),
    }, index=table.index)
    out.index = out.index.rename(["Variant", "Seed"])
    return out


def effects(table: pd.DataFrame) -> pd.DataFrame:
    """``findings.ablation_effects``: per factor, its effect on drop and gain (without minus with)."""
    out = pd.DataFrame({
        "Factor": table["factor"], "With": table["with"], "Without": table["without"],
        "Effect on drop (pp, mean ± sd)": [mean_sd(m, s) for m, s in
                                           zip(table["drop_effect"], table["drop_effect_std"])],
        "Effect on gain (pp, mean)": table["gain_effect"].map(lambda v: _number(v, sign=True)),
        "Seeds": table["seeds"].astype(int),
    })
    if "paper" in table.columns:
        out["The paper"] = table["paper"]
    return out.set_index("Factor")


def paper_numbers(numeric: pd.DataFrame) -> pd.DataFrame:
    """``results.paper_table``'s numeric table: gain and drop per (variant, target), two decimals."""
    spread = "sem" if "gain_sem" in numeric.columns else "std"
    label = "sd" if spread == "std" else "sem"
    out = pd.DataFrame({
        f"Gain (pp, mean ± {label})": [mean_sd(m, s, 2) for m, s in zip(numeric["gain_mean"], numeric[f"gain_{spread}"])],
        f"Drop (pp, mean ± {label})": [mean_sd(m, s, 2) for m, s in zip(numeric["drop_mean"], numeric[f"drop_{spread}"])],
        "Seeds": numeric["n"].astype(int),
    }, index=numeric.index)
    out.index = out.index.rename(["Variant", "Target"])
    return out


def points(table: pd.DataFrame) -> pd.DataFrame:
    """``results.points``: one row per sweep point, its parameters, status, time and error."""
    out = table.drop(columns=[c for c in ("notebook", "profile") if c in table.columns])
    out = out.rename(columns={"point": "Point", "status": "Status", "seconds": "Time (s)", "error": "Error"})
    if "Time (s)" in out.columns:
        out["Time (s)"] = out["Time (s)"].map(lambda v: _number(v, 0))
    return out


def drop_differences(frame: pd.DataFrame, baseline: str = "GRPO") -> pd.DataFrame:
    """``findings.forgetting_comparison(...).differences``: per seed, the drops, their difference and its interval
    over that seed's held-out questions (evaluation noise only), in pp."""
    if frame.empty:  # nothing to compare (e.g. a calibration run of one method)
        return frame
    low, high = [c for c in frame.columns if c.endswith("% low (pp)") or c.endswith("% high (pp)")]
    return pd.DataFrame({
        "Method's drop (pp)": frame["method drop (pp)"].map(lambda v: _number(v, sign=True)),
        f"{baseline}'s drop (pp)": frame[f"{baseline} drop (pp)"].map(lambda v: _number(v, sign=True)),
        "Difference (pp)": frame["difference (pp)"].map(lambda v: _number(v, sign=True)),
        low.replace("low (pp)", "interval over questions (pp)"): [interval(lo, hi) for lo, hi in
                                                                  zip(frame[low], frame[high])],
        "Verdict": frame["verdict"], "Note": frame["note"]}, index=frame.index)


def retention_differences(frame: pd.DataFrame, baseline: str = "GRPO") -> pd.DataFrame:
    """``findings.forgetting_comparison(...).retention``: each run's retention and their difference, nats/token."""
    if frame.empty:
        return frame
    low, high = [c for c in frame.columns if c.endswith("% low (nats/token)") or c.endswith("% high (nats/token)")]
    return pd.DataFrame({
        "Method's retention (nats/token)": frame["method retention (nats/token)"].map(lambda v: _number(v, 3, True)),
        f"{baseline}'s retention (nats/token)": frame[f"{baseline} retention (nats/token)"].map(
            lambda v: _number(v, 3, True)),
        "Difference (nats/token)": frame["difference (nats/token)"].map(lambda v: _number(v, 3, True)),
        low.replace("low (nats/token)", "interval (nats/token)"): [interval(lo, hi, 3) for lo, hi in
                                                                   zip(frame[low], frame[high])]},
        index=frame.index)


def pooled_differences(frame: pd.DataFrame) -> pd.DataFrame:
    """``findings.campaign_forgetting``: per target and comparison, the drops and their difference pooled over
    seeds (pp), with its 95 % interval over seeds (Student t; none for a single seed), the smallest difference those
    seeds detect, and, as the second view, the 95 % interval over held-out questions only. The verdict reads the
    seeds' interval, or with one seed the questions' (and says so)."""
    columns = ["Target", "Comparison (a - b)", "At", "Seeds", "Drop a (pp)", "Drop b (pp)", "Difference (pp)",
               "95 % interval over seeds (pp)", "Detectable over seeds (pp)", "95 % interval over questions (pp)",
               "Verdict", "Note"]
    if frame.empty:
        return pd.DataFrame(columns=columns).set_index(columns[:3])
    over_seeds = frame["interval over"] == "seeds"
    one_seed = [not seeds and not math.isnan(d) for seeds, d in zip(over_seeds, frame["difference (pp)"])]
    return pd.DataFrame({
        "Target": frame["target"], "Comparison (a - b)": frame["comparison"], "At": frame["at"],
        "Seeds": frame["seeds"],
        "Drop a (pp)": frame["drop a (pp)"].map(lambda v: _number(v, sign=True)),
        "Drop b (pp)": frame["drop b (pp)"].map(lambda v: _number(v, sign=True)),
        "Difference (pp)": frame["difference (pp)"].map(lambda v: _number(v, sign=True)),
        "95 % interval over seeds (pp)": [interval(lo, hi) if seeds else "none: one seed" if one else "–"
                                          for lo, hi, seeds, one in zip(frame["low (pp)"], frame["high (pp)"],
                                                                        over_seeds, one_seed)],
        "Detectable over seeds (pp)": frame["detectable (pp)"].map(_number),
        "95 % interval over questions (pp)": [interval(lo, hi) for lo, hi in
                                              zip(frame["questions low (pp)"], frame["questions high (pp)"])],
        "Verdict": [v + (" (questions only)" if one and v != "not told apart" else "")
                    for v, one in zip(frame["verdict"], one_seed)],
        "Note": ["; ".join(n for n in notes if isinstance(n, str) and n)
                 for notes in zip(frame["note"], frame.get("gain note", [""] * len(frame)))],
    }, columns=columns).set_index(columns[:3])


def _intervals(frame: pd.DataFrame, stem: str) -> list[str]:
    """The ``{stem} low (pp)`` - ``{stem} high (pp)`` columns as interval cells."""
    return [interval(lo, hi) for lo, hi in zip(frame[f"{stem} low (pp)"], frame[f"{stem} high (pp)"])]


def seed_gains(frame: pd.DataFrame) -> pd.DataFrame:
    """``evidence.gain_drop``: per target and method, gain and drop (pp) as the mean over seeds with its 95 %
    interval (over seeds, or over held-out questions with one seed), and whether the gain is beyond the noise."""
    columns = ["Target", "Method", "Seeds", "Gain (pp, mean)", "Gain 95 % interval (pp)", "Drop (pp, mean)",
               "Drop 95 % interval (pp)", "Interval over", "Gain beyond noise"]
    if frame.empty:
        return pd.DataFrame(columns=columns).set_index(columns[:2])
    signed = lambda v: _number(v, sign=True)  # noqa: E731
    out = pd.DataFrame({
        "Target": frame["target"], "Method": frame["variant"], "Seeds": frame["seeds"],
        "Gain (pp, mean)": frame["gain (pp)"].map(signed),
        "Gain 95 % interval (pp)": _intervals(frame, "gain"),
        "Drop (pp, mean)": frame["drop (pp)"].map(signed),
        "Drop 95 % interval (pp)": _intervals(frame, "drop"),
        "Interval over": frame["interval over"].map({"seeds": "seeds (t)", "questions": "questions (one seed)"}),
        "Gain beyond noise": frame["learned"].map({True: "yes", False: "no"}),
    }, columns=columns)
    if "generated tokens (k per run)" in frame.columns:
        out["Generated tokens (k per run)"] = frame["generated tokens (k per run)"].map(_number)
    return out.set_index(columns[:2])


def knowledge_format(frame: pd.DataFrame) -> pd.DataFrame:
    """``evidence.knowledge_format``: per target and comparison, the drop difference at the end (pp) and its
    knowledge (lenient) and format parts, each the mean over seeds with its 95 % interval over seeds."""
    columns = ["Target", "Comparison (a - b)", "Seeds", "Drop difference (pp)", "Knowledge part (pp)",
               "Knowledge 95 % interval over seeds (pp)", "Format part (pp)", "Format 95 % interval over seeds (pp)"]
    if frame.empty:
        return pd.DataFrame(columns=columns).set_index(columns[:2])
    signed = lambda v: _number(v, sign=True)  # noqa: E731
    return pd.DataFrame({
        "Target": frame["target"], "Comparison (a - b)": frame["comparison"], "Seeds": frame["seeds"],
        "Drop difference (pp)": frame["strict (pp)"].map(signed),
        "Knowledge part (pp)": frame["knowledge (pp)"].map(signed),
        "Knowledge 95 % interval over seeds (pp)": _intervals(frame, "knowledge"),
        "Format part (pp)": frame["format (pp)"].map(signed),
        "Format 95 % interval over seeds (pp)": _intervals(frame, "format"),
    }, columns=columns).set_index(columns[:2])


def split_overview(frame: pd.DataFrame) -> pd.DataFrame:
    """``evidence.split_overview``: per target and method, the drop split into knowledge and format (pp) and the
    final shares of the other tasks' answers unparsed, cut off and looping (%), means over seeds and tasks."""
    names = {"target": "Target", "variant": "Method", "seeds": "Seeds", "strict drop (pp)": "Drop (pp)",
             "knowledge drop (pp)": "Knowledge drop (pp)", "format drop (pp)": "Format drop (pp)",
             "unparsed at end (%)": "Unparsed at end (%)", "cut off at end (%)": "Cut off at end (%)",
             "looping at end (%)": "Looping at end (%)"}
    out = frame.rename(columns=names)[list(names.values())].copy()
    for column in list(names.values())[3:]:
        out[column] = out[column].map(lambda v: _number(v, sign=column.endswith("(pp)")))
    return out.set_index(["Target", "Method"])


def pooled_retention(frame: pd.DataFrame) -> pd.DataFrame:
    """``findings.campaign_retention``: per target and comparison, the retentions and their difference pooled
    over seeds with its 95 % interval, nats/token."""
    signed = lambda v: _number(v, 3, True)  # noqa: E731
    return pd.DataFrame({
        "Target": frame["target"], "Comparison (a - b)": frame["comparison"], "Seeds": frame["seeds"],
        "Initial answers": frame["answers"],
        "Retention a (nats/token)": frame["retention a (nats/token)"].map(signed),
        "Retention b (nats/token)": frame["retention b (nats/token)"].map(signed),
        "Difference (nats/token)": frame["difference (nats/token)"].map(signed),
        "95 % interval (nats/token)": [interval(lo, hi, 3) for lo, hi in
                                       zip(frame["low (nats/token)"], frame["high (nats/token)"])],
    }).set_index(["Target", "Comparison (a - b)"])


def truncation(frame: pd.DataFrame) -> pd.DataFrame:
    """``experiment.truncation``: per target and method, the share of each task's held-out answers cut off by
    its token budget at the start and at the end of training, over all seeds."""
    if frame.empty:
        return pd.DataFrame(columns=["Target", "Method", "Seeds"]).set_index(["Target", "Method"])
    runs = frame.groupby(["target", "variant"], sort=False)
    out = pd.DataFrame({"Seeds": runs["seed"].nunique()})
    for task, sub in frame.groupby("task", sort=False):
        totals = sub.groupby(["target", "variant"], sort=False)[["n", "start", "end"]].sum().reindex(out.index)
        out[f"{task}: cut off at {int(sub['budget'].iloc[0])} tokens (% start → end)"] = [
            "" if math.isnan(n) else f"{100 * s / n:.0f} → {100 * e / n:.0f}"
            for n, s, e in totals.itertuples(index=False)]
    return out.rename_axis(["Target", "Method"])


def longer_budget(frame: pd.DataFrame) -> pd.DataFrame:
    """``experiment.longer_budget_frame``: per target and method, gain and drop (pp, mean over seeds) at the
    evaluation budget and at the longer one, and the answers answered again / still cut off (all tasks, % start →
    end)."""
    if frame.empty:
        return pd.DataFrame(columns=["Target", "Method", "Seeds"]).set_index(["Target", "Method"])
    factor = int(frame["factor"].iloc[0])
    runs = frame.groupby(["target", "variant"], sort=False)
    means = runs[["gain", "gain_longer", "drop", "drop_longer"]].mean()
    totals = runs[["rescored_initial", "rescored_final", "truncated_initial", "truncated_final", "n"]].sum()

    def share(start, end):
        return [f"{100 * s / n:.0f} → {100 * e / n:.0f}" for s, e, n in zip(totals[start], totals[end], totals["n"])]

    out = pd.DataFrame({
        "Seeds": runs["seed"].nunique(),
        "Gain (pp)": means["gain"].map(lambda v: _number(v, sign=True)),
        f"Gain at {factor}× budget (pp)": means["gain_longer"].map(lambda v: _number(v, sign=True)),
        "Drop (pp)": means["drop"].map(lambda v: _number(v, sign=True)),
        f"Drop at {factor}× budget (pp)": means["drop_longer"].map(lambda v: _number(v, sign=True)),
        "Answered again (% of answers, start → end)": share("rescored_initial", "rescored_final"),
        f"Still cut off at {factor}× (%, start → end)": share("truncated_initial", "truncated_final"),
    }, index=means.index)
    return out.rename_axis(["Target", "Method"])


def paper_drops() -> pd.DataFrame:
    """The paper's Table 1 drops (pp) per model and method, targets as columns: what ours sit beside."""
    from .forgetting import PAPER_DROPS
    from ..core.tasks import TASK_NAMES

    rows = {(model, method): drops for model, table in PAPER_DROPS.items() for method, drops in table.items()}
    out = pd.DataFrame(rows).T[list(TASK_NAMES)].map(lambda v: _number(v, sign=True))
    out.index = out.index.rename(["Model (the paper)", "Method"])
    out.columns = [f"Drop, target {t} (pp)" for t in out.columns]
    return out
