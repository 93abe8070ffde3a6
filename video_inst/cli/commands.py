"""The catalog, ingest, search, index and model-space commands of ``video-inst``.

A thin shell: each command parses arguments, calls one library function and prints
JSON (``--json``) or a short table. Exit code 1 when any item failed, 2 on usage errors.

Example::

    video-inst ingest clip.mp4 --json
    video-inst shots clip.mp4 --json
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from video_inst.cli.output import Counter, StageBar, emit, fail, video_ids
from video_inst.config import get_settings
from video_inst.errors import VideoInstError

# --- database ----------------------------------------------------------------------


@click.group()
def db() -> None:
    """Catalog schema (Alembic)."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision: str) -> None:
    """Bring the catalog schema up to date (SQLite or PostgreSQL)."""
    from video_inst.catalog.db import current_revision, upgrade

    settings = get_settings()
    settings.ensure_dirs()
    url = settings.resolved_database_url
    upgrade(url, revision)
    click.echo(f"catalog at revision {current_revision(url)}")


@db.command("downgrade")
@click.option(
    "--revision", required=True, help="target revision, e.g. 0002 (`base` drops every table and all data)"
)
@click.option("--yes", is_flag=True, help="skip the confirmation prompt")
def db_downgrade(revision: str, yes: bool) -> None:
    """Step the catalog schema back to REVISION; asks first, since it deletes what later revisions hold.

    No default revision: a bare ``db downgrade`` once meant ``base`` and deleted a whole catalog.
    """
    from sqlalchemy.engine import make_url

    from video_inst.catalog.db import current_revision, downgrade

    if not revision.strip():
        raise click.BadParameter(
            "give a revision, e.g. 0002 (`base` drops everything)", param_hint="--revision"
        )
    url = get_settings().resolved_database_url
    now = current_revision(url) or "empty"
    if not yes:
        where = make_url(url).render_as_string(hide_password=True)
        click.confirm(
            f"Downgrade the catalog at {where} from revision {now} to {revision}? "
            "Tables and columns of later revisions are dropped with their data.",
            abort=True,
            err=True,
        )
    downgrade(url, revision)
    click.echo(f"catalog at revision {current_revision(url)} (was {now})")


@db.command("current")
def db_current() -> None:
    from video_inst.catalog.db import current_revision

    click.echo(current_revision(get_settings().resolved_database_url) or "empty")


# --- ingest ------------------------------------------------------------------------


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line per video.")
@click.option("--force", is_flag=True, help="Ingest again even if this content is in the catalog.")
@click.option("--no-analyse", is_flag=True, help="Shots and keyframes only (no DASR / CLIP).")
@click.option("--async", "run_async", is_flag=True, help="Queue the files for the workers; print job ids.")
@click.option("--callback-url", help="With --async: POST the job's JSON here when it ends.")
def ingest(
    paths: tuple[Path, ...],
    as_json: bool,
    force: bool,
    no_analyse: bool,
    run_async: bool,
    callback_url: str | None,
) -> None:
    """Ingest video files in this process and wait (or queue them with --async)."""
    from video_inst.ingest.pipeline import ingest_path

    if run_async:
        from video_inst.jobs import enqueue_ingest

        try:
            ids = enqueue_ingest(paths, force=force, analyse=not no_analyse, callback_url=callback_url)
        except VideoInstError as exc:
            fail(exc)
        for path, job_id in zip(paths, ids):
            if as_json:
                emit({"job_id": job_id, "path": str(path), "status": "queued"})
            else:
                click.echo(job_id)
        return

    any_failed = False
    bar = StageBar(len(paths), sys.stderr.isatty())
    try:
        for n, path in enumerate(paths):
            bar.start(n, path.name)
            result = ingest_path(path, force=force, analyse=not no_analyse, progress=bar)
            any_failed |= result.status == "failed"
            _print_ingest(result, as_json, bar)
    finally:
        bar.close()
    sys.exit(1 if any_failed else 0)


