"""Meta-learning algorithms behind one small interface.

A learner has two verbs (as learn2learn's ``clone``/``adapt``, but functional):

- ``adapt(task, meta_params, support) -> fast_params``: the inner loop, used at meta-training *and* at adaptation
  time, so the two are the same procedure;
- ``meta_gradient(task, meta_params, episode) -> (grads, stats)``: the gradient of this episode's meta-objective with
  respect to each meta-parameter (a dict with the keys of ``meta_params``), plus floats to log.

The meta-training loop averages the gradients over the meta-batch and the processes and applies one optimiser step.
``extra_parameters()`` returns parameters the learner itself meta-learns (Meta-SGD's learning rates), which join the
optimiser and the checkpoint. A learner whose extras are shaped like the meta-parameters also has
``bind(meta_params)``, which creates them; :func:`build_learner` calls it when given the meta-parameters.
"""

from __future__ import annotations

import importlib
from typing import Any, Protocol

import torch

from metanlp.config import MetaConfig
from metanlp.tasks import Batch, Params, TaskFamily

__all__ = ["LEARNERS", "MetaLearner", "build_learner"]


class MetaLearner(Protocol):
    """What the meta-training loop and the recipes need from an algorithm."""

    def adapt(self, task: TaskFamily, meta_params: Params, support: Batch) -> Params:
        """Inner loop: fast weights adapted to the support set."""
        ...

    def meta_gradient(self, task: TaskFamily, meta_params: Params, episode: Any) -> tuple[Params, dict[str, float]]:
        """Meta-gradient of one episode w.r.t. ``meta_params`` (same keys) and statistics to log."""
        ...

    def extra_parameters(self) -> dict[str, torch.nn.Parameter]:
        """Parameters of the learner itself that are meta-learned ({} for most learners)."""
        ...


#: ``meta.algorithm`` -> "module:builder"; each builder takes a MetaConfig and returns a MetaLearner.
LEARNERS = {
    "fomaml": "metanlp.algorithms.fomaml:FOMAML",
    "maml": "metanlp.algorithms.maml:MAML",
    "reptile": "metanlp.algorithms.reptile:Reptile",
    "metasgd": "metanlp.algorithms.metasgd:MetaSGD",
    "anil": "metanlp.algorithms.anil:ANIL",
    "protonet": "metanlp.algorithms.protonet:ProtoNet",
}


def build_learner(cfg: MetaConfig, meta_params: Params | None = None) -> MetaLearner:
    """The learner named by ``cfg.algorithm``, configured from ``cfg``.

    Args:
        cfg: the ``meta`` section.
        meta_params: the meta-parameters; learners with a ``bind(meta_params)`` method (Meta-SGD) create their
            extra parameters from them, so pass them before calling ``extra_parameters()``.

    Raises:
        ValueError: the name is unknown or its module is not available in this version.
    """
    if cfg.algorithm not in LEARNERS:
        raise ValueError(f"meta.algorithm={cfg.algorithm!r}; available: {sorted(LEARNERS)}")
    module, name = LEARNERS[cfg.algorithm].split(":")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as e:
        raise ValueError(f"meta.algorithm={cfg.algorithm!r} is not available in this version: {e}") from e
    learner = cls.from_config(cfg)
    if meta_params is not None and hasattr(learner, "bind"):
        learner.bind(meta_params)
    return learner
