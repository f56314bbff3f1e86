"""The kernels a rollout is made of: pure pursuit, the kinematic bicycle, IDM.

Pure functions of arrays (any common shape), so the planner evaluates them for every
candidate at once and the controllers (:mod:`planning.control`) drive the car with
the very same code: the agent executes the law the planner scored.

* **Pure pursuit** (Coulter 1992, "Implementation of the Pure Pursuit Path Tracking
  Algorithm"): steer the rear axle along the arc through a look-ahead point,
  ``delta = atan(2 L sin(alpha) / l_d)``, with a look-ahead that grows with speed,
  ``l_d = clip(k_v v, l_min, l_max)``.  In highway-env's bicycle the rear axle sits L/2
  behind the centre and moves exactly along the heading, so the law is exact there.
* **Kinematic bicycle** (highway-env's ``Vehicle.step``; Polack et al. 2017, "The
  kinematic bicycle model: a consistent model for planning feasible trajectories for
  autonomous vehicles?"): the *centre* moves with side slip
  ``beta = atan(tan(delta) / 2)``; ``x' = v cos(psi + beta)``, ``y' = v sin(psi + beta)``,
  ``psi' = v sin(beta) / (L / 2)``, ``v' = a``.
* **Intelligent Driver Model** (Treiber, Hennecke, Helbing 2000, "Congested traffic
  states in empirical observations and microscopic simulations"): ``a = free-road term -
  a_max (s* / s)^2`` with the desired gap ``s* = s0 + max(0, v T + v dv / (2 sqrt(a b)))``;
  above the desired speed the free-road term of the *improved* IDM (Treiber & Kesting
  2013, "Traffic Flow Dynamics", sec. 11.3.7) eases off at up to ``b`` instead of IDM's
  ``(v/v0)^4`` plunge.

World frame (y up, counter-clockwise positive), SI units [m, s, rad].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from planning.jit import register_jitable
from planning.vehicle import MAX_SPEED_MPS, MIN_SPEED_MPS, VEHICLE_LENGTH_M, side_slip_rad

MIN_LOOKAHEAD_DISTANCE_M = (
    1e-3  # [m] floor on the distance to the look-ahead point (no division by 0)
)
IDM_MIN_GAP_FLOOR_M = 0.1  # [m] floor on the bumper-to-bumper gap IDM divides by
IDM_SPEED_FLOOR_MPS = 1e-6  # [m/s] floor on the speed the improved IDM's free-road term divides by


# -- pure pursuit ---------------------------------------------------------------------------
@register_jitable
def lookahead_distance(
    speed_mps: np.ndarray, gain_s: float, min_m: float, max_m: float
) -> np.ndarray:
    """Speed-dependent look-ahead [m]: ``gain_s`` seconds of travel, clamped to [min_m, max_m]."""
    return np.minimum(np.maximum(gain_s * speed_mps, min_m), max_m)


@register_jitable
def pure_pursuit_steering(
    rear_x_m: np.ndarray,
    rear_y_m: np.ndarray,
    heading_rad: np.ndarray,
    target_x_m: np.ndarray,
    target_y_m: np.ndarray,
    wheelbase_m: float = VEHICLE_LENGTH_M,
) -> np.ndarray:
    """Steering [rad] that puts the rear axle on the arc through the target point."""
    ex, ey = target_x_m - rear_x_m, target_y_m - rear_y_m
    # the target's bearing from the heading; only its sine matters, so it needs no wrapping
    alpha_rad = np.arctan2(ey, ex) - heading_rad
    distance_m = np.maximum(np.sqrt(ex * ex + ey * ey), MIN_LOOKAHEAD_DISTANCE_M)
    return np.arctan(2.0 * wheelbase_m * np.sin(alpha_rad) / distance_m)


# -- kinematic bicycle ----------------------------------------------------------------------
@dataclass
class BicycleState:
    """The car's centre pose and speed: arrays of any (common) shape."""

    x_m: np.ndarray
    y_m: np.ndarray
    heading_rad: np.ndarray
    speed_mps: np.ndarray

    def copy(self) -> BicycleState:
        return BicycleState(
            np.array(self.x_m, dtype=np.float64),
            np.array(self.y_m, dtype=np.float64),
            np.array(self.heading_rad, dtype=np.float64),
            np.array(self.speed_mps, dtype=np.float64),
        )


def bicycle_step(
    state: BicycleState,
    acceleration_mps2: np.ndarray,
    steering_rad: np.ndarray,
    dt_s: float,
    length_m: float = VEHICLE_LENGTH_M,
) -> BicycleState:
    """One Euler step (highway-env's order: move and turn at the current speed, then
    accelerate).  The speed is clamped to [MIN_SPEED_MPS, MAX_SPEED_MPS]: the same as
    highway-env's ``clip_actions`` while the speed stays in range, which a planner that
    never commands reversing keeps it (highway-env instead pulls an out-of-range speed
    back through the acceleration, at a gain of 1/s)."""
    return BicycleState(
        *bicycle_step_xyhv(
            state.x_m,
            state.y_m,
            state.heading_rad,
            state.speed_mps,
            acceleration_mps2,
            steering_rad,
            dt_s,
            length_m,
        )
    )


