"""``drive bench data``: what labelled data costs, from the simulator to the trainer's batch.

Issue 31's on-policy distillation needs hundreds of thousands of labelled rig frames, so two
rates bound it, each measured beside its baseline in the same run:

* **recording**: frames/s of ``drive record --sensors rig`` (the expert drives and labels;
  its road crops rendered per step) with 1 and with ``workers`` worker processes; with
  ``--agent e2e:RUN`` also on-policy, the network driving and the expert labelling every
  state it visits (a DAgger round at beta 0);
* **loading**: samples/s of the trainer's batch gather (2 stacked frames, batch 64, the
  photometric augmentation) from the frames in memory and streamed from disk
  (:mod:`agents.e2e.stream`), and the peak memory each load allocates (``tracemalloc``),
  which a streamed load keeps to about one episode whatever the dataset's size.
"""

from __future__ import annotations

import statistics
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np

EPISODES = 4
DURATION_S = 10.0
BATCH = 64
STACK = 2


def bench_data(
    *,
    scenario: str = "highway",
    episodes: int = EPISODES,
    duration_s: float = DURATION_S,
    workers: int = 2,
    learner: str | None = None,
    batches: int = 40,
    repeats: int = 3,
    seed_start: int = 90000,
) -> dict[str, Any]:
    """Recording frames/s (1 vs ``workers`` workers, and on-policy with ``learner``) and the
    loader's samples/s and peak memory (in memory vs streamed) on the recorded data."""
    from agents.e2e.demos import load_demos
    from agents.e2e.model import PilotNetConfig
    from agents.e2e.rig import RigInput
    from agents.e2e.train import BatchMaker, E2ETrainConfig
    from sim.geometry.pinhole import default_rig
    from sim.pipelines.record import NoiseConfig, record_dataset
    from sim.world.scenarios import STEERING_RANGE_RAD, get_scenario

    world = get_scenario(scenario, duration_s=duration_s)
    rig = RigInput.build(default_rig(), ("cam_front",), ())
    seeds = list(range(seed_start, seed_start + episodes))
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-data-") as tmp:
        runs = [("expert", None, 1), ("expert", None, workers)]
        if learner:
            runs.append((f"on-policy {learner}", learner, workers))
        data = None
        for k, (who, student, n) in enumerate(runs):
            out = Path(tmp) / f"rec{k}"
            t0 = time.perf_counter()
            summary = record_dataset(
                world,
                seeds,
                out,
                noise=NoiseConfig(0.0),
                learner=student,
                beta=0.0 if student else 1.0,
                workers=n,
                progress=False,
                rig=rig,
            )
            wall = time.perf_counter() - t0
            rows.append(
                {
                    "driver": who,
                    "workers": n,
                    "frames": int(summary["frames"]),
                    "seconds": wall,
                    "frames_per_s": summary["frames"] / wall,
                }
            )
            data = data or out
        loads: dict[str, Any] = {}
        for how in ("memory", "stream"):
            tracemalloc.start()
            demos = load_demos(data, stream_dir=(Path(tmp) / "stream") if how == "stream" else None)
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            config = PilotNetConfig(
                width="m", image_hw=demos.image_hw, stack=STACK, n_actions=2, cameras=("cam_front",)
            )
            maker = BatchMaker(demos, config, E2ETrainConfig(), STEERING_RANGE_RAD)
            rng = np.random.default_rng(0)
            rates = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                for j in range(batches):
                    maker.batch(rng.integers(0, len(demos), BATCH), augment=True, key=(0, j))
                rates.append(batches * BATCH / (time.perf_counter() - t0))
            loads[how] = {
                "samples_per_s": statistics.median(rates),
                "load_peak_mb": peak / 1e6,
                "frames_mb": demos.frames.nbytes / 1e6,
            }
    return {
        "scenario": world.name,
        "episodes": episodes,
        "duration_s": duration_s,
        "recording": rows,
        "loading": loads,
        "batch": BATCH,
        "stack": STACK,
    }


def format_data(r: dict[str, Any]) -> str:
    lines = [
        (
            f"recording rig demos on {r['scenario']} ({r['episodes']} episodes of "
            f"{r['duration_s']:g} s, cam_front road crops, expert labels)"
        ),
        f"{'driver':40s} {'workers':>7s} {'frames':>7s} {'s':>7s} {'frames/s':>9s}",
    ]
    for row in r["recording"]:
        lines.append(
            f"{row['driver']:40s} {row['workers']:7d} {row['frames']:7d} "
            f"{row['seconds']:7.1f} {row['frames_per_s']:9.0f}"
        )
    lines.append(
        f"loading batches of {r['batch']} ({r['stack']} stacked frames, augmented) from "
        "those frames"
    )
    lines.append(f"{'frames':8s} {'samples/s':>10s} {'load peak MB':>13s} {'frames MB':>10s}")
    for how, row in r["loading"].items():
        lines.append(
            f"{how:8s} {row['samples_per_s']:10.0f} {row['load_peak_mb']:13.1f} "
            f"{row['frames_mb']:10.1f}"
        )
    mem, stream = r["loading"]["memory"], r["loading"]["stream"]
    lines.append(
        f"streamed / in memory: {stream['samples_per_s'] / mem['samples_per_s']:.2f}x the "
        f"samples/s, {stream['load_peak_mb'] / max(mem['load_peak_mb'], 1e-9):.2f}x the peak memory"
    )
    return "\n".join(lines)
