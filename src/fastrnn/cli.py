"""The ``fastrnn`` command line: with no arguments, a self-check of this machine.

Each sub-command lives in its own module, which provides ``add_parser(subparsers)``;
the parser it adds sets ``func(args) -> int`` (the exit code).
"""
from __future__ import annotations

import argparse
import os
import sys
import warnings
from importlib import import_module

COMMAND_MODULES = [
    "fastrnn.selfcheck",   # check (the default) and info
    "fastrnn.bench.cli",   # bench
    "fastrnn.apps.text",
    "fastrnn.apps.sentiment",
    "fastrnn.apps.forecast",
]


def build_parser() -> argparse.ArgumentParser:
    from fastrnn import __version__

    parser = argparse.ArgumentParser(
        prog="fastrnn",
        description="Fast CPU recurrent networks. With no command, runs a self-check.",
    )
    parser.add_argument("--version", action="version", version=f"fastrnn {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        import_module(name).add_parser(subparsers)
    return parser


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        parser = build_parser()
    except ImportError as e:  # the kernels did not load, or a setting is bad: those are the user's to fix
        print(f"fastrnn: error: {e}", file=sys.stderr)
        return 2 if str(e).startswith(("FASTRNN_ISA=", "FASTRNN_CACHE_LIMIT=")) else 1
    args = parser.parse_args(argv or ["check"])
    if _join_mpi_job() != 0:
        return 2
    try:
        return _ended_together(int(args.func(args) or 0))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (MemoryError, ValueError) as e:
        if not _out_of_memory(e):
            raise
        # Sizes the user asked for (--units, --shape, ...) that this machine cannot hold.
        print(f"fastrnn: error: not enough memory{': ' if str(e) else ''}{e}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # The reader went away (`fastrnn text generate ... | head`). Output still buffered would
        # fail again at exit, so it goes nowhere.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def _join_mpi_job() -> int:
    """Under ``mpiexec -n N`` (N > 1) every command runs as one rank of a distributed job:
    training is data-parallel (``fastrnn.distributed``) and only rank 0 prints to stdout."""
    from fastrnn import distributed

    if not distributed.launched_by_mpi():
        return 0
    try:
        with warnings.catch_warnings():  # a launch of one process: nothing to say
            warnings.simplefilter("ignore", RuntimeWarning)
            distributed.init()
    except ImportError as e:
        print(f"fastrnn: error: started by an MPI launcher, but {e}", file=sys.stderr)
        return 2
    if not distributed.is_chief():
        sys.stdout = open(os.devnull, "w")
    return 0


def _ended_together(code: int) -> int:
    """A rank that fails ends the job, so that no other waits for it."""
    from fastrnn import distributed

    if code != 0 and distributed.is_initialized():
        sys.stderr.flush()
        distributed._world.comm.Abort(code)
    return code


def _out_of_memory(e: Exception) -> bool:
    """An allocation that failed: MemoryError, or NumPy's ValueError for a size beyond any memory."""
    return isinstance(e, MemoryError) or str(e).startswith(
        ("array is too big", "Maximum allowed dimension exceeded"))


if __name__ == "__main__":
    sys.exit(main())
