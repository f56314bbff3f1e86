"""The named driving scenarios: each a highway-env world with continuous control.

Control and simulation run at 15 / 15 Hz in every scenario.

+---------------+-------------------------+----------------+----------+----------------------------+
| name          | world                   | action         | duration | route                      |
+===============+=========================+================+==========+============================+
| lane-keep     | racetrack, no traffic   | [steering],    | 60 s     | one lap of the ego's lane  |
|               |                         | speed held at  |          | (348 or 382 m)             |
|               |                         | 8 m/s          |          |                            |
+---------------+-------------------------+----------------+----------+----------------------------+
| highway       | 4 lanes, 50 IDM/MOBIL   | [acceleration, | 40 s     | 750 m along the road       |
|               | cars                    | steering]      |          |                            |
+---------------+-------------------------+----------------+----------+----------------------------+
| merge         | on-ramp onto a 2-lane   | [acceleration, | 30 s     | ramp -> right lane, ~340 m |
|               | road, 10 cars           | steering]      |          |                            |
+---------------+-------------------------+----------------+----------+----------------------------+
| roundabout    | 2-lane roundabout, 5    | [acceleration, | 40 s     | entry -> commanded exit +  |
|               | cars                    | steering] +    |          | 50 m                       |
|               |                         | command        |          |                            |
+---------------+-------------------------+----------------+----------+----------------------------+
| highway-short | the highway, 50 cars    | [acceleration, | 15 s     | 300 m (the benchmark       |
|               |                         | steering]      |          | suite's base)              |
+---------------+-------------------------+----------------+----------+----------------------------+
| track         | generated road          | [steering] at  | 40 s     | 250 m of the ego's lane    |
|               | (sim.world.roadgen), 2  | 8 m/s          |          |                            |
|               | lanes, no traffic       |                |          |                            |
+---------------+-------------------------+----------------+----------+----------------------------+
| curvy-highway | generated 3-lane road,  | [acceleration, | 25 s     | 300 m                      |
|               | arcs of 150-300 m, 20   | steering]      |          |                            |
|               | cars                    |                |          |                            |
+---------------+-------------------------+----------------+----------+----------------------------+
| cut-in,       | the highway, 20 cars +  | [acceleration, | 20 s     | 300 m                      |
| hard-brake,   | one scripted hazard     | steering]      |          |                            |
| stopped-car   | (sim.world.hazards)     |                |          |                            |
+---------------+-------------------------+----------------+----------+----------------------------+

Variants follow the name after colons (:func:`get_scenario`): traffic density
(``highway:empty|dense``), the map split of a generated road (``track:unseen``), a
visual condition (``highway:night``, :data:`VISUAL_CONDITIONS`) and faults at a level
(``highway:noise=2:latency=1``, :data:`FAULTS`); a variant is driven with the policies of
the scenario it was trained on (``trained_on``).

Why these rates: the ego is a kinematic bicycle; at 15 Hz (dt = 67 ms) its Euler
step moves a car at 30 m/s by 2 m, well inside the collision check's swept test, and
15 Hz is highway-env's own simulation rate for its IDM traffic, so the traffic
behaves exactly as in the stock envs.  Control runs at the simulation rate (one
physics step per decision): steering at highway-env's default 1 Hz policy rate is
far too slow.  Durations give an expert comfortable slack over the route at the
scenario's typical speed (lane-keep 8 m/s, highway ~25, merge ~20, roundabout ~8).
"""

from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

COMMANDS = ("follow", "left", "straight", "right")
VISUAL_CONDITIONS = ("day", "dusk", "night", "colours", "worn")
"""Renderer conditions (``highway:night``): ``day`` is what every policy is trained on; the
others change the palette of every camera, rig and bird's-eye (:mod:`sim.world.visual`)."""
FAULTS = ("noise", "blur", "brightness", "dirt", "drop", "pose", "speed", "latency")
"""Sensor and actuation faults (``highway:noise=2``), applied by the harness
(:mod:`sim.harness.faults`): image noise, blur, brightness, lens dirt, dropped frames,
localisation noise on ``pose``, speedometer noise, control latency."""
FAULT_LEVELS = (1, 2, 3)
MAP_SPLITS = ("train", "unseen")
"""Map-seed splits of the scenarios on generated roads (``track:unseen``)."""
"""Values of the ``command`` sensor (conditional imitation): index in this tuple."""

