"""Selects (issue 16 item 2) in the library: picks, rejects, handles clamped to the media, span
modes, rank / time order, and a sequence or markers layout, written to every format.

Hits are built here at each rate of item 1 (12.5 ... 59.94 DF, some with a start timecode) on a
media of known length, so clamping at both ends is exercised exactly. Each format is read back
with its OTIO adapter (FCPXML's times from the file's rational seconds, as in
``test_timecode_exports``) and the CSV with ``csv``; expected frames are worked out here: the
nearest source frame of each time, -/+ the handles, clamped to [0, frame_count].
"""

from __future__ import annotations

import csv
import io
import math
from fractions import Fraction
from xml.etree import ElementTree

import opentimelineio as otio
import pytest
from test_timecode_exports import (
    ADAPTERS,
    SOURCES,
    Source,
    declared_rate,
    read_back,
    seconds,
    tc_axis,
    tc_frames,
)

from video_inst.export import FORMATS, ExportError, SelectOptions, choose, cut, export_file
from video_inst.hits import Hit, ShotRef, VideoRef

HANDLES = 12


def nearest(value: Fraction) -> int:
    return math.floor(value + Fraction(1, 2))


def video_of(source: Source, video_id: int = 1, path: str = "/media/cam A/clip.mov") -> VideoRef:
    n_frames = 4 * round(source.rate * 3)  # 12 s of media
    return VideoRef(
        video_id,
        path,
        source.rate.numerator,
        source.rate.denominator,
        source.start_tc,
        float(Fraction(n_frames) / source.rate),
        640,
        360,
        frame_count=n_frames,
    )


def hit_at(video: VideoRef, track_id: int, first: int, end: int, shot: tuple[int, int], score: float) -> Hit:
    """A hit whose span is frames [first, end) inside shot frames [shot0, shot1), times as PTS seconds."""
    rate = Fraction(video.frame_rate_num, video.frame_rate_den)

    def t(frame: int) -> float:
        return float(Fraction(frame) / rate)

    return Hit(
        video_id=video.video_id,
        path=video.path,
        shot=ShotRef(track_id % 7, t(shot[0]), t(shot[1]), "", ""),
        start_s=t(first),
        end_s=t(end),
        keyframe_s=t((first + end) // 2),
        box=[10.0, 20.0, 300.0, 200.0],
        score=score,
        track_id=track_id,
        labels=[["bird", 0.9]],
        video=video,
    )


def three_hits(video: VideoRef) -> list[Hit]:
    """Rank 1 at the media's start, rank 2 in the middle, rank 3 ending 4 frames before its end."""
    n = int(video.frame_count or 0)
    return [
        hit_at(video, 11, 3, 40, (0, 60), 0.9),
        hit_at(video, 12, n // 2, n // 2 + 30, (n // 2 - 20, n // 2 + 50), 0.8),
        hit_at(video, 13, n - 50, n - 4, (n - 70, n), 0.7),
    ]


def expected(hit: Hit, video: VideoRef, handles: int, span: str = "detected") -> tuple[int, int]:
    rate = Fraction(video.frame_rate_num, video.frame_rate_den)
    start, end = (hit.shot.start_s, hit.shot.end_s) if span == "shot" else (hit.start_s, hit.end_s)
    first = nearest(Fraction(start) * rate)
    last = max(nearest(Fraction(end) * rate), first + 1)
    return max(0, first - handles), min(int(video.frame_count or 0), last + handles)


# --- choose: picks and rejects ------------------------------------------------------------------


def test_picks_keep_their_order_and_rejects_drop_hits() -> None:
    hits = three_hits(video_of(SOURCES[4]))
    assert [h.track_id for h in choose(hits, picks=[13, 11])] == [13, 11]
    assert [h.track_id for h in choose(hits, rejects=[12])] == [11, 13]
    assert [h.track_id for h in choose(hits, rejects=[11], page=(0, 2))] == [12]
    assert [h.track_id for h in choose(hits)] == [11, 12, 13]


@pytest.mark.parametrize(
    ("picks", "rejects", "message"),
    [
        ([11, 99], [], "not a hit of this search: track 99"),
        ([], [98], "not a hit of this search: track 98"),
        ([11, 11], [], "track 11 is picked twice"),
        ([12], [12], "track 12 is both picked and rejected"),
    ],
)
def test_a_bad_selection_is_a_named_error(picks: list[int], rejects: list[int], message: str) -> None:
    with pytest.raises(ExportError, match=message):
        choose(three_hits(video_of(SOURCES[4])), picks=picks, rejects=rejects)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"handles": -1}, "handles must be between 0"),
        ({"handles": 1.5}, "whole number of frames"),
        ({"span": "scene"}, "span must be one of detected, shot"),
        ({"order": "score"}, "order must be one of rank, time"),
        ({"layout": "bins"}, "layout must be one of sequence, markers"),
    ],
)
def test_bad_select_options_are_named_errors(options: dict, message: str) -> None:
    with pytest.raises(ExportError, match=message):
        SelectOptions(**options)


