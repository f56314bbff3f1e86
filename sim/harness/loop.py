"""The control loop: runs an agent in a scenario, one decision per control period.

It hands the agent *only* the sensors it declares, gates every action (wrong shape,
non-finite: the episode ends with ``invalid_action``; ``np.clip`` does not remove NaN),
times every decision, records the ego's ground-truth state per step and scores the
episode (:mod:`sim.harness.metrics`).  A scenario's sensor and actuation faults
(``highway:noise=2``, :mod:`sim.harness.faults`) degrade the view the agent is handed and
delay the actions the world receives; the world, its truth and the metrics stay clean.
An agent that raises (``act``, ``act_batch``, ``reset``) ends its episode with
``agent_error``; a simulator that raises (``env.reset``, ``env.step``: e.g. a world whose
road cannot be built) ends it with ``sim_error``, which is not the agent's fault and is kept
out of its score; one whose decision takes longer than ``decision_timeout_s`` ends it with
``timeout`` - interrupted by ``SIGALRM`` where the loop runs in a process's main thread on
a POSIX system (a hang in Python code, or in C code that returns to Python), judged by
the measured latency otherwise.  The caller's run goes on.
"""

from __future__ import annotations

import signal
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sim.geometry.pinhole import camera_sensors
from sim.harness.faults import FaultInjector
from sim.harness.metrics import EpisodeTrace, episode_metrics
from sim.world.env import INFO_SENSORS, SENSORS, DrivingEnv

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
    sensors = tuple(agent.sensors)
    unknown = [s for s in sensors if s not in SENSORS]
    if unknown:
        raise ValueError(
            f"agent {agent.name!r} declares unknown sensor(s) {unknown}; "
            f"known: {', '.join(SENSORS)}"
        )
    return sensors


def env_sensors_for(agent, *, camera: bool = False) -> tuple[str, ...]:
    """What the env must compute for ``agent`` (plus the top-down camera when a video is
    recorded).  The rig's cameras the agent did not declare are never added: the video
    renders them itself (:class:`sim.report.video.EpisodeVideo`), so a run without a video
    never pays for them and the agent's observations do not depend on the video."""
    sensors = set(check_sensors(agent))
    if camera:
        sensors.add("bev")
    return tuple(s for s in SENSORS if s in sensors)


def agent_view(
    sensors: tuple[str, ...],
    obs: Mapping[str, Any],
    info: Mapping[str, Any],
    static: Mapping[str, Any],
) -> dict[str, Any]:
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


