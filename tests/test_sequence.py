"""pad_sequences: stacking variable-length sequences into one batch array."""
import os

import numpy as np
import pytest

from fastrnn.sequence import pad_sequences


def slow_pad(seqs, maxlen, padding, truncating, value):
    """The obvious construction, one row and one step at a time."""
    rows = []
    for seq in seqs:
        seq = list(seq)
        if len(seq) > maxlen:
            seq = seq[:maxlen] if truncating == "post" else seq[len(seq) - maxlen:]
        fill = [value] * (maxlen - len(seq))
        rows.append(seq + fill if padding == "post" else fill + seq)
    return np.array(rows, dtype=np.int32).reshape(len(seqs), maxlen)


def test_pads_and_truncates_before_each_sequence_by_default_as_keras():
    out = pad_sequences([[1, 2, 3], [4], [5, 6]])
    np.testing.assert_array_equal(out, [[1, 2, 3], [0, 0, 4], [0, 5, 6]])
    assert out.dtype == np.int32
    np.testing.assert_array_equal(pad_sequences([[1, 2, 3], [4]], maxlen=2), [[2, 3], [0, 4]])


def test_post_padding_puts_the_real_steps_first():
    out = pad_sequences([[1, 2, 3], [4]], padding="post", truncating="post", maxlen=2)
    np.testing.assert_array_equal(out, [[1, 2], [4, 0]])


@pytest.mark.parametrize("padding", ["pre", "post"])
@pytest.mark.parametrize("truncating", ["pre", "post"])
@pytest.mark.parametrize("maxlen", [0, 1, 3, 7])
def test_every_padding_and_truncating_matches_the_slow_construction(padding, truncating, maxlen):
    rng = np.random.default_rng(maxlen)
    seqs = [list(rng.integers(1, 9, size=n)) for n in (0, 1, 4, 6, 9)]
    out = pad_sequences(seqs, maxlen=maxlen, padding=padding, truncating=truncating, value=-1)
    np.testing.assert_array_equal(out, slow_pad(seqs, maxlen, padding, truncating, -1))


def test_return_lengths_counts_the_kept_steps():
    padded, lengths = pad_sequences([[1, 2, 3, 4], [5], []], maxlen=3, return_lengths=True,
                                    padding="post", truncating="post")
    np.testing.assert_array_equal(lengths, [3, 1, 0])
    np.testing.assert_array_equal(padded, [[1, 2, 3], [5, 0, 0], [0, 0, 0]])


def test_steps_may_be_vectors():
    a = np.ones((2, 3))
    b = 2 * np.ones((1, 3))
    out = pad_sequences([a, b], dtype="float32", value=-1.0)
    assert out.shape == (2, 2, 3)
    np.testing.assert_array_equal(out[1], [[-1, -1, -1], [2, 2, 2]])


def test_string_sequences_pad_with_a_string_value():
    out = pad_sequences([["a", "b"], ["c"]], dtype=object, value="<pad>")
    assert out.tolist() == [["a", "b"], ["<pad>", "c"]]


def test_no_sequences_gives_an_empty_batch():
    assert pad_sequences([]).shape == (0, 0)
    assert pad_sequences([], maxlen=4).shape == (0, 4)


def test_unknown_padding_side_is_a_value_error():
    with pytest.raises(ValueError, match="padding must be 'pre' or 'post'"):
        pad_sequences([[1]], padding="middle")
    with pytest.raises(ValueError, match="truncating must be 'pre' or 'post'"):
        pad_sequences([[1]], truncating="end")


def test_negative_maxlen_is_a_value_error():
    with pytest.raises(ValueError, match="maxlen must be >= 0"):
        pad_sequences([[1]], maxlen=-1)


def test_non_int_maxlen_is_a_type_error():
    with pytest.raises(TypeError, match="maxlen must be an int"):
        pad_sequences([[1]], maxlen=2.5)


def test_a_bare_string_or_scalar_is_a_value_error_as_in_keras():
    with pytest.raises(ValueError, match="single string"):
        pad_sequences("abc")
    with pytest.raises(ValueError, match=r"sequences\[1\]"):
        pad_sequences([[1], 5])
    with pytest.raises(ValueError, match="iterable"):
        pad_sequences(5)


def test_steps_of_different_shapes_are_a_value_error():
    with pytest.raises(ValueError, match=r"sequences\[1\] has steps of shape \(3,\)"):
        pad_sequences([np.zeros((2, 2)), np.zeros((1, 3))])


def test_a_string_value_needs_a_string_dtype():
    with pytest.raises(ValueError, match="string"):
        pad_sequences([[1]], value="x")


def test_utils_re_exports_pad_sequences():
    from fastrnn import utils

    assert utils.pad_sequences is pad_sequences


# Keras's own pad_sequences, from the same arguments (maxlen=0 is left out: Keras fails on it).
KERAS_SEQUENCES = [[3, 1, 4], [1], [], [5, 9, 2, 6, 5], [3, 5]]


@pytest.fixture(scope="module")
def keras_pad():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    return keras.utils.pad_sequences


@pytest.mark.parametrize("padding", ["pre", "post"])
@pytest.mark.parametrize("truncating", ["pre", "post"])
@pytest.mark.parametrize("maxlen", [None, 2, 4, 8])
def test_equals_keras_for_every_padding_and_truncating(keras_pad, padding, truncating, maxlen):
    ours = pad_sequences(KERAS_SEQUENCES, maxlen=maxlen, padding=padding, truncating=truncating)
    theirs = keras_pad(KERAS_SEQUENCES, maxlen=maxlen, padding=padding, truncating=truncating)
    assert ours.dtype == theirs.dtype
    np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("dtype, value", [("int32", 0.0), ("int64", -1), ("float32", 0.5),
                                          ("float64", -2.25), ("uint8", 7), ("bool", 0)])
def test_equals_keras_for_dtypes_and_values(keras_pad, dtype, value):
    ours = pad_sequences(KERAS_SEQUENCES, maxlen=4, dtype=dtype, value=value)
    theirs = keras_pad(KERAS_SEQUENCES, maxlen=4, dtype=dtype, value=value)
    assert ours.dtype == theirs.dtype
    np.testing.assert_array_equal(ours, theirs)


def test_equals_keras_with_vector_steps_and_defaults(keras_pad):
    seqs = [np.arange(6.0).reshape(3, 2), np.ones((1, 2)), np.zeros((0, 2))]
    for kwargs in ({}, {"dtype": "float32", "value": -1.0}, {"padding": "post", "maxlen": 2}):
        np.testing.assert_array_equal(pad_sequences(seqs, **kwargs), keras_pad(seqs, **kwargs))


def test_the_defaults_are_keras_s(keras_pad):
    import inspect

    ours = inspect.signature(pad_sequences).parameters
    for name, param in inspect.signature(keras_pad).parameters.items():
        assert ours[name].default == param.default, name


def test_bad_arguments_are_value_errors_as_in_keras(keras_pad):
    for kwargs in ({"padding": "middle"}, {"truncating": "end"}, {"value": "x"}):
        with pytest.raises(ValueError):
            keras_pad([[1, 2]], **kwargs)
        with pytest.raises(ValueError):
            pad_sequences([[1, 2]], **kwargs)
