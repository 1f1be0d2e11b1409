"""``FewShotClassifier``: the main text job in a few lines
(SetFit-style ``from_pretrained`` -> ``fit`` -> ``predict``).

The same procedure as ``metanlp adapt recipes/text_classification/text_new_categories.yaml``: the init's LoRA (a
meta-learned init, an adapted classifier, or none = the pretrained backbone) plus a prototype-initialised head,
adapted on your labelled examples by the recipe's learner and budget, saved as a stock peft folder.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

from metanlp.core.files import read_metadata

__all__ = ["FewShotClassifier", "predict_records"]

log = logging.getLogger(__name__)


#: the shipped recipe (text_new_categories) gives the budget and the backbone; its example files and init are not used
_CLEAR = ["data.support=", "data.eval=", "data.predict=", "adapter.init=", "adapter.multitask_init="]


class FewShotClassifier:
    """A few-shot text classifier over a frozen backbone with a (meta-learned) LoRA adapter.

    Build it with :meth:`from_pretrained`; ``fit`` adapts it to K labelled examples per class (Proto-MAML head,
    Triantafillou et al. 2020 sec. 3.2; FOMAML's inner loop, Finn et al. 2017), ``predict`` labels texts.

    Example:
        >>> clf = FewShotClassifier.from_pretrained(backbone="tiny-random-bert", overrides=["adapt.steps=1"])
        >>> clf.fit(["refund my order", "where is my parcel", "money back please", "parcel not delivered"],
        ...         ["refund", "delivery", "refund", "delivery"]).labels
        ['delivery', 'refund']
        >>> len(clf.predict(["my parcel is late"]))
        1
    """

    def __init__(self, cfg: Any, model: Any, tokenizer: Any, labels: list[str] | None = None) -> None:
        from metanlp.families.text_classification.adapter import lora_parameters
        from metanlp.families.text_classification.family import TextClassificationFamily

        self.cfg, self.model, self.tokenizer = cfg, model, tokenizer
        self.labels: list[str] = list(labels or [])
        self.task = TextClassificationFamily(model, tokenizer, cfg.model.max_length, cfg.meta.head_scale,
                                             prefix_cache_mb=cfg.adapter.prefix_cache_mb,
                                             precision=cfg.model.precision)  # fmt: skip
        self.meta_params = lora_parameters(model)
        self._support: str = ""

    @classmethod
    def from_pretrained(
        cls,
        init: str | Path | None = None,
        backbone: str | None = None,
        revision: str | None = None,
        overrides: list[str] | None = None,
    ) -> FewShotClassifier:
        """Load an init: a ``metanlp meta-train`` adapter folder, an adapted classifier folder, a hub repo id, or
        None (the pretrained backbone with a fresh LoRA: plain fine-tuning).

        Args:
            init: folder or ``user/name`` hub repo (pulled and checksum-verified).
            backbone: backbone name; default the init's, else the recipe default (all-MiniLM-L6-v2). The LoRA layers
                are the init's (``lora_layers`` in its ``metanlp.json``), else ``adapter.layers``' default (top 2).
            revision: hub revision when ``init`` is a repo id.
            overrides: recipe ``key=value`` overrides (``adapt.steps=10``, ``adapter.r=4`` ...), checked as in the CLI.

        Raises:
            FileNotFoundError: the folder, the repo or the backbone is missing.
            ValueError: the folder is not a text-classification adapter or does not fit the backbone.
        """
        from metanlp.cli.recipe_args import resolve_recipe
        from metanlp.core.recipe_loading import load_recipe
        from metanlp.families.text_classification.setup import build_classification

        sets = list(overrides or [])
        folder = None
        if init is not None:
            from metanlp.core.hub import resolve_family_adapter

            folder, meta = resolve_family_adapter(init, "text_classification", revision)
            backbone = backbone or meta.get("backbone")
            if meta.get("max_length"):
                sets.insert(0, f"model.max_length={meta['max_length']}")
            if meta.get("lora_layers") and not any(o.startswith("adapter.layers=") for o in sets):
                # the init's LoRA layers, not the default
                sets.insert(0, f"adapter.layers={list(meta['lora_layers'])}")
        if backbone:
            sets.insert(0, f"model.name={backbone}")
        cfg = load_recipe(resolve_recipe("text_new_categories"), [*_CLEAR, *sets, "run.progress=false"])
        if folder is not None and read_metadata(folder).get("labels"):  # an adapted classifier: LoRA + labelled head
            from metanlp.families.text_classification.adapter import load_classifier

            model, tokenizer, meta = load_classifier(folder, backbone)
            return cls(cfg, model, tokenizer, meta["labels"])
        if folder is not None:
            cfg.adapter.init = str(folder)
        setup = build_classification(cfg)
        return cls(cfg, setup.model, setup.tokenizer)

    def fit(self, texts: list[str], labels: list[str]) -> FewShotClassifier:
        """Adapt to labelled examples (at least one per class, two classes or more); returns ``self``.

        Args:
            texts: the support texts.
            labels: one label per text (strings; the classes are the sorted distinct labels).

        Raises:
            ValueError: lengths differ, fewer than two classes, or an empty text (the message names it).
        """
        from metanlp.algorithms.base import adaptation_learner
        from metanlp.core.inner_loop import copy_into
        from metanlp.families.text_classification.adapter import set_head
        from metanlp.families.text_classification.data import Episode

        if len(texts) != len(labels):
            raise ValueError(f"fit: {len(texts)} texts but {len(labels)} labels")
        empty = [i for i, t in enumerate(texts) if not str(t).strip()]
        if empty:
            raise ValueError(f"fit: empty text at position(s) {empty[:5]}")
        names = sorted(set(map(str, labels)))
        if len(names) < 2:
            raise ValueError(f"fit: needs at least 2 classes, got {names}")
        index = {c: i for i, c in enumerate(names)}
        episode = Episode(list(texts), [index[str(y)] for y in labels], [], [], names)
        support, _ = self.task.batches(episode)
        learner = adaptation_learner(self.cfg, self.meta_params)
        fast = learner.adapt(self.task, self.meta_params, support)
        copy_into(self.meta_params, fast)
        set_head(self.model, fast[self.task.head_weight], fast[self.task.head_bias])
        self.task.head_weight, self.task.head_bias = _head_names(self.model)
        self.labels = names
        self._k_shot = min(episode.support_labels.count(i) for i in range(len(names)))
        return self

    def predict_proba(self, texts: list[str], batch_size: int = 64) -> list[tuple[str, float]]:
        """``(label, probability)`` for each text.

        Raises:
            RuntimeError: the classifier has no labels yet (call :meth:`fit`).
        """
        from metanlp.families.text_classification.adapter import predict_texts

        if not self.labels:
            raise RuntimeError("this classifier has no labels yet: call fit(texts, labels) first")
        self.model.eval()
        preds = predict_texts(self.model, self.tokenizer, list(texts), self.cfg.model.max_length, batch_size)
        return [(self.labels[i], c) for i, c in preds]

    def predict(self, texts: list[str], batch_size: int = 64) -> list[str]:
        """The predicted label of each text (see :meth:`predict_proba`)."""
        return [label for label, _ in self.predict_proba(texts, batch_size)]

    def save_pretrained(self, folder: str | Path) -> Path:
        """Write a stock peft folder (LoRA + head) with ``metanlp.json`` and the recipe, atomically."""
        from metanlp.core.recipe_loading import recipe_to_yaml
        from metanlp.core.saving import save_adapter

        hidden = self.model.get_base_model().encoder.hidden_size
        metadata = {"family": "text_classification", "backbone": self.cfg.model.name, "hidden_size": hidden,
                    "labels": self.labels, "max_length": self.cfg.model.max_length,
                    "k_shot": getattr(self, "_k_shot", None),
                    "method": "meta" if self.cfg.adapter.init else "finetune",
                    "meta_init": self.cfg.adapter.init, "algorithm": self.cfg.meta.algorithm}  # fmt: skip
        return save_adapter(self.model, folder, metadata, recipe_to_yaml(self.cfg))

    def push_to_hub(self, repo_id: str, private: bool = False, revision: str = "main", **kwargs: Any) -> Any:
        """Save and push as one commit (:func:`metanlp.core.hub.push_adapter`; ``endpoint``/``token`` in kwargs)."""
        from metanlp.core.hub import push_adapter

        with tempfile.TemporaryDirectory() as tmp:
            folder = self.save_pretrained(Path(tmp) / "adapter")
            return push_adapter(folder, repo_id, private=private, revision=revision, **kwargs)


def _head_names(model: Any) -> tuple[str, str]:
    from metanlp.families.text_classification.adapter import head_names

    return head_names(model)


def predict_records(adapter_dir: str | Path, texts: list[str], batch_size: int = 64) -> list[dict[str, Any]]:
    """``metanlp predict`` for a text-classification adapter: ``{"text", "label", "confidence"}`` per text."""
    clf = FewShotClassifier.from_pretrained(adapter_dir)
    return [{"text": t, "label": y, "confidence": round(c, 4)}
            for t, (y, c) in zip(texts, clf.predict_proba(texts, batch_size), strict=True)]  # fmt: skip
