"""fastrnn.ops.matmul, the model layers' products on the kernels' threads, against NumPy."""
import numpy as np
import pytest

from fastrnn import ops


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matmul_matches_numpy_for_plain_and_transposed_operands(dtype):
    rng = np.random.default_rng(16)
    a = rng.standard_normal((37, 19)).astype(dtype)
    b = rng.standard_normal((19, 23)).astype(dtype)
    tol = 1e-12 if dtype == np.float64 else 1e-4
    for x, y in [(a, b), (a.T.copy().T, b), (a, b.T.copy().T), (a[:, ::1], b[::1])]:
        np.testing.assert_allclose(ops.matmul(x, y), a @ b, rtol=tol, atol=tol)
    np.testing.assert_allclose(ops.matmul(a[::2], b), a[::2] @ b, rtol=tol, atol=tol)  # strided rows


def test_matmul_falls_back_to_numpy_for_mixed_dtypes_and_keeps_shape_errors():
    a = np.ones((2, 3), np.float32)
    assert ops.matmul(a, np.ones((3, 4), np.float64)).dtype == np.float64
    with pytest.raises(ValueError):
        ops.matmul(a, np.ones((4, 4), np.float32))


def test_matmul_of_lists_or_masked_arrays_is_numpys():
    """Only plain ndarrays go to the kernels; anything else keeps NumPy's meaning."""
    assert ops.matmul([[1.0, 2.0]], [[3.0], [4.0]]).tolist() == [[11.0]]
    a = np.ma.masked_array(np.ones((2, 2), np.float32), mask=[[False, True], [False, False]])
    got = ops.matmul(a, a)
    assert isinstance(got, np.ma.MaskedArray)
    assert got.mask.tolist() == (a @ a).mask.tolist() == [[False, True], [False, False]]
