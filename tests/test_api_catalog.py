"""Catalog endpoints over HTTP: videos, shots, tracks, media with range requests, thumbnails, health,
OpenAPI, CORS and the page's static files."""

from __future__ import annotations

import io
from pathlib import Path

import av
import httpx
import pytest
from api_live import CORS_ORIGIN, LiveApi, error_of, shared_live_api, start_server
from PIL import Image


@pytest.fixture(scope="module")
def live_api(shared_media: Path, tmp_path_factory: pytest.TempPathFactory) -> LiveApi:
    return shared_live_api(shared_media, tmp_path_factory)


def get(live: LiveApi, path: str, **kw: object) -> httpx.Response:
    return httpx.get(live.url(path), timeout=30, **kw)


def test_videos_list_and_detail_match_the_source(live_api: LiveApi) -> None:
    videos = get(live_api, "/videos").json()
    by_path = {Path(v["path"]).name: v for v in videos}
    for name, video_id in live_api.videos.items():
        row = by_path[name]
        assert row["video_id"] == video_id and row["status"] == "done"
        with av.open(str(live_api.media / "clips" / name)) as container:
            stream = container.streams.video[0]
            assert (row["width"], row["height"]) == (stream.codec_context.width, stream.codec_context.height)
        detail = get(live_api, f"/videos/{video_id}").json()
        assert detail["counts"]["shots"] >= 1 and detail["counts"]["tracks"] >= 1
        assert detail["media_url"] == f"/videos/{video_id}/media"
    assert [v["video_id"] for v in get(live_api, "/videos?limit=1").json()] == [videos[0]["video_id"]]
    assert get(live_api, "/videos?limit=0").status_code == 422


