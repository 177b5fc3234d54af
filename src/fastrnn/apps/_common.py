"""What the three app sub-commands share: bad-input errors and exit codes, argument types (those of
``fastrnn.argtypes``), reading the user's files, and saving/loading a model with the
metadata the command needs.

Exit codes: 0 success, 2 bad input or usage (argparse's convention), 1 a failure that
is not the input's fault (e.g. the output file cannot be written). Either way the
command prints one line, ``fastrnn <command>: error: <what>``, and no traceback.
"""
from __future__ import annotations

import argparse
import functools
import importlib.util
import sys
from pathlib import Path

# The argument types live below the commands that share them; the apps import them from here.
from fastrnn.argtypes import fraction, non_negative_float, non_negative_int, positive_float, positive_int  # noqa: F401

USAGE = 2
FAILURE = 1


class AppError(Exception):
    """A problem to report in one line, with its exit code (2: bad input, 1: failure)."""

    def __init__(self, message: str, code: int = USAGE):
        super().__init__(message)
        self.code = code


def guarded(func, prog: str):
    """Wrap a command ``func(args) -> int``: an ``AppError`` becomes a message and an exit code."""

    @functools.wraps(func)
    def run(args) -> int:
        try:
            return int(func(args) or 0)
        except AppError as err:
            print(f"{prog}: error: {err}", file=sys.stderr)
            return err.code

    return run


def add_command(subparsers, name: str, func, help: str, description: str, examples: str):
    """A sub-command parser with its help text and examples; ``func`` runs it, guarded, and
    finds the command's name for its messages in ``args.prog``."""
    parser = subparsers.add_parser(
        name, help=help, description=description, epilog="examples:\n" + examples,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.set_defaults(func=guarded(func, parser.prog), prog=parser.prog)
    return parser


def add_training_arguments(parser, epochs: int, batch_size: int, learning_rate: float) -> None:
    """The options every training command has."""
    parser.add_argument("--epochs", type=positive_int, default=epochs,
                        help=f"passes over the training data (default {epochs})")
    parser.add_argument("--batch-size", type=positive_int, default=batch_size,
                        help=f"examples per gradient step (default {batch_size})")
    parser.add_argument("--learning-rate", type=positive_float, default=learning_rate,
                        help=f"Adam's learning rate (default {learning_rate})")
    parser.add_argument("--seed", type=non_negative_int, default=0,
                        help="random seed: the same seed repeats the same run (default 0)")
    parser.add_argument("--verbose", type=int, choices=(0, 1, 2), default=1,
                        help="0 quiet, 1 a live progress bar, 2 one line per epoch (default 1)")


# --------------------------------------------------------------------------- files

def existing_file(path) -> Path:
    """``path`` as a Path; AppError when it is not an existing file."""
    path = Path(path)
    if not path.exists():
        raise AppError(f"no such file: {path}")
    if not path.is_file():
        raise AppError(f"not a file: {path}")
    return path


def read_text(path) -> str:
    """The text of a UTF-8 file; AppError when it is missing or not UTF-8 text."""
    path = existing_file(path)
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise AppError(f"{path} is not UTF-8 text") from None
    except OSError as err:
        raise AppError(f"cannot read {path}: {err.strerror}") from None


def read_table(path) -> tuple:
    """A CSV file's ``(header, rows)`` (see ``fastrnn.data.read_csv``); AppError for
    a missing, unreadable, non-UTF-8, malformed or empty file."""
    import csv

    from fastrnn.data import read_csv

    path = existing_file(path)
    try:
        header, rows = read_csv(path)
    except UnicodeDecodeError:
        raise AppError(f"{path} is not UTF-8 text") from None
    except csv.Error as err:
        raise AppError(f"{path} is not a valid CSV file: {err}") from None
    except ValueError:
        raise AppError(f"{path} is empty: expected a header row and data rows") from None
    except OSError as err:
        raise AppError(f"cannot read {path}: {err.strerror}") from None
    if not rows:
        raise AppError(f"{path} has a header row but no data rows")
    return header, rows


def column_index(header: list, name: str, path, option: str) -> int:
    """The position of column ``name``; AppError listing the columns when it is missing."""
    if name not in header:
        columns = ", ".join(repr(h) for h in header)
        raise AppError(f"{path} has no column {name!r} (its columns: {columns}); "
                       f"choose one with {option}")
    return header.index(name)


def column_values(rows: list, index: int, name: str, path) -> list:
    """Column ``index`` of every row; AppError naming the line of a row that is too short."""
    values = []
    for line, row in enumerate(rows, start=2):
        if index >= len(row):
            raise AppError(f"{path}: data row {line - 1} has {len(row)} fields, "
                           f"so no value for column {name!r}")
        values.append(row[index])
    return values


def check_output_path(path, option: str) -> Path:
    """AppError before any work is done when ``path`` cannot be written: no such directory,
    or it is a directory itself."""
    path = Path(path)
    if path.is_dir():
        raise AppError(f"{option} {path} is a directory; give a file name")
    if not path.parent.is_dir():
        raise AppError(f"{option} {path}: no such directory {path.parent}")
    return path


# --------------------------------------------------------------------------- models

APP_KEY = "fastrnn_app"


def save_model(model, path, metadata: dict) -> Path:
    """Save ``model`` with ``metadata``; ``model.save`` writes atomically (a temporary
    file renamed into place), so an interrupted save never leaves a half-written file."""
    path = check_output_path(path, "--out")
    try:
        model.save(path, metadata=metadata)
    except OSError as err:
        message = f"cannot save the model to {path}: {err.strerror or err}"
        raise AppError(message, FAILURE) from None
    return path


def load_model(path, app: str, command: str):
    """Load a model saved by ``fastrnn <app> train``; AppError when it is missing, not a
    model, or saved by another command."""
    import fastrnn

    path = existing_file(path)
    try:
        model = fastrnn.load_model(path)
    except (OSError, ValueError, KeyError):
        raise AppError(f"{path} is not a model file saved by fastrnn") from None
    metadata = getattr(model, "metadata", None) or {}
    if metadata.get(APP_KEY) != app:
        raise AppError(f"{path} was not saved by `fastrnn {app} train`, "
                       f"so `{command}` cannot use it")
    return model, metadata


def plotting_available() -> bool:
    """Whether matplotlib can be imported (plots are an optional extra)."""
    try:
        return importlib.util.find_spec("matplotlib") is not None
    except (ImportError, ValueError):  # ValueError: sys.modules holds None for it
        return False
