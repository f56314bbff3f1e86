"""What the end-to-end network sees of the camera rig, and PilotNet's recovery views.

**The road crop** (:class:`RoadCrop`).  PilotNet (Bojarski et al. 2016) fed its network a
66x200 crop of the camera frame: the road, from just above the horizon down to the
bonnet, the sky cut away.  Here the crop is fixed by the camera model: rows from
``margin_px`` above the horizon (the default front camera's horizon is row 54.1 of 128,
so rows 50-127) across the full width, resized to 66x200 by area averaging.  One crop is
applied by the recorder, the trainer's loader and the agent in the control loop, so the
network always sees the same pixels for the same scene.  RGB, not YUV: PilotNet's YUV was
a property of its camera pipeline; our renderer is RGB and a learned first layer mixes
colour channels as it needs.

**Recovery views** (:class:`SideView`, :func:`side_camera`, :func:`recovery_labels`).
PilotNet recorded a left and a right camera beside the centre one and labelled their
frames with the steering that would bring a car standing there back to the lane: the
data shows the car off centre and the way back, which the expert's own clean driving
never does.  The simulator renders, so there is no need to warp images: the recorder
renders each rig camera again from a virtual car shifted ``dy_m`` to the side and turned
``yaw_deg`` off its heading, and labels the view by pure pursuit from that pose to the
expert's arc (the same geometry as the bird's-eye trainer's viewpoint augmentation).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace

import cv2
import numpy as np

from planning.vehicle import curvature_of_steering, steering_for_curvature
from sim.geometry.pinhole import CameraRig, PinholeCamera

INPUT_HW = (66, 200)
"""PilotNet's input frame: height, width [px]."""
DEFAULT_SIDE_VIEWS = ((0.5, 0.0), (-0.5, 0.0), (1.0, 0.0), (-1.0, 0.0), (0.0, 5.0), (0.0, -5.0))
"""``(dy_m, yaw_deg)`` of the recovery views ``drive record --sensors rig`` renders by default."""
DEFAULT_CAMERAS = ("cam_front",)
"""The rig cameras a policy sees by default (lane following needs the road ahead only)."""


