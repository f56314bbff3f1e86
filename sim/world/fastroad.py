"""Fast physics: highway-env's ``Road`` with the same results at a fraction of the cost.

highway-env spends most of a step in two O(N^2) loops: every vehicle's neighbour
search scans every other object through ``lane.local_coordinates``, and collision
handling tests every pair.  :class:`FastRoad` keeps the semantics and replaces the
scans:

* **Neighbour search.**  For each lane asked about, the lane coordinates of every
  object are computed once per simulation step (positions only change in
  ``Road.step``) and reused by every query of that step.  Coordinates decide *which*
  objects are neighbours, so they must equal highway-env's own bit for bit:

  - on an axis-aligned straight lane (every highway lane) the vectorised formula is
    exact, because each product is by 0 or +-1, which no rounding, summation order
    or fused multiply-add can change;
  - on any other lane a vectorised estimate (error ~1e-12 m) only *prefilters*: every
    object within ``PREFILTER_BAND_M`` of the on-lane test gets its coordinates from
    the lane's own ``local_coordinates``, so the values compared are highway-env's.

  The winner is then picked with highway-env's exact tie rules (front: smallest
  s >= s_ego, the last of equals; rear: largest s < s_ego, the first of equals).
* **Collisions.**  A vectorised distance broad phase with a generous margin selects
  the pairs that highway-env's own spherical pre-check could let through; only those
  go to the stock ``handle_collisions``, in the stock order (by vehicle index, then
  other vehicles, then static objects), so impacts and crash flags are identical.

* **Per-car work.**  The closest-lane search every car runs after moving scores the
  axis-aligned lanes for all cars in one array pass (:class:`FastRoadNetwork`); the IDM
  traffic's kinematics run as one array pass (:func:`_kinematics`); IDM's scalar
  ``np.clip`` calls become ``min``/``max`` and ``direction``/``velocity`` are built once
  per value (:class:`FastIDMVehicle`); straight lanes remember coordinates per position
  for one step (:class:`_MemoStraightLane`).

IDM and MOBIL decisions are highway-env's code.  The equivalence suite
(``tests/test_fast_physics.py``) runs stock and fast worlds side by side for full
episodes and requires identical positions, headings, speeds, lanes and events at every
step; it also pins the numpy facts the array passes rely on.
"""

from __future__ import annotations

from bisect import bisect_left
from contextlib import contextmanager

import numpy as np
from highway_env import utils
from highway_env.road.lane import AbstractLane, CircularLane, SineLane, StraightLane
from highway_env.road.road import LaneIndex, Road, RoadNetwork
from highway_env.vehicle.behavior import IDMVehicle
from highway_env.vehicle.kinematics import Vehicle
from highway_env.vehicle.objects import Landmark

PREFILTER_BAND_M = 1e-6  # [m] estimates within this of a decision boundary are recomputed exactly
BROAD_PHASE_MARGIN_M = 1.0  # [m] extra reach of the collision broad phase over the stock pre-check


def _axis_aligned(lane: AbstractLane) -> bool:
    if type(lane) not in (StraightLane, _MemoStraightLane):
        return False
    d = lane.direction
    return bool((d[0] == 0.0 and abs(d[1]) == 1.0) or (d[1] == 0.0 and abs(d[0]) == 1.0))


def _estimate_coordinates(
    lane: AbstractLane, pos: np.ndarray
) -> tuple[np.ndarray, np.ndarray] | None:
    """Vectorised (s, lateral) of points ``[N, 2]`` on a lane, or None for unknown lane types."""
    if isinstance(lane, StraightLane):  # includes SineLane
        delta = pos - lane.start
        s = delta[:, 0] * lane.direction[0] + delta[:, 1] * lane.direction[1]
        lat = delta[:, 0] * lane.direction_lateral[0] + delta[:, 1] * lane.direction_lateral[1]
        if isinstance(lane, SineLane):
            lat = lat - lane.amplitude * np.sin(lane.pulsation * s + lane.phase)
        return s, lat
    if isinstance(lane, CircularLane):
        delta = pos - lane.center
        phi = np.arctan2(delta[:, 1], delta[:, 0])
        phi = lane.start_phase + (phi - lane.start_phase + np.pi) % (2 * np.pi) - np.pi
        r = np.hypot(delta[:, 0], delta[:, 1])
        s = lane.direction * (phi - lane.start_phase) * lane.radius
        lat = lane.direction * (lane.radius - r)
        return s, lat
    return None


