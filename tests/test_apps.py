"""The command-line jobs end to end, in tiny configurations: ``text``, ``sentiment``, ``forecast``.

Each command runs through an argparse parser built the way ``fastrnn.cli`` builds its
own (each app module's ``add_parser``), and returns an exit code: 0 success, 2 bad
input with a one-line message on stderr and no traceback.
"""
import argparse
import contextlib
import csv
import importlib.util
import io
import math
import os
import re
import subprocess
import sys
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest

import fastrnn
from fastrnn.apps import forecast as forecast_app
from fastrnn.apps import sentiment as sentiment_app
from fastrnn.apps import text as text_app
from fastrnn.text import CharVocab, next_char_windows, vocab_from_dict

APP_MODULES = (text_app, sentiment_app, forecast_app)
HAVE_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None
needs_matplotlib = pytest.mark.skipif(not HAVE_MATPLOTLIB, reason="plots need matplotlib")
# Without matplotlib the forecasts are still checked, with --no-plot.
PLOT_OR_NOT = [] if HAVE_MATPLOTLIB else ["--no-plot"]


def run_cli(*argv):
    """Run ``fastrnn ARGV...``; returns (exit code, stdout, stderr)."""
    parser = argparse.ArgumentParser(prog="fastrnn")
    commands = parser.add_subparsers(dest="command")
    for module in APP_MODULES:
        module.add_parser(commands)
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            args = parser.parse_args([str(a) for a in argv])
            code = args.func(args)
        except SystemExit as stop:  # argparse's own usage errors and --help
            code = stop.code
    return code, stdout.getvalue(), stderr.getvalue()


def assert_usage_error(result, *fragments):
    """Exit code 2, one line on stderr naming the problem, no traceback."""
    code, _, err = result
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("fastrnn ") and ": error: " in lines[0]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def write_csv(path: Path, header, rows) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def mean_next_char_loss(model, vocab, corpus, seq_len):
    """Cross-entropy in nats of the model's next-character predictions on ``corpus``,
    computed here from its probabilities (not by the library's loss)."""
    x, y = next_char_windows(vocab.encode(corpus), seq_len, step=seq_len)
    probs = model.predict(np.asarray(x), verbose=0).astype(np.float64)  # (M, T, V)
    picked = np.take_along_axis(probs, np.asarray(y)[..., None].astype(np.int64), axis=-1)
    return float(-np.mean(np.log(picked)))


# --------------------------------------------------------------------------- every command

@pytest.mark.parametrize("argv", [["text", "train"], ["text", "generate"], ["sentiment", "train"],
                                  ["sentiment", "predict"], ["forecast"]])
def test_every_command_has_help_with_examples(argv):
    code, out, _ = run_cli(*argv, "--help")
    assert code == 0
    assert "examples:" in out and f"fastrnn {' '.join(argv)}" in out


def test_an_unknown_option_is_a_usage_error_with_exit_code_2():
    code, _, err = run_cli("forecast", "--window", "zero")
    assert code == 2 and "--window" in err and "Traceback" not in err


# --------------------------------------------------------------------------- text

TEXT_TINY = ["--max-chars", "30000", "--units", "64", "--seq-len", "32", "--epochs", "6",
             "--learning-rate", "0.01", "--sample-length", "40", "--verbose", "0"]


@pytest.fixture(scope="module")
def text_model(tmp_path_factory):
    """`fastrnn text train` on the default corpus (the pydoc topics), tiny; its outputs."""
    out = tmp_path_factory.mktemp("text") / "chars.npz"
    return (*run_cli("text", "train", *TEXT_TINY, "--out", out), out)


def test_text_train_saves_the_model_with_its_vocabulary(text_model):
    code, out, err, path = text_model
    assert code == 0, err
    model = fastrnn.load_model(path)
    vocab = vocab_from_dict(model.metadata["vocab"])
    assert vocab == CharVocab.from_text(text_app.default_corpus()[:30000])
    assert f"saved the model and its {vocab.size}-character vocabulary to {path}" in out


def test_text_train_prints_a_sample_after_each_epoch(text_model):
    _, out, _, _ = text_model
    assert [int(n) for n in re.findall(r"sample after epoch (\d+)", out)] == [1, 2, 3, 4, 5, 6]