def _print_ingest(result: Any, as_json: bool, bar: StageBar) -> None:
    """One file's result line, written above the progress bar (which then redraws below it)."""
    from tqdm import tqdm

    out = tqdm.write if bar.bar is not None else click.echo
    if as_json:
        out(json.dumps(result.to_json(), ensure_ascii=False))
    else:
        line = f"{result.status:8} {result.path}  shots={result.shots} keyframes={result.keyframes}"
        line += f" tracks={result.tracks} {result.seconds:.1f}s"
        if result.error:
            line += f"\n         error: {result.error}"
        for warning in result.warnings:
            line += f"\n         warning: {warning}"
        out(line)


# --- catalog views -------------------------------------------------------------------


@click.command()
@click.option("--json", "as_json", is_flag=True)
def videos(as_json: bool) -> None:
    """The catalog's videos."""
    from video_inst.catalog import repo
    from video_inst.catalog.db import get_catalog
    from video_inst.catalog.rows import video_row

    with get_catalog().session() as s:
        rows = [video_row(v) for v in repo.list_videos(s)]
    if as_json:
        emit(rows)
        return
    for row in rows:
        size = f"{row['width']}x{row['height']}" if row["width"] else "-"
        line = (
            f"{row['video_id']:>5} {row['status']:8} {row['duration_s'] or 0:8.2f}s {size:>10} {row['path']}"
        )
        if row["error"]:
            line += f"\n      error: {row['error']}"
        click.echo(line)


def shots_json(video: Any, shots: list[Any]) -> list[dict[str, Any]]:
    """The ``shots`` JSON: seconds from PTS plus SMPTE timecode at the edges."""
    from video_inst.media.timecode import smpte_for_video

    return [
        {
            "index": shot.index,
            "start_s": shot.start_s,
            "end_s": shot.end_s,
            "start_frame": shot.start_frame,
            "end_frame": shot.end_frame,
            "start_tc": smpte_for_video(video, shot.start_s),
            "end_tc": smpte_for_video(video, shot.end_s),
            "keyframes": [{"time_s": k.time_s, "frame": k.frame} for k in shot.keyframes],
        }
        for shot in shots
    ]


@click.command()
@click.argument("video")
@click.option("--json", "as_json", is_flag=True)
def shots(video: str, as_json: bool) -> None:
    """Shots of VIDEO (an id or a path) with their keyframes."""
    from video_inst.catalog import repo
    from video_inst.catalog.db import get_catalog

    try:
        with get_catalog().session() as s:
            row = repo.find_video(s, ref=video)
            data = shots_json(row, repo.list_shots(s, video_id=row.id))
    except VideoInstError as exc:
        fail(exc)
    if as_json:
        emit(data)
        return
    for shot in data:
        click.echo(
            f"{shot['index']:>4}  {shot['start_tc']} - {shot['end_tc']}  "
            f"frames {shot['start_frame']}-{shot['end_frame']}  keyframes {len(shot['keyframes'])}"
        )


@click.command()
@click.argument("video")
def delete(video: str) -> None:
    """Delete VIDEO with its shots, tracks, vectors and thumbnails."""
    from video_inst.ingest.pipeline import delete_video

    try:
        video_id = delete_video(video)
    except VideoInstError as exc:
        fail(exc)
    click.echo(f"deleted video {video_id}")


# --- search ------------------------------------------------------------------------


def query_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The query options of ``search`` and ``export``, read by :func:`run_search`."""
    for option in reversed(_query_options()):
        command = option(command)
    return command


REPORT_SKIPS = ("--top-k", "--hide-weak", "--min-score")  # a report counts every track above its threshold


def report_query_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The query options of ``report``: those of ``search`` but the ranking's page and weak filter."""
    for option in reversed(_query_options(skip=REPORT_SKIPS)):
        command = option(command)
    return command


