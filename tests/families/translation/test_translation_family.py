"""TranslationFamily on a tiny random Gemma-3: target-only loss, FOMAML inner loop, generation, scores."""

from __future__ import annotations

import pytest
import torch

from metanlp.algorithms.fomaml import FOMAML
from metanlp.core.config import AdapterConfig
from metanlp.core.inner_loop import inner_loop
from metanlp.families.translation.backbone import attach_translation_lora, tiny_causal_lm
from metanlp.families.translation.family import TranslationFamily, newline_ids
from metanlp.families.translation.pairs import PairEpisode
from metanlp.families.translation.vocab_pruning import build_vocab_map, prune_causal_lm

PAIRS = [
    ("Everyone has the right to life.", "Kila mtu ana haki ya kuishi."),
    ("All human beings are born free.", "Watu wote wamezaliwa huru."),
    ("No one shall be held in slavery.", "Hakuna mtu atakayefanywa mtumwa."),
    ("Everyone has the right to work.", "Kila mtu ana haki ya kufanya kazi."),
]
LORA = AdapterConfig(r=4, alpha=8, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"])


def _family(prune: bool = False, **kwargs) -> TranslationFamily:
    texts = [t for p in PAIRS for t in p] + ["English:", "Swahili:"]
    model, tok = tiny_causal_lm(texts, seed=0)
    vocab = None
    if prune:
        vocab = build_vocab_map(tok, texts, model.get_input_embeddings().weight.shape[0], newline_ids(tok))
        prune_causal_lm(model, vocab)
    torch.manual_seed(0)
    peft_model = attach_translation_lora(model, LORA)
    for name, p in peft_model.named_parameters():  # non-zero B so that LoRA changes the outputs
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.5)
    return TranslationFamily(peft_model, tok, vocab, max_new_tokens=6, **kwargs)


def _params(task: TranslationFamily) -> dict[str, torch.Tensor]:
    return {k: v for k, v in task.model.named_parameters() if "lora_" in k}


def test_encode_masks_prompt_and_padding():
    task = _family()
    batch = task.encode(PAIRS[:2], "en", "sw")
    target_ids = task.tokenizer(" " + PAIRS[0][1] + "\n", add_special_tokens=False)["input_ids"]
    row = batch["labels"][0]
    kept = row[row != -100].tolist()
    assert kept == target_ids
    assert torch.equal(batch["input_ids"][0][batch["labels"][0] != -100], row[row != -100])
    assert (batch["labels"][batch["attention_mask"] == 0] == -100).all()
    prompt = task.tokenizer.decode(batch["prompt_ids"][0][batch["prompt_mask"][0] == 1], skip_special_tokens=True)
    assert prompt == f"English: {PAIRS[0][0]}\nSwahili:"
    assert task.references(batch) == [PAIRS[0][1], PAIRS[1][1]]
    with pytest.raises(ValueError, match="unknown language code 'qq'"):
        task.encode(PAIRS, "en", "qq")


def test_inner_loop_lowers_support_loss_and_meta_gradient_has_all_keys():
    task = _family(prune=True)
    meta = _params(task)
    support = task.encode(PAIRS, "en", "sw")
    before = task.loss({k: v.detach() for k, v in meta.items()}, support).item()
    fast = inner_loop(task, task.init_fast_weights(meta, support), support, steps=5, lr=0.5)
    after = task.loss(fast, support).item()
    assert after < before
    episode = PairEpisode("en", "sw", PAIRS[:2], PAIRS[2:])
    grads, stats = FOMAML(inner_lr=0.5, inner_steps=2).meta_gradient(task, meta, episode)
    assert set(grads) == set(meta) and stats["query_loss"] > 0
    assert any(float(g.abs().sum()) > 0 for g in grads.values())


def test_batched_left_padded_generation_matches_one_by_one_and_restores_weights():
    task = _family(prune=True)
    params = {k: v.detach() + 0.01 for k, v in _params(task).items()}
    own = {k: v.detach().clone() for k, v in _params(task).items()}
    batch = task.encode(PAIRS, "en", "sw")
    together = task.translate_batch(params, batch)
    single = [task.translate_batch(params, task.encode([p], "en", "sw"))[0] for p in PAIRS]
    assert together == single
    for k, v in _params(task).items():
        assert torch.equal(v, own[k])
    scores = task.score(params, batch)
    assert set(scores) == {"chrf", "bleu"} and 0 <= scores["chrf"] <= 100
    perfect = {"chrf": 100.0}
    assert scores["chrf"] < perfect["chrf"]  # random weights cannot reproduce the references


def test_query_prompt_holds_shots():
    task = _family(prompt_shots=2)
    _, query = task.batches(PairEpisode("en", "sw", PAIRS[:2], PAIRS[2:]))
    text = task.tokenizer.decode(query["prompt_ids"][0][query["prompt_mask"][0] == 1], skip_special_tokens=True)
    assert text.startswith(f"English: {PAIRS[0][0]}\nSwahili: {PAIRS[0][1]}\nEnglish: {PAIRS[1][0]}")
    assert text.endswith(f"English: {PAIRS[2][0]}\nSwahili:")


def test_pruned_vocabulary_without_newline_is_rejected():
    texts = [t for p in PAIRS for t in p]
    model, tok = tiny_causal_lm(texts + ["English:"], seed=0)
    vocab = build_vocab_map(tok, texts, model.get_input_embeddings().weight.shape[0])
    prune_causal_lm(model, vocab)
    with pytest.raises(ValueError, match="lacks the newline piece"):
        TranslationFamily(attach_translation_lora(model, LORA), tok, vocab)


def test_seq2seq_backbone_code_path():
    from transformers import T5Config, T5ForConditionalGeneration

    _, tok = tiny_causal_lm([t for p in PAIRS for t in p] + ["English:", "Swahili:"], seed=0)
    torch.manual_seed(0)
    config = T5Config(vocab_size=len(tok), d_model=16, d_ff=32, d_kv=8, num_layers=1, num_heads=2,
                      pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
                      decoder_start_token_id=tok.pad_token_id)  # fmt: skip
    model = T5ForConditionalGeneration(config).requires_grad_(False)
    lora = AdapterConfig(r=2, alpha=4, target_modules=["q", "v"])
    task = TranslationFamily(attach_translation_lora(model, lora), tok, max_new_tokens=5)
    batch = task.encode(PAIRS, "en", "sw")
    assert batch["labels"].shape[0] == len(PAIRS) and (batch["labels"] != -100).any()
    params = _params(task)
    before = task.loss({k: v.detach() for k, v in params.items()}, batch).item()
    fast = inner_loop(task, task.init_fast_weights(params, batch), batch, steps=5, lr=0.5)
    assert task.loss(fast, batch).item() < before
    out = task.translate_batch(fast, batch)
    assert len(out) == len(PAIRS) and all(isinstance(x, str) for x in out)
    with pytest.raises(ValueError, match="causal LMs only"):
        TranslationFamily(task.model, tok, build_vocab_map(tok, ["a"], len(tok), newline_ids(tok)))
