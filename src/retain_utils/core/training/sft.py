"""SFT: cross-entropy on the response tokens of the tasks' expert answers (off-policy data), with an
optional KL penalty to the initial model on the same tokens."""

from __future__ import annotations

from ..generation import encode_prompts
from ..logprobs import Batch, collate, completion_logprobs, kl_penalty, micro_batches
from .loop import Run, epoch_order


def expert_sequences(run: Run) -> list[tuple[list[int], list[int]]]:
    """(prompt ids, expert response ids + EOS) for every training example (``expert_ids`` as they are)."""
    tok = run.tokenizer
    prompts = encode_prompts(tok, [run.tasks[e.task].messages(e) for e in run.train_examples])
    return [(p, list(e.expert_ids) if e.expert_ids is not None
             else tok(e.expert, add_special_tokens=False)["input_ids"] + [tok.eos_token_id])
            for p, e in zip(prompts, run.train_examples)]


def sft_batches(run: Run, sequences: list[tuple[list[int], list[int]]]) -> list[Batch]:
    """Micro batches of one step (similar lengths together); each scaled by 1 / (response tokens in the step)."""
    cfg, total = run.config, sum(len(c) for _, c in sequences)
    batches = []
    for group in micro_batches([len(p) for p, _ in sequences], [len(c) for _, c in sequences],
                               cfg.micro_batch_size, cfg.micro_batch_tokens):
        picked = [sequences[i] for i in group]
        batch = collate([p for p, _ in picked], [c for _, c in picked], run.pad_id)
        batch.scale = 1.0 / total
        if run.config.beta > 0:
            batch.extra["ref_logp"] = run.reference_logprobs(batch.to(run.device)).cpu()
        batches.append(batch)
    return batches


def draw(run: Run, sequences: list, step: int, accum: int, salt: int = 0) -> list:
    """The step's ``batch_size`` sequences: epochs over the data, each in a seeded order."""
    cfg = run.config
    first = (step * cfg.grad_accum + accum) * cfg.batch_size
    return [sequences[epoch_order(len(sequences), first + i, cfg.seed, salt)] for i in range(cfg.batch_size)]


def step_data(run: Run, step: int, accum: int):
    if "sequences" not in run.data:
        run.data["sequences"] = expert_sequences(run)
    return sft_batches(run, draw(run, run.data["sequences"], step, accum)), {}


def loss(run: Run, batch: Batch):
    """Mean negative log-likelihood per response token (+ beta x mean KL estimate to the initial model)."""
    logp = completion_logprobs(run.policy, batch)
    mask = batch.mask.to(logp.dtype)
    nll = -(logp * mask).sum() * batch.scale
    metrics = {"nll": nll.item()}
    if run.config.beta > 0:
        kl = (kl_penalty(logp, batch.extra["ref_logp"], run.config.kl_estimator) * mask).sum() * batch.scale
        metrics["kl"] = kl.item()
        return nll + run.config.beta * kl, metrics
    return nll, metrics
