"""Path and speed tracking: pure pursuit, Stanley, and a PID on speed.

Each controller is a small class with ``reset()`` and ``update(...) -> (command, debug)``
(openpilot's shape); the debug record names every term so it can be plotted.  The
control laws themselves are pure functions of arrays.  Pure pursuit's law and its
look-ahead are the kernels of :mod:`planning.rollout`, which the planner also rolls
every candidate out with, so the agent steers by the law the planner scored (the
planner models pure pursuit only: with ``Stanley`` the agent tracks the chosen path by
a law the rollout did not simulate).
Commands are physical (steering angle [rad], acceleration [m/s^2]);
:func:`normalise_action` turns them into the env's ``[-1, 1]`` action at the very end.

* **Pure pursuit** (Coulter 1992, "Implementation of the Pure Pursuit Path Tracking
  Algorithm"): steer the rear axle along the arc through a look-ahead point on the path,
  ``delta = atan(2 L sin(alpha) / l_d)``.  In highway-env's bicycle the rear axle sits
  L/2 behind the centre and moves exactly along the heading, so the law is exact there.
  The look-ahead grows with speed (``l_d = clip(k_v v, l_min, l_max)``).
* **Stanley** (Thrun et al. 2006, "Stanley: The robot that won the DARPA Grand
  Challenge", sec. 9.2): at the *front* axle, ``delta = psi_e + atan(k e / (k_soft + v))``.
  In highway-env's bicycle the front axle moves exactly in the wheel's direction, so on
  an arc with zero cross-track error the heading error *is* the steering angle needed:
  Stanley tracks constant curvature without a feed-forward term.
* **Speed PID**: acceleration = feed-forward + proportional + integral + derivative
  terms on the speed error; the integral is clamped and frozen while the output is
  saturated (conditional integration, an anti-windup scheme).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from planning.geometry import Polyline, wrap_angle
from planning.rollout import lookahead_distance, pure_pursuit_steering
from planning.vehicle import MAX_STEERING_RAD, VEHICLE_LENGTH_M


def stanley_steering(
    heading_error_rad: np.ndarray,
    cross_track_m: np.ndarray,
    speed_mps: np.ndarray,
    gain: float,
    softening_mps: float,
) -> np.ndarray:
    """Stanley's law; ``cross_track_m`` is the front axle's offset, left of the path positive."""
    # psi_e aligns the wheels with the path; the arctan term steers back towards it
    return heading_error_rad - np.arctan(gain * cross_track_m / (softening_mps + np.abs(speed_mps)))


def _axle(x_m, y_m, heading_rad, offset_m):
    return np.stack(
        [x_m + offset_m * np.cos(heading_rad), y_m + offset_m * np.sin(heading_rad)], axis=-1
    )


class PathTracker:
    """What the lateral controllers share: the car's wheelbase and steering limit."""

    def __init__(
        self, wheelbase_m: float = VEHICLE_LENGTH_M, max_steering_rad: float = MAX_STEERING_RAD
    ) -> None:
        self.wheelbase_m = wheelbase_m  # [m]
        self.max_steering_rad = max_steering_rad  # [rad]

    def reset(self) -> None:
        return None

    def limit(self, steering_rad: float) -> float:
        """The steering angle [rad] clipped to the car's range."""
        return float(np.clip(steering_rad, -self.max_steering_rad, self.max_steering_rad))


class PurePursuit(PathTracker):
    """Lateral control by pure pursuit with a speed-dependent look-ahead."""

    def __init__(
        self,
        lookahead_gain_s: float = 0.5,
        min_lookahead_m: float = 5.0,
        max_lookahead_m: float = 25.0,
        wheelbase_m: float = VEHICLE_LENGTH_M,
        max_steering_rad: float = MAX_STEERING_RAD,
    ) -> None:
        if not (0 < min_lookahead_m <= max_lookahead_m):
            raise ValueError(
                f"need 0 < min_lookahead_m <= max_lookahead_m, got "
                f"{min_lookahead_m}, {max_lookahead_m}"
            )
        super().__init__(wheelbase_m, max_steering_rad)
        self.lookahead_gain_s = lookahead_gain_s  # [s]
        self.min_lookahead_m = min_lookahead_m  # [m]
        self.max_lookahead_m = max_lookahead_m  # [m]

    def update(
        self, x_m: float, y_m: float, heading_rad: float, speed_mps: float, path: Polyline
    ) -> tuple[float, dict]:
        rear = _axle(x_m, y_m, heading_rad, -self.wheelbase_m / 2)
        s, d = path.project(rear)
        ld = float(
            lookahead_distance(
                speed_mps, self.lookahead_gain_s, self.min_lookahead_m, self.max_lookahead_m
            )
        )
        target = path.to_xy(float(s) + ld, 0.0)
        steering = self.limit(
            pure_pursuit_steering(
                rear[0], rear[1], heading_rad, target[0], target[1], self.wheelbase_m
            )
        )
        alpha = wrap_angle(np.arctan2(target[1] - rear[1], target[0] - rear[0]) - heading_rad)
        return steering, {
            "s_m": float(s),
            "cross_track_m": float(d),
            "lookahead_m": ld,
            "target_xy_m": target,
            "alpha_rad": float(alpha),
            "steering_rad": steering,
        }


