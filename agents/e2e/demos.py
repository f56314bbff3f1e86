"""Loading recorded demonstrations (the Minari datasets :mod:`sim.pipelines.record` writes).

:func:`load_demos` reads one or more datasets into memory as flat arrays for training
and checks them as it goes: a dataset that is not one of ours, was written by a newer
recorder, has a truncated or damaged HDF5 file, or whose episodes disagree with their
own lengths is refused with :class:`DemoError` naming the path and the reason; nothing
is skipped silently.  Several datasets (DAgger's rounds) load together when they share
the scenario, camera and action layout.

Every episode carries a content hash (``sha256`` attribute of its HDF5 group, recorded by
:mod:`sim.pipelines.record`; :func:`episode_digest` says what it covers), and the
dataset's ``drive`` block names the scheme (``content_hash``).  Loading recomputes the
hash of every episode it reads and refuses a mismatch with the path and the episode:
bytes flipped inside the frames would otherwise train silently.  Datasets recorded before
hashes existed (no ``content_hash`` in their ``drive`` block) still load, with a one-line
warning on stderr that their damage cannot be detected.
"""

from __future__ import annotations

import hashlib
import json
import sys
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import h5py
import numpy as np

from agents.e2e.stream import FrameFileWriter, RowSubset

DEMO_FORMAT = "drive-demos"
RECORDER_VERSION = 1
DATA_DIR = "data"
RECORDED_SENSORS = ("bev", "speed", "command")
"""The sensors a demo records.  Format 1 stores the bird's-eye frames as ``observations/camera``
(and their :class:`~sim.geometry.bev.BevCamera` as the ``drive`` block's ``camera``), the
sensor's name when the format was fixed."""


HASHED_ARRAYS: tuple[tuple[str, type], ...] = (
    ("observations/camera", np.uint8),
    ("observations/speed", np.float32),
    ("observations/command", np.int64),
    ("actions", np.float32),
    ("rewards", np.float64),
    ("terminations", np.bool_),
    ("truncations", np.bool_),
    ("infos/expert_action", np.float32),
    ("infos/learner_driving", np.int8),
    ("infos/noise", np.float32),
)
"""The arrays of an episode its content hash covers, in this order, each as this dtype."""
CONTENT_HASH = "sha256-v1"
"""The ``drive`` block's ``content_hash``: the scheme of :func:`episode_digest`."""
HASH_ATTR = "sha256"
"""The episode group's attribute holding its :func:`episode_digest`."""


LEAD_LABEL = "infos/lead"
"""The lead auto-label of each state (datasets whose ``drive`` block lists ``"lead"`` in
``auto_labels``): float32[T+1, 2], the bumper gap to the nearest object ahead in the ego's
corridor [m] (capped at :data:`LEAD_RANGE_M`, the cap when none) and its closing speed [m/s]
(0 when none)."""
LEAD_RANGE_M = 60.0
"""[m] The lead label's range: farther (or no) lead reads as this gap."""


def hashed_arrays(
    cameras: Sequence[str] | None = None, side_views: bool = False, lead: bool = False
) -> tuple[tuple[str, type], ...]:
    """The arrays an episode's hash covers: :data:`HASHED_ARRAYS` for a bird's-eye dataset;
    for a rig dataset (``cameras``) each camera's road crops in place of ``observations/camera``,
    and, with recovery views, their frames per camera and their labels; with ``lead`` the
    lead auto-label (:data:`LEAD_LABEL`) last."""
    extra = ((LEAD_LABEL, np.float32),) if lead else ()
    if cameras is None:
        return (*HASHED_ARRAYS, *extra)
    rest = tuple(a for a in HASHED_ARRAYS if a[0] != "observations/camera")
    side = (
        (*((f"infos/side_{c}", np.uint8) for c in cameras), ("infos/side_labels", np.float32))
        if side_views
        else ()
    )
    return (*((f"observations/{c}", np.uint8) for c in cameras), *rest, *side, *extra)


def episode_digest(
    arrays: Mapping[str, np.ndarray], names: tuple[tuple[str, type], ...] = HASHED_ARRAYS
) -> str:
    """SHA-256 (hex) over one episode's arrays ``names`` (:func:`hashed_arrays`), in that order:
    for each its name, dtype and shape, then its bytes (C order).  The recorder hashes the
    arrays it writes, the loader the arrays it reads back: any changed value changes the digest."""
    h = hashlib.sha256()
    for name, dtype in names:
        a = np.ascontiguousarray(np.asarray(arrays[name], dtype=dtype))
        h.update(f"{name}:{a.dtype.str}:{a.shape}\n".encode())
        h.update(a.tobytes())
    return h.hexdigest()