def _query_options(skip: tuple[str, ...] = ()) -> list[Callable[..., Any]]:
    """The query options, as click decorators, without the flags in ``skip``."""
    options = [
        ("--image", click.option("--image", type=click.Path(path_type=Path), help="Query photo or frame.")),
        (
            "--box",
            click.option("--box", help="x0,y0,x1,y1 in query-image pixels (default: the whole image)."),
        ),
        ("--text", click.option("--text", help="Described subject, e.g. 'a red umbrella'.")),
        (
            "--track",
            click.option("--track", type=int, help="More like this: a stored track id as the query."),
        ),
        (
            "--top-k",
            click.option(
                "--top-k",
                type=click.IntRange(min=1),
                help="Number of shots.",
                show_default="VIDEO_INST_DEFAULT_TOP_K, 20",
            ),
        ),
        ("--min-score", click.option("--min-score", type=float, help="Drop hits scoring below this.")),
        (
            "--video",
            click.option("--video", multiple=True, help="Restrict to these videos (id or path); repeatable."),
        ),
        ("--label", click.option("--label", help="Only tracks carrying this label (e.g. bird).")),
        (
            "--also",
            click.option(
                "--also",
                "exemplars",
                multiple=True,
                metavar="IMAGE[@x0,y0,x1,y1]",
                help="Another photo (and box) of the same object, searched as one query; repeatable.",
            ),
        ),
        (
            "--right",
            click.option(
                "--right", "positives", type=int, multiple=True, help="Track id of a hit marked right."
            ),
        ),
        (
            "--wrong",
            click.option(
                "--wrong", "negatives", type=int, multiple=True, help="Track id of a hit marked wrong."
            ),
        ),
        (
            "--hide-weak",
            click.option(
                "--hide-weak", is_flag=True, help="Drop hits under the measured weak-score threshold."
            ),
        ),
    ]
    return [o for flag, o in options if flag not in skip]


def run_search(**options: Any) -> Any:
    """Build a Query from CLI options and run it (shared by ``search`` and ``demo``)."""
    return search_query(**options)[1]


def search_query(**options: Any) -> tuple[Any, Any]:
    """(the Query of these CLI options, its result)."""
    from video_inst.search.searcher import search

    query = build_query(**options)
    return query, search(query)


def build_query(**options: Any) -> Any:
    """The Query of these CLI options (images decoded, video refs resolved)."""
    from video_inst.media.images import load_image, parse_box
    from video_inst.search.searcher import Query

    image = load_image(Path(options["image"])) if options.get("image") else None
    exemplars = []
    for spec in options.get("exemplars") or ():
        path, _, box = str(spec).partition("@")
        exemplars.append((load_image(Path(path)), parse_box(box or None)))
    query = Query(
        exemplars=exemplars,
        positives=list(options.get("positives") or ()),
        negatives=list(options.get("negatives") or ()),
        hide_weak=bool(options.get("hide_weak")),
        image=image,
        box=parse_box(options.get("box")),
        text=options.get("text"),
        track_id=options.get("track"),
        top_k=options["top_k"] if options.get("top_k") is not None else get_settings().default_top_k,
        min_score=options.get("min_score"),
        video_ids=video_ids(tuple(options.get("video") or ())),
        label=options.get("label"),
    )
    return query


def _print_hits(result: Any) -> None:
    _print_answer(result.to_json())


def _print_answer(answer: dict[str, Any]) -> None:
    """A search answer (a local ``SearchResult.to_json()`` or a server's ``/search`` JSON) as text."""
    click.echo(f"mode: {answer['mode']}")
    if answer.get("spaces"):
        click.echo("spaces: " + ", ".join(f"{family} {name}" for family, name in answer["spaces"].items()))
    for note in answer.get("notes", []):
        click.echo(f"note: {note}")
    if answer.get("weak_rule") and any(hit.get("weak") for hit in answer["hits"]):
        click.echo(f"weak: hits marked weak {answer['weak_rule']['why']}")
    for rank, hit in enumerate(answer["hits"], 1):
        labels = ", ".join(str(name) for name, _ in hit["labels"][:3])
        shot = hit["shot"]
        click.echo(
            f"{rank:>3}. score {hit['score']:.3f}  video {hit['video_id']} shot {shot['index']} "
            f"[{_hit_tc(hit)}]  track {hit['track_id']} "
            f"{hit['start_s']:.2f}-{hit['end_s']:.2f}s box {[round(v) for v in hit['box']]}  {labels}"
            + ("  (weak)" if hit.get("weak") else "")
        )


