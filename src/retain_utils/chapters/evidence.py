"""The committed campaign's answer to each LLM chapter's question (chapters 2, 3 and 4), read from its run records
alone: the tables and computed sentences a chapter opens with, before its small live demonstration.

The notebook reads the records (``batch.campaign.records``: ``chapters`` does not import ``batch``) and passes
them in. Claims about methods rest on intervals over training seeds (Student t, ``core.intervals``) where there
are two or more; with one seed the interval is over held-out questions only, and every sentence says which.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import experiment, findings
from .variants import interval_label
from ..analysis import format_forgetting
from ..analysis.forgetting import possessive
from ..core.intervals import seed_t_interval
from ..core.records import as_records
from ..core.tasks import forgetting_tasks

LEVEL = 0.95
CHAPTERS = {"02_rl_vs_sft": "notebook 2 (RL vs SFT)", "03_ablations": "notebook 3 (ablations)",
            "04_iterative_sft": "notebook 4 (Iterative-SFT)"}
# chapter 2: (a, b, the question a - b answers); a positive difference: a forgets more
RL_VS_SFT = [("SFT", "GRPO", "Does SFT forget more than GRPO?"),
             ("Self-SFT", "GRPO", "Does Self-SFT forget more than GRPO?"),
             ("REINFORCE", "GRPO", "Does REINFORCE forget like GRPO?")]
# chapter 3: (a, b, question); a is the variant without the factor, or with off-policy data, so a positive difference
# (a forgets more) is the direction the paper's account predicts, except in the last row (is GRPO's data all of it?)
ABLATIONS = [("GRPO, β=0", "GRPO", "Does GRPO without its KL term forget more than GRPO?"),
             ("SFT", "SFT + KL", "Does SFT without a KL penalty forget more than SFT with one?"),
             ("REINFORCE", "GRPO", "Does REINFORCE (no group baseline, no normalisation) forget more than GRPO?"),
             ("GRPO, stale rollouts", "GRPO", "Do stale rollouts (sampled from the initial model) make GRPO forget "
                                              "more?"),
             ("SFT", "SFT on GRPO's rollouts", "Does SFT on expert answers forget more than SFT on GRPO's own "
                                               "rollouts?"),
             ("SFT on GRPO's rollouts", "GRPO", "Does SFT on GRPO's own rollouts still forget more than GRPO?")]
GAIN_COLUMNS = ["target", "variant", "seeds", "gain (pp)", "gain low (pp)", "gain high (pp)", "drop (pp)",
                "drop low (pp)", "drop high (pp)", "interval over", "learned"]
SPLIT_COLUMNS = ["target", "comparison", "seeds", "strict (pp)", "knowledge (pp)", "knowledge low (pp)",
                 "knowledge high (pp)", "format (pp)", "format low (pp)", "format high (pp)", "interval over"]


@dataclass(frozen=True)
class Answer:
    """One chapter's answer from the committed campaign: its tables and the computed sentences that read them."""

    runs: int          # campaign runs it rests on (0: no point of the chapter committed yet)
    gains: Any         # DataFrame (``gain_drop``): per target and variant, gain and drop with their 95 % intervals
    differences: Any   # DataFrame (``findings.campaign_forgetting``): the chapter's drop differences
    split: Any         # DataFrame (``knowledge_format``): drop differences split into knowledge and format (chapter 2)
    sentence: str      # the answer to the chapter's question, saying how sure it is
    scope: str         # what runs it rests on: methods, targets, seeds, budget and evaluation sizes


# ----- the pieces -----------------------------------------------------------------------------------------------


TABLE_1 = ["SFT", "Self-SFT", "REINFORCE", "GRPO"]  # the paper's Table 1 methods, in its order


def table_1_runs(records_02: list, records_03: list) -> list:
    """The runs of the paper's Table 1: notebook 2's, and notebook 3's of a Table 1 method notebook 2 did not run
    on that target and seed (REINFORCE, one of the campaign's ablations). Notebook 3's GRPO and SFT are notebook
    2's own runs read back, so they are not counted twice."""
    runs = as_records(records_02)
    ran = {(r.variant, r.target, r.seed) for r in runs}
    return runs + [r for r in as_records(records_03) if r.variant in TABLE_1 and (r.variant, r.target, r.seed) not in ran]


