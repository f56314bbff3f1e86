"""The control loop: runs an agent in a scenario, one decision per control period.

It hands the agent *only* the sensors it declares, gates every action (wrong shape,
non-finite: the episode ends with ``invalid_action``; ``np.clip`` does not remove NaN),
times every decision, records the ego's ground-truth state per step and scores the
episode (:mod:`sim.metrics`).  An agent that raises ends its episode with
``agent_error``; the caller's run goes on.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sim.env import INFO_SENSORS, SENSORS, DrivingEnv
from sim.metrics import EpisodeTrace, episode_metrics

StepObserver = Callable[[DrivingEnv, Mapping[str, Any], np.ndarray | None, Mapping[str, Any]], None]


@dataclass
class EpisodeResult:
    agent: str
    scenario: str
    seed: int
    status: str
    metrics: dict
    sensors: tuple[str, ...]
    device: str
    error: str | None = None
    trace: EpisodeTrace | None = field(default=None, repr=False)

    def record(self) -> dict:
        """The ``episodes.jsonl`` line: identity, status, every metric, and any error."""
        return {
            "agent": self.agent,
            "scenario": self.scenario,
            "seed": self.seed,
            **self.metrics,
            "status": self.status,
            "sensors": list(self.sensors),
            "device": self.device,
            "error": self.error,
        }


def check_sensors(agent) -> tuple[str, ...]:
    sensors = tuple(getattr(agent, "sensors", ()))
    unknown = [s for s in sensors if s not in SENSORS]
    if unknown:
        raise ValueError(
            f"agent {getattr(agent, 'name', agent)!r} declares unknown sensor(s) {unknown}; "
            f"known: {', '.join(SENSORS)}")
    return sensors


def env_sensors_for(agent, *, camera: bool = False) -> tuple[str, ...]:
    """What the env must compute for ``agent`` (plus the camera when a video is recorded)."""
    sensors = set(check_sensors(agent))
    if camera:
        sensors.add("camera")
    return tuple(s for s in SENSORS if s in sensors)


def agent_view(sensors: tuple[str, ...], obs: Mapping[str, Any], info: Mapping[str, Any],
               static: Mapping[str, Any]) -> dict[str, Any]:
    """Assemble exactly the declared sensors from the observation, ``info`` and the
    episode's static sensors (``map``)."""
    view = {}
    for s in sensors:
        if s in static:
            view[s] = static[s]
        elif s in INFO_SENSORS:
            view[s] = info[s]
        else:
            view[s] = obs[s]
    return view


def gate_action(raw: Any, n_act: int, names: tuple[str, ...]) -> tuple[np.ndarray | None, str]:
    """The agent's output as a clipped float64 ``[n_act]`` action, or None and the reason.

    Exactly shape ``(n_act,)`` of real numbers, all finite; anything else (a ``(1, n)``
    batch, None, a string, a complex or a grad-tracking tensor) is refused, never guessed.
    """
    try:
        arr = np.asarray(raw)
    except Exception as e:  # noqa: BLE001 - e.g. a torch tensor that requires grad
        return None, f"not convertible to an array: {type(e).__name__}: {e}"
    if arr.dtype.kind not in "fiu":
        return None, f"not a real numeric array (got {type(raw).__name__}, dtype {arr.dtype})"
    if arr.shape != (n_act,):
        return None, f"expected shape ({n_act},) ({', '.join(names)}), got shape {arr.shape}"
    action = arr.astype(np.float64)
    if not np.all(np.isfinite(action)):
        return None, f"non-finite action {action.tolist()}"
    return np.clip(action, -1.0, 1.0), ""


def _describe(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" at {frames[-1].filename}:{frames[-1].lineno}" if frames else ""
    return f"{type(exc).__name__}: {exc}{where}"


def run_episode(env: DrivingEnv, agent, seed: int,
                observers: tuple[StepObserver, ...] = ()) -> EpisodeResult:
    """Run one episode of ``agent`` in ``env`` from ``seed``; never raises for agent faults."""
    sensors = check_sensors(agent)
    missing = [s for s in sensors if s not in env.sensors]
    if missing:
        raise ValueError(f"env does not compute sensor(s) {missing} that agent "
                         f"{agent.name!r} declares; build it with env_sensors_for(agent)")
    scenario = env.scenario
    n_act = env.action_space.shape[0]
    obs, info = env.reset(seed=int(seed))
    static = {"map": info["map"]} if "map" in info else {}
    trace = EpisodeTrace(dt_s=scenario.dt_s)
    trace.record(info["ego"])
    for observe in observers:
        observe(env, obs, None, info)
    status, error = "ok", None
    try:
        agent.reset(seed=int(seed))
    except Exception as e:  # noqa: BLE001 - any agent fault is recorded, not raised
        status, error = "agent_error", f"reset: {_describe(e)}"
    while status == "ok":
        view = agent_view(sensors, obs, info, static)
        t0 = time.perf_counter_ns()
        try:
            raw = agent.act(view)
        except Exception as e:  # noqa: BLE001
            status, error = "agent_error", _describe(e)
            break
        finally:
            trace.latency_ms.append((time.perf_counter_ns() - t0) / 1e6)
        action, why = gate_action(raw, n_act, scenario.action_names)
        if action is None:
            status, error = "invalid_action", why
            break
        trace.actions.append(action.tolist())
        obs, _, terminated, truncated, info = env.step(action)
        trace.record(info["ego"])
        for observe in observers:
            observe(env, obs, action, info)
        events = info["events"]
        trace.record_events(events)
        if events["collision"]:
            status = "collision"
        elif events["offroad"]:
            status = "offroad"
        if terminated or truncated:
            break
    metrics = episode_metrics(trace, status, scenario.lane_changes_allowed)
    return EpisodeResult(
        agent=agent.name, scenario=scenario.name, seed=int(seed), status=status, metrics=metrics,
        sensors=sensors, device=str(getattr(agent, "device", "cpu")), error=error, trace=trace)
