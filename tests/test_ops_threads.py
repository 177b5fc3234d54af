"""The kernels on several threads and in several processes: splits of a call across threads (by
rows of the batch, by hidden units, by gate columns) against the reference, results that repeat
bit for bit, calls from several Python threads, the thread count, thread limits, and children
forked before, during and after kernel calls.
"""
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

from conftest import make_case, steps_to_split_by_units
from fastrnn import _core, ops
from fastrnn.modes import GATES
from ops_checks import (MODES, assert_inference_matches_reference, assert_matches_reference, holey_mask,
                        kernel_threads, run)


@pytest.mark.parametrize("mode", MODES)
def test_results_repeat_bit_for_bit(mode):
    case = make_case(mode, 20, 16, 24, 40, np.float32, seed=8)
    first = run(ops, mode, case)
    second = run(ops, mode, case)
    for a, b in zip(first[:3], second[:3]):
        if a is not None:
            np.testing.assert_array_equal(a, b)
    for key, a in first[3].items():
        if a is not None:
            np.testing.assert_array_equal(a, second[3][key])


def test_calls_from_several_python_threads_give_the_single_thread_results():
    cases = [make_case(m, 30, 8, 16, 32, np.float32, seed=i) for i, m in enumerate(MODES)]
    want = [run(ops, m, c) for m, c in zip(MODES, cases)]
    got = [None] * len(MODES)

    def work(k):
        got[k] = run(ops, MODES[k], cases[k])

    threads = [threading.Thread(target=work, args=(k,)) for k in range(len(MODES))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g[0], w[0])
        np.testing.assert_array_equal(g[3]["w_hh"], w[3]["w_hh"])


def test_thread_count_can_be_set_and_read():
    with kernel_threads(1):
        assert ops.get_num_threads() == 1
    for bad in (0, -1, 1.5, "2", True, 2**31, np.int64(2**40)):
        with pytest.raises(ValueError, match="n must be an integer"):
            ops.set_num_threads(bad)


def test_a_thread_count_set_during_a_call_applies_from_the_next_call():
    """A call takes the thread count once, at its start: its results are bit for bit those of
    two threads or, where the change came before the call began (a busy machine can delay it
    past the timer), of one; never a mix."""
    case = make_case("lstm", 400, 32, 64, 128, np.float32, seed=21)
    results = {}
    for n in (2, 1):
        with kernel_threads(n):
            y, _, _, cache = ops.rnn_forward("lstm", **case)
            results[n] = ops.rnn_backward(cache, np.ones_like(y))
    for delay in (0.002, 0.01):  # a backward takes some tens of milliseconds
        with kernel_threads(2):
            y, _, _, cache = ops.rnn_forward("lstm", **case)
            switch = threading.Timer(delay, ops.set_num_threads, args=(1,))
            switch.start()
            got = ops.rnn_backward(cache, np.ones_like(y))
            switch.join()
            assert ops.get_num_threads() == 1
        same_as = [n for n, want in results.items() if all(np.array_equal(got[k], want[k]) for k in want)]
        assert same_as, "the gradients mix one and two threads' results"


def _last_process_id():
    with open("/proc/sys/kernel/ns_last_pid") as f:
        return int(f.read())


@pytest.mark.skipif(not os.access("/proc/sys/kernel/ns_last_pid", os.R_OK), reason="Linux's last process id")
@pytest.mark.skipif(not ops.build_info()["openmp"], reason="kernels built without OpenMP")
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("B, I, H", [(1, 65, 100), (3, 32, 64)])
def test_calls_after_the_first_start_no_threads(mode, B, I, H):
    """Every call uses the threads the first one started. A thread started per call (a team
    nested in a region of one thread, as the weight gradients of a sequence or three once
    made) costs far more than the arithmetic on these shapes, while the idle threads of the
    last team keep its cores. Linux numbers threads and processes in one sequence, so the last
    number handed out counts them; other processes take some too, so the fewest
    of up to ten rounds counts (a busy machine starts processes all the time; a thread a call
    would show in every round)."""
    case = make_case(mode, 25, B, I, H, np.float32, seed=30)
    calls = 20
    with kernel_threads(2):
        run(ops, mode, case)
        started = []
        for _ in range(10):
            before = _last_process_id()
            for _ in range(calls):
                run(ops, mode, case)
                ops.rnn_forward(mode, **case, training=False)
            started.append(_last_process_id() - before)
            if 0 <= started[-1] < calls // 2:
                break
    assert 0 <= min(started) < calls // 2, started


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("mode", MODES)
def test_batches_large_enough_to_split_across_threads_match_reference(mode, threads):
    """Big enough that the kernels give each thread a slice of the batch (uneven with 3)."""
    case = make_case(mode, 30, 33, 16, 64, np.float64, seed=9)
    lengths = np.random.default_rng(0).integers(0, 31, size=33)
    with kernel_threads(threads):
        assert_matches_reference(mode, case, lengths=lengths, reverse=(threads == 2))
        assert_matches_reference(mode, case, mask=holey_mask(30, 33), reverse=(threads != 2))


