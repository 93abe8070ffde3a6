"""``POST /export`` and ``GET /videos/{id}/tracks/export`` over HTTP, read back through OTIO's adapters.

Expected frames are computed here from the hits the API answers (nearest frame of the
source rate, docs/EXPORT.md), not by the exporter under test.
"""

from __future__ import annotations

import csv
import io
import math
import re
from fractions import Fraction
from pathlib import Path

import httpx
import opentimelineio as otio
import pytest
from api_live import LiveApi, error_of, frame_png, post_image, shared_live_api
from opentimelineio import opentime

from video_inst.export import FORMATS

ADAPTERS = {"otio": "otio_json", "edl": "cmx_3600", "fcpxml": "fcpx_xml", "fcp7": "fcp_xml"}


@pytest.fixture(scope="module")
def live_api(shared_media: Path, tmp_path_factory: pytest.TempPathFactory) -> LiveApi:
    return shared_live_api(shared_media, tmp_path_factory)


def frame(seconds: float, rate: Fraction) -> int:
    """The nearest frame of a time (the rule every exporter follows)."""
    return math.floor(Fraction(seconds) * rate + Fraction(1, 2))


def tc(frames: int, rate: Fraction) -> str:
    return opentime.to_timecode(opentime.RationalTime(frames, float(rate)), float(rate), False)


def read_back(fmt: str, data: bytes, **kw: object) -> otio.schema.Timeline:
    return otio.adapters.read_from_string(data.decode("utf-8"), adapter_name=ADAPTERS[fmt], **kw)


def rate_of(hit_video: dict) -> Fraction:
    num, den = hit_video["frame_rate"].split("/")
    return Fraction(int(num), int(den))


@pytest.fixture(scope="module")
def sintel_query(live_api: LiveApi) -> tuple[bytes, dict]:
    """A crop query limited to the 24 fps clip, and the hits /search answers for it."""
    image, w, h = frame_png(live_api.media / "clips" / "sintel_snow.mp4", 1.0)
    fields = {"box": f"0,0,{w},{h}", "top_k": 5, "video_ids": [live_api.videos["sintel_snow.mp4"]]}
    body = post_image(live_api, image, **fields).json()
    assert body["hits"], body
    assert rate_of(body["videos"][str(body["hits"][0]["video_id"])]) == 24
    return image, {"fields": fields, "result": body}


def export(live: LiveApi, image: bytes, fmt: str, fields: dict) -> httpx.Response:
    response = post_image(live, image, path=f"/export?format={fmt}", **fields)
    assert response.status_code == 200, response.text
    media_type, extension = FORMATS[fmt]
    assert response.headers["content-type"] == media_type
    assert re.fullmatch(
        rf'attachment; filename="[\w.+-]+\.{extension}"', response.headers["content-disposition"]
    )
    return response


def expected_span(hit: dict, rate: Fraction) -> tuple[int, int, int]:
    start, end = frame(hit["start_s"], rate), max(frame(hit["end_s"], rate), frame(hit["start_s"], rate) + 1)
    return start, end, min(max(frame(hit["keyframe_s"], rate), start), end - 1)


@pytest.mark.parametrize("fmt", ["otio", "edl", "fcp7", "fcpxml"])
def test_timeline_exports_put_clips_and_markers_on_the_right_frames(
    live_api: LiveApi, sintel_query: tuple[bytes, dict], fmt: str
) -> None:
    image, query = sintel_query
    hits = query["result"]["hits"]
    rate = Fraction(24)
    data = export(live_api, image, fmt, query["fields"]).content
    timeline = read_back(fmt, data, **({"rate": 24} if fmt == "edl" else {}))
    clips = list(timeline.find_clips())
    assert len(clips) == len(hits)
    for rank, (clip, hit) in enumerate(zip(clips, hits), 1):
        start, end, marker = expected_span(hit, rate)
        assert clip.source_range.start_time.value == start
        assert clip.source_range.end_time_exclusive().value == end
        assert len(clip.markers) == 1
        mark = clip.markers[0].marked_range.start_time.value
        if fmt == "edl":  # locators are in record time; the record side starts at 01:00:00:00
            record_in = frame(3600, rate) + sum(
                expected_span(h, rate)[1] - expected_span(h, rate)[0] for h in hits[: rank - 1]
            )
            assert mark == record_in + marker - start
        else:
            assert mark == marker
        if fmt == "otio":
            stored = dict(clip.markers[0].metadata["video_inst"]["hit"])
            expected = {k: v for k, v in hit.items() if k != "thumbnail_url"}
            assert stored["track_id"] == expected["track_id"]
            assert list(stored["box"]) == expected["box"]
            assert stored["keyframe_s"] == expected["keyframe_s"] and stored["score"] == expected["score"]
            assert clip.media_reference.target_url.endswith("sintel_snow.mp4")


