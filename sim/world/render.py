"""Headless OpenCV rendering of the driving scene.

Two views share one drawing routine (an affine world -> pixel map):

* :meth:`SceneRenderer.ego_camera`: the ego camera of :mod:`sim.geometry.bev`, rotated with
  the car (the car points up at a fixed pixel).  This is what agents see.
* :meth:`SceneRenderer.top_down`: a larger north-up overview for videos and reports.

:func:`top_down_transform` is the overview's map, public so that whatever draws on an
overview afterwards (the planner overlay of :mod:`sim.report.video`) lands on the same pixels.

Colours come from a :class:`Palette`, one per visual condition (:mod:`sim.world.visual`);
a worn road's palette adds repaired-asphalt patches (:func:`wear_patches`), the same ones
the perspective rig draws.

Nothing here touches pygame, so it works with no display and no SDL driver, and it is
deterministic: the same state gives the same bytes.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import cv2
import numpy as np

from sim.geometry.bev import BevCamera
from sim.geometry.frames import box_corners
from sim.world.roadmap import RoadGeometry, lane_id

SHIFT = 4  # fractional bits for OpenCV's sub-pixel drawing
SCALE = float(1 << SHIFT)

KIND_VEHICLE = 0
KIND_OBSTACLE = 1


@dataclass(frozen=True)
class Palette:
    """RGB colours of the rendered scene (the defaults are the ``day`` condition; the others
    are in :mod:`sim.world.visual`)."""

    ground: tuple[int, int, int] = (46, 92, 52)
    road: tuple[int, int, int] = (96, 96, 96)
    marking: tuple[int, int, int] = (235, 235, 235)
    vehicle: tuple[int, int, int] = (60, 110, 220)
    obstacle: tuple[int, int, int] = (235, 150, 40)
    ego: tuple[int, int, int] = (70, 210, 100)
    route: tuple[int, int, int] = (240, 220, 80)
    patch: tuple[int, int, int] | None = None
    """Colour of the repaired-asphalt patches of a worn road (:func:`wear_patches`); None:
    a clean road, no patches."""


WEAR_SLOT_M = 10.0  # [m] a lane is cut into slots this long; each holds at most one patch
WEAR_PATCH_PROBABILITY = 0.5  # the chance that a slot holds a patch
WEAR_PATCH_LENGTH_M = (1.5, 6.0)  # [m] range of a patch's length along the lane
WEAR_PATCH_WIDTH = (0.25, 0.7)  # range of a patch's width, as a fraction of its lane's width
WEAR_SEED = 0  # patches are a fixed texture of the map: the same map, the same patches
WEAR_SORT_CELL_M = 20.0  # [m] patches are listed cell by cell of this grid, row by row


def wear_patches(geometry: RoadGeometry) -> np.ndarray:
    """Repaired-asphalt patches of a worn road: rectangles ``[K, 4, 2]`` (world frame,
    corners counter-clockwise as :func:`box_corners`) lying inside their lanes, along them.

    Each lane draws its own from a generator seeded by :data:`WEAR_SEED` and its id (so a
    lane's patches do not depend on the other lanes, nor on the process); a lane is cut
    into :data:`WEAR_SLOT_M` slots holding at most one patch each, so one lane's patches
    never overlap.  Lanes of one road (same ``from``, ``to``) never overlap either; where
    lanes of different roads do (a ramp, a roundabout entry), a patch overlapping an
    earlier one of another road is dropped, so the set is overlap-free (OpenCV may fill it
    in one call with the even-odd rule).  Listed cell by cell (:data:`WEAR_SORT_CELL_M`),
    so consecutive patches lie close together."""
    centres, headings, lengths, widths, roads = [], [], [], [], []
    for lane in geometry.lanes.values():
        length = float(lane.s_m[-1])
        slots = int(length // WEAR_SLOT_M)
        if slots < 1:
            continue
        rng = np.random.default_rng([WEAR_SEED, zlib.crc32(lane_id(lane.index).encode())])
        used = rng.random(slots) < WEAR_PATCH_PROBABILITY
        patch_len = rng.uniform(*WEAR_PATCH_LENGTH_M, slots)
        start = np.arange(slots) * WEAR_SLOT_M + rng.random(slots) * (WEAR_SLOT_M - patch_len)
        width = lane.width_m * rng.uniform(*WEAR_PATCH_WIDTH, slots)
        lateral = rng.uniform(-0.5, 0.5, slots) * (lane.width_m - width)  # [m] left of centre
        s = (start + patch_len / 2)[used]
        heading = np.interp(s, lane.s_m, np.unwrap(lane.heading_rad))
        normal = np.stack([-np.sin(heading), np.cos(heading)], axis=-1)
        centre = np.stack([np.interp(s, lane.s_m, lane.centre_m[:, k]) for k in (0, 1)], axis=-1)
        centres.append(centre + lateral[used, None] * normal)
        headings.append(heading)
        lengths.append(patch_len[used])
        widths.append(width[used])
        roads.append(np.full(int(used.sum()), len(roads)))
    if not centres:
        return np.zeros((0, 4, 2))
    quads = box_corners(
        np.concatenate(centres),
        np.concatenate(headings),
        np.concatenate(lengths),
        np.concatenate(widths),
    )
    quads = quads[_overlap_free(quads, np.concatenate(roads))]
    # neighbours in space next to each other (renderers cull runs of consecutive polygons)
    cell = np.floor(quads.mean(axis=1) / WEAR_SORT_CELL_M).astype(np.int64)
    return quads[np.lexsort((cell[:, 0], cell[:, 1]))]


def _overlap_free(quads: np.ndarray, group: np.ndarray) -> np.ndarray:
    """Which convex quads ``[K, 4, 2]`` to keep so that no two of different ``group`` overlap
    (earlier ones win; separating-axis test, checked only where bounding circles meet)."""
    centre = quads.mean(axis=1)
    radius = np.linalg.norm(quads - centre[:, None], axis=-1).max(axis=1)
    cell = 2.0 * float(radius.max())
    grid: dict[tuple[int, int], list[int]] = {}
    keep = np.zeros(len(quads), dtype=bool)
    for k, (x, y) in enumerate(np.floor(centre / cell).astype(np.int64).tolist()):
        near = [j for dx in (-1, 0, 1) for dy in (-1, 0, 1) for j in grid.get((x + dx, y + dy), ())]
        if not any(
            group[j] != group[k]
            and np.linalg.norm(centre[j] - centre[k]) < radius[j] + radius[k]
            and _convex_overlap(quads[j], quads[k])
            for j in near
        ):
            keep[k] = True
            grid.setdefault((x, y), []).append(k)
    return keep


def _convex_overlap(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two convex polygons ``[n, 2]`` overlap (no edge normal separates them)."""
    for poly in (a, b):
        edges = np.roll(poly, -1, axis=0) - poly
        axes = np.stack([-edges[:, 1], edges[:, 0]], axis=-1)
        pa, pb = a @ axes.T, b @ axes.T
        if np.any((pa.max(axis=0) <= pb.min(axis=0)) | (pb.max(axis=0) <= pa.min(axis=0))):
            return False
    return True


@dataclass
class SceneObjects:
    """Other road users and obstacles as arrays (world frame)."""

    position_m: np.ndarray  # [N, 2]
    heading_rad: np.ndarray  # [N]
    length_m: np.ndarray  # [N]
    width_m: np.ndarray  # [N]
    kind: np.ndarray  # [N] KIND_VEHICLE | KIND_OBSTACLE

    @classmethod
    def empty(cls) -> SceneObjects:
        z = np.zeros(0)
        return cls(np.zeros((0, 2)), z, z, z, np.zeros(0, dtype=np.int8))


def top_down_transform(
    size_px: tuple[int, int], metres_per_pixel: float, centre_xy_m: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The affine world -> pixel map ``(m, t)`` of :meth:`SceneRenderer.top_down`.

    A world point ``xy`` [m] (y up) lands at pixel ``uv = m @ xy + t`` (u right, v down;
    integer ``uv`` are pixel centres); ``centre_xy_m`` lands at the image centre.
    """
    w, h = size_px
    m = np.array([[1.0, 0.0], [0.0, -1.0]]) / metres_per_pixel
    t = np.array([(w - 1) / 2.0, (h - 1) / 2.0]) - m @ np.asarray(centre_xy_m, dtype=np.float64)
    return m, t


def to_px(xy: np.ndarray, m: np.ndarray, t: np.ndarray) -> np.ndarray:
    """World points ``[N, 2]`` -> OpenCV fixed-point pixels ``int32[N, 2]`` (``SHIFT``
    fractional bits: pass ``shift=SHIFT`` to the cv2 drawing call)."""
    uv = np.asarray(xy, dtype=np.float64) @ (m.T * SCALE) + t * SCALE
    return np.rint(uv).astype(np.int32)


def _near(centres: np.ndarray, view_xy: np.ndarray, reach: np.ndarray | float) -> np.ndarray:
    """Indices of items whose centre lies within ``reach`` of the view centre."""
    d = centres - view_xy
    return np.flatnonzero(np.einsum("ij,ij->i", d, d) <= np.square(reach))


class SceneRenderer:
    """Draws a :class:`RoadGeometry` and the objects on it."""

    def __init__(self, geometry: RoadGeometry, palette: Palette = Palette()) -> None:
        self.geometry = geometry
        self.palette = palette
        # a worn road's patches [K, 4, 2] (none on a clean one), culled by bounding circles
        self._patches = wear_patches(geometry) if palette.patch is not None else np.zeros((0, 4, 2))
        self._patch_centres = self._patches.mean(axis=1)
        self._patch_radii = np.linalg.norm(
            self._patches - self._patch_centres[:, None], axis=-1
        ).max(axis=1)

    # -- views -----------------------------------------------------------------------------
    def ego_camera(
        self,
        spec: BevCamera,
        ego_xy_m: np.ndarray,
        ego_heading_rad: float,
        objects: SceneObjects,
        ego_length_m: float,
        ego_width_m: float,
    ) -> np.ndarray:
        """The ego camera frame ``uint8[H, W, 3]``: ego forward is up, ego left is left."""
        c, s = np.cos(ego_heading_rad), np.sin(ego_heading_rad)
        m = np.array([[s, -c], [-c, -s]]) / spec.metres_per_pixel
        t = np.array([spec.ego_u_px, spec.ego_v_px]) - m @ np.asarray(ego_xy_m, dtype=np.float64)
        img = np.empty(spec.shape, dtype=np.uint8)
        self._draw(
            img,
            m,
            t,
            np.asarray(ego_xy_m, dtype=np.float64),
            spec.view_radius_m,
            spec.metres_per_pixel,
            objects,
        )
        self._draw_boxes(
            img,
            m,
            t,
            np.asarray(ego_xy_m, dtype=np.float64)[None],
            np.array([ego_heading_rad]),
            np.array([ego_length_m]),
            np.array([ego_width_m]),
            self.palette.ego,
        )
        return img

    def top_down(
        self,
        size_px: tuple[int, int],
        metres_per_pixel: float,
        centre_xy_m: np.ndarray,
        objects: SceneObjects,
        ego_xy_m: np.ndarray,
        ego_heading_rad: float,
        ego_length_m: float,
        ego_width_m: float,
        route_m: np.ndarray | None = None,
    ) -> np.ndarray:
        """A north-up overview ``uint8[H, W, 3]`` centred on ``centre_xy_m``."""
        w, h = size_px
        m, t = top_down_transform(size_px, metres_per_pixel, centre_xy_m)
        img = np.empty((h, w, 3), dtype=np.uint8)
        radius = 0.5 * np.hypot(w, h) * metres_per_pixel
        self._draw(
            img, m, t, np.asarray(centre_xy_m, dtype=np.float64), radius, metres_per_pixel, objects
        )
        if route_m is not None and len(route_m) > 1:
            d = route_m - centre_xy_m
            near = np.einsum("ij,ij->i", d, d) < (radius + 50.0) ** 2
            if near.any():
                pts = self._to_px(route_m[near], m, t)
                cv2.polylines(img, [pts], False, self.palette.route, 1, cv2.LINE_AA, SHIFT)
        self._draw_boxes(
            img,
            m,
            t,
            np.asarray(ego_xy_m, dtype=np.float64)[None],
            np.array([ego_heading_rad]),
            np.array([ego_length_m]),
            np.array([ego_width_m]),
            self.palette.ego,
        )
        return img

    # -- drawing -----------------------------------------------------------------------------
    _to_px = staticmethod(to_px)

    def _many_to_px(self, arrays: list[np.ndarray], idx: np.ndarray, m, t) -> list[np.ndarray]:
        """Transform the selected polylines with one matrix product."""
        if len(idx) == 0:
            return []
        chosen = [arrays[i] for i in idx]
        flat = self._to_px(np.concatenate(chosen), m, t)
        return np.split(flat, np.cumsum([len(a) for a in chosen])[:-1])

    def _draw(
        self,
        img: np.ndarray,
        m: np.ndarray,
        t: np.ndarray,
        view_xy: np.ndarray,
        view_radius: float,
        mpp: float,
        objects: SceneObjects,
    ) -> None:
        g, pal = self.geometry, self.palette
        img[:] = pal.ground
        polys = self._many_to_px(
            g.surface_polys, _near(g.surface_centres, view_xy, view_radius + g.surface_radii), m, t
        )
        if polys:
            cv2.fillPoly(img, polys, pal.road, cv2.LINE_AA, SHIFT)
        if len(self._patches):
            idx = _near(self._patch_centres, view_xy, view_radius + self._patch_radii)
            if len(idx):
                px = self._to_px(self._patches[idx].reshape(-1, 2), m, t).reshape(-1, 4, 2)
                cv2.fillPoly(img, list(px), pal.patch, cv2.LINE_AA, SHIFT)
        thickness = 1 if mpp >= 0.25 else max(1, round(0.15 / mpp))
        lines = self._many_to_px(
            g.solid_lines, _near(g.solid_centres, view_xy, view_radius + g.solid_radii), m, t
        )
        if lines:
            cv2.polylines(img, lines, False, pal.marking, thickness, cv2.LINE_AA, SHIFT)
        idx = _near(g.dash_mids, view_xy, view_radius + 2.0)
        if len(idx):
            seg = self._to_px(g.dashes[idx].reshape(-1, 2), m, t).reshape(-1, 2, 2)
            cv2.polylines(img, list(seg), False, pal.marking, thickness, cv2.LINE_AA, SHIFT)
        if len(objects.position_m):
            diag = np.hypot(objects.length_m, objects.width_m) / 2
            near = np.zeros(len(objects.position_m), dtype=bool)
            near[_near(objects.position_m, view_xy, view_radius + diag)] = True
            for kind, colour in ((KIND_OBSTACLE, pal.obstacle), (KIND_VEHICLE, pal.vehicle)):
                sel = near & (objects.kind == kind)
                if sel.any():
                    self._draw_boxes(
                        img,
                        m,
                        t,
                        objects.position_m[sel],
                        objects.heading_rad[sel],
                        objects.length_m[sel],
                        objects.width_m[sel],
                        colour,
                    )

    def _draw_boxes(self, img, m, t, pos, heading, length, width, colour) -> None:
        corners = box_corners(pos, heading, length, width)
        px = self._to_px(corners.reshape(-1, 2), m, t).reshape(-1, 4, 2)
        for quad in px:
            cv2.fillConvexPoly(img, quad, colour, cv2.LINE_AA, SHIFT)
