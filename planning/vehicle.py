"""The ego's motion model: highway-env's kinematic bicycle, in the project's frame.

highway-env (``Vehicle.step``) moves a car's *centre* with a side-slip angle
``beta = atan(tan(delta) / 2)`` (the rear axle is half a car length behind the centre):

    x'   = v cos(psi + beta)
    y'   = v sin(psi + beta)
    psi' = v sin(beta) / (L / 2)
    v'   = a

so a steady steering angle drives a circle of curvature ``sin(beta) / (L/2)``.
Here it is written in the world frame (y up, counter-clockwise positive: a positive
steering angle turns left), vectorised over any batch shape, so the planner rolls out
many candidates at once with exactly the physics the simulator applies.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

VEHICLE_LENGTH_M = 5.0  # [m] highway-env's Vehicle.LENGTH (its "wheelbase" is L: yaw about the centre, rear axle at -L/2)
VEHICLE_WIDTH_M = 2.0  # [m] highway-env's Vehicle.WIDTH
MAX_SPEED_MPS = 40.0  # [m/s] the scenarios' speed range (0, 40)
MIN_SPEED_MPS = 0.0  # [m/s] braking stops the car; it never reverses


@dataclass
class BicycleState:
    """Arrays of any (common) shape."""

    x_m: np.ndarray
    y_m: np.ndarray
    heading_rad: np.ndarray
    speed_mps: np.ndarray

    def copy(self) -> "BicycleState":
        return BicycleState(np.array(self.x_m, dtype=np.float64), np.array(self.y_m, dtype=np.float64),
                            np.array(self.heading_rad, dtype=np.float64),
                            np.array(self.speed_mps, dtype=np.float64))


def curvature_of_steering(steering_rad: np.ndarray, length_m: float = VEHICLE_LENGTH_M) -> np.ndarray:
    """Path curvature [1/m] a steady steering angle drives."""
    beta = np.arctan(0.5 * np.tan(steering_rad))
    return np.sin(beta) / (length_m / 2)


def steering_for_curvature(curvature_1pm: np.ndarray, length_m: float = VEHICLE_LENGTH_M) -> np.ndarray:
    """Steering angle [rad] that drives a path of the given curvature (inverse of the above)."""
    sin_beta = np.clip(np.asarray(curvature_1pm, dtype=np.float64) * length_m / 2, -0.99, 0.99)
    return np.arctan(2.0 * np.tan(np.arcsin(sin_beta)))


def bicycle_step(state: BicycleState, acceleration_mps2: np.ndarray, steering_rad: np.ndarray,
                 dt_s: float, length_m: float = VEHICLE_LENGTH_M) -> BicycleState:
    """One Euler step of highway-env's model (its order: clip, move, turn, accelerate)."""
    v = state.speed_mps
    a = np.asarray(acceleration_mps2, dtype=np.float64)
    # highway-env's clip_actions: speed limits act through the acceleration (gain 1 /s)
    a = np.where(v > MAX_SPEED_MPS, np.minimum(a, MAX_SPEED_MPS - v), a)
    a = np.where(v < MIN_SPEED_MPS, np.maximum(a, MIN_SPEED_MPS - v), a)
    beta = np.arctan(0.5 * np.tan(steering_rad))
    return BicycleState(
        x_m=state.x_m + v * np.cos(state.heading_rad + beta) * dt_s,
        y_m=state.y_m + v * np.sin(state.heading_rad + beta) * dt_s,
        heading_rad=state.heading_rad + v * np.sin(beta) / (length_m / 2) * dt_s,
        speed_mps=v + a * dt_s,
    )
