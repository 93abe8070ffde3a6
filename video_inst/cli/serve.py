"""``video-inst serve`` (the HTTP API and search page) and ``video-inst export`` (hits or tracks as a file).

Registered on the ``video-inst`` group by ``video_inst.cli.app``. ``export`` runs
the same search as ``video-inst search`` (``run_search``) and writes it through
``video_inst.export``, exactly what ``POST /export`` answers.

Example::

    video-inst serve --host 0.0.0.0 --port 8000
    video-inst export --format edl --image query.jpg --box 10,20,200,180 -o hits.edl
    video-inst export --format fcp7 --video-tracks 3 -o tracks.xml
    video-inst export --format fcpxml --text bird --pick 12,7,30 --handles 12 --span shot -o selects.fcpxml
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from video_inst.cli.commands import build_query, query_options, run_search
from video_inst.cli.output import fail
from video_inst.config import get_settings
from video_inst.errors import VideoInstError

EXPORT_FORMATS = ["otio", "edl", "fcpxml", "fcp7", "csv"]


def _track_ids(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> tuple[int, ...]:
    """``--pick 12,7 --pick 30`` -> (12, 7, 30): track ids as `video-inst search --json` prints them."""
    ids = []
    for value in values:
        for part in value.split(","):
            text = part.strip()
            if not text:
                continue
            if not text.isdigit() or int(text) < 1:
                raise click.BadParameter(f"{text!r} is not a track id (a whole number >= 1)", ctx, param)
            ids.append(int(text))
    return tuple(ids)


def selects_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``export``'s selection options (docs/EXPORT.md, "Selects")."""
    options = [
        click.option(
            "--pick",
            "picks",
            multiple=True,
            metavar="ID,ID",
            callback=_track_ids,
            help="Export only these hits (track ids), in this order; repeatable.",
        ),
        click.option(
            "--reject",
            "rejects",
            multiple=True,
            metavar="ID,ID",
            callback=_track_ids,
            help="Drop these hits (track ids) from the export; repeatable.",
        ),
        click.option(
            "--handles",
            type=click.IntRange(min=0),
            default=0,
            show_default=True,
            help="Source frames added before and after each hit, clamped to the media.",
        ),
        click.option(
            "--span",
            type=click.Choice(["detected", "shot"]),
            default="detected",
            show_default=True,
            help="A hit's range: the detected span (its track) or the whole shot.",
        ),
        click.option(
            "--order",
            type=click.Choice(["rank", "time"]),
            default="rank",
            show_default=True,
            help="rank: the picks' (or the search's) order; time: by source file, then source time.",
        ),
        click.option(
            "--as",
            "layout",
            type=click.Choice(["sequence", "markers"]),
            default="sequence",
            show_default=True,
            help="sequence: a subclip per hit; markers: one clip per source file, a marker per hit.",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--ingest",
    "ingest_mode",
    type=click.Choice(["auto", "queue", "thread"]),
    default="auto",
    show_default=True,
    help="queue: Celery workers ingest; thread: this process does; auto: queue when a broker is set.",
)
@click.option("--root-path", default="", help="URL prefix when served behind a proxy, e.g. /vi.")
@click.option("--log-level", default="info", show_default=True)
def serve(host: str, port: int, ingest_mode: str, root_path: str, log_level: str) -> None:
    """Serve the HTTP API (OpenAPI at /docs) and the search page at / with uvicorn."""
    import uvicorn

    from video_inst.api.app import create_app

    settings = get_settings()
    if settings.search_threads > 0:
        import torch

        torch.set_num_threads(settings.search_threads)
    app = create_app(settings, ingest_mode=None if ingest_mode == "auto" else ingest_mode, warm=True)
    if host not in ("127.0.0.1", "localhost", "::1") and not settings.api_token:
        click.echo(
            "warning: listening beyond this machine without VIDEO_INST_API_TOKEN: "
            "anyone who can reach it can ingest and delete",
            err=True,
        )
    uvicorn.run(app, host=host, port=port, root_path=root_path, log_level=log_level)


@click.command("export")
@click.option("--format", "fmt", type=click.Choice(EXPORT_FORMATS), required=True, help="File format.")
@query_options
@click.option("--video-tracks", help="Instead of a search: every track of this video (id or path).")
@click.option("--title", help="Timeline name (default: from the query).")
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Write here (default: stdout).")
@click.option("--force", is_flag=True, help="With -o: replace an existing file.")
@click.option(
    "--project-rate",
    help="Rate of EDL / FCP7 events and the FCPXML sequence (25, 29.97, 29.97 NDF, 30000/1001); default "
    "VIDEO_INST_PROJECT_RATE, else the rate most hits share (12.5 -> 25, 20 -> 60). Printed on stderr.",
)
@selects_options
def export_command(
    fmt: str,
    video_tracks: str | None,
    title: str | None,
    output: Path | None,
    force: bool,
    project_rate: str | None,
    picks: tuple[int, ...],
    rejects: tuple[int, ...],
    handles: int,
    span: str,
    order: str,
    layout: str,
    **options: Any,
) -> None:
    """Write search hits (or a video's tracks) as OTIO, CMX3600 EDL, FCPXML, FCP7 XML or CSV.

    Selects: --pick exports only those hits (track ids, in that order), --reject drops hits;
    --handles, --span, --order and --as cut them into a sequence of subclips or markers.
    """
    if output is not None and output.exists() and not force:
        fail(VideoInstError(f"{output} exists; pass --force to replace it"))  # before the search runs
    selection = {
        "picks": picks,
        "rejects": rejects,
        "handles": handles,
        "span": span,
        "order": order,
        "layout": layout,
    }
    shaped = (handles, span, order, layout) != (0, "detected", "rank", "sequence")
    if video_tracks and (picks or rejects or shaped):
        raise click.UsageError(
            "--pick, --reject, --handles, --span, --order and --as apply to a search, not to --video-tracks"
        )
    try:
        data = export_bytes(
            fmt,
            video_tracks=video_tracks,
            title=title,
            project_rate=project_rate,
            selection=selection,
            **options,
        )
    except VideoInstError as exc:
        fail(exc)
    if output is None:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    else:
        output.write_bytes(data)
        click.echo(f"wrote {output} ({len(data)} bytes)", err=True)


def export_bytes(
    fmt: str,
    *,
    video_tracks: str | None,
    title: str | None,
    project_rate: str | None = None,
    selection: dict[str, Any] | None = None,
    **options: Any,
) -> bytes:
    """The export file: tracks of one video, or the hits of the search the options describe
    (``selection``: picks, rejects, handles, span, order, layout, as ``--pick`` ... ``--as``).

    A hits export names the rate its timeline is written at on stderr (``project rate: 60``).
    """
    from video_inst.export import ProjectRate, SelectOptions, export_file, export_tracks

    if video_tracks:
        from video_inst.api.routes.videos import track_rows
        from video_inst.api.serialise import video_ref
        from video_inst.catalog import repo
        from video_inst.catalog.db import get_catalog

        with get_catalog().session() as s:
            video = repo.find_video(s, ref=video_tracks)
            ref, rows = video_ref(video), track_rows(s, video.id)
        return export_tracks(ref, rows, fmt, title=title or f"{Path(ref.path).stem} tracks")
    # a bad rate fails before the search runs
    project = ProjectRate.parse(project_rate or get_settings().project_rate)
    chosen = dict(selection or {})
    picks, rejects = tuple(chosen.pop("picks", ())), tuple(chosen.pop("rejects", ()))
    selects = SelectOptions(**chosen)
    if picks or rejects:
        from video_inst.search.selection import selected_hits

        hits, _ = selected_hits(build_query(**options), picks=picks, rejects=rejects)
    else:
        hits = run_search(**options).hits
    default = (
        " + ".join(str(v) for v in (options.get("image"), options.get("text")) if v) or "video_inst search"
    )
    file = export_file(hits, fmt, title=title or default, project_rate=project, selects=selects)
    if picks or rejects or selects != SelectOptions():
        click.echo(f"selects: {len(hits)} hits, {_describe(selects)}", err=True)
    if file.rate:
        click.echo(f"project rate: {file.rate}{' DF' if file.drop_frame else ''}", err=True)
    return file.data


def _describe(selects: Any) -> str:
    return f"{selects.span} span, {selects.handles} frame handles, {selects.order} order, as {selects.layout}"
