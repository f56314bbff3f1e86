"""Training the monocular 3D detector (:mod:`perception.detectors.mono3d`).

Targets (CenterNet's 3D head, Zhou et al. 2019, with MonoFlex's truncated objects, Zhang et
al. 2021): every vehicle a camera shows with at least ``min_visible_px`` visible pixels and
its 3D centre in front of the near plane puts a Gaussian bump on the heatmap at its key
point: the projected 3D centre when that lies in the image, else the point where the
segment from its visible 2D box's centre to the projected centre crosses the image border.
At the key point's cell: the offset to the projected centre (symlog, in cells), log depth,
log size ratio, the observation angle's axis and facing.  Where two vehicles share a cell
the nearer one (the one in front) is the target.  Vehicles with fewer visible pixels stay in
the validation ground truth (as in ``drive eval detector``), they just teach nothing.

Loss: the penalty-reduced focal loss of :func:`perception.detectors.train.focal_loss`
on the heatmap, L1 on offset, depth, size and axis, binary cross-entropy on facing, all at
the key cells only.

:func:`train_mono3d`: every pinhole camera of the dataset (or those named) is a source of
training images for the one network; frames split into train / validation by episode
(:mod:`perception.splits`: both cameras of an episode on the same side).  Augmentation:
horizontal mirroring (:func:`mirror_labels`, exact for a pinhole camera with its principal
point at the image centre and no roll: the mirror image is the world reflected in the
camera's vertical plane), condition augmentation (colour casts, gamma, vignettes:
:func:`condition_jitter`) and photometric jitter.  Every epoch the validation loss and the
centre-distance AP at 2 m (:mod:`perception.metrics`, overall and per range band); the epoch
with the best AP@2m is kept.  Schedule (a cosine over the planned steps, never the clock),
early stopping and the optional time budget (which only cuts short, loudly) follow the one
training skeleton (:mod:`perception.training`).  Progress bar and TensorBoard scalars.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from perception.boxes import Boxes
from perception.checkpoint import check_fresh_out, mark_complete, resolve_device
from perception.dataset import FrameDataset
from perception.detectors.centernet import frames_to_tensor
from perception.detectors.learned import META
from perception.detectors.mono3d import (
    Mono3DConfig,
    Mono3DNet,
    decode,
    observation_angle,
    parameter_count,
    pixel_to_cell,
    save_checkpoint,
    symlog,
)
from perception.detectors.train import focal_loss
from perception.metrics import RANGE_BANDS_M, average_precision
from perception.splits import split_by_episode
from perception.training import EpochLoop, cosine_per_step
from sim.geometry.pinhole import PinholeCamera

Labels = tuple[Boxes, dict]
"""One image's labels: ego-frame boxes and that camera's per-label fields (the ``labels``
of :meth:`perception.dataset.FrameDataset.iter_frames`' metadata)."""

TARGETS = ("heatmap", "mask", "offset", "depth", "size", "axis", "facing")


# -- training targets -----------------------------------------------------------------------
def key_points(fields: dict, camera: PinholeCamera) -> tuple[np.ndarray, np.ndarray]:
    """Heatmap key points ``[N, 2]`` [px] of labels, and whether each is truncated (its
    projected 3D centre lies outside the image): the centre itself when inside, else where
    the segment from the 2D box's centre to it leaves the image (MonoFlex's edge point)."""
    centre = np.asarray(fields["centre_px"], dtype=np.float64).reshape(-1, 2)
    box = np.asarray(fields["box_px"], dtype=np.float64).reshape(-1, 4)
    inside = camera.in_image(centre)
    lo = np.array([-0.5, -0.5])
    hi = np.array([camera.width_px - 0.5, camera.height_px - 0.5]) - 1e-3  # the image is [lo, hi)
    start = np.clip(0.5 * (box[:, :2] + box[:, 2:]), lo, hi)
    d = centre - start
    with np.errstate(
        divide="ignore", invalid="ignore"
    ):  # t: how far along d stays inside, per axis
        t = np.where(centre > hi, (hi - start) / d, np.where(centre < lo, (lo - start) / d, 1.0))
    key = np.where(
        inside[:, None], centre, np.clip(start + np.min(t, axis=1, keepdims=True) * d, lo, hi)
    )
    return key, ~inside


def target_objects(
    labels: Labels, camera: PinholeCamera, config: Mono3DConfig, min_visible_px: int
) -> dict[str, np.ndarray]:
    """The labels that become targets, as arrays: ``cell`` [M, 2] (column, row) of their key
    points and what the heads regress there (``offset`` [M, 2], ``depth`` [M], ``size``
    [M, 3], ``axis`` [M, 2], ``facing`` [M]), ``radius`` [M] of the heatmap bump [cells],
    ``depth_m`` [M], ordered far to near."""
    boxes, fields = labels
    depth = np.asarray(fields["depth_m"], dtype=np.float64)
    centre = np.asarray(fields["centre_px"], dtype=np.float64).reshape(-1, 2)
    box = np.asarray(fields["box_px"], dtype=np.float64).reshape(-1, 4)
    with np.errstate(invalid="ignore"):
        use = (
            (boxes.kind == 0)
            & (np.asarray(fields["visible_px"]) >= min_visible_px)
            & (depth > camera.near_m)
            & np.isfinite(centre).all(axis=1)
            & np.isfinite(box).all(axis=1)
        )
    use = np.flatnonzero(use)
    use = use[
        np.argsort(-depth[use], kind="stable")
    ]  # far to near: the nearer one wins a shared cell
    key, _ = key_points({"centre_px": centre[use], "box_px": box[use]}, camera)
    h, w = config.grid_hw
    cell = np.clip(np.floor((key + 0.5) / config.stride), 0, [w - 1, h - 1]).astype(np.int64)
    b = boxes.select(use)
    size = np.stack([b.length_m, b.width_m, b.height_m], axis=1)
    alpha = observation_angle(b.centre_m, b.heading_rad, camera)
    side_px = np.minimum(box[use, 2] - box[use, 0], box[use, 3] - box[use, 1])
    return {
        "cell": cell,
        "offset": symlog(pixel_to_cell(centre[use], config.stride) - cell),
        "depth": np.log(depth[use]),
        "size": np.log(size / np.asarray(config.mean_size_m)),
        "axis": np.stack([np.sin(2 * alpha), np.cos(2 * alpha)], axis=1),
        "facing": (np.cos(alpha) < 0).astype(np.float64),
        "radius": np.maximum(1.0, side_px / config.stride / 1.5),
        "depth_m": depth[use],
    }


def encode_targets(
    labels: Sequence[Labels],
    cameras: Sequence[PinholeCamera],
    config: Mono3DConfig,
    min_visible_px: int = 4,
) -> dict[str, np.ndarray]:
    """Per-image training targets on the output grid: ``heatmap`` and ``mask`` (1 at key
    cells) [B, 1, h, w], and the regression targets at the key cells: ``offset`` [B, 2, h, w],
    ``depth`` [B, 1, h, w], ``size`` [B, 3, h, w], ``axis`` [B, 2, h, w],
    ``facing`` [B, 1, h, w]."""
    h, w = config.grid_hw
    B = len(labels)
    widths = {"heatmap": 1, "mask": 1, "offset": 2, "depth": 1, "size": 3, "axis": 2, "facing": 1}
    out = {k: np.zeros((B, n, h, w), np.float32) for k, n in widths.items()}
    ys, xs = np.mgrid[0:h, 0:w]
    for b, (lab, camera) in enumerate(zip(labels, cameras, strict=True)):
        t = target_objects(lab, camera, config, min_visible_px)
        for k in range(len(t["cell"])):
            ix, iy = t["cell"][k]
            sigma = t["radius"][k] / 3.0 + 0.5
            bump = np.exp(-((xs - ix) ** 2 + (ys - iy) ** 2) / (2 * sigma**2))
            np.maximum(out["heatmap"][b, 0], bump, out=out["heatmap"][b, 0])
            out["mask"][b, 0, iy, ix] = 1.0
            for name in ("offset", "depth", "size", "axis", "facing"):
                out[name][b, :, iy, ix] = t[name][k]
    return out


# -- augmentation --------------------------------------------------------------------------
def can_mirror(camera: PinholeCamera) -> bool:
    """Mirroring the image is the world mirrored in the camera's vertical plane only without
    roll (the principal point is always the image centre in this camera model)."""
    return abs(camera.roll_rad) < 1e-12


def mirror_labels(labels: Labels, camera: PinholeCamera) -> Labels:
    """The labels of the image mirrored left-right (``u -> W - 1 - u``).

    With no roll the camera's x axis is horizontal, so ``X -> -X`` in the camera frame is the
    reflection of the world in the vertical plane through the lens along the camera's yaw
    ``g``: an ego-frame point ``p`` goes to ``c + M (p - c)`` (``c`` the lens,
    ``M = [[cos 2g, sin 2g], [sin 2g, -cos 2g]]``) and a heading ``h`` to ``2g - h``; depth,
    heights and sizes stay.  For the default rig (lenses on the ego's axis, yaw 0 or pi) that
    is ``y -> -y``, ``h -> -h``."""
    if not can_mirror(camera):
        raise ValueError(f"mirroring needs a camera without roll, got roll {camera.roll_rad} rad")
    boxes, fields = labels
    g = camera.yaw_rad
    m = np.array([[math.cos(2 * g), math.sin(2 * g)], [math.sin(2 * g), -math.cos(2 * g)]])
    lens = np.array([camera.x_m, camera.y_m])
    mirrored = Boxes(
        (boxes.centre_m - lens) @ m.T + lens,
        2 * g - boxes.heading_rad,
        boxes.length_m,
        boxes.width_m,
        boxes.kind,
        boxes.score,
        boxes.height_m,
    )
    mirrored.heading_rad = np.arctan2(np.sin(mirrored.heading_rad), np.cos(mirrored.heading_rad))
    u_max = camera.width_px - 1.0  # u -> u_max - u maps [-0.5, W - 0.5] onto itself
    out = dict(fields)
    for key in ("centre_px", "bottom_px"):
        if key in fields:
            a = np.array(fields[key], dtype=np.float32)
            a[:, 0] = u_max - a[:, 0]
            out[key] = a
    if "box_px" in fields:
        a = np.array(fields["box_px"], dtype=np.float32)
        a[:, [0, 2]] = u_max - a[:, [2, 0]]
        out["box_px"] = a
    return mirrored, out


def photometric_jitter(frames: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Mild per-image gain, offset and pixel noise (the renderer's flat colours would otherwise
    be memorised)."""
    x = frames.astype(np.float32)
    n = len(x)
    x = x * rng.uniform(0.8, 1.2, (n, 1, 1, 1)).astype(np.float32) + rng.uniform(
        -30, 30, (n, 1, 1, 1)
    ).astype(np.float32)
    x += rng.normal(0, 1, x.shape).astype(np.float32) * rng.uniform(0, 8, (n, 1, 1, 1)).astype(
        np.float32
    )
    return np.clip(x, 0, 255).astype(np.uint8)


# condition augmentation: the ranges cover the rig's dusk tint (0.88, 0.72, 0.6) and night's
# darkness without rendering either, so the suite's visual cells stay unseen conditions
CONDITION_PROB = 0.5  # share of images given a colour cast, gamma and a vignette
CHANNEL_GAIN_RANGE = (0.55, 1.15)  # per-channel gain of the colour cast
GAMMA_RANGE = (0.7, 2.2)  # > 1 darkens the mid-tones (dusk, night)
VIGNETTE_MAX = 0.6  # [-] the darkest corner keeps 1 - this of its light
CHANNEL_SWAP_PROB = 0.25  # of the conditioned images: colours permuted (unusual body colours)


def condition_jitter(frames: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Lighting and colour shifts the renderer's day palette never shows: a per-channel
    colour cast, a gamma curve, a radial vignette, and sometimes the colour channels
    permuted, each image with probability :data:`CONDITION_PROB`.  A detector trained on
    day frames alone fires on the unfamiliar sky and road colours of dusk (phantom stops
    in the suite); this teaches it that colour and brightness are not what makes a car."""
    out = frames.copy()
    n, h, w = frames.shape[:3]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    radius2 = ((yy - h / 2) / (h / 2)) ** 2 + ((xx - w / 2) / (w / 2)) ** 2  # 2 at the corners
    for i in np.flatnonzero(rng.random(n) < CONDITION_PROB):
        x = frames[i].astype(np.float32) / 255.0
        if rng.random() < CHANNEL_SWAP_PROB:
            x = x[..., rng.permutation(3)]
        x = x * rng.uniform(*CHANNEL_GAIN_RANGE, 3).astype(np.float32)
        x = np.clip(x, 0.0, 1.0) ** rng.uniform(*GAMMA_RANGE)
        x = x * (1.0 - rng.uniform(0.0, VIGNETTE_MAX) * radius2[..., None] / 2.0)
        out[i] = np.clip(x * 255.0, 0, 255).astype(np.uint8)
    return out


def augment(
    frames: np.ndarray,
    labels: list[Labels],
    cameras: Sequence[PinholeCamera],
    rng: np.random.Generator,
    conditions: bool = False,
) -> tuple[np.ndarray, list[Labels]]:
    """Each image mirrored with probability 1/2 (where :func:`can_mirror`), then (with
    ``conditions``) given a lighting condition (:func:`condition_jitter`), then jittered."""
    frames = frames.copy()
    labels = list(labels)
    for i, camera in enumerate(cameras):
        if can_mirror(camera) and rng.random() < 0.5:
            frames[i] = frames[i, :, ::-1]
            labels[i] = mirror_labels(labels[i], camera)
    if conditions:
        frames = condition_jitter(frames, rng)
    return photometric_jitter(frames, rng), labels


# -- loss ------------------------------------------------------------------------------------
LOSS_WEIGHTS = {
    "heatmap": 1.0,
    "offset": 1.0,
    "depth": 1.0,
    "size": 0.5,
    "axis": 0.5,
    "facing": 0.2,
}


def mono3d_loss(
    pred: dict[str, torch.Tensor],
    target: dict[str, torch.Tensor],
    weights: dict[str, float] = LOSS_WEIGHTS,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Focal loss on the heatmap, L1 on offset, depth, size and axis and BCE on facing at the
    key cells, each regression term per object."""
    pos = target["mask"]
    n = pos.sum().clamp(min=1.0)
    terms = {"heatmap": focal_loss(pred["heatmap"].float(), target["heatmap"], pos)}
    for name in ("offset", "depth", "size", "axis"):
        terms[name] = (torch.abs(pred[name].float() - target[name]) * pos).sum() / n
    bce = F.binary_cross_entropy_with_logits(
        pred["facing"].float(), target["facing"], reduction="none"
    )
    terms["facing"] = (bce * pos).sum() / n
    total = sum(weights[k] * v for k, v in terms.items())
    return total, {k: float(v.detach()) for k, v in terms.items()}


# -- training ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Mono3DTrainConfig:
    """The training recipe (stored in the checkpoint)."""

    epochs: int = 12  # at most
    batch_size: int = 32
    lr: float = 2e-3  # AdamW peak learning rate
    weight_decay: float = 1e-4
    val_fraction: float = 0.15  # share of episodes held out
    patience: int = 4  # epochs without a better validation AP@2m before stopping
    seed: int = 0
    width: int = 16  # network width (Mono3DConfig.width)
    augment: bool = True
    conditions: bool = True  # condition augmentation (condition_jitter) on top of the jitter
    min_visible_px: int = 4  # fewer visible pixels: not a heatmap target
    cameras: tuple[str, ...] = ()  # the dataset's cameras to train on (empty: every pinhole camera)
    budget_s: float = 0.0  # stop training after this many seconds (0: no limit)
    val_threshold: float = 0.1  # detection score threshold when scoring validation AP


def load_samples(
    ds: FrameDataset, cameras: Sequence[str]
) -> tuple[np.ndarray, list[Labels], list[PinholeCamera], list[tuple]]:
    """Every frame of every camera named: images, labels (every vehicle showing a pixel), the
    camera of each image and its episode (scenario, seed)."""
    frames, labels, models, episodes = [], [], [], []
    for name in cameras:
        camera = ds.camera(name)
        for frame, boxes, meta in ds.iter_frames(name, kinds=(0,), min_visible_px=1):
            frames.append(frame)
            labels.append((boxes, meta["labels"]))
            models.append(camera)
            episodes.append((meta["scenario"], meta["seed"]))
    return np.stack(frames), labels, models, episodes


def _check_cameras(ds: FrameDataset, names: Sequence[str]) -> tuple[str, ...]:
    pinhole = tuple(n for n, c in ds.cameras.items() if isinstance(c, PinholeCamera))
    names = tuple(names) or pinhole
    if not names:
        raise ValueError(
            f"{ds.path}: no perspective camera (has {', '.join(ds.cameras)}); record one with "
            f"'drive perception data --cameras cam_front,cam_rear'"
        )
    wrong = [n for n in names if n not in pinhole]
    if wrong:
        raise ValueError(
            f"camera(s) {wrong} are not perspective cameras of {ds.path}; known: "
            f"{', '.join(pinhole)}"
        )
    shapes = {
        (ds.cameras[n].height_px, ds.cameras[n].width_px, ds.cameras[n].hfov_deg) for n in names
    }
    if len(shapes) != 1:
        raise ValueError(
            f"one network serves cameras of one size and field of view; {names} differ: {shapes}"
        )
    return names


def _epoch(
    model,
    frames,
    labels,
    cams,
    idx,
    batch_size,
    device,
    config,
    recipe,
    optimiser=None,
    rng=None,
    bar=None,
    loop=None,
    schedule=None,
) -> tuple[float, int]:
    """The mean loss over ``idx`` and the samples it covered; with an ``optimiser``, one
    training epoch (``schedule`` stepped per batch, the ``loop``'s budget checked after each)."""
    total, n = 0.0, 0
    order = rng.permutation(idx) if rng is not None else idx
    for start in range(0, len(order), batch_size):
        b = order[start : start + batch_size]
        f, lab, cam = frames[b], [labels[i] for i in b], [cams[i] for i in b]
        if optimiser is not None and recipe.augment:
            f, lab = augment(f, lab, cam, rng, recipe.conditions)
        target = {
            k: torch.from_numpy(v).to(device)
            for k, v in encode_targets(lab, cam, config, recipe.min_visible_px).items()
        }
        with torch.set_grad_enabled(optimiser is not None):
            loss, _ = mono3d_loss(model(frames_to_tensor(f, device)), target)
        if optimiser is not None:
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            if schedule is not None:
                schedule.step()
        total += float(loss.detach()) * len(b)
        n += len(b)
        if bar is not None:
            bar.update(len(b))
            bar.set_postfix_str(f"loss {total / n:.3f}")
        if loop is not None and loop.over_budget():
            break
    return total / max(n, 1), n


def validation_ap(
    model,
    frames,
    labels,
    cams,
    idx,
    device,
    config,
    threshold: float = 0.1,
    distance_m: float = 2.0,
) -> dict[str, float]:
    """Centre-distance AP at ``distance_m`` over the images ``idx``, overall and per range band."""
    model.eval()
    pairs = []
    with torch.inference_mode():
        for start in range(0, len(idx), 64):
            b = idx[start : start + 64]
            dets = decode(
                model(frames_to_tensor(frames[b], device)), config, [cams[i] for i in b], threshold
            )
            pairs += list(zip(dets, [labels[i][0] for i in b], strict=True))
    out = {"all": average_precision(pairs, distance_m)["ap"]}
    for band in RANGE_BANDS_M:
        name = f"{band[0]:.0f}-{band[1]:.0f}m".replace("-infm", "+m")
        out[name] = average_precision(pairs, distance_m, band)["ap"]
    return out


def train_mono3d(
    data: str | Path,
    out: str | Path,
    recipe: Mono3DTrainConfig = Mono3DTrainConfig(),
    device: str = "auto",
    progress: bool = True,
    extra_meta: dict | None = None,
) -> dict:
    """Train on the perspective cameras of dataset ``data``; write the best epoch's checkpoint
    (by validation AP@2m) to folder ``out``."""
    out = Path(out)
    check_fresh_out(out, META)
    dev = resolve_device(device)
    torch.manual_seed(recipe.seed)
    rng = np.random.default_rng(recipe.seed)
    ds = FrameDataset(data)
    names = _check_cameras(ds, recipe.cameras)
    first = ds.camera(names[0])
    config = Mono3DConfig(
        width=recipe.width, image_hw=(first.height_px, first.width_px), hfov_deg=first.hfov_deg
    )
    frames, labels, cams, episodes = load_samples(ds, names)
    train_idx, val_idx = split_by_episode(episodes, recipe.val_fraction, recipe.seed)
    if not len(train_idx) or not len(val_idx):
        raise ValueError(
            f"{data}: need at least two episodes to split train / validation, found "
            f"{len(set(episodes))}"
        )
    model = Mono3DNet(config).to(dev)
    optimiser = torch.optim.AdamW(
        model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay
    )
    writer = None
    try:  # lazy: tensorboard is slow to import and only training writes scalars
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(log_dir=str(out / "tensorboard"))
    except ImportError:  # tensorboard is a dependency; without it training still works
        pass
    steps_per_epoch = -(-len(train_idx) // recipe.batch_size)
    schedule = cosine_per_step(optimiser, recipe.epochs * steps_per_epoch)
    loop = EpochLoop(recipe.epochs, recipe.patience, "best", recipe.budget_s)
    history: list[dict] = []
    samples = 0
    for epoch in range(recipe.epochs):
        model.train()
        bar = tqdm(
            total=len(train_idx),
            desc=f"epoch {epoch + 1}/{recipe.epochs}",
            unit="image",
            disable=not progress,
            leave=False,
        )
        train_loss, seen = _epoch(
            model,
            frames,
            labels,
            cams,
            train_idx,
            recipe.batch_size,
            dev,
            config,
            recipe,
            optimiser,
            rng,
            bar,
            loop,
            schedule,
        )
        samples += seen
        bar.close()
        model.eval()
        val_loss, _ = _epoch(model, frames, labels, cams, val_idx, 64, dev, config, recipe)
        ap = validation_ap(model, frames, labels, cams, val_idx, dev, config, recipe.val_threshold)
        history.append(
            {
                "epoch": epoch + 1,
                "train_loss": train_loss,
                "val_loss": val_loss,
                "val_ap_2m": ap["all"],
                **{f"val_ap_2m_{k}": v for k, v in ap.items() if k != "all"},
                "lr": optimiser.param_groups[0]["lr"],
                "elapsed_s": loop.elapsed_s(),
            }
        )
        if writer is not None:
            for k, v in history[-1].items():
                if k not in ("epoch", "elapsed_s") and np.isfinite(v):
                    writer.add_scalar(k, v, epoch + 1)
        if progress:
            bands = "  ".join(f"{k} {v:.3f}" for k, v in ap.items() if k != "all")
            print(
                f"epoch {epoch + 1}: train {train_loss:.4f}  val {val_loss:.4f}  val AP@2m "
                f"{ap['all']:.3f} ({bands})  {history[-1]['elapsed_s']:.0f} s"
            )
        save, stop = loop.end_epoch(ap["all"] if np.isfinite(ap["all"]) else -val_loss)
        if save:
            save_checkpoint(
                model,
                out,
                {
                    "training": {
                        **asdict(recipe),
                        "cameras": list(names),
                        "device": str(dev),
                        **loop.record(),
                        "samples_seen": samples,
                        "history": history,
                        "train_images": len(train_idx),
                        "val_images": len(val_idx),
                        "parameters": parameter_count(model),
                        "complete": False,
                    },
                    "cameras": {n: ds.camera(n).to_dict() for n in names},
                    "dataset": {
                        "path": str(data),
                        "frames": len(ds),
                        "manifest_created": ds.manifest.get("created"),
                    },
                    **(extra_meta or {}),
                },
            )
        if stop:
            break
    if writer is not None:
        writer.close()
    loop.warn_if_cut(out, samples, recipe.epochs * len(train_idx))
    mark_complete(out, META, {**loop.record(), "samples_seen": samples, "history": history})
    return {
        "best_epoch": loop.best_epoch,
        "best_val_ap_2m": history[loop.best_epoch - 1]["val_ap_2m"],
        "history": history,
        "out": str(out),
        "stopped": loop.stopped,
        "epochs_trained": loop.epochs_done,
        "samples_seen": samples,
        "parameters": parameter_count(model),
        "train_seconds": loop.elapsed_s(),
    }
