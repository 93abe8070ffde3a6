"""Which model space answers a search, per family: the one rule every reader calls.

Every vector (and every track) records the model space that made it, and an index never
mixes spaces. After the settings name a new CLIP model, backbone or DASR parameter, the
catalog holds the old space (complete) and the new one (filling up while ``video-inst
reindex`` runs). :func:`active_space` picks, per family:

1. the configured space when it covers every ingested video;
2. else the most recent space that covers every ingested video (the old one during a switch);
3. else the space covering the most videos (ties: the configured one, then the most recent),
   with a note that says how many videos it lacks (a video ingested during a switch is
   written in the configured space only, so the old space misses it until the switch ends).

Search, the track / video endpoints and the exports all read through this, so they show
one space at a time. A derived space (PCA-whitened copies of a DASR space, whitened_spaces.py)
holds no tracks and never answers by itself: :func:`coverage` leaves it out, and search routes
a DASR query to it only when the settings allow and it covers its base.

Example::

    with catalog.session() as s:
        choice = active_space(s, "dasr", settings)
        print(choice.name, choice.covered, choice.total, choice.note)
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from video_inst.catalog.models import IndexState, ModelSpace, Video, VideoSpace
from video_inst.config import Settings
from video_inst.errors import WeightsMissingError

FAMILIES = ("dasr", "clip")
_REINDEX = {"dasr": "video-inst reindex --space dasr", "clip": "video-inst reindex --space clip"}


@dataclass(frozen=True)
class SpaceChoice:
    """The space of one family that answers, and how complete it and the configured one are."""

    family: str
    configured: str  # the space name the settings (or the loaded model) ask for
    space_id: int | None  # None: no space of this family holds any video
    name: str | None
    dim: int
    covered: int  # ingested videos with vectors in the chosen space
    total: int  # ingested videos
    configured_covered: int

    @property
    def complete(self) -> bool:
        return self.space_id is not None and self.covered >= self.total

    @property
    def fallback(self) -> bool:
        """True while an older space answers instead of the configured one."""
        return self.space_id is not None and self.name != self.configured

    @property
    def note(self) -> str | None:
        """What a search result tells the user when the answer is not the configured space's alone."""
        if self.space_id is None:
            return None
        parts = []
        if self.fallback:
            parts.append(
                f"{self.family} answered from model space {self.name}: the configured {self.configured} "
                f"covers {self.configured_covered} of {self.total} videos "
                f"(re-index: `{_REINDEX[self.family]}`)"
            )
        if not self.complete:
            missing = self.total - self.covered
            parts.append(
                f"{missing} video{'s' if missing != 1 else ''} not yet in model space {self.name}"
                + ("" if self.fallback else f" (`{_REINDEX[self.family]}`)")
            )
        return "; ".join(parts) or None


def clip_space_name(settings: Settings) -> str:
    """The CLIP model space the settings ask for (same string as ``ClipEmbedder.space_name``)."""
    from video_inst.models.space_names import clip_name

    return clip_name(settings.clip_model, settings.clip_pretrained)


def configured_space_name(settings: Settings, family: str) -> str:
    """The space name the settings ask for, without loading a model (same string the model gives)."""
    if family == "clip":
        return clip_space_name(settings)
    if family != "dasr":
        raise ValueError(f"unknown model family {family!r}; one of {FAMILIES}")
    from video_inst.models.dasr_params import DasrParams

    model_id = settings.backbone
    if settings.backbone == "resnet50":
        from video_inst.models.weights import resnet50_model_id, resnet50_weights

        try:
            model_id = resnet50_model_id(resnet50_weights(settings))
        except WeightsMissingError:
            model_id = "resnet50"  # no such space can exist: nothing was embedded without weights
    params = DasrParams(
        input_size=settings.dasr_input_size,
        pooling=settings.dasr_pooling,
        tiles=settings.dasr_tiles,
        tile_mode=settings.dasr_tile_mode,
        tile_size=settings.dasr_tile_size,
    )
    return params.space_name(model_id)


