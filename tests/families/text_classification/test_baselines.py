"""metanlp.families.text_classification.baselines: logistic regression on frozen embeddings predicts a real task far
above chance."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from metanlp.core.config import AdapterConfig
from metanlp.families.text_classification.adapter import attach_lora, lora_parameters
from metanlp.families.text_classification.backbone import load_encoder, tiny_encoder
from metanlp.families.text_classification.baselines import frozen_embeddings, logistic_regression_predict
from metanlp.families.text_classification.data import EpisodeSampler, load_corpus
from metanlp.families.text_classification.family import TextClassificationFamily

SUPERSENSES = Path(__file__).resolve().parents[3] / "data" / "wordnet_supersenses" / "wordnet_supersenses.jsonl"


def test_logistic_regression_on_frozen_minilm_beats_chance_by_far() -> None:
    encoder, tokenizer = load_encoder()
    pool = load_corpus(SUPERSENSES).by_class()
    episode = EpisodeSampler(pool, sorted(pool), n_way=8, k_shot=5, q_query=10, seed=1).sample(0)
    task = TextClassificationFamily(attach_lora(encoder, AdapterConfig()), tokenizer, max_length=32)
    support, query = task.batches(episode)
    preds = logistic_regression_predict(task, lora_parameters(task.model), support, query)
    assert preds.shape == query["labels"].shape and preds.dtype == torch.long
    accuracy = float((preds == query["labels"]).float().mean())
    assert accuracy > 0.5, accuracy  # chance is 1/8


def test_predictions_are_classes_of_the_support_and_one_class_is_rejected() -> None:
    enc, tok = tiny_encoder()
    task = TextClassificationFamily(attach_lora(enc, AdapterConfig(r=2)), tok)
    params = lora_parameters(task.model)
    support = task.tokenize(["red car", "blue sky", "green leaf", "red rose", "blue sea", "green tree"],
                            [0, 1, 2, 0, 1, 2])  # fmt: skip
    query = task.tokenize(["red apple", "blue whale", "green frog", "red"])
    preds = logistic_regression_predict(task, params, support, query)
    assert preds.shape == (4,) and set(preds.tolist()) <= {0, 1, 2}
    assert frozen_embeddings(task, params, query, chunk_size=3).shape == (4, 32)
    with pytest.raises(ValueError, match="two classes"):
        logistic_regression_predict(task, params, task.tokenize(["a", "b"], [0, 0]), query)
