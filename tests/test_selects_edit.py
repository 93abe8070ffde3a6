"""Selects (issue 16 item 2) end to end on the shared 19-shot edit: ``POST /export`` over real HTTP,
``video-inst export`` through click, and the acceptance page test in Chromium.

One catalog for the module: ``instance_test_edit.mp4`` (25 fps, 1166 frames, no start timecode)
ingested with the real offline backbone, served by uvicorn. The query is the cockatoo cropped
from shot 0 (``test_report``'s box), which answers a hit in nearly every shot: enough to pick
from, with hits at the media's first frame (shot 0) and last frame (shot 18) to clamp handles
at both ends. Expected frames are worked out here from the hits' seconds and the ground
truth's frame count (nearest frame, end exclusive, -/+ handles clamped to [0, 1166]).
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import av
import httpx
import opentimelineio as otio
import pytest
from api_live import Server, error_of, start_server
from test_page import ARTIFACTS, browser  # noqa: F401 - the page test's Chromium fixture

from video_inst.config import Settings

pytestmark = pytest.mark.slow

BOX = (200, 0, 500, 360)
RATE = Fraction(25)
HANDLES = 12
ADAPTERS = {"otio": "otio_json", "edl": "cmx_3600", "fcpxml": "fcpx_xml", "fcp7": "fcp_xml"}


@dataclass
class Edit:
    settings: Settings
    server: Server
    video_id: int
    n_frames: int  # of the ground truth
    png: bytes
    hits: list[dict[str, Any]]  # the query's answer (top_k 20)


def frame(seconds: float) -> int:
    return math.floor(Fraction(seconds) * RATE + Fraction(1, 2))


def span(hit: dict[str, Any], handles: int, n_frames: int, mode: str = "detected") -> tuple[int, int]:
    """The expected [in, out) frames of a hit: its span (or shot) -/+ handles, clamped to the media."""
    start, end = (
        (hit["shot"]["start_s"], hit["shot"]["end_s"]) if mode == "shot" else (hit["start_s"], hit["end_s"])
    )
    first = frame(start)
    last = max(frame(end), first + 1)
    return max(0, first - handles), min(n_frames, last + handles)


@pytest.fixture(scope="module")
def edit(edit_clip: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Edit]:
    from video_inst.api.app import create_app
    from video_inst.catalog.db import get_catalog
    from video_inst.ingest.pipeline import ingest_path

    home = tmp_path_factory.mktemp("selects_home")
    settings = Settings(home=home, database_url=None)
    result = ingest_path(edit_clip, settings=settings, catalog=get_catalog(settings))
    assert result.status == "done", result.error
    gt = json.loads(edit_clip.with_suffix(".shots.json").read_text())
    shot = gt["shots"][0]
    with av.open(str(edit_clip)) as container:
        for i, decoded in enumerate(container.decode(video=0)):
            if i == (shot["start_frame"] + shot["end_frame"]) // 2:
                out = io.BytesIO()
                decoded.to_image().save(out, format="PNG")
                break
    server = start_server(create_app(settings, ingest_mode="thread"))
    png = out.getvalue()
    answer = post(server, "/search", png, top_k="20").json()
    yield Edit(settings, server, int(result.video_id), gt["n_frames"], png, answer["hits"])
    server.stop()


def post(server: Server, path: str, png: bytes, **fields: Any) -> httpx.Response:
    """A multipart query (the cockatoo crop) with form fields; list values repeat the field."""
    data = {
        "box": ",".join(map(str, BOX)),
        **{k: str(v) for k, v in fields.items() if not isinstance(v, list)},
    }
    files: list[Any] = [("image", ("cockatoo.png", png, "image/png"))]
    files += [(k, (None, str(x))) for k, v in fields.items() if isinstance(v, list) for x in v]
    return httpx.post(server.url(path), data=data, files=files, timeout=180)


def ends(edit: Edit) -> tuple[dict, dict, dict]:
    """(a hit at the media's first frames, one ending at its last frame, one in between)."""
    first = next(h for h in edit.hits if frame(h["start_s"]) < HANDLES)
    last = next(h for h in edit.hits if frame(h["end_s"]) > edit.n_frames - HANDLES)
    middle = next(h for h in edit.hits if h not in (first, last))
    return first, last, middle


def seconds(text: str | None) -> Fraction:
    return Fraction((text or "0s").rstrip("s") or "0")


def fcpxml_clips(data: bytes) -> list[tuple[int, int]]:
    """[in, out) source frames of each spine clip, from the file's exact rational seconds."""
    root = ElementTree.fromstring(data.decode("utf-8").split("<!DOCTYPE fcpxml>", 1)[1].strip())
    assets = {a.get("id"): seconds(a.get("start")) for a in root.iter("asset")}
    out = []
    for clip in root.find(".//spine"):
        origin = assets[clip.find("video").get("ref")]
        start = (seconds(clip.get("start")) - origin) * RATE
        duration = seconds(clip.get("duration")) * RATE
        assert start.denominator == 1 and duration.denominator == 1, "off the 25 fps frame grid"
        out.append((int(start), int(start + duration)))
    return out


def timeline_clips(fmt: str, data: bytes) -> list[tuple[int, int]]:
    if fmt == "fcpxml":
        timeline = otio.adapters.read_from_string(data.decode(), adapter_name="fcpx_xml")
        assert len(list(timeline.find_clips())) == len(fcpxml_clips(data))
        return fcpxml_clips(data)
    kw = {"rate": 25} if fmt == "edl" else {}
    timeline = otio.adapters.read_from_string(data.decode(), adapter_name=ADAPTERS[fmt], **kw)
    return [
        (int(c.source_range.start_time.value), int(c.source_range.end_time_exclusive().value))
        for c in timeline.find_clips()
    ]


# --- POST /export ------------------------------------------------------------------------------------


def test_the_search_has_enough_hits_to_pick_from(edit: Edit) -> None:
    assert len(edit.hits) >= 10
    assert all(h["track_id"] is not None for h in edit.hits)
    first, last, _ = ends(edit)
    assert frame(first["start_s"]) < HANDLES and frame(last["end_s"]) > edit.n_frames - HANDLES


@pytest.mark.parametrize("fmt", ["otio", "edl", "fcp7", "fcpxml", "csv"])
def test_picks_export_only_those_in_pick_order_with_clamped_handles(edit: Edit, fmt: str) -> None:
    first, last, middle = ends(edit)
    order = [middle, last, first]
    response = post(
        edit.server,
        f"/export?format={fmt}",
        edit.png,
        top_k="20",
        picks=",".join(str(h["track_id"]) for h in order),
        handles=str(HANDLES),
    )
    assert response.status_code == 200, response.text
    want = [span(h, HANDLES, edit.n_frames) for h in order]
    assert want[1][1] == edit.n_frames and want[2][0] == 0  # clamped at both media ends
    if fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(response.text)))
        assert [int(r["track_id"]) for r in rows] == [h["track_id"] for h in order]
        assert [r["rank"] for r in rows] == ["1", "2", "3"]
        got = [
            (
                otio.opentime.from_timecode(r["start_tc"], 25).value,
                otio.opentime.from_timecode(r["end_tc"], 25).value,
            )
            for r in rows
        ]
        assert got == want
        assert rows[1]["handle_out"] == str(edit.n_frames - frame(last["end_s"]))
        assert rows[2]["handle_in"] == str(frame(first["start_s"]))
        return
    assert response.headers["x-project-rate"] == "25"
    assert timeline_clips(fmt, response.content) == want


