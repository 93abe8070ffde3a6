"""Hostile HTTP input against a real ``video-inst serve`` process (issue 12, items 4 and 5).

The server runs as a subprocess over its own data directory and one media root in a temp
folder. The root holds two ingested clips, a symlink to a file outside the root and a
symlink to a folder outside it; the file outside holds a marker string. Every request must
answer a 4xx (or the documented success) with the JSON error shape, never a 5xx, a
traceback, a Python object repr, the server's data directory path or the marker.

The second half swaps an ingested file under the running server (a symlink out of the
root, other content, removal) and checks the media and thumbnail routes refuse it, and
that a deleted thumbnail is decoded again on request.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from api_live import free_port
from PIL import Image

from video_inst.api.routes.search import MAX_EXEMPLARS, MAX_FORM_FIELDS

TOKEN = "hostile-token-1c9e"
MARKER = "SECRET-MARKER-OUTSIDE-THE-ROOTS-7d1"
MAX_UPLOAD_MB = 1


@dataclass
class Served:
    base: str
    home: Path
    root: Path
    outside: Path
    videos: dict[str, int]
    proc: subprocess.Popen
    log: Path

    def url(self, path: str) -> str:
        return self.base + path

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {TOKEN}"}


def _env(home: Path, root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIDEO_INST_")}
    env.update(
        VIDEO_INST_HOME=str(home),
        VIDEO_INST_MEDIA_ROOTS=str(root),
        VIDEO_INST_API_TOKEN=TOKEN,
        VIDEO_INST_MAX_UPLOAD_MB=str(MAX_UPLOAD_MB),
    )
    return env


@pytest.fixture(scope="module")
def served(shared_media: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    from video_inst.catalog.db import get_catalog
    from video_inst.config import Settings
    from video_inst.ingest.pipeline import ingest_path

    base = tmp_path_factory.mktemp("hostile")
    home, root, outside = base / "home", base / "root", base / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "secret.mp4").write_text(MARKER * 100)
    (root / "out_link.mp4").symlink_to(outside / "secret.mp4")
    (root / "escape").symlink_to(outside, target_is_directory=True)
    settings = Settings(home=home, database_url=None, media_roots=[root])
    videos = {}
    for name in ("realshort.mp4", "sintel_snow.mp4"):
        shutil.copyfile(shared_media / "clips" / name, root / name)
        result = ingest_path(root / name, settings=settings, catalog=get_catalog(settings), analyse=False)
        assert result.status == "done", result.error
        videos[name] = int(result.video_id)
    port = free_port()
    log = base / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "video_inst.cli", "serve", "--port", str(port), "--ingest", "thread"],
            env=_env(home, root),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = Served(f"http://127.0.0.1:{port}", home, root, outside, videos, proc, log)
    deadline = time.monotonic() + 240
    while True:
        try:
            if httpx.get(server.url("/health"), timeout=5).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"video-inst serve did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.5)
    yield server
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
    assert "Traceback" not in log.read_text(), log.read_text()[-3000:]


def clean(server: Served, response: httpx.Response, sent: str = "") -> str:
    """Fail on what must never reach a client (``sent``: the client's own path, may be echoed)."""
    text = response.content.decode("utf-8", "replace")
    if sent:
        text = text.replace(sent, "<sent>")
    assert response.status_code < 500, (response.status_code, text[:500])
    assert MARKER not in text and "root:x:0:0" not in text, text[:300]
    assert "Traceback" not in text and " object at 0x" not in text, text[:300]
    assert str(server.home) not in text and str(server.outside) not in text, text[:300]
    return text


def refused(
    server: Served, response: httpx.Response, status: int, code: str | None = None, sent: str = ""
) -> str:
    """A refusal with the JSON error shape; returns its message."""
    clean(server, response, sent)
    assert response.status_code == status, (response.status_code, response.text[:400])
    assert response.headers["content-type"].startswith("application/json"), response.text[:200]
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    assert body["error"]["message"], body
    if code is not None:
        assert body["error"]["code"] == code, body
    return str(body["error"]["message"])


def raw_get(server: Served, raw_path: str) -> httpx.Response:
    """GET with the path sent exactly as written (no client-side normalising of ../ or %2e)."""
    port = int(server.base.rsplit(":", 1)[1])
    with httpx.Client(base_url=server.base, timeout=30) as client:
        request = client.build_request("GET", server.base)
        request.url = request.url.copy_with(raw_path=raw_path.encode())
        assert request.url.port == port
        return client.send(request)


def encoded(image: Image.Image, fmt: str, **options: Any) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **options)
    return out.getvalue()


