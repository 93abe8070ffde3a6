"""The plain data one ingest passes between its steps, and the JSON that carries it between workers.

Step 1 (plan) yields a :class:`PlannedVideo`, step 2 (one range of shots) a
:class:`ChunkResult` whose analysis is an :class:`AnalysisData`: numbers, strings and
numpy arrays only, no live model or session. ``to_json`` / ``from_json`` turn either into
JSON (arrays as base64 of their raw bytes, so vectors come back bit for bit), which is
what ``jobs.staging`` writes between Celery tasks: a staged file can be read by any
worker (or a person) and never runs code when loaded, as a pickle would.

Example::

    text = to_json(chunk)
    assert from_json(text, ChunkResult) == chunk   # (arrays compared with numpy)
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from video_inst.media.types import Keyframe, Shot, ShotPlan, VideoInfo


@dataclass
class SpaceRef:
    """A model space a chunk's vectors belong to: its name, dimension and catalog params."""

    name: str
    dim: int
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrackData:
    """One linked track of a shot: per-keyframe boxes, scores and region vectors, and its summary."""

    shot_index: int
    is_frame: bool
    start_s: float
    end_s: float
    keyframe_pts: list[int]  # keyframes the track was seen at, in order
    scores: list[float]
    boxes: np.ndarray  # (n, 4) float32, x0 y0 x1 y1 in frame pixels
    vectors: np.ndarray  # (n, dim) float32 DASR region vectors
    representative: np.ndarray  # (dim,) float32, the track's DASR vector
    best: int  # position of the representative view in keyframe_pts
    labels: list[tuple[str, float]]
    clip_vector: np.ndarray | None = None  # (clip dim,) float32


@dataclass
class AnalysisData:
    """What the models made of a range of shots, and the model spaces that made it."""

    dasr: SpaceRef
    tracks: list[TrackData]
    clip: SpaceRef | None = None  # None when CLIP did not run
    frame_pts: list[int] = field(default_factory=list)  # keyframes with a CLIP frame vector
    frame_vectors: np.ndarray | None = None  # (len(frame_pts), clip dim) float32
    clip_missing: SpaceRef | None = None  # the configured CLIP space when its weights are missing
    clip_missing_reason: str | None = None


@dataclass
class PlannedVideo:
    """Stage 1's output: what every later stage needs, and nothing stored yet."""

    path: Path
    size: int
    digest: str
    info: VideoInfo
    plan: ShotPlan
    existing_id: int | None = None  # the catalog row of this content, if any


@dataclass
class ChunkResult:
    """Stage 2's output for a range of shots (``analysis`` is None when analysis is off)."""

    shot_indices: list[int]
    analysis: AnalysisData | None
    warnings: list[str] = field(default_factory=list)


# --- JSON ------------------------------------------------------------------------------------


def _array(a: np.ndarray) -> dict[str, Any]:
    a = np.ascontiguousarray(a)
    return {"dtype": a.dtype.str, "shape": list(a.shape), "b64": base64.b64encode(a.tobytes()).decode()}


def _unarray(d: dict[str, Any]) -> np.ndarray:
    raw = base64.b64decode(d["b64"])
    return np.frombuffer(raw, dtype=np.dtype(d["dtype"])).reshape(d["shape"]).copy()


def _opt_array(a: np.ndarray | None) -> dict[str, Any] | None:
    return None if a is None else _array(a)


def _opt_unarray(d: dict[str, Any] | None) -> np.ndarray | None:
    return None if d is None else _unarray(d)


def _space(s: SpaceRef | None) -> dict[str, Any] | None:
    return None if s is None else {"name": s.name, "dim": s.dim, "params": s.params}


def _unspace(d: dict[str, Any] | None) -> SpaceRef | None:
    return None if d is None else SpaceRef(d["name"], int(d["dim"]), dict(d["params"]))


def _fraction(f: Fraction) -> list[int]:
    return [f.numerator, f.denominator]


def _info(info: VideoInfo) -> dict[str, Any]:
    return {
        "path": str(info.path),
        "container": info.container,
        "codec": info.codec,
        "width": info.width,
        "height": info.height,
        "rotation": info.rotation,
        "frame_rate": _fraction(info.frame_rate),
        "time_base": _fraction(info.time_base),
        "start_pts": info.start_pts,
        "duration_s": info.duration_s,
        "frame_count": info.frame_count,
        "start_timecode": info.start_timecode,
        "variable_frame_rate": info.variable_frame_rate,
        "has_audio": info.has_audio,
    }


def _uninfo(d: dict[str, Any]) -> VideoInfo:
    return VideoInfo(
        **{
            **d,
            "path": Path(d["path"]),
            "frame_rate": Fraction(*d["frame_rate"]),
            "time_base": Fraction(*d["time_base"]),
        }
    )


