"""Exports written through OTIO's adapters and read back through the same adapters, frame-exact.

Expected timecodes are worked out by hand (see each case's comment), not by the code under test.
"""

from __future__ import annotations

import csv
import io
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from fractions import Fraction
from urllib.parse import unquote, urlparse

import opentimelineio as otio
import pytest
from opentimelineio import opentime

from video_inst.export import FORMATS, ExportError, TrackRow, build_timeline, export_hits, export_tracks
from video_inst.hits import Hit, ShotRef, VideoRef

ADAPTERS = {"otio": "otio_json", "edl": "cmx_3600", "fcpxml": "fcpx_xml", "fcp7": "fcp_xml"}


@dataclass(frozen=True)
class Case:
    """One source rate with one hit: its times and the source timecodes an editor must see."""

    id: str
    num: int
    den: int
    start_tc: str | None
    start_s: float
    end_s: float
    keyframe_s: float
    tc_in: str  # source timecode of the first frame of the hit
    tc_out: str  # exclusive out point (first frame after the hit)
    tc_marker: str  # source timecode of the keyframe
    drop: bool

    @property
    def rate(self) -> Fraction:
        return Fraction(self.num, self.den)

    def frames(self, tc: str) -> int:
        return int(opentime.from_timecode(tc, float(self.rate)).value)

    def label(self, frames: float) -> str:
        return opentime.to_timecode(
            opentime.RationalTime(frames, float(self.rate)), float(self.rate), self.drop
        )


CASES = [
    # 25 fps from 10:00:00:00: 4 s = 100 frames -> 10:00:04:00; 6 s -> 10:00:06:00; 5 s -> 10:00:05:00.
    Case("25", 25, 1, "10:00:00:00", 4.0, 6.0, 5.0, "10:00:04:00", "10:00:06:00", "10:00:05:00", False),
    # 29.97 DF from 01:00:00;00: 60.06 s = 1800 frames = one DF minute; minute 1 skips ;00 and ;01.
    # 61.061 s = 1830 frames -> 01:01:01;02; 60.5605 s = 1815 frames -> 01:01:00;17.
    Case(
        "29.97df",
        30000,
        1001,
        "01:00:00;00",
        60.06,
        61.061,
        60.5605,
        "01:01:00;02",
        "01:01:01;02",
        "01:01:00;17",
        True,
    ),
    # 59.94 DF from 00:00:58;00: 2.002 s = 120 frames, crossing minute 1, which skips ;00-;03.
    # 3.003 s = 180 frames -> 00:01:01;04; 2.5025 s = 150 frames -> 00:01:00;34.
    Case(
        "59.94df",
        60000,
        1001,
        "00:00:58;00",
        2.002,
        3.003,
        2.5025,
        "00:01:00;04",
        "00:01:01;04",
        "00:01:00;34",
        True,
    ),
    # 23.976 NDF from 01:00:00:00: 1.001 s = 24 frames; 2.002 s = 48 frames; 1.5015 s = 36 frames.
    Case(
        "23.976",
        24000,
        1001,
        "01:00:00:00",
        1.001,
        2.002,
        1.5015,
        "01:00:01:00",
        "01:00:02:00",
        "01:00:01:12",
        False,
    ),
    # 24 fps, no start timecode: 0.5 s = 12 frames; 1 s = 24; 0.75 s = 18.
    Case("24", 24, 1, None, 0.5, 1.0, 0.75, "00:00:00:12", "00:00:01:00", "00:00:00:18", False),
]


def video_for(case: Case, path: str = "/media/clips/source clip.mov", video_id: int = 1) -> VideoRef:
    return VideoRef(video_id, path, case.num, case.den, case.start_tc, 600.0, 1920, 1080)


