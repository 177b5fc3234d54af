"""The block cache behind the kernels' arrays (src/cpp/memory.h): freed blocks kept for the next
call of their size, the limit and its environment variable, eviction, and results that do not
depend on what a reused block held.
"""
import contextlib
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from conftest import make_case
from fastrnn import ops


def test_a_freed_output_block_is_reused_by_the_next_call_of_the_same_size():
    case = make_case("gru", 50, 32, 8, 64, np.float32, seed=18)  # y: 400 KB
    ops.empty_cache()
    y = ops.rnn_forward("gru", **case, training=False)[0]
    first, want = y.ctypes.data, y.copy()
    del y
    assert ops.cached_bytes() >= want.nbytes
    y = ops.rnn_forward("gru", **case, training=False)[0]
    assert y.ctypes.data == first  # no fresh pages to fault in
    np.testing.assert_array_equal(y, want)


@contextlib.contextmanager
def cache_limit(nbytes):
    """Keep at most nbytes of freed blocks inside the with statement, then go back to the previous
    limit."""
    before = ops.get_cache_limit()
    ops.set_cache_limit(nbytes)
    try:
        yield
    finally:
        ops.set_cache_limit(before)


def block_of(nbytes):
    """A kernel array of nbytes (a multiple of 4096), made by a cheap product."""
    return ops.matmul(np.ones((nbytes // 4096, 1), np.float32), np.ones((1, 1024), np.float32))


def test_a_freed_80_mb_block_is_kept_for_the_next_call_by_default():
    """The default limit is 1 GB, so a training step's workspace of hundreds of MB is reused by
    the next step instead of being faulted in afresh."""
    assert ops.get_cache_limit() == 2**30
    ops.empty_cache()
    big = block_of(80 << 20)
    first = big.ctypes.data
    del big
    assert ops.cached_bytes() == 80 << 20
    assert block_of(80 << 20).ctypes.data == first


def test_kept_blocks_stay_under_the_limit_and_empty_cache_gives_them_back():
    with cache_limit(64 << 20):
        big = [block_of((8 << 20) + k * 4096) for k in range(12)]
        del big  # twelve blocks of 8 MB and more
        assert 0 < ops.cached_bytes() <= 64 << 20
        ops.empty_cache()
        assert ops.cached_bytes() == 0


def test_a_lower_limit_hands_back_the_oldest_blocks_at_once_and_zero_keeps_none():
    ops.empty_cache()
    oldest, middle, newest = (block_of(4 << 20) for _ in range(3))
    address = newest.ctypes.data
    del oldest, middle, newest  # freed in this order
    assert ops.cached_bytes() == 12 << 20
    with cache_limit(5 << 20):
        assert ops.cached_bytes() == 4 << 20
        assert block_of(4 << 20).ctypes.data == address  # the newest is the one kept
    with cache_limit(0):
        assert ops.cached_bytes() == 0
        block_of(4 << 20)  # made and freed at once
        assert ops.cached_bytes() == 0


def test_a_block_over_the_limit_is_handed_back_without_evicting_the_others():
    ops.empty_cache()
    with cache_limit(5 << 20):
        small = block_of(4 << 20)
        del small
        big = block_of(8 << 20)
        del big
        assert ops.cached_bytes() == 4 << 20


def test_a_block_the_size_of_the_limit_is_kept():
    ops.empty_cache()
    with cache_limit(4 << 20):
        block = block_of(4 << 20)
        del block
        assert ops.cached_bytes() == 4 << 20


def test_blocks_beyond_the_limit_go_oldest_first_and_the_rest_stay():
    ops.empty_cache()
    with cache_limit(10 << 20):
        blocks = [block_of(4 << 20) for _ in range(3)]
        addresses = [b.ctypes.data for b in blocks]
        for i in range(3):
            blocks[i] = None  # freed oldest first
        assert ops.cached_bytes() == 8 << 20  # the two newest
        again = [block_of(4 << 20) for _ in range(2)]
        assert {b.ctypes.data for b in again} == set(addresses[1:])


def test_a_kept_block_serves_a_smaller_request_it_exceeds_by_at_most_an_eighth():
    """Batches of varying length reuse each other's blocks: a 4 MB block serves a 3644 KB request
    (4096 <= 3644 + 3644 / 8), not a 3640 KB one."""
    ops.empty_cache()
    block = block_of(4 << 20)
    address = block.ctypes.data
    del block
    assert block_of(3640 << 10).ctypes.data != address
    assert block_of(3644 << 10).ctypes.data == address
    ops.empty_cache()


def test_a_block_of_the_size_asked_for_comes_first_then_the_longest_kept_that_fits():
    """In a loop of one shape whose blocks differ a little in size, each request gets its own
    block back, so none sits idle until it is handed back."""
    ops.empty_cache()
    oldest, larger, exact = block_of(4352 << 10), block_of(4224 << 10), block_of(4 << 20)
    addresses = [oldest.ctypes.data, larger.ctypes.data, exact.ctypes.data]
    del oldest, larger, exact  # freed in this order
    first, second, third = block_of(4 << 20), block_of(4 << 20), block_of(4 << 20)
    got = [first.ctypes.data, second.ctypes.data, third.ctypes.data]
    assert got == [addresses[2], addresses[0], addresses[1]]  # exact, then oldest, then larger
    del first, second, third
    ops.empty_cache()


def test_of_equal_kept_blocks_the_newest_is_taken():
    ops.empty_cache()
    older, newer = block_of(4 << 20), block_of(4 << 20)
    address = newer.ctypes.data
    del older, newer  # freed in this order
    assert block_of(4 << 20).ctypes.data == address
    ops.empty_cache()


def test_a_larger_block_handed_out_comes_back_with_its_own_size():
    ops.empty_cache()
    block_of(4352 << 10)  # made and freed at once
    smaller = block_of(4 << 20)
    assert ops.cached_bytes() == 0
    del smaller
    assert ops.cached_bytes() == 4352 << 10
    ops.empty_cache()


def test_results_do_not_depend_on_a_larger_reused_block_full_of_nan():
    """Blocks of a longer call (T = 32), filled with NaN, serve a shorter one (T = 30): every
    output of the shorter call equals that of a call on fresh blocks."""
    T = 30
    case = {t: make_case("lstm", t, 33, 16, 64, np.float64, seed=7) for t in (T, T + 2)}
    with cache_limit(0):
        y, h_n, c_n, cache = ops.rnn_forward("lstm", **case[T])
        grads = ops.rnn_backward(cache, np.ones_like(y))
        want = [y.copy(), h_n.copy(), c_n.copy()] + [g.copy() for g in grads.values()]
        del y, h_n, c_n, cache, grads
    y, h_n, c_n, cache = ops.rnn_forward("lstm", **case[T + 2])
    grads = ops.rnn_backward(cache, np.ones_like(y))
    arrays = [y, h_n, c_n, *grads.values(), *cache.workspace.values()]
    held = {a.ctypes.data: a.nbytes for a in arrays}
    for a in arrays:
        a.fill(np.nan)
    del y, h_n, c_n, cache, grads, arrays, a
    y, h_n, c_n, cache = ops.rnn_forward("lstm", **case[T])
    grads = ops.rnn_backward(cache, np.ones_like(y))
    gates = cache.workspace["gates"]
    assert held.get(gates.ctypes.data, 0) > gates.nbytes  # the longer call's, larger block
    for got, expected in zip([y, h_n, c_n, *grads.values()], want):
        np.testing.assert_array_equal(got, expected)
    ops.empty_cache()


def test_a_kept_block_not_taken_again_while_1024_more_come_back_is_handed_back():
    """Calls whose shapes keep changing fill the cache less: of 1100 blocks freed, the newest
    1024 are kept, well under the limit."""
    ops.empty_cache()
    blocks = [block_of(128 << 10) for _ in range(1100)]
    addresses = [b.ctypes.data for b in blocks]
    for i in range(1100):
        blocks[i] = None  # freed oldest first
    assert ops.cached_bytes() == 1024 * (128 << 10)
    again = [block_of(128 << 10) for _ in range(1024)]
    assert {b.ctypes.data for b in again} == set(addresses[-1024:])
    del again
    ops.empty_cache()


def test_a_block_idle_while_1024_others_come_back_goes_even_with_few_blocks_kept():
    """The idle count is of blocks coming back, not of blocks kept: one block taken and freed
    again 1024 times pushes out a block freed before them, though only two are ever kept."""
    ops.empty_cache()
    block_of(128 << 10)
    for _ in range(1023):
        block_of(256 << 10)
    assert ops.cached_bytes() == (128 + 256) << 10  # 1023 came back after it: still kept
    block_of(256 << 10)
    assert ops.cached_bytes() == 256 << 10
    ops.empty_cache()


@pytest.mark.parametrize("nbytes", [np.int64(1 << 20), np.uint64(2**63 - 1), 0])
def test_set_cache_limit_takes_numpy_integers(nbytes):
    with cache_limit(nbytes):
        assert ops.get_cache_limit() == int(nbytes)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS and /proc are Linux's")
def test_kept_blocks_go_back_when_a_request_of_another_size_fails():
    code = textwrap.dedent("""
        import resource, numpy as np
        from fastrnn import ops
        block = lambda n: ops.matmul(np.ones((n // 4096, 1), np.float32), np.ones((1, 1024), np.float32))
        kept = [block((40 + i) << 20) for i in range(8)]
        del kept
        assert ops.cached_bytes() > 300 << 20
        vm = int(open("/proc/self/status").read().split("VmSize:")[1].split()[0]) * 1024
        resource.setrlimit(resource.RLIMIT_AS, (vm + (200 << 20), resource.RLIM_INFINITY))
        big = block(300 << 20)  # fits only once the kept blocks are handed back
        print("ok", ops.cached_bytes())
    """)
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and run.stdout.startswith("ok 0"), run.stderr[-500:]


@pytest.mark.parametrize("value, limit", [("4096", 4096), (" 0 ", 0), ("", 2**30)])
def test_fastrnn_cache_limit_sets_the_limit_at_import(value, limit):
    code = "from fastrnn import ops; print(ops.get_cache_limit())"
    env = dict(os.environ, FASTRNN_CACHE_LIMIT=value)
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 0 and run.stdout.split() == [str(limit)], run.stderr[-500:]


@pytest.mark.parametrize("value", ["1GB", "-1", "1e9", "\u00b2", str(2**63)])
def test_a_bad_fastrnn_cache_limit_fails_the_import_naming_it(value):
    env = dict(os.environ, FASTRNN_CACHE_LIMIT=value)
    run = subprocess.run([sys.executable, "-c", "import fastrnn.ops"], capture_output=True, text=True, env=env,
                         timeout=120)
    assert run.returncode != 0 and "FASTRNN_CACHE_LIMIT=" in run.stderr


@pytest.mark.parametrize("nbytes", [-1, 2**63, 1.5, True, None, "1024"])
def test_set_cache_limit_takes_only_a_byte_count(nbytes):
    before = ops.get_cache_limit()
    with pytest.raises(ValueError, match="nbytes must be an integer from 0"):
        ops.set_cache_limit(nbytes)
    assert ops.get_cache_limit() == before


def test_results_do_not_depend_on_what_a_reused_block_held_before():
    """Every output element is written by the kernels: a block that held NaNs gives the same
    results as a fresh one."""
    case = make_case("lstm", 30, 33, 16, 64, np.float64, seed=19)
    ops.empty_cache()
    y, h_n, c_n, cache = ops.rnn_forward("lstm", **case)
    grads = ops.rnn_backward(cache, np.ones_like(y))
    want = [y.copy(), h_n.copy(), c_n.copy()] + [g.copy() for g in grads.values()]
    held = {a.ctypes.data for a in [y, h_n, c_n, *grads.values(), *cache.workspace.values()]}
    for a in [y, h_n, c_n, *grads.values(), *cache.workspace.values()]:
        a.fill(np.nan)
    del y, h_n, c_n, cache, grads, a
    y, h_n, c_n, cache = ops.rnn_forward("lstm", **case)
    grads = ops.rnn_backward(cache, np.ones_like(y))
    assert y.ctypes.data in held and cache.workspace["gates"].ctypes.data in held
    for got, w in zip([y, h_n, c_n, *grads.values()], want):
        np.testing.assert_array_equal(got, w)
