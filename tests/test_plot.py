"""Plots: training curves and forecasts written as PNG files; a clear message without matplotlib."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fastrnn import plot

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TAB_BLUE, TAB_ORANGE, TAB_RED = (31, 119, 180), (255, 127, 14), (214, 39, 40)


def pixels_of(path, rgb, tolerance=3):
    """How many pixels of the PNG at ``path`` have colour ``rgb`` (within ``tolerance`` per channel)."""
    from matplotlib.image import imread

    image = (imread(path)[..., :3] * 255).round().astype(int)  # (H, W, 3)
    return int(np.all(np.abs(image - np.array(rgb)) <= tolerance, axis=-1).sum())


def image_size(path):
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == PNG_SIGNATURE
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


HISTORY = {"loss": [1.0, 0.6, 0.4], "val_loss": [1.1, 0.8, 0.7],
           "accuracy": [0.5, 0.7, 0.8], "val_accuracy": [0.5, 0.6, 0.7]}


def test_plot_history_draws_training_and_validation_curves(tmp_path):
    pytest.importorskip("matplotlib")
    out = plot.plot_history(HISTORY, tmp_path / "history.png")
    assert out == str(tmp_path / "history.png")
    width, height = image_size(out)
    assert (width, height) == (900, 340)  # two panels, 4.5 x 3.4 inches each at 100 dpi
    assert pixels_of(out, TAB_BLUE) > 100  # training curves
    assert pixels_of(out, TAB_ORANGE) > 100  # validation curves


def test_plot_history_without_validation_draws_no_validation_curve(tmp_path):
    pytest.importorskip("matplotlib")
    out = plot.plot_history({"loss": [3.0, 2.0, 1.5]}, tmp_path / "h.png")
    assert pixels_of(out, TAB_BLUE) > 100
    assert pixels_of(out, TAB_ORANGE) == 0


def test_plot_history_accepts_an_object_with_a_history_dict(tmp_path):
    pytest.importorskip("matplotlib")

    class FakeHistory:
        history = {"loss": [2.0, 1.0]}

    assert image_size(plot.plot_history(FakeHistory(), tmp_path / "h.png"))[0] == 450


def test_plot_history_without_a_path_returns_the_figure_and_writes_nothing(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    monkeypatch.chdir(tmp_path)
    fig = plot.plot_history(HISTORY, None)
    assert len(fig.axes) == 2 and [ax.get_title() for ax in fig.axes] == ["loss", "accuracy"]
    assert list(tmp_path.iterdir()) == []


def test_a_plot_that_fails_halfway_leaves_the_old_file_and_nothing_beside_it(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure

    def broken_savefig(self, f, **kwargs):
        f.write(PNG_SIGNATURE)
        raise OSError("disk full")

    path = tmp_path / "h.png"
    path.write_bytes(b"the old plot")
    monkeypatch.setattr(Figure, "savefig", broken_savefig)
    with pytest.raises(OSError, match="disk full"):
        plot.plot_history(HISTORY, path)
    assert path.read_bytes() == b"the old plot"
    assert os.listdir(tmp_path) == ["h.png"]


def test_history_plot_of_a_real_fit_draws_its_loss_curves(tmp_path):
    pytest.importorskip("matplotlib")
    import fastrnn
    from fastrnn import layers as L

    fastrnn.utils.set_random_seed(0)
    x = np.random.default_rng(0).normal(size=(40, 5, 2)).astype(np.float32)
    y = x.sum(axis=(1, 2))[:, None]
    model = fastrnn.Sequential([L.Input(shape=(5, 2)), L.GRU(4), L.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    history = model.fit(x, y, epochs=3, batch_size=10, validation_split=0.25, verbose=0)
    out = history.plot(tmp_path / "fit.png")
    assert image_size(out) == (450, 340)
    assert pixels_of(out, TAB_BLUE) > 50 and pixels_of(out, TAB_ORANGE) > 50


def test_plot_history_refuses_an_unknown_metric_name(tmp_path):
    with pytest.raises(ValueError, match="no 'mae'"):
        plot.plot_history(HISTORY, tmp_path / "h.png", metrics=["mae"])


def test_plot_history_refuses_something_that_is_not_a_history(tmp_path):
    with pytest.raises(TypeError, match="History or a dict"):
        plot.plot_history([1.0, 2.0], tmp_path / "h.png")


def test_plot_forecast_draws_truth_forecast_and_baseline(tmp_path):
    pytest.importorskip("matplotlib")
    t = np.arange(1950, 1990)
    truth = 50 + 40 * np.sin(t / 2.0)
    out = plot.plot_forecast(tmp_path / "f.png", truth, truth + 5, time=t,
                             baseline=np.roll(truth, 1), history=truth[:10] - 3)
    assert image_size(out) == (900, 400)
    assert pixels_of(out, TAB_RED) > 100  # the forecast
    assert pixels_of(out, TAB_BLUE) > 100  # the dashed baseline
    assert pixels_of(out, (0, 0, 0), tolerance=10) > 100  # the truth


def test_plot_forecast_refuses_lines_of_different_lengths(tmp_path):
    with pytest.raises(ValueError, match="y_pred must have the 5 steps"):
        plot.plot_forecast(tmp_path / "f.png", np.zeros(5), np.zeros(4))
    with pytest.raises(ValueError, match="y_true must be 1-D"):
        plot.plot_forecast(tmp_path / "f.png", np.zeros((5, 2)), np.zeros(5))


def test_missing_matplotlib_gives_an_import_error_naming_the_extra(tmp_path, monkeypatch):
    # A None entry in sys.modules makes "import matplotlib..." raise ImportError.
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r'pip install "fastrnn\[plot\]"'):
        plot.plot_history({"loss": [1.0]}, tmp_path / "h.png")
    with pytest.raises(ImportError, match=r'pip install "fastrnn\[plot\]"'):
        plot.plot_forecast(tmp_path / "f.png", np.zeros(3), np.zeros(3))
    assert not (tmp_path / "h.png").exists()


def test_plotting_leaves_pyplot_unloaded(tmp_path):
    """The caller's matplotlib state (pyplot, its backend) is not touched."""
    pytest.importorskip("matplotlib")
    code = ("import sys, numpy as np; from fastrnn import plot; "
            f"plot.plot_forecast({str(tmp_path / 'f.png')!r}, np.zeros(3), np.ones(3)); "
            "print('matplotlib.pyplot' in sys.modules)")
    src = str(Path(plot.__file__).parents[1])
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": src}, check=True)
    assert result.stdout.strip() == "False"