def _hit_tc(hit: dict[str, Any]) -> str:
    """The hit's source timecode in/out (exclusive out) and the rate it counts at, as in every export."""
    if not hit.get("start_tc"):
        return f"{hit['shot']['start_tc']} - {hit['shot']['end_tc']}"
    return f"{hit['start_tc']} - {hit['end_tc']} @ {hit['rate']}{' DF' if hit.get('drop_frame') else ''}"


@click.command("search")
@query_options
@click.option(
    "--server",
    metavar="URL",
    help="Ask this running `video-inst serve` (models already loaded) instead of searching here "
    "[default: VIDEO_INST_SERVER_URL, else search in this process].",
)
@click.option("--save", metavar="NAME", help="Keep this query as a saved search that watches new footage.")
@click.option("--json", "as_json", is_flag=True, help="The hits as one JSON list; errors as a JSON object.")
def search_command(as_json: bool, server: str | None, save: str | None, **options: Any) -> None:
    """Find the shots that contain an object (image/box), a subject (text) or a track."""
    settings = get_settings()
    server = server or settings.server_url
    try:
        if save:
            from video_inst.search.saved import save_search
            from video_inst.search.searcher import shared_searcher

            query, _ = search_query(**options)
            saved, result = save_search(query, save, searcher=shared_searcher(settings))
            click.echo(f"saved search {saved['saved_search_id']} {saved['name']!r}", err=True)
            answer = result.to_json()
        elif server:
            from video_inst.cli.remote import remote_search

            answer = remote_search(server, options, settings.api_token)
        else:
            answer = run_search(**options).to_json()
    except VideoInstError as exc:
        fail(exc)
    if as_json:
        for note in answer["notes"]:  # stdout stays the JSON list of hits
            click.echo(f"note: {note}", err=True)
        emit([dict(h, mode=answer["mode"], spaces=answer["spaces"]) for h in answer["hits"]])
    else:
        _print_answer(answer)


@click.command("report")
@report_query_options
@click.option(
    "--min-score",
    type=float,
    help="Count tracks scoring at least this [default: the query's weak-score threshold, the "
    "higher of VIDEO_INST_WEAK_SCORE_DASR (or _LABELS) and VIDEO_INST_WEAK_RELATIVE_DASR x its best match].",
)
@click.option(
    "--json", "as_json", is_flag=True, help="The report as one JSON object; errors as a JSON object."
)
@click.option(
    "--csv", "as_csv", is_flag=True, help="The report as CSV: one row per video, then an `all` row."
)
def report_command(as_json: bool, as_csv: bool, **options: Any) -> None:
    """Where the query's object appears: per video the shots, screen time, first and last appearance.

    Counts every track scoring at or above the threshold; screen time is the length of the
    union of those tracks' spans (two tracks of one moment count once).
    """
    from video_inst.search.report import appearance_report

    if as_json and as_csv:
        raise click.UsageError("--json and --csv: choose one")
    try:
        report = appearance_report(build_query(**options), settings=get_settings())
    except VideoInstError as exc:
        fail(exc)
    if as_csv:
        click.echo(report.to_csv(), nl=False)
        return
    if as_json:
        for note in report.notes:
            click.echo(f"note: {note}", err=True)
        emit(report.to_json())
        return
    click.echo(f"mode: {report.mode}  threshold: {report.threshold}")
    for note in report.notes:
        click.echo(f"note: {note}")
    for v in report.videos:
        click.echo(
            f"video {v.video_id} {v.path}: {v.screen_time_s:.2f}s on screen in {len(v.shots)} shots "
            f"{v.shots}, first {v.first_s:.2f}s [{v.first_tc}], last {v.last_s:.2f}s [{v.last_tc}]"
        )
    click.echo(f"total: {report.screen_time_s:.2f}s in {len(report.videos)} videos")


