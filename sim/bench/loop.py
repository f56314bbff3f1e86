"""``drive bench loop``: throughput of the whole evaluation harness, per agent.

For each agent, the harness (:func:`sim.harness.run.run_seeds`, what ``drive eval`` runs: env,
sensors, the agent's decision, metrics, the per-step trace written to disk) drives
``highway`` episodes on seeds 0.. with 1 and with 2 worker processes, and reports episodes
per minute and decisions (control steps) per second.  Beside it, in the same run, the loop
people write with stock tools: ``gym.make("highway-v0")`` with ``GrayscaleObservation``
(128x128, 4 stacked frames, the SB3/Atari recipe), continuous actions, the same traffic
(4 lanes, 50 cars) and control frequency (15 Hz), and an (untrained) Stable-Baselines3
``PPO("CnnPolicy")`` choosing every action with ``predict``.  Episodes end at different
times (a crash ends one early), so decisions per second is the figure to compare.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import highway_env  # noqa: F401 - registers highway-v0 (the stock baseline)
import numpy as np
from stable_baselines3 import PPO

from agents import make_agent
from sim.geometry.bev import BevCamera
from sim.harness.run import run_seeds, task_spec
from sim.world.scenarios import get_scenario

AGENTS = ("expert", "modular", "e2e", "idm")
"""Both paradigms from the camera rig (the main comparison's agents)."""


def _harness(spec: str, world, seeds: list[int], workers: int) -> dict[str, Any]:
    records: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="drive-bench-loop-") as tmp:
        t0 = time.perf_counter()
        run_seeds(
            spec,
            world,
            seeds,
            Path(tmp),
            records.append,
            camera=BevCamera(),
            workers=min(workers, len(seeds)),
        )
        wall = time.perf_counter() - t0
    steps = sum(int(r["steps"]) for r in records)
    return {
        "workers": workers,
        "episodes": len(records),
        "steps": steps,
        "wall_s": wall,
        "episodes_per_min": 60.0 * len(records) / wall,
        "decisions_per_s": steps / wall,
        "statuses": sorted(r["status"] for r in records),
    }


def _stock_loop(seeds: list[int], duration_s: float) -> dict[str, Any]:
    """highway-env + GrayscaleObservation + SB3 CnnPolicy.predict, one process."""
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")

    config = {
        "observation": {
            "type": "GrayscaleObservation",
            "observation_shape": (128, 128),
            "stack_size": 4,
            "weights": [0.2989, 0.5870, 0.1140],
            "scaling": 2.0,
        },
        "action": {"type": "ContinuousAction"},
        "lanes_count": 4,
        "vehicles_count": 50,
        "duration": duration_s,
        "policy_frequency": 15,
        "simulation_frequency": 15,
    }
    env = gym.make("highway-v0", config=config)

    def reset(seed: int) -> np.ndarray:
        env.reset(seed=seed)
        # every reset builds a new observation whose viewer highway-env switches off under
        # SDL's dummy driver (black frames); switch it on and observe again, as bench camera does
        obs_type = env.unwrapped.observation_type
        obs_type.viewer.enabled = True
        return obs_type.observe()

    reset(seeds[0])
    model = PPO("CnnPolicy", env, n_steps=64, batch_size=64, seed=0, device="cpu", verbose=0)
    steps, episodes, blank = 0, 0, True
    t0 = time.perf_counter()
    for seed in seeds:
        obs = reset(seed)
        done = False
        while not done:
            action, _ = model.predict(obs, deterministic=True)
            obs, _, terminated, truncated, _ = env.step(action)
            blank = blank and not np.any(obs)
            done = terminated or truncated
            steps += 1
        episodes += 1
    wall = time.perf_counter() - t0
    env.close()
    if blank:
        raise RuntimeError(
            "highway-env's GrayscaleObservation rendered only blank frames; "
            "the baseline would be meaningless"
        )
    return {
        "workers": 1,
        "episodes": episodes,
        "steps": steps,
        "wall_s": wall,
        "episodes_per_min": 60.0 * episodes / wall,
        "decisions_per_s": steps / wall,
    }


def bench_loop(
    agents: tuple[str, ...] = AGENTS,
    episodes: int = 10,
    workers: tuple[int, ...] = (1, 2),
    duration_s: float | None = None,
) -> dict[str, Any]:
    seeds = list(range(episodes))
    world = get_scenario("highway", **({"duration_s": duration_s} if duration_s else {}))
    result: dict[str, Any] = {
        "scenario": "highway",
        "seeds": seeds,
        "duration_s": world.duration_s,
        "agents": {},
    }
    for spec in agents:
        try:  # an agent without its checkpoint is reported, not fatal
            make_agent(spec, task_spec(world, BevCamera())).prepare()
        except Exception as e:  # noqa: BLE001
            result["agents"][spec] = {"skipped": f"{type(e).__name__}: {e}"}
            continue
        result["agents"][spec] = {"runs": [_harness(spec, world, seeds, w) for w in workers]}
    result["baseline"] = _stock_loop(seeds, world.duration_s)
    base = result["baseline"]["decisions_per_s"]
    for row in result["agents"].values():
        for run in row.get("runs", []):
            run["vs_baseline"] = run["decisions_per_s"] / base
    return result


def format_loop(r: dict[str, Any]) -> str:
    lines = [
        (
            f"harness throughput on {r['scenario']}, seeds {r['seeds'][0]}-{r['seeds'][-1]}, "
            f"{r['duration_s']:g} s episodes"
        ),
        f"{'loop':44s} {'workers':>7s} {'episodes/min':>12s} {'decisions/s':>11s} {'vs stock':>8s}",
    ]
    b = r["baseline"]
    lines.append(
        f"{'stock highway-env + SB3 CnnPolicy.predict':44s} {b['workers']:7d} "
        f"{b['episodes_per_min']:12.1f} {b['decisions_per_s']:11.0f} {1.0:7.2f}x"
    )
    for spec, row in r["agents"].items():
        if "skipped" in row:
            lines.append(f"{'drive harness, ' + spec:44s} skipped: {row['skipped']}")
            continue
        for run in row["runs"]:
            lines.append(
                f"{'drive harness, ' + spec:44s} {run['workers']:7d} "
                f"{run['episodes_per_min']:12.1f} {run['decisions_per_s']:11.0f} "
                f"{run['vs_baseline']:7.2f}x"
            )
    return "\n".join(lines)
