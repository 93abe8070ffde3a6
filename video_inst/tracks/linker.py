"""Link the regions of consecutive keyframes of one shot into instance tracks.

An instance seen at keyframe t is matched to the regions of keyframe t+1 by a cost that
mixes box overlap (with room for motion: boxes are compared after growing them) and
vector similarity, solved optimally with the Hungarian method (scipy). Unmatched
regions start new tracks; tracks not extended stay closed.

Example::

    linker = TrackLinker(LinkParams())
    for kf_id, time_s, regions in keyframes_of_shot:
        linker.add(kf_id, time_s, regions.boxes, regions.vectors, regions.scores)
    tracks = linker.finish()
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment


@dataclass(frozen=True)
class LinkParams:
    min_similarity: float = 0.55  # cosine similarity below which two regions never link
    motion_margin: float = 0.5  # grow boxes by this fraction of their size before the overlap test
    min_overlap: float = 0.05  # IoU of the grown boxes below which two regions never link
    overlap_weight: float = 0.4  # cost = 1 - (w * IoU + (1 - w) * similarity)
    max_gap: int = 1  # keyframes a track may miss before it closes


@dataclass
class TrackDraft:
    """A track being built: one entry per keyframe where the instance was seen."""

    keyframe_ids: list[int] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    boxes: list[np.ndarray] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    vectors: list[np.ndarray] = field(default_factory=list)
    labels: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)  # (class ids, probs) per view
    last_seen: int = 0  # ordinal of the last keyframe it was extended at

    def append(
        self,
        keyframe_id: int,
        time_s: float,
        box: np.ndarray,
        score: float,
        vector: np.ndarray,
        labels: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> None:
        self.keyframe_ids.append(keyframe_id)
        self.times.append(time_s)
        self.boxes.append(np.asarray(box, dtype=np.float32))
        self.scores.append(float(score))
        self.vectors.append(np.asarray(vector, dtype=np.float32))
        if labels is not None:
            self.labels.append(labels)

    @property
    def best(self) -> int:
        """Position of the keyframe with the strongest peak: the track's representative view."""
        return int(np.argmax(self.scores))

    def representative(self) -> np.ndarray:
        """Mean of the member vectors, L2-normalised: robust to one bad view."""
        mean = np.mean(np.stack(self.vectors), axis=0)
        return (mean / max(float(np.linalg.norm(mean)), 1e-12)).astype(np.float32)


def grown_iou(a: np.ndarray, b: np.ndarray, margin: float) -> np.ndarray:
    """IoU matrix of boxes ``a`` (N,4) and ``b`` (M,4) after growing each by ``margin``."""

    def grow(boxes: np.ndarray) -> np.ndarray:
        w = (boxes[:, 2] - boxes[:, 0]) * margin / 2
        h = (boxes[:, 3] - boxes[:, 1]) * margin / 2
        return np.stack([boxes[:, 0] - w, boxes[:, 1] - h, boxes[:, 2] + w, boxes[:, 3] + h], axis=1)

    ga, gb = grow(a), grow(b)
    x0 = np.maximum(ga[:, None, 0], gb[None, :, 0])
    y0 = np.maximum(ga[:, None, 1], gb[None, :, 1])
    x1 = np.minimum(ga[:, None, 2], gb[None, :, 2])
    y1 = np.minimum(ga[:, None, 3], gb[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area_a = (ga[:, 2] - ga[:, 0]) * (ga[:, 3] - ga[:, 1])
    area_b = (gb[:, 2] - gb[:, 0]) * (gb[:, 3] - gb[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0)


class TrackLinker:
    """Incremental linker for one shot; feed keyframes in time order, then ``finish``."""

    def __init__(self, params: LinkParams | None = None) -> None:
        self.params = params or LinkParams()
        self._tracks: list[TrackDraft] = []
        self._ordinal = 0

    def add(
        self,
        keyframe_id: int,
        time_s: float,
        boxes: np.ndarray,
        vectors: np.ndarray,
        scores: np.ndarray,
        labels: list[tuple[np.ndarray, np.ndarray]] | None = None,
    ) -> list[int]:
        """Add one keyframe's object regions; returns, per region, the index of its track."""
        p = self.params
        self._ordinal += 1
        live = [i for i, t in enumerate(self._tracks) if self._ordinal - t.last_seen <= p.max_gap + 1]
        assigned = [-1] * len(boxes)
        if live and len(boxes):
            last_boxes = np.stack([self._tracks[i].boxes[-1] for i in live])
            last_vecs = np.stack([self._tracks[i].vectors[-1] for i in live])
            iou = grown_iou(last_boxes, boxes, p.motion_margin)
            sim = last_vecs @ vectors.T
            cost = 1.0 - (p.overlap_weight * iou + (1 - p.overlap_weight) * sim)
            forbidden = (sim < p.min_similarity) | (iou < p.min_overlap)
            cost = np.where(forbidden, 1e6, cost)
            rows, cols = linear_sum_assignment(cost)
            for r, c in zip(rows, cols):
                if not forbidden[r, c]:
                    assigned[c] = live[r]
        for j in range(len(boxes)):
            if assigned[j] < 0:
                self._tracks.append(TrackDraft())
                assigned[j] = len(self._tracks) - 1
            track = self._tracks[assigned[j]]
            track.append(keyframe_id, time_s, boxes[j], scores[j], vectors[j], labels[j] if labels else None)
            track.last_seen = self._ordinal
        return assigned

    def finish(self) -> list[TrackDraft]:
        return self._tracks
