"""The ``fastrnn bench`` sub-command: its options, the settings they make, and the run that
prints the tables and writes the JSON report and the plot when asked to.

``fastrnn bench``, ``python -m fastrnn bench``, ``python -m fastrnn.bench`` and
``python -m fastrnn.benchmark`` are the same command.
"""
from __future__ import annotations

import argparse
import importlib
import sys

import numpy as np

from fastrnn.argtypes import positive_float, thread_count, writable_path
from fastrnn.bench.cases import (
    ALL_MODES, DEFAULT_MODES, SCALING_B, SCALING_FIXED_B, SCALING_FIXED_T, SCALING_IH, SCALING_T, SHAPES, TASKS,
)
from fastrnn.bench.grid import (
    BUDGET_S, GEMM_SIZES, QUICK_BUDGET_S, QUICK_GEMM_SIZES, QUICK_SHAPES, Settings, run_benchmark,
)
from fastrnn.bench.memory import too_big_for_memory
from fastrnn.bench.report import format_report, write_json, write_plot
from fastrnn.bench.runners import IMPLS, REFERENCE_LIMIT_S

DESCRIPTION = ("Time fastrnn's kernels beside PyTorch and ONNX Runtime (when installed) and the NumPy "
               "reference, on a grid of cells, shapes and tasks, with a GEMM probe as the machine's "
               "ceiling. Shapes (T, B, I, H): " + ", ".join(f"{k} {v}" for k, v in SHAPES.items()) + ".")


def shape_argument(text: str) -> tuple:
    """argparse type: (name, (T, B, I, H)) from a name in SHAPES or from T x B x I x H written as
    e.g. '20x4x8x16'."""
    if text in SHAPES:
        return text, SHAPES[text]
    parts = text.lower().split("x")
    try:
        shape = tuple(int(p) for p in parts)
    except ValueError:
        shape = ()
    if len(shape) != 4 or min(shape) < 1:
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither one of {', '.join(SHAPES)} nor T x B x I x H with positive sizes (e.g. 20x4x8x16)")
    return text, shape