@click.group("saved")
def saved() -> None:
    """Saved searches (`search --save NAME`): list, run, matches in new footage, delete."""


@saved.command("list")
@click.option("--json", "as_json", is_flag=True)
def saved_list(as_json: bool) -> None:
    from video_inst.search.saved import list_saved

    rows = list_saved()
    if as_json:
        emit(rows)
        return
    for r in rows:
        click.echo(f"{r['saved_search_id']:>4} {r['name']}  threshold {r['threshold']}  watch {r['watch']}")


@saved.command("run")
@click.argument("ref")
@click.option("--top-k", type=click.IntRange(min=1), help="Number of shots.")
@click.option("--json", "as_json", is_flag=True)
def saved_run(ref: str, top_k: int | None, as_json: bool) -> None:
    """Run saved search REF (id or name) over the catalog."""
    from video_inst.search.saved import run_saved

    try:
        result = run_saved(ref, **({"top_k": top_k} if top_k else {}))
    except VideoInstError as exc:
        fail(exc)
    if as_json:
        emit([dict(h.to_json(), mode=result.mode, spaces=result.spaces) for h in result.hits])
    else:
        _print_hits(result)


@saved.command("matches")
@click.argument("ref")
@click.option("--json", "as_json", is_flag=True)
def saved_matches(ref: str, as_json: bool) -> None:
    """Newly ingested videos in which saved search REF found its object."""
    from video_inst.search.saved import matches_of

    try:
        rows = matches_of(ref)
    except VideoInstError as exc:
        fail(exc)
    if as_json:
        emit(rows)
        return
    for m in rows:
        click.echo(f"video {m['video_id']}: {len(m['hits'])} hits, best {m['hits'][0]['score']:.3f}")


@saved.command("delete")
@click.argument("ref")
def saved_delete(ref: str) -> None:
    from video_inst.search.saved import delete_saved

    try:
        click.echo(f"deleted saved search {delete_saved(ref)}")
    except VideoInstError as exc:
        fail(exc)


# --- indexes -------------------------------------------------------------------------------


@click.group()
def index() -> None:
    """FAISS indexes (derived from the vectors in SQL)."""


@index.command("rebuild")
def index_rebuild() -> None:
    """Rebuild every index from SQL."""
    from video_inst.vectors.store import get_index_store

    store = get_index_store(get_settings())
    for space_id, kind, count in store.rebuild_all():
        click.echo(f"space {space_id} {kind}: {count} vectors")


@index.command("check")
@click.option("--json", "as_json", is_flag=True)
@click.option(
    "--repair",
    is_flag=True,
    help="Sync (or rebuild) each index that disagrees with SQL or is damaged, remove orphans, check again.",
)
def index_check(as_json: bool, repair: bool) -> None:
    """Compare every index with SQL and look for orphan files; exit 1 when anything is wrong.

    A damaged index file is reported (``error``), never a traceback. Orphans (thumbnails and
    staging folders with no catalog row, older than an hour) are counted on stderr.
    """
    from sqlalchemy.exc import SQLAlchemyError

    try:
        rows, orphans = _index_report(repair)
    except VideoInstError as exc:
        fail(exc)
    except (OSError, SQLAlchemyError) as exc:
        click.echo(f"error: cannot check the indexes: {type(exc).__name__}: {exc}", err=True)
        sys.exit(1)
    ok = all(not r["missing"] and not r["extra"] and not r["error"] for r in rows)
    lost = len(orphans.thumbnails) + len(orphans.staging)
    if lost or orphans.busy:
        what = "removed" if orphans.removed else "run `video-inst index check --repair`"
        click.echo(
            f"note: orphans: {len(orphans.thumbnails)} thumbnails, {len(orphans.staging)} staging folders "
            f"({what}); {len(orphans.busy)} thumbnail folders skipped while an ingest writes them",
            err=True,
        )
    if as_json:
        emit(rows)
    else:
        for row in rows:
            click.echo(" ".join(f"{k}={v}" for k, v in row.items()))
    sys.exit(0 if ok and (orphans.removed or not lost) else 1)


