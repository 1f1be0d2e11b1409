"""Every check of a run's inputs that can be made before a model loads, in one place.

``metanlp validate`` and every recipe verb call :func:`check_inputs`: values beyond the dataclasses' own rules, the
files a recipe names (readable, UTF-8, the right columns), the adapter folders it starts from, and what the run may do
with ``run.output_dir`` (:func:`metanlp.core.run_dir.check_output_dir`). Each problem is one user error naming the
file, key or value and the fix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from metanlp.core import registry
from metanlp.core.config import ConfigError

__all__ = ["RECIPE_VERBS", "check_adapter_folder", "check_inputs"]

#: Recipe verbs (``metanlp <verb>`` with ``-`` as ``_``).
RECIPE_VERBS = ("meta_train", "adapt", "evaluate")


def check_adapter_folder(folder: str | Path, key: str) -> dict:
    """Check that ``folder`` is a complete adapter folder written by metanlp and return its ``metanlp.json``.

    Raises:
        FileNotFoundError: the folder, its ``metanlp.json`` or its peft files are missing (the message names ``key``).
        ValueError: ``metanlp.json`` is not valid JSON.
    """
    from metanlp.core.files import read_metadata

    p = Path(folder).expanduser()
    if not p.is_dir():
        raise FileNotFoundError(f"{key}={folder}: folder not found")
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        if not (p / name).is_file():
            raise FileNotFoundError(f"{key}={folder}: {name} is missing, so it is not a complete adapter folder "
                                    f"(was its run interrupted?); point {key} at a metanlp adapter/")  # fmt: skip
    try:
        return read_metadata(p)
    except FileNotFoundError as e:
        raise FileNotFoundError(f"{key}={folder}: {e}") from e


def check_inputs(cfg: Any, verb: str) -> str:
    """Run every input check of a ``verb`` run of ``cfg`` (core, then the family's own ``checks``); writes nothing.

    Args:
        cfg: the loaded recipe.
        verb: one of :data:`RECIPE_VERBS`.

    Returns:
        What the run will do with ``run.output_dir`` (``fresh``, ``overwrite`` or ``resume``).

    Raises:
        ConfigError, FileNotFoundError, FileExistsError, ValueError: the first problem found (one line).
    """
    from metanlp.core.run_dir import check_output_dir

    if verb not in RECIPE_VERBS:
        raise ConfigError(f"unknown recipe verb {verb!r}; one of {', '.join(RECIPE_VERBS)}")
    if cfg.adapter.init:
        check_adapter_folder(cfg.adapter.init, "adapter.init")
    if cfg.adapter.multitask_init:
        check_adapter_folder(cfg.adapter.multitask_init, "adapter.multitask_init")
    spec = registry.family_spec(cfg.task.family)
    if spec.checks:
        registry.load_object(spec.checks)(cfg, verb)
    return check_output_dir(cfg, verb)
