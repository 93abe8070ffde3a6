"""Whitened DASR model spaces: derived from a base space by a fitted PCA-whitening, kept complete.

A whitened space is a model space of its own (``<base>+pcaw<dim>-<digest>``, family
``dasr``, the npz in ``model_spaces.whitening``, ``params.base_space`` naming its base), so
its vectors never mix with the base's and its FAISS indexes are separate files. Its
vectors are a pure transform of the stored base vectors: :func:`fit_whitened_space` fits
on a random sample of base region and track vectors, then fills the space one video per
transaction (recorded in ``video_spaces``, so an interrupted run resumes) without decoding
anything; the base space stays untouched and searchable throughout. New ingests add their
whitened vectors in the same transaction as the base ones (:func:`add_whitened_vectors`).
Search uses a whitened space only once it covers every video of its base
(:func:`choose_whitened_space`).

Example::

    report = fit_whitened_space(settings=settings, sample=50_000, dim=256, seed=0)
    print(report.space, report.sample, report.sample_videos, len(report.done))
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import delete, select
from sqlalchemy.orm import Session, defer

from video_inst.catalog import repo
from video_inst.catalog.db import Catalog, get_catalog
from video_inst.catalog.models import ModelSpace, Vector, Video, VideoSpace
from video_inst.config import Settings, get_settings
from video_inst.spaces.active import while_coverage_unchanged
from video_inst.spaces.whitening import DEFAULT_SHRINKAGE, Whitening, WhiteningError, fit_whitening
from video_inst.vectors.codec import decode, encode, l2n

log = logging.getLogger(__name__)

KINDS = ("region", "track")  # the DASR vector kinds; one whitening serves both (both are regions)
SYNC_EVERY = 20  # videos between index syncs while filling, so a long run is searchable sooner
_CHUNK = 900

_CACHE: dict[str, Whitening] = {}  # by space name: the name carries the digest of the parameters
_CACHE_LOCK = threading.Lock()


@dataclass
class FitReport:
    """What ``fit-whitening`` did: the space, the sample it was fitted on, the videos it filled."""

    base: str
    space: str
    space_id: int
    dim: int
    resumed: bool
    sample: int
    sample_videos: int
    shrinkage: float = 0.0  # the value used (Ledoit-Wolf's when it chose)
    vectors: int = 0
    done: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)
    vanished: list[int] = field(default_factory=list)


def derived_name(base_name: str, whitening: Whitening) -> str:
    """``<base>+pcaw<dim>-<digest>``: a new fit is a new space, never a silent change of one."""
    from video_inst.models.space_names import whitened_name

    return whitened_name(base_name, whitening.out_dim, whitening.digest())


def whitening_of(space: ModelSpace) -> Whitening:
    """The space's fitted whitening (parsed once per process)."""
    with _CACHE_LOCK:
        cached = _CACHE.get(space.name)
    if cached is None:
        if not space.whitening:
            raise WhiteningError(f"model space {space.name!r} has no whitening")
        cached = Whitening.from_bytes(bytes(space.whitening))
        with _CACHE_LOCK:
            _CACHE[space.name] = cached
    return cached


def derived_spaces(session: Session, base_name: str) -> list[ModelSpace]:
    """Whitened spaces derived from ``base_name``, newest first."""
    rows = session.scalars(
        select(ModelSpace)
        .options(defer(ModelSpace.whitening))  # megabytes each: loaded only when not yet cached
        .where(ModelSpace.family == "dasr", ModelSpace.whitening.is_not(None))
        .order_by(ModelSpace.created_at.desc(), ModelSpace.id.desc())
    )
    return [r for r in rows if (r.params or {}).get("base_space") == base_name]


def _done_videos(session: Session, space_id: int) -> set[int]:
    return set(
        session.scalars(
            select(VideoSpace.video_id).where(VideoSpace.space_id == space_id, VideoSpace.status == "done")
        )
    )


