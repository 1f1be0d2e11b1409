"""Task families, one package each; importing this package registers them (see :mod:`metanlp.core.registry`).

- :mod:`metanlp.families.text_classification`: N-way K-shot text classification (encoder + LoRA + prototype head).
- :mod:`metanlp.families.translation`: a new language pair from a few sentence pairs (decoder LM + LoRA).
"""

from metanlp.families import text_classification, translation  # noqa: F401 - registration

__all__ = ["text_classification", "translation"]
