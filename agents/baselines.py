"""Reference drivers that need no learning: the stock IDM/MOBIL driver and a lower bound."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from agents.base import BaseAgent, StatelessMixin, TaskSpec


class IDMAgent(StatelessMixin, BaseAgent):
    """highway-env's own driver model for the ego: IDM speed, MOBIL lane changes, and its
    cascaded lane controller (the ``autopilot`` sensor, computed in ``sim``).

    The stock baseline: what highway-env's traffic would do in the ego's seat.  It sees
    privileged state (every neighbour's exact position and speed), so it is a reference,
    not a competitor to camera-based agents.  Its decision is computed sim-side as the
    ``autopilot`` sensor, so its measured decision latency is ~0 ms by construction.
    """

    name = "idm"
    sensors = ("autopilot",)

    def act(self, obs: Mapping[str, Any]) -> np.ndarray:
        return np.asarray(obs["autopilot"], dtype=np.float32)


class StraightAgent(StatelessMixin, BaseAgent):
    """Zero steering, zero acceleration: holds the wheel straight at the initial speed.

    A lower bound: whatever it scores comes from the road being straight, not from driving.
    """

    name = "straight"
    sensors = ()

    def __init__(self, task: TaskSpec) -> None:
        super().__init__(task)
        self._action = np.zeros(task.action_size, dtype=np.float32)

    def act(self, obs: Mapping[str, Any]) -> np.ndarray:
        return self._action.copy()