class DemoError(ValueError):
    """A demonstration dataset that cannot be used, with the path and the reason."""


@dataclass
class Demos:
    """Every labelled state of one or more datasets, as flat arrays (row = one state)."""

    frames: np.ndarray
    """uint8[N, H, W, 3] bird's-eye frames, or uint8[N, 66, 200, 3 x cameras] the rig's road
    crops (cameras concatenated on the channel axis, in ``rig["cameras"]`` order); loaded with
    ``stream_dir``, a :class:`~agents.e2e.stream.FrameFile` indexed the same way."""
    speed: np.ndarray
    """float32[N] ego speed [m/s]."""
    command: np.ndarray
    """int64[N] route command index."""
    labels: np.ndarray
    """float32[N, k] the expert's normalised action at each state."""
    episode: np.ndarray
    """int64[N] index into ``episodes`` of each state's episode."""
    step: np.ndarray
    """int64[N] step of the state within its episode (0 = the reset state)."""
    episodes: list[dict] = field(default_factory=list)
    """Per episode: dataset path, seed, scenario, status, driving score, steps."""
    scenario: str = ""
    camera: dict = field(default_factory=dict)
    action_names: tuple[str, ...] = ()
    uses_command: bool = False
    """Whether the scenario's route depends on the ``command`` sensor (a policy must see it)."""
    sources: list[dict] = field(default_factory=list)
    """Per dataset: path, dataset id, recorder version, noise, beta, frames."""
    rig: dict | None = None
    """A rig dataset's :class:`~agents.e2e.rig.RigInput` (cameras, camera models, crops,
    recovery views); None for the bird's-eye frames."""
    side_frames: np.ndarray | None = None
    """uint8[N, V, 66, 200, 3 x cameras]: the recovery views of each state (rig datasets
    recorded with them); streamed like ``frames``."""

    @property
    def streamed(self) -> bool:
        """Whether the frames are read from disk per batch (``load_demos(stream_dir=...)``)."""
        return not isinstance(self.frames, np.ndarray)

    side_labels: np.ndarray | None = None
    """float32[N, V, k]: the expert's action corrected for each recovery view."""
    lead: np.ndarray | None = None
    """float32[N, 2]: the lead auto-label of each state (:data:`LEAD_LABEL`), where every
    dataset loaded carries it; None otherwise."""

    @property
    def image_hw(self) -> tuple[int, int]:
        return (int(self.frames.shape[1]), int(self.frames.shape[2]))

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, episodes: Sequence[int]) -> Demos:
        """The states of ``episodes`` (indices into ``self.episodes``), in that order, as a new
        Demos whose episodes are renumbered 0, 1, ... (frames are copied)."""
        episodes = [int(e) for e in episodes]
        if len(set(episodes)) != len(episodes) or any(
            not 0 <= e < len(self.episodes) for e in episodes
        ):
            raise ValueError(
                f"episode indices must be distinct and in [0, {len(self.episodes)}), got {episodes}"
            )
        rows = [np.flatnonzero(self.episode == e) for e in episodes]
        idx = np.concatenate(rows) if rows else np.zeros(0, np.int64)
        renumber = (
            np.concatenate([np.full(len(r), k, np.int64) for k, r in enumerate(rows)])
            if rows
            else idx
        )

        def rows(a):  # a streamed array stays on disk: a view of its rows
            return a[idx] if isinstance(a, np.ndarray) else RowSubset(a, idx)

        side = (
            {}
            if self.side_frames is None
            else {"side_frames": rows(self.side_frames), "side_labels": self.side_labels[idx]}
        )
        return replace(
            self,
            frames=rows(self.frames),
            speed=self.speed[idx],
            command=self.command[idx],
            labels=self.labels[idx],
            episode=renumber,
            step=self.step[idx],
            episodes=[self.episodes[e] for e in episodes],
            lead=None if self.lead is None else self.lead[idx],
            **side,
        )

    def stacked_indices(self, stack: int, stride: int = 1) -> np.ndarray:
        """int64[N, stack]: row indices of each state's ``stack`` frames, ``stride`` steps
        apart, oldest first (the first frames of an episode repeat its reset frame)."""
        offsets = np.arange(stack - 1, -1, -1) * stride
        back = np.minimum(
            self.step[:, None], offsets[None, :]
        )  # never reach into the previous episode
        return np.arange(len(self))[:, None] - back


