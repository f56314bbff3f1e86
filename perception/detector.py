"""Training the CenterNet detector, its checkpoints, and the detector object agents use.

Checkpoints are a folder: ``model.safetensors`` (weights only) beside ``detector.json``
(architecture name and :class:`~perception.centernet.CenterNetConfig`, the training
recipe, the dataset it saw, validation metrics, whatever the caller adds such as the
git revision).  Nothing is pickled; loading checks the architecture name, the config
keys and every tensor name and shape, and names what is wrong.

Training (:func:`train_detector`): frames split into train / validation *by episode*
(a scenario and seed), so validation traffic layouts are never seen in training;
augmentation with left-right mirroring (labels mirrored too), brightness and contrast
jitter and pixel noise; AdamW with a cosine schedule; the validation loss is computed
every epoch with the AP at 2 m, the best epoch's weights are kept and training stops
after ``patience`` epochs without improvement.  Progress bar and TensorBoard scalars.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from perception.boxes import Boxes
from perception.centernet import (
    CenterNet,
    CenterNetConfig,
    centernet_loss,
    decode,
    encode_targets,
    frames_to_tensor,
)
from perception.checkpoint import (
    CheckpointError,
    check_fresh_out,
    load_weights_into,
    mark_complete,
    read_meta,
    resolve_device,
    write_checkpoint,
)
from perception.dataset import FrameDataset
from perception.metrics import average_precision

ARCHITECTURE = "centernet-v1"
META = "detector.json"


# -- checkpoints ---------------------------------------------------------------------------
def save_checkpoint(model: CenterNet, out: Path, meta: dict) -> None:
    """Weights and JSON into folder ``out``, each written to a temp file and renamed."""
    write_checkpoint(out, model.state_dict(), META,
                     {"architecture": ARCHITECTURE, "config": model.config.to_dict(), **meta})


def load_checkpoint(path: str | Path, device: torch.device | str = "cpu") -> tuple[CenterNet, dict]:
    path = Path(path)
    meta = read_meta(path, META, ARCHITECTURE, "detector")
    try:
        model = CenterNet(CenterNetConfig.from_dict(meta["config"]))
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path / META}: bad config ({e})") from None
    load_weights_into(model, path)
    return model.to(device).eval(), meta


class LearnedDetector:
    """The trained CenterNet as a detector: ``detect(frame)`` / ``detect_batch(frames)``.

    On CUDA it can run ``channels_last`` and in half precision (``half=True``); on the CPU
    it always runs float32.
    """

    name = "learned"

    def __init__(self, checkpoint: str | Path, device: str = "auto", threshold: float = 0.3,
                 half: bool = False) -> None:
        self.device = resolve_device(device)
        self.model, self.meta = load_checkpoint(checkpoint, self.device)
        self.config = self.model.config
        self.threshold = float(threshold)
        self.half = bool(half) and self.device.type == "cuda"
        if self.device.type == "cuda":
            self.model = self.model.to(memory_format=torch.channels_last)
            if self.half:
                self.model = self.model.half()

    @torch.inference_mode()
    def detect_batch(self, frames) -> list[Boxes]:
        x = frames_to_tensor(np.asarray(frames), self.device)
        if self.device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
            if self.half:
                x = x.half()
        return decode(self.model(x), self.config, self.threshold)

    def detect(self, frame: np.ndarray) -> Boxes:
        return self.detect_batch(np.asarray(frame)[None])[0]


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


def load_arrays(ds: FrameDataset) -> tuple[np.ndarray, list[Boxes], list[tuple[str, int]]]:
    frames, labels, episodes = [], [], []
    for frame, boxes, meta in ds.iter_frames():
        frames.append(frame)
        labels.append(boxes)
        episodes.append((meta["scenario"], meta["seed"]))
    return np.stack(frames), labels, episodes


def split_by_episode(episodes: list[tuple[str, int]], val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Train / validation frame indices; no episode contributes to both."""
    keys = sorted(set(episodes))
    rng = np.random.default_rng(seed)
    n_val = max(1, int(round(val_fraction * len(keys)))) if len(keys) > 1 else 0
    val_keys = {keys[i] for i in rng.permutation(len(keys))[:n_val]}
    is_val = np.array([e in val_keys for e in episodes])
    return np.flatnonzero(~is_val), np.flatnonzero(is_val)


