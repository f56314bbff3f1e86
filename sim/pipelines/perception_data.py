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
import itertools
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from perception.boxes import Boxes
from perception.corruptions import CORRUPTIONS, DEFAULT_SEVERITY, check_severity, corrupt
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
from perception.metrics import detection_report, match_frame
from sim.arguments import comma_list
from sim.geometry.bev import BevCamera
from sim.geometry.pinhole import CameraRig, PinholeCamera, default_rig
from sim.harness.io import (
    PNG_KEY,
    atomic_path,
    atomic_write_bytes,
    atomic_write_json,
    check_output_file,
    ensure_writable_dir,
    write_json_output,
)
from sim.harness.versions import git_revision, package_versions
from sim.pipelines.preflight import refuse_faults
from sim.world.env import DrivingEnv
from sim.world.scenarios import get_scenario

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


def record_frames(
    scenarios: Sequence[str],
    frames: int,
    out: Path,
    *,
    seed: int = 0,
    every: int = 5,
    per_episode: int = 40,
    camera: BevCamera | None = None,
    cameras: Sequence[str] = (BEV,),
    rig: CameraRig | None = None,
    progress: bool = True,
) -> dict:
    """Record ``frames`` labelled frames of each of ``cameras`` (``bev`` with the spec
    ``camera``, and the ``rig``'s by name) into the dataset folder ``out``; returns the
    manifest.

    At most ``per_episode`` frames come from one episode, so a dataset spans many seeds
    (traffic layouts) rather than a few long drives.

    Scenario faults (``highway:noise=3``) are refused, not applied: frames and labels are a
    pair, and the harness's faults are not all camera faults (``latency``, ``pose``,
    ``speed`` change nothing a frame shows; ``drop`` repeats an earlier frame beside this
    step's labels), while image corruption of clean frames is already reproducible at
    evaluation (``drive eval detector --corrupt``), so a dataset stays clean and reusable.
    Everything is checked (scenarios, cameras, ``out``) before the folder is created.
    """
    if frames < 1 or every < 1 or per_episode < 1:
        raise ValueError(
            f"frames, every and per_episode must be >= 1, got {frames}, {every}, {per_episode}"
        )
    for name in scenarios:
        refuse_faults(get_scenario(name), FAULTS_REFUSED)
    camera = camera or BevCamera()
    rig = rig or default_rig()
    cameras = check_cameras(cameras, rig)
    models = {name: camera if name == BEV else rig[name] for name in cameras}
    _check_out(Path(out))
    out = ensure_writable_dir(out)
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
        arrays = shard_arrays(
            images, buf["poses"], buf["scenario"], buf["seeds"], buf["steps"], buf["labels"]
        )
        name = f"shard-{len(shards):05d}.npz"
        data = io.BytesIO()
        np.savez_compressed(data, **arrays)
        atomic_write_bytes(out / name, data.getvalue())
        shards.append(
            {
                "file": name,
                "frames": len(arrays["pose"]),
                "labels": len(arrays["label_frame"]),
                "sha256": sha256_of(out / name),
            }
        )
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
        "format": FORMAT,
        "version": VERSION,
        "cameras": {name: camera_entry(model) for name, model in models.items()},
        "scenarios": list(scenarios),
        "frames": recorded,
        "labels": total_labels,
        "shards": shards,
        "recorder": {
            "driver": "autopilot (highway-env IDM/MOBIL)",
            "seed": seed,
            "every": every,
            "per_episode": per_episode,
            "episodes": episode,
        },
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "git_revision": git_revision(),
        "versions": package_versions(),
    }
    atomic_write_json(out / MANIFEST, manifest)
    return manifest


FAULTS_REFUSED = (
    "drive perception data cannot apply sensor or actuation faults (it records clean frames "
    "with their labels; corrupt them at evaluation with drive eval detector --corrupt)"
)


def _check_out(out: Path) -> None:
    """Refuse ``out`` before anything is made: a file where the dataset folder or one of its
    parents should be, or a folder that already holds a dataset (its manifest)."""
    if (out / MANIFEST).exists():
        raise FileExistsError(f"{out / MANIFEST} already exists; choose a new --out folder")
    for path in (out, *out.parents):
        if path.exists():
            if not path.is_dir():
                raise FileExistsError(
                    f"{path} is a file; --out {out} must be a folder that holds no dataset"
                )
            return


