"""Text helpers: vocabularies, training windows, and sampling from a character model.

- ``CharVocab``: one id per distinct character of a corpus.
- ``WordVocab``: one id per frequent word, with id 0 for padding and id 1 for
  unknown words (the layout ``Embedding(mask_zero=True)`` expects).
- Both turn into a JSON-able dict (``to_dict``) to be saved with a model as its
  metadata, and come back with ``vocab_from_dict``.
- ``next_char_windows``: (input, next-character) training pairs as views of the
  encoded corpus, so no window is copied.
- ``sample``: generate text from a trained character model, one time step per
  new character, through a stateful copy of the model (``CharSampler``).
"""
from __future__ import annotations

import re
from collections import Counter
from typing import Iterable, Iterator, Optional

import numpy as np

from fastrnn.sequence import pad_sequences

__all__ = [
    "CharVocab", "WordVocab", "vocab_from_dict", "tokenize",
    "next_char_windows", "CharSampler", "sample", "stateful_copy",
]

ID_DTYPE = np.int32


# --------------------------------------------------------------------------- vocabularies

class CharVocab:
    """A character vocabulary: character ``chars[i]`` has id ``i``.

    There is no padding or unknown id: a character model predicts real characters
    only, so encoding a character the vocabulary lacks is an error.
    """

    kind = "char"

    def __init__(self, chars: Iterable[str]):
        chars = list(chars)
        for c in chars:
            if not isinstance(c, str) or len(c) != 1:
                raise TypeError(f"each vocabulary entry must be a one-character str, got {c!r}")
        if len(set(chars)) != len(chars):
            repeated = sorted(c for c, n in Counter(chars).items() if n > 1)
            raise ValueError(f"characters must be distinct, got repeats of {repeated!r}")
        self.chars = "".join(chars)
        self._ids = {c: i for i, c in enumerate(self.chars)}

    @classmethod
    def from_text(cls, text: str) -> "CharVocab":
        """The distinct characters of ``text``, in code point order."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        if not text:
            raise ValueError("text is empty: a vocabulary needs at least one character")
        return cls(sorted(set(text)))

    def __len__(self) -> int:
        return len(self.chars)

    @property
    def size(self) -> int:
        """V, the number of ids."""
        return len(self.chars)

    def __contains__(self, char) -> bool:
        return char in self._ids

    def __eq__(self, other) -> bool:
        return isinstance(other, CharVocab) and other.chars == self.chars

    def __repr__(self) -> str:
        return f"CharVocab(size={self.size})"

    def missing(self, text: str) -> list:
        """The distinct characters of ``text`` that have no id, in order of appearance."""
        return list(dict.fromkeys(c for c in text if c not in self._ids))

    def encode(self, text: str) -> np.ndarray:
        """``text`` (length L) -> ids: (L,) int32. ValueError names unknown characters."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        unknown = self.missing(text)
        if unknown:
            shown = "".join(unknown[:10])
            raise ValueError(f"text has characters that are not in the vocabulary: {shown!r}")
        return np.fromiter((self._ids[c] for c in text), dtype=ID_DTYPE, count=len(text))

    def decode(self, ids) -> str:
        """ids: (L,) integers in [0, V) -> the text of length L."""
        ids = _check_ids(ids, self.size)
        return "".join(self.chars[i] for i in ids)

    def to_dict(self) -> dict:
        """A JSON-able description; ``vocab_from_dict`` turns it back into this vocabulary."""
        return {"kind": self.kind, "chars": self.chars}


