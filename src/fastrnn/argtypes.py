"""argparse types shared by the ``fastrnn`` commands: whole and real numbers in a range, a thread
count and a path to write a result to.

Each takes the text of one option and returns its value, or raises
``argparse.ArgumentTypeError``, which argparse reports as ``argument --name: <message>`` with
exit code 2.
"""
from __future__ import annotations

import argparse
import os
import tempfile

from fastrnn._args import MAX_THREADS


def _whole_number_at_least(text: str, least: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < least:
        raise argparse.ArgumentTypeError(f"expected a number >= {least}, got {value}")
    return value


def positive_int(text: str) -> int:
    """argparse type: an int >= 1."""
    return _whole_number_at_least(text, 1)


def non_negative_int(text: str) -> int:
    """argparse type: an int >= 0."""
    return _whole_number_at_least(text, 0)


def non_negative_float(text: str) -> float:
    """argparse type: a finite float >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text}")
    return value


def positive_float(text: str) -> float:
    """argparse type: a finite float > 0."""
    value = non_negative_float(text)
    if value == 0:
        raise argparse.ArgumentTypeError("expected a number > 0, got 0")
    return value


def fraction(text: str) -> float:
    """argparse type: a float strictly between 0 and 1."""
    value = non_negative_float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"expected a fraction between 0 and 1, got {text}")
    return value


def thread_count(text: str) -> int:
    """argparse type: a thread count, from 1 to what OpenMP takes."""
    value = positive_int(text)
    if value > MAX_THREADS:
        raise argparse.ArgumentTypeError(f"expected a number <= {MAX_THREADS}, got {value}")
    return value


def writable_path(text: str) -> str:
    """argparse type: a file path in a folder that exists and takes new files, so that a run
    does not fail at its end, when it writes its results."""
    if not text:
        raise argparse.ArgumentTypeError("expected a file path, got an empty string")
    if os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{text} is a folder")
    from fastrnn.files import is_special_file

    if is_special_file(text):  # /dev/stdout, a pipe: written into, not replaced
        if not os.access(text, os.W_OK):
            raise argparse.ArgumentTypeError(f"cannot write to {text}")
        return text
    # The file written first is beside the one a symbolic link points to (write_atomically).
    folder = os.path.dirname(os.path.realpath(text))
    if not os.path.isdir(folder):
        raise argparse.ArgumentTypeError(f"no such folder: {os.path.dirname(text) or '.'}")
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        raise argparse.ArgumentTypeError(f"cannot write in {folder}: {e.strerror}") from None
    return text
