"""A catalog that takes no writes, and jobs whose process died (issue 12, item 6).

Read-only: the SQLite file made immutable (``chattr +i``; as another user than root, mode
0444 does the same), a PostgreSQL database switched to read-only transactions. Full: SQLite's
own page limit makes a real "database or disk is full". Dead job: a real ``video-inst serve``
SIGKILLed while its in-process ingest runs, then started again.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from api_live import error_of, free_port
from media_factory import render_clip
from sqlalchemy import create_engine, event, text

from video_inst.catalog.db import Catalog
from video_inst.errors import CatalogFullError, CatalogReadOnlyError


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-W", "ignore", "-m", "video_inst.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def cli_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIDEO_INST_")}
    env["VIDEO_INST_HOME"] = str(home)
    env.update({f"VIDEO_INST_{k.upper()}": v for k, v in extra.items()})
    return env


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return render_clip(tmp_path_factory.mktemp("faults") / "clip.mp4", scenes=[30, 30]).path


@contextmanager
def read_only(path: Path) -> Iterator[None]:
    """The file refuses writes for the block: immutable as root, mode 0444 otherwise."""
    if os.geteuid() == 0:
        done = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True)
        if done.returncode:
            pytest.skip(f"cannot make {path} immutable here: {done.stderr.strip()}")
        try:
            yield
        finally:
            subprocess.run(["chattr", "-i", str(path)], check=True)
    else:
        mode = path.stat().st_mode
        path.chmod(0o444)
        try:
            yield
        finally:
            path.chmod(mode)


def test_read_only_sqlite_catalog_is_named_before_any_analysis(tmp_path: Path, clip: Path) -> None:
    home = tmp_path / "home"
    env = cli_env(home)
    first = cli(env, "ingest", str(clip), "--json", "--no-analyse")
    assert first.returncode == 0, first.stderr
    before = json.loads(cli(env, "videos", "--json").stdout)
    catalog = home / "catalog.sqlite3"
    with read_only(catalog):
        # --force would re-analyse the whole clip; the named error comes before the hash is even used.
        run = cli(env, "ingest", str(clip), "--force", "--json")
        assert run.returncode == 1
        assert "Traceback" not in run.stderr, run.stderr
        (line,) = [json.loads(x) for x in run.stdout.splitlines() if x.strip()]
        assert line["status"] == "failed"
        assert "read-only" in line["error"] and str(catalog) in line["error"], line
        assert line["keyframes"] == 0  # no analysis was done
        assert not list(home.glob("staging/*"))
        # Reads still answer.
        listed = cli(env, "videos", "--json")
        assert listed.returncode == 0 and json.loads(listed.stdout) == before
        with pytest.raises(CatalogReadOnlyError, match="read-only"):
            Catalog(f"sqlite:///{catalog}").check_writable()
    assert json.loads(cli(env, "videos", "--json").stdout) == before  # nothing lost


def _serve(env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    """A real ``video-inst serve`` on a free port, answering /health; stderr kept for the checks."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-W", "ignore", "-m", "video_inst.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    wait_health(base, proc)
    return proc, base


def test_read_only_catalog_answers_the_api_with_a_named_503(tmp_path: Path, clip: Path) -> None:
    home = tmp_path / "home"
    env = cli_env(home, media_roots=str(clip.parent))
    assert cli(env, "ingest", str(clip), "--json", "--no-analyse").returncode == 0
    # Made read-only before the server opens it (a file already open read-write stays writable).
    with read_only(home / "catalog.sqlite3"):
        server, base = _serve(env)
        try:
            response = httpx.post(base + "/ingest", json={"path": str(clip), "force": True}, timeout=30)
            assert response.status_code == 503, response.text
            error = error_of(response)
            assert error["code"] == "catalog_read_only" and "read-only" in error["message"], error
            response = httpx.delete(base + "/videos/1", timeout=30)
            assert response.status_code == 503, response.text
            assert error_of(response)["code"] == "catalog_read_only"
            response = httpx.post(
                base + "/ingest/upload",
                files={"file": ("up.mp4", clip.read_bytes(), "video/mp4")},
                timeout=60,
            )
            assert response.status_code == 503, response.text
            assert error_of(response)["code"] == "catalog_read_only"
            assert not [p for p in home.glob("uploads/**/*") if p.is_file()]  # no copy left behind
            assert httpx.get(base + "/videos/1", timeout=30).status_code == 200  # reads answer
        finally:
            server.send_signal(signal.SIGTERM)
            _, stderr = server.communicate(timeout=30)
    assert "Traceback" not in stderr, stderr[-3000:]
    listed = cli(env, "videos", "--json")
    assert [v["video_id"] for v in json.loads(listed.stdout)] == [1]  # the delete did not happen