class WordVocab:
    """A word vocabulary: id 0 is padding, id 1 is any unknown word, words follow.

    Words are found by ``tokenize`` (lower-cased runs of letters and digits, with
    inner apostrophes kept: "didn't"). ``words[i]`` has id ``i``.
    """

    kind = "word"
    PAD = "<pad>"
    UNK = "<unk>"
    PAD_ID = 0
    UNK_ID = 1

    def __init__(self, words: Iterable[str]):
        """words: the vocabulary's words in id order, without the two special tokens."""
        words = list(words)
        for w in words:
            if not isinstance(w, str) or not w:
                raise TypeError(f"each word must be a non-empty str, got {w!r}")
        if len(set(words)) != len(words):
            raise ValueError("words must be distinct")
        if self.PAD in words or self.UNK in words:
            raise ValueError(f"{self.PAD!r} and {self.UNK!r} are reserved and added by WordVocab")
        self.words = [self.PAD, self.UNK] + words
        self._ids = {w: i for i, w in enumerate(self.words)}

    @classmethod
    def from_texts(cls, texts: Iterable[str], max_size: Optional[int] = None,
                   min_count: int = 1) -> "WordVocab":
        """Build from a corpus: the most frequent words first (ties alphabetically).

        max_size: the largest vocabulary size V, counting the two special ids
            (None: no limit). min_count: words seen fewer times are left out.
        """
        if max_size is not None and (isinstance(max_size, bool) or not isinstance(max_size, int)):
            raise TypeError(f"max_size must be an int or None, got {type(max_size).__name__}")
        if max_size is not None and max_size < 2:
            raise ValueError(f"max_size must be >= 2 (padding and unknown), got {max_size}")
        if isinstance(min_count, bool) or not isinstance(min_count, int):
            raise TypeError(f"min_count must be an int, got {type(min_count).__name__}")
        if min_count < 1:
            raise ValueError(f"min_count must be >= 1, got {min_count}")
        counts = Counter()
        for text in texts:
            counts.update(tokenize(text))
        ranked = sorted((w for w, n in counts.items() if n >= min_count),
                        key=lambda w: (-counts[w], w))
        if max_size is not None:
            ranked = ranked[: max_size - 2]
        return cls(ranked)

    def __len__(self) -> int:
        return len(self.words)

    @property
    def size(self) -> int:
        """V, the number of ids including padding and unknown."""
        return len(self.words)

    def __contains__(self, word) -> bool:
        return word in self._ids

    def __eq__(self, other) -> bool:
        return isinstance(other, WordVocab) and other.words == self.words

    def __repr__(self) -> str:
        return f"WordVocab(size={self.size})"

    def encode(self, text: str) -> np.ndarray:
        """``text`` -> ids: (L,) int32, one per token; unknown words get ``UNK_ID``."""
        return np.array([self._ids.get(w, self.UNK_ID) for w in tokenize(text)], dtype=ID_DTYPE)

    def encode_batch(self, texts: Iterable[str], maxlen: Optional[int] = None,
                     padding: str = "pre", truncating: str = "pre") -> np.ndarray:
        """N texts -> ids: (N, T) int32, padded with ``PAD_ID`` (0), as ``pad_sequences`` pads.

        maxlen: T; None means the longest text's token count. padding: ``"pre"`` (the
        default, Keras's) puts the padding before each text, so that a recurrent layer reads
        the real words last; ``"post"`` after it. Longer texts are cut (``truncating="pre"``
        keeps their end, ``"post"`` their start).
        """
        if isinstance(texts, str):
            raise TypeError("texts must be a list of str, got a single str")
        encoded = [self.encode(t) for t in texts]
        return pad_sequences(encoded, maxlen=maxlen, dtype=ID_DTYPE, padding=padding,
                             truncating=truncating, value=self.PAD_ID)

    def decode(self, ids) -> str:
        """ids: (L,) -> the words joined by spaces, padding left out."""
        ids = _check_ids(ids, self.size)
        return " ".join(self.words[i] for i in ids if i != self.PAD_ID)

    def to_dict(self) -> dict:
        """A JSON-able description; ``vocab_from_dict`` turns it back into this vocabulary."""
        return {"kind": self.kind, "words": self.words[2:]}


def vocab_from_dict(d: dict):
    """The vocabulary that ``to_dict`` described (a ``CharVocab`` or a ``WordVocab``)."""
    if not isinstance(d, dict) or "kind" not in d:
        raise ValueError("not a vocabulary description: expected a dict with a 'kind' key")
    if d["kind"] == CharVocab.kind:
        return CharVocab(d["chars"])
    if d["kind"] == WordVocab.kind:
        return WordVocab(d["words"])
    raise ValueError(f"unknown vocabulary kind {d['kind']!r}: expected 'char' or 'word'")


_TOKEN = re.compile(r"\w+(?:'\w+)*")


