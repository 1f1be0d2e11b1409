"""Build the pieces of a text-classification run from a recipe: backbone + LoRA + task family, samplers.

Recipes (``recipes/*.py`` of this family) only wire these calls and write their loop; anything two recipes need
lives here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from metanlp.core.config import RecipeConfig
from metanlp.core.lora_layers import check_lora_layers
from metanlp.core.precision import attention_kernel
from metanlp.core.saving import load_adapter_weights
from metanlp.families.text_classification.adapter import attach_lora, lora_parameters, read_metadata
from metanlp.families.text_classification.backbone import load_encoder
from metanlp.families.text_classification.data import (
    ClassSplits,
    EpisodeSampler,
    LabelledCorpus,
    load_corpus,
    source_split,
    split_classes,
)
from metanlp.families.text_classification.family import TextClassificationFamily

__all__ = [
    "ClassificationSetup",
    "build_classification",
    "load_meta_init",
    "make_sampler",
    "source_split",
    "task_samplers",
]

log = logging.getLogger(__name__)


@dataclass
class ClassificationSetup:
    """A ready classification run.

    Attributes:
        model: the peft-wrapped ``TextClassifier`` (LoRA + head placeholder).
        tokenizer: the backbone's tokenizer.
        task: the :class:`TextClassificationFamily` over ``model``.
        meta_params: LoRA parameters (meta-learned init if ``adapter.init`` was given, else the fresh init).
        pretrained: detached copy of the fresh LoRA init (``B = 0``): the "no meta-training" starting point.
    """

    model: torch.nn.Module
    tokenizer: Any
    task: TextClassificationFamily
    meta_params: dict[str, torch.nn.Parameter]
    pretrained: dict[str, torch.Tensor]


def build_classification(cfg: RecipeConfig, load_init: bool = True) -> ClassificationSetup:
    """Backbone (frozen) + fresh LoRA seeded by ``run.seed``; then the meta-learned init from ``adapter.init``.

    Raises:
        FileNotFoundError: the backbone or ``adapter.init`` folder is missing.
        ValueError: ``adapter.init`` was trained on another backbone or family (the message names both).
    """
    torch.manual_seed(cfg.run.seed)
    attention = attention_kernel(cfg.model.precision, cfg.model.attn_implementation)
    encoder, tokenizer = load_encoder(cfg.model.name, cfg.model.trust_remote_code, attention)
    model = attach_lora(encoder, cfg.adapter, base_name=cfg.model.name)
    pretrained = {k: v.detach().clone() for k, v in lora_parameters(model).items()}
    if load_init and cfg.adapter.init:
        load_meta_init(model, cfg.adapter.init, cfg.model.name)
    task = TextClassificationFamily(model, tokenizer, cfg.model.max_length, cfg.meta.head_scale,
                                    prefix_cache_mb=cfg.adapter.prefix_cache_mb,
                                    precision=cfg.model.precision)  # fmt: skip
    return ClassificationSetup(model, tokenizer, task, lora_parameters(model), pretrained)


def load_meta_init(model: torch.nn.Module, adapter_dir: str | Path, backbone: str, key: str = "adapter.init") -> None:
    """Load a meta-learned LoRA init (``metanlp meta-train`` output) into ``model`` in place (peft's own loader).

    ``key`` is the recipe key that named ``adapter_dir`` (``adapter.init``, ``adapter.multitask_init``), for messages.

    Raises:
        FileNotFoundError: the folder or its files are missing.
        ValueError: the folder was made for another backbone or task family, or its LoRA shapes do not fit.
    """
    meta = read_metadata(adapter_dir)
    if meta.get("family") != "text_classification":
        raise ValueError(f"{key}={adapter_dir}: family {meta.get('family')!r} is not text_classification")
    if meta.get("backbone") != backbone:
        raise ValueError(
            f"{key}={adapter_dir} was meta-trained on backbone {meta.get('backbone')!r}, "
            f"but model.name is {backbone!r}"
        )
    check_lora_layers(model, adapter_dir, meta, key)
    load_adapter_weights(model, adapter_dir)  # LoRA + the 1-row placeholder head
    log.info("loaded %s from %s", key, adapter_dir)


def task_samplers(cfg: RecipeConfig, corpus: LabelledCorpus | None = None) -> tuple[LabelledCorpus, ClassSplits]:
    """Load ``task.dataset`` (unless given) and split its classes into disjoint meta-train/val/test sets."""
    corpus = corpus or load_corpus(cfg.task.dataset)
    splits = split_classes(corpus, cfg.task)
    log.info(
        "%s: %d meta-train, %d meta-val, %d meta-test classes",
        corpus.source, len(splits.train), len(splits.val), len(splits.test),
    )  # fmt: skip
    return corpus, splits


def make_sampler(
    cfg: RecipeConfig, corpus: LabelledCorpus, classes: list[str], role: str, n_way: int, k_shot: int, q_query: int
) -> EpisodeSampler:
    """An :class:`EpisodeSampler` over ``classes`` for role ``train``/``val``/``test`` (seeded by ``run.seed``)."""
    pool, query_pool = source_split(corpus, role)
    return EpisodeSampler(
        pool, classes, n_way, k_shot, q_query, seed=cfg.run.seed, query_pool=query_pool, source=corpus.source
    )