def make_hit(ref: VideoRef, start_s: float, end_s: float, keyframe_s: float, **kw) -> Hit:
    fields = {
        "video_id": ref.video_id,
        "path": ref.path,
        "shot": ShotRef(3, start_s, end_s, "", ""),
        "start_s": start_s,
        "end_s": end_s,
        "keyframe_s": keyframe_s,
        "box": [12.0, 34.0, 560.0, 478.0],
        "score": 0.8312,
        "track_id": 42,
        "mode": "image",
        "labels": [["dog", 0.83], ["wolf", 0.11]],
        "video": ref,
    }
    fields.update(kw)
    return Hit(**fields)


def case_hit(case: Case, **kw) -> Hit:
    return make_hit(video_for(case), case.start_s, case.end_s, case.keyframe_s, **kw)


def edl_rate(case: Case) -> float:
    """The rate to read an EDL back at: NDF timecode at an NTSC rate counts like the whole rate."""
    if case.den != 1 and not case.drop:
        return float(round(case.rate))
    return float(case.rate)


def read_back(fmt: str, data: bytes, **kw):
    return otio.adapters.read_from_string(data.decode("utf-8"), adapter_name=ADAPTERS[fmt], **kw)


def only_clip(timeline) -> otio.schema.Clip:
    clips = list(timeline.find_clips())
    assert len(clips) == 1
    return clips[0]


# ---------------------------------------------------------------- per format, per rate


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_otio_round_trip_is_frame_exact(case: Case) -> None:
    data = export_hits([case_hit(case)], "otio", title="dogs")
    clip = only_clip(read_back("otio", data))
    rng = clip.source_range
    assert case.label(rng.start_time.value) == case.tc_in
    assert case.label(rng.end_time_exclusive().value) == case.tc_out
    marker = clip.markers[0]
    assert case.label(marker.marked_range.start_time.value) == case.tc_marker
    assert marker.marked_range.duration.value == 1
    available = clip.media_reference.available_range
    assert case.label(available.start_time.value) == (case.start_tc or "00:00:00:00")
    assert available.contains(rng)
    assert marker.metadata["video_inst"]["hit"]["track_id"] == 42
    assert list(marker.metadata["video_inst"]["hit"]["box"]) == [12.0, 34.0, 560.0, 478.0]
    assert "track 42" in marker.comment and "box 12,34,560,478" in marker.comment
    assert marker.color == otio.schema.MarkerColor.CYAN


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_edl_round_trip_is_frame_exact(case: Case) -> None:
    data = export_hits([case_hit(case)], "edl", title="dogs")
    text = data.decode()
    assert f"FCM: {'DROP FRAME' if case.drop else 'NON-DROP FRAME'}" in text
    event = next(line for line in text.splitlines() if line.startswith("001 "))
    fields = event.split()
    assert len(fields) == 8
    assert fields[4:6] == [case.tc_in, case.tc_out]
    assert (";" in event) == case.drop
    timeline = read_back("edl", data, rate=edl_rate(case))
    clip = only_clip(timeline)
    rate = edl_rate(case)
    assert opentime.to_timecode(clip.source_range.start_time, rate) == case.tc_in
    assert opentime.to_timecode(clip.source_range.end_time_exclusive(), rate) == case.tc_out
    # Locators carry record timecode (Avid's convention): the sequence starts at 01:00:00:00.
    record_in = fields[6]
    assert record_in == ("01:00:00;00" if case.drop else "01:00:00:00")
    expected_loc = case.frames(record_in) + case.frames(case.tc_marker) - case.frames(case.tc_in)
    loc = re.search(r"^\* LOC: (\S+) +CYAN +#1 0\.83 DOG, WOLF$", text, re.MULTILINE)
    assert loc, text
    assert case.frames(loc.group(1)) == expected_loc
    if not case.drop:  # the adapter's reader only parses "HH:MM:SS:FF" locators (see docs/EXPORT.md)
        marker = clip.markers[0]
        assert marker.marked_range.start_time.value == expected_loc
        assert marker.name == "#1 0.83 DOG, WOLF"


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_fcp7_round_trip_is_frame_exact(case: Case) -> None:
    data = export_hits([case_hit(case)], "fcp7", title="dogs")
    timeline = read_back("fcp7", data)
    clip = only_clip(timeline)
    rng = clip.source_range
    assert case.label(rng.start_time.value) == case.tc_in
    assert case.label(rng.end_time_exclusive().value) == case.tc_out
    # FCP7 clip markers count frames from the media's first frame, not in timecode.
    marker = clip.markers[0]
    start_frames = case.frames(case.start_tc) if case.start_tc else 0
    assert marker.marked_range.start_time.value == case.frames(case.tc_marker) - start_frames
    assert "box 12,34,560,478" in marker.metadata["fcp_xml"]["comment"]
    assert timeline.global_start_time.value == case.frames("01:00:00;00" if case.drop else "01:00:00:00")
    tc = ET.fromstring(data).find(".//file/timecode")
    assert tc.findtext("string") == (case.start_tc or "00:00:00:00")
    assert tc.findtext("displayformat") == ("DF" if case.drop else "NDF")


