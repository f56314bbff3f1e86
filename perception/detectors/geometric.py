"""The geometric baseline for perspective cameras: colour segmentation and inverse
perspective mapping (IPM).  No learning.

Every vehicle stands on the road plane, so the lowest image row of its silhouette is
where it touches the road; that pixel's viewing ray meets the plane ``z = 0`` at a
known ego-frame point (:meth:`sim.geometry.pinhole.PinholeCamera.pixel_to_ground`,
Mallot et al. 1991, "Inverse perspective mapping simplifies optical flow computation and
obstacle detection").  One frame, one camera:

1. **segment**: a pixel is a vehicle pixel when its colour is none of the scene's
   background colours (sky, grass, road, markings and their far road/paint blend,
   :class:`SceneColours`, read from the renderer's palette, so a changed palette still
   works) within ``colour_tolerance``, nor obstacle orange (any shade of it).
2. **blobs**: vehicle pixels are grouped by colour first: the renderer shades a body
   colour per face (``body * shade``), so all faces of one car share one colour
   *direction* in RGB and two cars of different colours do not.  Distinct colours whose
   directions lie within ``split_angle_deg`` form one group; 8-connected components of
   each group are the blobs.  Blobs under ``min_area_px`` are dropped (the morphological
   clean-up: no opening, which would shift every contact by a pixel and erase the 2-3 px
   cars at 80+ m; the renderer draws without anti-aliasing, so clean frames have no
   speckle to remove).
3. **contact**: per column, the blob's lowest pixel.  The renderer's OpenCV fill lights
   every pixel its outline touches once rounded to the pixel grid (measured: a bottom edge
   at row 58.48 lights row 59, a left edge at column 106.49 lights column 106), so the
   extreme lit pixel's *centre* is the edge to +-0.5 px; contacts are taken at pixel
   centres and mapped to the road (IPM).  A column's contact is *visible* only when the
   pixel below it is background: one standing on another blob is occluded, one on the
   image's bottom row is cut off.  The outermost columns whose lowest pixel lies more than
   :data:`MAX_CONTACT_STEP_PX` above the next column's are peeled off: the pitched camera
   leans a box's vertical edges outwards at the top, so those columns hold no contact.
4. **heading** (L-shape fit, Zhang et al. 2017, "Efficient L-Shape Fitting for Vehicle
   Detection Using Laser Scanners", with their closeness criterion): the road points of
   the visible contacts are the near edges of the footprint, one face (rear or front:
   *face A*, across the heading) or two (plus a side: *face B*).  Headings within
   ``+-max_heading_deg`` of the ego's are tried every degree; for each, every point's
   distance to the nearer of the two near-edge lines is averaged, plus a small prior
   towards the ego-aligned heading.  **Rule**: the fit runs only where the road is
   resolved to ``heading_resolution_m`` per image row at the blob's contact and the
   contact spans at least 3 columns; otherwise (far cars, slivers) the car is taken to be
   aligned with the ego (highway lanes run nearly parallel: 90 % of the labelled
   headings are within 6 deg of the ego's), and a box has no front, so headings are
   reported in ``[-pi/2, pi/2)``.
5. **range from width**: where face A shows whole (both its ends visible, neither at
   the image border nor against another blob), its image width and the default car width
   give a second range, ``fx * width / w_px``; it is fused with the IPM range by inverse
   variance (quantisation of +-0.5 px on each cue) when the two agree within 3 sigma.  At
   40 m one image row spans 8 m of road but the width cue is good to +-3 m, so this
   matters beyond 25 m; a disagreement means a merged or clipped blob, which keeps IPM.
6. **box**: size = the default car (5 m x 2 m, the scenarios' cars), except a measured
   face A width (when whole and within 0.6-1.5x the default) and a measured side longer
   than the default by 1 m (a truck, when the road is resolved there).  The centre is the
   near face pushed back by half the box's depth along the heading, away from the camera;
   across it, the side face pushed over by half the width, or the middle of a whole face
   A, or its one visible end pushed over by half the width.
7. **score**: ``area / (area + score_area_px)``: big (near) blobs localise best; times 0.5
   when some contacts are occluded or cut off, 0.7 when a side meets the image border,
   and 0.3 for the fallbacks below.

Fallbacks: a blob whose every contact is cut off by the image's bottom border (a car right
beside or behind the bumper) is put at the bottom row's road line (a lower bound on its
range error: it is at least that near); one whose every contact stands on another blob
is placed by the width cue alone (when its face shows whole, else dropped).  A blob
whose lowest row is not at least ``min_rows_below_horizon`` below the horizon (only its
top at the horizon: beyond about 150 m, or not on the road at all) and contacts farther
than ``max_range_m`` are dropped.

Limitations (the point of the baseline: what learning buys): two cars of like colour
(the three greys count as one) side by side or one behind the other in the image form one
blob, reported as one car (its width cue disagrees, so it keeps IPM at its nearest
contact); a car whose contact is hidden by a nearer one is placed by width alone; range
error grows with the square of range (one row = 0.3 m at 10 m, 2 m at 20 m, 8 m at
40 m); heading beyond 20 m is assumed; the colour rules know the renderer's flat palette,
so noise, blur or a brightness shift break the segmentation (no re-tuning here); obstacles
are not reported.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from perception.boxes import Boxes
from sim.geometry.pinhole import PinholeCamera

DEFAULT_LENGTH_M = 5.0  # [m] highway-env's cars (Vehicle.LENGTH)
DEFAULT_WIDTH_M = 2.0  # [m] highway-env's cars (Vehicle.WIDTH)
DEFAULT_HEIGHT_M = 1.5  # [m] the perspective renderer's car height
TRUCK_EXCESS_M = 1.0  # [m] a measured side this much longer than the default is kept
_ROW_SIGMA = 1.0 / math.sqrt(12.0)  # [px] an edge somewhere in a 1 px cell: uniform
_SPAN_SIGMA = 1.0 / math.sqrt(6.0)  # [px] a width between two such edges
_MAX_COLOURS = 512  # distinct vehicle colours above this: no colour split (a noisy frame)


@dataclass(frozen=True)
class SceneColours:
    """The colours that are *not* vehicles: the perspective renderer's background.

    The defaults are :class:`sim.world.perspective.PerspectivePalette`'s (perception does
    not import the world); :meth:`from_palette` reads any palette with the same fields.
    """

    sky: tuple[int, int, int] = (150, 190, 230)
    ground: tuple[int, int, int] = (46, 92, 52)
    road: tuple[int, int, int] = (96, 96, 96)
    marking: tuple[int, int, int] = (235, 235, 235)
    obstacle: tuple[int, int, int] = (235, 150, 40)
    marking_far_blend: float = 0.4
    """Far markings take ``road + blend * (marking - road)``
    (:data:`sim.world.perspective.MARKING_FAR_BLEND`)."""

    @classmethod
    def from_palette(cls, palette, marking_far_blend: float = 0.4) -> SceneColours:
        """From a :class:`~sim.world.perspective.PerspectivePalette` (or anything with its
        ``sky``, ``ground``, ``road``, ``marking`` and ``obstacle`` colours)."""
        return cls(
            *(
                tuple(int(c) for c in getattr(palette, name))
                for name in ("sky", "ground", "road", "marking", "obstacle")
            ),
            marking_far_blend=float(marking_far_blend),
        )

    @property
    def background(self) -> np.ndarray:
        """``int16[5, 3]``: sky, ground, road, marking and the far marking blend."""
        far = tuple(
            round(r + self.marking_far_blend * (m - r)) for r, m in zip(self.road, self.marking)
        )
        return np.array([self.sky, self.ground, self.road, self.marking, far], dtype=np.int16)


# ------------------------------------------------------------------------------ segmentation
def vehicle_mask(
    frame: np.ndarray, colours: SceneColours, tolerance: int = 2, obstacle_angle_deg: float = 3.0
) -> np.ndarray:
    """``bool[H, W]``: pixels that are none of the background colours (each channel within
    ``tolerance``) and no shade of the obstacle colour (RGB direction within
    ``obstacle_angle_deg``)."""
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"expected an RGB uint8 frame [H, W, 3], got {frame.dtype} {frame.shape}")
    img = frame.astype(np.int16)
    mask = np.ones(frame.shape[:2], dtype=bool)
    for colour in colours.background:
        mask &= np.abs(img - colour).max(axis=-1) > tolerance
    obstacle = np.asarray(colours.obstacle, dtype=np.float64)
    cosine = (img @ (obstacle / np.linalg.norm(obstacle))) / np.maximum(
        np.linalg.norm(img, axis=-1), 1e-9
    )
    mask &= cosine < math.cos(math.radians(obstacle_angle_deg))
    return mask


def colour_groups(frame: np.ndarray, mask: np.ndarray, split_angle_deg: float) -> np.ndarray:
    """``int32[H, W]``: per masked pixel, the group of its colour (-1 elsewhere): distinct
    colours joined (single linkage) while their RGB directions are within
    ``split_angle_deg``, so the shaded faces of one body colour share a group.  One group
    for every pixel when the frame has more than a few hundred distinct colours (noise)."""
    groups = np.full(mask.shape, -1, dtype=np.int32)
    if not mask.any():
        return groups
    pixels = frame[mask].astype(np.int64)
    code = (pixels[:, 0] << 16) | (pixels[:, 1] << 8) | pixels[:, 2]
    unique, inverse = np.unique(code, return_inverse=True)
    if len(unique) > _MAX_COLOURS:
        groups[mask] = 0
        return groups
    rgb = np.stack([unique >> 16, (unique >> 8) & 255, unique & 255], axis=-1).astype(np.float64)
    direction = rgb / np.maximum(np.linalg.norm(rgb, axis=-1, keepdims=True), 1e-9)
    near = direction @ direction.T >= math.cos(math.radians(split_angle_deg))
    label = np.arange(len(unique))
    while True:  # single linkage by label propagation: the smallest label of each clique
        new = np.where(near, label[None, :], len(unique)).min(axis=1)
        if np.array_equal(new, label):
            break
        label = new
    groups[mask] = np.unique(label, return_inverse=True)[1][inverse.reshape(-1)]
    return groups


def blobs(
    groups: np.ndarray, min_area_px: int
) -> tuple[np.ndarray, list[tuple[int, int, int, int, int]]]:
    """8-connected components of each colour group: ``(labels int32[H, W], -1 = none;
    [(x0, y0, width, height, area)] per blob)``, blobs under ``min_area_px`` dropped."""
    labels = np.full(groups.shape, -1, dtype=np.int32)
    stats: list[tuple[int, int, int, int, int]] = []
    for g in range(int(groups.max()) + 1):
        n, comp, st, _ = cv2.connectedComponentsWithStats(
            (groups == g).astype(np.uint8), connectivity=8
        )
        for k in range(1, n):
            x0, y0, w, h, area = (int(s) for s in st[k])
            if area < min_area_px:
                continue
            labels[comp == k] = len(stats)
            stats.append((x0, y0, w, h, area))
    return labels, stats


# ------------------------------------------------------------------------------ geometry
def l_shape_heading(
    points_xy: np.ndarray,
    camera_xy: np.ndarray,
    max_heading_rad: float,
    step_rad: float = math.radians(1.0),
    prior_m_per_rad: float = 0.05,
) -> float:
    """The heading [rad] in ``[-max, max]`` (ego frame) whose near-edge lines best explain
    road points ``[N, 2]`` seen from ``camera_xy``: per candidate heading, each point's
    distance to the nearer of the footprint's two near edges (the lines through the
    extreme points on the camera's side, along and across the heading), averaged
    (Zhang et al. 2017's closeness criterion, as a mean distance), plus
    ``prior_m_per_rad * |heading|`` towards the ego-aligned heading."""
    n = math.floor(max_heading_rad / step_rad + 1e-9)
    theta = step_rad * np.arange(-n, n + 1)  # symmetric, with an exact 0
    c, s = np.cos(theta)[:, None], np.sin(theta)[:, None]
    rel = points_xy - camera_xy  # the camera at the origin
    a = c * rel[:, 0] + s * rel[:, 1]  # [T, N] along the heading
    b = -s * rel[:, 0] + c * rel[:, 1]  # [T, N] across it
    # the mean over points of the distance to the nearer visible face
    dist = []
    for along in (a, b):
        lo, hi = along.min(axis=1, keepdims=True), along.max(axis=1, keepdims=True)
        near = np.where(lo > 0.0, lo, np.where(hi < 0.0, hi, np.nan))
        dist.append(np.where(np.isnan(near), np.inf, np.abs(along - near)))
    cost = np.minimum(dist[0], dist[1]).mean(axis=1) + prior_m_per_rad * np.abs(theta)
    if not np.isfinite(cost).any():
        return 0.0
    return float(theta[int(np.argmin(cost))])


MAX_CONTACT_STEP_PX = 2
"""[px/column] Steeper than this, a bottom outline is no road edge: a road line at lateral
distance ``d`` from a lens ``h`` high climbs about ``h / d`` rows per column (1 at 1.5 m
for the default rig; a car nearer than that shows no side), while a box's vertical edge,
tilted by the camera's pitch, climbs 12 rows per column at the image border and more
inwards."""


def _leaning_edges(low: np.ndarray) -> np.ndarray:
    """``bool[W]``: the outermost columns of a blob whose lowest pixel lies on a vertical
    edge rather than on the road: a pitched camera leans vertical edges outwards at the top,
    so the extreme columns hold only their upper part.  Peeled from each end while the next
    column inwards reaches more than :data:`MAX_CONTACT_STEP_PX` rows lower."""
    lean = np.zeros(len(low), dtype=bool)
    for order in (np.arange(len(low) - 1), np.arange(len(low) - 1, 0, -1)):
        for i in order:
            j = i + 1 if order[0] == 0 else i - 1
            if low[j] - low[i] <= MAX_CONTACT_STEP_PX:
                break
            lean[i] = True
    return lean


def _extremes(values: np.ndarray, trusted: np.ndarray) -> tuple[float, float, bool, bool]:
    """``(lo, hi, lo_trusted, hi_trusted)`` of ``values`` whose entries are ``trusted``
    where they are genuine ends of the footprint (not cut by the image border or another
    blob)."""
    i, j = int(np.argmin(values)), int(np.argmax(values))
    return float(values[i]), float(values[j]), bool(trusted[i]), bool(trusted[j])


@dataclass
class _Contacts:
    """One blob's road contacts, ordered left to right in the image."""

    points_xy: np.ndarray  # [N, 2] ego frame [m]
    trusted: np.ndarray  # [N] bool: a genuine end (only the first and last may be False)
    row_m: float  # [m] road length one image row spans at the nearest contact
    fit_heading: bool  # whether the L-shape fit may run
    score_factor: float


class GeometricDetector:
    """Vehicle boxes (ego frame) from one perspective camera frame, by colour segmentation
    and inverse perspective mapping; see the module docstring for the method and its
    rules.

    :param camera: the camera the frames come from (may be given per call instead)
    :param palette: the renderer's palette (:class:`sim.world.perspective.PerspectivePalette`
        or anything with its colour fields); None = the default palette
    """

    name = "geometric"

    def __init__(
        self,
        camera: PinholeCamera | None = None,
        palette=None,
        colour_tolerance: int = 2,
        split_angle_deg: float = 5.0,
        min_area_px: int = 3,
        max_heading_deg: float = 30.0,
        heading_resolution_m: float = 1.0,
        min_rows_below_horizon: float = 1.0,
        max_range_m: float = 120.0,
        default_length_m: float = DEFAULT_LENGTH_M,
        default_width_m: float = DEFAULT_WIDTH_M,
        score_area_px: float = 40.0,
    ) -> None:
        checks = {
            "colour_tolerance": (colour_tolerance, 0),
            "min_area_px": (min_area_px, 1),
            "split_angle_deg": (split_angle_deg, 0),
            "max_heading_deg": (max_heading_deg, 0),
            "heading_resolution_m": (heading_resolution_m, 0),
            "max_range_m": (max_range_m, 1e-9),
            "min_rows_below_horizon": (min_rows_below_horizon, 0),
            "default_length_m": (default_length_m, 1e-9),
            "default_width_m": (default_width_m, 1e-9),
            "score_area_px": (score_area_px, 1e-9),
        }
        for name, (value, low) in checks.items():
            if not (np.isfinite(value) and value >= low):
                raise ValueError(
                    f"GeometricDetector.{name} must be a number >= {low}, got {value!r}"
                )
        if max_heading_deg >= 90.0:
            raise ValueError(
                f"GeometricDetector.max_heading_deg must be < 90, got {max_heading_deg!r}"
            )
        self.camera = camera
        self.colours = SceneColours() if palette is None else SceneColours.from_palette(palette)
        self.colour_tolerance = int(colour_tolerance)  # [0-255] per channel
        self.split_angle_deg = float(split_angle_deg)  # [deg] colour directions of one body
        self.min_area_px = int(min_area_px)  # [px] smaller blobs are noise
        self.max_heading_rad = math.radians(max_heading_deg)  # [rad] L-shape search range
        self.heading_resolution_m = float(heading_resolution_m)  # [m/row] finer: fit the heading
        self.min_rows_below_horizon = float(min_rows_below_horizon)  # [px]
        self.max_range_m = float(max_range_m)  # [m] farther contacts are dropped
        self.length_m = float(default_length_m)
        self.width_m = float(default_width_m)
        self.score_area_px = float(score_area_px)  # [px] the area that scores 0.5

    # ------------------------------------------------------------------------- API
    def detect(self, frame: np.ndarray, camera: PinholeCamera | None = None) -> Boxes:
        """Vehicles (kind 0) in one RGB frame of ``camera`` (default: the constructor's)."""
        cam = camera if camera is not None else self.camera
        if cam is None:
            raise ValueError(
                "GeometricDetector.detect needs a camera: pass one here or to the constructor"
            )
        if frame.shape != cam.shape:
            raise ValueError(
                f"frame is {frame.shape}, camera {cam.shape}: the frame of another camera?"
            )
        mask = vehicle_mask(frame, self.colours, self.colour_tolerance)
        labels, stats = blobs(colour_groups(frame, mask, self.split_angle_deg), self.min_area_px)
        rows = [self._blob_box(labels, mask, k, st, cam) for k, st in enumerate(stats)]
        rows = [r for r in rows if r is not None]
        if not rows:
            return Boxes.empty()
        a = np.array(rows, dtype=np.float64)
        return Boxes(
            centre_m=a[:, 0:2],
            heading_rad=a[:, 2],
            length_m=a[:, 3],
            width_m=a[:, 4],
            kind=np.zeros(len(a), np.int8),
            score=a[:, 5],
            height_m=a[:, 6],
        )

    def detect_batch(
        self,
        frames: Sequence[np.ndarray],
        cameras: PinholeCamera | Sequence[PinholeCamera | None] | None = None,
    ) -> list[Boxes]:
        """:meth:`detect` per frame; ``cameras``: one per frame, one for all, or None (the
        constructor's)."""
        if cameras is None or isinstance(cameras, PinholeCamera):
            cameras = [cameras] * len(frames)
        if len(cameras) != len(frames):
            raise ValueError(f"{len(frames)} frames but {len(cameras)} cameras")
        return [self.detect(f, c) for f, c in zip(frames, cameras)]

    # ------------------------------------------------------------------------- one blob
    def _contacts(
        self, labels: np.ndarray, mask: np.ndarray, k: int, stat, cam: PinholeCamera
    ) -> _Contacts | None:
        """The road points under blob ``k`` (its visible contacts, or a fallback)."""
        x0, y0, w, h, _ = stat
        height, width = labels.shape
        crop = labels[y0 : y0 + h, x0 : x0 + w] == k
        low = (
            y0 + h - 1 - np.argmax(crop[::-1], axis=0)
        )  # lowest row per column (every column has one)
        u = np.arange(x0, x0 + w)
        cut = low == height - 1
        occluded = ~cut & mask[np.minimum(low + 1, height - 1), u]
        horizon = np.asarray(cam.horizon_row(u.astype(np.float64)), dtype=np.float64)
        below_horizon = low >= horizon + self.min_rows_below_horizon
        if not below_horizon.any():  # only the top of something at the horizon: no road contact
            return None
        # a side is cut when the blob meets the image border or another blob there
        rows_left, rows_right = np.flatnonzero(crop[:, 0]) + y0, np.flatnonzero(crop[:, -1]) + y0
        left_cut = x0 == 0 or bool(mask[rows_left, x0 - 1].any())
        right_cut = x0 + w == width or bool(mask[rows_right, x0 + w].any())
        visible = ~cut & ~occluded & below_horizon & ~_leaning_edges(low)
        at_border = x0 == 0 or x0 + w == width
        factor = (0.5 if (cut | occluded).any() else 1.0) * (0.7 if at_border else 1.0)
        if visible.any():
            idx = np.flatnonzero(visible)
            uu, vv = u[idx].astype(np.float64), low[idx].astype(np.float64)
            first_ok = idx[0] == 0 and not left_cut
            last_ok = idx[-1] == w - 1 and not right_cut
            fit = len(idx) >= 3
        elif cut.any():  # the contact lies below the image: put it at the bottom row's road line
            idx = np.flatnonzero(cut)
            uu, vv = u[idx].astype(np.float64), np.full(len(idx), height - 0.5)
            first_ok, last_ok, fit, factor = False, False, False, 0.3
        else:  # every contact stands on another blob: range from the width cue alone
            return self._width_only(cam, x0, w, low, left_cut, right_cut)
        uu, vv = (uu, vv) if len(uu) > 1 else (uu[[0, 0]], vv[[0, 0]])
        ground = cam.pixel_to_ground(np.stack([uu, vv], axis=-1))[:, :2]
        trusted = np.ones(len(uu), dtype=bool)
        trusted[0], trusted[-1] = first_ok, last_ok
        ok = np.isfinite(ground[:, 0]) & (np.hypot(ground[:, 0], ground[:, 1]) <= self.max_range_m)
        if ok.sum() < 2:
            return None
        nearest = int(np.argmax(np.where(ok, vv, -np.inf)))
        step = cam.pixel_to_ground(np.array([[uu[nearest], vv[nearest] - 1.0]]))[0, :2]
        row_m = float(np.linalg.norm(step - ground[nearest])) if np.isfinite(step[0]) else np.inf
        return _Contacts(ground[ok], trusted[ok], row_m, fit, factor)

    def _width_only(
        self, cam: PinholeCamera, x0: int, w: int, low: np.ndarray, left_cut: bool, right_cut: bool
    ) -> _Contacts | None:
        """Two road points, the ends of a face of the default width seen ``w`` px wide: the
        range ``fx * width / w`` along the blob's bearing (None when a side is cut: the
        visible width is not the car's)."""
        if left_cut or right_cut:
            return None
        v = float(low.max())
        ends = cam.pixel_to_ray(np.array([[x0, v], [x0 + w - 1, v]]))[:, :2]
        ends /= np.linalg.norm(ends, axis=-1, keepdims=True)
        depth_m = cam.fx * self.width_m / max(w - 1, 1)  # [m] along the optical axis
        forward = cam.rotation_ego_from_camera[:2, 2] / np.linalg.norm(
            cam.rotation_ego_from_camera[:2, 2]
        )
        dist = depth_m / np.maximum(ends @ forward, 1e-3)  # [m] horizontal range of each end
        points = cam.position_m[:2] + dist[:, None] * ends
        if np.hypot(*points.mean(axis=0)) > self.max_range_m:
            return None
        return _Contacts(points, np.ones(2, dtype=bool), np.inf, False, 0.3)

    def _blob_box(self, labels: np.ndarray, mask: np.ndarray, k: int, stat, cam: PinholeCamera):
        """``(x, y, heading, length, width, score, height)`` of blob ``k``, or None."""
        c = self._contacts(labels, mask, k, stat, cam)
        if c is None:
            return None
        cam_xy = cam.position_m[:2]
        fit = c.fit_heading and c.row_m <= self.heading_resolution_m
        theta = l_shape_heading(c.points_xy, cam_xy, self.max_heading_rad) if fit else 0.0
        along = np.array([math.cos(theta), math.sin(theta)])
        across = np.array([-along[1], along[0]])
        rel = c.points_xy - cam_xy
        a, b = rel @ along, rel @ across
        a_lo, a_hi, a_lo_ok, a_hi_ok = _extremes(a, c.trusted)
        b_lo, b_hi, b_lo_ok, b_hi_ok = _extremes(b, c.trusted)
        face_a = a_lo > 0.0 or a_hi < 0.0  # the camera is beyond the near rear/front face
        face_b = b_lo > 0.0 or b_hi < 0.0  # ... beyond a side
        # range from width: face A seen whole (both ends genuine), fused with IPM
        if face_a and b_lo_ok and b_hi_ok and b_hi - b_lo > 1e-6:
            a_near = a_lo if a_lo > 0.0 else a_hi
            rho = math.hypot(a_near, 0.5 * (b_lo + b_hi))  # [m] IPM range of face A's middle
            rho_w = (
                rho * self.width_m / (b_hi - b_lo)
            )  # [m] the range that makes it the default width
            w_px = cam.fx * (b_hi - b_lo) / rho  # [px] between the end pixels' centres
            sigma_ipm = c.row_m * _ROW_SIGMA if np.isfinite(c.row_m) else np.inf
            sigma_w = rho_w * _SPAN_SIGMA / max(w_px, 1.0)
            if np.isfinite(sigma_ipm) and abs(rho_w - rho) <= 3.0 * math.hypot(sigma_ipm, sigma_w):
                fused = (rho / sigma_ipm**2 + rho_w / sigma_w**2) / (
                    1.0 / sigma_ipm**2 + 1.0 / sigma_w**2
                )
                f = fused / rho
                a, b = a * f, b * f
                a_lo, a_hi, b_lo, b_hi = a_lo * f, a_hi * f, b_lo * f, b_hi * f
        # size: the default car, or what was measured where it can be trusted
        width = self.width_m
        if (
            face_a
            and b_lo_ok
            and b_hi_ok
            and 0.6 * self.width_m <= b_hi - b_lo <= 1.5 * self.width_m
        ):
            width = b_hi - b_lo
        length = self.length_m
        if face_b and fit and a_lo_ok and a_hi_ok and a_hi - a_lo >= self.length_m + TRUCK_EXCESS_M:
            length = a_hi - a_lo
        a_c = _centre_along(a_lo, a_hi, a_lo_ok, a_hi_ok, face_a, length)
        b_c = _centre_along(b_lo, b_hi, b_lo_ok, b_hi_ok, face_b, width)
        centre = cam_xy + a_c * along + b_c * across
        area = stat[4]
        score = c.score_factor * area / (area + self.score_area_px)
        heading = (theta + math.pi / 2) % math.pi - math.pi / 2
        return (
            centre[0],
            centre[1],
            heading,
            length,
            width,
            score,
            self._height(labels, k, stat, cam, math.hypot(a_c, b_c)),
        )

    def _height(self, labels, k, stat, cam: PinholeCamera, range_m: float) -> float:
        """[m] The blob's top edge at the range of the box: the default car height unless it
        rises a clear 2 px above the horizon (a taller vehicle)."""
        x0, y0, w, _, _ = stat
        u = x0 + int(np.argmax(labels[y0, x0 : x0 + w] == k))
        if y0 > cam.horizon_row(float(u)) - 2.0:
            return DEFAULT_HEIGHT_M
        ray = cam.pixel_to_ray(np.array([u, y0 - 0.5]))
        return float(cam.z_m + range_m * ray[2] / max(np.hypot(ray[0], ray[1]), 1e-9))


def _centre_along(
    lo: float, hi: float, lo_ok: bool, hi_ok: bool, near_face: bool, size_m: float
) -> float:
    """The box centre on one axis (camera at 0) from the points' extent ``[lo, hi]`` on it:
    with a face across this axis towards the camera, its line pushed back by half the
    size (or, when that end is not genuine, the far end pulled in); otherwise the middle
    of a whole extent, or its one genuine end pushed in by half the size."""
    if near_face:
        near, far, near_ok, far_ok, sign = (
            (lo, hi, lo_ok, hi_ok, 1.0) if lo > 0.0 else (hi, lo, hi_ok, lo_ok, -1.0)
        )
        if not near_ok and far_ok:
            return far - sign * size_m / 2
        return near + sign * size_m / 2
    if lo_ok and not hi_ok:
        return lo + size_m / 2
    if hi_ok and not lo_ok:
        return hi - size_m / 2
    return 0.5 * (lo + hi)
