"""Benchmarks (``drive bench``): medians and ratios against a baseline measured in the same run.

``camera``: every camera the env renders, against highway-env's own
``GrayscaleObservation`` (pygame, offscreen) at the top-down camera's size and scale, on
the same sequence of world states: the top-down ego camera (:mod:`sim.world.render`,
OpenCV), each perspective camera of the rig (:mod:`sim.world.perspective`, ``cam_front``
and ``cam_rear`` at their default 256x128) and ``cam_front`` with its instance mask and
depth image (the label path).  They are interleaved state by state, so machine noise
hits all alike; medians, p90, p99 and ratios of medians from the same run.

highway-env switches its viewer off when ``SDL_VIDEODRIVER=dummy`` (the only way to run
it headless), and then returns all-black frames in no time.  The benchmark switches the
viewer back on (it draws into an offscreen ``pygame.Surface``, which needs no display)
and checks the frame is not blank, so the baseline does its real work.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from highway_env.envs.common.observation import GrayscaleObservation

from agents import make_agent
from sim.geometry.bev import BevCamera
from sim.geometry.frames import hw_to_world_heading, hw_to_world_xy
from sim.harness.episodes import one_inference_thread
from sim.harness.loop import env_sensors_for, run_episode
from sim.harness.run import task_spec
from sim.world.env import DrivingEnv
from sim.world.scenarios import get_scenario


def time_ms(fn) -> float:
    """Wall time of one call of ``fn`` [ms] (``perf_counter_ns``)."""
    t0 = time.perf_counter_ns()
    fn()
    return (time.perf_counter_ns() - t0) / 1e6


CAMERA_ROWS = ("top_down", "cam_front", "cam_rear", "cam_front_labels", "highway_env")
"""The renderers ``drive bench camera`` times, in table order; ``highway_env`` is the baseline."""
_CAMERA_LABELS = {
    "top_down": "top-down ego camera (sim.world.render)",
    "cam_front": "cam_front (sim.world.perspective)",
    "cam_rear": "cam_rear (sim.world.perspective)",
    "cam_front_labels": "cam_front + instance mask + depth",
    "highway_env": "highway-env GrayscaleObservation (pygame)",
}


def _timing_row(name: str, size: tuple[int, int], ms: list[float]) -> dict[str, Any]:
    """One renderer's frame times [ms] -> median, p90, p99 (``size`` is (width, height) [px])."""
    p50, p90, p99 = np.percentile(np.asarray(ms, dtype=np.float64), [50, 90, 99])
    return {
        "renderer": name,
        "label": _CAMERA_LABELS[name],
        "width_px": size[0],
        "height_px": size[1],
        "median_ms": float(p50),
        "p90_ms": float(p90),
        "p99_ms": float(p99),
    }


