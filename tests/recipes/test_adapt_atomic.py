"""``adapt`` fails at each write step and leaves the old complete run; without data.eval it works end to end."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import pytest

from metanlp.core import run_dir
from metanlp.core.recipe_loading import load_recipe
from metanlp.families.text_classification.recipes import adapt

ROOT = Path(__file__).resolve().parents[2]


def hashes(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}  # fmt: skip


@pytest.fixture(scope="module")
def task(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("task")
    rows = list(csv.reader((ROOT / "data/examples/new_categories/support.csv").open(encoding="utf-8")))[1:]
    labels = sorted({r[1] for r in rows})[:3]
    keep = [r for r in rows if r[1] in labels]
    for name, part in (("support.csv", keep), ("eval.csv", keep[::2])):
        with (d / name).open("w", newline="", encoding="utf-8") as f:
            csv.writer(f).writerows([["text", "label"], *part])
    return d


def cfg(task: Path, out: Path, *extra: str):  # noqa: ANN201
    return load_recipe(ROOT / "recipes/text_classification/text_new_categories.yaml", [
        "model.name=tiny-random-bert", "run.progress=false", "adapter.init=", "adapter.multitask_init=",
        "eval.methods=[centroid,finetune]", "adapt.steps=1", f"data.support={task / 'support.csv'}", "data.predict=",
        f"run.output_dir={out}", *extra])  # fmt: skip


@pytest.mark.parametrize("step", ["save_adapter", "write_json_atomic", "write_run_info", "_publish"])
def test_failure_at_each_write_step_keeps_the_old_run(task: Path, tmp_path: Path, step: str,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    out = tmp_path / "run"
    adapt.run(cfg(task, out, "data.eval="))  # data.eval empty: works (issue #11 case 1)
    before = hashes(out)
    module = run_dir if step in ("write_run_info", "_publish") else adapt

    def boom(*a, **k):  # noqa: ANN002, ANN003, ANN202
        raise OSError(f"killed at {step}")

    monkeypatch.setattr(module, step, boom)
    with pytest.raises(OSError, match="killed"):
        adapt.run(cfg(task, out, f"data.eval={task / 'eval.csv'}", "run.overwrite=true"))
    assert hashes(out) == before
    assert [p.name for p in tmp_path.iterdir()] == ["run"]  # no staging folder left behind
    monkeypatch.undo()
    adapt.run(cfg(task, out, f"data.eval={task / 'eval.csv'}", "run.overwrite=true"))
    records = json.loads((out / "metrics.json").read_text())["records"]
    acc = [r for r in records if r["metric"] == "accuracy"]
    assert acc and all(r["interval"] == "bootstrap over examples" and r["ci95"] >= 0 for r in acc)
    meta = json.loads((out / "adapter" / "metanlp.json").read_text())
    assert meta["n_way"] == 3 and meta["dataset"] == str(task / "support.csv")
    assert any(p.name.startswith("run.previous-") for p in tmp_path.iterdir())


def _adapt_cmd(task: Path, out: Path, eval_file: str) -> list[str]:
    import sys

    sets = ["model.name=tiny-random-bert", "run.progress=false", "adapter.init=", "adapter.multitask_init=",
            "eval.methods=[centroid,finetune]", "adapt.steps=3", f"data.support={task / 'support.csv'}",
            "data.predict=", f"data.eval={eval_file}"]  # fmt: skip
    return [sys.executable, "-m", "metanlp", "adapt", "recipes/text_classification/text_new_categories.yaml",
            "--overwrite", *[a for s in sets for a in ("--set", s)], "--set", f"run.output_dir={out}"]  # fmt: skip


@pytest.mark.parametrize("delay_s", [1.0, 2.5, 4.0, 6.0])
def test_sigkill_of_adapt_leaves_the_old_run_or_the_new_one(task: Path, tmp_path: Path, delay_s: float) -> None:
    """A real ``metanlp adapt`` process killed with SIGKILL at several moments: ``run.output_dir`` holds either the
    previous complete run (byte for byte) or the new complete one, never a mix."""
    import signal
    import subprocess
    import time

    out = tmp_path / "run"
    subprocess.run(_adapt_cmd(task, out, ""), cwd=ROOT, check=True, capture_output=True, timeout=300)
    old = hashes(out)
    proc = subprocess.Popen(_adapt_cmd(task, out, str(task / "eval.csv")), cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    time.sleep(delay_s)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    now = hashes(out)
    if now != old:  # the new run landed whole: its metrics score the eval set, and every file of a run is there
        assert {"adapter/adapter_model.safetensors", "metrics.json", "recipe.yaml", "run_info.json"} <= set(now)
        assert json.loads((out / "metrics.json").read_text())["records"], "new run without its eval records"
        assert "eval.csv" in (out / "recipe.yaml").read_text(), "new adapter beside the old recipe"


def test_adapt_reports_what_the_adapter_really_is(task: Path, tmp_path: Path) -> None:
    """Issue #11 case 8: stdout is the table and the output folder (no summary dict), and the model card states the
    real N, the support file and a bootstrap interval, not the recipe defaults."""
    import subprocess

    from metanlp.core.model_card import build_model_card

    out = tmp_path / "run"
    done = subprocess.run(_adapt_cmd(task, out, str(task / "eval.csv")), cwd=ROOT, capture_output=True, text=True,
                          timeout=300, check=True)  # fmt: skip
    printed = done.stdout.strip().splitlines()
    assert printed[-1] == f"outputs: {out}" and not any(line.lstrip().startswith("{") for line in printed)
    card = str(build_model_card(out / "adapter"))
    assert "- N-way: 3" in card and f"- Data: {task / 'support.csv'}" in card
    assert "wordnet_supersenses" not in card and "N-way: 10" not in card
    records = json.loads((out / "metrics.json").read_text())["records"]
    assert {r["interval"] for r in records if r["metric"] == "accuracy"} == {"bootstrap over examples"}
