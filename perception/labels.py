"""Auto-labels: the boxes a perfect detector would return, from ground truth.

Every object of the env's ``truth`` sensor whose centre falls inside the ego camera's
image becomes a label, in ego-frame metres and in pixels (via the camera spec).  A car
cut by the image border still counts while its centre is inside: that is where a
centre-based detector (CenterNet) puts its peak.
"""

from __future__ import annotations

from collections.abc import Mapping

import cv2
import numpy as np

from perception.boxes import Boxes
from planning.geometry import wrap_angle
from sim.geometry.bev import BevCamera
from sim.geometry.frames import box_corners, world_to_ego


def labels_from_truth(
    truth: Mapping[str, np.ndarray],
    pose: np.ndarray,
    spec: BevCamera,
    kinds: tuple[int, ...] = (0,),
) -> Boxes:
    """The visible objects of the given ``kinds`` (0 vehicles, 1 obstacles) as ego-frame
    :class:`Boxes` with score 1."""
    pose = np.asarray(pose, dtype=np.float64)
    keep = np.isin(np.asarray(truth["kind"]), kinds)
    centre = world_to_ego(
        np.asarray(truth["position_m"], dtype=np.float64)[keep], pose[:2], pose[2]
    )
    uv = spec.ego_to_pixel(centre)
    inside = (
        (uv[:, 0] >= -0.5)
        & (uv[:, 0] < spec.width_px - 0.5)
        & (uv[:, 1] >= -0.5)
        & (uv[:, 1] < spec.height_px - 0.5)
    )
    n = int(inside.sum())
    return Boxes(
        centre_m=centre[inside],
        heading_rad=wrap_angle(np.asarray(truth["heading_rad"])[keep][inside] - pose[2]),
        length_m=np.asarray(truth["length_m"])[keep][inside],
        width_m=np.asarray(truth["width_m"])[keep][inside],
        kind=np.asarray(truth["kind"])[keep][inside],
        score=np.ones(n),
    )


def boxes_to_pixels(boxes: Boxes, spec: BevCamera) -> dict[str, np.ndarray]:
    """Pixel-space view of boxes: centre ``uv_px`` [N, 2] (column, row), ``length_px`` and
    ``width_px`` [N], and ``heading_rad`` (the same angle: the image is the ego frame
    turned so that forward is up)."""
    return {
        "uv_px": spec.ego_to_pixel(boxes.centre_m),
        "length_px": boxes.length_m / spec.metres_per_pixel,
        "width_px": boxes.width_m / spec.metres_per_pixel,
        "heading_rad": boxes.heading_rad.copy(),
    }


# ------------------------------------------------------------------------ 3D labels per camera
MIN_VISIBLE_PX = 1  # a label is visible in a camera when at least this many of its pixels show
LABEL_RANGE_M = 120.0  # [m] farther objects are not labelled: a 2 m wide car is < 2 px wide there
# in the default rig's 256 px, 100 deg cameras (fx = 107 px)
_SHIFT = 4  # fixed-point bits of the silhouette fill: the perspective renderer's (1/16 px)
_BOX_EDGES = np.array(
    [[0, 1], [1, 2], [2, 3], [3, 0], [4, 5], [5, 6], [6, 7], [7, 4], [0, 4], [1, 5], [2, 6], [3, 7]]
)


def objects_in_ego(
    truth: Mapping[str, np.ndarray], pose: np.ndarray, kinds: tuple[int, ...] = (0, 1)
) -> tuple[Boxes, np.ndarray]:
    """Every object of the ``truth`` sensor of the given ``kinds`` as ego-frame 3D
    :class:`Boxes` (with ``height_m``; score 1), and their truth ids."""
    pose = np.asarray(pose, dtype=np.float64)
    keep = np.isin(np.asarray(truth["kind"]), kinds)
    n = int(keep.sum())
    height = (
        np.asarray(truth["height_m"], dtype=np.float64)[keep]
        if "height_m" in truth
        else np.full(n, np.nan)
    )
    boxes = Boxes(
        centre_m=world_to_ego(
            np.asarray(truth["position_m"], dtype=np.float64)[keep], pose[:2], pose[2]
        ),
        heading_rad=wrap_angle(np.asarray(truth["heading_rad"])[keep] - pose[2]),
        length_m=np.asarray(truth["length_m"])[keep],
        width_m=np.asarray(truth["width_m"])[keep],
        kind=np.asarray(truth["kind"])[keep],
        score=np.ones(n),
        height_m=height,
    )
    return boxes, np.asarray(truth["id"], dtype=np.int64)[keep]