def tokenize(text: str) -> list:
    """Lower-cased words of ``text``: runs of letters/digits, inner apostrophes kept."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    return _TOKEN.findall(text.lower().replace("\u2019", "'"))


def _check_ids(ids, size: int) -> np.ndarray:
    ids = np.asarray(ids)
    if ids.ndim != 1:
        raise ValueError(f"ids must be 1-D with shape (L,), got shape {ids.shape}")
    if ids.size and ids.dtype.kind not in "iu":
        raise TypeError(f"ids must hold integers, got dtype {ids.dtype}")
    bad = np.flatnonzero((ids < 0) | (ids >= size))
    if bad.size:
        raise ValueError(f"ids must lie in [0, {size}), got ids[{bad[0]}] = {ids[bad[0]]}")
    return ids.astype(np.int64)


# --------------------------------------------------------------------------- training windows

def next_char_windows(ids, seq_len: int, step: int = 1, return_sequences: bool = True):
    """Cut an encoded corpus into (input, next-character) training pairs, as views.

    ids: (N,) the encoded corpus. Window k starts at ``s = k * step``:

    - ``x[k] = ids[s : s + seq_len]``
    - ``y[k] = ids[s + 1 : s + seq_len + 1]`` with ``return_sequences`` (the next
      character at every position, for a model with ``return_sequences=True``),
      else ``y[k] = ids[s + seq_len]`` (the one character after the window).

    Returns ``x: (M, seq_len)`` and ``y: (M, seq_len)`` or ``(M,)``, read-only views
    of ``ids`` (nothing is copied), with ``M = (N - seq_len - 1) // step + 1``.
    """
    ids = np.asarray(ids)
    if ids.ndim != 1:
        raise ValueError(f"ids must be 1-D with shape (N,), got shape {ids.shape}")
    for name, value in (("seq_len", seq_len), ("step", step)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"{name} must be an int, got {type(value).__name__}")
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    if ids.shape[0] < seq_len + 1:
        raise ValueError(
            f"the corpus has {ids.shape[0]} ids; seq_len={seq_len} needs at least {seq_len + 1}"
        )
    view = np.lib.stride_tricks.sliding_window_view
    x = view(ids[:-1], seq_len)[::step]  # (M, seq_len)
    if return_sequences:
        y = view(ids[1:], seq_len)[::step]  # (M, seq_len)
    else:
        y = ids[seq_len::step]  # (M,)
        y = y[: x.shape[0]]
        y.flags.writeable = False
    return x, y


# --------------------------------------------------------------------------- sampling

#: Temperatures at or below this pick the most likely character (no randomness).
GREEDY_TEMPERATURE = 1e-6


def stateful_copy(model, batch_size: int = 1):
    """A copy of ``model`` whose recurrent layers are stateful, for batches of ``batch_size``.

    Same layer configurations (except ``stateful=True``) and the same weights, so
    feeding a sequence in pieces gives the outputs of feeding it whole. The copy's
    state is kept across ``predict`` calls until ``reset_states()``.
    """
    from fastrnn.models import Sequential

    if not getattr(model, "built", False):
        raise ValueError("the model is not built yet: train it (or call build) before copying it")
    copy = Sequential([_stateful_layer(layer) for layer in model.layers])
    copy.build((batch_size, *model.build_input_shape[1:]))
    copy.set_weights(model.get_weights())
    return copy


def _stateful_layer(layer):
    config = layer.get_config()
    if "stateful" in config:
        config["stateful"] = True
    if type(layer).__name__ == "Bidirectional":
        raise ValueError("a model with a Bidirectional layer cannot generate text one step "
                         "at a time: its backward direction needs the whole text")
    return type(layer).from_config(config)


class CharSampler:
    """Generates characters from a trained character model, one time step each.

    model: a model mapping ids ``(B, T)`` to next-character probabilities,
        ``(B, T, V)`` (``return_sequences=True``) or ``(B, V)``.
    vocab: the ``CharVocab`` the model was trained with.

    The stateful copy is built once; each ``generate`` call starts from a fresh state.
    """

    def __init__(self, model, vocab: CharVocab):
        if not isinstance(vocab, CharVocab):
            raise TypeError(f"vocab must be a CharVocab, got {type(vocab).__name__}")
        self.vocab = vocab
        self.step_model = stateful_copy(model, batch_size=1)
        self.outputs_logits = _last_activation(model) == "linear"

    def generate(self, prime: str, length: int, temperature: float = 1.0,
                 top_k: Optional[int] = None, seed: Optional[int] = None) -> str:
        """The ``length`` characters that follow ``prime`` (``prime`` itself not included).

        The prime is fed once; then each new character is fed back as a single step.
        temperature: > 0 sharpens (< 1) or flattens (> 1) the model's distribution;
            at or below ``GREEDY_TEMPERATURE`` (including 0) the arg-max is taken.
        top_k: draw only among the k most likely characters (None: all).
        seed: the draws repeat for the same seed; None draws from the library's
            generator (``fastrnn.utils.get_rng``).
        """
        return "".join(self.stream(prime, length, temperature, top_k, seed))

    def stream(self, prime: str, length: int, temperature: float = 1.0,
               top_k: Optional[int] = None, seed: Optional[int] = None) -> Iterator[str]:
        """The characters ``generate`` returns, one at a time as each is drawn (for showing a
        long text while it is made). The arguments are checked at once, not at the first
        character; the stateful model is shared, so one stream at a time."""
        prime_ids = self._check_generate_args(prime, length, temperature, top_k)
        return self._characters(prime_ids, length, temperature, top_k, _generator(seed))

    def _characters(self, prime_ids, length, temperature, top_k, rng) -> Iterator[str]:
        self.step_model.reset_states()
        probs = self._next_distribution(prime_ids)  # (V,)
        for i in range(length):
            next_id = choose_next(probs, temperature, top_k, rng)
            yield self.vocab.chars[next_id]
            if i + 1 < length:
                probs = self._next_distribution(np.array([next_id], dtype=ID_DTYPE))

    def _check_generate_args(self, prime, length, temperature, top_k) -> np.ndarray:
        if not isinstance(prime, str):
            raise TypeError(f"prime must be a str, got {type(prime).__name__}")
        if not prime:
            raise ValueError("prime must have at least one character")
        if isinstance(length, bool) or not isinstance(length, (int, np.integer)):
            raise TypeError(f"length must be an int, got {type(length).__name__}")
        if length < 0:
            raise ValueError(f"length must be >= 0, got {length}")
        _check_temperature(temperature)
        _check_top_k(top_k)
        return self.vocab.encode(prime)

    def _next_distribution(self, ids: np.ndarray) -> np.ndarray:
        """Feed ids: (L,) to the stateful model; the next character's probabilities (V,)."""
        out = np.asarray(self.step_model.predict(ids[None, :], verbose=0))  # (1, L, V) or (1, V)
        last = out[0, -1] if out.ndim == 3 else out[0]  # (V,)
        last = last.astype(np.float64)
        if self.outputs_logits:
            last = np.exp(last - last.max())
        return last / last.sum()


