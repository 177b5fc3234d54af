"""``python -m fastrnn``: the ``fastrnn`` command line (``fastrnn.cli``)."""
import sys

from fastrnn.cli import main

if __name__ == "__main__":
    sys.exit(main())