def _index_report(repair: bool) -> tuple[list[dict[str, Any]], Any]:
    """Rows of ``index check`` (repairing first when asked) and the orphan report."""
    from sqlalchemy import select

    from video_inst.catalog.db import get_catalog
    from video_inst.catalog.models import ModelSpace
    from video_inst.ingest.orphans import find_orphans
    from video_inst.vectors.store import get_index_store

    settings = get_settings()
    store = get_index_store(settings)
    catalog = get_catalog(settings)
    with catalog.session() as s:
        names = dict(s.execute(select(ModelSpace.id, ModelSpace.name)).all())
    rows = []
    for space_id, kind in store.known_indexes():
        row = _check_one(store, space_id, kind)
        if repair and (row["missing"] or row["extra"] or row["error"]):
            report = store.rebuild(space_id, kind) if row["error"] else store.sync(space_id, kind)
            row = dict(
                _check_one(store, space_id, kind), repaired=f"{report.added} added, {report.removed} removed"
            )
        rows.append({"space_id": space_id, "space": names.get(space_id), "kind": kind, **row})
    return rows, find_orphans(catalog, settings, remove=repair)


def _check_one(store: Any, space_id: int, kind: str) -> dict[str, Any]:
    from video_inst.vectors.errors import CorruptIndexError

    try:
        sql_count, index_count, missing, extra = store.check_consistency(space_id, kind)
    except CorruptIndexError as exc:
        sql_count = store.sql_count(space_id, kind)
        return {"sql": sql_count, "index": 0, "missing": sql_count, "extra": 0, "error": exc.message}
    return {
        "sql": sql_count,
        "index": index_count,
        "missing": len(missing),
        "extra": len(extra),
        "error": None,
    }


# --- demo ----------------------------------------------------------------------------------


@click.command()
def demo() -> None:
    """Render a sample clip, ingest it, show its shots and run a crop search (no media, no network)."""
    from video_inst.ingest.pipeline import ingest_path
    from video_inst.media.demo import render_query, render_sample

    settings = get_settings()
    settings.ensure_dirs()
    clip = render_sample(settings.home / "samples" / "demo.mp4")
    query = render_query(settings.home / "samples" / "query.png")
    click.echo(f"sample clip: {clip}")
    result = ingest_path(clip)
    click.echo(
        f"ingest: {result.status}  shots={result.shots} keyframes={result.keyframes} tracks={result.tracks}"
        f"  {result.seconds:.1f}s"
    )
    if result.status == "failed":
        click.echo(f"error: {result.error}", err=True)
        sys.exit(1)
    from video_inst.catalog import repo
    from video_inst.catalog.db import get_catalog

    with get_catalog().session() as s:
        video = repo.find_video(s, ref=result.video_id)
        for shot in shots_json(video, repo.list_shots(s, video_id=video.id)):
            click.echo(
                f"  shot {shot['index']}: {shot['start_tc']} - {shot['end_tc']}  "
                f"({shot['start_s']:.2f}-{shot['end_s']:.2f}s, {len(shot['keyframes'])} keyframes)"
            )
    click.echo(f"crop search with {query}:")
    _print_hits(run_search(image=str(query), top_k=4))


