"""Simulation: scenarios, the gymnasium env, the ego camera, the control loop, metrics, CLI.

Importing ``sim`` registers one gymnasium id per scenario (``drive/highway-v0`` ...);
registration stores strings only and imports nothing heavy.
"""

from __future__ import annotations

import gymnasium as gym

from sim.world.scenarios import SCENARIOS


def env_id(scenario: str) -> str:
    """The gymnasium id of a scenario: ``drive/{name}-v0``."""
    return f"drive/{scenario}-v0"


def _register() -> None:
    for name in SCENARIOS:
        if env_id(name) not in gym.registry:
            gym.register(id=env_id(name), entry_point="sim.world.env:DrivingEnv",
                         kwargs={"scenario": name})


_register()
