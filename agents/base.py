"""The Agent protocol: the one contract every driver in the project implements.

The control loop (:mod:`sim.loop`) builds the env from what an agent declares in
``sensors`` and hands it *only* those sensors, so a report can state exactly what
each agent saw.  Sensor names the env provides (DESIGN.md):

``camera``   uint8[H, W, 3] ego camera, row 0 ahead
``speed``    float32[1] ego speed [m/s]
``pose``     float64[3] localisation: world x [m], y [m], heading [rad]
``command``  int, index into ``sim.scenarios.COMMANDS`` (follow/left/straight/right)
``map``      dict: lanes and route as plain arrays (an HD-map stand-in)
``truth``    dict of arrays: every other object's pose, size, velocity (privileged)
``autopilot`` float32[k]: highway-env's IDM/MOBIL action for the ego (privileged)

Actions are normalised to [-1, 1]: ``[acceleration, steering]`` where the scenario has
longitudinal control, ``[steering]`` where it is steering-only (``TaskSpec.action_names``).
Steering +1 = full left (+pi/4 rad, counter-clockwise); acceleration +1 = +5 m/s^2.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class TaskSpec:
    """What an agent is told about the task when it is built (no simulator objects)."""

    scenario: str
    """Scenario name."""
    action_names: tuple[str, ...]
    """``("acceleration", "steering")`` or ``("steering",)``."""
    control_hz: float
    """Decisions per second [Hz]."""
    steering_range_rad: float
    """Steering angle [rad] of a normalised +1."""
    acceleration_range_mps2: float
    """Acceleration [m/s^2] of a normalised +1."""
    camera: Any = None
    """The ego camera's ``CameraSpec`` (pixel <-> metre mapping)."""
    lane_changes_allowed: bool = True
    """False where the route's lane must be kept (``lane-keep``)."""

    @property
    def action_size(self) -> int:
        return len(self.action_names)


@runtime_checkable
class Agent(Protocol):
    name: str
    sensors: tuple[str, ...]
    device: str

    def reset(self, seed: int | None = None) -> None: ...

    def act(self, obs: Mapping[str, Any]) -> np.ndarray: ...

    def act_batch(self, obs: Sequence[Mapping[str, Any]], slots: Sequence[int] | None = None) -> np.ndarray: ...


class StatelessMixin:
    """For agents whose action depends on the current observation only: they can be
    stepped in lock-step over many environments (``sim.loop.run_episodes_lockstep``)."""

    def reset_slot(self, slot: int, seed: int | None = None) -> None:
        return None


class BaseAgent:
    """Convenience base: ``act_batch`` loops over ``act``; ``reset`` does nothing.

    Agents that run a network override ``act_batch`` to batch on the device.  Agents
    that can serve several environments at once also define ``reset_slot(slot, seed)``
    and keep any per-episode state by slot; ``act_batch(obs, slots)`` gets one slot
    number per observation.
    """

    name: str = "agent"
    sensors: tuple[str, ...] = ()
    device: str = "cpu"

    def __init__(self, task: TaskSpec) -> None:
        self.task = task

    def reset(self, seed: int | None = None) -> None:
        return None

    def act(self, obs: Mapping[str, Any]) -> np.ndarray:
        raise NotImplementedError

    def act_batch(self, obs: Sequence[Mapping[str, Any]], slots: Sequence[int] | None = None) -> np.ndarray:
        return np.stack([np.asarray(self.act(o), dtype=np.float32) for o in obs])
