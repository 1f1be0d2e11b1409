"""The ``text_classification`` section of a recipe (registered by :mod:`metanlp.families.text_classification`).

Imports no torch: ``metanlp validate`` builds this section.
"""

from __future__ import annotations

from dataclasses import dataclass

from metanlp.core.config import ConfigError

__all__ = ["TextClassificationConfig"]


@dataclass
class TextClassificationConfig:
    """Options of the text-classification family that the core sections do not cover.

    Attributes:
        multitask_baseline: ``text_meta_train`` also trains the multi-task transfer baseline (d): the same LoRA plus
            a linear head over every meta-train class, trained as one plain classification problem for as many
            forward/backward example-passes as meta-training spent
            (:mod:`metanlp.families.text_classification.multitask`). The head is dropped and the LoRA is saved as
            ``multitask_adapter/`` beside ``adapter/``; point ``adapter.multitask_init`` at it to score ``multitask``
            in ``metanlp adapt`` / ``metanlp evaluate``. Roughly doubles the run time.
        multitask_batch_size: examples per AdamW step of that baseline.
        multitask_lr: AdamW learning rate of that baseline; -1 = ``meta.outer_lr`` (the meta-optimiser's).
        val_dataset: a labelled file or folder whose classes (all of them) are the meta-val split of ``meta-train``
            instead of ``task.dataset``'s: the meta-val curve and ``meta.keep_best`` then score a dataset that is in
            neither the meta-train mixture nor the meta-test split (the leave-one-dataset-out protocol,
            ``bench/cross_dataset``). Meta-val episodes are ``task.n_way``-way (all-way if it has fewer classes),
            ``task.k_shot``-shot; "" = ``task.dataset``'s meta-val classes.
    """

    multitask_baseline: bool = False
    multitask_batch_size: int = 32
    multitask_lr: float = -1.0
    val_dataset: str = ""

    def __post_init__(self) -> None:
        if self.multitask_batch_size < 1:
            raise ConfigError(f"text_classification.multitask_batch_size={self.multitask_batch_size} must be >= 1")
        if self.multitask_lr != -1 and not self.multitask_lr > 0:
            raise ConfigError(f"text_classification.multitask_lr={self.multitask_lr}: use -1 (= meta.outer_lr) or a "
                              "learning rate > 0")  # fmt: skip
