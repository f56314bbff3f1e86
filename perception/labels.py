"""Auto-labels: the boxes a perfect detector would return, from ground truth.

Every object of the env's ``truth`` sensor whose centre falls inside the ego camera's
image becomes a label, in ego-frame metres and in pixels (via the camera spec).  A car
cut by the image border still counts while its centre is inside: that is where a
centre-based detector (CenterNet) puts its peak.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from perception.boxes import Boxes
from planning.geometry import wrap_angle
from sim.geometry.camera import CameraSpec
from sim.geometry.frames import world_to_ego


def labels_from_truth(truth: Mapping[str, np.ndarray], pose: np.ndarray, spec: CameraSpec,
                      kinds: tuple[int, ...] = (0,)) -> Boxes:
    """The visible objects of the given ``kinds`` (0 vehicles, 1 obstacles) as ego-frame
    :class:`Boxes` with score 1."""
    pose = np.asarray(pose, dtype=np.float64)
    keep = np.isin(np.asarray(truth["kind"]), kinds)
    centre = world_to_ego(np.asarray(truth["position_m"], dtype=np.float64)[keep], pose[:2], pose[2])
    uv = spec.ego_to_pixel(centre)
    inside = ((uv[:, 0] >= -0.5) & (uv[:, 0] < spec.width_px - 0.5)
              & (uv[:, 1] >= -0.5) & (uv[:, 1] < spec.height_px - 0.5))
    n = int(inside.sum())
    return Boxes(
        centre_m=centre[inside],
        heading_rad=wrap_angle(np.asarray(truth["heading_rad"])[keep][inside] - pose[2]),
        length_m=np.asarray(truth["length_m"])[keep][inside],
        width_m=np.asarray(truth["width_m"])[keep][inside],
        kind=np.asarray(truth["kind"])[keep][inside],
        score=np.ones(n),
    )


def boxes_to_pixels(boxes: Boxes, spec: CameraSpec) -> dict[str, np.ndarray]:
    """Pixel-space view of boxes: centre ``uv_px`` [N, 2] (column, row), ``length_px`` and
    ``width_px`` [N], and ``heading_rad`` (the same angle: the image is the ego frame
    turned so that forward is up)."""
    return {"uv_px": spec.ego_to_pixel(boxes.centre_m),
            "length_px": boxes.length_m / spec.metres_per_pixel,
            "width_px": boxes.width_m / spec.metres_per_pixel,
            "heading_rad": boxes.heading_rad.copy()}