def _plan(plan: ShotPlan) -> dict[str, Any]:
    return {
        "shots": [
            [s.index, s.start_pts, s.end_pts, s.start_s, s.end_s, s.start_frame, s.end_frame]
            for s in plan.shots
        ],
        "keyframes": [[k.shot_index, k.pts, k.time_s, k.frame] for k in plan.keyframes],
        "frame_count": plan.frame_count,
        "end_pts": plan.end_pts,
        "truncated": plan.truncated,
        "warnings": list(plan.warnings),
    }


def _unplan(d: dict[str, Any]) -> ShotPlan:
    return ShotPlan(
        shots=[Shot(*s) for s in d["shots"]],
        keyframes=[Keyframe(*k) for k in d["keyframes"]],
        frame_count=d["frame_count"],
        end_pts=d["end_pts"],
        truncated=d["truncated"],
        warnings=list(d["warnings"]),
    )


def _track(t: TrackData) -> dict[str, Any]:
    return {
        "shot_index": t.shot_index,
        "is_frame": t.is_frame,
        "start_s": t.start_s,
        "end_s": t.end_s,
        "keyframe_pts": list(t.keyframe_pts),
        "scores": list(t.scores),
        "boxes": _array(t.boxes),
        "vectors": _array(t.vectors),
        "representative": _array(t.representative),
        "best": t.best,
        "labels": [[name, prob] for name, prob in t.labels],
        "clip_vector": _opt_array(t.clip_vector),
    }


def _untrack(d: dict[str, Any]) -> TrackData:
    return TrackData(
        shot_index=d["shot_index"],
        is_frame=d["is_frame"],
        start_s=d["start_s"],
        end_s=d["end_s"],
        keyframe_pts=list(d["keyframe_pts"]),
        scores=list(d["scores"]),
        boxes=_unarray(d["boxes"]),
        vectors=_unarray(d["vectors"]),
        representative=_unarray(d["representative"]),
        best=d["best"],
        labels=[(name, prob) for name, prob in d["labels"]],
        clip_vector=_opt_unarray(d["clip_vector"]),
    )


def _analysis(a: AnalysisData | None) -> dict[str, Any] | None:
    if a is None:
        return None
    return {
        "dasr": _space(a.dasr),
        "tracks": [_track(t) for t in a.tracks],
        "clip": _space(a.clip),
        "frame_pts": list(a.frame_pts),
        "frame_vectors": _opt_array(a.frame_vectors),
        "clip_missing": _space(a.clip_missing),
        "clip_missing_reason": a.clip_missing_reason,
    }


def _unanalysis(d: dict[str, Any] | None) -> AnalysisData | None:
    if d is None:
        return None
    return AnalysisData(
        dasr=_unspace(d["dasr"]),  # type: ignore[arg-type]
        tracks=[_untrack(t) for t in d["tracks"]],
        clip=_unspace(d["clip"]),
        frame_pts=list(d["frame_pts"]),
        frame_vectors=_opt_unarray(d["frame_vectors"]),
        clip_missing=_unspace(d["clip_missing"]),
        clip_missing_reason=d["clip_missing_reason"],
    )


def to_dict(obj: PlannedVideo | ChunkResult) -> dict[str, Any]:
    """A JSON-able dict of a planned video or a chunk result."""
    if isinstance(obj, PlannedVideo):
        return {
            "type": "planned_video",
            "path": str(obj.path),
            "size": obj.size,
            "digest": obj.digest,
            "info": _info(obj.info),
            "plan": _plan(obj.plan),
            "existing_id": obj.existing_id,
        }
    if isinstance(obj, ChunkResult):
        return {
            "type": "chunk_result",
            "shot_indices": list(obj.shot_indices),
            "analysis": _analysis(obj.analysis),
            "warnings": list(obj.warnings),
        }
    raise TypeError(f"cannot encode {type(obj).__name__}")


T = TypeVar("T", PlannedVideo, ChunkResult)


def from_dict(d: dict[str, Any], kind: type[T]) -> T:
    """The object ``to_dict`` made; a dict of another kind is a ``ValueError``."""
    expected = {PlannedVideo: "planned_video", ChunkResult: "chunk_result"}[kind]
    if d.get("type") != expected:
        raise ValueError(f"expected a {expected}, found {d.get('type')!r}")
    if kind is PlannedVideo:
        return PlannedVideo(  # type: ignore[return-value]
            path=Path(d["path"]),
            size=d["size"],
            digest=d["digest"],
            info=_uninfo(d["info"]),
            plan=_unplan(d["plan"]),
            existing_id=d["existing_id"],
        )
    return ChunkResult(  # type: ignore[return-value]
        shot_indices=list(d["shot_indices"]),
        analysis=_unanalysis(d["analysis"]),
        warnings=list(d["warnings"]),
    )


def to_json(obj: PlannedVideo | ChunkResult) -> str:
    return json.dumps(to_dict(obj), separators=(",", ":"))


def from_json(text: str | bytes, kind: type[T]) -> T:
    return from_dict(json.loads(text), kind)
