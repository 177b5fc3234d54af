"""``fastrnn text``: train a character-level language model and generate text with it.

``fastrnn text train [FILE]`` learns to predict each next character of a corpus (by
default the Python documentation topics every Python installation carries in
``pydoc_data``, so it runs offline) and saves the model with its vocabulary.
``fastrnn text generate MODEL`` continues a prime text, one character per step.
"""
from __future__ import annotations

import math
import sys

import numpy as np

from fastrnn.apps._common import (
    APP_KEY, AppError, add_command, add_training_arguments, check_output_path, load_model,
    non_negative_float, non_negative_int, positive_int, read_text, save_model,
)

CELLS = {"lstm": "LSTM", "gru": "GRU", "rnn": "SimpleRNN"}

TRAIN_EXAMPLES = """\
  fastrnn text train                       # the Python docs, about a minute
  fastrnn text train poems.txt --cell gru --units 256 --layers 2 --epochs 20 --out poems.npz
  fastrnn text train --max-chars 20000 --epochs 2 --units 64    # a quick look
"""

GENERATE_EXAMPLES = """\
  fastrnn text generate text_model.npz --prime "The " --length 400
  fastrnn text generate text_model.npz --prime "def " --temperature 0.5 --seed 1
  fastrnn text generate text_model.npz --prime "A" --temperature 0      # most likely text
"""


def add_parser(subparsers) -> None:
    """Add ``text train`` and ``text generate`` to the ``fastrnn`` command line."""
    text = subparsers.add_parser(
        "text", help="character-level text generation (train, generate)",
        description="Train a character-level language model, and generate text with it.")
    commands = text.add_subparsers(dest="text_command", metavar="{train,generate}", required=True)
    _add_train(commands)
    _add_generate(commands)


def _add_train(commands) -> None:
    p = add_command(
        commands, "train", train, help="train a character model on a text file",
        description=("Train a character-level language model: it learns to predict each next "
                     "character. Prints a progress bar, the loss per epoch and a generated "
                     "sample after each epoch, then saves the model with its vocabulary."),
        examples=TRAIN_EXAMPLES)
    p.add_argument("file", nargs="?", metavar="FILE",
                   help="a UTF-8 text file (default: the Python documentation topics "
                        "from the standard library's pydoc_data)")
    p.add_argument("--cell", choices=sorted(CELLS), default="lstm",
                   help="recurrent cell (default lstm)")
    p.add_argument("--units", type=positive_int, default=128,
                   help="units per recurrent layer (default 128)")
    p.add_argument("--layers", type=positive_int, default=1,
                   help="stacked recurrent layers (default 1)")
    p.add_argument("--embed-dim", type=positive_int, default=32,
                   help="size of each character's embedding vector (default 32)")
    p.add_argument("--seq-len", type=positive_int, default=64,
                   help="characters per training sequence (default 64)")
    p.add_argument("--max-chars", type=positive_int, default=500_000,
                   help="train on at most this many characters of the text (default 500000)")
    p.add_argument("--sample-length", type=non_negative_int, default=120,
                   help="characters generated after each epoch; 0 for none (default 120)")
    p.add_argument("--temperature", type=non_negative_float, default=0.6,
                   help="temperature of the per-epoch samples (default 0.6)")
    add_training_arguments(p, epochs=8, batch_size=32, learning_rate=0.005)
    p.add_argument("--out", default="text_model.npz", metavar="MODEL",
                   help="where to save the model (default text_model.npz)")


def _add_generate(commands) -> None:
    p = add_command(
        commands, "generate", generate, help="generate text with a trained character model",
        description="Continue a prime text with a model saved by `fastrnn text train`; "
                    "prints the prime followed by the generated characters.",
        examples=GENERATE_EXAMPLES)
    p.add_argument("model", metavar="MODEL", help="a model saved by `fastrnn text train`")
    p.add_argument("--prime", default="The ", help="the text to continue (default 'The ')")
    p.add_argument("--length", type=positive_int, default=300,
                   help="characters to generate (default 300)")
    p.add_argument("--temperature", type=non_negative_float, default=0.8,
                   help="below 1 more predictable, above 1 more surprising, 0 always the most "
                        "likely character (default 0.8)")
    p.add_argument("--top-k", type=positive_int, default=None,
                   help="draw only among the k most likely characters (default: all)")
    p.add_argument("--seed", type=non_negative_int, default=None,
                   help="random seed: the same seed repeats the same text (default: random)")


# --------------------------------------------------------------------------- the corpus

def default_corpus() -> str:
    """The Python documentation topics shipped in the standard library (``pydoc_data``)."""
    from pydoc_data.topics import topics

    return "\n\n".join(topics[key].strip() for key in sorted(topics))


def load_corpus(file, max_chars: int, seq_len: int) -> str:
    """The training text: ``file`` or the default corpus, cut to ``max_chars`` characters."""
    text = default_corpus() if file is None else read_text(file)
    where = "the default corpus" if file is None else file
    if not text.strip():
        raise AppError(f"{where} is empty: there is no text to train on")
    text = text[:max_chars]
    if len(text) < seq_len + 1:
        raise AppError(f"{where} has {len(text)} characters; --seq-len {seq_len} needs at "
                       f"least {seq_len + 1} (or lower --seq-len)")
    return text