def _seconds(value: str) -> Fraction:
    """An FCPXML time ("1001/30000s", "36004s") as exact seconds."""
    return Fraction(value.rstrip("s"))


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_fcpxml_writes_frame_exact_times(case: Case) -> None:
    data = export_hits([case_hit(case)], "fcpxml", title="dogs")
    root = ET.fromstring(data)
    clip = root.find(".//spine/clip")
    fmt = root.find(f"./resources/format[@id='{root.find('.//sequence').get('format')}']")
    assert _seconds(fmt.get("frameDuration")) == 1 / case.rate
    start = _seconds(clip.get("start")) * case.rate
    end = start + _seconds(clip.get("duration")) * case.rate
    marker = _seconds(clip.find("marker").get("start")) * case.rate
    assert start.denominator == end.denominator == marker.denominator == 1  # on frames
    assert [case.label(start), case.label(end), case.label(marker)] == [
        case.tc_in,
        case.tc_out,
        case.tc_marker,
    ]
    asset = root.find("./resources/asset")
    assert case.label(_seconds(asset.get("start")) * case.rate) == (case.start_tc or "00:00:00:00")
    # The adapter's reader truncates rates to integers (29.97 -> 29), so frames are only compared
    # through it at 24 fps, where its float arithmetic is exact; structure is compared at every rate.
    timeline = read_back("fcpxml", data)
    back = only_clip(timeline)
    assert back.markers[0].name == "#1 0.83 dog, wolf"
    assert unquote(urlparse(back.media_reference.target_url).path) == "/media/clips/source clip.mov"
    if case.rate == 24:
        assert case.label(back.source_range.start_time.value) == case.tc_in
        assert case.label(back.markers[0].marked_range.start_time.value) == case.tc_marker


# ---------------------------------------------------------------- snapping rule


def test_times_snap_to_the_nearest_frame_and_clips_last_a_frame() -> None:
    case = CASES[1]  # 29.97 DF
    frame = 1001 / 30000
    early = make_hit(video_for(case), case.start_s - 0.4 * frame, case.start_s - 0.4 * frame, case.keyframe_s)
    late = make_hit(video_for(case), case.start_s + 0.6 * frame, case.end_s, case.end_s + 5.0)
    timeline = read_back("otio", export_hits([early, late], "otio"))
    first, second = list(timeline.find_clips())
    assert case.label(first.source_range.start_time.value) == "01:01:00;02"
    assert first.source_range.duration.value == 1  # an empty span still lasts one frame
    assert case.label(first.markers[0].marked_range.start_time.value) == "01:01:00;02"  # keyframe clamped in
    assert case.label(second.source_range.start_time.value) == "01:01:00;03"
    assert case.label(second.markers[0].marked_range.start_time.value) == "01:01:01;01"  # last frame of clip
    rows = list(csv.DictReader(io.StringIO(export_hits([early, late], "csv").decode())))
    assert [r["start_tc"] for r in rows] == ["01:01:00;02", "01:01:00;03"]
    assert [r["end_tc"] for r in rows] == ["01:01:00;03", "01:01:01;02"]