@click.command()
@click.option(
    "--space",
    type=click.Choice(["clip", "dasr"]),
    required=True,
    help="clip: add the configured CLIP model's vectors; dasr: re-analyse with the configured backbone.",
)
@click.option("--json", "as_json", is_flag=True)
def reindex(space: str, as_json: bool) -> None:
    """Fill the configured model's space for every ingested video (resumable; old space answers meanwhile)."""
    from video_inst.ingest.reindex import reindex_clip, reindex_dasr

    bar = Counter(f"reindex {space}", sys.stderr.isatty() and not as_json, unit="video", leave=True)
    try:
        report = (reindex_clip if space == "clip" else reindex_dasr)(progress=bar.update)
    except VideoInstError as exc:
        fail(exc)
    finally:
        bar.close()
    data = {
        "space": report.space,
        "job_id": report.job_id,
        "done": report.done,
        "skipped": report.skipped,
        "failed": [{"video_id": v, "error": e} for v, e in report.failed],
    }
    if as_json:
        emit(data)
    else:
        click.echo(
            f"{report.space}: {len(report.done)} re-indexed, {len(report.skipped)} already done, "
            f"{len(report.failed)} failed"
        )
        for video_id, error in report.failed:
            click.echo(f"  video {video_id}: {error}")
    sys.exit(1 if report.failed else 0)


@click.group()
def spaces() -> None:
    """Model spaces: which answers searches, how complete each is, dropping an old one."""


@spaces.command("list")
@click.option("--json", "as_json", is_flag=True)
def spaces_list(as_json: bool) -> None:
    """Every model space with its coverage; `active` marks the one searches use."""
    from video_inst.catalog.db import get_catalog
    from video_inst.spaces.active import FAMILIES, active_space, coverage

    settings = get_settings()
    rows = []
    with get_catalog(settings).session() as s:
        for family in FAMILIES:
            choice = active_space(s, family, settings)
            total, spaces_ = coverage(s, family)
            for space, covered in spaces_:
                rows.append(
                    {
                        "name": space.name,
                        "family": family,
                        "space_id": space.id,
                        "dim": space.dim,
                        "videos": covered,
                        "total": total,
                        "active": space.id == choice.space_id,
                        "configured": space.name == choice.configured,
                        "derived_from": None,
                    }
                )
                rows += _derived_rows(s, space, total)
    if as_json:
        emit(rows)
        return
    for row in rows:
        flags = " ".join(f for f in ("active", "configured") if row[f])
        if row["derived_from"]:
            flags = f"whitened copy of {row['derived_from']}"
        click.echo(f"{row['family']:<5} {row['name']}  {row['videos']}/{row['total']} videos  {flags}")


def _derived_rows(session: Any, base: Any, total: int) -> list[dict[str, Any]]:
    """`spaces list` rows of the whitened copies of ``base`` (they never answer by themselves)."""
    from sqlalchemy import func, select

    from video_inst.catalog.models import VideoSpace
    from video_inst.spaces.whitened import derived_spaces

    out = []
    for space in derived_spaces(session, base.name):
        covered = session.scalar(
            select(func.count()).where(VideoSpace.space_id == space.id, VideoSpace.status == "done")
        )
        out.append(
            {
                "name": space.name,
                "family": space.family,
                "space_id": space.id,
                "dim": space.dim,
                "videos": int(covered or 0),
                "total": total,
                "active": False,
                "configured": False,
                "derived_from": base.name,
            }
        )
    return out


@spaces.command("drop")
@click.argument("name")
@click.option("--force", is_flag=True, help="Drop it even while it answers searches.")
def spaces_drop(name: str, force: bool) -> None:
    """Remove model space NAME: its vectors, indexes and (DASR) tracks. Only ever on request."""
    from video_inst.ingest.reindex import drop_space

    try:
        removed = drop_space(name, force=force)
    except VideoInstError as exc:
        fail(exc)
    click.echo(f"dropped {name}: {removed['tracks']} tracks, {removed['vectors']} vectors")
    for derived in removed["derived"]:
        click.echo(f"dropped {derived} with it (a whitened copy of it)")