class _LaneView:
    """The objects on one lane during one step, sorted by their exact lane coordinate.

    ``s_sorted[k]`` is the coordinate of object ``idx_sorted[k]``; equal coordinates keep
    the road's iteration order, which highway-env's tie rules refer to.
    """

    __slots__ = ("idx_sorted", "s_sorted")

    def __init__(self, lane: AbstractLane, objs: list, pos: np.ndarray, margin: float) -> None:
        n = len(objs)
        s = np.empty(n)
        on = np.zeros(n, dtype=bool)
        lo, hi = -lane.VEHICLE_LENGTH, lane.length + lane.VEHICLE_LENGTH
        if _axis_aligned(lane):
            delta = pos - lane.start
            s[:] = delta[:, 0] * lane.direction[0] + delta[:, 1] * lane.direction[1]
            lat = delta[:, 0] * lane.direction_lateral[0] + delta[:, 1] * lane.direction_lateral[1]
            on[:] = (np.abs(lat) <= lane.width / 2 + margin) & (lo <= s) & (s < hi)
        else:
            estimate = _estimate_coordinates(lane, pos)
            if estimate is None:  # a lane type we cannot estimate (e.g. PolyLane): ask it all
                near = np.arange(n)
            else:
                s_est, lat_est = estimate
                band = PREFILTER_BAND_M
                w = lane.width_at(0.0)  # straight, sine and circular lanes: constant width
                near = np.flatnonzero(
                    (np.abs(lat_est) <= w / 2 + margin + band)
                    & (lo - band <= s_est)
                    & (s_est < hi + band)
                )
            for i in near:
                si, lati = lane.local_coordinates(objs[i].position)
                s[i] = si
                on[i] = lane.on_lane(objs[i].position, si, lati, margin=margin)
        idx = np.flatnonzero(on)
        order = np.argsort(s[idx], kind="stable")
        self.s_sorted: list[float] = s[idx][order].tolist()
        self.idx_sorted: list[int] = idx[order].tolist()


class _MemoStraightLane(StraightLane):
    """A straight lane that remembers ``local_coordinates`` by position *value* for one step.

    A vehicle's coordinates on its lane are asked for five or six times per step (road
    following, steering, neighbour search, IDM gaps); a value-keyed memo can never go
    stale, and :class:`FastRoad` empties it every step to bound its size.
    """

    def local_coordinates(self, position: np.ndarray) -> tuple[float, float]:
        key = (position[0], position[1])
        hit = self._memo.get(key)
        if hit is None:
            hit = self._memo[key] = StraightLane.local_coordinates(self, position)
        return hit