@dataclass(frozen=True)
class RoadCrop:
    """The road region of a camera frame, resized to the network's input."""

    top: int
    """First row kept [px]."""
    bottom: int
    """Row after the last kept [px]."""
    left: int
    """First column kept [px]."""
    right: int
    """Column after the last kept [px]."""
    out_hw: tuple[int, int] = INPUT_HW
    """Output height, width [px]."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "out_hw", tuple(int(v) for v in self.out_hw))
        for f in ("top", "bottom", "left", "right"):
            object.__setattr__(self, f, int(getattr(self, f)))
        if not (0 <= self.top < self.bottom and 0 <= self.left < self.right):
            raise ValueError(
                f"empty road crop rows {self.top}:{self.bottom}, columns {self.left}:{self.right}"
            )
        if min(self.out_hw) < 8:
            raise ValueError(f"road crop output must be at least 8x8 px, got {self.out_hw}")

    @classmethod
    def for_camera(
        cls, camera: PinholeCamera, out_hw: tuple[int, int] = INPUT_HW, margin_px: int = 4
    ) -> RoadCrop:
        """From ``margin_px`` above the camera's horizon (its centre column) to the bottom edge,
        full width."""
        top = math.floor(float(camera.horizon_row())) - int(margin_px)
        top = min(max(top, 0), camera.height_px - 8)
        return cls(top, camera.height_px, 0, camera.width_px, out_hw)

    def apply(self, frame: np.ndarray) -> np.ndarray:
        """``uint8[H, W, 3]`` camera frame -> ``uint8[*out_hw, 3]`` (area resampling)."""
        if frame.ndim != 3 or frame.shape[0] < self.bottom or frame.shape[1] < self.right:
            raise ValueError(
                f"road crop rows {self.top}:{self.bottom}, columns {self.left}:{self.right} "
                f"do not fit a frame of shape {frame.shape}"
            )
        roi = frame[self.top : self.bottom, self.left : self.right]
        h, w = self.out_hw
        return cv2.resize(roi, (w, h), interpolation=cv2.INTER_AREA)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["out_hw"] = list(self.out_hw)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> RoadCrop:
        return cls(**{**d, "out_hw": tuple(d.get("out_hw", INPUT_HW))})


@dataclass(frozen=True)
class SideView:
    """A recovery viewpoint: the car shifted ``dy_m`` left (+) and turned ``yaw_deg`` (+ = left)."""

    dy_m: float
    yaw_deg: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.dy_m) and abs(self.dy_m) <= 3.0):
            raise ValueError(f"side view shift must be within +-3 m, got {self.dy_m}")
        if not (math.isfinite(self.yaw_deg) and abs(self.yaw_deg) <= 30.0):
            raise ValueError(f"side view rotation must be within +-30 deg, got {self.yaw_deg}")

    def label(self) -> str:
        return f"{self.dy_m:+g}m{self.yaw_deg:+g}deg"


def parse_side_views(text: str) -> tuple[SideView, ...]:
    """``"0.5:0,-0.5:0,0:5"`` (shift m : rotation deg, comma-separated) -> side views;
    ``""`` or ``"none"`` -> none; ``"default"`` -> :data:`DEFAULT_SIDE_VIEWS`."""
    text = text.strip()
    if text in ("", "none"):
        return ()
    if text == "default":
        return tuple(SideView(dy, yaw) for dy, yaw in DEFAULT_SIDE_VIEWS)
    views = []
    for part in text.split(","):
        dy, sep, yaw = part.strip().partition(":")
        try:
            views.append(SideView(float(dy), float(yaw) if sep else 0.0))
        except ValueError as e:
            raise ValueError(
                f"bad side view {part.strip()!r} (want SHIFT_M:YAW_DEG, e.g. 0.5:0 or 0:-5): {e}"
            ) from None
    return unique_views(views)


def unique_views(views: Sequence[SideView]) -> tuple[SideView, ...]:
    """``views`` as a tuple; a view given twice (``0.5:0,0.5``) is refused: it would be
    rendered and stored twice and drawn twice as often in training, silently."""
    seen: set[SideView] = set()
    for v in views:
        if v in seen:
            raise ValueError(
                f"recovery view {v.dy_m:g}:{v.yaw_deg:g} is named twice in "
                f"{','.join(f'{w.dy_m:g}:{w.yaw_deg:g}' for w in views)}; name each once"
            )
        seen.add(v)
    return tuple(views)


def side_camera(camera: PinholeCamera, view: SideView) -> PinholeCamera:
    """``camera`` mounted on a virtual car standing at ``(0, dy)`` of the ego frame, turned by
    ``yaw``: its mount rotated about the ego's centre and shifted, its optical axis turned."""
    th = math.radians(view.yaw_deg)
    c, s = math.cos(th), math.sin(th)
    return replace(
        camera,
        x_m=c * camera.x_m - s * camera.y_m,
        y_m=s * camera.x_m + c * camera.y_m + view.dy_m,
        yaw_rad=camera.yaw_rad + th,
    )


def recovery_labels(
    labels: np.ndarray,
    speed_mps: np.ndarray,
    dy_m: np.ndarray,
    dtheta_rad: np.ndarray,
    steering_index: int,
    steering_range_rad: float,
) -> np.ndarray:
    """The expert's normalised actions corrected for a car standing ``dy_m`` to the side and
    ``dtheta_rad`` off its heading: pure pursuit from that pose to the point the expert's arc
    reaches ``4 m + 1 s x speed`` ahead.  Only the steering changes; shapes broadcast."""
    labels = np.asarray(labels, np.float32)
    out = labels.copy()
    k0 = curvature_of_steering(labels[..., steering_index].astype(np.float64) * steering_range_rad)
    look = 4.0 + 1.0 * np.abs(np.asarray(speed_mps, np.float64))
    y0 = 0.5 * k0 * look * look
    tx, ty = look, y0 - dy_m  # the target in the shifted frame: R(-dtheta) ((L, y0) - (0, dy))
    c, s = np.cos(dtheta_rad), np.sin(dtheta_rad)
    nx, ny = c * tx + s * ty, -s * tx + c * ty
    k = k0 + 2 * ny / (nx * nx + ny * ny) - 2 * y0 / (look * look + y0 * y0)
    out[..., steering_index] = np.clip(steering_for_curvature(k) / steering_range_rad, -1.0, 1.0)
    return out


