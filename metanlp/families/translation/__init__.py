"""Translation: a new language pair from a few sentence pairs, with a decoder LM backbone and LoRA.

Modules: ``config`` (the ``translation`` recipe section), ``pairs`` (pair corpora, language codes, pair episodes),
``gguf`` and ``backbone`` (Gemma-3 from its GGUF wheel), ``vocab_pruning``, ``adapter`` (LoRA, save/load),
``family`` (the :class:`~metanlp.core.protocols.TaskFamily`), ``prompt_retrieval`` (BM25 in-context examples),
``translator`` (the :class:`FewShotTranslator` API),
``recipes/`` (the scripts ``metanlp`` runs). Importing this package registers the family; it imports nothing heavy.
"""

from metanlp.core.registry import FamilySpec, register_family

_HERE = "metanlp.families.translation"

register_family(
    FamilySpec(
        name="translation",
        family=f"{_HERE}.family:TranslationFamily",
        recipes={
            "meta_train": f"{_HERE}.recipes.meta_train",
            "adapt": f"{_HERE}.recipes.new_language_pair",
            "evaluate": f"{_HERE}.recipes.new_language_pair",
        },
        predict=f"{_HERE}.translator:predict_records",
        config_section=("translation", f"{_HERE}.config:TranslationConfig"),
        summary="a new language pair from a few sentence pairs (chrF, BLEU)",
    )
)
