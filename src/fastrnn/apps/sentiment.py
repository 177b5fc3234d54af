"""``fastrnn sentiment``: a word-level text classifier (sentiment, or any labels).

``fastrnn sentiment train [CSV]`` reads a text column and a label column (by default
the small sample of reviews shipped in ``fastrnn/data/reviews.csv``), holds out a
stratified part, trains Embedding(mask_zero) -> Bidirectional LSTM/GRU -> Dense, and
reports the held-out accuracy next to the majority-class baseline.
``fastrnn sentiment predict MODEL TEXT...`` prints a label and its probability per text.
"""
from __future__ import annotations

from collections import Counter

import numpy as np

from fastrnn.apps._common import (
    APP_KEY, AppError, add_command, add_training_arguments, check_output_path, column_index,
    column_values, fraction, load_model, positive_int, read_table, save_model,
)

CELLS = {"lstm": "LSTM", "gru": "GRU"}

TRAIN_EXAMPLES = """\
  fastrnn sentiment train                  # the shipped sample of reviews
  fastrnn sentiment train imdb.csv --text-col review --label-col sentiment --epochs 3 --max-len 200
  fastrnn sentiment train tickets.csv --label-col team --cell gru --out tickets.npz   # 3+ classes
"""

PREDICT_EXAMPLES = """\
  fastrnn sentiment predict sentiment_model.npz "Lovely staff and a great breakfast."
  fastrnn sentiment predict sentiment_model.npz "Slow and noisy." "Works perfectly."
"""


def add_parser(subparsers) -> None:
    """Add ``sentiment train`` and ``sentiment predict`` to the ``fastrnn`` command line."""
    sentiment = subparsers.add_parser(
        "sentiment", help="text classification, e.g. sentiment (train, predict)",
        description="Train a word-level text classifier on a CSV file, and classify texts with it.")
    commands = sentiment.add_subparsers(dest="sentiment_command", metavar="{train,predict}",
                                        required=True)
    _add_train(commands)
    _add_predict(commands)


def _add_train(commands) -> None:
    p = add_command(
        commands, "train", train, help="train a classifier on a CSV of texts and labels",
        description=("Train a word-level classifier (an embedding with masking, a bidirectional "
                     "LSTM or GRU, a dense output) and report its accuracy on a held-out part of "
                     "the data next to the majority-class baseline."),
        examples=TRAIN_EXAMPLES)
    p.add_argument("csv", nargs="?", metavar="CSV",
                   help="a UTF-8 CSV file with a header row (default: a sample of a few hundred "
                        "short reviews shipped with fastrnn)")
    p.add_argument("--text-col", default="text", help="the column with the texts (default 'text')")
    p.add_argument("--label-col", default="label",
                   help="the column with the labels (default 'label')")
    p.add_argument("--cell", choices=sorted(CELLS), default="lstm",
                   help="recurrent cell (default lstm)")
    p.add_argument("--units", type=positive_int, default=32,
                   help="units per direction (default 32)")
    p.add_argument("--embed-dim", type=positive_int, default=32,
                   help="word vector size (default 32)")
    p.add_argument("--max-words", type=positive_int, default=20_000,
                   help="vocabulary size, the most frequent words (default 20000)")
    p.add_argument("--max-len", type=positive_int, default=100,
                   help="words kept per text, the last ones of longer texts (default 100; "
                        "shorter when no text is that long)")
    p.add_argument("--test-size", type=fraction, default=0.2,
                   help="fraction of rows held out for the accuracy report (default 0.2)")
    add_training_arguments(p, epochs=8, batch_size=16, learning_rate=0.005)
    p.add_argument("--out", default="sentiment_model.npz", metavar="MODEL",
                   help="where to save the model (default sentiment_model.npz)")


def _add_predict(commands) -> None:
    p = add_command(
        commands, "predict", predict, help="classify texts with a trained model",
        description=("Print the predicted label and its probability for each text. A text that "
                     "is empty, or has no word the model knows, is not classified: the others "
                     "are, and the command names those it skipped and exits with code 2."),
        examples=PREDICT_EXAMPLES)
    p.add_argument("model", metavar="MODEL", help="a model saved by `fastrnn sentiment train`")
    p.add_argument("texts", nargs="+", metavar="TEXT", help="one or more texts to classify")


# --------------------------------------------------------------------------- data

def load_examples(path, text_col: str, label_col: str) -> tuple:
    """``(texts, labels)`` from the CSV at ``path`` (None: the shipped reviews)."""
    from fastrnn import data

    shown = path if path is not None else "the shipped reviews.csv"
    header, rows = read_table(data.path("reviews.csv") if path is None else path)
    t = column_index(header, text_col, shown, "--text-col")
    k = column_index(header, label_col, shown, "--label-col")
    texts = column_values(rows, t, text_col, shown)
    labels = [value.strip() for value in column_values(rows, k, label_col, shown)]
    for row, label in enumerate(labels, start=1):
        if not label:
            raise AppError(f"{shown}: data row {row} has an empty label in column {label_col!r}")
    if not any(text.strip() for text in texts):
        raise AppError(f"{shown}: every text in column {text_col!r} is empty")
    if len(set(labels)) < 2:
        raise AppError(f"{shown}: column {label_col!r} has only one class ({labels[0]!r}); "
                       "a classifier needs at least two")
    return texts, labels


def stratified_split(labels: np.ndarray, test_size: float, rng: np.random.Generator) -> tuple:
    """Shuffled ``(train_index, test_index)`` holding out ``test_size`` of each class."""
    train, test = [], []
    for k in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == k))
        n_test = min(max(1, int(round(test_size * members.size))), members.size - 1)
        test.append(members[:n_test])
        train.append(members[n_test:])
    return rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(test))


