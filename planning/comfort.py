"""nuPlan's comfort bounds: the one home of the numbers the planner scores against and
the harness's metrics count violations of.

Caesar et al. 2021, "nuPlan: A closed-loop ML-based planning benchmark for autonomous
vehicles" (the ``ego_is_comfortable`` metric of the nuPlan devkit).  Planning may not
import ``sim``, so ``sim.harness.metrics`` imports these from here.
"""

from __future__ import annotations

import numpy as np

LONG_ACCEL_MIN_MPS2 = -4.05  # [m/s^2] hardest comfortable braking
LONG_ACCEL_MAX_MPS2 = 2.40  # [m/s^2] hardest comfortable acceleration
LAT_ACCEL_MAX_MPS2 = 4.89  # [m/s^2] |lateral acceleration|
JERK_MAX_MPS3 = 8.37  # [m/s^3] |longitudinal jerk|
YAW_RATE_MAX_RADPS = 0.95  # [rad/s] |yaw rate|


def within_comfort_bounds(
    long_accel_mps2: np.ndarray,
    lat_accel_mps2: np.ndarray,
    jerk_mps3: np.ndarray,
    yaw_rate_radps: np.ndarray,
) -> np.ndarray:
    """Elementwise: every quantity inside nuPlan's bounds (NaN counts as outside)."""
    return (
        (long_accel_mps2 >= LONG_ACCEL_MIN_MPS2)
        & (long_accel_mps2 <= LONG_ACCEL_MAX_MPS2)
        & (np.abs(lat_accel_mps2) <= LAT_ACCEL_MAX_MPS2)
        & (np.abs(yaw_rate_radps) <= YAW_RATE_MAX_RADPS)
        & (np.abs(jerk_mps3) <= JERK_MAX_MPS3)
    )
