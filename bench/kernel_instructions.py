"""A fixed workload of kernel calls, for counting their instructions under callgrind.

rnn_tanh, LSTM and GRU, float32 and float64, forward and backward on (T, B, I, H) = 50x32x32x64,
100x1x128x256 and 20x3x32x64, on one thread. The inputs are made in both modes, so that the
difference of the two counts is the kernels' (and their bindings') alone:

    OMP_NUM_THREADS=1 FASTRNN_ISA=x86-64-v3 valgrind --tool=callgrind python bench/kernel_instructions.py run
    OMP_NUM_THREADS=1 FASTRNN_ISA=x86-64-v3 valgrind --tool=callgrind python bench/kernel_instructions.py import
"""
import sys

import numpy as np

from fastrnn import ops
from fastrnn.modes import GATES


def cases():
    for mode in ("rnn_tanh", "lstm", "gru"):
        for dtype in (np.float32, np.float64):
            for T, B, I, H in ((50, 32, 32, 64), (100, 1, 128, 256), (20, 3, 32, 64)):
                rng = np.random.default_rng(0)
                G, k = GATES[mode], 1 / np.sqrt(H)
                yield mode, dict(x=rng.standard_normal((T, B, I)).astype(dtype), h0=None,
                                 w_ih=rng.uniform(-k, k, (G * H, I)).astype(dtype),
                                 w_hh=rng.uniform(-k, k, (G * H, H)).astype(dtype),
                                 b_ih=rng.uniform(-k, k, G * H).astype(dtype),
                                 b_hh=rng.uniform(-k, k, G * H).astype(dtype))


def main(what):
    ops.set_num_threads(1)
    made = list(cases())
    if what == "run":
        for mode, case in made:
            y, _, _, cache = ops.rnn_forward(mode, **case)
            ops.rnn_backward(cache, np.ones_like(y))
    print(ops.build_info()["isa"], what)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "run")
