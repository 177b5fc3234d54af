"""The ``fastrnn`` command line: with no arguments, a self-check of this machine.

Each sub-command lives in its own module, which provides ``add_parser(subparsers)``;
the parser it adds sets ``func(args) -> int`` (the exit code).
"""
from __future__ import annotations

import argparse
import sys
from importlib import import_module

COMMAND_MODULES = [
    "fastrnn.selfcheck",   # check (the default) and info
    "fastrnn.benchmark",   # bench
    "fastrnn.apps.text",
    "fastrnn.apps.sentiment",
    "fastrnn.apps.forecast",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fastrnn",
        description="Fast CPU recurrent networks. With no command, runs a self-check.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        import_module(name).add_parser(subparsers)
    return parser


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    args = parser.parse_args(argv or ["check"])
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