def load_count(text: str) -> int:
    """argparse type: a whole number of processes, 0 to 64."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not 0 <= n <= 64:
        raise argparse.ArgumentTypeError(f"expected a number from 0 to 64, got {n}")
    return n


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``bench`` sub-command to the ``fastrnn`` command line."""
    parser = subparsers.add_parser(
        "bench", help="time fastrnn beside PyTorch, ONNX Runtime and the NumPy reference",
        description=DESCRIPTION)
    add_arguments(parser)
    parser.set_defaults(func=run)
    return parser


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``fastrnn bench``."""
    _add_grid_arguments(parser)
    parser.add_argument("--threads", type=thread_count,
                        help="threads for fastrnn, torch and onnxruntime alike (default: fastrnn's)")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument("--budget", type=positive_float, metavar="SECONDS",
                        help=f"timing budget per implementation and case (default {BUDGET_S:g}, "
                             f"--quick {QUICK_BUDGET_S:g})")
    parser.add_argument("--reference-limit", type=positive_float, default=REFERENCE_LIMIT_S, metavar="SECONDS",
                        help="skip the NumPy reference where one call would take longer (default %(default)s)")
    parser.add_argument("--scaling", action="store_true",
                        help=f"also time T = {SCALING_T} at B = {SCALING_FIXED_B} and B = {SCALING_B} at "
                             f"T = {SCALING_FIXED_T} (I = H = {SCALING_IH})")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory probes")
    parser.add_argument("--load", type=load_count, default=0, metavar="N",
                        help="also time every case beside N competing processes (bursts of 1-8 ms of "
                             "computation, sleeps of 0.5-2 ms), fastrnn on one thread too (default 0)")
    parser.add_argument("--json", metavar="PATH", type=writable_path, help="write the full results and machine facts as JSON")
    parser.add_argument("--plot", metavar="PATH", type=writable_path, help="write a bar chart: PNG, or SVG or PDF by the suffix (needs matplotlib)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")


def _add_grid_arguments(parser: argparse.ArgumentParser) -> None:
    """What is run: the cells, shapes, tasks and implementations."""
    parser.add_argument("--quick", action="store_true",
                        help=f"reduced grid (shapes {', '.join(QUICK_SHAPES)}, budget {QUICK_BUDGET_S:g} s): "
                             "under a minute")
    parser.add_argument("--modes", nargs="+", choices=ALL_MODES, metavar="MODE",
                        help=f"cells among {', '.join(ALL_MODES)} (default: {' '.join(DEFAULT_MODES)})")
    parser.add_argument("--shapes", nargs="+", type=shape_argument, metavar="SHAPE",
                        help=f"names ({', '.join(SHAPES)}) or TxBxIxH (default: all names)")
    parser.add_argument("--tasks", nargs="+", choices=TASKS, metavar="TASK",
                        help="train and/or infer (default: both)")
    parser.add_argument("--impls", nargs="+", choices=IMPLS, metavar="IMPL",
                        help=f"implementations among {', '.join(IMPLS)} (default: all; "
                             "those not installed are skipped with a note)")


def settings_from_args(args: argparse.Namespace) -> Settings:
    """The run's settings from the parsed options: the defaults, or ``--quick``'s, where none is given."""
    from fastrnn import ops

    shapes = dict(args.shapes) if args.shapes else {k: SHAPES[k] for k in (QUICK_SHAPES if args.quick else SHAPES)}
    budget = args.budget or (QUICK_BUDGET_S if args.quick else BUDGET_S)
    return Settings(
        modes=tuple(dict.fromkeys(args.modes or DEFAULT_MODES)),
        shapes=shapes,
        tasks=tuple(dict.fromkeys(args.tasks or TASKS)),
        impls=tuple(dict.fromkeys(args.impls or IMPLS)),
        dtype=np.dtype(args.dtype),
        threads=args.threads or int(ops.get_num_threads()),
        budget_s=budget,
        reference_limit_s=args.reference_limit,
        gemm_sizes=QUICK_GEMM_SIZES if args.quick else GEMM_SIZES,
        memory=not args.no_memory,
        scaling=args.scaling,
        load=args.load,
    )


def run(args: argparse.Namespace) -> int:
    """The ``bench`` sub-command: run, print the tables, write JSON/PNG if asked. Returns the exit code."""
    refused = _refuse_before_the_run(args)
    if refused:
        return refused
    settings = settings_from_args(args)
    too_big = too_big_for_memory(settings.shapes, settings.modes, settings.dtype, settings.tasks)
    if too_big:
        print(f"fastrnn bench: error: {too_big}", file=sys.stderr)
        return 2

    def progress(message: str) -> None:
        if not args.quiet:
            print(f"  {message}", file=sys.stderr, flush=True)

    report = run_benchmark(settings, progress)
    print(format_report(report))
    if args.json:
        write_json(report, args.json)
        print(f"wrote {args.json}")
    if args.plot:
        write_plot(report, args.plot)
        print(f"wrote {args.plot}")
    return 0


def _refuse_before_the_run(args: argparse.Namespace) -> int:
    """The exit code when the run cannot end well (no matplotlib for --plot, no kernels), else 0."""
    if args.plot:
        try:
            importlib.import_module("matplotlib")
        except ImportError:
            print("fastrnn bench: --plot needs matplotlib, which is not installed "
                  "(pip install matplotlib, or leave out --plot)", file=sys.stderr)
            return 2
    try:
        importlib.import_module("fastrnn.ops")
    except ImportError as exc:
        print(f"fastrnn bench: cannot load fastrnn's kernels: {exc}", file=sys.stderr)
        return 1
    return 0


def main(argv=None) -> int:
    """``python -m fastrnn.bench``: ``fastrnn bench``, through the command line's own entry
    point, so that its errors (out of memory, a closed pipe) read the same."""
    from fastrnn import cli

    return cli.main(["bench", *(sys.argv[1:] if argv is None else argv)])