def noisy(width: int, height: int) -> Image.Image:
    rng = np.random.default_rng(7)
    return Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8))


def with_image(server: Served, path: str, image: bytes, **fields: str) -> httpx.Response:
    return httpx.post(
        server.url(path), files={"image": ("q.png", image, "image/png")}, data=fields, timeout=120
    )


IMAGE_ROUTES = ("/search", "/search/prepare", "/export?format=csv")


# ------------------------------------------------------------------- traversal


@pytest.mark.parametrize(
    "raw",
    [
        "/static/../../../../etc/passwd",
        "/static/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/static/..%2f..%2f..%2f..%2fetc%2fpasswd",
        "/static/%2fetc%2fpasswd",
        "/static//etc/passwd",
        "/thumbnails/1/..%2f..%2f..%2fetc%2fpasswd.jpg",
        "/thumbnails/1/%2e%2e.jpg",
        "/videos/..%2f..%2fetc%2fpasswd/media",
        "/videos/%2fetc%2fpasswd/media",
        "/videos/1/media/../../../../etc/passwd",
        "/jobs/..%2f..%2fetc%2fpasswd",
    ],
)
def test_traversal_in_url_paths_serves_nothing_outside(served: Served, raw: str) -> None:
    response = raw_get(served, raw)
    assert response.status_code in (404, 422), (raw, response.status_code, response.text[:300])
    refused(served, response, response.status_code)


def test_ingest_refuses_every_path_that_leaves_the_root(served: Served) -> None:
    root, outside = served.root, served.outside
    before = httpx.get(served.url("/videos"), timeout=10).json()
    for path in (
        f"{root}/../outside/secret.mp4",
        "/etc/passwd",
        str(outside / "secret.mp4"),
        str(root / "out_link.mp4"),  # a symlink in the root to a file outside it
        str(root / "escape" / "secret.mp4"),  # a symlinked folder leaving the root
        "escape/secret.mp4",  # relative: resolved against the server's cwd, not the root
        f"{root}/%2e%2e/outside/secret.mp4",  # not decoded: no such file under the root
    ):
        response = httpx.post(served.url("/ingest"), json={"path": path}, headers=served.auth, timeout=30)
        assert response.status_code in (403, 404), (path, response.status_code, response.text)
        refused(served, response, response.status_code, sent=path)
        assert str(root) not in response.text.replace(path, "")  # the roots are not listed
    message = refused(
        served,
        httpx.post(
            served.url("/ingest"), json={"path": f"{root}/a\x00.mp4"}, headers=served.auth, timeout=30
        ),
        422,
    )
    assert message == "path: contains a NUL byte", message
    assert httpx.get(served.url("/videos"), timeout=10).json() == before


def test_uploads_with_traversal_names_stay_in_the_upload_folder(served: Served) -> None:
    uploads = served.home / "uploads"
    for name in ("../../evil.mp4", "..\\..\\evil2.mp4", "/etc/passwd", "%2e%2e%2fevil3.mp4", "\x00.mp4"):
        response = httpx.post(
            served.url("/ingest/upload"),
            files={"file": (name, b"not a video at all", "video/mp4")},
            headers=served.auth,
            timeout=30,
        )
        assert response.status_code == 202, (name, response.text)
        saved = Path(response.json()["path"])
        assert uploads.resolve() in saved.resolve().parents, saved
    strays = [p for p in served.home.parent.rglob("evil*") if uploads.resolve() not in p.resolve().parents]
    assert not strays, strays


