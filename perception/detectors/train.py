"""Training the CenterNet detector (:mod:`perception.detectors.centernet`).

Targets and loss (Zhou et al. 2019, "Objects as Points"): a Gaussian bump per object centre on
the heatmap, trained with the penalty-reduced focal loss; offset, size and heading regressed
with L1 at the centres only.

:func:`train_detector`: frames split into train / validation *by episode* (a scenario and
seed, :mod:`perception.splits`), so validation traffic layouts are never seen in training;
augmentation with left-right mirroring (labels mirrored too), brightness and contrast
jitter and pixel noise; the validation loss is computed every epoch with the AP at 2 m, the
best epoch's weights are kept (:func:`~perception.detectors.learned.save_checkpoint`).
Schedule, early stopping and the optional time budget follow the one training skeleton
(:mod:`perception.training`).  Progress bar and TensorBoard scalars.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from perception.boxes import Boxes
from perception.checkpoint import check_fresh_out, mark_complete, resolve_device
from perception.dataset import BEV, FrameDataset
from perception.detectors.centernet import CenterNet, CenterNetConfig, decode, frames_to_tensor
from perception.detectors.learned import META, save_checkpoint
from perception.metrics import average_precision
from perception.splits import split_by_episode
from perception.training import EpochLoop, cosine_per_step


# -- training targets and loss ------------------------------------------------------------
def gaussian_radius_cells(
    length_m: np.ndarray, width_m: np.ndarray, config: CenterNetConfig
) -> np.ndarray:
    """Heatmap bump radius [cells]: a third of the box's smaller side, at least one cell."""
    side_px = np.minimum(length_m, width_m) / config.metres_per_pixel
    return np.maximum(1.0, side_px / config.stride / 1.5)


def encode_targets(labels: list[Boxes], config: CenterNetConfig) -> dict[str, np.ndarray]:
    """Per-frame training targets on the output grid: ``heatmap`` [B, 1, h, w], ``mask``
    [B, 1, h, w] (1 at each object's centre cell), ``offset``/``size``/``heading`` [B, 2, h, w]."""
    H, W = config.image_hw
    h, w = H // config.stride, W // config.stride
    B = len(labels)
    out = {
        "heatmap": np.zeros((B, 1, h, w), np.float32),
        "mask": np.zeros((B, 1, h, w), np.float32),
        "offset": np.zeros((B, 2, h, w), np.float32),
        "size": np.zeros((B, 2, h, w), np.float32),
        "heading": np.zeros((B, 2, h, w), np.float32),
    }
    ys, xs = np.mgrid[0:h, 0:w]
    camera = config.camera
    for b, boxes in enumerate(labels):
        vehicles = boxes.select(boxes.kind == 0)
        if not len(vehicles):
            continue
        uv = camera.ego_to_pixel(vehicles.centre_m)
        cell = (uv + 0.5) / config.stride - 0.5  # continuous grid coordinates of the centres
        radius = gaussian_radius_cells(vehicles.length_m, vehicles.width_m, config)
        for k in range(len(vehicles)):
            cx, cy = cell[k]
            ix, iy = int(np.floor(cx + 0.5)), int(np.floor(cy + 0.5))
            if not (0 <= ix < w and 0 <= iy < h):
                continue
            sigma = radius[k] / 3.0 + 0.5
            bump = np.exp(-((xs - ix) ** 2 + (ys - iy) ** 2) / (2 * sigma**2))
            out["heatmap"][b, 0] = np.maximum(out["heatmap"][b, 0], bump)
            out["mask"][b, 0, iy, ix] = 1.0
            out["offset"][b, :, iy, ix] = (cx - ix, cy - iy)
            out["size"][b, :, iy, ix] = (vehicles.length_m[k], vehicles.width_m[k])
            a = 2 * vehicles.heading_rad[k]
            out["heading"][b, :, iy, ix] = (np.sin(a), np.cos(a))
    return out