def test_rejects_drop_hits_and_time_order_sorts_the_rest(edit: Edit) -> None:
    rejected = [edit.hits[0]["track_id"], edit.hits[2]["track_id"]]
    response = post(edit.server, "/export?format=csv", edit.png, top_k="20", rejects=rejected, order="time")
    assert response.status_code == 200, response.text
    rows = list(csv.DictReader(io.StringIO(response.text)))
    kept = [h for h in edit.hits if h["track_id"] not in rejected]
    assert len(rows) == len(kept) == len(edit.hits) - 2
    by_time = sorted(kept, key=lambda h: frame(h["start_s"]))
    assert [int(r["track_id"]) for r in rows] == [h["track_id"] for h in by_time]
    # the rank is the place in the selection (search order less the rejected), not the row
    assert [int(r["rank"]) for r in rows] == [kept.index(h) + 1 for h in by_time]


def test_whole_shot_span_as_markers_on_the_source_clip(edit: Edit) -> None:
    first, last, middle = ends(edit)
    picks = [middle, first, last]
    response = post(
        edit.server,
        "/export?format=otio",
        edit.png,
        top_k="20",
        picks=[h["track_id"] for h in picks],
        handles=str(HANDLES),
        span="shot",
        **{"as": "markers"},
    )
    assert response.status_code == 200, response.text
    (clip,) = list(otio.adapters.read_from_string(response.text, adapter_name="otio_json").find_clips())
    assert (clip.source_range.start_time.value, clip.source_range.duration.value) == (0, edit.n_frames)
    by_rank = {int(m.name.split()[0][1:]): m for m in clip.markers}
    assert sorted(by_rank) == [1, 2, 3]
    for rank, hit in enumerate(picks, start=1):
        marked = by_rank[rank].marked_range
        got = (marked.start_time.value, marked.end_time_exclusive().value)
        assert got == span(hit, HANDLES, edit.n_frames, "shot"), rank
    starts = [m.marked_range.start_time.value for m in clip.markers]
    assert starts == sorted(starts)  # markers in source time
    assert starts[0] == 0 and by_rank[3].marked_range.end_time_exclusive().value == edit.n_frames


