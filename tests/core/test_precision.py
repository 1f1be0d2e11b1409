"""``model.precision: bf16``: backbone passes under bfloat16 autocast with float32 outputs, close to float32, in both
families; the text prefix cache keeps the states of each precision apart; a bad value names the key."""

from __future__ import annotations

import pytest
import torch

from metanlp.algorithms.fomaml import FOMAML
from metanlp.core.config import AdapterConfig, ConfigError, ModelConfig
from metanlp.core.precision import autocast
from metanlp.core.recipe_loading import load_recipe
from metanlp.families.text_classification.adapter import attach_lora, lora_parameters
from metanlp.families.text_classification.backbone import tiny_encoder
from metanlp.families.text_classification.data import Episode
from metanlp.families.text_classification.family import TextClassificationFamily
from metanlp.families.text_classification.prefix_cache import PrefixCache
from metanlp.families.text_classification.setup import build_classification
from metanlp.families.translation.adapter import build_translation
from metanlp.families.translation.backbone import TINY_TRANSLATOR

EPISODE = Episode(
    support_texts=["the cat sat on the warm mat", "a dog barked", "stocks fell today", "the market rallied"],
    support_labels=[0, 0, 1, 1],
    query_texts=["a kitten purred", "bonds dropped sharply", "the puppy"],
    query_labels=[0, 1, 0],
    label_names=["animals", "finance"],
)


def test_bad_precision_names_the_key():
    with pytest.raises(ConfigError, match=r"model.precision must be one of auto, fp32, bf16, got 'fp16'"):
        ModelConfig(precision="fp16")
    with pytest.raises(ValueError, match="precision must be one of"):
        autocast("cpu", "half")


def _tasks(layers: list[int]) -> tuple[TextClassificationFamily, TextClassificationFamily]:
    encoder, tokenizer = tiny_encoder(seed=0)
    torch.manual_seed(1)
    model = attach_lora(encoder, AdapterConfig(r=2, layers=layers))
    with torch.no_grad():
        for name, p in lora_parameters(model).items():
            if "lora_B" in name:
                p.normal_(0, 0.3)
    model.eval()
    cache = PrefixCache()
    return (TextClassificationFamily(model, tokenizer, prefix_cache=cache),
            TextClassificationFamily(model, tokenizer, prefix_cache=cache, precision="bf16"))  # fmt: skip


def test_explicit_bf16_without_native_bfloat16_warns_and_auto_falls_back(monkeypatch, caplog):
    import metanlp.core.precision as precision

    monkeypatch.setattr(precision, "bf16_is_fast", lambda: False)
    with caplog.at_level("WARNING", logger="metanlp.core.precision"):
        assert precision.resolve_precision("auto") == "fp32"
        assert not caplog.records
        assert precision.resolve_precision("bf16") == "bf16"
    assert "without native bfloat16" in caplog.text and "model.precision=auto or fp32" in caplog.text
    monkeypatch.setattr(precision, "bf16_is_fast", lambda: True)
    caplog.clear()
    with caplog.at_level("WARNING", logger="metanlp.core.precision"):
        assert precision.resolve_precision("bf16") == "bf16" and precision.resolve_precision("auto") == "bf16"
    assert not caplog.records


@pytest.mark.parametrize("layers", [[], [-1]])
def test_bf16_text_logits_are_float32_close_to_fp32_and_cached_apart(layers):
    fp32, bf16 = _tasks(layers)
    params = lora_parameters(fp32.model)
    support, _ = fp32.batches(EPISODE)
    fast = fp32.init_fast_weights(params, support)
    ref = fp32.logits(fast, support)
    support_b, _ = bf16.batches(EPISODE)  # the shared cache: bf16 states must not be served the fp32 ones
    got = bf16.logits(fast, support_b)
    assert got.dtype == torch.float32
    assert not torch.equal(got, ref)  # autocast did run in bfloat16
    torch.testing.assert_close(got, ref, rtol=0.05, atol=0.05)
    if layers:  # the cache holds the two precisions' states under different identities
        assert not torch.equal(support_b["hidden_states"], support["hidden_states"])


def test_bf16_meta_gradient_on_minilm_is_within_5_percent_of_fp32_with_eager_attention():
    setups = {p: build_classification(load_recipe(None, [f"model.precision={p}", "run.progress=false"]))
              for p in ("fp32", "bf16")}  # fmt: skip
    kernel = {p: s.task.prefix.encoder.backbone.config._attn_implementation for p, s in setups.items()}
    assert kernel["bf16"] == "eager" and kernel["fp32"] != "eager"  # the CPU rule of attention_kernel
    g = {p: FOMAML(inner_lr=0.5, inner_steps=3).meta_gradient(s.task, s.meta_params, EPISODE)[0]
         for p, s in setups.items()}  # fmt: skip
    num = sum(float((g["bf16"][k] - g["fp32"][k]).pow(2).sum()) for k in g["fp32"]) ** 0.5
    den = sum(float(g["fp32"][k].pow(2).sum()) for k in g["fp32"]) ** 0.5
    assert all(v.dtype == torch.float32 for v in g["bf16"].values())
    assert 0 < num / den < 0.05


def test_bf16_translation_loss_is_float32_and_close_to_fp32():
    texts = ["Everyone has the right to life.", "Kila mtu ana haki ya kuishi.", "All are equal.", "Wote ni sawa."]
    sets = ["model.name=" + TINY_TRANSLATOR, "task.family=translation", "adapter.r=2",
            "adapter.target_modules=[q_proj,v_proj]", "adapter.layers=[-1]", "run.seed=0"]  # fmt: skip
    setups = {p: build_translation(load_recipe(None, [*sets, f"model.precision={p}"]), texts, ["en", "sw"])
              for p in ("fp32", "bf16")}  # fmt: skip
    losses = {}
    for p, setup in setups.items():
        batch = setup.task.with_states(setup.task.encode([(texts[0], texts[1]), (texts[2], texts[3])], "en", "sw"))
        losses[p] = setup.task.loss(setup.meta_params, batch)
    assert losses["bf16"].dtype == torch.float32
    assert losses["bf16"] != losses["fp32"]
    torch.testing.assert_close(losses["bf16"], losses["fp32"], rtol=0.02, atol=0.02)
