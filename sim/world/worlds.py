"""highway-env worlds behind the scenarios, each a thin subclass of a stock env.

:class:`DrivingEnv <sim.world.env.DrivingEnv>` owns observations, rewards and termination,
so every world here strips highway-env's own (:class:`WorldMixin`).  That also works
around a highway-env bug: the merge and roundabout envs compute their reward with
``action in [0, 2]``, which raises ``ValueError`` for a continuous (array) action.

Each world also says where its route goes (:meth:`WorldMixin.route_plan`), in lane
indices of its road network, from the ego's starting position.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from gymnasium import spaces
from highway_env.envs.common.observation import ObservationType
from highway_env.envs.highway_env import HighwayEnv
from highway_env.envs.merge_env import MergeEnv
from highway_env.envs.racetrack_env import RacetrackEnv
from highway_env.envs.roundabout_env import RoundaboutEnv
from highway_env.vehicle.behavior import IDMVehicle

LaneIndex = tuple[str, str, int]


@dataclass(frozen=True)
class RoutePlan:
    lanes: list[LaneIndex]
    start_s_m: float  # ego's longitudinal position on the first lane
    length_m: float
    command: str = "follow"


class _NoObservation(ObservationType):
    """highway-env computes an observation every step; DrivingEnv builds its own."""

    def space(self) -> spaces.Space:
        return spaces.Box(0.0, 0.0, shape=(0,), dtype=np.float32)

    def observe(self) -> np.ndarray:
        return np.zeros(0, dtype=np.float32)


class WorldMixin:
    """Strip highway-env's observation, reward and termination; DrivingEnv owns them."""

    def define_spaces(self) -> None:
        super().define_spaces()
        self.observation_type = _NoObservation(self)
        self.observation_space = self.observation_type.space()

    def _reward(self, action) -> float:
        return 0.0

    def _rewards(self, action) -> dict[str, float]:
        # Stock merge/roundabout rewards evaluate `action in [0, 2]`, which raises on arrays.
        return {}

    def _is_terminated(self) -> bool:
        return False

    def _is_truncated(self) -> bool:
        return False

    def route_plan(self) -> RoutePlan:
        raise NotImplementedError

    def map_key(self) -> object:
        """What, beyond the scenario's config, the road map of the current episode depends
        on (a generated road's map seed); ``None`` where the map is fixed by the config.
        :class:`~sim.world.env.DrivingEnv` caches road geometry under it."""
        return None


class LaneKeepWorld(WorldMixin, RacetrackEnv):
    """highway-env's racetrack with no other traffic; the route is one lap of the ego's lane.

    The ego's speed is held at ``ego_speed_mps`` (default 8 m/s, not the track's 10 m/s
    limit): the tightest curve has a 14.6 m radius, and at 10 m/s merely following it
    takes 6.8 m/s^2 of lateral acceleration, beyond nuPlan's 4.89 m/s^2 comfort bound,
    so no agent could be comfortable.  At 8 m/s it takes 4.4 m/s^2.
    """

    @classmethod
    def default_config(cls) -> dict:
        config = super().default_config()
        config["ego_speed_mps"] = 8.0
        return config

    def _make_vehicles(self) -> None:
        super()._make_vehicles()
        self.vehicle.speed = float(self.config["ego_speed_mps"])

    def route_plan(self) -> RoutePlan:
        ego = self.vehicle
        first = ego.lane_index
        lanes, idx = [first], first
        lap = self.road.network.get_lane(first).length
        while True:
            nxt = next(iter(self.road.network.graph[idx[1]]))
            idx = (idx[1], nxt, first[2])
            lanes.append(idx)
            if idx == first:
                break
            lap += self.road.network.get_lane(idx).length
        s0, _ = self.road.network.get_lane(first).local_coordinates(ego.position)
        return RoutePlan(lanes=lanes, start_s_m=float(s0), length_m=float(lap))


class HighwayWorld(WorldMixin, HighwayEnv):
    """highway-env's straight multi-lane highway with dense IDM/MOBIL traffic."""

    @classmethod
    def default_config(cls) -> dict:
        config = super().default_config()
        config["route_length_m"] = 750.0
        return config

    def route_plan(self) -> RoutePlan:
        ego = self.vehicle
        s0, _ = ego.lane.local_coordinates(ego.position)
        return RoutePlan(
            lanes=[ego.lane_index],
            start_s_m=float(s0),
            length_m=float(self.config["route_length_m"]),
        )


