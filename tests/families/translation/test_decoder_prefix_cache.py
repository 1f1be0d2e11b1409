"""adapter.layers for translation and the exact frozen decoder-prefix cache, on tiny random Gemma-3 variants."""

from __future__ import annotations

import json

import pytest
import torch
from peft import PeftModel
from transformers import T5Config, T5ForConditionalGeneration

from metanlp.algorithms.fomaml import FOMAML
from metanlp.core.adaptation import inner_loop as budget_inner_loop
from metanlp.core.budget import AdaptBudget
from metanlp.core.config import AdapterConfig
from metanlp.core.inner_loop import loss_and_grads
from metanlp.core.recipe_loading import load_recipe
from metanlp.core.saving import lora_layer_indices
from metanlp.families.translation.adapter import (
    build_translation,
    load_translation_adapter,
    save_translation_adapter,
)
from metanlp.families.translation.backbone import TINY_TRANSLATOR, attach_translation_lora, tiny_causal_lm
from metanlp.families.translation.family import TranslationFamily, newline_ids
from metanlp.families.translation.pairs import PairEpisode
from metanlp.families.translation.prefix_cache import decoder_prefix
from metanlp.families.translation.vocab_pruning import build_vocab_map, prune_causal_lm

PAIRS = [
    ("Everyone has the right to life, liberty and security of person.", "Kila mtu ana haki ya kuishi."),
    ("All human beings are born free.", "Watu wote wamezaliwa huru, hadhi na haki zao ni sawa."),
    ("No one shall be held in slavery.", "Hakuna mtu atakayefanywa mtumwa."),
    ("Everyone has the right to work.", "Kila mtu ana haki ya kufanya kazi."),
    ("Everyone has the right to education.", "Kila mtu ana haki ya kupata elimu."),
]
TEXTS = [t for p in PAIRS for t in p] + ["English:", "Swahili:"]
#: Three sliding-window layers then a full-attention one, window 4 (shorter than every example): a suffix that got
#: another layer's mask, or rotary embeddings of the wrong type, would change the loss.
LAYER_TYPES = ["sliding_attention"] * 3 + ["full_attention"]


def _lora(layers: list[int]) -> AdapterConfig:
    return AdapterConfig(r=4, alpha=8, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"], layers=layers)


def _family(layers: list[int], prune: bool = False, **kwargs) -> TranslationFamily:
    model, tok = tiny_causal_lm(TEXTS, seed=0, layer_types=LAYER_TYPES, sliding_window=4)
    vocab = None
    if prune:
        vocab = build_vocab_map(tok, TEXTS, model.get_input_embeddings().weight.shape[0], newline_ids(tok))
        prune_causal_lm(model, vocab)
    torch.manual_seed(0)
    peft_model = attach_translation_lora(model, _lora(layers))
    for name, p in peft_model.named_parameters():  # non-zero B so that LoRA changes the outputs
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.5)
    return TranslationFamily(peft_model, tok, vocab, max_new_tokens=6, prompt_shots=2, **kwargs)


def _params(task: TranslationFamily) -> dict[str, torch.Tensor]:
    return {k: v.detach().requires_grad_(True) for k, v in task.model.named_parameters() if "lora_" in k}


def _close(a: list[torch.Tensor], b: list[torch.Tensor], atol: float = 1e-6) -> None:
    for x, y in zip(a, b, strict=True):
        torch.testing.assert_close(x, y, atol=atol, rtol=1e-5)


def test_adapter_layers_resolve_negative_indices_and_reject_bad_ones():
    model, _ = tiny_causal_lm(TEXTS, layer_types=LAYER_TYPES)
    assert lora_layer_indices(attach_translation_lora(model, _lora([-2, -1]))) == [2, 3]
    model, _ = tiny_causal_lm(TEXTS, layer_types=LAYER_TYPES)
    assert lora_layer_indices(attach_translation_lora(model, _lora([]))) == [0, 1, 2, 3]
    model, _ = tiny_causal_lm(TEXTS, layer_types=LAYER_TYPES)
    with pytest.raises(ValueError, match="out of range for a backbone with 4 layers"):
        attach_translation_lora(model, _lora([4]))
    _, tok = tiny_causal_lm(TEXTS)
    t5 = T5ForConditionalGeneration(T5Config(vocab_size=len(tok), d_model=16, d_ff=32, d_kv=8, num_layers=1,
                                             num_heads=2, decoder_start_token_id=0))  # fmt: skip
    with pytest.raises(ValueError, match="adapter.layers=\\[-1\\] needs a decoder-only LM"):
        attach_translation_lora(t5, AdapterConfig(r=2, alpha=4, target_modules=["q", "v"], layers=[-1]))


