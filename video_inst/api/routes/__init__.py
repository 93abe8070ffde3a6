"""The API's routers, one module per resource; each route parses, calls the library, serialises.

Example::

    from video_inst.api.routes import ROUTERS
    for router in ROUTERS:
        app.include_router(router)
"""

from __future__ import annotations

from video_inst.api.routes import health, ingest, media, saved, search, videos

ROUTERS = [search.router, saved.router, videos.router, media.router, ingest.router, health.router]
