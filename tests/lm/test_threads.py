"""`--threads auto`: physical cores within the affinity, capped by a cgroup quota; explicit numbers stay."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from selfinstruct.lm.settings import LMSettings
from selfinstruct.lm.threads import auto_threads, cgroup_cpu_limit, physical_cores, resolve_threads


def _cpu(processor: int, package: int, core: int) -> str:
    return f"processor\t: {processor}\nphysical id\t: {package}\ncore id\t\t: {core}\nflags\t\t: avx2\n\n"


# Two sockets of two cores, each core with two hardware threads: 8 logical CPUs, 4 physical cores.
SMT = "".join(
    _cpu(p, package, core)
    for p, (package, core) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1), (0, 0), (0, 1), (1, 0), (1, 1)])
)


def test_physical_cores_counts_cores_not_hardware_threads() -> None:
    assert physical_cores(SMT) == 4
    # Core ids repeat across sockets: (socket, core) pairs are what is distinct.
    assert physical_cores(SMT, allowed={0, 2}) == 2
    assert physical_cores(SMT, allowed={0, 4}) == 1  # two hardware threads of one core
    assert physical_cores("processor\t: 0\nflags\t: avx2\n") is None  # no core ids (some VMs, not Linux)
    assert physical_cores("") is None


def test_cgroup_quota() -> None:
    assert cgroup_cpu_limit("200000 100000") == 2
    assert cgroup_cpu_limit("150000 100000") == 2  # 1.5 CPUs: rounded up
    assert cgroup_cpu_limit("50000 100000") == 1
    assert cgroup_cpu_limit("max 100000") is None
    assert cgroup_cpu_limit("") is None
    assert cgroup_cpu_limit("garbage here") is None


def test_auto_threads_reads_the_files_it_is_given(tmp_path: Path) -> None:
    cpuinfo, cpu_max = tmp_path / "cpuinfo", tmp_path / "cpu.max"
    allowed = sorted(os.sched_getaffinity(0))
    # One core per allowed logical CPU, then all of them on one core (hardware threads of it).
    cpuinfo.write_text("".join(_cpu(p, 0, p) for p in allowed))
    assert auto_threads(cpuinfo, tmp_path / "none") == len(allowed)
    cpuinfo.write_text("".join(_cpu(p, 0, 0) for p in allowed))
    assert auto_threads(cpuinfo, tmp_path / "none") == 1
    cpuinfo.write_text("".join(_cpu(p, 0, p) for p in allowed))
    cpu_max.write_text("100000 100000\n")
    assert auto_threads(cpuinfo, cpu_max) == 1
    # Unreadable files: the logical CPUs of the affinity.
    assert auto_threads(tmp_path / "none", tmp_path / "none") == len(allowed)


def test_the_setting_is_auto_by_default_and_keeps_explicit_numbers() -> None:
    assert LMSettings().threads == "auto"
    assert LMSettings(threads="2").threads == 2
    assert LMSettings(threads=3).threads == 3
    assert LMSettings(threads=" Auto ").threads == "auto"
    assert resolve_threads(3) == 3
    assert resolve_threads("auto") == auto_threads() >= 1
    for bad in ("0", 0, -1, "x", "2.5", True):
        with pytest.raises(ValidationError, match="number of threads"):
            LMSettings(threads=bad)
