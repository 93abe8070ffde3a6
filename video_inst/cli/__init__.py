"""``video-inst``: the command line editing tools and acceptance checks use.

A thin shell over the library: each command parses arguments, calls one library function
and prints JSON (``--json``) or a short table. Exit code 1 when any item failed, 2 on usage
errors. ``app`` registers the commands of ``commands`` (catalog, ingest, search, index,
spaces), ``serve`` (HTTP API, export), ``queue`` (worker, jobs, archives) and ``whiten``.

Example::

    video-inst ingest clip.mp4 --json
    video-inst shots clip.mp4 --json
"""

from video_inst.cli.app import main

__all__ = ["main"]