def sample(model, vocab: CharVocab, prime: str, length: int, temperature: float = 1.0,
           top_k: Optional[int] = None, seed: Optional[int] = None) -> str:
    """Generate ``length`` characters after ``prime`` from a trained character model.

    Builds a stateful batch-1 copy of ``model`` (``stateful_copy``), feeds ``prime``,
    then feeds back one character at a time: each new character costs one time
    step. Returns the new characters only. See ``CharSampler.generate`` for the
    meaning of ``temperature``, ``top_k`` and ``seed``.
    """
    return CharSampler(model, vocab).generate(prime, length, temperature, top_k, seed)


def choose_next(probs: np.ndarray, temperature: float, top_k: Optional[int],
                rng: np.random.Generator) -> int:
    """Draw one id from probs: (V,) after applying temperature and top-k."""
    if temperature <= GREEDY_TEMPERATURE:
        return int(np.argmax(probs))
    with np.errstate(divide="ignore"):
        logits = np.log(probs) / temperature  # (V,); zero probabilities become -inf
    if top_k is not None and top_k < logits.shape[0]:
        cutoff = np.partition(logits, -top_k)[-top_k]
        logits = np.where(logits >= cutoff, logits, -np.inf)
    weights = np.exp(logits - logits.max())  # (V,)
    return int(rng.choice(weights.shape[0], p=weights / weights.sum()))


def _check_temperature(temperature) -> None:
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float, np.number)):
        raise TypeError(f"temperature must be a number, got {type(temperature).__name__}")
    if not np.isfinite(temperature) or temperature < 0:
        raise ValueError(f"temperature must be finite and >= 0, got {temperature}")


def _check_top_k(top_k) -> None:
    if top_k is None:
        return
    if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)):
        raise TypeError(f"top_k must be an int or None, got {type(top_k).__name__}")
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")


def _generator(seed) -> np.random.Generator:
    if seed is None:
        from fastrnn.utils import get_rng

        return get_rng()
    return np.random.default_rng(seed)


def _last_activation(model):
    """The last layer's activation name, or None when it has none in its config."""
    config = model.layers[-1].get_config()
    activation = config.get("activation")
    return activation if isinstance(activation, str) else None
