"""Benchmarks (``drive bench``): medians and ratios against a baseline measured in the same run.

``camera``: the ego camera (:mod:`sim.render`, OpenCV) against highway-env's own
``GrayscaleObservation`` (pygame, offscreen) at the same image size and scale, on the
same sequence of world states.  The two are interleaved state by state, so machine
noise hits both alike.

highway-env switches its viewer off when ``SDL_VIDEODRIVER=dummy`` (the only way to run
it headless), and then returns all-black frames in no time.  The benchmark switches the
viewer back on (it draws into an offscreen ``pygame.Surface``, which needs no display)
and checks the frame is not blank, so the baseline does its real work.
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

from sim.camera import CameraSpec


def _time_ms(fn) -> float:
    t0 = time.perf_counter_ns()
    fn()
    return (time.perf_counter_ns() - t0) / 1e6


def bench_camera(scenario: str = "highway", frames: int = 300, size_px: int = 128,
                 seed: int = 0, warmup: int = 10) -> dict[str, Any]:
    """Time one ego-camera frame vs one highway-env GrayscaleObservation frame."""
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # pygame must not look for a display
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
    from highway_env.envs.common.observation import GrayscaleObservation

    from sim.env import DrivingEnv
    from sim.frames import hw_to_world_heading, hw_to_world_xy

    spec = CameraSpec(width_px=size_px, height_px=size_px, ego_u_px=(size_px - 1) / 2,
                      ego_v_px=round(size_px * 0.78))
    env = DrivingEnv(scenario, camera=spec, sensors=("autopilot",))
    _, info = env.reset(seed=seed)
    stock = GrayscaleObservation(
        env.world, observation_shape=(size_px, size_px), stack_size=1,
        weights=[0.2989, 0.5870, 0.1140], scaling=1.0 / spec.metres_per_pixel)
    stock.viewer.enabled = True  # see the module docstring
    if stock.observe().max() == 0:
        raise RuntimeError("highway-env's GrayscaleObservation rendered a blank frame; "
                           "the comparison would be meaningless")

    def ours() -> np.ndarray:
        ego = env.world.vehicle
        return env.renderer.ego_camera(spec, hw_to_world_xy(ego.position),
                                       hw_to_world_heading(ego.heading), env._scene_objects(),
                                       ego.LENGTH, ego.WIDTH)

    ours_ms, stock_ms = [], []
    for k in range(frames + warmup):
        a, b = _time_ms(ours), _time_ms(stock.observe)
        if k >= warmup:
            ours_ms.append(a)
            stock_ms.append(b)
        _, _, term, trunc, info = env.step(info["autopilot"])
        if term or trunc:
            _, info = env.reset(seed=seed + k + 1)
    env.close()
    o, s = np.median(ours_ms), np.median(stock_ms)
    return {
        "benchmark": "camera",
        "scenario": scenario,
        "frames": frames,
        "size_px": size_px,
        "ego_camera_rgb_median_ms": float(o),
        "ego_camera_rgb_p90_ms": float(np.percentile(ours_ms, 90)),
        "highway_env_grayscale_median_ms": float(s),
        "highway_env_grayscale_p90_ms": float(np.percentile(stock_ms, 90)),
        "speedup_median": float(s / o),
    }


def format_camera(r: dict[str, Any]) -> str:
    return "\n".join([
        f"camera benchmark: {r['scenario']}, {r['size_px']}x{r['size_px']} px, {r['frames']} "
        f"world states (interleaved)",
        f"{'renderer':44s} {'median ms':>10s} {'p90 ms':>8s}",
        f"{'ego camera (sim.render, OpenCV, RGB)':44s} {r['ego_camera_rgb_median_ms']:10.3f} "
        f"{r['ego_camera_rgb_p90_ms']:8.3f}",
        f"{'highway-env GrayscaleObservation (pygame)':44s} "
        f"{r['highway_env_grayscale_median_ms']:10.3f} {r['highway_env_grayscale_p90_ms']:8.3f}",
        f"ratio (highway-env / ours, medians): {r['speedup_median']:.1f}x",
    ])
