"""Oriented boxes in the ego frame: what detectors return and what labels hold.

Ego frame (DESIGN.md): x forward, y left, origin at the ego's centre, angles counter-
clockwise from x.  The ego camera (``sim.geometry.bev.BevCamera``) is a scaled, rotated copy
of that frame (forward = up the image), so an angle measured in the ego frame is the
same angle in the image; only positions and sizes need the spec to change units.

Perception never imports ``sim`` (that would pull in highway-env); functions that need
the camera take any object with the spec's ``ego_to_pixel`` / ``pixel_to_ego`` /
``metres_per_pixel``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Boxes:
    """N oriented boxes in the ego frame."""

    centre_m: np.ndarray  # [N, 2] x forward, y left
    heading_rad: np.ndarray  # [N] relative to the ego's heading
    length_m: np.ndarray  # [N]
    width_m: np.ndarray  # [N]
    kind: np.ndarray  # [N] int8: 0 vehicle, 1 static obstacle
    score: np.ndarray  # [N] confidence in [0, 1] (1 for labels)
    height_m: np.ndarray | None = None  # [N] box height; NaN where unknown (bird's-eye detectors)

    def __len__(self) -> int:
        return len(self.score)

    def __post_init__(self) -> None:
        n = len(self.score)
        self.centre_m = np.asarray(self.centre_m, dtype=np.float64).reshape(n, 2)
        if self.height_m is None:
            self.height_m = np.full(n, np.nan)
        for name in ("heading_rad", "length_m", "width_m", "score", "height_m"):
            value = np.asarray(getattr(self, name), dtype=np.float64).reshape(-1)
            if len(value) != n:
                raise ValueError(f"Boxes.{name} has {len(value)} entries, score has {n}")
            setattr(self, name, value)
        self.kind = np.asarray(self.kind, dtype=np.int8).reshape(-1)
        if len(self.kind) != n:
            raise ValueError(f"Boxes.kind has {len(self.kind)} entries, score has {n}")

    @classmethod
    def empty(cls) -> Boxes:
        z = np.zeros(0)
        return cls(np.zeros((0, 2)), z, z, z, np.zeros(0, np.int8), z)

    def select(self, mask: np.ndarray) -> Boxes:
        return Boxes(
            self.centre_m[mask],
            self.heading_rad[mask],
            self.length_m[mask],
            self.width_m[mask],
            self.kind[mask],
            self.score[mask],
            self.height_m[mask],
        )

    @property
    def range_m(self) -> np.ndarray:
        """Distance of each centre from the ego [m]."""
        return np.hypot(self.centre_m[:, 0], self.centre_m[:, 1])
