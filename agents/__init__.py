"""Agents: the Agent protocol, baselines, and (to come) expert, modular and end-to-end drivers.

Agents never import highway-env; they see the world only through the sensors they declare.
"""

from agents.base import Agent, BaseAgent, TaskSpec
from agents.registry import AGENTS, DEFAULT_AGENT, make_agent

__all__ = ["Agent", "BaseAgent", "TaskSpec", "AGENTS", "DEFAULT_AGENT", "make_agent"]