# ---------------------------------------------------------------- several hits, mixed rates


def test_edl_of_mixed_rates_uses_the_most_common_rate() -> None:
    pal, ntsc = CASES[0], CASES[1]
    pal_video = video_for(pal, "/media/pal.mov", 1)
    hits = [
        case_hit(ntsc),  # the first hit is 29.97 DF, but two of three hits are 25 fps
        make_hit(pal_video, 4.0, 6.0, 5.0),
        make_hit(pal_video, 10.0, 10.48, 10.2),
    ]
    text = export_hits(hits, "edl").decode()
    assert "FCM: NON-DROP FRAME" in text and ";" not in text
    events = [line.split() for line in text.splitlines() if re.match(r"^\d{3} ", line)]
    # 29.97 DF 01:00:00;00 + 1800 frames = 3660.0564 s = 91501.41 frames at 25 -> 01:01:00:01;
    # its 30 frames (1.001 s) end at 3661.0574 s = 91526.435 -> 01:01:01:01.
    assert events[0][4:8] == ["01:01:00:01", "01:01:01:01", "01:00:00:00", "01:00:01:00"]
    assert events[1][4:8] == ["10:00:04:00", "10:00:06:00", "01:00:01:00", "01:00:03:00"]
    assert events[2][4:8] == ["10:00:10:00", "10:00:10:12", "01:00:03:00", "01:00:03:12"]
    timeline = read_back("edl", text.encode(), rate=25)  # raises if record and source durations disagree
    clips = list(timeline.find_clips())
    assert [c.media_reference.target_url for c in clips] == [
        "/media/clips/source clip.mov",
        *["/media/pal.mov"] * 2,
    ]
    assert [m.marked_range.start_time.value for c in clips for m in c.markers] == [
        opentime.from_timecode(tc, 25).value for tc in ("01:00:00:13", "01:00:02:00", "01:00:03:05")
    ]


def test_fcp7_of_mixed_rates_keeps_in_points() -> None:
    pal, ntsc = CASES[0], CASES[1]
    hits = [make_hit(video_for(pal, "/m/pal.mov", 1), 4.0, 6.0, 5.0), case_hit(ntsc)]
    timeline = read_back("fcp7", export_hits(hits, "fcp7"))
    first, second = list(timeline.find_clips())
    assert first.source_range.start_time.rate == 25  # the first hit's rate (tie)
    assert pal.label(first.source_range.start_time.value) == "10:00:04:00"
    # The 29.97 hit conformed to 25, counted from the media's first frame as FCP7 counts in points:
    # 60.06 s x 25 = 1501.5 -> frame 1502. The file keeps its own 29.97 DF start timecode.
    media_start = second.media_reference.available_range.start_time
    assert media_start.value == 107892 and media_start.rate == pytest.approx(30000 / 1001)
    assert (second.source_range.start_time - media_start).rescaled_to(25).value == pytest.approx(1502)
    assert second.source_range.duration.value == 25  # 1.001 s x 25 = 25.025 frames


def test_fcpxml_keeps_each_clip_at_its_rate_and_odd_rates_conform() -> None:
    odd = VideoRef(5, "/m/odd.mov", 25, 2, None, 60.0, 640, 480)  # 12.5 fps: FCPXML has no such format
    hits = [case_hit(CASES[1]), make_hit(odd, 2.0, 4.0, 3.0)]
    root = ET.fromstring(export_hits(hits, "fcpxml"))
    durations = {f.get("id"): f.get("frameDuration") for f in root.iter("format")}
    clips = root.findall(".//spine/clip")
    refs = {a.get("id"): a.get("format") for a in root.iter("asset")}
    assert [durations[refs[c.find("video").get("ref")]] for c in clips] == ["1001/30000s", "1/25s"]
    assert _seconds(clips[1].get("start")) == 2 and _seconds(clips[1].get("duration")) == 2


