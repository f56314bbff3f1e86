"""The ego's motion model: highway-env's kinematic bicycle, in the project's frame.

highway-env (``Vehicle.step``) moves a car's *centre* with a side-slip angle
``beta = atan(tan(delta) / 2)`` (the rear axle is half a car length behind the centre):

    x'   = v cos(psi + beta)
    y'   = v sin(psi + beta)
    psi' = v sin(beta) / (L / 2)
    v'   = a

so a steady steering angle drives a circle of curvature ``sin(beta) / (L/2)``.
Here: the car's dimensions and limits, and the exact steering <-> curvature maps of
that model (world frame, y up, counter-clockwise positive: a positive steering angle
turns left).  The step itself is :func:`planning.rollout.bicycle_step`, vectorised over
any batch shape, so the planner rolls out many candidates at once with the physics the
simulator applies.
"""

from __future__ import annotations

import numpy as np

from planning.jit import register_jitable

# [m] highway-env's Vehicle.LENGTH (its "wheelbase" is L: yaw about the centre, rear axle at -L/2)
VEHICLE_LENGTH_M = 5.0
VEHICLE_WIDTH_M = 2.0  # [m] highway-env's Vehicle.WIDTH
MAX_SPEED_MPS = 40.0  # [m/s] the scenarios' speed range (0, 40)
MIN_SPEED_MPS = 0.0  # [m/s] braking stops the car; it never reverses
MAX_STEERING_RAD = np.pi / 4  # [rad] the scenarios' steering range


@register_jitable  # the compiled rollout (planning.kernel) calls it too
def side_slip_rad(steering_rad: np.ndarray) -> np.ndarray:
    """The centre's side-slip angle [rad] for a steering angle (rear axle at -L/2)."""
    return np.arctan(0.5 * np.tan(steering_rad))


def curvature_of_steering(
    steering_rad: np.ndarray, length_m: float = VEHICLE_LENGTH_M
) -> np.ndarray:
    """Path curvature [1/m] a steady steering angle drives."""
    return np.sin(side_slip_rad(steering_rad)) / (length_m / 2)


def steering_for_curvature(
    curvature_1pm: np.ndarray, length_m: float = VEHICLE_LENGTH_M
) -> np.ndarray:
    """Steering angle [rad] that drives a path of the given curvature (inverse of the above)."""
    sin_beta = np.clip(np.asarray(curvature_1pm, dtype=np.float64) * length_m / 2, -0.99, 0.99)
    return np.arctan(2.0 * np.tan(np.arcsin(sin_beta)))
