"""The adaptation budget (how much and how to adapt) and the recipe's ``adapt`` section that sets it.

Torch-free, so that recipes validate without loading a model. The procedure that spends the budget is
:func:`metanlp.core.adaptation.inner_loop`; :func:`budget_from_config` is the one place a recipe becomes a budget, for
every method that adapts (fine-tune, multi-task, the meta-learned init) and for FOMAML's inner loop at meta-training.

**References**

1. Loshchilov, Hutter 2019, "Decoupled Weight Decay Regularization" (AdamW), arXiv:1711.05101.
2. Loshchilov, Hutter 2017, "SGDR" (cosine decay), arXiv:1608.03983; Goyal et al. 2017 (linear warm-up),
   arXiv:1706.02677.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any

from metanlp.core.errors import ConfigError

__all__ = [
    "LEGACY_BUDGET",
    "OPTIMIZERS",
    "PROCEDURES",
    "SCHEDULES",
    "AdaptBudget",
    "AdaptConfig",
    "budget_from_config",
    "lr_at",
]

OPTIMIZERS = ("adamw", "sgd")
SCHEDULES = ("cosine", "linear", "constant")
#: ``budget``: the mini-batched, scheduled procedure of :class:`AdaptBudget`; ``inner_loop``: full-batch SGD at
#: ``meta.inner_lr`` for ``meta.inner_steps`` steps (metanlp before 2026-12, and what the translation recipes use).
PROCEDURES = ("budget", "inner_loop")


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
        steps: a fixed number of steps for every task (``0`` = use the ``epochs`` rule; ``steps = epochs = 0``
            with ``min_steps = 0`` = no step at all, the prototype head only).
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
        probe_head: when the ``stop_loss`` gate stops the whole schedule before its first step (the initial head
            already fits the support: 1-shot), replace the head by the task's linear probe (``task.probe_head``: for
            text, an L2 logistic regression on the support embeddings; Tian et al. 2020), the better head when
            nothing is fine-tuned (CLINC150 meta-val 45-way 1-shot 71.2 vs 70.0). Tasks without ``probe_head`` and
            meta-training's partial inner loops (``steps=`` given) keep the initial head.
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
    probe_head: bool = True

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
        if self.max_steps and self.min_steps > self.max_steps:
            raise ValueError(f"AdaptBudget.min_steps={self.min_steps} exceeds AdaptBudget.max_steps={self.max_steps}")

    def describe(self) -> str:
        """One line for logs and results files, e.g. ``adamw lr 0.003, batch 32, 10 epochs in [10, 150] steps``."""
        batch = "full batch" if self.batch_size == 0 else f"batch {self.batch_size}"
        rule = f"{self.epochs:g} epochs in [{self.min_steps}, {self.max_steps}] steps"
        rule = f"{self.steps} steps" if self.steps else rule
        return f"{self.optimizer} lr {self.lr:g}, {batch}, {rule}, {self.schedule}"

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
                            schedule="constant", weight_decay=0.0, momentum=0.0, stop_loss=0.0,
                            probe_head=False)  # fmt: skip


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


@dataclass
class AdaptConfig:
    """The ``adapt`` section: how every method that adapts (and FOMAML's inner loop) uses the support set.

    With ``procedure: budget`` (default) the fields below become an :class:`AdaptBudget`, whose defaults were chosen on
    CLINC150 meta-val tasks (bench/adapt_budget/README.md); see that class for each field's meaning. With
    ``procedure: inner_loop``: ``steps`` full-batch SGD steps at ``lr`` (-1 = ``meta.inner_steps`` /
    ``meta.inner_lr``), the other fields unused.

    Attributes:
        procedure: one of :data:`PROCEDURES`.
        steps: ``budget``: a fixed step count for every task, -1 = the ``epochs`` rule, 0 = no step (prototype head
            only); ``inner_loop``: -1 = ``meta.inner_steps``.
        lr: peak learning rate; -1 = 3e-3 (``budget``) or ``meta.inner_lr`` (``inner_loop``).
        optimizer: ``adamw`` or ``sgd`` (with momentum 0.9).
        batch_size: support examples per step (0 = the whole support set).
        epochs: passes over the support set that set the step count (when ``steps`` is -1).
        min_steps: fewest steps of the ``epochs`` rule.
        max_steps: most steps of the ``epochs`` rule (0 = no cap).
        warmup: fraction of the steps with a linearly rising learning rate.
        schedule: ``cosine``, ``linear`` or ``constant`` after the warm-up.
        weight_decay: decoupled weight decay (AdamW) or L2 coefficient (SGD).
        stop_loss: stop before a step whose batch loss (nats per example) is below this (0 = never).
        probe_head: a support set that the prototype head already fits (no step taken) gets the linear-probe head
            (logistic regression on its embeddings) instead; ``false`` keeps the prototype head.
    """

    procedure: str = "budget"
    steps: int = -1
    lr: float = -1.0
    # the defaults are AdaptBudget's (one place to change them)
    optimizer: str = AdaptBudget.optimizer
    batch_size: int = AdaptBudget.batch_size
    epochs: float = AdaptBudget.epochs
    min_steps: int = AdaptBudget.min_steps
    max_steps: int = AdaptBudget.max_steps
    warmup: float = AdaptBudget.warmup
    schedule: str = AdaptBudget.schedule
    weight_decay: float = AdaptBudget.weight_decay
    stop_loss: float = AdaptBudget.stop_loss
    probe_head: bool = AdaptBudget.probe_head

    def __post_init__(self) -> None:
        if self.procedure not in PROCEDURES:
            raise ConfigError(f"adapt.procedure={self.procedure!r} is not one of {', '.join(PROCEDURES)}")
        if self.steps < -1:
            raise ConfigError(f"adapt.steps={self.steps}: use -1 (the default rule) or a number of steps >= 0")
        if self.lr != -1 and self.lr <= 0:
            raise ConfigError(f"adapt.lr={self.lr}: use -1 (the default) or a learning rate > 0")
        try:
            budget_from_config(self, inner_steps=1, inner_lr=1.0)
        except ValueError as e:  # AdaptBudget names its field; the recipe key is adapt.<field>
            raise ConfigError(str(e).replace("AdaptBudget.", "adapt.")) from None


def budget_from_config(adapt: AdaptConfig, inner_steps: int, inner_lr: float, micro_batch: int = 0) -> AdaptBudget:
    """The :class:`AdaptBudget` that the recipe's ``adapt`` section describes.

    Args:
        adapt: the ``adapt`` section.
        inner_steps: ``meta.inner_steps`` (the step count of ``procedure: inner_loop`` when ``adapt.steps`` is -1).
        inner_lr: ``meta.inner_lr`` (the learning rate of ``procedure: inner_loop`` when ``adapt.lr`` is -1).
        micro_batch: ``meta.micro_batch``, examples per forward/backward pass (memory only, not the result).

    Raises:
        ValueError: a field out of range (the message names ``AdaptBudget.<field>``).

    Example:
        >>> budget_from_config(AdaptConfig(), 5, 0.5).optimizer, budget_from_config(AdaptConfig(), 5, 0.5).lr
        ('adamw', 0.003)
        >>> b = budget_from_config(AdaptConfig(procedure="inner_loop"), 5, 0.5)
        >>> b.optimizer, b.lr, b.total_steps(300), b.batch_for(300)
        ('sgd', 0.5, 5, 300)
    """
    if adapt.procedure == "inner_loop":
        steps = adapt.steps if adapt.steps >= 0 else inner_steps
        lr = adapt.lr if adapt.lr > 0 else inner_lr
        return AdaptBudget(optimizer="sgd", lr=lr, batch_size=0, steps=steps, epochs=0.0, min_steps=0, max_steps=0,
                           warmup=0.0, schedule="constant", weight_decay=0.0, momentum=0.0, stop_loss=0.0,
                           micro_batch=micro_batch, probe_head=False)  # fmt: skip
    shared: dict[str, Any] = {f.name: getattr(adapt, f.name) for f in fields(adapt)
                              if f.name not in ("procedure", "steps", "lr")}  # fmt: skip
    if adapt.steps == 0:
        shared.update(epochs=0.0, min_steps=0)
    return AdaptBudget(**shared, steps=max(adapt.steps, 0), lr=adapt.lr if adapt.lr > 0 else AdaptBudget.lr,
                       micro_batch=micro_batch)  # fmt: skip