def test_picks_from_beyond_the_page_are_found(edit: Edit) -> None:
    """A pick is looked up among the query's first max_top_k hits: the page's top_k does not limit it."""
    far = edit.hits[-1]
    response = post(edit.server, "/export?format=csv", edit.png, top_k="3", picks=str(far["track_id"]))
    assert response.status_code == 200, response.text
    (row,) = list(csv.DictReader(io.StringIO(response.text)))
    assert int(row["track_id"]) == far["track_id"]


@pytest.mark.parametrize(
    ("fields", "code", "words"),
    [
        ({"picks": "987654321"}, "invalid_export", ["not a hit of this search", "987654321"]),
        ({"rejects": "987654321"}, "invalid_export", ["not a hit of this search", "987654321"]),
        ({"handles": "-1"}, "invalid_request", ["handles", "greater than or equal to 0"]),
        ({"span": "scene"}, "invalid_request", ["span", "detected", "shot"]),
        ({"order": "score"}, "invalid_request", ["order", "rank", "time"]),
        ({"as": "bins"}, "invalid_request", ["as", "sequence", "markers"]),
        ({"picks": "0"}, "invalid_request", ["picks"]),
    ],
)
def test_a_bad_selection_is_a_422_naming_it(edit: Edit, fields: dict, code: str, words: list[str]) -> None:
    response = post(edit.server, "/export?format=fcpxml", edit.png, top_k="20", **fields)
    assert response.status_code == 422, response.text
    error = error_of(response)
    assert error["code"] == code
    for word in words:
        assert word in error["message"], error["message"]