def test_full_sqlite_catalog_is_a_named_error(tmp_path: Path) -> None:
    from video_inst.catalog.models import Job

    url = f"sqlite:///{tmp_path / 'catalog.sqlite3'}"
    catalog = Catalog(url, auto_upgrade=True)

    # SQLite's own limit on the file's pages: writes past it fail with SQLITE_FULL, as on a full disk.
    @event.listens_for(catalog.engine, "connect")
    def _cap(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        size = dbapi_connection.execute("PRAGMA page_count").fetchone()[0]
        dbapi_connection.execute(f"PRAGMA max_page_count={size}")

    catalog.engine.dispose()
    with pytest.raises(CatalogFullError, match="full"), catalog.session() as s:
        for i in range(2000):
            s.add(Job(id=f"job-{i:05d}", kind="ingest", path="x" * 500, status="queued", counts={}))
    with catalog.session() as s:
        assert s.scalar(text("SELECT count(*) FROM jobs")) == 0  # rolled back, nothing half-written


def test_read_only_postgresql_catalog_is_named(tmp_path: Path, clip: Path, pg_url: str) -> None:
    env = cli_env(tmp_path / "home", database_url=pg_url)
    assert cli(env, "db", "upgrade").returncode == 0
    assert cli(env, "ingest", str(clip), "--json", "--no-analyse").returncode == 0
    name = pg_url.rsplit("/", 1)[-1]
    admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on'))
    admin.dispose()
    run = cli(env, "ingest", str(clip), "--force", "--json")
    assert run.returncode == 1 and "Traceback" not in run.stderr, run.stderr
    (line,) = [json.loads(x) for x in run.stdout.splitlines() if x.strip()]
    assert line["status"] == "failed" and "read-only" in line["error"], line
    with pytest.raises(CatalogReadOnlyError):
        Catalog(pg_url).check_writable()
    listed = cli(env, "videos", "--json")
    assert listed.returncode == 0 and [v["status"] for v in json.loads(listed.stdout)] == ["done"]


def wait_health(base: str, server: subprocess.Popen, timeout_s: float = 400) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"server exited: {server.stderr.read() if server.stderr else ''}")
        try:
            if httpx.get(base + "/health", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise AssertionError("server did not answer /health")


def test_job_of_a_killed_server_is_failed_and_its_staging_removed(tmp_path: Path, clip: Path) -> None:
    home = tmp_path / "home"
    env = cli_env(home, media_roots=str(clip.parent), chunk_delay_s="600")

    server, base = _serve(env)
    try:
        response = httpx.post(base + "/ingest", json={"path": str(clip), "analyse": False}, timeout=30)
        assert response.status_code == 202, response.text
        job_id = response.json()["job_id"]
        plan = home / "staging" / job_id / "plan.json"
        deadline = time.monotonic() + 120
        while not plan.exists():  # the plan is staged, then the chunk sleeps (chunk_delay_s)
            assert time.monotonic() < deadline, httpx.get(base + f"/jobs/{job_id}").text
            time.sleep(0.2)
        job = httpx.get(base + f"/jobs/{job_id}", timeout=10).json()
        assert job["status"] == "running"
        dead_pid = server.pid
    finally:
        server.send_signal(signal.SIGKILL)
        server.communicate(timeout=30)
    server, base = _serve(env)
    try:
        job = httpx.get(base + f"/jobs/{job_id}", timeout=10).json()
        assert job["status"] == "failed", job
        assert f"pid {dead_pid}" in job["error"] and "start the ingest again" in job["error"], job
        assert not plan.parent.exists()
        # The file can be ingested again under a new job.
        env["VIDEO_INST_CHUNK_DELAY_S"] = "0"
    finally:
        server.send_signal(signal.SIGTERM)
        _, stderr = server.communicate(timeout=30)
    assert "Traceback" not in stderr, stderr[-3000:]
    again = cli(env, "ingest", str(clip), "--json", "--no-analyse")
    assert again.returncode == 0 and json.loads(again.stdout)["status"] == "done", again.stdout
