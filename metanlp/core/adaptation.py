"""Adaptation that fits many-way tasks: mini-batched, scheduled optimiser steps on the support set.

The historical inner loop (:func:`metanlp.algorithms.fomaml.inner_loop`) takes a fixed number of full-batch SGD steps
at one learning rate for every N and K, which underfits a 150-way task as surely as it overfits a 5-way 1-shot one.
Here the number of steps follows the support size (``epochs`` over the support set, clamped to
``[min_steps, max_steps]``), steps are taken on seeded mini-batches, and the optimiser (AdamW or SGD with momentum)
follows a warm-up then a cosine or linear decay. A learned temperature on the logits is optional.

The procedure only talks to the :class:`~metanlp.core.protocols.TaskFamily` protocol (``init_fast_weights``, ``loss``; batches
are dicts of tensors sliced along dim 0), works on fast weights (name -> tensor), keeps no autograd graph across
steps (first order), and is deterministic given ``seed``. ``steps=`` runs only the first steps of the schedule, so the
same procedure can serve as the inner loop of meta-training (:class:`BudgetedFOMAML`).

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
from dataclasses import dataclass, field
from typing import Any

import torch

from metanlp.core.inner_loop import loss_and_grads
from metanlp.core.protocols import Batch, Params, TaskFamily

__all__ = ["OPTIMIZERS", "SCHEDULES", "AdaptBudget", "BudgetedFOMAML", "adapt", "inner_loop", "lr_at"]

log = logging.getLogger(__name__)

OPTIMIZERS = ("adamw", "sgd")
SCHEDULES = ("cosine", "linear", "constant")


@dataclass(frozen=True)
class AdaptBudget:
    """How much and how to adapt: optimiser, learning-rate schedule, batch size and a step rule.

    The defaults are the budget chosen on CLINC150 meta-val tasks (5- to 45-way, K = 1 to 10;
    bench/adapt_budget/README.md): AdamW at lr 3e-3, batches of 32, 10 epochs clamped to [10, 150] steps, 10%
    warm-up then cosine decay, weight decay 0.01, stop once a batch loss is under 1e-3.

    Attributes:
        optimizer: ``adamw`` (decoupled weight decay, Loshchilov & Hutter 2019) or ``sgd`` (with ``momentum``;
            ``momentum=0`` and full batches give the historical inner loop).
        lr: peak learning rate (reached at the end of warm-up), a dimensionless step-size multiplier.
        batch_size: support examples per step, drawn without replacement from seeded permutations of the support
            set (consecutive permutations are chained, so every batch is full); ``0`` or ``>= n_support`` = the whole
            support set every step.
        epochs: passes over the support set that set the step count,
            ``steps = ceil(epochs * n_support / batch)`` clamped to ``[min_steps, max_steps]``; ignored when
            ``steps > 0``.
        steps: a fixed number of steps for every task (``0`` = use the ``epochs`` rule).
        min_steps: lower clamp of the ``epochs`` rule (tiny supports, e.g. 5-way 1-shot, still get this many steps).
        max_steps: upper clamp of the ``epochs`` rule (bounds the cost of 150-way 20-shot tasks); ``0`` = no cap.
        warmup: fraction in ``[0, 1)`` of the steps over which the learning rate rises linearly from ``lr / w``
            to ``lr`` (``w`` warm-up steps; Goyal et al. 2017).
        schedule: after warm-up, ``cosine`` decay to 0 (Loshchilov & Hutter 2017), ``linear`` decay to 0, or
            ``constant``.
        weight_decay: decoupled decay per step (``adamw``: ``p -= lr * wd * p``) or L2 coefficient (``sgd``);
            not applied to the temperature.
        momentum: SGD momentum coefficient in ``[0, 1)``; unused by ``adamw``.
        betas: Adam's ``(beta1, beta2)`` moment decay rates.
        eps: Adam's denominator term.
        head_lr_scale: learning-rate multiplier of the head (the task's ``head_weight``/``head_bias``) relative to
            the adapter.
        learn_temperature: learn a scalar log-temperature ``t`` (start 0) that multiplies the logits by ``exp(t)``
            (metric scaling, Oreshkin et al. 2018); it is folded into the returned head (``W exp(t)``, ``b exp(t)``),
            so the result has the usual keys. Needs a task with ``head_weight``/``head_bias``.
        grad_clip: clip the global gradient norm to this value (``0`` = off).
        stop_loss: stop before a step whose mini-batch loss (nats per example, measured anyway for the gradient) is
            below this value (``0`` = never). Adam's update has the size ``lr`` whatever the gradient's scale, so on
            a support set that the prototype head already fits (1-shot: loss ~1e-6) it would drift the weights
            without signal; this gate leaves such tasks at the prototype head.
        micro_batch: examples per forward/backward pass inside a step (``0`` = the whole batch); bounds activation
            memory, not the result.
    """

    optimizer: str = "adamw"
    lr: float = 3e-3
    batch_size: int = 32
    epochs: float = 10.0
    steps: int = 0
    min_steps: int = 10
    max_steps: int = 150
    warmup: float = 0.1
    schedule: str = "cosine"
    weight_decay: float = 0.01
    momentum: float = 0.9
    betas: tuple[float, float] = field(default=(0.9, 0.999))
    eps: float = 1e-8
    head_lr_scale: float = 1.0
    learn_temperature: bool = False
    grad_clip: float = 0.0
    stop_loss: float = 1e-3
    micro_batch: int = 0

    def __post_init__(self) -> None:
        def bad(name: str, rule: str) -> ValueError:
            return ValueError(f"AdaptBudget.{name} must be {rule}, got {getattr(self, name)!r}")

        if self.optimizer not in OPTIMIZERS:
            raise bad("optimizer", f"one of {list(OPTIMIZERS)}")
        if self.schedule not in SCHEDULES:
            raise bad("schedule", f"one of {list(SCHEDULES)}")
        for name in ("lr", "eps", "head_lr_scale"):
            if not getattr(self, name) > 0:
                raise bad(name, "> 0")
        for name in ("batch_size", "steps", "min_steps", "max_steps", "micro_batch"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 0:
                raise bad(name, "an integer >= 0")
        for name in ("epochs", "weight_decay", "grad_clip", "stop_loss"):
            if not getattr(self, name) >= 0:
                raise bad(name, ">= 0")
        if not 0 <= self.warmup < 1:
            raise bad("warmup", "in [0, 1)")
        if not 0 <= self.momentum < 1:
            raise bad("momentum", "in [0, 1)")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise bad("betas", "two numbers in [0, 1)")
        if self.steps == 0 and self.epochs == 0:
            raise ValueError("AdaptBudget.steps and AdaptBudget.epochs are both 0: set one of them > 0")
        if self.max_steps and self.min_steps > self.max_steps:
            raise ValueError(f"AdaptBudget.min_steps={self.min_steps} exceeds AdaptBudget.max_steps={self.max_steps}")

    def batch_for(self, n_support: int) -> int:
        """Examples per step for a support set of ``n_support`` examples."""
        return n_support if self.batch_size == 0 else min(self.batch_size, n_support)

    def total_steps(self, n_support: int) -> int:
        """Steps of the whole schedule for a support set of ``n_support`` examples (the ``steps``/``epochs`` rule).

        Example:
            >>> b = AdaptBudget(batch_size=32, epochs=10, min_steps=10, max_steps=150)
            >>> b.total_steps(5), b.total_steps(225), b.total_steps(750)
            (10, 71, 150)
        """
        if self.steps > 0:
            return self.steps
        steps = max(self.min_steps, math.ceil(self.epochs * n_support / self.batch_for(n_support)))
        return min(steps, self.max_steps) if self.max_steps else steps


#: Today's inner loop (``meta.inner_lr: 0.5``, ``meta.inner_steps: 5``) as a budget: 5 full-batch SGD steps.
LEGACY_BUDGET = AdaptBudget(optimizer="sgd", lr=0.5, batch_size=0, steps=5, min_steps=0, max_steps=0, warmup=0.0,
                            schedule="constant", weight_decay=0.0, momentum=0.0, stop_loss=0.0)  # fmt: skip


def lr_at(budget: AdaptBudget, step: int, total: int) -> float:
    """Learning rate of step ``step`` (0-based) in a schedule of ``total`` steps.

    Example:
        >>> b = AdaptBudget(lr=1.0, warmup=0.25, schedule="linear")
        >>> [round(lr_at(b, s, 8), 3) for s in range(8)]
        [0.5, 1.0, 1.0, 0.833, 0.667, 0.5, 0.333, 0.167]
    """
    warm = math.ceil(budget.warmup * total)
    if step < warm:
        return budget.lr * (step + 1) / warm
    if budget.schedule == "constant":
        return budget.lr
    progress = (step - warm) / max(1, total - warm)
    if budget.schedule == "linear":
        return budget.lr * (1.0 - progress)
    return budget.lr * 0.5 * (1.0 + math.cos(math.pi * progress))


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
        into the head).

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
    if stats is not None:
        stats["steps"] = 0
    for step, idx in enumerate(_batch_indices(n, batch, run, seed)):
        lr = lr_at(budget, step, total)
        for g in opt.param_groups:
            g["lr"] = lr * g["lr_scale"]
        chunk = support if batch >= n else {k: v[idx.to(v.device)] for k, v in support.items()}
        loss = _set_grads(task, leaves, log_t, (w_key, b_key), tensors, chunk, budget.micro_batch)
        if stats is not None:
            stats["last_loss"] = loss
        if loss < budget.stop_loss:
            opt.zero_grad(set_to_none=True)
            break
        if stats is not None:
            stats["steps"] = step + 1
        if budget.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(tensors, budget.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
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

    With ``micro_batch > 0`` the batch is cut along dim 0 and the gradients of ``loss(chunk) * len(chunk) / n`` are
    summed (the full-batch gradient, activation memory of one chunk). Each chunk's graph is freed after its gradient.
    """
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


@dataclass
class BudgetedFOMAML:
    """First-order MAML whose inner loop is :func:`inner_loop` with an :class:`AdaptBudget`.

    At meta-training the inner loop runs the first ``meta_train_steps`` steps of the budget's schedule (``0`` = the
    whole schedule), so meta-training and test-time adaptation follow the same procedure; :meth:`adapt` (test time)
    runs the whole schedule. The meta-gradient is FOMAML's (Finn et al. 2017, arXiv:1703.03400, sec. 5.2) with the
    prototype-head path chained through ``task.init_vjp`` when the task has one (first-order Proto-MAML).

    Args:
        budget: the adaptation budget.
        meta_train_steps: inner steps per episode at meta-training (``0`` = all).
        seed: mini-batch order seed.
    """

    budget: AdaptBudget = field(default_factory=AdaptBudget)
    meta_train_steps: int = 0
    seed: int = 0

    def extra_parameters(self) -> dict[str, torch.nn.Parameter]:
        """Nothing is meta-learned beyond the adapter: ``{}``."""
        return {}

    def adapt(self, task: TaskFamily, meta_params: Params, support: Batch) -> Params:
        """Fast weights after the whole budget from the task's initial fast weights."""
        return adapt(task, meta_params, support, self.budget, self.seed)

    def meta_gradient(self, task: TaskFamily, meta_params: Params, episode: Any) -> tuple[Params, dict[str, float]]:
        """``(grads, stats)``: the query-loss gradient at the weights after ``meta_train_steps`` inner steps."""
        support, query = task.batches(episode)
        start = task.init_fast_weights(meta_params, support)
        fast = inner_loop(task, start, support, self.budget, self.seed, steps=self.meta_train_steps or None)
        fast = {k: v.requires_grad_(True) for k, v in fast.items()}
        query_loss, g = loss_and_grads(task, fast, query, list(fast), self.budget.micro_batch)
        g_fast = dict(zip(fast, g, strict=True))
        grads = {k: g_fast[k] for k in meta_params}
        init_vjp = getattr(task, "init_vjp", None)
        if init_vjp is not None:
            extra = init_vjp(meta_params, support, {k: v for k, v in g_fast.items() if k not in meta_params},
                             self.budget.micro_batch)  # fmt: skip
            grads = {k: grads[k] + extra[k] for k in grads}
        return grads, {"query_loss": query_loss}
