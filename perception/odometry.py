"""The ego's own speed, checked against its localisation: a speedometer scale estimate.

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
"""

from __future__ import annotations

from collections import deque

import numpy as np

from planning.geometry import wrap_angle

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

    @property
    def scale(self) -> float:
        """The speedometer's estimated scale (reading / true speed); 1 until trusted."""
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
        return speed_mps / self.scale
