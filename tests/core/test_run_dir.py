"""Run folders written as a unit (metanlp.core.run_dir): staging, --overwrite, the meta-train resume rule."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from metanlp.core.config import ConfigError
from metanlp.core.recipe_loading import load_recipe, recipe_to_yaml
from metanlp.core.run_dir import check_output_dir, staged_run


def hashes(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}  # fmt: skip


def cfg_for(out: Path, *extra: str):  # noqa: ANN201
    return load_recipe(None, [f"run.output_dir={out}", *extra])


def old_run(out: Path) -> dict[str, str]:
    (out / "adapter").mkdir(parents=True)
    (out / "adapter" / "adapter_model.safetensors").write_bytes(b"old weights")
    (out / "metrics.json").write_text("{}")
    return hashes(out)


def test_staged_run_publishes_only_when_complete(tmp_path: Path) -> None:
    out = tmp_path / "run"
    before = old_run(out)
    cfg = cfg_for(out, "run.overwrite=true")
    with pytest.raises(RuntimeError, match="killed"), staged_run(cfg, "adapt") as tmp:
        (tmp / "metrics.json").write_text('{"new": 1}')
        raise RuntimeError("killed")
    assert hashes(out) == before and [p.name for p in tmp_path.iterdir()] == ["run"]
    with staged_run(cfg, "adapt") as tmp:
        (tmp / "metrics.json").write_text('{"new": 1}')
    assert (out / "metrics.json").read_text() == '{"new": 1}' and (out / "recipe.yaml").is_file()
    previous = [p for p in tmp_path.iterdir() if p.name.startswith("run.previous-")]
    assert len(previous) == 1 and hashes(previous[0]) == before


def test_non_empty_output_dir_is_refused_without_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "run"
    before = old_run(out)
    with pytest.raises(FileExistsError, match=r"already holds a run .*--overwrite"):
        check_output_dir(cfg_for(out), "adapt")
    assert check_output_dir(cfg_for(out, "run.overwrite=true"), "adapt") == "overwrite"
    assert check_output_dir(cfg_for(tmp_path / "new"), "adapt") == "fresh"
    assert hashes(out) == before


def test_a_run_never_writes_into_its_own_init(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="lies inside run.output_dir.*replace its own init"):
        check_output_dir(cfg_for(tmp_path, f"adapter.init={tmp_path / 'adapter'}", "run.overwrite=true"), "adapt")


def test_meta_train_resume_rule(tmp_path: Path) -> None:
    out = tmp_path / "run"
    (out / "checkpoints" / "last").mkdir(parents=True)
    (out / "checkpoints" / "recipe.yaml").write_text(recipe_to_yaml(cfg_for(out)))
    before = hashes(out)
    assert check_output_dir(cfg_for(out, "meta.outer_steps=500"), "meta_train") == "resume"
    with pytest.raises(ConfigError, match=r"checkpoint made with adapter.r=8, but this recipe has adapter.r=4"):
        check_output_dir(cfg_for(out, "adapter.r=4"), "meta_train")
    with pytest.raises(ConfigError, match="meta.algorithm"):
        check_output_dir(cfg_for(out, "meta.algorithm=reptile"), "meta_train")
    (out / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="files no meta-train run writes"):
        check_output_dir(cfg_for(out), "meta_train")
    (out / "notes.txt").unlink()
    assert hashes(out) == before
