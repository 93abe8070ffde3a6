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

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction

import opentimelineio as otio

from video_inst.export.rates import DROP_FRAME_RATES, NTSC, TIMECODE_RATES
from video_inst.export.timeline import EMPTY_RATE, TimelineOptions, dominant_clock
from video_inst.hits import VideoRef

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
    options: Callable[[Sequence[VideoRef]], TimelineOptions]
    write: Callable[[otio.schema.Timeline, TimelineOptions], str]


def _one_rate(videos: Sequence[VideoRef]) -> tuple[Fraction, bool]:
    """EDL and FCP7 hold one rate: the rate most hits share (ties: the first hit's)."""
    clock = dominant_clock(videos)
    if clock is None:
        return EMPTY_RATE, False
    return clock.tc_rate, clock.drop_frame


def otio_options(videos: Sequence[VideoRef]) -> TimelineOptions:
    return TimelineOptions()


def edl_options(videos: Sequence[VideoRef]) -> TimelineOptions:
    rate, drop = _one_rate(videos)
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


def fcp7_options(videos: Sequence[VideoRef]) -> TimelineOptions:
    rate, drop = _one_rate(videos)
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


def fcpxml_options(videos: Sequence[VideoRef]) -> TimelineOptions:
    return TimelineOptions(
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
    whether the timecode is drop-frame (the reader skips FCM lines).
    """
    rate = options.edit_rate or EMPTY_RATE
    drop = bool(options.drop_frame) and rate in DROP_FRAME_RATES
    timeline.name = f"{timeline.name}\nFCM: {'DROP FRAME' if drop else 'NON-DROP FRAME'}"
    return otio.adapters.write_to_string(
        timeline, adapter_name="cmx_3600", rate=edl_label_rate(options), style="avid", reelname_len=8
    )


def write_fcpxml(timeline: otio.schema.Timeline, options: TimelineOptions) -> str:
    return otio.adapters.write_to_string(timeline, adapter_name="fcpx_xml")


def write_fcp7(timeline: otio.schema.Timeline, options: TimelineOptions) -> str:
    return otio.adapters.write_to_string(timeline, adapter_name="fcp_xml")


TIMELINE_FORMATS: dict[str, TimelineFormat] = {
    "otio": TimelineFormat(
        "otio", "application/vnd.opentimelineio+json", "otio", "otio_json", otio_options, write_otio
    ),
    "edl": TimelineFormat("edl", "text/plain; charset=utf-8", "edl", "cmx_3600", edl_options, write_edl),
    "fcpxml": TimelineFormat("fcpxml", "application/xml", "fcpxml", "fcpx_xml", fcpxml_options, write_fcpxml),
    "fcp7": TimelineFormat("fcp7", "application/xml", "xml", "fcp_xml", fcp7_options, write_fcp7),
}
