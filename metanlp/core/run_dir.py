"""Run folders written as a unit: a run never destroys what it was given.

The rule, for ``run.output_dir`` = ``D``:

- ``adapt`` and ``evaluate`` (and ``new_language_pair``) work in a hidden staging sibling ``.D.tmp-<pid>-<random>``
  and rename it to ``D`` only when everything (adapter, metrics, predictions, ``recipe.yaml``, ``run_info.json``) is
  written. A failed or killed run leaves ``D`` exactly as it was. A non-empty ``D`` is refused unless
  ``run.overwrite`` (``--overwrite``) is set; then the previous run is kept beside it as ``D.previous-<time>``.
- ``meta-train`` keeps its resume state (``checkpoints/last``, ``log.jsonl``) in ``D`` while it trains, so a killed
  run resumes. Rerunning into ``D`` resumes when ``D`` holds only what a meta-train run writes and its checkpoint
  was made with the same shape (``model.name``, ``task.family``, ``adapter.r/alpha/target_modules/layers``,
  ``meta.algorithm``); a finished run is continued only when its recipe differs in nothing but
  :data:`CONTINUABLE` keys (e.g. a larger ``meta.outer_steps``). Anything else (unrelated files, a finished run of
  another recipe, another adapter shape) is refused with one line, unless ``--overwrite``: the old folder is then
  moved aside to ``D.previous-<time>`` before training starts. The finished outputs (``adapter/``,
  ``metrics.json``, ``recipe.yaml``, ``run_info.json``) are staged and swapped in together at the end.
- No run writes into its own ``adapter.init``: an init inside ``D`` is refused, ``--overwrite`` or not.

Every check here runs before any model loads (:func:`check_output_dir`, called by ``metanlp validate`` too).
"""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from metanlp.core.config import ConfigError
from metanlp.core.files import exchange_paths, write_json_atomic, write_text_atomic
from metanlp.core.recipe_loading import recipe_to_yaml

__all__ = [
    "CONTINUABLE",
    "SHAPE_KEYS",
    "check_output_dir",
    "git_commit",
    "staged_run",
    "start_meta_run",
    "write_run_info",
]

#: What a meta-train run writes into its folder (anything else there is "unrelated files").
META_TRAIN_ENTRIES = {"checkpoints", "log.jsonl", "recipe.yaml", "run_info.json", "adapter", "metrics.json",
                      "multitask_adapter", "meta_train", "meta_train_translation"}  # fmt: skip
#: Recipe keys a checkpoint's meta-parameters depend on: resuming with another value cannot work.
SHAPE_KEYS = ("model.name", "task.family", "adapter.r", "adapter.alpha", "adapter.target_modules", "adapter.layers",
              "meta.algorithm")  # fmt: skip
#: Keys (or sections, ending in ".") in which a finished meta-train run may differ and still be continued.
CONTINUABLE = ("meta.outer_steps", "meta.eval_every", "meta.save_every", "meta.val_episodes", "eval.", "hub.",
               "run.progress", "run.overwrite", "run.cache_dir")  # fmt: skip
#: The recipe of the run whose checkpoints are in ``checkpoints/`` (written when a fresh meta-train run starts).
CHECKPOINT_RECIPE = "recipe.yaml"
_MARKER = ".metanlp-staging"


def git_commit() -> str:
    """The git commit of the metanlp source tree ("" outside a checkout)."""
    try:
        here = Path(__file__).resolve().parent
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        return out.stdout.strip() if out.returncode == 0 else ""
    except (OSError, subprocess.SubprocessError):
        return ""


