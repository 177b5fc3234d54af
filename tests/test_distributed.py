"""Data-parallel fit over MPI: scripts run under ``mpiexec -n 2`` and ``-n 3`` end with the
weights of the same script run as one process (float32 to 1e-5, float64 to 1e-12), and faults
stop every rank. Skipped without mpi4py or mpiexec; every launch has a timeout."""
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("mpi4py")

HERE = Path(__file__).parent
SCRIPT = HERE / "distributed_fit.py"
MPIEXEC = shutil.which("mpiexec", path=os.pathsep.join([str(Path(sys.executable).parent),
                                                        os.environ.get("PATH", "")]))
TIMEOUT = 90  # seconds for one launch on a loaded 2-core machine; a hang fails instead
pytestmark = pytest.mark.skipif(MPIEXEC is None, reason="no mpiexec")


def _env():
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore::RuntimeWarning")
    for name in ("PMI_SIZE", "PMI_RANK", "OMPI_COMM_WORLD_SIZE", "PMIX_RANK"):
        env.pop(name, None)  # a test run itself under MPI must not look like a rank
    return env


def run(args, ranks=None, check=True):
    command = [sys.executable, *map(str, args)]
    if ranks is not None:
        command = [MPIEXEC, "-n", str(ranks), *command]
    result = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT, env=_env())
    if check and result.returncode != 0:
        raise AssertionError(f"{command} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def fit(tmp_path, name, *options, ranks=None):
    out = tmp_path / f"{name}.npz"
    run([SCRIPT, *options[:2], out, *options[2:]], ranks=ranks)
    with np.load(out) as saved:
        weights = [saved[f"arr_{k}"] for k in range(len([f for f in saved.files if f.startswith("arr_")]))]
        return weights, json.loads(str(saved["history"])), json.loads(str(saved["stats"])), int(saved["size"])


def assert_weights_close(a, b, dtype):
    tol = 1e-5 if dtype == "float32" else 1e-12
    assert len(a) == len(b)
    for wa, wb in zip(a, b):
        assert wa.dtype == np.dtype(dtype)
        np.testing.assert_allclose(wa, wb, rtol=0, atol=tol)


@pytest.mark.parametrize("model, dtype, ranks", [
    ("lstm", "float32", 2), ("lstm", "float64", 3),
    ("gru", "float64", 2), ("gru", "float32", 3),
    ("bimask", "float64", 3), ("bimask", "float32", 2),
])
def test_fit_over_ranks_equals_one_process(tmp_path, model, dtype, ranks):
    one, one_history, _, size = fit(tmp_path, "one", model, dtype)
    assert size == 1
    many, history, counters, size = fit(tmp_path, "many", model, dtype, ranks=ranks)
    assert size == ranks
    assert_weights_close(many, one, dtype)
    assert any(np.abs(w - v).max() > 0.01 for w, v in zip(many, fit_untrained(model, dtype)))
    # The logs are reduced over the ranks: the losses and metrics of one process.
    assert history.keys() == one_history.keys() == {"loss", "mae", "val_loss", "val_mae"}
    for key in history:
        np.testing.assert_allclose(history[key], one_history[key], rtol=1e-6 if dtype == "float32" else 1e-12)
    steps = 3 * -(-18 // 7)  # 3 epochs of the 18 training rows (23 less the validation split)
    assert counters["gradient_calls"] == steps


def test_a_weighted_pydataset_over_ranks_equals_one_process(tmp_path):
    """Every rank reads the same PyDataset (shuffled from rank 0's draw) and takes its part of
    each batch, the sample weights with their rows."""
    one, one_history, _, _ = fit(tmp_path, "one", "bimask", "float32", "--pydataset")
    many, history, counters, size = fit(tmp_path, "many", "bimask", "float32", "--pydataset", ranks=2)
    assert size == 2
    assert_weights_close(many, one, "float32")
    assert any(np.abs(w - v).max() > 0.01 for w, v in zip(many, fit_untrained("bimask", "float32")))
    assert history.keys() == one_history.keys() == {"loss", "mae", "weighted_mae", "val_loss",
                                                    "val_mae", "val_weighted_mae"}
    for key in history:
        np.testing.assert_allclose(history[key], one_history[key], rtol=1e-6)
    assert history["mae"] != history["weighted_mae"]
    assert counters["gradient_calls"] == 3 * -(-18 // 7)


_UNTRAINED = {}


def fit_untrained(model, dtype):
    """The script's initial weights, so that a test knows training moved them."""
    if (model, dtype) not in _UNTRAINED:
        sys.path.insert(0, str(HERE))
        try:
            import distributed_fit
        finally:
            sys.path.pop(0)
        _UNTRAINED[model, dtype] = distributed_fit.build(model, dtype).get_weights()
    return _UNTRAINED[model, dtype]


def test_ranks_without_rows_in_a_step_take_part(tmp_path):
    """Batches of 2 rows on 3 ranks: one rank has no rows in every step, training and
    validation (the last validation batch of 1 row leaves two ranks without)."""
    one, one_history, *_ = fit(tmp_path, "one", "bimask", "float64", "--batch-size", "2")
    many, history, *_ = fit(tmp_path, "many", "bimask", "float64", "--batch-size", "2", ranks=3)
    assert_weights_close(many, one, "float64")
    np.testing.assert_allclose(history["val_loss"], one_history["val_loss"], rtol=1e-12)


def test_sharded_fit_equals_one_process(tmp_path):
    one, *_ = fit(tmp_path, "one", "bimask", "float64", "--sharded")
    many, history, _, _ = fit(tmp_path, "many", "bimask", "float64", "--sharded", ranks=3)
    assert_weights_close(many, one, "float64")


def test_checkpoint_resumes_on_another_number_of_ranks(tmp_path):
    """A model saved by rank 0 of a 2-rank run trains on with 3 ranks as it does alone."""
    checkpoint = tmp_path / "checkpoint.keras"
    fit(tmp_path, "first", "gru", "float64", "--epochs", "1", "--save", checkpoint, ranks=2)
    assert checkpoint.exists() and not list(tmp_path.glob("*.tmp*"))
    one, *_ = fit(tmp_path, "one", "gru", "float64", "--epochs", "1", "--resume", checkpoint)
    many, *_ = fit(tmp_path, "many", "gru", "float64", "--epochs", "1", "--resume", checkpoint,
                   "--perturb", ranks=3)  # ranks 1 and 2 get rank 0's weights and Adam's slots
    assert_weights_close(many, one, "float64")


@pytest.mark.parametrize("fault", ["--fail-rank", "--die-rank"])
def test_a_failing_rank_stops_every_rank(tmp_path, fault):
    result = run([SCRIPT, "lstm", "float64", tmp_path / "out.npz", fault, "1"], ranks=2, check=False)
    assert result.returncode != 0
    assert not (tmp_path / "out.npz").exists()
    if fault == "--fail-rank":
        assert "a fault on purpose" in result.stderr


def test_init_alone_warns_and_changes_nothing():
    code = ("import warnings, fastrnn\n"
            "from fastrnn import distributed\n"
            "with warnings.catch_warnings(record=True) as caught:\n"
            "    warnings.simplefilter('always')\n"
            "    distributed.init()\n"
            "assert any('single process' in str(w.message) for w in caught), caught\n"
            "assert not distributed.is_initialized() and distributed.size() == 1\n"
            "assert distributed.rank() == 0 and distributed.is_chief()\n"
            "print('ok')\n")
    assert run(["-c", code]).stdout.strip() == "ok"


def test_init_refuses_bad_threads():
    from fastrnn import distributed

    with pytest.raises(ValueError, match="threads"):
        distributed.init(threads=0)
    with pytest.raises(TypeError, match="sharded"):
        distributed.fit_run(sharded="yes")


def test_text_train_under_mpiexec_gives_the_model_of_one_process(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the quick brown fox jumps over the lazy dog. " * 30, encoding="utf-8")
    argv = ["-m", "fastrnn", "text", "train", corpus, "--units", "8", "--seq-len", "8",
            "--epochs", "2", "--batch-size", "9", "--sample-length", "5", "--verbose", "1"]
    alone = run([*argv, "--out", tmp_path / "one.npz"])
    together = run([*argv, "--out", tmp_path / "two.npz"], ranks=2)
    import fastrnn

    one = fastrnn.load_model(tmp_path / "one.npz").get_weights()
    two = fastrnn.load_model(tmp_path / "two.npz").get_weights()
    for a, b in zip(one, two):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)  # float32
    # One progress bar and one report: rank 0's.
    assert together.stdout.count("saved the model") == 1
    assert together.stdout.count("Epoch 1/2") == alone.stdout.count("Epoch 1/2") == 1
    assert together.stdout.count("--- sample after epoch") == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus.txt", "one.npz", "two.npz"]


def test_callbacks_decide_the_same_on_every_rank(tmp_path):
    """ReduceLROnPlateau halves the rate and EarlyStopping stops at the epochs one process
    does; ModelCheckpoint writes each file once."""
    (tmp_path / "one").mkdir()
    (tmp_path / "many").mkdir()
    one, one_history, *_ = fit(tmp_path, "one", "lstm", "float64", "--epochs", "8",
                               "--callbacks", tmp_path / "one")
    many, history, *_ = fit(tmp_path, "many", "lstm", "float64", "--epochs", "8",
                            "--callbacks", tmp_path / "many", ranks=3)
    assert 1 < len(one_history["loss"]) < 8  # stopped early
    assert one_history["learning_rate"][-1] < one_history["learning_rate"][0]  # reduced
    assert history["learning_rate"] == one_history["learning_rate"]
    assert_weights_close(many, one, "float64")
    assert sorted(p.name for p in (tmp_path / "many").iterdir()) == \
        sorted(p.name for p in (tmp_path / "one").iterdir())


def test_stop_training_on_one_rank_stops_all(tmp_path):
    _, history, counters, _ = fit(tmp_path, "many", "lstm", "float64", "--stop-rank", "1", ranks=2)
    assert len(history["loss"]) == 1
    assert counters["gradient_calls"] == 2  # batches 0 and 1, then every rank stopped


@pytest.mark.parametrize("fault, error", [
    ("--bad-rank", "y_true shape (3, 3) does not match y_pred shape (3, 2)"),
    ("--empty-rank", "fit needs at least one sample"),
])
def test_an_error_on_one_rank_is_raised_on_every_rank(tmp_path, fault, error):
    """Rank 1 raises its error, rank 0 a RuntimeError naming rank 1, at the same point (without
    MPI.Abort). Rank 1's traceback itself is not looked for: the launcher may end rank 1 once
    rank 0 has exited, and the two ranks' stderr interleave."""
    result = run([SCRIPT, "lstm", "float64", tmp_path / "out.npz", "--sharded", fault, "1",
                  "--no-abort"], ranks=2, check=False)
    assert result.returncode != 0
    assert f"fastrnn.distributed: rank 1: ValueError: {error}" in result.stderr
    assert "\nRuntimeError: fit: rank(s) [1] of 2 raised an error" in result.stderr  # rank 0's


def test_kernel_threads_default_to_the_cores_shared_out():
    code = ("import json, fastrnn\nfrom fastrnn import distributed, ops\ndistributed.init()\n"
            "found = distributed._world.comm.gather((distributed.rank(), distributed.local_size(), "
            "fastrnn.get_num_threads(), ops.physical_cores()))\n"
            "print(json.dumps(found)) if distributed.is_chief() else None\n")
    env = _env()
    env.pop("OMP_NUM_THREADS")
    result = subprocess.run([MPIEXEC, "-n", "2", sys.executable, "-c", code], env=env,
                            capture_output=True, text=True, timeout=TIMEOUT, check=True)
    found = json.loads(result.stdout)
    assert len(found) == 2
    for r, (rank, local, threads, cores) in enumerate(found):
        assert (rank, local, threads) == (r, 2, max(1, cores // 2))


def test_a_rank_that_stops_answering_ends_the_job_after_the_timeout(tmp_path):
    result = run([SCRIPT, "lstm", "float64", tmp_path / "out.npz", "--hang-rank", "1",
                  "--timeout", "2"], ranks=2, check=False)  # the hung rank sleeps 120 s
    assert result.returncode != 0
    # Allreduce, where rank 1 hangs; on a busy machine a slow start can trip an earlier collective.
    assert re.search(r"rank 0: waited more than 2 s for the other ranks in \w+", result.stderr)


def test_init_refuses_a_bad_timeout():
    from fastrnn import distributed

    for timeout in (0, -1.0, float("nan"), "10", True):
        with pytest.raises(ValueError, match="timeout"):
            distributed.init(timeout=timeout)


def test_init_without_mpi4py_says_what_to_install(monkeypatch):
    from fastrnn import distributed

    monkeypatch.setitem(sys.modules, "mpi4py", None)  # import mpi4py now fails
    with pytest.raises(ImportError, match=r'pip install "fastrnn\[mpi\]"'):
        distributed.init()
    assert not distributed.is_initialized()


@pytest.mark.parametrize("env, launched", [
    ({}, False), ({"PMI_SIZE": "1"}, False), ({"PMI_SIZE": "4"}, True),
    ({"OMPI_COMM_WORLD_SIZE": "2"}, True), ({"OMPI_COMM_WORLD_SIZE": "1"}, False),
    ({"PMIX_RANK": "0"}, True),
])
def test_launched_by_mpi_reads_the_launchers_variables(monkeypatch, env, launched):
    from fastrnn import distributed

    for name in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "MV2_COMM_WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert distributed.launched_by_mpi() is launched


def test_without_init_fit_and_save_are_those_of_one_process(tmp_path):
    """No MPI: sharded changes nothing, and every file is written."""
    import fastrnn
    from fastrnn import layers

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(10, 4, 3)), rng.normal(size=(10, 1))
    results = []
    for sharded in (False, True):
        fastrnn.utils.set_random_seed(0)
        model = fastrnn.Sequential([fastrnn.Input((4, 3)), layers.GRU(3), layers.Dense(1)])
        model.compile("adam", "mse")
        model.fit(x, y, batch_size=4, epochs=2, verbose=0, sharded=sharded)
        results.append(model.get_weights())
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)
    model.save(tmp_path / "m.keras")
    model.save_weights(tmp_path / "m.weights.npz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.keras", "m.weights.npz"]
