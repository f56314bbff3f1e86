"""The bird's-eye camera's geometry: a top-down raster of the road map that turns with the car.

It is not a camera a car could carry: it is the privileged map view (Learning by
Cheating's teacher input, ChauffeurNet's rasters), kept as a camera model of its own
(the ``bev`` sensor) for ablations beside the rig's perspective cameras
(:mod:`sim.geometry.pinhole`).

A :class:`BevCamera` maps pixels <-> ego-frame metres.  The image is ``uint8[H, W, 3]``
RGB with row 0 at the far end (ahead of the car): the ego frame's +x (forward) points
up the image and +y (left) points to the image's left.  The ego's centre sits at the
fixed pixel ``(ego_u_px, ego_v_px)``.

Pixel coordinates are continuous ``(u, v)`` = (column, row) with integer values at pixel
*centres* (OpenCV's drawing convention), so pixel ``(i, j)`` covers ``[i-0.5, i+0.5)``.

Perception uses the same spec to lift detections back to metres.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class BevCamera:
    """Size and scale of the bird's-eye camera.

    The default 128x128 px at 0.5 m/px sees 50 m ahead, 14 m behind and 32 m to
    either side: enough for a 1.5 s time gap at highway speed and for the tight
    curves of the racetrack and the roundabout.
    """

    width_px: int = 128
    """Image width [px]."""
    height_px: int = 128
    """Image height [px]."""
    metres_per_pixel: float = 0.5
    """Ground resolution [m/px]."""
    ego_u_px: float = 63.5
    """Column of the ego's centre [px] (63.5 = the middle of a 128-wide image)."""
    ego_v_px: float = 100.0
    """Row of the ego's centre [px]; rows above it look ahead."""

    def __post_init__(self) -> None:
        if int(self.width_px) != self.width_px or self.width_px < 8:
            raise ValueError(f"BevCamera.width_px must be an integer >= 8, got {self.width_px!r}")
        if int(self.height_px) != self.height_px or self.height_px < 8:
            raise ValueError(f"BevCamera.height_px must be an integer >= 8, got {self.height_px!r}")
        if not (np.isfinite(self.metres_per_pixel) and self.metres_per_pixel > 0):
            raise ValueError(
                "BevCamera.metres_per_pixel must be a positive number, got "
                f"{self.metres_per_pixel!r}"
            )
        if not (
            0 <= self.ego_u_px <= self.width_px - 1 and 0 <= self.ego_v_px <= self.height_px - 1
        ):
            raise ValueError(
                f"BevCamera ego pixel (ego_u_px={self.ego_u_px}, ego_v_px={self.ego_v_px}) lies "
                f"outside the "
                f"{self.width_px}x{self.height_px} image"
            )

    @property
    def shape(self) -> tuple[int, int, int]:
        """Image shape ``(H, W, 3)``."""
        return (int(self.height_px), int(self.width_px), 3)

    @property
    def view_radius_m(self) -> float:
        """Distance from the ego to the farthest image corner [m]: what may be visible."""
        du = max(self.ego_u_px + 0.5, self.width_px - 0.5 - self.ego_u_px)
        dv = max(self.ego_v_px + 0.5, self.height_px - 0.5 - self.ego_v_px)
        return float(np.hypot(du, dv) * self.metres_per_pixel)

    def ego_to_pixel(self, xy_ego_m: np.ndarray) -> np.ndarray:
        """Ego-frame points ``[..., 2]`` (x forward, y left) [m] -> pixels ``[..., 2]`` (u, v)."""
        p = np.asarray(xy_ego_m, dtype=np.float64)
        u = self.ego_u_px - p[..., 1] / self.metres_per_pixel
        v = self.ego_v_px - p[..., 0] / self.metres_per_pixel
        return np.stack([u, v], axis=-1)

    def pixel_to_ego(self, uv_px: np.ndarray) -> np.ndarray:
        """Pixels ``[..., 2]`` (u, v) -> ego-frame points ``[..., 2]`` [m]."""
        q = np.asarray(uv_px, dtype=np.float64)
        x = (self.ego_v_px - q[..., 1]) * self.metres_per_pixel
        y = (self.ego_u_px - q[..., 0]) * self.metres_per_pixel
        return np.stack([x, y], axis=-1)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> BevCamera:
        known = set(cls.__dataclass_fields__)
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown BevCamera keys {sorted(unknown)}; known: {sorted(known)}")
        return cls(**d)