def missing_videos(session: Session, base: ModelSpace, derived: ModelSpace) -> list[int]:
    """Videos with vectors in the base space but not yet in the derived one."""
    return sorted(_done_videos(session, base.id) - _done_videos(session, derived.id))


def choose_whitened_space(session: Session, base_name: str, setting: str) -> ModelSpace | None:
    """The whitened space that answers instead of ``base_name``, or None for the base itself.

    ``setting`` is ``Settings.dasr_whitening``: "off" never whitens; "auto" takes the newest
    derived space that covers every video of the base; any other value names one derived
    space, used only while it covers every video (else the base answers).
    """
    if setting == "off":
        return None

    # Cached like spaces.active_space: the choice compares whole done-video sets, which every
    # crop query would otherwise read again; any ingest, fill or drop changes the fingerprint.
    def chosen_id() -> int | None:
        chosen = _choose_whitened(session, base_name, setting)
        return None if chosen is None else int(chosen.id)

    space_id = while_coverage_unchanged(session, ("whitened", base_name, setting), chosen_id)
    return (
        None if space_id is None else session.get(ModelSpace, space_id, options=[defer(ModelSpace.whitening)])
    )


def _choose_whitened(session: Session, base_name: str, setting: str) -> ModelSpace | None:
    spaces = derived_spaces(session, base_name)
    if setting != "auto":
        spaces = [s for s in spaces if s.name == setting]
    if not spaces:
        return None
    base = session.scalars(select(ModelSpace).where(ModelSpace.name == base_name)).first()
    if base is None:
        return None
    wanted = _done_videos(session, base.id)
    for space in spaces:
        if wanted <= _done_videos(session, space.id):
            return space
    return None


# --- fitting ------------------------------------------------------------------------------------


def sample_vectors(
    session: Session, base: ModelSpace, n: int, seed: int, video_ids: list[int] | None = None
) -> tuple[np.ndarray, int]:
    """Up to ``n`` base region/track vectors drawn uniformly at random; (vectors, distinct videos).

    ``video_ids``: draw only from these videos (a sample kept apart from the data searched).
    """
    rows = session.execute(
        select(Vector.id, Vector.video_id).where(Vector.space_id == base.id, Vector.kind.in_(KINDS))
    ).all()
    if not rows:
        return np.zeros((0, base.dim), dtype=np.float32), 0
    ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    videos = np.fromiter((r[1] for r in rows), dtype=np.int64, count=len(rows))
    order = np.argsort(ids)
    ids, videos = ids[order], videos[order]
    if video_ids is not None:
        keep = np.isin(videos, np.asarray(video_ids, dtype=np.int64))
        ids, videos = ids[keep], videos[keep]
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(len(ids), size=min(int(n), len(ids)), replace=False))
    chosen = ids[pick]
    blobs: dict[int, bytes] = {}
    for start in range(0, len(chosen), _CHUNK):
        chunk = [int(i) for i in chosen[start : start + _CHUNK]]
        blobs.update(
            (int(i), bytes(d))
            for i, d in session.execute(select(Vector.id, Vector.data).where(Vector.id.in_(chunk)))
        )
    vecs = decode([blobs[int(i)] for i in chosen], base.dim)
    return vecs, int(len(np.unique(videos[pick])))


def _base_space(session: Session, base_name: str) -> ModelSpace:
    base = session.scalars(select(ModelSpace).where(ModelSpace.name == base_name)).first()
    if base is None:
        raise WhiteningError(f"no model space {base_name!r} in the catalog: ingest videos first")
    if base.whitening is not None:
        raise WhiteningError(f"model space {base_name!r} is itself whitened; fit on its base space")
    return base


def _resumable(session: Session, base: ModelSpace, dim: int, shrinkage: float | None) -> ModelSpace | None:
    """The newest derived space with these settings that an earlier run left incomplete."""
    for space in derived_spaces(session, base.name):
        w = (space.params or {}).get("whitening", {})
        same = (
            w.get("shrinkage_rule") == "ledoit-wolf" if shrinkage is None else w.get("shrinkage") == shrinkage
        )
        if space.dim == dim and same and missing_videos(session, base, space):
            return space
    return None