def bench_camera(
    scenario: str = "highway",
    frames: int = 300,
    size_px: int = 128,
    seed: int = 0,
    warmup: int = 10,
) -> dict[str, Any]:
    """Frame times of every camera on one scenario, interleaved on the same world states.

    Rows (:data:`CAMERA_ROWS`): the top-down ego camera at ``size_px`` (the bird's-eye
    raster, 0.5 m/px at 128 px); each camera of the env's rig (:func:`default_rig`:
    ``cam_front``, ``cam_rear``) at its own size through :meth:`DrivingEnv.render_camera`;
    ``cam_front`` again with the instance mask and depth image (the label path); and the
    baseline, highway-env's ``GrayscaleObservation`` at the top-down camera's size and
    scale.  Every row is one call from the env's state, object arrays included.

    At each of ``frames`` world states (after ``warmup`` untimed ones) each renderer is
    timed once, in an order rotated by one per state, so machine noise and cache order hit
    all rows alike.  The IDM autopilot drives; when an episode ends the next seed starts
    and every renderer draws one untimed frame of the new map first (the perspective
    renderer builds its road mesh once per map).  Ratios are of medians from this run:
    ``vs_highway_env`` = highway-env's median / the row's (above 1: faster than the
    baseline), ``vs_top_down`` = the row's median / the top-down camera's.
    """
    if frames < 1:
        raise ValueError(f"frames must be at least 1, got {frames}")
    name = get_scenario(scenario).name  # an unknown name lists the known ones
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # pygame must not look for a display
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")

    spec = BevCamera(
        width_px=size_px,
        height_px=size_px,
        ego_u_px=(size_px - 1) / 2,
        ego_v_px=round(size_px * 0.78),
    )
    env = DrivingEnv(name, bev=spec, sensors=("autopilot",))
    try:
        _, info = env.reset(seed=seed)
        stock = GrayscaleObservation(
            env.world,
            observation_shape=(size_px, size_px),
            stack_size=1,
            weights=[0.2989, 0.5870, 0.1140],
            scaling=1.0 / spec.metres_per_pixel,
        )
        stock.viewer.enabled = True  # see the module docstring
        if stock.observe().max() == 0:
            raise RuntimeError(
                "highway-env's GrayscaleObservation rendered a blank frame; "
                "the comparison would be meaningless"
            )
        front, rear = env.rig["cam_front"], env.rig["cam_rear"]

        def top_down() -> np.ndarray:
            ego = env.world.vehicle
            return env.renderer.ego_camera(
                spec,
                hw_to_world_xy(ego.position),
                hw_to_world_heading(ego.heading),
                env._scene_objects(),
                ego.LENGTH,
                ego.WIDTH,
            )

        renderers = {
            "top_down": top_down,
            "cam_front": lambda: env.render_camera(front),
            "cam_rear": lambda: env.render_camera(rear),
            "cam_front_labels": lambda: env.render_camera(front, instance=True, depth=True),
            "highway_env": stock.observe,
        }
        sizes = {
            "top_down": (size_px, size_px),
            "highway_env": (size_px, size_px),
            "cam_front": (front.width_px, front.height_px),
            "cam_rear": (rear.width_px, rear.height_px),
            "cam_front_labels": (front.width_px, front.height_px),
        }
        names = list(CAMERA_ROWS)
        times: dict[str, list[float]] = {row: [] for row in names}
        episodes = 1
        for k in range(frames + warmup):
            order = names[k % len(names) :] + names[: k % len(names)]
            for row in order:
                ms = time_ms(renderers[row])
                if k >= warmup:
                    times[row].append(ms)
            _, _, term, trunc, info = env.step(info["autopilot"])
            if term or trunc:
                _, info = env.reset(seed=seed + episodes)
                episodes += 1
                for fn in renderers.values():  # a new map: build its caches untimed
                    fn()
    finally:
        env.close()
    rows = [_timing_row(n, sizes[n], times[n]) for n in names]
    base = next(r for r in rows if r["renderer"] == "highway_env")["median_ms"]
    top = next(r for r in rows if r["renderer"] == "top_down")["median_ms"]
    for row in rows:
        row["vs_highway_env"] = base / row["median_ms"]
        row["vs_top_down"] = row["median_ms"] / top
    return {
        "scenario": name,
        "frames": frames,
        "warmup": warmup,
        "seed": seed,
        "episodes": episodes,
        "size_px": size_px,
        "rows": rows,
    }


def bench_cameras(
    scenarios: tuple[str, ...] = ("highway",), frames: int = 300, size_px: int = 128, seed: int = 0
) -> dict[str, Any]:
    """:func:`bench_camera` on each scenario in turn (names checked before anything runs)."""
    if not scenarios:
        raise ValueError("no scenarios given")
    names = [get_scenario(name).name for name in dict.fromkeys(scenarios)]  # fails fast
    return {
        "benchmark": "camera",
        "frames": frames,
        "size_px": size_px,
        "seed": seed,
        "scenarios": [bench_camera(name, frames, size_px, seed) for name in names],
    }


def format_camera(r: dict[str, Any]) -> str:
    """One table per scenario: median, p90, p99 [ms] and the two ratios of medians."""
    out = []
    for sc in r["scenarios"]:
        if out:
            out.append("")
        out.append(
            f"camera benchmark: {sc['scenario']}, {sc['frames']} world states "
            f"(interleaved, {sc['episodes']} episode(s) from seed {sc['seed']})"
        )
        out.append(
            f"{'renderer':42s} {'size':>7s} {'median ms':>9s} {'p90 ms':>7s} "
            f"{'p99 ms':>7s} {'hw-env/row':>10s} {'row/top-down':>12s}"
        )
        for row in sc["rows"]:
            size = f"{row['width_px']}x{row['height_px']}"
            out.append(
                f"{row['label']:42s} {size:>7s} {row['median_ms']:9.3f} "
                f"{row['p90_ms']:7.3f} {row['p99_ms']:7.3f} "
                f"{row['vs_highway_env']:9.2f}x {row['vs_top_down']:11.2f}x"
            )
    return "\n".join(out)


