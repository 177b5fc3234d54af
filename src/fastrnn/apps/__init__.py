"""The command-line jobs, one module per sub-command of ``fastrnn``.

- ``text``: ``fastrnn text train`` / ``fastrnn text generate``, a character-level language model.
- ``sentiment``: ``fastrnn sentiment train`` / ``fastrnn sentiment predict``, a word-level
  text classifier.
- ``forecast``: ``fastrnn forecast``, a one- or multi-step time-series forecaster with a plot.

Each module has ``add_parser(subparsers)``, which adds its sub-command to the
``fastrnn`` parser (``fastrnn.cli``) and sets ``func(args) -> int``, the exit code.
"""
