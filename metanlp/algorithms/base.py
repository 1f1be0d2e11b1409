"""The declared interface of a meta-learning algorithm, and the one learner builder.

A learner has two verbs (as learn2learn's ``clone``/``adapt``, but functional):

- ``adapt(task, meta_params, support) -> fast_params``: the inner loop, used at meta-training *and* at adaptation
  time, so the two are the same procedure;
- ``meta_gradient(task, meta_params, episode) -> (grads, stats)``: the gradient of this episode's meta-objective with
  respect to each meta-parameter (a dict with the keys of ``meta_params``), plus floats to log.

plus ``from_config(meta_cfg)`` (how ``meta.algorithm`` builds it), ``extra_parameters()`` (parameters the learner
itself meta-learns, e.g. Meta-SGD's learning rates: they join the optimiser and the checkpoint; ``{}`` by default)
and ``bind(meta_params)`` (creates extras shaped like the meta-parameters; a no-op by default). Learners subclass
:class:`MetaLearner` to get the two defaults; the meta-training loop averages the gradients over the meta-batch and
the processes and applies one optimiser step.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import torch

from metanlp.core import registry
from metanlp.core.budget import AdaptBudget
from metanlp.core.config import MetaConfig
from metanlp.core.protocols import Batch, Params, TaskFamily

__all__ = ["MetaLearner", "adaptation_learner", "build_learner", "load_learner_extras"]


class MetaLearner(Protocol):
    """What the meta-training loop and the recipes need from an algorithm (subclass it for the defaults)."""

    @classmethod
    def from_config(cls, cfg: MetaConfig, budget: AdaptBudget | None = None) -> MetaLearner:
        """Build from the ``meta`` section (``inner_lr``, ``inner_steps``, ``micro_batch`` ...) and the recipe's
        adaptation budget (a learner whose inner loop is SGD by construction ignores it)."""
        ...

    def adapt(self, task: TaskFamily, meta_params: Params, support: Batch) -> Params:
        """Inner loop: fast weights adapted to the support set (detached; same keys as ``meta_params`` plus the
        task's own fast weights, e.g. a head)."""
        ...

    def meta_gradient(self, task: TaskFamily, meta_params: Params, episode: Any) -> tuple[Params, dict[str, float]]:
        """Meta-gradient of one episode w.r.t. ``meta_params`` (same keys and shapes) and statistics to log."""
        ...

    def extra_parameters(self) -> dict[str, torch.nn.Parameter]:
        """Parameters of the learner itself that are meta-learned: ``{}`` unless the learner overrides it."""
        return {}

    def extra_outer_lr(self) -> float:
        """The outer loop's learning rate for :meth:`extra_parameters`; 0 (default) = the adapter's."""
        return 0.0

    def bind(self, meta_params: Params) -> dict[str, torch.nn.Parameter]:
        """Create extra parameters shaped like ``meta_params`` (Meta-SGD's rates); a no-op by default."""
        return self.extra_parameters()


def build_learner(
    cfg: MetaConfig, meta_params: Params | None = None, budget: AdaptBudget | None = None
) -> MetaLearner:
    """The learner named by ``cfg.algorithm`` (see :mod:`metanlp.core.registry`), configured from ``cfg``.

    This is the one way a learner is built (meta-training, adaptation, evaluation, both families).

    Args:
        cfg: the ``meta`` section (with the adaptation budget already applied for adaptation-time learners).
        meta_params: the meta-parameters; when given, ``bind`` creates the learner's extras from them.
        budget: the adaptation budget (:func:`~metanlp.core.comparison.adaptation_budget`); FOMAML's inner loop
            follows it (None = plain SGD steps).

    Raises:
        ValueError: the name is unknown or its module is not available in this version.
    """
    cls = registry.load_object(registry.learner_target(cfg.algorithm))
    learner = cls.from_config(cfg, budget)
    if meta_params is not None:
        learner.bind(meta_params)
    return learner


def adaptation_learner(cfg: Any, meta_params: Params | None = None) -> MetaLearner:
    """The recipe's learner with the adaptation budget (:func:`~metanlp.core.comparison.adaptation_budget`) and, when
    ``adapter.init`` holds them, its meta-learned extras (Meta-SGD's rates): what adapts the ``meta`` method.

    Args:
        cfg: a :class:`~metanlp.core.config.RecipeConfig`.
        meta_params: the adapter's meta-parameters (they shape Meta-SGD's rates).

    Raises:
        ValueError: see :func:`build_learner` and :func:`load_learner_extras`.
    """
    from dataclasses import replace

    from metanlp.core.comparison import adaptation_budget

    budget = adaptation_budget(cfg)
    meta = cfg.meta
    if cfg.adapt.procedure == "inner_loop":  # SGD learners take adapt.steps/adapt.lr as their inner loop's
        meta = replace(cfg.meta, inner_steps=budget.steps, inner_lr=budget.lr)
    learner = build_learner(meta, meta_params, budget)
    if cfg.adapter.init:
        load_learner_extras(learner, cfg.adapter.init, cfg.meta.algorithm)
    return learner


def load_learner_extras(learner: MetaLearner, init_dir: str | Path, algorithm: str) -> None:
    """Load the meta-learned extras (``learner.safetensors`` of a meta-train output) into ``learner`` in place.

    A folder without that file (a learner with no extras) is left alone.

    Raises:
        ValueError: the file lacks one of the learner's extras (made with another ``meta.algorithm``?).
    """
    from safetensors.torch import load_file

    extra_file = Path(init_dir) / "learner.safetensors"
    if not extra_file.is_file():
        return
    saved = load_file(str(extra_file))
    for k, p in learner.extra_parameters().items():
        if k not in saved:
            raise ValueError(f"{extra_file} lacks {k!r}: was adapter.init made with meta.algorithm={algorithm}?")
        p.data.copy_(saved[k])
