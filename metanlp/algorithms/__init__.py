"""Meta-learning algorithms behind one declared interface (:class:`~metanlp.algorithms.base.MetaLearner`).

Each algorithm is one module: ``fomaml`` (first-order MAML, the default), ``maml`` (second order), ``reptile``,
``metasgd``. Learners that need a family's embedding head (ANIL, ProtoNet) live with that family
(:mod:`metanlp.families.text_classification`). All register in :mod:`metanlp.core.registry`; ``meta.algorithm``
picks one. Importing this package is cheap (no torch): modules load when a learner is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from metanlp.core.registry import register_learner

if TYPE_CHECKING:
    from metanlp.algorithms.base import MetaLearner
    from metanlp.core.config import MetaConfig

__all__ = ["build_learner"]

register_learner("fomaml", "metanlp.algorithms.fomaml:FOMAML")
register_learner("maml", "metanlp.algorithms.maml:MAML")
register_learner("reptile", "metanlp.algorithms.reptile:Reptile")
register_learner("metasgd", "metanlp.algorithms.metasgd:MetaSGD")


def build_learner(cfg: MetaConfig, meta_params: dict[str, Any] | None = None, budget: Any = None) -> MetaLearner:
    """The learner named by ``cfg.algorithm``, configured from ``cfg`` and the adaptation ``budget`` (see
    :func:`metanlp.algorithms.base.build_learner`)."""
    from metanlp.algorithms.base import build_learner as build

    return build(cfg, meta_params, budget)