def usable(records: list) -> tuple[list, int]:
    """The runs that kept per-question evaluations (what pairing needs), and how many older runs are left out."""
    runs = as_records(records)
    kept = [r for r in runs if r.evals]
    return kept, len(runs) - len(kept)


def seed_interval(values: list[float], question_intervals: list) -> tuple[float, float, float, str]:
    """The mean of one value per seed with its 95 % interval and what that interval is over: "seeds" (Student t)
    with two or more seeds; with one, the run's own interval over held-out questions ("questions"), NaN if none."""
    mean = float(np.mean(values)) if values else math.nan
    if len(values) >= 2 and all(math.isfinite(v) for v in values):
        return (mean, *seed_t_interval(values, LEVEL), "seeds")
    if len(values) == 1 and question_intervals[0] is not None:
        return (mean, *question_intervals[0], "questions")
    return mean, math.nan, math.nan, "seeds" if len(values) >= 2 else "questions"


def gain_drop(records: list, cost: bool = False):
    """Per target (Table 1's order) and variant (run order): gain and drop (pp), mean over seeds with their 95 %
    intervals (``seed_interval``), and whether the gain is learned beyond the noise (its interval above zero).
    ``cost``: also the tokens generated for training (k per run, mean over seeds)."""
    import pandas as pd

    runs = as_records(records)
    rows = []
    for target in findings.targets_in_order(runs):
        mine = [r for r in runs if r.target == target]
        for variant in dict.fromkeys(r.variant for r in mine):
            own = sorted((r for r in mine if r.variant == variant), key=lambda r: r.seed)
            gain = seed_interval([r.gain for r in own], [r.gain_interval for r in own])
            drop = seed_interval([r.drop for r in own], [r.drop_interval for r in own])
            rows.append({"target": target, "variant": variant, "seeds": len(own), "gain (pp)": gain[0],
                         "gain low (pp)": gain[1], "gain high (pp)": gain[2], "drop (pp)": drop[0],
                         "drop low (pp)": drop[1], "drop high (pp)": drop[2], "interval over": gain[3],
                         "learned": bool(gain[1] > 0),
                         **({"generated tokens (k per run)": float(np.mean([r.generated_tokens for r in own])) / 1000}
                            if cost else {})})
    columns = GAIN_COLUMNS + (["generated tokens (k per run)"] if cost else [])
    return pd.DataFrame(rows, columns=columns)


def learned_sentence(gains) -> str:
    """Which gains lie beyond the noise (their 95 % interval above zero), and, when none does, that the campaign
    cannot answer a question about forgetting at a comparable, real gain."""
    if not len(gains):
        return ""
    one_seed = (gains["interval over"] == "questions").any()
    caveat = (" (with one seed, over held-out questions only: evaluation noise, not the spread over training seeds)"
              if one_seed else " over training seeds")
    clear = gains[gains["learned"]]
    if clear.empty:
        return (f"**Did the runs learn their targets?** No: none of the {len(gains)} gains in the table lies beyond "
                f"the noise, every one's 95 % interval{caveat} reaching zero. So this campaign cannot answer the "
                "chapter's question at a comparable, real gain: the drops below compare forgetting at gains within "
                "the noise, and a difference of drops says how the methods moved the other tasks, not what learning "
                "a target costs.")
    listed = "; ".join(f"{row['variant']} on {row['target']} ({row['gain (pp)']:+.1f} pp, "
                       f"{row['gain low (pp)']:+.1f} to {row['gain high (pp)']:+.1f})" for _, row in clear.iterrows())
    rest = len(gains) - len(clear)
    per_seed = (" A mean gain can clear the spread over seeds while each seed's own gain stays within the noise of "
                "its held-out questions; the sentences below name such seeds." if not one_seed else "")
    return (f"**Did the runs learn their targets?** Gains whose 95 % interval{caveat} lies above zero: {listed}. "
            + (f"The other {rest} gain{'s' * (rest != 1)} in the table {'are' if rest != 1 else 'is'} within the "
               "noise: a comparison involving such a run compares forgetting at a gain within the noise."
               if rest else "Every gain in the table lies beyond the noise.") + per_seed)


