"""Headless OpenCV rendering of the driving scene.

Two views share one drawing routine (an affine world -> pixel map):

* :meth:`SceneRenderer.ego_camera`: the ego camera of :mod:`sim.camera`, rotated with
  the car (the car points up at a fixed pixel).  This is what agents see.
* :meth:`SceneRenderer.top_down`: a larger north-up overview for videos and reports.

Nothing here touches pygame, so it works with no display and no SDL driver, and it is
deterministic: the same state gives the same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from sim.camera import CameraSpec
from sim.roadmap import RoadGeometry

SHIFT = 4  # fractional bits for OpenCV's sub-pixel drawing
SCALE = float(1 << SHIFT)

KIND_VEHICLE = 0
KIND_OBSTACLE = 1


@dataclass(frozen=True)
class Palette:
    """RGB colours of the rendered scene."""

    ground: tuple[int, int, int] = (46, 92, 52)
    road: tuple[int, int, int] = (96, 96, 96)
    marking: tuple[int, int, int] = (235, 235, 235)
    vehicle: tuple[int, int, int] = (60, 110, 220)
    obstacle: tuple[int, int, int] = (235, 150, 40)
    ego: tuple[int, int, int] = (70, 210, 100)
    route: tuple[int, int, int] = (240, 220, 80)


@dataclass
class SceneObjects:
    """Other road users and obstacles as arrays (world frame)."""

    position_m: np.ndarray  # [N, 2]
    heading_rad: np.ndarray  # [N]
    length_m: np.ndarray  # [N]
    width_m: np.ndarray  # [N]
    kind: np.ndarray  # [N] KIND_VEHICLE | KIND_OBSTACLE

    @classmethod
    def empty(cls) -> "SceneObjects":
        z = np.zeros(0)
        return cls(np.zeros((0, 2)), z, z, z, np.zeros(0, dtype=np.int8))


def box_corners(position_m: np.ndarray, heading_rad: np.ndarray, length_m: np.ndarray,
                width_m: np.ndarray) -> np.ndarray:
    """Corners ``[N, 4, 2]`` of oriented boxes, counter-clockwise from rear-right."""
    c, s = np.cos(heading_rad), np.sin(heading_rad)
    hl, hw = length_m / 2.0, width_m / 2.0
    local = np.stack(
        [np.stack([-hl, -hw], -1), np.stack([hl, -hw], -1), np.stack([hl, hw], -1),
         np.stack([-hl, hw], -1)], axis=1)  # [N, 4, 2]
    x = c[:, None] * local[..., 0] - s[:, None] * local[..., 1]
    y = s[:, None] * local[..., 0] + c[:, None] * local[..., 1]
    return np.stack([x, y], axis=-1) + position_m[:, None, :]


class SceneRenderer:
    """Draws a :class:`RoadGeometry` and the objects on it."""

    def __init__(self, geometry: RoadGeometry, palette: Palette = Palette()) -> None:
        self.geometry = geometry
        self.palette = palette

    # -- views -----------------------------------------------------------------------------
    def ego_camera(self, spec: CameraSpec, ego_xy_m: np.ndarray, ego_heading_rad: float,
                   objects: SceneObjects, ego_length_m: float, ego_width_m: float) -> np.ndarray:
        """The ego camera frame ``uint8[H, W, 3]``: ego forward is up, ego left is left."""
        c, s = np.cos(ego_heading_rad), np.sin(ego_heading_rad)
        m = np.array([[s, -c], [-c, -s]]) / spec.metres_per_pixel
        t = np.array([spec.ego_u_px, spec.ego_v_px]) - m @ np.asarray(ego_xy_m, dtype=np.float64)
        img = np.empty(spec.shape, dtype=np.uint8)
        self._draw(img, m, t, np.asarray(ego_xy_m, dtype=np.float64), spec.view_radius_m,
                   spec.metres_per_pixel, objects)
        self._draw_boxes(img, m, t, np.asarray(ego_xy_m, dtype=np.float64)[None],
                         np.array([ego_heading_rad]), np.array([ego_length_m]),
                         np.array([ego_width_m]), self.palette.ego)
        return img

    def top_down(self, size_px: tuple[int, int], metres_per_pixel: float, centre_xy_m: np.ndarray,
                 objects: SceneObjects, ego_xy_m: np.ndarray, ego_heading_rad: float,
                 ego_length_m: float, ego_width_m: float,
                 route_m: np.ndarray | None = None) -> np.ndarray:
        """A north-up overview ``uint8[H, W, 3]`` centred on ``centre_xy_m``."""
        w, h = size_px
        m = np.array([[1.0, 0.0], [0.0, -1.0]]) / metres_per_pixel
        t = np.array([(w - 1) / 2.0, (h - 1) / 2.0]) - m @ np.asarray(centre_xy_m, dtype=np.float64)
        img = np.empty((h, w, 3), dtype=np.uint8)
        radius = 0.5 * np.hypot(w, h) * metres_per_pixel
        self._draw(img, m, t, np.asarray(centre_xy_m, dtype=np.float64), radius, metres_per_pixel,
                   objects)
        if route_m is not None and len(route_m) > 1:
            near = np.linalg.norm(route_m - centre_xy_m, axis=1) < radius + 50.0
            if near.any():
                pts = self._to_px(route_m[near], m, t)
                cv2.polylines(img, [pts], False, self.palette.route, 1, cv2.LINE_AA, SHIFT)
        self._draw_boxes(img, m, t, np.asarray(ego_xy_m, dtype=np.float64)[None],
                         np.array([ego_heading_rad]), np.array([ego_length_m]),
                         np.array([ego_width_m]), self.palette.ego)
        return img

    # -- drawing -----------------------------------------------------------------------------
    @staticmethod
    def _to_px(xy: np.ndarray, m: np.ndarray, t: np.ndarray) -> np.ndarray:
        uv = xy @ m.T + t
        return np.round(uv * SCALE).astype(np.int32)

    def _draw(self, img: np.ndarray, m: np.ndarray, t: np.ndarray, view_xy: np.ndarray,
              view_radius: float, mpp: float, objects: SceneObjects) -> None:
        g, pal = self.geometry, self.palette
        img[:] = pal.ground
        if len(g.surface_polys):
            near = np.linalg.norm(g.surface_centres - view_xy, axis=1) <= view_radius + g.surface_radii
            polys = [self._to_px(g.surface_polys[i], m, t) for i in np.flatnonzero(near)]
            if polys:
                cv2.fillPoly(img, polys, pal.road, cv2.LINE_AA, SHIFT)
        thickness = 1 if mpp >= 0.25 else max(1, int(round(0.15 / mpp)))
        if len(g.solid_lines):
            near = np.linalg.norm(g.solid_centres - view_xy, axis=1) <= view_radius + g.solid_radii
            lines = [self._to_px(g.solid_lines[i], m, t) for i in np.flatnonzero(near)]
            if lines:
                cv2.polylines(img, lines, False, pal.marking, thickness, cv2.LINE_AA, SHIFT)
        if len(g.dashes):
            mid = g.dashes.mean(axis=1)
            near = np.linalg.norm(mid - view_xy, axis=1) <= view_radius + 2.0
            if near.any():
                seg = self._to_px(g.dashes[near].reshape(-1, 2), m, t).reshape(-1, 2, 2)
                cv2.polylines(img, list(seg), False, pal.marking, thickness, cv2.LINE_AA, SHIFT)
        if len(objects.position_m):
            diag = np.hypot(objects.length_m, objects.width_m) / 2
            near = np.linalg.norm(objects.position_m - view_xy, axis=1) <= view_radius + diag
            for kind, colour in ((KIND_OBSTACLE, pal.obstacle), (KIND_VEHICLE, pal.vehicle)):
                sel = near & (objects.kind == kind)
                if sel.any():
                    self._draw_boxes(img, m, t, objects.position_m[sel], objects.heading_rad[sel],
                                     objects.length_m[sel], objects.width_m[sel], colour)

    def _draw_boxes(self, img, m, t, pos, heading, length, width, colour) -> None:
        corners = box_corners(pos, heading, length, width)
        px = self._to_px(corners.reshape(-1, 2), m, t).reshape(-1, 4, 2)
        for quad in px:
            cv2.fillConvexPoly(img, quad, colour, cv2.LINE_AA, SHIFT)
