"""``metanlp env``: versions, devices and the Accelerate state, to paste into a bug report."""

from __future__ import annotations

import argparse
import sys

HELP = "print versions, devices, cache folder and Accelerate's state for bug reports"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``env`` verb."""
    p = subparsers.add_parser("env", help=HELP, description=HELP + ".")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    """Print one ``key: value`` line per fact."""
    import importlib.metadata as md
    import platform

    import torch

    from metanlp.core.config import cache_dir, hub_endpoint
    from metanlp.core.precision import bf16_is_fast, resolve_precision

    lines = [f"python: {platform.python_version()} ({platform.machine()})", f"cpu threads: {torch.get_num_threads()}"]
    for pkg in ("metanlp", "torch", "transformers", "peft", "accelerate", "datasets", "huggingface_hub", "evaluate"):
        try:
            lines.append(f"{pkg}: {md.version(pkg)}")
        except md.PackageNotFoundError:
            lines.append(f"{pkg}: not installed")
    lines.append(f"cuda: {torch.cuda.is_available()} ({torch.cuda.device_count()} devices)")
    native = "native bfloat16" if bf16_is_fast() else "no native bfloat16: bf16 would be emulated, far slower"
    lines.append(f"model.precision auto: {resolve_precision('auto')} ({native})")
    lines.append(f"cache (METANLP_CACHE): {cache_dir()}")
    lines.append(f"hub endpoint (HF_ENDPOINT): {hub_endpoint() or 'https://huggingface.co'}")
    from accelerate import PartialState

    state = PartialState()
    lines.append(f"accelerate: {state.distributed_type}, {state.num_processes} process(es), device {state.device}")
    sys.stdout.write("\n".join(lines) + "\n")
    return 0
