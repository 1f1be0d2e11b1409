"""Bad inputs give one line (exit 2, no traceback) before any model loads, and leave what was there unchanged."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ADAPT = ROOT / "recipes" / "text_classification" / "text_new_categories.yaml"


def metanlp(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return subprocess.run([sys.executable, "-m", "metanlp", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)  # fmt: skip


def hashes(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}  # fmt: skip


def one_line_error(proc: subprocess.CompletedProcess, pattern: str) -> None:
    import re

    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    lines = [x for x in proc.stderr.splitlines() if x.startswith("metanlp: error:")]
    assert len(lines) == 1 and re.search(pattern, lines[0]), proc.stderr[-3000:]


def write_support(path: Path, body: bytes) -> Path:
    path.write_bytes(body)
    return path


GOOD = b"text,label\n" + b"".join(f"text {i} of {c},{c}\n".encode() for c in ("a", "b") for i in range(5))


@pytest.mark.parametrize(
    ("body", "pattern"),
    [
        (GOOD.replace(b"text 1 of a", b"caf\xe9"), r"not UTF-8 \(byte 0xe9 at line \d+.*iconv"),
        (b"text,label\n", r"only a header, no rows"),
        (b"text,label,label\n" + GOOD.split(b"\n", 1)[1].replace(b"\n", b",x\n"),
         r"names column\(s\) \['label'\] twice"),
        (GOOD.replace(b",a\n", b",a \n", 1), r"label 'a ' with surrounding whitespace"),
    ],
    ids=["latin1", "header_only", "duplicated_header", "label_space"],
)
def test_bad_support_file_is_one_line_and_nothing_is_written(tmp_path: Path, body: bytes, pattern: str) -> None:
    support = write_support(tmp_path / "support.csv", body)
    out = tmp_path / "run"
    (out / "adapter").mkdir(parents=True)
    (out / "metrics.json").write_text("{}")
    before = hashes(out)
    for verb in (["validate", "--verb", "adapt"], ["adapt"]):
        proc = metanlp(*verb, str(ADAPT), "--set", f"data.support={support}", "--set", "data.eval=",
                       "--set", "adapter.init=", "--set", f"run.output_dir={out}", "--overwrite")  # fmt: skip
        one_line_error(proc, pattern)
        assert "ERROR" not in proc.stderr
    assert hashes(out) == before and sorted(p.name for p in tmp_path.iterdir()) == ["run", "support.csv"]


def test_validate_refuses_unknown_method_and_bad_values() -> None:
    one_line_error(metanlp("validate", str(ADAPT), "--set", "eval.methods=[centroid,foo]"), r"\['foo'\].*choose from")
    one_line_error(metanlp("validate", str(ADAPT), "--set", "meta.inner_lr=-0.5"), r"meta.inner_lr=-0.5")
    one_line_error(metanlp("validate", str(ADAPT), "--set", "adapt.steps=-5"), r"adapt.steps=-5")


def test_validate_refuses_a_k_the_meta_test_classes_cannot_give_before_any_model_loads() -> None:
    recipe = ROOT / "recipes" / "text_classification" / "text_meta_train.yaml"
    one_line_error(metanlp("validate", str(recipe), "--set", "eval.k_shots=[5,400]"),
                   r"icd10_blocks.jsonl: 0 of \d+ meta-test classes have >= 415 examples \(K = 400\)")  # fmt: skip


def test_second_adapt_into_the_same_folder_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "run"
    (out / "adapter").mkdir(parents=True)
    (out / "adapter" / "adapter_model.safetensors").write_bytes(b"x")
    before = hashes(out)
    one_line_error(metanlp("adapt", str(ADAPT), "--set", "adapter.init=", "--set", f"run.output_dir={out}"),
                   r"already holds a run.*--overwrite")  # fmt: skip
    one_line_error(metanlp("adapt", str(ADAPT), "--set", f"adapter.init={out / 'adapter'}", "--set",
                           f"run.output_dir={out}", "--overwrite"),
                   r"adapter.init=.*incomplete|adapter_config.json is missing|lies inside")  # fmt: skip
    assert hashes(out) == before


def test_predict_names_bad_inputs(tmp_path: Path) -> None:
    (tmp_path / "adapter").mkdir()
    (tmp_path / "adapter" / "adapter_config.json").write_text("{}")
    one_line_error(metanlp("predict", str(tmp_path / "adapter"), "--text", "hi"),
                   r"adapter_model.safetensors is missing")
    one_line_error(metanlp("predict", str(tmp_path / "adapter"), "--text", ""), r"--text #1 is empty")
    one_line_error(metanlp("predict", str(tmp_path / "adapter"), "--file", str(tmp_path / "no.txt")),
                   r"--file not found")
    for bad in ("0", "-1"):
        proc = metanlp("predict", str(tmp_path / "adapter"), "--text", "hi", "--batch-size", bad)
        assert proc.returncode == 2 and "positive" in proc.stderr and "Traceback" not in proc.stderr
