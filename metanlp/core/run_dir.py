"""Run folders: the resolved recipe, versions and git commit written next to a run's outputs."""

from __future__ import annotations

import platform
import subprocess
from pathlib import Path
from typing import Any

from metanlp.core.files import write_json_atomic
from metanlp.core.recipe_loading import recipe_to_yaml

__all__ = ["git_commit", "prepare_run_dir"]


def git_commit() -> str:
    try:
        here = Path(__file__).resolve().parent
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        return out.stdout.strip() if out.returncode == 0 else ""
    except (OSError, subprocess.SubprocessError):
        return ""


def prepare_run_dir(cfg: Any, recipe_name: str) -> Path:
    """Create ``run.output_dir`` and write the resolved ``recipe.yaml`` and ``run_info.json`` (versions, commit)."""
    import importlib.metadata as md

    out = Path(cfg.run.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "recipe.yaml").write_text(recipe_to_yaml(cfg), encoding="utf-8")
    versions = {}
    for pkg in ("metanlp", "torch", "transformers", "peft", "accelerate"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            versions[pkg] = "not installed"
    info = {"recipe": recipe_name, "versions": versions, "git_commit": git_commit(),
            "python": platform.python_version(), "machine": platform.machine(),
            "threads": _torch_threads()}  # fmt: skip
    write_json_atomic(out / "run_info.json", info)
    return out


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()
