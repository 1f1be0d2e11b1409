"""The frozen-prefix cache (LoRA on the top layers only) against the uncached forward, its invalidation and memory
bound, length-sorted micro-batches, and stock-peft loading of a top-layer adapter."""

from __future__ import annotations

import json

import pytest
import torch
from peft import PeftModel

from metanlp.algorithms.fomaml import FOMAML, loss_and_grads
from metanlp.core.config import AdapterConfig, ConfigError
from metanlp.core.micro_batches import micro_batches
from metanlp.core.model_card import build_model_card
from metanlp.core.saving import save_adapter
from metanlp.families.text_classification.adapter import TextClassifier, attach_lora, lora_parameters
from metanlp.families.text_classification.backbone import tiny_encoder
from metanlp.families.text_classification.data import Episode
from metanlp.families.text_classification.family import TextClassificationFamily
from metanlp.families.text_classification.prefix_cache import PrefixCache

EPISODE = Episode(
    support_texts=["the cat sat on the warm mat by the door", "a dog barked", "stocks fell today after the report",
                   "the market rallied", "rain all day and all night long in the hills", "sunny"],
    support_labels=[0, 0, 1, 1, 2, 2],
    query_texts=["a kitten purred", "bonds dropped sharply in early trading on monday", "storm clouds", "the puppy"],
    query_labels=[0, 1, 2, 0],
    label_names=["animals", "finance", "weather"],
)  # fmt: skip


def _model(layers: list[int], seed: int = 0, dtype: torch.dtype = torch.float64) -> tuple[torch.nn.Module, object]:
    encoder, tokenizer = tiny_encoder(seed=seed)
    torch.manual_seed(1)
    model = attach_lora(encoder, AdapterConfig(r=2, layers=layers)).to(dtype)
    with torch.no_grad():  # LoRA B starts at 0; make it non-zero so that the LoRA layers matter
        for name, p in lora_parameters(model).items():
            if "lora_B" in name:
                p.normal_(0, 0.3)
    return model, tokenizer


def _pair(layers: list[int] | None = None) -> tuple[TextClassificationFamily, TextClassificationFamily]:
    model, tokenizer = _model([1] if layers is None else layers)
    cached = TextClassificationFamily(model, tokenizer, head_scale=5.0)
    plain = TextClassificationFamily(model, tokenizer, head_scale=5.0, prefix_cache_mb=0)
    return cached, plain


def _grads(task: TextClassificationFamily, micro_batch: int) -> tuple[float, list[torch.Tensor]]:
    support, _ = task.batches(EPISODE)
    fast = task.init_fast_weights(lora_parameters(task.model), support)
    fast = {k: v.detach().requires_grad_(True) for k, v in fast.items()}
    return loss_and_grads(task, fast, support, micro_batch=micro_batch)


def test_top_layer_lora_goes_to_peft_and_the_family_caches_the_layers_below() -> None:
    cached, plain = _pair()
    cfg = cached.model.peft_config["default"]
    assert cfg.layers_to_transform == [1] and cfg.layers_pattern == "layer"
    assert {n.split(".layer.")[1].split(".")[0] for n in lora_parameters(cached.model)} == {"1"}
    assert cached.prefix is not None and cached.prefix.start_layer == 1 and plain.prefix is None
    batch = cached.tokenize(EPISODE.support_texts)
    assert batch["hidden_states"].shape == (*batch["input_ids"].shape, 32)
    assert torch.equal(batch["input_ids"], plain.tokenize(EPISODE.support_texts)["input_ids"])


def test_lora_on_every_layer_runs_the_whole_encoder_as_before() -> None:
    task, _ = _pair(layers=[])
    assert task.prefix is None and "hidden_states" not in task.tokenize(["a text"])
    task, _ = _pair(layers=[0, 1])
    assert task.prefix is None


