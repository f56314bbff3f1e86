"""Procedural roads: seeded layouts of straights, arcs and S-bends, and their highway-env network.

A road is a chain of :class:`Segment` pieces of its centre line (the middle of all its
lanes), each a straight or a constant-curvature arc, joined with the same position and
heading (G1 continuity).  :func:`generate_layout` draws one from a map seed with numpy
only; :func:`build_network` turns it into a highway-env ``RoadNetwork`` with one edge
per segment (nodes ``"s0"``, ``"s1"``, ...) holding one ``StraightLane`` or
``CircularLane`` per lane.  Every lane is the centre line offset sideways by a constant,
so each lane is itself continuous in position and heading at every join, and all the
lanes of an arc share its centre (their radii differ by the lane width).

Why these rules:

* **Curvature bound on every lane.**  ``RoadSpec.radius_range_m`` bounds the centre
  radius of *every* lane of an arc, the innermost included, so the tightest curve a
  car meets is the stated one (a lane-keep agent's steering range and a scenario's
  lateral-acceleration budget are sized from it).
* **No self-crossing.**  The heading stays within ``max_heading_rad`` (< pi/2) of the
  start heading, so the road advances monotonically along its start direction and
  cannot loop back onto itself; :func:`self_clearance_m` checks what remains (two
  distant parts of the road must stay a road width plus ``clearance_m`` apart) and a
  map that fails is redrawn from the next sub-stream.  A crossing would let a car be
  "on the road" on a lane it is not driving and would fool the off-road check.
* **Arcs under 2 pi / 3.**  highway-env's ``CircularLane.local_coordinates`` wraps the
  angle to +-pi around the arc's start, so an arc much longer than pi would give wrong
  longitudinal coordinates near its end.
* **Reproducible.**  All randomness comes from
  ``numpy.random.default_rng(numpy.random.SeedSequence([ROADGEN_ENTROPY, map_seed, attempt]))``:
  the same map seed gives the same map in any process (no Python ``hash``, no global state).

Frames: the layout is in the project's world frame (x east, y north, headings
counter-clockwise, lateral offsets left-positive).  :func:`build_network` converts to
highway-env's y-down frame through :mod:`sim.geometry.frames` only.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
from highway_env.road.lane import CircularLane, LineType, StraightLane
from highway_env.road.road import RoadNetwork

from sim.geometry.frames import hw_to_world_heading, hw_to_world_xy

ROADGEN_ENTROPY = 0x52_6F_61_64  # first word of every map's SeedSequence ("Road"): a namespace
MAX_ARC_TURN_RAD = 2.0 * np.pi / 3.0  # [rad] longest arc (CircularLane wraps angles at +-pi)
MAX_ATTEMPTS = 50  # redraws of a map whose road comes too close to itself
PIECES = ("straight", "arc", "s-bend")


def node_name(k: int) -> str:
    """The network node at the start of segment ``k`` (the end of segment ``k - 1``)."""
    return f"s{k}"


@dataclass(frozen=True)
class RoadSpec:
    """What kind of road :func:`generate_layout` draws; every length in metres."""

    lanes_count: int = 2
    """Lanes, all in the direction of travel; lane 0 is the leftmost (highway-env's order)."""
    lane_width_m: float = 4.0
    """Width of every lane [m] (highway-env's default)."""
    radius_range_m: tuple[float, float] = (15.0, 300.0)
    """Bounds on the centre-line radius [m] of *every* lane of an arc, the inner one included."""
    straight_range_m: tuple[float, float] = (20.0, 120.0)
    """Length [m] of a straight piece, drawn uniformly."""
    turn_range_rad: tuple[float, float] = (np.pi / 12, np.pi / 2)
    """Turn [rad] of one arc, drawn uniformly (then shortened to respect ``max_arc_m`` and
    ``max_heading_rad``)."""
    max_arc_m: float = 150.0
    """Longest arc [m]: a 300 m radius turning pi/2 would take 470 m of a short route."""
    max_heading_rad: float = 0.45 * np.pi
    """Bound [rad] on |heading - start heading|: below pi/2 the road never comes back."""
    piece_weights: tuple[float, float, float] = (0.3, 0.4, 0.3)
    """Odds of the next piece being a straight, an arc, an S-bend (two opposite arcs)."""
    lead_in_m: float = 40.0
    """Straight [m] the road starts with (where the ego and the traffic behind it start)."""
    run_out_m: float = 60.0
    """Straight [m] the road ends with, beyond the length asked for."""
    speed_limit_mps: float = 20.0
    """Speed limit [m/s] of every lane."""
    clearance_m: float = 4.0
    """Least gap [m] between the edges of two distant parts of the road."""

    def __post_init__(self) -> None:
        if int(self.lanes_count) != self.lanes_count or self.lanes_count < 1:
            raise ValueError(f"lanes_count must be an integer >= 1, got {self.lanes_count!r}")
        if not self.lane_width_m > 0:
            raise ValueError(f"lane_width_m must be > 0, got {self.lane_width_m!r}")
        lo, hi = self.radius_range_m
        half_span = self.half_span_m
        if not (0 < lo <= hi):
            raise ValueError(
                "radius_range_m must be (low, high) with 0 < low <= high, got "
                f"{self.radius_range_m!r}"
            )
        if hi - lo < 2 * half_span:
            raise ValueError(
                f"radius_range_m {self.radius_range_m!r} is narrower than the {self.lanes_count} "
                f"lanes ({2 * half_span:.1f} m between the outer lanes' centres): no arc fits "
                "every lane inside it"
            )
        s_lo, s_hi = self.straight_range_m
        if not (0 < s_lo <= s_hi):
            raise ValueError(
                f"straight_range_m must be (low, high) with 0 < low <= high, "
                f"got {self.straight_range_m!r}"
            )
        t_lo, t_hi = self.turn_range_rad
        if not (0 < t_lo <= t_hi <= MAX_ARC_TURN_RAD):
            raise ValueError(
                f"turn_range_rad must be (low, high) with 0 < low <= high <= "
                f"{MAX_ARC_TURN_RAD:.3f}, got {self.turn_range_rad!r}"
            )
        if not (0 < self.max_heading_rad < np.pi / 2):
            raise ValueError(
                f"max_heading_rad must be in (0, pi/2) so the road cannot come back, "
                f"got {self.max_heading_rad!r}"
            )
        w = np.asarray(self.piece_weights, dtype=np.float64)
        if w.shape != (len(PIECES),) or np.any(w < 0) or w.sum() <= 0:
            raise ValueError(
                f"piece_weights must be {len(PIECES)} non-negative odds for {PIECES}, "
                f"got {self.piece_weights!r}"
            )
        for name in ("max_arc_m", "lead_in_m", "run_out_m", "speed_limit_mps"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        if self.clearance_m < 0:
            raise ValueError(f"clearance_m must be >= 0, got {self.clearance_m!r}")

    @property
    def half_span_m(self) -> float:
        """Distance [m] from the road's centre line to the outermost lanes' centre lines."""
        return (self.lanes_count - 1) / 2 * self.lane_width_m

    @property
    def width_m(self) -> float:
        """Paved width [m] of the road."""
        return self.lanes_count * self.lane_width_m

    def lane_offset_m(self, k: int) -> float:
        """Left-positive offset [m] of lane ``k``'s centre line from the road's centre line."""
        return ((self.lanes_count - 1) / 2 - k) * self.lane_width_m

    @property
    def centre_radius_range_m(self) -> tuple[float, float]:
        """Radii [m] of the road's centre line that keep every lane in ``radius_range_m``."""
        lo, hi = self.radius_range_m
        return lo + self.half_span_m, hi - self.half_span_m


@dataclass(frozen=True)
class Segment:
    """One piece of a road's centre line, world frame: a straight (curvature 0) or an arc."""

    start_xy_m: tuple[float, float]  # [m] world position of the centre line's start
    start_heading_rad: float  # [rad] world heading at the start, counter-clockwise positive
    length_m: float  # [m] along the centre line
    curvature_1pm: float  # [1/m] signed: > 0 turns left, < 0 right, 0 straight

    @property
    def kind(self) -> str:
        return "straight" if self.curvature_1pm == 0.0 else "arc"

    @property
    def turn_rad(self) -> float:
        """Heading change [rad] over the segment (left-positive)."""
        return self.curvature_1pm * self.length_m

    def pose_at(
        self, s_m: np.ndarray | float, lateral_m: float = 0.0
    ) -> tuple[np.ndarray, np.ndarray]:
        """World position(s) ``[..., 2]`` [m] and heading(s) [rad] at arc length ``s_m`` of the
        centre line, offset ``lateral_m`` to the left (a lane's centre line: same heading)."""
        s = np.asarray(s_m, dtype=np.float64)
        x0, y0 = self.start_xy_m
        h0, k = self.start_heading_rad, self.curvature_1pm
        h = h0 + k * s
        if k == 0.0:
            x, y = x0 + s * np.cos(h0), y0 + s * np.sin(h0)
        else:  # exact arc: integrate (cos h, sin h) ds from h0 to h
            x, y = x0 + (np.sin(h) - np.sin(h0)) / k, y0 - (np.cos(h) - np.cos(h0)) / k
        xy = np.stack([x - lateral_m * np.sin(h), y + lateral_m * np.cos(h)], axis=-1)
        return xy, h

    @property
    def end_xy_m(self) -> tuple[float, float]:
        xy, _ = self.pose_at(self.length_m)
        return float(xy[0]), float(xy[1])

    @property
    def end_heading_rad(self) -> float:
        return self.start_heading_rad + self.turn_rad


@dataclass(frozen=True)
class Layout:
    """A generated road: its segments in driving order, the spec and seed it came from."""

    segments: tuple[Segment, ...]
    spec: RoadSpec
    map_seed: int
    attempt: int = 0  # which sub-stream of the map seed gave it (> 0 after a redraw)

    @property
    def length_m(self) -> float:
        """Length [m] of the road's centre line."""
        return float(sum(seg.length_m for seg in self.segments))

    def lane_length_m(self, k: int) -> float:
        """Length [m] of lane ``k`` from the road's start to its end: a lane left of the
        centre line is shorter by its offset times the net left turn."""
        turn = self.segments[-1].end_heading_rad - self.segments[0].start_heading_rad
        return self.length_m - self.spec.lane_offset_m(k) * turn

    def as_array(self) -> np.ndarray:
        """``[N, 5]`` rows ``(x, y, heading, length, curvature)`` of the segments (world frame)."""
        return np.array(
            [
                (*seg.start_xy_m, seg.start_heading_rad, seg.length_m, seg.curvature_1pm)
                for seg in self.segments
            ],
            dtype=np.float64,
        )

    def digest(self) -> str:
        """SHA-256 of the segments' bytes: equal digests mean bit-identical maps."""
        return hashlib.sha256(np.ascontiguousarray(self.as_array()).tobytes()).hexdigest()

    def centre_line(self, step_m: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        """Samples of the centre line: world points ``[M, 2]`` [m] and their arc length [m]."""
        pts, ss, s0 = [], [], 0.0
        for seg in self.segments:
            n = max(2, int(np.ceil(seg.length_m / step_m)) + 1)
            s = np.linspace(0.0, seg.length_m, n)[:-1]
            pts.append(seg.pose_at(s)[0])
            ss.append(s0 + s)
            s0 += seg.length_m
        end = self.segments[-1]
        pts.append(np.array([end.end_xy_m]))
        ss.append(np.array([s0]))
        return np.concatenate(pts), np.concatenate(ss)

    def locate(self, s_m: float) -> tuple[int, float]:
        """The segment holding arc length ``s_m`` of the centre line, and ``s_m`` within it."""
        if not 0.0 <= s_m <= self.length_m:
            raise ValueError(f"arc length {s_m} m is off the road (0 to {self.length_m:.1f} m)")
        for i, seg in enumerate(self.segments):
            if s_m <= seg.length_m or i == len(self.segments) - 1:
                return i, min(s_m, seg.length_m)
            s_m -= seg.length_m
        raise AssertionError("unreachable")


def self_clearance_m(layout: Layout, step_m: float = 1.0) -> float:
    """The least gap [m] between the edges of two parts of the road that are far apart along it.

    Two centre-line samples more than ``pi / 2 * (width + clearance)`` apart along the road
    are "distant": on a curve of radius >= (width + clearance) / 2 their chord is at least
    2 / pi of their arc distance, so the road's own bends never count.  The gap is their
    distance minus the road's width; ``inf`` when no two samples are distant.
    """
    pts, s = layout.centre_line(step_m)
    spec = layout.spec
    far_m = np.pi / 2 * (spec.width_m + spec.clearance_m)
    distant = s[None, :] - s[:, None] > far_m  # each pair once: j farther along than i
    if not distant.any():
        return float("inf")
    dx = pts[:, None, 0] - pts[None, :, 0]
    dy = pts[:, None, 1] - pts[None, :, 1]
    return float(np.sqrt((dx * dx + dy * dy)[distant].min()) - spec.width_m)


def _arc(
    rng: np.random.Generator,
    spec: RoadSpec,
    heading_rad: float,
    sign: float | None,
    turn_rad: float | None = None,
) -> tuple[float, float]:
    """One arc's (curvature [1/m], length [m]) from ``heading_rad``.

    The radius is log-uniform in the spec's centre-radius range (tight and wide curves
    equally likely per octave).  ``sign`` forces the turn direction (an S-bend's second
    arc); otherwise it is drawn, and flipped when the other way leaves more room under
    ``max_heading_rad``.  ``turn_rad`` forces the turn's size (still clipped).
    """
    r_lo, r_hi = spec.centre_radius_range_m
    radius = float(np.exp(rng.uniform(np.log(r_lo), np.log(r_hi))))
    turn = float(rng.uniform(*spec.turn_range_rad)) if turn_rad is None else turn_rad
    if sign is None:
        sign = 1.0 if rng.uniform() < 0.5 else -1.0
        room, other = (
            spec.max_heading_rad - sign * heading_rad,
            spec.max_heading_rad + sign * heading_rad,
        )
        if turn > room and other > room:
            sign = -sign
    room = spec.max_heading_rad - sign * heading_rad  # heading left before the bound
    turn = min(turn, room, spec.max_arc_m / radius)
    return sign / radius, turn * radius


def _draw_layout(spec: RoadSpec, rng: np.random.Generator, length_m: float) -> list[Segment]:
    """Pieces from the lead-in until every lane covers ``length_m``, then the run-out."""
    segments: list[Segment] = []
    xy, heading = (0.0, 0.0), 0.0

    def add(length: float, curvature: float) -> None:
        nonlocal xy, heading
        seg = Segment(xy, heading, float(length), float(curvature))
        segments.append(seg)
        xy, heading = seg.end_xy_m, seg.end_heading_rad

    add(spec.lead_in_m, 0.0)
    weights = np.asarray(spec.piece_weights, dtype=np.float64)
    offsets = [spec.lane_offset_m(k) for k in range(spec.lanes_count)]
    while True:
        centre_m = sum(seg.length_m for seg in segments)
        if min(centre_m - off * heading for off in offsets) >= length_m:  # the shortest lane
            break
        piece = PIECES[int(rng.choice(len(PIECES), p=weights / weights.sum()))]
        if piece == "straight" and segments[-1].kind == "straight":
            piece = "arc"  # two straights in a row are one straight
        if piece == "straight":
            add(rng.uniform(*spec.straight_range_m), 0.0)
        elif piece == "arc":
            curvature, length = _arc(rng, spec, heading, None)
            add(length, curvature)
        else:  # S-bend: an arc, then one turning back by as much
            k1, l1 = _arc(rng, spec, heading, None)
            add(l1, k1)
            k2, l2 = _arc(rng, spec, heading, -np.sign(k1), turn_rad=abs(k1 * l1))
            add(l2, k2)
    add(spec.run_out_m, 0.0)
    return segments


def generate_layout(spec: RoadSpec, map_seed: int, length_m: float) -> Layout:
    """The road of ``map_seed``: every lane at least ``length_m`` long before the run-out.

    A draw whose road comes within ``spec.clearance_m`` of itself is replaced by a draw
    from the next sub-stream of the same map seed, so the result is still a function of
    ``(spec, map_seed, length_m)`` alone.
    """
    if int(map_seed) != map_seed or map_seed < 0:
        raise ValueError(f"map_seed must be a non-negative integer, got {map_seed!r}")
    if not length_m > 0:
        raise ValueError(f"length_m must be > 0, got {length_m!r}")
    gaps = []
    for attempt in range(MAX_ATTEMPTS):
        rng = np.random.default_rng(
            np.random.SeedSequence([ROADGEN_ENTROPY, int(map_seed), attempt])
        )
        layout = Layout(
            tuple(_draw_layout(spec, rng, float(length_m))), spec, int(map_seed), attempt
        )
        gap = self_clearance_m(layout)
        if gap >= spec.clearance_m:
            return layout
        gaps.append(round(gap, 1))
    raise RuntimeError(
        f"map seed {map_seed}: every one of {MAX_ATTEMPTS} draws comes back within "
        f"{spec.clearance_m} m of itself (gaps {gaps} m); loosen {spec!r}"
    )


def _line_types(k: int, lanes_count: int) -> list[str]:
    """Markings ``[left, right]`` of lane ``k``: continuous at the road's edges, striped between
    lanes.  Each boundary between two lanes is painted once, by the lane on its left (as
    highway-env's racetrack does); painting it from both would draw two dash patterns out of
    phase on an arc, whose inner and outer lanes differ in length."""
    left = LineType.CONTINUOUS_LINE if k == 0 else LineType.NONE
    right = LineType.CONTINUOUS_LINE if k == lanes_count - 1 else LineType.STRIPED
    return [left, right]


def lane_of(segment: Segment, spec: RoadSpec, k: int) -> StraightLane | CircularLane:
    """Lane ``k`` of ``segment`` as a highway-env lane (its y-down frame).

    A straight: the centre line shifted by the lane's offset.  An arc: a ``CircularLane`` on
    the segment's centre with the radius shifted by the offset (inner lanes tighter);
    ``clockwise`` in highway-env's frame is a *right* turn in the world frame, because its y
    axis points down.
    """
    offset = spec.lane_offset_m(k)
    kw = {
        "width": spec.lane_width_m,
        "line_types": _line_types(k, spec.lanes_count),
        "speed_limit": spec.speed_limit_mps,
    }
    start_w, _ = segment.pose_at(0.0, offset)
    if segment.kind == "straight":
        end_w, _ = segment.pose_at(segment.length_m, offset)
        # the y flip is its own inverse: hw_to_world_xy also maps world -> highway-env
        return StraightLane(hw_to_world_xy(start_w), hw_to_world_xy(end_w), **kw)
    kappa = segment.curvature_1pm
    h0 = segment.start_heading_rad
    centre_w = np.asarray(segment.start_xy_m) + np.array([-np.sin(h0), np.cos(h0)]) / kappa
    radius = 1.0 / abs(kappa) - np.sign(kappa) * offset  # left lanes are inside a left turn
    centre_hw, start_hw = hw_to_world_xy(centre_w), hw_to_world_xy(start_w)
    start_phase = float(np.arctan2(start_hw[1] - centre_hw[1], start_hw[0] - centre_hw[0]))
    clockwise = kappa < 0.0
    direction = 1.0 if clockwise else -1.0  # highway-env: phase grows along a clockwise lane
    end_phase = start_phase + direction * abs(segment.turn_rad)
    return CircularLane(centre_hw, float(radius), start_phase, end_phase, clockwise=clockwise, **kw)


def build_network(layout: Layout) -> RoadNetwork:
    """The highway-env network of ``layout``: edge ``("s{i}", "s{i+1}")`` holds segment i's
    lanes, lane index k = lane k of the spec (0 leftmost)."""
    network = RoadNetwork()
    for i, segment in enumerate(layout.segments):
        for k in range(layout.spec.lanes_count):
            network.add_lane(node_name(i), node_name(i + 1), lane_of(segment, layout.spec, k))
    return network


def lane_heading_world_rad(lane: StraightLane | CircularLane, s_m: float) -> float:
    """World heading [rad] of a highway-env lane at ``s_m`` (for checks against the layout)."""
    return float(hw_to_world_heading(lane.heading_at(s_m)))
