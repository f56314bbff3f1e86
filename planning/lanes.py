"""The lane graph from the ``map`` sensor, and reference paths along it.

The ``map`` sensor (an HD-map stand-in, built in ``sim``) gives every lane as plain
arrays: centre line, edges, heading, width, speed limit, successors (``next``) and
lateral neighbours (``left``/``right``), plus the route as a list of lane ids.  Nothing
here knows highway-env.

A :class:`ReferencePath` is a *corridor*: a lane followed forward through its
successors (along the route where the route goes), resampled every
``PATH_SPACING_M`` so that arc length maps to a sample index by one division.  That is
what lets the planner track, project and look up speed limits for many candidate
trajectories at once without searching.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from planning.geometry import MIN_SEGMENT_M, Polyline, left_normal, wrap_angle

PATH_SPACING_M = 1.0  # [m] reference path sample spacing
PATH_CACHE_LIMIT = 512  # reference paths kept across episodes before the cache starts over
JUNCTION_GAP_M = 0.5  # [m] lane ends further apart than this are joined by a straight segment
CURVATURE_WINDOW_M = (
    6.0  # [m] curvature is averaged over about a car length: junction kinks are not curves
)
DESTINATION_SLACK_M = (
    10.0  # [m] a lane ending this close to the destination lane's end is no dead end
)
CURVED_MAP_1PM = 0.02  # [1/m] a lane bending tighter than a 50 m radius makes a map "curved"
OFFSET_SEARCH_M = 10.0  # [m] LaneMap.offsets looks for lane centres this far around the points
ALIGNED_RAD = np.pi / 3  # [rad] a lane counts as the ego's only if headings differ by less
MIN_TRANSITION_M = 1e-6  # [m] shorter transitions are none: the centre line itself
MAX_HEADING_ERROR_RAD = 1.0  # [rad] a transition starts at most this far off the path's heading
MAX_TRANSITION_SLOPE = 1.0  # [-] ... and at most this lateral slope (45 degrees)


@dataclass(frozen=True)
class Lane:
    id: str
    centre: Polyline
    width_m: float
    speed_limit_mps: float
    next: tuple[str, ...]
    left: str | None
    right: str | None


class LaneMap:
    """Lanes and route from one episode's ``map`` sensor; builds corridors on demand."""

    def __init__(
        self,
        map_sensor: Mapping,
        default_speed_limit_mps: float = 30.0,
        path_cache: dict | None = None,
    ) -> None:
        """
        :param path_cache: a dict to keep reference paths in across episodes of the same
            road network (keys include the network's fingerprint and the destination), so
            each corridor is resampled once per process rather than once per episode
        """
        try:
            lanes_in, route = map_sensor["lanes"], map_sensor["route"]
        except (KeyError, TypeError):
            raise ValueError("map sensor must be a dict with 'lanes' and 'route'") from None
        self.lanes: dict[str, Lane] = {}
        for lid, lane in lanes_in.items():
            limit = lane.get("speed_limit_mps")
            self.lanes[lid] = Lane(
                id=lid,
                centre=Polyline.from_points(lane["centre_m"], lane["heading_rad"]),
                width_m=float(lane["width_m"]),
                speed_limit_mps=float(limit) if limit is not None else default_speed_limit_mps,
                next=tuple(lane.get("next", ())),
                left=lane.get("left"),
                right=lane.get("right"),
            )
        self.route_lanes: tuple[str, ...] = tuple(route["lane_ids"])
        unknown = [r for r in self.route_lanes if r not in self.lanes]
        if unknown:
            raise ValueError(f"route lanes {unknown} are not in the map")
        self.route_length_m = float(route["length_m"])
        # along the route, each lane's next route lane (a lap lists its first lane again)
        self.route_next: dict[str, str] = {
            a: b for a, b in zip(self.route_lanes, self.route_lanes[1:]) if a != b
        }
        self.route_roads = {_road(r) for r in self.route_lanes}
        # whether any lane bends (a roundabout, a racetrack): where lane-following forecasts pay
        self.curved = any(
            np.abs(lane.centre.curvature_1pm).max() > CURVED_MAP_1PM
            for lane in self.lanes.values()
            if len(lane.centre) > 2
        )
        self.destination = self.route_lanes[-1]
        # every lane's segments stacked, to find the lane under a point in one pass
        starts, ends, owner = [], [], []
        self._lane_ids = list(self.lanes)
        for k, lid in enumerate(self._lane_ids):
            p = self.lanes[lid].centre.points_m
            starts.append(p[:-1])
            ends.append(p[1:])
            owner.append(np.full(len(p) - 1, k))
        self._seg_a = np.concatenate(starts)
        self._seg_ab = np.concatenate(ends) - self._seg_a
        self._seg_len2 = np.maximum(np.einsum("ij,ij->i", self._seg_ab, self._seg_ab), 1e-12)
        self._seg_heading = np.arctan2(self._seg_ab[:, 1], self._seg_ab[:, 0])
        self._seg_lo = np.minimum(self._seg_a, self._seg_a + self._seg_ab)  # bounding boxes
        self._seg_hi = np.maximum(self._seg_a, self._seg_a + self._seg_ab)
        self._seg_owner = np.concatenate(owner)
        self._seg_s = np.concatenate([self.lanes[lid].centre.s_m[:-1] for lid in self._lane_ids])
        self._paths: dict = {} if path_cache is None else path_cache
        if len(self._paths) > PATH_CACHE_LIMIT:
            self._paths.clear()
        # what identifies this network's geometry (the same map in every episode of a scenario)
        self._fingerprint = hash(
            tuple(
                (lid, len(lane.centre), round(float(lane.centre.points_m.sum()), 3))
                for lid, lane in sorted(self.lanes.items())
            )
        )

    def locate(
        self, xy_m: np.ndarray, heading_rad: float, prefer: Sequence[str] = ()
    ) -> tuple[str, float] | None:
        """The lane under a point and the point's arc length on it [m], among lanes
        heading within 60 degrees of ``heading_rad``; None when no lane is aligned.

        The lane whose centre is nearest wins, except that the first of ``prefer`` (e.g.
        the corridor followed last step) whose lane still holds the point wins: a
        junction's overlapping lanes do not flicker, and an exit is not mistaken for
        the ring it leaves.
        """
        _, t, dist = self._segment_distances(
            np.asarray(xy_m, dtype=np.float64).reshape(1, 2), np.array([heading_rad]), slice(None)
        )
        t, dist = t[0], dist[0]
        best = int(np.argmin(dist))
        for lane_id in prefer:
            if lane_id not in self.lanes:
                continue
            own = np.flatnonzero(self._seg_owner == self._lane_ids.index(lane_id))
            k = own[int(np.argmin(dist[own]))]
            if dist[k] <= self.lanes[lane_id].width_m / 2:
                best = int(k)
                break
        if not np.isfinite(dist[best]):
            return None
        return self._lane_ids[self._seg_owner[best]], float(
            self._seg_s[best] + t[best] * np.sqrt(self._seg_len2[best])
        )

    def _segment_distances(self, xy: np.ndarray, heading: np.ndarray, seg) -> tuple:
        """From each point ``[K, 2]`` heading ``[K]`` to each of the segments ``seg`` (an
        index array or a slice): the point relative to the segment's start ``[K, S, 2]``, the
        foot's fraction along it ``[K, S]`` and the distance ``[K, S]`` (inf where the segment
        is not aligned with the heading)."""
        ab = self._seg_ab[seg]
        rel = xy[:, None, :] - self._seg_a[seg][None]
        t = np.clip(np.einsum("ksj,sj->ks", rel, ab) / self._seg_len2[seg], 0.0, 1.0)
        dist = np.linalg.norm(rel - t[..., None] * ab[None], axis=-1)
        aligned = np.abs(wrap_angle(self._seg_heading[seg][None] - heading[:, None])) < ALIGNED_RAD
        return rel, t, np.where(aligned, dist, np.inf)

    def offsets(self, xy_m: np.ndarray, heading_rad: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For each point ``[K, 2]`` heading ``[K]``, its signed offset [m] from the
        nearest aligned lane centre (left positive) and that centre's heading [rad];
        ``nan`` where no lane is aligned."""
        xy = np.asarray(xy_m, dtype=np.float64).reshape(-1, 2)
        heading = np.asarray(heading_rad, dtype=np.float64).reshape(-1)
        nan = np.full(len(xy), np.nan)
        if not len(xy):
            return nan, nan
        # only the segments near the points (a map holds thousands: 4000 on the highway)
        lo, hi = xy.min(axis=0) - OFFSET_SEARCH_M, xy.max(axis=0) + OFFSET_SEARCH_M
        near = np.flatnonzero(np.all((self._seg_hi >= lo) & (self._seg_lo <= hi), axis=1))
        if not len(near):
            return nan, nan
        rel, _, dist = self._segment_distances(xy, heading, near)
        best = np.argmin(dist, axis=1)
        rows = np.arange(len(xy))
        found = np.isfinite(dist[rows, best])
        ab, seg_heading = self._seg_ab[near][best], self._seg_heading[near]
        side = np.sign(ab[:, 0] * rel[rows, best, 1] - ab[:, 1] * rel[rows, best, 0])
        offset = np.where(found, side * dist[rows, best], np.nan)
        return offset, np.where(found, seg_heading[best], np.nan)

    def corridor(
        self, lane_id: str, length_m: float, start_s_m: float = 0.0, follow_route: bool = True
    ) -> tuple[str, ...]:
        """``lane_id`` and the lanes that follow it for at least ``length_m`` metres beyond
        ``start_s_m`` on it (or to a dead end): the route's next lane where the route goes
        on from here, else the successor on a route road, else the nearest successor.
        ``follow_route=False`` (another car's lane) always takes the nearest successor."""
        lanes = [lane_id]
        total = self.lanes[lane_id].centre.length_m - start_s_m
        while total < length_m:
            cur = self.lanes[lanes[-1]]
            if not follow_route:
                if not cur.next or len(lanes) > 64:
                    break
                lanes.append(cur.next[0])
                total += self.lanes[cur.next[0]].centre.length_m
                continue
            nxt = self.route_next.get(cur.id)
            if nxt is None or not (nxt in cur.next or self._drivable_chord(cur.id, nxt)):
                # the route jumps sideways here (a merge): follow the road; a lane change
                # onto the route is the planner's to find
                on_route = [n for n in cur.next if _road(n) in self.route_roads]
                nxt = on_route[0] if on_route else (cur.next[0] if cur.next else None)
            if nxt is None or len(lanes) > 64:
                break
            lanes.append(nxt)
            total += self.lanes[nxt].centre.length_m
        return tuple(lanes)

    def _drivable_chord(self, a: str, b: str) -> bool:
        """Whether a straight chord from lane ``a``'s end to lane ``b``'s start can be
        driven: it points forward and turns by at most 45 degrees (a roundabout entry),
        unlike the route's sideways jump from an on-ramp to the lane it merges into."""
        end, start = self.lanes[a].centre.points_m[-1], self.lanes[b].centre.points_m[0]
        h = self.lanes[a].centre.heading_rad[-1]
        rel = start - end
        lon = np.cos(h) * rel[0] + np.sin(h) * rel[1]
        lat = -np.sin(h) * rel[0] + np.cos(h) * rel[1]
        return bool(
            np.hypot(lon, lat) < JUNCTION_GAP_M or (lon > JUNCTION_GAP_M and abs(lat) <= lon)
        )

    def path(self, lanes: Sequence[str]) -> ReferencePath:
        """The reference path along a corridor (cached: corridors repeat step after step)."""
        lanes = tuple(lanes)
        key = (self._fingerprint, self.destination, lanes)  # dead ends depend on the destination
        path = self._paths.get(key)
        if path is None:
            path = self._paths[key] = ReferencePath.along(self, lanes)
        return path

    def reaches_destination(self, lane_id: str) -> bool:
        """Whether a lane runs on beside the route's last lane to (nearly) its end."""
        if _road(lane_id) != _road(self.destination):
            return False
        dest = self.lanes[self.destination].centre
        s_end, _ = dest.project(self.lanes[lane_id].centre.points_m[-1])
        return bool(s_end >= dest.length_m - DESTINATION_SLACK_M)

    def is_route_lane(self, lane_id: str) -> bool:
        return _road(lane_id) in self.route_roads


def _road(lane_id: str) -> str:
    """``"from-to-k"`` -> ``"from-to"``."""
    return lane_id.rsplit("-", 1)[0]


@dataclass(frozen=True, eq=False)
class ReferencePath:
    """A corridor resampled every ``spacing_m``: index ``i`` is at ``s = i * spacing_m``."""

    lanes: tuple[str, ...]
    lane_start_s_m: np.ndarray  # [len(lanes)] where each lane begins on the path [m]
    xy_m: np.ndarray  # [N, 2]
    tangent: np.ndarray  # [N, 2]
    heading_rad: np.ndarray  # [N] unwrapped
    curvature_1pm: np.ndarray  # [N] smoothed over CURVATURE_WINDOW_M
    speed_limit_mps: np.ndarray  # [N] the lanes' limits
    width_m: float
    dead_end: bool  # the corridor stops before the route does (e.g. a merge lane's end)
    spacing_m: float = PATH_SPACING_M

    @classmethod
    def along(cls, lane_map: LaneMap, lanes: tuple[str, ...]) -> ReferencePath:
        pts, heads, limits, first_index = [], [], [], []
        for k, lid in enumerate(lanes):
            lane = lane_map.lanes[lid]
            p, h = lane.centre.points_m, lane.centre.heading_rad
            start = sum(len(a) for a in pts)
            if pts and np.linalg.norm(p[0] - pts[-1][-1]) < JUNCTION_GAP_M:
                p, h = p[1:], h[1:]  # the shared junction point once: the lane starts there
                start -= 1
            first_index.append(start)
            pts.append(p)
            heads.append(h)
            limits.append(np.full(len(p), lane.speed_limit_mps))
        points, headings, limit_src = (
            np.concatenate(pts),
            np.concatenate(heads),
            np.concatenate(limits),
        )
        keep = np.concatenate(
            [[True], np.linalg.norm(np.diff(points, axis=0), axis=1) > MIN_SEGMENT_M]
        )
        points, headings, limit_src = points[keep], headings[keep], limit_src[keep]
        kept_index = np.cumsum(keep) - 1  # old vertex index -> new
        joined = any(
            np.linalg.norm(a[-1] - b[0]) >= JUNCTION_GAP_M for a, b in itertools.pairwise(pts)
        )
        # a gap between lanes is bridged by a straight chord: let the headings follow it
        line = Polyline.from_points(points, None if joined else headings)
        grid = line.resample(PATH_SPACING_M)
        # a sample takes the limit of the lane it lies on (the lane it entered last)
        limit = limit_src[
            np.clip(np.searchsorted(line.s_m, grid.s_m, side="right") - 1, 0, len(line.s_m) - 1)
        ]
        n = max(1, round(CURVATURE_WINDOW_M / PATH_SPACING_M))
        kernel = np.ones(n) / n
        curvature = np.convolve(
            np.pad(grid.curvature_1pm, (n // 2, n - 1 - n // 2), mode="edge"), kernel, mode="valid"
        )
        last = lanes[-1]
        dead_end = not lane_map.lanes[last].next and not lane_map.reaches_destination(last)
        lane_start = np.array([line.s_m[kept_index[i]] for i in first_index])
        lane_start[0] = 0.0
        return cls(
            lanes=lanes,
            lane_start_s_m=lane_start,
            xy_m=grid.points_m,
            tangent=grid.tangent,
            heading_rad=grid.heading_rad,
            curvature_1pm=curvature,
            speed_limit_mps=limit,
            width_m=lane_map.lanes[lanes[0]].width_m,
            dead_end=bool(dead_end),
            spacing_m=float(grid.s_m[1] - grid.s_m[0]),
        )

    @property
    def length_m(self) -> float:
        return (len(self.xy_m) - 1) * self.spacing_m

    def shifted(self, offset_m: float) -> ReferencePath:
        """This path moved ``offset_m`` to its left (negative: right), sample by sample: a
        line parallel to the centre line, inside the lane (PDM-Closed's offset centre
        lines). Arc lengths stay the centre line's: exact on a straight road, off by
        ``offset x curvature`` (1% at 1 m on a 100 m radius) on a curve."""
        return replace(self, xy_m=self.xy_m + float(offset_m) * left_normal(self.tangent))

    def frame(self, s_m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Centre point and unit tangent at ``s_m`` (any shape), straight beyond the ends."""
        s = np.asarray(s_m, dtype=np.float64)
        f = np.minimum(np.maximum(s / self.spacing_m, 0.0), len(self.xy_m) - 1.000001)
        i = f.astype(np.int64)
        u = (f - i)[..., None]
        c = self.xy_m[i] * (1 - u) + self.xy_m[i + 1] * u
        t = self.tangent[i] * (1 - u) + self.tangent[i + 1] * u
        t = t / np.sqrt(t[..., 0:1] ** 2 + t[..., 1:2] ** 2)
        beyond = (s - np.minimum(np.maximum(s, 0.0), self.length_m))[..., None]
        return c + beyond * t, t

    def project(
        self, xy_m: np.ndarray, s_guess_m: np.ndarray | None = None, window_m: float = 200.0
    ) -> tuple[np.ndarray, np.ndarray]:
        """Points ``[..., 2]`` -> (s, d).  The nearest sample within ``window_m`` of the
        guess (or anywhere) seeds two Gauss-Newton steps on the foot-point condition."""
        q = np.asarray(xy_m, dtype=np.float64)
        shape = q.shape[:-1]
        q = q.reshape(-1, 2)
        if s_guess_m is None:  # coarse pass over every 16th sample, then the window around it
            stride = 16
            d2 = np.sum((q[:, None, :] - self.xy_m[None, ::stride]) ** 2, axis=-1)
            s_guess_m = np.argmin(d2, axis=1) * stride * self.spacing_m
            window_m = min(window_m, 4 * stride * self.spacing_m)
        s = np.broadcast_to(np.asarray(s_guess_m, dtype=np.float64).reshape(-1), (len(q),))
        lo = int(max(0, np.floor((s.min() - window_m) / self.spacing_m)))
        hi = int(min(len(self.xy_m), np.ceil((s.max() + window_m) / self.spacing_m) + 1))
        d2 = np.sum((q[:, None, :] - self.xy_m[None, lo:hi]) ** 2, axis=-1)
        s = (lo + np.argmin(d2, axis=1)) * self.spacing_m  # the first of equally near samples
        for _ in range(2):
            c, t = self.frame(s)
            r = q - c
            s = s + (r[:, 0] * t[:, 0] + r[:, 1] * t[:, 1])
        # the offset from the last frame: its along-track shift leaves d unchanged to first order
        d = r[:, 1] * t[:, 0] - r[:, 0] * t[:, 1]
        return s.reshape(shape), d.reshape(shape)

    def lane_at(self, s_m: float) -> tuple[str, float]:
        """The corridor's lane at arc length ``s_m`` and the arc length into it [m]
        (on a junction chord: the lane the chord leads to, at 0)."""
        k = int(
            np.clip(
                np.searchsorted(self.lane_start_s_m, s_m, side="right") - 1, 0, len(self.lanes) - 1
            )
        )
        return self.lanes[k], float(max(0.0, s_m - self.lane_start_s_m[k]))

    def to_xy(self, s_m: np.ndarray | float, d_m: np.ndarray | float) -> np.ndarray:
        c, t = self.frame(s_m)
        return c + np.asarray(d_m, dtype=np.float64)[..., None] * left_normal(t)

    def heading_at(self, s_m: np.ndarray | float) -> np.ndarray:
        _, t = self.frame(s_m)
        return np.arctan2(t[..., 1], t[..., 0])

    def lookup(self, values: np.ndarray, s_m: np.ndarray) -> np.ndarray:
        """A per-sample array (speed limit, curvature) at ``s_m``, clamped to the ends."""
        i = np.clip(np.rint(np.asarray(s_m) / self.spacing_m).astype(np.int64), 0, len(values) - 1)
        return values[i]


def hermite_offset(
    s_m: np.ndarray, d0_m: np.ndarray, slope0: np.ndarray, length_m: np.ndarray
) -> np.ndarray:
    """Lateral offset [m] of a transition that leaves the car's offset ``d0_m`` with its
    lateral slope ``slope0`` (tan of the heading error) at ``s = 0`` and joins the
    centre line tangentially at ``s = length_m``: a cubic Hermite curve in Frenet
    coordinates (the lane-change paths of Werling et al. 2010, in their simplest form)."""
    length = np.asarray(length_m, dtype=np.float64)
    none = length < MIN_TRANSITION_M  # no transition: the centre line itself
    u = np.where(none, 1.0, np.clip(np.asarray(s_m) / np.where(none, 1.0, length), 0.0, 1.0))
    m0 = np.clip(slope0, -MAX_TRANSITION_SLOPE, MAX_TRANSITION_SLOPE) * length
    return d0_m * (2 * u**3 - 3 * u**2 + 1) + m0 * (u**3 - 2 * u**2 + u)


def transition_slope(heading_error_rad: np.ndarray) -> np.ndarray:
    """Lateral slope [-] a transition starts with: tan of the car's heading relative to
    the path, the heading error clamped to ``MAX_HEADING_ERROR_RAD``."""
    return np.tan(np.clip(heading_error_rad, -MAX_HEADING_ERROR_RAD, MAX_HEADING_ERROR_RAD))


@dataclass(frozen=True, eq=False)
class BlendedPath:
    """A reference path approached from the car's current offset instead of jumped to:
    the target line is the centre line shifted by :func:`hermite_offset`.  Offers the
    ``project`` / ``to_xy`` / ``heading_at`` the controllers use."""

    base: ReferencePath
    s0_m: float  # where the transition starts (the car, now)
    d0_m: float  # the car's offset there, left positive
    slope0: float  # tan of the car's heading relative to the line there
    length_m: float  # transition length

    def offset(self, s_m):
        return hermite_offset(
            np.asarray(s_m, dtype=np.float64) - self.s0_m, self.d0_m, self.slope0, self.length_m
        )

    def project(self, xy_m: np.ndarray, s_guess_m=None, window_m: float = 200.0):
        s, d = self.base.project(xy_m, s_guess_m, window_m)
        return s, d - self.offset(s)

    def to_xy(self, s_m, d_m):
        return self.base.to_xy(s_m, np.asarray(d_m, dtype=np.float64) + self.offset(s_m))

    def heading_at(self, s_m):
        eps = 0.5  # [m] slope of the offset by central difference
        slope = (self.offset(np.asarray(s_m) + eps) - self.offset(np.asarray(s_m) - eps)) / (
            2 * eps
        )
        return self.base.heading_at(s_m) + np.arctan(slope)
