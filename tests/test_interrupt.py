"""Ctrl-C inside a long kernel call, and calls with nothing to compute.

A call from the main thread asks for pending signals between chunks of steps: a SIGINT raises
KeyboardInterrupt from the call, leaving its inputs as they were; a handler that does not raise
lets the call finish with the same result. Each case runs in a subprocess, interrupted by its
parent; the timeouts are generous bounds against a hang, not measurements.
"""
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from fastrnn import ops
from fastrnn.modes import STATES

pytestmark = pytest.mark.skipif(os.name != "posix", reason="sends SIGINT to a subprocess")

# The child makes its arrays, prints "go", then calls; it reports how the call ended.
CHILD = textwrap.dedent("""
    import signal, sys
    import numpy as np
    from fastrnn import ops
    mode, T, B, I, H, which = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
    G = {"lstm": 4, "gru": 3, "rnn_tanh": 1}[mode]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((T, B, I), dtype=np.float32)
    h0 = rng.standard_normal((B, H), dtype=np.float32)
    w_ih = rng.standard_normal((G * H, I), dtype=np.float32) * 0.1
    w_hh = rng.standard_normal((G * H, H), dtype=np.float32) * 0.1
    given = [a.copy() for a in (x, h0, w_ih, w_hh)]
    if which == "backward":
        y, _, _, cache = ops.rnn_forward(mode, x, h0, w_ih, w_hh)
        dy = np.ones_like(y)
        call = lambda: ops.rnn_backward(cache, dy)
    else:
        call = lambda: ops.rnn_forward(mode, x, h0, w_ih, w_hh, training=False)
    print("go", flush=True)
    try:
        call()
    except KeyboardInterrupt:
        same = all(np.array_equal(a, b) for a, b in zip(given, (x, h0, w_ih, w_hh)))
        print("interrupted", "unchanged" if same else "CHANGED", flush=True)
    else:
        print("finished", flush=True)
""")


def run_interrupted(*args, delay=0.5, timeout=60):
    """Starts CHILD with args, sends it SIGINT `delay` s after it says "go"; its last line."""
    child = subprocess.Popen([sys.executable, "-c", CHILD, *map(str, args)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "go", child.stderr.read()
        try:
            child.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=timeout)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == 0, err
    return out.strip().splitlines()[-1]


# Each would run for tens of seconds uninterrupted (inference keeps no workspace, so memory
# stays a few hundred MB): split by rows of the batch, and by hidden units (B = 1).
@pytest.mark.parametrize("mode,T,B,I,H", [("lstm", 400_000, 8, 32, 256), ("gru", 200_000, 1, 16, 512)])
def test_ctrl_c_stops_a_long_forward(mode, T, B, I, H):
    assert run_interrupted(mode, T, B, I, H, "forward") == "interrupted unchanged"


def test_ctrl_c_stops_a_long_backward():
    # The forward (a second or more on an idle machine; its workspace about 330 MB) runs before
    # "go"; backward takes longer still.
    assert run_interrupted("lstm", 40_000, 1, 16, 512, "backward") == "interrupted unchanged"


def test_a_handler_that_does_not_raise_lets_the_call_finish():
    code = textwrap.dedent("""
        import os, signal, threading
        import numpy as np
        from fastrnn import ops
        caught = []
        signal.signal(signal.SIGINT, lambda *_: caught.append(1))
        rng = np.random.default_rng(1)
        T, B, I, H = 10_000, 1, 16, 256  # a second or more a call
        x = rng.standard_normal((T, B, I), dtype=np.float32)
        w_ih = rng.standard_normal((4 * H, I), dtype=np.float32) * 0.1
        w_hh = rng.standard_normal((4 * H, H), dtype=np.float32) * 0.1
        want = ops.rnn_forward("lstm", x, None, w_ih, w_hh, training=False)[0]
        timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT))
        timer.start()
        got = ops.rnn_forward("lstm", x, None, w_ih, w_hh, training=False)[0]
        timer.join()
        assert caught, "the handler never ran"
        np.testing.assert_array_equal(got, want)
        print("ok")
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_a_call_from_another_thread_is_not_stopped_and_still_correct():
    import threading
    rng = np.random.default_rng(2)
    x = rng.standard_normal((50, 3, 4))
    w_ih, w_hh = rng.standard_normal((12, 4)), rng.standard_normal((12, 4))
    want = ops.rnn_forward("gru", x, None, w_ih, w_hh, training=False)[0]
    got = []
    worker = threading.Thread(target=lambda: got.append(ops.rnn_forward("gru", x, None, w_ih, w_hh, training=False)[0]))
    worker.start()
    worker.join()
    np.testing.assert_array_equal(got[0], want)


# ---------------------------------------------------------------------------------------------
# Nothing to compute: no rows (B = 0) or no units (H = 0) return at once, with no loop over T
# (10**7 steps would take minutes), and zero gradients of the right shapes.

@pytest.mark.parametrize("mode,G", [("lstm", 4), ("gru", 3), ("rnn_tanh", 1)])
@pytest.mark.parametrize("B,H,T", [(0, 5, 10**7), (0, 0, 10**7), (2, 0, 10**6)])
def test_empty_outputs_return_at_once(mode, G, B, H, T):
    I = 3
    x = np.ones((T, B, I), np.float32)
    w_ih, w_hh = np.ones((G * H, I), np.float32), np.ones((G * H, H), np.float32)
    b = np.ones(G * H, np.float32)
    y, h_n, c_n, cache = ops.rnn_forward(mode, x, None, w_ih, w_hh, b, b)
    assert y.shape == (T, B, H) and h_n.shape == (B, H)
    assert (c_n is None) == ("c" not in STATES[mode]) and (c_n is None or c_n.shape == (B, H))
    grads = ops.rnn_backward(cache, np.ones_like(y), np.ones_like(h_n))
    want = {"x": x.shape, "h0": (B, H), "w_ih": w_ih.shape, "w_hh": w_hh.shape, "b_ih": b.shape, "b_hh": b.shape}
    if "c" in STATES[mode]:
        want["c0"] = (B, H)
    assert {k: v.shape for k, v in grads.items()} == want
    for k, g in grads.items():
        assert g.dtype == np.float32 and not np.any(g), k


def test_no_steps_pass_the_states_through():
    rng = np.random.default_rng(3)
    x = np.zeros((0, 2, 3))
    h0, c0 = rng.standard_normal((2, 4)), rng.standard_normal((2, 4))
    w_ih, w_hh = rng.standard_normal((16, 3)), rng.standard_normal((16, 4))
    y, h_n, c_n, cache = ops.rnn_forward("lstm", x, h0, w_ih, w_hh, c0=c0)
    assert y.shape == (0, 2, 4)
    np.testing.assert_array_equal(h_n, h0)
    np.testing.assert_array_equal(c_n, c0)
    dh, dc = rng.standard_normal((2, 4)), rng.standard_normal((2, 4))
    grads = ops.rnn_backward(cache, None, dh, dc)
    np.testing.assert_array_equal(grads["h0"], dh)
    np.testing.assert_array_equal(grads["c0"], dc)
    assert not np.any(grads["w_ih"]) and not np.any(grads["w_hh"])
