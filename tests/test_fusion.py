"""Multi-camera fusion: one ego-frame object list from every camera's detections."""

import numpy as np
import pytest

from perception.boxes import Boxes
from perception.fusion import concat, fuse


def _boxes(centres, scores, kind=0):
    c = np.asarray(centres, dtype=float).reshape(-1, 2)
    n = len(c)
    return Boxes(
        c,
        np.zeros(n),
        np.full(n, 5.0),
        np.full(n, 2.0),
        np.full(n, kind),
        np.asarray(scores, float),
        np.full(n, 1.5),
    )


def test_one_car_seen_by_two_cameras_is_one_object():
    front = _boxes([[12.0, 3.0]], [0.9])
    left = _boxes(
        [[12.6, 3.4]], [0.7]
    )  # the same car from an overlapping camera, a bit off in depth
    fused = fuse([front, left])
    assert len(fused) == 1 and fused.score[0] == 0.9 and np.allclose(fused.centre_m[0], [12.0, 3.0])
    assert fused.height_m[0] == 1.5


def test_distinct_cars_and_kinds_stay_apart():
    front = _boxes([[12.0, 3.0], [30.0, 0.0]], [0.9, 0.8])
    rear = _boxes([[-15.0, 0.0]], [0.6])
    obstacle = _boxes([[12.5, 3.0]], [0.5], kind=1)  # as close as a duplicate, but another kind
    fused = fuse([front, rear, obstacle])
    assert len(fused) == 4
    assert list(fused.score) == [0.9, 0.8, 0.6, 0.5]  # highest first


def test_the_more_confident_view_wins_whichever_camera_came_first():
    a, b = _boxes([[20.0, 0.0]], [0.4]), _boxes([[20.8, 0.0]], [0.95])
    for order in ([a, b], [b, a]):
        fused = fuse(order)
        assert len(fused) == 1 and fused.score[0] == 0.95


def test_empty_and_single_inputs():
    assert len(fuse([])) == 0 and len(fuse([Boxes.empty(), Boxes.empty()])) == 0
    assert len(fuse([_boxes([[5.0, 0.0]], [0.5])])) == 1
    assert len(concat([Boxes.empty(), _boxes([[1.0, 1.0], [2.0, 2.0]], [0.1, 0.2])])) == 2
    with pytest.raises(ValueError, match="merge_m"):
        fuse([], merge_m=-1.0)
