"""Real worker processes for tests and benchmarks: start, wait until ready, kill, stop.

A worker runs as ``python -m video_inst.cli_jobs worker`` in its own process group, so
``kill()`` (SIGKILL to the group) takes the pool processes down with it, as a crashed
machine would.

Example::

    with WorkerProcess(env, log_path=tmp / "w1.log") as w:
        ...                    # send tasks
        w.kill()               # SIGKILL, mid-task
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from contextlib import suppress
from pathlib import Path

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
            "video_inst.cli_jobs",
            "worker",
            f"--queues={queues}",
            f"--concurrency={concurrency}",
            f"--pool={pool}",
            f"--hostname={name}-{os.getpid()}-{time.monotonic_ns()}@%h",
        ]
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, ready_timeout_s: float = 120.0) -> WorkerProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            self.args, cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        deadline = time.monotonic() + ready_timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited with {self.proc.returncode}:\n{self.log_tail()}")
            if b" ready." in self.log_path.read_bytes():
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
        os.killpg(self.proc.pid, signal.SIGTERM)
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