def _label_frame(
    env: DrivingEnv, obs: dict, info: dict, models: dict, images: dict[str, list]
) -> FrameLabels:
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
        in_view |= (
            fields["visible_fraction"] > 0
            if name == BEV
            else np.isfinite(fields["box_px"][:, 0]) & (boxes.range_m <= LABEL_RANGE_M)
        )
    return FrameLabels(
        boxes.select(in_view),
        ids[in_view],
        {
            name: {key: v[in_view] for key, v in fields.items()}
            for name, fields in per_camera.items()
        },
    )


def dataset_size_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in Path(path).iterdir() if f.is_file())


RIG_DETECTORS = ("geometric", "mono3d")  # read perspective cameras: detect(frame, camera)
BEV_DETECTORS = ("opencv", "learned")  # read the bird's-eye camera: detect(frame)
DETECTORS = BEV_DETECTORS + RIG_DETECTORS
DEPTH_MATCH_M = 4.0  # [m] true positives at this centre distance give the depth errors


def parse_corruptions(text: str) -> list[tuple[str, float | None]]:
    """``"none,noise,blur:2.5"`` -> ``[("none", None), ("noise", None), ("blur", 2.5)]``
    (a severity after a colon; none: the default severity); unknown kinds list the known."""
    out = []
    for item in (c.strip() for c in text.split(",") if c.strip()):
        kind, sep, level = item.partition(":")
        if kind not in CORRUPTIONS:
            raise ValueError(
                f"unknown corruption {kind!r}; known: {', '.join(CORRUPTIONS)} "
                "(a severity after a colon, e.g. noise:40)"
            )
        try:
            severity = float(level) if sep else None
        except ValueError:
            raise ValueError(f"corruption {item!r}: severity {level!r} is not a number") from None
        if severity is not None:
            try:
                severity = check_severity(kind, severity)
            except ValueError as e:
                raise ValueError(f"corruption {item!r}: {e}") from None
        out.append((kind, severity))
    if not out:
        raise ValueError(f"no corruption given; known: {', '.join(CORRUPTIONS)}")
    return out


def corruption_name(kind: str, severity: float | None) -> str:
    level = DEFAULT_SEVERITY[kind] if severity is None else severity
    return kind if kind == "none" else f"{kind}:{level:g}"


def build_detector(spec: str, dataset: FrameDataset, device: str = "auto"):
    """A detector by name for ``drive eval detector``: ``opencv`` / ``learned:DIR`` (the
    bird's-eye camera), ``geometric`` / ``mono3d:DIR`` (perspective cameras).  Returns it and
    the camera model it reads (``"bev"`` or ``"pinhole"``)."""
    kind, _, path = spec.partition(":")
    if kind not in DETECTORS:
        raise ValueError(
            f"unknown detector {spec!r}; known: opencv, learned:CHECKPOINT_DIR, geometric, "
            f"mono3d:CHECKPOINT_DIR"
        )
    if kind in ("learned", "mono3d") and not path:
        raise ValueError(f"the {kind} detector needs its checkpoint: --detector {kind}:DIR")
    if kind in ("opencv", "geometric") and path:
        raise ValueError(f"the {kind} detector takes no checkpoint (got {spec!r})")
    if kind == "opencv":
        from perception.detectors.opencv import OpenCVDetector

        return OpenCVDetector(dataset.camera(BEV)), "bev"
    if kind == "learned":
        from perception.detectors.learned import LearnedDetector

        return LearnedDetector(path, device=device), "bev"
    if kind == "geometric":
        from perception.detectors.geometric import GeometricDetector

        return GeometricDetector(), "pinhole"
    from perception.detectors.mono3d import Mono3DDetector

    return Mono3DDetector(path, device=device), "pinhole"


def evaluate_detector(
    detector,
    dataset: FrameDataset,
    corruption: str = "none",
    severity: float | None = None,
    camera: str = BEV,
) -> dict:
    """nuScenes-style report of ``detector`` on every frame of ``dataset``'s ``camera``,
    optionally corrupted (:mod:`perception.corruptions`): AP per distance threshold and
    range band, the translation (ATE) and orientation (AOE) errors of true positives.

    A bird's-eye detector has ``detect(frame) -> Boxes``; a perspective camera's has
    ``detect(frame, camera) -> Boxes`` (ego frame), and its report also holds ``depth``:
    for every true positive at :data:`DEPTH_MATCH_M`, the label's depth and the detection's
    depth error along the camera's axis [m] (``gt_depth_m``, ``error_m``)."""
    model = dataset.camera(camera)
    rig = isinstance(model, PinholeCamera)
    pairs = []
    for k, (frame, labels, _) in enumerate(dataset.iter_frames(camera)):
        image = corrupt(frame, corruption, severity, seed=k)
        pairs.append((detector.detect(image, model) if rig else detector.detect(image), labels))
    report = detection_report(pairs)
    report["frames"] = len(pairs)
    report["corruption"] = corruption_name(corruption, severity)
    report["camera"] = camera
    if rig:
        report["depth"] = depth_errors(pairs, model)
    return report


