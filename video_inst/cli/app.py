"""The ``video-inst`` group: every command registered here, explicitly, in one list.

Command modules define plain click commands and never import this one, so the CLI has no
import cycle and ``python -m video_inst.cli`` sees the same commands as the script.
"""

from __future__ import annotations

import click

from video_inst.cli import commands, queue, serve, whiten
from video_inst.cli.output import route_warnings


@click.group(context_settings={"show_default": True})
@click.version_option(package_name="video_inst")
def main() -> None:
    """Find every shot that contains an object or a described subject."""
    route_warnings()


COMMANDS: tuple[click.Command, ...] = (
    commands.db,
    commands.ingest,
    commands.videos,
    commands.shots,
    commands.delete,
    commands.search_command,
    commands.report_command,
    commands.saved,
    commands.index,
    commands.demo,
    commands.reindex,
    commands.spaces,
    whiten.fit_whitening_command,
    serve.serve,
    serve.export_command,
    queue.worker,
    queue.jobs,
    queue.ingest_archive,
)
for command in COMMANDS:
    main.add_command(command)
