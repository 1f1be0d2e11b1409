"""2 CPU processes reach the same meta-parameters as 1 process on the same meta-batches and seed.

Launched like accelerate's own tests/test_multidevice.py: ``accelerate launch`` in a subprocess. On one machine
``accelerate launch --cpu --num_processes 2`` starts a single process (huggingface/accelerate#2741), so the CPU form
that really starts two (torchrun underneath, gloo backend) is ``ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu``.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

pytestmark = pytest.mark.multiprocess

#: tiny model, 4 tasks per outer step (2 per process), 3 outer steps, no evaluation: ~20 s per run on 2 busy cores.
OVERRIDES = [
    "model.name=tiny-random-bert",
    "task.n_way=5",
    "meta.meta_batch_size=4",
    "meta.inner_steps=2",
    "meta.outer_steps=3",
    "meta.save_every=3",
    "meta.eval_every=0",
    "eval.episodes=0",
    "run.progress=false",
]


def free_port() -> int:
    """A TCP port nobody listens on right now (for the launcher's rendezvous)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def meta_train_cmd(root: Path, out: Path) -> list[str]:
    """``metanlp meta-train recipes/text_classification/text_meta_train.yaml`` arguments with the tiny overrides and
    ``out``."""
    args = ["meta-train", str(root / "recipes" / "text_classification" / "text_meta_train.yaml")]
    for o in [*OVERRIDES, f"run.output_dir={out}"]:
        args += ["--set", o]
    return args


def child_env(root: Path) -> dict[str, str]:
    """This environment plus the repository on ``PYTHONPATH`` and one thread per process (as accelerate's tests)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    env["PYTHONPATH"] = os.pathsep.join([str(root), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def finish(proc: subprocess.Popen, what: str) -> None:
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, f"{what} failed (exit {proc.returncode}):\n{out[-4000:]}"


def test_two_cpu_processes_match_one_process(root: Path, tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    single = [sys.executable, "-m", "metanlp", *meta_train_cmd(root, one)]
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
              "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
              "--main_process_port", str(free_port()), "-m", "metanlp", *meta_train_cmd(root, two)]  # fmt: skip
    env = child_env(root)
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.STDOUT, "text": True, "cwd": root}
    # both runs at once: the machine has 2 cores and each run is mostly start-up time
    p1 = subprocess.Popen(single, env=env, **pipes)
    p2 = subprocess.Popen(launch, env={**env, "ACCELERATE_USE_CPU": "1"}, **pipes)
    finish(p1, "1-process run")
    finish(p2, "2-process run")

    assert json.loads((one / "metrics.json").read_text())["processes"] == 1
    assert json.loads((two / "metrics.json").read_text())["processes"] == 2  # really two processes, gloo all-reduce
    for name in ("adapter/adapter_model.safetensors", "checkpoints/last/meta_params.safetensors"):
        a, b = load_file(str(one / name)), load_file(str(two / name))
        assert a.keys() == b.keys() and any("lora_B" in k for k in a), name
        init_b = [k for k in a if "lora_B" in k]
        assert any(a[k].abs().max() > 0 for k in init_b), "lora_B never moved: no outer step happened"
        for k in a:
            assert torch.allclose(a[k], b[k], rtol=0, atol=1e-6), f"{name}:{k} max diff {(a[k] - b[k]).abs().max()}"
    losses = [
        [json.loads(line)["query_loss"] for line in (d / "log.jsonl").read_text().splitlines()] for d in (one, two)
    ]
    assert len(losses[0]) == 3
    assert losses[0] == pytest.approx(losses[1], abs=1e-5)
    # each process wrote its own RNG state: the checkpoint is a real 2-process Accelerate checkpoint
    assert (two / "checkpoints/last/random_states_1.pkl").is_file()


def test_warns_when_accelerate_launch_cpu_starts_one_process(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from types import SimpleNamespace

    from metanlp.core.meta_train import _warn_single_cpu_process

    # what `accelerate launch --num_processes 2 --cpu` gives its single child
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("ACCELERATE_USE_CPU", "True")
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with caplog.at_level("WARNING", logger="metanlp.core.meta_train"):
        _warn_single_cpu_process(SimpleNamespace(num_processes=1))
    assert "huggingface/accelerate#2741" in caplog.text and "--multi_gpu --num_processes N" in caplog.text
    caplog.clear()
    monkeypatch.setenv("WORLD_SIZE", "2")  # torchrun-style launch: really distributed
    with caplog.at_level("WARNING", logger="metanlp.core.meta_train"):
        _warn_single_cpu_process(SimpleNamespace(num_processes=1))
    assert caplog.text == ""