def _read_metadata(path: Path) -> dict:
    meta_path = path / DATA_DIR / "metadata.json"
    if not meta_path.exists():
        raise DemoError(
            f"{path}: not a demonstration dataset (no {DATA_DIR}/metadata.json); "
            f"record one with: drive record --out {path}"
        )
    try:
        meta = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DemoError(f"{meta_path}: damaged metadata, not valid JSON ({e})") from None
    drive = meta.get("drive")
    if not isinstance(drive, dict) or drive.get("format") != DEMO_FORMAT:
        raise DemoError(
            f"{meta_path}: a Minari dataset, but not one recorded by `drive record` "
            f"(no 'drive' block of format {DEMO_FORMAT!r})"
        )
    if int(drive.get("recorder_version", 0)) > RECORDER_VERSION:
        raise DemoError(
            f"{meta_path}: recorder version {drive['recorder_version']} is newer than this "
            f"code reads ({RECORDER_VERSION}); update the project"
        )
    return meta


def dataset_info(path: str | Path) -> dict:
    """The dataset's Minari metadata (checked) without loading its frames."""
    return _read_metadata(Path(path))


def _episode_names(f, meta: dict, h5_path: Path) -> list[str]:
    """The HDF5 file's episode groups in recording order, checked against the metadata's count."""
    names = sorted((k for k in f if k.startswith("episode_")), key=lambda k: int(k.split("_")[1]))
    if len(names) != int(meta.get("total_episodes", -1)):
        raise DemoError(
            f"{h5_path}: holds {len(names)} episodes, the metadata says "
            f"{meta.get('total_episodes')}; the dataset is truncated or damaged"
        )
    return names


_TRAINING_ARRAYS = {
    "camera": "observations/camera",
    "speed": "observations/speed",
    "command": "observations/command",
    "actions": "actions",
    "expert_action": "infos/expert_action",
}
"""What training reads of an episode (the hash check reads all of :data:`HASHED_ARRAYS`)."""


def _load_one(
    path: Path, wanted: set[int] | None = None
) -> tuple[dict, Iterator[tuple[dict, dict]]]:
    meta = _read_metadata(path)
    h5_path = path / DATA_DIR / "main_data.hdf5"
    if not h5_path.exists():
        raise DemoError(f"{h5_path}: missing; the dataset is incomplete")
    drive = meta["drive"]
    rig = drive.get("rig")
    if rig is None:
        cam = drive["camera"]
        frame_shape = (int(cam["height_px"]), int(cam["width_px"]), 3)
        cameras = None
    else:
        cameras = list(rig["cameras"])
        h, w = (int(v) for v in rig["crops"][cameras[0]]["out_hw"])
        frame_shape = (h, w, 3 * len(cameras))
    n_side = len(rig.get("side_views", [])) if rig is not None else 0
    has_lead = "lead" in (drive.get("auto_labels") or [])
    names = hashed_arrays(cameras, n_side > 0, has_lead)
    n_act = len(drive["action_names"])
    hashed = drive.get("content_hash")
    if hashed is None:
        print(
            f"warning: {path}: no content hashes (recorded before datasets carried them); damage "
            "to its episodes cannot be detected - record it again to add them",
            file=sys.stderr,
        )
    elif hashed != CONTENT_HASH:
        raise DemoError(
            f"{path / DATA_DIR / 'metadata.json'}: content hash scheme {hashed!r} is not one "
            f"this code reads ({CONTENT_HASH!r}); update the project"
        )
    keys = (
        [k for k, _ in names]
        if hashed is not None
        else [*_TRAINING_ARRAYS.values(), *([LEAD_LABEL] if has_lead else [])]
    )
    return meta, _episodes(
        h5_path, meta, wanted, keys, names, hashed, cameras, n_side, frame_shape, n_act, has_lead
    )