class FastRoad(Road):
    """A drop-in ``Road``: cached neighbour search and a collision broad phase."""

    def _fast_init(self) -> None:
        self._views: dict[LaneIndex, _LaneView] = {}
        self._objs: list | None = None
        self._pos: np.ndarray | None = None
        self._batching = False

    def invalidate_caches(self) -> None:
        """Forget per-step coordinates: positions (or the vehicle list) may have changed."""
        self._views.clear()
        self._objs = None

    @contextmanager
    def batched_queries(self):
        """Within this block nobody moves a vehicle or edits the lists, so neighbour queries
        may share one snapshot.  ``act()`` runs inside one; outside any, every query
        takes highway-env's own path, so user code that moves cars between steps still
        gets stock answers."""
        self.invalidate_caches()
        self._batching = True
        try:
            yield self
        finally:
            self._batching = False
            self.invalidate_caches()

    # -- neighbour search -------------------------------------------------------------------
    def _snapshot(self) -> None:
        self._objs = [o for o in self.vehicles + self.objects if not isinstance(o, Landmark)]
        self._pos = (
            np.array([o.position for o in self._objs], dtype=np.float64)
            if self._objs
            else np.zeros((0, 2))
        )

    def _view(self, lane_index: LaneIndex, lane: AbstractLane) -> _LaneView:
        view = self._views.get(lane_index)
        if view is None:
            view = _LaneView(lane, self._objs, self._pos, margin=1.0)
            self._views[lane_index] = view
        return view

    def neighbour_vehicles(self, vehicle, lane_index: LaneIndex = None):
        if not self._batching or self.neighbour_vehicles_connected_lanes:
            return super().neighbour_vehicles(vehicle, lane_index)
        lane_index = lane_index or vehicle.lane_index
        if not lane_index:
            return None, None
        if self._objs is None:
            self._snapshot()
        lane = self.network.get_lane(lane_index)
        s = lane.local_coordinates(vehicle.position)[0]
        view = self._view(lane_index, lane)
        sv, ids, objs = view.s_sorted, view.idx_sorted, self._objs
        n = len(sv)
        split = bisect_left(sv, s)  # sv[:split] < s <= sv[split:]
        # front: the smallest s_v >= s; among equals the last in road order (stock: `<=`)
        v_front = None
        k = split
        while k < n and objs[ids[k]] is vehicle:
            k += 1
        if k < n:
            best, j = sv[k], k
            while k < n and sv[k] == best:
                if objs[ids[k]] is not vehicle:
                    j = k
                k += 1
            v_front = objs[ids[j]]
        # rear: the largest s_v < s; among equals the first in road order (stock: `>`)
        v_rear = None
        k = split - 1
        while k >= 0 and objs[ids[k]] is vehicle:
            k -= 1
        if k >= 0:
            best, j = sv[k], k
            while k >= 0 and sv[k] == best:
                if objs[ids[k]] is not vehicle:
                    j = k
                k -= 1
            v_rear = objs[ids[j]]
        return v_front, v_rear

    # -- dynamics -----------------------------------------------------------------------------
    def act(self) -> None:
        with self.batched_queries():  # vehicles only decide here; positions stay put
            super().act()

    def step(self, dt: float) -> None:
        if self.record_history:  # history snapshots need each car's lane at once: stock path
            for vehicle in self.vehicles:
                vehicle.step(dt)
        else:
            # a car's step reads only its own state, so the order of the cars is free:
            # the IDM traffic moves in one vectorised pass, any other car as highway-env has it
            batch = []
            for vehicle in self.vehicles:
                if type(vehicle) is FastIDMVehicle:
                    batch.append(vehicle)
                else:
                    vehicle.step(dt)
            _kinematics(batch, dt)
            self.network.assign_closest_lanes(batch)
        self._handle_collisions(dt)
        self.invalidate_caches()
        for lane in self.network._memo_lanes:
            lane._memo.clear()

    def _handle_collisions(self, dt: float) -> None:
        vehicles, objects = self.vehicles, self.objects
        n = len(vehicles)
        if n == 0:
            return
        everything = vehicles + objects
        pos = np.array([o.position for o in everything], dtype=np.float64)
        half_diag = np.array([o.diagonal for o in everything]) / 2
        reach_v = np.array([abs(v.speed) for v in vehicles]) * dt + BROAD_PHASE_MARGIN_M
        d = pos[:n, None, :] - pos[None, :, :]
        reach = half_diag[:n, None] + half_diag[None, :] + reach_v[:, None]  # > 0
        near = d[..., 0] ** 2 + d[..., 1] ** 2 <= reach * reach  # [n, n + m]
        near[:, :n] &= np.triu(np.ones((n, n), dtype=bool), k=1)  # stock pairs: j > i only
        rows, cols = np.nonzero(near)  # row-major: by vehicle, then vehicles before objects
        for i, j in zip(rows.tolist(), cols.tolist()):
            vehicles[i].handle_collisions(everything[j], dt)


