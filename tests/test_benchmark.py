"""Smoke tests of ``fastrnn bench`` (``fastrnn.bench``) and its baselines (``fastrnn.bench.baselines``).

The runner is run on tiny shapes with a tiny budget: these tests check what it runs, what it
writes and that the baselines compute what fastrnn computes. They never look at how long
anything took.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from fastrnn import argtypes, reference
from fastrnn.bench import baselines, cases, cli, grid, machine, memory, runners, timing
from fastrnn.bench import report as bench_report
from fastrnn.modes import GATES

TINY = "6x3x4x5"  # T x B x I x H
FAST = ["--budget", "0.001", "--threads", "1", "--quiet", "--no-memory"]


def run_cli(capsys, *argv):
    """Run ``fastrnn bench`` with ``argv``; returns (exit code, stdout, stderr)."""
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# ----------------------------------------------------------------------------------------
# FLOP counts and timing


@pytest.mark.parametrize("mode", cases.ALL_MODES)
def test_forward_flops_count_the_input_and_recurrent_gemm_of_every_step(mode):
    T, B, I, H = 7, 3, 5, 4  # noqa: E741
    G = GATES[mode]
    input_gemm = 2 * (T * B) * I * (G * H)  # (T*B, I) x (I, G*H), all steps at once
    recurrent_gemms = T * 2 * B * H * (G * H)  # (B, H) x (H, G*H) at each step
    assert cases.forward_flops(mode, T, B, I, H) == input_gemm + recurrent_gemms
    assert cases.task_flops(mode, "infer", T, B, I, H) == input_gemm + recurrent_gemms
    assert cases.task_flops(mode, "train", T, B, I, H) == 3 * (input_gemm + recurrent_gemms)


class FakeClock:
    """Stands in for ``time`` in fastrnn.bench.timing: each ``run`` call takes ``seconds``."""

    def __init__(self, seconds):
        self.now, self.seconds, self.calls, self.sleeps = 0.0, seconds, 0, []

    def perf_counter(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds
        self.sleeps.append(seconds)

    def run(self):
        self.calls += 1
        self.now += self.seconds
        return f"result of call {self.calls}"


def test_measure_warms_up_once_then_times_calls_until_the_budget_is_spent(monkeypatch):
    clock = FakeClock(seconds=0.3)
    monkeypatch.setattr(timing, "time", clock)
    timed, first = timing.measure(clock.run, budget_s=1.0)
    assert first == "result of call 1"  # the warm-up call's result is handed back
    assert timed.repeats == 4 and clock.calls == 5  # 4 x 0.3 s is the first total >= 1 s
    assert timed.median == pytest.approx(0.3) and timed.warmup == pytest.approx(0.3)


def test_measure_times_at_least_three_calls_when_they_fit_in_three_budgets(monkeypatch):
    clock = FakeClock(seconds=0.45)
    monkeypatch.setattr(timing, "time", clock)
    timed, _ = timing.measure(clock.run, budget_s=0.5)
    assert timed.repeats == 3  # the budget was spent after 2, but 3 calls fit in 1.5 s


def test_measure_times_a_single_call_when_it_takes_more_than_three_budgets(monkeypatch):
    clock = FakeClock(seconds=4.0)
    monkeypatch.setattr(timing, "time", clock)
    timed, _ = timing.measure(clock.run, budget_s=1.0)
    assert timed.repeats == 1 and clock.calls == 2


def test_measure_stops_at_max_repeats():
    timed, _ = timing.measure(lambda: None, budget_s=3600.0, max_repeats=5)
    assert timed.repeats == 5


def test_implementations_of_a_case_take_turns_of_a_fraction_of_the_budget(monkeypatch):
    clock = FakeClock(seconds=0.125)
    monkeypatch.setattr(timing, "time", clock)
    order = []

    def runner(name):
        return lambda: (order.append(name), clock.run())[1]

    measured = timing.measure_side_by_side({"a": runner("a"), "b": runner("b")}, budget_s=1.0, rounds=4)
    assert order[:2] == ["a", "b"]  # one warm-up call each
    # turns of 0.25 s (after an untimed call), until each has spent 1 s
    assert order[2:] == ["a", "a", "a", "b", "b", "b"] * 4
    assert clock.sleeps == [timing.SETTLE_S] * 8  # a pause before every turn
    assert {name: timed.repeats for name, (timed, _) in measured.items()} == {"a": 8, "b": 8}


def test_taking_turns_keeps_the_ratio_when_the_machine_slows_down_during_a_case(monkeypatch):
    clock = FakeClock(seconds=0.0)
    monkeypatch.setattr(timing, "time", clock)

    def runner(cost):  # b does twice a's work, on a machine that gets slower as time goes on
        def run():
            clock.now += cost * (1.0 + clock.now)
        return run

    a_first = timing.measure(runner(0.01), 1.0)[0].median
    one_after_the_other = timing.measure(runner(0.02), 1.0)[0].median / a_first
    clock.now = 0.0
    measured = timing.measure_side_by_side({"a": runner(0.01), "b": runner(0.02)}, budget_s=1.0, settle_s=0.0)
    taking_turns = measured["b"][0].median / measured["a"][0].median
    assert one_after_the_other > 3.0
    assert taking_turns == pytest.approx(2.0, abs=0.3)


def test_reference_is_estimated_slower_for_more_flops_and_more_steps():
    rate = 1e11
    small = runners.estimate_reference_seconds("lstm", "train", (10, 4, 8, 8), rate)
    assert runners.estimate_reference_seconds("lstm", "train", (10, 400, 8, 8), rate) > small
    assert runners.estimate_reference_seconds("lstm", "train", (1000, 4, 8, 8), rate) > small
    assert runners.estimate_reference_seconds("lstm", "infer", (10, 4, 8, 8), rate) < small


def test_other_processes_share_is_the_machine_busy_time_not_spent_by_this_process(monkeypatch):
    monkeypatch.setattr(machine.os, "cpu_count", lambda: 2)
    # machine busy 10 -> 13 CPU-seconds, this process 2 -> 4: others used 1 of 2 x 2 seconds
    assert machine.other_load((10.0, 2.0), (13.0, 4.0), elapsed_s=2.0) == pytest.approx(0.25)
    assert machine.other_load(None, (13.0, 4.0), elapsed_s=2.0) is None


# ----------------------------------------------------------------------------------------
# Cases and agreement


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cases_have_the_kernel_layout_and_dtype(dtype):
    case = cases.make_case("gru", (6, 3, 4, 5), dtype)
    assert case.x.shape == (6, 3, 4) and case.dy.shape == (6, 3, 5)
    assert case.w_ih.shape == (15, 4) and case.w_hh.shape == (15, 5) and case.b_hh.shape == (15,)
    assert case.c0 is None and cases.make_case("lstm", (6, 3, 4, 5), dtype).c0.shape == (3, 5)
    arrays = [case.x, case.h0, case.w_ih, case.w_hh, case.b_ih, case.b_hh, case.dy]
    assert all(a.dtype == dtype for a in arrays)
    bound = 1 / np.sqrt(5)
    assert np.all(np.abs(case.w_hh) <= bound)  # PyTorch's initialisation range


def test_functional_runner_returns_the_output_and_the_input_gradient():
    case = cases.make_case("lstm", (6, 3, 4, 5), np.float64)
    y, dx = runners.functional_runner(reference, case, "train")()
    y_want, _, _, cache = reference.rnn_forward("lstm", case.x, case.h0, case.w_ih, case.w_hh,
                                                case.b_ih, case.b_hh, c0=case.c0)
    dx_want = reference.rnn_backward(cache, case.dy)["x"]
    np.testing.assert_array_equal(y, y_want)
    np.testing.assert_array_equal(dx, dx_want)
    y_infer, no_dx = runners.functional_runner(reference, case, "infer")()
    np.testing.assert_array_equal(y_infer, y_want)
    assert no_dx is None


def test_agreement_error_is_relative_to_the_largest_anchor_value():
    y = np.array([[1.0, -4.0]])
    assert runners.agreement_error((y, None), (y, None)) == 0.0
    assert runners.agreement_error((y + [[0.0, 0.04]], None), (y, None)) == pytest.approx(0.01)
    assert np.isnan(runners.agreement_error((y * np.nan, None), (y, None)))
    dx = np.ones((2, 2))
    assert np.isnan(runners.agreement_error((y, dx * np.nan), (y, dx)))  # a NaN in any array shows


# ----------------------------------------------------------------------------------------
# The command line


def test_run_prints_the_table_and_writes_well_formed_json(tmp_path, capsys):
    path = tmp_path / "bench.json"
    code, out, _ = run_cli(capsys, "--shapes", TINY, "--modes", "lstm", "gru", "--impls", "fastrnn", "reference",
                        "--json", str(path), *FAST)
    assert code == 0
    assert "fastrnn ms" in out and "numpy ms" in out and "GEMM ceiling" in out
    report = json.loads(path.read_text())
    assert set(report) >= {"settings", "machine", "gemm", "gemm_ceiling_gflops", "results", "memory",
                           "scaling", "notes", "elapsed_s"}
    assert report["machine"]["threads"] == 1 and report["machine"]["numpy"] == np.__version__
    assert [(r["mode"], r["task"]) for r in report["results"]] == [
        ("lstm", "train"), ("lstm", "infer"), ("gru", "train"), ("gru", "infer")]
    for row in report["results"]:
        assert (row["T"], row["B"], row["I"], row["H"]) == (6, 3, 4, 5)
        assert set(row["times"]) == {"fastrnn", "reference"}
        assert row["times"]["fastrnn"]["repeats"] >= 1 and row["times"]["fastrnn"]["median_ms"] > 0
        assert row["best_alternative"] == "reference" and row["ratio"] > 0
        assert row["mismatch"] == {}  # fastrnn.ops and the reference agree
        assert row["flops"] == cases.task_flops(row["mode"], row["task"], 6, 3, 4, 5)
    assert report["gemm_ceiling_gflops"] == max(g["gflops"] for g in report["gemm"])


def test_load_times_every_case_beside_competing_processes_and_on_one_thread(tmp_path, capsys):
    path = tmp_path / "bench.json"
    code, out, _ = run_cli(capsys, "--shapes", TINY, "--modes", "gru", "--impls", "fastrnn", "reference",
                           "--load", "1", "--json", str(path), "--budget", "0.001", "--threads", "2",
                           "--quiet", "--no-memory")
    assert code == 0
    assert "Beside a competing load of 1 process(es)" in out and "default / 1 thread" in out
    report = json.loads(path.read_text())
    assert report["settings"]["load"] == 1
    for row in report["results"]:
        loaded = row["loaded"]
        assert loaded["processes"] == 1
        assert set(loaded["times"]) == {"fastrnn", "fastrnn, 1 thread"}  # the reference is timed idle only
        assert loaded["over_idle"] > 0 and loaded["over_one_thread"] > 0


def test_a_run_without_load_times_nothing_beside_one():
    settings = grid.Settings(modes=("gru",), shapes={"tiny": (6, 3, 4, 5)}, tasks=("infer",), impls=("fastrnn",),
                             budget_s=0.001, gemm_sizes=(8,), memory=False)
    report = grid.run_benchmark(settings)
    assert "loaded" not in report["results"][0]
    assert "competing load" not in bench_report.format_report(report)


def test_the_competing_load_computes_only_while_active_and_ends_with_its_block():
    from fastrnn.bench.load import CompetingLoad

    def children_seconds(active: bool) -> float:
        """CPU time of two load processes over a block of 0.6 s, active or not (start-up included)."""
        before = os.times()
        with CompetingLoad(2, seed=5) as competing:
            processes = list(competing._processes)
            assert len(processes) == 2 and all(p.poll() is None for p in processes)
            if active:
                with competing.active():
                    time.sleep(0.6)
            else:
                time.sleep(0.6)
        after = os.times()
        assert all(p.poll() is not None for p in processes)
        return (after.children_user - before.children_user) + (after.children_system - before.children_system)

    # Busy about 80 % of the time (bursts of 1-8 ms, sleeps of 0.5-2 ms), on 2 cores or fewer.
    assert children_seconds(True) - children_seconds(False) > 0.5
    with CompetingLoad(0) as none, none.active():
        assert none._processes == []


def test_gemm_ceiling_is_the_fastest_library_at_each_size():
    probe = machine.gemm_probe(64, np.float32, budget_s=0.001)
    assert set(probe["by_library"]) == {"numpy", "fastrnn"}  # torch only when asked for
    assert probe["gflops"] == max(probe["by_library"].values()) > 0
    assert probe["by_library"][probe["library"]] == probe["gflops"]
    assert probe["median_ms"] == pytest.approx(2 * 64**3 / probe["gflops"] / 1e6)


def test_quick_selects_the_reduced_grid():
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    quick = cli.settings_from_args(parser.parse_args(["--quick"]))
    full = cli.settings_from_args(parser.parse_args([]))
    assert list(quick.shapes) == list(grid.QUICK_SHAPES) and list(full.shapes) == list(cases.SHAPES)
    assert quick.budget_s < full.budget_s and len(quick.gemm_sizes) < len(full.gemm_sizes)
    assert quick.modes == full.modes == cases.DEFAULT_MODES and quick.tasks == ("train", "infer")


def test_bench_subcommand_plugs_into_a_command_line():
    parser = argparse.ArgumentParser(prog="fastrnn")
    cli.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["bench", "--quick", "--modes", "gru", "--shapes", "small", "2x1x3x4"])
    assert args.func is cli.run
    assert args.shapes == [("small", cases.SHAPES["small"]), ("2x1x3x4", (2, 1, 3, 4))]


def test_python_m_fastrnn_benchmark_reports_an_allocation_that_fails_as_fastrnn_bench_does(monkeypatch, capsys):
    """``python -m fastrnn.benchmark`` is ``fastrnn bench``: one line and exit code 1, no traceback."""
    def run_out_of_memory(settings, progress):
        raise MemoryError("Unable to allocate 8.00 TiB")

    import fastrnn.benchmark

    monkeypatch.setattr(cli, "run_benchmark", run_out_of_memory)
    code = fastrnn.benchmark.main(["--shapes", TINY, "--modes", "gru", "--impls", "fastrnn", "--quiet", "--no-memory"])
    assert code == 1
    assert capsys.readouterr().err == "fastrnn: error: not enough memory: Unable to allocate 8.00 TiB\n"


@pytest.mark.parametrize("module", ["fastrnn.bench", "fastrnn.benchmark"])
def test_python_m_runs_fastrnn_bench(module):
    done = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: fastrnn bench [-h] [--quick]")


def test_the_names_of_the_former_benchmark_module_still_resolve():
    import fastrnn.benchmark

    assert fastrnn.benchmark.make_case is cases.make_case
    assert fastrnn.benchmark.physical_memory_bytes is memory.physical_memory_bytes
    assert fastrnn.benchmark.run_benchmark is grid.run_benchmark
    assert fastrnn.benchmark.thread_count_argument is argtypes.thread_count
    with pytest.raises(AttributeError, match="no attribute 'no_such_name'"):
        fastrnn.benchmark.no_such_name


@pytest.mark.parametrize("bad", ["huge", "2x3x4", "2x0x3x4", "axbxcxd"])
def test_bad_shape_argument_is_rejected_with_its_name(bad, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--shapes", bad])
    assert exit_info.value.code == 2
    assert repr(bad) in capsys.readouterr().err


@pytest.mark.parametrize("argv, fragment", [
    (["--threads", "0"], "argument --threads: expected a number >= 1, got 0"),
    (["--threads", "1e3"], "argument --threads: expected a whole number, got '1e3'"),
    (["--threads", str(2**31)], f"argument --threads: expected a number <= {2**31 - 1}, got {2**31}"),
    (["--budget", "0"], "argument --budget: expected a number > 0, got 0"),
    (["--budget", "inf"], "argument --budget: expected a finite number >= 0, got inf"),
    (["--budget", "nan"], "argument --budget: expected a finite number >= 0, got nan"),
    (["--budget", "soon"], "argument --budget: expected a number, got 'soon'"),
    (["--load", "-1"], "argument --load: expected a number from 0 to 64, got -1"),
    (["--load", "two"], "argument --load: expected a whole number, got 'two'"),
])
def test_bad_numbers_are_usage_errors_naming_the_option(argv, fragment, capsys):
    with pytest.raises(SystemExit) as exit_info:  # a tiny run, should the numbers be taken
        cli.main(["--shapes", TINY, "--modes", "gru", "--impls", "fastrnn", "--quiet", "--no-memory", *argv])
    assert exit_info.value.code == 2
    assert fragment in capsys.readouterr().err


@pytest.mark.parametrize("option", ["--json", "--plot"])
def test_an_empty_or_folder_output_path_is_refused_before_the_run(tmp_path, option, capsys):
    for path, message in [("", "expected a file path"), (str(tmp_path), f"{tmp_path} is a folder")]:
        with pytest.raises(SystemExit) as exit_info:
            cli.main(["--shapes", TINY, *FAST, option, path])
        assert exit_info.value.code == 2
        assert f"argument {option}: {message}" in capsys.readouterr().err


@pytest.mark.parametrize("option", ["--json", "--plot"])
def test_an_output_in_a_missing_folder_is_refused_before_the_run(tmp_path, option, capsys):
    missing = tmp_path / "no" / "such"
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--shapes", TINY, *FAST, option, str(missing / "out")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {option}: no such folder: {missing}" in err
    assert "GEMM" not in err and not missing.exists()


@pytest.mark.parametrize("option", ["--json", "--plot"])
def test_an_output_through_a_link_into_a_missing_folder_is_refused_before_the_run(tmp_path, option, capsys):
    """The file is written beside the one the link points to, so that folder is the one checked."""
    link = tmp_path / "out"
    link.symlink_to(tmp_path / "no" / "such" / "out")
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--shapes", TINY, *FAST, option, str(link)])
    assert exit_info.value.code == 2
    assert f"argument {option}: no such folder" in capsys.readouterr().err


@pytest.mark.parametrize("shape", ["100000x10000x1000x1000", "1x2x3x" + "9" * 30])
def test_a_shape_beyond_the_machines_memory_is_refused_before_the_run(shape, capsys):
    if memory.physical_memory_bytes() is None:
        pytest.skip("this OS does not tell its memory size")
    code, out, err = run_cli(capsys, "--shapes", "small", shape, "--modes", "gru", *FAST)
    assert code == 2 and out == ""
    assert f"fastrnn bench: error: shape {shape} needs at least" in err
    assert "more than this machine's" in err


def test_json_is_written_whole_and_nothing_beside_it(tmp_path, capsys):
    path = tmp_path / "bench.json"
    code, out, _ = run_cli(capsys, "--shapes", TINY, "--modes", "rnn_tanh", "--tasks", "infer",
                           "--impls", "fastrnn", "--json", str(path), *FAST)
    assert code == 0 and f"wrote {path}" in out
    assert json.loads(path.read_text())["results"][0]["shape"] == TINY
    assert os.listdir(tmp_path) == ["bench.json"]


def test_an_output_in_a_folder_that_takes_no_files_is_refused_before_the_run(tmp_path, capsys, monkeypatch):
    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(argtypes.tempfile, "TemporaryFile", refuse)  # as a read-only folder would
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--shapes", TINY, *FAST, "--json", str(tmp_path / "out.json")])
    assert exit_info.value.code == 2
    assert f"argument --json: cannot write in {tmp_path}: Permission denied" in capsys.readouterr().err


def test_memory_is_checked_for_the_tasks_asked_for(monkeypatch, capsys):
    """A shape whose inference fits is run for inference, though its training would not fit."""
    shape = (6, 3, 4, 5)
    infer, train = (memory.call_bytes("gru", shape, np.float32, task) for task in ("infer", "train"))
    monkeypatch.setattr(memory, "physical_memory_bytes", lambda: (infer + train) // 2)
    code, _, err = run_cli(capsys, "--shapes", TINY, "--modes", "gru", "--tasks", "train", *FAST)
    assert code == 2 and f"shape {TINY} needs at least" in err
    code, out, _ = run_cli(capsys, "--shapes", TINY, "--modes", "gru", "--tasks", "infer", "--impls", "fastrnn",
                           "--budget", "0.001", "--threads", "1", "--quiet")  # memory probes on
    assert code == 0 and "gru" in out


def test_json_that_fails_to_write_leaves_the_old_file_and_nothing_beside_it(tmp_path):
    path = tmp_path / "bench.json"
    path.write_text('{"old": 1}')
    with pytest.raises(TypeError):
        bench_report.write_json({"results": [object()]}, str(path))  # not JSON
    assert path.read_text() == '{"old": 1}'
    assert os.listdir(tmp_path) == ["bench.json"]


@pytest.mark.parametrize("mode", cases.ALL_MODES)
def test_the_memory_a_call_needs_is_the_arrays_it_holds(mode):
    """The bound counts the case's arrays, what the call returns and (train) the workspace."""
    from fastrnn import ops

    case = cases.make_case(mode, (7, 3, 5, 11), np.float32)
    inputs = [case.x, case.h0, case.c0, case.w_ih, case.w_hh, case.b_ih, case.b_hh]
    y, h_n, c_n, _ = ops.rnn_forward(mode, *inputs[:2], *inputs[3:], c0=case.c0, training=False)
    infer = [*inputs, y, h_n, c_n]
    assert memory.call_bytes(mode, (7, 3, 5, 11), np.float32, "infer") == sum(a.nbytes for a in infer if a is not None)
    y, h_n, c_n, cache = ops.rnn_forward(mode, *inputs[:2], *inputs[3:], c0=case.c0)
    grads = ops.rnn_backward(cache, case.dy)
    train = [*inputs, case.dy, cache.workspace["gates"], y, h_n, c_n, *grads.values()]
    assert memory.call_bytes(mode, (7, 3, 5, 11), np.float32, "train") == sum(a.nbytes for a in train if a is not None)