def test_fcpxml_one_frame_ntsc_clip_lasts_two_frames() -> None:
    case = CASES[1]
    root = ET.fromstring(export_hits([make_hit(video_for(case), 60.06, 60.06, 60.06)], "fcpxml"))
    clip = root.find(".//spine/clip")
    assert _seconds(clip.get("duration")) * case.rate == 2  # the adapter would write "0s" for one frame
    assert case.label(_seconds(clip.get("start")) * case.rate) == "01:01:00;02"


def test_non_timecode_rate_is_written_at_twice_the_rate_in_an_edl() -> None:
    odd = VideoRef(5, "/m/odd.mov", 25, 2, None, 60.0, 640, 480)  # 12.5 fps
    text = export_hits([make_hit(odd, 2.0, 4.0, 3.0)], "edl").decode()
    event = next(line.split() for line in text.splitlines() if line.startswith("001 "))
    assert event[4:6] == ["00:00:02:00", "00:00:04:00"]  # 25 frames at 12.5 = 50 frames at 25
    otio_clip = only_clip(read_back("otio", export_hits([make_hit(odd, 2.0, 4.0, 3.0)], "otio")))
    assert otio_clip.source_range.start_time.rate == 12.5 and otio_clip.source_range.start_time.value == 25


# ---------------------------------------------------------------- CSV


def test_csv_rows_parse_back() -> None:
    hits = [case_hit(case) for case in CASES]
    rows = list(csv.DictReader(io.StringIO(export_hits(hits, "csv").decode("utf-8"))))
    assert list(rows[0]) == [
        "rank", "video_id", "path", "shot_index", "start_s", "end_s", "start_tc", "end_tc",
        "keyframe_s", "keyframe_tc", "rate", "drop_frame", "x0", "y0", "x1", "y1", "score", "track_id",
        "labels", "handle_in", "handle_out",
    ]  # fmt: skip
    assert [int(r["rank"]) for r in rows] == [1, 2, 3, 4, 5]
    assert {(r["handle_in"], r["handle_out"]) for r in rows} == {("0", "0")}
    for row, case in zip(rows, CASES, strict=True):
        assert (row["start_tc"], row["end_tc"], row["keyframe_tc"]) == (
            case.tc_in,
            case.tc_out,
            case.tc_marker,
        )
        rate = Fraction(case.num, case.den)
        assert Fraction(row["rate"]) == rate and row["drop_frame"] == ("1" if case.drop else "0")
        assert float(row["start_s"]) == case.start_s and float(row["keyframe_s"]) == case.keyframe_s
        assert [float(row[k]) for k in ("x0", "y0", "x1", "y1")] == [12.0, 34.0, 560.0, 478.0]
        assert (row["score"], row["track_id"], row["shot_index"]) == ("0.8312", "42", "3")
        assert row["labels"] == "dog:0.8300;wolf:0.1100"


def test_csv_of_a_hit_without_video_facts_leaves_timecode_empty() -> None:
    hit = make_hit(video_for(CASES[0]), 1.0, 2.0, 1.5, video=None, track_id=None)
    (row,) = csv.DictReader(io.StringIO(export_hits([hit], "csv").decode()))
    assert (row["start_tc"], row["track_id"], row["start_s"]) == ("", "", "1")
    with pytest.raises(ExportError, match="no video facts"):
        export_hits([hit], "edl")


# ---------------------------------------------------------------- empty, odd paths, errors


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_empty_export_is_a_valid_empty_timeline(fmt: str) -> None:
    data = export_hits([], fmt, title="nothing found")
    if fmt == "csv":
        assert list(csv.reader(io.StringIO(data.decode())))[0][0] == "rank"
        assert len(data.decode().splitlines()) == 1
        return
    kw = {"rate": 25} if fmt == "edl" else {}
    timeline = read_back(fmt, data, **kw)
    assert isinstance(timeline, otio.schema.Timeline)
    assert timeline.name.startswith("nothing found")
    assert list(timeline.find_clips()) == []


