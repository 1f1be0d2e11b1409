"""Cut a batch into micro-batches along dim 0, length-sorted and each padded only to its own longest sequence.

A support or query set is padded to its longest text; cut into chunks as it comes, every chunk pays for that length.
Sorting the examples by length first groups long with long and short with short, and each chunk is then trimmed to
its own longest sequence. For a family whose loss is a mean over examples and whose padding is masked out (text
classification: masked attention keys, masked pooling), the summed, size-weighted chunk gradients equal the full
batch's. A family opts in by naming its padded tensors in ``sequence_keys``; without it the chunks are contiguous and
untrimmed (translation: token-mean loss, left-padded prompt tensors; its cached ``hidden_states`` ``(n, seq_len,
hidden)`` are cut along dim 0 like every other tensor).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

__all__ = ["micro_batches", "trim"]

#: Tensor name -> ``(n, ...)`` tensor (``metanlp.core.protocols.Batch``; spelled out so this module imports nothing of
#: metanlp).
Batch = dict[str, torch.Tensor]


def micro_batches(
    batch: Batch, size: int, sequence_keys: tuple[str, ...] | list[str] = ()
) -> Iterator[tuple[torch.Tensor, Batch]]:
    """Yield ``(indices, chunk)``: chunks of at most ``size`` examples and the rows of ``batch`` they hold.

    Args:
        batch: tensors of shape ``(n, ...)``; ``attention_mask`` ``(n, seq_len)`` gives the lengths.
        size: examples per chunk (> 0).
        sequence_keys: tensors whose dim 1 is the right-padded sequence (``input_ids``, ``attention_mask``,
            ``hidden_states`` ...). Empty, or no ``attention_mask``: contiguous chunks in batch order, untrimmed.

    Yields:
        ``indices`` ``(chunk_n,)`` (long, into dim 0 of ``batch``) and the chunk: every tensor indexed by them, the
        ``sequence_keys`` cut after the chunk's last column that holds a real token.
    """
    n = next(iter(batch.values())).shape[0]
    device = next(iter(batch.values())).device
    mask = batch.get("attention_mask")
    if not sequence_keys or mask is None or mask.dim() != 2:
        for i in range(0, n, size):
            idx = torch.arange(i, min(i + size, n), device=device)
            yield idx, {k: v[i : i + size] for k, v in batch.items()}
        return
    order = torch.argsort(mask.sum(1), descending=True, stable=True)
    for i in range(0, n, size):
        idx = order[i : i + size]
        chunk = {k: v[idx] for k, v in batch.items()}
        yield idx, trim(chunk, sequence_keys)


def trim(batch: Batch, sequence_keys: tuple[str, ...] | list[str]) -> Batch:
    """``batch`` with its right-padded ``sequence_keys`` cut after the last column that holds a real token.

    A mini-batch drawn from a support set padded to its longest text pays only for its own longest; a batch without
    ``attention_mask`` (or no ``sequence_keys``) is returned as is.
    """
    mask = batch.get("attention_mask")
    if not sequence_keys or mask is None or mask.dim() != 2:
        return batch
    used = torch.nonzero(mask.any(0)).flatten()
    width = int(used.max()) + 1 if used.numel() else 1
    return {k: v[:, :width] if k in sequence_keys and v.dim() >= 2 else v for k, v in batch.items()}
