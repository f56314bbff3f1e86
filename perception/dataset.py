"""Auto-labelled camera frames on disk: format version 1, and a reader that trusts nothing.

A dataset is a folder::

    manifest.json        written last: a folder without it is an unfinished recording
    shard-00000.npz      frames and labels, plain arrays (``np.load(allow_pickle=False)``)
    shard-00001.npz      ...

``manifest.json``: ``format`` ("drive-perception-frames"), ``version`` (1), ``camera``
(the ``CameraSpec`` as a dict), ``scenarios`` (names; shards index into this list),
``frames``, ``labels``, ``shards`` (``file``, ``frames``, ``labels``, ``sha256`` each),
``recorder`` (how it was recorded), ``created``, ``git_revision``, ``versions``.

Each shard holds, for its n frames and m labels:

=================  =====================  ===========================================
array              shape, dtype           meaning
=================  =====================  ===========================================
frames             [n, H, W, 3] uint8     ego camera, RGB, row 0 ahead
pose               [n, 3] float64         world x, y [m], heading [rad]
scenario           [n] int16              index into the manifest's ``scenarios``
seed, step         [n] int64, [n] int32   episode seed, step within the episode
label_frame        [m] int32              which frame of the shard a label belongs to
label_centre_m     [m, 2] float64         box centre, ego frame (x forward, y left)
label_heading_rad  [m] float64            box heading relative to the ego
label_length_m     [m] float64
label_width_m      [m] float64
label_kind         [m] int8               0 vehicle, 1 obstacle
=================  =====================  ===========================================

Pixels follow from the camera spec (``perception.labels.boxes_to_pixels``).  Every shard
is checked against its SHA-256 and its expected shapes when read: a truncated or
altered file is refused with its path and the reason, never skipped.  A shard's ``file``
names a file inside the dataset folder (resolved, so neither ``../`` nor an absolute path
nor a link out of the folder); anything else is refused.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from perception.boxes import Boxes

FORMAT = "drive-perception-frames"
VERSION = 1
MANIFEST = "manifest.json"
FRAME_KEYS = ("frames", "pose", "scenario", "seed", "step")
LABEL_KEYS = ("label_frame", "label_centre_m", "label_heading_rad", "label_length_m",
              "label_width_m", "label_kind")


class DatasetError(ValueError):
    """A dataset that cannot be used, with the path and the reason."""


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def shard_arrays(frames: list[np.ndarray], poses: list[np.ndarray], scenario: list[int],
                 seeds: list[int], steps: list[int], labels: list[Boxes]) -> dict[str, np.ndarray]:
    """One shard's arrays from per-frame lists (the writer's half of the format)."""
    counts = [len(b) for b in labels]
    cat = (lambda key, empty: np.concatenate([getattr(b, key) for b in labels])
           if labels and sum(counts) else empty)
    return {
        "frames": np.stack(frames).astype(np.uint8),
        "pose": np.asarray(poses, dtype=np.float64).reshape(-1, 3),
        "scenario": np.asarray(scenario, dtype=np.int16),
        "seed": np.asarray(seeds, dtype=np.int64),
        "step": np.asarray(steps, dtype=np.int32),
        "label_frame": np.repeat(np.arange(len(labels), dtype=np.int32), counts),
        "label_centre_m": cat("centre_m", np.zeros((0, 2))).reshape(-1, 2),
        "label_heading_rad": cat("heading_rad", np.zeros(0)),
        "label_length_m": cat("length_m", np.zeros(0)),
        "label_width_m": cat("width_m", np.zeros(0)),
        "label_kind": cat("kind", np.zeros(0, np.int8)).astype(np.int8),
    }


class FrameDataset:
    """A recorded dataset, validated on open (manifest) and on every shard read."""

    def __init__(self, path: str | Path, verify: bool = True) -> None:
        self.path = Path(path)
        manifest_path = self.path / MANIFEST
        if not self.path.is_dir():
            raise DatasetError(f"{self.path}: no such dataset folder")
        if not manifest_path.exists():
            raise DatasetError(f"{self.path}: no {MANIFEST} (not a dataset, or its recording did not "
                               f"finish)")
        try:
            self.manifest = json.loads(manifest_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise DatasetError(f"{manifest_path}: not valid JSON ({e})") from None
        m = self.manifest
        if not isinstance(m, dict) or m.get("format") != FORMAT:
            raise DatasetError(f"{manifest_path}: format is {m.get('format') if isinstance(m, dict) else m!r}, "
                               f"expected {FORMAT!r}")
        if m.get("version") != VERSION:
            raise DatasetError(f"{manifest_path}: format version {m.get('version')!r}; this code reads "
                               f"version {VERSION}")
        for key in ("camera", "scenarios", "shards", "frames", "labels"):
            if key not in m:
                raise DatasetError(f"{manifest_path}: missing {key!r}")
        self.verify = verify
        if not isinstance(m["shards"], list):
            raise DatasetError(f"{manifest_path}: 'shards' is not a list")
        for s in m["shards"]:
            f = self._shard_path(s)
            if not f.exists():
                raise DatasetError(f"{f}: listed in the manifest but missing")
        self.camera = dict(m["camera"])
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
            raise DatasetError(f"{where}: shard file {name!r} lies outside the dataset folder {root} "
                               "(a manifest may only name files inside its own folder)")
        return self.path / name

    def __len__(self) -> int:
        return int(self.manifest["frames"])

    @property
    def shape(self) -> tuple[int, int, int]:
        return (int(self.camera["height_px"]), int(self.camera["width_px"]), 3)

    def shard(self, k: int) -> dict[str, np.ndarray]:
        """All arrays of shard ``k``, checked."""
        entry = self.manifest["shards"][k]
        f = self._shard_path(entry)
        if self.verify and sha256_of(f) != entry["sha256"]:
            raise DatasetError(f"{f}: damaged (SHA-256 differs from the manifest's)")
        try:
            with np.load(f, allow_pickle=False) as z:
                arrays = {key: z[key] for key in FRAME_KEYS + LABEL_KEYS}
        except KeyError as e:
            raise DatasetError(f"{f}: missing array {e}") from None
        except Exception as e:  # noqa: BLE001 - zip/npy errors of a damaged file
            raise DatasetError(f"{f}: cannot be read ({type(e).__name__}: {e})") from None
        n, nl = int(entry["frames"]), int(entry["labels"])
        expect = {"frames": (n, *self.shape), "pose": (n, 3), "scenario": (n,), "seed": (n,), "step": (n,),
                  "label_frame": (nl,), "label_centre_m": (nl, 2), "label_heading_rad": (nl,),
                  "label_length_m": (nl,), "label_width_m": (nl,), "label_kind": (nl,)}
        for key, shape in expect.items():
            if arrays[key].shape != shape:
                raise DatasetError(f"{f}: {key} has shape {arrays[key].shape}, expected {shape}")
        if arrays["frames"].dtype != np.uint8:
            raise DatasetError(f"{f}: frames are {arrays['frames'].dtype}, expected uint8")
        if nl and (arrays["label_frame"].min() < 0 or arrays["label_frame"].max() >= n):
            raise DatasetError(f"{f}: label_frame indexes outside its {n} frames")
        return arrays

    def iter_frames(self) -> Iterator[tuple[np.ndarray, Boxes, dict]]:
        """Every frame with its labels and its metadata (scenario, seed, step, pose)."""
        for k in range(len(self.manifest["shards"])):
            a = self.shard(k)
            for i in range(len(a["frames"])):
                sel = a["label_frame"] == i
                labels = Boxes(a["label_centre_m"][sel], a["label_heading_rad"][sel], a["label_length_m"][sel],
                               a["label_width_m"][sel], a["label_kind"][sel], np.ones(int(sel.sum())))
                meta = {"scenario": self.scenarios[int(a["scenario"][i])], "seed": int(a["seed"][i]),
                        "step": int(a["step"][i]), "pose": a["pose"][i]}
                yield a["frames"][i], labels, meta
