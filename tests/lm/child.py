"""Running native model code in a child interpreter, so that a crash fails one test, not the test run.

llama.cpp's kernels depend on the CPU: a path that works on one machine can die with SIGILL or SIGSEGV
on another (its AMX path on Intel Xeon VMs). In the pytest process such a crash kills every test after
it; in a child it is this test's failure, with the signal's name.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import pytest


def run_in_child(code: str, *args: str, timeout: float = 600) -> dict[str, object]:
    """Run `code` in a fresh interpreter (`sys.argv[1:]` = `args`); it prints one JSON object as its last
    line of stdout, which is returned. A crash or an error fails the calling test."""
    done = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode < 0:
        name = signal.Signals(-done.returncode).name
        pytest.fail(f"the child process was killed by {name}:\n{done.stderr[-3000:]}")
    if done.returncode != 0:
        pytest.fail(f"the child process exited with {done.returncode}:\n{done.stderr[-3000:]}")
    lines = done.stdout.strip().splitlines()
    assert lines, f"the child printed nothing:\n{done.stderr[-3000:]}"
    result = json.loads(lines[-1])
    assert isinstance(result, dict)
    return result
