"""What ``fastrnn bench`` prints and writes: the text tables, the notes on what was skipped or
differs or may have disturbed the run, the JSON report and the bar chart.

The ratio column is fastrnn's time over the fastest other implementation's: below 1 means
fastrnn is faster. GFLOP/s = FLOPs / median time (``fastrnn.bench.cases`` counts the FLOPs).
"""
from __future__ import annotations

import json

# ----------------------------------------------------------------------------------------
# Text tables.

# Column headings where they are not "<implementation> ms".
_COLUMNS = {"onnxruntime": "onnxrt ms", "reference": "numpy ms"}


def _ms(value) -> str:
    if value is None:
        return "-"
    if value < 10:
        return f"{value:.2f}"
    if value < 100:
        return f"{value:.1f}"
    return f"{value:.0f}"


def _render(header: list[str], rows: list[list[str]]) -> str:
    """A plain text table, the first column left-aligned and the rest right-aligned."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows)]
    lines = []
    for k, cells in enumerate([header] + rows):
        parts = [str(cell).ljust(w) if i == 0 else str(cell).rjust(w) for i, (cell, w) in enumerate(zip(cells, widths))]
        lines.append("  ".join(parts))
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def format_results(rows: list[dict], impls: tuple) -> str:
    """The main table: median ms per implementation, fastrnn's GFLOP/s, % of GEMM and ratio."""
    header = ["cell  shape  task"] + [_COLUMNS.get(i, f"{i} ms") for i in impls] + ["GFLOP/s", "% GEMM", "ratio"]
    body = []
    for row in rows:
        cells = [f"{row['mode']:<8} {row['shape']:<7} {row['task']}"]
        for impl in impls:
            time_ms = row["times"].get(impl, {}).get("median_ms")
            mark = "!" if impl in row["mismatch"] else ("*" if impl in row["skipped"] else "")
            cells.append(_ms(time_ms) + mark)
        cells.append("-" if row["gflops"] is None else f"{row['gflops']:.1f}")
        cells.append("-" if row["pct_gemm"] is None else f"{row['pct_gemm']:.0f}")
        cells.append("-" if row["ratio"] is None else f"{row['ratio']:.2f}")
        body.append(cells)
    return _render(header, body)


def format_memory(rows: list[dict]) -> str:
    header = ["cell     T x B x I x H", "peak MB", "T*B*G*H MB", "outputs MB", "peak / (ws + outputs)"]
    body = []
    for row in rows:
        name = f"{row['mode']:<8} {row['T']}x{row['B']}x{row['I']}x{row['H']}"
        if "error" in row:
            body.append([name, "-", f"{row['workspace_bytes'] / 2**20:.1f}", "-", row["error"]])
            continue
        floor = row["workspace_bytes"] + row["outputs_bytes"]
        body.append([name, f"{row['peak_bytes'] / 2**20:.1f}", f"{row['workspace_bytes'] / 2**20:.1f}",
                     f"{row['outputs_bytes'] / 2**20:.1f}", f"{row['peak_bytes'] / floor:.2f}"])
    return _render(header, body)


def format_scaling(rows: list[dict]) -> str:
    header = ["cell     task   grows", "T", "B", "ms", "per step x sequence (1 = linear)"]
    body = [[f"{r['mode']:<8} {r['task']:<6} {r['grows']}", str(r["T"]), str(r["B"]), _ms(r["median_ms"]),
             f"{r['per_step_sample']:.2f}"] for r in rows]
    return _render(header, body)


def format_report(report: dict) -> str:
    """Everything ``fastrnn bench`` prints, from the report it also writes as JSON."""
    settings, machine = report["settings"], report["machine"]
    lines = [f"fastrnn bench: {machine['cpu_model']}, {settings['threads']} thread(s), {settings['dtype']}, "
             f"median of repeated runs (budget {settings['budget_s']:g} s per case)", ""]
    lines += _results_lines(report) + _load_lines(report) + _gemm_lines(report)
    if report["memory"]:
        lines += ["", "Peak memory of one train call (fastrnn.ops, fresh process, resident-set growth):",
                  format_memory(report["memory"])]
    if report["scaling"]:
        sizes = report["scaling"][0]  # the study's I = H are the same in every row
        lines += ["", f"Scaling (fastrnn.ops, I = H = {sizes['I']}):", format_scaling(report["scaling"])]
    if report["notes"]:
        lines += ["", "Notes:"] + [f"- {note}" for note in report["notes"]]
    lines.append(f"\n{report['elapsed_s']:.0f} s in all")
    return "\n".join(lines)


def _results_lines(report: dict) -> list[str]:
    """The main table and its legend (nothing when no case was run)."""
    if not report["results"]:
        return []
    return [format_results(report["results"], tuple(report["settings"]["impls"])), "",
            "ratio = fastrnn / fastest other implementation (< 1: fastrnn is faster); "
            "GFLOP/s and % GEMM are fastrnn's.",
            "* skipped (see notes)   ! output differs from fastrnn's", ""]