def _centre_depth(boxes: Boxes, camera: PinholeCamera) -> np.ndarray:
    h = np.where(np.isfinite(boxes.height_m), boxes.height_m, 1.5)
    return camera.ego_to_camera(np.concatenate([boxes.centre_m, 0.5 * h[:, None]], axis=1))[:, 2]


def depth_errors(pairs, camera: PinholeCamera) -> dict[str, list[float]]:
    """Signed depth error (detection - label, camera-frame z of the box centres) of every
    true positive at :data:`DEPTH_MATCH_M`, with the label's depth."""
    gt_depth, err = [], []
    for det, gt in pairs:
        idx, _ = match_frame(det, gt, DEPTH_MATCH_M)
        tp = idx >= 0
        if tp.any():
            d_det, d_gt = (
                _centre_depth(det.select(tp), camera),
                _centre_depth(gt.select(idx[tp]), camera),
            )
            gt_depth.extend(d_gt.tolist())
            err.extend((d_det - d_gt).tolist())
    return {"gt_depth_m": gt_depth, "error_m": err}


def depth_error_by_band(
    depth: dict, edges_m=(0.0, 10.0, 20.0, 30.0, 40.0, 60.0, 80.0, 120.0)
) -> list[dict]:
    """Median and 90th percentile of |depth error| per label-depth bin."""
    d, e = np.asarray(depth["gt_depth_m"]), np.abs(np.asarray(depth["error_m"]))
    out = []
    for lo, hi in itertools.pairwise(edges_m):
        sel = (d >= lo) & (d < hi)
        out.append(
            {
                "from_m": lo,
                "to_m": hi,
                "n": int(sel.sum()),
                "median_abs_m": float(np.median(e[sel])) if sel.any() else float("nan"),
                "p90_abs_m": float(np.percentile(e[sel], 90)) if sel.any() else float("nan"),
            }
        )
    return out


def plot_depth_errors(
    reports: Sequence[tuple[str, dict]], path: Path, *, kind: str = "drive eval detector"
) -> Path:
    """Depth error against depth, one series per (detector, camera) on clean frames: every
    true positive as a dot, the binned median |error| as a line.  Monocular depth error grows
    about quadratically with range (a pixel of error in the contact row spans more metres
    the farther the car), and the reader should see it."""
    from sim.report.report import subplots

    fig, ax = subplots(figsize=(7.0, 4.2))
    for name, rep in reports:
        if "depth" not in rep or rep["corruption"] != "none" or not rep["depth"]["gt_depth_m"]:
            continue
        d, e = np.asarray(rep["depth"]["gt_depth_m"]), np.abs(np.asarray(rep["depth"]["error_m"]))
        dots = ax.scatter(d, e, s=4, alpha=0.25, label=None)
        bands = [b for b in depth_error_by_band(rep["depth"]) if b["n"]]
        ax.plot(
            [(b["from_m"] + b["to_m"]) / 2 for b in bands],
            [b["median_abs_m"] for b in bands],
            marker="o",
            color=dots.get_facecolor()[0][:3],
            label=f"{name} on {rep['camera']} (median)",
        )
    ax.set_xlabel("label depth along the camera axis [m]")
    ax.set_ylabel("|depth error| [m]")
    ax.set_title("Monocular depth error against range (true positives within 4 m)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, suffix=".png") as tmp:  # tagged with its author: the output policy
        fig.savefig(tmp, format="png", dpi=120, metadata={PNG_KEY: kind})
    return path


def format_detection_report(reports: Sequence[tuple[str, dict]]) -> str:
    """One table: a row per (detector, camera, corruption, range band): AP per threshold,
    then the true positives' translation error (ATE) and orientation error (AOE, modulo
    180 deg) at 2 m, the median |depth error| (perspective cameras), and the labels."""
    first = reports[0][1]
    thresholds = [f"{t:g}m" for t in first["thresholds_m"]]
    head = [
        "detector",
        "camera",
        "corruption",
        "range",
        *(f"AP@{t}" for t in thresholds),
        "ATE m",
        "AOE deg",
        "depth err m",
        "gt",
    ]
    rows = []
    for name, rep in reports:
        d = np.asarray(rep.get("depth", {}).get("gt_depth_m", []))
        e = np.abs(np.asarray(rep.get("depth", {}).get("error_m", [])))
        for band, by_t in rep["bands"].items():
            ap = [by_t[t]["ap"] for t in thresholds]
            tp = by_t["2m"]
            lo, hi = (0.0, np.inf) if band == "all" else _band_limits(band)
            sel = (d >= lo) & (d < hi)
            depth = f"{np.median(e[sel]):.2f}" if sel.any() else "-"
            rows.append(
                [
                    name,
                    rep.get("camera", BEV),
                    rep["corruption"],
                    band,
                    *("-" if np.isnan(a) else f"{a:.3f}" for a in ap),
                    "-" if np.isnan(tp["position_error_m"]) else f"{tp['position_error_m']:.2f}",
                    "-"
                    if np.isnan(tp["heading_error_rad"])
                    else f"{np.degrees(tp['heading_error_rad']):.1f}",
                    depth,
                    str(tp["gt"]),
                ]
            )
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
    line = "  ".join(h.rjust(w) for h, w in zip(head, widths))
    return "\n".join(
        [line, "-" * len(line)] + ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in rows]
    )


