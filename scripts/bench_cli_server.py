#!/usr/bin/env python
"""A CLI crop search in this process vs through ``--server`` (a running ``video-inst serve``): wall time.

Steps: ingest one clip into a scratch home (once; reused with ``--home``), start
``video-inst serve`` on that home (models warmed before it listens), then time
``video-inst search --image F --box B --json`` alternately without and with ``--server``.
Prints medians and their ratio; asserts nothing (the machine is shared: quote the ratio).

Usage::

    .venv/bin/python scripts/bench_cli_server.py --runs 3
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "video_inst.cli"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--clip", type=Path, default=REPO / "tests" / "media" / "clips" / "sintel_snow.mp4")
    parser.add_argument("--home", type=Path, default=None)
    args = parser.parse_args()
    home = args.home or Path(tempfile.mkdtemp(prefix="vi_cli_server_"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIDEO_INST_")}
    env.update(VIDEO_INST_HOME=str(home), OMP_NUM_THREADS=env.get("OMP_NUM_THREADS", "1"))
    subprocess.run([*CLI, "ingest", str(args.clip), "--json"], env=env, check=True, capture_output=True)
    import av

    query = home / "query.png"
    with av.open(str(args.clip)) as container:
        frame = next(f for f in container.decode(video=0) if f.time is not None and f.time >= 1.0)
        image = frame.to_image()
    image.save(query)
    box = f"{image.width // 4},{image.height // 5},{3 * image.width // 4},{4 * image.height // 5}"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen([*CLI, "serve", "--port", str(port)], env=env, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        import httpx

        deadline = time.monotonic() + 300
        while True:
            try:
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit("the server did not start")
            time.sleep(0.5)
        times: dict[str, list[float]] = {"local": [], "server": []}
        search = [*CLI, "search", "--image", str(query), "--box", box, "--json"]
        for _ in range(args.runs):
            for name, extra in (("local", []), ("server", ["--server", url])):
                started = time.perf_counter()
                subprocess.run([*search, *extra], env=env, check=True, capture_output=True)
                times[name].append(time.perf_counter() - started)
        local, remote = statistics.median(times["local"]), statistics.median(times["server"])
        print(
            f"clip {args.clip.name}, box {box}, {args.runs} runs each, "
            f"OMP_NUM_THREADS={env['OMP_NUM_THREADS']}"
        )
        print(f"local  search: median {local:.2f} s  {[round(t, 2) for t in times['local']]}")
        print(f"server search: median {remote:.2f} s  {[round(t, 2) for t in times['server']]}")
        print(f"ratio local / server: {local / remote:.1f}x")
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
