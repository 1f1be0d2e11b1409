"""``metanlp plot RUN_DIR``: curves.png from log.jsonl, clear errors for folders that are not meta-train runs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

from metanlp.cli import main
from metanlp.core.plotting import moving_average, plot_curves, read_log, val_ylim

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def write_log(run: Path, steps: int = 40, eval_every: int = 10) -> None:
    """A log.jsonl shaped like the meta-training loop's (query loss every step, meta-val every ``eval_every``)."""
    run.mkdir(parents=True, exist_ok=True)
    lines = []
    for s in range(1, steps + 1):
        event = {"step": s, "query_loss": 2.0 * math.exp(-s / 15) + 0.1 * math.sin(s)}
        if eval_every and s % eval_every == 0:
            event.update(val_accuracy=0.4 + 0.01 * s, val_ci95=0.05)
        lines.append(json.dumps(event))
    (run / "log.jsonl").write_text("\n".join(lines) + "\n")


def test_plot_writes_a_png_of_the_curves(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    write_log(run)
    assert main(["plot", str(run)]) == 0
    png = run / "curves.png"
    assert capsys.readouterr().out.strip() == str(png)
    assert png.read_bytes()[:8] == PNG_SIGNATURE
    image = imread(png)
    assert image.shape[:2] == (4 * 120, 11 * 120)  # 11 x 4 inches at 120 dpi
    assert image[..., :3].std() > 0.05, "the image is blank"
    assert not list(run.glob(".curves.png.*")), "temporary file left behind"


def test_plot_without_meta_validation_and_custom_output(tmp_path: Path) -> None:
    run = tmp_path / "run"
    write_log(run, steps=5, eval_every=0)
    out = plot_curves(run, tmp_path / "figs" / "loss.png", window=3)
    assert out == tmp_path / "figs" / "loss.png" and out.read_bytes()[:8] == PNG_SIGNATURE
    assert not (run / "curves.png").exists()


def test_plot_errors_name_the_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "not_a_run"
    empty.mkdir()
    with pytest.raises(SystemExit) as e:
        main(["plot", str(empty)])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("metanlp: error: ") and f"{empty} has no log.jsonl" in err and "meta-train" in err
    assert err.count("\n") == 1, "one line, no traceback"
    assert not (empty / "curves.png").exists()

    with pytest.raises(SystemExit):
        main(["plot", str(tmp_path / "missing")])
    assert "does not exist" in capsys.readouterr().err


def test_read_log_skips_a_truncated_last_line_but_rejects_a_bad_middle_line(tmp_path: Path) -> None:
    run = tmp_path / "run"
    write_log(run, steps=3, eval_every=0)
    log = run / "log.jsonl"
    log.write_text(log.read_text() + '{"step": 4, "query_lo')  # killed mid-write
    assert [e["step"] for e in read_log(run)] == [1, 2, 3]
    log.write_text('{"step": 1, "query_loss": 1.0}\nnot json\n{"step": 3, "query_loss": 1.0}\n')
    with pytest.raises(ValueError, match=r"log\.jsonl:2: not a meta-training log line"):
        read_log(run)
    log.write_text("")
    with pytest.raises(ValueError, match="no outer step yet"):
        plot_curves(run)


def test_moving_average_matches_a_convolution() -> None:
    rng = np.random.default_rng(0)
    values = rng.normal(size=50).tolist()
    window = 7
    full = np.convolve(values, np.ones(window), mode="full")[: len(values)]
    expected = full / np.minimum(np.arange(1, len(values) + 1), window)
    np.testing.assert_allclose(moving_average(values, window), expected, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="window must be >= 1"):
        moving_average(values, 0)


def test_chrf_axis_fits_the_curve_and_baselines_are_drawn(tmp_path: Path) -> None:
    assert val_ylim("accuracy", [12.0]) == (0.0, 100.0)
    assert val_ylim("chrf", [12.0, 17.5]) == (0.0, 25.0)  # 1.15 * 17.5 = 20.1 -> 25
    assert val_ylim("chrf", [1.0]) == (0.0, 5.0)
    assert val_ylim("chrf", [95.0]) == (0.0, 100.0)
    run = tmp_path / "run"
    run.mkdir()
    events = [{"step": s, "query_loss": 3.0 - 0.01 * s} for s in range(1, 31)]
    for e in events[9::10]:
        e.update(val_chrf=12.0 + e["step"] / 10, val_ci95=1.0, val_bleu=1.0)
    (run / "log.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    plain = imread(plot_curves(run, tmp_path / "plain.png"))
    lines = imread(plot_curves(run, tmp_path / "lines.png", baselines={"pretrained": 13.0, "multi-task": 16.0}))
    right = slice(plain.shape[1] // 2, None)  # the meta-val panel
    assert np.abs(plain[:, right, :3] - lines[:, right, :3]).max() > 0.3, "baselines not drawn"