# ------------------------------------------------------------------- query images


def test_decompression_bomb_is_a_named_413_on_every_image_route(served: Served) -> None:
    bomb = encoded(Image.new("1", (30000, 30000)), "PNG")  # ~110 KB of file, 900 M pixels
    assert len(bomb) < 1024 * 1024
    for route in IMAGE_ROUTES:
        message = refused(served, with_image(served, route, bomb), 413, "image_too_large")
        assert "megapixels" in message and "decompression" in message, message


def test_image_just_over_the_pixel_limit_is_refused_with_its_size(served: Served) -> None:
    big = encoded(Image.new("1", (9500, 9000)), "PNG")
    message = refused(served, with_image(served, "/search/prepare", big), 413, "image_too_large")
    assert "9500x9000" in message


@pytest.mark.parametrize("route", IMAGE_ROUTES)
def test_broken_images_are_415_without_object_reprs(served: Served, route: str) -> None:
    whole = encoded(noisy(200, 150), "PNG")
    for data in (b"%PDF-1.4 not pixels", whole[: len(whole) // 2], encoded(noisy(64, 64), "JPEG")[:300]):
        message = refused(served, with_image(served, route, data), 415, "not_an_image")
        assert "0x" not in message and "BytesIO" not in message, message


def test_cmyk_16_bit_and_animated_images_are_read(served: Served) -> None:
    cmyk = encoded(Image.new("CMYK", (40, 30), (0, 255, 0, 0)), "JPEG")
    deep = encoded(Image.fromarray(np.full((30, 40), 40000, np.uint16)), "PNG")
    frames = [Image.new("RGB", (40, 30), c) for c in ((255, 0, 0), (0, 0, 255))]
    gif = encoded(frames[0], "GIF", save_all=True, append_images=frames[1:])
    for data in (cmyk, deep, gif):
        response = with_image(served, "/search/prepare", data)
        clean(served, response)
        assert response.status_code == 200, response.text
        assert (response.json()["width"], response.json()["height"]) == (40, 30)
        assert with_image(served, "/search", data, box="1,1,39,29").status_code == 200


@pytest.mark.parametrize(
    "box",
    [
        "-5,0,20,20",  # negative
        "30,20,10,5",  # inverted
        "nan,0,20,20",
        "0,0,inf,20",
        "10,10,10,20",  # zero area
        "0,0,5000,5000",  # outside the image
        "1,2,3",
        "a,b,c,d",
        "1e999,0,2,2",
    ],
)
def test_bad_boxes_are_422(served: Served, box: str) -> None:
    image = encoded(noisy(64, 48), "PNG")
    for route in ("/search", "/export?format=edl"):
        refused(served, with_image(served, route, image, box=box), 422, "invalid_query")


# ------------------------------------------------------------------- bodies


@pytest.mark.parametrize(
    "body",
    [
        {"text": "bird", "top_k": 10**12},
        {"text": "bird", "top_k": 0},
        {"text": "bird", "top_k": -1},
        {"text": "bird", "top_k": 1e308},
        {"text": "x" * 1_000_000},
        {"text": "bi\x00rd"},
        {"text": "bird", "label": "b\x00ird"},
        {"text": "bird", "min_score": "NaN"},
        {"text": "bird", "offset": 10**30},
        {"text": "bird", "video_ids": [0]},
        {"text": "bird", "time_range": [5, "inf"]},
        {"track_id": 2**63},
    ],
)
def test_absurd_json_fields_are_422(served: Served, body: dict) -> None:
    for route in ("/search", "/export?format=otio"):
        refused(served, httpx.post(served.url(route), json=body, timeout=60), 422)


def test_huge_top_k_as_a_json_number_and_a_form_field(served: Served) -> None:
    raw = b'{"text": "bird", "top_k": 1' + b"0" * 5000 + b"}"
    response = httpx.post(served.url("/search"), content=raw, headers={"content-type": "application/json"})
    assert response.status_code in (400, 422)
    refused(served, response, response.status_code)
    refused(served, httpx.post(served.url("/search"), data={"text": "bird", "top_k": "9" * 400}), 422)
    refused(served, httpx.post(served.url("/search"), data={"text": "bi\x00rd"}), 422)


def test_nul_bytes_and_garbage_in_the_body_are_400(served: Served) -> None:
    for raw in (b'{"text": "bi\x00rd"}', b"\x00\x00\x00\x00", b"\xff\xfe{", b'{"text": "bird"'):
        response = httpx.post(
            served.url("/search"), content=raw, headers={"content-type": "application/json"}
        )
        refused(served, response, 400, "malformed_json")


@pytest.mark.parametrize(
    "ctype",
    ["text/plain", "application/xml", "image/png", "multipart/form-data", "multipart/form-data; boundary="],
)
def test_wrong_content_types_are_refused(served: Served, ctype: str) -> None:
    response = httpx.post(served.url("/search"), content=b'{"text": "bird"}', headers={"content-type": ctype})
    assert response.status_code in (400, 415, 422), (ctype, response.status_code, response.text)
    refused(served, response, response.status_code)
    upload = httpx.post(
        served.url("/ingest/upload"), content=b"x" * 100, headers={"content-type": ctype, **served.auth}
    )
    assert upload.status_code in (400, 415, 422), (ctype, upload.status_code, upload.text)
    refused(served, upload, upload.status_code)


def test_bodies_over_the_limit_are_413(served: Served) -> None:
    big = b"0" * (MAX_UPLOAD_MB * 1024 * 1024 + 10)
    refused(served, with_image(served, "/search", big), 413, "too_large")
    refused(
        served,
        httpx.post(
            served.url("/ingest/upload"),
            files={"file": ("a.mp4", big, "video/mp4")},
            headers=served.auth,
            timeout=60,
        ),
        413,
        "too_large",
    )

    def chunks() -> Iterator[bytes]:
        for _ in range(MAX_UPLOAD_MB * 4 + 1):
            yield b"{" * (256 * 1024)

    response = httpx.post(
        served.url("/search"), content=chunks(), headers={"content-type": "application/json"}, timeout=60
    )
    refused(served, response, 413, "too_large")


def test_range_headers_that_cannot_be_served(served: Served) -> None:
    video = served.videos["realshort.mp4"]
    response = httpx.get(served.url(f"/videos/{video}/media"), headers={"Range": f"bytes={10**30}-"})
    refused(served, response, 416, "range_not_satisfiable")
    for junk in ("bytes=abc", "bytes=0-1,5-9", "items=0-5", "bytes=\x01"):
        response = httpx.get(served.url(f"/videos/{video}/media"), headers={"Range": junk})
        clean(served, response)
        assert response.status_code == 200


def test_text_notes_carry_no_server_paths(served: Served) -> None:
    response = httpx.post(served.url("/search"), json={"text": "a bird on a branch"}, timeout=60)
    text = clean(served, response)
    assert response.status_code == 200, text
    assert all(not note.count("/home/") and not note.count("/root/") for note in response.json()["notes"])


# ------------------------------------------------------------------- serve-time file checks


def _ok_media(served: Served, video: int, expected: bytes) -> None:
    response = httpx.get(served.url(f"/videos/{video}/media"), timeout=30)
    assert response.status_code == 200, response.text[:300]
    assert response.content == expected


def test_media_route_refuses_an_ingested_file_swapped_for_a_symlink_out_of_the_root(served: Served) -> None:
    name = "sintel_snow.mp4"
    video, path = served.videos[name], served.root / name
    original = path.read_bytes()
    _ok_media(served, video, original)
    kept = served.root.parent / "kept.mp4"
    os.replace(path, kept)
    try:
        path.symlink_to(served.outside / "secret.mp4")
        for headers in ({}, {"Range": "bytes=0-99"}):
            message = refused(
                served,
                httpx.get(served.url(f"/videos/{video}/media"), headers=headers, timeout=30),
                403,
                "outside_media_roots",
            )
            assert f"video {video}" in message and "not served" in message
        path.unlink()
        path.symlink_to("/etc/passwd")
        refused(served, httpx.get(served.url(f"/videos/{video}/media"), timeout=30), 403)
        path.unlink()
        path.symlink_to(served.root / "realshort.mp4")  # inside the root, but other content
        assert "changed" in refused(
            served, httpx.get(served.url(f"/videos/{video}/media")), 409, "file_changed"
        )
        path.unlink()
        path.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))  # same size, one bit differs
        assert "hash" in refused(served, httpx.get(served.url(f"/videos/{video}/media")), 409, "file_changed")
        path.write_bytes(original + b"\0")
        assert "bytes" in refused(
            served, httpx.get(served.url(f"/videos/{video}/media")), 409, "file_changed"
        )
        path.unlink()
        refused(served, httpx.get(served.url(f"/videos/{video}/media")), 404, "missing_file")
    finally:
        path.unlink(missing_ok=True)
        os.replace(kept, path)
    _ok_media(served, video, original)  # the ingested file is back: served again