def test_cached_forward_gives_the_uncached_logits_loss_and_gradients() -> None:
    cached, plain = _pair()
    for micro_batch in (0, 4):
        loss_c, g_c = _grads(cached, micro_batch)
        loss_p, g_p = _grads(plain, micro_batch)
        assert loss_c == pytest.approx(loss_p, rel=1e-10)
        for a, b in zip(g_c, g_p, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)
    support_c, query_c = cached.batches(EPISODE)
    support_p, query_p = plain.batches(EPISODE)
    meta = lora_parameters(cached.model)
    fast_c, fast_p = cached.init_fast_weights(meta, support_c), plain.init_fast_weights(meta, support_p)
    torch.testing.assert_close(cached.logits(fast_c, query_c), plain.logits(fast_p, query_p), rtol=1e-9, atol=1e-12)
    head = {k: torch.randn_like(fast_c[k]) for k in (cached.head_weight, cached.head_bias)}
    vjp_c, vjp_p = cached.init_vjp(meta, support_c, head, 4), plain.init_vjp(meta, support_p, head, 4)
    for k in vjp_c:
        torch.testing.assert_close(vjp_c[k], vjp_p[k], rtol=1e-9, atol=1e-12)
    g_c, stats_c = FOMAML(0.3, 3, micro_batch=4).meta_gradient(cached, meta, EPISODE)
    g_p, stats_p = FOMAML(0.3, 3, micro_batch=4).meta_gradient(plain, meta, EPISODE)
    assert stats_c["query_loss"] == pytest.approx(stats_p["query_loss"], rel=1e-9)
    for k in g_c:
        torch.testing.assert_close(g_c[k], g_p[k], rtol=1e-8, atol=1e-11)


def test_cached_minilm_top2_matches_uncached(minilm) -> None:
    encoder, tokenizer = minilm
    torch.manual_seed(0)
    model = attach_lora(encoder, AdapterConfig(layers=[-2, -1]))
    with torch.no_grad():
        for name, p in lora_parameters(model).items():
            if "lora_B" in name:
                p.normal_(0, 0.05)
    cached = TextClassificationFamily(model, tokenizer)
    plain = TextClassificationFamily(model, tokenizer, prefix_cache_mb=0)
    assert cached.prefix is not None and cached.prefix.start_layer == 4
    texts = EPISODE.support_texts
    emb_c = cached.embed(lora_parameters(model), cached.tokenize(texts))
    emb_p = plain.embed(lora_parameters(model), plain.tokenize(texts))
    torch.testing.assert_close(emb_c, emb_p, rtol=1e-4, atol=1e-5)
    assert (emb_c - emb_p).abs().max() < 1e-3 * emb_p.abs().max()


def test_cached_mpnet_gets_its_relative_position_bias() -> None:
    from transformers import MPNetConfig, MPNetModel

    from metanlp.families.text_classification.backbone import TextEncoder

    _, tokenizer = tiny_encoder()
    torch.manual_seed(0)
    config = MPNetConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=64, pad_token_id=tokenizer.pad_token_id)  # fmt: skip
    encoder = TextEncoder(MPNetModel(config).eval().requires_grad_(False))
    model = attach_lora(encoder, AdapterConfig(r=2, target_modules=["q", "k", "v", "o"], layers=[-1]))
    cached = TextClassificationFamily(model, tokenizer)
    plain = TextClassificationFamily(model, tokenizer, prefix_cache_mb=0)
    assert cached.prefix is not None and cached.prefix.start_layer == 1
    emb_c = cached.embed(lora_parameters(model), cached.tokenize(EPISODE.support_texts))
    emb_p = plain.embed(lora_parameters(model), plain.tokenize(EPISODE.support_texts))
    torch.testing.assert_close(emb_c, emb_p)


def test_second_pass_is_served_from_the_cache_and_max_length_is_part_of_the_key() -> None:
    cached, plain = _pair()
    cache = cached.prefix.cache
    cached.tokenize(EPISODE.query_texts)
    assert (len(cache), cache.misses, cache.hits) == (4, 4, 0)
    cached.tokenize(EPISODE.query_texts)
    assert (len(cache), cache.misses, cache.hits) == (4, 4, 4)
    cached.max_length = plain.max_length = 4  # truncates the long query: its cached entry must not be reused
    short_c, short_p = cached.tokenize(EPISODE.query_texts), plain.tokenize(EPISODE.query_texts)
    assert cache.misses == 8 and short_c["input_ids"].shape[1] == 4
    meta = lora_parameters(cached.model)
    torch.testing.assert_close(cached.embed(meta, short_c), plain.embed(meta, short_p), rtol=1e-9, atol=1e-12)


