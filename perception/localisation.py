"""The ego's own state checked against what else it senses: the speedometer's scale against
the localisation (:class:`SpeedometerCheck`), and the localisation against the traffic in its
lanes (:class:`TrafficLocalisation`).

**The speedometer.**
A wheel-speed sensor reads the speed times a scale that a worn or swapped tyre moves by
several percent (the suite's ``speed`` fault: 5 / 10 / 20 % for the whole episode).  The
localisation fixes say how far the car really went.  Over a window of ``window_s`` the
straight-line distance between the fixes at its ends, divided by the distance the
speedometer integrated (trapezoids), is the reciprocal of that scale; the estimate is the
median over every window the episode has seen, so the localisation's own noise (up to a
metre a fix) averages out.  Windows count only where they say something: the car travelled
at least ``min_distance_m`` and turned less than ``max_turn_rad`` (on an arc the chord is
shorter than the path).

The correction is applied only once ``min_windows`` windows agree that the scale is more
than ``tolerance`` off 1: a speedometer within the tolerance is read as it is, so an agent on
clean sensors drives exactly as it did without the check.  This is the calibration production
cars run between wheel odometry and GNSS, reduced to its longitudinal scale.

**The localisation.** A GNSS-like fix can be a metre and two degrees off (the suite's
``pose`` fault), while what the car senses around it is exact relative to the car
(:func:`sim.harness.faults.carried_by_pose_error`): a car whose fix is off sees the whole
scene displaced with it.  The traffic drives on the lanes' centre lines, so the scene's
displacement is measurable against the map: the median heading of the moving cars nearby
relative to their lanes is the heading error, and once the scene is turned back about the
car, the median lateral offset of those cars from their lanes' centres is the lateral
error (each offset is unwrapped by a lane width around the running estimate, so an error
past half a lane is not read from the neighbouring lane).  Map matching against traffic
instead of lane markings; the along-lane error stays (nothing on a straight road fixes it).
It needs at least four moving cars of which three in four agree (a displaced fix moves them
all alike; a car changing lanes disagrees), and straight lanes (on a roundabout's curves the
traffic does not follow the centre lines closely enough to be a reference).
"""

from __future__ import annotations

from collections import deque

import numpy as np

from planning.geometry import wrap_angle
from planning.lanes import LaneMap

WINDOW_S = 3.0  # [s] baseline between the two fixes compared: 75 m at 25 m/s, so 1 m of
# localisation noise per fix is about 2% of one window's ratio
MIN_DISTANCE_M = 40.0  # [m] shorter windows (slow driving) say too little: 1 m of noise a fix
# is 3.5% of a 40 m window
MAX_TURN_RAD = np.deg2rad(10.0)  # [rad] windows turning more are arcs, not chords
MIN_WINDOWS = 15  # windows (one per decision) before the estimate is trusted: 1 s at 15 Hz
TOLERANCE = 0.03  # [-] a scale within 3% of 1 is read as exact (the suite's mildest fault: 5%)


class SpeedometerCheck:
    """Per episode: feed every decision's pose fix and speed reading, get the speed to use."""

    def __init__(
        self,
        window_s: float = WINDOW_S,
        min_distance_m: float = MIN_DISTANCE_M,
        max_turn_rad: float = MAX_TURN_RAD,
        min_windows: int = MIN_WINDOWS,
        tolerance: float = TOLERANCE,
    ) -> None:
        self.window_s = window_s
        self.min_distance_m = min_distance_m
        self.max_turn_rad = max_turn_rad
        self.min_windows = min_windows
        self.tolerance = tolerance
        self.reset()

    def reset(self) -> None:
        self._t_s = 0.0
        self._odometer_m = 0.0
        self._last_speed: float | None = None
        self._history: deque = deque()  # (time, x, y, heading, odometer)
        self._ratios: list[float] = []
        self.scale = 1.0  # the speedometer's estimated scale (reading / true speed)

    def _estimate(self) -> float:
        """The scale from the windows so far; 1 until trusted or within tolerance."""
        if len(self._ratios) < self.min_windows:
            return 1.0
        true_per_read = float(np.median(self._ratios))
        if true_per_read <= 0.0 or abs(true_per_read - 1.0) <= self.tolerance:
            return 1.0
        return 1.0 / true_per_read

    def update(self, pose: np.ndarray, speed_mps: float, dt_s: float) -> float:
        """The speed [m/s] to plan with: ``speed_mps`` divided by the estimated scale."""
        x, y, heading = (float(v) for v in np.asarray(pose, dtype=np.float64)[:3])
        if self._last_speed is not None:
            self._t_s += dt_s
            self._odometer_m += 0.5 * (self._last_speed + speed_mps) * dt_s
        self._last_speed = speed_mps
        self._history.append((self._t_s, x, y, heading, self._odometer_m))
        # the newest fix at least a window old is the window's start
        start = None
        while self._history and self._t_s - self._history[0][0] >= self.window_s - 1e-9:
            start = self._history.popleft()
        if start is not None:
            self._history.appendleft(start)  # it may start the next window too
            _, x0, y0, h0, odo0 = start
            travelled = self._odometer_m - odo0
            turn = abs(float(wrap_angle(heading - h0)))
            if travelled >= self.min_distance_m and turn <= self.max_turn_rad:
                self._ratios.append(float(np.hypot(x - x0, y - y0)) / travelled)
                self.scale = self._estimate()  # only a new window moves it
        return speed_mps / self.scale