def _keyframes(served: Served, video: int) -> list[dict[str, Any]]:
    shots = httpx.get(served.url(f"/videos/{video}/shots"), timeout=30).json()
    return [kf for shot in shots for kf in shot["keyframes"]]


def _thumbnail_file(served: Served, url: str) -> Path:
    from sqlalchemy import select

    from video_inst.catalog.db import get_catalog
    from video_inst.catalog.models import Keyframe
    from video_inst.config import Settings

    settings = Settings(home=served.home, database_url=None)
    keyframe_id = int(url.rsplit("/", 1)[1].split(".")[0])
    with get_catalog(settings).session() as s:
        relative = s.scalar(select(Keyframe.thumbnail).where(Keyframe.id == keyframe_id))
    return settings.thumbnail_dir / str(relative)


def test_a_deleted_thumbnail_is_decoded_again_on_request(served: Served) -> None:
    video = served.videos["realshort.mp4"]
    keyframe = _keyframes(served, video)[0]
    url = keyframe["thumbnail_url"]
    first = httpx.get(served.url(url), timeout=30)
    assert first.status_code == 200 and first.headers["content-type"] == "image/jpeg"
    file = _thumbnail_file(served, url)
    assert file.is_file()
    file.unlink()
    again = httpx.get(served.url(url), timeout=60)
    clean(served, again)
    assert again.status_code == 200 and again.headers["content-type"] == "image/jpeg", again.text[:300]
    assert file.is_file()
    before = np.asarray(Image.open(io.BytesIO(first.content)), dtype=np.float64)
    after = np.asarray(Image.open(io.BytesIO(again.content)), dtype=np.float64)
    assert before.shape == after.shape and np.abs(before - after).mean() < 2.0  # the same frame


