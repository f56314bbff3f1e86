"""Agents by name: ``make_agent("idm", task)``; an unknown name lists the known ones.

Agents that load a checkpoint take it after a colon: ``modular:runs/detector``.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from agents.base import Agent, TaskSpec
from agents.baselines import IDMAgent, StraightAgent
from agents.e2e.agent import E2EAgent, E2EBevAgent
from agents.expert import ExpertAgent
from agents.modular import ModularAgent, ModularBevAgent, ModularGroundTruthAgent
from agents.rl.agent import PPOAgent

AGENTS: dict[str, tuple[Callable[..., Agent], str]] = {
    "expert": (
        ExpertAgent,
        (
            "privileged expert: ground-truth objects -> PDM-style planner -> "
            "pure pursuit + speed PID (demo source, upper bound)"
        ),
    ),
    "modular": (
        ModularAgent,
        (
            "modular stack from the camera rig: a monocular 3D detector on the front "
            "and rear cameras -> fusion -> tracker -> the expert's planner and "
            "controllers (modular:CHECKPOINT_DIR, default runs/detector-rig; "
            "modular:geometric for the no-learning baseline)"
        ),
    ),
    "modular-bev": (
        ModularBevAgent,
        (
            "the modular stack from the bird's-eye raster: CenterNet -> tracker "
            "-> the same planner (ablation: perception nearly free; "
            "modular-bev:CHECKPOINT_DIR, default runs/detector)"
        ),
    ),
    "modular-gt": (
        ModularGroundTruthAgent,
        (
            "the modular stack with ground-truth perception "
            "(ablation: planning without perception errors)"
        ),
    ),
    "e2e": (
        E2EAgent,
        (
            "end-to-end PilotNet CNN from the camera rig: 66x200 road crops of its cameras "
            "(+ speed, command) -> action, behaviour-cloned from expert demos with recovery views "
            "(e2e:CHECKPOINT_DIR, '{scenario}' in it becomes the scenario; default "
            "runs/e2e-rig/{scenario})"
        ),
    ),
    "e2e-bev": (
        E2EBevAgent,
        (
            "the end-to-end PilotNet on the bird's-eye raster (ablation: a clean top-down "
            "map instead of camera frames; e2e-bev:CHECKPOINT_DIR, default runs/e2e/{scenario})"
        ),
    ),
    "ppo": (
        PPOAgent,
        (
            "PilotNet trained by reinforcement learning (SB3 PPO, shaped reward), bird's-eye "
            "raster (+ speed, command) -> action, from scratch or from an e2e-bev network "
            "(ppo:CHECKPOINT_DIR; default runs/ppo/{scenario})"
        ),
    ),
    "idm": (IDMAgent, "highway-env's IDM/MOBIL driver in the ego's seat (stock baseline)"),
    "straight": (StraightAgent, "wheel straight, speed held (lower bound)"),
}

TAKES_CHECKPOINT = ("modular", "modular-bev", "e2e", "e2e-bev", "ppo")
TAKES_DEVICE = ("modular", "e2e", "e2e-bev", "ppo")
"""Agents built with ``device=`` (``auto``/``cpu``/``cuda``); the bird's-eye detector picks its
own."""
DEFAULT_AGENT = "expert"


def parse_agent(spec: str) -> tuple[str, str | None]:
    """``"modular:runs/det"`` -> ``("modular", "runs/det")``; checks the name and the argument."""
    name, sep, arg = spec.partition(":")
    if name not in AGENTS:
        raise ValueError(f"unknown agent {name!r}; known: {', '.join(AGENTS)}")
    if sep and name not in TAKES_CHECKPOINT:
        raise ValueError(
            f"agent {name!r} takes no checkpoint (got {spec!r}); "
            f"agents that do: {', '.join(TAKES_CHECKPOINT)}"
        )
    if sep and not arg:
        raise ValueError(f"agent spec {spec!r} names no checkpoint after the colon")
    return name, (arg or None)


def agent_label(spec: str) -> str:
    """A file-name-safe label of an agent spec (``modular:runs/det`` -> ``modular-runs-det``)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", spec).strip("-")


def make_agent(spec: str, task: TaskSpec, device: str | None = None) -> Agent:
    """Build agent ``spec`` for ``task``; ``device`` reaches the agents that run a network."""
    name, checkpoint = parse_agent(spec)
    factory, _ = AGENTS[name]
    kwargs = {"device": device} if device is not None and name in TAKES_DEVICE else {}
    return factory(task, checkpoint, **kwargs) if checkpoint else factory(task, **kwargs)
