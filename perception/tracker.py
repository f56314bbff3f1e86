"""Multi-object tracking: detections frame by frame -> tracks with velocities.

Tracking-by-detection in the style of SORT (Bewley et al. 2016, "Simple online and
realtime tracking"), on box centres in the world frame:

* **predict** every track with a Kalman filter: constant velocity, state ``[x, y, vx, vy]``
  (white-noise acceleration, spectral density ``accel_psd``), or, with ``motion="ca"``,
  constant acceleration, state ``[x, y, vx, vy, ax, ay]`` (white-noise jerk, spectral
  density ``jerk_psd``; Bar-Shalom, Li, Kirubarajan 2001, "Estimation with Applications to
  Tracking and Navigation", sec. 6.3.3), which follows a braking car without the constant
  velocity model's lag and reports its deceleration to the planner;
* **associate** detections to predicted tracks by the Hungarian algorithm
  (``scipy.optimize.linear_sum_assignment``) on centre distance, refusing pairs
  farther apart than ``gate_m``; with ``depth_noise_per_m2 > 0`` (a monocular camera,
  whose depth error grows with the square of the range while its bearing stays sharp) the
  measurement noise is an ellipse along the viewing ray, ``sigma_depth = k r^2``, and the
  cost and the gate are the Mahalanobis distance under the innovation covariance
  (``gate_sigma``), so a far car whose depth jitters by metres keeps its track instead of
  being born again, moving with the ego, every few frames;
* **update** matched tracks with the measured centre; box size and heading are
  smoothed separately (heading modulo pi: a box has no front, so a moving track takes
  its heading from its velocity);
* **births and deaths with hysteresis**: a track is reported once it has been matched
  ``confirm_hits`` times in a row, and dropped after ``max_misses`` frames unmatched,
  so a one-frame false positive never reaches the planner and a one-frame miss does
  not lose a car;
* **no evidence where the sensor cannot see** (``in_view``, ``max_unseen_s``): a camera rig
  has gaps between its fields of view (the default rig's front and rear cameras leave the
  car's sides unseen), and a car overtaking or being overtaken spends seconds there.  A
  missing detection is a miss only where the track's predicted centre is in view; out of
  view the track is predicted on at constant velocity along its box's axis (its
  acceleration and its velocity across its heading, which extrapolate badly for seconds,
  are dropped) and still reported, for up to ``max_unseen_s``, until a camera sees it
  again or sees that it is not there; it takes a detection again only within ``gate_m``
  (its covariance has grown wide).  Without it, a car alongside was forgotten within three
  frames and the planner changed lanes into it (`modular`, held-out highway seeds 7033,
  8019, 9021; docs/planner.md, section 8).

:meth:`Tracker.objects` reports confirmed tracks as :class:`planning.prediction.ObjectStates`
(world frame), the one format perception hands planning (DESIGN.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from perception.boxes import Boxes
from planning.geometry import wrap_angle
from planning.prediction import ObjectStates
from sim.geometry.frames import ego_to_world, world_to_ego

MOVING_MPS = 1.0  # [m/s] above this a track's heading follows its velocity
MOTION_MODELS = ("cv", "ca")
ACCEL_DEADBAND_MPS2 = 0.5  # [m/s^2] smaller acceleration estimates are reported as 0 (noise)
INIT_VELOCITIES = (
    "zero",
    "ego",
)  # a new track starts at rest, or moving with the ego (relative rest)
MIN_ACCEL_AGE = 4  # frames a track must have been updated before its acceleration is reported


@dataclass
class Track:
    id: int
    x: np.ndarray  # [4] x, y, vx, vy (world)
    P: np.ndarray  # [4, 4] covariance
    heading_rad: float
    length_m: float
    width_m: float
    kind: int
    hits: int = 1  # consecutive matches
    misses: int = 0  # consecutive frames unmatched where a detection was expected (in view)
    unseen: int = 0  # consecutive frames out of the sensor's view (predicted, not missed)
    confirmed: bool = False
    age: int = 1
    history: list = field(default_factory=list, repr=False)


class Tracker:
    """SORT-style tracker on world-frame box centres."""

    def __init__(
        self,
        dt_s: float,
        gate_m: float = 3.0,
        confirm_hits: int = 2,
        max_misses: int = 3,
        accel_psd: float = 2.0,
        position_noise_m: float = 0.3,
        initial_speed_sigma_mps: float = 15.0,
        size_smoothing: float = 0.8,
        motion: str = "cv",
        jerk_psd: float = 20.0,
        initial_accel_sigma_mps2: float = 3.0,
        init_velocity: str = "zero",
        depth_noise_per_m2: float = 0.0,
        gate_sigma: float = 3.0,
        in_view: Callable[[np.ndarray], np.ndarray] | None = None,
        max_unseen_s: float = 0.0,
    ) -> None:
        if dt_s <= 0 or gate_m <= 0 or confirm_hits < 1 or max_misses < 0 or max_unseen_s < 0:
            raise ValueError(
                f"need dt_s > 0, gate_m > 0, confirm_hits >= 1, max_misses >= 0, "
                f"max_unseen_s >= 0; got {dt_s}, {gate_m}, {confirm_hits}, {max_misses}, "
                f"{max_unseen_s}"
            )
        # ego-frame centres [N, 2] -> whether the sensor would see each (None: it sees all)
        self.in_view = in_view
        self.max_unseen_frames = round(max_unseen_s / dt_s)
        if motion not in MOTION_MODELS:
            raise ValueError(f"unknown motion model {motion!r}; known: {', '.join(MOTION_MODELS)}")
        self.motion = motion
        if init_velocity not in INIT_VELOCITIES:
            raise ValueError(
                f"unknown initial velocity {init_velocity!r}; known: {', '.join(INIT_VELOCITIES)}"
            )
        self.init_velocity = init_velocity
        self.depth_noise_per_m2 = float(depth_noise_per_m2)  # [1/m] sigma_depth = this x range^2
        self.gate_sigma = float(gate_sigma)  # Mahalanobis gate with ray-aligned noise
        self.dt_s = float(dt_s)  # [s] between frames
        self.gate_m = float(gate_m)  # [m] farthest a detection may be from a track's prediction
        self.confirm_hits = int(confirm_hits)
        self.max_misses = int(max_misses)
        dt = self.dt_s
        # per axis: position, velocity (, acceleration); the state interleaves axes as
        # [x, y, vx, vy (, ax, ay)]
        if motion == "cv":
            f1 = np.array([[1, dt], [0, 1]])
            # white-noise acceleration: Q = q * [[dt^3/3, dt^2/2], [dt^2/2, dt]] per axis
            q1 = float(accel_psd) * np.array([[dt**3 / 3, dt**2 / 2], [dt**2 / 2, dt]])
            p1 = [position_noise_m**2, initial_speed_sigma_mps**2]
        else:
            f1 = np.array([[1, dt, dt**2 / 2], [0, 1, dt], [0, 0, 1]])
            # white-noise jerk (Bar-Shalom et al. 2001, eq. 6.3.3-4)
            q1 = float(jerk_psd) * np.array(
                [
                    [dt**5 / 20, dt**4 / 8, dt**3 / 6],
                    [dt**4 / 8, dt**3 / 3, dt**2 / 2],
                    [dt**3 / 6, dt**2 / 2, dt],
                ]
            )
            p1 = [position_noise_m**2, initial_speed_sigma_mps**2, initial_accel_sigma_mps2**2]
        n = len(p1)
        self.F = np.zeros((2 * n, 2 * n))
        self.Q = np.zeros((2 * n, 2 * n))
        for axis in (0, 1):
            idx = [axis + 2 * k for k in range(n)]
            self.F[np.ix_(idx, idx)] = f1
            self.Q[np.ix_(idx, idx)] = q1
        self.H = np.eye(2, 2 * n)
        self.R = np.eye(2) * position_noise_m**2
        self.P0 = np.diag(np.repeat(p1, 2))
        self.size_smoothing = float(size_smoothing)  # weight of the old size estimate
        self.reset()

    def reset(self) -> None:
        self.tracks: list[Track] = []
        self._next_id = 0
        self._last_pose: np.ndarray | None = None

    # -- one frame ----------------------------------------------------------------------
    def update(
        self, detections: Boxes, pose: np.ndarray, ego_speed_mps: float | None = None
    ) -> None:
        """Advance one frame with ``detections`` (ego frame) seen from ``pose`` [x, y, heading].

        ``ego_speed_mps`` (the speedometer) gives the ego's velocity that new tracks start
        with (``init_velocity="ego"``); without it the velocity is the pose's change since the
        last frame, which is unknown (zero) at an episode's first frame."""
        pose = np.asarray(pose, dtype=np.float64)
        if ego_speed_mps is not None and np.isfinite(ego_speed_mps):
            ego_velocity = float(ego_speed_mps) * np.array([np.cos(pose[2]), np.sin(pose[2])])
        elif self._last_pose is None:
            ego_velocity = np.zeros(2)
        else:
            ego_velocity = (pose[:2] - self._last_pose[:2]) / self.dt_s
        self._last_pose = pose.copy()
        centres = ego_to_world(detections.centre_m, pose[:2], pose[2])
        headings = wrap_angle(detections.heading_rad + pose[2])
        for t in self.tracks:  # predict
            t.x = self.F @ t.x
            t.P = self.F @ t.P @ self.F.T + self.Q
        noise = self._measurement_noise(detections.centre_m, pose[2])
        rows, cols = self._associate(centres, noise)
        matched_tracks, matched_dets = set(rows.tolist()), set(cols.tolist())
        for r, c in zip(rows, cols):
            self._correct(
                self.tracks[r],
                centres[c],
                headings[c],
                detections,
                c,
                None if noise is None else noise[c],
            )
        out_of_view = self._out_of_view(self.tracks, pose)
        for k, t in enumerate(self.tracks):
            if k in matched_tracks:
                t.unseen = 0
            else:
                t.hits = 0
                if out_of_view[k]:
                    t.unseen += 1
                    self._coast(t)
                else:
                    t.unseen = 0
                    t.misses += 1
            t.age += 1
        self.tracks = [
            t
            for t in self.tracks
            if t.misses <= self.max_misses and t.unseen <= self.max_unseen_frames
        ]
        for c in range(len(detections)):
            if c not in matched_dets:
                self.tracks.append(
                    Track(
                        id=self._next_id,
                        x=self._initial_state(centres[c], ego_velocity),
                        P=self.P0.copy(),
                        heading_rad=float(headings[c]),
                        length_m=float(detections.length_m[c]),
                        width_m=float(detections.width_m[c]),
                        kind=int(detections.kind[c]),
                        confirmed=self.confirm_hits <= 1,
                    )
                )
                self._next_id += 1

    def _coast(self, t: Track) -> None:
        """A track out of view goes on at constant velocity along its box's axis: its
        acceleration and its velocity across its heading, which extrapolate badly for
        seconds (a 3 m/s lateral error, noise for a car keeping its lane, carried a car
        beside the ego two lanes away in 3 s), are dropped."""
        if len(t.x) > 4:
            t.x[4:6] = 0.0
        axis = np.array([np.cos(t.heading_rad), np.sin(t.heading_rad)])
        t.x[2:4] = float(t.x[2:4] @ axis) * axis

    def _out_of_view(self, tracks: list[Track], pose: np.ndarray) -> np.ndarray:
        """``[len(tracks)]`` whether each track's predicted centre is outside the sensor's
        view (never, without ``in_view`` or with ``max_unseen_s`` 0)."""
        if self.in_view is None or self.max_unseen_frames == 0 or not tracks:
            return np.zeros(len(tracks), dtype=bool)
        centres = world_to_ego(np.array([t.x[:2] for t in tracks]), pose[:2], pose[2])
        return ~np.asarray(self.in_view(centres), dtype=bool)

    def _initial_state(self, centre: np.ndarray, ego_velocity: np.ndarray) -> np.ndarray:
        """A new track's state: at the detection, at rest or (``init_velocity="ego"``) moving
        with the ego: on a road most cars a camera first sees move about as the car does, so
        the filter starts near their speed instead of 25 m/s away from it."""
        x = np.zeros(len(self.P0))
        x[:2] = centre
        if self.init_velocity == "ego":
            x[2:4] = ego_velocity
        return x

    def _measurement_noise(
        self, centres_ego_m: np.ndarray, heading_rad: float
    ) -> np.ndarray | None:
        """Per detection, its 2x2 world-frame measurement covariance: ``R`` plus the depth
        variance ``(k r^2)^2`` along the viewing ray (None without ``depth_noise_per_m2``)."""
        if self.depth_noise_per_m2 <= 0 or not len(centres_ego_m):
            return None
        r = np.hypot(centres_ego_m[:, 0], centres_ego_m[:, 1])
        bearing = np.arctan2(centres_ego_m[:, 1], centres_ego_m[:, 0]) + heading_rad
        u = np.stack([np.cos(bearing), np.sin(bearing)], axis=-1)  # the ray, world frame
        var = (self.depth_noise_per_m2 * r * r) ** 2
        return self.R[None] + var[:, None, None] * u[:, :, None] * u[:, None, :]

    def _associate(
        self, centres: np.ndarray, noise: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        if not self.tracks or not len(centres):
            return np.zeros(0, dtype=int), np.zeros(0, dtype=int)
        predicted = np.array([t.x[:2] for t in self.tracks])
        diff = centres[None, :, :] - predicted[:, None, :]  # [T, D, 2]
        big = 1e6
        if noise is None:
            cost = np.linalg.norm(diff, axis=-1)
            gate = self.gate_m
        else:  # Mahalanobis distance under the innovation covariance H P H^T + R_d
            hph = np.array([t.P[:2, :2] for t in self.tracks])  # [T, 2, 2]
            S = hph[:, None] + noise[None]  # [T, D, 2, 2]
            cost = np.sqrt(np.einsum("tdi,tdij,tdj->td", diff, np.linalg.inv(S), diff))
            gate = self.gate_sigma
        # a track predicted through a blind spot has a wide covariance, so the Mahalanobis gate
        # alone would let it take a detection metres off; it takes one within gate_m only
        unseen = np.array([t.unseen > 0 for t in self.tracks])
        if noise is not None and unseen.any():
            far = np.linalg.norm(diff, axis=-1) > self.gate_m
            cost = np.where(unseen[:, None] & far, big, cost)
        rows, cols = linear_sum_assignment(np.where(cost <= gate, cost, big))
        ok = cost[rows, cols] <= gate
        return rows[ok], cols[ok]

    def _correct(
        self,
        t: Track,
        z: np.ndarray,
        heading: float,
        det: Boxes,
        c: int,
        noise: np.ndarray | None = None,
    ) -> None:
        y = z - self.H @ t.x
        S = self.H @ t.P @ self.H.T + (self.R if noise is None else noise)
        K = t.P @ self.H.T @ np.linalg.inv(S)
        t.x = t.x + K @ y
        t.P = (np.eye(len(t.x)) - K @ self.H) @ t.P
        a = self.size_smoothing
        t.length_m = a * t.length_m + (1 - a) * float(det.length_m[c])
        t.width_m = a * t.width_m + (1 - a) * float(det.width_m[c])
        # heading modulo pi: take the measured axis nearest to the current estimate
        d = float(wrap_angle(2 * (heading - t.heading_rad)) / 2)
        t.heading_rad = float(wrap_angle(t.heading_rad + (1 - a) * d))
        t.hits += 1
        t.misses = 0
        if t.hits >= self.confirm_hits:
            t.confirmed = True

    # -- output -------------------------------------------------------------------------
    def _confirmed(self) -> tuple[list[Track], np.ndarray, np.ndarray, np.ndarray]:
        """The confirmed tracks, their states ``[N, n]``, speeds and headings (a moving
        track's is its velocity's direction, a standing one's its box's axis)."""
        live = [t for t in self.tracks if t.confirmed]
        x = np.array([t.x for t in live]).reshape(-1, len(self.P0))
        speed = np.hypot(x[:, 2], x[:, 3])
        heading = np.array([t.heading_rad for t in live], dtype=np.float64)
        return live, x, speed, np.where(speed > MOVING_MPS, np.arctan2(x[:, 3], x[:, 2]), heading)

    def speed_sigma_mps(self) -> np.ndarray:
        """Each confirmed track's speed uncertainty [m/s] (in :meth:`objects`' order): the
        standard deviation of its velocity along its heading, from the filter's covariance.
        A track just born, or a far car whose monocular depth jitters by metres a frame, has
        a wide one."""
        live, _, _, heading = self._confirmed()
        u = np.stack([np.cos(heading), np.sin(heading)], axis=-1)
        return np.array(
            [np.sqrt(max(float(u[k] @ t.P[2:4, 2:4] @ u[k]), 0.0)) for k, t in enumerate(live)]
        )

    def objects(self) -> ObjectStates:
        """Confirmed tracks, world frame; a moving track's heading is its velocity's
        direction, yaw rates are zero (the planning agent estimates them); with the
        constant-acceleration model, the acceleration along the heading once a track has
        :data:`MIN_ACCEL_AGE` frames (0 within :data:`ACCEL_DEADBAND_MPS2`)."""
        live, x, speed, heading = self._confirmed()
        accel = np.zeros(len(live))
        if self.motion == "ca" and len(live):
            along = x[:, 4] * np.cos(heading) + x[:, 5] * np.sin(heading)
            old = np.array([t.age >= MIN_ACCEL_AGE for t in live])
            accel = np.where(
                old & (np.abs(along) >= ACCEL_DEADBAND_MPS2) & (speed > MOVING_MPS), along, 0.0
            )
        return ObjectStates(
            id=np.array([t.id for t in live], dtype=np.int64),
            kind=np.array([t.kind for t in live], dtype=np.int8),
            position_m=x[:, :2].copy(),
            heading_rad=heading,
            speed_mps=speed,
            length_m=np.array([t.length_m for t in live], dtype=np.float64),
            width_m=np.array([t.width_m for t in live], dtype=np.float64),
            yaw_rate_radps=np.zeros(len(live)),
            acceleration_mps2=accel,
        )