class Episode:
    """One episode's bookkeeping (reset, the declared sensors' view, the scenario's faults,
    gating, stepping, the trace, the status), shared by the one-at-a-time and lock-step loops
    and the demo recorder (:func:`sim.pipelines.record.collect_episode`)."""

    def __init__(
        self,
        env: DrivingEnv,
        sensors: tuple[str, ...],
        seed: int,
        observers: tuple[StepObserver, ...] = (),
        *,
        catch_sim_errors: bool = False,
    ) -> None:
        """``catch_sim_errors``: an exception from ``env.reset`` / ``env.step`` ends the episode
        with status ``sim_error`` (the error recorded) instead of propagating; the control loops
        ask for it, the demo recorder lets a broken simulator stop the recording."""
        self.env, self.sensors, self.seed, self.observers = env, sensors, int(seed), observers
        self.catch_sim_errors = catch_sim_errors
        self.scenario = env.scenario
        self.n_act = env.action_space.shape[0]
        self.trace = EpisodeTrace(dt_s=self.scenario.dt_s)
        self.status, self.error, self.done = "ok", None, False
        self.terminated = self.truncated = False
        self.faults = FaultInjector(
            self.scenario.faults, self.seed, self.scenario.dt_s, cameras=camera_sensors(env.rig)
        )
        self._view: dict[str, Any] | None = None  # this step's (faulty) view, built once
        try:
            self.obs, self.info = env.reset(seed=self.seed)
            self.static = {"map": self.info["map"]} if "map" in self.info else {}
            self.trace.record(self.info["ego"])
        except Exception as e:
            if not catch_sim_errors:
                raise
            self.obs, self.info, self.static = {}, {}, {}
            self.fail("sim_error", f"reset: {_describe(e)}")
            return
        for observe in observers:
            observe(env, self.obs, None, self.info)

    def view(self) -> dict[str, Any]:
        """The declared sensors as the agent reads them this step, through the faults.

        Built once per step and cached: the faults are stateful (a dropped frame repeats the
        last one delivered, noise draws advance), so asking twice must not degrade twice."""
        if self._view is None:
            self._view = self.faults.observe(
                agent_view(self.sensors, self.obs, self.info, self.static)
            )
        return self._view

    def fail(self, status: str, error: str) -> None:
        self.status, self.error, self.done = status, error, True

    def apply(self, raw: Any, latency_ms: float | None) -> None:
        """Gate the agent's output and step the world with it (``latency_ms`` None: an
        action nobody decided in the loop, e.g. the recorder's noisy one: not timed)."""
        if latency_ms is not None:
            self.trace.latency_ms.append(latency_ms)
        action, why = gate_action(raw, self.n_act, self.scenario.action_names)
        if action is None:
            self.fail("invalid_action", why)
            return
        # From here on ``action`` is what the actuators deliver (k steps late under a latency
        # fault): the trace's ``actions`` and the observers hold what the world received, so
        # comfort metrics and videos describe the car's real commands; the agent's decision
        # shows in them k steps later.
        action = self.faults.act(action)
        self._view = None
        try:
            self.obs, _, self.terminated, self.truncated, self.info = self.env.step(action)
            self.trace.record(self.info["ego"])
        except Exception as e:
            if not self.catch_sim_errors:
                raise
            self.fail("sim_error", f"step: {_describe(e)}")
            return
        self.trace.actions.append(action.tolist())
        for observe in self.observers:
            observe(self.env, self.obs, action, self.info)
        events = self.info["events"]
        self.trace.record_events(events)
        if events["collision"]:
            self.status = "collision"
        elif events["offroad"]:
            self.status = "offroad"
        self.done = self.status != "ok" or self.terminated or self.truncated

    def result(self, agent) -> EpisodeResult:
        metrics = episode_metrics(self.trace, self.status, self.scenario.lane_changes_allowed)
        return EpisodeResult(
            agent=agent.name,
            scenario=self.scenario.name,
            seed=self.seed,
            status=self.status,
            metrics=metrics,
            sensors=self.sensors,
            device=str(agent.device),
            error=self.error,
            trace=self.trace,
        )


class DecisionTimeout(BaseException):
    """Raised into an agent's decision by the alarm.  A ``BaseException``, so an agent's own
    ``except Exception`` cannot swallow it."""


now_ns = time.perf_counter_ns
"""The decision clock [ns]: module-level so tests can stand a fake clock in for it (a slow
decision without sleeping)."""


def _on_alarm(signum, frame) -> None:
    raise DecisionTimeout()


@contextmanager
def _alarm(limit_s: float | None) -> Iterator[Callable[[bool], None]]:
    """Yields ``arm(on)``: start (``True``) or stop (``False``) the per-decision alarm.  A
    no-op where signals cannot interrupt (no limit, not the main thread, no SIGALRM)."""
    usable = (
        bool(limit_s)
        and hasattr(signal, "setitimer")
        and threading.current_thread() is threading.main_thread()
    )
    if not usable:
        yield lambda on: None
        return
    previous = signal.signal(signal.SIGALRM, _on_alarm)

    def arm(on: bool) -> None:
        signal.setitimer(signal.ITIMER_REAL, float(limit_s) if on else 0.0)

    try:
        yield arm
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0.0)
        signal.signal(signal.SIGALRM, previous)


def _decide(
    arm: Callable[[bool], None], limit_s: float | None, call: Callable[..., Any], *args: Any
) -> tuple[Any, str, str | None, float]:
    """One timed decision ``call(*args)`` under the alarm: ``(raw, status, error, latency_ms)`` with
    status ``ok``, ``agent_error`` (it raised) or ``timeout`` (interrupted, or slower than the limit
    where no alarm could interrupt it)."""
    t0 = now_ns()
    raw, status, error = None, "ok", None
    try:
        arm(True)
        try:
            raw = call(*args)
        finally:
            arm(False)
    except DecisionTimeout:
        status = "timeout"
    except Exception as e:  # noqa: BLE001 - any agent fault is recorded, not raised
        status, error = "agent_error", _describe(e)
    latency = (now_ns() - t0) / 1e6
    if status == "ok" and limit_s and latency > 1e3 * limit_s:
        status = "timeout"
    if status == "timeout":
        error = (
            f"a decision took longer than the {limit_s:g} s limit "
            f"(stopped after {latency / 1e3:.2f} s)"
        )
    return raw, status, error, latency


