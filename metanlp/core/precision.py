"""Mixed precision for the backbone's passes: ``model.precision: bf16`` runs them under ``torch.autocast``.

Under autocast the matrix products of the frozen backbone and of the LoRA layers run in bfloat16 while the parameters
(the LoRA meta-parameters, fast weights, Meta-SGD rates), their gradients, the optimiser state and the losses stay
float32: the model's outputs are cast back to float32 before a loss, a prototype or a distance is computed from them.
On CPUs with AVX512-BF16 (and on GPUs) a bfloat16 matrix product is 2-2.5x the float32 one; measured on this
project's 2-core machine a 5-way 5-shot FOMAML episode (MiniLM, top-2 LoRA) is ~1.8x faster with eager attention
(:func:`attention_kernel`), meta-gradients within ~1% (relative L2) of float32 (``bench/fomaml_vs_higher``, row
``metanlp_bf16``). The same code runs on any device: ``torch.autocast`` takes the device type of the model's
parameters.

**References**

1. Micikevicius et al. 2018, "Mixed Precision Training", ICLR (float32 master weights, low-precision products).
2. Kalamkar et al. 2019, "A Study of BFLOAT16 for Deep Learning Training", arXiv:1905.12322 (bfloat16 needs no loss
   scaling: it has float32's exponent range).
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

__all__ = ["PRECISIONS", "attention_kernel", "autocast", "bf16_is_fast", "resolve_precision"]

log = logging.getLogger(__name__)

#: ``model.precision`` values: ``auto`` (``bf16`` where :func:`bf16_is_fast`, else ``fp32``), ``fp32`` (no
#: autocast) and ``bf16`` (autocast to bfloat16).
PRECISIONS = ("auto", "fp32", "bf16")


def bf16_is_fast() -> bool:
    """Whether this machine runs bfloat16 matrix products natively: a CUDA GPU with bf16 support, or a CPU with
    AVX512-BF16 or AMX (torch's own CPU feature probe). Elsewhere bfloat16 is emulated and slower than float32."""
    import torch

    if torch.cuda.is_available():
        return bool(torch.cuda.is_bf16_supported())
    probes = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    return any(bool(p()) for p in probes if p is not None)


def resolve_precision(precision: str) -> str:
    """``auto`` -> ``bf16`` where :func:`bf16_is_fast`, else ``fp32``; ``fp32`` and ``bf16`` unchanged.

    An explicit ``bf16`` where bfloat16 is only emulated is kept (the user asked for it) but logged as a warning: on
    an AVX2-only CPU a top-2 LoRA step of MiniLM ran 39x slower than in float32 (README, "Faster: bfloat16").

    Raises:
        ValueError: ``precision`` is not one of :data:`PRECISIONS`.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "bf16" and not bf16_is_fast():
        log.warning("model.precision=bf16 on a machine without native bfloat16 (no CUDA bf16, AVX512-BF16 or AMX): "
                    "bfloat16 is emulated there and far slower than float32; use model.precision=auto or fp32")
    if precision != "auto":
        return precision
    return "bf16" if bf16_is_fast() else "fp32"


def attention_kernel(precision: str, requested: str = "") -> str:
    """The ``attn_implementation`` to load an encoder with: ``requested`` when set, else ``eager`` for ``bf16`` on a
    machine without CUDA, else "" (transformers' default, SDPA).

    Measured on this project's CPU (AVX512-BF16, torch 2.13, MiniLM top-2 LoRA, 5-way 5-shot FOMAML episodes): the
    backward of torch's CPU flash-attention kernel in bfloat16 is ~8x its float32 time, so SDPA under bf16 autocast
    gains only 1.2x per episode; eager attention (batched matrix products under autocast) gains 1.8x. Gemma-3-270m
    translation episodes (all-layer LoRA): bf16 SDPA 2.08x, bf16 eager 2.19x
    (``bench/translation/precision_speed.json``).
    """
    import torch

    if requested:
        return requested
    return "eager" if resolve_precision(precision) == "bf16" and not torch.cuda.is_available() else ""


def autocast(device: Any, precision: str) -> contextlib.AbstractContextManager:
    """The context a backbone pass runs in: ``torch.autocast(device.type, bfloat16)`` for ``bf16``, else a no-op.

    Args:
        device: where the model's parameters are (a ``torch.device`` or its name; its type picks the autocast
            backend: ``cpu``, ``cuda`` ...).
        precision: one of :data:`PRECISIONS` (``auto`` resolved by :func:`resolve_precision`).

    Raises:
        ValueError: ``precision`` is not one of :data:`PRECISIONS`.
    """
    import torch

    if resolve_precision(precision) == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)