def box_corners_3d(boxes: Boxes) -> np.ndarray:
    """Ego-frame corners ``[N, 8, 3]``: the footprint (counter-clockwise from rear-right) on
    the road, then the same four at the box's height."""
    foot = box_corners(boxes.centre_m, boxes.heading_rad, boxes.length_m, boxes.width_m)
    out = np.zeros((len(boxes), 8, 3))
    out[:, :4, :2] = foot
    out[:, 4:, :2] = foot
    out[:, 4:, 2] = boxes.height_m[:, None]
    return out


def _silhouette(corners_cam: np.ndarray, camera) -> np.ndarray | None:
    """The image outline (convex hull, float ``[K, 2]`` px, unbounded image plane) of one box
    given by its camera-frame corners, clipped in 3D to the near plane; None when nothing
    of it lies in front of the camera."""
    near = camera.near_m
    z = corners_cam[:, 2]
    front = z > near
    if not front.any():
        return None
    pts = [corners_cam[front]]
    a, b = corners_cam[_BOX_EDGES[:, 0]], corners_cam[_BOX_EDGES[:, 1]]
    cross = (a[:, 2] > near) != (b[:, 2] > near)
    if cross.any():  # where the box's edges pierce the near plane
        a, b = a[cross], b[cross]
        t = (near - a[:, 2]) / (b[:, 2] - a[:, 2])
        hit = a + t[:, None] * (b - a)
        hit[:, 2] = near
        pts.append(hit)
    uv = camera.camera_to_pixel(np.concatenate(pts))
    return cv2.convexHull(uv.astype(np.float32)).reshape(-1, 2).astype(np.float64)