class FastRoadNetwork(RoadNetwork):
    """The closest-lane search (run by every vehicle after every physics step) with the
    axis-aligned straight lanes scored in one vectorised pass, for one car or many.

    On those lanes each term of highway-env's ``distance_with_heading`` is computed with
    the same float operations in the same order (products by 0 or +-1 are exact), so the
    distances, and hence the argmin, equal the stock ones; other lanes use their own
    method.
    """

    def _fast_init(self) -> None:
        self._indexes: list[LaneIndex] = []
        lanes: list[AbstractLane] = []
        for _from, to_dict in self.graph.items():
            for _to, lane_list in to_dict.items():
                for _id, lane in enumerate(lane_list):
                    self._indexes.append((_from, _to, _id))
                    lanes.append(lane)
        self._lanes = lanes
        aligned = [k for k, lane in enumerate(lanes) if _axis_aligned(lane)]
        self._aligned = np.array(aligned, dtype=np.int64)
        aligned_set = set(aligned)
        self._others = [k for k in range(len(lanes)) if k not in aligned_set]
        al = [lanes[k] for k in aligned]
        self._start = np.array([lane.start for lane in al]).reshape(-1, 2)
        self._dir = np.array([lane.direction for lane in al]).reshape(-1, 2)
        self._lat = np.array([lane.direction_lateral for lane in al]).reshape(-1, 2)
        self._length = np.array([lane.length for lane in al])
        self._heading = np.array([lane.heading for lane in al])
        self._memo_lanes = [lane for lane in lanes if type(lane) is _MemoStraightLane]

    def add_lane(self, _from: str, _to: str, lane: AbstractLane) -> None:
        super().add_lane(_from, _to, lane)
        self._fast_init()  # the lane table must list every lane

    def _distances(self, pos: np.ndarray, heading: np.ndarray) -> np.ndarray:
        """highway-env's ``distance_with_heading`` of N poses to every lane, ``[N, lanes]``:
        the aligned lanes in one array pass (same operations, same order), the others by
        their own method."""
        dist = np.empty((len(pos), len(self._lanes)))
        if len(self._aligned):
            dx = pos[:, 0:1] - self._start[None, :, 0]
            dy = pos[:, 1:2] - self._start[None, :, 1]
            s = dx * self._dir[None, :, 0] + dy * self._dir[None, :, 1]
            r = dx * self._lat[None, :, 0] + dy * self._lat[None, :, 1]
            angle = np.abs(
                ((heading[:, None] - self._heading[None, :]) + np.pi) % (2 * np.pi) - np.pi
            )
            dist[:, self._aligned] = (
                np.abs(r) + np.maximum(s - self._length, 0) + np.maximum(0 - s, 0) + 1.0 * angle
            )
        for k in self._others:
            lane = self._lanes[k]
            for i in range(len(pos)):
                dist[i, k] = lane.distance_with_heading(pos[i], heading[i])
        return dist

    def assign_closest_lanes(self, vehicles: list) -> None:
        """``on_state_update`` for many cars at once (the closest-lane rule, no history)."""
        if not vehicles:
            return
        pos = np.array([v.position for v in vehicles], dtype=np.float64)
        heading = np.array([v.heading for v in vehicles], dtype=np.float64)
        best = np.argmin(self._distances(pos, heading), axis=1)  # first minimum, as stock
        for v, j in zip(vehicles, best.tolist()):
            v.lane_index = self._indexes[j]
            v.lane = self.get_lane(v.lane_index)

    def get_closest_lane_index(self, position: np.ndarray, heading: float | None = None):
        if heading is None:
            return super().get_closest_lane_index(position, heading)
        dist = self._distances(
            np.asarray(position, dtype=np.float64).reshape(1, 2),
            np.array([heading], dtype=np.float64),
        )
        return self._indexes[int(np.argmin(dist[0]))]