@dataclass(frozen=True)
class RigInput:
    """How a policy sees the rig: which cameras, their models and crops, and the recovery
    views recorded for training (saved in demos and checkpoints as :meth:`to_dict`)."""

    cameras: tuple[str, ...]
    rig: CameraRig
    crops: tuple[RoadCrop, ...]
    side_views: tuple[SideView, ...] = ()

    @classmethod
    def build(
        cls,
        rig: CameraRig,
        cameras: Sequence[str] = DEFAULT_CAMERAS,
        side_views: Sequence[SideView] = (),
    ) -> RigInput:
        cameras = tuple(cameras)
        if not cameras:
            raise ValueError("a rig policy needs at least one camera")
        unknown = [c for c in cameras if c not in rig]
        if unknown:
            raise ValueError(
                f"unknown rig camera(s) {unknown}; the rig has: {', '.join(rig.names)}"
            )
        if len(set(cameras)) != len(cameras):
            raise ValueError(f"a camera is named twice in {list(cameras)}")
        sub = CameraRig({c: rig[c] for c in cameras})
        return cls(
            cameras,
            sub,
            tuple(RoadCrop.for_camera(rig[c]) for c in cameras),
            unique_views(side_views),
        )

    @property
    def input_hw(self) -> tuple[int, int]:
        return self.crops[0].out_hw

    def crop(self, frames: dict) -> np.ndarray:
        """This step's cropped camera frames, concatenated on the channel axis in camera order:
        ``uint8[66, 200, 3 x cameras]``."""
        return np.concatenate(
            [c.apply(np.asarray(frames[n])) for n, c in zip(self.cameras, self.crops)], axis=-1
        )

    def side_frames(self, render) -> np.ndarray:
        """``uint8[V, 66, 200, 3 x cameras]``: every recovery view, each camera rendered by
        ``render(PinholeCamera) -> uint8[H, W, 3]`` from the shifted pose, then cropped."""
        h, w = self.input_hw
        out = np.empty((len(self.side_views), h, w, 3 * len(self.cameras)), np.uint8)
        for v, view in enumerate(self.side_views):
            for k, (name, crop) in enumerate(zip(self.cameras, self.crops)):
                out[v, :, :, 3 * k : 3 * k + 3] = crop.apply(
                    render(side_camera(self.rig[name], view))
                )
        return out

    def side_labels(
        self, label: np.ndarray, speed_mps: float, steering_index: int, steering_range_rad: float
    ) -> np.ndarray:
        """``float32[V, k]``: the expert's action at this state corrected for each recovery view."""
        if not self.side_views:
            return np.zeros((0, len(label)), np.float32)
        dy = np.array([v.dy_m for v in self.side_views])
        th = np.radians([v.yaw_deg for v in self.side_views])
        rep = np.repeat(np.asarray(label, np.float32)[None], len(dy), axis=0)
        return recovery_labels(
            rep, np.full(len(dy), float(speed_mps)), dy, th, steering_index, steering_range_rad
        )

    def to_dict(self) -> dict:
        return {
            "cameras": list(self.cameras),
            "rig": self.rig.to_dict(),
            "crops": {n: c.to_dict() for n, c in zip(self.cameras, self.crops)},
            "side_views": [[v.dy_m, v.yaw_deg] for v in self.side_views],
        }

    @classmethod
    def from_dict(cls, d: dict) -> RigInput:
        cams = tuple(d["cameras"])
        return cls(
            cams,
            CameraRig.from_dict(d["rig"]),
            tuple(RoadCrop.from_dict(d["crops"][c]) for c in cams),
            tuple(SideView(float(a), float(b)) for a, b in d.get("side_views", [])),
        )

    def same_view(self, other: RigInput) -> bool:
        """Same cameras, camera models and crops (the recovery views may differ)."""
        return (
            self.cameras == other.cameras
            and self.rig.to_dict() == other.rig.to_dict()
            and self.crops == other.crops
        )