# --- cut: ranges, handles, order ------------------------------------------------------------------


def test_handles_are_clamped_to_the_media_at_both_ends() -> None:
    video = video_of(SOURCES[4])  # 25 fps, 300 frames
    n = int(video.frame_count or 0)
    start, middle, end = cut(three_hits(video), SelectOptions(handles=HANDLES))
    assert (start.first, start.end, start.handle_in, start.handle_out) == (0, 52, 3, 12)
    mid = n // 2
    assert (middle.first, middle.end, middle.handle_in, middle.handle_out) == (mid - 12, mid + 42, 12, 12)
    assert (end.first, end.end, end.handle_in, end.handle_out) == (n - 62, n, 12, 4)
    assert (start.hit.start_tc, end.hit.end_tc) == ("10:00:00:00", "10:00:12:00")  # starts 10:00:00:00
    assert start.hit.start_s == 0.0 and end.hit.end_s == pytest.approx(12.0)


def test_without_handles_the_hits_are_exported_as_searched() -> None:
    hits = three_hits(video_of(SOURCES[5]))  # 29.97 DF
    for select, hit in zip(cut(hits), hits, strict=True):
        assert select.hit is hit and (select.handle_in, select.handle_out) == (0, 0)


def test_shot_span_and_time_order() -> None:
    a, b = video_of(SOURCES[4], 1, "/m/b.mov"), video_of(SOURCES[4], 2, "/m/a.mov")
    hits = [*three_hits(a), *(replace_id(h, 20 + i) for i, h in enumerate(three_hits(b)))]
    chosen = choose(hits, picks=[13, 22, 11, 20])
    selects = cut(chosen, SelectOptions(span="shot", order="time", handles=2))
    # time order: by path (a.mov first), then source time; the rank stays the pick's position
    assert [(s.hit.track_id, s.rank) for s in selects] == [(20, 4), (22, 2), (11, 3), (13, 1)]
    for select in selects:  # the shot's frames -/+ 2, clamped at the media's first and last frame
        assert (select.first, select.end) == expected(select.hit, select.hit.video, 2, "shot")
    assert selects[0].first == 0 and selects[-1].end == b.frame_count


def replace_id(hit: Hit, track_id: int) -> Hit:
    from dataclasses import replace

    return replace(hit, track_id=track_id)


# --- every format, every rate: the same frames ----------------------------------------------------


@pytest.mark.parametrize("source", SOURCES, ids=[s.name for s in SOURCES])
def test_every_format_writes_the_selects_frames(source: Source) -> None:
    """Picks in the editor's order (2, 3, 1) with 12-frame handles, clamped at both media ends:
    each format's clip in / out is the expected source frame at the rate the file declares."""
    video = video_of(source)
    hits = three_hits(video)
    chosen = choose(hits, picks=[12, 13, 11])
    options = SelectOptions(handles=HANDLES)
    want = [expected(h, video, HANDLES) for h in chosen]
    assert want[1][1] == video.frame_count and want[2][0] == 0  # both ends clamp
    for fmt in ADAPTERS:
        file = export_file(chosen, fmt, selects=options)
        assert declared_rate(fmt, file) == Fraction(file.rate or "0")
        clips = read_back(fmt, file)
        assert len(clips) == 3, fmt
        for (t_in, t_out, at), (first, end) in zip(clips, want, strict=True):
            want_in, want_out = tc_axis(source, first), tc_axis(source, end)
            if (at / source.rate).denominator == 1:
                assert (t_in, t_out) == (want_in, want_out), (fmt, source.name)
            else:  # conformed by time to the project rate (docs/EXPORT.md): the nearest frame
                assert abs(t_in - want_in) <= 1 / (2 * at), (fmt, source.name)
                assert abs(t_out - want_out) <= 1 / (2 * at) + 1 / at, (fmt, source.name)
    rows = list(csv.DictReader(io.StringIO(export_file(chosen, "csv", selects=options).data.decode())))
    assert [int(r["track_id"]) for r in rows] == [12, 13, 11] and [r["rank"] for r in rows] == ["1", "2", "3"]
    for row, (first, end) in zip(rows, want, strict=True):
        rate = Fraction(row["rate"])
        assert Fraction(tc_frames(row["start_tc"], rate)) / rate == tc_axis(source, first), source.name
        assert Fraction(tc_frames(row["end_tc"], rate)) / rate == tc_axis(source, end), source.name
    # handle frames applied: the last pick ends 4 frames before the media does, the first starts at 3
    assert [(r["handle_in"], r["handle_out"]) for r in rows] == [("12", "12"), ("12", "4"), ("3", "12")]