def test_csv_export_rows_are_the_hits(live_api: LiveApi, sintel_query: tuple[bytes, dict]) -> None:
    image, query = sintel_query
    hits = query["result"]["hits"]
    rows = list(csv.DictReader(io.StringIO(export(live_api, image, "csv", query["fields"]).text)))
    assert [int(r["rank"]) for r in rows] == list(range(1, len(hits) + 1))
    rate = Fraction(24)
    for row, hit in zip(rows, hits):
        start, end, marker = expected_span(hit, rate)
        assert int(row["video_id"]) == hit["video_id"] and int(row["track_id"]) == hit["track_id"]
        assert (row["start_tc"], row["end_tc"], row["keyframe_tc"]) == (
            tc(start, rate),
            tc(end, rate),
            tc(marker, rate),
        )
        assert [float(row[k]) for k in ("x0", "y0", "x1", "y1")] == pytest.approx(hit["box"])


def test_otio_export_of_several_rates_keeps_each_clip_at_its_rate(live_api: LiveApi) -> None:
    image, _, _ = frame_png(live_api.media / "clips" / "realshort.mp4", 0.5)
    result = post_image(live_api, image, top_k=5).json()
    assert len({h["video_id"] for h in result["hits"]}) >= 2
    data = export(live_api, image, "otio", {"top_k": 5}).content
    clips = list(read_back("otio", data).find_clips())
    assert len(clips) == len(result["hits"])
    for clip, hit in zip(clips, result["hits"]):
        rate = rate_of(result["videos"][str(hit["video_id"])])
        start, end, marker = expected_span(hit, rate)
        assert clip.source_range.start_time.rate == pytest.approx(float(rate))
        assert clip.source_range.start_time.value == start
        assert clip.markers[0].marked_range.start_time.value == marker


