"""Fast weights and the inner loop: adapt a dict of adapter tensors on a support set without touching the model.

Meta-learning code never deep-copies the model: it reads the adapter parameters into a dict of tensors ("fast
weights"), updates that dict, and the task family runs the model on it with ``torch.func.functional_call``.
:func:`inner_loop` is FOMAML's inner loop (Finn et al. 2017, sec. 2, eq. 1, with the first-order approximation of
sec. 5.2); every learner and every adaptation uses it or a variant of it.
"""

from __future__ import annotations

import torch

from metanlp.core.micro_batches import micro_batches
from metanlp.core.protocols import Batch, Params, TaskFamily

__all__ = ["copy_into", "inner_loop", "loss_and_grads"]


def loss_and_grads(
    task: TaskFamily, params: Params, batch: Batch, keys: list[str] | None = None, micro_batch: int = 0
) -> tuple[float, list[torch.Tensor]]:
    """Mean loss over ``batch`` and its gradient w.r.t. ``params[k]`` for ``k`` in ``keys`` (default: all).

    With ``micro_batch > 0`` the batch is cut into chunks of that many examples along dim 0 and the gradients of
    ``loss(chunk) * w(chunk) / w(batch)`` are summed, where ``w`` is ``task.loss_weight`` (the number of items the
    loss is a mean over: target tokens for translation) or, without it, the number of examples: the same gradient as
    the full batch, with activation memory bounded by the chunk instead of the whole support or query set. A family
    that names its padded tensors in ``task.sequence_keys`` gets length-sorted chunks, each padded only to its own
    longest sequence (:func:`metanlp.core.micro_batches.micro_batches`), so padding costs less.

    Args:
        task: gives ``task.loss(params, batch)``; ``params`` values must require grad.
        params: fast weights.
        batch: tensors of shape ``(n_examples, ...)``.
        keys: which parameters to differentiate (default: every key of ``params``).
        micro_batch: examples per forward/backward pass (0 = the whole batch at once).

    Returns:
        ``(loss, grads)`` with ``grads[i]`` shaped like ``params[keys[i]]``.
    """
    keys = list(params) if keys is None else keys
    inputs = [params[k] for k in keys]
    n = next(iter(batch.values())).shape[0]
    if micro_batch <= 0 or n <= micro_batch:
        loss = task.loss(params, batch)
        return loss.item(), list(torch.autograd.grad(loss, inputs))
    weight = getattr(task, "loss_weight", None) or (lambda b: next(iter(b.values())).shape[0])
    whole = weight(batch)
    total, grads = 0.0, None
    for _, chunk in micro_batches(batch, micro_batch, getattr(task, "sequence_keys", ())):
        loss = task.loss(params, chunk) * (weight(chunk) / whole)
        g = torch.autograd.grad(loss, inputs)
        grads = list(g) if grads is None else [a + b for a, b in zip(grads, g, strict=True)]
        total += loss.item()
    assert grads is not None
    return total, grads


@torch.enable_grad()
def inner_loop(
    task: TaskFamily, params: Params, support: Batch, steps: int, lr: float, micro_batch: int = 0
) -> Params:
    """Adapt fast weights with ``steps`` full-batch SGD steps on the support loss; no graph is kept (first order).

    Args:
        task: gives ``task.loss(params, batch)``.
        params: starting fast weights (name -> tensor).
        support: the support batch.
        steps: adaptation steps.
        lr: inner learning rate.
        micro_batch: examples per forward/backward pass (0 = all); the step is still full-batch.

    Returns:
        The adapted fast weights, detached (same keys and shapes as ``params``).
    """
    for _ in range(steps):
        params = {k: v.detach().requires_grad_(True) for k, v in params.items()}
        _, grads = loss_and_grads(task, params, support, micro_batch=micro_batch)
        params = {k: v - lr * g for (k, v), g in zip(params.items(), grads, strict=True)}
    return {k: v.detach() for k, v in params.items()}


@torch.no_grad()
def copy_into(params: dict[str, torch.nn.Parameter], fast: Params) -> None:
    """Write adapted fast weights back into the model's parameters (in place), e.g. before saving an adapter.

    Args:
        params: the model's parameters by name (``lora_parameters(model)``); only these keys are written.
        fast: adapted fast weights with (at least) the keys of ``params`` and the same shapes.

    Raises:
        KeyError: a parameter has no adapted value in ``fast``.
    """
    missing = [k for k in params if k not in fast]
    if missing:
        raise KeyError(f"no adapted value for {missing[:3]}")
    for k, p in params.items():
        p.copy_(fast[k])
