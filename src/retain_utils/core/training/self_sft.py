"""Self-SFT: sample ``group_size`` answers per prompt from the model, keep those the verifier accepts,
SFT on them. Plain Self-SFT samples once, from the initial model (on-policy at step 0 only);
Iterative-SFT resamples from the current model every ``regenerate_every`` steps (approximately on-policy)."""

from __future__ import annotations

import time

from . import sft
from .loop import Run, sample_reward


def regenerate(run: Run, round_: int) -> dict:
    """Sample, filter by reward, and keep the accepted (prompt, answer) pairs as the round's training data
    (a later round that solves nothing keeps the previous round's data). Returns what the sampling cost."""
    cfg, t0 = run.config, time.time()
    examples = run.train_examples
    comps = run.generate([run.tasks[e.task].messages(e) for e in examples], max_new_tokens=cfg.max_new_tokens,
                         temperature=cfg.temperature, num_samples=cfg.group_size,
                         batch_size=cfg.rollout_batch_size, seed=cfg.seed * 1_000_003 + round_,
                         progress=run.progress)
    kept = [(c.prompt_ids, c.completion_ids) for c in comps if sample_reward(run, examples[c.prompt_index], c) == 1.0]
    if not kept and "sequences" not in run.data:
        raise RuntimeError(f"{cfg.run_name}: none of the {len(comps)} samples of round {round_} passed the "
                           f"verifier, so there is nothing to train on; use more prompts, a larger group_size "
                           f"or a task the model can already solve sometimes")
    run.data.update(round=round_, sequences=kept or run.data["sequences"], metrics={
        "data_accept_rate": len(kept) / len(comps), "data_size": len(kept or run.data["sequences"])})
    return {"generated_tokens": sum(len(c.completion_ids) for c in comps), "data_gen_seconds": time.time() - t0}


def step_data(run: Run, step: int, accum: int):
    cfg = run.config
    round_ = step // cfg.regenerate_every if cfg.regenerate_every else 0
    cost = regenerate(run, round_) if run.data.get("round") != round_ else {}
    batches = sft.sft_batches(run, sft.draw(run, run.data["sequences"], step, accum, salt=round_))
    # the round's acceptance rate and data size at every step; the generation cost at the step that paid it
    return batches, {**run.data["metrics"], "generated_tokens": 0, "data_gen_seconds": 0.0, **cost}


loss = sft.loss
