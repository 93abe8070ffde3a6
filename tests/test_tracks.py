"""Track linking on hand-made regions with known answers."""

from __future__ import annotations

import numpy as np

from video_inst.tracks.linker import LinkParams, TrackLinker, grown_iou


def _unit(v: list[float]) -> np.ndarray:
    a = np.asarray(v, dtype=np.float32)
    return a / np.linalg.norm(a)


A, B = _unit([1, 0, 0, 0]), _unit([0, 1, 0, 0])
A2 = _unit([0.95, 0.05, 0, 0])  # the same instance seen again, slightly different


def test_grown_iou_allows_motion() -> None:
    a = np.array([[0, 0, 10, 10]], dtype=np.float32)
    b = np.array([[12, 0, 22, 10]], dtype=np.float32)  # moved right, no overlap at all
    assert grown_iou(a, b, 0.0)[0, 0] == 0.0
    assert grown_iou(a, b, 0.5)[0, 0] > 0.0


def test_two_instances_keep_their_identity_when_they_move() -> None:
    linker = TrackLinker(LinkParams())
    first = linker.add(
        1,
        0.2,
        np.array([[0, 0, 50, 50], [200, 0, 250, 50]], np.float32),
        np.stack([A, B]),
        np.array([3.0, 2.0]),
    )
    # Next keyframe: both moved a little and come in the other order.
    second = linker.add(
        2,
        1.2,
        np.array([[205, 5, 255, 55], [8, 4, 58, 54]], np.float32),
        np.stack([B, A2]),
        np.array([2.5, 3.5]),
    )
    assert first == [0, 1]
    assert second == [1, 0]
    tracks = linker.finish()
    assert [t.keyframe_ids for t in tracks] == [[1, 2], [1, 2]]
    assert tracks[0].best == 1  # the stronger peak is the representative view


def test_dissimilar_region_in_the_same_place_starts_a_new_track() -> None:
    linker = TrackLinker(LinkParams())
    linker.add(1, 0.0, np.array([[0, 0, 50, 50]], np.float32), A[None], np.array([1.0]))
    assigned = linker.add(2, 1.0, np.array([[0, 0, 50, 50]], np.float32), B[None], np.array([1.0]))
    assert assigned == [1]
    assert len(linker.finish()) == 2


def test_far_away_similar_region_is_not_linked() -> None:
    linker = TrackLinker(LinkParams())
    linker.add(1, 0.0, np.array([[0, 0, 20, 20]], np.float32), A[None], np.array([1.0]))
    assigned = linker.add(2, 1.0, np.array([[500, 300, 520, 320]], np.float32), A[None], np.array([1.0]))
    assert assigned == [1]


def test_track_survives_one_missed_keyframe_but_not_two() -> None:
    params = LinkParams(max_gap=1)
    linker = TrackLinker(params)
    box = np.array([[0, 0, 50, 50]], np.float32)
    linker.add(1, 0.0, box, A[None], np.array([1.0]))
    linker.add(2, 1.0, box[:0], np.zeros((0, 4), np.float32), np.zeros(0))
    assert linker.add(3, 2.0, box, A[None], np.array([1.0])) == [0]
    linker.add(4, 3.0, box[:0], np.zeros((0, 4), np.float32), np.zeros(0))
    linker.add(5, 4.0, box[:0], np.zeros((0, 4), np.float32), np.zeros(0))
    assert linker.add(6, 5.0, box, A[None], np.array([1.0])) == [1]


def test_representative_vector_is_unit_mean() -> None:
    linker = TrackLinker()
    box = np.array([[0, 0, 50, 50]], np.float32)
    linker.add(1, 0.0, box, A[None], np.array([1.0]))
    linker.add(2, 1.0, box, A2[None], np.array([1.0]))
    rep = linker.finish()[0].representative()
    assert abs(float(np.linalg.norm(rep)) - 1.0) < 1e-6
    expected = (A + A2) / np.linalg.norm(A + A2)
    assert np.allclose(rep, expected, atol=1e-6)
