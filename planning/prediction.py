"""What other road users will do over the planning horizon.

The planner consumes :class:`ObjectStates` (whoever produced them: ground truth for the
expert, a detector + tracker for the modular agent) and forecasts each object with a
motion model:

* **constant velocity (CV)**: straight line at the current speed and heading;
* **constant turn rate and velocity (CTRV)** (Schubert et al. 2008, "Comparison and
  evaluation of advanced motion models for vehicle tracking"): an arc at the current
  yaw rate, exact in closed form.  It keeps a car circulating in a roundabout roughly
  *in* the ring over a 4 s horizon instead of flying off along the tangent;
* **lane following** (:func:`forecast_along_paths`): constant speed along the object's
  lane and its successors, where a map says where the lanes go.  It is exact where CTRV
  is not: a car leaving by the exit beside our entry curves away, it does not cross
  into our lane.

Every model carries the object's observed **acceleration** along its path (constant
acceleration until it stops: :func:`constant_acceleration`), so a lead braking hard is
forecast stopping, not cruising on at its current speed.  CTRV then keeps the arc's
curvature (yaw rate / speed) and moves along it by the accelerated arc length.

The yaw rate and the acceleration are estimated from consecutive observations of the same
object id (:class:`MotionEstimator`) when the source does not provide them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from planning.geometry import wrap_angle

YAW_RATE_EPS_RADPS = 1e-4  # [rad/s] below this an arc is a straight line
MAX_YAW_RATE_RADPS = 1.0  # [rad/s] clamp on estimates (a car at 8 m/s on a 8 m radius)
# highway-env's vehicles accelerate within +-ACC_MAX = 6 m/s^2 (IDMVehicle.ACC_MAX): an
# estimate beyond it is noise
MAX_ACCELERATION_MPS2 = 6.0  # [m/s^2] clamp on acceleration estimates
ACCELERATION_DEADBAND_MPS2 = 0.3  # [m/s^2] smaller estimates are forecast as 0 (speed jitter)
MIN_ARC_SPEED_MPS = 0.1  # [m/s] below this a CTRV arc's curvature (yaw rate / speed) is not defined


@dataclass
class ObjectStates:
    """Other objects at one instant, world frame, one row each."""

    id: np.ndarray  # [K] int64, stable across time for one object
    kind: np.ndarray  # [K] int8, 0 vehicle, 1 static obstacle
    position_m: np.ndarray  # [K, 2]
    heading_rad: np.ndarray  # [K]
    speed_mps: np.ndarray  # [K]
    length_m: np.ndarray  # [K]
    width_m: np.ndarray  # [K]
    yaw_rate_radps: np.ndarray  # [K]
    acceleration_mps2: np.ndarray | None = None  # [K] along the heading; None: zeros

    def __post_init__(self) -> None:
        if self.acceleration_mps2 is None:
            self.acceleration_mps2 = np.zeros(len(self.id))

    def __len__(self) -> int:
        return len(self.id)

    @classmethod
    def empty(cls) -> ObjectStates:
        z = np.zeros(0)
        return cls(np.zeros(0, np.int64), np.zeros(0, np.int8), np.zeros((0, 2)), z, z, z, z, z)

    @classmethod
    def from_truth(cls, truth: Mapping[str, np.ndarray]) -> ObjectStates:
        """From the env's ``truth`` sensor (yaw rates zero until estimated)."""
        n = len(truth["id"])
        return cls(
            id=np.asarray(truth["id"], dtype=np.int64),
            kind=np.asarray(truth["kind"], dtype=np.int8),
            position_m=np.asarray(truth["position_m"], dtype=np.float64).reshape(n, 2),
            heading_rad=np.asarray(truth["heading_rad"], dtype=np.float64),
            speed_mps=np.asarray(truth["speed_mps"], dtype=np.float64),
            length_m=np.asarray(truth["length_m"], dtype=np.float64),
            width_m=np.asarray(truth["width_m"], dtype=np.float64),
            yaw_rate_radps=np.zeros(n),
        )

    @property
    def velocity_mps(self) -> np.ndarray:
        """``[K, 2]`` world-frame velocity: speed along the heading [m/s]."""
        return self.speed_mps[:, None] * np.stack(
            [np.cos(self.heading_rad), np.sin(self.heading_rad)], axis=-1
        )

    def select(self, mask: np.ndarray) -> ObjectStates:
        return ObjectStates(
            self.id[mask],
            self.kind[mask],
            self.position_m[mask],
            self.heading_rad[mask],
            self.speed_mps[mask],
            self.length_m[mask],
            self.width_m[mask],
            self.yaw_rate_radps[mask],
            self.acceleration_mps2[mask],
        )


