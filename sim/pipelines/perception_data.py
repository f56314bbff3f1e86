"""Recording auto-labelled camera frames (``drive perception data``) and scoring detectors
on them (``drive eval detector``).

Frames come from episodes driven by highway-env's own IDM/MOBIL autopilot (cheap and
privileged: the driving does not matter, the traffic around the camera does); every
``every``-th step is kept so consecutive frames are not near-duplicates, and at most
``per_episode`` frames per episode, so a dataset spans many traffic layouts.  Episodes run
on seeds ``seed, seed+1, ...`` per scenario, round-robin over the scenarios, until
``frames`` are recorded.  The format is :mod:`perception.dataset`; shards are written
atomically and the manifest last, so an interrupted recording is refused on read,
never mistaken for a complete one.
"""

from __future__ import annotations

import io
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from perception.corruptions import corrupt
from perception.dataset import FORMAT, MANIFEST, VERSION, FrameDataset, sha256_of, shard_arrays
from perception.labels import labels_from_truth
from perception.metrics import detection_report
from sim.geometry.camera import CameraSpec
from sim.harness.io import atomic_write_bytes, atomic_write_json, ensure_writable_dir
from sim.harness.versions import git_revision, package_versions
from sim.world.env import DrivingEnv

SHARD_FRAMES = 500  # frames per shard file (~25 MB uncompressed at 128x128)


def record_frames(scenarios: Sequence[str], frames: int, out: Path, *, seed: int = 0, every: int = 5,
                  per_episode: int = 40, camera: CameraSpec | None = None, progress: bool = True) -> dict:
    """Record ``frames`` labelled frames into the dataset folder ``out``; returns the manifest.

    At most ``per_episode`` frames come from one episode, so a dataset spans many seeds
    (traffic layouts) rather than a few long drives.
    """
    if frames < 1 or every < 1 or per_episode < 1:
        raise ValueError(f"frames, every and per_episode must be >= 1, got {frames}, {every}, {per_episode}")
    camera = camera or CameraSpec()
    out = ensure_writable_dir(out)
    if (out / MANIFEST).exists():
        raise FileExistsError(f"{out / MANIFEST} already exists; choose a new --out folder")
    envs = {s: DrivingEnv(s, camera=camera, sensors=("camera", "truth", "pose", "autopilot"))
            for s in scenarios}
    shards: list[dict] = []
    buf: dict[str, list] = {"frames": [], "poses": [], "scenario": [], "seeds": [], "steps": [], "labels": []}
    total_labels = 0
    bar = tqdm(total=frames, desc="recording frames", unit="frame", disable=not progress)

    def flush() -> None:
        nonlocal total_labels
        if not buf["frames"]:
            return
        arrays = shard_arrays(buf["frames"], buf["poses"], buf["scenario"], buf["seeds"], buf["steps"],
                              buf["labels"])
        name = f"shard-{len(shards):05d}.npz"
        data = io.BytesIO()
        np.savez_compressed(data, **arrays)
        atomic_write_bytes(out / name, data.getvalue())
        shards.append({"file": name, "frames": len(arrays["frames"]), "labels": len(arrays["label_frame"]),
                       "sha256": sha256_of(out / name)})
        total_labels += len(arrays["label_frame"])
        for v in buf.values():
            v.clear()

    recorded, episode = 0, 0
    try:
        while recorded < frames:
            for k, name in enumerate(scenarios):
                if recorded >= frames:
                    break
                env = envs[name]
                ep_seed = seed + episode
                obs, info = env.reset(seed=ep_seed)
                step = taken = 0
                while recorded < frames and taken < per_episode:
                    if step % every == 0:
                        buf["frames"].append(obs["camera"])
                        buf["poses"].append(obs["pose"])
                        buf["scenario"].append(k)
                        buf["seeds"].append(ep_seed)
                        buf["steps"].append(step)
                        buf["labels"].append(labels_from_truth(info["truth"], obs["pose"], camera))
                        recorded += 1
                        taken += 1
                        bar.update(1)
                        if len(buf["frames"]) >= SHARD_FRAMES:
                            flush()
                    obs, _, terminated, truncated, info = env.step(info["autopilot"])
                    step += 1
                    if terminated or truncated:
                        break
            episode += 1
        flush()
    finally:
        bar.close()
        for env in envs.values():
            env.close()
    manifest = {
        "format": FORMAT, "version": VERSION, "camera": camera.to_dict(), "scenarios": list(scenarios),
        "frames": recorded, "labels": total_labels, "shards": shards,
        "recorder": {"driver": "autopilot (highway-env IDM/MOBIL)", "seed": seed, "every": every,
                     "per_episode": per_episode, "episodes": episode},
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "git_revision": git_revision(),
        "versions": package_versions(),
    }
    atomic_write_json(out / MANIFEST, manifest)
    return manifest


def dataset_size_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in Path(path).iterdir() if f.is_file())


def evaluate_detector(detector, dataset: FrameDataset, corruption: str = "none",
                      severity: float | None = None) -> dict:
    """nuScenes-style report of ``detector`` (anything with ``detect(frame) -> Boxes``) on
    every frame of ``dataset``, optionally corrupted (:mod:`perception.corruptions`)."""

    pairs = []
    for k, (frame, labels, _) in enumerate(dataset.iter_frames()):
        pairs.append((detector.detect(corrupt(frame, corruption, severity, seed=k)), labels))
    report = detection_report(pairs)
    report["frames"] = len(pairs)
    report["corruption"] = corruption
    return report


def format_detection_report(reports: Sequence[tuple[str, dict]]) -> str:
    """One table: a row per (detector, corruption, range band), AP per threshold."""
    first = reports[0][1]
    thresholds = [f"{t:g}m" for t in first["thresholds_m"]]
    head = ["detector", "corruption", "range", *(f"AP@{t}" for t in thresholds), "pos err m", "gt"]
    rows = []
    for name, rep in reports:
        for band, by_t in rep["bands"].items():
            ap = [by_t[t]["ap"] for t in thresholds]
            rows.append([name, rep["corruption"], band, *("-" if np.isnan(a) else f"{a:.3f}" for a in ap),
                         "-" if np.isnan(by_t["2m"]["position_error_m"]) else f"{by_t['2m']['position_error_m']:.2f}",
                         str(by_t["2m"]["gt"])])
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
    line = "  ".join(h.rjust(w) for h, w in zip(head, widths))
    return "\n".join([line, "-" * len(line)] + ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in rows])
