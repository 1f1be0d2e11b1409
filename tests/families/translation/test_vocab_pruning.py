"""Vocabulary pruning on a tiny random Gemma-3: id round trips, unchanged logits of kept pieces, tied output."""

from __future__ import annotations

import pytest
import torch

from metanlp.families.translation.backbone import tiny_causal_lm
from metanlp.families.translation.vocab_pruning import VocabMap, build_vocab_map, prune_causal_lm

TEXTS = ["Everyone has the right to life.", "Kila mtu ana haki ya kuishi.", "Jeder hat das Recht auf Leben."]


@pytest.fixture()
def tiny():
    return tiny_causal_lm(TEXTS + ["A completely different sentence about ships and quantum physics."], seed=0)


def test_ids_round_trip_and_unknown_maps_to_unk(tiny):
    model, tok = tiny
    size = model.get_input_embeddings().weight.shape[0]
    vocab = build_vocab_map(tok, TEXTS, size)
    ids = torch.tensor(tok(TEXTS, padding=True)["input_ids"])
    assert bool(vocab.contains(ids).all())
    assert torch.equal(vocab.to_old(vocab.to_new(ids)), ids)
    assert vocab.size < size
    dropped = torch.tensor([i for i in range(size) if i not in set(vocab.kept.tolist())][:5])
    assert not bool(vocab.contains(dropped).any())
    assert (vocab.to_new(dropped) == vocab.unk_new).all()
    assert int(vocab.to_old(torch.tensor(vocab.unk_new))) == tok.unk_token_id
    for special in tok.all_special_ids:
        assert special in vocab.kept.tolist()


def test_logits_of_kept_pieces_unchanged(tiny):
    model, tok = tiny
    size = model.get_input_embeddings().weight.shape[0]
    ids = torch.tensor(tok(TEXTS, padding=True)["input_ids"])
    mask = (ids != tok.pad_token_id).long()
    with torch.no_grad():
        full = model(input_ids=ids, attention_mask=mask).logits
    vocab = build_vocab_map(tok, TEXTS, size)
    prune_causal_lm(model, vocab)
    assert model.get_input_embeddings().weight.shape[0] == vocab.size
    assert model.get_output_embeddings().weight is model.get_input_embeddings().weight
    assert model.config.vocab_size == vocab.size
    assert model.config.eos_token_id == int(vocab.to_new(torch.tensor(tok.eos_token_id)))
    with torch.no_grad():
        pruned = model(input_ids=vocab.to_new(ids), attention_mask=mask).logits
    assert pruned.shape[-1] == vocab.size
    torch.testing.assert_close(pruned, full[..., vocab.kept], rtol=1e-5, atol=1e-5)


def test_map_serialises_and_rejects_bad_input(tiny):
    model, tok = tiny
    vocab = build_vocab_map(tok, TEXTS, model.get_input_embeddings().weight.shape[0])
    again = VocabMap.from_dict(vocab.to_dict())
    assert torch.equal(again.kept, vocab.kept) and again.unk_new == vocab.unk_new
    with pytest.raises(ValueError, match="strictly increasing"):
        VocabMap(torch.tensor([3, 1, 2]), 10, 0)
    with pytest.raises(ValueError, match="lacks key"):
        VocabMap.from_dict({"kept": [1, 2]})
    other = VocabMap(torch.tensor([0, 1]), 7, 0)
    with pytest.raises(ValueError, match="7 pieces"):
        prune_causal_lm(model, other)
