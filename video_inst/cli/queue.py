"""``video-inst worker``, ``video-inst jobs`` and ``video-inst ingest-archive``: the queue commands.

Registered on the ``video-inst`` group by ``video_inst.cli.app``.

Example::

    video-inst worker --queues ingest,analyse,index --concurrency 2
    video-inst ingest-archive /media/archive --pattern '*.mov' --wait --json
    video-inst jobs --json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from video_inst.cli.output import Counter, emit, fail
from video_inst.config import get_settings
from video_inst.errors import VideoInstError


@click.command()
@click.option(
    "--queues",
    default="ingest,analyse,index",
    show_default=True,
    help="Comma-separated logical queues (ingest: plan; analyse: DASR/CLIP; index: the commit).",
)
@click.option("--concurrency", "-c", type=int, default=None, help="Worker processes (default: CPU count).")
@click.option(
    "--pool",
    "-P",
    type=click.Choice(["prefork", "solo", "threads"]),
    default="prefork",
    show_default=True,
    help="solo: one task at a time in this process (tests, debugging).",
)
@click.option("--loglevel", "-l", default="INFO", show_default=True)
@click.option("--hostname", "-n", default=None, help="Node name (default video-inst-<pid>@<host>).")
def worker(queues: str, concurrency: int | None, pool: str, loglevel: str, hostname: str | None) -> None:
    """Run a Celery worker for the current settings (broker, catalog, media roots)."""
    from workers.app import run_worker

    try:
        run_worker(
            [q.strip() for q in queues.split(",") if q.strip()],
            concurrency=concurrency,
            pool=pool,
            loglevel=loglevel,
            hostname=hostname,
        )
    except VideoInstError as exc:
        fail(exc)


def _job_line(job: dict[str, Any]) -> str:
    progress = f"{job['progress'] * 100:5.1f}%"
    line = f"{job['job_id']}  {job['kind']:7} {job['status']:7} {progress}  {job['path'] or ''}"
    if job["error"]:
        line += f"\n    error: {job['error']}"
    return line


@click.command()
@click.argument("job_id", required=False)
@click.option("--json", "as_json", is_flag=True, help="JSON: a list of jobs, or one job (with its report).")
@click.option(
    "--status", "statuses", multiple=True, type=click.Choice(["queued", "running", "done", "failed"])
)
@click.option("--parent", "parent_id", default=None, help="Only the files of this archive job.")
@click.option("--limit", type=int, default=50, show_default=True)
def jobs(
    job_id: str | None, as_json: bool, statuses: tuple[str, ...], parent_id: str | None, limit: int
) -> None:
    """List jobs (newest first) or show one: status, progress, counts, error, timestamps."""
    from video_inst.catalog.db import get_catalog
    from video_inst.jobs import archive, pipeline, state

    catalog = get_catalog(get_settings())
    if job_id:
        try:
            job = state.require_job(catalog, job_id)
        except VideoInstError as exc:
            fail(exc)
            return
        if job["kind"] == "archive":
            job["report"] = archive.report_of(catalog, job_id)
        elif job["kind"] == "ingest":
            job["result"] = pipeline.result_of(job)
        if as_json:
            emit(job)
        else:
            click.echo(_job_line(job))
            click.echo(json.dumps(job.get("report") or job["counts"], indent=2))
        return
    rows = state.list_jobs(catalog, status=statuses or None, parent_id=parent_id, limit=limit)
    if as_json:
        emit(rows)
        return
    for job in rows:
        click.echo(_job_line(job))


def _print_report(report: dict[str, Any], run: dict[str, Any] | None) -> None:
    status = report["status"] if report["status"] in ("done", "failed") else "queued (workers will finish it)"
    click.echo(f"archive {report['root']}  job {report['job_id']}  {status}")
    click.echo(
        f"  files {report['files']}  ingested {report['ingested']}  skipped {report['skipped']}  "
        f"failed {report['failed']}  pending {report['pending']}"
    )
    if run and run.get("resumed"):
        click.echo("  (resumed an interrupted run)")
    for failure in report["failures"]:
        click.echo(f"  failed: {failure['error']}")


@click.command("ingest-archive")
@click.argument("root", type=click.Path(path_type=Path))
@click.option("--pattern", default=None, help="Glob on file names (or on relative paths if it has '/').")
@click.option("--wait", is_flag=True, help="Wait until every file has been ingested or has failed.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object.")
@click.option("--force", is_flag=True, help="Ingest again content that is already in the catalog.")
@click.option("--no-analyse", is_flag=True, help="Shots and keyframes only (no DASR / CLIP).")
@click.option("--callback-url", default=None, help="POST the archive's report here when it ends.")
@click.option(
    "--in-process", is_flag=True, help="Ingest here, one file after another (no broker, no workers)."
)
@click.option(
    "--timeout", "timeout_s", type=float, default=None, help="Give up waiting after this many seconds."
)
def ingest_archive(
    root: Path,
    pattern: str | None,
    wait: bool,
    as_json: bool,
    force: bool,
    no_analyse: bool,
    callback_url: str | None,
    in_process: bool,
    timeout_s: float | None,
) -> None:
    """Walk ROOT, skip content already ingested, queue the rest, and report.

    Run again after an interruption, it resumes. Only folders under the configured media
    roots are accepted. Exit code 1 when any file failed.
    """
    from video_inst.catalog.db import get_catalog
    from video_inst.jobs import archive
    from video_inst.jobs.callback import valid_callback_url

    if callback_url and not valid_callback_url(callback_url):
        raise click.BadParameter("must be http(s)://host[:port]/path", param_hint="--callback-url")
    settings = get_settings()
    catalog = get_catalog(settings)
    tty = sys.stderr.isatty() and not as_json
    walk_bar = Counter("walk", tty)
    try:
        run = archive.run_archive(
            root,
            pattern=pattern,
            force=force,
            analyse=not no_analyse,
            callback_url=callback_url,
            in_process=in_process,
            settings=settings,
            catalog=catalog,
            progress=lambda c: walk_bar.update(
                c["files"], postfix=f"queued {c['enqueued']} skipped {c['skipped']} failed {c['failed']}"
            ),
        )
    except VideoInstError as exc:
        walk_bar.close()
        fail(exc)
        return
    walk_bar.close()
    if wait and not in_process:
        wait_bar = Counter("ingest", tty)
        try:
            report = archive.wait_archive(
                run.job_id,
                timeout_s=timeout_s,
                settings=settings,
                catalog=catalog,
                progress=lambda done, total: wait_bar.update(done, total),
            )
        except VideoInstError as exc:
            wait_bar.close()
            fail(exc)
            return
        wait_bar.close()
    else:
        report = archive.report_of(catalog, run.job_id)
    report["walk"] = run.summary()
    report["skipped_paths"] = run.skipped
    if as_json:
        emit(report)
    else:
        _print_report(report, run.summary())
    sys.exit(1 if report["failed"] else 0)
