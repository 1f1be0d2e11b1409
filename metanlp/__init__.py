"""metanlp: transfer + meta-learning for NLP. Pretrained backbones, LoRA adapters meta-trained with first-order MAML
across task families, few-shot recipes, and a hub round trip.

The public API (at most 20 names; everything else is reachable through its module):

Example:
    >>> import metanlp
    >>> cfg = metanlp.load_recipe(None, ["model.name=tiny-random-bert", "task.n_way=3", "task.k_shot=2"])
    >>> encoder, tokenizer = metanlp.load_encoder(cfg.model.name)
    >>> model = metanlp.attach_lora(encoder, cfg.adapter)
    >>> pool = {c: [f"{c} example {i}" for i in range(6)] for c in ("billing", "delivery", "returns", "login")}
    >>> episode = metanlp.EpisodeSampler(pool, list(pool), n_way=3, k_shot=2, q_query=2).sample(step=0)
    >>> task = metanlp.TextClassificationFamily(model, tokenizer)
    >>> params = metanlp.lora_parameters(model)
    >>> grads, stats = metanlp.FOMAML(inner_lr=0.5, inner_steps=2).meta_gradient(task, params, episode)
    >>> sorted(grads) == sorted(params), stats["query_loss"] > 0
    (True, True)
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

#: public name -> module that defines it. Imported on first use (PEP 562), so that ``import metanlp.hub`` or
#: ``metanlp --help`` does not pay for torch and transformers (~5 s on 2 cores).
_EXPORTS = {
    "FOMAML": "metanlp.algorithms.fomaml",
    "Episode": "metanlp.episodes",
    "EpisodeSampler": "metanlp.episodes",
    "RecipeConfig": "metanlp.config",
    "TextClassificationFamily": "metanlp.tasks.text_classification",
    "attach_lora": "metanlp.adapters",
    "build_learner": "metanlp.algorithms",
    "evaluate_episodes": "metanlp.evaluation",
    "inner_loop": "metanlp.algorithms.fomaml",
    "load_classifier": "metanlp.saving",
    "load_corpus": "metanlp.episodes",
    "load_encoder": "metanlp.backbones",
    "load_metric": "metanlp.metrics",
    "load_recipe": "metanlp.recipe_loading",
    "lora_parameters": "metanlp.adapters",
    "mean_ci95": "metanlp.metrics",
    "meta_train": "metanlp.meta_train",
    "save_adapter": "metanlp.saving",
    "split_classes": "metanlp.episodes",
}

if TYPE_CHECKING:  # what type checkers and IDEs see
    from metanlp.adapters import attach_lora, lora_parameters
    from metanlp.algorithms import build_learner
    from metanlp.algorithms.fomaml import FOMAML, inner_loop
    from metanlp.backbones import load_encoder
    from metanlp.config import RecipeConfig
    from metanlp.episodes import Episode, EpisodeSampler, load_corpus, split_classes
    from metanlp.evaluation import evaluate_episodes
    from metanlp.meta_train import meta_train
    from metanlp.metrics import load_metric, mean_ci95
    from metanlp.recipe_loading import load_recipe
    from metanlp.saving import load_classifier, save_adapter
    from metanlp.tasks.text_classification import TextClassificationFamily


def __getattr__(name: str) -> Any:
    """Import a public name's module on first access (PEP 562).

    Raises:
        AttributeError: ``name`` is not part of the public API.
    """
    if name not in _EXPORTS:
        raise AttributeError(f"module 'metanlp' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


try:
    __version__ = version("metanlp")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0+unknown"

__all__ = [
    "FOMAML",
    "Episode",
    "EpisodeSampler",
    "RecipeConfig",
    "TextClassificationFamily",
    "attach_lora",
    "build_learner",
    "evaluate_episodes",
    "inner_loop",
    "load_classifier",
    "load_corpus",
    "load_encoder",
    "load_metric",
    "load_recipe",
    "lora_parameters",
    "mean_ci95",
    "meta_train",
    "save_adapter",
    "split_classes",
]
