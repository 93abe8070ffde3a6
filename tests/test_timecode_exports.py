"""Issue 16 acceptance (item 1): one source timecode for a hit in every output, at every rate.

Clips are rendered at 12.5, 20, 23.976, 24, 25, 29.97 DF, 30, 50 and 59.94 DF fps (some with a
start timecode; the drop-frame ones start at 00:00:58;00 so their hits sit across the dropped
frames of minute 1), ingested with the real analysis and searched with a crop of their own
picture. Every hit's in / out is then read back from each output: the API / CLI JSON and the CSV
(timecode at the rate they name), OTIO, EDL, FCP7 XML and FCPXML through their OTIO adapters.
Each must be the hit's own source frames at the rate the file declares. Expected frames are
worked out here from the hit's seconds (nearest frame of the source rate, end exclusive, at
least one frame: docs/EXPORT.md), not by the code under test.
"""

from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from xml.etree import ElementTree

import opentimelineio as otio
import pytest
from api_live import frame_png
from media_factory import render_clip
from timecode import Timecode

from video_inst.api.serialise import search_json
from video_inst.catalog.db import get_catalog
from video_inst.config import Settings
from video_inst.export import FORMATS, export_file
from video_inst.ingest.pipeline import ingest_path
from video_inst.media.images import load_image
from video_inst.search.searcher import Query, Searcher

pytestmark = pytest.mark.slow

NTSC = Fraction(1000, 1001)


@dataclass(frozen=True)
class Source:
    name: str
    rate: Fraction
    start_tc: str | None
    suffix: str
    tc_rate: Fraction  # the rate its source timecode counts at
    drop: bool


SOURCES = [
    Source("12.5", Fraction(25, 2), "01:00:00:00", ".mov", Fraction(25), False),
    Source("20", Fraction(20), "01:00:00:00", ".mov", Fraction(20), False),
    Source("23.976", 24 * NTSC, None, ".mp4", 24 * NTSC, False),
    Source("24", Fraction(24), None, ".mp4", Fraction(24), False),
    Source("25", Fraction(25), "10:00:00:00", ".mov", Fraction(25), False),
    Source("29.97DF", 30 * NTSC, "00:00:58;00", ".mov", 30 * NTSC, True),
    Source("30", Fraction(30), None, ".mp4", Fraction(30), False),
    Source("50", Fraction(50), None, ".mp4", Fraction(50), False),
    Source("59.94DF", 60 * NTSC, "00:00:58;00", ".mov", 60 * NTSC, True),
]
TC_NAMES = {24 * NTSC: "23.976", 30 * NTSC: "29.97", 60 * NTSC: "59.94"}
ADAPTERS = {"otio": "otio_json", "edl": "cmx_3600", "fcpxml": "fcpx_xml", "fcp7": "fcp_xml"}


def nearest(value: Fraction) -> int:
    return math.floor(value + Fraction(1, 2))


def tc_frames(text: str, rate: Fraction) -> int:
    """Frames of a SMPTE label at a timecode rate (drop-frame when written with ';')."""
    name = TC_NAMES.get(rate, str(rate))
    drop = ";" in text
    return Timecode(name, text, force_non_drop_frame=not drop).frames - 1


def start_seconds(source: Source) -> Fraction:
    return (
        Fraction(tc_frames(source.start_tc, source.tc_rate)) / source.tc_rate
        if source.start_tc
        else Fraction(0)
    )


def expected_frames(hit: dict, rate: Fraction) -> tuple[int, int]:
    """First frame and exclusive end frame of a hit at its source rate."""
    first = nearest(Fraction(hit["start_s"]) * rate)
    return first, max(nearest(Fraction(hit["end_s"]) * rate), first + 1)


def tc_axis(source: Source, frame: int) -> Fraction:
    """Seconds on the source's timecode axis (start timecode + frame) of a source frame."""
    return start_seconds(source) + Fraction(frame) / source.rate


