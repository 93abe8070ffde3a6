"""Real worker processes for tests and benchmarks: start, wait until ready, kill, stop.

A worker runs as ``python -m video_inst.cli worker`` in its own process group, so
``kill()`` (SIGKILL to the group) takes the pool processes down with it, as a crashed
machine would.

Example::

    with WorkerProcess(env, log_path=tmp / "w1.log") as w:
        ...                    # send tasks
        w.kill()               # SIGKILL, mid-task
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from contextlib import suppress
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from video_inst.errors import TransientError

REPO = Path(__file__).resolve().parents[1]


class WorkerProcess:
    """One ``video-inst worker`` subprocess."""

    def __init__(
        self,
        env: dict[str, str],
        *,
        log_path: Path,
        queues: str = "ingest,analyse,index",
        concurrency: int = 1,
        pool: str = "prefork",
        name: str = "w",
    ) -> None:
        self.env = {**os.environ, **env}
        self.log_path = log_path
        self.args = [
            sys.executable,
            "-m",
            "video_inst.cli",
            "worker",
            f"--queues={queues}",
            f"--concurrency={concurrency}",
            f"--pool={pool}",
            f"--hostname={name}-{os.getpid()}-{time.monotonic_ns()}@%h",
        ]
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, ready_timeout_s: float = 120.0) -> WorkerProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            self.args, cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        deadline = time.monotonic() + ready_timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited with {self.proc.returncode}:\n{self.log_tail()}")
            if b" ready." in self.log_path.read_bytes()[offset:]:
                return self
            time.sleep(0.2)
        raise TransientError(f"worker not ready after {ready_timeout_s:.0f} s:\n{self.log_tail()}")

    def log_tail(self, n: int = 4000) -> str:
        return self.log_path.read_bytes()[-n:].decode(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        """SIGKILL the worker and its pool processes at once (no warm shutdown, nothing acknowledged)."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self, timeout_s: float = 20.0) -> None:
        """Warm shutdown (SIGTERM), then SIGKILL if it takes too long."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)  # the main process stops its pool itself
        try:
            self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
        else:
            with suppress(ProcessLookupError):  # pool processes that outlived their parent
                os.killpg(self.proc.pid, signal.SIGKILL)

    def __enter__(self) -> WorkerProcess:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


class CallbackReceiver:
    """A real HTTP server on 127.0.0.1 that records JSON POSTs and answers with scripted codes."""

    def __init__(self, codes: list[int] | None = None) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.codes = list(codes or [])
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length", 0))
                receiver.bodies.append(json.loads(self.rfile.read(length)))
                code = receiver.codes.pop(0) if receiver.codes else 200
                self.send_response(code)
                self.end_headers()

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def wait(self, n: int = 1, timeout_s: float = 30.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout_s
        while len(self.bodies) < n and time.monotonic() < deadline:
            time.sleep(0.1)
        return self.bodies

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


ARCHIVE_GOOD = ("clips/sintel_snow.mp4", "clips/realshort.mp4", "clips/flower.mp4")


def build_test_archive(folder: Path, media: Path, good: tuple[str, ...] = ARCHIVE_GOOD) -> dict[str, Path]:
    """Good files (symlinks to real clips), a corrupt one and two unreadable ones, in sub-folders.

    Tests run as root, where chmod 000 does not stop reading: a dangling symlink (a file on
    an unmounted share) and a FIFO named like a video stand for unreadable files.
    """
    (folder / "day1").mkdir(parents=True, exist_ok=True)
    (folder / "day2" / "cam").mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    for n, rel in enumerate(good):
        link = folder / ("day1" if n < 2 else "day2/cam") / Path(rel).name
        link.symlink_to(media / rel)
        files[rel] = link
    corrupt = folder / "day2" / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(4096))
    dangling = folder / "day1" / "offline.mov"
    dangling.symlink_to(folder / "unmounted" / "offline.mov")
    fifo = folder / "day2" / "pipe.mkv"
    os.mkfifo(fifo)
    (folder / "day1" / "notes.txt").write_text("not a video")
    files.update(corrupt=corrupt, dangling=dangling, fifo=fifo)
    return files