TRAFFIC_REACH_M = 150.0  # [m] cars this near the ego are landmarks (about what a lidar sees)
LATERAL_REACH_M = 80.0  # [m] ... and these the lateral ones (at least LATERAL_MIN_CARS)
LATERAL_MIN_CARS = 3
TRAFFIC_MIN_SPEED_MPS = 2.0  # [m/s] moving cars only (a stalled car may stand anywhere)
TRAFFIC_MIN_CARS = 4  # fewer landmarks say too little: the fix is used as it is
CONSENSUS = 0.75  # [-] share of the landmarks that must agree with the median (a displaced fix
# moves every car alike; cars changing lanes or cutting in disagree)
CONSENSUS_LATERAL_M = 0.5  # [m] ... within this sideways
CONSENSUS_HEADING_RAD = np.deg2rad(1.0)  # [rad] ... and within this in heading
LATERAL_TOLERANCE_M = 0.5  # [m] a scene displaced less than this sideways is left alone ...
HEADING_TOLERANCE_RAD = np.deg2rad(1.0)  # [rad] ... and turned less than this: clean sensors
# leave every decision as it was (the traffic's own offsets from its centre lines are
# centimetres outside lane changes, and the medians ignore the changers)
UNWRAP_SMOOTHING = 0.95  # [-] weight of the running lateral estimate kept per decision (a
# time constant of about 1.3 s at 15 Hz: it follows the fix's bias, not its noise)


class TrafficLocalisation:
    """Per episode: the pose and ``truth`` objects, corrected for the displacement the moving
    cars nearby show against their lanes (see the module's docstring)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._lateral_m = 0.0  # running estimate, to unwrap offsets by a lane width
        self.last_correction: tuple[float, float] = (0.0, 0.0)  # (lateral [m], heading [rad])

    def correct(self, lane_map: LaneMap, pose: np.ndarray, truth: dict) -> tuple[np.ndarray, dict]:
        """``(pose, truth)`` as the traffic places them; the inputs themselves when the
        traffic is too sparse or agrees with the fix within tolerance."""
        self.last_correction = (0.0, 0.0)
        pose = np.asarray(pose, dtype=np.float64)
        pos = np.asarray(truth["position_m"], dtype=np.float64).reshape(-1, 2)
        heading = np.asarray(truth["heading_rad"], dtype=np.float64).reshape(-1)
        dist = np.linalg.norm(pos - pose[:2], axis=1)
        use = (
            (np.asarray(truth["kind"]).reshape(-1) == 0)
            & (np.asarray(truth["speed_mps"], dtype=np.float64).reshape(-1) > TRAFFIC_MIN_SPEED_MPS)
            & (dist < TRAFFIC_REACH_M)
        )
        if use.sum() < TRAFFIC_MIN_CARS or lane_map.curved:  # curved lanes: not centre lines
            return pose, truth
        _, lane_heading = lane_map.offsets(pos[use], heading[use])
        residual = wrap_angle(heading[use] - lane_heading)
        residual = residual[np.isfinite(residual)]
        if len(residual) < TRAFFIC_MIN_CARS:
            return pose, truth
        dtheta = float(np.median(residual))
        if np.mean(np.abs(residual - dtheta) <= CONSENSUS_HEADING_RAD) < CONSENSUS:
            return pose, truth
        c, s = np.cos(-dtheta), np.sin(-dtheta)
        turned = (pos - pose[:2]) @ np.array([[c, s], [-s, c]]) + pose[:2]
        # sideways, the near cars: the heading estimate's error moves far cars by its lever arm
        lat = use & (dist < LATERAL_REACH_M)
        # the landmarks' offsets and, last, the lane heading under the car, in one search
        offset, lane_heading = lane_map.offsets(
            np.vstack([turned[lat], pose[None, :2]]),
            np.append(heading[lat] - dtheta, pose[2] - dtheta),
        )
        offset, ego_lane_heading = offset[:-1], lane_heading[-1:]
        ok = np.isfinite(offset)
        if ok.sum() < LATERAL_MIN_CARS or not np.isfinite(ego_lane_heading[0]):
            return pose, truth
        width = float(np.median([lane.width_m for lane in lane_map.lanes.values()]))
        # each car's offset, moved by whole lane widths to the nearest of the running estimate
        unwrapped = offset[ok] + width * np.round((self._lateral_m - offset[ok]) / width)
        lateral = float(np.median(unwrapped))
        if np.mean(np.abs(unwrapped - lateral) <= CONSENSUS_LATERAL_M) < CONSENSUS:
            return pose, truth
        # the running estimate is the fix's bias (its noise averages out); past half a lane
        # the lane a fix is in cannot be told from the traffic, so it stays within that
        running = UNWRAP_SMOOTHING * self._lateral_m + (1 - UNWRAP_SMOOTHING) * lateral
        self._lateral_m = float(np.clip(running, -width / 2, width / 2))
        if abs(lateral) <= LATERAL_TOLERANCE_M and abs(dtheta) <= HEADING_TOLERANCE_RAD:
            return pose, truth
        normal = np.array([-np.sin(ego_lane_heading[0]), np.cos(ego_lane_heading[0])])
        shift = -lateral * normal
        out = dict(truth)
        out["position_m"] = turned + shift
        out["heading_rad"] = wrap_angle(heading - dtheta)
        self.last_correction = (lateral, dtheta)
        return np.array([*(pose[:2] + shift), float(wrap_angle(pose[2] - dtheta))]), out