@dataclass
class Catalog:
    settings: Settings
    searcher: Searcher
    ids: dict[str, int]  # source name -> video id
    queries: dict[str, tuple[bytes, int, int]]


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    root = tmp_path_factory.mktemp("rates")
    settings = Settings(home=root / "home", database_url=None, media_roots=[root])
    store = get_catalog(settings)
    ids, queries = {}, {}
    for n, source in enumerate(SOURCES):
        length = nearest(Fraction(8, 5) * source.rate)  # two shots of 1.6 s
        clip = render_clip(
            root / f"src_{n}{source.suffix}",
            fps=source.rate,
            scenes=[length, length],
            size=(160, 96),
            start_timecode=source.start_tc,
        )
        result = ingest_path(clip.path, settings=settings, catalog=store)
        assert result.status == "done", f"{source.name}: {result.error}"
        ids[source.name] = int(result.video_id)
        queries[source.name] = frame_png(clip.path, 0.5)
    return Catalog(settings, Searcher(settings), ids, queries)


def search(cat: Catalog, source: Source | None) -> list:
    name = source.name if source else SOURCES[4].name
    png, w, h = cat.queries[name]
    video_ids = [cat.ids[source.name]] if source else None
    result = cat.searcher.search(
        Query(image=load_image(png), box=(0, 0, w, h), top_k=60, video_ids=video_ids)
    )
    assert result.hits
    return result


def source_of(cat: Catalog, video_id: int) -> Source:
    name = next(k for k, v in cat.ids.items() if v == video_id)
    return next(s for s in SOURCES if s.name == name)


def check_json_and_csv(cat: Catalog, result) -> None:
    """API JSON, CLI JSON and CSV: the same labels, at the rate they name, on the hit's frames."""
    api = search_json(result, root="")["hits"]
    cli = result.to_json()["hits"]
    rows = list(csv.DictReader(io.StringIO(export_file(result.hits, "csv").data.decode("utf-8"))))
    assert len(api) == len(cli) == len(rows) == len(result.hits)
    for hit, from_cli, row in zip(api, cli, rows, strict=True):
        source = source_of(cat, hit["video_id"])
        first, end = expected_frames(hit, source.rate)
        labels = (hit["start_tc"], hit["end_tc"], hit["rate"], hit["drop_frame"])
        assert (from_cli["start_tc"], from_cli["end_tc"], from_cli["rate"], from_cli["drop_frame"]) == labels
        assert (row["start_tc"], row["end_tc"], row["rate"], row["drop_frame"] == "1") == labels
        rate = Fraction(hit["rate"])
        assert rate == source.tc_rate and hit["drop_frame"] == source.drop, source.name
        assert (";" in hit["start_tc"]) == source.drop
        assert Fraction(tc_frames(hit["start_tc"], rate)) / rate == tc_axis(source, first), source.name
        assert Fraction(tc_frames(hit["end_tc"], rate)) / rate == tc_axis(source, end), source.name


def read_back(fmt: str, file) -> list[tuple[Fraction, Fraction, Fraction]]:
    """(in seconds, out seconds, frame rate) of every clip of an export, read by its OTIO adapter."""
    kw = {}
    if fmt == "edl":
        rate = Fraction(file.rate)
        kw["rate"] = float(rate) if file.drop_frame or rate.denominator == 1 else float(round(rate))
    timeline = otio.adapters.read_from_string(file.data.decode("utf-8"), adapter_name=ADAPTERS[fmt], **kw)
    if fmt == "fcpxml":
        # The adapter's reader truncates NTSC rates (29.97 -> 29) and frames (docs/EXPORT.md), so
        # it gives the clips; their times are read as the exact rational seconds FCPXML stores.
        assert len(list(timeline.find_clips())) == len(fcpxml_spine(file.data))
        return fcpxml_spine(file.data)
    out = []
    for clip in timeline.find_clips():
        start, duration = clip.source_range.start_time, clip.source_range.duration
        rate = Fraction(start.rate).limit_denominator(1001)
        if fmt == "edl" and not file.drop_frame and Fraction(file.rate).denominator != 1:
            rate = Fraction(file.rate)  # NDF 29.97 is read as frame counts at 30
        first = Fraction(round(start.value))
        out.append((first / rate, (first + round(duration.value)) / rate, rate))
    return out