def test_cache_is_dropped_when_the_backbone_or_its_weights_change() -> None:
    shared = PrefixCache(max_mb=16)
    model_a, tok = _model([1], seed=0)
    model_b, _ = _model([1], seed=1)
    task_a = TextClassificationFamily(model_a, tok, prefix_cache=shared)
    task_b = TextClassificationFamily(model_b, tok, prefix_cache=shared)
    plain_b = TextClassificationFamily(model_b, tok, prefix_cache_mb=0)
    texts = EPISODE.support_texts
    task_a.tokenize(texts)
    identity_a = shared.identity
    batch_b = task_b.tokenize(texts)  # same texts, another backbone: nothing of a's may be served
    assert shared.identity != identity_a and shared.hits == 0 and len(shared) == len(texts)
    meta = lora_parameters(model_b)
    torch.testing.assert_close(task_b.embed(meta, batch_b), plain_b.embed(meta, plain_b.tokenize(texts)))
    with torch.no_grad():  # an in-place change of a frozen weight below the LoRA layers
        model_b.get_base_model().encoder.backbone.encoder.layer[0].output.dense.weight.mul_(1.5)
    batch_b2 = task_b.tokenize(texts)
    assert shared.hits == 0
    torch.testing.assert_close(task_b.embed(meta, batch_b2), plain_b.embed(meta, plain_b.tokenize(texts)))
    assert not torch.allclose(batch_b2["hidden_states"], batch_b["hidden_states"])


def test_no_texts_give_zero_row_tensors() -> None:
    cached, _ = _pair()
    batch = cached.prefix.batch([], cached.max_length, cached.device)
    assert batch["input_ids"].shape == (0, 1) and batch["hidden_states"].shape == (0, 1, 32)
    assert batch["hidden_states"].dtype == torch.float64


def test_training_mode_prefix_is_not_cached() -> None:
    cached, _ = _pair()
    cached.model.get_base_model().encoder.backbone.train()  # dropout on: the prefix is no longer a constant
    assert "hidden_states" not in cached.tokenize(["a text"])


def test_eviction_keeps_the_cache_within_its_bound_least_recent_first() -> None:
    cache = PrefixCache(max_mb=1e-3)  # 1048 bytes
    entry = (torch.zeros(4, dtype=torch.long), torch.zeros(4, 16))  # 32 + 256 bytes
    for i in range(3):
        cache.put((f"t{i}", 8), entry)
    assert len(cache) == 3 and cache.nbytes == 3 * 288
    assert cache.get(("t0", 8)) is not None  # t0 is now the most recent: t1 goes first
    cache.put(("t3", 8), entry)
    assert cache.nbytes <= cache.max_bytes and len(cache) == 3
    assert cache.get(("t1", 8)) is None and cache.get(("t0", 8)) is not None
    cache.put(("huge", 8), (torch.zeros(1), torch.zeros(1000)))  # larger than the bound: not stored
    assert cache.get(("huge", 8)) is None and cache.nbytes <= cache.max_bytes


