"""Text helpers: vocabularies, training windows, and step-by-step sampling from a character model."""
import json

import numpy as np
import pytest

from fastrnn.text import (
    GREEDY_TEMPERATURE, CharSampler, CharVocab, WordVocab, choose_next, next_char_windows, sample,
    stateful_copy, tokenize, vocab_from_dict,
)

CORPUS = "the cat sat on the mat.\nthe dog sat on the log!\n"


# --------------------------------------------------------------------------- CharVocab

def test_char_vocab_holds_the_distinct_characters_in_code_point_order():
    vocab = CharVocab.from_text("banana")
    assert vocab.chars == "abn" and vocab.size == 3 and len(vocab) == 3


def test_char_encode_then_decode_gives_back_the_text():
    vocab = CharVocab.from_text(CORPUS)
    ids = vocab.encode(CORPUS)
    assert ids.dtype == np.int32 and ids.shape == (len(CORPUS),)
    assert [vocab.chars[i] for i in ids] == list(CORPUS)  # each id names its own character
    assert vocab.decode(ids) == CORPUS


def test_char_encode_names_the_characters_the_vocabulary_lacks():
    vocab = CharVocab.from_text("abc")
    with pytest.raises(ValueError, match="'xz'"):
        vocab.encode("axbzx")
    assert vocab.missing("axbzx") == ["x", "z"]


def test_char_vocab_round_trips_through_json():
    vocab = CharVocab.from_text(CORPUS + "é\t\"\\")
    back = vocab_from_dict(json.loads(json.dumps(vocab.to_dict())))
    assert back == vocab
    np.testing.assert_array_equal(back.encode(CORPUS), vocab.encode(CORPUS))


def test_char_vocab_refuses_empty_text_and_repeated_characters():
    with pytest.raises(ValueError, match="empty"):
        CharVocab.from_text("")
    with pytest.raises(ValueError, match="distinct"):
        CharVocab("aba")
    with pytest.raises(TypeError, match="str"):
        CharVocab.from_text(b"bytes")


def test_char_decode_refuses_ids_out_of_range():
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        CharVocab("abc").decode([0, 3])


# --------------------------------------------------------------------------- WordVocab

def test_tokenize_lowercases_and_keeps_inner_apostrophes():
    assert tokenize("Didn't LOVE it -- 10/10, really!") == ["didn't", "love", "it", "10", "10", "really"]
    assert tokenize("It\u2019s fine") == ["it's", "fine"]


def test_word_vocab_reserves_padding_and_unknown_then_ranks_by_frequency():
    vocab = WordVocab.from_texts(["b a c a", "a b d"])
    assert vocab.words == ["<pad>", "<unk>", "a", "b", "c", "d"]  # a:3, b:2, then ties by name
    assert vocab.PAD_ID == 0 and vocab.UNK_ID == 1


def test_word_encode_maps_unseen_words_to_unknown():
    vocab = WordVocab.from_texts(["good film", "bad film"])
    np.testing.assert_array_equal(vocab.encode("Good, GREAT film"),
                                  [vocab.words.index("good"), 1, vocab.words.index("film")])


def test_word_decode_gives_back_the_tokens_of_known_words():
    text = "The film was good, the end was bad."
    vocab = WordVocab.from_texts([text])
    assert vocab.decode(vocab.encode(text)) == " ".join(tokenize(text))


def test_encode_batch_pads_before_each_text_with_zeros_as_keras():
    vocab = WordVocab.from_texts(["a b c", "a"])
    batch = vocab.encode_batch(["a b c", "a", ""])
    a, b, c = (vocab.words.index(w) for w in "abc")
    np.testing.assert_array_equal(batch, [[a, b, c], [0, 0, a], [0, 0, 0]])
    assert batch.dtype == np.int32
    assert vocab.decode(batch[1]) == "a"
    after = vocab.encode_batch(["a b c", "a"], padding="post")
    np.testing.assert_array_equal(after, [[a, b, c], [a, 0, 0]])


def test_encode_batch_cuts_long_texts_to_maxlen_keeping_their_end():
    vocab = WordVocab.from_texts(["a b c d"])
    assert vocab.encode_batch(["a b c d"], maxlen=2).tolist() == [[4, 5]]
    assert vocab.encode_batch(["a b c d"], maxlen=2, truncating="post").tolist() == [[2, 3]]


def test_word_vocab_limits_size_and_drops_rare_words():
    texts = ["a a a b b c"]
    assert WordVocab.from_texts(texts, max_size=4).words == ["<pad>", "<unk>", "a", "b"]
    assert WordVocab.from_texts(texts, min_count=2).words == ["<pad>", "<unk>", "a", "b"]
    with pytest.raises(ValueError, match="max_size must be >= 2"):
        WordVocab.from_texts(texts, max_size=1)