@pytest.mark.parametrize("threads", [2, 3])
@pytest.mark.parametrize("mode", MODES)
def test_little_work_on_a_few_rows_a_thread_matches_reference(mode, threads):
    """A slice of the batch goes to a thread for a million multiply-adds of recurrent work: here
    4 or 5 rows a thread (B = 8 on two, 13 on three) and 1.7-2.2 million multiply-adds, with
    lengths, in both directions."""
    B = 8 if threads == 2 else 13
    H = {1: (96, 80), 4: (48, 40), 3: (56, 48)}[GATES[mode]][threads - 2]  # 4.4-5.4 M in all
    case = make_case(mode, 60, B, 8, H, np.float64, seed=21)
    lengths = np.random.default_rng(3).integers(0, 61, size=B)
    with kernel_threads(threads):
        for reverse in (False, True):
            assert_matches_reference(mode, case, lengths=lengths, reverse=reverse)
            assert_inference_matches_reference(mode, case, lengths=lengths, reverse=reverse)
        assert_matches_reference(mode, case, mask=holey_mask(60, B), reverse=True)
        assert_inference_matches_reference(mode, case, mask=holey_mask(60, B))


@pytest.mark.parametrize("threads", [2, 3, 4])
@pytest.mark.parametrize("mode", MODES)
def test_weight_gradients_shared_out_by_gate_columns_match_reference(mode, threads):
    """The weight gradients are products over all T*B rows, which the threads share out by gate
    columns, cut on multiples of 16. With H = 48, GRU's recurrent side differs from the input
    side in columns 96-143 (the last gate block): on three threads one thread's columns start at
    96, on four one thread's straddle it (80-111) and one's start inside it (112-143)."""
    B, I, H = 64, 16, 48
    GH = GATES[mode] * H
    T = int(np.ceil(4.5e6 * threads / (B * GH * (I + H))))  # enough work for every thread
    case = make_case(mode, T, B, I, H, np.float64, seed=12)
    lengths = np.random.default_rng(4).integers(0, T + 1, size=B)
    with kernel_threads(threads):
        assert_matches_reference(mode, case, lengths=lengths, reverse=(threads == 3))


