"""A small CenterNet for vehicles in the ego camera: objects as points.

Zhou, Wang, Krähenbühl (2019), "Objects as Points": a fully convolutional network
predicts, on a grid ``stride`` times coarser than the image,

* a **heatmap** of object centres (one class here: vehicles), trained with the
  penalty-reduced focal loss against Gaussian bumps at the true centres;
* a sub-cell **offset** of the centre (2 channels), a **size** (length, width in metres,
  2 channels) and a **heading** (``sin 2a, cos 2a``: a box looks the same turned round,
  so the angle is learned modulo pi), all regressed with L1 at the true centres only.

Decoding keeps the local maxima of the heatmap (a 3x3 max-pool instead of box NMS),
takes the ``top_k`` above ``threshold``, and lifts them to ego-frame metres with the
camera spec.  Input: RGB uint8 frames; the network normalises them itself, so a
checkpoint carries everything inference needs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from perception.boxes import Boxes


@dataclass(frozen=True)
class CenterNetConfig:
    """Architecture and input spec, stored with every checkpoint."""

    width: int = 32  # channels of the first stage (doubling per downsampling stage)
    stride: int = 4  # output grid cell [px]
    image_hw: tuple[int, int] = (128, 128)
    metres_per_pixel: float = 0.5
    ego_u_px: float = 63.5
    ego_v_px: float = 100.0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["image_hw"] = list(self.image_hw)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "CenterNetConfig":
        known = set(cls.__dataclass_fields__)
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown CenterNetConfig keys {sorted(unknown)}; known: {sorted(known)}")
        d = dict(d)
        if "image_hw" in d:
            d["image_hw"] = tuple(d["image_hw"])
        return cls(**d)

    def pixel_to_ego(self, uv: np.ndarray) -> np.ndarray:
        x = (self.ego_v_px - uv[..., 1]) * self.metres_per_pixel
        y = (self.ego_u_px - uv[..., 0]) * self.metres_per_pixel
        return np.stack([x, y], axis=-1)

    def ego_to_pixel(self, xy: np.ndarray) -> np.ndarray:
        u = self.ego_u_px - xy[..., 1] / self.metres_per_pixel
        v = self.ego_v_px - xy[..., 0] / self.metres_per_pixel
        return np.stack([u, v], axis=-1)


def _block(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class CenterNet(nn.Module):
    """Encoder down to 1/8, one upsampling step to the 1/4 output grid, four heads."""

    HEADS = {"heatmap": 1, "offset": 2, "size": 2, "heading": 2}

    def __init__(self, config: CenterNetConfig = CenterNetConfig()) -> None:
        super().__init__()
        if config.stride != 4:
            raise ValueError(f"this network's output grid is 1/4 of the image (stride 4), got {config.stride}")
        h, w = config.image_hw
        if h % 8 or w % 8:
            raise ValueError(f"image size must be a multiple of 8, got {h}x{w}")
        self.config = config
        c = config.width
        self.stem = _block(3, c, 2)  # 1/2
        self.down1 = _block(c, 2 * c, 2)  # 1/4
        self.down2 = _block(2 * c, 4 * c, 2)  # 1/8
        self.up = nn.Sequential(nn.ConvTranspose2d(4 * c, 2 * c, 2, stride=2), nn.ReLU(inplace=True))
        self.fuse = _block(4 * c, 2 * c, 1)  # skip from 1/4
        self.heads = nn.ModuleDict({name: nn.Sequential(
            nn.Conv2d(2 * c, c, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(c, n, 1))
            for name, n in self.HEADS.items()})
        # heatmap bias so the initial prediction is ~0.01 everywhere (the paper's prior)
        nn.init.constant_(self.heads["heatmap"][-1].bias, -4.6)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """``images``: uint8 or float [B, 3, H, W] in 0-255 -> raw head outputs on the 1/4 grid."""
        h, w = self.config.image_hw
        if images.ndim != 4 or images.shape[1] != 3 or tuple(images.shape[2:]) != (h, w):
            raise ValueError(f"expected images [B, 3, {h}, {w}] (RGB, channels first), got {tuple(images.shape)}; "
                             f"convert camera frames with frames_to_tensor()")
        x = images.float() / 255.0 - 0.5
        x1 = self.down1(self.stem(x))
        x2 = self.down2(x1)
        x = self.fuse(torch.cat([self.up(x2), x1], dim=1))
        return {name: head(x) for name, head in self.heads.items()}


def frames_to_tensor(frames: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """RGB uint8 frames ``[B, H, W, 3]`` (or one ``[H, W, 3]``) -> ``[B, 3, H, W]`` uint8 tensor."""
    a = np.asarray(frames)
    if a.ndim == 3:
        a = a[None]
    return torch.from_numpy(np.ascontiguousarray(a.transpose(0, 3, 1, 2))).to(device)


# -- training targets and loss ------------------------------------------------------------
def gaussian_radius_cells(length_m: np.ndarray, width_m: np.ndarray, config: CenterNetConfig) -> np.ndarray:
    """Heatmap bump radius [cells]: a third of the box's smaller side, at least one cell."""
    side_px = np.minimum(length_m, width_m) / config.metres_per_pixel
    return np.maximum(1.0, side_px / config.stride / 1.5)


