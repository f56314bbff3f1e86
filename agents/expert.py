"""The privileged expert: ground truth -> CTRV forecasts -> PDM-style planner -> pure
pursuit + speed PID (:class:`agents.modular.PlanningAgent` fed by ground truth).

The demo source for the end-to-end network and the upper bound in every report.
"""

from __future__ import annotations

from agents.base import TaskSpec
from agents.modular import GroundTruthPerception, PlanningAgent


class ExpertAgent(PlanningAgent):
    """Privileged expert: ground-truth objects, the map and localisation."""

    name = "expert"

    def __init__(self, task: TaskSpec) -> None:
        # its objects are exact relative to the car, so the traffic can check its fix
        super().__init__(task, GroundTruthPerception(), traffic_localisation=True)