def test_empty_result_exports_a_valid_empty_timeline(live_api: LiveApi) -> None:
    response = httpx.post(
        live_api.url("/export?format=otio&title=nothing"),
        json={"text": "bird", "min_score": 1e9},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    timeline = read_back("otio", response.content)
    assert timeline.name == "nothing"
    assert list(timeline.find_clips()) == []


def test_tracks_export_marks_every_track_span(live_api: LiveApi) -> None:
    video_id = live_api.videos["sintel_snow.mp4"]
    tracks = httpx.get(live_api.url(f"/videos/{video_id}/tracks"), timeout=10).json()
    assert tracks
    rate = Fraction(24)
    response = httpx.get(live_api.url(f"/videos/{video_id}/tracks/export?format=otio"), timeout=60)
    assert response.status_code == 200
    (clip,) = list(read_back("otio", response.content).find_clips())
    assert len(clip.markers) == len(tracks)
    by_name = {m.name.split()[1]: m for m in clip.markers}
    for track in tracks:
        marker = by_name[str(track["track_id"])]
        assert marker.marked_range.start_time.value == frame(track["start_s"], rate)
        assert marker.marked_range.duration.value == max(
            frame(track["end_s"], rate) - frame(track["start_s"], rate), 1
        )
    for fmt in ("edl", "fcp7", "fcpxml", "csv"):
        other = httpx.get(live_api.url(f"/videos/{video_id}/tracks/export?format={fmt}"), timeout=60)
        assert other.status_code == 200, other.text
        assert other.headers["content-type"] == FORMATS[fmt][0]
    rows = list(csv.DictReader(io.StringIO(other.text)))
    assert sorted(int(r["track_id"]) for r in rows) == sorted(t["track_id"] for t in tracks)


def test_unknown_export_format_is_422(live_api: LiveApi) -> None:
    response = httpx.post(live_api.url("/export?format=avi"), json={"text": "bird"}, timeout=10)
    assert response.status_code == 422
    error = error_of(response)
    assert "format" in error["message"] and "edl" in error["message"]
    missing = httpx.post(live_api.url("/export"), json={"text": "bird"}, timeout=10)
    assert missing.status_code == 422 and "format" in error_of(missing)["message"]
    video_id = live_api.videos["sintel_snow.mp4"]
    tracks = httpx.get(live_api.url(f"/videos/{video_id}/tracks/export?format=mp4"), timeout=10)
    assert tracks.status_code == 422


def test_export_body_errors_match_search(live_api: LiveApi) -> None:
    too_many = httpx.post(
        live_api.url("/export?format=csv"), json={"text": "bird", "top_k": 10**6}, timeout=10
    )
    assert too_many.status_code == 422 and error_of(too_many)["code"] == "invalid_query"
    unknown = httpx.get(live_api.url("/videos/987654/tracks/export?format=csv"), timeout=10)
    assert unknown.status_code == 404 and error_of(unknown)["code"] == "not_found"


def test_cli_tracks_export_is_the_api_file(
    live_api: LiveApi, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from click.testing import CliRunner

    from video_inst.cli import main
    from video_inst.config import get_settings

    video_id = live_api.videos["sintel_snow.mp4"]
    over_http = httpx.get(live_api.url(f"/videos/{video_id}/tracks/export?format=csv"), timeout=30).content
    monkeypatch.setenv("VIDEO_INST_HOME", str(live_api.settings.home))
    for var in ("VIDEO_INST_DATABASE_URL", "VIDEO_INST_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    get_settings.cache_clear()
    try:
        out = tmp_path / "tracks.csv"
        result = CliRunner().invoke(
            main, ["export", "--format", "csv", "--video-tracks", str(video_id), "-o", str(out)]
        )
        missing = CliRunner().invoke(main, ["export", "--format", "csv", "--video-tracks", "987654"])
        other = tmp_path / "other.csv"
        other.write_bytes(b"an editor's own file")
        again = ["export", "--format", "csv", "--video-tracks", str(video_id), "-o", str(other)]
        refused = CliRunner().invoke(main, again)
        kept = other.read_bytes()
        forced = CliRunner().invoke(main, [*again, "--force"])
        zero = CliRunner().invoke(main, ["export", "--format", "csv", "--text", "bird", "--top-k", "0"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert out.read_bytes() == over_http
    assert missing.exit_code == 1 and "987654" in missing.output
    # -o never overwrites silently: refused (exit 1, file untouched) unless --force.
    assert refused.exit_code == 1 and "--force" in refused.output
    assert kept == b"an editor's own file"
    assert forced.exit_code == 0, forced.output
    assert other.read_bytes() == over_http
    # --top-k 0 is a usage error, not "the default".
    assert zero.exit_code == 2 and "--top-k" in zero.output


def test_export_names_its_project_rate_and_hits_carry_their_source_timecode(
    live_api: LiveApi, sintel_query: tuple[bytes, dict]
) -> None:
    image, query = sintel_query
    hits = query["result"]["hits"]
    rate = Fraction(24)
    for hit in hits:  # the JSON's labels are the frames every export writes
        start, end, marker = expected_span(hit, rate)
        assert (hit["start_tc"], hit["end_tc"], hit["keyframe_tc"]) == (
            tc(start, rate),
            tc(end, rate),
            tc(marker, rate),
        )
        assert (hit["rate"], hit["drop_frame"]) == ("24", False)
    default = export(live_api, image, "edl", query["fields"])
    assert (default.headers["x-project-rate"], default.headers["x-drop-frame"]) == ("24", "0")
    assert "* PROJECT RATE: 24 FPS NDF" in default.text
    declared = post_image(live_api, image, path="/export?format=edl&project_rate=48", **query["fields"])
    assert declared.status_code == 200 and declared.headers["x-project-rate"] == "48"
    clips = list(read_back("edl", declared.content, rate=48).find_clips())
    for clip, hit in zip(clips, hits, strict=True):  # 24 fps conformed to 48: frame n is frame 2n
        start, end, _ = expected_span(hit, rate)
        assert (clip.source_range.start_time.value, clip.source_range.end_time_exclusive().value) == (
            2 * start,
            2 * end,
        )
    assert "x-project-rate" not in export(live_api, image, "csv", query["fields"]).headers
    bad = post_image(live_api, image, path="/export?format=edl&project_rate=12.5", **query["fields"])
    assert bad.status_code == 422 and "12.5" in error_of(bad)["message"]