class Stanley(PathTracker):
    """Lateral control by the Stanley law at the front axle."""

    def __init__(
        self,
        gain: float = 1.5,
        softening_mps: float = 1.0,
        wheelbase_m: float = VEHICLE_LENGTH_M,
        max_steering_rad: float = MAX_STEERING_RAD,
    ) -> None:
        super().__init__(wheelbase_m, max_steering_rad)
        self.gain = gain  # [-] cross-track gain
        self.softening_mps = softening_mps  # [m/s] keeps the gain finite at standstill

    def update(
        self, x_m: float, y_m: float, heading_rad: float, speed_mps: float, path: Polyline
    ) -> tuple[float, dict]:
        front = _axle(x_m, y_m, heading_rad, self.wheelbase_m / 2)
        s, d = path.project(front)
        heading_error = float(wrap_angle(path.heading_at(float(s)) - heading_rad))
        steering = self.limit(
            stanley_steering(heading_error, float(d), speed_mps, self.gain, self.softening_mps)
        )
        return steering, {
            "s_m": float(s),
            "cross_track_m": float(d),
            "heading_error_rad": heading_error,
            "steering_rad": steering,
        }


class SpeedPID:
    """Longitudinal control: acceleration [m/s^2] from the speed error, with feed-forward.

    Gains come from time constants (highway-env's style): ``kp = 1 / tau_s`` closes a
    speed error with time constant ``tau_s``; the integral removes a steady bias (a
    model mismatch) over ``tau_i_s``.
    """

    def __init__(
        self,
        tau_s: float = 0.6,
        tau_i_s: float = 4.0,
        kd_s: float = 0.0,
        integral_limit_mps: float = 2.0,
        accel_limits_mps2: tuple[float, float] = (-5.0, 5.0),
    ) -> None:
        if tau_s <= 0 or tau_i_s <= 0:
            raise ValueError(f"time constants must be > 0, got tau_s={tau_s}, tau_i_s={tau_i_s}")
        self.kp = 1.0 / tau_s  # [1/s]
        self.ki = 1.0 / (tau_s * tau_i_s)  # [1/s^2]
        self.kd = kd_s  # [-]
        self.integral_limit_mps = integral_limit_mps  # [m/s] clamp on the integrated error
        self.accel_limits_mps2 = accel_limits_mps2
        self.reset()

    def reset(self) -> None:
        self._integral = 0.0  # [m] integral of the speed error
        self._last_error: float | None = None

    def update(
        self, target_speed_mps: float, speed_mps: float, dt_s: float, feedforward_mps2: float = 0.0
    ) -> tuple[float, dict]:
        error = float(target_speed_mps - speed_mps)
        deriv = 0.0 if self._last_error is None else (error - self._last_error) / dt_s
        self._last_error = error
        lo, hi = self.accel_limits_mps2
        unclamped = feedforward_mps2 + self.kp * error + self.ki * self._integral + self.kd * deriv
        # conditional integration (anti-windup): no integrating further into saturation
        if not ((unclamped >= hi and error > 0) or (unclamped <= lo and error < 0)):
            self._integral = float(
                np.clip(
                    self._integral + error * dt_s, -self.integral_limit_mps, self.integral_limit_mps
                )
            )
        p, i, d = self.kp * error, self.ki * self._integral, self.kd * deriv
        accel = float(np.clip(feedforward_mps2 + p + i + d, lo, hi))
        return accel, {
            "error_mps": error,
            "p": p,
            "i": i,
            "d": d,
            "ff": feedforward_mps2,
            "acceleration_mps2": accel,
        }


def normalise_action(
    acceleration_mps2: float,
    steering_rad: float,
    action_names: Sequence[str],
    steering_range_rad: float,
    acceleration_range_mps2: float,
) -> np.ndarray:
    """Physical commands -> the env's action in [-1, 1] (``TaskSpec.action_names`` order)."""
    values = {
        "acceleration": acceleration_mps2 / acceleration_range_mps2,
        "steering": steering_rad / steering_range_rad,
    }
    return np.clip(np.array([values[n] for n in action_names], dtype=np.float32), -1.0, 1.0)