def format_load(rows: list[dict], impls: tuple) -> str:
    """Each case idle and beside the load, per implementation, fastrnn on one thread there, and
    fastrnn's loaded time over its idle time and over its time on one thread."""
    names = [i for i in impls if i != "reference"]
    one = any("fastrnn, 1 thread" in row["loaded"]["times"] for row in rows)
    header = (["cell  shape  task"] + [f"{_COLUMNS.get(i, i + ' ms').split()[0]} idle / loaded ms" for i in names]
              + (["fastrnn 1 thread ms"] if one else []) + ["loaded / idle", "default / 1 thread"])
    body = []
    for row in rows:
        loaded = row["loaded"]["times"]
        cells = [f"{row['mode']:<8} {row['shape']:<7} {row['task']}"]
        for impl in names:
            idle = row["times"].get(impl, {}).get("median_ms")
            cells.append(f"{_ms(idle)} / {_ms(loaded.get(impl, {}).get('median_ms'))}")
        if one:
            cells.append(_ms(loaded.get("fastrnn, 1 thread", {}).get("median_ms")))
        for key in ("over_idle", "over_one_thread"):
            value = row["loaded"][key]
            cells.append("-" if value is None else f"{value:.2f}")
        body.append(cells)
    return _render(header, body)


def _load_lines(report: dict) -> list[str]:
    rows = [row for row in report["results"] if row.get("loaded")]
    if not rows:
        return []
    n = rows[0]["loaded"]["processes"]
    return [f"Beside a competing load of {n} process(es) (bursts of 1-8 ms of computation, sleeps of "
            f"0.5-2 ms; fastrnn.bench.load):", format_load(rows, tuple(report["settings"]["impls"])), ""]


def _gemm_lines(report: dict) -> list[str]:
    """Each library's GEMM rate, the ceiling, and the share of it fastrnn reached."""
    lines = [f"GEMM ceiling (square {report['settings']['dtype']} products, GFLOP/s; the best library sets it):"]
    for g in report["gemm"]:
        rates = ", ".join(f"{name} {rate:.1f}" for name, rate in g["by_library"].items())
        lines.append(f"  n={g['n']}: {rates}")
    lines.append(f"  ceiling {report['gemm_ceiling_gflops']:.1f}")
    best = [r["pct_gemm"] for r in report["results"] if r["pct_gemm"] is not None]
    if best:
        lines.append(f"fastrnn reaches at most {max(best):.0f} % of it")
    return lines


# ----------------------------------------------------------------------------------------
# Notes.


def collect_notes(rows: list[dict], machine: dict, start_notes: list[str]) -> list[str]:
    """The report's notes: ``start_notes``, then what may have disturbed the run, then each
    disagreement, then each implementation skipped with the cases it was skipped on."""
    return list(start_notes) + _machine_notes(machine) + _row_notes(rows)


def _machine_notes(machine: dict) -> list[str]:
    notes = []
    if machine["fastrnn_ops_is_reference"]:
        notes.append("fastrnn.ops is the NumPy reference here (no C++ kernels): its times are the reference's")
    load = machine.get("load_average")
    if load and load[0] > 0.5:
        notes.append(f"the machine was busy when the run started (load average {load[0]:.1f})")
    others = machine.get("other_processes_cpu_share")
    if others is not None and others > 0.05:
        notes.append(f"other processes used {100 * others:.0f} % of the machine's CPU time during the run: "
                     "times are slower and noisier than on an idle machine")
    return notes


def _row_notes(rows: list[dict]) -> list[str]:
    notes, reasons = [], {}
    for row in rows:
        for impl, reason in row["skipped"].items():
            reasons.setdefault((impl, reason), []).append(f"{row['mode']} {row['shape']} {row['task']}")
        for impl, error in row["mismatch"].items():
            notes.append(f"{impl} differs from fastrnn on {row['mode']} {row['shape']} {row['task']}: "
                         f"relative error {error:.1e}")
    for (impl, reason), where in reasons.items():
        notes.append(f"{impl} skipped ({reason}): {', '.join(where)}")
    return notes


# ----------------------------------------------------------------------------------------
# Files.


def write_json(report: dict, path: str) -> None:
    """Write ``report`` to ``path`` whole or not at all (see ``fastrnn.files.write_atomically``)."""
    from fastrnn.files import write_atomically

    write_atomically(path, lambda f: f.write(json.dumps(report, indent=1).encode()))


def write_plot(report: dict, path: str) -> None:
    """A bar chart per task: median time per implementation for each (cell, shape), log scale.
    Written whole or not at all, as ``fastrnn.plot``'s plots are; PNG, or the format that the
    path's suffix names (``.svg``, ``.pdf``)."""
    from fastrnn import plot

    settings = report["settings"]
    tasks = [t for t in settings["tasks"] if any(r["task"] == t for r in report["results"])]
    fig = plot._figure(12, 4.5 * len(tasks))
    axes = fig.subplots(len(tasks), 1, squeeze=False)
    for ax, task in zip(axes[:, 0], tasks):
        _plot_task(ax, [r for r in report["results"] if r["task"] == task], settings["impls"])
        ax.set_title(f"{task}: {settings['threads']} thread(s), {settings['dtype']}")
    plot._save(fig, path, format=None)


def _plot_task(ax, rows: list[dict], impls: list[str]) -> None:
    """One task's bars on ``ax``: a group per row (cell, shape), a bar per implementation timed."""
    width = 0.8 / len(impls)
    for k, impl in enumerate(impls):
        xs = [i + (k - (len(impls) - 1) / 2) * width for i, r in enumerate(rows) if impl in r["times"]]
        ys = [r["times"][impl]["median_ms"] for r in rows if impl in r["times"]]
        if xs:
            ax.bar(xs, ys, width, label=impl)
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels([f"{r['mode']}\n{r['shape']}" for r in rows], fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("median ms (log)")
    ax.legend(fontsize=8)
    ax.grid(axis="y", which="both", alpha=0.3)
