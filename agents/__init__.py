"""Agents: the Agent protocol, baselines, the expert and modular planning agents, and the
end-to-end PilotNet driver with its demos loader and behaviour-cloning trainer.

Agents never import highway-env; they see the world only through the sensors they declare.
"""

from agents.base import Agent, BaseAgent, TaskSpec
from agents.registry import AGENTS, DEFAULT_AGENT, agent_label, make_agent, parse_agent

__all__ = [
    "AGENTS",
    "DEFAULT_AGENT",
    "Agent",
    "BaseAgent",
    "TaskSpec",
    "agent_label",
    "make_agent",
    "parse_agent",
]
