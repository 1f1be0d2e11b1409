"""Meta-SGD over adapter parameters: the inner learning rate of every adapter weight is meta-learned.

**References**

1. Li, Zhou, Chen, Li 2017, "Meta-SGD: Learning to Learn Quickly for Few-Shot Learning", arXiv:1707.09835.
2. Triantafillou et al. 2020, "Meta-Dataset: A Dataset of Datasets for Learning to Learn from Few Examples",
   arXiv:1903.03096, sec. 3.2 (first-order Proto-MAML: the prototype-initialised head).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import torch

from metanlp.algorithms.base import MetaLearner
from metanlp.core.config import MetaConfig
from metanlp.core.inner_loop import loss_and_grads
from metanlp.core.protocols import Batch, Params, TaskFamily

__all__ = ["LR_PREFIX", "TASK_LR", "MetaSGD", "lr_name"]

#: Name of the learning rate of meta-parameter ``k`` among the extra parameters: ``LR_PREFIX + k``.
LR_PREFIX = "inner_lr/"
#: Name of the one scalar learning rate of the task-specific fast weights (the per-episode head).
TASK_LR = "inner_lr/task_weights"
#: the layer index inside a parameter name (BERT ``...encoder.layer.4...``, Llama/Gemma ``...layers.16...``)
_LAYER = re.compile(r"\.layers?\.(\d+)\.")


def lr_name(param: str, per: str) -> str:
    """The name of the learning rate that steps meta-parameter ``param`` when rates are learned ``per`` element,
    tensor or layer: ``LR_PREFIX + param`` for the first two, ``LR_PREFIX + "layer<i>"`` for a parameter of layer
    ``i`` (``LR_PREFIX + "other"`` outside the layer stack).

    Example:
        >>> lr_name("encoder.layer.4.attention.self.query.lora_A.default.weight", "layer")
        'inner_lr/layer4'
    """
    if per != "layer":
        return LR_PREFIX + param
    m = _LAYER.search(param)
    return LR_PREFIX + (f"layer{m.group(1)}" if m else "other")


@dataclass
class MetaSGD(MetaLearner):
    """Meta-SGD: ``theta' = theta - alpha * grad L_support(theta)`` with a learned ``alpha`` shaped like ``theta``.

    With ``per="element"`` (the paper) every LoRA meta-parameter ``k`` gets a learning-rate tensor ``alpha_k`` of its
    own shape (``LR_PREFIX + k``), initialised to ``inner_lr``; ``per="tensor"`` gives it one scalar, ``per="layer"``
    one scalar per layer shared by that layer's LoRA tensors (:func:`lr_name`; per-layer rates as in LEOPARD, Bansal
    et al. 2020 sec. 3, whose per-layer inner rates are meta-learned too). Coarser rates pool the gradient of many
    weights, so they move at a few outer steps where an element's rate is noise; ``outer_lr`` (when > 0) is the
    Adam learning rate of the rates, apart from the adapter's. The head is rebuilt from prototypes in every episode and
    its shape ``(N, hidden)`` changes with N, so all task-specific fast weights share one meta-learned scalar
    ``TASK_LR``. The rates are not constrained to be positive (as in the paper).

    The inner loop runs ``inner_steps`` steps ``theta_{t+1} = theta_t - alpha * g_t`` with ``g_t = grad
    L_s(theta_t)``. With ``g_q = grad L_q(theta_T)`` the meta-gradients computed are, first order (the Jacobians
    ``d theta_T / d theta_{t+1}`` taken as the identity, i.e. Hessian terms dropped, as in FOMAML)::

        dL_q / d theta_0 ~= g_q  (+ the head's g_q chained through its prototype init: task.init_vjp)
        dL_q / d alpha_k ~= -g_q[k] * sum_t g_t[k]                 (elementwise)
        dL_q / d TASK_LR ~= -sum over task weights k of sum(g_q[k] * sum_t g_t[k])

    For ``inner_steps = 1`` the learning-rate gradients are exact (``g_0`` does not depend on ``alpha``); for more
    steps, each step's direct term ``-g_q * g_t`` is exact and only its propagation through later steps is dropped.
    As in FOMAML, the head's query gradient is chained through its prototype initialisation when the family has
    ``init_vjp`` (first-order Proto-MAML).

    The rates are created from the meta-parameters' shapes, so call :meth:`bind` once before
    :meth:`extra_parameters`, :meth:`adapt` or :meth:`meta_gradient` (the outer loop optimises and checkpoints what
    :meth:`extra_parameters` returns; an adaptation-time learner loads the saved rates into it).

    Args:
        inner_lr: initial value of every learning rate.
        inner_steps: adaptation steps.
        micro_batch: examples per forward/backward pass (0 = whole support/query set); steps stay full-batch.
        per: ``element``, ``tensor`` or ``layer``: how finely the rates are learned.
        outer_lr: Adam learning rate of the rates in the outer loop (0 = the outer loop's own, ``meta.outer_lr``).
    """

    inner_lr: float = 0.5
    inner_steps: int = 5
    micro_batch: int = 0
    per: str = "element"
    outer_lr: float = 0.0
    lrs: dict[str, torch.nn.Parameter] = field(default_factory=dict, repr=False)

    @classmethod
    def from_config(cls, cfg: MetaConfig, budget: Any = None) -> MetaSGD:
        """Build from ``meta.inner_lr`` (initial rates), ``meta.inner_steps``, ``meta.micro_batch``,
        ``meta.inner_lr_per`` and ``meta.inner_lr_outer_lr`` (its rates are meta-learned: no ``budget``)."""
        return cls(inner_lr=cfg.inner_lr, inner_steps=cfg.inner_steps, micro_batch=cfg.micro_batch,
                   per=cfg.inner_lr_per, outer_lr=cfg.inner_lr_outer_lr)  # fmt: skip

    def extra_outer_lr(self) -> float:
        """The outer loop's Adam learning rate for :meth:`extra_parameters` (0 = the adapter's, ``meta.outer_lr``)."""
        return self.outer_lr

    def bind(self, meta_params: Params) -> dict[str, torch.nn.Parameter]:
        """Create the learning rates for ``meta_params`` (once; later calls check that the shapes still match).

        Returns:
            The extra parameters (see :meth:`extra_parameters`).

        Raises:
            ValueError: already bound to meta-parameters of other names or shapes.
        """
        p0 = next(iter(meta_params.values()))
        scalar = lambda: torch.nn.Parameter(torch.tensor(self.inner_lr, dtype=p0.dtype, device=p0.device))  # noqa: E731
        if not self.lrs:
            for k, p in meta_params.items():
                name = lr_name(k, self.per)
                if name not in self.lrs:
                    full = torch.nn.Parameter(torch.full_like(p.detach(), self.inner_lr))
                    self.lrs[name] = full if self.per == "element" else scalar()
            self.lrs[TASK_LR] = scalar()
        names = {lr_name(k, self.per) for k in meta_params}
        shape = lambda p: p.shape if self.per == "element" else torch.Size([])  # noqa: E731
        wrong = [k for k, p in meta_params.items() if getattr(self.lrs.get(lr_name(k, self.per)), "shape", None)
                 != shape(p)]  # fmt: skip
        if wrong or len(self.lrs) != len(names) + 1:
            raise ValueError(f"MetaSGD learning rates were made for other meta-parameters (e.g. {wrong[:2]})")
        return dict(self.lrs)

    def extra_parameters(self) -> dict[str, torch.nn.Parameter]:
        """The learning rates: ``{lr_name(k, per): alpha}`` (the shape of parameter ``k`` per element, ``()``
        otherwise) and ``{TASK_LR: ()}``.

        Raises:
            RuntimeError: :meth:`bind` was not called yet.
        """
        if not self.lrs:
            raise RuntimeError("MetaSGD has no learning rates yet: call learner.bind(meta_params) first")
        return dict(self.lrs)

    @torch.enable_grad()
    def _inner(self, task: TaskFamily, meta_params: Params, support: Batch) -> tuple[Params, Params]:
        """Adapted fast weights and the sum of the inner-loop gradients of each fast weight."""
        missing = [k for k in meta_params if lr_name(k, self.per) not in self.lrs]
        if missing:
            raise RuntimeError(f"MetaSGD has no learning rate for {missing[:2]}: call learner.bind(meta_params) first")
        params = task.init_fast_weights(meta_params, support)
        sums = {k: torch.zeros_like(v) for k, v in params.items()}
        for _ in range(self.inner_steps):
            params = {k: v.detach().requires_grad_(True) for k, v in params.items()}
            _, grads = loss_and_grads(task, params, support, micro_batch=self.micro_batch)
            for (k, v), g in zip(list(params.items()), grads, strict=True):
                sums[k] += g
                rate = self.lrs[lr_name(k, self.per)] if k in meta_params else self.lrs[TASK_LR]
                params[k] = v - rate.detach() * g
        return {k: v.detach() for k, v in params.items()}, sums

    def adapt(self, task: TaskFamily, meta_params: Params, support: Batch) -> Params:
        """Fast weights after ``inner_steps`` steps with the meta-learned learning rates.

        Raises:
            RuntimeError: :meth:`bind` was not called for these meta-parameters.
        """
        return self._inner(task, meta_params, support)[0]

    def meta_gradient(self, task: TaskFamily, meta_params: Params, episode: Any) -> tuple[Params, dict[str, float]]:
        """``(grads, stats)``: grads for every meta-parameter name *and* every learning-rate name (see class doc).

        Raises:
            RuntimeError: :meth:`bind` was not called for these meta-parameters.
        """
        support, query = task.batches(episode)
        fast, sums = self._inner(task, meta_params, support)
        fast = {k: v.requires_grad_(True) for k, v in fast.items()}
        query_loss, g = loss_and_grads(task, fast, query, list(fast), self.micro_batch)
        g_q = dict(zip(fast, g, strict=True))
        grads: Params = {k: g_q[k] for k in meta_params}
        extra = task.init_vjp(meta_params, support, {k: v for k, v in g_q.items() if k not in meta_params},
                              self.micro_batch)  # fmt: skip
        if extra is not None:  # first-order Proto-MAML: the head's gradient through its prototype init
            grads = {k: v + extra[k] for k, v in grads.items()}
        for k in meta_params:  # d L_q / d alpha, summed over the weights that share a rate
            name, term = lr_name(k, self.per), -g_q[k] * sums[k]
            term = term if self.per == "element" else term.sum()
            grads[name] = grads[name] + term if name in grads else term
        task_terms = [(g_q[k] * sums[k]).sum() for k in fast if k not in meta_params]
        grads[TASK_LR] = -torch.stack(task_terms).sum() if task_terms else torch.zeros_like(self.lrs[TASK_LR])
        return grads, {"query_loss": query_loss}