def _kinematics(cars: list, dt: float) -> None:
    """``IDMVehicle.step`` for many cars at once, up to ``on_state_update`` (done by
    ``FastRoadNetwork.assign_closest_lanes``).

    Element by element these are highway-env's operations in highway-env's order
    (``Vehicle.step``, 1.12.1).  numpy evaluates ``tan``/``arctan``/``sin``/``cos`` with the
    same kernel for an array as for a scalar, so each car gets the same bits as when it
    steps alone; ``tests/test_fast_physics.py`` checks both that and the trajectories.
    """
    if not cars:
        return
    for car in cars:
        car.timer += dt
        car.clip_actions()  # may rewrite the action (crashed, speed limits), as stock
    steering = np.array([car.action["steering"] for car in cars], dtype=np.float64)
    acceleration = np.array([car.action["acceleration"] for car in cars], dtype=np.float64)
    heading = np.array([car.heading for car in cars], dtype=np.float64)
    speed = np.array([car.speed for car in cars], dtype=np.float64)
    beta = np.arctan(1 / 2 * np.tan(steering))
    course = heading + beta
    dx = speed * np.cos(course) * dt  # stock: (speed * [cos, sin]) * dt, added to position
    dy = speed * np.sin(course) * dt
    new_heading = heading + speed * np.sin(beta) / (cars[0].LENGTH / 2) * dt
    new_speed = speed + acceleration * dt
    for k, car in enumerate(cars):
        if car.LENGTH != cars[0].LENGTH:  # a car of another size: its own stock arithmetic
            new_heading[k] = heading[k] + speed[k] * np.sin(beta[k]) / (car.LENGTH / 2) * dt
        car.position += (dx[k], dy[k])
        if car.impact is not None:
            car.position += car.impact
            car.crashed = True
            car.impact = None
        car.heading = new_heading[k]
        car.speed = new_speed[k]


def make_fast(road: Road) -> FastRoad:
    """Turn a freshly built highway-env ``Road`` into a :class:`FastRoad`, in place.

    Vehicles hold a reference to their road, so the object keeps its identity; only its
    class changes (so do its network's and its stock IDM vehicles').  Worlds built with
    other ``Road`` or ``RoadNetwork`` subclasses are refused.
    """
    if type(road) is FastRoad:
        return road
    if type(road) is not Road:
        raise TypeError(f"fast physics supports highway-env's Road, not {type(road).__name__}")
    if type(road.network) is not RoadNetwork:
        raise TypeError(
            f"fast physics supports highway-env's RoadNetwork, not {type(road.network).__name__}"
        )
    road.__class__ = FastRoad
    road._fast_init()
    for lane in road.network.lanes_list():
        if type(lane) is StraightLane:
            lane.__class__ = _MemoStraightLane
            lane._memo = {}
    road.network.__class__ = FastRoadNetwork
    road.network._fast_init()
    for v in road.vehicles:
        if type(v) is IDMVehicle:
            v.__class__ = FastIDMVehicle
    return road


def _clip(x: float, lo: float, hi: float) -> float:
    """``np.clip`` for one float: the same value (min of max), without the ufunc overhead."""
    return min(max(x, lo), hi)