@dataclass
class Forecast:
    """Predicted poses of K objects at T times."""

    times_s: np.ndarray  # [T] from now
    position_m: np.ndarray  # [K, T, 2]
    heading_rad: np.ndarray  # [K, T]
    speed_mps: np.ndarray  # [K]
    length_m: np.ndarray  # [K]
    width_m: np.ndarray  # [K]
    id: np.ndarray  # [K]
    acceleration_mps2: np.ndarray | None = (
        None  # [K] the constant acceleration forecast; None: zeros
    )
    kind: np.ndarray | None = None  # [K] ObjectStates.kind (0 vehicle, 1 static); None: vehicles

    def __post_init__(self) -> None:
        if self.acceleration_mps2 is None:
            self.acceleration_mps2 = np.zeros(len(self.id))
        if self.kind is None:
            self.kind = np.zeros(len(self.id), dtype=np.int8)


def constant_acceleration(
    speed_mps: np.ndarray, acceleration_mps2: np.ndarray, times_s: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Distance travelled [m] and speed [m/s] after ``times_s`` at a constant acceleration
    that never reverses: a braking object stops at ``v / |a|`` and stays stopped.
    Broadcasts like ``speed_mps * times_s``."""
    v = np.maximum(np.asarray(speed_mps, dtype=np.float64), 0.0)
    a = np.asarray(acceleration_mps2, dtype=np.float64)
    t = np.asarray(times_s, dtype=np.float64)
    braking = a < 0
    t_stop = np.where(braking, v / np.where(braking, -a, 1.0), np.inf)
    tt = np.minimum(t, t_stop)  # time spent moving
    return v * tt + 0.5 * a * tt * tt, np.maximum(v + a * tt, 0.0)


def forecast(objects: ObjectStates, times_s: np.ndarray, model: str = "ctrv") -> Forecast:
    """Forecast every object at ``times_s`` with ``model`` ("cv" or "ctrv"), each moving
    by its observed acceleration (:func:`constant_acceleration`) along a straight line
    (CV) or an arc of curvature ``yaw rate / speed`` (CTRV)."""
    if model not in ("cv", "ctrv"):
        raise ValueError(f"unknown motion model {model!r}; known: cv, ctrv")
    t = np.asarray(times_s, dtype=np.float64)[None, :]  # [1, T]
    v = objects.speed_mps[:, None]
    h0 = objects.heading_rad[:, None]
    w = objects.yaw_rate_radps[:, None] if model == "ctrv" else np.zeros_like(v)
    dist, _ = constant_acceleration(v, objects.acceleration_mps2[:, None], t)  # [K, T] arc length
    kappa = np.where(v > MIN_ARC_SPEED_MPS, w / np.maximum(v, MIN_ARC_SPEED_MPS), 0.0)  # [1/m]
    turning = np.abs(w) > YAW_RATE_EPS_RADPS
    k_safe = np.where(turning & (kappa != 0), kappa, 1.0)
    h = h0 + np.where(turning, kappa * dist, 0.0)
    # on a circle the pose depends on the arc length alone; a straight line where the yaw rate is ~0
    dx = np.where(turning, (np.sin(h) - np.sin(h0)) / k_safe, np.cos(h0) * dist)
    dy = np.where(turning, (np.cos(h0) - np.cos(h)) / k_safe, np.sin(h0) * dist)
    pos = objects.position_m[:, None, :] + np.stack([dx, dy], axis=-1)
    return Forecast(
        times_s=t[0],
        position_m=pos,
        heading_rad=h,
        speed_mps=objects.speed_mps,
        length_m=objects.length_m,
        width_m=objects.width_m,
        id=objects.id,
        acceleration_mps2=objects.acceleration_mps2.copy(),
        kind=np.asarray(objects.kind, dtype=np.int8).copy(),
    )


def forecast_along_paths(
    objects: ObjectStates, times_s: np.ndarray, paths: list, fallback: str = "ctrv"
) -> Forecast:
    """Map-based forecasts: an object with a path (anything with ``project``, ``to_xy``
    and ``heading_at``, e.g. a :class:`planning.lanes.ReferencePath` along its lane)
    keeps its acceleration and its offset from that path's centre line; an object without one
    (``None``) gets the ``fallback`` motion model.  Lane following is what highway-env's
    traffic does, so in a roundabout this beats any kinematic extrapolation."""
    out = forecast(objects, times_s, fallback)
    t = np.asarray(times_s, dtype=np.float64)
    for k, path in enumerate(paths):
        if path is None:
            continue
        s0, d0 = (float(v) for v in path.project(objects.position_m[k]))
        s = s0 + constant_acceleration(objects.speed_mps[k], objects.acceleration_mps2[k], t)[0]
        out.position_m[k] = path.to_xy(s, np.full_like(s, d0))
        out.heading_rad[k] = path.heading_at(s)
    return out


def cautious_speeds(
    objects: ObjectStates,
    speed_sigma_mps: np.ndarray,
    ego_xy_m: np.ndarray,
    ego_heading_rad: float,
    k_sigma: float,
) -> ObjectStates:
    """``objects`` with each speed moved ``k_sigma`` standard deviations to the end of its
    interval that is worse for the ego: slower for an object ahead, faster for one behind.

    Perception that measures speed from positions knows a new or far object's speed only
    loosely (a stalled car revealed 70 m out by a monocular camera reads as moving for
    seconds); planning on the mean then drives at it.  Planning on the cautious end
    (Hubmann et al. 2018, "A belief state planner for interactive merge scenarios";
    the speed interval's lower bound as in RSS's worst case, Shalev-Shwartz et al. 2017)
    brakes early for what might be standing and lets the estimate settle.  Only objects
    heading the ego's way (within 45 degrees) are moved: for crossing traffic neither end
    is the safe one.  Speeds never go below 0."""
    if k_sigma <= 0 or not len(objects):
        return objects
    sigma = np.asarray(speed_sigma_mps, dtype=np.float64)
    u = np.array([np.cos(ego_heading_rad), np.sin(ego_heading_rad)])
    ahead = (objects.position_m - np.asarray(ego_xy_m, dtype=np.float64)) @ u > 0
    aligned = np.abs(wrap_angle(objects.heading_rad - ego_heading_rad)) < np.pi / 4
    shift = np.where(aligned, np.where(ahead, -k_sigma, k_sigma) * sigma, 0.0)
    out = objects.select(np.ones(len(objects), dtype=bool))
    out.speed_mps = np.maximum(objects.speed_mps + shift, 0.0)
    return out


class MotionEstimator:
    """Yaw rate and acceleration per object id from its heading and speed change since the
    previous observation, each through an exponential filter."""

    def __init__(self, smoothing: float = 0.5) -> None:
        if not 0.0 <= smoothing < 1.0:
            raise ValueError(f"smoothing must be in [0, 1), got {smoothing}")
        self.smoothing = smoothing  # weight of the previous estimate (exponential filter)
        self.reset()

    def reset(self) -> None:
        self._ids = np.zeros(0, dtype=np.int64)
        self._heading = np.zeros(0)
        self._speed = np.zeros(0)
        self._rate = np.zeros(0)
        self._accel = np.zeros(0)
        self._valid = np.zeros(0, dtype=bool)  # has estimates from two observations

    def update(self, objects: ObjectStates, dt_s: float) -> ObjectStates:
        """``objects`` with ``yaw_rate_radps`` and ``acceleration_mps2`` estimated; an object
        seen for the first time keeps the values it came with (0 from ground truth).
        Accelerations within :data:`ACCELERATION_DEADBAND_MPS2` of 0 are reported as 0."""
        ids = objects.id
        # match each object to its previous observation by id (ids need not be sorted)
        order = np.argsort(self._ids, kind="stable")
        pos = np.searchsorted(self._ids[order], ids)
        pos = np.minimum(pos, max(len(order) - 1, 0))
        seen = np.zeros(len(ids), dtype=bool) if not len(order) else self._ids[order][pos] == ids
        prev = order[pos] if len(order) else np.zeros(len(ids), dtype=np.int64)
        rates = objects.yaw_rate_radps.copy()  # a source's own values stand for the unseen
        accels = objects.acceleration_mps2.copy()
        if seen.any():
            p = prev[seen]
            raw_rate = np.clip(
                wrap_angle(objects.heading_rad[seen] - self._heading[p]) / dt_s,
                -MAX_YAW_RATE_RADPS,
                MAX_YAW_RATE_RADPS,
            )
            raw_accel = np.clip(
                (objects.speed_mps[seen] - self._speed[p]) / dt_s,
                -MAX_ACCELERATION_MPS2,
                MAX_ACCELERATION_MPS2,
            )
            # the first difference is the first estimate: no smoothing towards a made-up prior
            had = self._valid[p]
            a = self.smoothing
            rates[seen] = np.where(had, a * self._rate[p] + (1 - a) * raw_rate, raw_rate)
            accels[seen] = np.where(had, a * self._accel[p] + (1 - a) * raw_accel, raw_accel)
        self._ids, self._heading, self._speed = (
            ids.copy(),
            objects.heading_rad.copy(),
            objects.speed_mps.copy(),
        )
        self._rate, self._accel, self._valid = rates, accels, seen.copy()
        out = objects.select(np.ones(len(objects), dtype=bool))
        out.yaw_rate_radps = rates
        out.acceleration_mps2 = np.where(np.abs(accels) < ACCELERATION_DEADBAND_MPS2, 0.0, accels)
        return out
