"""Saved searches: a query kept by name that answers again later and watches new footage.

Saving runs the query once and keeps what it searched with: the DASR query vectors (crop,
exemplars and relevance feedback already folded in, see ``search.searcher.Query``) with their model
space, and the JSON fields (text, label, min_score, top_k). A saved crop query therefore
answers without its images. After every committed ingest, :func:`watch_video` searches the
new video with each watching saved search; hits at or above the search's threshold (default:
the query's weak-score threshold when it was saved, ``searcher.weak_rule``: the mode's floor
measured on distractor shots, or its share of the query's best match if higher) are stored as
a match and returned, so the job result and its callback say which saved searches found their
object, with the hits.

Example::

    saved = save_search(Query(image=rgb, box=(10, 20, 200, 180), positives=[42]), "red kite")
    run_saved("red kite").hits
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from sqlalchemy import select

from video_inst.catalog.db import Catalog, get_catalog
from video_inst.catalog.models import SavedSearch, SavedSearchMatch
from video_inst.config import Settings, get_settings
from video_inst.errors import InvalidQueryError, NotFoundError, VideoInstError
from video_inst.search.searcher import Query, Searcher, SearchResult, shared_searcher, weak_threshold
from video_inst.vectors.codec import decode_one, encode_one

log = logging.getLogger(__name__)

FIELDS = ("text", "label", "min_score", "top_k")
WATCH_TOP_K = 20  # hits of one saved search kept per new video


def saved_json(row: SavedSearch) -> dict[str, Any]:
    return {
        "saved_search_id": row.id,
        "name": row.name,
        "query": dict(row.query),
        "space": row.space_name,
        "vectors": len(row.vectors or []),
        "threshold": row.threshold,
        "watch": row.watch,
        "created_at": row.created_at.isoformat() if row.created_at else None,
    }


def save_search(
    query: Query,
    name: str,
    *,
    settings: Settings | None = None,
    catalog: Catalog | None = None,
    searcher: Searcher | None = None,
    threshold: float | None = None,
    watch: bool = True,
) -> tuple[dict[str, Any], SearchResult]:
    """Run ``query``, keep it as ``name`` (a new name, or replace that one); (saved JSON, its result)."""
    settings = settings or get_settings()
    catalog = catalog or get_catalog(settings)
    name = name.strip()
    if not name or len(name) > 200:
        raise InvalidQueryError("a saved search needs a name of 1 to 200 characters")
    searcher = searcher or shared_searcher(settings)
    result = searcher.search(query)
    vectors = result.query_vectors
    fields = {k: getattr(query, k) for k in FIELDS if getattr(query, k) is not None}
    if not vectors and not (query.text and query.text.strip()):
        raise InvalidQueryError("nothing to save: the query searched no model space")
    if threshold is None:  # the query's own weak rule when it has one (its share of its best match)
        threshold = (
            result.weak_below
            if result.weak_below is not None
            else weak_threshold("image" if vectors else result.mode, settings)
        )
    with catalog.session() as s:
        row = s.scalars(select(SavedSearch).where(SavedSearch.name == name)).first() or SavedSearch(name=name)
        row.query = fields
        row.space_name = result.spaces.get("dasr") if vectors else None
        row.dim = int(vectors[0].shape[0]) if vectors else None
        row.vectors = [encode_one(v).hex() for v in vectors]
        row.threshold = threshold
        row.watch = watch
        s.add(row)
        s.commit()
        return saved_json(row), result


def _find(session: Any, ref: int | str) -> SavedSearch:
    row = None
    if isinstance(ref, int) or str(ref).isdigit():
        row = session.get(SavedSearch, int(ref))
    if row is None:
        row = session.scalars(select(SavedSearch).where(SavedSearch.name == str(ref))).first()
    if row is None:
        raise NotFoundError(f"no saved search {ref!r}")
    return row


def list_saved(catalog: Catalog | None = None) -> list[dict[str, Any]]:
    with (catalog or get_catalog()).session() as s:
        return [saved_json(r) for r in s.scalars(select(SavedSearch).order_by(SavedSearch.id))]


def delete_saved(ref: int | str, catalog: Catalog | None = None) -> int:
    with (catalog or get_catalog()).session() as s:
        row = _find(s, ref)
        saved_id = row.id
        s.delete(row)
        s.commit()
        return saved_id


def query_of(row: SavedSearch, **overrides: Any) -> Query:
    """The saved search as a Query (stored vectors instead of images); ``overrides`` e.g. video_ids."""
    fields = {k: v for k, v in dict(row.query).items() if k in FIELDS}
    vectors = [decode_one(bytes.fromhex(h), int(row.dim)) for h in row.vectors or []] if row.dim else []
    fields.update(overrides)
    return Query(vectors=[np.asarray(v) for v in vectors], vectors_space=row.space_name, **fields)


def run_saved(
    ref: int | str, *, settings: Settings | None = None, catalog: Catalog | None = None, **overrides: Any
) -> SearchResult:
    settings = settings or get_settings()
    catalog = catalog or get_catalog(settings)
    with catalog.session() as s:
        query = query_of(_find(s, ref), **overrides)
    return shared_searcher(settings).search(query)


def matches_of(ref: int | str, catalog: Catalog | None = None) -> list[dict[str, Any]]:
    with (catalog or get_catalog()).session() as s:
        row = _find(s, ref)
        rows = s.scalars(
            select(SavedSearchMatch)
            .where(SavedSearchMatch.saved_search_id == row.id)
            .order_by(SavedSearchMatch.id)
        )
        return [
            {
                "saved_search_id": row.id,
                "name": row.name,
                "video_id": m.video_id,
                "hits": list(m.hits),
                "created_at": m.created_at.isoformat() if m.created_at else None,
            }
            for m in rows
        ]


def watch_video(
    video_id: int, settings: Settings, catalog: Catalog
) -> tuple[list[dict[str, Any]], list[str]]:
    """Search the newly ingested ``video_id`` with every watching saved search: (matches, warnings).

    A match is ``{"saved_search_id", "name", "threshold", "hits": [hit JSON]}``, stored in
    ``saved_search_matches`` (a re-ingest replaces that video's rows). A saved search that
    cannot answer now (its model space no longer answers crop searches) is a warning, never a
    failed ingest: the video is already in the catalog.
    """
    with catalog.session() as s:
        rows = list(
            s.scalars(select(SavedSearch).where(SavedSearch.watch.is_(True)).order_by(SavedSearch.id))
        )
        if not rows:
            return [], []
        s.query(SavedSearchMatch).filter(SavedSearchMatch.video_id == video_id).delete()
        s.commit()
        queries = [
            (r.id, r.name, r.threshold, query_of(r, video_ids=[video_id], top_k=WATCH_TOP_K)) for r in rows
        ]
    searcher = shared_searcher(settings)
    matches: list[dict[str, Any]] = []
    warnings: list[str] = []
    for saved_id, name, threshold, query in queries:
        query.min_score = threshold if threshold is not None else query.min_score
        try:
            result = searcher.search(query)
        except VideoInstError as exc:
            warnings.append(f"saved search {name!r} not checked: {exc.message}")
            continue
        hits = [h.to_json() for h in result.hits if h.video_id == video_id]
        if not hits:
            continue
        matches.append({"saved_search_id": saved_id, "name": name, "threshold": threshold, "hits": hits})
    if matches:
        with catalog.session() as s:
            for m in matches:
                s.add(
                    SavedSearchMatch(saved_search_id=m["saved_search_id"], video_id=video_id, hits=m["hits"])
                )
            s.commit()
    return matches, warnings