def verdict_summary(frame, a: str, b: str) -> str:
    """``a`` - ``b`` in one line: the verdict on each target at its headline row (``findings.headline_rows``),
    targets with the same verdict together; "" when there are no such rows."""
    rows = findings.headline_rows(frame, a, b)
    if not rows:
        return ""
    verdicts: dict[str, list[str]] = {}
    for row in rows:
        at = "at the end" if row["at"] == "end" else f"at matched {row['at']}"
        basis = "" if row["interval over"] == "seeds" else ", one seed: over questions only"
        verdicts.setdefault(row["verdict"], []).append(f"{row['target']} ({at}{basis})")
    return f"*{a} against {b}:* " + "; ".join(f"{verdict} on {', '.join(targets)}"
                                              for verdict, targets in verdicts.items()) + "."


def _lenient(record) -> bool:
    """Whether a run's first and last evaluations kept lenient scores (and the last its cut-off and looping
    answers) for every task its drop averages: what ``format_forgetting.split_table`` reads."""
    first, last = record.evals[0], record.evals[-1]
    tasks = forgetting_tasks(first["correct"], record.target)
    return all(task in first.get("lenient", {}) and all(task in last.get(key, {}) for key in
                                                         ("lenient", "truncated", "looping")) for task in tasks)


def _split_per_run(runs: list):
    """The runs that kept lenient scores, and ``format_forgetting.split_table``'s columns averaged per run (target,
    variant, seed) over the tasks its drop averages (None when no run kept them)."""
    split = [r for r in runs if r.evals and _lenient(r)]
    if not split:
        return split, None
    return split, format_forgetting.split_table(split).groupby(["target", "variant", "seed"], sort=False).mean(
        numeric_only=True)


def knowledge_format(records: list, comparisons: list[tuple[str, str]]) -> tuple[Any, int]:
    """Per target and (a, b) of ``comparisons``: a's drop minus b's at the end of training, split into knowledge
    (lenient scoring: the right answer anywhere in the reply) and format (the rest of the strict drop), each the
    mean over the seeds both ran with its 95 % interval over seeds (none with one seed). Only runs whose
    evaluations kept lenient scores take part; also returns how many did not."""
    import pandas as pd

    runs = as_records(records)
    split, parts = _split_per_run(runs)
    rows = []
    if split:
        for target in findings.targets_in_order(split):
            mine = [r for r in split if r.target == target]
            for a, b in comparisons:
                seeds = [ra.seed for ra, _ in findings.seed_pairs(mine, a, b)]
                if not seeds:
                    continue
                diff = {k: [parts.loc[(target, a, s), f"{k} drop (pp)"] - parts.loc[(target, b, s), f"{k} drop (pp)"]
                            for s in seeds] for k in ("strict", "knowledge", "format")}
                knowledge = seed_interval(diff["knowledge"], [None])
                form = seed_interval(diff["format"], [None])
                rows.append({"target": target, "comparison": f"{a} - {b}", "seeds": len(seeds),
                             "strict (pp)": float(np.mean(diff["strict"])), "knowledge (pp)": knowledge[0],
                             "knowledge low (pp)": knowledge[1], "knowledge high (pp)": knowledge[2],
                             "format (pp)": form[0], "format low (pp)": form[1], "format high (pp)": form[2],
                             "interval over": knowledge[3]})
    return pd.DataFrame(rows, columns=SPLIT_COLUMNS), len(runs) - len(split)


def _part(value: float, low: float, high: float) -> str:
    if math.isnan(low):
        return f"{value:+.1f} pp (one seed: no interval over seeds)"
    told = "beyond zero" if low > 0 or high < 0 else "not told apart from zero"
    return f"{value:+.1f} pp ({low:+.1f} to {high:+.1f}, {told})"


def split_sentence(frame, comparisons: list[tuple[str, str]], unsplit: int) -> str:
    """How much of each (a, b) drop difference at the end is knowledge and how much format, per target
    (``knowledge_format`` rows), and how many runs could not be split."""
    left = (f" {unsplit} run{'s' * (unsplit != 1)} kept no lenient scores (results files of an older version) and "
            "take no part." if unsplit else "")
    if not len(frame):
        return ("**Knowledge or format?** No pair of compared runs kept lenient scores, so these drops cannot be "
                f"split into knowledge and format.{left}")
    parts = []
    for a, b in comparisons:
        for _, row in frame[frame["comparison"] == f"{a} - {b}"].iterrows():
            knowledge = _part(row["knowledge (pp)"], row["knowledge low (pp)"], row["knowledge high (pp)"])
            form = _part(row["format (pp)"], row["format low (pp)"], row["format high (pp)"])
            parts.append(f"on {row['target']}, of {possessive(a)} drop minus {possessive(b)} "
                         f"({row['strict (pp)']:+.1f} pp), knowledge {knowledge} and format {form}")
    seeds = int(frame["seeds"].max())
    over = f"95 % intervals over {seeds} seeds" if seeds >= 2 else "one seed"
    return f"**Knowledge or format?** At the end of training ({over}): " + "; ".join(parts) + f".{left}"


