"""One agent's episodes in one scenario, in this process: the unit every episode pool runs.

:class:`EpisodeRunner` builds the agent once (checkpoints loaded before the first decision)
and runs episodes by seed, each writing its per-step trace (:func:`save_trace`); the local
worker processes (:mod:`sim.harness.parallel`), the Ray actors
(:mod:`sim.harness.ray_backend`) and the in-process path of :mod:`sim.harness.run` all build
one.  It imports no report: a video reaches an episode as an observer factory the caller
hands in (:class:`ObserverFactory`, e.g. :class:`sim.report.video.VideoFile`), so the harness
never writes reports itself.  This module imports nothing else of the harness's pools, which
keeps their import graph a chain: episodes <- parallel <- ray_backend <- run <- evaluate.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from agents import Agent, TaskSpec, agent_label, make_agent
from sim.geometry.bev import BevCamera
from sim.geometry.pinhole import CameraRig, default_rig
from sim.harness.io import atomic_write_bytes
from sim.harness.loop import (
    EpisodeResult,
    env_sensors_for,
    run_episode,
    run_episodes_lockstep,
)
from sim.world.env import DrivingEnv
from sim.world.scenarios import ACCELERATION_RANGE_MPS2, STEERING_RANGE_RAD, Scenario


class EpisodeObserver(Protocol):
    """Watches one episode: called after each step, then closed (or aborted on an error)."""

    def __call__(self, env: DrivingEnv, obs: Any, action: Any, info: dict) -> None: ...

    def close(self) -> Any: ...

    def abort(self) -> None: ...


class ObserverFactory(Protocol):
    """Makes the observer of one episode (the report's video writer); picklable, so a worker
    process builds the observer itself."""

    def __call__(
        self, *, env: DrivingEnv, agent: Agent, agent_name: str, seed: int, fps: float
    ) -> EpisodeObserver: ...


def task_spec(scenario: Scenario, camera: BevCamera, rig: CameraRig | None = None) -> TaskSpec:
    """What an agent is told; ``rig`` defaults to the env's, :func:`default_rig`.  Its
    ``scenario`` is the one whose checkpoints apply (``trained_on``: ``highway`` for
    ``highway:dense`` and for the highway's hazards), never a variant's name."""
    return TaskSpec(
        scenario=scenario.trained_on,
        action_names=scenario.action_names,
        control_hz=float(scenario.control_hz),
        steering_range_rad=STEERING_RANGE_RAD,
        acceleration_range_mps2=ACCELERATION_RANGE_MPS2,
        bev=camera,
        lane_changes_allowed=scenario.lane_changes_allowed,
        uses_command=scenario.uses_command,
        rig=rig if rig is not None else default_rig(),
        cruise_speed_mps=float(scenario.cruise_speed_mps),
    )


def scenario_record(scenario: Scenario) -> dict[str, Any]:
    d = dataclasses.asdict(scenario)
    d["world"] = scenario.world.replace(":", ".")  # module.Class, as older records wrote it
    return d


class EpisodeRunner:
    """Runs single episodes of one agent in one scenario and writes their traces.

    One per process: the in-process path (``--workers 1``) and each worker of
    :mod:`sim.harness.parallel` build their own, so agents and envs never cross processes.
    """

    def __init__(
        self,
        agent_name: str,
        scenario: Scenario,
        camera: BevCamera,
        *,
        fast_physics: bool,
        out_dir: Path,
        device: str | None = None,
        decision_timeout_s: float | None = None,
    ) -> None:
        self.scenario, self.camera, self.fast_physics = scenario, camera, fast_physics
        self.decision_timeout_s = decision_timeout_s
        self.agent_name, self.out_dir = agent_name, out_dir
        self.agent = make_agent(agent_name, task_spec(scenario, camera), device=device)
        # load checkpoints now, so the first decision's latency is a decision's, not a load's;
        # a failure stops the run with its reason (the parent prepared a probe agent the same way)
        self.agent.prepare()
        self._env: DrivingEnv | None = None

    def _make_env(self, camera: bool) -> DrivingEnv:
        return DrivingEnv(
            self.scenario,
            bev=self.camera,
            fast_physics=self.fast_physics,
            sensors=env_sensors_for(self.agent, camera=camera),
        )

    def run(self, seed: int, video: ObserverFactory | None = None) -> dict:
        """One episode -> its ``episodes.jsonl`` record; the trace goes to disk, and the
        observer ``video`` makes (a video writer the caller hands in) watches every step."""
        observer = None
        if video is not None:
            env = self._make_env(camera=True)
            # the rig's cameras the agent did not declare are rendered by the video alone
            observer = video(
                env=env,
                agent=self.agent,
                agent_name=self.agent_name,
                seed=int(seed),
                fps=float(self.scenario.control_hz),
            )
            try:
                result = run_episode(
                    env,
                    self.agent,
                    seed,
                    observers=(observer,),
                    decision_timeout_s=self.decision_timeout_s,
                )
            except BaseException:
                observer.abort()
                raise
            finally:
                env.close()
        else:
            if self._env is None:
                self._env = self._make_env(camera=False)
            result = run_episode(
                self._env, self.agent, seed, decision_timeout_s=self.decision_timeout_s
            )
        self.save(result)
        if observer is not None:
            try:
                observer.close()
            except Exception as e:  # noqa: BLE001 - report, keep the results
                observer.abort()
                print(f"warning: video not written ({type(e).__name__}: {e})")
        return result.record()

    def save(self, result: EpisodeResult) -> dict:
        save_trace(
            self.out_dir
            / "traces"
            / f"{self.scenario.name}__{agent_label(self.agent_name)}__{result.seed}.npz",
            result,
        )
        return result.record()

    def run_lockstep(self, seeds: Sequence[int], batch: int, on_record) -> None:
        """Episodes on ``batch`` environments in lock-step, one ``act_batch`` per step."""
        envs = [self._make_env(camera=False) for _ in range(min(batch, len(seeds)))]
        try:
            run_episodes_lockstep(
                envs,
                self.agent,
                seeds,
                on_result=lambda r: on_record(self.save(r)),
                decision_timeout_s=self.decision_timeout_s,
            )
        finally:
            for env in envs:
                env.close()

    def close(self) -> None:
        if self._env is not None:
            self._env.close()


@contextlib.contextmanager
def one_inference_thread() -> Iterator[None]:
    """Torch's CPU kernels on one intra-op thread while episodes run in this process, as
    in every worker process (:mod:`sim.harness.parallel`, :mod:`sim.harness.ray_backend`),
    and the caller's thread count back after.

    The same seed must give the same episode whatever ``--workers`` is: torch's
    convolutions reduce in an order that depends on the thread count, so a learned
    detector's boxes differ in their last bits between one thread and two, and over an
    episode that difference changed what `modular` did (held-out highway seed 8019 ended in
    a collision with one thread and not with two; docs/planner.md, section 8).  Without
    torch loaded (no learned agent) nothing changes."""
    torch = sys.modules.get("torch")
    if torch is None:
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def save_trace(path: Path, result: EpisodeResult) -> None:
    """The episode's per-step trace as a plain ``.npz`` (no pickle), written atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    np.savez_compressed(buf, dt_s=np.float64(result.trace.dt_s), **result.trace.arrays())
    atomic_write_bytes(path, buf.getvalue())
