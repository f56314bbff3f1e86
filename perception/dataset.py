"""Auto-labelled camera frames on disk: format version 2, and a reader that trusts nothing.

A dataset is a folder::

    manifest.json        written last: a folder without it is an unfinished recording
    shard-00000.npz      frames and labels, plain arrays (``np.load(allow_pickle=False)``)
    shard-00001.npz      ...

``manifest.json``: ``format`` ("drive-perception-frames"), ``version`` (2), ``cameras``
(an ordered mapping of camera name -> ``{"model": "bev" | "pinhole", "spec": {...}}``: the
bird's-eye :class:`~sim.geometry.bev.BevCamera` or a rig's
:class:`~sim.geometry.pinhole.PinholeCamera` as a dict), ``scenarios`` (names; shards index
into this list), ``frames``, ``labels``, ``shards`` (``file``, ``frames``, ``labels``,
``sha256`` each), ``recorder`` (how it was recorded), ``created``, ``git_revision``,
``versions``.  Version 1 (one bird's-eye camera, 2D labels) is refused with the reason:
record it again.

Each shard holds, for its n frames and m labels, and for each camera ``CAM``:

======================  =====================  ==========================================
array                   shape, dtype           meaning
======================  =====================  ==========================================
CAM.frames              [n, H, W, 3] uint8     the camera's image, RGB
pose                    [n, 3] float64         world x, y [m], heading [rad]
scenario                [n] int16              index into the manifest's ``scenarios``
seed, step              [n] int64, [n] int32   episode seed, step within the episode
label_frame             [m] int32              which frame of the shard a label belongs to
label_id                [m] int64              the object's identity (truth id) in its episode
label_centre_m          [m, 2] float64         box centre, ego frame (x forward, y left)
label_heading_rad       [m] float64            box heading relative to the ego
label_length_m          [m] float64
label_width_m           [m] float64
label_height_m          [m] float64            the box height the renderer draws
label_kind              [m] int8               0 vehicle, 1 obstacle
CAM.visible_px          [m] int32              pixels of the instance mask showing it
CAM.visible_fraction    [m] float32            visible share of its in-image silhouette
CAM.truncation          [m] float32            share of its silhouette outside the image
CAM.box_px              [m, 4] float32         2D box u0, v0, u1, v1 clipped to the image
CAM.centre_px           [m, 2] float32         projected 3D centre (u, v)
CAM.bottom_px           [m, 2] float32         projected footprint centre on the road
CAM.depth_m             [m] float32            camera-frame depth of the 3D centre
======================  =====================  ==========================================

(:func:`perception.labels.camera_labels` and :func:`perception.labels.bev_labels` define
the per-camera fields.)  A frame's labels are every vehicle and obstacle in view of at
least one recorded camera (its silhouette inside a perspective image and its centre within
:data:`perception.labels.LABEL_RANGE_M`, hidden or not; its centre inside the bird's-eye
image); a fully occluded object is there with
``visible_px`` 0, never as visible.  Every shard is checked against its SHA-256 and its
expected shapes when read: a truncated or altered file is refused with its path and the
reason, never skipped.  A shard's ``file`` names a file inside the dataset folder
(resolved, so neither ``../`` nor an absolute path nor a link out of the folder); anything
else is refused.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np

from perception.boxes import Boxes
from perception.labels import MIN_VISIBLE_PX
from sim.geometry.bev import BevCamera
from sim.geometry.pinhole import PinholeCamera

FORMAT = "drive-perception-frames"
VERSION = 2
MANIFEST = "manifest.json"
FRAME_KEYS = ("pose", "scenario", "seed", "step")
LABEL_KEYS = (
    "label_frame",
    "label_id",
    "label_centre_m",
    "label_heading_rad",
    "label_length_m",
    "label_width_m",
    "label_height_m",
    "label_kind",
)
CAMERA_LABEL_KEYS = (
    "visible_px",
    "visible_fraction",
    "truncation",
    "box_px",
    "centre_px",
    "bottom_px",
    "depth_m",
)
CAMERA_MODELS = {"bev": BevCamera, "pinhole": PinholeCamera}
BEV = "bev"  # the bird's-eye camera's name in a dataset


class DatasetError(ValueError):
    """A dataset that cannot be used, with the path and the reason."""


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def camera_entry(camera: BevCamera | PinholeCamera) -> dict:
    """A camera as the manifest stores it: ``{"model": ..., "spec": {...}}``."""
    model = "pinhole" if isinstance(camera, PinholeCamera) else "bev"
    return {"model": model, "spec": camera.to_dict()}


def camera_from_entry(entry: Mapping) -> BevCamera | PinholeCamera:
    """The inverse of :func:`camera_entry` (``ValueError`` on an unknown model)."""
    model = entry.get("model") if isinstance(entry, Mapping) else None
    if model not in CAMERA_MODELS:
        raise ValueError(f"camera model {model!r}; known: {', '.join(CAMERA_MODELS)}")
    return CAMERA_MODELS[model].from_dict(entry.get("spec", {}))


class FrameLabels:
    """One recorded frame's labels: ego-frame 3D boxes, their ids and, per camera, the
    fields of :func:`perception.labels.camera_labels` (the writer's unit)."""

    def __init__(
        self, boxes: Boxes, ids: np.ndarray, cameras: Mapping[str, Mapping[str, np.ndarray]]
    ) -> None:
        self.boxes, self.ids, self.cameras = boxes, np.asarray(ids, dtype=np.int64), dict(cameras)


def shard_arrays(
    frames: Mapping[str, list[np.ndarray]],
    poses: list[np.ndarray],
    scenario: list[int],
    seeds: list[int],
    steps: list[int],
    labels: list[FrameLabels],
) -> dict[str, np.ndarray]:
    """One shard's arrays from per-frame lists (the writer's half of the format); ``frames``
    maps each camera's name to its images."""
    counts = [len(f.boxes) for f in labels]
    total = sum(counts)

    def cat(get, empty: np.ndarray) -> np.ndarray:
        return np.concatenate([get(f) for f in labels]) if total else empty

    out = {f"{cam}.frames": np.stack(images).astype(np.uint8) for cam, images in frames.items()}
    out |= {
        "pose": np.asarray(poses, dtype=np.float64).reshape(-1, 3),
        "scenario": np.asarray(scenario, dtype=np.int16),
        "seed": np.asarray(seeds, dtype=np.int64),
        "step": np.asarray(steps, dtype=np.int32),
        "label_frame": np.repeat(np.arange(len(labels), dtype=np.int32), counts),
        "label_id": cat(lambda f: f.ids, np.zeros(0, np.int64)).astype(np.int64),
        "label_centre_m": cat(lambda f: f.boxes.centre_m, np.zeros((0, 2))).reshape(-1, 2),
        "label_heading_rad": cat(lambda f: f.boxes.heading_rad, np.zeros(0)),
        "label_length_m": cat(lambda f: f.boxes.length_m, np.zeros(0)),
        "label_width_m": cat(lambda f: f.boxes.width_m, np.zeros(0)),
        "label_height_m": cat(lambda f: f.boxes.height_m, np.zeros(0)),
        "label_kind": cat(lambda f: f.boxes.kind, np.zeros(0, np.int8)).astype(np.int8),
    }
    for cam in frames:
        for key in CAMERA_LABEL_KEYS:
            width = {"box_px": (4,), "centre_px": (2,), "bottom_px": (2,)}.get(key, ())
            dtype = np.int32 if key == "visible_px" else np.float32
            parts = [f.cameras[cam][key] for f in labels]
            out[f"{cam}.{key}"] = (
                np.concatenate(parts) if total else np.zeros((0, *width))
            ).astype(dtype)
    return out


class FrameDataset:
    """A recorded dataset, validated on open (manifest) and on every shard read."""

    def __init__(self, path: str | Path, verify: bool = True) -> None:
        self.path = Path(path)
        manifest_path = self.path / MANIFEST
        if not self.path.is_dir():
            raise DatasetError(f"{self.path}: no such dataset folder")
        if not manifest_path.exists():
            raise DatasetError(
                f"{self.path}: no {MANIFEST} (not a dataset, or its recording did not finish)"
            )
        try:
            self.manifest = json.loads(manifest_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise DatasetError(f"{manifest_path}: not valid JSON ({e})") from None
        m = self.manifest
        if not isinstance(m, dict) or m.get("format") != FORMAT:
            raise DatasetError(
                f"{manifest_path}: format is {m.get('format') if isinstance(m, dict) else m!r}, "
                f"expected {FORMAT!r}"
            )
        if m.get("version") != VERSION:
            why = (
                " (one bird's-eye camera and 2D labels, before the camera rig); record it again "
                "with 'drive perception data'"
                if m.get("version") == 1
                else ""
            )
            raise DatasetError(
                f"{manifest_path}: format version {m.get('version')!r}; this code reads "
                f"version {VERSION}{why}"
            )
        for key in ("cameras", "scenarios", "shards", "frames", "labels"):
            if key not in m:
                raise DatasetError(f"{manifest_path}: missing {key!r}")
        self.verify = verify
        if not isinstance(m["shards"], list):
            raise DatasetError(f"{manifest_path}: 'shards' is not a list")
        if not isinstance(m["cameras"], dict) or not m["cameras"]:
            raise DatasetError(f"{manifest_path}: 'cameras' must name at least one camera")
        self.cameras: dict[str, BevCamera | PinholeCamera] = {}
        for name, entry in m["cameras"].items():
            try:
                self.cameras[name] = camera_from_entry(entry)
            except (TypeError, ValueError) as e:
                raise DatasetError(f"{manifest_path}: camera {name!r}: {e}") from None
        for s in m["shards"]:
            f = self._shard_path(s)
            if not f.exists():
                raise DatasetError(f"{f}: listed in the manifest but missing")
        self.scenarios = list(m["scenarios"])

    def _shard_path(self, entry) -> Path:
        """The file a manifest's shard entry names, which must lie inside the dataset folder: a
        manifest never makes the reader open ``../../elsewhere.npz`` or an absolute path."""
        name = entry.get("file") if isinstance(entry, dict) else None
        where = self.path / MANIFEST
        if not isinstance(name, str) or not name:
            raise DatasetError(f"{where}: shard 'file' {name!r} is not a file name")
        root = self.path.resolve()
        f = (root / name).resolve()
        if Path(name).is_absolute() or f == root or not f.is_relative_to(root):
            raise DatasetError(
                f"{where}: shard file {name!r} lies outside the dataset folder {root} "
                "(a manifest may only name files inside its own folder)"
            )
        return self.path / name

    def __len__(self) -> int:
        return int(self.manifest["frames"])

    def camera(self, name: str | None = None) -> BevCamera | PinholeCamera:
        """The camera ``name`` (None: the dataset's only camera); a name it lacks is refused
        with the ones it has."""
        if name is None:
            if len(self.cameras) != 1:
                raise DatasetError(
                    f"{self.path}: holds cameras {', '.join(self.cameras)}; name one"
                )
            return next(iter(self.cameras.values()))
        if name not in self.cameras:
            raise DatasetError(
                f"{self.path}: no camera {name!r}; this dataset has {', '.join(self.cameras)}"
            )
        return self.cameras[name]

    def shard(self, k: int) -> dict[str, np.ndarray]:
        """All arrays of shard ``k``, checked."""
        entry = self.manifest["shards"][k]
        f = self._shard_path(entry)
        if self.verify and sha256_of(f) != entry["sha256"]:
            raise DatasetError(f"{f}: damaged (SHA-256 differs from the manifest's)")
        n, nl = int(entry["frames"]), int(entry["labels"])
        expect = {
            "pose": (n, 3),
            "scenario": (n,),
            "seed": (n,),
            "step": (n,),
            "label_frame": (nl,),
            "label_id": (nl,),
            "label_centre_m": (nl, 2),
            "label_heading_rad": (nl,),
            "label_length_m": (nl,),
            "label_width_m": (nl,),
            "label_height_m": (nl,),
            "label_kind": (nl,),
        }
        for cam, model in self.cameras.items():
            expect[f"{cam}.frames"] = (n, *model.shape)
            expect |= {
                f"{cam}.{key}": (
                    nl,
                    *{"box_px": (4,), "centre_px": (2,), "bottom_px": (2,)}.get(key, ()),
                )
                for key in CAMERA_LABEL_KEYS
            }
        try:
            with np.load(f, allow_pickle=False) as z:
                arrays = {key: z[key] for key in expect}
        except KeyError as e:
            raise DatasetError(f"{f}: missing array {e}") from None
        except Exception as e:  # noqa: BLE001 - zip/npy errors of a damaged file
            raise DatasetError(f"{f}: cannot be read ({type(e).__name__}: {e})") from None
        for key, shape in expect.items():
            if arrays[key].shape != shape:
                raise DatasetError(f"{f}: {key} has shape {arrays[key].shape}, expected {shape}")
        for cam in self.cameras:
            if arrays[f"{cam}.frames"].dtype != np.uint8:
                raise DatasetError(
                    f"{f}: {cam}.frames are {arrays[f'{cam}.frames'].dtype}, expected uint8"
                )
        if nl and (arrays["label_frame"].min() < 0 or arrays["label_frame"].max() >= n):
            raise DatasetError(f"{f}: label_frame indexes outside its {n} frames")
        return arrays

    def iter_frames(
        self,
        camera: str | None = None,
        kinds: Sequence[int] = (0,),
        min_visible_px: int = MIN_VISIBLE_PX,
    ) -> Iterator[tuple[np.ndarray, Boxes, dict]]:
        """Every frame of ``camera`` (None: the only one) with the labels it shows, and its
        metadata (scenario, seed, step, pose, and ``labels``: that camera's per-label fields
        and ``id`` for the boxes returned).

        A label is shown when its kind is in ``kinds`` (default: vehicles) and, in a
        perspective camera, it is in the image with at least ``min_visible_px`` of its pixels
        visible (so by default neither fully occluded nor out-of-view objects; 0 adds the
        hidden ones); in the bird's-eye camera when its centre is in the image (the labels of
        a centre-based detector)."""
        name = (
            camera
            if camera is not None
            else next(iter(self.cameras))
            if len(self.cameras) == 1
            else None
        )
        model = self.camera(name)
        for k in range(len(self.manifest["shards"])):
            a = self.shard(k)
            if isinstance(model, PinholeCamera):
                shown = np.isfinite(a[f"{name}.box_px"][:, 0]) & (
                    a[f"{name}.visible_px"] >= int(min_visible_px)
                )
            else:
                shown = a[f"{name}.visible_fraction"] > 0
            shown &= np.isin(a["label_kind"], np.asarray(kinds))
            for i in range(len(a["pose"])):
                sel = (a["label_frame"] == i) & shown
                labels = Boxes(
                    a["label_centre_m"][sel],
                    a["label_heading_rad"][sel],
                    a["label_length_m"][sel],
                    a["label_width_m"][sel],
                    a["label_kind"][sel],
                    np.ones(int(sel.sum())),
                    a["label_height_m"][sel],
                )
                fields = {key: a[f"{name}.{key}"][sel] for key in CAMERA_LABEL_KEYS}
                fields["id"] = a["label_id"][sel]
                meta = {
                    "scenario": self.scenarios[int(a["scenario"][i])],
                    "seed": int(a["seed"][i]),
                    "step": int(a["step"][i]),
                    "pose": a["pose"][i],
                    "labels": fields,
                }
                yield a[f"{name}.frames"][i], labels, meta