def mirror(frames: np.ndarray, labels: list[Boxes]) -> tuple[np.ndarray, list[Boxes]]:
    """Left-right mirror images (about the ego column) and their labels."""
    out = []
    for b in labels:
        out.append(Boxes(b.centre_m * np.array([1.0, -1.0]), -b.heading_rad, b.length_m, b.width_m, b.kind,
                         b.score))
    return frames[:, :, ::-1], out


def _augment(frames: np.ndarray, labels: list[Boxes], rng: np.random.Generator, config: CenterNetConfig):
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
        yield order[i:i + size]


def _epoch_loss(model, frames, labels, idx, batch_size, device, config, optimiser=None, rng=None,
                augment=False, bar=None) -> float:
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
        total += float(loss.detach()) * len(b)
        n += len(b)
        if bar is not None:
            bar.update(len(b))
            bar.set_postfix_str(f"loss {total / n:.3f}")
    return total / max(n, 1)


def validation_ap(model, frames, labels, idx, device, config, threshold_m: float = 2.0) -> float:
    model.eval()
    pairs = []
    with torch.inference_mode():
        for b in _batches(idx, 64, None):
            dets = decode(model(frames_to_tensor(frames[b], device)), config)
            pairs += list(zip(dets, [labels[i].select(labels[i].kind == 0) for i in b], strict=True))
    return average_precision(pairs, threshold_m)["ap"]


def train_detector(data: str | Path, out: str | Path, recipe: TrainConfig = TrainConfig(), device: str = "auto",
                   progress: bool = True, extra_meta: dict | None = None) -> dict:
    """Train on dataset ``data``; write the best epoch's checkpoint to folder ``out``."""
    out = Path(out)
    check_fresh_out(out, META)
    dev = resolve_device(device)
    torch.manual_seed(recipe.seed)
    rng = np.random.default_rng(recipe.seed)
    ds = FrameDataset(data)
    cam = ds.camera
    config = CenterNetConfig(width=recipe.width, image_hw=(int(cam["height_px"]), int(cam["width_px"])),
                             metres_per_pixel=float(cam["metres_per_pixel"]), ego_u_px=float(cam["ego_u_px"]),
                             ego_v_px=float(cam["ego_v_px"]))
    frames, labels, episodes = load_arrays(ds)
    train_idx, val_idx = split_by_episode(episodes, recipe.val_fraction, recipe.seed)
    if not len(train_idx) or not len(val_idx):
        raise ValueError(f"{data}: need at least two episodes to split train / validation, found "
                         f"{len(set(episodes))}")
    model = CenterNet(config).to(dev)
    optimiser = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=recipe.epochs)
    writer = None
    try:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(log_dir=str(out / "tensorboard"))
    except ImportError:  # tensorboard is a dependency; without it training still works
        pass
    history, best, best_epoch, started = [], np.inf, -1, time.time()
    for epoch in range(recipe.epochs):
        model.train()
        bar = tqdm(total=len(train_idx), desc=f"epoch {epoch + 1}/{recipe.epochs}", unit="frame",
                   disable=not progress, leave=False)
        train_loss = _epoch_loss(model, frames, labels, train_idx, recipe.batch_size, dev, config, optimiser,
                                 rng, recipe.augment, bar)
        bar.close()
        model.eval()
        val_loss = _epoch_loss(model, frames, labels, val_idx, 64, dev, config)
        ap = validation_ap(model, frames, labels, val_idx, dev, config)
        schedule.step()
        history.append({"epoch": epoch + 1, "train_loss": train_loss, "val_loss": val_loss, "val_ap_2m": ap,
                        "lr": optimiser.param_groups[0]["lr"], "elapsed_s": time.time() - started})
        if writer is not None:
            for k in ("train_loss", "val_loss", "val_ap_2m", "lr"):
                writer.add_scalar(k, history[-1][k], epoch + 1)
        if progress:
            print(f"epoch {epoch + 1}: train {train_loss:.4f}  val {val_loss:.4f}  val AP@2m {ap:.3f}")
        if val_loss < best:
            best, best_epoch = val_loss, epoch + 1
            save_checkpoint(model, out, {
                "training": {**asdict(recipe), "device": str(dev), "best_epoch": best_epoch,
                             "history": history, "train_frames": int(len(train_idx)),
                             "val_frames": int(len(val_idx)), "complete": False},
                "dataset": {"path": str(data), "frames": len(ds), "manifest_created": ds.manifest.get("created")},
                **(extra_meta or {})})
        elif epoch + 1 - best_epoch >= recipe.patience:
            break
    if writer is not None:
        writer.close()
    mark_complete(out, META)
    return {"best_epoch": best_epoch, "best_val_loss": best, "history": history, "out": str(out)}
