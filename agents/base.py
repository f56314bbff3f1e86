"""The Agent protocol: the one contract every driver in the project implements.

The control loop (:mod:`sim.harness.loop`) builds the env from what an agent declares in
``sensors`` and hands it *only* those sensors, so a report can state exactly what
each agent saw.  Sensor names the env provides (DESIGN.md):

``bev``      uint8[H, W, 3] bird's-eye raster of the road map turning with the car, row 0 ahead
             (privileged: the map, not a camera a car carries)
``speed``    float32[1] ego speed [m/s]
``pose``     float64[3] localisation: world x [m], y [m], heading [rad]
``command``  int, index into ``sim.world.scenarios.COMMANDS`` (follow/left/straight/right)
``map``      dict: lanes and route as plain arrays (an HD-map stand-in)
``truth``    dict of arrays: every other object's pose, size, velocity (privileged)
``autopilot`` float32[k]: highway-env's IDM/MOBIL action for the ego (privileged)
``cam_front``, ``cam_rear`` uint8[H, W, 3] perspective cameras of ``TaskSpec.rig``

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
    bev: Any = None
    """The bird's-eye camera's ``BevCamera`` (pixel <-> metre mapping)."""
    lane_changes_allowed: bool = True
    """False where the route's lane must be kept (``lane-keep``)."""
    uses_command: bool = False
    """True where the route depends on the ``command`` sensor (roundabout exits)."""
    rig: Any = None
    """The perspective cameras' ``CameraRig`` (each camera a sensor named as in the rig:
    ``cam_front``, ``cam_rear``); None where not told."""
    cruise_speed_mps: float | None = None
    """The speed the scenario asks for [m/s] (the ``idm`` baseline's desired speed); None:
    the lanes' limits."""

    @property
    def action_size(self) -> int:
        return len(self.action_names)


@runtime_checkable
class Agent(Protocol):
    """What the control loop needs of a driver.  Everything optional is declared (with a
    default) in :class:`BaseAgent`; the harness calls it without probing."""

    name: str
    sensors: tuple[str, ...]
    device: str

    def reset(self, seed: int | None = None) -> None: ...

    def act(self, obs: Mapping[str, Any]) -> np.ndarray: ...

    def act_batch(
        self, obs: Sequence[Mapping[str, Any]], slots: Sequence[int] | None = None
    ) -> np.ndarray: ...


class BaseAgent:
    """The base every agent in the project derives from: the :class:`Agent` protocol plus
    the optional capabilities, each with a default the harness can rely on.

    ``reset(seed)``
        a new episode starts, explicitly: the harness calls it before every episode, so an
        agent never infers an episode start from its observations.
    ``prepare()``
        load what the agent needs (checkpoints) before the first episode; an exception
        stops the run with its reason.  Default: nothing to load.
    ``lockstep`` / ``reset_slot(slot, seed)``
        agents that keep per-environment state by slot can serve K environments at once
        (``act_batch(obs, slots)`` gets one slot per observation); ``reset_slot`` starts
        a new episode in one slot.  Default: not lock-step capable.
    ``overlay``
        what the last decision looked like, for videos (``None``: nothing to draw).
    ``experience()``
        the data a learned policy learned from (``{"demo_frames": N, "env_steps": M}``);
        ``None`` for agents that learned nothing.
    ``checkpoints()``
        the checkpoint folders the agent loads, hashed into every evaluation's config.
    """

    name: str = "agent"
    sensors: tuple[str, ...] = ()
    device: str = "cpu"
    lockstep: bool = False
    """True when ``reset_slot`` and ``act_batch(obs, slots)`` keep per-slot episode state."""
    overlay: Any = None
    """What the last decision looked like, for videos; ``None`` when there is nothing to draw."""

    def __init__(self, task: TaskSpec) -> None:
        self.task = task

    def prepare(self) -> None:
        """Load checkpoints before the first episode; errors propagate and stop the run."""
        return

    def reset(self, seed: int | None = None) -> None:
        return None

    def reset_slot(self, slot: int, seed: int | None = None) -> None:
        raise NotImplementedError(
            f"agent {self.name!r} keeps per-episode state without slots and cannot be run in "
            "lock-step; run its episodes one by one (--workers for parallel episodes)"
        )

    def act(self, obs: Mapping[str, Any]) -> np.ndarray:
        raise NotImplementedError

    def act_batch(
        self, obs: Sequence[Mapping[str, Any]], slots: Sequence[int] | None = None
    ) -> np.ndarray:
        return np.stack([np.asarray(self.act(o), dtype=np.float32) for o in obs])

    def experience(self) -> dict[str, Any] | None:
        """What a learned policy learned from; ``None`` for agents that learned nothing."""
        return None

    def checkpoints(self) -> tuple[str, ...]:
        """The checkpoint folders this agent loads (hashed into evaluation configs)."""
        return ()


class StatelessMixin:
    """For agents whose action depends on the current observation only: they can be
    stepped in lock-step over many environments (``run_episodes_lockstep``)."""

    lockstep = True

    def reset_slot(self, slot: int, seed: int | None = None) -> None:
        return None
