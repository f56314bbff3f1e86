"""``drive run``: one agent, one scenario, a list of seeds -> episodes.jsonl (+ a video).

The run folder gets ``config.json`` first (what ran, with versions and git revision),
then per finished episode one ``episodes.jsonl`` line and a per-step trace
``traces/{scenario}__{agent}__{seed}.npz`` (pose, speed, action, offsets, TTC, latency,
lane-departure events; load with ``np.load(path)``), all written atomically, so an
interrupted run keeps every episode it finished.
"""

from __future__ import annotations

import dataclasses
import io
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm import tqdm

from agents import TaskSpec, agent_label, make_agent
from sim.geometry.bev import BevCamera
from sim.geometry.pinhole import CameraRig, default_rig
from sim.harness.io import append_jsonl, atomic_write_bytes, atomic_write_json, ensure_writable_dir
from sim.harness.loop import (
    EpisodeResult,
    env_sensors_for,
    run_episode,
    run_episodes_lockstep,
)
from sim.harness.metrics import scored
from sim.harness.parallel import failure_record, run_parallel
from sim.harness.versions import git_revision, package_versions
from sim.report.video import EpisodeVideo, is_drive_video
from sim.world.env import DrivingEnv
from sim.world.scenarios import ACCELERATION_RANGE_MPS2, STEERING_RANGE_RAD, Scenario

if TYPE_CHECKING:  # the pool's module imports this one (and Ray is optional)
    from sim.harness.ray_backend import RayEpisodePool

BACKENDS = ("local", "ray")
"""Where :func:`run_seeds` runs episodes: this machine's processes, or a Ray cluster."""


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


def default_run_dir(scenario: str, agent: str, seed: int) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"run__{scenario}__{agent}__seed{seed}__{stamp}"


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

    def run(self, seed: int, video_path: Path | None = None) -> dict:
        """One episode -> its ``episodes.jsonl`` record; the trace and video go to disk."""
        video = None
        if video_path is not None:
            env = self._make_env(camera=True)
            # the rig's cameras the agent did not declare are rendered by the video alone
            video = EpisodeVideo(
                video_path,
                agent=self.agent_name,
                seed=int(seed),
                fps=self.scenario.control_hz,
                overlay_source=self.agent,
                rig=env.rig,
                sensors=self.agent.sensors,
            )
            try:
                result = run_episode(
                    env,
                    self.agent,
                    seed,
                    observers=(video,),
                    decision_timeout_s=self.decision_timeout_s,
                )
            except BaseException:
                video.abort()
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
        if video is not None:
            try:
                video.close()
            except Exception as e:  # noqa: BLE001 - report, keep the results
                video.abort()
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