def test_selection_errors_in_a_json_body(edit: Edit) -> None:
    track = edit.hits[0]["track_id"]
    both = httpx.post(
        edit.server.url("/export?format=edl"),
        json={"track_id": track, "picks": [edit.hits[1]["track_id"]], "rejects": [edit.hits[1]["track_id"]]},
        timeout=120,
    )
    assert both.status_code == 422 and "both picked and rejected" in error_of(both)["message"]
    twice = httpx.post(
        edit.server.url("/export?format=edl"), json={"track_id": track, "picks": [5, 5]}, timeout=120
    )
    assert twice.status_code == 422 and "picked twice" in error_of(twice)["message"]
    on_search = httpx.post(edit.server.url("/search"), json={"text": "bird", "picks": [1]}, timeout=60)
    assert on_search.status_code == 422  # a selection belongs to exports only
    spec = httpx.get(edit.server.url("/openapi.json"), timeout=30).json()
    body = spec["paths"]["/export"]["post"]["requestBody"]["content"]
    assert body["application/json"]["schema"]["$ref"].endswith("/ExportRequest")
    props = spec["components"]["schemas"]["ExportRequest"]["properties"]
    assert {"picks", "rejects", "handles", "span", "order", "as"} <= set(props)
    assert {"picks", "handles", "as"} <= set(body["multipart/form-data"]["schema"]["properties"])


# --- video-inst export ------------------------------------------------------------------------------