ODD = "/srv/média/Day 2 – été/l'ours #3 (final).mov"


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_odd_path_survives(fmt: str) -> None:
    video = video_for(CASES[0], ODD, 9)
    other = video_for(CASES[0], "/srv/média/Day 2 – été/l'ours #4.mov", 10)  # same 8-char reel stem
    hits = [make_hit(video, 4.0, 6.0, 5.0), make_hit(other, 1.0, 2.0, 1.5)]
    data = export_hits(hits, fmt, title="ours\nnewline")
    if fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(data.decode())))
        assert [r["path"] for r in rows] == [ODD, other.path]
        return
    timeline = read_back(fmt, data, **({"rate": 25} if fmt == "edl" else {}))
    clips = list(timeline.find_clips())
    urls = [c.media_reference.target_url for c in clips]
    paths = urls if fmt == "edl" else [unquote(urlparse(u).path) for u in urls]
    assert paths == [ODD, other.path]
    assert [CASES[0].label(c.source_range.start_time.value) for c in clips][0] == "10:00:04:00"
    if fmt == "edl":
        reels = [line.split()[1] for line in data.decode().splitlines() if re.match(r"^\d{3} ", line)]
        assert len(set(reels)) == 2 and all(re.fullmatch(r"\w{1,8}", r) for r in reels)


def test_unknown_format_is_a_named_error() -> None:
    with pytest.raises(ExportError, match="unknown export format 'avi'.*csv, edl, fcp7, fcpxml, otio"):
        export_hits([], "avi")


def test_bad_start_timecode_is_a_named_error() -> None:
    video = VideoRef(1, "/m/a.mov", 25, 1, "10:00:00:27", 10.0, 1, 1)
    with pytest.raises(ExportError, match="out of range"):
        export_hits([make_hit(video, 1.0, 2.0, 1.5)], "otio")


# ---------------------------------------------------------------- a video's tracks


def test_tracks_export_marks_each_track_span() -> None:
    case = CASES[1]
    video = video_for(case)
    tracks = [
        TrackRow(1, 60.06, 61.061, 60.5605, [1, 2, 3, 4], [["dog", 0.9]], 0.9),
        TrackRow(2, 2.002, 2.5025, 2.2022, [5, 6, 7, 8], [], 0.5),
    ]
    clip = only_clip(read_back("otio", export_tracks(video, tracks, "otio")))
    assert case.label(clip.source_range.start_time.value) == case.start_tc
    assert clip.source_range.duration.value >= 600 * 30000 / 1001 - 1
    spans = [
        (case.label(m.marked_range.start_time.value), m.marked_range.duration.value) for m in clip.markers
    ]
    # track 2: 2.002 s = 60 frames -> 01:00:02;00, 15 frames long.
    assert spans == [("01:01:00;02", 30), ("01:00:02;00", 15)]
    assert [m.name for m in clip.markers] == ["track 1 dog", "track 2"]
    fcp7_clip = only_clip(read_back("fcp7", export_tracks(video, tracks, "fcp7")))
    assert [m.marked_range.start_time.value for m in fcp7_clip.markers] == [1800, 60]
    assert [m.marked_range.duration.value for m in fcp7_clip.markers] == [30, 15]
    rows = list(csv.DictReader(io.StringIO(export_tracks(video, tracks, "csv").decode())))
    assert [(r["track_id"], r["start_tc"], r["end_tc"]) for r in rows] == [
        ("1", "01:01:00;02", "01:01:01;02"),
        ("2", "01:00:02;00", "01:00:02;15"),
    ]


def test_build_timeline_has_one_video_track_in_rank_order() -> None:
    hits = [case_hit(case) for case in CASES]
    timeline = build_timeline(hits, "all rates")
    assert len(timeline.video_tracks()) == 1
    assert [c.metadata["video_inst"]["rank"] for c in timeline.find_clips()] == [1, 2, 3, 4, 5]
    assert [c.metadata["video_inst"]["source_in"] for c in timeline.find_clips()] == [c.tc_in for c in CASES]