def scope(records: list, notebook: str, lead: str = "This answer rests on") -> str:
    """What the answer rests on, from the records: runs, variants, targets, seeds, the training budget per target
    and the evaluations (steps and held-out questions per task); ``lead`` opens the sentence."""
    runs = as_records(records)
    if not runs:
        return ""
    variants = list(dict.fromkeys(r.variant for r in runs))
    targets = findings.targets_in_order(runs)
    seeds = sorted({r.seed for r in runs})
    budgets: dict[str, list[str]] = {}
    for target in targets:
        mine = [r for r in runs if r.target == target]
        steps = sorted({r.config.get("steps") for r in mine if r.config.get("steps") is not None})
        batch = sorted({r.config.get("batch_size") for r in mine if r.config.get("batch_size") is not None})
        text = (f"{'/'.join(map(str, steps))} steps x {'/'.join(map(str, batch))} prompts" if steps and batch
                else "an unrecorded budget")
        budgets.setdefault(text, []).append(target)
    evaluated = sorted({e["step"] for r in runs for e in r.evals})
    sizes = sorted({n for r in runs for n in r.n_eval.values()})
    size = str(sizes[0]) if len(sizes) == 1 else f"{sizes[0]}-{sizes[-1]}" if sizes else ""
    return (f"{lead} the {len(runs)} committed campaign run{'s' * (len(runs) != 1)} of "
            f"{CHAPTERS.get(notebook, notebook)}: {len(variants)} variant{'s' * (len(variants) != 1)} "
            f"({'; '.join(variants)}) on {', '.join(targets)}, seed{'s' * (len(seeds) != 1)} "
            f"{', '.join(map(str, seeds))}; trained "
            + "; ".join(f"{text} ({', '.join(ts)})" if len(budgets) > 1 else text for text, ts in budgets.items())
            + (f", evaluated at steps {', '.join(map(str, evaluated))}" if evaluated else "")
            + (f" on {size} held-out questions per task" if size else "") + ".")


def _nothing(notebook: str, old: int) -> Answer:
    """The honest answer of a campaign folder holding no usable point of ``notebook``."""
    note = (f" Its {old} run{'s' * (old != 1)} kept no per-question evaluations (results files of an older "
            "version), so none can be paired." if old else "")
    sentence = (f"**No campaign answer yet.** No campaign point of {CHAPTERS.get(notebook, notebook)} with "
                f"per-question evaluations is committed in this campaign folder, so this section has nothing to "
                f"show yet; the small demonstration below is all this page computes.{note}")
    empty = gain_drop([])
    return Answer(0, empty, findings.campaign_forgetting([], []), knowledge_format([], [])[0], sentence, "")


def _detail(differences, comparisons: list[tuple[str, str, str]], ends: bool = False) -> list[str]:
    """Each comparison's one-line verdict, then its full sentence (``findings.pooled_sentence``) at the headline
    row; with ``ends``, where that row is a matched gain, at the end of training too."""
    lines = [line for a, b, _ in comparisons if (line := verdict_summary(differences, a, b))]
    for a, b, question in comparisons:
        lines.append(findings.pooled_sentence(differences, a, b, question))
        if ends and any(row["at"] != "end" for row in findings.headline_rows(differences, a, b)):
            lines.append(findings.pooled_sentence(differences, a, b, "And at the end:", at="end"))
    return lines