def test_lora_on_layer_zero_caches_only_the_embedding_and_the_cache_can_be_off():
    assert _family([]).prefix.start_layer == 0 and _family([0, 3]).prefix.start_layer == 0
    assert _family([-1], prefix_cache=False).prefix is None
    batch = _family([-1], prefix_cache=False).batches(PairEpisode("en", "sw", PAIRS[:3], PAIRS[3:]))[0]
    assert "hidden_states" not in batch


@pytest.mark.parametrize("layers,prune,start", [([-1], False, 3), ([-1], True, 3), ([-2, -1], True, 2), ([], False, 0),
                                               ([], True, 0), ([0, 3], True, 0)])  # fmt: skip
def test_cached_loss_and_lora_gradients_equal_uncached(layers, prune, start):
    task = _family(layers, prune=prune)
    assert task.prefix is not None and task.prefix.start_layer == start
    support, query = task.batches(PairEpisode("en", "sw", PAIRS[:3], PAIRS[3:]))
    for batch in (support, query):
        n, width = batch["input_ids"].shape
        assert batch["hidden_states"].shape == (n, width, 32) and not batch["hidden_states"].requires_grad
        assert width > 4  # longer than the sliding window
        plain = {k: v for k, v in batch.items() if k != "hidden_states"}
        params = _params(task)
        cached = task.loss(params, batch)
        uncached = task.loss(params, plain)
        torch.testing.assert_close(cached, uncached, atol=1e-6, rtol=1e-6)
        g_cached = torch.autograd.grad(cached, list(params.values()))
        g_plain = torch.autograd.grad(task.loss(params, plain), list(params.values()))
        _close(g_cached, g_plain)
        assert all(float(g.abs().sum()) > 0 for g in g_cached)


def test_micro_batches_mini_batches_and_meta_gradient_slice_states_consistently():
    task = _family([-1], prune=True)
    plain_task = TranslationFamily(task.model, task.tokenizer, task.vocab, max_new_tokens=6, prompt_shots=2,
                                   prefix_cache=False)  # fmt: skip
    episode = PairEpisode("en", "sw", PAIRS[:3], PAIRS[3:])
    support, _ = task.batches(episode)
    plain, _ = plain_task.batches(episode)
    assert "hidden_states" in support and "hidden_states" not in plain
    params = _params(task)
    loss_c, g_c = loss_and_grads(task, params, support, micro_batch=2)  # contiguous chunks [0:2], [2:3]
    loss_p, g_p = loss_and_grads(plain_task, params, plain, micro_batch=2)
    assert loss_c == pytest.approx(loss_p, abs=1e-5)
    _close(g_c, g_p, atol=1e-5)
    budget = AdaptBudget(optimizer="sgd", lr=0.1, batch_size=2, steps=3, min_steps=0, warmup=0.0,
                         schedule="constant", momentum=0.0,
                         weight_decay=0.0, stop_loss=0.0)  # fmt: skip
    fast_c = budget_inner_loop(task, task.init_fast_weights(params, support), support, budget, seed=1)
    fast_p = budget_inner_loop(plain_task, plain_task.init_fast_weights(params, plain), plain, budget, seed=1)
    _close(list(fast_c.values()), list(fast_p.values()), atol=1e-5)
    meta = {k: v for k, v in task.model.named_parameters() if "lora_" in k}
    for learner in (FOMAML(inner_lr=0.3, inner_steps=2), FOMAML(inner_lr=0.3, inner_steps=2, micro_batch=2)):
        g_c, s_c = learner.meta_gradient(task, meta, episode)
        g_p, s_p = learner.meta_gradient(plain_task, meta, episode)
        assert s_c["query_loss"] == pytest.approx(s_p["query_loss"], abs=1e-5)
        _close(list(g_c.values()), list(g_p.values()), atol=1e-5)


def test_generation_unaffected_and_layers_restored():
    task = _family([-1], prune=True)
    plain_task = TranslationFamily(task.model, task.tokenizer, task.vocab, max_new_tokens=6, prefix_cache=False)
    layers = task.prefix.decoder.layers
    batch = task.with_states(task.encode(PAIRS, "en", "sw"))
    params = {k: v.detach() + 0.01 for k, v in task.model.named_parameters() if "lora_" in k}
    task.loss(params, batch)
    assert task.prefix.decoder.layers is layers
    with pytest.raises(RuntimeError):  # a failing call inside the window still restores the layer list
        task.loss(params, {**batch, "hidden_states": batch["hidden_states"][:, :, :3]})
    assert task.prefix.decoder.layers is layers
    assert task.translate_batch(params, batch) == plain_task.translate_batch(params, task.encode(PAIRS, "en", "sw"))