def focal_loss(logits: torch.Tensor, heatmap: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """CenterNet's penalty-reduced focal loss (alpha 2, beta 4) of heatmap ``logits`` against
    Gaussian bumps ``heatmap`` with their peaks ``mask``, normalised by the number of peaks
    (the bird's-eye and the monocular 3D trainers share it)."""
    p = torch.sigmoid(logits).clamp(1e-4, 1 - 1e-4)
    n = mask.sum().clamp(min=1.0)
    pos_loss = -(torch.log(p) * (1 - p) ** 2 * mask).sum()
    neg_loss = -(torch.log(1 - p) * p**2 * (1 - heatmap) ** 4 * (1 - mask)).sum()
    return (pos_loss + neg_loss) / n


def centernet_loss(
    pred: dict[str, torch.Tensor],
    target: dict[str, torch.Tensor],
    weights: tuple[float, float, float, float] = (1.0, 1.0, 0.1, 1.0),
) -> tuple[torch.Tensor, dict]:
    """Focal loss on the heatmap (alpha 2, beta 4) + L1 on offset, size, heading at centres."""
    pos = target["mask"]
    n = pos.sum().clamp(min=1.0)
    terms = {"heatmap": focal_loss(pred["heatmap"], target["heatmap"], pos)}
    for name in ("offset", "size", "heading"):
        terms[name] = (torch.abs(pred[name] - target[name]) * pos).sum() / n
    total = sum(wt * terms[k] for wt, k in zip(weights, ("heatmap", "offset", "size", "heading")))
    return total, {k: float(v.detach()) for k, v in terms.items()}


# -- training ------------------------------------------------------------------------------
@dataclass(frozen=True)
class TrainConfig:
    """The training recipe (stored in the checkpoint)."""

    epochs: int = 30  # at most
    batch_size: int = 32
    lr: float = 2e-3  # AdamW peak learning rate
    weight_decay: float = 1e-4
    val_fraction: float = 0.15  # share of episodes held out
    patience: int = 5  # epochs without a better validation loss before stopping
    seed: int = 0
    width: int = 32  # network width (CenterNetConfig.width)
    augment: bool = True
    budget_s: float = 0.0  # a cap on training time [s] (0: none); only cuts short, loudly


def load_arrays(ds: FrameDataset) -> tuple[np.ndarray, list[Boxes], list[tuple[str, int]]]:
    frames, labels, episodes = [], [], []
    for frame, boxes, meta in ds.iter_frames(BEV):
        frames.append(frame)
        labels.append(boxes)
        episodes.append((meta["scenario"], meta["seed"]))
    return np.stack(frames), labels, episodes


def mirror(frames: np.ndarray, labels: list[Boxes]) -> tuple[np.ndarray, list[Boxes]]:
    """Left-right mirror images (about the ego column) and their labels."""
    out = []
    for b in labels:
        out.append(
            Boxes(
                b.centre_m * np.array([1.0, -1.0]),
                -b.heading_rad,
                b.length_m,
                b.width_m,
                b.kind,
                b.score,
            )
        )
    return frames[:, :, ::-1], out


def _augment(
    frames: np.ndarray, labels: list[Boxes], rng: np.random.Generator, config: CenterNetConfig
):
    # mirroring is exact only when the ego column is the image's middle
    if abs(config.ego_u_px - (config.image_hw[1] - 1) / 2) < 1e-9 and rng.random() < 0.5:
        frames, labels = mirror(frames, labels)
    x = frames.astype(np.float32)
    gain = rng.uniform(0.7, 1.3, (len(x), 1, 1, 1)).astype(np.float32)
    shift = rng.uniform(-60, 60, (len(x), 1, 1, 1)).astype(np.float32)
    x = x * gain + shift
    noise = rng.uniform(0, 20, (len(x), 1, 1, 1)).astype(np.float32)
    x = x + rng.normal(0, 1, x.shape).astype(np.float32) * noise
    return np.clip(x, 0, 255).astype(np.uint8), labels


def _batches(idx: np.ndarray, size: int, rng: np.random.Generator | None):
    order = rng.permutation(idx) if rng is not None else idx
    for i in range(0, len(order), size):
        yield order[i : i + size]


def _epoch_loss(
    model,
    frames,
    labels,
    idx,
    batch_size,
    device,
    config,
    optimiser=None,
    rng=None,
    augment=False,
    bar=None,
    schedule=None,
    loop=None,
) -> tuple[float, int]:
    """The mean loss over ``idx`` and the samples it covered; with an ``optimiser``, one
    training epoch (``schedule`` stepped per batch, the ``loop``'s budget checked after each)."""
    total, n = 0.0, 0
    for b in _batches(idx, batch_size, rng):
        f, lab = frames[b], [labels[i] for i in b]
        if augment:
            f, lab = _augment(f, lab, rng, config)
        target = {k: torch.from_numpy(v).to(device) for k, v in encode_targets(lab, config).items()}
        with torch.set_grad_enabled(optimiser is not None):
            loss, _ = centernet_loss(model(frames_to_tensor(f, device)), target)
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


def validation_ap(model, frames, labels, idx, device, config, threshold_m: float = 2.0) -> float:
    model.eval()
    pairs = []
    with torch.inference_mode():
        for b in _batches(idx, 64, None):
            dets = decode(model(frames_to_tensor(frames[b], device)), config)
            pairs += list(
                zip(dets, [labels[i].select(labels[i].kind == 0) for i in b], strict=True)
            )
    return average_precision(pairs, threshold_m)["ap"]


def train_detector(
    data: str | Path,
    out: str | Path,
    recipe: TrainConfig = TrainConfig(),
    device: str = "auto",
    progress: bool = True,
    extra_meta: dict | None = None,
) -> dict:
    """Train on dataset ``data``; write the best epoch's checkpoint to folder ``out``."""
    out = Path(out)
    check_fresh_out(out, META)
    dev = resolve_device(device)
    torch.manual_seed(recipe.seed)
    rng = np.random.default_rng(recipe.seed)
    ds = FrameDataset(data)
    cam = ds.camera(BEV).to_dict()  # the CenterNet detector reads the bird's-eye camera
    config = CenterNetConfig(
        width=recipe.width,
        image_hw=(int(cam["height_px"]), int(cam["width_px"])),
        metres_per_pixel=float(cam["metres_per_pixel"]),
        ego_u_px=float(cam["ego_u_px"]),
        ego_v_px=float(cam["ego_v_px"]),
    )
    frames, labels, episodes = load_arrays(ds)
    train_idx, val_idx = split_by_episode(episodes, recipe.val_fraction, recipe.seed)
    if not len(train_idx) or not len(val_idx):
        raise ValueError(
            f"{data}: need at least two episodes to split train / validation, found "
            f"{len(set(episodes))}"
        )
    model = CenterNet(config).to(dev)
    optimiser = torch.optim.AdamW(
        model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay
    )
    schedule = cosine_per_step(optimiser, recipe.epochs * -(-len(train_idx) // recipe.batch_size))
    writer = None
    try:  # lazy: tensorboard is slow to import and only training writes scalars
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(log_dir=str(out / "tensorboard"))
    except ImportError:  # tensorboard is a dependency; without it training still works
        pass
    history: list[dict] = []
    loop = EpochLoop(recipe.epochs, recipe.patience, "best", recipe.budget_s)
    samples = 0
    for epoch in range(recipe.epochs):
        model.train()
        bar = tqdm(
            total=len(train_idx),
            desc=f"epoch {epoch + 1}/{recipe.epochs}",
            unit="frame",
            disable=not progress,
            leave=False,
        )
        train_loss, seen = _epoch_loss(
            model,
            frames,
            labels,
            train_idx,
            recipe.batch_size,
            dev,
            config,
            optimiser,
            rng,
            recipe.augment,
            bar,
            schedule,
            loop,
        )
        samples += seen
        bar.close()
        model.eval()
        val_loss, _ = _epoch_loss(model, frames, labels, val_idx, 64, dev, config)
        ap = validation_ap(model, frames, labels, val_idx, dev, config)
        history.append(
            {
                "epoch": epoch + 1,
                "train_loss": train_loss,
                "val_loss": val_loss,
                "val_ap_2m": ap,
                "lr": optimiser.param_groups[0]["lr"],
                "elapsed_s": loop.elapsed_s(),
            }
        )
        if writer is not None:
            for k in ("train_loss", "val_loss", "val_ap_2m", "lr"):
                writer.add_scalar(k, history[-1][k], epoch + 1)
        if progress:
            print(
                f"epoch {epoch + 1}: train {train_loss:.4f}  val {val_loss:.4f}  val AP@2m {ap:.3f}"
            )
        save, stop = loop.end_epoch(-val_loss)
        if save:
            save_checkpoint(
                model,
                out,
                {
                    "training": {
                        **asdict(recipe),
                        "device": str(dev),
                        **loop.record(),
                        "history": history,
                        "train_frames": len(train_idx),
                        "val_frames": len(val_idx),
                        "samples_seen": samples,
                        "complete": False,
                    },
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
        "best_val_loss": -loop.best,
        "history": history,
        "out": str(out),
        "stopped": loop.stopped,
        "epochs_trained": loop.epochs_done,
        "samples_seen": samples,
    }