class FastIDMVehicle(IDMVehicle):
    """highway-env's ``IDMVehicle`` doing the same arithmetic with less interpreter work.

    * scalar ``np.clip`` (~5 us of dispatch, six calls per car per step) becomes
      ``min(max(x, lo), hi)``, the same value for non-NaN input;
    * ``np.power(q, 2)`` becomes ``q * q`` (numpy's own kernel does exactly that);
    * ``direction`` and ``velocity`` are built once per heading/speed value;
    * ``FastRoad.step`` moves all of them in one vectorised pass (:func:`_kinematics`)
      and assigns their closest lanes in another.

    Everything else, transcendental functions included, is the stock arithmetic in the
    stock order (numpy's ``arcsin``/``arctan``/``power`` are kept: libm's ``math``
    functions differ from numpy's kernels in the last bit).  Mirrors highway-env 1.12.1.
    """

    # direction and velocity are read ~7 times per car per step (IDM gaps, MOBIL); build
    # them once per (heading, speed) value.  Read-only, so a caller cannot corrupt them.
    @property
    def direction(self) -> np.ndarray:
        h = self.heading
        cache = self.__dict__.get("_direction_cache")
        if cache is None or cache[0] != h:
            d = np.array([np.cos(h), np.sin(h)])
            d.setflags(write=False)
            cache = self._direction_cache = (h, d)
        return cache[1]

    @property
    def velocity(self) -> np.ndarray:
        h, v = self.heading, self.speed
        cache = self.__dict__.get("_velocity_cache")
        if cache is None or cache[0] != h or cache[1] != v:
            vel = v * self.direction
            vel.setflags(write=False)
            cache = self._velocity_cache = (h, v, vel)
        return cache[2]

    def act(self, action: dict | str | None = None):
        if self.crashed:
            return
        action = {}
        self.follow_road()
        if self.enable_lane_change:
            self.change_lane_policy()
        action["steering"] = _clip(
            self.steering_control(self.target_lane_index),
            -self.MAX_STEERING_ANGLE,
            self.MAX_STEERING_ANGLE,
        )
        front_vehicle, rear_vehicle = self.road.neighbour_vehicles(self, self.lane_index)
        action["acceleration"] = self.acceleration(
            ego_vehicle=self, front_vehicle=front_vehicle, rear_vehicle=rear_vehicle
        )
        if self.lane_index != self.target_lane_index:
            front_vehicle, rear_vehicle = self.road.neighbour_vehicles(self, self.target_lane_index)
            target_idm_acceleration = self.acceleration(
                ego_vehicle=self, front_vehicle=front_vehicle, rear_vehicle=rear_vehicle
            )
            action["acceleration"] = min(action["acceleration"], target_idm_acceleration)
        action["acceleration"] = _clip(action["acceleration"], -self.ACC_MAX, self.ACC_MAX)
        Vehicle.act(self, action)

    def acceleration(self, ego_vehicle, front_vehicle=None, rear_vehicle=None) -> float:
        if not ego_vehicle or not isinstance(ego_vehicle, Vehicle):
            return 0
        ego_target_speed = getattr(ego_vehicle, "target_speed", 0)
        if ego_vehicle.lane and ego_vehicle.lane.speed_limit is not None:
            ego_target_speed = _clip(ego_target_speed, 0, ego_vehicle.lane.speed_limit)
        acceleration = self.COMFORT_ACC_MAX * (
            1
            - np.power(
                max(ego_vehicle.speed, 0) / abs(utils.not_zero(ego_target_speed)), self.DELTA
            )
        )
        if front_vehicle:
            d = ego_vehicle.lane_distance_to(front_vehicle)
            q = self.desired_gap(ego_vehicle, front_vehicle) / utils.not_zero(d)
            # stock: np.power(q, 2); numpy computes a power of 2 as q * q (checked bit for
            # bit on 10 million values in tests/test_fast_physics.py)
            acceleration -= self.COMFORT_ACC_MAX * (q * q)
        return acceleration

    def steering_control(self, target_lane_index: LaneIndex) -> float:
        target_lane = self.road.network.get_lane(target_lane_index)
        lane_coords = target_lane.local_coordinates(self.position)
        lane_next_coords = lane_coords[0] + self.speed * self.TAU_PURSUIT
        lane_future_heading = target_lane.heading_at(lane_next_coords)
        lateral_speed_command = -self.KP_LATERAL * lane_coords[1]
        heading_command = np.arcsin(
            _clip(lateral_speed_command / utils.not_zero(self.speed), -1, 1)
        )
        heading_ref = lane_future_heading + _clip(heading_command, -np.pi / 4, np.pi / 4)
        heading_rate_command = self.KP_HEADING * utils.wrap_to_pi(heading_ref - self.heading)
        slip_angle = np.arcsin(
            _clip(self.LENGTH / 2 / utils.not_zero(self.speed) * heading_rate_command, -1, 1)
        )
        steering_angle = np.arctan(2 * np.tan(slip_angle))
        steering_angle = _clip(steering_angle, -self.MAX_STEERING_ANGLE, self.MAX_STEERING_ANGLE)
        return float(steering_angle)