def test_cli_export_takes_the_same_selection(
    edit: Edit, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from video_inst.cli import main
    from video_inst.config import get_settings

    first, last, middle = ends(edit)
    picks = ",".join(str(h["track_id"]) for h in (last, middle, first))
    over_http = post(
        edit.server,
        "/export?format=csv",
        edit.png,
        top_k="20",
        picks=picks,
        handles="12",
        span="shot",
        order="time",
    ).content
    image = tmp_path / "cockatoo.png"
    image.write_bytes(edit.png)
    query = ["--image", str(image), "--box", ",".join(map(str, BOX)), "--top-k", "20"]
    monkeypatch.setenv("VIDEO_INST_HOME", str(edit.settings.home))
    for var in (
        "VIDEO_INST_DATABASE_URL",
        "VIDEO_INST_CONFIG",
        "VIDEO_INST_SERVER_URL",
        "VIDEO_INST_PROJECT_RATE",
    ):
        monkeypatch.delenv(var, raising=False)
    get_settings.cache_clear()
    runner = CliRunner()
    try:
        out = tmp_path / "selects.csv"
        selection = ["--pick", picks, "--handles", "12", "--span", "shot", "--order", "time"]
        written = runner.invoke(main, ["export", "--format", "csv", *query, *selection, "-o", str(out)])
        fcpxml = tmp_path / "selects.fcpxml"
        seq = runner.invoke(
            main,
            ["export", "--format", "fcpxml", *query, "--pick", picks, "--handles", "12", "-o", str(fcpxml)],
        )
        unknown = runner.invoke(main, ["export", "--format", "edl", *query, "--pick", "987654321"])
        negative = runner.invoke(main, ["export", "--format", "edl", *query, "--handles", "-1"])
        not_an_id = runner.invoke(main, ["export", "--format", "edl", *query, "--pick", "12,x"])
        bad_span = runner.invoke(main, ["export", "--format", "edl", *query, "--span", "scene"])
        tracks = runner.invoke(main, ["export", "--format", "csv", "--video-tracks", "1", "--handles", "3"])
    finally:
        get_settings.cache_clear()
    assert written.exit_code == 0, written.output
    assert out.read_bytes() == over_http  # the CLI writes the API's file
    assert "selects: 3 hits, shot span, 12 frame handles, time order, as sequence" in written.stderr
    assert seq.exit_code == 0, seq.output
    assert fcpxml_clips(fcpxml.read_bytes()) == [span(h, 12, edit.n_frames) for h in (last, middle, first)]
    assert unknown.exit_code == 1 and "not a hit of this search: track 987654321" in unknown.output
    assert negative.exit_code == 2 and "--handles" in negative.output
    assert not_an_id.exit_code == 2 and "'x' is not a track id" in not_an_id.output
    assert bad_span.exit_code == 2 and "--span" in bad_span.output
    assert tracks.exit_code == 2 and "--video-tracks" in tracks.output


# --- the page in Chromium (issue 16 acceptance) ---------------------------------------------------


def test_page_selects_three_hits_and_exports_fcpxml_with_handles(browser, edit: Edit) -> None:  # noqa: ANN001, F811
    """Issue 16 acceptance: select 3 of >= 10 hits on the page, reorder, export FCPXML with 12-frame
    handles; the file read back holds 3 subclips in the selects' order, handles applied (clamped
    where the media starts and ends)."""
    ARTIFACTS.mkdir(exist_ok=True)
    page = browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(edit.server.url("/"))
    page.wait_for_function(
        "() => /videos in the catalog/.test(document.getElementById('catalog').textContent)"
    )
    page.set_input_files(
        "#file", files=[{"name": "cockatoo.png", "mimeType": "image/png", "buffer": edit.png}]
    )
    canvas = page.locator("#crop")
    canvas.wait_for(state="visible")
    area = canvas.bounding_box()
    x0, y0, x1, y1 = BOX
    page.mouse.move(area["x"] + area["width"] * x0 / 640, area["y"] + area["height"] * y0 / 360 + 1)
    page.mouse.down()
    page.mouse.move(area["x"] + area["width"] * x1 / 640, area["y"] + area["height"] * y1 / 360 - 1, steps=8)
    page.mouse.up()
    with page.expect_response(lambda r: r.url.endswith("/search")) as answered:
        page.click("#search")
    hits = answered.value.json()["hits"]
    page.wait_for_selector(".group .hit")
    assert len(hits) >= 10 and page.locator(".hit").count() == len(hits)

    shown = Edit(edit.settings, edit.server, edit.video_id, edit.n_frames, edit.png, hits)
    first, last, middle = ends(shown)
    for hit in (middle, first, last):  # picked in this order...
        page.click(f".hit[data-track-id='{hit['track_id']}'] .pick")
    assert page.text_content("#selects-count") == "3 picked, exported in this order"
    # ...then the last pick moved up one place in the Selects list
    page.click(f"#selects-list li[data-track-id='{last['track_id']}'] .up")
    order = [middle, last, first]
    listed = page.locator("#selects-list li").evaluate_all(
        "items => items.map(i => Number(i.dataset.trackId))"
    )
    assert listed == [h["track_id"] for h in order]
    assert page.locator(".hit.picked").count() == 3
    # a rejected hit is marked (and, with picks, simply not exported)
    other = next(h for h in hits if h not in order)
    page.click(f".hit[data-track-id='{other['track_id']}'] .reject")
    assert "rejected" in (page.get_attribute(f".hit[data-track-id='{other['track_id']}']", "class") or "")
    page.fill("#handles", str(HANDLES))
    assert page.text_content("#export-label") == "Export 3 selects"
    with page.expect_download() as download_info:
        page.click(".export[data-format='fcpxml']")
    download = download_info.value
    assert download.suggested_filename.endswith(".fcpxml")
    data = Path(download.path()).read_bytes()
    page.screenshot(path=str(ARTIFACTS / "page-selects.png"), full_page=True)

    timeline = otio.adapters.read_from_string(data.decode(), adapter_name="fcpx_xml")
    clips = list(timeline.find_clips())
    assert len(clips) == 3  # 3 subclips
    got = fcpxml_clips(data)
    want = [span(h, HANDLES, edit.n_frames) for h in order]
    assert got == want  # in the selects' rank order, 12 frames each side...
    assert want[1][1] == edit.n_frames and want[2][0] == 0  # ...clamped where the media ends and starts
    root = ElementTree.fromstring(data.decode().split("<!DOCTYPE fcpxml>", 1)[1].strip())
    names = [m.get("value").split()[0] for m in root.iter("marker")]
    assert names == ["#1", "#2", "#3"]
    assert errors == []
    page.close()
