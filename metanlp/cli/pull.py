"""``metanlp pull REPO_ID``: download an adapter from a hub, verify it, and print its local folder."""

from __future__ import annotations

import argparse
import sys

EPILOG = """\
examples:
  metanlp pull alice/banking-intents --out adapters/banking     then: metanlp predict adapters/banking --text "..."
  metanlp pull alice/banking-intents --revision k5              into the Hugging Face cache (HF_HOME)
  metanlp pull alice/test --endpoint http://127.0.0.1:8765 --out pulled
"""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``pull``."""
    parser = subparsers.add_parser(
        "pull",
        help="download an adapter from a Hugging Face-compatible hub",
        description="Download an adapter repo, check every file against the hub's checksums, and print the folder. "
        "Private repos need HF_TOKEN or `hf auth login`.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("repo_id", metavar="REPO_ID", help="user/name on the hub")
    parser.add_argument("--revision", metavar="REV", help="branch, tag or commit (default: main)")
    parser.add_argument("--out", metavar="DIR", help="folder to write (default: the Hugging Face cache)")
    parser.add_argument("--endpoint", metavar="URL", help="hub URL (default: $HF_ENDPOINT or https://huggingface.co)")
    parser.set_defaults(func=main)
    return parser


def main(args: argparse.Namespace) -> int:
    """Pull and print the adapter folder."""
    from metanlp.core.hub import pull_adapter

    path = pull_adapter(args.repo_id, revision=args.revision, out_dir=args.out, endpoint=args.endpoint)
    sys.stdout.write(f"{path}\n")
    return 0