@pytest.mark.parametrize("threads", [2, 3])
@pytest.mark.parametrize("mode", MODES)
def test_small_batches_split_across_threads_by_hidden_units_match_reference(mode, threads):
    """Too few rows to share out, so the kernels give each thread a range of hidden units
    (here 144 units: uneven ranges, cut on multiples of 16) and sync the threads every step."""
    B, H = 3, 144
    T = steps_to_split_by_units(mode, B, H)
    case = make_case(mode, T, B, 8, H, np.float64, seed=10)
    lengths = np.array([T, T // 2, 0])
    with kernel_threads(threads):
        assert_matches_reference(mode, case, lengths=lengths, reverse=(threads == 2))
        assert_matches_reference(mode, case, mask=holey_mask(T, B), reverse=(threads != 2))


@pytest.mark.parametrize("threads", [2, 3])
@pytest.mark.parametrize("mode", MODES)
def test_a_few_steps_with_large_weights_split_across_threads_by_hidden_units_match_reference(mode, threads):
    """A step of one sequence with half a million multiply-adds by w_hh or more is split by
    hidden units however few the steps (here one, as in text generated a step at a time, and
    three, padded)."""
    H = {1: 720, 4: 360, 3: 416}[GATES[mode]]  # 518,400-519,168 multiply-adds a step
    for T, lengths in ((1, None), (3, np.array([2]))):
        case = make_case(mode, T, 1, 16, H, np.float64, seed=31)
        with kernel_threads(threads):
            assert_matches_reference(mode, case, lengths=lengths, reverse=(threads == 3))
            assert_inference_matches_reference(mode, case, lengths=lengths)


RUN_IN_CHILD = """
import numpy as np, sys
sys.path[:0] = {path!r}
from conftest import make_case
from fastrnn import ops, reference
case = make_case("lstm", 40, 2, 8, 256, np.float64, seed=15)   # split by hidden units
lengths = np.array([40, 7])
y = ops.rnn_forward("lstm", **case, lengths=lengths)[0]
want = reference.rnn_forward("lstm", **case, lengths=lengths)[0]
print(float(np.abs(y - want).max()))
"""


def test_a_thread_limit_below_the_asked_threads_still_computes_every_output(tmp_path):
    import os
    import subprocess
    import sys
    code = RUN_IN_CHILD.format(path=[os.path.dirname(__file__)])
    env = dict(os.environ, OMP_THREAD_LIMIT="1", OMP_NUM_THREADS="2")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert float(out.stdout) < 1e-10


def test_a_forked_child_can_use_the_kernels_after_the_parent_did():
    import multiprocessing
    case = make_case("lstm", 40, 2, 8, 256, np.float64, seed=15)
    want = ops.rnn_forward("lstm", **case)[0]      # the parent's threads have run
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(1) as pool:
        got = pool.apply_async(_forward_lstm, (case,)).get(timeout=60)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


def _forward_lstm(case):
    return ops.rnn_forward("lstm", **case)[0]


def test_a_child_forked_while_another_thread_runs_a_kernel_can_use_the_kernels():
    import multiprocessing
    import time
    long_case = make_case("lstm", 3000, 64, 64, 256, np.float32, seed=22)  # most of a second
    case = make_case("gru", 20, 3, 4, 8, np.float64, seed=23)
    want = ops.rnn_forward("gru", **case)[0]
    busy = threading.Thread(target=ops.rnn_forward, args=("lstm",), kwargs={**long_case, "training": False})
    busy.start()
    time.sleep(0.1)
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(1) as pool:  # forks now: it waits for the kernel call under way
        got = pool.apply_async(_forward_gru, (case,)).get(timeout=60)
    busy.join()
    np.testing.assert_array_equal(got, want)


def _forward_gru(case):
    return ops.rnn_forward("gru", **case)[0]


def test_a_child_forked_after_kernels_ran_on_threads_stays_on_one():
    import multiprocessing
    with kernel_threads(2):
        ops.rnn_forward("lstm", **make_case("lstm", 40, 64, 8, 256, np.float32, seed=24))
        with multiprocessing.get_context("fork").Pool(1) as pool:
            threads, error = pool.apply_async(_ask_for_two_threads).get(timeout=60)
    assert threads == 1
    assert "forked after the kernels had run on several threads" in error


def _ask_for_two_threads():
    threads = ops.get_num_threads()
    try:
        ops.set_num_threads(2)
    except RuntimeError as e:
        ops.set_num_threads(1)  # one thread is always allowed
        return threads, str(e)
    return threads, ""


def test_the_kernels_plan_tells_how_a_call_is_shared_out():
    """plan(cell, T, B, H) is what the tests use to take the path they mean to test: many rows
    split by rows, a batch too small for that split by hidden units, little work not at all."""
    cell = _core.Cell("lstm", "tanh")
    with kernel_threads(2):
        assert _core.plan(cell, 100, 64, 128) == (2, False)
        assert _core.plan(cell, 1000, 2, 256) == (2, True)
        assert _core.plan(cell, 1, 1, 8) == (1, False)
    with kernel_threads(1):
        assert _core.plan(cell, 1000, 64, 256) == (1, False)
    with pytest.raises(ValueError, match="T, B and H"):
        _core.plan(cell, -1, 1, 8)
