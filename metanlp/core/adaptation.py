"""Adaptation that fits many-way tasks: mini-batched, scheduled optimiser steps on the support set.

The historical inner loop (:func:`metanlp.core.inner_loop.inner_loop`) takes a fixed number of full-batch SGD steps
at one learning rate for every N and K, which underfits a 150-way task as surely as it overfits a 5-way 1-shot one.
Here the number of steps follows the support size (``epochs`` over the support set, clamped to
``[min_steps, max_steps]``), steps are taken on seeded mini-batches, and the optimiser (AdamW or SGD with momentum)
follows a warm-up then a cosine or linear decay. A learned temperature on the logits is optional.

The procedure only talks to the :class:`~metanlp.core.protocols.TaskFamily` protocol (``init_fast_weights``,
``loss``; batches are dicts of tensors sliced along dim 0), works on fast weights (name -> tensor), keeps no autograd
graph across steps (first order), and is deterministic given ``seed``. ``steps=`` runs only the first steps of the
schedule, so the same procedure serves as FOMAML's inner loop at meta-training
(:class:`metanlp.algorithms.fomaml.FOMAML`).

**References**

1. Loshchilov, Hutter 2019, "Decoupled Weight Decay Regularization" (AdamW), arXiv:1711.05101.
2. Loshchilov, Hutter 2017, "SGDR: Stochastic Gradient Descent with Warm Restarts" (cosine decay), arXiv:1608.03983.
3. Goyal et al. 2017, "Accurate, Large Minibatch SGD: Training ImageNet in 1 Hour" (linear warm-up), arXiv:1706.02677.
4. Oreshkin, Rodriguez, Lacoste 2018, "TADAM: Task dependent adaptive metric" (learned metric scale),
   arXiv:1805.10123.
5. Triantafillou et al. 2020, "Meta-Dataset" (prototype-initialised head, Proto-MAML), arXiv:1903.03096.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import torch

from metanlp.core.budget import LEGACY_BUDGET, OPTIMIZERS, SCHEDULES, AdaptBudget, lr_at
from metanlp.core.inner_loop import loss_and_grads
from metanlp.core.micro_batches import trim
from metanlp.core.protocols import Batch, Params, TaskFamily

__all__ = ["LEGACY_BUDGET", "OPTIMIZERS", "SCHEDULES", "AdaptBudget", "adapt", "inner_loop", "lr_at"]

log = logging.getLogger(__name__)


def _batch_indices(n: int, batch: int, steps: int, seed: int) -> list[torch.Tensor]:
    """``steps`` index tensors ``(batch,)`` taken consecutively from chained seeded permutations of ``range(n)``."""
    if batch >= n or steps == 0:
        return [torch.arange(n)] * steps
    gen = torch.Generator().manual_seed(seed)
    need = steps * batch
    stream = torch.cat([torch.randperm(n, generator=gen) for _ in range(math.ceil(need / n))])
    return [stream[i * batch : (i + 1) * batch] for i in range(steps)]


def _head_keys(task: Any) -> tuple[str, str]:
    names = getattr(task, "head_weight", None), getattr(task, "head_bias", None)
    return (names[0] or "", names[1] or "")


@torch.enable_grad()
def inner_loop(
    task: TaskFamily,
    params: Params,
    support: Batch,
    budget: AdaptBudget,
    seed: int = 0,
    steps: int | None = None,
    stats: dict[str, float] | None = None,
) -> Params:
    """Adapt fast weights to ``support`` with ``budget``; no graph is kept across steps (first order).

    Args:
        task: gives ``task.loss(params, batch)`` (mean loss over dim 0 of ``batch``).
        params: starting fast weights (name -> tensor), e.g. ``task.init_fast_weights(meta_params, support)``.
        support: the support batch, tensors of shape ``(n_support, ...)``.
        budget: optimiser, schedule, batch size and step rule.
        seed: seed of the mini-batch order (the only randomness).
        steps: run only the first ``steps`` steps of the budget's schedule (e.g. a meta-training inner loop);
            ``None`` = the whole schedule (``budget.total_steps(n_support)``).
        stats: if given, filled with ``steps`` (optimiser steps taken, fewer than planned after a ``stop_loss``
            stop) and ``last_loss`` (the mean loss of the last mini-batch seen, before its step).

    Returns:
        The adapted fast weights, detached, same keys and shapes as ``params`` (a learned temperature is folded
        into the head). When the whole schedule runs (``steps=None``), the ``stop_loss`` gate stops it before its
        first step and ``budget.probe_head`` is set, the head is the task's linear probe instead
        (``task.probe_head(params, support)``, if the task has one; ``stats["probe_head"] = 1``).

    Raises:
        ValueError: ``learn_temperature`` on a task without ``head_weight``/``head_bias``.
    """
    n = next(iter(support.values())).shape[0]
    total = budget.total_steps(n)
    run = total if steps is None else min(steps, total)
    w_key, b_key = _head_keys(task)
    if budget.learn_temperature and not (w_key in params and b_key in params):
        raise ValueError("AdaptBudget.learn_temperature needs a task whose fast weights hold head_weight/head_bias")
    leaves = {k: v.detach().clone().requires_grad_(True) for k, v in params.items()}
    head = [leaves[k] for k in (w_key, b_key) if k in leaves]
    body = [v for k, v in leaves.items() if k not in (w_key, b_key)]
    groups = [{"params": body, "lr_scale": 1.0, "weight_decay": budget.weight_decay}]
    if head:
        groups.append({"params": head, "lr_scale": budget.head_lr_scale, "weight_decay": budget.weight_decay})
    log_t = torch.zeros((), requires_grad=True, device=head[0].device) if budget.learn_temperature else None
    if log_t is not None:
        groups.append({"params": [log_t], "lr_scale": 1.0, "weight_decay": 0.0})
    groups = [g for g in groups if g["params"]]
    if budget.optimizer == "adamw":
        opt: torch.optim.Optimizer = torch.optim.AdamW(groups, lr=budget.lr, betas=budget.betas, eps=budget.eps)
    else:
        opt = torch.optim.SGD(groups, lr=budget.lr, momentum=budget.momentum)
    tensors = list(leaves.values()) + ([log_t] if log_t is not None else [])
    batch = budget.batch_for(n)
    seq_keys = getattr(task, "sequence_keys", ())
    if stats is not None:
        stats["steps"] = 0
    taken = 0
    for step, idx in enumerate(_batch_indices(n, batch, run, seed)):
        lr = lr_at(budget, step, total)
        for g in opt.param_groups:
            g["lr"] = lr * g["lr_scale"]
        chunk = support if batch >= n else trim({k: v[idx.to(v.device)] for k, v in support.items()}, seq_keys)
        loss = _set_grads(task, leaves, log_t, (w_key, b_key), tensors, chunk, budget.micro_batch)
        if stats is not None:
            stats["last_loss"] = loss
        if loss < budget.stop_loss:
            opt.zero_grad(set_to_none=True)
            break
        taken = step + 1
        if stats is not None:
            stats["steps"] = taken
        if budget.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(tensors, budget.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
    probe = getattr(task, "probe_head", None)
    if steps is None and run > 0 and taken == 0 and budget.probe_head and callable(probe):
        if stats is not None:
            stats["probe_head"] = 1
        return probe(params, support)  # nothing was fine-tuned: the linear probe is the better head (budget.py)
    with torch.no_grad():
        return {k: v.detach().clone() for k, v in _with_temperature(leaves, log_t, w_key, b_key).items()}


def _with_temperature(leaves: Params, log_t: torch.Tensor | None, w_key: str, b_key: str) -> Params:
    """The fast weights the task sees: the head scaled by ``exp(log_t)`` when a temperature is learned."""
    if log_t is None:
        return leaves
    scale = log_t.exp()
    return {**leaves, w_key: leaves[w_key] * scale, b_key: leaves[b_key] * scale}


def _set_grads(
    task: TaskFamily,
    leaves: Params,
    log_t: torch.Tensor | None,
    head: tuple[str, str],
    tensors: list[torch.Tensor],
    batch: Batch,
    micro_batch: int,
) -> float:
    """Set ``t.grad`` for ``t`` in ``tensors`` to the gradient of the mean loss over ``batch``; return the loss.

    Without a learned temperature this is :func:`~metanlp.core.inner_loop.loss_and_grads` (length-sorted
    micro-batches of ``micro_batch`` examples, their size-weighted gradients summed: the full-batch gradient with the
    activation memory of one chunk). With one, the head seen by the task is ``head * exp(log_t)`` and chunks are cut
    in batch order.
    """
    if log_t is None:
        loss, grads = loss_and_grads(task, leaves, batch, list(leaves), micro_batch)
        for t, g in zip(tensors, grads, strict=True):
            t.grad = g
        return loss
    n = next(iter(batch.values())).shape[0]
    size = micro_batch if 0 < micro_batch < n else n
    total = 0.0
    for i in range(0, n, size):
        part = batch if size == n else {k: v[i : i + size] for k, v in batch.items()}
        weight = next(iter(part.values())).shape[0] / n
        loss = task.loss(_with_temperature(leaves, log_t, *head), part) * weight
        for t, g in zip(tensors, torch.autograd.grad(loss, tensors), strict=True):
            t.grad = g if t.grad is None else t.grad + g
        total += loss.item()
    return total


def adapt(task: TaskFamily, meta_params: Params, support: Batch, budget: AdaptBudget, seed: int = 0) -> Params:
    """Fast weights adapted from ``task.init_fast_weights(meta_params, support)`` with the whole ``budget``.

    Example:
        >>> from metanlp.families.text_classification.adapter import attach_lora, lora_parameters
        >>> from metanlp.families.text_classification.backbone import tiny_encoder
        >>> from metanlp.core.config import AdapterConfig
        >>> from metanlp.families.text_classification.family import TextClassificationFamily
        >>> enc, tok = tiny_encoder()
        >>> model = attach_lora(enc, AdapterConfig(r=2))
        >>> task = TextClassificationFamily(model, tok)
        >>> support = task.tokenize(["red car", "blue sky", "red rose", "blue sea"], [0, 1, 0, 1])
        >>> fast = adapt(task, lora_parameters(model), support, AdaptBudget(batch_size=2, epochs=5), seed=0)
        >>> tuple(fast[task.head_weight].shape)
        (2, 32)
    """
    return inner_loop(task, task.init_fast_weights(meta_params, support), support, budget, seed)
