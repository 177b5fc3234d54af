"""Small data files shipped with fastrnn, so the examples run offline.

- ``reviews.csv``: a few hundred short reviews (columns ``text``, ``label`` with
  ``positive``/``negative``), written for fastrnn's sentiment example.
- ``sunspots.csv``: yearly mean sunspot numbers 1700-2008 (columns ``year``,
  ``sunspots``), public domain; the file's header names the source.

Lines starting with ``#`` before the header row are comments.
"""
from __future__ import annotations

import csv
import io
from importlib import resources
from pathlib import Path

__all__ = ["path", "read_csv", "reviews", "sunspots"]


def path(name: str) -> Path:
    """The file system path of the shipped data file ``name`` (e.g. ``"sunspots.csv"``)."""
    file = resources.files(__name__) / name
    if not file.is_file():
        raise FileNotFoundError(f"fastrnn ships no data file named {name!r}")
    return Path(str(file))


def read_csv(file) -> tuple:
    """Read a CSV with a header row, skipping leading ``#`` comment lines.

    file: a path or an open text file. Returns ``(header, rows)``: the column
    names and a list of rows (each a list of str). Raises ValueError for a file
    with no header row.
    """
    if isinstance(file, io.TextIOBase):
        return _read_rows(file)
    with open(file, newline="", encoding="utf-8") as f:
        return _read_rows(f)


def _read_rows(f) -> tuple:
    reader = csv.reader(_after_leading_comments(f))
    header = next(reader, None)
    if header is None:
        raise ValueError("the CSV file has no header row")
    header = [h.strip() for h in header]
    return header, [row for row in reader if row]


def _after_leading_comments(lines):
    """The lines from the first one that is neither blank nor a ``#`` comment.

    Only leading lines are skipped: later ones may belong to a quoted multi-line field.
    """
    lines = iter(lines)
    for line in lines:
        if line.strip() and not line.startswith("#"):
            yield line
            break
    yield from lines


def reviews() -> tuple:
    """The shipped reviews: ``(texts, labels)``, two lists of str."""
    header, rows = read_csv(path("reviews.csv"))
    text_col, label_col = header.index("text"), header.index("label")
    return [r[text_col] for r in rows], [r[label_col] for r in rows]


def sunspots() -> tuple:
    """The shipped sunspot series: ``(years, values)``, two (309,) float64 arrays."""
    import numpy as np

    header, rows = read_csv(path("sunspots.csv"))
    table = np.array(rows, dtype=np.float64)  # (309, 2)
    return table[:, header.index("year")], table[:, header.index("sunspots")]