# -- simulation ------------------------------------------------------------------------------

DOUBLE_TRAFFIC = {"highway": 100, "merge": 20}  # scenarios whose traffic is a vehicles_count


def _record_actions(scenario: str, seed: int, steps: int, overrides: dict) -> list[np.ndarray]:
    """The IDM autopilot's actions over one episode (resetting on a new seed if it ends)."""

    env = DrivingEnv(scenario, sensors=("autopilot",), overrides=overrides)
    _, info = env.reset(seed=seed)
    actions = []
    while len(actions) < steps:
        actions.append(info["autopilot"])
        _, _, term, trunc, info = env.step(info["autopilot"])
        if term or trunc:
            break
    return actions


def _step_times_ms(
    scenario: str, seed: int, actions: list[np.ndarray], overrides: dict, fast: bool
) -> tuple[list[float], list[float]]:
    """(whole ``DrivingEnv.step``, the highway-env world step inside it) per step [ms]."""

    env = DrivingEnv(scenario, sensors=("speed",), overrides=overrides, fast_physics=fast)
    env.reset(seed=seed)
    world_step = env.world.step
    physics: list[float] = []

    def timed_world_step(action):
        t0 = time.perf_counter_ns()
        out = world_step(action)
        physics.append((time.perf_counter_ns() - t0) / 1e6)
        return out

    env.world.step = timed_world_step
    times = [time_ms(lambda a=a: env.step(a)) for a in actions]
    return times, physics


def bench_physics(
    scenario: str, overrides: dict | None = None, steps: int = 200, repeats: int = 3
) -> dict[str, Any]:
    """Stock vs fast physics on the same replayed action sequences, repeats interleaved.

    Each repeat replays one recorded episode open-loop through a stock and a fast env
    (same seed, same actions: identical trajectories), so both do the same work; the
    figure is the median step time over all steps of all repeats.
    """
    overrides = overrides or {}
    stock, fast, stock_phys, fast_phys = [], [], [], []
    for r in range(repeats):
        actions = _record_actions(scenario, r, steps, overrides)
        env_ms, phys_ms = _step_times_ms(scenario, r, actions, overrides, fast=False)
        stock += env_ms
        stock_phys += phys_ms
        env_ms, phys_ms = _step_times_ms(scenario, r, actions, overrides, fast=True)
        fast += env_ms
        fast_phys += phys_ms
    s, f = float(np.median(stock)), float(np.median(fast))
    sp, fp = float(np.median(stock_phys)), float(np.median(fast_phys))
    return {
        "scenario": scenario,
        "overrides": overrides,
        "steps_timed": len(fast),
        "stock_median_ms": s,
        "fast_median_ms": f,
        "stock_steps_per_s": 1000.0 / s,
        "fast_steps_per_s": 1000.0 / f,
        "speedup": s / f,
        "stock_physics_median_ms": sp,
        "fast_physics_median_ms": fp,
        "physics_speedup": sp / fp,
    }


def bench_workers(
    scenario: str = "highway",
    episodes: int = 6,
    workers: tuple[int, ...] = (1, 2),
    duration_s: float | None = None,
) -> list[dict[str, Any]]:
    """Episodes per minute of ``drive run`` (idm, no video) at each worker count.

    Each run is a fresh ``drive run`` process, so every worker count pays the same
    interpreter start-up and imports that a user's command does.
    """

    out = []
    for w in workers:
        with tempfile.TemporaryDirectory() as tmp:
            cmd = [
                sys.executable,
                "-m",
                "sim.cli",
                "run",
                "--agent",
                "idm",
                "--scenario",
                scenario,
                "--episodes",
                str(episodes),
                "--workers",
                str(w),
                "--video",
                "none",
                "--quiet",
                "--out",
                str(Path(tmp) / "run"),
            ]
            if duration_s:
                cmd += ["--duration", str(duration_s)]
            t0 = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True)
            wall = time.perf_counter() - t0
        out.append(
            {
                "scenario": scenario,
                "workers": w,
                "episodes": episodes,
                "wall_s": wall,
                "episodes_per_min": 60.0 * episodes / wall,
            }
        )
    return out