def test_a_deleted_thumbnail_of_a_changed_or_gone_video_is_a_named_error(served: Served) -> None:
    name = "realshort.mp4"
    video, path = served.videos[name], served.root / name
    keyframes = _keyframes(served, video)
    url = keyframes[-1]["thumbnail_url"]
    file = _thumbnail_file(served, url)
    kept = served.root.parent / "kept_realshort.mp4"
    os.replace(path, kept)
    try:
        file.unlink(missing_ok=True)
        message = refused(served, httpx.get(served.url(url), timeout=30), 404, "missing_file")
        assert "thumbnail" in message and "gone" in message
        path.symlink_to(served.outside / "secret.mp4")
        refused(served, httpx.get(served.url(url), timeout=30), 403, "outside_media_roots")
        assert not file.exists()
    finally:
        path.unlink(missing_ok=True)
        os.replace(kept, path)
    assert httpx.get(served.url(url), timeout=60).status_code == 200
    assert file.is_file()


def test_redact_replaces_whole_server_path_prefixes_only(tmp_path: Path) -> None:
    from video_inst.api.redact import WEIGHTS_ERROR, WEIGHTS_NOTE, public_message, public_note, redact
    from video_inst.config import Settings

    home, root = tmp_path / "data", tmp_path / "media" / "root"
    settings = Settings(home=home, media_roots=[root], database_url=None)
    assert redact(f"index file {home}/index/1-region.faiss is missing", settings) == (
        "index file $VIDEO_INST_HOME/index/1-region.faiss is missing"
    )
    assert redact(f"{root}/a.mp4: outside the configured media roots ({root})", settings) == (
        "<media root>/a.mp4: outside the configured media roots (<media root>)"
    )
    assert redact(f"{tmp_path}/media/rooted/a.mp4", settings) == f"{tmp_path}/media/rooted/a.mp4"
    cache = Path.home() / ".cache" / "open_clip"
    assert public_note(f"no CLIP weights, answered from labels: put it in {cache}", settings) == WEIGHTS_NOTE
    assert public_message("weights_missing", f"no weights in {cache}", settings) == WEIGHTS_ERROR
    assert str(Path.home()) not in redact(f"see {cache}/x.bin", settings)


