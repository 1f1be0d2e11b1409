"""``metanlp plot RUN_DIR``: learning curves of a meta-training run (query loss, meta-val accuracy) as a PNG."""

from __future__ import annotations

import argparse
import sys

HELP = "plot meta-train query loss and meta-val accuracy of a run to RUN_DIR/curves.png"
EPILOG = """\
examples:
  metanlp plot runs/text_meta_train                        writes runs/text_meta_train/curves.png
  metanlp plot runs/text_meta_train --window 25 --out loss.png

Reads RUN_DIR/log.jsonl (one line per outer step, written by `metanlp meta-train`); works on a live run too.
For TensorBoard curves, `pip install tensorboard`: meta-train then also logs to RUN_DIR/meta_train/.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``plot`` verb."""
    p = subparsers.add_parser("plot", help=HELP, description=HELP + ".", epilog=EPILOG,
                              formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("run_dir", metavar="RUN_DIR", help="a meta-train run folder (its run.output_dir)")
    p.add_argument("--out", default=None, help="PNG path (default RUN_DIR/curves.png)")
    p.add_argument("--window", type=int, default=10, help="outer steps in the loss moving average (default 10)")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    """Draw the curves and print where the PNG is."""
    from metanlp.core.plotting import plot_curves

    path = plot_curves(args.run_dir, args.out, window=args.window)
    sys.stdout.write(f"{path}\n")
    return 0
