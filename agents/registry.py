"""Agents by name: ``make_agent("idm", task)``; an unknown name lists the known ones."""

from __future__ import annotations

from collections.abc import Callable

from agents.base import Agent, TaskSpec
from agents.baselines import IDMAgent, StraightAgent
from agents.expert import ExpertAgent, ModularAgent

AGENTS: dict[str, tuple[Callable[[TaskSpec], Agent], str]] = {
    "expert": (ExpertAgent, "privileged expert: ground-truth objects -> PDM-style planner -> "
                            "pure pursuit + speed PID (demo source, upper bound)"),
    "modular": (ModularAgent, "modular stack: perception (ground truth until the detector lands) "
                              "-> the expert's planner and controllers"),
    "idm": (IDMAgent, "highway-env's IDM/MOBIL driver in the ego's seat (stock baseline)"),
    "straight": (StraightAgent, "wheel straight, speed held (lower bound)"),
}

DEFAULT_AGENT = "expert"


def make_agent(name: str, task: TaskSpec) -> Agent:
    try:
        factory, _ = AGENTS[name]
    except KeyError:
        raise ValueError(f"unknown agent {name!r}; known: {', '.join(AGENTS)}") from None
    return factory(task)
