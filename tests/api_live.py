"""A live API for the API and page tests: uvicorn on 127.0.0.1 over a catalog ingested from the test media.

The clips are ingested once per test process (with the real offline backbone) and shared by
every test module through :func:`shared_live_api`; each module only pays for it
if it is the first to ask. ``start_server`` runs any app on a free port in a thread.

Example::

    @pytest.fixture(scope="module")
    def live_api(shared_media, tmp_path_factory):
        return shared_live_api(shared_media, tmp_path_factory)

    def test_health(live_api):
        assert httpx.get(live_api.url("/health")).status_code == 200
"""

from __future__ import annotations

import atexit
import io
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import httpx
import pytest
from PIL import Image

CLIPS = ("sintel_snow.mp4", "realshort.mp4")  # 24 fps and 30.02 fps; 3 keyframes in all (ingest is slow)
TOKEN = "test-token-8f2c"
CORS_ORIGIN = "http://nle-panel.example"
MAX_UPLOAD_MB = 1


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """A uvicorn server running an app in a daemon thread."""

    base: str
    server: Any
    thread: threading.Thread

    def url(self, path: str) -> str:
        return self.base + path

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def start_server(app: Any) -> Server:
    """Serve ``app`` on a free port of 127.0.0.1; returns once it accepts connections."""
    import uvicorn

    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 120  # a warm=True app loads its models first (~45 s on a busy 2-core box)
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"uvicorn did not start on port {port}")
        time.sleep(0.02)
    return Server(f"http://127.0.0.1:{port}", server, thread)


@dataclass
class LiveApi:
    """The shared server with what tests need to know about its catalog."""

    server: Server
    settings: Any
    media: Path
    videos: dict[str, int] = field(default_factory=dict)  # clip file name -> video id

    def url(self, path: str) -> str:
        return self.server.url(path)

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {TOKEN}"}


_LIVE: dict[str, LiveApi] = {}


def _build(media: Path, home: Path) -> LiveApi:
    from video_inst.api.app import create_app
    from video_inst.catalog.db import get_catalog
    from video_inst.config import Settings
    from video_inst.ingest.pipeline import ingest_path

    settings = Settings(
        home=home,
        database_url=None,
        media_roots=[media],
        api_token=TOKEN,
        cors_origins=[CORS_ORIGIN],
        max_upload_mb=MAX_UPLOAD_MB,
    )
    videos = {}
    for name in CLIPS:
        result = ingest_path(media / "clips" / name, settings=settings, catalog=get_catalog(settings))
        assert result.status == "done", f"{name}: {result.error}"
        videos[name] = int(result.video_id)
    server = start_server(create_app(settings, ingest_mode="thread", warm=True))
    atexit.register(server.stop)
    return LiveApi(server=server, settings=settings, media=media, videos=videos)


def shared_live_api(shared_media: Path, tmp_path_factory: pytest.TempPathFactory) -> LiveApi:
    """The shared live API: built by the first test module that asks, reused by the others.

    Each module wraps it in its own ``live_api`` fixture (pytest scopes fixtures per module
    that defines them; the memo here makes the ingest happen once per test process).
    """
    if "api" not in _LIVE:
        _LIVE["api"] = _build(shared_media, tmp_path_factory.mktemp("api_home"))
    return _LIVE["api"]


def wait_job(live: LiveApi, job_id: str, timeout_s: float = 180.0) -> dict[str, Any]:
    """Poll ``GET /jobs/{id}`` until the job ends."""
    deadline = time.monotonic() + timeout_s
    while True:
        job = httpx.get(live.url(f"/jobs/{job_id}"), timeout=10).json()
        if job["status"] in ("done", "failed"):
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} still {job['status']} after {timeout_s:.0f} s")
        time.sleep(0.2)


def frame_png(path: Path, at_s: float) -> tuple[bytes, int, int]:
    """A decoded frame of a clip as PNG bytes (a query an editor would grab from the footage)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frame = None
        for frame in container.decode(stream):
            if frame.time is not None and frame.time >= at_s:
                break
        assert frame is not None
        image = frame.to_image()
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue(), image.width, image.height


def png_bytes(width: int, height: int, colour: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(out, format="PNG")
    return out.getvalue()


def post_json(live: LiveApi, body: object, path: str = "/search") -> httpx.Response:
    return httpx.post(live.url(path), json=body, timeout=120)


def post_image(live: LiveApi, image: bytes, path: str = "/search", **fields: object) -> httpx.Response:
    data = {k: str(v) for k, v in fields.items() if not isinstance(v, list)}
    files: list = [("image", ("query.png", image, "image/png"))]
    files += [(k, (None, str(x))) for k, v in fields.items() if isinstance(v, list) for x in v]
    return httpx.post(live.url(path), data=data, files=files, timeout=120)


def error_of(response: Any) -> dict[str, str]:
    """The ``{"code", "message"}`` of an error answer (fails when the shape is wrong)."""
    assert response.headers["content-type"].startswith("application/json"), response.text[:200]
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    assert body["error"]["message"], body
    return body["error"]
