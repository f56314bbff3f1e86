"""Perspective cameras: a pinhole model with a mount on the ego car, and a rig of them.

:class:`PinholeCamera` maps ego-frame metres <-> pixels for a car-mounted perspective
camera; :class:`CameraRig` is the ordered, named set of cameras a scenario renders
(``cam_front``, ``cam_rear``: the names are sensor names).  Pure numpy, like the rest
of ``sim.geometry``: the renderer, perception, the labels and the e2e trainer all use
this one model.

Frames
------
- **Ego frame** (DESIGN.md): x forward, y left, z up [m]; origin at the ego's centre,
  on the ground (z = 0 is the road surface under the car).
- **Camera frame** (OpenCV): x right, y down, z forward along the optical axis [m];
  origin at the camera's optical centre.  ``depth`` is this frame's z.
- **Pixels**: continuous ``(u, v)`` = (column, row), integer values at pixel *centres*
  (the convention of :class:`sim.geometry.bev.BevCamera`), so pixel ``(i, j)``
  covers ``[i-0.5, i+0.5)``; the image spans ``u`` in ``[-0.5, W-0.5)`` and ``v`` in
  ``[-0.5, H-0.5)``; row 0 is the top of the image.

Intrinsics
----------
Square pixels, principal point at the image centre, no distortion::

    fx = fy = (W / 2) / tan(hfov / 2)      cx = (W - 1) / 2      cy = (H - 1) / 2
    u = cx + fx * X / Z                    v = cy + fy * Y / Z      ((X, Y, Z) camera frame)

so the horizontal field of view spans the image from its left edge (u = -0.5) to its
right edge (u = W - 0.5).

Extrinsics
----------
The mount is the optical centre ``(x_m, y_m, z_m)`` in the ego frame and three angles,
applied as intrinsic rotations about the camera body's own forward/left/up axes, in the
order yaw, then pitch, then roll (the ego frame's right-hand rule for each)::

    R_ego_from_body = Rz(yaw_rad) @ Ry(pitch_rad) @ Rx(roll_rad)

- ``yaw_rad``: about the up axis, counter-clockwise positive (seen from above);
  0 looks forward, +pi/2 looks left, pi looks backward (a rear camera).
- ``pitch_rad``: about the camera's left axis; **positive tilts the optical axis down**
  towards the road (the right-hand rule about +y-left turns +x-forward towards -z).
- ``roll_rad``: about the optical axis; positive lowers the camera's right side (its
  left side rises), so the scene turns counter-clockwise in the image and the horizon
  rises towards the image's right edge.

The body's forward/left/up axes are the camera frame's z / -x / -y axes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, fields
from functools import cached_property

import numpy as np

_BODY_FROM_CAMERA = np.array(
    [
        [0.0, 0.0, 1.0],  # body forward = camera +z
        [-1.0, 0.0, 0.0],  # body left    = camera -x
        [0.0, -1.0, 0.0],
    ]
)  # body up      = camera -y
"""Columns: the camera frame's x (right), y (down), z (forward) in body FLU axes."""

_SENSOR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _finite(value) -> bool:
    try:
        return bool(np.isfinite(float(value)))
    except (TypeError, ValueError):
        return False


def _check_int(name: str, value, minimum: int) -> None:
    ok = (
        not isinstance(value, bool)
        and _finite(value)
        and float(value) == int(float(value))
        and int(float(value)) >= minimum
    )
    if not ok:
        raise ValueError(f"PinholeCamera.{name} must be an integer >= {minimum}, got {value!r}")


