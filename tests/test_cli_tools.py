"""The CLI as a tool other programs drive (issue 16 item 8): a real process against a real server.

``search --server`` answers from a running ``video-inst serve`` (the live test API) without
touching a local catalog; ``--json`` errors are JSON on stdout; warnings are one line through
logging; help shows defaults; the one ingest progress bar never runs backwards.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from api_live import LiveApi, frame_png, shared_live_api


@pytest.fixture(scope="module")
def live_api(shared_media: Path, tmp_path_factory: pytest.TempPathFactory) -> LiveApi:
    return shared_live_api(shared_media, tmp_path_factory)


def run_cli(home: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("VIDEO_INST_")}
    base["VIDEO_INST_HOME"] = str(home)
    base.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "video_inst.cli", *args], env=base, capture_output=True, text=True, timeout=300
    )


def test_search_server_answers_like_the_api_without_a_local_catalog(
    live_api: LiveApi, tmp_path: Path
) -> None:
    image, w, h = frame_png(live_api.media / "clips" / "sintel_snow.mp4", 1.0)
    query = tmp_path / "frame.png"
    query.write_bytes(image)
    box = f"{w // 4},{h // 5},{3 * w // 4},{4 * h // 5}"
    home = tmp_path / "empty_home"
    proc = run_cli(
        home, "search", "--server", live_api.url(""), "--image", str(query), "--box", box, "--json"
    )
    assert proc.returncode == 0, proc.stderr
    hits = json.loads(proc.stdout)
    api = httpx.post(
        live_api.url("/search"), data={"box": box}, files={"image": ("frame.png", image)}, timeout=120
    ).json()
    assert hits and [hit["track_id"] for hit in hits] == [hit["track_id"] for hit in api["hits"]]
    assert hits[0]["video_id"] == live_api.videos["sintel_snow.mp4"] and hits[0]["mode"] == "image"
    assert not (home / "catalog.sqlite3").exists()  # nothing was searched here

    # the configured server (VIDEO_INST_SERVER_URL) does the same; the text view prints the hits
    proc = run_cli(
        home, "search", "--text", "snow", "--top-k", "3", env={"VIDEO_INST_SERVER_URL": live_api.url("")}
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("mode: ") and "  1. score " in proc.stdout


def test_json_errors_are_json_on_stdout(live_api: LiveApi, tmp_path: Path) -> None:
    home = tmp_path / "home"
    proc = run_cli(home, "search", "--json")
    assert proc.returncode == 1
    assert json.loads(proc.stdout)["error"]["code"] == "invalid_query"
    proc = run_cli(home, "search", "--server", live_api.url(""), "--track", "999999999", "--json")
    assert proc.returncode == 1
    error = json.loads(proc.stdout)["error"]
    assert error["code"] == "not_found" and "999999999" in error["message"]
    proc = run_cli(home, "search", "--server", "http://127.0.0.1:9", "--text", "bird", "--json")
    assert proc.returncode == 1 and json.loads(proc.stdout)["error"]["code"] == "server_unreachable"
    proc = run_cli(
        home, "search", "--server", live_api.url(""), "--text", "bird", "--video", "a.mp4", "--json"
    )
    assert proc.returncode == 1 and json.loads(proc.stdout)["error"]["code"] == "invalid_query"
    proc = run_cli(home, "shots", "no-such-video", "--json")  # a local command too
    assert proc.returncode == 1 and set(json.loads(proc.stdout)["error"]) == {"code", "message"}
    # without --json: one line on stderr, nothing on stdout
    proc = run_cli(home, "search")
    assert proc.returncode == 1 and proc.stdout == "" and proc.stderr.startswith("error: ")


def test_help_shows_defaults(tmp_path: Path) -> None:
    text = " ".join(run_cli(tmp_path, "search", "--help").stdout.split())
    assert "[default: (VIDEO_INST_DEFAULT_TOP_K, 20); x>=1]" in text
    assert "[default: 127.0.0.1]" in run_cli(tmp_path, "serve", "--help").stdout
    assert "[default: 50]" in run_cli(tmp_path, "jobs", "--help").stdout


def test_warnings_are_one_logged_line_each() -> None:
    code = (
        "import warnings\n"
        "from video_inst.cli.output import route_warnings\n"
        "route_warnings()\n"
        "for _ in range(3):\n"
        "    warnings.warn('CLIP vectors will be missing', UserWarning)\n"
        "import logging\n"
        "logging.getLogger('video_inst.analysis.analyser').warning('%s', 'CLIP vectors will be missing')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.stderr == "WARNING: CLIP vectors will be missing\n"


def test_the_progress_bar_never_runs_backwards() -> None:
    from video_inst.cli.output import StageBar

    bar = StageBar(2, enabled=False)
    seen = []
    for n in range(2):
        bar.start(n, f"clip{n}.mp4")
        for stage, steps in (("hash", 1), ("probe", 1), ("shots", 4), ("keyframes", 5), ("commit", 1)):
            for i in range(steps + 1):
                bar(stage, i / steps)
                seen.append(bar.position)
    assert seen == sorted(seen) and seen[-1] == pytest.approx(200)
    assert 95 <= max(p for p in seen if p < 100.5) <= 100  # the first file ends near the middle


def test_openapi_docs_work_offline(live_api: LiveApi) -> None:
    schema = httpx.get(live_api.url("/openapi.json"), timeout=10).json()
    ops = {(m, p): o for p, methods in schema["paths"].items() for m, o in methods.items()}
    assert ops[("post", "/search")]["operationId"] == "search"
    assert ops[("get", "/videos")]["operationId"] == "list_videos"
    assert all(not o["operationId"].endswith(("_post", "_get", "_delete")) for o in ops.values())
    assert schema["components"]["securitySchemes"]["HTTPBearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "VIDEO_INST_API_TOKEN, when the server has one",
    }
    assert ops[("post", "/ingest")]["security"] == [{"HTTPBearer": []}]
    assert "security" not in ops[("post", "/search")]
    for page in ("/docs", "/redoc"):
        html = httpx.get(live_api.url(page), timeout=10).text
        assets = [part.split('"')[1] for part in html.split("src=")[1:]] + [
            part.split('"')[1] for part in html.split("href=")[1:]
        ]
        assert assets and all(a.startswith("/static-offline-docs/") for a in assets), assets
        for asset in assets:
            assert httpx.get(live_api.url(asset), timeout=10).status_code == 200