def _check_env(env: DrivingEnv, agent, sensors: tuple[str, ...]) -> None:
    missing = [s for s in sensors if s not in env.sensors]
    if missing:
        raise ValueError(
            f"env does not compute sensor(s) {missing} that agent "
            f"{agent.name!r} declares; build it with env_sensors_for(agent)"
        )


def run_episode(
    env: DrivingEnv,
    agent,
    seed: int,
    observers: tuple[StepObserver, ...] = (),
    decision_timeout_s: float | None = None,
) -> EpisodeResult:
    """Run one episode of ``agent`` in ``env`` from ``seed``; never raises for agent faults
    (``agent_error``) nor for the simulator's (``sim_error``)."""
    sensors = check_sensors(agent)
    _check_env(env, agent, sensors)
    ep = Episode(env, sensors, seed, observers, catch_sim_errors=True)
    if not ep.done:  # a world that could not be reset is a sim_error already
        try:
            agent.reset(seed=int(seed))
        except Exception as e:  # noqa: BLE001 - any agent fault is recorded, not raised
            ep.fail("agent_error", f"reset: {_describe(e)}")
    with _alarm(decision_timeout_s) as arm:
        while not ep.done:
            view = ep.view()
            raw, status, error, latency = _decide(arm, decision_timeout_s, agent.act, view)
            if status != "ok":
                ep.trace.latency_ms.append(latency)
                ep.fail(status, error)
                break
            ep.apply(raw, latency)
    return ep.result(agent)


def run_episodes_lockstep(
    envs: Sequence[DrivingEnv],
    agent,
    seeds: Sequence[int],
    on_result: Callable[[EpisodeResult], None] | None = None,
    decision_timeout_s: float | None = None,
) -> list[EpisodeResult]:
    """Run ``seeds`` on K environments in lock-step, one ``act_batch`` call per step.

    Each environment is a slot; when its episode ends the slot takes the next seed
    (continuous batching), so a GPU serves K cars per forward pass.  Per seed the
    episode is the same as :func:`run_episode`'s for an agent whose outputs do not depend
    on the batch (``e2e`` pads to a batch-invariant size); the decision latency each car
    records is the whole batch's.  An ``act_batch`` that raises or returns the wrong
    shape ends every episode in that batch with ``agent_error`` / ``invalid_action``, one
    past ``decision_timeout_s`` with ``timeout``; an environment that raises ends only its own
    episode, with ``sim_error``.  Results come back in seed order.
    """
    if not agent.lockstep:
        raise ValueError(
            f"agent {agent.name!r} keeps per-episode state without slots and cannot be "
            "stepped in lock-step; run it with --batch 1 (and --workers for parallelism)"
        )
    sensors = check_sensors(agent)
    for env in envs:
        _check_env(env, agent, sensors)
    pending = list(enumerate(int(s) for s in seeds))[::-1]
    active: dict[int, tuple[int, Episode]] = {}
    results: dict[int, EpisodeResult] = {}

    def finish(slot: int) -> None:
        order, ep = active.pop(slot)
        results[order] = r = ep.result(agent)
        if on_result is not None:
            on_result(r)

    def fill(slot: int) -> None:
        while pending:
            order, seed = pending.pop()
            ep = Episode(envs[slot], sensors, seed, catch_sim_errors=True)
            active[slot] = (order, ep)
            if ep.done:  # its world could not be reset: sim_error
                finish(slot)
                continue
            try:
                agent.reset_slot(slot, seed=seed)
            except Exception as e:  # noqa: BLE001
                ep.fail("agent_error", f"reset: {_describe(e)}")
                finish(slot)
                continue
            return

    for slot in range(min(len(envs), len(pending))):
        fill(slot)

    def batch(views: list, slots: list[int]) -> np.ndarray:
        raw = np.asarray(agent.act_batch(views, slots=slots))
        if raw.shape[:1] != (len(slots),):
            raise ValueError(f"act_batch returned shape {raw.shape} for {len(slots)} observations")
        return raw

    with _alarm(decision_timeout_s) as arm:
        while active:
            slots = sorted(active)
            views = [active[s][1].view() for s in slots]
            raw, status, error, latency = _decide(arm, decision_timeout_s, batch, views, slots)
            for k, s in enumerate(slots):
                ep = active[s][1]
                if status != "ok":
                    ep.trace.latency_ms.append(latency)
                    ep.fail(status, error)
                else:
                    ep.apply(raw[k], latency)
                if ep.done:
                    finish(s)
                    fill(s)
    return [results[k] for k in sorted(results)]
