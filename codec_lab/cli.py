"""`codec-lab ...`: the command-line front door.

Errors a user can act on (`CodecLabError`) are printed in one line with a
non-zero exit; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from codec_lab import __version__
from codec_lab.commands import COMMANDS
from codec_lab.errors import CodecLabError

EXIT_USER_ERROR = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="codec-lab", description="Find how best to compress a video.")
    parser.add_argument("--version", action="version", version=f"codec-lab {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"codec_lab.commands.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except CodecLabError as exc:
        print(f"codec-lab {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print(f"codec-lab {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
