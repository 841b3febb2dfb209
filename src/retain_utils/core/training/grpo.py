"""GRPO (and REINFORCE, the same trainer with the baseline and the std normalisation off).

Per step: ``group_size`` samples for each of ``batch_size`` prompts at the rollout temperature (from the
current policy, or from the initial model with ``rollouts_from="initial"``: stale rollouts), a 0/1
reward from the task's verifier (0 for an answer cut off before EOS, with ``require_eos``), advantage =
(reward - group mean) / (group std + 1e-4), and the loss below with a per-token KL penalty to the frozen
initial policy. Log-probabilities of the policy and the reference are taken at temperature 1, as in the
authors' code (TRL divides the logits by the sampling temperature instead).
"""

from __future__ import annotations

import time

import numpy as np
import torch

from ..repetition import is_looping
from ..logprobs import Batch, collate, completion_logprobs, kl_penalty, micro_batches
from .loop import Run, epoch_order, sample_reward

STD_EPS = 1e-4  # as TRL
LOGPROB_TEMPERATURE = 1.0  # the authors' policy and reference log-probs


def advantages(rewards: torch.Tensor, use_baseline: bool = True, normalize_std: bool = True) -> torch.Tensor:
    """rewards (prompts, group) -> advantages of the same shape."""
    adv = rewards - rewards.mean(1, keepdim=True) if use_baseline else rewards.clone()
    if normalize_std:
        adv = adv / (rewards.std(1, keepdim=True) + STD_EPS)
    return adv