def _ran(runs: list, comparisons: list[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
    labels = {r.variant for r in runs}
    return [c for c in comparisons if {c[0], c[1]} <= labels]


# ----- each chapter's answer ------------------------------------------------------------------------------------


def rl_vs_sft(records: list) -> Answer:
    """Chapter 2's question from notebook 2's campaign runs: per target each method's gain and drop, each method's
    drop minus GRPO's at the end and at matched gain, and each such difference split into knowledge and format where
    the runs kept lenient scores."""
    runs, old = usable(records)
    if not runs:
        return _nothing("02_rl_vs_sft", old)
    asked = _ran(runs, RL_VS_SFT)
    differences = findings.campaign_forgetting(runs, [(a, b) for a, b, _ in asked])
    split, unsplit = knowledge_format(runs, [(a, b) for a, b, _ in asked])
    gains = gain_drop(runs)
    lines = [learned_sentence(gains), *_detail(differences, asked, ends=True)]
    if asked:
        lines.append(split_sentence(split, [(a, b) for a, b, _ in asked], unsplit))
    else:
        lines.append("No target has runs of both GRPO and another method: there is no drop difference to show.")
    return Answer(len(runs), gains, differences, split, "\n\n".join(lines), scope(runs, "02_rl_vs_sft"))


def ablations(records_03: list, records_02: list) -> Answer:
    """Chapter 3's question from notebook 3's campaign runs: each factor's drop difference (``ABLATIONS``) at the
    end and at matched gain. A comparison notebook 3 did not run (REINFORCE) is read from notebook 2's runs on the
    same targets, paired with notebook 2's own GRPO runs."""
    import pandas as pd

    runs, old = usable(records_03)
    if not runs:
        return _nothing("03_ablations", old)
    targets = {r.target for r in runs}
    borrowed = [r for r in usable(records_02)[0] if r.target in targets]
    own, other = _ran(runs, ABLATIONS), _ran(borrowed, ABLATIONS)
    other = [c for c in other if c not in own]
    frames = [findings.campaign_forgetting(source, [(a, b) for a, b, _ in chosen])
              for source, chosen in ((runs, own), (borrowed, other)) if chosen]
    differences = (pd.concat(frames, ignore_index=True) if frames else findings.campaign_forgetting([], []))
    extra = {a for a, _, _ in other} | {b for _, b, _ in other}
    gains = gain_drop(runs + [r for r in borrowed if r.variant in extra - {r.variant for r in runs}])
    asked = [c for c in ABLATIONS if c in own or c in other]
    lines = [learned_sentence(gains), *_detail(differences, asked)]
    if other:
        lines.append(f"{', '.join(dict.fromkeys(a for a, _, _ in other))} against "
                     f"{', '.join(dict.fromkeys(b for _, b, _ in other))} is read from notebook 2's campaign runs on "
                     "the same target (paired with notebook 2's own runs of the same seeds): notebook 3's campaign "
                     "points do not run it.")
    missing = [f"{c[0]} - {c[1]}" for c in ABLATIONS if c not in asked]
    if missing:
        lines.append(f"Not in the campaign: {', '.join(missing)}.")
    return Answer(len(runs), gains, differences, knowledge_format([], [])[0], "\n\n".join(lines),
                  scope(runs, "03_ablations"))


def iterative(records: list) -> Answer:
    """Chapter 4's question from notebook 4's campaign runs: each Iterative-SFT setting's drop minus SFT's,
    Self-SFT's and GRPO's at the end and at matched gain, and its generated-token cost against GRPO's."""
    runs, old = usable(records)
    if not runs:
        return _nothing("04_iterative_sft", old)
    settings = list(dict.fromkeys(r.variant for r in runs if r.method == "iterative_sft"))
    once = next((v for v in (interval_label(0), "Self-SFT") if any(r.variant == v for r in runs)), "Self-SFT")
    asked = _ran(runs, [c for it in settings for c in (
        (it, "SFT", f"Does {it} forget less than SFT?"),
        (it, once, f"Does {it} forget less than {once} (its data generated once)?"),
        (it, "GRPO", f"Does {it} forget as little as GRPO?"))])
    differences = findings.campaign_forgetting(runs, [(a, b) for a, b, _ in asked])
    gains = gain_drop(runs, cost=True)
    lines = [learned_sentence(gains), *_detail(differences, asked)]
    for target in findings.targets_in_order(runs):
        table = experiment.summary([r for r in runs if r.target == target])
        lines += [f"On {target}: " + findings.cost_sentence(table, it) for it in settings]
    if not settings:
        lines.append("The campaign's points of notebook 4 hold no Iterative-SFT run: nothing to compare.")
    return Answer(len(runs), gains, differences, knowledge_format([], [])[0], "\n\n".join(lines),
                  scope(runs, "04_iterative_sft"))


# ----- the live run that follows --------------------------------------------------------------------------------


def demonstration(setup) -> str:
    """What the chapter's live run is: its size, from the checked settings, and what it can and cannot show."""
    cfg = setup.cfg
    seeds = len(cfg.seeds)
    target = getattr(cfg, "n_eval_target", None)
    text = (f"**A small demonstration you can rerun.** This run: the `{setup.profile}` profile, {seeds} seed"
            f"{'s' * (seeds != 1)}, {cfg.steps} steps x {cfg.batch_size} prompts, {cfg.n_eval} held-out questions "
            f"per task{f' ({target} of the target)' if target else ''}. It runs every measurement of the chapter end "
            "to end, on this machine, in minutes; ")
    if seeds < 2:
        return text + ("with a single seed it has no spread over seeds, so it cannot tell methods apart: read its "
                       "numbers as an illustration of the measurements. The committed campaign above is the "
                       "evidence.")
    return text + (f"over {seeds} seeds at this budget its intervals are wide, so read it as an illustration of the "
                   "measurements. The committed campaign above is the evidence.")


# ----- the results chapter's cross-cutting views ----------------------------------------------------------------

def split_overview(records: list):
    """Per target and variant, over every run that kept lenient scores: the drop (pp) split into knowledge and
    format, and the final shares of other-task answers unparsed, cut off and looping (means over seeds and the
    tasks each drop averages), with the seed count; and a sentence on what share of all the drop is format."""
    import pandas as pd

    runs = as_records(records)
    split, per_run = _split_per_run(runs)
    columns = ["target", "variant", "seeds", "strict drop (pp)", "knowledge drop (pp)", "format drop (pp)",
               "unparsed at end (%)", "cut off at end (%)", "looping at end (%)"]
    left = len(runs) - len(split)
    note = (f" {left} run{'s' * (left != 1)} kept no lenient scores (results files of an older version) and take "
            "no part." if left else "")
    if not split:
        return pd.DataFrame(columns=columns), ("**Knowledge or format, across every run:** no campaign run kept "
                                               f"lenient scores, so no drop can be split.{note}")
    grouped = per_run.groupby(level=["target", "variant"], sort=False)
    frame = grouped.mean().assign(seeds=grouped.size()).reset_index()[columns]
    strict, form = per_run["strict drop (pp)"], per_run["format drop (pp)"]
    lost = strict[strict > 0]
    know = per_run["knowledge drop (pp)"]
    share = (f"the {len(lost)} runs that lost accuracy on the other tasks dropped {lost.mean():.1f} pp on average: "
             f"{know[strict > 0].mean():+.1f} pp knowledge (the right answer no longer anywhere in the reply) and "
             f"{form[strict > 0].mean():+.1f} pp format (still there, but not in the asked-for form)"
             if len(lost) else "no run lost accuracy on the other tasks")
    return frame, f"**Knowledge or format, across every run** ({len(per_run)} runs): {share}.{note}"


def flag_summary(records: list):
    """Per target and variant: how many runs earned collapse or format flags (``analysis.diagnostics``) and which,
    with their counts, so a reader sees which numbers rest on collapsed or looping runs."""
    import pandas as pd

    runs = as_records(records)
    rows = []
    for target in findings.targets_in_order(runs):
        for variant in dict.fromkeys(r.variant for r in runs if r.target == target):
            own = [r for r in runs if r.target == target and r.variant == variant]
            counts: dict[str, int] = {}
            for r in own:
                for flag in r.flags:
                    counts[flag] = counts.get(flag, 0) + 1
            rows.append({"Target": target, "Method": variant, "Runs": len(own),
                         "Flagged runs": sum(bool(r.flags) for r in own),
                         "Flags (runs)": ", ".join(f"{f} ({n})" for f, n in sorted(counts.items())) or "none"})
    columns = ["Target", "Method", "Runs", "Flagged runs", "Flags (runs)"]
    return pd.DataFrame(rows, columns=columns).set_index(columns[:2])


def verdicts(differences) -> list[str]:
    """One line per comparison in a drop-difference table (``findings.campaign_forgetting``): its verdict on each
    target at the headline row (``verdict_summary``), in the table's order."""
    pairs = dict.fromkeys(tuple(c.split(" - ", 1)) for c in differences["comparison"]) if len(differences) else {}
    return [line for a, b in pairs if (line := verdict_summary(differences, a, b))]
