"""Worlds on procedurally generated roads (:mod:`sim.world.roadgen`), one map per map seed.

Each episode drives the road of one *map seed*, a function of the episode seed and the
config's ``map_split`` (:func:`map_seed_for`):

* ``"train"``: one of ``train_maps`` training maps, ``seed % train_maps``; the maps that
  demos are recorded on and policies are trained on;
* ``"unseen"``: ``UNSEEN_MAP_SEED_BASE + seed``, a pool disjoint from every training pool
  (``train_maps`` may not reach the base), so ``track:unseen`` measures generalisation
  to roads no policy has seen.

:class:`DrivingEnv <sim.world.env.DrivingEnv>` caches a map's sampled geometry under
:meth:`GeneratedRoadWorld.map_key`, ``(split, map_seed)``.

The road is rebuilt as a fresh highway-env ``RoadNetwork`` at every reset (fast physics
converts its lanes in place, so networks are never shared); the pure-numpy layout is
cached per process.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from highway_env.envs.common.abstract import AbstractEnv
from highway_env.road.road import Road
from highway_env.vehicle.behavior import IDMVehicle
from highway_env.vehicle.kinematics import Vehicle

from sim.world.roadgen import Layout, RoadSpec, build_network, generate_layout, node_name
from sim.world.scenarios import MAP_SPLITS
from sim.world.worlds import LaneIndex, RoutePlan, WorldMixin

UNSEEN_MAP_SEED_BASE = 1_000_000
"""Map seeds of the ``unseen`` split start here; training pools stay below it."""
LEAD_IN_BEYOND_EGO_M = 20.0  # [m] straight road ahead of the ego's start before the first piece
RUN_OUT_M = 60.0  # [m] straight road past the route's end (traffic ahead drives on there)


def map_seed_for(split: str, episode_seed: int, train_maps: int) -> int:
    """The map seed an episode with ``episode_seed`` drives in ``split``.

    ``train``: ``episode_seed % train_maps`` (in ``[0, train_maps)``); ``unseen``:
    ``UNSEEN_MAP_SEED_BASE + episode_seed``.  The two pools never meet because
    ``train_maps <= UNSEEN_MAP_SEED_BASE`` and episode seeds are non-negative.
    """
    if int(episode_seed) != episode_seed or episode_seed < 0:
        raise ValueError(f"episode seed must be a non-negative integer, got {episode_seed!r}")
    if int(train_maps) != train_maps or not 1 <= train_maps <= UNSEEN_MAP_SEED_BASE:
        raise ValueError(
            f"train_maps must be an integer in [1, {UNSEEN_MAP_SEED_BASE}], got {train_maps!r}"
        )
    if split == "train":
        return int(episode_seed) % int(train_maps)
    if split == "unseen":
        return UNSEEN_MAP_SEED_BASE + int(episode_seed)
    raise ValueError(f"unknown map_split {split!r}; known: {', '.join(MAP_SPLITS)}")


@lru_cache(maxsize=64)
def cached_layout(spec: RoadSpec, map_seed: int, length_m: float) -> Layout:
    """:func:`~sim.world.roadgen.generate_layout`, remembered (layouts are immutable)."""
    return generate_layout(spec, map_seed, length_m)


class GeneratedRoadWorld(WorldMixin, AbstractEnv):
    """A generated road; the ego starts ``ego_start_m`` along it, its route follows its lane.

    Config keys (besides highway-env's): ``map_split``, ``train_maps`` (see
    :func:`map_seed_for`), ``lanes_count``, ``radius_range_m`` (every lane's arc radius
    bounds [m]), ``speed_limit_mps``, ``route_length_m``, ``ego_start_m`` (along the road
    [m]), ``ego_speed_mps`` (initial, or held where the action is steering only).
    Subclasses give the rest of the :class:`RoadSpec` (:meth:`road_spec`) and the traffic.
    """

    layout: Layout | None = None
    _episode_seed: int = 0

    @classmethod
    def default_config(cls) -> dict:
        config = super().default_config()
        config.update(
            {
                "map_split": "train",
                "train_maps": 20,
                "lanes_count": 2,
                "radius_range_m": (15.0, 300.0),
                "speed_limit_mps": 10.0,
                "route_length_m": 350.0,
                "ego_start_m": 10.0,
                "ego_speed_mps": 8.0,
            }
        )
        return config

    STRAIGHT_RANGE_M: tuple[float, float] = (20.0, 100.0)
    """[m] lengths of the straight pieces (subclasses: their kind of road)."""
    TURN_RANGE_RAD: tuple[float, float] = (np.pi / 12, np.pi / 2)
    """[rad] how far one arc turns."""
    MAX_ARC_M: float = 120.0
    """[m] the longest arc."""

    def road_spec(self) -> RoadSpec:
        """The kind of road this world draws: its config and the class's piece ranges."""
        c = self.config
        return RoadSpec(
            lanes_count=int(c["lanes_count"]),
            radius_range_m=tuple(float(r) for r in c["radius_range_m"]),
            straight_range_m=self.STRAIGHT_RANGE_M,
            turn_range_rad=self.TURN_RANGE_RAD,
            max_arc_m=self.MAX_ARC_M,
            lead_in_m=float(c["ego_start_m"]) + LEAD_IN_BEYOND_EGO_M,
            run_out_m=RUN_OUT_M,
            speed_limit_mps=float(c["speed_limit_mps"]),
        )

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is None:  # highway-env would reseed from entropy: keep the map a function of a seed
            seed = int(self.np_random.integers(2**31 - 1))
        self._episode_seed = int(seed)
        return super().reset(seed=seed, options=options)

    def map_key(self) -> tuple[str, int]:
        split = self.config["map_split"]
        return split, map_seed_for(split, self._episode_seed, self.config["train_maps"])

    def _check_config(self) -> None:
        c = self.config
        if c["map_split"] not in MAP_SPLITS:
            raise ValueError(
                f"unknown map_split {c['map_split']!r}; known: {', '.join(MAP_SPLITS)}"
            )
        for key in ("route_length_m", "ego_speed_mps"):
            if not float(c[key]) > 0:
                raise ValueError(f"{key} must be > 0, got {c[key]!r}")
        if not float(c["ego_start_m"]) >= 0:
            raise ValueError(f"ego_start_m must be >= 0, got {c['ego_start_m']!r}")

    def _reset(self) -> None:
        self._check_config()
        spec = self.road_spec()
        road_m = float(self.config["ego_start_m"]) + float(self.config["route_length_m"])
        self.layout = cached_layout(spec, self.map_key()[1], road_m)
        self.road = Road(
            network=build_network(self.layout),
            np_random=self.np_random,
            record_history=self.config["show_trajectories"],
            neighbour_vehicles_connected_lanes=self.config["neighbour_vehicles_connected_lanes"],
        )
        self._make_vehicles()

    def _make_vehicles(self) -> None:
        lane_k = int(self.np_random.integers(self.config["lanes_count"]))
        ego = self._vehicle_at(
            self.action_type.vehicle_class,
            lane_k,
            float(self.config["ego_start_m"]),
            float(self.config["ego_speed_mps"]),
        )
        self.controlled_vehicles = [ego]
        self.road.vehicles.append(ego)

    def _vehicle_at(self, cls: type, lane_k: int, s_m: float, speed_mps: float, **kw) -> Vehicle:
        """A ``cls`` vehicle on lane ``lane_k`` at arc length ``s_m`` of the road's centre line,
        aligned with its lane."""
        i, s_seg = self.layout.locate(s_m)
        lane = self.road.network.get_lane((node_name(i), node_name(i + 1), lane_k))
        s_lane = (
            s_seg * lane.length / self.layout.segments[i].length_m
        )  # arcs: lanes differ in length
        return cls(self.road, lane.position(s_lane, 0.0), lane.heading_at(s_lane), speed_mps, **kw)

    def route_plan(self) -> RoutePlan:
        ego = self.vehicle
        k = ego.lane_index[2]
        lanes: list[LaneIndex] = [
            (node_name(i), node_name(i + 1), k) for i in range(len(self.layout.segments))
        ]
        s0, _ = self.road.network.get_lane(lanes[0]).local_coordinates(ego.position)
        return RoutePlan(
            lanes=lanes, start_s_m=float(s0), length_m=float(self.config["route_length_m"])
        )