def test_the_sequence_is_in_rank_order_with_the_ranks_in_marker_names() -> None:
    video = video_of(SOURCES[4])
    chosen = choose(three_hits(video), picks=[13, 11])
    timeline = otio.adapters.read_from_string(
        export_file(chosen, "otio", selects=SelectOptions(handles=HANDLES, order="time")).data.decode(),
        adapter_name="otio_json",
    )
    clips = list(timeline.find_clips())
    # time order puts track 11 (rank 2) first; its marker still names rank 2
    assert [c.metadata["video_inst"]["rank"] for c in clips] == [2, 1]
    assert [c.markers[0].name.split()[0] for c in clips] == ["#2", "#1"]
    meta = [c.metadata["video_inst"] for c in clips]
    assert [(m["handle_in"], m["handle_out"]) for m in meta] == [(3, 12), (12, 4)]


# --- markers on source clips ------------------------------------------------------------------------


def fcpxml_markers(data: bytes) -> list[list[tuple[Fraction, Fraction, str]]]:
    root = ElementTree.fromstring(data.decode("utf-8").split("<!DOCTYPE fcpxml>", 1)[1].strip())
    return [
        [(seconds(m.get("start")), seconds(m.get("duration")), m.get("value")) for m in clip.iter("marker")]
        for clip in root.find(".//spine")
    ]


def test_markers_layout_puts_one_clip_per_source_with_a_ranged_marker_per_select() -> None:
    source = SOURCES[4]
    a, b = video_of(source, 1, "/m/a.mov"), video_of(source, 2, "/m/b.mov")
    hits = [*three_hits(a), *(replace_id(h, 20 + i) for i, h in enumerate(three_hits(b)))]
    chosen = choose(hits, picks=[21, 13, 11])
    options = SelectOptions(handles=HANDLES, layout="markers")
    want = {h.track_id: expected(h, h.video, HANDLES) for h in chosen}
    n = int(a.frame_count or 0)
    start = tc_frames(source.start_tc, source.tc_rate)  # 10:00:00:00 at 25
    for fmt in ("otio", "fcp7", "edl"):
        kw = {"rate": 25} if fmt == "edl" else {}
        timeline = otio.adapters.read_from_string(
            export_file(chosen, fmt, selects=options).data.decode(), adapter_name=ADAPTERS[fmt], **kw
        )
        clips = list(timeline.find_clips())
        # b.mov holds the first pick, so it comes first; each clip is the whole media
        assert [c.media_reference.target_url.rsplit("/", 1)[-1] for c in clips] == ["b.mov", "a.mov"], fmt
        for clip in clips:
            assert clip.source_range.start_time.value == start and clip.source_range.duration.value == n, fmt
        names = [[m.name.split()[0].upper() for m in c.markers] for c in clips]
        assert names == [["#1"], ["#3", "#2"]], fmt
        if fmt == "edl":
            continue  # EDL locators carry a start only, in record time
        for clip, ids in zip(clips, [[21], [11, 13]], strict=True):
            for marker, track_id in zip(clip.markers, ids, strict=True):
                first, end = want[track_id]
                origin = start if fmt == "otio" else 0  # FCP7 marker frames count from the media start
                assert marker.marked_range.start_time.value == origin + first, fmt
                assert marker.marked_range.duration.value == end - first, fmt
    markers = fcpxml_markers(export_file(chosen, "fcpxml", selects=options).data)
    assert [[v.split()[0] for _, _, v in clip] for clip in markers] == [["#1"], ["#3", "#2"]]
    first, end = want[11]
    assert markers[1][0][:2] == (Fraction(start + first, 25), Fraction(end - first, 25))


def test_formats_list_is_unchanged() -> None:
    assert sorted(FORMATS) == sorted([*ADAPTERS, "csv"])