def test_word_vocab_round_trips_through_json():
    vocab = WordVocab.from_texts(["naïve café", "it's a café"])
    back = vocab_from_dict(json.loads(json.dumps(vocab.to_dict())))
    assert back == vocab and back.words[:2] == ["<pad>", "<unk>"]


def test_vocab_from_dict_refuses_unknown_kinds():
    with pytest.raises(ValueError, match="unknown vocabulary kind"):
        vocab_from_dict({"kind": "bytes"})
    with pytest.raises(ValueError, match="'kind'"):
        vocab_from_dict({"chars": "abc"})


# --------------------------------------------------------------------------- windows

def slow_next_char_pairs(ids, seq_len, step, return_sequences):
    xs, ys = [], []
    start = 0
    while start + seq_len < len(ids):
        xs.append(ids[start:start + seq_len])
        ys.append(ids[start + 1:start + seq_len + 1] if return_sequences else ids[start + seq_len])
        start += step
    return np.array(xs), np.array(ys)


@pytest.mark.parametrize("seq_len, step", [(1, 1), (5, 1), (5, 3), (8, 8), (30, 7)])
@pytest.mark.parametrize("return_sequences", [True, False])
def test_next_char_windows_match_the_slow_construction(seq_len, step, return_sequences):
    ids = CharVocab.from_text(CORPUS).encode(CORPUS)
    x, y = next_char_windows(ids, seq_len, step=step, return_sequences=return_sequences)
    x_slow, y_slow = slow_next_char_pairs(ids, seq_len, step, return_sequences)
    np.testing.assert_array_equal(x, x_slow)
    np.testing.assert_array_equal(y, y_slow)


def test_next_char_windows_are_read_only_views_of_the_corpus():
    ids = np.arange(10_000, dtype=np.int32)
    x, y = next_char_windows(ids, seq_len=100)
    assert x.shape == (9_900, 100)
    assert np.shares_memory(x, ids) and np.shares_memory(y, ids)
    assert not x.flags.writeable and not y.flags.writeable


def test_next_char_windows_need_one_more_id_than_seq_len():
    with pytest.raises(ValueError, match="needs at least 6"):
        next_char_windows(np.arange(5), seq_len=5)
    with pytest.raises(ValueError, match="step must be >= 1"):
        next_char_windows(np.arange(50), seq_len=5, step=0)


# --------------------------------------------------------------------------- choose_next

def test_choose_next_at_temperature_one_draws_by_the_probabilities():
    probs = np.array([0.5, 0.3, 0.15, 0.05])
    rng = np.random.default_rng(0)
    n = 20_000
    counts = np.bincount([choose_next(probs, 1.0, None, rng) for _ in range(n)], minlength=4)
    sigma = np.sqrt(n * probs * (1 - probs))
    assert np.all(np.abs(counts - n * probs) < 5 * sigma)


def test_choose_next_at_temperature_one_half_draws_by_squared_probabilities():
    probs = np.array([0.6, 0.3, 0.1])
    expected = probs**2 / np.sum(probs**2)  # p^(1/T), renormalised
    rng = np.random.default_rng(1)
    n = 20_000
    counts = np.bincount([choose_next(probs, 0.5, None, rng) for _ in range(n)], minlength=3)
    sigma = np.sqrt(n * expected * (1 - expected))
    assert np.all(np.abs(counts - n * expected) < 5 * sigma)


def test_choose_next_with_top_k_only_draws_the_k_most_likely():
    probs = np.array([0.1, 0.4, 0.05, 0.3, 0.15])
    rng = np.random.default_rng(2)
    drawn = {choose_next(probs, 1.0, 2, rng) for _ in range(2_000)}
    assert drawn == {1, 3}


@pytest.mark.parametrize("temperature", [0.0, GREEDY_TEMPERATURE, 1e-9])
def test_choose_next_near_zero_temperature_takes_the_arg_max(temperature):
    probs = np.array([0.3, 0.31, 0.39 - 1e-12, 1e-12])
    rng = np.random.default_rng(3)
    assert {choose_next(probs, temperature, None, rng) for _ in range(50)} == {2}


# --------------------------------------------------------------------------- sampling from a model

@pytest.fixture(scope="module")
def char_model():
    """A small untrained character model (float64, so arg-max ties cannot flip) and its vocabulary."""
    import fastrnn
    from fastrnn import layers as L

    fastrnn.utils.set_random_seed(7)
    vocab = CharVocab.from_text(CORPUS)
    model = fastrnn.Sequential([
        L.Embedding(vocab.size, 8, dtype="float64"),
        L.LSTM(16, return_sequences=True, dtype="float64"),
        L.GRU(12, return_sequences=True, dtype="float64"),
        L.Dense(vocab.size, activation="softmax", dtype="float64"),
    ])
    model.build((None, None))
    return model, vocab


