"""``python -m fastrnn.bench``: ``fastrnn bench`` (``fastrnn.bench.cli``)."""
import sys

from fastrnn.bench.cli import main

if __name__ == "__main__":
    sys.exit(main())
