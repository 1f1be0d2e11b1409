"""Kill a meta-training run with SIGKILL, resume it with the same command, get the uninterrupted run's adapter.

Also: a half-written checkpoint (``checkpoints/last.tmp`` left by a kill during ``save_state``) is ignored, and a
kill between the two renames of a checkpoint save (``last`` moved to ``last.old``, new one not yet in place) resumes
from ``last.old``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

STEPS = 30
OVERRIDES = [
    "model.name=tiny-random-bert",
    "task.n_way=5",
    "meta.meta_batch_size=2",
    "meta.inner_steps=2",
    f"meta.outer_steps={STEPS}",
    "meta.save_every=1",
    "meta.eval_every=0",
    "eval.episodes=0",
    "run.progress=false",
]


def command(root: Path, out: Path) -> list[str]:
    """``python -m metanlp meta-train`` on the tiny model, writing to ``out``."""
    cmd = [sys.executable, "-m", "metanlp", "meta-train",
           str(root / "recipes" / "text_classification" / "text_meta_train.yaml")]
    for o in [*OVERRIDES, f"run.output_dir={out}"]:
        cmd += ["--set", o]
    return cmd


def start(root: Path, out: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    env["PYTHONPATH"] = os.pathsep.join([str(root), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return subprocess.Popen(command(root, out), cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)  # fmt: skip


def finish(proc: subprocess.Popen, what: str) -> str:
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, f"{what} failed (exit {proc.returncode}):\n{out[-4000:]}"
    return out


def log_steps(out: Path) -> list[int]:
    path = out / "log.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line)["step"] for line in path.read_text().splitlines() if line.endswith("}")]


def kill_mid_run(proc: subprocess.Popen, out: Path, after_steps: int = 4) -> int:
    """SIGKILL ``proc`` once ``checkpoints/last`` exists and ``after_steps`` outer steps are logged; the steps done."""
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if (out / "checkpoints" / "last").is_dir() and len(log_steps(out)) >= after_steps:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return len(log_steps(out))
        time.sleep(0.01)
    proc.kill()
    pytest.fail(
        f"the run ended (exit {proc.poll()}) before it could be killed mid-run: {proc.communicate()[0][-2000:]}"
    )


def test_resume_after_sigkill_gives_the_uninterrupted_adapter(root: Path, tmp_path: Path) -> None:
    ref, killed = tmp_path / "ref", tmp_path / "killed"
    ref.mkdir()
    (ref / "log.jsonl").write_text('{"step": 7, "query_loss": 9.0}\n')  # a run killed before its first checkpoint
    p_ref, p_killed = start(root, ref), start(root, killed)
    done = kill_mid_run(p_killed, killed)
    finish(p_ref, "uninterrupted run")
    assert 0 < done < STEPS and not (killed / "adapter").exists(), "the run was not stopped in the middle"
    assert log_steps(ref) == list(range(1, STEPS + 1)), "a fresh start must not append to a stale log.jsonl"

    # killed between the two renames of a save (last -> last.old done, last.tmp -> last not yet), with a half-written
    # last.tmp as a kill during save_state leaves it: resume must recover last.old and ignore last.tmp
    broken = tmp_path / "broken"
    shutil.copytree(killed, broken)
    ckpts = broken / "checkpoints"
    shutil.rmtree(ckpts / "last.old", ignore_errors=True)  # the kill may have left one (after a save's 2nd rename)
    os.replace(ckpts / "last", ckpts / "last.old")
    shutil.rmtree(ckpts / "last.tmp", ignore_errors=True)
    (ckpts / "last.tmp").mkdir()
    (ckpts / "last.tmp" / "meta_params.safetensors").write_bytes(b"\x08\x00\x00")  # truncated
    (ckpts / "last.tmp" / "custom_checkpoint_0.pkl").write_bytes(b"garbage")

    procs = {d: start(root, d) for d in (killed, broken)}
    for d, p in procs.items():
        resumed = re.search(r"resumed from \S+ at outer step (\d+)", finish(p, f"resume of {d.name}"))
        assert resumed and 0 < int(resumed.group(1)) <= done, f"{d.name} did not resume from its checkpoint"
    reference = (ref / "adapter" / "adapter_model.safetensors").read_bytes()
    ref_log = (ref / "log.jsonl").read_text()
    for d in procs:
        assert (d / "adapter" / "adapter_model.safetensors").read_bytes() == reference, d.name
        assert (d / "checkpoints" / "last" / "meta_params.safetensors").read_bytes() == (
            ref / "checkpoints" / "last" / "meta_params.safetensors"
        ).read_bytes(), d.name
        assert (d / "log.jsonl").read_text() == ref_log, f"{d.name}: log.jsonl differs from the uninterrupted run"
        assert json.loads((d / "metrics.json").read_text())["meta_train"]["steps"] == STEPS
        assert not (d / "checkpoints" / "last.old").exists()
    assert not (ckpts / "last.tmp").exists(), "the next save should clear a stale last.tmp"


def test_checkpoint_save_over_a_stale_last_old(tmp_path: Path) -> None:
    """A kill after a save's second rename leaves ``last`` and ``last.old``; the next save must still succeed."""
    import torch
    from accelerate import Accelerator

    from metanlp.core.meta_train import MetaState, _save_checkpoint

    state = MetaState({"w": torch.nn.Parameter(torch.zeros(3))})
    accelerator = Accelerator(cpu=True)
    accelerator.register_for_checkpointing(state)
    last = tmp_path / "checkpoints" / "last"
    _save_checkpoint(accelerator, state, last)
    shutil.copytree(last, last.with_name("last.old"))  # the stale folder a kill leaves behind
    state.params["w"].data.fill_(2.0)
    _save_checkpoint(accelerator, state, last)
    assert not last.with_name("last.old").exists()
    from safetensors.torch import load_file

    assert torch.equal(load_file(str(last / "meta_params.safetensors"))["w"], torch.full((3,), 2.0))
