"""Run metanlp's benchmarks by name: ``PYTHONPATH=. python bench/run.py fomaml_vs_higher adapt_vs_setfit scaling``.

Each benchmark is a folder ``bench/<name>/`` whose ``run.py`` measures metanlp and a peer side by side in one run
(same model, episodes and seeds), prints the ratios, and writes ``bench/<name>/results.json`` through
:func:`write_results`, which adds where the numbers come from: metanlp and library versions, git commit, device,
CPU count, 1-minute load average when the run ended, date. On a shared machine timings are noisy: compare ratios,
not seconds.

``python bench/run.py --list`` lists the benchmarks; arguments after ``--`` go to every benchmark's ``run.py``.
The peers are not metanlp dependencies: ``pip install -e '.[bench]'`` installs them (higher, setfit).
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata as md
import os
import platform
import resource
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["ROOT", "available", "peak_rss_growth", "provenance", "write_results"]

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent


def available() -> list[str]:
    """Benchmark names: the folders of ``bench/`` that hold a ``run.py``."""
    return sorted(p.parent.name for p in BENCH.glob("*/run.py"))


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def provenance(packages: tuple[str, ...] = ()) -> dict[str, Any]:
    """Versions (metanlp, torch, transformers, peft, accelerate and ``packages``), git commit, device, load, date."""
    import torch

    versions = {}
    for pkg in ("metanlp", "torch", "transformers", "peft", "accelerate", *packages):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            versions[pkg] = "not installed"
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=5)
        commit = out.stdout.strip() if out.returncode == 0 else ""
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "metanlp", "bench"], cwd=ROOT,
                               capture_output=True, text=True, timeout=5).stdout.strip()  # fmt: skip
        if commit and dirty:
            commit += " + uncommitted changes in metanlp/ or bench/"
    except (OSError, subprocess.SubprocessError):
        commit = ""
    if torch.cuda.is_available():
        device = f"cuda: {torch.cuda.get_device_name(0)} x{torch.cuda.device_count()}"
    else:
        device = f"cpu: {_cpu_model()}"
    return {
        "versions": versions,
        "commit": commit or "uncommitted",
        "device": device,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average_1min_at_end": round(os.getloadavg()[0], 2),
        "python": platform.python_version(),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


def write_results(folder: str | Path, results: dict[str, Any], packages: tuple[str, ...] = ()) -> Path:
    """Write ``folder/results.json``: :func:`provenance` plus ``results``, atomically."""
    from metanlp.core.saving import write_json_atomic

    path = Path(folder) / "results.json"
    write_json_atomic(path, {**provenance(packages), **results})
    return path


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:  # Linux: pages
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def peak_rss_growth(fn: Callable[[], Any]) -> tuple[Any, float]:
    """``(fn(), MiB)``: peak resident memory above the RSS before the call, sampled every millisecond (Linux)."""
    base, peak, done = _rss_mib(), [0.0], threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _rss_mib())
            time.sleep(0.001)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        result = fn()
    finally:
        done.set()
        sampler.join()
    return result, max(peak[0], _rss_mib()) - base


def main(argv: list[str] | None = None) -> int:
    """Run the named benchmarks one after the other, each in its own process; exit status 1 if one failed."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog="benchmarks: " + ", ".join(available()))  # fmt: skip
    parser.add_argument("names", nargs="*", metavar="NAME", help="benchmarks to run (default: all)")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    args = parser.parse_args(argv[: argv.index("--")] if "--" in argv else argv)
    if args.list:
        sys.stdout.write("\n".join(available()) + "\n")
        return 0
    unknown = [n for n in args.names if n not in available()]
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; available: {', '.join(available())}")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    failed = []
    for name in args.names or available():
        sys.stdout.write(f"== bench/{name} ==\n")
        sys.stdout.flush()
        if subprocess.run([sys.executable, "-m", f"bench.{name}.run", *extra], cwd=ROOT, env=env).returncode:
            failed.append(name)
    if failed:
        sys.stderr.write(f"failed: {', '.join(failed)}\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
