"""``drive run``: one agent, one scenario, a list of seeds -> episodes.jsonl (+ a video).

The run folder gets ``config.json`` first (what ran, with versions and git revision),
then per finished episode one ``episodes.jsonl`` line and a per-step trace
``traces/{scenario}__{agent}__{seed}.npz`` (pose, speed, action, offsets, TTC, latency,
lane-departure events; load with ``np.load(path)``), all written atomically, so an
interrupted run keeps every episode it finished.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
from tqdm import tqdm

from agents import make_agent
from sim.geometry.bev import BevCamera
from sim.harness.episodes import (  # noqa: F401 - re-exported: the run's public names
    EpisodeRunner,
    ObserverFactory,
    one_inference_thread,
    save_trace,
    scenario_record,
    task_spec,
)
from sim.harness.io import append_jsonl, atomic_write_json, ensure_writable_dir
from sim.harness.metrics import scored
from sim.harness.parallel import LocalEpisodePool, failure_record, fault_requested
from sim.harness.ray_backend import RayEpisodePool
from sim.harness.versions import git_revision, package_versions
from sim.world.scenarios import Scenario


class VideoOutput(ObserverFactory, Protocol):
    """A video file a run is handed (:class:`sim.report.video.VideoFile`): the observer
    factory of its first episode, and the file's own output policy."""

    path: Path

    def check(self, force: bool = False) -> None:
        """Refuse, before any work, a path that may not be written (``force``: replace)."""
        ...


BACKENDS = ("local", "ray")
"""Where :func:`run_seeds` runs episodes: this machine's processes, or a Ray cluster."""


def default_run_dir(scenario: str, agent: str, seed: int) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"run__{scenario}__{agent}__seed{seed}__{stamp}"


def run_agent(
    agent_name: str,
    scenario: Scenario,
    seeds: Sequence[int],
    out_dir: Path,
    *,
    video: VideoOutput | None = None,
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
    """Run ``agent_name`` on ``scenario`` for each seed; write config, episodes and, when
    handed one, the first episode's ``video`` (an observer factory the caller makes, such as
    :class:`sim.report.video.VideoFile`: the harness writes no report itself).  The video's
    path is checked before any work (``overwrite_video``, ``--force``: replace a file drive
    did not write).

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
    if video is not None:
        video.check(force=overwrite_video)
    episodes_path = Path(out_dir) / "episodes.jsonl"
    if episodes_path.exists():
        raise FileExistsError(f"{episodes_path} already exists; choose a new --out folder")
    out_dir = ensure_writable_dir(out_dir)
    if video is not None:
        ensure_writable_dir(video.path.parent)
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
            "video": str(video.path) if video is not None else None,
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
        if fault_requested("pause-after-results", len(records)):
            os.kill(os.getpid(), signal.SIGSTOP)  # a test's known point: until a SIGCONT
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
            video=video,
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
    video: ObserverFactory | None = None,
    batch: int = 1,
    device: str | None = None,
    decision_timeout_s: float | None = None,
    backend: str = "local",
    address: str | None = None,
    pool: RayEpisodePool | LocalEpisodePool | None = None,
) -> None:
    """The episodes of one agent on one scenario, each record handed to ``on_record`` as it
    finishes (in-process, lock-step or over worker processes; ``backend="ray"``: over
    ``workers`` actors of the Ray cluster at ``address``); ``pool``: the warm episode pool
    the caller keeps across (agent, scenario) pairs, :class:`LocalEpisodePool` (local
    backend, several workers) or :class:`~sim.harness.ray_backend.RayEpisodePool`.  Traces
    go to ``out_dir``.  A failing episode is recorded with its status, never raised."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; known: {', '.join(BACKENDS)}")
    if backend == "ray" and (video is not None or batch > 1):
        raise ValueError(
            "the Ray backend runs whole episodes without a video or --batch; "
            "use the local backend for those"
        )
    if backend == "local" and workers == 1:  # in this process
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
            with one_inference_thread():
                if batch > 1:
                    rest = list(seeds)
                    if video is not None and rest:  # the video's episode alone: same result
                        on_record(runner.run(rest.pop(0), video))
                    runner.run_lockstep(rest, batch, on_record)
                for k, seed in enumerate(seeds if batch == 1 else []):
                    try:
                        record = runner.run(seed, video if k == 0 else None)
                    except Exception:  # noqa: BLE001 - as a worker would: record, go on
                        # run_episode records every agent fault itself: what escapes it is the
                        # simulator's or the harness's (a world that cannot be built), not the
                        # agent's
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
        return
    # an episode pool: the caller's (kept warm across pairs), or one for this call alone
    own = None
    if pool is None:
        own = (
            RayEpisodePool(workers, address=address, device=device)
            if backend == "ray"
            else LocalEpisodePool(min(workers, max(1, len(seeds))), device=device)
        )
    with own if own is not None else contextlib.nullcontext():
        (pool or own).run(
            agent_name,
            scenario,
            seeds,
            out_dir,
            on_record,
            camera=camera,
            fast_physics=fast_physics,
            decision_timeout_s=decision_timeout_s,
            **({"video": video} if video is not None else {}),
        )


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