# --------------------------------------------------------------------------- the model

def build_model(vocab_size: int, cell: str = "lstm", units: int = 128, layers: int = 1,
                embed_dim: int = 32):
    """Character ids (B, T) -> next-character probabilities (B, T, V).

    Embedding(V, embed_dim) -> ``layers`` recurrent layers (return_sequences) -> Dense(V, softmax).
    """
    from fastrnn import Sequential
    from fastrnn import layers as L

    recurrent = getattr(L, CELLS[cell])
    stack = [L.Embedding(vocab_size, embed_dim)]
    stack += [recurrent(units, return_sequences=True) for _ in range(layers)]
    stack.append(L.Dense(vocab_size, activation="softmax"))
    return Sequential(stack)


def _pick_prime(corpus: str, rng: np.random.Generator, size: int = 40) -> str:
    """The start of a random line of the corpus, to begin every per-epoch sample with."""
    lines = [line.strip() for line in corpus[:200_000].splitlines()]
    long_lines = [line for line in lines if len(line) >= size]
    if not long_lines:
        return corpus[:size]
    return long_lines[int(rng.integers(len(long_lines)))][:size]


def _sample_callback(vocab, corpus: str, length: int, temperature: float, seed: int):
    """A callback that prints a generated sample after each epoch."""
    from fastrnn.callbacks import Callback
    from fastrnn.text import sample

    prime = _pick_prime(corpus, np.random.default_rng(seed))

    class PrintSample(Callback):
        # The progress bar prints an epoch's closing line in its own on_epoch_end, which
        # runs after the user's callbacks; printing when the next epoch begins (or when
        # training ends) puts each sample under its epoch's line.
        def on_train_begin(self, logs=None):
            self.epochs_done = 0

        def on_epoch_end(self, epoch, logs=None):
            self.epochs_done = epoch + 1

        def on_epoch_begin(self, epoch, logs=None):
            if self.epochs_done:
                self.print_sample()

        def on_train_end(self, logs=None):
            if self.epochs_done:
                self.print_sample()

        def print_sample(self):
            from fastrnn import distributed

            if not distributed.is_chief():  # under MPI, rank 0 prints for all
                return
            text = sample(self.model, vocab, prime, length, temperature=temperature,
                          seed=seed + self.epochs_done)
            print(f"--- sample after epoch {self.epochs_done} (temperature {temperature:g}) ---")
            print(prime + text)
            print("---", flush=True)

    return PrintSample()


# --------------------------------------------------------------------------- the commands

def train(args) -> int:
    """``fastrnn text train``: returns the exit code."""
    import fastrnn
    from fastrnn.text import CharVocab, next_char_windows

    check_output_path(args.out, "--out")
    corpus = load_corpus(args.file, args.max_chars, args.seq_len)
    vocab = CharVocab.from_text(corpus)
    ids = vocab.encode(corpus)  # (N,)
    x, y = next_char_windows(ids, args.seq_len, step=args.seq_len)  # (M, seq_len) each
    print(f"corpus: {len(corpus):,} characters, {vocab.size} distinct "
          f"(a uniform guess has loss ln {vocab.size} = {math.log(vocab.size):.3f}); "
          f"{x.shape[0]:,} sequences of {args.seq_len}")

    fastrnn.utils.set_random_seed(args.seed)
    model = build_model(vocab.size, args.cell, args.units, args.layers, args.embed_dim)
    model.compile(optimizer=fastrnn.optimizers.Adam(args.learning_rate, clipnorm=5.0),
                  loss="sparse_categorical_crossentropy")
    callbacks = []
    if args.sample_length > 0:
        callbacks.append(_sample_callback(vocab, corpus, args.sample_length, args.temperature,
                                          args.seed))
    model.fit(x, y, epochs=args.epochs, batch_size=args.batch_size, verbose=args.verbose,
              callbacks=callbacks)

    metadata = {APP_KEY: "text", "vocab": vocab.to_dict(), "seq_len": args.seq_len}
    path = save_model(model, args.out, metadata)
    print(f"saved the model and its {vocab.size}-character vocabulary to {path}")
    return 0


def generate(args) -> int:
    """``fastrnn text generate``: returns the exit code."""
    from fastrnn.text import CharSampler, vocab_from_dict

    model, metadata = load_model(args.model, "text", "fastrnn text generate")
    vocab = vocab_from_dict(metadata["vocab"])
    if not args.prime:
        raise AppError("--prime is empty: give at least one character to start from")
    missing = vocab.missing(args.prime)
    if missing:
        raise AppError(f"--prime has characters the model never saw: {''.join(missing)!r}")
    characters = CharSampler(model, vocab).stream(args.prime, args.length,
                                                  temperature=args.temperature,
                                                  top_k=args.top_k, seed=args.seed)
    sys.stdout.write(args.prime)
    for c in characters:  # each as it comes: a long --length shows text at once
        sys.stdout.write(c)
        sys.stdout.flush()
    sys.stdout.write("\n")
    return 0
