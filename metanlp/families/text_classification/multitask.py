"""The multi-task transfer baseline (d) for text: one LoRA trained as plain classification over every meta-train class.

Multi-task pre-training on the union of the training tasks, then fine-tuning on the new task, is the baseline that
CrossFit (Ye et al. 2021, "CrossFit: A Few-shot Learning Challenge for Cross-task Generalization in NLP", EMNLP)
shows few-shot meta-learners must beat; Gu et al. 2018 ("Meta-Learning for Low-Resource Neural Machine
Translation", EMNLP, §5) compare against it at equal compute. Here the same LoRA as the meta-learned one
(``adapter.*``, including ``adapter.layers``) plus a linear head over all C meta-train classes (global labels) is
trained with AdamW on seeded mini-batches of all meta-train examples. The head is then dropped: only the LoRA is
saved (``multitask_adapter/``, the format of meta-training's ``adapter/``), so adaptation starts from the prototype
head (``task.init_fast_weights``) exactly like every other row of the comparison.

**Equal compute.** :func:`metanlp.core.multitask.equal_compute_passes` counts FOMAML's forward/backward passes:
``outer_steps * meta_batch * (inner_steps + 1)``, i.e. per episode ``inner_steps`` passes over its support set
(``N * K`` examples) and one over its query set (``N * Q``). The baseline gets as many *example*-passes,
``episodes * (inner_steps * S + N * Q)`` with ``episodes = passes / (inner_steps + 1)`` and ``S`` the examples of one
inner step (the adaptation budget's mini-batch; ``N * K`` for full-batch inner steps), cut into optimiser steps of
``batch_size`` examples: ``steps = ceil(example_passes / batch_size)`` (:func:`equal_compute_steps`). The prototype
forward and the Proto-MAML backward through it are not counted, as in the core rule.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from metanlp.core.comparison import adaptation_budget
from metanlp.core.config import MetaConfig
from metanlp.core.micro_batches import micro_batches
from metanlp.core.multitask import equal_compute_passes
from metanlp.core.protocols import Params
from metanlp.core.saving import save_adapter
from metanlp.families.text_classification.adapter import lora_parameters, prototype_head
from metanlp.families.text_classification.family import TextClassificationFamily
from metanlp.families.text_classification.setup import ClassificationSetup, load_meta_init, source_split

__all__ = [
    "TextMultitaskResult",
    "equal_compute_steps",
    "load_multitask_init",
    "multitask_examples",
    "run_multitask_baseline",
    "save_multitask_adapter",
    "train_multitask",
]

log = logging.getLogger(__name__)


@dataclass
class TextMultitaskResult:
    """What :func:`train_multitask` did (recorded in ``metrics.json`` under ``multitask``).

    Attributes:
        steps: AdamW steps taken.
        batch_size: examples per step.
        example_passes: ``steps * batch_size``, the forward/backward example-passes spent.
        classes: C, the rows of the (dropped) head.
        examples: meta-train examples the mini-batches were drawn from.
        seconds: wall-clock training time.
        first_loss: mean cross-entropy (nats) of the first 10 steps.
        final_loss: mean cross-entropy (nats) of the last 10 steps.
    """

    steps: int
    batch_size: int
    example_passes: int
    classes: int
    examples: int
    seconds: float
    first_loss: float
    final_loss: float


def equal_compute_steps(meta: MetaConfig, n_way: int, k_shot: int, q_query: int, batch_size: int,
                        outer_steps: int | None = None, inner_batch: int = 0) -> int:  # fmt: skip
    """AdamW steps of ``batch_size`` examples that spend as many example-passes as FOMAML meta-training (module doc):
    ``ceil(outer_steps * meta_batch * (inner_steps * S + N * Q) / batch_size)`` where ``S`` is the examples of one
    inner step: ``inner_batch`` (the adaptation budget's mini-batch, ``AdaptBudget.batch_for(N * K)``) or, when 0,
    the whole support set ``N * K``; ``outer_steps`` defaults to ``meta.outer_steps`` (pass the steps really run)."""
    episodes = equal_compute_passes(meta, outer_steps) // (meta.inner_steps + 1)
    per_step = inner_batch or n_way * k_shot
    return math.ceil(episodes * (meta.inner_steps * per_step + n_way * q_query) / batch_size)


def multitask_examples(pool: dict[str, list[str]], classes: list[str]) -> tuple[list[str], list[int]]:
    """Every text of ``classes`` with its global label (the index of its class in ``sorted(classes)``).

    Raises:
        ValueError: fewer than two classes (the head would have nothing to separate).
    """
    names = sorted(classes)
    if len(names) < 2:
        raise ValueError(f"the multi-task baseline needs at least 2 meta-train classes, got {names}")
    texts = [t for c in names for t in pool[c]]
    labels = [i for i, c in enumerate(names) for _ in pool[c]]
    return texts, labels


#: Texts per class whose frozen embeddings give the multi-task head its prototype start.
HEAD_TEXTS_PER_CLASS = 8


@torch.no_grad()
def _prototype_head(task: TextClassificationFamily, lora: Params, texts: list[str], labels: list[int],
                    n_classes: int, gen: torch.Generator) -> Params:  # fmt: skip
    """``{head_weight: (C, hidden), head_bias: (C,)}`` leaves: the prototype head of up to
    :data:`HEAD_TEXTS_PER_CLASS` seeded texts per class, embedded under ``lora``."""
    picked: list[int] = []
    for c in range(n_classes):
        rows = [i for i, y in enumerate(labels) if y == c]
        perm = torch.randperm(len(rows), generator=gen)[:HEAD_TEXTS_PER_CLASS].tolist()
        picked += [rows[j] for j in perm]
    emb = torch.cat([task.embed(lora, task.tokenize([texts[i] for i in picked[s : s + 256]]))
                     for s in range(0, len(picked), 256)])  # fmt: skip
    y = torch.as_tensor([labels[i] for i in picked], device=emb.device)
    w, b = prototype_head(emb, y, n_classes, task.head_scale)
    return {task.head_weight: w.clone().requires_grad_(True), task.head_bias: b.clone().requires_grad_(True)}


def train_multitask(
    task: TextClassificationFamily,
    init: Params,
    texts: list[str],
    labels: list[int],
    steps: int,
    batch_size: int,
    lr: float,
    seed: int,
    micro_batch: int = 0,
    progress: bool = False,
) -> tuple[Params, TextMultitaskResult]:
    """Train LoRA + a ``(C, hidden)`` linear head as one C-way classifier; return the LoRA weights only.

    Args:
        task: the text family over the peft model (its LoRA layout is the one trained; the model is not changed).
        init: LoRA weights to start from, ``{name: (r, in) or (out, r)}`` (the pretrained fresh LoRA, ``B = 0``).
        texts: the n meta-train texts.
        labels: ``(n,)`` global labels in ``[0, C)``.
        steps: AdamW steps (see :func:`equal_compute_steps`); each is one mini-batch of ``batch_size`` texts drawn
            without replacement from a seeded permutation, reshuffled every epoch.
        batch_size: texts per step (all n when larger).
        lr: AdamW learning rate (weight decay: torch's default 0.01), for LoRA and head alike.
        seed: seeds the permutations and the texts that initialise the head: a prototype head
            (:func:`~metanlp.families.text_classification.adapter.prototype_head`, the start of every other row)
            from up to :data:`HEAD_TEXTS_PER_CLASS` texts per class. A zero head was measured first: its early
            gradients pulled the LoRA away from the pretrained geometry, and the adapter then scored below the frozen
            centroid on new classes (CLINC150 fold 0, 45-way 1-shot: 60.0 vs 73.7).
        micro_batch: texts per forward/backward pass, gradients summed (0 = the whole mini-batch).
        progress: show a tqdm bar.

    Returns:
        ``(lora, result)``: detached LoRA tensors keyed like ``init``, and what was done.

    Raises:
        ValueError: ``steps < 1`` or no texts.
    """
    if steps < 1 or not texts:
        raise ValueError(f"multi-task baseline needs steps >= 1 and some texts, got {steps} steps, {len(texts)} texts")
    device = task.device
    lora = {k: v.detach().clone().to(device).requires_grad_(True) for k, v in init.items()}
    n_classes = max(labels) + 1
    gen = torch.Generator().manual_seed(seed)
    head = _prototype_head(task, lora, texts, labels, n_classes, gen)
    params = {**lora, **head}
    opt = torch.optim.AdamW(list(params.values()), lr=lr)
    order, cursor, size, losses = torch.randperm(len(texts), generator=gen), 0, min(batch_size, len(texts)), []
    start = time.perf_counter()
    for _ in tqdm(range(steps), desc="multi-task baseline", unit="step", disable=not progress):
        if cursor + size > len(texts):
            order, cursor = torch.randperm(len(texts), generator=gen), 0
        idx = order[cursor : cursor + size].tolist()
        cursor += size
        batch = task.tokenize([texts[i] for i in idx], [labels[i] for i in idx])
        opt.zero_grad()
        total = 0.0
        with torch.enable_grad():
            for rows, chunk in micro_batches(batch, micro_batch or size, task.sequence_keys):
                loss = task.loss(params, chunk) * (len(rows) / size)  # mean over the mini-batch
                loss.backward()
                total += loss.item()
        opt.step()
        losses.append(total)
    seconds = time.perf_counter() - start
    head_loss, tail_loss = losses[:10], losses[-10:]
    result = TextMultitaskResult(steps, size, steps * size, n_classes, len(texts), seconds,
                                 sum(head_loss) / len(head_loss), sum(tail_loss) / len(tail_loss))  # fmt: skip
    log.info("multi-task baseline: %d steps x %d texts, %d classes, %.0f s, loss %.3f -> %.3f", steps, size,
             n_classes, seconds, result.first_loss, result.final_loss)  # fmt: skip
    return {k: v.detach() for k, v in lora.items()}, result


def save_multitask_adapter(model: torch.nn.Module, lora: Params, out_dir: str | Path, metadata: dict[str, Any],
                           recipe_yaml: str = "", metrics: dict[str, Any] | None = None) -> Path:  # fmt: skip
    """Save ``lora`` as a peft adapter folder of ``model`` (LoRA + its 1-row placeholder head, like ``adapter/``).

    ``model``'s own LoRA weights are put back afterwards. ``metadata`` gets ``algorithm: multitask``.
    """
    own = lora_parameters(model)
    kept = {k: v.detach().clone() for k, v in own.items()}
    try:
        with torch.no_grad():
            for k, p in own.items():
                p.copy_(lora[k])
        return save_adapter(model, out_dir, {**metadata, "algorithm": "multitask"}, recipe_yaml, metrics)
    finally:
        with torch.no_grad():
            for k, p in own.items():
                p.copy_(kept[k])


def load_multitask_init(model: torch.nn.Module, adapter_dir: str | Path, backbone: str) -> Params:
    """LoRA weights of ``adapter.multitask_init``, keyed like ``lora_parameters(model)``; the model keeps its own.

    Loaded and checked exactly as ``adapter.init`` (:func:`metanlp.families.text_classification.setup.load_meta_init`).

    Raises:
        FileNotFoundError, ValueError: as ``load_meta_init`` (the message names ``adapter.multitask_init``).
    """
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}  # LoRA + placeholder head
    kept = {k: v.detach().clone() for k, v in trainable.items()}
    try:
        load_meta_init(model, adapter_dir, backbone, key="adapter.multitask_init")
        return {k: v.detach().clone() for k, v in lora_parameters(model).items()}
    finally:
        with torch.no_grad():
            for k, p in trainable.items():
                p.copy_(kept[k])


def run_multitask_baseline(cfg: Any, setup: ClassificationSetup, corpus: Any, classes: list[str], outer_steps: int,
                           cactus: Any = None) -> tuple[Params, TextMultitaskResult]:  # fmt: skip
    """The baseline of a meta-train run: from ``setup.pretrained``, on every example of the meta-train ``classes``
    (the pool meta-training's support sets come from), for the compute of ``outer_steps`` outer steps. With
    ``task.mixture`` / ``task.smlmt`` the classes are every class of the mixture and every cloze word
    (:func:`~metanlp.families.text_classification.mixture.mixture_pool`: the same data as meta-training, one head
    over all of it; with ``cactus``, the CACTUs sampler of ``task.unlabelled``, its first partition's pseudo-classes
    too), and with ``task.n_way_max`` the compute is that of episodes of the mean N."""
    t, mt = cfg.task, cfg.text_classification
    if t.mixture or t.smlmt:
        from metanlp.families.text_classification.mixture import mixture_pool

        pool = mixture_pool(cfg, corpus, classes, setup.tokenizer.mask_token or "[MASK]", cactus)
        texts, labels = multitask_examples(pool, list(pool))
    else:
        texts, labels = multitask_examples(source_split(corpus, "train")[0], classes)
    n_way = (t.n_way + t.n_way_max) // 2 if t.n_way_max else t.n_way or len(classes)  # 0 = all-way episodes
    inner_batch = adaptation_budget(cfg).batch_for(n_way * t.k_shot)  # FOMAML's inner steps use the budget's batch
    steps = equal_compute_steps(cfg.meta, n_way, t.k_shot, t.q_query, mt.multitask_batch_size, outer_steps,
                                inner_batch)  # fmt: skip
    lr = cfg.meta.outer_lr if mt.multitask_lr == -1 else mt.multitask_lr
    return train_multitask(setup.task, setup.pretrained, texts, labels, steps, mt.multitask_batch_size, lr,
                           cfg.run.seed, cfg.meta.micro_batch, cfg.run.progress)  # fmt: skip