def test_text_model_loss_falls_well_below_the_uniform_guess(text_model):
    _, _, _, path = text_model
    model = fastrnn.load_model(path)
    vocab = vocab_from_dict(model.metadata["vocab"])
    corpus = text_app.default_corpus()[:30000]
    loss = mean_next_char_loss(model, vocab, corpus, 32)
    assert loss < 0.6 * math.log(vocab.size), (loss, math.log(vocab.size))


def test_text_generate_prints_the_prime_and_then_new_characters(text_model):
    path = text_model[3]
    code, out, err = run_cli("text", "generate", path, "--prime", "The ", "--length", "50",
                             "--seed", "3")
    assert code == 0, err
    assert out.startswith("The ")
    assert len(out) == 4 + 50 + 1  # prime, 50 characters, print's newline


@pytest.mark.parametrize("argv", [("forecast",), ("sentiment", "train"), ("text", "train")])
def test_a_negative_seed_is_a_usage_error(argv):
    code, _, err = run_cli(*argv, "--seed", "-1")
    assert code == 2 and "argument --seed: expected a number >= 0" in err and "Traceback" not in err


def test_a_negative_seed_for_generating_text_is_a_usage_error(text_model):
    code, _, err = run_cli("text", "generate", text_model[3], "--seed", "-1")
    assert code == 2 and "argument --seed: expected a number >= 0" in err and "Traceback" not in err