def run_agent(
    agent_name: str,
    scenario: Scenario,
    seeds: Sequence[int],
    out_dir: Path,
    *,
    video_path: Path | None = None,
    camera: BevCamera | None = None,
    workers: int = 1,
    fast_physics: bool = True,
    progress: bool = True,
    argv: Sequence[str] | None = None,
    batch: int = 1,
    device: str | None = None,
    decision_timeout_s: float | None = None,
    overwrite_video: bool = False,
) -> list[dict]:
    """Run ``agent_name`` on ``scenario`` for each seed; write config, episodes and video.

    An existing ``video_path`` is replaced only when it is a video drive wrote
    (:func:`sim.report.video.is_drive_video`) or with ``overwrite_video`` (``--force``).

    Returns the episode records sorted by seed.  With ``workers > 1`` whole episodes run
    in worker processes (:mod:`sim.harness.parallel`); with ``batch > 1`` ``batch`` environments
    are stepped in lock-step with one ``act_batch`` call per step.  Per-seed results are
    the same either way.
    """
    camera = camera or BevCamera()
    probe = make_agent(
        agent_name, task_spec(scenario, camera), device=device
    )  # fails fast on a bad name
    probe.prepare()  # ... and on a missing checkpoint
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    if batch < 1:
        raise ValueError(f"batch must be at least 1, got {batch}")
    if batch > 1 and workers > 1:
        raise ValueError(
            "--batch steps environments in lock-step in one process; use it with --workers 1"
        )
    if batch > 1 and not probe.lockstep:
        raise ValueError(
            f"agent {agent_name!r} keeps per-episode state without slots and cannot be run "
            "with --batch; use --workers for parallel episodes"
        )
    out_dir = ensure_writable_dir(out_dir)
    if video_path is not None:
        if video_path.is_dir():
            raise ValueError(
                f"--video {str(video_path)!r} is a folder; give a file name ending in .mp4"
            )
        if video_path.exists() and not overwrite_video and not is_drive_video(video_path):
            raise FileExistsError(
                f"--video {str(video_path)!r} already exists and is not a video drive wrote; "
                "choose another file name, or pass --force to overwrite it"
            )
        ensure_writable_dir(video_path.parent)
    episodes_path = out_dir / "episodes.jsonl"
    if episodes_path.exists():
        raise FileExistsError(f"{episodes_path} already exists; choose a new --out folder")
    atomic_write_json(
        out_dir / "config.json",
        {
            "command": list(argv) if argv is not None else None,
            "agent": agent_name,
            "sensors": list(probe.sensors),
            "scenario": scenario_record(scenario),
            "camera": camera.to_dict(),
            "seeds": [int(s) for s in seeds],
            "workers": int(workers),
            "batch": int(batch),
            "decision_timeout_s": decision_timeout_s,
            "device": str(probe.device),
            "fast_physics": bool(fast_physics),
            "video": str(video_path) if video_path else None,
            "versions": package_versions(),
            "git_revision": git_revision(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        },
    )
    records: list[dict] = []
    bar = tqdm(
        total=len(seeds),
        desc=f"{agent_name} on {scenario.name}",
        unit="ep",
        disable=not progress,
        dynamic_ncols=True,
    )

    def on_record(record: dict) -> None:
        append_jsonl(episodes_path, record)
        records.append(record)
        bar.set_postfix_str(
            f"seed {record['seed']}: {record['status']}, score {record['driving_score']:.2f}"
        )
        bar.update(1)

    try:
        run_seeds(
            agent_name,
            scenario,
            seeds,
            out_dir,
            on_record,
            camera=camera,
            workers=workers,
            fast_physics=fast_physics,
            video_path=video_path,
            batch=batch,
            device=device,
            decision_timeout_s=decision_timeout_s,
        )
    finally:
        bar.close()
    return sorted(records, key=lambda r: r["seed"])


def run_seeds(
    agent_name: str,
    scenario: Scenario,
    seeds: Sequence[int],
    out_dir: Path,
    on_record: Callable[[dict], None],
    *,
    camera: BevCamera,
    workers: int = 1,
    fast_physics: bool = True,
    video_path: Path | None = None,
    batch: int = 1,
    device: str | None = None,
    decision_timeout_s: float | None = None,
    backend: str = "local",
    address: str | None = None,
    ray_pool: RayEpisodePool | None = None,
) -> None:
    """The episodes of one agent on one scenario, each record handed to ``on_record`` as it
    finishes (in-process, lock-step or over worker processes; ``backend="ray"``: over
    ``workers`` actors of the Ray cluster at ``address``, or of ``ray_pool``, a
    :class:`~sim.harness.ray_backend.RayEpisodePool` kept across calls); traces go to ``out_dir``.
    A failing episode is recorded with its status, never raised."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; known: {', '.join(BACKENDS)}")
    if backend == "ray":
        if video_path is not None or batch > 1:
            raise ValueError(
                "the Ray backend runs whole episodes without a video or --batch; "
                "use the local backend for those"
            )
        # imported here: that module imports this one
        from sim.harness.ray_backend import run_seeds_on_ray

        run_seeds_on_ray(
            agent_name,
            scenario,
            seeds,
            out_dir,
            on_record,
            camera=camera,
            workers=workers,
            fast_physics=fast_physics,
            device=device,
            decision_timeout_s=decision_timeout_s,
            address=address,
            pool=ray_pool,
        )
    elif workers == 1:
        runner = EpisodeRunner(
            agent_name,
            scenario,
            camera,
            fast_physics=fast_physics,
            out_dir=out_dir,
            device=device,
            decision_timeout_s=decision_timeout_s,
        )
        try:
            if batch > 1:
                rest = list(seeds)
                if video_path is not None and rest:  # the video's episode alone: same result
                    on_record(runner.run(rest.pop(0), video_path))
                runner.run_lockstep(rest, batch, on_record)
            for k, seed in enumerate(seeds if batch == 1 else []):
                try:
                    record = runner.run(seed, video_path if k == 0 else None)
                except Exception:  # noqa: BLE001 - as a worker would: record, go on
                    # run_episode records every agent fault itself: what escapes it is the
                    # simulator's or the harness's (a world that cannot be built), not the agent's
                    record = failure_record(
                        agent_name,
                        scenario.name,
                        seed,
                        "episode failed in the simulator: " + traceback.format_exc(limit=8),
                        status="sim_error",
                    )
                on_record(record)
        finally:
            runner.close()
    else:
        run_parallel(
            agent_name,
            scenario,
            seeds,
            workers=workers,
            camera=camera,
            fast_physics=fast_physics,
            out_dir=out_dir,
            video_path=video_path,
            device=device,
            on_record=on_record,
            decision_timeout_s=decision_timeout_s,
        )


def save_trace(path: Path, result: EpisodeResult) -> None:
    """The episode's per-step trace as a plain ``.npz`` (no pickle), written atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    np.savez_compressed(buf, dt_s=np.float64(result.trace.dt_s), **result.trace.arrays())
    atomic_write_bytes(path, buf.getvalue())


SUMMARY_COLUMNS = (
    ("seed", "seed", "{}"),
    ("status", "status", "{}"),
    ("route", "route_completion", "{:.2f}"),
    ("score", "driving_score", "{:.2f}"),
    ("speed m/s", "mean_speed_mps", "{:.1f}"),
    ("lat rms m", "lateral_offset_rms_m", "{:.2f}"),
    ("autonomy %", "autonomy_pct", "{:.0f}"),
    ("min ttc s", "min_ttc_s", "{:.1f}"),
    ("comfort viol", "comfort_violation_rate", "{:.2f}"),
    ("p50 ms", "latency_p50_ms", "{:.2f}"),
    ("p99 ms", "latency_p99_ms", "{:.2f}"),
)


def format_summary(records: Sequence[dict]) -> str:
    """A fixed-width table: one row per episode, then the mean and the status counts.  The mean
    leaves out ``sim_error`` episodes (the simulator's failure, not the agent's), noted apart."""
    head = [c[0] for c in SUMMARY_COLUMNS]
    rows = [
        [fmt.format(r[key]) if key in r else "-" for _, key, fmt in SUMMARY_COLUMNS]
        for r in records
    ]
    agent_records = [r for r in records if scored(r)]
    if records:
        mean_row = ["mean", ""]
        for _, key, fmt in SUMMARY_COLUMNS[2:]:
            values = [r[key] for r in agent_records if key in r]
            mean_row.append(fmt.format(float(np.mean(values))) if values else "-")
        rows.append(mean_row)
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(head)
    ]
    line = "  ".join(h.rjust(w) for h, w in zip(head, widths))
    out = [line, "-" * len(line)]
    for k, r in enumerate(rows):
        if records and k == len(rows) - 1:
            out.append("-" * len(line))
        out.append("  ".join(c.rjust(w) for c, w in zip(r, widths)))
    counts: dict[str, int] = {}
    for r in records:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    out.append("status: " + ", ".join(f"{k} {v}/{len(records)}" for k, v in sorted(counts.items())))
    sim = len(records) - len(agent_records)
    if sim:
        out.append(
            f"not scored: {sim} sim_error episode(s) (the simulator failed, not the agent); "
            "the mean leaves them out"
        )
    return "\n".join(out)
