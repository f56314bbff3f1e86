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
camera model (:class:`sim.geometry.bev.BevCamera`).  Input: RGB uint8 frames; the
network normalises them itself, so a checkpoint carries everything inference needs.

This module is the network and its decoding (inference); the training targets, the loss and
the trainer are in :mod:`perception.detectors.train`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from perception.boxes import Boxes
from sim.geometry.bev import BevCamera


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
    def from_dict(cls, d: dict) -> CenterNetConfig:
        known = set(cls.__dataclass_fields__)
        unknown = set(d) - known
        if unknown:
            raise ValueError(
                f"unknown CenterNetConfig keys {sorted(unknown)}; known: {sorted(known)}"
            )
        d = dict(d)
        if "image_hw" in d:
            d["image_hw"] = tuple(d["image_hw"])
        return cls(**d)

    @property
    def camera(self) -> BevCamera:
        """The camera the network sees (its pixel <-> ego-metre maps)."""
        h, w = self.image_hw
        return BevCamera(
            width_px=int(w),
            height_px=int(h),
            metres_per_pixel=self.metres_per_pixel,
            ego_u_px=self.ego_u_px,
            ego_v_px=self.ego_v_px,
        )


def _block(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class CenterNet(nn.Module):
    """Encoder down to 1/8, one upsampling step to the 1/4 output grid, four heads."""

    HEADS: ClassVar[dict[str, int]] = {"heatmap": 1, "offset": 2, "size": 2, "heading": 2}

    def __init__(self, config: CenterNetConfig = CenterNetConfig()) -> None:
        super().__init__()
        if config.stride != 4:
            raise ValueError(
                f"this network's output grid is 1/4 of the image (stride 4), got {config.stride}"
            )
        h, w = config.image_hw
        if h % 8 or w % 8:
            raise ValueError(f"image size must be a multiple of 8, got {h}x{w}")
        self.config = config
        c = config.width
        self.stem = _block(3, c, 2)  # 1/2
        self.down1 = _block(c, 2 * c, 2)  # 1/4
        self.down2 = _block(2 * c, 4 * c, 2)  # 1/8
        self.up = nn.Sequential(
            nn.ConvTranspose2d(4 * c, 2 * c, 2, stride=2), nn.ReLU(inplace=True)
        )
        self.fuse = _block(4 * c, 2 * c, 1)  # skip from 1/4
        self.heads = nn.ModuleDict(
            {
                name: nn.Sequential(
                    nn.Conv2d(2 * c, c, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(c, n, 1)
                )
                for name, n in self.HEADS.items()
            }
        )
        # heatmap bias so the initial prediction is ~0.01 everywhere (the paper's prior)
        nn.init.constant_(self.heads["heatmap"][-1].bias, -4.6)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """``images``: uint8 or float [B, 3, H, W] in 0-255 -> raw head outputs on the 1/4 grid."""
        h, w = self.config.image_hw
        if images.ndim != 4 or images.shape[1] != 3 or tuple(images.shape[2:]) != (h, w):
            raise ValueError(
                f"expected images [B, 3, {h}, {w}] (RGB, channels first), got "
                f"{tuple(images.shape)}; convert camera frames with frames_to_tensor()"
            )
        x = (
            images.to(next(self.parameters()).dtype) / 255.0 - 0.5
        )  # the weights' dtype: fp16 on CUDA
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


# -- decoding ------------------------------------------------------------------------------
@torch.inference_mode()
def decode(
    outputs: dict[str, torch.Tensor],
    config: CenterNetConfig,
    threshold: float = 0.3,
    top_k: int = 64,
) -> list[Boxes]:
    """Raw head outputs [B, ...] -> one :class:`Boxes` (ego frame) per image."""
    heat = torch.sigmoid(outputs["heatmap"].float())
    peaks = heat * (F.max_pool2d(heat, 3, stride=1, padding=1) == heat)  # local maxima only
    B, _, h, w = heat.shape
    scores, idx = peaks.view(B, -1).topk(min(top_k, h * w))
    result = []
    camera = config.camera
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
        result.append(
            Boxes(
                centre_m=camera.pixel_to_ego(uv),
                heading_rad=heading,
                length_m=np.abs(sz[0]),
                width_m=np.abs(sz[1]),
                kind=np.zeros(len(s), np.int8),
                score=s,
            )
        )
    return result
