"""The default thread count from the processors the process may use (fastrnn._cpus)."""
import os
import shutil
import subprocess
import sys

import pytest

from fastrnn import _cpus


@pytest.mark.parametrize("text, want", [
    ("max 100000", None), ("50000 100000", 0.5), ("200000 100000", 2.0), ("150000 100000", 1.5),
    ("", None), (None, None), ("garbage", None), ("0 100000", None),
])
def test_cpu_max_of_cgroup_v2(text, want):
    assert _cpus.quota_cpus(text) == want


@pytest.mark.parametrize("quota, period, want", [
    ("-1", "100000", None), ("100000", "100000", 1.0), ("250000", "100000", 2.5), (None, "100000", None),
])
def test_cfs_quota_of_cgroup_v1(quota, period, want):
    assert _cpus.quota_cpus(None, quota, period) == want


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_cgroup_v2_quota_is_the_tightest_of_the_process_cgroup_and_its_ancestors(tmp_path):
    write(tmp_path / "cpu.max", "max 100000")
    write(tmp_path / "a" / "cpu.max", "100000 100000")
    write(tmp_path / "a" / "b" / "cpu.max", "300000 100000")
    assert _cpus.cgroup_quota(str(tmp_path), "0::/a/b\n") == 1.0
    assert _cpus.cgroup_quota(str(tmp_path), "0::/\n") is None


def test_cgroup_v1_quota_of_the_cpu_controller(tmp_path):
    write(tmp_path / "cpu,cpuacct" / "job" / "cpu.cfs_quota_us", "50000")
    write(tmp_path / "cpu,cpuacct" / "job" / "cpu.cfs_period_us", "100000")
    write(tmp_path / "cpu,cpuacct" / "cpu.cfs_quota_us", "-1")
    write(tmp_path / "cpu,cpuacct" / "cpu.cfs_period_us", "100000")
    cgroup = "4:memory:/job\n3:cpu,cpuacct:/job\n0::/\n"
    assert _cpus.cgroup_quota(str(tmp_path), cgroup) == 0.5


def test_no_cgroup_files_means_no_quota(tmp_path):
    assert _cpus.cgroup_quota(str(tmp_path), "") is None
    assert _cpus.cgroup_quota(str(tmp_path), "0::/x\n") is None


def test_cores_of_counts_hyper_threads_once(tmp_path):
    for cpu, core in [(0, 0), (1, 1), (2, 0), (3, 1)]:
        write(tmp_path / f"cpu{cpu}" / "topology" / "physical_package_id", "0")
        write(tmp_path / f"cpu{cpu}" / "topology" / "core_id", str(core))
    assert _cpus.cores_of([0, 1, 2, 3], str(tmp_path)) == 2
    assert _cpus.cores_of([0, 2], str(tmp_path)) == 1
    assert _cpus.cores_of([0, 7], str(tmp_path)) == 2  # no topology: one per CPU


@pytest.mark.parametrize("machine, mask, quota, want", [
    (2, 2, None, (2, "physical cores")),
    (2, 1, None, (1, "affinity mask")),
    (2, 2, 1.0, (1, "cgroup quota")),
    (2, 2, 1.5, (1, "cgroup quota")),   # a part-time second thread would stall the first
    (2, 2, 0.5, (1, "cgroup quota")),   # never fewer than one
    (4, 2, 3.0, (2, "affinity mask")),
    (2, 2, 8.0, (2, "physical cores")),
])
def test_default_threads_is_the_smallest_limit(machine, mask, quota, want):
    assert _cpus.default_threads(machine, mask, quota) == want


def run_python(code, prefix=(), **env_changes):
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    env.update(env_changes)
    out = subprocess.run([*prefix, sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, timeout=300, check=True)
    return out.stdout.split()


@pytest.mark.skipif(shutil.which("taskset") is None, reason="needs taskset")
def test_one_cpu_of_affinity_gives_one_thread():
    n, source = run_python("import fastrnn; print(fastrnn.get_num_threads(), fastrnn.ops.threads_source().replace(' ', '_'))",
                           prefix=("taskset", "-c", "0"))
    assert n == "1"
    assert source in ("affinity_mask", "physical_cores", "cgroup_quota")


def test_omp_num_threads_is_honoured_and_named():
    assert run_python("import fastrnn; print(fastrnn.get_num_threads(), fastrnn.ops.threads_source())",
                      OMP_NUM_THREADS="1") == ["1", "OMP_NUM_THREADS"]


def test_set_num_threads_is_named_as_the_source():
    assert run_python("import fastrnn; fastrnn.set_num_threads(1); print(fastrnn.ops.threads_source())") \
        == ["set_num_threads"]
