"""The named driving scenarios: each a highway-env world with continuous control.

| name | world | action | control / sim | duration | route |
| --- | --- | --- | --- | --- | --- |
| lane-keep | racetrack, no traffic | [steering], speed held at 8 m/s | 15 / 15 Hz | 60 s | one lap of the ego's lane (348 or 382 m) |
| highway | 4 lanes, 50 IDM/MOBIL cars | [acceleration, steering] | 15 / 15 Hz | 40 s | 750 m along the road |
| merge | on-ramp onto a 2-lane road, 10 cars | [acceleration, steering] | 15 / 15 Hz | 30 s | ramp -> right lane, ~340 m |
| roundabout | 2-lane roundabout, 5 cars | [acceleration, steering] + command | 15 / 15 Hz | 40 s | entry -> commanded exit + 50 m |

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

    def __post_init__(self) -> None:
        if not (np.isfinite(self.duration_s) and self.duration_s > 0):
            raise ValueError(
                f"scenario {self.name!r}: duration_s must be a finite number > 0, "
                f"got {self.duration_s}")
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
        return int(round(self.duration_s * self.control_hz))

    def with_overrides(self, **overrides: Any) -> "Scenario":
        """A copy with some fields replaced; world keys go into ``world_config``.

        Unknown keys are rejected (highway-env's ``configure`` silently accepts typos).
        """
        fields = {f.name for f in dataclasses.fields(self)} - {"name", "world", "world_config"}
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
        ),
        Scenario(
            name="merge",
            summary="start on an on-ramp and merge into 2-lane traffic before the ramp ends",
            world="sim.world.worlds:MergeWorld",
            longitudinal=True,
            duration_s=30.0,
            cruise_speed_mps=20.0,
            world_config={"vehicles_count": 10},
        ),
        Scenario(
            name="roundabout",
            summary="2-lane roundabout; take the exit the command sensor gives (left/straight/right)",
            world="sim.world.worlds:RoundaboutWorld",
            longitudinal=True,
            duration_s=40.0,
            cruise_speed_mps=8.0,
            uses_command=True,
        ),
    )
}

DEFAULT_SCENARIO = "highway"


def get_scenario(name: str, **overrides: Any) -> Scenario:
    """Look up a scenario by name; an unknown name lists the known ones."""
    try:
        scenario = SCENARIOS[name]
    except KeyError:
        raise ValueError(f"unknown scenario {name!r}; known: {', '.join(SCENARIOS)}") from None
    return scenario.with_overrides(**overrides) if overrides else scenario
