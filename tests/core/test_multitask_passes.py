"""The multi-task baseline: equal-compute pass count, micro-batched passes with the full support set's gradient."""

from __future__ import annotations

import pytest
import torch

from metanlp.core.config import MetaConfig
from metanlp.core.multitask import equal_compute_passes, multitask_train


class LeastSquares:
    """A task family with one weight vector: loss = mean over examples of (x . w - y)^2."""

    def batches(self, episode):
        return episode, episode

    def loss(self, params, batch):
        return ((batch["x"] @ params["w"] - batch["y"]) ** 2).mean()


def _episode(i: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(i)
    return {"x": torch.randn(6, 3, generator=g), "y": torch.randn(6, generator=g)}


def _train(micro_batch: int) -> torch.Tensor:
    w = torch.nn.Parameter(torch.zeros(3))
    result = multitask_train(LeastSquares(), {"w": w}, _episode, passes=4, lr=0.1, micro_batch=micro_batch)
    assert result.passes == 4 and result.final_loss > 0
    return w.detach().clone()


def test_micro_batched_passes_match_whole_support_passes():
    whole = _train(0)
    assert not torch.equal(whole, torch.zeros(3)), "the weights did not move"
    torch.testing.assert_close(_train(4), whole, rtol=1e-5, atol=1e-6)  # chunks of 4 + 2, weighted by size
    torch.testing.assert_close(_train(1), whole, rtol=1e-5, atol=1e-6)


def test_passes_equal_meta_training_compute():
    assert equal_compute_passes(MetaConfig(inner_steps=4, meta_batch_size=2), outer_steps=60) == 600
    with pytest.raises(ValueError, match="passes >= 1"):
        multitask_train(LeastSquares(), {"w": torch.nn.Parameter(torch.zeros(3))}, _episode, passes=0, lr=0.1)
