"""The reinforcement-learning policy: PilotNet trained with Stable-Baselines3 PPO.

The RL baseline drives from the same ``camera`` (+ ``speed``, + ``command``) the ``e2e`` agent
sees, through the same network: SB3's ``MultiInputPolicy`` is built around the PilotNet
family (:class:`PilotNetExtractor` = PilotNet's convolutions + the scalar inputs; the policy
MLP = PilotNet's fully connected head; ``action_net`` = its output layer; ELU throughout), so

* a behaviour-cloned ``e2e`` checkpoint initialises the actor exactly (BC -> PPO fine-tuning,
  :func:`load_pilotnet_into_policy`), and
* the trained actor *is* a PilotNet (:func:`policy_to_pilotnet`): its deterministic action
  (the Gaussian's mean) is saved as a PilotNet checkpoint and run in the control loop by the
  same batch-invariant code as ``e2e`` (:class:`PPOAgent`).

The critic has its own copy of the convolutions (``share_features_extractor=False``), so its
gradients - large and noisy while it learns the value of a behaviour-cloned policy - never
reach the actor's features.

Checkpoint folder (``ppo:PATH``, default ``runs/ppo/{scenario}``): ``model.safetensors``
(the actor as a PilotNet) + ``ppo.json`` (architecture, camera, actions, the PPO recipe,
environment steps, the reward, the closed-loop curve) + ``policy.safetensors`` (the whole SB3
policy state: critic and log-std too, to resume or fine-tune).  Everything is weights or JSON;
SB3's own ``.zip`` (cloudpickled fields) is never written nor read.

The SB3 side (extractor, weight mapping) is in :mod:`agents.rl.policy`, imported only to train.
"""

from __future__ import annotations

from pathlib import Path

from agents.e2e.agent import SENSORS, E2EAgent

META = "ppo.json"
POLICY = "policy.safetensors"
DEFAULT_PPO_DIR = "runs/ppo"


class PPOAgent(E2EAgent):
    """PilotNet trained by PPO (``drive train ppo``).  Sensors: camera, speed, command."""

    name = "ppo"
    meta_name = META
    default_dir = DEFAULT_PPO_DIR
    default_sensors = SENSORS
    kind = "PPO"

    def how_to_train(self, path: Path) -> str:
        return f"drive train ppo --scenario {self.task.scenario} --out {path}"
