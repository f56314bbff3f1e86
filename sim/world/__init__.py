"""The world: scenarios, highway-env worlds, fast physics, the shadow autopilot, the road
map and route, the sensor renderer, and the gymnasium env (:class:`sim.world.env.DrivingEnv`).

The only part of the project that talks to highway-env.  Importing this package registers
one gymnasium id per scenario (``drive/highway-v0`` ...) with a string entry point, so
nothing of highway-env is imported until ``gym.make`` builds an env.
"""

from __future__ import annotations

import gymnasium as gym

from sim.world.scenarios import SCENARIOS


def env_id(scenario: str) -> str:
    """The gymnasium id of a scenario: ``drive/{name}-v0``."""
    return f"drive/{scenario}-v0"


def register_envs() -> None:
    """Register every scenario's gymnasium id (idempotent)."""
    for name in SCENARIOS:
        if env_id(name) not in gym.registry:
            gym.register(
                id=env_id(name), entry_point="sim.world.env:DrivingEnv", kwargs={"scenario": name}
            )


register_envs()