def test_stateful_copy_fed_in_pieces_matches_the_model_fed_whole(char_model):
    model, vocab = char_model
    ids = vocab.encode(CORPUS[:30])[None, :]  # (1, 30)
    whole = model.predict(ids)  # (1, 30, V)
    copy = stateful_copy(model)
    pieces = [copy.predict(ids[:, :10]), copy.predict(ids[:, 10:11]), copy.predict(ids[:, 11:])]
    np.testing.assert_allclose(np.concatenate(pieces, axis=1), whole, rtol=1e-12, atol=1e-14)
    copy.reset_states()
    np.testing.assert_allclose(copy.predict(ids[:, :5]), whole[:, :5], rtol=1e-12, atol=1e-14)


def test_stateful_copy_leaves_the_original_model_stateless(char_model):
    model, _ = char_model
    stateful_copy(model)
    assert not any(getattr(layer, "stateful", False) for layer in model.layers)


def test_greedy_sampling_matches_rerunning_the_whole_prefix(char_model):
    """Temperature 0 picks the arg-max; the slow way re-runs the original model on
    the whole text so far for every character."""
    model, vocab = char_model
    prime, length = "the c", 25
    text = prime
    for _ in range(length):
        probs = model.predict(vocab.encode(text)[None, :])[0, -1]  # (V,)
        text += vocab.chars[int(np.argmax(probs))]
    assert sample(model, vocab, prime, length, temperature=0) == text[len(prime):]


def test_sampling_with_the_same_seed_repeats(char_model):
    model, vocab = char_model
    first = sample(model, vocab, "the", 40, temperature=1.0, seed=11)
    assert sample(model, vocab, "the", 40, temperature=1.0, seed=11) == first
    assert sample(model, vocab, "the", 40, temperature=1.0, seed=12) != first
    assert len(first) == 40 and set(first) <= set(vocab.chars)


def test_sampling_without_a_seed_repeats_after_set_random_seed(char_model):
    import fastrnn

    model, vocab = char_model
    fastrnn.utils.set_random_seed(5)
    first = sample(model, vocab, "the", 30)
    fastrnn.utils.set_random_seed(5)
    assert sample(model, vocab, "the", 30) == first


def test_each_new_character_costs_one_time_step(char_model):
    model, vocab = char_model
    sampler = CharSampler(model, vocab)
    fed = []
    predict = sampler.step_model.predict

    def recording_predict(x, **kwargs):
        fed.append(np.asarray(x).shape)
        return predict(x, **kwargs)

    sampler.step_model.predict = recording_predict
    sampler.generate("the cat", 20, seed=0)
    assert fed[0] == (1, 7)  # the prime, once
    assert fed[1:] == [(1, 1)] * 19  # then one step per character (the last is not fed back)


def test_a_sampler_starts_each_text_from_a_fresh_state(char_model):
    model, vocab = char_model
    sampler = CharSampler(model, vocab)
    first = sampler.generate("the", 20, temperature=0)
    assert sampler.generate("the", 20, temperature=0) == first


def test_sampling_refuses_bad_arguments(char_model):
    model, vocab = char_model
    with pytest.raises(ValueError, match="prime must have at least one character"):
        sample(model, vocab, "", 5)
    with pytest.raises(ValueError, match="not in the vocabulary: 'Z'"):
        sample(model, vocab, "Zoo", 5)
    with pytest.raises(ValueError, match="temperature must be finite and >= 0"):
        sample(model, vocab, "the", 5, temperature=-1)
    with pytest.raises(ValueError, match="top_k must be >= 1"):
        sample(model, vocab, "the", 5, top_k=0)
    with pytest.raises(ValueError, match="length must be >= 0"):
        sample(model, vocab, "the", -1)
    with pytest.raises(TypeError, match="vocab must be a CharVocab"):
        sample(model, WordVocab.from_texts(["the"]), "the", 5)
    assert sample(model, vocab, "the", 0) == ""


def test_a_model_with_logit_outputs_is_sampled_through_a_softmax(char_model):
    """A linear last layer gives logits; the first draw must follow softmax(logits)."""
    import fastrnn
    from fastrnn import layers as L

    _, vocab = char_model
    fastrnn.utils.set_random_seed(3)
    model = fastrnn.Sequential([L.Embedding(vocab.size, 8, dtype="float64"),
                                L.GRU(8, return_sequences=True, dtype="float64"),
                                L.Dense(vocab.size, dtype="float64")])  # linear: logits
    model.build((None, None))
    logits = model.predict(vocab.encode("the ")[None, :])[0, -1]  # (V,)
    probs = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    for seed in range(5):
        expected = choose_next(probs, 1.0, None, np.random.default_rng(seed))
        assert sample(model, vocab, "the ", 1, temperature=1.0, seed=seed) == vocab.chars[expected]
