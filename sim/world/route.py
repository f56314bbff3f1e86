"""A scenario's route: a centre-line polyline with arc length, and progress along it.

Route completion (DESIGN.md) is the farthest progress reached along this polyline
divided by its length.  Progress is found by projecting the ego's position onto the
polyline within a window around the last progress, so a looping track (lane-keep)
or a road that passes near itself never makes progress jump.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.world.roadmap import LaneIndex, RoadGeometry, lane_id

SEARCH_BEHIND_M = 20.0  # [m] window behind the last progress
SEARCH_AHEAD_M = 60.0  # [m] window ahead: > one control period at any speed the sim allows


@dataclass(frozen=True)
class Route:
    lanes: tuple[LaneIndex, ...]
    points_m: np.ndarray  # [M, 2] world frame
    s_m: np.ndarray  # [M] arc length from the route start, 0 at the ego's start
    length_m: float

    @classmethod
    def along_lanes(
        cls, geometry: RoadGeometry, lanes: list[LaneIndex], start_s_m: float, length_m: float
    ) -> Route:
        """Follow ``lanes`` from ``start_s_m`` on the first one for ``length_m`` metres.

        Arc length accumulates each lane's own length, so a lateral jump between two
        lane centre lines (a merge) adds nothing to the route's length.  A route that
        comes back to its first lane (a lap) lists that lane again at the end.
        """
        if length_m <= 0:
            raise ValueError(f"route length must be positive, got {length_m}")
        pts, ss = [], []
        offset = -start_s_m
        for idx in lanes:
            lane = geometry.lanes[idx]
            s_route = lane.s_m + offset
            lo, hi = max(0.0, s_route[0]), min(length_m, s_route[-1])
            if hi > lo + 1e-9:  # this lane overlaps [0, length]: exact ends, samples between
                inner = (s_route > lo + 1e-9) & (s_route < hi - 1e-9)
                ss.append(np.concatenate([[lo], s_route[inner], [hi]]))
                pts.append(
                    np.concatenate(
                        [
                            [_interp_xy(lane.s_m, lane.centre_m, lo - offset)],
                            lane.centre_m[inner],
                            [_interp_xy(lane.s_m, lane.centre_m, hi - offset)],
                        ]
                    )
                )
            offset += float(lane.s_m[-1])
            if offset >= length_m:
                break
        else:
            if offset < length_m - 1e-6:
                raise ValueError(
                    f"route lanes {[lane_id(i) for i in lanes]} cover {offset:.1f} m from the "
                    f"start, less than the route length {length_m:.1f} m"
                )
        points = np.concatenate(pts)
        s = np.concatenate(ss)
        order = np.argsort(s, kind="stable")
        return cls(
            lanes=tuple(lanes), points_m=points[order], s_m=s[order], length_m=float(length_m)
        )

    def sensor(self) -> dict:
        """The route part of the ``map`` sensor."""
        return {
            "lane_ids": [lane_id(i) for i in self.lanes],
            "centre_m": self.points_m.copy(),
            "s_m": self.s_m.copy(),
            "length_m": self.length_m,
        }


def _interp_xy(s_grid: np.ndarray, xy: np.ndarray, s: float) -> np.ndarray:
    return np.array([np.interp(s, s_grid, xy[:, 0]), np.interp(s, s_grid, xy[:, 1])])


class RouteProgress:
    """Tracks the ego's progress [m] along a :class:`Route`."""

    def __init__(self, route: Route) -> None:
        self.route = route
        self.s_m = 0.0  # current progress
        self.max_s_m = 0.0  # farthest progress reached
        self.offset_m = 0.0  # signed distance from the route's centre line, left-positive

    def update(self, position_m: np.ndarray) -> float:
        r = self.route
        lo = np.searchsorted(r.s_m, self.s_m - SEARCH_BEHIND_M, side="left")
        hi = np.searchsorted(r.s_m, self.s_m + SEARCH_AHEAD_M, side="right")
        lo = max(0, lo - 1)
        hi = min(len(r.s_m), hi + 1)
        a, b = r.points_m[lo : hi - 1], r.points_m[lo + 1 : hi]
        sa, sb = r.s_m[lo : hi - 1], r.s_m[lo + 1 : hi]
        ab = b - a
        seg_len2 = np.einsum("ij,ij->i", ab, ab)
        t = np.einsum("ij,ij->i", position_m - a, ab) / np.where(seg_len2 > 0, seg_len2, 1.0)
        t = np.clip(t, 0.0, 1.0)
        proj = a + t[:, None] * ab
        d2 = np.einsum("ij,ij->i", position_m - proj, position_m - proj)
        k = int(np.argmin(d2))
        rel = position_m - proj[k]
        side = ab[k, 0] * rel[1] - ab[k, 1] * rel[0]  # z of (segment x offset): > 0 on the left
        self.offset_m = float(np.copysign(np.sqrt(d2[k]), side)) if side != 0 else 0.0
        self.s_m = float(np.clip(sa[k] + t[k] * (sb[k] - sa[k]), 0.0, r.length_m))
        if self.s_m > r.length_m - 1e-6:  # projection round-off at the route's end
            self.s_m = r.length_m
        self.max_s_m = max(self.max_s_m, self.s_m)
        return self.s_m

    @property
    def completion(self) -> float:
        """Route completion in [0, 1]: farthest progress / route length."""
        return self.max_s_m / self.route.length_m
