"""Recording auto-labelled camera frames (``drive perception data``) and scoring detectors
on them (``drive eval detector``).

Frames come from episodes driven by highway-env's own IDM/MOBIL autopilot (cheap and
privileged: the driving does not matter, the traffic around the camera does); every
``every``-th step is kept so consecutive frames are not near-duplicates, and at most
``per_episode`` frames per episode, so a dataset spans many traffic layouts.  Episodes run
on seeds ``seed, seed+1, ...`` per scenario, round-robin over the scenarios, until
``frames`` are recorded.  Each kept step is recorded by every camera asked for: the
bird's-eye raster (``bev``) and any of the rig's perspective cameras (``cam_front``,
``cam_rear``), each with its 3D auto-labels (visibility from the instance mask rendered in
the same pass as the image, :func:`perception.labels.camera_labels`).  The format is
:mod:`perception.dataset`; shards are written atomically and the manifest last, so an
interrupted recording is refused on read, never mistaken for a complete one.
"""

from __future__ import annotations

import io
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from perception.corruptions import corrupt
from perception.dataset import (
    BEV,
    FORMAT,
    MANIFEST,
    VERSION,
    FrameDataset,
    FrameLabels,
    camera_entry,
    sha256_of,
    shard_arrays,
)
from perception.labels import LABEL_RANGE_M, bev_labels, camera_labels, objects_in_ego
from perception.metrics import detection_report
from sim.geometry.bev import BevCamera
from sim.geometry.pinhole import CameraRig, default_rig
from sim.harness.io import atomic_write_bytes, atomic_write_json, ensure_writable_dir
from sim.harness.versions import git_revision, package_versions
from sim.world.env import DrivingEnv

SHARD_FRAMES = 500  # frames per shard file (~25 MB per camera uncompressed at 128x128)


def known_cameras(rig: CameraRig | None = None) -> tuple[str, ...]:
    """The cameras a dataset can record: ``bev`` and the rig's."""
    return (BEV, *(rig or default_rig()).names)


def check_cameras(names: Sequence[str], rig: CameraRig | None = None) -> tuple[str, ...]:
    """``names`` in order, without repeats; unknown ones are refused with the known ones."""
    known = known_cameras(rig)
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise ValueError(f"unknown camera(s) {unknown or list(names)}; known: {', '.join(known)}")
    return tuple(dict.fromkeys(names))


def record_frames(scenarios: Sequence[str], frames: int, out: Path, *, seed: int = 0, every: int = 5,
                  per_episode: int = 40, camera: BevCamera | None = None,
                  cameras: Sequence[str] = (BEV,), rig: CameraRig | None = None,
                  progress: bool = True) -> dict:
    """Record ``frames`` labelled frames of each of ``cameras`` (``bev`` with the spec
    ``camera``, and the ``rig``'s by name) into the dataset folder ``out``; returns the
    manifest.

    At most ``per_episode`` frames come from one episode, so a dataset spans many seeds
    (traffic layouts) rather than a few long drives.
    """
    if frames < 1 or every < 1 or per_episode < 1:
        raise ValueError(f"frames, every and per_episode must be >= 1, got {frames}, {every}, {per_episode}")
    camera = camera or BevCamera()
    rig = rig or default_rig()
    cameras = check_cameras(cameras, rig)
    models = {name: camera if name == BEV else rig[name] for name in cameras}
    out = ensure_writable_dir(out)
    if (out / MANIFEST).exists():
        raise FileExistsError(f"{out / MANIFEST} already exists; choose a new --out folder")
    sensors = ((BEV,) if BEV in cameras else ()) + ("truth", "pose", "autopilot")
    envs = {s: DrivingEnv(s, bev=camera, sensors=sensors, rig=rig) for s in scenarios}
    shards: list[dict] = []
    buf: dict[str, list] = {"poses": [], "scenario": [], "seeds": [], "steps": [], "labels": []}
    images: dict[str, list] = {name: [] for name in cameras}
    total_labels = 0
    bar = tqdm(total=frames, desc="recording frames", unit="frame", disable=not progress)

    def flush() -> None:
        nonlocal total_labels
        if not buf["poses"]:
            return
        arrays = shard_arrays(images, buf["poses"], buf["scenario"], buf["seeds"], buf["steps"],
                              buf["labels"])
        name = f"shard-{len(shards):05d}.npz"
        data = io.BytesIO()
        np.savez_compressed(data, **arrays)
        atomic_write_bytes(out / name, data.getvalue())
        shards.append({"file": name, "frames": len(arrays["pose"]), "labels": len(arrays["label_frame"]),
                       "sha256": sha256_of(out / name)})
        total_labels += len(arrays["label_frame"])
        for v in (*buf.values(), *images.values()):
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
                        buf["poses"].append(obs["pose"])
                        buf["scenario"].append(k)
                        buf["seeds"].append(ep_seed)
                        buf["steps"].append(step)
                        buf["labels"].append(_label_frame(env, obs, info, models, images))
                        recorded += 1
                        taken += 1
                        bar.update(1)
                        if len(buf["poses"]) >= SHARD_FRAMES:
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
        "format": FORMAT, "version": VERSION,
        "cameras": {name: camera_entry(model) for name, model in models.items()}, "scenarios": list(scenarios),
        "frames": recorded, "labels": total_labels, "shards": shards,
        "recorder": {"driver": "autopilot (highway-env IDM/MOBIL)", "seed": seed, "every": every,
                     "per_episode": per_episode, "episodes": episode},
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "git_revision": git_revision(),
        "versions": package_versions(),
    }
    atomic_write_json(out / MANIFEST, manifest)
    return manifest


def _label_frame(env: DrivingEnv, obs: dict, info: dict, models: dict, images: dict[str, list]) -> FrameLabels:
    """Append each camera's image of the env's current state to ``images`` and return the
    frame's labels: every vehicle and obstacle in view of at least one camera (within
    :data:`~perception.labels.LABEL_RANGE_M` for the perspective ones)."""
    boxes, ids = objects_in_ego(info["truth"], obs["pose"])
    per_camera = {}
    for name, model in models.items():
        if name == BEV:
            images[name].append(obs[BEV])
            per_camera[name] = bev_labels(boxes, model)
        else:
            frame = env.render_camera(model, instance=True)
            images[name].append(frame.image)
            per_camera[name] = camera_labels(boxes, ids, model, frame.instance)
    in_view = np.zeros(len(boxes), dtype=bool)
    for name, fields in per_camera.items():
        in_view |= (fields["visible_fraction"] > 0 if name == BEV else
                    np.isfinite(fields["box_px"][:, 0]) & (boxes.range_m <= LABEL_RANGE_M))
    return FrameLabels(boxes.select(in_view), ids[in_view],
                       {name: {key: v[in_view] for key, v in fields.items()} for name, fields in per_camera.items()})


def dataset_size_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in Path(path).iterdir() if f.is_file())


def evaluate_detector(detector, dataset: FrameDataset, corruption: str = "none",
                      severity: float | None = None, camera: str = BEV) -> dict:
    """nuScenes-style report of ``detector`` (anything with ``detect(frame) -> Boxes``) on
    every frame of ``dataset``'s ``camera``, optionally corrupted
    (:mod:`perception.corruptions`)."""

    pairs = []
    for k, (frame, labels, _) in enumerate(dataset.iter_frames(camera)):
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
