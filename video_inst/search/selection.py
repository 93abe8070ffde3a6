"""The hits an export of a search writes when the editor picked or rejected some (selects).

Picks and rejects name hits by ``track_id``. The editor may have picked them on any page of the
answer, so picks are looked up among the query's first ``max_top_k`` hits (from offset 0);
without picks, the exported hits are the query's own page (offset, top_k) as answered, less the
rejected ones (a rejected id that is not on the page must still be one of those hits).
The API's ``POST /export`` and ``video-inst export`` both call :func:`selected_hits`.

Example::

    hits, result = selected_hits(Query(text="bird"), picks=[12, 7], settings=settings)
    export_file(hits, "fcpxml", selects=SelectOptions(handles=12))
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from video_inst.config import Settings, get_settings
from video_inst.export.selects import choose
from video_inst.hits import Hit
from video_inst.search.searcher import Query, SearchResult, search


def selected_hits(
    query: Query,
    *,
    picks: Sequence[int] = (),
    rejects: Sequence[int] = (),
    settings: Settings | None = None,
) -> tuple[list[Hit], SearchResult]:
    """(the hits to export in the selection's order, the search result they came from).

    Raises ``ExportError`` (422) for an id that is not among the hits, a repeated id, or a track
    both picked and rejected; the search's own errors as ``search`` raises them.
    """
    settings = settings or get_settings()
    if not picks:
        # The page as answered (a wider search may rank one more shot in: it fetches more).
        result = search(query, settings=settings)
        shown = {h.track_id for h in result.hits}
        if any(r not in shown for r in rejects):  # rejected on another page, or not a hit at all
            choose(_pool(query, settings).hits, rejects=rejects)  # raises for an unknown id
        return choose(result.hits, rejects=[r for r in rejects if r in shown]), result
    query.validate(settings)  # the caller's own top_k / offset are checked before they are widened
    pool = _pool(query, settings)
    return choose(pool.hits, picks=picks, rejects=rejects), pool


def _pool(query: Query, settings: Settings) -> SearchResult:
    """The query's first ``max_top_k`` hits: where picks from any page are found."""
    return search(replace(query, offset=0, top_k=settings.max_top_k), settings=settings)