def test_cli_and_api_show_a_video_row_the_same_way(live_api: LiveApi) -> None:
    """One serialiser (catalog.rows.video_row): the API adds only its media URL (and counts)."""
    import json
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("VIDEO_INST_")}
    env["VIDEO_INST_HOME"] = str(live_api.settings.home)
    proc = subprocess.run(
        [sys.executable, "-m", "video_inst.cli", "videos", "--json"], env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    cli_rows = {row["video_id"]: row for row in json.loads(proc.stdout)}
    api_rows = {row["video_id"]: row for row in get(live_api, "/videos").json()}
    assert cli_rows.keys() == api_rows.keys() and cli_rows
    for video_id, api_row in api_rows.items():
        assert api_row.pop("media_url") == f"/videos/{video_id}/media"
        api_row.pop("counts")
        assert api_row == cli_rows[video_id]


def test_shots_cover_the_video_with_keyframe_thumbnails(live_api: LiveApi) -> None:
    video_id = live_api.videos["sintel_snow.mp4"]
    video = get(live_api, f"/videos/{video_id}").json()
    shots = get(live_api, f"/videos/{video_id}/shots").json()
    assert shots[0]["start_s"] == pytest.approx(0.0, abs=0.05)
    assert shots[-1]["end_s"] == pytest.approx(video["duration_s"], abs=0.1)
    for before, after in zip(shots, shots[1:]):
        assert before["end_s"] == pytest.approx(after["start_s"])
    keyframe = shots[0]["keyframes"][0]
    assert shots[0]["start_s"] <= keyframe["time_s"] < shots[0]["end_s"]
    thumb = get(live_api, keyframe["thumbnail_url"])
    assert thumb.status_code == 200 and Image.open(io.BytesIO(thumb.content)).format == "JPEG"


def test_track_detail_has_its_boxes_inside_the_frame(live_api: LiveApi) -> None:
    video_id = live_api.videos["realshort.mp4"]
    video = get(live_api, f"/videos/{video_id}").json()
    tracks = get(live_api, f"/videos/{video_id}/tracks").json()
    assert tracks and not any(t["is_frame"] for t in tracks)
    with_frames = get(live_api, f"/videos/{video_id}/tracks?frames=true").json()
    assert any(t["is_frame"] for t in with_frames) and len(with_frames) > len(tracks)
    track = get(live_api, f"/tracks/{tracks[0]['track_id']}").json()
    assert track == tracks[0]
    assert track["boxes"]
    for box in track["boxes"]:
        x0, y0, x1, y1 = box["box"]
        assert 0 <= x0 < x1 <= video["width"] and 0 <= y0 < y1 <= video["height"]
        assert track["start_s"] <= box["time_s"] <= track["end_s"]


@pytest.mark.parametrize(
    "path",
    [
        "/videos/987654",
        "/videos/987654/shots",
        "/videos/987654/tracks",
        "/videos/987654/media",
        "/tracks/987654",
        "/jobs/no-such-job",
        "/thumbnails/987654/1.jpg",
    ],
)
def test_unknown_ids_are_404(live_api: LiveApi, path: str) -> None:
    response = get(live_api, path)
    assert response.status_code == 404
    assert error_of(response)["code"] == "not_found"


def test_ids_that_are_not_numbers_are_422(live_api: LiveApi) -> None:
    for path in ("/videos/abc", "/tracks/-1", f"/videos/{2**70}"):
        response = get(live_api, path)
        assert response.status_code == 422, path
        assert error_of(response)["code"] == "invalid_request"


def test_thumbnail_of_another_video_is_404(live_api: LiveApi) -> None:
    sintel, realshort = live_api.videos["sintel_snow.mp4"], live_api.videos["realshort.mp4"]
    keyframe = get(live_api, f"/videos/{sintel}/shots").json()[0]["keyframes"][0]["keyframe_id"]
    assert get(live_api, f"/thumbnails/{sintel}/{keyframe}.jpg").status_code == 200
    assert get(live_api, f"/thumbnails/{realshort}/{keyframe}.jpg").status_code == 404


# ------------------------------------------------------------------------- media


def test_media_streams_the_whole_file_and_byte_ranges(live_api: LiveApi) -> None:
    video_id = live_api.videos["realshort.mp4"]
    source = (live_api.media / "clips" / "realshort.mp4").read_bytes()
    whole = get(live_api, f"/videos/{video_id}/media")
    assert whole.status_code == 200
    assert whole.content == source
    assert whole.headers["content-type"] == "video/mp4" and whole.headers["accept-ranges"] == "bytes"

    part = get(live_api, f"/videos/{video_id}/media", headers={"Range": "bytes=100-1099"})
    assert part.status_code == 206
    assert part.content == source[100:1100]
    assert part.headers["content-range"] == f"bytes 100-1099/{len(source)}"

    tail = get(live_api, f"/videos/{video_id}/media", headers={"Range": "bytes=-500"})
    assert tail.status_code == 206 and tail.content == source[-500:]
    open_end = get(live_api, f"/videos/{video_id}/media", headers={"Range": f"bytes={len(source) - 10}-"})
    assert open_end.status_code == 206 and open_end.content == source[-10:]
    past_end = get(live_api, f"/videos/{video_id}/media", headers={"Range": "bytes=0-99999999"})
    assert past_end.status_code == 206 and past_end.content == source

    ignored = get(live_api, f"/videos/{video_id}/media", headers={"Range": "bytes=0-1,5-9"})
    assert ignored.status_code == 200 and ignored.content == source


def test_range_beyond_the_end_is_416(live_api: LiveApi) -> None:
    video_id = live_api.videos["realshort.mp4"]
    size = (live_api.media / "clips" / "realshort.mp4").stat().st_size
    response = get(live_api, f"/videos/{video_id}/media", headers={"Range": f"bytes={size}-"})
    assert response.status_code == 416
    assert response.headers["content-range"] == f"bytes */{size}"
    assert error_of(response)["code"] == "range_not_satisfiable"


# -------------------------------------------------------------- service endpoints


def test_health_reports_catalog_and_indexes(live_api: LiveApi) -> None:
    response = get(live_api, "/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok" and body["videos"] >= len(live_api.videos)
    kinds = {i["kind"] for i in body["indexes"]}
    # DASR track vectors are SQL only (vectors.store.SQL_ONLY_KINDS); no CLIP weights here
    assert kinds == {"region"} and all(i["vectors"] > 0 for i in body["indexes"])


def test_health_reports_a_missing_index_file_while_it_is_rebuilt(tmp_path: Path) -> None:
    import numpy as np

    from video_inst.api.app import create_app
    from video_inst.catalog.db import get_catalog
    from video_inst.catalog.models import Video
    from video_inst.config import Settings
    from video_inst.vectors.store import get_index_store

    settings = Settings(home=tmp_path / "home", database_url=None)
    store = get_index_store(settings)
    with get_catalog(settings).session() as s:
        video = Video(path="/media/x.mp4")
        s.add(video)
        s.flush()
        space = store.ensure_space(s, "dasr:test", "dasr", 8, {})
        rng = np.random.default_rng(0)
        store.add_vectors(s, space, "region", list(range(10)), [video.id] * 10, rng.standard_normal((10, 8)))
    store.sync(space.id, "region")
    path = store.index_path(space.id, "region")
    path.unlink()
    # Another writer holds the index, so the repair the server starts must wait: "healing" is seen.
    with store._flock(store._lock_path(space.id, "region")):
        server = start_server(create_app(settings, ingest_mode="thread"))
        try:
            response = httpx.get(server.url("/health"), timeout=10)
        finally:
            server.stop()
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "degraded"
    (index,) = body["indexes"]
    assert (index["state"], index["vectors"]) == ("healing", 10)
    assert "missing" in index["problem"] and str(path.parent) not in index["problem"]
    assert store.wait_healed(timeout=60) and path.is_file()
    assert store.health(space.id, "region").state == "ok"


def test_openapi_and_docs_are_served(live_api: LiveApi) -> None:
    spec = get(live_api, "/openapi.json").json()
    assert spec["openapi"].startswith("3.")
    for path in ("/search", "/export", "/ingest", "/ingest/upload", "/videos/{video_id}/media", "/health"):
        assert path in spec["paths"], path
    body = spec["paths"]["/search"]["post"]["requestBody"]["content"]
    assert {"application/json", "multipart/form-data"} <= set(body)
    docs = get(live_api, "/docs")
    assert docs.status_code == 200 and "openapi.json" in docs.text


def test_unknown_endpoint_is_a_json_404(live_api: LiveApi) -> None:
    response = get(live_api, "/no/such/thing")
    assert response.status_code == 404 and error_of(response)["code"] == "not_found"
    wrong_method = httpx.put(live_api.url("/search"), json={}, timeout=10)
    assert wrong_method.status_code == 405 and error_of(wrong_method)["code"] == "method_not_allowed"


def test_cors_allows_the_configured_origin_only(live_api: LiveApi) -> None:
    preflight = httpx.options(
        live_api.url("/search"),
        headers={
            "Origin": CORS_ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,authorization",
        },
        timeout=10,
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == CORS_ORIGIN
    assert "POST" in preflight.headers["access-control-allow-methods"]
    simple = get(live_api, "/health", headers={"Origin": CORS_ORIGIN})
    assert simple.headers["access-control-allow-origin"] == CORS_ORIGIN
    other = get(live_api, "/health", headers={"Origin": "http://elsewhere.example"})
    assert "access-control-allow-origin" not in other.headers


def test_page_and_its_assets_are_served(live_api: LiveApi) -> None:
    page = get(live_api, "/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'src="static/app.js"' in page.text and 'id="crop"' in page.text
    for asset, kind in (("/static/app.js", "javascript"), ("/static/style.css", "text/css")):
        response = get(live_api, asset)
        assert response.status_code == 200 and kind in response.headers["content-type"], asset