def bench_sim(
    scenarios: tuple[str, ...] = ("lane-keep", "highway", "merge", "roundabout"),
    steps: int = 200,
    repeats: int = 3,
    worker_episodes: int = 6,
) -> dict[str, Any]:
    rows = []
    for name in scenarios:
        rows.append({**bench_physics(name, None, steps, repeats), "traffic": "default"})
        if name in DOUBLE_TRAFFIC:
            rows.append(
                {
                    **bench_physics(name, {"vehicles_count": DOUBLE_TRAFFIC[name]}, steps, repeats),
                    "traffic": "2x",
                }
            )
    counts = (25, 50, 100)
    scaling = [
        bench_physics("highway", {"vehicles_count": n}, steps, repeats) | {"vehicles": n}
        for n in counts
    ]
    for kind in ("stock", "fast"):  # least-squares slope of log(physics ms) on log(N)
        ms = [row[f"{kind}_physics_median_ms"] for row in scaling]
        slope = float(np.polyfit(np.log(counts), np.log(ms), 1)[0])
        for row in scaling:
            row[f"{kind}_growth_exponent"] = slope
    workers = bench_workers("highway", worker_episodes) if worker_episodes else []
    return {
        "benchmark": "sim",
        "steps": steps,
        "repeats": repeats,
        "physics": rows,
        "highway_scaling": scaling,
        "workers": workers,
    }


def format_sim(r: dict[str, Any]) -> str:
    lines = [
        (
            f"median over {r['repeats']} replayed episodes x <= {r['steps']} steps, stock and fast "
            f"alternating (same seeds and actions: identical trajectories). 'env' is a whole "
            f"DrivingEnv.step, 'physics' the highway-env world step inside it"
        ),
        (
            f"{'scenario':12s} {'traffic':8s} {'stock env st/s':>15s} {'fast env st/s':>14s} "
            f"{'env x':>6s} {'physics x':>10s}"
        ),
    ]
    for row in r["physics"]:
        lines.append(
            f"{row['scenario']:12s} {row['traffic']:8s} {row['stock_steps_per_s']:15.0f} "
            f"{row['fast_steps_per_s']:14.0f} {row['speedup']:5.1f}x "
            f"{row['physics_speedup']:9.1f}x"
        )
    lines.append("")
    lines.append("highway step time vs vehicle count")
    lines.append(
        f"{'vehicles':>8s} {'stock physics ms':>17s} {'fast physics ms':>16s} "
        f"{'physics x':>10s} {'env x':>6s}"
    )
    for row in r["highway_scaling"]:
        lines.append(
            f"{row['vehicles']:8d} {row['stock_physics_median_ms']:17.2f} "
            f"{row['fast_physics_median_ms']:16.2f} {row['physics_speedup']:9.1f}x "
            f"{row['speedup']:5.1f}x"
        )
    if r["highway_scaling"]:
        s = r["highway_scaling"][0]
        lines.append(
            f"physics cost ~ N^{s['stock_growth_exponent']:.2f} (stock) vs "
            f"N^{s['fast_growth_exponent']:.2f} (fast), least squares over 25/50/100"
        )
    if r["workers"]:
        lines.append("")
        lines.append("drive run (idm, highway, no video): episodes per minute")
        base = r["workers"][0]["episodes_per_min"]
        for row in r["workers"]:
            lines.append(
                f"  --workers {row['workers']}: {row['episodes_per_min']:6.1f} ep/min "
                f"({row['episodes']} episodes in {row['wall_s']:.1f} s, "
                f"{row['episodes_per_min'] / base:.2f}x)"
            )
    return "\n".join(lines)


# -- planner ---------------------------------------------------------------------------------

PLANNER_BUDGET_MS = 10.0  # [ms] a decision over this counts against the planner


def _latency_row(latency_ms: list[float], step_ms: list[float]) -> dict[str, Any]:
    lat = np.asarray(latency_ms, dtype=np.float64)
    row: dict[str, Any] = {"decisions": len(lat)}
    if len(lat):
        p50, p90, p99 = np.percentile(lat, [50, 90, 99])
        row |= {
            "latency_p50_ms": float(p50),
            "latency_p90_ms": float(p90),
            "latency_p99_ms": float(p99),
            "latency_max_ms": float(lat.max()),
            "latency_mean_ms": float(lat.mean()),
            "over_budget_share": float(np.mean(lat > PLANNER_BUDGET_MS)),
        }
    row["env_step_median_ms"] = float(np.median(step_ms)) if step_ms else None
    return row