def test_thumbnails_are_served_only_from_inside_the_data_directory(served: Served) -> None:
    from sqlalchemy import update

    from video_inst.catalog.db import get_catalog
    from video_inst.catalog.models import Keyframe
    from video_inst.config import Settings

    video = served.videos["sintel_snow.mp4"]
    url = _keyframes(served, video)[0]["thumbnail_url"]
    keyframe_id = int(url.rsplit("/", 1)[1].split(".")[0])
    file = _thumbnail_file(served, url)
    assert httpx.get(served.url(url), timeout=30).status_code == 200
    original = file.read_bytes()
    file.unlink()
    file.symlink_to(served.outside / "secret.mp4")  # the JPEG swapped for a symlink out
    try:
        refused(served, httpx.get(served.url(url), timeout=30), 403, "outside_data_dir")
    finally:
        file.unlink()
        file.write_bytes(original)
    catalog = get_catalog(Settings(home=served.home, database_url=None))
    with catalog.session() as s:
        stored = s.get(Keyframe, keyframe_id).thumbnail
        s.execute(
            update(Keyframe).where(Keyframe.id == keyframe_id).values(thumbnail="../../outside/secret.mp4")
        )
        s.commit()
    try:
        refused(served, httpx.get(served.url(url), timeout=30), 403, "outside_data_dir")
    finally:
        with catalog.session() as s:
            s.execute(update(Keyframe).where(Keyframe.id == keyframe_id).values(thumbnail=stored))
            s.commit()
    assert httpx.get(served.url(url), timeout=30).content == original


def test_oversized_forms_are_refused(served: Served) -> None:
    too_many = {f"f{i}": "x" for i in range(MAX_FORM_FIELDS + 1)}
    message = refused(served, httpx.post(served.url("/search"), data=too_many), 400)
    assert "fields" in message
    too_many_images = [("image", (f"{i}.png", b"x", "image/png")) for i in range(MAX_EXEMPLARS + 1)]
    assert "files" in refused(served, httpx.post(served.url("/search"), files=too_many_images), 400)
    two_uploads = [("file", ("a.mp4", b"x", "video/mp4")), ("file", ("b.mp4", b"y", "video/mp4"))]
    response = httpx.post(served.url("/ingest/upload"), files=two_uploads, headers=served.auth)
    assert "files" in refused(served, response, 400)
    refused(
        served, httpx.post(served.url("/search"), data={"image": "not a file part"}), 422, "invalid_request"
    )
