"""Static road geometry, sampled once from a highway-env road network.

Two consumers:

* the renderer (:mod:`sim.world.render`) draws lane surfaces and markings from it, culling
  by chunks so a 10 km highway costs no more per frame than a short ramp;
* the ``map`` sensor (an HD-map stand-in) hands it to agents as plain numpy arrays,
  so ``planning`` never sees a highway-env object.

Everything here is in the project's world frame (y up, see :mod:`sim.geometry.frames`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from highway_env.road.lane import AbstractLane, LineType, SineLane, StraightLane
from highway_env.road.road import RoadNetwork

from sim.geometry.frames import hw_to_world_xy

LaneIndex = tuple[str, str, int]

STRAIGHT_SAMPLE_M = (
    10.0  # [m] straight lanes are exact with any spacing; 10 m keeps culling chunks small
)
CURVED_SAMPLE_M = 1.0  # [m] arcs and sines: 1 m chords deviate < 1 cm from a >= 15 m radius
CHUNK_LENGTH_M = 40.0  # [m] renderer culling granularity
SUCCESSOR_GAP_M = 8.0  # [m] a lane leaving a lane's end node within this distance of its end
# may follow it (highway-env's roundabout exits start ~7.7 m from the ring's lane ends) ...
SUCCESSOR_LATERAL = 0.6  # ... unless it starts beside the end (|lateral| > this x lane width)
STRIPE_PERIOD_M = 8.0  # [m] one dash + one gap of a striped marking
STRIPE_DASH_M = 3.0  # [m] dash length (highway-env draws 3 m dashes too)

# Marking kinds as exposed in the map sensor: highway-env's LineType values, named.
LINE_NAMES = {
    LineType.NONE: "none",
    LineType.STRIPED: "striped",
    LineType.CONTINUOUS: "continuous",
    LineType.CONTINUOUS_LINE: "continuous",
}


def lane_id(index: LaneIndex) -> str:
    """A lane index ``(from, to, k)`` as the string the map sensor uses: ``"from-to-k"``."""
    return f"{index[0]}-{index[1]}-{index[2]}"


def _sample_s(lane: AbstractLane) -> np.ndarray:
    """Longitudinal sample positions [m] along a lane, both ends included."""
    exact_straight = isinstance(lane, StraightLane) and not isinstance(lane, SineLane)
    step = STRAIGHT_SAMPLE_M if exact_straight else CURVED_SAMPLE_M
    n = max(2, int(np.ceil(lane.length / step)) + 1)
    return np.linspace(0.0, float(lane.length), n)


@dataclass
class LaneGeometry:
    """One lane, sampled. Arrays are in the world frame [m]."""

    index: LaneIndex
    s_m: np.ndarray  # [N] arc length of each sample along the lane's own parameter
    centre_m: np.ndarray  # [N, 2]
    left_m: np.ndarray  # [N, 2] left edge (driver's left)
    right_m: np.ndarray  # [N, 2]
    heading_rad: np.ndarray  # [N] world heading of the centre line
    width_m: float
    speed_limit_mps: float | None
    line_left: str
    line_right: str
    forbidden: bool

    @property
    def id(self) -> str:
        return lane_id(self.index)


def sample_lane(index: LaneIndex, lane: AbstractLane) -> LaneGeometry:
    s = _sample_s(lane)
    centre = np.array([lane.position(si, 0.0) for si in s])
    widths = np.array([lane.width_at(si) for si in s])
    # highway-env's lateral axis points to the driver's right (its y is down the screen)
    left = np.array([lane.position(si, -w / 2) for si, w in zip(s, widths)])
    right = np.array([lane.position(si, +w / 2) for si, w in zip(s, widths)])
    heading = -np.array([lane.heading_at(si) for si in s])
    lt = list(lane.line_types) if lane.line_types is not None else [LineType.NONE, LineType.NONE]
    return LaneGeometry(
        index=index,
        s_m=s,
        centre_m=hw_to_world_xy(centre),
        left_m=hw_to_world_xy(left),
        right_m=hw_to_world_xy(right),
        heading_rad=heading,
        width_m=float(lane.width_at(0.0)),
        speed_limit_mps=None if lane.speed_limit is None else float(lane.speed_limit),
        line_left=LINE_NAMES.get(lt[0], "none"),
        line_right=LINE_NAMES.get(lt[1], "none"),
        forbidden=bool(getattr(lane, "forbidden", False)),
    )


def _stripe_segments(lane: LaneGeometry, side: str) -> np.ndarray:
    """Dashes of a striped marking as ``[K, 2, 2]`` world segments."""
    edge = lane.left_m if side == "left" else lane.right_m
    length = float(lane.s_m[-1])
    starts = np.arange(0.0, length, STRIPE_PERIOD_M)
    ends = np.minimum(starts + STRIPE_DASH_M, length)
    a = np.stack([np.interp(starts, lane.s_m, edge[:, k]) for k in (0, 1)], axis=-1)
    b = np.stack([np.interp(ends, lane.s_m, edge[:, k]) for k in (0, 1)], axis=-1)
    return np.stack([a, b], axis=1)


@dataclass
class RoadGeometry:
    """All lanes of a network, sampled, plus culling chunks for the renderer."""

    lanes: dict[LaneIndex, LaneGeometry]
    # Renderer chunks: each a lane surface polygon / marking polyline with a bounding circle.
    surface_polys: list[np.ndarray] = field(default_factory=list)  # each [P, 2]
    surface_centres: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    surface_radii: np.ndarray = field(default_factory=lambda: np.zeros(0))
    solid_lines: list[np.ndarray] = field(default_factory=list)  # each [P, 2]
    solid_centres: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    solid_radii: np.ndarray = field(default_factory=lambda: np.zeros(0))
    dashes: np.ndarray = field(default_factory=lambda: np.zeros((0, 2, 2)))  # [K, 2, 2]
    dash_mids: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))  # [K, 2]
    # per lane: {"next": [lane ids], "left": lane id | None, "right": lane id | None}
    topology: dict[LaneIndex, dict] = field(default_factory=dict)

    @classmethod
    def from_network(cls, network: RoadNetwork) -> RoadGeometry:
        lanes: dict[LaneIndex, LaneGeometry] = {}
        for _from, tos in network.graph.items():
            for _to, lane_list in tos.items():
                for k, lane in enumerate(lane_list):
                    lanes[(_from, _to, k)] = sample_lane((_from, _to, k), lane)
        geo = cls(lanes=lanes)
        geo._build_chunks()
        geo.topology = geo._build_topology()
        for lane in lanes.values():  # shared by every env of the process: protect it
            for arr in (lane.s_m, lane.centre_m, lane.left_m, lane.right_m, lane.heading_rad):
                arr.setflags(write=False)
        return geo

    def _build_chunks(self) -> None:
        polys, solids, dashes = [], [], []
        for lane in self.lanes.values():
            n = len(lane.s_m)
            # chunk boundaries every ~CHUNK_LENGTH_M, overlapping by one sample so chunks join
            per = max(1, int(np.searchsorted(lane.s_m, CHUNK_LENGTH_M)))
            for i0 in range(0, n - 1, per):
                i1 = min(n, i0 + per + 1)
                left, right = lane.left_m[i0:i1], lane.right_m[i0:i1]
                polys.append(np.concatenate([left, right[::-1]], axis=0))
                for side, kind in (("left", lane.line_left), ("right", lane.line_right)):
                    if kind == "continuous":
                        solids.append(left if side == "left" else right)
            for side, kind in (("left", lane.line_left), ("right", lane.line_right)):
                if kind == "striped":
                    dashes.append(_stripe_segments(lane, side))
        self.surface_polys = polys
        self.surface_centres, self.surface_radii = _bounding_circles(polys)
        self.solid_lines = solids
        self.solid_centres, self.solid_radii = _bounding_circles(solids)
        self.dashes = np.concatenate(dashes, axis=0) if dashes else np.zeros((0, 2, 2))
        self.dash_mids = self.dashes.mean(axis=1)

    def _build_topology(self) -> dict[LaneIndex, dict]:
        """Per lane: successors (nearest start first) and the lateral neighbours.

        Successors are the lanes leaving the lane's end node that start within
        ``SUCCESSOR_GAP_M`` of its end and not beside it; neighbours are the lanes of the same road
        (``from``, ``to``) with index k -+ 1, named left or right by where their centre lies.
        """
        by_start: dict[str, list[LaneGeometry]] = {}
        for lane in self.lanes.values():
            by_start.setdefault(lane.index[0], []).append(lane)
        topo: dict[LaneIndex, dict] = {}
        for idx, lane in self.lanes.items():
            end, h = lane.centre_m[-1], lane.heading_rad[-1]
            nxt = []
            for o in by_start.get(idx[1], []):
                rel = o.centre_m[0] - end
                lateral = -np.sin(h) * rel[0] + np.cos(h) * rel[1]
                gap = float(np.hypot(*rel))
                # a lane starting beside the end (the next road's other lanes) is not a successor
                if (
                    o.index != idx
                    and gap <= SUCCESSOR_GAP_M
                    and abs(lateral) <= SUCCESSOR_LATERAL * lane.width_m
                ):
                    nxt.append((gap, o.id))
            nxt.sort()
            entry = {"next": [i for _, i in nxt], "left": None, "right": None}
            h = lane.heading_rad[0]
            for k in (idx[2] - 1, idx[2] + 1):
                other = self.lanes.get((idx[0], idx[1], k))
                if other is None:
                    continue
                rel = other.centre_m[0] - lane.centre_m[0]
                side = "left" if np.cos(h) * rel[1] - np.sin(h) * rel[0] > 0 else "right"
                entry[side] = other.id
            topo[idx] = entry
        return topo

    def map_sensor(self) -> dict:
        """The ``map`` sensor: every lane as plain arrays, keyed by lane id ``"from-to-k"``,
        with its successors (``next``) and lateral neighbours (``left``, ``right``).

        Fresh copies, so a user who edits them cannot corrupt the shared geometry.
        """
        topology = self.topology
        return {
            lane.id: {
                "next": list(topology[lane.index]["next"]),
                "left": topology[lane.index]["left"],
                "right": topology[lane.index]["right"],
                "centre_m": lane.centre_m.copy(),
                "left_m": lane.left_m.copy(),
                "right_m": lane.right_m.copy(),
                "heading_rad": lane.heading_rad.copy(),
                "s_m": lane.s_m.copy(),
                "width_m": lane.width_m,
                "speed_limit_mps": lane.speed_limit_mps,
                "line_left": lane.line_left,
                "line_right": lane.line_right,
                "forbidden": lane.forbidden,
            }
            for lane in self.lanes.values()
        }


def _bounding_circles(polylines: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    if not polylines:
        return np.zeros((0, 2)), np.zeros(0)
    centres = np.array([(p.min(axis=0) + p.max(axis=0)) / 2 for p in polylines])
    radii = np.array([np.max(np.linalg.norm(p - c, axis=1)) for p, c in zip(polylines, centres)])
    return centres, radii