# --------------------------------------------------------------------------- the model

def build_model(vocab_size: int, n_classes: int, cell: str = "lstm", units: int = 32,
                embed_dim: int = 32):
    """Word ids (B, T), 0 = padding -> class probabilities: (B, 1) for 2 classes, else (B, K)."""
    from fastrnn import Sequential
    from fastrnn import layers as L

    recurrent = getattr(L, CELLS[cell])(units)
    output = (L.Dense(1, activation="sigmoid") if n_classes == 2
              else L.Dense(n_classes, activation="softmax"))
    return Sequential([L.Embedding(vocab_size, embed_dim, mask_zero=True),
                       L.Bidirectional(recurrent), output])


def predicted_classes(probs: np.ndarray) -> tuple:
    """probs: (B, 1) or (B, K) -> (class index (B,), its probability (B,))."""
    if probs.shape[1] == 1:
        p = probs[:, 0]  # (B,) probability of class 1
        k = (p >= 0.5).astype(np.int64)
        return k, np.where(k == 1, p, 1 - p)
    k = probs.argmax(axis=1)
    return k, probs[np.arange(probs.shape[0]), k]


# --------------------------------------------------------------------------- the commands

def train(args) -> int:
    """``fastrnn sentiment train``: returns the exit code."""
    import fastrnn
    from fastrnn.text import WordVocab, tokenize

    check_output_path(args.out, "--out")
    texts, labels = load_examples(args.csv, args.text_col, args.label_col)
    classes = sorted(set(labels))
    y = np.array([classes.index(label) for label in labels], dtype=np.int64)  # (N,)
    fastrnn.utils.set_random_seed(args.seed)
    train_idx, test_idx = stratified_split(y, args.test_size, np.random.default_rng(args.seed))
    if test_idx.size == 0:
        raise AppError(f"{len(texts)} rows are too few to hold any out for testing: every "
                       "class needs at least 2 rows")
    counts = Counter(labels)
    print(f"{len(texts):,} texts ({len(train_idx):,} to train on, {len(test_idx):,} held out); "
          "classes: " + ", ".join(f"{c} {counts[c]:,}" for c in classes))

    vocab = WordVocab.from_texts((texts[i] for i in train_idx), max_size=args.max_words)
    longest = max(len(tokenize(text)) for text in texts)
    # Padded and cut at the front, as Keras's pad_sequences does: the real words come last.
    x = vocab.encode_batch(texts, maxlen=max(1, min(args.max_len, longest)))  # (N, T)
    print(f"vocabulary: {vocab.size:,} words (from the training texts); "
          f"{x.shape[1]} words per text")

    model = build_model(vocab.size, len(classes), args.cell, args.units, args.embed_dim)
    binary = len(classes) == 2
    model.compile(optimizer=fastrnn.optimizers.Adam(args.learning_rate),
                  loss="binary_crossentropy" if binary else "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    targets = y[:, None].astype(np.float32) if binary else y  # (N, 1) or (N,)
    model.fit(x[train_idx], targets[train_idx], epochs=args.epochs, batch_size=args.batch_size,
              verbose=args.verbose)

    predicted, _ = predicted_classes(np.asarray(model.predict(x[test_idx], verbose=0)))
    accuracy = float(np.mean(predicted == y[test_idx]))
    majority = float(np.max(np.bincount(y[test_idx], minlength=len(classes))) / len(test_idx))
    print(f"held-out accuracy: {accuracy:.3f} (majority class: {majority:.3f}, "
          f"{len(test_idx):,} texts)")

    metadata = {APP_KEY: "sentiment", "vocab": vocab.to_dict(), "classes": classes,
                "max_len": int(x.shape[1]), "truncating": "pre", "held_out_accuracy": accuracy}
    path = save_model(model, args.out, metadata)
    print(f"saved the model, its vocabulary and its classes to {path}")
    return 0


def predict(args) -> int:
    """``fastrnn sentiment predict``: returns the exit code."""
    from fastrnn.text import WordVocab, vocab_from_dict

    model, metadata = load_model(args.model, "sentiment", "fastrnn sentiment predict")
    vocab = vocab_from_dict(metadata["vocab"])
    classes = metadata["classes"]
    # Models saved before texts were cut at the front kept the first words.
    truncating = metadata.get("truncating", "post")
    x = vocab.encode_batch(args.texts, maxlen=metadata["max_len"], truncating=truncating)  # (B, T)
    known = (x > WordVocab.UNK_ID).any(axis=1)  # (B,) whether the model sees any word it knows
    problems = [_why_not_classified(i, text, metadata["max_len"], truncating)
                for i, text in enumerate(args.texts, start=1) if not known[i - 1]]
    if known.any():
        k, p = predicted_classes(np.asarray(model.predict(x[known], verbose=0)))
        width = max(len(c) for c in classes)
        texts = [text for text, ok in zip(args.texts, known) if ok]
        for text, label, prob in zip(texts, k, p):
            print(f"{classes[label]:<{width}}  {prob:.3f}  {text}")
    if problems:
        raise AppError("not classified: " + "; ".join(problems))
    return 0


def _why_not_classified(i: int, text: str, max_len: int, truncating: str) -> str:
    """Why TEXT ``i`` gives the model no word it knows (among the ``max_len`` it reads)."""
    from fastrnn.text import tokenize

    if not text.strip():
        return f"TEXT {i} is empty"
    shown = text if len(text) <= 40 else text[:37] + "..."
    which = "last" if truncating == "pre" else "first"
    among = f" among its {which} {max_len} words" if len(tokenize(text)) > max_len else ""
    return f"TEXT {i} ({shown!r}) has no word the model knows{among}"
