"""Hazard scenarios: one scripted event each on the highway, seeded and varied.

Bench2Drive-style short routes that each test one ability.  Every world is the 4-lane
:class:`~sim.world.worlds.HighwayWorld` (the policies trained on ``highway`` drive them,
``Scenario.trained_on``) with light background traffic; the ego's lane ahead is cleared and
the scripted actors are placed from the episode's seed:

==============  ===============================================================================
``cut-in``      a car in the next lane, slower than the ego, changes into the ego's lane when
                the gap between them (bumper to bumper) shrinks to 6-15 m (closing at 2-5 m/s)
``hard-brake``  the car ahead, 8-16 m in front at the ego's speed, brakes at -6 m/s^2 to a
                stop 0-0.6 s into the episode, then drives on; a car beside the ego boxes it
                in on one side.  The ego's own brakes give -5 m/s^2: below ~11 m braking
                alone cannot avoid the crash at 25 m/s, an escape into a free lane can
``stopped-car`` a stalled car stands in the ego's lane 150-220 m ahead; the car in front of
                the ego hides it and changes lanes only when 40-60 m short of it, without
                braking: the ego sees the stalled car late
==============  ===============================================================================

The scripted actors are highway-env ``IDMVehicle``\\ s (so they steer, and react to traffic,
as the rest) whose script overrides their own acceleration (:meth:`ScriptedVehicle.
acceleration`) and, at the trigger, their target lane.  They step on highway-env's own
(stock) code path; the rest of the traffic keeps the fast physics.
"""

from __future__ import annotations

from highway_env.vehicle.behavior import IDMVehicle
from highway_env.vehicle.kinematics import Vehicle

from sim.world.worlds import HighwayWorld

CLEAR_BEHIND_M = 20.0  # [m] the ego's lane is cleared from this far behind the ego ...
CLEAR_AHEAD_M = 260.0  # [m] ... to this far ahead (the scripted actors own it)
CLEAR_NEAR_M = 30.0  # [m] other lanes are cleared this far around each scripted actor
HARD_BRAKE_MPS2 = 6.0  # [m/s^2] the braking car's deceleration
FALLBACK_TRIGGER_S = 8.0  # [s] a cut-in fires by then even if the ego never closes the gap


class ScriptedVehicle(IDMVehicle):
    """An IDM car whose script can take over its acceleration and its lane.

    ``script_acceleration`` None leaves the IDM in charge; a number replaces the IDM's
    acceleration for this car's own decision (other cars' MOBIL evaluations still see it
    as IDM).  The clock ``time_s`` advances with the car's own steps.
    """

    script_acceleration: float | None = None
    time_s: float = 0.0

    def acceleration(self, ego_vehicle, front_vehicle=None, rear_vehicle=None) -> float:
        if ego_vehicle is self and self.script_acceleration is not None:
            return float(self.script_acceleration)
        return super().acceleration(ego_vehicle, front_vehicle, rear_vehicle)

    def step(self, dt: float) -> None:
        super().step(dt)
        self.time_s += dt
        self.update_script()

    def update_script(self) -> None:
        """Advance the script after a step (subclasses)."""


class CutInVehicle(ScriptedVehicle):
    """Holds its lane at its speed until the gap to the ego (its rear bumper to the ego's
    front) falls to ``cut_gap_m``, then changes into the ego's lane and drives on (IDM)."""

    def setup(self, ego: Vehicle, ego_lane_index, cut_gap_m: float) -> None:
        self.ego, self.ego_lane_index, self.cut_gap_m = ego, ego_lane_index, float(cut_gap_m)
        self.enable_lane_change = False  # MOBIL off: the script decides the one lane change
        self.script_acceleration = 0.0  # hold speed until the cut
        self.triggered = False

    def update_script(self) -> None:
        if self.triggered:
            return
        s_self = self.lane.local_coordinates(self.position)[0]
        s_ego = self.lane.local_coordinates(self.ego.position)[0]
        gap = s_self - s_ego - (self.LENGTH + self.ego.LENGTH) / 2
        if gap <= self.cut_gap_m or self.time_s >= FALLBACK_TRIGGER_S:
            self.triggered = True
            self.target_lane_index = self.ego_lane_index
            self.script_acceleration = None


class BrakingVehicle(ScriptedVehicle):
    """Holds the ego's speed, then at ``brake_at_s`` brakes at ``HARD_BRAKE_MPS2`` to a stop
    (NCAP's braking-car test), and drives on (IDM) once stopped."""

    def setup(self, brake_at_s: float, dt_s: float) -> None:
        self.enable_lane_change = False
        self.brake_at_s, self.dt_s = float(brake_at_s), float(dt_s)
        self.script_acceleration = 0.0
        self.phase = "hold"

    def update_script(self) -> None:
        if self.phase == "hold" and self.time_s >= self.brake_at_s:
            self.phase = "braking"
        if self.phase == "braking":
            if self.speed <= 1e-3:
                self.phase, self.script_acceleration = "done", None
            else:  # the last step brakes just enough to stop, never to reverse
                self.script_acceleration = -min(HARD_BRAKE_MPS2, self.speed / self.dt_s)


