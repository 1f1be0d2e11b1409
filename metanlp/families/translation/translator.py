"""``FewShotTranslator``: a new language pair in a few lines (``from_pretrained`` -> ``fit`` -> ``translate``).

The same procedure as ``metanlp adapt recipes/translation/new_language_pair.yaml``: the backbone (vocabulary pruned
to the languages in use), the init's LoRA (a meta-learned init, or none), adapted on your sentence pairs by the
recipe's learner and budget, saved as a stock peft folder with the pruning map.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

__all__ = ["FewShotTranslator", "predict_records"]


#: the shipped recipe (new_language_pair) gives the budget and the backbone; its example files and init are not used
_CLEAR = ["data.support=", "data.eval=", "data.predict=", "adapter.init=", "adapter.multitask_init="]


class FewShotTranslator:
    """Translate ``source_lang -> target_lang`` with a LoRA adapter adapted from a few sentence pairs.

    Example:
        >>> pairs = [("good morning", "sawubona"), ("thank you", "ngiyabonga"), ("good night", "ulale kahle")]
        >>> tr = FewShotTranslator.from_pretrained(None, "en", "zu", backbone="tiny-random-gemma3",
        ...                                        overrides=["adapt.steps=1", "translation.max_new_tokens=4"])
        >>> len(tr.fit(pairs).translate(["good morning"]))
        1
    """

    def __init__(self, cfg: Any, task: Any = None, meta: dict[str, Any] | None = None) -> None:
        self.cfg, self.task, self.meta = cfg, task, dict(meta or {})
        self.setup: Any = None

    @classmethod
    def from_pretrained(
        cls,
        init: str | Path | None,
        source_lang: str = "",
        target_lang: str = "",
        backbone: str | None = None,
        revision: str | None = None,
        overrides: list[str] | None = None,
    ) -> FewShotTranslator:
        """An init (meta-learned folder, adapted folder or hub repo id; None = the pretrained backbone) for a pair.

        An adapted folder already translates its own pair (the codes are checked against it); a meta-learned init
        or None needs :meth:`fit` first.

        Raises:
            ValueError: unknown language codes, a folder of another family, or codes that differ from the folder's.
            FileNotFoundError: the folder, repo or backbone is missing.
        """
        from metanlp.cli.recipe_args import resolve_recipe
        from metanlp.core.recipe_loading import load_recipe
        from metanlp.families.translation.pairs import language_name

        sets = list(overrides or [])
        folder = None
        meta: dict[str, Any] = {}
        if init is not None:
            from metanlp.core.hub import resolve_family_adapter

            folder, meta = resolve_family_adapter(init, "translation", revision)
            backbone = backbone or meta.get("backbone")
            source_lang = source_lang or meta.get("source_lang", "")
            target_lang = target_lang or meta.get("target_lang", "")
        if backbone:
            sets.insert(0, f"model.name={backbone}")
        cfg = load_recipe(resolve_recipe("new_language_pair"), [*_CLEAR, f"translation.source_lang={source_lang}",
                          f"translation.target_lang={target_lang}", *sets, "run.progress=false"])  # fmt: skip
        for code in (source_lang, target_lang):
            language_name(code, cfg.translation.language_names)
        if meta.get("source_lang"):  # an adapted pair
            if (meta["source_lang"], meta["target_lang"]) != (source_lang, target_lang):
                raise ValueError(f"{folder} translates {meta['source_lang']}->{meta['target_lang']}, "
                                 f"not {source_lang}->{target_lang}")  # fmt: skip
            from metanlp.families.translation.adapter import load_translation_adapter

            task, meta = load_translation_adapter(folder, backbone)
            return cls(cfg, task, meta)
        if folder is not None:
            cfg.adapter.init = str(folder)
        return cls(cfg)

    def fit(self, pairs: list[tuple[str, str]], vocab_texts: list[str] | None = None) -> FewShotTranslator:
        """Adapt to ``(source, target)`` sentence pairs; returns ``self``.

        Args:
            pairs: the support pairs (K of them).
            vocab_texts: further texts whose pieces the pruned vocabulary must keep (e.g. the sentences you will
                translate); the pair corpora of ``translation.pairs`` found on disk are always added.

        Raises:
            ValueError: no pairs, or an empty side.
        """
        from metanlp.algorithms.base import adaptation_learner
        from metanlp.core.inner_loop import copy_into
        from metanlp.families.translation.adapter import build_translation
        from metanlp.families.translation.pairs import load_pairs

        pairs = [(" ".join(s.split()), " ".join(t.split())) for s, t in pairs]
        bad = [i for i, (s, t) in enumerate(pairs) if not s or not t]
        if not pairs or bad:
            raise ValueError(f"fit: needs sentence pairs with both sides non-empty (bad positions: {bad[:5]})")
        t = self.cfg.translation
        texts = [x for p in pairs for x in p] + list(vocab_texts or [])
        corpora = [f for f in t.pairs if Path(f).is_file()]
        if t.prune_vocab and corpora:
            texts += [x for ps in load_pairs(corpora).pairs.values() for p in ps for x in p]
        self.setup = build_translation(self.cfg, texts, [t.source_lang, t.target_lang])
        self.task = self.setup.task
        support = self.task.with_states(self.task.encode(pairs, t.source_lang, t.target_lang))
        learner = adaptation_learner(self.cfg, self.setup.meta_params)
        import torch

        with torch.enable_grad():
            fast = learner.adapt(self.task, self.setup.meta_params, support)
        copy_into(self.setup.meta_params, fast)
        self.meta = {"source_lang": t.source_lang, "target_lang": t.target_lang, "support_pairs": len(pairs)}
        return self

    def translate(self, sentences: list[str]) -> list[str]:
        """Greedy translations, one per sentence.

        Raises:
            RuntimeError: nothing to translate with yet (call :meth:`fit`).
        """
        if self.task is None:
            raise RuntimeError("call fit(pairs) first (or load an adapted folder)")
        params = {k: v.detach() for k, v in self.task.model.named_parameters() if "lora_" in k}
        src, tgt = self.meta.get("source_lang"), self.meta.get("target_lang")
        return self.task.translate_batch(params, self.task.encode([(" ".join(s.split()), "") for s in sentences],
                                                                  src, tgt))  # fmt: skip

    predict = translate

    def save_pretrained(self, folder: str | Path) -> Path:
        """Write a stock peft folder with ``metanlp.json`` (pair, K, pruning map) and the recipe, atomically.

        Raises:
            RuntimeError: not fitted in this process.
        """
        from metanlp.core.recipe_loading import recipe_to_yaml
        from metanlp.families.translation.adapter import save_translation_adapter
        from metanlp.families.translation.backbone import TINY_TRANSLATOR, backbone_licence
        from metanlp.families.translation.pairs import language_name

        if self.setup is None:
            raise RuntimeError("save_pretrained needs a fitted translator (call fit first)")
        t, src, tgt = self.cfg.translation, self.meta["source_lang"], self.meta["target_lang"]
        metadata = {"family": "translation", "backbone": self.cfg.model.name,
                    "base_model_licence": backbone_licence(self.cfg.model.name), "source_lang": src,
                    "target_lang": tgt, "languages": {c: language_name(c, t.language_names) for c in (src, tgt)},
                    "language_names": t.language_names, "init": self.cfg.adapter.init or "pretrained backbone",
                    "support_pairs": self.meta["support_pairs"], "max_length": t.max_length,
                    "max_new_tokens": t.max_new_tokens, "seed": self.cfg.run.seed}  # fmt: skip
        if self.cfg.model.name == TINY_TRANSLATOR:
            metadata["tiny_tokenizer_texts"] = self.setup.tokenizer_texts
        return save_translation_adapter(self.setup, folder, metadata, recipe_to_yaml(self.cfg))

    def push_to_hub(self, repo_id: str, private: bool = False, revision: str = "main", **kwargs: Any) -> Any:
        """Save and push as one commit (:func:`metanlp.core.hub.push_adapter`)."""
        from metanlp.core.hub import push_adapter

        with tempfile.TemporaryDirectory() as tmp:
            folder = self.save_pretrained(Path(tmp) / "adapter")
            return push_adapter(folder, repo_id, private=private, revision=revision, **kwargs)


def predict_records(adapter_dir: str | Path, texts: list[str], batch_size: int = 8) -> list[dict[str, Any]]:
    """``metanlp predict`` for a translation adapter: ``{"text", "translation"}`` per sentence."""
    tr = FewShotTranslator.from_pretrained(adapter_dir)
    return [{"text": s, "translation": x} for s, x in zip(texts, tr.translate(texts), strict=True)]
