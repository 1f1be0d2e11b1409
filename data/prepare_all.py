"""Run every ``data/<name>/prepare.py`` and report which succeeded.

Each script runs in its own process with the current interpreter and writes into its own folder (its default
``--out``). A failure does not stop the others; the exit status is 1 if any script failed.

Usage: ``python data/prepare_all.py [--only NAME ...]``
"""

import argparse
import subprocess
import sys
import time
from pathlib import Path

DATA = Path(__file__).resolve().parent


def main() -> int:
    """Run the scripts, print a summary, return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=None, help="run only these folders")
    args = parser.parse_args()
    scripts = sorted(DATA.glob("*/prepare.py"))
    if args.only is not None:
        unknown = sorted(set(args.only) - {s.parent.name for s in scripts})
        if unknown:
            parser.error(f"no prepare.py in data/{{{','.join(unknown)}}}")
        scripts = [s for s in scripts if s.parent.name in args.only]
    if not scripts:
        raise SystemExit(f"no */prepare.py under {DATA}")
    failed = []
    for script in scripts:
        print(f"== {script.parent.name}", flush=True)
        start = time.monotonic()
        code = subprocess.run([sys.executable, str(script)], cwd=DATA.parent).returncode
        status = "ok" if code == 0 else f"FAILED (exit {code})"
        print(f"== {script.parent.name}: {status} in {time.monotonic() - start:.1f}s", flush=True)
        if code != 0:
            failed.append(script.parent.name)
    summary = f"{len(scripts) - len(failed)}/{len(scripts)} succeeded"
    print(summary + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
