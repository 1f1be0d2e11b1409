"""``metanlp push ADAPTER_DIR REPO_ID``: upload an adapter folder and its model card to a hub, as one commit."""

from __future__ import annotations

import argparse
import sys

EPILOG = """\
examples:
  metanlp push runs/new_categories/adapter alice/banking-intents
  metanlp push runs/new_categories/adapter alice/banking-intents --private --revision k5
  HF_TOKEN=hf_alice_token metanlp push ADAPTER_DIR alice/test --endpoint http://127.0.0.1:8765

The token comes from HF_TOKEN or `hf auth login` (there is no --token flag, so it never lands in shell history).
"""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``push``."""
    parser = subparsers.add_parser(
        "push",
        help="upload an adapter folder to a Hugging Face-compatible hub",
        description="Upload an adapter folder (peft files, metanlp.json, recipe.yaml, metrics.json) and a generated "
        "model card as one commit; create the repo and branch if needed. Prints the commit URL.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("adapter_dir", metavar="ADAPTER_DIR", help="folder written by metanlp (adapt, meta-train)")
    parser.add_argument("repo_id", metavar="REPO_ID", help="user/name on the hub (a bare name: your namespace)")
    parser.add_argument("--private", action="store_true", help="create the repo as private")
    parser.add_argument("--revision", default="main", metavar="BRANCH", help="branch to commit to (default: main)")
    parser.add_argument("--endpoint", metavar="URL", help="hub URL (default: $HF_ENDPOINT or https://huggingface.co)")
    parser.add_argument(
        "--force", action="store_true", help="replace a repo's files even if metanlp did not push them"
    )
    parser.add_argument("--message", default="", help="commit message")
    parser.set_defaults(func=main)
    return parser


def main(args: argparse.Namespace) -> int:
    """Push and print the commit URL."""
    from metanlp.core.hub import push_adapter

    commit = push_adapter(
        args.adapter_dir,
        args.repo_id,
        private=args.private,
        revision=args.revision,
        endpoint=args.endpoint,
        force=args.force,
        commit_message=args.message,
    )
    sys.stdout.write(f"{commit.commit_url}\n")
    return 0