STEERING_RANGE_RAD = np.pi / 4  # [rad] normalised steering +-1 maps to +-pi/4
ACCELERATION_RANGE_MPS2 = 5.0  # [m/s^2] normalised acceleration +-1 maps to +-5


@dataclass(frozen=True)
class Scenario:
    """A named, documented driving scenario. Override fields with :meth:`with_overrides`."""

    name: str
    """Registry name, e.g. ``highway``."""
    summary: str
    """One line for ``drive scenarios``."""
    world: str
    """The highway-env world class as an entry point, ``"module:Class"`` (see
    :mod:`sim.world.worlds`); imported only when an env is built, so listing scenarios or
    importing ``sim`` never imports highway-env."""
    longitudinal: bool
    """True: action is ``[acceleration, steering]``; False: ``[steering]`` at held speed."""
    duration_s: float
    """Episode time limit [s]; reaching it truncates the episode."""
    control_hz: int = 15
    """Decisions per second [Hz]."""
    sim_hz: int = 15
    """Physics steps per second [Hz]; a multiple of ``control_hz``."""
    lane_changes_allowed: bool = True
    """False: leaving the followed lane counts as an intervention (lane-keep)."""
    uses_command: bool = False
    """True: the route depends on the ``command`` sensor (roundabout exits), so policies that
    drive from the camera are handed it."""
    cruise_speed_mps: float = 25.0
    """Target speed [m/s] of the IDM autopilot (the ``idm`` baseline)."""
    world_config: dict[str, Any] = field(default_factory=dict)
    """Extra highway-env config keys for this world (e.g. ``vehicles_count``)."""
    traffic: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Traffic densities this scenario offers as variants (``highway:dense``): each a name and
    the ``world_config`` keys it sets; empty where the scenario has no traffic axis."""
    trained_on: str = ""
    """The scenario whose demos and checkpoints agents use here (a hazard on the highway
    drives with the highway's policies; a variant with its base's); default: the base name."""
    base: str = ""
    """The registry name this scenario was built from (``highway`` for ``highway:dense``);
    default: ``name``."""
    visual: str = "day"
    """Renderer condition of every camera (rig and bird's-eye): one of :data:`VISUAL_CONDITIONS`."""
    faults: tuple[tuple[str, int], ...] = ()
    """Sensor and actuation faults the harness applies, each ``(kind, level)`` with kind in
    :data:`FAULTS` and level 1-3 (severities: :mod:`sim.harness.faults`)."""

    def __post_init__(self) -> None:
        if not self.base:
            object.__setattr__(self, "base", self.name)
        if not self.trained_on:
            object.__setattr__(self, "trained_on", self.base)
        if self.visual not in VISUAL_CONDITIONS:
            raise ValueError(
                f"scenario {self.name!r}: unknown visual condition {self.visual!r}; "
                f"known: {', '.join(VISUAL_CONDITIONS)}"
            )
        for kind, level in self.faults:
            if kind not in FAULTS or level not in FAULT_LEVELS:
                raise ValueError(
                    f"scenario {self.name!r}: bad fault {kind}={level}; known: "
                    f"{', '.join(FAULTS)}, each at level {', '.join(map(str, FAULT_LEVELS))}"
                )
        if not (np.isfinite(self.duration_s) and self.duration_s > 0):
            raise ValueError(
                f"scenario {self.name!r}: duration_s must be a finite number > 0, "
                f"got {self.duration_s}"
            )
        if self.control_hz <= 0 or self.sim_hz % self.control_hz:
            raise ValueError(
                f"scenario {self.name!r}: sim_hz ({self.sim_hz}) must be a positive multiple of "
                f"control_hz ({self.control_hz})"
            )

    def world_class(self) -> type:
        """The highway-env world class, imported now (this imports highway-env)."""
        module, _, name = self.world.partition(":")
        return getattr(importlib.import_module(module), name)

    @property
    def dt_s(self) -> float:
        """Control period [s]."""
        return 1.0 / self.control_hz

    @property
    def action_names(self) -> tuple[str, ...]:
        return ("acceleration", "steering") if self.longitudinal else ("steering",)

    @property
    def max_steps(self) -> int:
        return round(self.duration_s * self.control_hz)

    def with_overrides(self, **overrides: Any) -> Scenario:
        """A copy with some fields replaced; world keys go into ``world_config``.

        Unknown keys are rejected (highway-env's ``configure`` silently accepts typos).
        """
        fields = {f.name for f in dataclasses.fields(self)} - {
            "name",
            "world",
            "world_config",
            "base",
            "traffic",
            "trained_on",
        }
        world_keys = set(self.world_config)
        unknown = set(overrides) - fields - world_keys
        if unknown:
            raise ValueError(
                f"unknown override(s) {sorted(unknown)} for scenario {self.name!r}; "
                f"known: {sorted(fields | world_keys)}"
            )
        top = {k: v for k, v in overrides.items() if k in fields}
        world = {**self.world_config, **{k: v for k, v in overrides.items() if k in world_keys}}
        return dataclasses.replace(self, world_config=world, **top)

    def highway_env_config(self) -> dict[str, Any]:
        """The config handed to the highway-env world."""
        return {
            "action": {
                "type": "ContinuousAction",
                "longitudinal": self.longitudinal,
                "lateral": True,
                "steering_range": (-STEERING_RANGE_RAD, STEERING_RANGE_RAD),
                "acceleration_range": (-ACCELERATION_RANGE_MPS2, ACCELERATION_RANGE_MPS2),
                # braking stops the car; it does not reverse down the highway
                "speed_range": (0.0, 40.0),
                "clip": True,
            },
            "observation": {"type": "Kinematics"},
            "simulation_frequency": self.sim_hz,
            "policy_frequency": self.control_hz,
            "duration": 1e9,  # DrivingEnv truncates, not highway-env
            "offroad_terminal": False,
            **self.world_config,
        }


HIGHWAY_TRAFFIC = {
    "empty": {"vehicles_count": 0},
    "regular": {"vehicles_count": 50, "vehicles_density": 1.0},
    "dense": {
        "vehicles_count": 80,
        "vehicles_density": 2.5,
        "other_vehicles_type": "highway_env.vehicle.behavior.AggressiveVehicle",
    },
}
"""NoCrash-style densities on the highway: highway-env spaces its cars ``1 / density`` apart
in expectation (cars per lane per ~40 m at density 1)."""
MERGE_TRAFFIC = {
    "empty": {"vehicles_count": 0},
    "regular": {"vehicles_count": 10},
    "dense": {"vehicles_count": 22},
}
"""Cars on the 2-lane road the ego merges into (420 m, at least 20 m apart in a lane)."""


def _hazard(name: str, summary: str, world_class: str) -> Scenario:
    """A hazard of :mod:`sim.world.hazards`: the 4-lane highway, 20 background cars, 300 m in
    20 s, driven with the highway's policies."""
    return Scenario(
        name=name,
        summary=summary,
        world=f"sim.world.hazards:{world_class}",
        longitudinal=True,
        duration_s=20.0,
        cruise_speed_mps=25.0,
        trained_on="highway",
        world_config={"lanes_count": 4, "vehicles_count": 20, "route_length_m": 300.0},
    )


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            name="lane-keep",
            summary="racetrack lap, no traffic, steering only at a held 8 m/s",
            world="sim.world.worlds:LaneKeepWorld",
            longitudinal=False,
            duration_s=60.0,
            lane_changes_allowed=False,
            cruise_speed_mps=8.0,
            world_config={"other_vehicles": 0, "terminate_off_road": False, "ego_speed_mps": 8.0},
        ),
        Scenario(
            name="highway",
            summary="4-lane highway, 50 IDM/MOBIL cars; 750 m in 40 s, acceleration + steering",
            world="sim.world.worlds:HighwayWorld",
            longitudinal=True,
            duration_s=40.0,
            cruise_speed_mps=25.0,
            world_config={"lanes_count": 4, "vehicles_count": 50, "route_length_m": 750.0},
            traffic=HIGHWAY_TRAFFIC,
        ),
        Scenario(
            name="merge",
            summary="start on an on-ramp and merge into 2-lane traffic before the ramp ends",
            world="sim.world.worlds:MergeWorld",
            longitudinal=True,
            duration_s=30.0,
            cruise_speed_mps=20.0,
            world_config={"vehicles_count": 10},
            traffic=MERGE_TRAFFIC,
        ),
        Scenario(
            name="roundabout",
            summary=(
                "2-lane roundabout; take the exit the command sensor gives (left/straight/right)"
            ),
            world="sim.world.worlds:RoundaboutWorld",
            longitudinal=True,
            duration_s=40.0,
            cruise_speed_mps=8.0,
            uses_command=True,
        ),
        Scenario(
            name="highway-short",
            summary="the highway, 300 m in 15 s: the benchmark suite's base for traffic density, "
            "visual conditions and faults",
            world="sim.world.worlds:HighwayWorld",
            longitudinal=True,
            duration_s=15.0,
            cruise_speed_mps=25.0,
            trained_on="highway",
            world_config={"lanes_count": 4, "vehicles_count": 50, "route_length_m": 300.0},
            traffic=HIGHWAY_TRAFFIC,
        ),
        # -- generated roads (sim.world.roadgen): train maps by default, ":unseen" for held-out ones
        Scenario(
            name="track",
            summary="lane-keep on generated roads (straights, arcs of radius 15-300 m, S-bends); "
            "track:unseen drives held-out maps",
            world="sim.world.generated:TrackWorld",
            longitudinal=False,
            duration_s=40.0,
            lane_changes_allowed=False,
            cruise_speed_mps=8.0,
            world_config={
                "map_split": "train",
                "train_maps": 20,
                "lanes_count": 2,
                "radius_range_m": (15.0, 300.0),
                "route_length_m": 250.0,
                "ego_speed_mps": 8.0,
            },
        ),
        Scenario(
            name="curvy-highway",
            summary=(
                "3-lane generated highway with curves (arcs of radius 150-300 m) and IDM traffic, "
                "300 m; driven with the highway's policies (curves they never saw)"
            ),
            world="sim.world.generated:CurvyHighwayWorld",
            longitudinal=True,
            duration_s=25.0,
            cruise_speed_mps=20.0,
            trained_on="highway",
            world_config={
                "map_split": "train",
                "train_maps": 20,
                "lanes_count": 3,
                "radius_range_m": (150.0, 300.0),
                "route_length_m": 300.0,
                "vehicles_count": 20,
            },
            traffic={
                "empty": {"vehicles_count": 0},
                "regular": {"vehicles_count": 20},
                "dense": {"vehicles_count": 40},
            },
        ),
        # -- hazards (sim.world.hazards): one scripted event each, on a highway;
        # highway policies drive
        _hazard(
            "cut-in",
            "a car in the next lane cuts into the ego's lane at a short gap (6-15 m), 2-5 m/s "
            "slower",
            "CutInWorld",
        ),
        _hazard(
            "hard-brake",
            "the car ahead (8-16 m) brakes at -6 m/s^2 to a stop 0-0.6 s in; a car beside "
            "boxes the ego in on one side",
            "HardBrakeWorld",
        ),
        _hazard(
            "stopped-car",
            "a stalled car in the ego's lane, revealed late when the car ahead changes lanes",
            "StoppedCarWorld",
        ),
    )
}