def _episodes(
    h5_path, meta, wanted, keys, names, hashed, cameras, n_side, frame_shape, n_act, has_lead
):
    """Each wanted episode of ``h5_path`` as ``(attrs, arrays)``, checked, one at a time (so a
    streamed load holds one episode in memory)."""
    try:
        with h5py.File(h5_path, "r") as f:
            for i, name in enumerate(_episode_names(f, meta, h5_path)):
                if wanted is not None and i not in wanted:
                    continue
                g = f[name]
                where = f"{h5_path}: {name}"
                try:
                    t = int(g.attrs["total_steps"])
                    read = {key: g[key][()] for key in keys}
                except KeyError as e:
                    raise DemoError(f"{where}: missing {e}; the dataset is damaged") from None
                except Exception as e:  # noqa: BLE001 - h5py's errors for damaged blocks
                    raise DemoError(
                        f"{where}: cannot be read ({type(e).__name__}: {e}); the file is "
                        "truncated or damaged - record it again"
                    ) from None
                if hashed is not None:
                    expected = g.attrs.get(HASH_ATTR)
                    if expected is None:
                        raise DemoError(
                            f"{where}: no content hash, but the dataset was recorded with "
                            "them; the dataset is damaged - record it again"
                        )
                    if episode_digest(read, names) != str(expected):
                        raise DemoError(
                            f"{where}: content hash mismatch (its arrays are not the bytes "
                            "that were recorded); the dataset is damaged - record it again"
                        )
                if cameras is None:
                    arrays = {name: read[key] for name, key in _TRAINING_ARRAYS.items()}
                else:
                    arrays = {
                        name: read[key]
                        for name, key in _TRAINING_ARRAYS.items()
                        if name != "camera"
                    }
                    arrays["camera"] = _channels(read, [f"observations/{c}" for c in cameras])
                    if n_side:
                        arrays["side_frames"] = _channels(
                            read, [f"infos/side_{c}" for c in cameras]
                        )
                        arrays["side_labels"] = read["infos/side_labels"]
                checks = [
                    (
                        arrays["camera"].shape == (t + 1, *frame_shape)
                        and arrays["camera"].dtype == np.uint8,
                        (
                            f"camera {arrays['camera'].shape} {arrays['camera'].dtype}, expected "
                            f"({t + 1}, {', '.join(map(str, frame_shape))}) uint8"
                        ),
                    ),
                    (
                        arrays["speed"].shape[0] == t + 1,
                        f"speed has {arrays['speed'].shape[0]} rows, expected {t + 1}",
                    ),
                    (
                        arrays["command"].shape == (t + 1,),
                        f"command {arrays['command'].shape}, expected ({t + 1},)",
                    ),
                    (
                        arrays["actions"].shape == (t, n_act),
                        f"actions {arrays['actions'].shape}, expected ({t}, {n_act})",
                    ),
                    (
                        arrays["expert_action"].shape == (t + 1, n_act),
                        (
                            f"expert_action {arrays['expert_action'].shape}, expected ({t + 1}, "
                            f"{n_act})"
                        ),
                    ),
                    (bool(np.all(np.isfinite(arrays["expert_action"]))), "non-finite labels"),
                ]
                if has_lead:
                    arrays["lead"] = read[LEAD_LABEL]
                    checks.append(
                        (
                            arrays["lead"].shape == (t + 1, 2)
                            and bool(np.all(np.isfinite(arrays["lead"]))),
                            f"lead labels {arrays['lead'].shape}, expected ({t + 1}, 2) finite",
                        )
                    )
                if n_side:
                    checks += [
                        (
                            arrays["side_frames"].shape == (t + 1, n_side, *frame_shape),
                            (
                                f"side views {arrays['side_frames'].shape}, expected ({t + 1}, "
                                f"{n_side}, {', '.join(map(str, frame_shape))})"
                            ),
                        ),
                        (
                            arrays["side_labels"].shape == (t + 1, n_side, n_act)
                            and bool(np.all(np.isfinite(arrays["side_labels"]))),
                            (
                                f"side labels {arrays['side_labels'].shape}, expected ({t + 1}, "
                                f"{n_side}, {n_act}) finite"
                            ),
                        ),
                    ]
                for ok, why in checks:
                    if not ok:
                        raise DemoError(f"{where}: {why}; the dataset is damaged")
                attrs = {k: (v.item() if hasattr(v, "item") else v) for k, v in g.attrs.items()}
                yield attrs, arrays
                del read, arrays  # hold one episode at a time (a streamed load's memory)
    except DemoError:
        raise
    except Exception as e:  # noqa: BLE001 - h5py's errors for truncated / corrupt files
        raise DemoError(
            f"{h5_path}: cannot be read ({type(e).__name__}: {e}); the file is truncated "
            f"or damaged - record it again"
        ) from None


def _channels(read: dict, keys: list[str]) -> np.ndarray:
    """The cameras' arrays side by side on the channel axis (one camera: no copy)."""
    parts = [read[k] for k in keys]
    return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=-1)