def seconds(text: str) -> Fraction:
    return Fraction(text.rstrip("s") or "0")


def fcpxml_spine(data: bytes) -> list[tuple[Fraction, Fraction, Fraction]]:
    """(start, end, rate of the clip's format) of each spine clip: the source timecode axis in seconds."""
    root = ElementTree.fromstring(data.decode("utf-8").split("<!DOCTYPE fcpxml>", 1)[1].strip())
    formats = {f.get("id"): 1 / seconds(f.get("frameDuration")) for f in root.iter("format")}
    assets = {a.get("id"): formats[a.get("format")] for a in root.iter("asset")}
    out = []
    for clip in root.find(".//spine"):
        start = seconds(clip.get("start", "0s"))
        rate = assets[clip.find("video").get("ref")]
        out.append((start, start + seconds(clip.get("duration")), rate))
    return out


def declared_rate(fmt: str, file) -> Fraction:
    """The rate the file itself names (the same as the X-Project-Rate the API answers)."""
    text = file.data.decode("utf-8")
    if fmt == "edl":
        match = re.search(r"^\* PROJECT RATE: ([\d.]+) FPS (N?DF)$", text, re.M)
        assert match, text[:400]
        assert (match.group(2) == "DF") == file.drop_frame
        assert ("FCM: DROP FRAME" in text) == file.drop_frame
        named = {name: rate for rate, name in TC_NAMES.items()}
        return named.get(match.group(1)) or Fraction(match.group(1))
    if fmt == "fcp7":
        seq = ElementTree.fromstring(text.split("?>", 1)[1]).find(".//sequence/rate")
        base, ntsc = int(seq.findtext("timebase")), seq.findtext("ntsc") == "TRUE"
        return Fraction(base) * (NTSC if ntsc else 1)
    if fmt == "fcpxml":
        root = ElementTree.fromstring(text.split("<!DOCTYPE fcpxml>", 1)[1].strip())
        seq = root.find(".//sequence")
        fmt_e = root.find(f"./resources/format[@id='{seq.get('format')}']")
        assert seq.get("tcFormat") == ("DF" if file.drop_frame else "NDF")
        return 1 / Fraction(fmt_e.get("frameDuration").rstrip("s"))
    timeline = otio.adapters.read_from_string(text, adapter_name="otio_json")
    return Fraction(timeline.metadata["video_inst"]["rate"])


def check_timeline(cat: Catalog, result, fmt: str, project_rate: str | None = None) -> Fraction:
    file = export_file(result.hits, fmt, project_rate=project_rate)
    assert file.rate is not None and declared_rate(fmt, file) == Fraction(file.rate)
    project = Fraction(file.rate)
    clips = read_back(fmt, file)
    assert len(clips) == len(result.hits)
    for (t_in, t_out, clip_rate), hit in zip(clips, result.hits, strict=True):
        source = source_of(cat, hit.video_id)
        first, end = expected_frames(hit.to_json(), source.rate)
        want_in, want_out = tc_axis(source, first), tc_axis(source, end)
        # the rate this clip is written at: its own (OTIO, FCPXML clips) or the project's (EDL, FCP7)
        at = clip_rate
        if fmt in ("edl", "fcp7"):
            assert at == project, (fmt, source.name, at, project)
        if (at / source.rate).denominator == 1:  # every source frame is whole frames here: exact
            assert (t_in, t_out) == (want_in, want_out), (fmt, source.name, at)
        else:  # conformed by time: the nearest frame at the declared rate
            assert abs(t_in - want_in) <= 1 / (2 * at), (fmt, source.name, at)
            assert abs(t_out - want_out) <= 1 / (2 * at) + 1 / at, (fmt, source.name, at)
    return project