def test_length_sorted_micro_batches_are_trimmed_and_give_the_full_batch_gradient() -> None:
    _, plain = _pair()
    support, _ = plain.batches(EPISODE)
    chunks = list(micro_batches(support, 2, plain.sequence_keys))
    widths = [c["input_ids"].shape[1] for _, c in chunks]
    assert widths[0] == support["input_ids"].shape[1] and widths[-1] < widths[0] and widths == sorted(widths)[::-1]
    assert sorted(torch.cat([i for i, _ in chunks]).tolist()) == list(range(6))
    for idx, c in chunks:
        assert torch.equal(c["labels"], support["labels"][idx])
    loss_full, g_full = _grads(plain, 0)
    loss_mb, g_mb = _grads(plain, 2)
    assert loss_mb == pytest.approx(loss_full, rel=1e-10)
    for a, b in zip(g_mb, g_full, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


def test_stock_peft_loads_a_top_layer_adapter_with_identical_logits(tmp_path) -> None:
    model, tokenizer = _model([-1], dtype=torch.float32)
    task = TextClassificationFamily(model, tokenizer)
    out = save_adapter(model, tmp_path / "adapter", {"family": "text_classification", "backbone": "tiny"})
    assert json.loads((out / "adapter_config.json").read_text())["layers_to_transform"] == [1]
    assert json.loads((out / "metanlp.json").read_text())["lora_layers"] == [1]
    assert "] on layers [1]; the head" in str(build_model_card(out))  # the card's LoRA line
    encoder, _ = tiny_encoder(seed=0)
    loaded = PeftModel.from_pretrained(TextClassifier(encoder, num_labels=1), str(out)).eval()
    enc = tokenizer(EPISODE.query_texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        expected = task.logits(dict(model.named_parameters()), task.tokenize(EPISODE.query_texts))
        got = loaded(enc["input_ids"], enc["attention_mask"])
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


def test_adapter_layers_are_validated() -> None:
    with pytest.raises(ConfigError, match="adapter.layers"):
        AdapterConfig(layers=[1, 1])
    with pytest.raises(ConfigError, match="adapter.layers"):
        AdapterConfig(layers=["top"])  # type: ignore[list-item]
    with pytest.raises(ConfigError, match="adapter.prefix_cache_mb"):
        AdapterConfig(prefix_cache_mb=-1)
    encoder, _ = tiny_encoder()
    with pytest.raises(ValueError, match="adapter.layers"):
        attach_lora(encoder, AdapterConfig(layers=[2]))
    with pytest.raises(ValueError, match="adapter.layers"):
        attach_lora(encoder, AdapterConfig(layers=[1, -1]))


@pytest.mark.parametrize("algorithm", ["maml", "reptile", "metasgd", "anil", "protonet"])
def test_every_learner_gets_the_same_meta_gradient_with_the_cache(algorithm: str) -> None:
    from metanlp.algorithms import build_learner
    from metanlp.core.config import MetaConfig

    encoder, tokenizer = tiny_encoder(seed=0, attn_implementation="eager")  # MAML: double backward on CPU
    torch.manual_seed(1)
    model = attach_lora(encoder, AdapterConfig(r=2, layers=[1])).double()
    with torch.no_grad():
        for name, p in lora_parameters(model).items():
            if "lora_B" in name:
                p.normal_(0, 0.3)
    cached = TextClassificationFamily(model, tokenizer, head_scale=5.0)
    plain = TextClassificationFamily(model, tokenizer, head_scale=5.0, prefix_cache_mb=0)
    meta = lora_parameters(model)
    learner = build_learner(MetaConfig(algorithm=algorithm, inner_steps=2, inner_lr=0.3, micro_batch=4), meta)
    g_c, stats_c = learner.meta_gradient(cached, meta, EPISODE)
    g_p, stats_p = learner.meta_gradient(plain, meta, EPISODE)
    assert cached.prefix.cache.misses > 0 and set(g_c) == set(g_p)
    assert stats_c["query_loss"] == pytest.approx(stats_p["query_loss"], rel=1e-9)
    for k in g_c:
        torch.testing.assert_close(g_c[k], g_p[k], rtol=1e-8, atol=1e-11)


def test_recipe_adapter_layers_builds_a_cached_family_and_refuses_a_meta_init_with_other_layers(tmp_path) -> None:
    from metanlp.core.recipe_loading import load_recipe
    from metanlp.families.text_classification.setup import build_classification

    cfg = load_recipe(None, ["model.name=tiny-random-bert", "adapter.layers=[-1]", "adapter.prefix_cache_mb=8"])
    setup = build_classification(cfg)
    assert setup.task.prefix is not None and setup.task.prefix.start_layer == 1
    assert setup.task.prefix.cache.max_bytes == 8 * 2**20
    meta = {"family": "text_classification", "backbone": "tiny-random-bert"}
    save_adapter(setup.model, tmp_path / "top", meta)
    everywhere = load_recipe(None, ["model.name=tiny-random-bert", f"adapter.init={tmp_path / 'top'}"])
    with pytest.raises(ValueError, match="adapter.layers"):
        build_classification(everywhere)
    same = load_recipe(None, ["model.name=tiny-random-bert", "adapter.layers=[1]", f"adapter.init={tmp_path / 'top'}"])
    assert build_classification(same).task.prefix is not None


def test_a_checkpoint_of_lora_on_more_layers_is_refused(tmp_path) -> None:
    from metanlp.core.meta_train import MetaState

    every, _ = _model([])
    top, _ = _model([1])
    MetaState(lora_parameters(every)).save_params(tmp_path)
    with pytest.raises(ValueError, match="adapter.layers"):
        MetaState(lora_parameters(top)).load_params(tmp_path)
    MetaState(lora_parameters(top)).save_params(tmp_path)
    with pytest.raises(ValueError, match="lacks meta-parameters"):
        MetaState(lora_parameters(every)).load_params(tmp_path)