def episode_lengths(paths: str | Path | list[str | Path]) -> list[int]:
    """Labelled states per episode of one or more datasets (in load order), frames unread."""
    out = []
    for p in map(Path, [paths] if isinstance(paths, (str, Path)) else paths):
        meta = _read_metadata(p)
        h5_path = p / DATA_DIR / "main_data.hdf5"
        try:
            with h5py.File(h5_path, "r") as f:
                out += [
                    int(f[n].attrs["total_steps"]) + 1 for n in _episode_names(f, meta, h5_path)
                ]
        except DemoError:
            raise
        except Exception as e:  # noqa: BLE001 - h5py's errors for truncated / corrupt files
            raise DemoError(f"{h5_path}: cannot be read ({type(e).__name__}: {e})") from None
    return out


def load_demos(
    paths: str | Path | list[str | Path],
    episodes: Sequence[int] | None = None,
    stream_dir: str | Path | None = None,
) -> Demos:
    """Load one dataset or several compatible ones (e.g. DAgger's aggregate) into memory;
    ``episodes``: only these (indices over all the datasets' episodes, in load order), in
    that order, the others' frames never read.  With ``stream_dir`` (an existing folder) the
    frames and recovery views go to flat files there instead of memory
    (:mod:`agents.e2e.stream`): memory holds one episode at a time while loading.

    Every episode read is checked against its content hash; a mismatch, or HDF5 damage
    that h5py reports while reading, is a :class:`DemoError` naming the file and the
    episode.  A dataset recorded before content hashes existed loads with a one-line
    warning on stderr (its damage cannot be detected)."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    if episodes is not None:
        episodes = [int(e) for e in episodes]
        wanted = set(episodes)
        counts = [int(_read_metadata(Path(p)).get("total_episodes", 0)) for p in paths]
        starts = np.concatenate([[0], np.cumsum(counts)]).astype(int)
        if len(wanted) != len(episodes) or any(not 0 <= e < starts[-1] for e in episodes):
            raise ValueError(f"episodes must be distinct and in [0, {starts[-1]}), got {episodes}")
        local = [
            {e - int(starts[k]) for e in wanted if starts[k] <= e < starts[k + 1]}
            for k in range(len(paths))
        ]
        demos = _load(paths, local, stream_dir)
        position = {g: k for k, g in enumerate(sorted(wanted))}
        return demos.subset([position[e] for e in episodes])
    return _load(paths, [None] * len(paths), stream_dir)


class _Frames:
    """Where :func:`_load` puts the episodes' frames: lists to concatenate in memory, or flat
    files in ``stream_dir``."""

    def __init__(self, stream_dir: str | Path | None) -> None:
        self.dir = None if stream_dir is None else Path(stream_dir)
        self.parts: dict[str, list] = {"frames": [], "side_frames": []}
        self.writers: dict[str, FrameFileWriter] = {}
        self.count = {"frames": 0, "side_frames": 0}
        self.views: set[int] = set()
        """The recovery views' counts seen (more than one: a ragged mix, not kept)."""

    def add(self, key: str, block: np.ndarray) -> None:
        self.count[key] += 1
        if key == "side_frames":
            self.views.add(block.shape[1])
            if len(self.views) > 1:  # ragged: dropped by the caller, nothing more to keep
                self.drop(key)
                return
        if self.dir is None:
            self.parts[key].append(block)
            return
        if key not in self.writers:
            views = block.shape[1] if key == "side_frames" else 0
            self.dir.mkdir(parents=True, exist_ok=True)
            # a name of its own: another load into the same folder keeps its files
            self.writers[key] = FrameFileWriter(self.dir / f"{key}-{uuid.uuid4().hex}.u8", views)
        self.writers[key].append(block)

    def result(self, key: str):
        if self.dir is None:
            return np.concatenate(self.parts[key])
        return self.writers.pop(key).finish()

    def drop(self, key: str) -> None:
        self.parts[key] = []
        if key in self.writers:
            self.writers.pop(key).abort()

    def abort(self) -> None:
        for key in list(self.writers):
            self.drop(key)


def _load(paths: list, wanted: list[set[int] | None], stream_dir=None) -> Demos:
    store = _Frames(stream_dir)
    try:
        return _load_into(paths, wanted, store)
    finally:
        store.abort()  # whatever a refused load had written