class TrackWorld(GeneratedRoadWorld):
    """Lane keeping on generated two-lane roads, no traffic, speed held.

    Arcs of radius 15-300 m (every lane), straights and S-bends.  The action is steering
    only (``longitudinal=False``): highway-env then applies no acceleration, so the ego
    keeps ``ego_speed_mps`` (8 m/s: the tightest 15 m arc takes 4.3 m/s^2 of lateral
    acceleration, inside nuPlan's 4.89 m/s^2 comfort bound; see ``LaneKeepWorld``).
    """


class CurvyHighwayWorld(GeneratedRoadWorld):
    """A generated three-lane highway with gentle curves and IDM/MOBIL traffic.

    Arcs of radius 150-300 m on every lane: at the 20 m/s speed limit the tightest takes
    20^2 / 150 = 2.7 m/s^2 of lateral acceleration.  Traffic is highway-env's
    ``IDMVehicle`` with randomised behaviour, spaced along the road as ``HighwayEnv`` spaces
    it (``(12 + speed) / vehicles_density * exp(-5/40 * lanes)`` metres apart, +-10 %,
    whatever the lane): first backwards from the ego while the road has room behind it
    (the ego starts 50 m in, so a few cars follow it), then ahead of it.  Cars start at
    ``traffic_speed_mps`` (a range) and keep it as their IDM target speed.

    Neighbour search looks across section joins (highway-env's
    ``neighbour_vehicles_connected_lanes``).  Without it a car about to cross a join is
    invisible on the next section's lanes (it is more than a car length before their
    start), so MOBIL lets a car on the next section change lanes right into it: traffic
    crashed at joins and the wrecks blocked the road.  The stock search this takes costs
    about 4x the fast path per step (:mod:`sim.world.fastroad` does not batch it yet).
    """

    @classmethod
    def default_config(cls) -> dict:
        config = super().default_config()
        config.update(
            {
                "lanes_count": 3,
                "radius_range_m": (150.0, 300.0),
                "speed_limit_mps": 20.0,
                "route_length_m": 600.0,
                "ego_start_m": 50.0,  # room for a few cars behind the ego
                "ego_speed_mps": 20.0,
                "vehicles_count": 30,
                "vehicles_density": 1.0,
                "traffic_speed_mps": (16.0, 19.0),
                "neighbour_vehicles_connected_lanes": True,
            }
        )
        return config

    STRAIGHT_RANGE_M = (50.0, 200.0)  # [m] a highway's straights are longer,
    TURN_RANGE_RAD = (np.pi / 12, np.pi / 3)  # [rad] its turns gentler,
    MAX_ARC_M = 250.0  # [m] and its arcs longer

    def _check_config(self) -> None:
        super()._check_config()
        c = self.config
        if int(c["vehicles_count"]) != c["vehicles_count"] or c["vehicles_count"] < 0:
            raise ValueError(f"vehicles_count must be an integer >= 0, got {c['vehicles_count']!r}")
        if not float(c["vehicles_density"]) > 0:
            raise ValueError(f"vehicles_density must be > 0, got {c['vehicles_density']!r}")
        lo, hi = c["traffic_speed_mps"]
        if not 0 < lo <= hi:
            raise ValueError(
                f"traffic_speed_mps must be (low, high) with 0 < low <= high, "
                f"got {c['traffic_speed_mps']!r}"
            )

    def _make_vehicles(self) -> None:
        super()._make_vehicles()
        rng, c = self.np_random, self.config
        lanes = int(c["lanes_count"])
        lo, hi = (float(v) for v in c["traffic_speed_mps"])
        spread = np.exp(-5.0 / 40.0 * lanes) / float(c["vehicles_density"])  # HighwayEnv's spacing
        end_m = self.layout.length_m - Vehicle.LENGTH
        ego_s = float(c["ego_start_m"])
        behind, ahead = ego_s, ego_s  # cursors: the last car placed on either side
        for _ in range(int(c["vehicles_count"])):
            lane_k = int(rng.integers(lanes))
            speed = float(rng.uniform(lo, hi))
            gap = (12.0 + speed) * spread * float(rng.uniform(0.9, 1.1))
            if behind - gap >= Vehicle.LENGTH / 2:
                behind = s = behind - gap
            elif ahead + gap <= end_m:
                ahead = s = ahead + gap
            else:
                break  # the road is full
            car = self._vehicle_at(IDMVehicle, lane_k, s, speed, target_speed=speed)
            car.randomize_behavior()
            self.road.vehicles.append(car)