@pytest.mark.parametrize("source", SOURCES, ids=[s.name for s in SOURCES])
def test_every_output_names_the_same_frames_for_a_source(catalog: Catalog, source: Source) -> None:
    result = search(catalog, source)
    assert {h.video_id for h in result.hits} == {catalog.ids[source.name]}
    check_json_and_csv(catalog, result)
    # one source per file: each format is written at the source rate or a whole multiple of it
    project = {fmt: check_timeline(catalog, result, fmt) for fmt in ADAPTERS}
    nle = {Fraction(25, 2): Fraction(25), Fraction(20): Fraction(60)}.get(source.rate, source.rate)
    assert project == {"otio": source.rate, "edl": nle, "fcp7": nle, "fcpxml": nle}
    # the OTIO clip metadata carries the JSON's labels
    timeline = otio.adapters.read_from_string(export_file(result.hits, "otio").data.decode(), "otio_json")
    for clip, hit in zip(timeline.find_clips(), result.hits, strict=True):
        meta = clip.metadata["video_inst"]
        assert (meta["source_in"], meta["source_out"]) == (hit.start_tc, hit.end_tc)


def test_a_mixed_rate_export_conforms_to_the_declared_project_rate(catalog: Catalog) -> None:
    result = search(catalog, None)
    assert len({h.video_id for h in result.hits}) == len(SOURCES)
    check_json_and_csv(catalog, result)
    for fmt in ("edl", "fcp7", "fcpxml"):
        assert check_timeline(catalog, result, fmt, project_rate="50") == 50
        assert check_timeline(catalog, result, fmt, project_rate="29.97 DF") == 30 * NTSC
    assert check_timeline(catalog, result, "otio") in {s.rate for s in SOURCES}
    assert sorted(FORMATS) == sorted([*ADAPTERS, "csv"])


def test_cli_search_and_export_name_the_same_timecode(
    catalog: Catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`video-inst search --json` carries the hits' source timecode; `export --project-rate` names
    its rate on stderr and writes the 20 fps source's frames at 60 (each frame three)."""
    import json

    from click.testing import CliRunner

    from video_inst.cli import main
    from video_inst.config import get_settings

    source = SOURCES[1]  # 20 fps
    png, w, h = catalog.queries[source.name]
    image = tmp_path / "query.png"
    image.write_bytes(png)
    query = ["--image", str(image), "--top-k", "60", "--video", str(catalog.ids[source.name])]
    monkeypatch.setenv("VIDEO_INST_HOME", str(catalog.settings.home))
    for var in (
        "VIDEO_INST_DATABASE_URL",
        "VIDEO_INST_CONFIG",
        "VIDEO_INST_SERVER_URL",
        "VIDEO_INST_PROJECT_RATE",
    ):
        monkeypatch.delenv(var, raising=False)
    get_settings.cache_clear()
    try:
        found = CliRunner().invoke(main, ["search", *query, "--json"])
        out = tmp_path / "hits.edl"
        edl = ["export", "--format", "edl", *query]
        written = CliRunner().invoke(main, [*edl, "--project-rate", "60", "-o", str(out)])
        refused = CliRunner().invoke(main, [*edl, "--project-rate", "12.5"])
    finally:
        get_settings.cache_clear()
    assert found.exit_code == 0, found.output
    answer = json.loads(found.stdout)
    hits = answer["hits"] if isinstance(answer, dict) else answer
    assert hits and all(h["rate"] == "20" and not h["drop_frame"] for h in hits)
    assert written.exit_code == 0, written.output
    assert "project rate: 60" in written.stderr
    text = out.read_text()
    assert "* PROJECT RATE: 60 FPS NDF" in text
    clips = list(otio.adapters.read_from_string(text, adapter_name="cmx_3600", rate=60).find_clips())
    assert len(clips) == len(hits)
    for clip, hit in zip(clips, hits, strict=True):
        first, end = expected_frames(hit, source.rate)
        in_frames = Fraction(tc_frames(hit["start_tc"], Fraction(20)))  # the JSON's label, at 20
        assert clip.source_range.start_time.value == 3 * in_frames == 3 * (72000 + first)
        assert clip.source_range.end_time_exclusive().value == 3 * (72000 + end)
    assert refused.exit_code != 0 and "12.5" in refused.output