def _load_into(paths: list, wanted: list[set[int] | None], store: _Frames) -> Demos:
    if not paths:
        raise DemoError("no demonstration datasets given")
    parts: dict[str, list] = {
        k: [] for k in ("speed", "command", "labels", "episode", "step", "side_labels", "lead")
    }
    rig_meta: dict | None = None
    episodes: list[dict] = []
    sources: list[dict] = []
    first: dict | None = None
    for p, want in zip(map(Path, paths), wanted, strict=True):
        meta, eps = _load_one(p, want)
        drive = meta["drive"]
        rig = drive.get("rig")
        key = {
            # the policy's scenario: a variant's demos (``stopped-car``, ``highway:dense``)
            # train the policy of the scenario it is driven with (``highway``)
            "scenario": drive.get("trained_on", drive["scenario"]),
            "camera": drive["camera"],
            "action_names": drive["action_names"],
            # the network's view must agree; the recovery views may differ between datasets
            "rig": None if rig is None else {k: v for k, v in rig.items() if k != "side_views"},
            # recorded before the field existed (format 1's first datasets): only the
            # roundabout's routes followed the command
            "uses_command": bool(drive.get("uses_command", drive["scenario"] == "roundabout")),
        }
        if first is None:
            first = key
        elif key != first:
            raise DemoError(
                f"{p}: scenario/camera/actions {key} differ from the first dataset's {first}; "
                "train on datasets of one layout"
            )
        sources.append(
            {
                "path": str(p),
                "dataset_id": meta.get("dataset_id"),
                "frames": drive.get("frames"),
                "recorder_version": drive.get("recorder_version"),
                "noise": drive.get("noise"),
                "beta": drive.get("beta"),
                "learner": drive.get("learner"),
                "git_revision": drive.get("git_revision"),
            }
        )
        if rig is not None:
            rig_meta = rig_meta or dict(rig)
            if rig.get("side_views") != rig_meta.get("side_views"):
                rig_meta["side_views"] = None  # mixed: the views differ between datasets
        for attrs, a in eps:
            n = len(a["expert_action"])
            store.add("frames", a["camera"])
            if "side_frames" in a:
                store.add("side_frames", a["side_frames"])
                parts["side_labels"].append(a["side_labels"])
            if "lead" in a:
                parts["lead"].append(np.asarray(a["lead"], np.float32))
            parts["speed"].append(np.asarray(a["speed"], np.float32).reshape(n))
            parts["command"].append(np.asarray(a["command"], np.int64))
            parts["labels"].append(np.asarray(a["expert_action"], np.float32))
            parts["episode"].append(np.full(n, len(episodes), np.int64))
            parts["step"].append(np.arange(n, dtype=np.int64))
            episodes.append(
                {
                    "path": str(p),
                    "seed": int(attrs.get("seed", -1)),
                    "scenario": attrs.get("scenario"),
                    "status": attrs.get("status"),
                    "driving_score": attrs.get("driving_score"),
                    "steps": n - 1,
                }
            )
            del a  # the next episode is read with this one's frames already gone
    if not episodes:
        raise DemoError(f"{', '.join(map(str, paths))}: no episodes")
    side: dict = {}
    with_views, n_episodes = store.count["side_frames"], store.count["frames"]
    if with_views:
        if with_views == n_episodes and len(store.views) == 1:
            side = {
                "side_frames": store.result("side_frames"),
                "side_labels": np.concatenate(parts["side_labels"]),
            }
        else:  # a ragged mix would bias the sampling: train on the centre views only, and say so
            store.drop("side_frames")
            print(
                f"note: {', '.join(map(str, paths))}: recovery views in {with_views} of "
                f"{n_episodes} episodes (counts {sorted(store.views)}); training without them",
                file=sys.stderr,
            )
    lead = None
    if parts["lead"] and len(parts["lead"]) == n_episodes:
        lead = np.concatenate(parts["lead"])
    elif parts["lead"]:  # some datasets without: no lead head on a partial label
        print(
            f"note: {', '.join(map(str, paths))}: lead labels in {len(parts['lead'])} of "
            f"{n_episodes} episodes; training without them",
            file=sys.stderr,
        )
    return Demos(
        frames=store.result("frames"),
        speed=np.concatenate(parts["speed"]),
        command=np.concatenate(parts["command"]),
        labels=np.concatenate(parts["labels"]),
        episode=np.concatenate(parts["episode"]),
        step=np.concatenate(parts["step"]),
        episodes=episodes,
        scenario=first["scenario"],
        camera=first["camera"],
        action_names=tuple(first["action_names"]),
        uses_command=first["uses_command"],
        sources=sources,
        rig=rig_meta,
        lead=lead,
        **side,
    )
