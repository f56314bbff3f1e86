"""Coordinate frames: the one place where highway-env's screen frame is converted.

highway-env draws its world with y pointing *down* the screen, so its headings grow
clockwise on screen.  The project uses a right-handed world frame (x east, y north,
heading counter-clockwise positive) and an ego frame (x forward, y left, origin at
the ego's centre), as DESIGN.md fixes.  Everything that leaves ``sim`` is in these
frames; nothing else in the project flips a sign.
"""

from __future__ import annotations

import numpy as np


def hw_to_world_xy(xy_hw: np.ndarray) -> np.ndarray:
    """highway-env position(s) ``[..., 2]`` -> world position(s) [m] (y up)."""
    out = np.array(xy_hw, dtype=np.float64, copy=True)
    out[..., 1] *= -1.0
    return out


def hw_to_world_heading(heading_hw: float | np.ndarray) -> float | np.ndarray:
    """highway-env heading [rad] -> world heading [rad] (counter-clockwise positive)."""
    return -np.asarray(heading_hw, dtype=np.float64) if np.ndim(heading_hw) else -float(heading_hw)


def hw_to_world_lateral(lateral_hw: float) -> float:
    """highway-env lane-lateral coordinate (positive to the driver's right) -> left-positive [m]."""
    return -float(lateral_hw)


def world_to_ego(xy_world: np.ndarray, ego_xy: np.ndarray, ego_heading: float) -> np.ndarray:
    """World points ``[N, 2]`` -> ego frame (x forward, y left) [m]."""
    c, s = np.cos(ego_heading), np.sin(ego_heading)
    d = np.asarray(xy_world, dtype=np.float64) - np.asarray(ego_xy, dtype=np.float64)
    return np.stack([c * d[..., 0] + s * d[..., 1], -s * d[..., 0] + c * d[..., 1]], axis=-1)


def ego_to_world(xy_ego: np.ndarray, ego_xy: np.ndarray, ego_heading: float) -> np.ndarray:
    """Ego-frame points ``[N, 2]`` -> world frame [m]."""
    c, s = np.cos(ego_heading), np.sin(ego_heading)
    p = np.asarray(xy_ego, dtype=np.float64)
    return np.stack(
        [ego_xy[0] + c * p[..., 0] - s * p[..., 1], ego_xy[1] + s * p[..., 0] + c * p[..., 1]],
        axis=-1,
    )


_UNIT_BOX = np.array([[-0.5, -0.5], [0.5, -0.5], [0.5, 0.5], [-0.5, 0.5]])  # rear-right first, ccw


def box_corners(
    position_m: np.ndarray, heading_rad: np.ndarray, length_m: np.ndarray, width_m: np.ndarray
) -> np.ndarray:
    """Corners ``[N, 4, 2]`` of oriented boxes (centres ``[N, 2]``, headings, lengths and
    widths ``[N]``), counter-clockwise from rear-right, in the frame of the centres (world
    or ego)."""
    lx = _UNIT_BOX[:, 0] * np.asarray(length_m)[:, None]  # [N, 4]
    ly = _UNIT_BOX[:, 1] * np.asarray(width_m)[:, None]
    c, s = np.cos(heading_rad)[:, None], np.sin(heading_rad)[:, None]
    out = np.empty(lx.shape + (2,))
    out[..., 0] = c * lx - s * ly + np.asarray(position_m)[:, 0:1]
    out[..., 1] = s * lx + c * ly + np.asarray(position_m)[:, 1:2]
    return out


def corridor_ahead(
    objects: dict[str, np.ndarray], ego: dict
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each object's bumper-to-bumper gap along the ego's heading [m], its closing speed (the
    ego's speed minus the object's along that heading) [m/s], and whether it is in the ego's
    corridor ahead (centre ahead, lateral offset under half the two widths): the objects a
    time-to-collision is measured to.  ``objects``: ``position_m``, ``heading_rad``,
    ``speed_mps``, ``length_m``, ``width_m`` arrays; ``ego``: the same keys as scalars."""
    h = float(ego["heading_rad"])
    fwd = np.array([np.cos(h), np.sin(h)])
    left = np.array([-fwd[1], fwd[0]])
    d = np.asarray(objects["position_m"], dtype=np.float64).reshape(-1, 2) - np.asarray(
        ego["position_m"], dtype=np.float64
    )
    x, y = d @ fwd, d @ left
    oh = np.asarray(objects["heading_rad"], dtype=np.float64)
    v_other_fwd = np.asarray(objects["speed_mps"]) * (np.cos(oh) * fwd[0] + np.sin(oh) * fwd[1])
    gap = x - (float(ego["length_m"]) + np.asarray(objects["length_m"])) / 2
    in_corridor = (np.abs(y) < (float(ego["width_m"]) + np.asarray(objects["width_m"])) / 2) & (
        x > 0
    )
    closing = float(ego["speed_mps"]) - v_other_fwd
    return gap, closing, in_corridor