def encode_targets(labels: list[Boxes], config: CenterNetConfig) -> dict[str, np.ndarray]:
    """Per-frame training targets on the output grid: ``heatmap`` [B, 1, h, w], ``mask``
    [B, 1, h, w] (1 at each object's centre cell), ``offset``/``size``/``heading`` [B, 2, h, w]."""
    H, W = config.image_hw
    h, w = H // config.stride, W // config.stride
    B = len(labels)
    out = {"heatmap": np.zeros((B, 1, h, w), np.float32), "mask": np.zeros((B, 1, h, w), np.float32),
           "offset": np.zeros((B, 2, h, w), np.float32), "size": np.zeros((B, 2, h, w), np.float32),
           "heading": np.zeros((B, 2, h, w), np.float32)}
    ys, xs = np.mgrid[0:h, 0:w]
    for b, boxes in enumerate(labels):
        vehicles = boxes.select(boxes.kind == 0)
        if not len(vehicles):
            continue
        uv = config.ego_to_pixel(vehicles.centre_m)
        cell = (uv + 0.5) / config.stride - 0.5  # continuous grid coordinates of the centres
        radius = gaussian_radius_cells(vehicles.length_m, vehicles.width_m, config)
        for k in range(len(vehicles)):
            cx, cy = cell[k]
            ix, iy = int(np.floor(cx + 0.5)), int(np.floor(cy + 0.5))
            if not (0 <= ix < w and 0 <= iy < h):
                continue
            sigma = radius[k] / 3.0 + 0.5
            bump = np.exp(-((xs - ix) ** 2 + (ys - iy) ** 2) / (2 * sigma ** 2))
            out["heatmap"][b, 0] = np.maximum(out["heatmap"][b, 0], bump)
            out["mask"][b, 0, iy, ix] = 1.0
            out["offset"][b, :, iy, ix] = (cx - ix, cy - iy)
            out["size"][b, :, iy, ix] = (vehicles.length_m[k], vehicles.width_m[k])
            a = 2 * vehicles.heading_rad[k]
            out["heading"][b, :, iy, ix] = (np.sin(a), np.cos(a))
    return out


def centernet_loss(pred: dict[str, torch.Tensor], target: dict[str, torch.Tensor],
                   weights: tuple[float, float, float, float] = (1.0, 1.0, 0.1, 1.0)) -> tuple[torch.Tensor, dict]:
    """Focal loss on the heatmap (alpha 2, beta 4) + L1 on offset, size, heading at centres."""
    p = torch.sigmoid(pred["heatmap"]).clamp(1e-4, 1 - 1e-4)
    gt = target["heatmap"]
    pos = target["mask"]
    n = pos.sum().clamp(min=1.0)
    pos_loss = -(torch.log(p) * (1 - p) ** 2 * pos).sum()
    neg_loss = -(torch.log(1 - p) * p ** 2 * (1 - gt) ** 4 * (1 - pos)).sum()
    heat = (pos_loss + neg_loss) / n
    terms = {"heatmap": heat}
    for name in ("offset", "size", "heading"):
        terms[name] = (torch.abs(pred[name] - target[name]) * pos).sum() / n
    total = sum(wt * terms[k] for wt, k in zip(weights, ("heatmap", "offset", "size", "heading")))
    return total, {k: float(v.detach()) for k, v in terms.items()}


# -- decoding ------------------------------------------------------------------------------
@torch.inference_mode()
def decode(outputs: dict[str, torch.Tensor], config: CenterNetConfig, threshold: float = 0.3,
           top_k: int = 64) -> list[Boxes]:
    """Raw head outputs [B, ...] -> one :class:`Boxes` (ego frame) per image."""
    heat = torch.sigmoid(outputs["heatmap"].float())
    peaks = heat * (F.max_pool2d(heat, 3, stride=1, padding=1) == heat)  # local maxima only
    B, _, h, w = heat.shape
    scores, idx = peaks.view(B, -1).topk(min(top_k, h * w))
    result = []
    off = outputs["offset"].float().view(B, 2, -1)
    size = outputs["size"].float().view(B, 2, -1)
    hd = outputs["heading"].float().view(B, 2, -1)
    for b in range(B):
        keep = scores[b] >= threshold
        i = idx[b][keep]
        s = scores[b][keep].cpu().numpy().astype(np.float64)
        if not len(s):
            result.append(Boxes.empty())
            continue
        iy, ix = (i // w).cpu().numpy(), (i % w).cpu().numpy()
        o = off[b][:, i].cpu().numpy()
        cell = np.stack([ix + o[0], iy + o[1]], axis=-1)
        uv = (cell + 0.5) * config.stride - 0.5
        sz = size[b][:, i].cpu().numpy()
        sin2, cos2 = hd[b][:, i].cpu().numpy()
        heading = 0.5 * np.arctan2(sin2, cos2)
        result.append(Boxes(centre_m=config.pixel_to_ego(uv), heading_rad=heading,
                            length_m=np.abs(sz[0]), width_m=np.abs(sz[1]),
                            kind=np.zeros(len(s), np.int8), score=s))
    return result
