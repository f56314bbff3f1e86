"""Multi-camera fusion: each rig camera's detections -> one ego-frame object list.

Every camera's detector already returns :class:`~perception.boxes.Boxes` in the ego frame
(each detector lifts its pixels with its own camera model), so fusion is a merge: all
boxes together, highest score first, and a box whose centre lies within ``merge_m`` of an
already kept box of the same kind is the same object seen again (where the views overlap)
and is dropped (greedy non-maximum suppression on centre distance, the nuScenes matching
criterion).  The kept box is the most confident view's; a monocular box's depth is
noisiest far from the camera, and the more confident view is usually the nearer,
less truncated one.

The tracker (:mod:`perception.tracker`) then turns the fused list into world-frame
``ObjectStates`` for the planner.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from perception.boxes import Boxes

MERGE_M = 2.5  # [m] centres closer than this (same kind) are one object: half a car length


def concat(parts: Sequence[Boxes]) -> Boxes:
    """All boxes of ``parts`` in one :class:`Boxes` (in order)."""
    parts = [p for p in parts if len(p)]
    if not parts:
        return Boxes.empty()
    return Boxes(
        *(
            np.concatenate([getattr(p, f) for p in parts])
            for f in ("centre_m", "heading_rad", "length_m", "width_m", "kind", "score", "height_m")
        )
    )


def fuse(per_camera: Sequence[Boxes], merge_m: float = MERGE_M) -> Boxes:
    """One ego-frame list from every camera's detections, duplicates (same kind, centres
    within ``merge_m``) merged into the most confident one; sorted by score, highest first."""
    if merge_m < 0:
        raise ValueError(f"merge_m must be >= 0, got {merge_m}")
    boxes = concat(per_camera)
    if len(boxes) < 2:
        return boxes
    order = np.lexsort((np.arange(len(boxes)), -boxes.score))  # score, then camera order
    keep: list[int] = []
    for i in order.tolist():
        if keep:
            d = np.hypot(*(boxes.centre_m[keep] - boxes.centre_m[i]).T)
            if np.any((d < merge_m) & (boxes.kind[keep] == boxes.kind[i])):
                continue
        keep.append(i)
    return boxes.select(np.asarray(keep, dtype=np.int64))
