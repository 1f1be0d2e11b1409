"""FOMAML against a hand-computed reference: explicit SGD on the module, then the query gradient, plus the
first-order Proto-MAML term (the adapted head's gradient chained through the prototype initialisation)."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from metanlp.algorithms.fomaml import FOMAML
from metanlp.core.config import AdapterConfig
from metanlp.families.text_classification.adapter import attach_lora, head_names, lora_parameters
from metanlp.families.text_classification.backbone import tiny_encoder
from metanlp.families.text_classification.data import Episode
from metanlp.families.text_classification.family import TextClassificationFamily

EPISODE = Episode(
    support_texts=["the cat sat", "a dog barked", "stocks fell today", "the market rallied", "rain all day", "sunny"],
    support_labels=[0, 0, 1, 1, 2, 2],
    query_texts=["a kitten purred", "bonds dropped", "storm clouds gathered", "the puppy slept"],
    query_labels=[0, 1, 2, 0],
    label_names=["animals", "finance", "weather"],
)


def _model() -> tuple[torch.nn.Module, TextClassificationFamily]:
    encoder, tokenizer = tiny_encoder(seed=0)
    torch.manual_seed(1)
    model = attach_lora(encoder, AdapterConfig(r=2)).double()
    with torch.no_grad():  # LoRA B starts at 0; make it non-zero so that every LoRA matrix gets a gradient
        for name, p in lora_parameters(model).items():
            if "lora_B" in name:
                p.normal_(0, 0.1)
    return model, TextClassificationFamily(model, tokenizer, head_scale=5.0)


def test_fomaml_meta_gradient_equals_query_gradient_at_hand_adapted_weights() -> None:
    steps, lr = 3, 0.3
    model, task = _model()
    meta = {k: v.detach().clone() for k, v in lora_parameters(model).items()}
    grads, stats = FOMAML(inner_lr=lr, inner_steps=steps).meta_gradient(task, lora_parameters(model), EPISODE)

    # By hand, on the module itself: prototype head, explicit SGD with torch.optim.SGD, then loss.backward().
    support, query = task.batches(EPISODE)
    with torch.no_grad():
        emb = model(support["input_ids"], support["attention_mask"], return_embeddings=True)
    protos = torch.stack([emb[support["labels"] == c].mean(0) for c in range(3)])
    w_name, b_name = head_names(model)
    head = model.get_submodule(w_name.rsplit(".", 1)[0])  # the trainable nn.Linear in modules_to_save
    head.weight = torch.nn.Parameter(2 * 5.0 * protos)  # set_head would round through a float32 nn.Linear
    head.bias = torch.nn.Parameter(-5.0 * (protos**2).sum(1))
    named = dict(model.named_parameters())
    trainable = [named[k] for k in meta] + [named[w_name], named[b_name]]
    opt = torch.optim.SGD(trainable, lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        F.cross_entropy(model(support["input_ids"], support["attention_mask"]), support["labels"]).backward()
        opt.step()
    opt.zero_grad()
    query_loss = F.cross_entropy(model(query["input_ids"], query["attention_mask"]), query["labels"])
    query_loss.backward()
    hand = {k: named[k].grad.clone() for k in meta}
    # Proto-MAML term: the head started as a function of the meta-parameters; chain its gradient through it.
    g_w, g_b = named[w_name].grad.clone(), named[b_name].grad.clone()
    with torch.no_grad():
        for k in meta:
            named[k].copy_(meta[k])
    emb0 = model(support["input_ids"], support["attention_mask"], return_embeddings=True)
    protos0 = torch.stack([emb0[support["labels"] == c].mean(0) for c in range(3)])
    inner = (2 * 5.0 * protos0 * g_w).sum() + (-5.0 * (protos0**2).sum(1) * g_b).sum()
    for k, g in zip(meta, torch.autograd.grad(inner, [named[k] for k in meta]), strict=True):
        hand[k] += g

    assert set(grads) == set(meta)
    assert abs(stats["query_loss"] - query_loss.item()) < 1e-10
    for k in meta:
        torch.testing.assert_close(grads[k], hand[k], rtol=1e-9, atol=1e-12)
    assert sum(float(g.abs().sum()) for g in grads.values()) > 1e-6  # the comparison is not between zeros


def test_fomaml_does_not_touch_the_meta_parameters() -> None:
    model, task = _model()
    before = {k: v.detach().clone() for k, v in lora_parameters(model).items()}
    FOMAML(inner_lr=0.3, inner_steps=2).meta_gradient(task, lora_parameters(model), EPISODE)
    for k, v in lora_parameters(model).items():
        assert torch.equal(v, before[k]) and v.grad is None
