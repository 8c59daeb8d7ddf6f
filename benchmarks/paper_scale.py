"""The paper's scale against the test server (issue 24): `generate --num-instructions 52000` against the fake
OpenAI server (200 ms a reply, 64 in flight, `scale_responder`), after its `--dry-run` estimate, then `export`
and `report`, each timed with /usr/bin/time (wall seconds, peak RSS).

    python benchmarks/paper_scale.py runs/paper52k [--num 52000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from selfinstruct.testing.fake_server import FakeOpenAIServer
from selfinstruct.testing.responder import scale_responder

SELFINSTRUCT = [sys.executable, "-m", "selfinstruct"]


def timed(args: list[str]) -> tuple[float, str, subprocess.CompletedProcess[str]]:
    """(wall seconds, peak RSS as /usr/bin/time says it, the finished process) of one command."""
    start = time.perf_counter()
    done = subprocess.run(["/usr/bin/time", "-v", *args], capture_output=True, text=True, check=False)
    rss = next(
        (line.split(":")[1].strip() for line in done.stderr.splitlines() if "Maximum resident" in line), "?"
    )
    return time.perf_counter() - start, rss, done


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("out", type=Path)
    parser.add_argument("--num", type=int, default=52000)
    args = parser.parse_args()
    with FakeOpenAIServer(scale_responder, latency=0.2) as server:
        flags = ["--backend", "openai", "--base-url", server.base_url, "--model", "fake"]
        flags += ["--num-instructions", str(args.num), "--concurrency", "64"]
        wall, rss, done = timed([*SELFINSTRUCT, "generate", "--out", str(args.out), *flags, "--dry-run"])
        print(f"dry run: {wall:.1f} s, {rss} KB\n{done.stderr[:2500]}", flush=True)
        command = [*SELFINSTRUCT, "generate", "--out", str(args.out), *flags, "--no-progress", "--no-export"]
        wall, rss, done = timed(command)
        print(f"generate: exit {done.returncode}, {wall:.1f} s, {rss} KB", flush=True)
    for name, command in (
        ("export", [*SELFINSTRUCT, "export", str(args.out)]),
        ("report", [*SELFINSTRUCT, "report", str(args.out), "--out", str(args.out / "report.html")]),
    ):
        wall, rss, done = timed(command)
        print(f"{name}: exit {done.returncode}, {wall:.1f} s, {rss} KB", flush=True)
    print(f"run.sqlite: {(args.out / 'run.sqlite').stat().st_size / 1e6:.0f} MB")
    usage = json.loads((args.out / "summary.json").read_text())["usage"]
    print(json.dumps(usage, indent=1))


if __name__ == "__main__":
    main()