def write_run_info(folder: Path, cfg: Any, recipe_name: str) -> None:
    """Write the resolved ``recipe.yaml`` and ``run_info.json`` (versions, commit) into ``folder``."""
    import importlib.metadata as md

    write_text_atomic(folder / "recipe.yaml", recipe_to_yaml(cfg))
    versions = {}
    for pkg in ("metanlp", "torch", "transformers", "peft", "accelerate"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            versions[pkg] = "not installed"
    info = {"recipe": recipe_name, "versions": versions, "git_commit": git_commit(),
            "python": platform.python_version(), "machine": platform.machine(),
            "threads": _torch_threads()}  # fmt: skip
    write_json_atomic(folder / "run_info.json", info)


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def _flat(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, dict):
        out: dict[str, Any] = {}
        for k, v in tree.items():
            out.update(_flat(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: tree}


def _recipe_values(cfg: Any) -> dict[str, Any]:
    return _flat(yaml.safe_load(recipe_to_yaml(cfg)) or {})


def _read_recipe(path: Path) -> dict[str, Any] | None:
    try:
        return _flat(yaml.safe_load(path.read_text(encoding="utf-8")) or {})
    except (OSError, yaml.YAMLError):
        return None


def _entries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def _refuse(out: Path, why: str) -> FileExistsError:
    return FileExistsError(f"run.output_dir={out} {why}: choose another run.output_dir, or pass --overwrite "
                           f"(run.overwrite=true) to replace it (the old folder is kept as "
                           f"{out.name}.previous-<time>)")  # fmt: skip


def _check_init_outside(cfg: Any, out: Path) -> None:
    for key in ("init", "multitask_init"):
        init = getattr(cfg.adapter, key, "")
        if not init:
            continue
        p, d = Path(init).expanduser().resolve(), out.expanduser().resolve()
        if p == d or d in p.parents or p in d.parents:
            raise ConfigError(f"adapter.{key}={init} lies inside run.output_dir={out}: this run would replace its own "
                              f"init; set run.output_dir to another folder")  # fmt: skip


def check_output_dir(cfg: Any, verb: str) -> str:
    """Decide what a run of ``verb`` may do with ``run.output_dir`` (see the module docstring); writes nothing.

    Args:
        cfg: the recipe.
        verb: ``meta_train`` (resumable) or any other recipe verb (``adapt``, ``evaluate``).

    Returns:
        ``"fresh"`` (missing or empty), ``"overwrite"`` (replaced, the old one kept aside) or ``"resume"``
        (meta-train continues the checkpoint in it).

    Raises:
        FileExistsError: the folder holds something this run may not replace without ``--overwrite``.
        ConfigError: ``adapter.init`` lies inside it, or its checkpoint has another adapter shape.
    """
    out = Path(cfg.run.output_dir)
    _check_init_outside(cfg, out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"run.output_dir={out} is a file, not a folder")
    entries = [e for e in _entries(out) if not e.startswith(".")]
    overwrite = bool(getattr(cfg.run, "overwrite", False))
    if not entries:
        return "fresh"
    if verb != "meta_train":
        if overwrite:
            return "overwrite"
        raise _refuse(out, f"already holds a run ({', '.join(entries[:4])})")
    unrelated = [e for e in entries if e not in META_TRAIN_ENTRIES]
    if overwrite:
        return "overwrite"
    if unrelated:
        raise _refuse(out, f"holds files no meta-train run writes ({', '.join(unrelated[:4])})")
    ckpt = out / "checkpoints"
    if not (ckpt / "last").is_dir() and not (ckpt / "last.old").is_dir():
        if set(entries) <= {"checkpoints", "log.jsonl", "meta_train", "meta_train_translation"}:
            return "fresh"  # killed before its first checkpoint: nothing to resume or keep
        raise _refuse(out, "holds a meta-train run without a checkpoint to resume from")
    current = _recipe_values(cfg)
    saved = _read_recipe(ckpt / CHECKPOINT_RECIPE) or _read_recipe(out / "recipe.yaml")
    if saved is not None:
        for key in SHAPE_KEYS:
            if key in saved and saved[key] != current.get(key):
                raise ConfigError(
                    f"run.output_dir={out} holds a checkpoint made with {key}={saved[key]!r}, but this recipe has "
                    f"{key}={current.get(key)!r}: resume with --set {key}={saved[key]}, or pass --overwrite to start "
                    f"over (the old run is kept as {out.name}.previous-<time>), or choose another run.output_dir"
                )
    finished = _read_recipe(out / "recipe.yaml") if (out / "metrics.json").is_file() else None
    if finished is not None:
        differ = sorted(k for k in set(finished) | set(current)
                        if finished.get(k) != current.get(k) and not k.startswith(CONTINUABLE))  # fmt: skip
        if differ:
            shown = ", ".join(differ[:4])
            raise _refuse(out, f"holds a finished meta-train run of another recipe (it differs in {shown})")
    return "resume"


def _previous_name(out: Path) -> Path:
    base = out.with_name(f"{out.name}.previous-{time.strftime('%Y%m%d-%H%M%S')}")
    candidate, i = base, 1
    while candidate.exists():
        candidate, i = base.with_name(f"{base.name}-{i}"), i + 1
    return candidate


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _clean_stale(out: Path) -> None:
    """Staging siblings of dead runs: a half-written one is removed; a previous run left there by a kill between
    the swap and its renaming (no staging marker) is moved to ``D.previous-<time>``."""
    for tmp in out.parent.glob(f".{out.name}.tmp-*"):
        try:
            pid = int(tmp.name.rsplit(".tmp-", 1)[1].split("-")[0])
        except ValueError:
            continue
        if _pid_alive(pid) and pid != os.getpid():
            continue
        if (tmp / _MARKER).exists():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            os.replace(tmp, _previous_name(out))


def _link_tree(src: Path, dst: Path) -> None:
    """Hard-link ``src`` (a file or folder) to ``dst``, copying where links are not possible."""

    def link(a: str, b: str) -> None:
        try:
            os.link(a, b)
        except OSError:
            shutil.copy2(a, b)

    if src.is_dir():
        shutil.copytree(src, dst, copy_function=link)
    else:
        link(str(src), str(dst))


def _publish(tmp: Path, out: Path, keep_previous: bool) -> None:
    """Put the complete staging folder ``tmp`` at ``out``; the old ``out`` goes to ``out.previous-<time>`` (or is
    deleted when ``keep_previous`` is False)."""
    (tmp / _MARKER).unlink(missing_ok=True)
    if not out.exists():
        os.replace(tmp, out)
        return
    if exchange_paths(tmp, out):  # one atomic step: out is now the new run, tmp the old one
        old = tmp
    else:  # two renames: a kill between them leaves the old run at a .previous name and the new at tmp
        old = _previous_name(out)
        os.replace(out, old)
        os.replace(tmp, out)
    if keep_previous:
        if old == tmp:
            os.replace(tmp, _previous_name(out))
    else:
        shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def staged_run(cfg: Any, recipe_name: str, resume: bool = False) -> Iterator[Path]:
    """A staging folder for a run's outputs, published to ``run.output_dir`` as a unit when the block succeeds.

    On success ``recipe.yaml`` and ``run_info.json`` are added and the folder replaces ``run.output_dir`` (the old one
    is kept as ``<dir>.previous-<time>``; for a meta-train run, ``resume=True``: the resume state already in
    ``run.output_dir`` (checkpoints, log) is carried over and the old outputs are dropped). On any error the staging
    folder is removed and ``run.output_dir`` is untouched.

    Args:
        cfg: the recipe (``run.output_dir``).
        recipe_name: recorded in ``run_info.json``.
        resume: meta-train: carry over what ``run.output_dir`` holds that the block did not write.
    """
    out = Path(cfg.run.output_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    _clean_stale(out)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp-{os.getpid()}-"))
    (tmp / _MARKER).touch()
    try:
        yield tmp
        write_run_info(tmp, cfg, recipe_name)
        if resume:
            for name in _entries(out):
                if not (tmp / name).exists():
                    _link_tree(out / name, tmp / name)
        _publish(tmp, out, keep_previous=not resume)
    except BaseException:
        if (tmp / _MARKER).exists():
            shutil.rmtree(tmp, ignore_errors=True)
        raise


def start_meta_run(cfg: Any) -> Path:
    """Prepare ``run.output_dir`` for meta-training (main process only) and return it.

    Applies :func:`check_output_dir`: ``overwrite`` moves the old folder aside to ``<dir>.previous-<time>``; a fresh
    run records its recipe in ``checkpoints/recipe.yaml`` (what a later resume is checked against); ``resume``
    writes nothing.
    """
    out = Path(cfg.run.output_dir)
    plan = check_output_dir(cfg, "meta_train")
    _clean_stale(out)
    if plan == "overwrite":
        os.replace(out, _previous_name(out))
    if plan != "resume":
        write_text_atomic(out / "checkpoints" / CHECKPOINT_RECIPE, recipe_to_yaml(cfg))
    return out