def bench_planner(
    scenarios: tuple[str, ...] = ("lane-keep", "highway", "merge", "roundabout"),
    episodes: int = 2,
    agent: str = "expert",
    duration_s: float | None = None,
) -> dict[str, Any]:
    """Per-decision latency of ``agent`` in closed loop: ``episodes`` episodes (seeds
    0..episodes-1) per scenario, in-process through :func:`sim.harness.loop.run_episode`.

    Latency is the loop's own timing of ``agent.act`` (``EpisodeTrace.latency_ms``), so
    the first decision of an episode (map parsing) is in it.  The agent runs as an
    evaluation runs it: prepared first (checkpoints loaded, the rollout compiled), with
    torch on one thread (:func:`~sim.harness.episodes.one_inference_thread`).
    ``env_step_median_ms`` is the median ``DrivingEnv.step`` over the same steps, for scale.
    Names are checked before anything runs.
    """

    if episodes < 1:
        raise ValueError(f"episodes must be at least 1, got {episodes}")
    if not scenarios:
        raise ValueError("no scenarios given")
    overrides = {"duration_s": duration_s} if duration_s is not None else {}
    resolved = [get_scenario(name, **overrides) for name in dict.fromkeys(scenarios)]
    camera = BevCamera()
    bots = [make_agent(agent, task_spec(sc, camera)) for sc in resolved]  # fails fast on a bad name
    rows = []
    for scenario, bot in zip(resolved, bots):
        env = DrivingEnv(scenario, bev=camera, sensors=env_sensors_for(bot))
        env_step = env.step
        step_ms: list[float] = []

        def timed_step(action, env_step=env_step, step_ms=step_ms):
            t0 = time.perf_counter_ns()
            out = env_step(action)
            step_ms.append((time.perf_counter_ns() - t0) / 1e6)
            return out

        env.step = timed_step  # the loop calls env.step; the instance attribute wins
        latency: list[float] = []
        statuses: dict[str, int] = {}
        try:
            bot.prepare()
            with one_inference_thread():
                results = [run_episode(env, bot, seed) for seed in range(episodes)]
            for result in results:
                latency += result.trace.latency_ms
                statuses[result.status] = statuses.get(result.status, 0) + 1
        finally:
            env.close()
        rows.append(
            {
                "scenario": scenario.name,
                "episodes": episodes,
                "statuses": statuses,
                **_latency_row(latency, step_ms),
            }
        )
    return {
        "benchmark": "planner",
        "agent": agent,
        "episodes": episodes,
        "duration_s": duration_s,
        "budget_ms": PLANNER_BUDGET_MS,
        "scenarios": rows,
    }


def format_planner(r: dict[str, Any]) -> str:
    budget = r["budget_ms"]
    over = f"> {budget:g} ms"
    lines = [
        (
            f"planner benchmark: agent {r['agent']}, {r['episodes']} episode(s) per scenario "
            f"(seeds 0..{r['episodes'] - 1}), closed loop. Latency: one agent.act [ms]; "
            f"env step: median DrivingEnv.step [ms]"
        ),
        (
            f"{'scenario':12s} {'decisions':>9s} {'p50':>7s} {'p90':>7s} {'p99':>7s} "
            f"{'max':>7s} {over:>9s} {'env step':>9s}  status"
        ),
    ]
    for row in r["scenarios"]:
        status = ", ".join(f"{k} {v}" for k, v in sorted(row["statuses"].items()))
        if not row["decisions"]:
            lines.append(
                f"{row['scenario']:12s} {0:9d} {'-':>7s} {'-':>7s} {'-':>7s} {'-':>7s} "
                f"{'-':>9s} {'-':>9s}  {status}"
            )
            continue
        step = row["env_step_median_ms"]
        lines.append(
            f"{row['scenario']:12s} {row['decisions']:9d} {row['latency_p50_ms']:7.2f} "
            f"{row['latency_p90_ms']:7.2f} {row['latency_p99_ms']:7.2f} "
            f"{row['latency_max_ms']:7.2f} {100 * row['over_budget_share']:8.1f}% "
            f"{'-' if step is None else f'{step:.2f}':>9s}  {status}"
        )
    return "\n".join(lines)