def grpo_loss(logp, old_logp, ref_logp, adv, mask, *, beta: float, kl_estimator: str = "sq",
              clip_eps: float | None = None, importance_cap: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sequence losses (B,) and per-sequence mean KL (B,).

    loss_i = mean over completion tokens t of [ -w_t A_i + beta KL_t ], with r_t = pi(y_t) / pi_old(y_t):
    w_t = r_t (= 1 with gradient grad log pi when rollouts are used once), PPO's min(r_t A, clip(r_t) A) with
    ``clip_eps``, or r_t truncated at ``importance_cap`` (its gradient min(r_t, cap) grad log pi) for stale rollouts.
    """
    # logp, old_logp, ref_logp, mask: (B, T) over completion tokens; adv: (B,)
    mask = mask.to(logp.dtype)                                      # (B, T) 1 on scored tokens
    ratio = torch.exp(logp - old_logp)                              # (B, T) pi / pi_old, 1 on fresh rollouts
    if importance_cap is not None:                                  # truncated importance weight, no trust region
        ratio = ratio * (ratio.detach().clamp(max=importance_cap) / ratio.detach())
    per_token = -ratio * adv[:, None]                               # (B, T) policy-gradient term
    if clip_eps is not None:
        per_token = torch.maximum(per_token, -ratio.clamp(1 - clip_eps, 1 + clip_eps) * adv[:, None])
    kl = kl_penalty(logp, ref_logp, kl_estimator) if ref_logp is not None else torch.zeros_like(logp)  # (B, T)
    if beta > 0:
        per_token = per_token + beta * kl
    length = mask.sum(-1).clamp(min=1)                              # (B,) completion tokens per sequence
    return (per_token * mask).sum(-1) / length, (kl * mask).sum(-1) / length


def rollout(run: Run, step: int, accum: int):
    """Sample, score and batch one group of rollouts; returns (micro batches, metrics)."""
    cfg, t0 = run.config, time.time()
    index = (step // cfg.reuse) * cfg.grad_accum + accum
    picked = [epoch_order(len(run.train_examples), index * cfg.batch_size + i, cfg.seed) for i in range(cfg.batch_size)]
    examples = [run.train_examples[i] for i in picked]
    stale = cfg.rollouts_from == "initial"
    comps = run.generate([run.tasks[e.task].messages(e) for e in examples], max_new_tokens=cfg.max_new_tokens,
                         temperature=cfg.temperature, num_samples=cfg.group_size, initial=stale,
                         batch_size=cfg.rollout_batch_size, seed=cfg.seed * 1_000_003 + index)
    gen_seconds = time.time() - t0
    rewards = torch.tensor([sample_reward(run, examples[c.prompt_index], c) for c in comps],
                           dtype=torch.float32).view(cfg.batch_size, cfg.group_size)
    adv = advantages(rewards, cfg.use_baseline, cfg.normalize_std).flatten()
    if cfg.keep_correct:  # checkpointed with run.data, so a resumed run keeps what it had collected
        # the sampled token ids themselves (EOS last), not the text re-tokenised: SFT trains on exactly these
        run.data.setdefault("correct", []).extend(
            {"example": picked[c.prompt_index], "text": c.text, "completion_ids": list(c.completion_ids), "step": step}
            for c, r in zip(comps, rewards.flatten().tolist()) if r == 1.0 and c.finished)
    # With no KL term a zero-advantage sequence adds exactly nothing to loss or gradient: skip its forward.
    keep = [i for i in range(len(comps)) if adv[i] != 0 or cfg.beta > 0 or cfg.reuse > 1]
    batches = []
    for group in micro_batches([len(comps[i].prompt_ids) for i in keep], [len(comps[i].completion_ids) for i in keep],
                               cfg.micro_batch_size, cfg.micro_batch_tokens, [comps[i].prompt_index for i in keep]):
        ids = [keep[j] for j in group]
        batch = collate([comps[i].prompt_ids for i in ids], [comps[i].completion_ids for i in ids], run.pad_id)
        batch.extra["adv"] = adv[ids]
        batch.extra["metric_weight"] = torch.full((len(ids),), 1.0 / len(keep))  # averages over scored sequences
        batch.scale = 1.0 / len(comps)  # mean over all sequences of the step, skipped ones included
        on_device = batch.to(run.device)
        if cfg.beta > 0 or stale:
            ref_logp = run.reference_logprobs(on_device, LOGPROB_TEMPERATURE).cpu()
            if cfg.beta > 0:
                batch.extra["ref_logp"] = ref_logp
            if stale:  # the rollouts' own sampling distribution: the importance ratio is pi / pi_initial
                batch.extra["old_logp"] = ref_logp
        if cfg.reuse > 1 and not stale:
            with torch.no_grad(), run.autocast():
                batch.extra["old_logp"] = completion_logprobs(run.policy, on_device, LOGPROB_TEMPERATURE).cpu()
        batches.append(batch)
    n_gen = sum(len(c.completion_ids) for c in comps)
    metrics = {
        "reward": rewards.mean().item(),
        "reward_group_std": rewards.std(1).mean().item(),
        "zero_std_frac": (rewards.std(1) == 0).float().mean().item(),
        "completion_len": n_gen / len(comps),
        "finished_frac": float(np.mean([c.finished for c in comps])),
        "cutoff_frac": float(np.mean([not c.finished for c in comps])),
        "looping_frac": float(np.mean([is_looping(c.completion_ids) for c in comps])),
        "gen_seconds": gen_seconds,
        "gen_tokens_per_s": n_gen / max(gen_seconds, 1e-9),
        "generated_tokens": n_gen,
    }
    return batches, metrics


def step_data(run: Run, step: int, accum: int):
    if run.config.reuse == 1:
        return rollout(run, step, accum)
    if step % run.config.reuse == 0:  # kept in run.data, so a resumed run reuses the same rollouts
        run.data.setdefault("rollouts", {})[accum] = rollout(run, step, accum)
        return run.data["rollouts"][accum]
    batches, metrics = run.data["rollouts"][accum]
    return batches, {**metrics, "generated_tokens": 0, "gen_seconds": 0.0}  # reused: nothing generated


def loss(run: Run, batch: Batch):
    cfg = run.config
    logp, entropy = completion_logprobs(run.policy, batch, LOGPROB_TEMPERATURE, with_entropy=True)  # (B, T) each
    old = batch.extra.get("old_logp", logp.detach())
    seq_loss, seq_kl = grpo_loss(logp, old, batch.extra.get("ref_logp"), batch.extra["adv"], batch.mask,
                                 beta=cfg.beta, kl_estimator=cfg.kl_estimator, clip_eps=cfg.clip_eps,
                                 importance_cap=cfg.importance_cap)
    mask = batch.mask.to(entropy.dtype)
    # mean token entropy of the policy per sequence, summed with the step's weights: a collapse shows as ~0
    weight = batch.extra.get("metric_weight", torch.full(entropy.shape[:1], batch.scale))
    metrics = {"entropy": (((entropy * mask).sum(-1) / mask.sum(-1).clamp(min=1)) * weight).sum().item()}
    if cfg.beta > 0:
        metrics["kl"] = seq_kl.sum().item() * batch.scale
    return seq_loss.sum() * batch.scale, metrics
