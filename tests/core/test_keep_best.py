"""``meta.keep_best``: the adapter written is the best meta-val pass's (early stopping), the start included, and a
resumed run keeps the best pass it had before the interruption.

The task is a scalar: meta-val accuracy is ``1 - (p - target)^2`` and every meta-gradient pushes ``p`` up by the same
amount, so the best pass is known in advance."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from metanlp.core.config import MetaConfig
from metanlp.core.meta_train import meta_train


class Scalar:
    """A task family whose meta-val accuracy peaks where the parameter ``p`` equals ``target``."""

    def __init__(self, target: float) -> None:
        self.target = target

    def batches(self, episode):
        return {}, {}

    def score(self, params, query):
        return {"accuracy": 1.0 - float(params["p"] - self.target) ** 2}


class Climb:
    """A learner whose meta-gradient is always -1 (Adam then raises ``p`` by ~outer_lr a step); adapting is a no-op."""

    def adapt(self, task, meta_params, support):
        return {k: v.detach() for k, v in meta_params.items()}

    def meta_gradient(self, task, meta_params, episode):
        return {"p": -torch.ones(())}, {"query_loss": 1.0}

    def extra_parameters(self):
        return {}

    def extra_outer_lr(self):
        return 0.0


def _run(target: float, out: Path, steps: int = 10, keep: bool = True) -> tuple[float, object]:
    p = torch.nn.Parameter(torch.zeros(()))
    cfg = MetaConfig(outer_lr=0.1, meta_batch_size=1, outer_steps=steps, eval_every=1, save_every=1, keep_best=keep)
    result = meta_train(Scalar(target), Climb(), {"p": p}, lambda i: i, cfg, out, val_episodes=[0], progress=False)
    return float(p.detach()), result


def test_keep_best_writes_the_best_meta_val_pass(tmp_path: Path) -> None:
    last, plain = _run(0.5, tmp_path / "plain", keep=False)
    assert plain.kept_step == 10 and last == pytest.approx(1.0, abs=0.01)  # Adam: ~outer_lr per step
    kept, result = _run(0.5, tmp_path / "best")
    assert result.kept_step == 5 and result.steps == 10 and kept == pytest.approx(0.5, abs=0.01)
    assert result.kept_val == pytest.approx(1.0, abs=1e-3) and result.start_val == pytest.approx(0.75)


def test_keep_best_returns_the_start_when_meta_training_never_beats_it(tmp_path: Path) -> None:
    kept, result = _run(-1.0, tmp_path / "start")
    assert result.kept_step == 0 and kept == 0.0 and result.kept_val == result.start_val == 0.0


def test_a_resumed_run_keeps_the_best_pass_from_before_the_interruption(tmp_path: Path) -> None:
    out = tmp_path / "run"
    _, first = _run(0.3, out, steps=6)  # best at step 3, checkpointed with the run
    assert first.kept_step == 3 and (out / "checkpoints" / "last" / "best_params.safetensors").is_file()
    kept, resumed = _run(0.3, out, steps=10)  # continues from step 6: the best stays the one of step 3
    assert resumed.kept_step == 3 and resumed.steps == 10 and kept == pytest.approx(0.3, abs=0.01)
    assert resumed.start_val == pytest.approx(1 - 0.3**2)


def test_keep_best_is_a_recipe_key(root: Path) -> None:
    from metanlp.core.recipe_loading import load_recipe

    cfg = load_recipe(root / "recipes" / "text_classification" / "text_meta_train.yaml", ["meta.keep_best=true"])
    assert cfg.meta.keep_best is True
    assert MetaConfig().keep_best is False
