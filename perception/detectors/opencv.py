"""The OpenCV baseline detector: colour segmentation, contours, minimum-area rectangles.

No learning.  The ego camera draws vehicles in one colour (``sim.world.render.Palette``:
blue-ish RGB (60, 110, 220)); the detector keeps pixels that are clearly blue
(blue channel above the red one by ``blue_margin`` and brighter than ``min_blue``)
and fits ``cv2.minAreaRect`` to every outer contour of at least ``min_area_px``.  (No
morphological opening: a 2x2 one shifted every box by a pixel.)  It is the reference the learned
detector has to beat: exact on clean frames where cars stand apart, blind to colour shifts,
and it merges cars that touch in the image.

Each box's score is its rectangularity (contour area / rectangle area): a merged or
ragged blob ranks below a clean car.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from perception.boxes import Boxes
from planning.geometry import wrap_angle
from sim.geometry.bev import BevCamera


class OpenCVDetector:
    """Vehicle boxes from one camera frame seen through camera ``spec``."""

    name = "opencv"

    def __init__(
        self, spec: BevCamera, blue_margin: int = 80, min_blue: int = 120, min_area_px: float = 6.0
    ) -> None:
        if min_area_px <= 0:
            raise ValueError(f"min_area_px must be > 0, got {min_area_px}")
        self.spec = spec
        self.blue_margin = int(blue_margin)  # B - R [0-255] a vehicle pixel exceeds
        self.min_blue = int(min_blue)  # [0-255]
        self.min_area_px = float(min_area_px)  # [px^2] smaller blobs are noise

    def mask(self, frame: np.ndarray) -> np.ndarray:
        """uint8 mask (255 = vehicle colour) of an RGB frame."""
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise ValueError(
                f"expected an RGB uint8 frame [H, W, 3], got {frame.dtype} {frame.shape}"
            )
        r = frame[..., 0].astype(np.int16)
        b = frame[..., 2].astype(np.int16)
        m = ((b - r > self.blue_margin) & (b > self.min_blue)).astype(np.uint8) * 255
        return m

    def detect(self, frame: np.ndarray) -> Boxes:
        contours, _ = cv2.findContours(self.mask(frame), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        rows = []
        for c in contours:
            area = cv2.contourArea(c)
            if area < self.min_area_px:
                continue
            (u, v), (w, h), angle_deg = cv2.minAreaRect(c)
            long_px, short_px = max(w, h), min(w, h)
            # direction of the long side in the image, then in the ego frame
            theta = np.radians(angle_deg if w >= h else angle_deg + 90.0)
            du, dv = np.cos(theta), np.sin(theta)
            heading = float(wrap_angle(np.arctan2(-du, -dv)))  # ego x = -v, ego y = -u
            if abs(heading) > np.pi / 2:  # a box has no front: report the forward-pointing one
                heading = float(wrap_angle(heading + np.pi))
            rect_area = max(w * h, 1e-6)
            rows.append((u, v, heading, long_px, short_px, min(1.0, area / rect_area)))
        if not rows:
            return Boxes.empty()
        a = np.array(rows)
        mpp = self.spec.metres_per_pixel
        # the rectangle through the outline's pixel centres: anti-aliased edge pixels that
        # pass the colour test make it about half a pixel too large on each side already
        return Boxes(
            centre_m=self.spec.pixel_to_ego(a[:, :2]),
            heading_rad=a[:, 2],
            length_m=a[:, 3] * mpp,
            width_m=a[:, 4] * mpp,
            kind=np.zeros(len(a), np.int8),
            score=a[:, 5],
        )

    def detect_batch(self, frames: Sequence[np.ndarray]) -> list[Boxes]:
        return [self.detect(f) for f in frames]