def test_text_generate_prints_each_character_as_it_comes(text_model):
    """A long --length shows text at once, not after the whole of it is generated."""
    child = subprocess.Popen([sys.executable, "-m", "fastrnn", "text", "generate",
                              str(text_model[3]), "--prime", "The ", "--length", "100000000"],
                             cwd=str(Path(fastrnn.__file__).parents[1]),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    start = []
    reader = threading.Thread(target=lambda: start.append(child.stdout.read(4 + 20)), daemon=True)
    reader.start()
    reader.join(timeout=120)  # the first 20 characters come within a second or so
    child.kill()
    child.communicate(timeout=30)
    assert start and start[0].startswith(b"The ") and len(start[0]) == 24


def test_text_generate_with_a_seed_repeats(text_model):
    path = text_model[3]
    argv = ["text", "generate", path, "--prime", "def ", "--length", "40", "--temperature", "1.2"]
    first = run_cli(*argv, "--seed", "5")[1]
    assert run_cli(*argv, "--seed", "5")[1] == first
    assert run_cli(*argv, "--seed", "6")[1] != first


def test_text_train_on_a_file_prints_the_loss_of_each_epoch(tmp_path):
    corpus = tmp_path / "abc.txt"
    corpus.write_text("abcabcabd\n" * 40, encoding="utf-8")
    out = tmp_path / "abc.npz"
    code, stdout, err = run_cli("text", "train", corpus, "--units", "8", "--seq-len", "8",
                                "--epochs", "2", "--sample-length", "0", "--verbose", "2",
                                "--out", out)
    assert code == 0, err
    assert "400 characters, 5 distinct" in stdout and out.is_file()
    assert len(re.findall(r"Epoch [12]/2 .*loss: \d", stdout)) == 2


def test_text_train_reports_a_missing_file(tmp_path):
    assert_usage_error(run_cli("text", "train", tmp_path / "nope.txt"), "no such file", "nope.txt")


def test_text_train_reports_an_empty_file(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n\n", encoding="utf-8")
    assert_usage_error(run_cli("text", "train", empty), "is empty")


def test_text_train_reports_a_file_shorter_than_the_sequence_length(tmp_path):
    short = tmp_path / "short.txt"
    short.write_text("hello", encoding="utf-8")
    assert_usage_error(run_cli("text", "train", short, "--seq-len", "10"), "--seq-len 10")


def test_text_train_reports_a_file_that_is_not_utf8(tmp_path):
    binary = tmp_path / "data.bin"
    binary.write_bytes(b"\xff\xfe\x00\x81" * 50)
    assert_usage_error(run_cli("text", "train", binary), "not UTF-8")


def test_text_train_reports_an_output_folder_that_does_not_exist(tmp_path):
    result = run_cli("text", "train", "--out", tmp_path / "missing" / "m.npz")
    assert_usage_error(result, "no such directory")


def test_text_generate_reports_prime_characters_the_model_never_saw(text_model):
    assert_usage_error(run_cli("text", "generate", text_model[3], "--prime", "日本"),
                       "never saw", "日本")


def test_text_generate_reports_a_missing_model(tmp_path):
    assert_usage_error(run_cli("text", "generate", tmp_path / "none.npz"), "no such file")


def test_text_generate_reports_a_file_that_is_not_a_model(tmp_path):
    not_a_model = tmp_path / "notes.npz"
    not_a_model.write_text("just some notes", encoding="utf-8")
    assert_usage_error(run_cli("text", "generate", not_a_model), "not a model file saved by fastrnn")


def test_text_generate_refuses_a_model_of_another_command(sentiment_model):
    assert_usage_error(run_cli("text", "generate", sentiment_model[3]),
                       "not saved by `fastrnn text train`")


# --------------------------------------------------------------------------- sentiment

SENTIMENT_TINY = ["--epochs", "8", "--verbose", "0", "--seed", "0"]


@pytest.fixture(scope="module")
def sentiment_model(tmp_path_factory):
    """`fastrnn sentiment train` on the shipped reviews; its outputs."""
    out = tmp_path_factory.mktemp("sentiment") / "reviews.npz"
    return (*run_cli("sentiment", "train", *SENTIMENT_TINY, "--out", out), out)


def held_out_split():
    """The shipped reviews and the held-out rows of seed 0, as `sentiment train` picks them."""
    from fastrnn import data

    texts, labels = data.reviews()
    classes = sorted(set(labels))
    y = np.array([classes.index(label) for label in labels])
    _, test = sentiment_app.stratified_split(y, 0.2, np.random.default_rng(0))
    return texts, y, test


def test_sentiment_beats_the_majority_class_on_the_held_out_reviews(sentiment_model):
    code, out, err, path = sentiment_model
    assert code == 0, err
    texts, y, test = held_out_split()
    model = fastrnn.load_model(path)
    vocab = vocab_from_dict(model.metadata["vocab"])
    x = vocab.encode_batch([texts[i] for i in test], maxlen=model.metadata["max_len"])
    probs = model.predict(x, verbose=0)
    accuracy = np.mean((probs[:, 0] >= 0.5) == y[test])
    majority = np.max(np.bincount(y[test])) / len(test)
    assert accuracy > majority + 0.1, (accuracy, majority)
    assert f"held-out accuracy: {accuracy:.3f} (majority class: {majority:.3f}" in out


def test_sentiment_held_out_reviews_stay_out_of_the_vocabulary_counts(sentiment_model):
    """The vocabulary is built from the training texts only."""
    from fastrnn.text import WordVocab

    texts, _, test = held_out_split()
    train_texts = [t for i, t in enumerate(texts) if i not in set(test)]
    model = fastrnn.load_model(sentiment_model[3])
    assert vocab_from_dict(model.metadata["vocab"]) == WordVocab.from_texts(train_texts, max_size=20000)


def test_sentiment_predict_labels_clear_reviews(sentiment_model):
    path = sentiment_model[3]
    code, out, err = run_cli("sentiment", "predict", path,
                             "Great food, friendly staff, a wonderful evening.",
                             "Terrible, rude staff and cold food. Avoid.")
    assert code == 0, err
    first, second = out.strip().splitlines()
    assert first.startswith("positive") and second.startswith("negative")
    assert 0.5 <= float(first.split()[1]) <= 1.0


def test_sentiment_train_on_a_csv_with_other_columns_and_three_classes(tmp_path):
    rows = [(f"row {i}", text, label) for i, (text, label) in enumerate(
        [("good and fine", "up"), ("bad and poor", "down"), ("so so", "flat")] * 10)]
    data = write_csv(tmp_path / "three.csv", ["id", "review", "mood"], rows)
    out = tmp_path / "three.npz"
    code, stdout, err = run_cli("sentiment", "train", data, "--text-col", "review",
                                "--label-col", "mood", "--epochs", "1", "--units", "4",
                                "--embed-dim", "4", "--verbose", "0", "--out", out)
    assert code == 0, err
    assert "classes: down 10, flat 10, up 10" in stdout
    assert fastrnn.load_model(out).metadata["classes"] == ["down", "flat", "up"]
    code, stdout, err = run_cli("sentiment", "predict", out, "good")
    assert code == 0 and stdout.split()[0] in {"down", "flat", "up"}


def test_sentiment_train_reports_a_missing_file(tmp_path):
    assert_usage_error(run_cli("sentiment", "train", tmp_path / "nope.csv"), "no such file")


def test_sentiment_train_reports_a_missing_column_and_lists_the_columns(tmp_path):
    data = write_csv(tmp_path / "r.csv", ["review", "label"], [("good", "pos"), ("bad", "neg")])
    assert_usage_error(run_cli("sentiment", "train", data),
                       "no column 'text'", "'review', 'label'", "--text-col")


def test_sentiment_train_reports_a_label_column_with_one_class(tmp_path):
    data = write_csv(tmp_path / "r.csv", ["text", "label"], [("good", "pos"), ("fine", "pos")])
    assert_usage_error(run_cli("sentiment", "train", data), "only one class", "'pos'")


def test_sentiment_train_reports_an_empty_csv(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("", encoding="utf-8")
    assert_usage_error(run_cli("sentiment", "train", empty), "is empty")
    header_only = tmp_path / "header.csv"
    header_only.write_text("text,label\n", encoding="utf-8")
    assert_usage_error(run_cli("sentiment", "train", header_only), "no data rows")


def test_sentiment_train_reports_texts_that_are_all_empty(tmp_path):
    data = write_csv(tmp_path / "r.csv", ["text", "label"], [("", "pos"), ("  ", "neg")])
    assert_usage_error(run_cli("sentiment", "train", data), "every text", "is empty")


def test_sentiment_predict_reports_an_empty_text_and_still_classifies_the_others(sentiment_model):
    result = run_cli("sentiment", "predict", sentiment_model[3], "Great food.", " ", "Rude staff.")
    assert_usage_error(result, "TEXT 2 is empty", "not classified")
    lines = result[1].strip().splitlines()
    assert [line.split("  ")[-1] for line in lines] == ["Great food.", "Rude staff."]


def test_sentiment_predict_says_when_a_text_has_no_word_the_model_knows(sentiment_model):
    result = run_cli("sentiment", "predict", sentiment_model[3], "Zxqv blorft!", "Lovely staff.")
    assert_usage_error(result, "TEXT 1 ('Zxqv blorft!') has no word the model knows")
    assert result[1].strip().endswith("Lovely staff.") and len(result[1].splitlines()) == 1


def test_sentiment_predict_with_no_text_it_can_classify_prints_no_prediction(sentiment_model):
    result = run_cli("sentiment", "predict", sentiment_model[3], "", "qqqq zzzz")
    assert_usage_error(result, "TEXT 1 is empty", "TEXT 2 ('qqqq zzzz') has no word the model knows")
    assert result[1] == ""


def test_sentiment_pads_and_cuts_texts_at_the_front_so_the_model_reads_their_last_words(
        sentiment_model):
    model = fastrnn.load_model(sentiment_model[3])
    assert model.metadata["truncating"] == "pre"
    max_len = model.metadata["max_len"]
    long_text = "Great food. " + "qqqq " * max_len  # the known words fall off the front
    result = run_cli("sentiment", "predict", sentiment_model[3], long_text)
    assert_usage_error(result, f"has no word the model knows among its last {max_len} words")
    kept = run_cli("sentiment", "predict", sentiment_model[3], "qqqq " * max_len + "Great food.")
    assert kept[0] == 0, kept


def test_sentiment_predict_refuses_a_model_of_another_command(text_model):
    assert_usage_error(run_cli("sentiment", "predict", text_model[3], "good"),
                       "not saved by `fastrnn sentiment train`")


# --------------------------------------------------------------------------- forecast

def error_rows(out):
    """{'model': (mae, rmse), 'naive': (mae, rmse)} from the printed table."""
    rows = {}
    for line in out.splitlines():
        parts = line.split()
        if parts and parts[0] in ("model", "naive"):
            rows[parts[0]] = (float(parts[1]), float(parts[2]))
    return rows


def test_forecast_beats_the_naive_baseline_on_the_shipped_sunspots(tmp_path):
    from fastrnn import data

    plot = tmp_path / "sunspots.png"
    code, out, err = run_cli("forecast", "--verbose", "0", "--out", plot, *PLOT_OR_NOT)
    assert code == 0, err
    errors = error_rows(out)
    # The naive baseline, computed here: each held-out year forecast as the year before.
    _, values = data.sunspots()
    held_out = int(round(0.2 * values.size))
    truth, previous = values[-held_out:], values[-held_out - 1:-1]
    naive_rmse = np.sqrt(np.mean((truth - previous) ** 2))
    assert errors["naive"][1] == pytest.approx(naive_rmse, abs=1e-3)
    assert errors["model"][1] < 0.85 * naive_rmse, errors
    assert errors["model"][0] < errors["naive"][0]
    if HAVE_MATPLOTLIB:
        assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def synthetic_csv(path, n=120, with_dates=True):
    t = np.arange(n)
    values = 10 + 3 * np.sin(2 * np.pi * t / 12) + 0.1 * np.cos(t)
    rows = [(f"2000-{i:04d}" if with_dates else i, f"{v:.4f}", "x") for i, v in zip(t, values)]
    return write_csv(path, ["date", "level", "note"], rows)


def test_forecast_several_steps_ahead_on_a_users_csv(tmp_path):
    data = synthetic_csv(tmp_path / "levels.csv")
    plot = tmp_path / "levels.png"
    code, out, err = run_cli("forecast", data, "--column", "level", "--window", "12",
                             "--horizon", "3", "--epochs", "3", "--units", "8", "--verbose", "0",
                             "--out", plot, *PLOT_OR_NOT)
    assert code == 0, err
    assert "1 to 3 steps ahead" in out and "series 'level': 120 values, the last 24 held out" in out
    assert plot.is_file() == HAVE_MATPLOTLIB


def test_forecast_with_no_plot_writes_no_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = synthetic_csv(tmp_path / "levels.csv", with_dates=False)
    code, _, err = run_cli("forecast", data, "--column", "level", "--epochs", "1",
                           "--units", "4", "--verbose", "0", "--no-plot")
    assert code == 0, err
    assert not (tmp_path / "forecast.png").exists()


def test_forecast_reports_a_missing_file(tmp_path):
    assert_usage_error(run_cli("forecast", tmp_path / "nope.csv"), "no such file")


def test_forecast_reports_a_missing_column_and_lists_the_columns(tmp_path):
    data = synthetic_csv(tmp_path / "levels.csv")
    assert_usage_error(run_cli("forecast", data, "--column", "height"),
                       "no column 'height'", "'date', 'level', 'note'", "--column")


def test_forecast_reports_a_value_that_is_not_a_number(tmp_path):
    data = write_csv(tmp_path / "bad.csv", ["t", "v"], [(i, "1.5" if i != 7 else "n/a") for i in range(60)])
    assert_usage_error(run_cli("forecast", data), "data row 8", "'n/a'", "not a number")


def test_forecast_reports_a_series_too_short_for_the_window(tmp_path):
    data = write_csv(tmp_path / "short.csv", ["t", "v"], [(i, i) for i in range(20)])
    assert_usage_error(run_cli("forecast", data, "--window", "20"), "too few", "--window 20")


@needs_matplotlib
def test_forecast_reports_a_plot_folder_that_does_not_exist(tmp_path):
    result = run_cli("forecast", "--out", tmp_path / "missing" / "f.png")
    assert_usage_error(result, "no such directory")


def test_forecast_without_matplotlib_prints_the_errors_and_says_how_to_get_the_plot(
        tmp_path, monkeypatch):
    """As right after `pip install fastrnn`: matplotlib is an optional extra."""
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` fail
    monkeypatch.chdir(tmp_path)
    data = synthetic_csv(tmp_path / "levels.csv")
    code, out, err = run_cli("forecast", data, "--column", "level", "--epochs", "1",
                             "--units", "4", "--verbose", "0")
    assert code == 0, err
    assert error_rows(out).keys() == {"model", "naive"}
    assert err.strip().splitlines() == [
        'fastrnn forecast: no plot written: it needs matplotlib, an optional extra: '
        'pip install "fastrnn[plot]" (or pass --no-plot)']
    assert sorted(os.listdir(tmp_path)) == ["levels.csv"]


@pytest.mark.parametrize("values", [(1e308, -1e308), (1e308, 1e308), (1e200, -1e200)],
                         ids=["sum-overflows", "mean-overflows", "spread-overflows"])
def test_forecast_on_values_float64_arithmetic_cannot_hold_is_a_clear_error(tmp_path, values):
    data = write_csv(tmp_path / "huge.csv", ["t", "v"],
                     [(i, values[i % 2]) for i in range(60)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no RuntimeWarning: overflow ...
        result = run_cli("forecast", data, "--epochs", "1", "--no-plot", "--verbose", "0")
    assert_usage_error(result, f"{data}: the values of column 'v' are too large",
                       "scale them down")
    assert result[1] == ""


# --------------------------------------------------------------------------- the real entry point

def run_program(*argv, env=None, stdout=subprocess.PIPE):
    """``python -m fastrnn ARGV...`` in a child process, from the folder holding the fastrnn
    these tests import (so that it runs that one); its stdout to ``stdout``."""
    src = str(Path(fastrnn.__file__).parents[1])
    return subprocess.run([sys.executable, "-m", "fastrnn", *argv], stdout=stdout, stderr=subprocess.PIPE,
                          text=True, cwd=src, env={**os.environ, **(env or {})}, timeout=120)


def test_the_commands_are_reachable_through_python_m_fastrnn():
    from fastrnn import cli

    missing = [m.__name__ for m in APP_MODULES if m.__name__ not in cli.COMMAND_MODULES]
    if missing:
        pytest.skip(f"not yet in fastrnn.cli.COMMAND_MODULES: {missing}")
    for command in ("text", "sentiment", "forecast"):
        result = run_program(command, "--help")
        assert result.returncode == 0 and "usage: fastrnn " + command in result.stdout


@pytest.mark.parametrize("argv", [["--help"], ["info"]])
@pytest.mark.parametrize("variable", ["FASTRNN_ISA", "FASTRNN_CACHE_LIMIT"])
def test_a_bad_setting_is_one_line_naming_it_with_exit_code_2(argv, variable):
    done = run_program(*argv, env={variable: "bogus"})
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [done.stderr.strip()]
    assert f"{variable}='bogus'" in done.stderr


def test_output_to_a_reader_that_went_away_stops_quietly():
    read, write = os.pipe()
    os.close(read)  # before the program writes a byte: its first write fails
    with os.fdopen(write, "w") as closed:
        done = run_program("info", stdout=closed)
    assert done.returncode == 1
    assert done.stderr == ""


# --------------------------------------------------------------------------- check, and sizes too big

def run_main(capsys, *argv):
    """``fastrnn.cli.main(argv)`` in this process; (exit code, stdout, stderr)."""
    from fastrnn import cli

    try:
        code = cli.main([str(a) for a in argv])
    except SystemExit as stop:  # argparse's usage errors
        code = stop.code
    out, err = capsys.readouterr()
    return code, out, err


def test_version_is_the_packages(capsys):
    code, out, err = run_main(capsys, "--version")
    assert code == 0 and out == f"fastrnn {fastrnn.__version__}\n" and err == ""


def test_info_names_the_version_first(capsys):
    code, out, _ = run_main(capsys, "info")
    assert code == 0 and out.startswith(f"fastrnn {fastrnn.__version__}, kernels: Eigen ")


def test_importing_fastrnn_main_runs_nothing():
    """Tools that import every module (documentation generators) import fastrnn.__main__ too."""
    done = subprocess.run([sys.executable, "-c", "import fastrnn.__main__"], capture_output=True,
                          text=True, cwd=str(Path(fastrnn.__file__).parents[1]), timeout=120)
    assert done.returncode == 0 and done.stdout == "" and done.stderr == ""


def test_python_m_fastrnn_version():
    done = run_program("--version")
    assert done.returncode == 0 and done.stdout == f"fastrnn {fastrnn.__version__}\n"


def test_check_compares_every_mode_with_the_reference(capsys):
    code, out, _ = run_main(capsys, "check", "--shape", 4, 3, 5, 6, "--repeats", 1)
    assert code == 0
    assert "shape T=4 B=3 I=5 H=6, float32" in out
    for mode in ("rnn_tanh", "rnn_relu", "lstm", "gru"):
        assert re.search(rf"^{mode} +\d\.\d\de-\d\d ", out, re.MULTILINE), out
    assert out.rstrip().endswith("all modes agree with the reference")


@pytest.mark.parametrize("argv, fragment", [
    (["--shape", -1, 2, 3, 4], "argument --shape: expected a number >= 1, got -1"),
    (["--shape", 2, 0, 3, 4], "argument --shape: expected a number >= 1, got 0"),
    (["--repeats", 0], "argument --repeats: expected a number >= 1, got 0"),
    (["--repeats", 2.5], "argument --repeats: expected a whole number, got '2.5'"),
])
def test_check_refuses_sizes_and_repeats_below_one(capsys, argv, fragment):
    code, out, err = run_main(capsys, "check", *argv)
    assert code == 2 and out == ""
    assert fragment in err and "Traceback" not in err


def test_check_refuses_a_shape_beyond_the_machines_memory_before_allocating(capsys):
    from fastrnn.benchmark import physical_memory_bytes

    if physical_memory_bytes() is None:
        pytest.skip("this OS does not tell its memory size")
    code, out, err = run_main(capsys, "check", "--shape", 100000, 10000, 1000, 1000)
    assert code == 2 and out == ""
    assert err.startswith("fastrnn check: error: shape 100000x10000x1000x1000 needs at least")


def no_message():
    raise MemoryError


@pytest.mark.parametrize("allocate", [lambda: np.empty(2**60, np.uint8),  # beyond any address space
                                      lambda: np.empty(2**62, np.float64),  # beyond NumPy's sizes
                                      no_message],
                         ids=["MemoryError", "too-big", "no-message"])
def test_a_size_this_machine_cannot_hold_is_one_line_with_exit_code_1(capsys, monkeypatch, allocate):
    """Such as `fastrnn forecast --units 10000000000`: NumPy's own message, no traceback."""
    from fastrnn import selfcheck

    monkeypatch.setattr(selfcheck, "run_info", lambda args: allocate())
    code, _, err = run_main(capsys, "info")
    assert code == 1
    line = err.strip()
    assert len(err.splitlines()) == 1
    assert line == "fastrnn: error: not enough memory" or line.startswith("fastrnn: error: not enough memory: ")


def test_other_value_errors_are_not_taken_for_memory(capsys, monkeypatch):
    from fastrnn import selfcheck

    def fail(args):
        raise ValueError("something else")

    monkeypatch.setattr(selfcheck, "run_info", fail)
    with pytest.raises(ValueError, match="something else"):
        run_main(capsys, "info")


# --------------------------------------------------------------------------- every bad number

def numeric_options():
    """(command words, option) for every option of the app commands that takes a number."""
    from fastrnn.apps import _common

    number_types = {_common.positive_int, _common.non_negative_int, _common.non_negative_float,
                    _common.positive_float, _common.fraction}
    parser = argparse.ArgumentParser(prog="fastrnn")
    commands = parser.add_subparsers(dest="command")
    for module in APP_MODULES:
        module.add_parser(commands)
    found = []

    def walk(p, words):
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, words + [name])
            elif action.type in number_types and action.option_strings:
                found.append((tuple(words), action.option_strings[0]))

    walk(parser, [])
    return found


NUMERIC_OPTIONS = numeric_options()
BAD_NUMBERS = ["-1", "-0.5", "nan", "inf", "-inf", "1e999", "x", "", "1,5"]


def test_every_numeric_option_is_covered():
    assert len(NUMERIC_OPTIONS) >= 25, NUMERIC_OPTIONS


@pytest.mark.parametrize("words, option", NUMERIC_OPTIONS,
                         ids=[" ".join(words) + " " + option for words, option in NUMERIC_OPTIONS])
def test_every_numeric_option_refuses_every_bad_number_in_one_line(tmp_path, words, option):
    """No bad number reaches the work: exit code 2, argparse's one line naming the option."""
    positional = {("text", "generate"): [tmp_path / "m.npz"],
                  ("sentiment", "predict"): [tmp_path / "m.npz", "some text"]}.get(words, [])
    for bad in BAD_NUMBERS:
        code, out, err = run_cli(*words, *positional, f"{option}={bad}")
        assert code == 2 and out == "", (bad, err)
        assert "Traceback" not in err and f"argument {option}: " in err, (bad, err)
