"""The timeline search HTTP API and the editor's search page (FastAPI; docs/API.md).

Example::

    from video_inst.api import create_app
    app = create_app()          # serve with uvicorn, or `video-inst serve --port 8000`
"""

from __future__ import annotations

from typing import Any


def create_app(*args: Any, **kwargs: Any) -> Any:
    """See :func:`video_inst.api.app.create_app` (imported lazily: FastAPI only when serving)."""
    from video_inst.api.app import create_app as build

    return build(*args, **kwargs)


__all__ = ["create_app"]
