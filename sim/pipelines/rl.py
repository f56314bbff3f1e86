"""The reinforcement-learning view of a scenario: a shaped reward built from the metrics.

:class:`RLEnv` wraps :class:`sim.world.env.DrivingEnv` with the sensors an image policy sees
(``camera``, ``speed``, and ``command`` where the scenario turns) and replaces its sparse
reward with :func:`shaped_reward`, one term per thing the harness scores (``sim.harness.metrics``):

============  ========================================================  ==============
term          per control step                                          weight (default)
============  ========================================================  ==============
progress      + w x route progress [m] / (cruise speed x dt), in [-1, 2]  0.1
centring      - w x min((offset / 2 m)^2, 1), offset from the followed     0.05
              lane's centre (the route's lane where lane changes are
              forbidden, else the nearest lane: as the metrics)
lane          - w while > 1 m off the lane that must be kept (lane-keep)  0.1
collision     - w once, on the step the ego hits something (terminal)    2.0
offroad       - w once, on the step the ego leaves the road (terminal)   2.0
smoothness    - w x ||a_t - a_(t-1)||^2 (normalised actions): steering     0.02
              rate and jerk
lateral       - w while |lateral acceleration| > 4.89 m/s^2 (nuPlan)     0.05
============  ========================================================  ==============

At the cruise speed, on the lane centre, smoothly, a step earns 0.1: an episode of a
lane-keep lap is worth about 70, a crash costs 2 plus the progress it forgoes.  The terms
are returned in ``info["reward_terms"]`` so training logs show which one moves.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from planning.comfort import LAT_ACCEL_MAX_MPS2
from planning.geometry import wrap_angle
from sim.geometry.bev import BevCamera
from sim.pipelines.preflight import refuse_faults
from sim.world.env import LANE_DEPARTURE_M, DrivingEnv
from sim.world.scenarios import Scenario, get_scenario

HALF_LANE_M = 2.0  # [m] highway-env lanes are 4 m wide
FAULTS_REFUSED = (
    "drive train ppo cannot apply sensor or actuation faults (its RL environments step the "
    "world directly, not through the harness loop that applies them)"
)
"""Why a faulted scenario (``lane-keep:latency=3``) is refused here rather than trained on as
if it were clean (:func:`sim.pipelines.preflight.refuse_faults`)."""


@dataclass(frozen=True)
class RewardConfig:
    """Weights of the shaped reward's terms (module docstring); 0 switches a term off."""

    progress: float = 0.1
    centring: float = 0.05
    lane: float = 0.1
    collision: float = 2.0
    offroad: float = 2.0
    smoothness: float = 0.02
    lateral: float = 0.05

    def __post_init__(self) -> None:
        for k, v in asdict(self).items():
            if not (np.isfinite(v) and v >= 0):
                raise ValueError(f"reward weight {k} must be a finite number >= 0, got {v}")


def shaped_reward(
    before: dict,
    after: dict,
    events: dict,
    action: np.ndarray,
    prev_action: np.ndarray | None,
    *,
    cruise_speed_mps: float,
    dt_s: float,
    lane_changes_allowed: bool,
    weights: RewardConfig = RewardConfig(),
) -> dict[str, float]:
    """The reward of one control step as its terms (signed) and their ``total``.

    ``before``/``after``: the env's ``info["ego"]`` around the step (``progress_m``,
    ``route_offset_m``, ``lateral_offset_m``, ``speed_mps``, ``heading_rad``); ``events``: the
    step's ``info["events"]``; actions normalised.  Pure: tested on hand-made states.
    """
    ds = float(after["progress_m"]) - float(before["progress_m"])
    progress = float(np.clip(ds / max(cruise_speed_mps * dt_s, 1e-6), -1.0, 2.0))
    offset = float(after["lateral_offset_m"] if lane_changes_allowed else after["route_offset_m"])
    centring = min((offset / HALF_LANE_M) ** 2, 1.0)
    lane = float(not lane_changes_allowed and abs(offset) > LANE_DEPARTURE_M)
    a = np.asarray(action, dtype=np.float64).reshape(-1)
    da = (
        0.0
        if prev_action is None
        else float(np.sum((a - np.asarray(prev_action, np.float64).reshape(-1)) ** 2))
    )
    dh = float(wrap_angle(float(after["heading_rad"]) - float(before["heading_rad"])))
    lat_accel = float(after["speed_mps"]) * dh / dt_s
    terms = {
        "progress": weights.progress * progress,
        "centring": -weights.centring * centring,
        "lane": -weights.lane * lane,
        "collision": -weights.collision * float(bool(events.get("collision"))),
        "offroad": -weights.offroad * float(bool(events.get("offroad"))),
        "smoothness": -weights.smoothness * da,
        "lateral": -weights.lateral * float(abs(lat_accel) > LAT_ACCEL_MAX_MPS2),
    }
    terms["total"] = float(sum(terms.values()))
    return terms


def rl_sensors(scenario: Scenario) -> tuple[str, ...]:
    """What an image policy sees: the camera, the speed, and the command where routes turn."""
    return ("bev", "speed", "command") if scenario.uses_command else ("bev", "speed")


class RLEnv(gym.Wrapper):
    """``DrivingEnv`` with the image policy's sensors and the shaped reward (module docstring).

    Terminates as ``DrivingEnv`` does (collision, off-road, route completed) and truncates at
    the scenario's time limit.  ``info["reward_terms"]`` holds the step's terms.  A scenario
    with faults is refused (:data:`FAULTS_REFUSED`).
    """

    def __init__(
        self,
        scenario: str | Scenario,
        camera: BevCamera | dict | None = None,
        reward: RewardConfig = RewardConfig(),
        fast_physics: bool = True,
        overrides: dict[str, Any] | None = None,
        sensors: tuple[str, ...] | None = None,
    ) -> None:
        sc = (
            get_scenario(scenario, **(overrides or {}))
            if isinstance(scenario, str)
            else (scenario.with_overrides(**overrides) if overrides else scenario)
        )
        refuse_faults(sc, FAULTS_REFUSED)
        super().__init__(
            DrivingEnv(sc, bev=camera, sensors=sensors or rl_sensors(sc), fast_physics=fast_physics)
        )
        self.scenario, self.reward_config = sc, reward
        self._ego: dict | None = None
        self._prev_action: np.ndarray | None = None

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        self._ego, self._prev_action = info["ego"], None
        return obs, info

    def step(self, action):
        obs, _, terminated, truncated, info = self.env.step(action)
        a = np.clip(np.asarray(action, dtype=np.float64).reshape(-1), -1.0, 1.0)
        terms = shaped_reward(
            self._ego,
            info["ego"],
            info["events"],
            a,
            self._prev_action,
            cruise_speed_mps=self.scenario.cruise_speed_mps,
            dt_s=self.scenario.dt_s,
            lane_changes_allowed=self.scenario.lane_changes_allowed,
            weights=self.reward_config,
        )
        self._ego, self._prev_action = info["ego"], a
        info["reward_terms"] = terms
        return obs, terms["total"], terminated, truncated, info