class MergeWorld(WorldMixin, MergeEnv):
    """highway-env's merge road, but the ego is the one merging: it starts on the on-ramp.

    Stock ``merge-v0`` puts the ego on the highway and one IDM car on the ramp; here the
    ego must find a gap in the right lane before the ramp ends at an obstacle.  Highway
    traffic is drawn from the episode's seed.
    """

    EGO_START_S_M = 60.0  # [m] along the ramp's straight section ("j", "k")
    ROUTE_END_X_M = 400.0  # [m] highway-env x where the route ends, well past the merge

    @classmethod
    def default_config(cls) -> dict:
        config = super().default_config()
        config["vehicles_count"] = 10
        return config

    def _make_vehicles(self) -> None:
        road, rng = self.road, self.np_random
        ramp = road.network.get_lane(("j", "k", 0))
        ego = self.action_type.vehicle_class(
            road,
            ramp.position(self.EGO_START_S_M, 0.0),
            heading=ramp.heading_at(self.EGO_START_S_M),
            speed=float(rng.uniform(18.0, 22.0)),
        )
        road.vehicles.append(ego)
        self.vehicle = ego
        taken: dict[int, list[float]] = {0: [], 1: []}
        min_gap_m = 20.0
        for _ in range(int(self.config["vehicles_count"])):
            for _try in range(20):
                lane_k = int(rng.integers(2))
                x = float(rng.uniform(0.0, 420.0))
                if all(abs(x - p) > min_gap_m for p in taken[lane_k]):
                    lane = road.network.get_lane(("a", "b", lane_k))
                    v = IDMVehicle(
                        road, lane.position(x, 0.0), speed=float(rng.uniform(19.0, 24.0))
                    )
                    v.randomize_behavior()
                    road.vehicles.append(v)
                    taken[lane_k].append(x)
                    break

    def route_plan(self) -> RoutePlan:
        net = self.road.network
        lanes = [("j", "k", 0), ("k", "b", 0), ("b", "c", 1), ("c", "d", 1)]
        start = net.get_lane(lanes[0]).local_coordinates(self.vehicle.position)[0]
        to_end = sum(net.get_lane(i).length for i in lanes[:3]) - start
        end_on_last = self.ROUTE_END_X_M - net.get_lane(lanes[3]).start[0]
        return RoutePlan(lanes=lanes, start_s_m=float(start), length_m=float(to_end + end_on_last))


class RoundaboutWorld(WorldMixin, RoundaboutEnv):
    """highway-env's two-lane roundabout; the exit to take is the episode's command.

    The ego enters from the south.  The first exit (east) is a right turn, the second
    (north) straight on, the third (west) a left turn.  The command is drawn from the
    seed *after* the stock traffic, so traffic is identical to ``roundabout-v0``.
    """

    EXITS: ClassVar[dict[str, tuple[str, str, str]]] = {
        "right": ("ex", "exs", "exr"),
        "straight": ("nx", "nxs", "nxr"),
        "left": ("wx", "wxs", "wxr"),
    }
    RING: ClassVar[list[str]] = ["se", "ex", "ee", "nx", "ne", "wx", "we", "sx"]
    RUN_OUT_M = 50.0  # [m] driven on the exit road to finish the route
    RING_LANE = 1  # the outer ring lane: entering traffic joins it

    command: str = "straight"

    def _make_vehicles(self) -> None:
        super()._make_vehicles()
        names = list(self.EXITS)
        self.command = names[int(self.np_random.integers(len(names)))]

    def route_plan(self) -> RoutePlan:
        net = self.road.network
        exit_node, exit_sine_end, exit_road_end = self.EXITS[self.command]
        lanes: list[LaneIndex] = [("ser", "ses", 0), ("ses", "se", 0)]
        node = "se"
        while node != exit_node:
            nxt = self.RING[(self.RING.index(node) + 1) % len(self.RING)]
            lanes.append((node, nxt, self.RING_LANE))
            node = nxt
        lanes += [(exit_node, exit_sine_end, 0), (exit_sine_end, exit_road_end, 0)]
        start = net.get_lane(lanes[0]).local_coordinates(self.vehicle.position)[0]
        length = sum(net.get_lane(i).length for i in lanes[:-1]) - start + self.RUN_OUT_M
        return RoutePlan(
            lanes=lanes, start_s_m=float(start), length_m=float(length), command=self.command
        )