@register_jitable
def bicycle_step_xyhv(
    x_m, y_m, heading_rad, speed_mps, acceleration_mps2, steering_rad, dt_s, length_m
):
    """:func:`bicycle_step` on bare ``(x, y, heading, speed)``: arrays, or scalars inside the
    compiled rollout (:mod:`planning.kernel`), which runs this very function."""
    v = speed_mps
    beta = side_slip_rad(steering_rad)
    course = heading_rad + beta  # the centre's direction of motion
    return (
        x_m + v * np.cos(course) * dt_s,
        y_m + v * np.sin(course) * dt_s,
        heading_rad + v * np.sin(beta) / (length_m / 2) * dt_s,
        np.minimum(np.maximum(v + acceleration_mps2 * dt_s, MIN_SPEED_MPS), MAX_SPEED_MPS),
    )


@register_jitable
def rear_axle_speed_mps(speed_mps: np.ndarray, steering_rad: np.ndarray) -> np.ndarray:
    """Speed [m/s] of the rear axle along the heading (the centre's, less its side slip)."""
    return speed_mps * np.cos(side_slip_rad(steering_rad))


# -- Intelligent Driver Model -----------------------------------------------------------------
@dataclass(frozen=True)
class IDMParameters:
    accel_mps2: float  # [m/s^2] maximum acceleration a
    decel_mps2: float  # [m/s^2] comfortable deceleration b
    headway_s: float  # [s] desired time gap T
    min_gap_m: float  # [m] jam distance s0
    delta: float  # [-] acceleration exponent

    @property
    def two_sqrt_ab_mps2(self) -> float:
        """``2 sqrt(a b)`` [m/s^2], the braking strategy's denominator."""
        return 2 * np.sqrt(self.accel_mps2 * self.decel_mps2)


def idm_free_road_mps2(
    speed_mps: np.ndarray, desired_speed_mps: np.ndarray, p: IDMParameters
) -> np.ndarray:
    """The improved IDM's free-road term [m/s^2]: IDM's ``a (1 - (v/v0)^delta)`` up to the
    desired speed, ``-b (1 - (v0/v)^(a delta / b))`` above it."""
    return idm_free_road_terms(speed_mps, desired_speed_mps, p.accel_mps2, p.decel_mps2, p.delta)


def idm_interaction_mps2(
    speed_mps: np.ndarray, lead_speed_mps: np.ndarray, gap_m: np.ndarray, p: IDMParameters
) -> np.ndarray:
    """IDM's interaction term [m/s^2], ``-a (s* / s)^2``, behind a leader ``gap_m`` ahead
    (bumper to bumper) driving at ``lead_speed_mps``."""
    return idm_interaction_terms(
        speed_mps, lead_speed_mps, gap_m, p.accel_mps2, p.headway_s, p.min_gap_m, p.two_sqrt_ab_mps2
    )


def idm_acceleration(
    speed_mps: np.ndarray,
    desired_speed_mps: np.ndarray,
    gap_m: np.ndarray,
    lead_speed_mps: np.ndarray,
    p: IDMParameters,
) -> np.ndarray:
    """The (improved) IDM's acceleration [m/s^2]; ``gap_m = inf`` on a free road."""
    return idm_free_road_mps2(speed_mps, desired_speed_mps, p) + idm_interaction_mps2(
        speed_mps, lead_speed_mps, gap_m, p
    )


# The IDM terms on bare parameters: arrays, or scalars inside the compiled rollout
# (:mod:`planning.kernel`), which runs these very functions.
@register_jitable
def idm_free_road_terms(v, v0, accel_mps2, decel_mps2, delta):
    """:func:`idm_free_road_mps2` with the parameters spelled out."""
    return np.where(
        v <= v0,
        accel_mps2 * (1 - (v / v0) ** delta),
        -decel_mps2
        * (1 - (v0 / np.maximum(v, IDM_SPEED_FLOOR_MPS)) ** (accel_mps2 * delta / decel_mps2)),
    )


@register_jitable
def idm_interaction_terms(
    v, lead_speed_mps, gap_m, accel_mps2, headway_s, min_gap_m, two_sqrt_ab_mps2
):
    """:func:`idm_interaction_mps2` with the parameters spelled out."""
    desired_gap_m = min_gap_m + np.maximum(
        0.0, v * headway_s + v * (v - lead_speed_mps) / two_sqrt_ab_mps2
    )
    return -accel_mps2 * (desired_gap_m / np.maximum(gap_m, IDM_MIN_GAP_FLOOR_M)) ** 2