def _area(poly: np.ndarray) -> float:
    x, y = poly[:, 0], poly[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def _share_outside(inside_px2: float, full_px2: float) -> float:
    """1 - inside / full, with float noise of the polygon intersection (~1e-7) rounded to 0."""
    if full_px2 <= 0.0:
        return 1.0
    share = 1.0 - inside_px2 / full_px2
    return 0.0 if share < 1e-5 else float(min(share, 1.0))


def camera_labels(
    boxes: Boxes, ids: np.ndarray, camera, instance: np.ndarray | None
) -> dict[str, np.ndarray]:
    """What each ego-frame 3D box looks like in a perspective ``camera``
    (:class:`sim.geometry.pinhole.PinholeCamera`), from geometry and the rendered
    ``instance`` mask (truth ids per pixel, -1 for none; None: no occlusion information).

    Per box (``N`` of them):

    - ``visible_px`` int32: pixels of the instance mask that show it;
    - ``visible_fraction`` float32: ``visible_px`` over the pixels its silhouette would cover
      inside the image were nothing in front of it (occlusion only; 0 when fully hidden, out
      of view or beyond the renderer's view distance; capped at 1);
    - ``truncation`` float32: the share of its silhouette's area outside the image border
      (1 when out of view, NaN when nothing of it is in front of the camera);
    - ``box_px`` float32 ``[N, 4]``: the 2D box ``u0, v0, u1, v1`` of the silhouette clipped
      to the image (amodal: occluded parts included; NaN when not in the image);
    - ``centre_px``, ``bottom_px`` float32 ``[N, 2]``: the projected 3D centre and the
      centre of its footprint on the road (NaN behind the near plane; may lie outside the
      image);
    - ``depth_m`` float32: the 3D centre's camera-frame z (negative behind the camera).
    """
    n = len(boxes)
    h, w = camera.height_px, camera.width_px
    out = {
        "visible_px": np.zeros(n, np.int32),
        "visible_fraction": np.zeros(n, np.float32),
        "truncation": np.full(n, np.nan, np.float32),
        "box_px": np.full((n, 4), np.nan, np.float32),
    }
    centre = np.concatenate([boxes.centre_m, 0.5 * boxes.height_m[:, None]], axis=1)
    bottom = np.concatenate([boxes.centre_m, np.zeros((n, 1))], axis=1)
    uv_c, depth = camera.project(centre)
    out["centre_px"] = uv_c.astype(np.float32)
    out["bottom_px"] = camera.project(bottom)[0].astype(np.float32)
    out["depth_m"] = depth.astype(np.float32)
    if not n:
        return out
    if instance is not None:
        if instance.shape != (h, w):
            raise ValueError(f"instance mask is {instance.shape}, camera is {(h, w)}")
        ids_in, counts = np.unique(instance[instance >= 0], return_counts=True)
        shown = dict(zip(ids_in.tolist(), counts.tolist()))
    image = np.array(
        [[-0.5, -0.5], [w - 0.5, -0.5], [w - 0.5, h - 0.5], [-0.5, h - 0.5]], np.float32
    )
    corners = camera.ego_to_camera(box_corners_3d(boxes))
    for k in range(n):
        hull = _silhouette(corners[k], camera)
        if hull is None:
            continue
        full = _area(hull)
        inside, _ = cv2.intersectConvexConvex(hull.astype(np.float32), image)
        out["truncation"][k] = _share_outside(inside, full)
        if inside <= 0.0:
            continue
        lo = np.clip(hull.min(axis=0), -0.5, [w - 0.5, h - 0.5])
        hi = np.clip(hull.max(axis=0), -0.5, [w - 0.5, h - 0.5])
        out["box_px"][k] = (lo[0], lo[1], hi[0], hi[1])
        if instance is None:
            out["visible_px"][k] = -1
            out["visible_fraction"][k] = np.nan
            continue
        seen = shown.get(int(ids[k]), 0)
        out["visible_px"][k] = seen
        if seen < MIN_VISIBLE_PX:
            continue
        # the silhouette alone, filled as the renderer fills (1/16 px), in a window of the image
        c0, r0 = int(np.floor(lo[0] + 0.5)), int(np.floor(lo[1] + 0.5))
        c1, r1 = min(int(np.ceil(hi[0] + 0.5)), w), min(int(np.ceil(hi[1] + 0.5)), h)
        scratch = np.zeros((max(r1 - r0, 1), max(c1 - c0, 1)), np.uint8)
        fixed = np.rint((hull - [c0, r0]) * (1 << _SHIFT))
        fixed = np.clip(fixed, -(1 << 24), 1 << 24).astype(
            np.int32
        )  # far outside: harmless to clamp
        cv2.fillConvexPoly(scratch, fixed, 1, cv2.LINE_8, _SHIFT)
        alone = int(scratch.sum())
        out["visible_fraction"][k] = 1.0 if alone <= seen else seen / alone
    return out


def bev_labels(boxes: Boxes, spec: BevCamera) -> dict[str, np.ndarray]:
    """:func:`camera_labels`' fields for the bird's-eye camera (a top-down raster: nothing
    hides anything): ``visible_fraction`` 1 for boxes whose centre is inside the image (the
    labels a centre-based detector is trained on), else 0; ``visible_px`` the footprint's
    pixels inside the image; ``truncation`` the footprint's share outside; ``box_px`` its
    bounds clipped to the image; ``centre_px`` = ``bottom_px`` = the centre's pixel;
    ``depth_m`` NaN."""
    n = len(boxes)
    h, w = spec.height_px, spec.width_px
    uv = spec.ego_to_pixel(boxes.centre_m)
    inside = (uv[:, 0] >= -0.5) & (uv[:, 0] < w - 0.5) & (uv[:, 1] >= -0.5) & (uv[:, 1] < h - 0.5)
    out = {
        "visible_px": np.zeros(n, np.int32),
        "visible_fraction": inside.astype(np.float32),
        "truncation": np.ones(n, np.float32),
        "box_px": np.full((n, 4), np.nan, np.float32),
        "centre_px": uv.astype(np.float32),
        "bottom_px": uv.astype(np.float32),
        "depth_m": np.full(n, np.nan, np.float32),
    }
    image = np.array(
        [[-0.5, -0.5], [w - 0.5, -0.5], [w - 0.5, h - 0.5], [-0.5, h - 0.5]], np.float32
    )
    foot = box_corners(boxes.centre_m, boxes.heading_rad, boxes.length_m, boxes.width_m)
    for k in range(n):
        poly = spec.ego_to_pixel(foot[k])
        full = _area(poly)
        inter, _ = cv2.intersectConvexConvex(cv2.convexHull(poly.astype(np.float32)), image)
        out["truncation"][k] = _share_outside(inter, full)
        out["visible_px"][k] = round(inter)
        if inter > 0:
            lo = np.clip(poly.min(axis=0), -0.5, [w - 0.5, h - 0.5])
            hi = np.clip(poly.max(axis=0), -0.5, [w - 0.5, h - 0.5])
            out["box_px"][k] = (lo[0], lo[1], hi[0], hi[1])
    return out
