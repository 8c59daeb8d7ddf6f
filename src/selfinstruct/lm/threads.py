"""How many CPU threads the in-process model uses: `auto` is one per physical core this process may run on.

llama.cpp's matrix products gain nothing from a core's second hardware thread (both share one set of
vector units) and lose when they wait on each other, so `auto` counts physical cores, not logical CPUs.
Only the cores of this process's CPU affinity count (`taskset`, a container's cpuset), and a cgroup CPU
quota (`docker --cpus 2`) caps the number. OpenMP waits passively (`lm.llamacpp`), so on a machine busy
with other work the threads yield instead of spinning.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

AUTO = "auto"


def physical_cores(cpuinfo: str, allowed: set[int] | None = None) -> int | None:
    """Distinct (physical id, core id) pairs among the allowed logical CPUs in a /proc/cpuinfo text;
    None where the text does not say (not Linux, or a kernel that omits core ids)."""
    cores: set[tuple[str, str]] = set()
    processor: int | None = None
    package = core = None
    for line in [*cpuinfo.splitlines(), ""]:
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key == "processor":
            processor = int(value) if value.isdigit() else None
        elif key == "physical id":
            package = value
        elif key == "core id":
            core = value
        elif not key:  # a blank line ends one logical CPU's block
            if processor is not None and core is not None and (allowed is None or processor in allowed):
                cores.add((package or "0", core))
            processor, package, core = None, None, None
    return len(cores) or None


def cgroup_cpu_limit(cpu_max: str) -> int | None:
    """The CPUs a cgroup v2 `cpu.max` line ("QUOTA PERIOD", or "max PERIOD") allows, rounded up."""
    parts = cpu_max.split()
    if len(parts) != 2 or parts[0] == "max":
        return None
    try:
        quota, period = int(parts[0]), int(parts[1])
    except ValueError:
        return None
    return max(1, math.ceil(quota / period)) if quota > 0 and period > 0 else None


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def auto_threads(
    cpuinfo_path: Path = Path("/proc/cpuinfo"), cpu_max_path: Path = Path("/sys/fs/cgroup/cpu.max")
) -> int:
    """Physical cores within this process's affinity, capped by the cgroup quota; at least 1."""
    try:
        allowed: set[int] | None = set(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        allowed = None
    logical = len(allowed) if allowed is not None else os.cpu_count() or 1
    cores = physical_cores(_read(cpuinfo_path), allowed) or logical
    limit = cgroup_cpu_limit(_read(cpu_max_path).strip())
    return max(1, min(cores, logical, limit or cores))


def resolve_threads(setting: int | str) -> int:
    """A `threads` setting as a number: `auto` becomes `auto_threads()`, a number stays as it is."""
    return auto_threads() if setting == AUTO else int(setting)
