"""The timeline formats: how each lays out the one timeline, and the OTIO adapter that writes it.

Every format is written by an OpenTimelineIO adapter plugin (``otio.adapters.write_to_string``);
what differs per format is the ``TimelineOptions`` its adapter and its NLEs need. Each choice is
explained in docs/EXPORT.md.

Example::

    fmt = TIMELINE_FORMATS["edl"]
    options = fmt.options(hit_videos(hits))
    text = fmt.write(build_timeline(hits, "dogs", options=options), options)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from xml.etree import ElementTree

import opentimelineio as otio

from video_inst.export.errors import ExportError
from video_inst.export.rates import DROP_FRAME_RATES, NTSC, TIMECODE_RATES, pick_rate, rate_text
from video_inst.export.timeline import EMPTY_RATE, NAMESPACE, TimelineOptions, dominant_clock
from video_inst.hits import VideoRef
from video_inst.media.timecode import label_frames, parse_rate

#: The rates the FCPXML adapter (otio-fcpx-xml-adapter 1.0) has a frameDuration for.
FCPX_RATES: tuple[Fraction, ...] = (
    24 * NTSC,
    Fraction(24),
    Fraction(25),
    30 * NTSC,
    Fraction(30),
    Fraction(50),
    60 * NTSC,
    Fraction(60),
)
#: Where the sequence of an EDL / FCP7 export starts (the NLE convention).
SEQUENCE_START = "01:00:00:00"


@dataclass(frozen=True)
class TimelineFormat:
    """One export format built from the OTIO timeline."""

    name: str
    media_type: str
    extension: str
    adapter: str
    options: Callable[[Sequence[VideoRef], ProjectRate | None], TimelineOptions]
    write: Callable[[otio.schema.Timeline, TimelineOptions], str]


@dataclass(frozen=True)
class ProjectRate:
    """A declared project rate: the rate, and its drop-frame mode when the text says (DF / NDF)."""

    rate: Fraction
    drop_frame: bool | None = None

    @classmethod
    def parse(cls, text: str | None) -> ProjectRate | None:
        """ "25", "29.97", "30000/1001", "29.97 DF", "59.94NDF" -> a ProjectRate; "" / None -> None."""
        if text is None or not str(text).strip():
            return None
        raw = str(text).strip().upper().replace(" ", "")
        drop: bool | None = None
        for suffix, flag in (("NDF", False), ("DF", True)):
            if raw.endswith(suffix):
                raw, drop = raw[: -len(suffix)], flag
                break
        try:
            rate = parse_rate(raw)
        except (ValueError, ZeroDivisionError):
            raise ExportError(
                f"project rate {text!r} is not a frame rate; write it as 25, 29.97, 30000/1001 or 29.97 DF"
            ) from None
        return cls(rate, drop)


def _declared(project: ProjectRate | None, allowed: Sequence[Fraction], fmt: str) -> None:
    if project is not None and project.rate not in allowed:
        names = ", ".join(rate_label(r) for r in allowed)
        raise ExportError(
            f"project rate {rate_label(project.rate)} cannot be written as {fmt}; use one of {names}"
        )


def project_rate(
    videos: Sequence[VideoRef], allowed: Sequence[Fraction], project: ProjectRate | None = None
) -> tuple[Fraction, bool]:
    """The one rate (and drop-frame mode) a file is written at: the declared project rate, or by
    default the rate most hits share (ties: the first hit's), conformed with ``pick_rate`` to a
    rate the format can declare (12.5 -> 25, 20 -> 60, 48 -> 48 in an EDL, 24 in FCPXML).

    Drop-frame: as declared ("29.97 DF" / "29.97 NDF"); else that of the dominant source when it
    runs at the project rate; else drop-frame at 29.97 / 59.94 (the broadcast convention).
    """
    clock = dominant_clock(videos)
    if project is not None:
        rate = project.rate
        drop = project.drop_frame
    elif clock is None:
        return EMPTY_RATE, False
    else:
        rate, drop = pick_rate(clock.rate, allowed), None
    if drop is None:
        drop = clock.drop_frame if clock is not None and clock.rate == rate else True
    return rate, bool(drop) and rate in DROP_FRAME_RATES


def rate_label(rate: Fraction) -> str:
    """A rate as an editor reads it: 25, 12.5, 29.97, 23.976."""
    if rate.denominator == 1:
        return str(rate.numerator)
    text = f"{float(rate):.3f}".rstrip("0").rstrip(".")
    return text


def otio_options(videos: Sequence[VideoRef], project: ProjectRate | None = None) -> TimelineOptions:
    rate, drop = project_rate(videos, TIMECODE_RATES, project) if project else (None, None)
    return TimelineOptions(project_rate=rate, project_drop=drop)


def edl_options(videos: Sequence[VideoRef], project: ProjectRate | None = None) -> TimelineOptions:
    _declared(project, TIMECODE_RATES, "CMX3600 EDL")
    rate, drop = project_rate(videos, TIMECODE_RATES, project)
    return TimelineOptions(
        edit_rate=rate,
        drop_frame=drop,
        media_rates=TIMECODE_RATES,
        ndf_label_rate=True,
        marker_space="record",
        record_start=SEQUENCE_START,
        global_start=None,
        url_style="path",
        reels=True,
        pad_empty=True,
        hit_metadata=False,
    )


def fcp7_options(videos: Sequence[VideoRef], project: ProjectRate | None = None) -> TimelineOptions:
    _declared(project, TIMECODE_RATES, "FCP7 XML")
    rate, drop = project_rate(videos, TIMECODE_RATES, project)
    return TimelineOptions(
        edit_rate=rate,
        drop_frame=drop,
        media_rates=TIMECODE_RATES,
        marker_space="media",
        conform_origin="media",
        global_start=SEQUENCE_START,
        url_style="localhost",
        hit_metadata=False,
    )


def fcpxml_options(videos: Sequence[VideoRef], project: ProjectRate | None = None) -> TimelineOptions:
    _declared(project, FCPX_RATES, "FCPXML")
    rate, drop = project_rate(videos, FCPX_RATES, project)
    return TimelineOptions(
        project_rate=rate,
        project_drop=drop,
        media_rates=FCPX_RATES,
        fcpx_rate_literals=True,
        global_start=None,
        safe_names=True,
        pad_empty=True,
        hit_metadata=False,
    )


def write_otio(timeline: otio.schema.Timeline, options: TimelineOptions) -> str:
    return otio.adapters.write_to_string(timeline, adapter_name="otio_json")


def edl_label_rate(options: TimelineOptions) -> float:
    """The rate the CMX adapter labels timecode at (and a reader must pass back as ``rate=``)."""
    rate = options.edit_rate or EMPTY_RATE
    drop = bool(options.drop_frame) and rate in DROP_FRAME_RATES
    if rate.denominator != 1 and not drop and rate in TIMECODE_RATES:
        return float(round(rate))  # NDF 29.97 counts frames like 30
    return float(rate)


def write_edl(timeline: otio.schema.Timeline, options: TimelineOptions) -> str:
    """CMX3600 through the cmx_3600 adapter, style "avid" (``* FROM CLIP:`` carries the file path).

    The adapter writes no FCM line; it goes in as the second line of the title so NLEs know
    whether the timecode is drop-frame (the reader skips FCM lines). The project rate is named
    in a comment of the first event (``* PROJECT RATE: 60 FPS NDF``; comments before the first
    event break OTIO's reader) and every conformed source in its own event
    (``* SOURCE RATE: 20 FPS, CONFORMED TO 60``).
    """
    rate = options.edit_rate or EMPTY_RATE
    drop = bool(options.drop_frame) and rate in DROP_FRAME_RATES
    timeline.name = f"{timeline.name}\nFCM: {'DROP FRAME' if drop else 'NON-DROP FRAME'}"
    for n, clip in enumerate(timeline.find_clips()):
        comments = []
        if n == 0:
            comments.append(f"PROJECT RATE: {rate_label(rate)} FPS {'DF' if drop else 'NDF'}")
        source = Fraction(clip.metadata.get(NAMESPACE, {}).get("frame_rate", rate_text(rate)))
        if source != rate:
            comments.append(f"SOURCE RATE: {rate_label(source)} FPS, CONFORMED TO {rate_label(rate)}")
        if comments:
            clip.metadata.setdefault("cmx_3600", {})
            clip.metadata["cmx_3600"]["comments"] = comments
    return otio.adapters.write_to_string(
        timeline, adapter_name="cmx_3600", rate=edl_label_rate(options), style="avid", reelname_len=8
    )


def _frame_duration(rate: Fraction) -> str:
    """FCPXML's frameDuration of a rate: 1/25s, 1001/30000s."""
    step = 1 / rate
    return f"{step.numerator}/{step.denominator}s"


def write_fcpxml(timeline: otio.schema.Timeline, options: TimelineOptions) -> str:
    """FCPXML 1.8 through the fcpx_xml adapter, with the sequence at the project rate.

    The adapter gives the sequence the format of ``stack.duration().rate``, the highest rate of
    any clip (a 20 fps clip written at 60 made a 25 fps edit a 60 fps sequence); the sequence
    ``format`` is set to the project rate's format here (added when no clip has it) with
    ``tcFormat`` DF / NDF.
    """
    text = otio.adapters.write_to_string(timeline, adapter_name="fcpx_xml")
    rate = options.project_rate or EMPTY_RATE
    drop = bool(options.project_drop) and rate in DROP_FRAME_RATES
    root = ElementTree.fromstring(text.split("<!DOCTYPE fcpxml>", 1)[-1].strip())
    resources = root.find("resources")
    duration = _frame_duration(rate)
    if resources is None:
        return text
    fmt = next((f for f in resources.findall("format") if f.get("frameDuration") == duration), None)
    if fmt is None:
        ids = [int(e.get("id", "r0")[1:]) for e in resources if (e.get("id") or "").startswith("r")]
        fmt = ElementTree.Element("format", {"id": f"r{max(ids, default=0) + 1}", "frameDuration": duration})
        fmt.set("name", "")
        resources.insert(0, fmt)
    for sequence in root.iter("sequence"):
        sequence.set("format", str(fmt.get("id")))
        sequence.set("tcFormat", "DF" if drop else "NDF")
    body = ElementTree.tostring(root, encoding="unicode")
    return '<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE fcpxml>\n' + body + "\n"


def write_fcp7(timeline: otio.schema.Timeline, options: TimelineOptions) -> str:
    """xmeml v4 through the fcp_xml adapter; each ``file`` keeps its own whole-number rate.

    The timeline gives a source the adapter cannot write timecode for (20 fps: OTIO has no
    SMPTE timecode at 20) a multiple of its rate (60); xmeml's ``timebase`` is any integer, so
    the ``file`` rate, duration and timecode are written back at the source's own rate here
    (12.5 fps has no integer timebase and stays at 25). Clip in/out stay at the sequence rate.
    """
    text = otio.adapters.write_to_string(timeline, adapter_name="fcp_xml")
    sources: dict[str, tuple[Fraction, bool]] = {}
    for clip in timeline.find_clips():
        meta = clip.metadata.get(NAMESPACE, {})
        ref = clip.media_reference
        if "frame_rate" in meta and isinstance(ref, otio.schema.ExternalReference):
            sources[ref.target_url] = (Fraction(meta["frame_rate"]), bool(meta.get("drop_frame")))
    header, _, body = text.partition("<xmeml")
    root = ElementTree.fromstring("<xmeml" + body)
    for file_e in root.iter("file"):
        url = file_e.findtext("pathurl")
        timebase = file_e.find("rate/timebase")
        if url not in sources or timebase is None or timebase.text is None:
            continue
        source, drop = sources[url]
        written = int(timebase.text)
        if source.denominator != 1 or source == written or written % int(source):
            continue
        k = written // int(source)
        timebase.text = str(int(source))
        duration = file_e.find("duration")
        if duration is not None and duration.text:
            duration.text = str(math.ceil(int(duration.text) / k))
        tc_e = file_e.find("timecode")
        if tc_e is not None:
            frame_e, tc_base = tc_e.find("frame"), tc_e.find("rate/timebase")
            if tc_base is not None:
                tc_base.text = str(int(source))
            if frame_e is not None and frame_e.text:
                frame_e.text = str(int(frame_e.text) // k)
                string_e = tc_e.find("string")
                if string_e is not None:
                    string_e.text = label_frames(int(frame_e.text), source, drop)
    return header + ElementTree.tostring(root, encoding="unicode") + "\n"


TIMELINE_FORMATS: dict[str, TimelineFormat] = {
    "otio": TimelineFormat(
        "otio", "application/vnd.opentimelineio+json", "otio", "otio_json", otio_options, write_otio
    ),
    "edl": TimelineFormat("edl", "text/plain; charset=utf-8", "edl", "cmx_3600", edl_options, write_edl),
    "fcpxml": TimelineFormat("fcpxml", "application/xml", "fcpxml", "fcpx_xml", fcpxml_options, write_fcpxml),
    "fcp7": TimelineFormat("fcp7", "application/xml", "xml", "fcp_xml", fcp7_options, write_fcp7),
}
