"""``drive bench pool``: the two episode pools on the same mixed evaluation.

One ``drive eval`` of several agents on several scenarios (each (agent, scenario) pair a
separate batch of seeds, as a real evaluation is) run with the local backend's warm worker
processes (:class:`~sim.harness.parallel.LocalEpisodePool`) and with Ray actors
(:class:`~sim.harness.ray_backend.RayEpisodePool`), the same number of workers each,
alternating ``repeats`` times so that the machine's load falls on both alike.  Each run is
a whole ``run_eval`` into a fresh folder: the pool's start (spawned interpreters, actors)
counts, the Ray cluster's own start does not (it is started once, before the first run,
as a cluster a user joins would already be up).  Reported: median wall time per backend
and the ratio local / Ray; the results per seed must agree (checked).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

AGENTS = ("idm", "expert")
SCENARIOS = ("lane-keep", "highway")
EPISODES = 10  # seeds per (agent, scenario): 2 x 2 x 10 = 40 episodes (docs/suite.md's mix)
DURATION_S = 10.0
TARGET_RATIO = 1.2
"""The local pool's wall time may be at most this multiple of Ray's (issue 30's target)."""


def bench_pool(
    *,
    agents: tuple[str, ...] = AGENTS,
    scenarios: tuple[str, ...] = SCENARIOS,
    episodes: int = EPISODES,
    duration_s: float = DURATION_S,
    workers: int = 2,
    repeats: int = 2,
    ray: bool = True,
) -> dict[str, Any]:
    """Wall time of the same evaluation on each backend, alternated ``repeats`` times."""
    from sim.harness.evaluate import comparable_results, run_eval

    backends = ["local"]
    skipped = None
    if ray:
        try:
            from sim.harness.ray_backend import connect_ray

            connect_ray(None)  # the cluster's own start is not the pool's
            backends.append("ray")
        except ValueError as e:  # Ray not installed: the local row alone, saying why
            skipped = str(e)
    seeds = list(range(episodes))
    times: dict[str, list[float]] = {b: [] for b in backends}
    results: dict[str, Any] = {}
    for _ in range(repeats):
        for backend in backends:
            with tempfile.TemporaryDirectory(prefix="bench-pool-") as tmp:
                t0 = time.perf_counter()
                records = run_eval(
                    Path(tmp) / "eval",
                    list(agents),
                    list(scenarios),
                    seeds,
                    workers=workers,
                    duration_s=duration_s,
                    progress=False,
                    backend=backend,
                )
                times[backend].append(time.perf_counter() - t0)
                results[backend] = comparable_results(records)
    if "ray" in results and results["ray"] != results["local"]:
        raise RuntimeError("the two backends gave different results for the same seeds")
    median = {b: statistics.median(t) for b, t in times.items()}
    return {
        "agents": list(agents),
        "scenarios": list(scenarios),
        "episodes": len(agents) * len(scenarios) * episodes,
        "duration_s": duration_s,
        "workers": workers,
        "repeats": repeats,
        "times_s": times,
        "median_s": median,
        "local_over_ray": median["local"] / median["ray"] if "ray" in median else None,
        "target_ratio": TARGET_RATIO,
        "ray_skipped": skipped,
    }


def format_pool(r: dict[str, Any]) -> str:
    lines = [
        (
            f"episode pools: {r['episodes']} episodes ({', '.join(r['agents'])} on "
            f"{', '.join(r['scenarios'])}, {r['duration_s']:g} s each), {r['workers']} "
            f"workers, {r['repeats']} alternating repeats"
        ),
        f"{'backend':8s} {'median s':>9s} {'runs s':>20s}",
    ]
    for b, t in r["times_s"].items():
        runs = ", ".join(f"{x:.1f}" for x in t)
        lines.append(f"{b:8s} {r['median_s'][b]:9.1f} {runs:>20s}")
    if r["local_over_ray"] is not None:
        verdict = "within" if r["local_over_ray"] <= r["target_ratio"] else "NOT within"
        lines.append(
            f"local / ray = {r['local_over_ray']:.2f} ({verdict} the {r['target_ratio']:g}x "
            "target); results per seed identical"
        )
    else:
        lines.append(f"ray: skipped ({r['ray_skipped']})")
    return "\n".join(lines)
