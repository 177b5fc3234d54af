"""``fastrnn bench``: time fastrnn's kernels beside PyTorch, ONNX Runtime and the NumPy reference.

What is measured, for each cell mode, shape (T, B, I, H) and task:

- ``train``: ``fastrnn.ops.rnn_forward(..., training=True)`` then ``rnn_backward`` with a given
  ``dy``: the gradients of x, the initial state and every weight. PyTorch does the same with
  ``torch.nn.LSTM/GRU/RNN`` (forward, then backward of ``(y * dy).sum()``).
- ``infer``: ``rnn_forward(..., training=False)``; PyTorch under ``torch.inference_mode()``;
  ONNX Runtime running the same torch module exported to ONNX.

The modules, from the floor up:

- ``cases``: the grid (cells, shapes, tasks, the scaling series), FLOP counts, and the inputs
  and weights every implementation gets;
- ``timing``: a budget of repeated calls per implementation, the implementations taking turns;
- ``baselines``: the same computation in PyTorch and ONNX Runtime;
- ``runners``: every implementation as a function of no arguments, and the check that it
  computed what fastrnn computed;
- ``machine``: the GEMM ceiling, the thread count, the machine's facts and how busy it was;
- ``memory``: the peak memory of a training call, and whether a call fits at all;
- ``report``: the text tables, the notes, JSON and the plot;
- ``grid``: the settings and the whole run, which makes the report;
- ``cli``: the ``fastrnn bench`` options.
"""
from fastrnn.bench.cases import Case, make_case
from fastrnn.bench.cli import main
from fastrnn.bench.grid import Settings, run_benchmark
from fastrnn.bench.report import format_report

__all__ = ["Case", "Settings", "format_report", "main", "make_case", "run_benchmark"]