def test_slow_reference_is_skipped_and_noted(capsys):
    code, out, _ = run_cli(capsys, "--shapes", TINY, "--modes", "rnn_tanh", "--tasks", "train",
                        "--impls", "fastrnn", "reference", "--reference-limit", "1e-12", *FAST)
    assert code == 0
    assert "reference skipped (estimated" in out


def test_float64_runs_in_float64(tmp_path, capsys):
    path = tmp_path / "bench.json"
    run_cli(capsys, "--shapes", TINY, "--modes", "rnn_relu", "--tasks", "infer", "--impls", "fastrnn",
            "--dtype", "float64", "--json", str(path), *FAST)
    report = json.loads(path.read_text())
    assert report["settings"]["dtype"] == "float64" and report["machine"]["dtype"] == "float64"
    assert report["results"][0]["ratio"] is None  # nothing to compare with


def test_plot_without_matplotlib_fails_early_with_a_clear_message(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` fail
    code, _, err = run_cli(capsys, "--shapes", TINY, "--plot", str(tmp_path / "bench.png"), *FAST)
    assert code == 2
    assert "--plot needs matplotlib" in err
    assert not (tmp_path / "bench.png").exists()


def test_plot_writes_a_png(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    path = tmp_path / "bench.png"
    code, _, _ = run_cli(capsys, "--shapes", TINY, "--modes", "lstm", "--impls", "fastrnn", "reference",
                      "--plot", str(path), *FAST)
    assert code == 0
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_plot_is_written_whole_and_leaves_the_callers_matplotlib_backend_alone(tmp_path, monkeypatch):
    matplotlib = pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure

    report = {"settings": {"tasks": ["train"], "impls": ["fastrnn"], "threads": 1, "dtype": "float32"},
              "results": [{"task": "train", "mode": "lstm", "shape": "small",
                           "times": {"fastrnn": {"median_ms": 1.0}}}]}
    path = tmp_path / "bench.png"
    backend = matplotlib.get_backend()
    matplotlib.use("svg")  # the caller's choice
    try:
        bench_report.write_plot(report, str(path))
        assert matplotlib.get_backend() == "svg"
    finally:
        matplotlib.use(backend)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    def broken_savefig(self, f, **kwargs):
        f.write(b"half a PNG")
        raise OSError("disk full")

    monkeypatch.setattr(Figure, "savefig", broken_savefig)
    old = path.read_bytes()
    with pytest.raises(OSError, match="disk full"):
        bench_report.write_plot(report, str(path))
    assert path.read_bytes() == old
    assert os.listdir(tmp_path) == ["bench.png"]


@pytest.mark.parametrize("suffix, head", [(".svg", b"<?xml"), (".pdf", b"%PDF")])
def test_the_plot_takes_its_format_from_the_suffix(tmp_path, suffix, head):
    pytest.importorskip("matplotlib")
    report = {"settings": {"tasks": ["infer"], "impls": ["fastrnn"], "threads": 1, "dtype": "float32"},
              "results": [{"task": "infer", "mode": "gru", "shape": "small",
                           "times": {"fastrnn": {"median_ms": 1.0}}}]}
    path = tmp_path / ("bench" + suffix)
    bench_report.write_plot(report, str(path))
    assert path.read_bytes().startswith(head)


def test_scaling_rows_are_relative_to_the_first_of_each_series(monkeypatch):
    monkeypatch.setattr(cases, "SCALING_T", (4, 8))
    monkeypatch.setattr(cases, "SCALING_B", (2, 4))
    monkeypatch.setattr(cases, "SCALING_FIXED_B", 2)
    monkeypatch.setattr(cases, "SCALING_FIXED_T", 4)
    monkeypatch.setattr(cases, "SCALING_IH", 3)
    timed_together, measure = [], timing.measure_side_by_side

    def side_by_side(runners, budget_s, **kw):
        timed_together.append(list(runners))
        return measure(runners, budget_s, **kw)

    monkeypatch.setattr(grid, "measure_side_by_side", side_by_side)
    settings = grid.Settings(modes=("gru",), tasks=("train",), budget_s=0.001)
    rows = grid.scaling_study(settings, progress=lambda message: None)
    assert [(r["grows"], r["T"], r["B"]) for r in rows] == [("T", 4, 2), ("T", 8, 2), ("B", 4, 2), ("B", 4, 4)]
    assert rows[0]["per_step_sample"] == 1.0 and rows[2]["per_step_sample"] == 1.0
    # the sizes of a series take turns, so a drifting machine slows them alike
    assert timed_together == [[(4, 2, 3, 3), (8, 2, 3, 3)], [(4, 2, 3, 3), (4, 4, 3, 3)]]


# ----------------------------------------------------------------------------------------
# Memory probe


def test_memory_probe_sees_at_least_the_returned_output_and_input_gradient():
    shape = (100, 16, 64, 64)  # y and dx are 400 KiB each: fresh pages, not recycled heap
    row = memory.memory_probe("lstm", shape, np.float32, threads=1)
    assert "error" not in row, row.get("error")
    T, B, I, H = shape  # noqa: E741
    assert row["workspace_bytes"] == T * B * 4 * H * 4
    assert row["peak_bytes"] >= (T * B * H + T * B * I) * 4


# ----------------------------------------------------------------------------------------
# Baselines: the same computation in PyTorch and ONNX Runtime


@pytest.mark.parametrize("mode", cases.ALL_MODES)
def test_torch_baseline_matches_the_reference_in_float64(mode):
    pytest.importorskip("torch")
    case = cases.make_case(mode, (6, 3, 4, 5), np.float64)
    y_want, dx_want = runners.functional_runner(reference, case, "train")()
    y, dx = baselines.torch_train_runner(case)()
    np.testing.assert_allclose(y, y_want, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dx, dx_want, rtol=1e-10, atol=1e-12)
    y_infer, _ = baselines.torch_infer_runner(case)()
    np.testing.assert_allclose(y_infer, y_want, rtol=1e-10, atol=1e-12)


def test_torch_train_runner_does_not_accumulate_gradients_across_calls():
    pytest.importorskip("torch")
    case = cases.make_case("gru", (6, 3, 4, 5), np.float64)
    run = baselines.torch_train_runner(case)
    _, dx_first = run()
    dx_first = dx_first.copy()
    _, dx_second = run()
    np.testing.assert_array_equal(dx_second, dx_first)


@pytest.mark.parametrize("mode", cases.ALL_MODES)
def test_onnxruntime_baseline_matches_the_reference_in_float32(mode):
    pytest.importorskip("torch")
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    case = cases.make_case(mode, (6, 3, 4, 5), np.float32)
    y_want, _ = runners.functional_runner(reference, case, "infer")()
    y, _ = baselines.onnxruntime_runner(case, threads=1)()
    np.testing.assert_allclose(y, y_want, rtol=1e-5, atol=1e-6)


def test_onnxruntime_without_a_float64_kernel_is_unavailable_not_an_error():
    pytest.importorskip("torch")
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    case = cases.make_case("lstm", (6, 3, 4, 5), np.float64)
    try:
        y, _ = baselines.onnxruntime_runner(case, threads=1)()
    except baselines.Unavailable as exc:
        assert "onnxruntime" in str(exc)
    else:  # a newer onnxruntime may have the kernel: then it must be right
        y_want, _ = runners.functional_runner(reference, case, "infer")()
        np.testing.assert_allclose(y, y_want, rtol=1e-10, atol=1e-12)


def test_missing_baseline_library_is_reported_as_unavailable(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(baselines.Unavailable, match="torch is not installed"):
        baselines.torch_infer_runner(cases.make_case("lstm", (2, 1, 2, 2), np.float32))


def test_gemm_ceiling_includes_torch_when_asked_for_and_installed():
    pytest.importorskip("torch")
    probe = machine.gemm_probe(64, np.float32, budget_s=0.001, with_torch=True)
    assert set(probe["by_library"]) == {"numpy", "fastrnn", "torch"}
    assert probe["gflops"] == max(probe["by_library"].values())