def fit_whitened_space(
    *,
    settings: Settings | None = None,
    catalog: Catalog | None = None,
    base_name: str | None = None,
    sample: int = 50_000,
    dim: int | None = None,
    seed: int = 0,
    shrinkage: float | None = DEFAULT_SHRINKAGE,
    refit: bool = False,
    sample_videos: list[int] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> FitReport:
    """Fit a whitening of the base DASR space (default: the configured one) and fill its derived space.

    An incomplete derived space with the same dim and shrinkage is resumed instead of refitted
    (``refit`` forces a new fit); ``shrinkage`` None is Ledoit-Wolf. ``sample_videos`` limits
    the sample to those videos. Too few stored vectors for ``dim`` raises WhiteningError before
    anything is written.
    """
    from video_inst.vectors.store import get_index_store

    settings = settings or get_settings()
    catalog = catalog or get_catalog(settings)
    if base_name is None:
        from video_inst.models.loading import load_dasr

        base_name = load_dasr(settings, device="cpu").space_name
    if sample < 2:
        raise WhiteningError(f"--sample must be at least 2, got {sample}")
    store = get_index_store(settings)
    with catalog.session() as s:
        base = _base_space(s, base_name)
        out_dim = int(dim or base.dim)
        if not 1 <= out_dim <= base.dim:
            raise WhiteningError(f"--dim must be between 1 and {base.dim} (the base space's), got {dim}")
        space = None if refit else _resumable(s, base, out_dim, shrinkage)
        if space is not None:
            w = space.params["whitening"]
            report = FitReport(
                base=base.name,
                space=space.name,
                space_id=int(space.id),
                dim=space.dim,
                resumed=True,
                sample=int(w["sample"]),
                sample_videos=int(w["sample_videos"]),
                shrinkage=float(w["shrinkage"]),
            )
        else:
            vecs, n_videos = sample_vectors(s, base, sample, seed, sample_videos)
            if len(vecs) <= out_dim:
                raise WhiteningError(
                    f"too few vectors to fit a {out_dim}-dimensional whitening of {base.name}: "
                    f"{len(vecs)} stored region/track vectors from {n_videos} videos, at least "
                    f"{out_dim + 1} needed (ingest more videos or pass a smaller --dim)"
                )
            whitening = fit_whitening(vecs, out_dim, shrinkage)
            name = derived_name(base.name, whitening)
            space = s.scalars(select(ModelSpace).where(ModelSpace.name == name)).first()
            if space is None:
                params = {
                    "base_space": base.name,
                    "base_space_id": int(base.id),
                    "whitening": {
                        "method": "pca",
                        "dim": out_dim,
                        "shrinkage": whitening.shrinkage,
                        "shrinkage_rule": "ledoit-wolf" if shrinkage is None else "fixed",
                        "sample": int(len(vecs)),
                        "sample_videos": n_videos,
                        "seed": int(seed),
                        "sample_from": sorted(sample_videos) if sample_videos is not None else "all",
                        "kinds": list(KINDS),
                        "digest": whitening.digest(),
                    },
                }
                space = store.ensure_space(s, name, "dasr", out_dim, params)
                space.whitening = whitening.to_bytes()
            report = FitReport(
                base=base.name,
                space=name,
                space_id=int(space.id),
                dim=out_dim,
                resumed=False,
                sample=int(len(vecs)),
                sample_videos=n_videos,
                shrinkage=float((space.params or {})["whitening"]["shrinkage"]),
            )
    fill_whitened_space(report, settings=settings, catalog=catalog, progress=progress)
    return report


# --- filling ------------------------------------------------------------------------------------


def _transform_video(session: Session, store: Any, base: ModelSpace, space: ModelSpace, video_id: int) -> int:
    """Replace the derived vectors of one video by the whitened base vectors; returns how many."""
    whitening = whitening_of(space)
    session.execute(
        delete(Vector)
        .where(Vector.space_id == space.id, Vector.video_id == video_id)
        .execution_options(synchronize_session=False)
    )
    written = 0
    for kind in KINDS:
        rows = session.execute(
            select(Vector.owner_id, Vector.data)
            .where(Vector.space_id == base.id, Vector.kind == kind, Vector.video_id == video_id)
            .order_by(Vector.owner_id)
        ).all()
        if rows:
            vecs = whitening.apply(decode([bytes(d) for _, d in rows], base.dim))
            owners = [int(o) for o, _ in rows]
            store.add_vectors(session, space, kind, owners, [video_id] * len(owners), vecs)
            written += len(owners)
    repo.mark_video_space(session, video_id=video_id, space_id=space.id, status="done")
    return written


def fill_whitened_space(
    report: FitReport,
    *,
    settings: Settings | None = None,
    catalog: Catalog | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> FitReport:
    """Give every video of the base its whitened vectors, one transaction per video, then sync."""
    from video_inst.vectors.store import get_index_store

    settings = settings or get_settings()
    catalog = catalog or get_catalog(settings)
    store = get_index_store(settings)
    with catalog.session() as s:
        base = s.scalars(select(ModelSpace).where(ModelSpace.name == report.base)).one()
        space = s.get(ModelSpace, report.space_id)
        pending = missing_videos(s, base, space)
        report.skipped = sorted(_done_videos(s, space.id))
    try:
        for n, video_id in enumerate(pending):
            with catalog.session() as s:
                if s.get(Video, video_id) is None:
                    report.vanished.append(video_id)  # deleted since the list was read
                else:
                    base = s.scalars(select(ModelSpace).where(ModelSpace.name == report.base)).one()
                    space = s.get(ModelSpace, report.space_id)
                    report.vectors += _transform_video(s, store, base, space, video_id)
                    report.done.append(video_id)
            if progress:
                progress(n + 1, len(pending))
            if (n + 1) % SYNC_EVERY == 0:
                _sync(store, report.space_id)
    finally:
        _sync(store, report.space_id)
    return report


def _sync(store: Any, space_id: int) -> None:
    for kind in KINDS:
        store.sync(space_id, kind)


# --- ingest -------------------------------------------------------------------------------------


def add_whitened_vectors(
    session: Session,
    store: Any,
    base: ModelSpace,
    video_id: int,
    by_kind: dict[str, tuple[list[int], np.ndarray]],
) -> set[tuple[int, str]]:
    """Write a new video's vectors into every whitened space of ``base`` (caller's transaction).

    The vectors are rounded through float16 first, exactly as the base stores them, so an
    ingested video gets the same bytes ``fit-whitening`` would derive from its stored vectors.
    Returns the (space id, kind) indexes to sync after the commit.
    """
    touched: set[tuple[int, str]] = set()
    for space in derived_spaces(session, base.name):
        whitening = whitening_of(space)
        for kind, (owners, vectors) in by_kind.items():
            if len(owners):
                stored = decode(encode(l2n(vectors)), base.dim)
                store.add_vectors(
                    session, space, kind, owners, [video_id] * len(owners), whitening.apply(stored)
                )
                touched.add((int(space.id), kind))
        # Insert, or update on a re-ingest.
        repo.mark_video_space(session, video_id=video_id, space_id=space.id, status="done")
    return touched


# --- search -------------------------------------------------------------------------------------


def route_query(
    session: Session, space: ModelSpace, vector: np.ndarray, setting: str
) -> tuple[ModelSpace, np.ndarray]:
    """The space a DASR query vector of ``space`` is searched in, and the vector to search with.

    A complete whitened space chosen by :func:`choose_whitened_space` answers with the
    query whitened the same way as its stored vectors; otherwise the base answers unchanged.
    """
    derived = None if space.whitening is not None else choose_whitened_space(session, space.name, setting)
    if derived is None:
        return space, vector
    return derived, whitening_of(derived).apply(vector)[0]
