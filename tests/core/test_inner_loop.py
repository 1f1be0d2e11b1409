"""metanlp.algorithms.fomaml.loss_and_grads / inner_loop: micro-batching gives the full-batch gradient."""

import torch

from metanlp.algorithms.fomaml import FOMAML
from metanlp.core.config import AdapterConfig
from metanlp.core.inner_loop import inner_loop, loss_and_grads
from metanlp.families.text_classification.adapter import attach_lora, lora_parameters
from metanlp.families.text_classification.backbone import tiny_encoder
from metanlp.families.text_classification.data import EpisodeSampler
from metanlp.families.text_classification.family import TextClassificationFamily


def _task_and_episode():
    torch.manual_seed(0)
    enc, tok = tiny_encoder()
    model = attach_lora(enc, AdapterConfig(r=2))
    with torch.no_grad():
        for p in lora_parameters(model).values():
            p.normal_(std=0.1)
    pool = {c: [f"{c} sample number {i} " + "word " * (i % 4) for i in range(8)] for c in ("red", "green", "blue")}
    episode = EpisodeSampler(pool, list(pool), n_way=3, k_shot=4, q_query=3, seed=1).sample(0)
    return TextClassificationFamily(model, tok), lora_parameters(model), episode


def test_micro_batched_gradient_equals_full_batch() -> None:
    task, meta, episode = _task_and_episode()
    support, _ = task.batches(episode)
    fast = {k: v.detach().requires_grad_(True) for k, v in task.init_fast_weights(meta, support).items()}
    full_loss, full = loss_and_grads(task, fast, support)
    chunk_loss, chunked = loss_and_grads(task, fast, support, micro_batch=5)
    assert abs(full_loss - chunk_loss) < 1e-5
    for a, b in zip(full, chunked, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_inner_loop_lowers_support_loss_and_fomaml_micro_batch_matches() -> None:
    task, meta, episode = _task_and_episode()
    support, _ = task.batches(episode)
    start = task.init_fast_weights(meta, support)
    before = task.loss(start, support).item()
    after = task.loss(inner_loop(task, start, support, steps=3, lr=0.5), support).item()
    assert after < before
    g_full, _ = FOMAML(0.5, 2).meta_gradient(task, meta, episode)
    g_chunk, _ = FOMAML(0.5, 2, micro_batch=4).meta_gradient(task, meta, episode)
    for k in g_full:
        torch.testing.assert_close(g_full[k], g_chunk[k], rtol=1e-3, atol=1e-6)


def test_init_vjp_matches_autograd_through_prototypes() -> None:
    from metanlp.families.text_classification.adapter import prototype_head

    task, meta, episode = _task_and_episode()
    support, _ = task.batches(episode)
    torch.manual_seed(3)
    g_w, g_b = torch.randn(3, 32), torch.randn(3)
    lora = {k: v.detach().requires_grad_(True) for k, v in meta.items()}
    w, b = prototype_head(task.embed(lora, support), support["labels"], 3, task.head_scale)
    expected = torch.autograd.grad([w, b], list(lora.values()), grad_outputs=[g_w, g_b])
    got = task.init_vjp(meta, support, {task.head_weight: g_w, task.head_bias: g_b}, micro_batch=5)
    for k, e in zip(lora, expected, strict=True):
        torch.testing.assert_close(got[k], e, rtol=1e-4, atol=1e-6)
