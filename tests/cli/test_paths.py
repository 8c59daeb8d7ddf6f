"""No command destroys a file, and a path the machine refuses is one line, never a traceback: outputs that
are inputs (also through links), `--out` in the wrong place, read-only run directories, a full disk."""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import socket
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
from tests.conftest import SELFINSTRUCT

from selfinstruct.errors import UserError
from selfinstruct.novelty.dedup import dedup_file
from selfinstruct.paths import atomic_write, same_file
from selfinstruct.pipeline.session import open_run
from selfinstruct.testing.fake_server import FakeOpenAIServer
from selfinstruct.testing.responder import self_instruct_responder

ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "60"}


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SELFINSTRUCT, *args], capture_output=True, text=True, timeout=180, env=ENV)


def _one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert "Traceback" not in result.stderr, result.stderr
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    return lines[0]


def _jsonl(path: Path, *instructions: str) -> Path:
    path.write_text("".join(f'{{"instruction": "{text}"}}\n' for text in instructions))
    return path


# -- outputs that are inputs ----------------------------------------------------------------------------


def test_dedup_output_equal_to_the_pool_is_refused_and_the_pool_kept(tmp_path: Path) -> None:
    # The exact command: it used to exit 0 with pool.jsonl truncated.
    new = _jsonl(tmp_path / "new.jsonl", "Write a poem about the sea.", "Sort these numbers.")
    pool = _jsonl(tmp_path / "pool.jsonl", "Translate the sentence into French.", "Summarize the text.")
    before = pool.read_bytes()
    result = subprocess.run(
        [*SELFINSTRUCT, "dedup", "new.jsonl", "--against", "pool.jsonl", "--out", "pool.jsonl"],
        capture_output=True,
        text=True,
        timeout=120,
        env=ENV,
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert "--out pool.jsonl is also an input file" in _one_error_line(result)
    assert pool.read_bytes() == before and new.exists()


@pytest.mark.parametrize("link", ["symlink", "hardlink", "dotted"])
def test_dedup_refuses_an_input_reached_another_way(tmp_path: Path, link: str) -> None:
    data = _jsonl(tmp_path / "data.jsonl", "Write a poem about the sea.", "Write a poem about the sea!")
    before = data.read_bytes()
    out = tmp_path / "out.jsonl"
    if link == "symlink":
        out.symlink_to(data)
    elif link == "hardlink":
        os.link(data, out)
    else:
        (tmp_path / "sub").mkdir()
        out = tmp_path / "sub" / ".." / "data.jsonl"
    assert same_file(out, data)
    with pytest.raises(UserError, match="also an input file"):
        dedup_file(data, out)
    with pytest.raises(UserError, match="also an input file"):
        dedup_file(_jsonl(tmp_path / "other.jsonl", "Name a color."), out, against=[data])
    assert data.read_bytes() == before


def test_dedup_out_naming_a_directory_is_one_line(tmp_path: Path) -> None:
    data = _jsonl(tmp_path / "data.jsonl", "Write a poem about the sea.")
    (tmp_path / "outdir").mkdir()
    result = _run("dedup", str(data), "--out", str(tmp_path / "outdir"))
    assert result.returncode == 2
    assert "is a directory" in _one_error_line(result)
    assert list((tmp_path / "outdir").iterdir()) == []


def test_seeds_save_over_its_own_source_is_refused(tmp_path: Path) -> None:
    seeds = tmp_path / "seeds.jsonl"
    assert _run("seeds", "medical", "--save", str(seeds)).returncode == 0
    before = seeds.read_bytes()
    result = _run("seeds", str(seeds), "--classification-only", "--save", str(seeds))
    assert result.returncode == 2
    assert "also an input file" in _one_error_line(result)
    assert seeds.read_bytes() == before


def test_atomic_write_leaves_the_old_file_when_writing_fails(tmp_path: Path) -> None:
    target = tmp_path / "data.jsonl"
    target.write_text("old\n")
    with pytest.raises(RuntimeError), atomic_write(target) as handle:
        handle.write("new, half")
        raise RuntimeError("killed mid-write")
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.jsonl"]  # no temporary file left
    with atomic_write(tmp_path / "a" / "b" / "new.txt") as handle:
        handle.write("x")
    assert (tmp_path / "a" / "b" / "new.txt").read_text() == "x"
    with pytest.raises(RuntimeError), atomic_write(tmp_path / "c" / "d" / "new.txt") as handle:
        raise RuntimeError
    assert not (tmp_path / "c").exists()  # the folders it made for a failed write are gone again


# -- run directories in the wrong place ---------------------------------------------------------------


def test_out_under_a_file_is_one_line_and_creates_nothing(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    result = _run("generate", "--out", str(tmp_path / "afile" / "run"), "--no-progress")
    assert result.returncode == 2
    assert "lies under" in _one_error_line(result)
    result = _run("export", str(tmp_path / "missing"), "--out", str(tmp_path / "afile"))
    assert result.returncode == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


def test_rejected_generate_leaves_no_run_directory(tmp_path: Path) -> None:
    bad_seeds = tmp_path / "seeds.jsonl"
    bad_seeds.write_text("{not json\n")
    result = _run("generate", "--out", str(tmp_path / "runs" / "demo"), "--seeds", str(bad_seeds))
    assert result.returncode == 2
    assert f"{bad_seeds}:1:" in _one_error_line(result)
    assert not (tmp_path / "runs").exists()
    # Also when it fails after the run was opened but before the LM answered anything.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}/v1"  # nobody listens
    result = _run(
        *("generate", "--out", str(tmp_path / "runs" / "demo"), "--backend", "openai", "--base-url", dead),
        *("--model", "m", "--max-retries", "0", "--no-progress"),
    )
    assert result.returncode == 1, result.stderr
    assert "LM request failed" in _one_error_line(result)
    assert not (tmp_path / "runs").exists()
    # A folder the user made is kept, but as it was: empty.
    (tmp_path / "mine").mkdir()
    result = _run(
        *("generate", "--out", str(tmp_path / "mine"), "--backend", "openai", "--base-url", dead),
        *("--model", "m", "--max-retries", "0", "--no-progress"),
    )
    assert result.returncode == 1, result.stderr
    assert list((tmp_path / "mine").iterdir()) == []


# -- the machine refuses: read-only directories, a full disk ------------------------------------------


def _namespace_prefix(probe_dir: Path) -> list[str] | None:
    """A command prefix running its argument in a private mount namespace where `mount` works (as root,
    or in a user namespace), or None where this machine allows neither."""
    if shutil.which("unshare") is None or shutil.which("mount") is None:
        return None
    probe_dir.mkdir(exist_ok=True)
    for prefix in (["unshare", "-m"], ["unshare", "-Urm"]):
        script = f"mount -t tmpfs -o size=64k tmpfs {shlex.quote(str(probe_dir))}"
        try:
            done = subprocess.run([*prefix, "sh", "-c", script], capture_output=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if done.returncode == 0:
            return prefix
    return None


def _make_run(run_dir: Path, base_url: str) -> None:
    overrides = {"lm.backend": "openai", "lm.model": "fake-model", "lm.base_url": [base_url]}
    run = open_run(run_dir, None, overrides)
    run.store.close()


def _generate_args(run_dir: Path, base_url: str, n: int = 12) -> list[str]:
    return [
        *SELFINSTRUCT,
        *("generate", "--out", str(run_dir), "--backend", "openai", "--base-url", base_url),
        *("--model", "fake-model", "--num-instructions", str(n), "--no-progress", "--no-export"),
    ]


def test_read_only_run_directory_is_one_line(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    with FakeOpenAIServer(self_instruct_responder) as server:
        _make_run(run_dir, server.base_url)
        command = _generate_args(run_dir, server.base_url)
        fresh = _generate_args(tmp_path / "ro" / "new", server.base_url)
        (tmp_path / "ro").mkdir()
        if os.geteuid() != 0:  # permissions stop only a non-root user
            run_dir.chmod(0o555)
            (run_dir / "run.sqlite").chmod(0o444)
            (tmp_path / "ro").chmod(0o555)
            try:  # (as root, permissions stop nothing: a read-only mount below instead)
                results = [
                    subprocess.run(c, capture_output=True, text=True, env=ENV) for c in [command, fresh]
                ]
            finally:
                run_dir.chmod(0o755)
                (run_dir / "run.sqlite").chmod(0o644)
                (tmp_path / "ro").chmod(0o755)
        else:
            prefix = _namespace_prefix(tmp_path / "probe")
            if prefix is None:
                pytest.skip("running as root without a mount namespace: no way to make a directory read-only")
            outputs = [tmp_path / "out0", tmp_path / "out1"]
            script = " && ".join(
                [
                    *(
                        f"mount --bind {d} {d} && mount -o remount,bind,ro {d}"
                        for d in (shlex.quote(str(run_dir)), shlex.quote(str(tmp_path / "ro")))
                    ),
                    *(
                        f"{{ {shlex.join(c)} >/dev/null 2>{o}.err; echo $? >{o}.rc; }}"
                        for c, o in zip((command, fresh), outputs, strict=True)
                    ),
                ]
            )
            done = subprocess.run([*prefix, "sh", "-c", script], capture_output=True, text=True, env=ENV)
            assert done.returncode == 0, done.stderr
            results = [
                subprocess.CompletedProcess(
                    [], int(Path(f"{o}.rc").read_text()), "", Path(f"{o}.err").read_text()
                )
                for o in outputs
            ]
    existing, new = results
    assert existing.returncode == 1, existing.stderr
    line = _one_error_line(existing)
    assert str(run_dir) in line and "writable" in line
    assert new.returncode == 1, new.stderr
    line = _one_error_line(new)
    assert str(tmp_path / "ro" / "new") in line and "cannot create the folder" in line
    assert not (tmp_path / "ro" / "new").exists()


@pytest.mark.parametrize("full", ["tmpfs", "file-size limit"])
def test_full_disk_is_one_line_naming_the_path_and_the_run_resumes(tmp_path: Path, full: str) -> None:
    """A tmpfs too small for the run (where mount works), or a file-size limit (RLIMIT_FSIZE with SIGXFSZ
    ignored: a write past it fails as on a full disk). Then the same command, with room, resumes."""
    run_dir = tmp_path / "disk" / "run"
    run_dir.parent.mkdir()
    prefix = _namespace_prefix(tmp_path / "probe") if full == "tmpfs" else None
    if full == "tmpfs" and prefix is None:
        pytest.skip("mount is not allowed here (the file-size limit variant covers the full disk)")
    with FakeOpenAIServer(self_instruct_responder, latency=0.01) as server:
        _make_run(run_dir, server.base_url)  # seeds and settings fit; the run's work will not
        room = (run_dir / "run.sqlite").stat().st_size + 256 * 1024
        command = _generate_args(run_dir, server.base_url, n=60)
        if prefix is not None:
            disk = shlex.quote(str(run_dir.parent))
            script = (
                f"cp -a {disk} {disk}.copy && mount -t tmpfs -o size={room} tmpfs {disk} && "
                f"cp -a {disk}.copy/. {disk}/ && {{ {shlex.join(command)} >/dev/null 2>{tmp_path}/err; "
                f"echo $? >{tmp_path}/rc; }} && rm -rf {disk}.copy && cp -a {disk} {disk}.after"
            )
            done = subprocess.run([*prefix, "sh", "-c", script], capture_output=True, text=True, env=ENV)
            assert done.returncode == 0, done.stderr
            shutil.rmtree(run_dir.parent)
            (tmp_path / "disk.after").rename(run_dir.parent)
            first = subprocess.CompletedProcess(
                [], int((tmp_path / "rc").read_text()), "", (tmp_path / "err").read_text()
            )
        else:
            first = subprocess.run(
                command, capture_output=True, text=True, env=ENV, preexec_fn=_limit_file_size(room)
            )
        assert first.returncode == 1, first.stderr
        # The run existed (seeds saved), so the one line before the work says it resumes.
        first.stderr = "\n".join(x for x in first.stderr.splitlines() if not x.startswith("Resuming "))
        line = _one_error_line(first)
        assert str(run_dir / "run.sqlite") in line and "rerun" in line, line
        conn = sqlite3.connect(run_dir / "run.sqlite")
        kept_then = conn.execute("SELECT COUNT(*) FROM instructions").fetchone()[0]
        conn.close()
        assert 0 < kept_then < 60

        second = subprocess.run(command, capture_output=True, text=True, env=ENV, timeout=600)
    assert second.returncode == 0, second.stderr
    assert "Resuming" in second.stderr
    conn = sqlite3.connect(run_dir / "run.sqlite")
    assert conn.execute("SELECT COUNT(*) FROM instructions").fetchone()[0] >= 60
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()


def _limit_file_size(limit: int):  # type: ignore[no-untyped-def]
    import resource

    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG), as ENOSPC would
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


# -- two commands on one run ----------------------------------------------------------------------------


def test_a_second_generate_on_a_busy_run_is_refused_and_a_killed_one_frees_it(tmp_path: Path) -> None:
    """Two processes writing one run used to fail on each other's rows with a traceback. The second is
    refused in one line naming the first; once the first is killed (-9: no cleanup ran) the run resumes."""
    from selfinstruct.paths import LOCK_NAME
    from selfinstruct.testing.fake_server import FaultPlan

    run_dir = tmp_path / "run"
    slow = FaultPlan(seed=3, slow=1.0, slow_delay=1.0)  # every reply takes a second: the first stays busy
    with FakeOpenAIServer(self_instruct_responder, faults=slow) as server:
        command = _generate_args(run_dir, server.base_url, n=40)
        first = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
        try:
            lock = run_dir / LOCK_NAME
            deadline = time.monotonic() + 120
            while not (lock.is_file() and lock.read_text().strip() == str(first.pid)):
                assert time.monotonic() < deadline and first.poll() is None, "the first never took the run"
                time.sleep(0.05)
            second = subprocess.run(command, capture_output=True, text=True, env=ENV, timeout=180)
            assert second.returncode == 1, second.stderr
            line = _one_error_line(second)
            assert f"{run_dir}: another selfinstruct process (pid {first.pid}) is writing this run" in line
            assert first.poll() is None  # the refused command did not disturb the running one
            first.send_signal(signal.SIGKILL)
            first.wait(timeout=30)
        finally:
            if first.poll() is None:
                first.kill()
        third = subprocess.run(command, capture_output=True, text=True, env=ENV, timeout=300)
    assert third.returncode == 0, third.stderr
    assert "Resuming" in third.stderr
    conn = sqlite3.connect(run_dir / "run.sqlite")
    assert conn.execute("SELECT COUNT(*) FROM instructions").fetchone()[0] >= 40
    conn.close()


# -- the review page -----------------------------------------------------------------------------------


def test_review_busy_port_is_said_before_any_url(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    with FakeOpenAIServer(self_instruct_responder) as server:
        _make_run(run_dir, server.base_url)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = _run("review", str(run_dir), "--port", str(port))
    assert result.returncode == 1
    line = _one_error_line(result)
    assert f"--port {port}" in line and "in use" in line
    assert "http://" not in result.stderr + result.stdout


def test_review_serves_on_the_printed_url_and_ctrl_c_exits_130(tmp_path: Path) -> None:
    import httpx

    run_dir = tmp_path / "run"
    with FakeOpenAIServer(self_instruct_responder) as server:
        _make_run(run_dir, server.base_url)
    proc = subprocess.Popen(
        [*SELFINSTRUCT, "review", str(run_dir), "--port", "0"],
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        first = proc.stderr.readline()
        assert first.startswith("Review page: http://127.0.0.1:"), first
        url = first.split()[2]
        assert not url.endswith(":0/")
        assert httpx.get(url, timeout=30, follow_redirects=True).status_code == 200
        proc.send_signal(signal.SIGINT)
        _, rest = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130
    assert [line for line in rest.splitlines() if line.strip()] == ["Interrupted."], rest


def test_the_review_socket_accepts_connections_as_soon_as_the_url_is_printed() -> None:
    """The URL is printed right after listen_socket(); uvicorn starts accepting later. A client in that
    gap must wait in the backlog, not be refused (a CI run failed on exactly that)."""
    from selfinstruct.cli.review import listen_socket

    sock = listen_socket("127.0.0.1", 0)
    try:
        with socket.create_connection(sock.getsockname(), timeout=5):
            pass
    finally:
        sock.close()