def test_training_mode_and_left_padding_run_the_whole_decoder():
    task = _family([-1])
    batch = task.encode(PAIRS[:2], "en", "sw")
    task.model.train()
    assert "hidden_states" not in task.with_states(batch)
    task.model.eval()
    left = {**batch, "attention_mask": batch["attention_mask"].flip(1)}
    assert "hidden_states" not in task.with_states(left)
    assert "hidden_states" in task.with_states(batch)


def _cfg(layers: list[int], init: str = ""):
    sets = ["model.name=" + TINY_TRANSLATOR, "task.family=translation", "adapter.r=2",
            "adapter.target_modules=[q_proj,v_proj]", f"adapter.layers={layers}", "run.seed=0"]  # fmt: skip
    return load_recipe(None, sets + ([f"adapter.init={init}"] if init else []))


def test_saved_adapter_records_lora_layers_loads_with_stock_peft_and_checks_layers(tmp_path):
    setup = build_translation(_cfg([-1]), TEXTS, ["en", "sw"])
    assert setup.task.prefix is not None and setup.task.prefix.start_layer == 1  # tiny default: 2 layers
    with torch.no_grad():
        for p in setup.meta_params.values():
            p.add_(0.05)
    meta = {"family": "translation", "backbone": TINY_TRANSLATOR, "tiny_tokenizer_texts": setup.tokenizer_texts}
    out = save_translation_adapter(setup, tmp_path / "adapter", meta)
    assert json.loads((out / "metanlp.json").read_text())["lora_layers"] == [1]
    base, _ = tiny_causal_lm(setup.tokenizer_texts, seed=0)
    stock = PeftModel.from_pretrained(base, str(out))  # stock peft, unpruned backbone
    assert lora_layer_indices(stock) == [1]
    saved = {k.replace(".default", ""): v for k, v in setup.model.named_parameters() if "lora_" in k}
    for k, v in stock.named_parameters():
        if "lora_" in k:
            torch.testing.assert_close(v, saved[k.replace(".default", "")])
    task, _ = load_translation_adapter(out)
    assert task.prefix is not None and task.prefix.start_layer == 1
    again = build_translation(_cfg([-1], str(out)), TEXTS, ["en", "sw"])
    for k, v in again.meta_params.items():
        torch.testing.assert_close(v, setup.meta_params[k])
    with pytest.raises(ValueError, match=r"adapter.init=.*adapter has LoRA on layers \[1\], but adapter.layers "
                                         r"gives \[0, 1\]"):  # fmt: skip
        build_translation(_cfg([], str(out)), TEXTS, ["en", "sw"])


def test_decoder_prefix_ignores_seq2seq_models():
    _, tok = tiny_causal_lm(TEXTS)
    t5 = T5ForConditionalGeneration(T5Config(vocab_size=len(tok), d_model=16, d_ff=32, d_kv=8, num_layers=1,
                                             num_heads=2, decoder_start_token_id=0))  # fmt: skip
    assert decoder_prefix(attach_translation_lora(t5, AdapterConfig(r=2, alpha=4, target_modules=["q", "v"]))) is None


def test_prefix_cache_mb_zero_turns_the_cache_off():
    assert build_translation(_cfg([-1]), TEXTS, ["en", "sw"]).task.prefix is not None
    cfg = load_recipe(None, ["model.name=" + TINY_TRANSLATOR, "task.family=translation", "adapter.r=2",
                             "adapter.target_modules=[q_proj,v_proj]", "adapter.layers=[-1]",
                             "adapter.prefix_cache_mb=0"])  # fmt: skip
    assert build_translation(cfg, TEXTS, ["en", "sw"]).task.prefix is None


@pytest.mark.parametrize("cache", [True, False])
def test_length_sorted_micro_batches_give_the_full_batch_token_mean_gradient(cache):
    """Chunks are trimmed to their own longest pair and weighted by target tokens, so the summed gradient is the
    full batch's (a per-example weighting would differ: the pairs' targets have 6 to 16 tokens)."""
    task = _family([], prefix_cache=cache)
    support, _ = task.batches(PairEpisode("en", "sw", PAIRS, PAIRS[:1]))
    widths = []
    real_loss = task.loss
    task.loss = lambda params, batch: (widths.append(batch["input_ids"].shape[1]), real_loss(params, batch))[1]
    params = _params(task)
    loss_full, g_full = loss_and_grads(task, params, support)
    loss_mb, g_mb = loss_and_grads(task, params, support, micro_batch=2)
    assert widths[0] == support["input_ids"].shape[1] and len(widths) == 4 and min(widths[1:]) < widths[0]
    assert loss_mb == pytest.approx(loss_full, abs=1e-5)
    _close(g_mb, g_full, atol=1e-5)
    tokens = task.loss_weight(support)
    assert tokens == int((support["labels"][:, 1:] != -100).sum()) and tokens > support["labels"].shape[0]
