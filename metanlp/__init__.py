"""metanlp: transfer + meta-learning for NLP. Pretrained backbones, LoRA adapters meta-trained with first-order MAML
across task families, few-shot recipes, and a hub round trip.

The main jobs in a few lines each (the same procedures as ``metanlp adapt``):

Example:
    >>> import metanlp
    >>> clf = metanlp.FewShotClassifier.from_pretrained(backbone="tiny-random-bert", overrides=["adapt.steps=1"])
    >>> clf = clf.fit(["refund my order", "where is my parcel", "money back", "parcel lost"],
    ...               ["refund", "delivery", "refund", "delivery"])
    >>> clf.predict(["refund it"])[0] in ("refund", "delivery")
    True

The building blocks, for your own loop (at most 20 public names; everything else is reachable through its module):

Example:
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

#: public name -> module that defines it. Imported on first use (PEP 562), so that ``import metanlp.core.hub`` or
#: ``metanlp --help`` does not pay for torch and transformers (~5 s on 2 cores).
_EXPORTS = {
    "AdaptBudget": "metanlp.core.budget",
    "Episode": "metanlp.families.text_classification.data",
    "EpisodeSampler": "metanlp.families.text_classification.data",
    "FOMAML": "metanlp.algorithms.fomaml",
    "FewShotClassifier": "metanlp.families.text_classification.classifier",
    "FewShotTranslator": "metanlp.families.translation.translator",
    "RecipeConfig": "metanlp.core.config",
    "TextClassificationFamily": "metanlp.families.text_classification.family",
    "TranslationFamily": "metanlp.families.translation.family",
    "attach_lora": "metanlp.families.text_classification.adapter",
    "build_learner": "metanlp.algorithms.base",
    "compare": "metanlp.core.comparison",
    "load_corpus": "metanlp.families.text_classification.data",
    "load_encoder": "metanlp.families.text_classification.backbone",
    "load_recipe": "metanlp.core.recipe_loading",
    "lora_parameters": "metanlp.families.text_classification.adapter",
    "meta_train": "metanlp.core.meta_train",
    "save_adapter": "metanlp.core.saving",
    "split_classes": "metanlp.families.text_classification.data",
    "standard_methods": "metanlp.core.comparison",
}

if TYPE_CHECKING:  # what type checkers and IDEs see
    from metanlp.algorithms.base import build_learner
    from metanlp.algorithms.fomaml import FOMAML
    from metanlp.core.budget import AdaptBudget
    from metanlp.core.comparison import compare, standard_methods
    from metanlp.core.config import RecipeConfig
    from metanlp.core.meta_train import meta_train
    from metanlp.core.recipe_loading import load_recipe
    from metanlp.core.saving import save_adapter
    from metanlp.families.text_classification.adapter import attach_lora, lora_parameters
    from metanlp.families.text_classification.backbone import load_encoder
    from metanlp.families.text_classification.classifier import FewShotClassifier
    from metanlp.families.text_classification.data import Episode, EpisodeSampler, load_corpus, split_classes
    from metanlp.families.text_classification.family import TextClassificationFamily
    from metanlp.families.translation.family import TranslationFamily
    from metanlp.families.translation.translator import FewShotTranslator


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
    "AdaptBudget",
    "Episode",
    "EpisodeSampler",
    "FOMAML",
    "FewShotClassifier",
    "FewShotTranslator",
    "RecipeConfig",
    "TextClassificationFamily",
    "TranslationFamily",
    "attach_lora",
    "build_learner",
    "compare",
    "load_corpus",
    "load_encoder",
    "load_recipe",
    "lora_parameters",
    "meta_train",
    "save_adapter",
    "split_classes",
    "standard_methods",
]
