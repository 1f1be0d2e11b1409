"""Learning curves of a meta-training run: query loss and meta-val accuracy per outer step, from ``log.jsonl``.

``metanlp meta-train`` appends one JSON object per outer step to ``RUN_DIR/log.jsonl``:
``{"step", "query_loss"}``, plus ``"val_accuracy"`` or ``"val_chrf"`` (and ``"val_ci95"``) on meta-validation steps.
:func:`plot_curves` draws them with matplotlib's Agg canvas (no display needed) into ``RUN_DIR/curves.png``.
"""

from __future__ import annotations

import io
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["LOG_FILE", "PLOT_FILE", "moving_average", "plot_curves", "read_log", "val_ylim"]

log = logging.getLogger(__name__)

#: Per-step metrics written by the meta-training loop, inside the run folder.
LOG_FILE = "log.jsonl"
#: The figure :func:`plot_curves` writes, inside the run folder.
PLOT_FILE = "curves.png"


def read_log(run_dir: str | Path) -> list[dict[str, Any]]:
    """The events of ``run_dir/log.jsonl``, in file order.

    A truncated last line (a run killed while writing it, or a live run) is skipped with a warning.

    Raises:
        FileNotFoundError: ``run_dir`` or its ``log.jsonl`` is missing (the message names the path).
        ValueError: a line other than the last is not a JSON object with ``step`` and ``query_loss``, or the log
            has no step yet (the message names the file and line number).
    """
    run = Path(run_dir)
    path = run / LOG_FILE
    if not path.is_file():
        what = "does not exist" if not run.exists() else f"has no {LOG_FILE}"
        raise FileNotFoundError(
            f"{run} {what}: give the run.output_dir of a `metanlp meta-train` run (it writes {LOG_FILE} per step)"
        )
    lines = path.read_text(encoding="utf-8").splitlines()
    events = []
    for i, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            event = json.loads(line)
            if not isinstance(event, dict) or "step" not in event or "query_loss" not in event:
                raise ValueError("needs 'step' and 'query_loss'")
        except ValueError as e:
            if i == len(lines):
                log.warning("%s:%d is incomplete (run killed or still writing); skipped", path, i)
                continue
            raise ValueError(f"{path}:{i}: not a meta-training log line ({e}): {line[:80]!r}") from e
        events.append(event)
    if not events:
        raise ValueError(f"{path} has no outer step yet: wait for the first step of the run")
    return events


def moving_average(values: list[float], window: int) -> list[float]:
    """Trailing mean over the last ``window`` values (fewer at the start); same length as ``values``.

    Raises:
        ValueError: ``window`` < 1.

    Example:
        >>> moving_average([1.0, 3.0, 5.0, 7.0], window=2)
        [1.0, 2.0, 4.0, 6.0]
    """
    if window < 1:
        raise ValueError(f"moving-average window must be >= 1, got {window}")
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def val_ylim(metric: str, highs: list[float]) -> tuple[float, float]:
    """Y range of the meta-val panel: ``(0, 100)`` for accuracy (%); for chrF (0-100, but a few-shot curve sits low)
    ``(0, 1.15 * the highest point)``, rounded up to a multiple of 5 (at least 5), so a curve at 10-20 chrF is not
    flattened against a 0-100 axis.

    Args:
        metric: ``accuracy`` or ``chrf``.
        highs: the highest values drawn (means + CI, reference lines), in the panel's units.

    Example:
        >>> val_ylim("chrf", [12.0, 17.5]), val_ylim("accuracy", [40.0])
        ((0.0, 25.0), (0.0, 100.0))
    """
    if metric == "accuracy" or not highs:
        return 0.0, 100.0
    top = 1.15 * max(highs)
    return 0.0, float(max(5.0, min(100.0, 5.0 * -(-top // 5))))


def plot_curves(
    run_dir: str | Path,
    out: str | Path | None = None,
    window: int = 10,
    dpi: int = 120,
    baselines: dict[str, float] | None = None,
) -> Path:
    """Draw meta-train query loss (raw and moving average) and meta-val accuracy (or chrF) against the outer step.

    Args:
        run_dir: a ``metanlp meta-train`` output folder (``run.output_dir``).
        out: PNG path; default ``run_dir/curves.png``. Written atomically (temporary file, then rename).
        window: outer steps in the loss moving average.
        dpi: resolution of the PNG (dots per inch; the figure is 11 x 4 inches).
        baselines: ``{label: value}`` drawn as dashed horizontal lines on the meta-val panel, in its units (accuracy
            in %, chrF 0-100), e.g. the meta-val chrF of the pretrained backbone (no meta-training) on the same
            episodes.

    Returns:
        The path of the PNG.

    Raises:
        FileNotFoundError: no ``log.jsonl`` in ``run_dir``.
        ValueError: ``log.jsonl`` is malformed or empty, or ``window`` < 1.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    events = read_log(run_dir)
    steps = [e["step"] for e in events]
    losses = [float(e["query_loss"]) for e in events]
    metric = next((m for m in ("accuracy", "chrf") if any(f"val_{m}" in e for e in events)), "accuracy")
    val = [e for e in events if f"val_{metric}" in e]
    scale = 100.0 if metric == "accuracy" else 1.0  # accuracy is a fraction; chrF is already 0-100
    out_path = Path(out) if out is not None else Path(run_dir) / PLOT_FILE

    fig = Figure(figsize=(11, 4), layout="constrained")
    FigureCanvasAgg(fig)
    ax_loss, ax_acc = fig.subplots(1, 2)
    ax_loss.plot(steps, losses, color="tab:blue", alpha=0.3, linewidth=1, label="query loss")
    ax_loss.plot(steps, moving_average(losses, window), color="tab:blue", linewidth=2,
                 label=f"moving average ({window} steps)")  # fmt: skip
    ax_loss.set(xlabel="outer step", ylabel="query loss (cross-entropy)", title="meta-train query loss")
    ax_loss.grid(alpha=0.3)
    ax_loss.legend()
    highs = list((baselines or {}).values())
    for i, (label, value) in enumerate((baselines or {}).items()):
        ax_acc.axhline(value, color=f"C{i + 3}", linestyle="--", linewidth=1.5, label=label)
    if val:
        acc = [scale * float(e[f"val_{metric}"]) for e in val]
        ci = [scale * float(e.get("val_ci95", 0.0)) for e in val]
        highs += [a + c for a, c in zip(acc, ci, strict=True)]
        ax_acc.errorbar([e["step"] for e in val], acc, yerr=ci, color="tab:green", marker="o", capsize=3,
                        label="mean ± 95% CI over episodes")  # fmt: skip
        ax_acc.legend(loc="lower right")
    else:
        ax_acc.text(0.5, 0.5, "no meta-validation in this run\n(meta.eval_every = 0)", ha="center", va="center",
                    transform=ax_acc.transAxes, color="gray")  # fmt: skip
    ax_acc.set(
        xlabel="outer step",
        ylabel=f"{metric} (%)" if metric == "accuracy" else "chrF",
        title=f"meta-val {metric}",
        xlim=ax_loss.get_xlim(),
        ylim=val_ylim(metric, highs),
    )
    ax_acc.grid(alpha=0.3)
    fig.suptitle(f"{Path(run_dir).resolve().name}: {len(steps)} outer steps")

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out_path.parent, prefix=f".{out_path.name}.", suffix=".tmp")
    with os.fdopen(fd, "wb") as f:
        f.write(buf.getvalue())
    os.replace(tmp, out_path)
    log.info("wrote %s", out_path)
    return out_path