@dataclass(frozen=True)
class PinholeCamera:
    """A perspective camera mounted on the ego car (see the module docstring for frames).

    The defaults are the default rig's front camera (:func:`default_rig` says why):
    256x128 px, 100 deg horizontal FOV, 1.5 m above the road, 0.5 m ahead of the ego's
    centre, looking forward and 5 deg down.
    """

    width_px: int = 256
    """Image width W [px]."""
    height_px: int = 128
    """Image height H [px]."""
    hfov_deg: float = 100.0
    """Horizontal field of view, edge to edge [deg], in (0, 180)."""
    x_m: float = 0.5
    """Optical centre, ego frame, forward of the ego's centre [m]."""
    y_m: float = 0.0
    """Optical centre, ego frame, left of the ego's centre [m]."""
    z_m: float = 1.5
    """Optical centre, ego frame, height above the road [m]."""
    yaw_rad: float = 0.0
    """Heading of the optical axis [rad], counter-clockwise positive; 0 forward, pi backward."""
    pitch_rad: float = math.radians(5.0)
    """Tilt of the optical axis [rad], **positive = looking down**, in [-pi/2, pi/2]."""
    roll_rad: float = 0.0
    """Rotation about the optical axis [rad], positive = camera's right side down, in
    [-pi/2, pi/2]."""
    near_m: float = 0.1
    """Near plane [m]: points with depth <= near_m never project to a valid pixel (0.1 m:
    inside the ego's own body, so nothing outside the car is clipped, while divisions by
    depth stay tame)."""

    def __post_init__(self) -> None:
        _check_int("width_px", self.width_px, 8)
        _check_int("height_px", self.height_px, 8)
        if not (_finite(self.hfov_deg) and 0.0 < float(self.hfov_deg) < 180.0):
            raise ValueError(
                f"PinholeCamera.hfov_deg must be a number in (0, 180), got {self.hfov_deg!r}"
            )
        for name in ("x_m", "y_m", "z_m", "yaw_rad"):
            if not _finite(getattr(self, name)):
                raise ValueError(
                    f"PinholeCamera.{name} must be a finite number, got {getattr(self, name)!r}"
                )
        for name in ("pitch_rad", "roll_rad"):
            value = getattr(self, name)
            if not (_finite(value) and abs(float(value)) <= math.pi / 2):
                raise ValueError(
                    f"PinholeCamera.{name} must be a number in [-pi/2, pi/2], got {value!r}"
                )
        if not (_finite(self.near_m) and float(self.near_m) > 0.0):
            raise ValueError(f"PinholeCamera.near_m must be a positive number, got {self.near_m!r}")
        # plain int/float fields (numpy scalars in, JSON-able and comparable values out)
        for f in fields(self):
            cast = int if f.name in ("width_px", "height_px") else float
            object.__setattr__(self, f.name, cast(float(getattr(self, f.name))))

    # ---------------------------------------------------------------- intrinsics
    @property
    def shape(self) -> tuple[int, int, int]:
        """Image shape ``(H, W, 3)``."""
        return (int(self.height_px), int(self.width_px), 3)

    @property
    def fx(self) -> float:
        """Focal length in pixels along u [px]: ``(W / 2) / tan(hfov / 2)``."""
        return float(self.width_px) / 2.0 / math.tan(math.radians(self.hfov_deg) / 2.0)

    @property
    def fy(self) -> float:
        """Focal length in pixels along v [px]; square pixels, so ``fy == fx``."""
        return self.fx

    @property
    def cx(self) -> float:
        """Principal point's column [px]: the image centre, ``(W - 1) / 2``."""
        return (float(self.width_px) - 1.0) / 2.0

    @property
    def cy(self) -> float:
        """Principal point's row [px]: the image centre, ``(H - 1) / 2``."""
        return (float(self.height_px) - 1.0) / 2.0

    @property
    def vfov_deg(self) -> float:
        """Vertical field of view, edge to edge [deg]."""
        return math.degrees(2.0 * math.atan(float(self.height_px) / 2.0 / self.fy))

    @property
    def K(self) -> np.ndarray:
        """The 3x3 intrinsic matrix (OpenCV's ``cameraMatrix``)."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    # ---------------------------------------------------------------- extrinsics
    @property
    def position_m(self) -> np.ndarray:
        """Optical centre in the ego frame ``[3]`` [m]."""
        return np.array([self.x_m, self.y_m, self.z_m], dtype=np.float64)

    @cached_property
    def rotation_ego_from_camera(self) -> np.ndarray:
        """3x3 rotation: camera-frame vectors -> ego-frame vectors (its columns are the
        camera's x right, y down, z forward axes in the ego frame)."""
        cy_, sy_ = math.cos(self.yaw_rad), math.sin(self.yaw_rad)
        cp, sp = math.cos(self.pitch_rad), math.sin(self.pitch_rad)
        cr, sr = math.cos(self.roll_rad), math.sin(self.roll_rad)
        rz = np.array([[cy_, -sy_, 0.0], [sy_, cy_, 0.0], [0.0, 0.0, 1.0]])
        ry = np.array([[cp, 0.0, sp], [0.0, 1.0, 0.0], [-sp, 0.0, cp]])
        rx = np.array([[1.0, 0.0, 0.0], [0.0, cr, -sr], [0.0, sr, cr]])
        m = rz @ ry @ rx @ _BODY_FROM_CAMERA
        m.setflags(write=False)
        return m

    def ego_to_camera(self, points_ego_m: np.ndarray) -> np.ndarray:
        """Ego-frame points ``[..., 3]`` [m] -> camera frame ``[..., 3]`` (x right, y down,
        z forward) [m]."""
        p = np.asarray(points_ego_m, dtype=np.float64)
        return (p - self.position_m) @ self.rotation_ego_from_camera

    def camera_to_ego(self, points_camera_m: np.ndarray) -> np.ndarray:
        """Camera-frame points ``[..., 3]`` [m] -> ego frame ``[..., 3]`` [m]; the inverse of
        :meth:`ego_to_camera`."""
        q = np.asarray(points_camera_m, dtype=np.float64)
        return q @ self.rotation_ego_from_camera.T + self.position_m

    # ---------------------------------------------------------------- projection
    def project(self, points_ego_m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Ego-frame points ``[..., 3]`` [m] -> ``(uv [..., 2] [px], depth_m [...])``.

        ``depth_m`` is the camera-frame z (distance along the optical axis, negative behind
        the camera), returned for every point.  ``uv`` is NaN wherever ``depth_m <= near_m``
        (or the point is not finite): a point at or behind the near plane is never a valid
        pixel.  Valid ``uv`` may still fall outside the image; :meth:`in_image` tells.
        """
        q = self.ego_to_camera(points_ego_m)
        depth = q[..., 2]
        valid = depth > self.near_m  # False for NaN
        with np.errstate(divide="ignore", invalid="ignore"):
            uv = self.camera_to_pixel(np.where(valid[..., None], q, np.nan))
        return uv, depth

    def camera_to_pixel(self, points_cam_m: np.ndarray) -> np.ndarray:
        """Camera-frame points ``[..., 3]`` -> pixels ``[..., 2]`` (the intrinsics alone, no
        near-plane test: for callers that clipped in 3D already, like the renderer)."""
        q = np.asarray(points_cam_m, dtype=np.float64)
        inv_z = 1.0 / q[..., 2]
        return np.stack(
            [self.cx + self.fx * q[..., 0] * inv_z, self.cy + self.fy * q[..., 1] * inv_z], axis=-1
        )

    def camera_rays(self, uv_px: np.ndarray) -> np.ndarray:
        """Pixels ``[..., 2]`` -> camera-frame viewing directions ``[..., 3]`` scaled to z = 1
        (the inverse of :meth:`camera_to_pixel` up to depth)."""
        q = np.asarray(uv_px, dtype=np.float64)
        return np.stack(
            [
                (q[..., 0] - self.cx) / self.fx,
                (q[..., 1] - self.cy) / self.fy,
                np.ones(q.shape[:-1]),
            ],
            axis=-1,
        )

    def in_image(self, uv_px: np.ndarray, margin_px: float = 0.0) -> np.ndarray:
        """Whether pixels ``[..., 2]`` lie inside the image, ``[-0.5, W-0.5) x [-0.5, H-0.5)``
        shrunk by ``margin_px`` on every side (False for NaN)."""
        q = np.asarray(uv_px, dtype=np.float64)
        u, v = q[..., 0], q[..., 1]
        lo = margin_px - 0.5
        return (
            (u >= lo)
            & (u < self.width_px - 0.5 - margin_px)
            & (v >= lo)
            & (v < self.height_px - 0.5 - margin_px)
        )

    def pixel_to_ray(self, uv_px: np.ndarray) -> np.ndarray:
        """Pixels ``[..., 2]`` -> unit viewing directions ``[..., 3]`` in the ego frame (from
        :attr:`position_m` through the pixel)."""
        d = self.camera_rays(uv_px)
        d = d / np.linalg.norm(d, axis=-1, keepdims=True)
        return d @ self.rotation_ego_from_camera.T

    def pixel_to_ground(self, uv_px: np.ndarray, ground_z_m: float = 0.0) -> np.ndarray:
        """Pixels ``[..., 2]`` -> ego-frame points ``[..., 3]`` [m] where their rays meet the
        plane ``z = ground_z_m`` (the road, seen from above).

        NaN for pixels at or above the horizon (rays that never come down to the plane),
        when the camera is not above the plane, and where the hit lies at or inside the
        near plane, so every point returned projects back to a valid pixel.
        """
        ray = self.pixel_to_ray(uv_px)
        height = self.z_m - float(ground_z_m)
        with np.errstate(divide="ignore", invalid="ignore"):
            s = np.where(ray[..., 2] < 0.0, -height / ray[..., 2], np.nan)  # ray length [m]
        point = self.position_m + s[..., None] * ray
        depth = s * (ray @ self.rotation_ego_from_camera[:, 2])  # hit's camera-frame z [m]
        ok = (s > 0.0) & (depth > self.near_m) & (height > 0.0)
        return np.where(ok[..., None], point, np.nan)

    def horizon_row(self, u_px: float | np.ndarray | None = None) -> float | np.ndarray:
        """Image row [px] of the horizon (the vanishing line of the level road) at column(s)
        ``u_px``; ``None`` = the principal column ``cx``.

        A ray is horizontal when its ego-frame z is 0.  With ``n`` the ego's up axis in the
        camera frame, the horizon is ``n_x (u-cx)/fx + n_y (v-cy)/fy + n_z = 0``, i.e.::

            v = cy - fy * tan(pitch) / cos(roll) - (fy / fx) * tan(roll) * (u - cx)

        whatever the yaw; with roll 0 it is the same row ``cy - fy * tan(pitch)`` in every
        column (above the centre when the camera looks down).  Rows below it (larger v) see
        the road.  The row may lie outside the image; NaN where the horizon is not a
        function of the column (pitch or roll of +-pi/2).
        """
        n = self.rotation_ego_from_camera[2]  # ego up, in camera coordinates
        du = 0.0 if u_px is None else np.asarray(u_px, dtype=np.float64) - self.cx
        if abs(n[1]) < 1e-12:
            return float("nan") if np.ndim(du) == 0 else np.full(np.shape(du), np.nan)
        v = self.cy - self.fy * (n[2] + n[0] * du / self.fx) / n[1]
        return float(v) if np.ndim(v) == 0 else v

    # ---------------------------------------------------------------- serialisation
    def to_dict(self) -> dict:
        """Plain JSON-able fields (the inverse of :meth:`from_dict`)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping) -> PinholeCamera:
        """Build from :meth:`to_dict`'s output; missing keys take their defaults, unknown keys
        are refused."""
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(
                f"unknown PinholeCamera keys {sorted(unknown)}; known: {sorted(known)}"
            )
        return cls(**d)


@dataclass(frozen=True)
class CameraRig:
    """An ordered, named set of :class:`PinholeCamera` s: the rig's camera sensors.

    Build it from a mapping or from ``(name, camera)`` pairs; the order given is the
    order kept (iteration, :meth:`to_dict`, the renderer's order).  Names are the sensor
    names agents declare (e.g. ``cam_front``): non-empty, unique, identifier-like
    (``[A-Za-z_][A-Za-z0-9_]*``).
    """

    cameras: tuple[tuple[str, PinholeCamera], ...]
    """``(name, camera)`` pairs, in rig order."""

    def __init__(
        self, cameras: Mapping[str, PinholeCamera] | Iterable[tuple[str, PinholeCamera]]
    ) -> None:
        pairs = tuple(cameras.items()) if isinstance(cameras, Mapping) else tuple(cameras)
        if not pairs:
            raise ValueError("CameraRig.cameras must name at least one camera, got none")
        seen: set[str] = set()
        for pair in pairs:
            if not (isinstance(pair, tuple) and len(pair) == 2):
                raise ValueError(
                    f"CameraRig.cameras entries must be (name, camera) pairs, got {pair!r}"
                )
            name, camera = pair
            if not (isinstance(name, str) and _SENSOR_NAME.fullmatch(name)):
                raise ValueError(
                    f"CameraRig camera name must be identifier-like "
                    f"([A-Za-z_][A-Za-z0-9_]*), got {name!r}"
                )
            if name in seen:
                raise ValueError(f"CameraRig camera name {name!r} appears twice")
            if not isinstance(camera, PinholeCamera):
                raise TypeError(
                    f"CameraRig camera {name!r} must be a PinholeCamera, "
                    f"got {type(camera).__name__}"
                )
            seen.add(name)
        object.__setattr__(self, "cameras", pairs)

    @property
    def names(self) -> tuple[str, ...]:
        """The camera (sensor) names, in rig order."""
        return tuple(name for name, _ in self.cameras)

    def items(self) -> tuple[tuple[str, PinholeCamera], ...]:
        """``(name, camera)`` pairs, in rig order."""
        return self.cameras

    def __getitem__(self, name: str) -> PinholeCamera:
        for n, camera in self.cameras:
            if n == name:
                return camera
        raise KeyError(f"no camera {name!r} in the rig; cameras: {list(self.names)}")

    def __contains__(self, name: object) -> bool:
        return name in self.names

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.cameras)

    def sees(self, points_ego_m: np.ndarray, margin_px: float = 0.0) -> np.ndarray:
        """Whether any camera of the rig images each ego-frame point ``[..., 3]`` [m]: in
        front of its near plane and at least ``margin_px`` inside its image.  What falls
        between the cameras' fields of view (beside the car, for the default rig's front and
        rear cameras) is seen by none: a tracker must not read a missing detection there
        as evidence that an object has gone."""
        p = np.asarray(points_ego_m, dtype=np.float64)
        seen = np.zeros(p.shape[:-1], dtype=bool)
        for _, camera in self.cameras:
            uv, _ = camera.project(p)  # NaN behind the near plane: not in the image
            seen |= camera.in_image(uv, margin_px)
        return seen

    def to_dict(self) -> dict:
        """``{"cameras": {name: camera.to_dict(), ...}}`` in rig order (JSON keeps it)."""
        return {"cameras": {name: camera.to_dict() for name, camera in self.cameras}}

    @classmethod
    def from_dict(cls, d: Mapping) -> CameraRig:
        """The inverse of :meth:`to_dict`; unknown keys (rig or camera) are refused."""
        unknown = set(d) - {"cameras"}
        if unknown:
            raise ValueError(f"unknown CameraRig keys {sorted(unknown)}; known: ['cameras']")
        if "cameras" not in d or not isinstance(d["cameras"], Mapping):
            raise ValueError("CameraRig.from_dict needs 'cameras': a mapping of name -> camera")
        return cls({name: PinholeCamera.from_dict(cam) for name, cam in d["cameras"].items()})


