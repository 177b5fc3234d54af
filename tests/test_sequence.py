"""pad_sequences: stacking variable-length sequences into one batch array."""
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


def test_pads_after_each_sequence_by_default():
    out = pad_sequences([[1, 2, 3], [4], [5, 6]])
    np.testing.assert_array_equal(out, [[1, 2, 3], [4, 0, 0], [5, 6, 0]])
    assert out.dtype == np.int32


def test_pre_padding_matches_keras_default_layout():
    out = pad_sequences([[1, 2, 3], [4]], padding="pre", truncating="pre")
    np.testing.assert_array_equal(out, [[1, 2, 3], [0, 0, 4]])


@pytest.mark.parametrize("padding", ["pre", "post"])
@pytest.mark.parametrize("truncating", ["pre", "post"])
@pytest.mark.parametrize("maxlen", [0, 1, 3, 7])
def test_every_padding_and_truncating_matches_the_slow_construction(padding, truncating, maxlen):
    rng = np.random.default_rng(maxlen)
    seqs = [list(rng.integers(1, 9, size=n)) for n in (0, 1, 4, 6, 9)]
    out = pad_sequences(seqs, maxlen=maxlen, padding=padding, truncating=truncating, value=-1)
    np.testing.assert_array_equal(out, slow_pad(seqs, maxlen, padding, truncating, -1))


def test_return_lengths_counts_the_kept_steps():
    padded, lengths = pad_sequences([[1, 2, 3, 4], [5], []], maxlen=3, return_lengths=True)
    np.testing.assert_array_equal(lengths, [3, 1, 0])
    np.testing.assert_array_equal(padded, [[1, 2, 3], [5, 0, 0], [0, 0, 0]])


def test_steps_may_be_vectors():
    a = np.ones((2, 3))
    b = 2 * np.ones((1, 3))
    out = pad_sequences([a, b], dtype="float32", value=-1.0)
    assert out.shape == (2, 2, 3)
    np.testing.assert_array_equal(out[1], [[2, 2, 2], [-1, -1, -1]])


def test_string_sequences_pad_with_a_string_value():
    out = pad_sequences([["a", "b"], ["c"]], dtype=object, value="<pad>")
    assert out.tolist() == [["a", "b"], ["c", "<pad>"]]


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


def test_a_bare_string_or_scalar_is_refused():
    with pytest.raises(TypeError, match="single string"):
        pad_sequences("abc")
    with pytest.raises(TypeError, match=r"sequences\[1\]"):
        pad_sequences([[1], 5])


def test_steps_of_different_shapes_are_a_value_error():
    with pytest.raises(ValueError, match=r"sequences\[1\] has steps of shape \(3,\)"):
        pad_sequences([np.zeros((2, 2)), np.zeros((1, 3))])


def test_a_string_value_needs_a_string_dtype():
    with pytest.raises(TypeError, match="string"):
        pad_sequences([[1]], value="x")


def test_utils_re_exports_pad_sequences():
    from fastrnn import utils

    assert utils.pad_sequences is pad_sequences