class RevealingVehicle(ScriptedVehicle):
    """The car in front of the ego: holds its speed (it ignores the stalled car, as a driver
    who has seen it late), changes lanes ``reveal_m`` short of it, and is IDM again once in
    its new lane."""

    def setup(self, stalled: Vehicle, escape_lane_index, reveal_m: float) -> None:
        self.stalled, self.escape_lane_index, self.reveal_m = (
            stalled,
            escape_lane_index,
            float(reveal_m),
        )
        self.enable_lane_change = False
        self.script_acceleration = 0.0
        self.phase = "hold"

    def update_script(self) -> None:
        if self.phase == "hold":
            s_self = self.lane.local_coordinates(self.position)[0]
            s_stalled = self.lane.local_coordinates(self.stalled.position)[0]
            if s_stalled - s_self <= self.reveal_m:
                self.phase = "changing"
                self.target_lane_index = self.escape_lane_index
        elif self.phase == "changing" and self.lane_index == self.escape_lane_index:
            self.phase = "done"
            self.script_acceleration = None


class HazardWorld(HighwayWorld):
    """The highway with the ego's lane cleared ahead and the hazard's actors placed."""

    def _create_vehicles(self) -> None:
        super()._create_vehicles()
        rng = self.np_random
        ego = self.vehicle
        self.hazard_actors: list[Vehicle] = []
        self._place_hazard(rng, ego)
        self._clear_around(ego)

    # -- helpers for the subclasses ------------------------------------------------------
    def _lane(self, lane_id: int):
        _from, _to, _ = self.vehicle.lane_index
        return self.road.network.get_lane((_from, _to, lane_id))

    def _s(self, vehicle: Vehicle) -> float:
        return float(self.vehicle.lane.local_coordinates(vehicle.position)[0])

    def _neighbour_lane(self, rng) -> int:
        """A lane next to the ego's (left or right, drawn where both exist)."""
        k, n = self.vehicle.lane_index[2], int(self.config["lanes_count"])
        options = [j for j in (k - 1, k + 1) if 0 <= j < n]
        return int(options[int(rng.integers(len(options)))])

    def _add(self, vehicle: Vehicle) -> Vehicle:
        self.road.vehicles.append(vehicle)
        self.hazard_actors.append(vehicle)
        return vehicle

    def _clear_around(self, ego: Vehicle) -> None:
        """Drop background cars from the ego's lane ahead and from around each actor."""
        s_ego = self._s(ego)
        keep = []
        for v in self.road.vehicles:
            if v is ego or v in self.hazard_actors:
                keep.append(v)
                continue
            s, lane = self._s(v), v.lane_index[2]
            in_ego_lane = (
                lane == ego.lane_index[2] and s_ego - CLEAR_BEHIND_M <= s <= s_ego + CLEAR_AHEAD_M
            )
            near_actor = any(
                abs(s - self._s(a)) < CLEAR_NEAR_M
                and abs(lane - a.lane_index[2]) <= 1
                and lane != ego.lane_index[2]
                for a in self.hazard_actors
            )
            near_ego = abs(s - s_ego) < CLEAR_NEAR_M / 2
            if not (in_ego_lane or near_actor or near_ego):
                keep.append(v)
        self.road.vehicles[:] = keep

    def _place_hazard(self, rng, ego: Vehicle) -> None:
        raise NotImplementedError


class CutInWorld(HazardWorld):
    def _place_hazard(self, rng, ego: Vehicle) -> None:
        lane = self._lane(self._neighbour_lane(rng))
        s0 = self._s(ego) + float(rng.uniform(30.0, 45.0))  # [m] starts ahead, and slower
        speed = float(ego.speed - rng.uniform(2.0, 5.0))
        car = CutInVehicle(
            self.road, lane.position(s0, 0.0), heading=lane.heading_at(s0), speed=speed
        )
        car.setup(ego, ego.lane_index, cut_gap_m=float(rng.uniform(6.0, 15.0)))
        self._add(car)


class HardBrakeWorld(HazardWorld):
    def _place_hazard(self, rng, ego: Vehicle) -> None:
        lane = ego.lane
        side = self._neighbour_lane(rng)  # boxed in on one side: a car beside the ego there
        beside = self._lane(side)
        s = self._s(ego) + float(rng.uniform(-4.0, 6.0))
        car = IDMVehicle(
            self.road, beside.position(s, 0.0), heading=beside.heading_at(s), speed=ego.speed
        )
        car.enable_lane_change = False
        self._add(car)
        gap = float(rng.uniform(8.0, 16.0))  # [m] bumper to bumper
        s0 = self._s(ego) + gap + ego.LENGTH
        car = BrakingVehicle(
            self.road, lane.position(s0, 0.0), heading=lane.heading_at(s0), speed=ego.speed
        )
        car.setup(
            brake_at_s=float(rng.uniform(0.0, 0.6)), dt_s=1.0 / self.config["simulation_frequency"]
        )
        self._add(car)


class StoppedCarWorld(HazardWorld):
    def _place_hazard(self, rng, ego: Vehicle) -> None:
        lane = ego.lane
        s_stalled = self._s(ego) + float(rng.uniform(150.0, 220.0))
        stalled = Vehicle(
            self.road, lane.position(s_stalled, 0.0), heading=lane.heading_at(s_stalled), speed=0.0
        )
        self._add(stalled)
        s_lead = self._s(ego) + float(rng.uniform(18.0, 28.0))
        lead = RevealingVehicle(
            self.road, lane.position(s_lead, 0.0), heading=lane.heading_at(s_lead), speed=ego.speed
        )
        escape = self._neighbour_lane(rng)
        lead.setup(stalled, (*ego.lane_index[:2], escape), reveal_m=float(rng.uniform(40.0, 60.0)))
        self._add(lead)