def _band_limits(name: str) -> tuple[float, float]:
    """``"20-40m"`` -> (20, 40); ``"40+m"`` -> (40, inf) (the band names of perception.metrics)."""
    if name.endswith("+m"):
        return float(name[:-2]), np.inf
    lo, hi = name[:-1].split("-")
    return float(lo), float(hi)


def eval_detectors_command(args) -> int:
    """``drive eval detector``: every detector of ``--detector`` on every camera it reads of
    the dataset ``--data``, under each ``--corrupt``ion; the table, and optionally the JSON
    (``--out``) and the depth-error plot (``--plot``), both checked before any work."""
    if not args.data:
        raise ValueError(
            "drive eval detector needs --data DIR (a dataset from 'drive perception data')"
        )
    kind = "drive eval detector"
    for option, value, suffix in (("--out", args.out, ".json"), ("--plot", args.plot, ".png")):
        if value:  # the output policy, before any work
            check_output_file(value, kind=kind, force=args.force, option=option, suffixes=(suffix,))
    corruptions = parse_corruptions(args.corrupt)
    dataset = FrameDataset(args.data)
    names = list(comma_list(args.detector))
    if not names:
        raise ValueError(
            "no detector given; known: opencv, learned:CHECKPOINT_DIR, geometric, "
            "mono3d:CHECKPOINT_DIR"
        )
    cameras = list(comma_list(args.cameras)) if args.cameras else list(dataset.cameras)
    for c in cameras:
        dataset.camera(c)  # a camera the dataset lacks is refused with the ones it has
    reports = []
    for name in names:
        det, reads = build_detector(name, dataset, device=args.device)
        mine = [
            c
            for c in cameras
            if isinstance(dataset.cameras[c], PinholeCamera) == (reads == "pinhole")
        ]
        if not mine:
            what = "perspective" if reads == "pinhole" else "bird's-eye"
            raise ValueError(
                f"detector {name!r} reads {what} cameras; the chosen cameras are "
                f"{', '.join(cameras)}"
            )
        for cam in mine:
            for corruption, severity in corruptions:
                reports.append(
                    (name, evaluate_detector(det, dataset, corruption, severity, camera=cam))
                )
    print(
        f"{args.data}: {len(dataset)} frames; nuScenes-style AP, centre distance thresholds; "
        f"ATE, AOE (modulo 180 deg) of true positives at 2 m; depth error of true positives at 4 m"
    )
    print(format_detection_report(reports))
    if args.plot:
        print(f"wrote {plot_depth_errors(reports, Path(args.plot), kind=kind)}")
    if args.out:
        write_json_output(
            args.out,
            {"data": str(args.data), "reports": [{"detector": n, **r} for n, r in reports]},
            kind=kind,
        )
        print(f"wrote {args.out}")
    return 0
