"""The appearance report (issue 16 item 3): the library's arithmetic, the acceptance figure on the
19-shot edit, ``video-inst report`` through its real entry point, ``POST /report`` over real HTTP
and the report's strips on the page in Chromium.

One catalog for the module: the edit ingested with the real offline backbone (~30 s). The
query is the cockatoo cropped from the middle frame of shot 0, the box of
``test_search_retrieval.QUERIES``; the ground truth (``instance_test_edit.shots.json``) puts the
cockatoo in shots 0, 6 and 15: 3 x 62 frames at 25 fps = 7.44 s.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import httpx
import pytest
from api_live import Server, start_server
from test_page import ARTIFACTS, browser  # noqa: F401 - the page test's Chromium fixture

from video_inst.config import Settings
from video_inst.errors import InvalidQueryError
from video_inst.search.report import build_report, merge_spans, report_threshold
from video_inst.search.searcher import Query, ScoredTracks, TrackScore

REPO = Path(__file__).resolve().parents[1]
BOX = (200, 0, 500, 360)
COCKATOO = "cockatoo#1"


# --- arithmetic (no catalog) ---------------------------------------------------------------


def test_merge_spans_is_a_union_not_a_sum() -> None:
    spans = [(0.0, 2.0, 0.5), (1.0, 3.0, 0.9), (3.0, 4.0, 0.4), (6.0, 7.0, 0.6)]
    assert merge_spans(spans) == [(0.0, 4.0, 0.9), (6.0, 7.0, 0.6)]  # touching spans join
    assert merge_spans([]) == []


def _scored(tracks: list[TrackScore], weak_below: float | None = 0.5) -> ScoredTracks:
    return ScoredTracks(tracks=tracks, mode="image", weak_below=weak_below, lowest_fetched=0.1, fetch=100)


def test_build_report_per_video_and_overall() -> None:
    tracks = [
        TrackScore(1, video_id=7, shot_id=70, start_s=0.0, end_s=2.0, score=0.9),
        TrackScore(2, video_id=7, shot_id=70, start_s=1.0, end_s=2.5, score=0.6),  # overlaps track 1
        TrackScore(3, video_id=7, shot_id=72, start_s=10.0, end_s=11.0, score=0.7),
        TrackScore(4, video_id=7, shot_id=71, start_s=5.0, end_s=6.0, score=0.2),  # under the threshold
        TrackScore(5, video_id=8, shot_id=80, start_s=3.0, end_s=4.5, score=0.5),  # at it: counted
    ]
    report = build_report(
        _scored(tracks),
        0.5,
        shot_index={70: 0, 71: 1, 72: 4, 80: 2},
        videos={7: ("/m/a.mp4", 20.0), 8: ("/m/b.mp4", 9.0)},
    )
    a, b = report.videos
    assert (a.video_id, a.shots, a.screen_time_s, a.first_s, a.last_s) == (7, [0, 4], 3.5, 0.0, 11.0)
    assert [(s.shot, s.start_s, s.end_s, s.score) for s in a.spans] == [
        (0, 0.0, 2.5, 0.9),
        (4, 10.0, 11.0, 0.7),
    ]
    assert (b.video_id, b.shots, b.screen_time_s, b.first_s, b.last_s) == (8, [2], 1.5, 3.0, 4.5)
    assert report.screen_time_s == 5.0 and report.threshold == 0.5
    assert report.notes == []
    data = report.to_json()
    assert set(data) >= {"videos", "screen_time_s"}
    assert set(data["videos"][0]) >= {"video_id", "path", "shots", "screen_time_s", "first_s", "last_s"}
    rows = list(csv.DictReader(io.StringIO(report.to_csv())))
    assert [r["video_id"] for r in rows] == ["7", "8", "all"]
    assert rows[0]["shots"] == "0 4" and float(rows[0]["screen_time_s"]) == 3.5
    assert float(rows[-1]["screen_time_s"]) == 5.0 and rows[-1]["shots"] == "3"


def test_a_report_says_when_the_index_may_have_cut_it_short() -> None:
    scored = ScoredTracks(tracks=[], mode="image", weak_below=0.3, lowest_fetched=0.4, fetch=100)
    report = build_report(scored, 0.3, {}, {})
    assert report.videos == [] and report.screen_time_s == 0
    assert any("may miss tracks" in n for n in report.notes)


def test_the_threshold_is_min_score_else_the_measured_one() -> None:
    assert report_threshold(Query(text="x", min_score=0.7), _scored([])) == 0.7
    assert report_threshold(Query(text="x"), _scored([], weak_below=0.375)) == 0.375
    with pytest.raises(InvalidQueryError, match="min_score"):
        report_threshold(Query(text="x"), ScoredTracks(tracks=[], mode="text"))


# --- the shared edit ---------------------------------------------------------------------------


def _frame(path: Path, index: int) -> Any:
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i == index:
                return frame
    raise AssertionError(f"frame {index} not found")


@pytest.fixture(scope="module")
def edit_home(edit_clip: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The edit ingested once; its ground truth and the cockatoo query (array and PNG)."""
    from video_inst.catalog.db import get_catalog
    from video_inst.ingest.pipeline import ingest_path

    home = tmp_path_factory.mktemp("report_home")
    settings = Settings(home=home, database_url=None)
    result = ingest_path(edit_clip, settings=settings, catalog=get_catalog(settings))
    assert result.status == "done", result.error
    gt = json.loads(edit_clip.with_suffix(".shots.json").read_text())
    shot = gt["shots"][0]
    frame = _frame(edit_clip, (shot["start_frame"] + shot["end_frame"]) // 2)
    png = home / "cockatoo.png"
    frame.to_image().save(png)
    yield {
        "home": home,
        "settings": settings,
        "video_id": result.video_id,
        "gt": gt,
        "image": frame.to_ndarray(format="rgb24"),
        "png": png,
    }


def _truth(gt: dict[str, Any]) -> tuple[list[int], float]:
    shots = [s for s in gt["shots"] if COCKATOO in s["instances"]]
    seconds = sum((s["end_frame"] - s["start_frame"] + 1) / gt["fps"] for s in shots)
    return [s["shot"] for s in shots], seconds


@pytest.fixture(scope="module")
def library_report(edit_home: dict[str, Any]) -> Any:
    from video_inst.search.report import appearance_report
    from video_inst.search.searcher import Searcher

    searcher = Searcher(edit_home["settings"])
    return appearance_report(Query(image=edit_home["image"], box=BOX), searcher=searcher)


@pytest.mark.slow
def test_the_report_counts_the_cockatoo_shots_at_the_measured_threshold(
    edit_home: dict[str, Any], library_report: Any
) -> None:
    """What holds at the weak-score rule of item 4: every cockatoo shot is reported, and the
    screen time inside them is the ground truth's within one keyframe interval."""
    settings, report = edit_home["settings"], library_report
    shots, seconds = _truth(edit_home["gt"])
    assert shots == [0, 6, 15] and seconds == pytest.approx(7.44)
    rule = report.weak_rule  # the search's rule: max(floor, relative x the query's best match)
    assert rule is not None and rule.floor == settings.weak_score_dasr and report.mode == "image"
    assert report.threshold == rule.threshold == max(rule.floor, round(rule.relative * rule.best, 6))
    assert rule.threshold > rule.floor  # this large crop matches itself at ~0.92: the relative part holds
    (video,) = report.videos
    assert video.video_id == edit_home["video_id"]
    assert set(shots) <= set(video.shots)
    inside = sum(s.end_s - s.start_s for s in video.spans if s.shot in shots)
    assert abs(inside - seconds) <= settings.keyframe_interval_s, inside
    assert video.first_s == 0.0  # the edit opens on the cockatoo
    assert video.screen_time_s == pytest.approx(sum(s.end_s - s.start_s for s in video.spans), abs=1e-3)
    assert report.screen_time_s == video.screen_time_s


@pytest.mark.slow
@pytest.mark.xfail(
    strict=True,
    reason="measured 2026-12-04: at the rule chosen on the hard protocol's TUNING split, "
    "max(0.45, 0.525 x best 0.916) = 0.481, the report holds 4 shots [0, 6, 14, 15], 8.14 s (ground "
    "truth 0, 6, 15: 7.44 s): shot 14 (fruit counter) scores 0.531; no TUNING-chosen rule tried puts "
    "the threshold in (0.531, 0.633] (scripts/eval_trust.py, docs/DASR.md)",
)
def test_acceptance_the_cockatoo_report_on_the_shared_edit(
    edit_home: dict[str, Any], library_report: Any
) -> None:
    """Issue 16 acceptance: shots 0, 6, 15 with screen time within one keyframe interval of 7.5 s."""
    shots, seconds = _truth(edit_home["gt"])
    (video,) = library_report.videos
    assert video.shots == shots
    assert abs(video.screen_time_s - seconds) <= edit_home["settings"].keyframe_interval_s


# --- the CLI through its real entry point -------------------------------------------------------


def _cli(home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIDEO_INST_")}
    env["VIDEO_INST_HOME"] = str(home)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    script = Path(sys.executable).with_name("video-inst")
    assert script.exists(), f"{script} is missing: install the package (pip install -e .)"
    return subprocess.run([str(script), *args], env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_cli_report_json_and_csv(edit_home: dict[str, Any], library_report: Any) -> None:
    box = ",".join(map(str, BOX))
    proc = _cli(edit_home["home"], "report", "--image", str(edit_home["png"]), "--box", box, "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert set(data) >= {"videos", "screen_time_s"}
    (video,) = data["videos"]
    assert set(video) >= {"video_id", "path", "shots", "screen_time_s", "first_s", "last_s"}
    (expected,) = library_report.videos
    assert video["shots"] == expected.shots and video["video_id"] == expected.video_id
    assert video["screen_time_s"] == pytest.approx(expected.screen_time_s, abs=0.01)
    assert data["threshold"] == library_report.threshold
    assert data["weak_rule"]["threshold"] == data["threshold"] and data["weak_rule"]["why"]

    proc = _cli(
        edit_home["home"],
        "report",
        "--image",
        str(edit_home["png"]),
        "--box",
        box,
        "--min-score",
        "0.6",
        "--csv",
    )
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader(io.StringIO(proc.stdout)))
    assert [r["video_id"] for r in rows] == [str(expected.video_id), "all"]
    # At 0.6 only the cockatoo shots remain (a stricter min_score, not the default: see the xfail)
    assert rows[0]["shots"] == "0 6 15" and float(rows[0]["screen_time_s"]) == pytest.approx(7.44, abs=0.01)


@pytest.mark.slow
def test_cli_report_errors_are_json_under_json(edit_home: dict[str, Any]) -> None:
    proc = _cli(edit_home["home"], "report", "--text", "bird", "--box", "1,2,3,4", "--json")
    assert proc.returncode == 1
    error = json.loads(proc.stdout)["error"]
    assert error["code"] and "box needs an image" in error["message"]


# --- the API over real HTTP ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def report_api(edit_home: dict[str, Any]) -> Iterator[Server]:
    from video_inst.api.app import create_app

    server = start_server(create_app(edit_home["settings"], ingest_mode="thread"))
    yield server
    server.stop()


def _post_image(server: Server, png: Path, path: str = "/report", **fields: str) -> httpx.Response:
    files = [("image", ("cockatoo.png", png.read_bytes(), "image/png"))]
    return httpx.post(server.url(path), data=fields, files=files, timeout=120)


@pytest.mark.slow
def test_api_report_json_csv_and_openapi(
    report_api: Server, edit_home: dict[str, Any], library_report: Any
) -> None:
    box = ",".join(map(str, BOX))
    response = _post_image(report_api, edit_home["png"], box=box)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    data = response.json()
    (video,) = data["videos"]
    (expected,) = library_report.videos
    assert video["shots"] == expected.shots
    assert video["screen_time_s"] == pytest.approx(expected.screen_time_s, abs=0.01)
    assert data["screen_time_s"] == pytest.approx(library_report.screen_time_s, abs=0.01)
    assert data["weak_rule"] == library_report.weak_rule.to_json()  # why this threshold
    assert video["media_url"] == f"/videos/{video['video_id']}/media"
    starts = [s["start_s"] for s in video["spans"]]
    assert starts == sorted(starts) and len(starts) == len(expected.spans)

    response = _post_image(report_api, edit_home["png"], path="/report?format=csv", box=box, min_score="0.6")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert rows[0]["shots"] == "0 6 15" and rows[-1]["video_id"] == "all"

    # A JSON body and content negotiation: the same body as /search
    response = httpx.post(
        report_api.url("/report"), json={"text": "bird"}, headers={"Accept": "text/csv"}, timeout=120
    )
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    response = httpx.post(report_api.url("/report"), json={"text": "bird"}, timeout=120)
    assert response.status_code == 200 and response.json()["mode"] == "labels"
    assert response.json()["threshold"] == edit_home["settings"].weak_score_labels

    bad = httpx.post(report_api.url("/report"), json={"text": "bird", "colour": "red"}, timeout=30)
    assert bad.status_code == 422 and set(bad.json()) == {"error"}

    spec = httpx.get(report_api.url("/openapi.json"), timeout=30).json()
    op = spec["paths"]["/report"]["post"]
    assert op["operationId"] == "report"
    assert set(op["responses"]["200"]["content"]) == {"application/json", "text/csv"}
    assert "multipart/form-data" in op["requestBody"]["content"]


# --- the page in Chromium ------------------------------------------------------------------------


@pytest.mark.slow
def test_page_draws_a_strip_per_video(browser, report_api: Server, edit_home: dict[str, Any]) -> None:  # noqa: ANN001, F811
    ARTIFACTS.mkdir(exist_ok=True)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(report_api.url("/"))
    page.wait_for_function(
        "() => /videos in the catalog/.test(document.getElementById('catalog').textContent)"
    )
    page.set_input_files(
        "#file",
        files=[{"name": "cockatoo.png", "mimeType": "image/png", "buffer": edit_home["png"].read_bytes()}],
    )
    canvas = page.locator("#crop")
    canvas.wait_for(state="visible")
    area = canvas.bounding_box()
    x0, y0, x1, y1 = BOX
    page.mouse.move(area["x"] + area["width"] * x0 / 640, area["y"] + area["height"] * y0 / 360 + 1)
    page.mouse.down()
    page.mouse.move(area["x"] + area["width"] * x1 / 640, area["y"] + area["height"] * y1 / 360 - 1, steps=8)
    page.mouse.up()
    with page.expect_response(lambda r: r.url.endswith("/report")) as answered:
        page.click("#report")
    report = answered.value.json()
    page.wait_for_selector("#report-panel .report-video .strip .appear")
    (video,) = report["videos"]
    assert set(video["shots"]) >= {0, 6, 15}
    row = page.locator(f".report-video[data-video-id='{video['video_id']}']")
    assert row.count() == 1
    segments = row.locator(".strip .appear")
    assert segments.count() == len(video["spans"])
    strip = row.locator(".strip").bounding_box()
    for span, segment in zip(video["spans"], segments.all()):
        box = segment.bounding_box()
        assert segment.get_attribute("data-shot") == str(span["shot"])
        assert abs(box["x"] - strip["x"] - strip["width"] * span["start_s"] / video["duration_s"]) <= 3
        assert (
            abs(box["width"] - strip["width"] * (span["end_s"] - span["start_s"]) / video["duration_s"]) <= 3
        )
    text = row.text_content()
    assert f"{video['screen_time_s']:.2f} s in {len(video['shots'])} shots" in text
    assert "(" + ", ".join(map(str, video["shots"])) + ")" in text
    panel = page.text_content("#report-panel")
    assert f"tracks scoring ≥ {report['threshold']} counted" in panel
    rule = report["weak_rule"]
    assert f"{rule['relative']} × this query's best match {rule['best']}" in panel  # why the threshold
    page.screenshot(path=str(ARTIFACTS / "page-report.png"), full_page=True)
    # The same query's hits: those under the same threshold are greyed and say why
    with page.expect_response(lambda r: r.url.endswith("/search")) as searched:
        page.click("#search")
    result = searched.value.json()
    page.wait_for_selector("#results .hit")
    weak = [h for h in result["hits"] if h["weak"]]
    assert result["weak_below"] == report["threshold"] and weak
    assert page.locator("#results .hit.weak").count() == len(weak)
    assert page.locator("#results .hit:not(.weak) .weak-why").count() == 0
    why = page.locator("#results .hit.weak .weak-why").first.text_content()
    assert why == f"weak: {result['weak_rule']['why']}"
    assert errors == []
    page.close()