BEV_SENSOR = "bev"
"""The bird's-eye raster's sensor name: an image sensor beside the rig's cameras."""


def camera_sensors(rig: CameraRig) -> tuple[str, ...]:
    """Which sensors are cameras (``uint8[H, W, 3]`` images) with ``rig`` mounted: the
    bird's-eye raster and each of the rig's cameras, by name.  The one answer the faults,
    the loop and the reports ask for."""
    return (BEV_SENSOR, *rig.names)


def default_rig() -> CameraRig:
    """The default rig: ``cam_front`` and ``cam_rear``, both 256x128 px, 100 deg HFOV,
    1.5 m above the road, pitched 5 deg down.

    Why these numbers:

    - **100 deg horizontal FOV**, as the CARLA end-to-end agents use (TCP and Roach:
      100 deg at x = -1.5 m, z = 2.0 m); between nuScenes' narrow 70 deg front and wide
      110 deg rear cameras, narrower than TransFuser's 120 deg.  Wide enough to see the
      neighbouring lanes of a cut-in a few metres ahead, narrow enough that a car 40 m
      ahead is still ~5 px wide (fx = 107.4 px; 1.8 m x 107.4 / 40 m).
    - **1.5 m high**, about a sedan's roof line (highway-env's cars have no height; the
      CARLA agents' 2.0 m is a roof mount on a bigger body).  Anything as tall as the lens
      touches the horizon at every distance, so other cars stand below it, on the road.
    - **256x128** (2:1, wider than tall like every driving camera above; TCP crops
      900x256): 61.6 deg vertical FOV, and a frame small enough for DESIGN.md's budget of
      about a millisecond per frame on one CPU core.
    - **pitch 5 deg down**: the horizon sits at row cy - fy tan(5 deg) = 54.1 of 128
      (42 % from the top), so the road fills the lower 58 % of the image instead of half,
      and the bottom edge meets the road 2.1 m ahead of the lens, i.e. at the ego's front
      bumper (x = 2.6 m; highway-env's cars are 5 m long).  No pixels are spent on the
      road under the ego's own body, and the 54 rows above the horizon still show the
      sky above trucks and tall vehicles.
    - mounts: front 0.5 m ahead of the ego's centre (the roof's front edge); rear the
      mirror image, 0.5 m behind it, looking back (yaw = pi).
    """
    front = PinholeCamera()
    rear = PinholeCamera(x_m=-front.x_m, yaw_rad=math.pi)
    return CameraRig({"cam_front": front, "cam_rear": rear})
