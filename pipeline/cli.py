"""The ``ssim-pipeline`` command: thin wrappers over the public API."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import pipeline

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ssim-pipeline",
        description="Streaming SSIM evaluation for folders of images and Zarr stacks.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {pipeline.__version__}")
    parser.add_subparsers(dest="command", metavar="COMMAND")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 done, 1 failed pairs, 2 bad usage)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    return 0