def coverage(session: Session, family: str) -> tuple[int, list[tuple[ModelSpace, int]]]:
    """(ingested videos, [(space, videos done in it)]) for every space of a family, newest first."""
    total = int(session.scalar(select(func.count()).select_from(Video).where(Video.status == "done")) or 0)
    # video_spaces rows exist only for ingested videos (a re-ingest replaces them in the same
    # transaction that marks the video done), so no join with videos: a search pays this per family.
    done = dict(
        session.execute(
            select(VideoSpace.space_id, func.count())
            .where(VideoSpace.status == "done")
            .group_by(VideoSpace.space_id)
        ).all()
    )
    spaces = session.scalars(
        # whitened copies (docs/VECTORS.md) derive from a base space and hold no tracks: never "active"
        select(ModelSpace)
        .where(ModelSpace.family == family, ModelSpace.whitening.is_(None))
        .order_by(ModelSpace.id.desc())
    ).all()
    return total, [(space, int(done.get(space.id, 0))) for space in spaces]


# Changes whenever coverage can: every ingest, re-index, delete or drop writes rows and syncs an
# index (``index_state.generation``). One statement of index lookups, the same at any size; built
# once, since building it costs more than running it.
COVERAGE_FINGERPRINT = select(
    select(func.count()).select_from(IndexState).scalar_subquery(),
    select(func.sum(IndexState.generation)).scalar_subquery(),
    select(func.max(VideoSpace.id)).scalar_subquery(),
    select(func.max(Video.id)).scalar_subquery(),
    select(func.max(ModelSpace.id)).scalar_subquery(),
)


_CACHE: dict[tuple, tuple[tuple, Any]] = {}  # (catalog url, *key) -> (fingerprint, value)
_CACHE_LOCK = threading.Lock()


def active_space(
    session: Session, family: str, settings: Settings, configured: str | None = None
) -> SpaceChoice:
    """The space of ``family`` that answers now (rules in the module docstring).

    ``configured`` overrides the settings' space name (a process that loaded an explicit model).
    The answer is cached per catalog until ``COVERAGE_FINGERPRINT`` changes: counting coverage
    costs ~10 ms per family at 10,000 videos (scripts/bench_spaces.py), paid by every search.
    """
    configured = configured or configured_space_name(settings, family)
    return while_coverage_unchanged(
        session, ("active", family, configured), lambda: _choose(session, family, configured)
    )


def while_coverage_unchanged(session: Session, key: tuple, compute: Callable[[], Any]) -> Any:
    """``compute()``, cached per catalog and ``key`` until ``COVERAGE_FINGERPRINT`` changes.

    For choices that read coverage (whole done-video sets) but change only when it does.
    """
    key = (session.get_bind().url, *key)
    fingerprint = tuple(session.execute(COVERAGE_FINGERPRINT).one())
    with _CACHE_LOCK:
        hit = _CACHE.get(key)
    if hit is not None and hit[0] == fingerprint:
        return hit[1]
    value = compute()
    with _CACHE_LOCK:
        _CACHE[key] = (fingerprint, value)
    return value


def _choose(session: Session, family: str, configured: str) -> SpaceChoice:
    total, spaces = coverage(session, family)
    by_name = {space.name: (space, n) for space, n in spaces}
    configured_covered = by_name.get(configured, (None, 0))[1]
    candidates = [(space, n) for space, n in spaces if n > 0]  # newest first
    chosen: tuple[ModelSpace, int] | None = None
    if configured in by_name and configured_covered >= total and configured_covered > 0:
        chosen = by_name[configured]
    elif candidates:
        complete = [c for c in candidates if c[1] >= total]
        if complete:
            chosen = complete[0]
        else:
            chosen = max(candidates, key=lambda c: (c[1], c[0].name == configured, c[0].id))
    if chosen is None:
        return SpaceChoice(family, configured, None, None, 0, 0, total, configured_covered)
    space, covered = chosen
    return SpaceChoice(
        family, configured, int(space.id), space.name, int(space.dim), covered, total, configured_covered
    )


def track_filter(space_id: int | None) -> Any:
    """SQL filter on tracks: those of one DASR space (rows from before migration 0002 have none)."""
    from video_inst.catalog.models import Track

    return Track.space_id.is_(None) | (Track.space_id == space_id)


def active_tracks(session: Session, settings: Settings) -> Any:
    """SQL filter on tracks: those of the DASR space that answers now (API track lists, exports)."""
    return track_filter(active_space(session, "dasr", settings).space_id)
