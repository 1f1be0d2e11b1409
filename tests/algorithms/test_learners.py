"""Meta-learners behind the one interface: gradients against finite differences / hand-written references, the
registry, and "each learner learns" on real held-out episodes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.nn import functional as F

from metanlp.algorithms import build_learner
from metanlp.algorithms.fomaml import FOMAML
from metanlp.algorithms.maml import MAML
from metanlp.algorithms.metasgd import LR_PREFIX, TASK_LR, MetaSGD
from metanlp.algorithms.reptile import Reptile
from metanlp.core.budget import AdaptBudget
from metanlp.core.config import AdapterConfig, MetaConfig, TaskConfig
from metanlp.core.inner_loop import inner_loop
from metanlp.core.registry import learner_names
from metanlp.families.text_classification.adapter import attach_lora, lora_parameters
from metanlp.families.text_classification.anil import ANIL
from metanlp.families.text_classification.backbone import load_encoder, tiny_encoder
from metanlp.families.text_classification.data import Episode, EpisodeSampler, load_corpus, split_classes
from metanlp.families.text_classification.family import TextClassificationFamily
from metanlp.families.text_classification.protonet import ProtoNet

SUPERSENSES = Path(__file__).resolve().parents[2] / "data" / "wordnet_supersenses" / "wordnet_supersenses.jsonl"


# --- a minimal TaskFamily over a tiny MLP, where finite differences are accurate (float64) -----------------------


class TinyFamily:
    """``logits = tanh(x @ w1) @ w2 + b``: meta-parameters ``w1, w2``; ``b`` is a per-episode weight whose initial
    value (log class frequencies of the support set) is a constant, like the prototype head of text classification.
    An episode is ``(x_support, y_support, x_query, y_query)``."""

    def batches(self, episode):  # noqa: ANN001, ANN201
        xs, ys, xq, yq = episode
        return {"x": xs, "labels": ys}, {"x": xq, "labels": yq}

    def init_fast_weights(self, meta_params, support):  # noqa: ANN001, ANN201
        fast = {k: v.detach() for k, v in meta_params.items()}
        counts = torch.bincount(support["labels"], minlength=3).double()
        fast["b"] = torch.log(counts + 1.0)
        return fast

    def init_vjp(self, meta_params, support, task_grads, micro_batch=0):  # noqa: ANN001, ANN201
        return None  # the head's initial weights do not depend on the meta-parameters

    def loss(self, params, batch):  # noqa: ANN001, ANN201
        return F.cross_entropy(torch.tanh(batch["x"] @ params["w1"]) @ params["w2"] + params["b"], batch["labels"])

    def score(self, params, batch):  # noqa: ANN001, ANN201
        logits = torch.tanh(batch["x"] @ params["w1"]) @ params["w2"] + params["b"]
        return {"accuracy": float((logits.argmax(-1) == batch["labels"]).double().mean())}


def _tiny_problem(seed: int = 0) -> tuple[dict[str, torch.Tensor], tuple[torch.Tensor, ...]]:
    g = torch.Generator().manual_seed(seed)
    meta = {"w1": torch.randn(4, 5, generator=g, dtype=torch.float64),
            "w2": torch.randn(5, 3, generator=g, dtype=torch.float64)}  # fmt: skip
    episode = (torch.randn(9, 4, generator=g, dtype=torch.float64), torch.tensor([0, 1, 2] * 3),
               torch.randn(6, 4, generator=g, dtype=torch.float64), torch.tensor([0, 1, 2] * 2))  # fmt: skip
    return meta, episode


def _post_adaptation_query_loss(task, meta, episode, steps, lr) -> float:  # noqa: ANN001
    """The MAML objective evaluated directly: initial fast weights of ``meta``, SGD on the support, query loss."""
    support, query = task.batches(episode)
    fast = task.init_fast_weights(meta, support)
    adapted = inner_loop(task, fast, support, steps, lr)
    with torch.no_grad():
        return task.loss(adapted, query).item()


def _directional_fd(objective, meta, direction, eps=1e-6) -> float:  # noqa: ANN001
    plus = {k: v + eps * direction[k] for k, v in meta.items()}
    minus = {k: v - eps * direction[k] for k, v in meta.items()}
    return (objective(plus) - objective(minus)) / (2 * eps)


def _dot(grads, direction) -> float:  # noqa: ANN001
    return sum(float((grads[k] * direction[k]).sum()) for k in direction)


def test_maml_gradient_matches_finite_differences_and_differs_from_fomaml() -> None:
    task, (meta, episode) = TinyFamily(), _tiny_problem()
    steps, lr = 3, 0.4
    grads, _ = MAML(inner_lr=lr, inner_steps=steps).meta_gradient(task, meta, episode)
    fo_grads, _ = FOMAML(inner_lr=lr, inner_steps=steps).meta_gradient(task, meta, episode)
    for i in range(3):
        g = torch.Generator().manual_seed(100 + i)
        direction = {k: torch.randn(v.shape, generator=g, dtype=v.dtype) for k, v in meta.items()}
        fd = _directional_fd(lambda m: _post_adaptation_query_loss(task, m, episode, steps, lr), meta, direction)
        assert _dot(grads, direction) == pytest.approx(fd, rel=1e-6, abs=1e-9)
        assert abs(_dot(fo_grads, direction) - fd) > 1e-3  # the second-order terms matter on this problem


def test_maml_gradient_on_text_family_matches_finite_differences() -> None:
    encoder, tokenizer = tiny_encoder(seed=0, attn_implementation="eager")
    torch.manual_seed(0)
    model = attach_lora(encoder, AdapterConfig(r=2)).double()
    with torch.no_grad():
        for name, p in lora_parameters(model).items():
            if "lora_B" in name:
                p.normal_(0, 0.2)
    task = TextClassificationFamily(model, tokenizer, head_scale=5.0)
    episode = Episode(["red apple", "green pear", "fast car", "old truck"], [0, 0, 1, 1],
                      ["ripe banana", "new bus", "sour lemon"], [0, 1, 0], ["fruit", "vehicle"])  # fmt: skip
    meta = {k: v.detach().clone() for k, v in lora_parameters(model).items()}
    grads, _ = MAML(inner_lr=0.5, inner_steps=2).meta_gradient(task, meta, episode)
    g = torch.Generator().manual_seed(0)
    direction = {k: torch.randn(v.shape, generator=g, dtype=v.dtype) for k, v in meta.items()}
    # the full objective: the prototype head is recomputed from the perturbed meta-parameters (Proto-MAML)
    fd = _directional_fd(lambda m: _post_adaptation_query_loss(task, m, episode, 2, 0.5), meta, direction)
    assert abs(fd) > 1e-4
    assert _dot(grads, direction) == pytest.approx(fd, rel=1e-5)


def test_maml_on_sdpa_attention_tells_the_user_to_switch_to_eager() -> None:
    encoder, tokenizer = tiny_encoder(seed=0)  # transformers' default attention: SDPA
    model = attach_lora(encoder, AdapterConfig(r=2))
    task = TextClassificationFamily(model, tokenizer)
    episode = Episode(["a", "b", "c", "d"], [0, 0, 1, 1], ["e", "f"], [0, 1], ["x", "y"])
    if model.get_base_model().encoder.backbone.config._attn_implementation != "sdpa":
        pytest.skip("this transformers build does not default to SDPA attention")
    with pytest.raises(ValueError, match="model.attn_implementation=eager"):
        MAML(inner_steps=1).meta_gradient(task, lora_parameters(model), episode)


def test_reptile_gradient_is_meta_minus_weights_trained_on_support_and_query() -> None:
    task, (meta, episode) = TinyFamily(), _tiny_problem(1)
    grads, stats = Reptile(inner_lr=0.3, inner_steps=4).meta_gradient(task, meta, episode)
    xs, ys, xq, yq = episode
    union = {"x": torch.cat([xs, xq]), "labels": torch.cat([ys, yq])}
    fast = task.init_fast_weights(meta, {"x": xs, "labels": ys})
    adapted = inner_loop(task, fast, union, 4, 0.3)
    for k in meta:
        torch.testing.assert_close(grads[k], meta[k] - adapted[k], rtol=1e-10, atol=1e-12)
    assert set(grads) == set(meta)
    assert stats["query_loss"] == pytest.approx(task.loss(fast, {"x": xq, "labels": yq}).item())
    # an outer SGD step of size 1 on this "gradient" lands exactly on the adapted weights
    torch.testing.assert_close(meta["w1"] - grads["w1"], adapted["w1"])


def test_metasgd_learning_rate_gradients_are_exact_for_one_step() -> None:
    task, (meta, episode) = TinyFamily(), _tiny_problem(2)
    learner = MetaSGD(inner_lr=0.3, inner_steps=1)
    extra = learner.bind(meta)
    with torch.no_grad():  # distinct rates per element, so the check is not the scalar case in disguise
        for p in extra.values():
            p.uniform_(0.1, 0.5)
    grads, _ = learner.meta_gradient(task, meta, episode)
    assert set(grads) == set(meta) | set(learner.extra_parameters())

    # reference: autograd through theta_1 = theta_0 - alpha * g_0 w.r.t. alpha (g_0 does not depend on alpha)
    support, query = task.batches(episode)
    fast = {k: v.detach().requires_grad_(True) for k, v in task.init_fast_weights(meta, support).items()}
    g0 = dict(zip(fast, torch.autograd.grad(task.loss(fast, support), list(fast.values())), strict=True))
    alphas = {k: p.detach().clone().requires_grad_(True) for k, p in extra.items()}
    theta1 = {k: fast[k].detach() - alphas.get(LR_PREFIX + k, alphas[TASK_LR]) * g0[k] for k in fast}
    query_loss = task.loss(theta1, query)
    ref = torch.autograd.grad(query_loss, list(alphas.values()) + [theta1[k] for k in meta])
    ref_alpha, ref_theta = dict(zip(alphas, ref[: len(alphas)], strict=True)), ref[len(alphas) :]
    for k in alphas:
        torch.testing.assert_close(grads[k], ref_alpha[k], rtol=1e-10, atol=1e-12)
    for k, r in zip(meta, ref_theta, strict=True):  # first order w.r.t. the init: the query gradient at theta_1
        torch.testing.assert_close(grads[k], r, rtol=1e-10, atol=1e-12)
    assert float(grads[TASK_LR].abs()) > 1e-6


def test_metasgd_needs_bind_and_matches_fomaml_with_uniform_rates() -> None:
    task, (meta, episode) = TinyFamily(), _tiny_problem(3)
    learner = MetaSGD(inner_lr=0.3, inner_steps=3)
    with pytest.raises(RuntimeError, match="bind"):
        learner.extra_parameters()
    with pytest.raises(RuntimeError, match="bind"):
        learner.meta_gradient(task, meta, episode)
    extra = learner.bind(meta)
    assert {k: tuple(v.shape) for k, v in extra.items()} == {
        LR_PREFIX + "w1": (4, 5),
        LR_PREFIX + "w2": (5, 3),
        TASK_LR: (),
    }
    assert learner.bind(meta)[TASK_LR] is extra[TASK_LR]  # idempotent: the optimiser keeps its parameters
    grads, _ = learner.meta_gradient(task, meta, episode)
    fo_grads, _ = FOMAML(inner_lr=0.3, inner_steps=3).meta_gradient(task, meta, episode)
    for k in meta:
        torch.testing.assert_close(grads[k], fo_grads[k])
    with pytest.raises(ValueError, match="other meta-parameters"):
        learner.bind({"w1": meta["w1"][:2]})


# --- ANIL and ProtoNet on the real text family (tiny encoder, float64) ---------------------------------------------


@pytest.fixture(scope="module")
def text_task() -> tuple[TextClassificationFamily, dict[str, torch.Tensor], Episode]:
    encoder, tokenizer = tiny_encoder(seed=1)
    torch.manual_seed(1)
    model = attach_lora(encoder, AdapterConfig(r=2)).double()
    with torch.no_grad():
        for name, p in lora_parameters(model).items():
            if "lora_B" in name:
                p.normal_(0, 0.2)
    task = TextClassificationFamily(model, tokenizer, head_scale=5.0)
    episode = Episode(["red apple", "green pear", "fast car", "old truck", "tall oak", "pine tree"],
                      [0, 0, 1, 1, 2, 2], ["ripe banana", "new bus", "birch", "lemon"], [0, 1, 2, 0],
                      ["fruit", "vehicle", "tree"])  # fmt: skip
    return task, {k: v.detach().clone() for k, v in lora_parameters(model).items()}, episode


def _query_loss_of(learner, task, meta, episode) -> float:  # noqa: ANN001
    support, query = task.batches(episode)
    fast = learner.adapt(task, meta, support)
    with torch.no_grad():
        return task.loss(fast, query).item()


@pytest.mark.parametrize("learner", [ANIL(inner_lr=0.5, inner_steps=3), ProtoNet()], ids=["anil", "protonet"])
def test_head_learners_gradient_matches_finite_differences_of_adapt(learner, text_task) -> None:  # noqa: ANN001
    """ANIL / ProtoNet differentiate through embeddings, prototypes and the head loop: compare with the finite
    difference of the query loss of what ``adapt`` returns (which runs the full model, a separate code path)."""
    task, meta, episode = text_task
    grads, stats = learner.meta_gradient(task, meta, episode)
    assert stats["query_loss"] == pytest.approx(_query_loss_of(learner, task, meta, episode), rel=1e-9)
    g = torch.Generator().manual_seed(5)
    direction = {k: torch.randn(v.shape, generator=g, dtype=v.dtype) for k, v in meta.items()}
    fd = _directional_fd(lambda m: _query_loss_of(learner, task, m, episode), meta, direction)
    assert abs(fd) > 1e-4
    assert _dot(grads, direction) == pytest.approx(fd, rel=1e-5)


def test_anil_adapts_only_the_head_and_protonet_is_anil_without_steps(text_task) -> None:  # noqa: ANN001
    task, meta, episode = text_task
    support, _ = task.batches(episode)
    fast = ANIL(inner_lr=0.5, inner_steps=3).adapt(task, meta, support)
    start = task.init_fast_weights(meta, support)
    for k in meta:
        assert torch.equal(fast[k], meta[k])
    assert not torch.allclose(fast[task.head_weight], start[task.head_weight])
    anil0, _ = ANIL(inner_lr=0.5, inner_steps=0).meta_gradient(task, meta, episode)
    proto, _ = ProtoNet().meta_gradient(task, meta, episode)
    for k in meta:
        torch.testing.assert_close(anil0[k], proto[k])
    for k, v in ProtoNet().adapt(task, meta, support).items():
        assert torch.equal(v, start[k])


def test_protonet_adapts_with_the_budget_like_fomaml_and_without_steps_is_the_prototype_head(text_task) -> None:  # noqa: ANN001
    """With a budget, ProtoNet's init is fine-tuned exactly as FOMAML's (b/c/d share one rule); a budget of no step
    gives back the prototype head."""
    task, meta, episode = text_task
    support, query = task.batches(episode)
    budget = AdaptBudget(batch_size=0, steps=4, lr=1e-2)
    tuned = ProtoNet(budget=budget).adapt(task, meta, support)
    for k, v in FOMAML(budget=budget).adapt(task, meta, support).items():
        torch.testing.assert_close(tuned[k], v)
    start = task.init_fast_weights(meta, support)
    assert not torch.allclose(tuned[task.head_weight], start[task.head_weight])
    with torch.no_grad():
        assert task.loss(tuned, support).item() < task.loss(start, support).item()
    none = ProtoNet(budget=AdaptBudget(epochs=0, min_steps=0, steps=0)).adapt(task, meta, support)
    for k, v in none.items():
        assert torch.equal(v, start[k])


def test_metasgd_with_uniform_rates_matches_fomaml_on_text_family(text_task) -> None:  # noqa: ANN001
    """Both use first-order Proto-MAML (the head gradient chained through its prototype init)."""
    task, meta, episode = text_task
    learner = MetaSGD(inner_lr=0.5, inner_steps=2, micro_batch=4)
    learner.bind(meta)
    grads, _ = learner.meta_gradient(task, meta, episode)
    fo_grads, _ = FOMAML(inner_lr=0.5, inner_steps=2).meta_gradient(task, meta, episode)
    for k in meta:
        torch.testing.assert_close(grads[k], fo_grads[k], rtol=1e-8, atol=1e-10)


def test_head_learners_reject_a_family_without_embeddings() -> None:
    task, (meta, episode) = TinyFamily(), _tiny_problem()
    for learner in (ANIL(), ProtoNet()):
        with pytest.raises(ValueError, match="embeddings"):
            learner.meta_gradient(task, meta, episode)


def test_every_registered_learner_builds_from_its_recipe_name() -> None:
    expected = {"fomaml": FOMAML, "maml": MAML, "reptile": Reptile, "metasgd": MetaSGD, "anil": ANIL,
                "protonet": ProtoNet}  # fmt: skip
    assert set(learner_names()) == set(expected)
    for name, cls in expected.items():
        learner = build_learner(MetaConfig(algorithm=name, inner_lr=0.25, inner_steps=2))
        assert type(learner) is cls
        if name != "protonet":
            assert (learner.inner_lr, learner.inner_steps) == (0.25, 2)


# --- each learner learns: held-out query loss falls after a few outer steps (real MiniLM, real text) -------------


@pytest.fixture(scope="module")
def supersense_episodes() -> tuple[EpisodeSampler, list[Episode]]:
    if not SUPERSENSES.is_file():
        pytest.skip(f"{SUPERSENSES} is absent")
    corpus = load_corpus(SUPERSENSES)
    splits = split_classes(corpus, TaskConfig(split_by="seed", seed=0, val_fraction=0.0, test_fraction=0.3))
    assert not set(splits.train) & set(splits.test)  # meta-train classes disjoint from the evaluation classes
    pool = corpus.by_class()
    train = EpisodeSampler(pool, splits.train, n_way=5, k_shot=2, q_query=3, seed=0)
    held_out = EpisodeSampler(pool, splits.test, n_way=5, k_shot=2, q_query=4, seed=1)
    return train, [held_out.sample(i) for i in range(3)]


@pytest.mark.parametrize("algorithm", learner_names())
def test_each_learner_lowers_held_out_query_loss(algorithm: str, supersense_episodes) -> None:  # noqa: ANN001
    """8 outer Adam steps on meta-train supersenses lower the post-adaptation query loss on held-out supersenses.

    The backbone is the real MiniLM cut to its first 2 layers (pretrained weights, 3x cheaper than all 6)."""
    train, held_out = supersense_episodes
    torch.manual_seed(0)
    encoder, tokenizer = load_encoder(attn_implementation="eager" if algorithm == "maml" else "")
    encoder.backbone.encoder.layer = encoder.backbone.encoder.layer[:2]
    model = attach_lora(encoder, AdapterConfig(r=4))
    task = TextClassificationFamily(model, tokenizer, max_length=24)
    meta = lora_parameters(model)
    learner = build_learner(MetaConfig(algorithm=algorithm, inner_lr=0.5, inner_steps=2))
    extra = learner.bind(meta) if isinstance(learner, MetaSGD) else learner.extra_parameters()

    def held_out_loss() -> float:
        return sum(_query_loss_of(learner, task, meta, ep) for ep in held_out) / len(held_out)

    before = held_out_loss()
    params = {**meta, **extra}
    optimizer = torch.optim.Adam(params.values(), lr=2e-3)
    for step in range(8):
        grads, stats = learner.meta_gradient(task, meta, train.sample(step))
        assert set(grads) == set(params) and stats["query_loss"] > 0
        for k, p in params.items():
            p.grad = grads[k]
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    after = held_out_loss()
    assert after < before - 0.01, f"{algorithm}: held-out query loss {before:.4f} -> {after:.4f}"


@pytest.mark.parametrize("per", ["tensor", "layer"])
def test_metasgd_coarse_rates_have_exact_one_step_gradients(per: str) -> None:
    task, (meta, episode) = TinyFamily(), _tiny_problem(4)
    learner = MetaSGD(inner_lr=0.3, inner_steps=1, per=per)
    extra = learner.bind(meta)
    # per tensor: one scalar for w1, one for w2; per layer: the tiny MLP has no layer stack, so both share "other"
    expected = {LR_PREFIX + "w1", LR_PREFIX + "w2"} if per == "tensor" else {LR_PREFIX + "other"}
    assert set(extra) == expected | {TASK_LR} and all(p.shape == () for p in extra.values())
    with torch.no_grad():
        for i, p in enumerate(extra.values()):
            p.fill_(0.2 + 0.1 * i)
    grads, _ = learner.meta_gradient(task, meta, episode)
    support, query = task.batches(episode)
    fast = {k: v.detach().requires_grad_(True) for k, v in task.init_fast_weights(meta, support).items()}
    g0 = dict(zip(fast, torch.autograd.grad(task.loss(fast, support), list(fast.values())), strict=True))
    alphas = {k: p.detach().clone().requires_grad_(True) for k, p in extra.items()}
    rate = {k: alphas[(LR_PREFIX + k) if per == "tensor" else LR_PREFIX + "other"] if k in meta else alphas[TASK_LR]
            for k in fast}  # fmt: skip
    theta1 = {k: fast[k].detach() - rate[k] * g0[k] for k in fast}
    ref = dict(zip(alphas, torch.autograd.grad(task.loss(theta1, query), list(alphas.values())), strict=True))
    for k in alphas:
        torch.testing.assert_close(grads[k], ref[k], rtol=1e-10, atol=1e-12)


def test_metasgd_per_layer_names_and_own_outer_lr_move_the_rates(tmp_path: Path) -> None:
    from safetensors.torch import load_file

    from metanlp.algorithms.metasgd import lr_name
    from metanlp.core.config import ConfigError
    from metanlp.core.recipe_loading import load_recipe
    from metanlp.families.text_classification.recipes import meta_train

    assert lr_name("base_model.model.encoder.layer.4.attention.self.query.lora_B.default.weight", "layer") == (
        LR_PREFIX + "layer4")
    assert lr_name("base_model.model.model.layers.16.self_attn.q_proj.lora_A.default.weight", "layer") == (
        LR_PREFIX + "layer16")
    with pytest.raises(ConfigError, match="meta.inner_lr_per must be element, tensor or layer, got 'row'"):
        MetaConfig(inner_lr_per="row")
    root = Path(__file__).resolve().parents[2]
    runs = {}
    for outer in (0.0, 0.05):  # 0 = meta.outer_lr (1e-3): the rates barely move; 0.05: they do
        cfg = load_recipe(root / "recipes" / "text_classification" / "text_meta_train.yaml", [
            "model.name=tiny-random-bert", "run.progress=false", f"run.output_dir={tmp_path / str(outer)}",
            "meta.algorithm=metasgd", "meta.inner_lr_per=layer", f"meta.inner_lr_outer_lr={outer}",
            "adapter.layers=[]", "task.n_way=3", "meta.inner_steps=2", "meta.outer_steps=3", "meta.eval_every=0",
            "meta.save_every=0", "eval.episodes=0"])  # fmt: skip
        meta_train.run(cfg)
        runs[outer] = load_file(str(tmp_path / str(outer) / "adapter" / "learner.safetensors"))
    rates = runs[0.05]
    assert set(rates) == {LR_PREFIX + "layer0", LR_PREFIX + "layer1", TASK_LR}  # tiny-random-bert: 2 layers
    moved = {k: abs(float(v) - 0.5) for k, v in rates.items()}
    slow = {k: abs(float(v) - 0.5) for k, v in runs[0.0].items()}
    assert max(slow.values()) < 0.004 < min(moved.values())  # Adam moves a parameter ~lr per step