HAZARDS = tuple(n for n, s in SCENARIOS.items() if s.world.startswith("sim.world.hazards:"))
"""The scripted hazards (cut-in, hard-brake, stopped-car): the one list the benchmark suite's
hazard axis and ``drive eval tracking`` take their cells from."""

DEFAULT_SCENARIO = "highway"


DEFAULT_TRAFFIC = "regular"
"""The traffic density a scenario's plain name means (its ``traffic`` table holds it)."""


def variant_help(scenario: Scenario) -> str:
    """The variant tokens ``scenario`` accepts after a colon, for errors and ``drive scenarios``."""
    parts = []
    if scenario.traffic:
        parts.append("traffic " + "|".join(scenario.traffic))
    if "map_split" in scenario.world_config:
        parts.append("maps " + "|".join(MAP_SPLITS))
    parts.append("visual " + "|".join(VISUAL_CONDITIONS))
    parts.append(
        "faults "
        + "|".join(f"{f}=N" for f in FAULTS)
        + f" (N in {FAULT_LEVELS[0]}-{FAULT_LEVELS[-1]})"
    )
    return "; ".join(parts)


def _apply_variant(scenario: Scenario, tokens: list[str]) -> Scenario:
    """``scenario`` with the variant ``tokens`` applied; its name canonical (defaults dropped,
    tokens in the order traffic, maps, visual, faults)."""
    traffic, split, visual, faults = DEFAULT_TRAFFIC, "train", "day", {}
    seen: dict[str, str] = {}

    def once(axis: str, token: str) -> None:
        if axis in seen and axis != "fault":
            raise ValueError(
                f"scenario {scenario.name!r}: two {axis} variants ({seen[axis]!r}, {token!r}); "
                "give one"
            )
        seen[axis] = token

    for token in tokens:
        key, eq, value = token.partition("=")
        if not eq and key in scenario.traffic:
            once("traffic", token)
            traffic = key
        elif not eq and key in MAP_SPLITS and "map_split" in scenario.world_config:
            once("maps", token)
            split = key
        elif not eq and key in VISUAL_CONDITIONS:
            once("visual", token)
            visual = key
        elif key in FAULTS and eq:
            try:
                level = int(value)
            except ValueError:
                level = -1
            if level not in FAULT_LEVELS:
                raise ValueError(
                    f"fault {key!r} takes a level in {FAULT_LEVELS[0]}-{FAULT_LEVELS[-1]}, "
                    f"got {value!r}"
                )
            if key in faults:
                raise ValueError(f"scenario {scenario.name!r}: fault {key!r} given twice")
            faults[key] = level
        else:
            raise ValueError(
                f"unknown variant {token!r} of scenario {scenario.name!r}; known: "
                f"{variant_help(scenario)}"
            )
    world = dict(scenario.world_config)
    name = [scenario.name]
    if traffic != DEFAULT_TRAFFIC:
        world.update(scenario.traffic[traffic])
        name.append(traffic)
    if "map_split" in world:
        world["map_split"] = split
        if split != "train":
            name.append(split)
    if visual != "day":
        name.append(visual)
    ordered = tuple((f, faults[f]) for f in FAULTS if f in faults)
    name += [f"{f}={n}" for f, n in ordered]
    return dataclasses.replace(
        scenario,
        name=":".join(name),
        base=scenario.name,
        world_config=world,
        visual=visual,
        faults=ordered,
    )


def get_scenario(name: str, **overrides: Any) -> Scenario:
    """Look up a scenario by name, with its variants after colons (``highway:dense:night``,
    ``track:unseen``, ``highway:latency=2``); an unknown name lists the known ones, an unknown
    variant the variants that scenario has."""
    base, *tokens = str(name).split(":")
    try:
        scenario = SCENARIOS[base]
    except KeyError:
        raise ValueError(f"unknown scenario {base!r}; known: {', '.join(SCENARIOS)}") from None
    if tokens:
        scenario = _apply_variant(scenario, tokens)
    return scenario.with_overrides(**overrides) if overrides else scenario
