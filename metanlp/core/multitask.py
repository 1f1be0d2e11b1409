"""The multi-task transfer baseline: one adapter trained jointly on every meta-train task, no inner loop.

This is the comparison Gu et al. 2018 ("Meta-Learning for Low-Resource Neural Machine Translation", EMNLP, §5)
make for MetaNMT: a multilingual model trained on all the high-resource pairs, then fine-tuned on the new pair with
the same adaptation as the meta-learned init. To compare at equal compute, it gets as many forward/backward passes
as meta-training spent: ``outer_steps * meta_batch_size * (inner_steps + 1)`` (each FOMAML task costs
``inner_steps`` support passes plus one query pass).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from tqdm.auto import tqdm

from metanlp.core.config import MetaConfig
from metanlp.core.inner_loop import loss_and_grads
from metanlp.core.protocols import Params, TaskFamily

__all__ = ["MultitaskResult", "equal_compute_passes", "multitask_train"]

log = logging.getLogger(__name__)


@dataclass
class MultitaskResult:
    """What :func:`multitask_train` did.

    Attributes:
        passes: forward/backward passes (optimiser steps), each on one episode's support set.
        seconds: wall-clock training time, seconds.
        final_loss: mean training loss of the last 10 passes (nats per target token for translation).
    """

    passes: int
    seconds: float
    final_loss: float


def equal_compute_passes(meta: MetaConfig, outer_steps: int | None = None) -> int:
    """Forward/backward passes that FOMAML meta-training spends: ``outer_steps * meta_batch * (inner_steps + 1)``."""
    steps = meta.outer_steps if outer_steps is None else outer_steps
    return steps * meta.meta_batch_size * (meta.inner_steps + 1)


def multitask_train(
    task: TaskFamily,
    params: Params,
    episode_fn: Callable[[int], Any],
    passes: int,
    lr: float,
    progress: bool = False,
    micro_batch: int = 0,
) -> MultitaskResult:
    """Train ``params`` in place with Adam on one meta-train episode's support set per pass.

    Args:
        task: the task family (its ``batches`` and ``loss``).
        params: the adapter parameters (leaf tensors with ``requires_grad``), updated in place.
        episode_fn: index -> episode; pass ``i`` trains on episode ``i``'s support set (draw them from other
            indices than meta-training's if both run, so the baseline is not a replay of meta-training's tasks).
        passes: optimiser steps (see :func:`equal_compute_passes`).
        lr: Adam learning rate (the outer learning rate, as meta-training's optimiser).
        progress: show a tqdm bar.
        micro_batch: examples per forward/backward pass (``meta.micro_batch``; 0 = the whole support set): the
            gradient of a pass stays the support set's (:func:`~metanlp.core.inner_loop.loss_and_grads`), as in
            meta-training's inner loop, so both cost the same per pass.

    Raises:
        ValueError: ``passes < 1``.
    """
    if passes < 1:
        raise ValueError(f"multi-task baseline needs passes >= 1, got {passes}")
    leaves = list(params.values())
    opt = torch.optim.Adam(leaves, lr=lr)
    losses: list[float] = []
    start = time.perf_counter()
    for i in tqdm(range(passes), desc="multi-task baseline", unit="pass", disable=not progress):
        support, _ = task.batches(episode_fn(i))
        with torch.enable_grad():
            loss, grads = loss_and_grads(task, params, support, micro_batch=micro_batch)
        for p, g in zip(leaves, grads, strict=True):
            p.grad = g
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss)
    tail = losses[-10:]
    result = MultitaskResult(passes, time.perf_counter() - start, sum(tail) / len(tail))
    log.info("multi-task baseline: %d passes in %.0f s, final loss %.3f", passes, result.seconds, result.final_loss)
    return result
