"""A monocular 3D vehicle detector for the camera rig: CenterNet's 3D head on one camera.

Zhou, Wang, Krähenbühl (2019), "Objects as Points", sec. 4 (3D detection): a fully
convolutional network predicts, on a grid ``stride`` = 4 times coarser than the image,

* a **heatmap** of the vehicles' projected 3D centres (the mid-height point of the box),
  penalty-reduced focal loss against Gaussian bumps;
* an **offset** (2 channels) from the peak's cell to the projected centre, in grid cells,
  regressed as ``symlog(o) = sign(o) log(1 + |o|)``: sub-cell for a centre inside the
  image; for a **truncated** vehicle whose centre projects outside the image the peak sits
  where the segment from its visible 2D box's centre to the projected centre leaves the
  image (Zhang et al. 2021, MonoFlex, "Objects are Different", sec. 3.2), and the offset
  reaches out to the true centre, tens of cells away: the log keeps those from swamping
  the L1 of the sub-cell ones (MonoFlex regresses them in log scale as well).  A car
  beside the ego shows only its nose or tail at the image border, and 20 % of the front
  camera's vehicles within 20 m are such; without this they could not be found at all.
  Centres at or behind the near plane (a car level with the lens; 0.3 %) are not targets;
* the **depth** ``Z`` (camera-frame z of the 3D centre) as ``log Z``: monocular cues (a
  car's apparent size, its row below the horizon) scale as ``1 / Z``, so their error is
  relative and an L1 on ``log Z`` weighs a 10 % error the same at 5 m and at 80 m, with a
  gradient that never fades (CenterNet's ``1 / sigmoid(x) - 1`` saturates: at 100 m the
  sigmoid's slope is 1e-2 of its slope at 1 m);
* the **size** (length, width, height) as ``log(size / mean size)``;
* the **yaw** as the observation angle ``alpha = theta - beta`` (theta the box's heading
  relative to the camera's horizontal optical axis, beta the azimuth of the ray to its
  centre, both counter-clockwise in the road plane: KITTI's alpha with the ego frame's
  sign), which is what the image shows of a car whatever its bearing.  It is learned as
  the box's **axis** ``(sin 2 alpha, cos 2 alpha)`` (a box looks alike turned round, as the
  bird's-eye CenterNet learns it) plus a **facing** logit (is its front half turned to the
  camera, ``cos alpha < 0``) that picks one of the two headings on that axis: a two-bin
  classification with a shared residual (CenterNet's bins + sin/cos, in 3 channels).

Decoding (:func:`decode`): peaks of the heatmap (3x3 max-pool), the ``top_k`` above
``threshold``, the weaker of two within :data:`MIN_SEPARATION_M` on the ground dropped; cell +
offset -> pixel -> ray (``camera.camera_rays``) x depth -> camera-frame centre -> ego frame
(``camera.camera_to_ego``) -> an ego-frame :class:`Boxes` centred at the 3D centre's ground point
(x, y), heading ``alpha + beta + camera yaw``.

One network serves every camera of the rig: the pixel <-> ray maps are the camera's, so a
camera looking backwards decodes to boxes behind the ego.  What the network learns
implicitly is the image size and focal length (depth from apparent size), so a checkpoint
refuses a camera whose size or field of view differs from the one it was trained on; the
mount (height, pitch) it learned from the training cameras is stored in its JSON.

This module is inference (the network, decoding, checkpoints, :class:`Mono3DDetector`); the
training targets, the loss and the trainer are :mod:`perception.detectors.train_mono3d`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from perception.boxes import Boxes
from perception.checkpoint import fold_batchnorm, load_model, resolve_device, save_model
from perception.detectors.centernet import frames_to_tensor
from perception.detectors.learned import META
from planning.geometry import wrap_angle
from sim.geometry.pinhole import PinholeCamera

ARCHITECTURE = "mono3d-v1"


@dataclass(frozen=True)
class Mono3DConfig:
    """Architecture and input spec, stored with every checkpoint."""

    width: int = 16  # channels of the first stage (doubling per downsampling stage)
    stride: int = 4  # output grid cell [px]
    image_hw: tuple[int, int] = (128, 256)  # input size [px] the network is built for
    hfov_deg: float = 100.0  # horizontal field of view of the cameras it learned depth from [deg]
    mean_size_m: tuple[float, float, float] = (
        5.0,
        2.0,
        1.5,
    )  # length, width, height the size head scales

    def to_dict(self) -> dict:
        d = asdict(self)
        d["image_hw"], d["mean_size_m"] = list(self.image_hw), list(self.mean_size_m)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Mono3DConfig:
        known = set(cls.__dataclass_fields__)
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown Mono3DConfig keys {sorted(unknown)}; known: {sorted(known)}")
        d = dict(d)
        for key in ("image_hw", "mean_size_m"):
            if key in d:
                d[key] = tuple(d[key])
        return cls(**d)

    @property
    def grid_hw(self) -> tuple[int, int]:
        """Output grid size (rows, columns)."""
        return self.image_hw[0] // self.stride, self.image_hw[1] // self.stride

    def check_camera(self, camera: PinholeCamera) -> None:
        """Refuse a camera the network was not trained for (another image size or FOV)."""
        if not isinstance(camera, PinholeCamera):
            raise TypeError(f"expected a PinholeCamera, got {type(camera).__name__}")
        h, w = self.image_hw
        if (camera.height_px, camera.width_px) != (h, w):
            raise ValueError(
                f"camera is {camera.width_px}x{camera.height_px} px, this detector was trained "
                f"on {w}x{h} px images; use a camera of that size or retrain"
            )
        if abs(camera.hfov_deg - self.hfov_deg) > 1e-6:
            raise ValueError(
                f"camera has a {camera.hfov_deg:g} deg field of view, this detector learned depth "
                f"from {self.hfov_deg:g} deg cameras; use such a camera or retrain"
            )


# -- parametrisation (shared with the trainer's targets) ------------------------------------
def symlog(x):
    """``sign(x) log(1 + |x|)``: near-identity for small offsets, logarithmic for large ones."""
    if isinstance(x, torch.Tensor):
        return torch.sign(x) * torch.log1p(x.abs())
    return np.sign(x) * np.log1p(np.abs(x))


def symexp(y):
    """The inverse of :func:`symlog`."""
    if isinstance(y, torch.Tensor):
        return torch.sign(y) * torch.expm1(y.abs())
    return np.sign(y) * np.expm1(np.abs(y))


def pixel_to_cell(uv_px: np.ndarray, stride: int) -> np.ndarray:
    """Pixel coordinates -> continuous output-grid coordinates (integers at cell centres)."""
    return (np.asarray(uv_px, dtype=np.float64) + 0.5) / stride - 0.5


def cell_to_pixel(cell: np.ndarray, stride: int) -> np.ndarray:
    """The inverse of :func:`pixel_to_cell`."""
    return (np.asarray(cell, dtype=np.float64) + 0.5) * stride - 0.5


def ray_azimuth(centre_m: np.ndarray, camera: PinholeCamera) -> np.ndarray:
    """Azimuth ``beta`` [rad] of ego-frame points ``[N, 2]`` seen from the camera, in the road
    plane, counter-clockwise from the camera's horizontal optical axis (0 straight ahead of the
    lens, positive to its left)."""
    d = np.asarray(centre_m, dtype=np.float64).reshape(-1, 2) - (camera.x_m, camera.y_m)
    c, s = math.cos(camera.yaw_rad), math.sin(camera.yaw_rad)
    return np.arctan2(-s * d[:, 0] + c * d[:, 1], c * d[:, 0] + s * d[:, 1])


def observation_angle(
    centre_m: np.ndarray, heading_rad: np.ndarray, camera: PinholeCamera
) -> np.ndarray:
    """``alpha = theta - beta`` [rad]: an ego-frame box's heading relative to the ray from the
    camera to its centre (0: driving straight away from the lens, pi: straight at it)."""
    return wrap_angle(
        np.asarray(heading_rad, dtype=np.float64) - camera.yaw_rad - ray_azimuth(centre_m, camera)
    )


def heading_from_observation(
    alpha_rad: np.ndarray, centre_m: np.ndarray, camera: PinholeCamera
) -> np.ndarray:
    """The inverse of :func:`observation_angle`: ego-frame heading [rad] from ``alpha``."""
    return wrap_angle(
        np.asarray(alpha_rad, dtype=np.float64) + camera.yaw_rad + ray_azimuth(centre_m, camera)
    )


def alpha_from_axis(sin2: np.ndarray, cos2: np.ndarray, facing: np.ndarray) -> np.ndarray:
    """``alpha`` from the axis ``(sin 2a, cos 2a)`` and whether the front half faces the camera
    (``facing`` true: ``cos alpha < 0``)."""
    axis = 0.5 * np.arctan2(sin2, cos2)  # in (-pi/2, pi/2]: cos >= 0
    return wrap_angle(np.where(facing, axis + np.pi, axis))


def centres_to_ego(uv_px: np.ndarray, depth_m: np.ndarray, camera: PinholeCamera) -> np.ndarray:
    """Pixels ``[N, 2]`` of 3D centres with their camera-frame depths ``[N]`` -> ego-frame
    points ``[N, 3]`` (ray at z = 1, times depth, moved into the ego frame)."""
    rays = camera.camera_rays(np.asarray(uv_px, dtype=np.float64).reshape(-1, 2))
    return camera.camera_to_ego(rays * np.asarray(depth_m, dtype=np.float64).reshape(-1, 1))


# -- network ------------------------------------------------------------------------------
def _conv_bn_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


class _Residual(nn.Module):
    """He et al. (2016) basic block: two 3x3 convolutions and a (projected) shortcut."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout),
        )
        self.skip = (
            nn.Identity()
            if cin == cout and stride == 1
            else nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout)
            )
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + self.skip(x))


class Mono3DNet(nn.Module):
    """Residual encoder down to 1/16, a feature-pyramid decoder back to the 1/4 grid, a
    heatmap head and one regression head (offset, depth, size, axis, facing).

    The input gets two coordinate channels (column and row in [-1, 1], Liu et al. 2018,
    CoordConv): in a fixed camera a car's depth follows its row below the horizon, which
    plain convolutions see only through the padding.
    """

    HEADS: ClassVar[dict[str, int]] = {
        "heatmap": 1,
        "offset": 2,
        "depth": 1,
        "size": 3,
        "axis": 2,
        "facing": 1,
    }

    def __init__(self, config: Mono3DConfig = Mono3DConfig()) -> None:
        super().__init__()
        if config.stride != 4:
            raise ValueError(
                f"this network's output grid is 1/4 of the image (stride 4), got {config.stride}"
            )
        h, w = config.image_hw
        if h % 16 or w % 16:
            raise ValueError(f"image size must be a multiple of 16, got {h}x{w}")
        self.config = config
        c = config.width
        self.stem = nn.Sequential(
            nn.Conv2d(5, c, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(c),
            nn.ReLU(inplace=True),
        )  # 1/2
        self.down1 = _Residual(c, 2 * c, 2)  # 1/4
        self.down2 = _Residual(2 * c, 4 * c, 2)  # 1/8
        self.down3 = _Residual(4 * c, 8 * c, 2)  # 1/16
        # feature-pyramid decoder (Lin et al. 2017): 1x1 lateral, upsample, add the skip, 3x3 fuse
        self.lateral3 = nn.Conv2d(8 * c, 4 * c, 1)
        self.fuse2 = _conv_bn_relu(4 * c, 4 * c)  # 1/8
        self.lateral2 = nn.Conv2d(4 * c, 2 * c, 1)
        self.fuse1 = _conv_bn_relu(2 * c, 2 * c)  # 1/4
        self.heatmap = nn.Sequential(
            nn.Conv2d(2 * c, c, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(c, 1, 1)
        )
        n_reg = sum(n for k, n in self.HEADS.items() if k != "heatmap")
        self.regression = nn.Sequential(
            nn.Conv2d(2 * c, 2 * c, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(2 * c, n_reg, 1)
        )
        nn.init.constant_(
            self.heatmap[-1].bias, -4.6
        )  # initial heatmap ~0.01 everywhere (the paper's prior)
        with torch.no_grad():  # initial depth 20 m (log), not 1 m
            self.regression[-1].bias[sum(self.HEADS[k] for k in ("offset",))] = math.log(20.0)
        v, u = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
        self.register_buffer("coords", torch.stack([u, v])[None], persistent=False)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """``images``: uint8 or float [B, 3, H, W] in 0-255 -> raw head outputs on the 1/4 grid."""
        h, w = self.config.image_hw
        if images.ndim != 4 or images.shape[1] != 3 or tuple(images.shape[2:]) != (h, w):
            raise ValueError(
                f"expected images [B, 3, {h}, {w}] (RGB, channels first), got "
                f"{tuple(images.shape)}; convert camera frames with frames_to_tensor()"
            )
        dtype = self.stem[0].weight.dtype
        x = images.to(dtype) / 255.0 - 0.5
        x = torch.cat([x, self.coords.to(dtype).expand(len(x), -1, -1, -1)], dim=1)
        x1 = self.down1(self.stem(x))
        x2 = self.down2(x1)
        x3 = self.down3(x2)
        y = self.fuse2(F.interpolate(self.lateral3(x3), scale_factor=2.0, mode="nearest") + x2)
        y = self.fuse1(F.interpolate(self.lateral2(y), scale_factor=2.0, mode="nearest") + x1)
        out = {"heatmap": self.heatmap(y)}
        names = [k for k in self.HEADS if k != "heatmap"]
        out.update(zip(names, self.regression(y).split([self.HEADS[k] for k in names], dim=1)))
        return out


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# -- decoding ------------------------------------------------------------------------------
MIN_SEPARATION_M = 2.0
"""[m] Two vehicles' centres are never closer than a car's width: of detections closer than
this on the ground the weaker is a second peak on the same car (a near car spans many cells,
more than the 3x3 peak window) and is dropped."""


def suppress_duplicates(
    centre_m: np.ndarray, score: np.ndarray, min_separation_m: float
) -> np.ndarray:
    """Indices of detections kept by greedy centre-distance suppression, highest score first."""
    keep: list[int] = []
    for i in np.argsort(-score, kind="stable"):
        if (
            not keep
            or np.min(np.linalg.norm(centre_m[keep] - centre_m[i], axis=1)) >= min_separation_m
        ):
            keep.append(int(i))
    return np.asarray(keep, dtype=np.int64)


@torch.inference_mode()
def decode(
    outputs: dict[str, torch.Tensor],
    config: Mono3DConfig,
    cameras: Sequence[PinholeCamera],
    threshold: float = 0.3,
    top_k: int = 64,
    min_separation_m: float = MIN_SEPARATION_M,
) -> list[Boxes]:
    """Raw head outputs [B, ...] of images taken by ``cameras`` (one per image) -> one
    ego-frame :class:`Boxes` (vehicles, with height) per image; of two detections within
    ``min_separation_m`` on the ground the weaker is dropped (0: keep every peak)."""
    heat = torch.sigmoid(outputs["heatmap"].float())
    B, _, h, w = heat.shape
    if len(cameras) != B:
        raise ValueError(f"{B} images but {len(cameras)} cameras; pass one camera per image")
    peaks = heat * (F.max_pool2d(heat, 3, stride=1, padding=1) == heat)  # local maxima only
    scores, idx = peaks.view(B, -1).topk(min(top_k, h * w))
    keep = scores >= threshold
    flat = {
        k: outputs[k].float().reshape(B, outputs[k].shape[1], -1)
        for k in Mono3DNet.HEADS
        if k != "heatmap"
    }
    result = []
    for b in range(B):
        i = idx[b][keep[b]]
        if not len(i):
            result.append(Boxes.empty())
            continue
        head = {k: v[b][:, i].cpu().numpy().astype(np.float64) for k, v in flat.items()}
        i = i.cpu().numpy()
        cell = np.stack([i % w, i // w], axis=-1) + symexp(head["offset"]).T
        log_depth = np.clip(
            head["depth"][0], -3.0, 6.0
        )  # 5 cm .. 400 m: no overflow from a wild output
        centre = centres_to_ego(cell_to_pixel(cell, config.stride), np.exp(log_depth), cameras[b])[
            :, :2
        ]
        size = np.exp(np.clip(head["size"].T, -3.0, 3.0)) * np.asarray(config.mean_size_m)
        alpha = alpha_from_axis(head["axis"][0], head["axis"][1], head["facing"][0] > 0.0)
        s = scores[b][keep[b]].cpu().numpy().astype(np.float64)
        boxes = Boxes(
            centre_m=centre,
            heading_rad=heading_from_observation(alpha, centre, cameras[b]),
            length_m=size[:, 0],
            width_m=size[:, 1],
            kind=np.zeros(len(s), np.int8),
            score=s,
            height_m=size[:, 2],
        )
        if min_separation_m > 0:
            boxes = boxes.select(suppress_duplicates(boxes.centre_m, boxes.score, min_separation_m))
        result.append(boxes)
    return result


# -- checkpoints ---------------------------------------------------------------------------
def save_checkpoint(model: Mono3DNet, out: Path, meta: dict) -> None:
    """Weights (safetensors) and JSON (architecture, config, ``meta``) into folder ``out``."""
    save_model(model, out, META, ARCHITECTURE, meta)


def load_checkpoint(path: str | Path, device: torch.device | str = "cpu") -> tuple[Mono3DNet, dict]:
    return load_model(
        path,
        META,
        ARCHITECTURE,
        "mono3d detector",
        lambda c: Mono3DNet(Mono3DConfig.from_dict(c)),
        device,
    )


class Mono3DDetector:
    """The trained monocular 3D detector: ``detect(frame, camera)`` /
    ``detect_batch(frames, cameras)`` -> ego-frame :class:`Boxes`.

    A batch may mix cameras (front and rear, several envs): one forward pass for all.  The
    network runs with its batch norms folded into the convolutions, ``channels_last``; on CUDA
    in half precision with ``half=True``, on the CPU always float32.
    """

    name = "mono3d"

    def __init__(
        self,
        checkpoint: str | Path,
        device: str = "auto",
        threshold: float = 0.3,
        half: bool = False,
    ) -> None:
        self.device = resolve_device(device)
        self.model, self.meta = load_checkpoint(checkpoint, self.device)
        self.config = self.model.config
        self.threshold = float(threshold)
        self.half = bool(half) and self.device.type == "cuda"
        # inference only: batch norms folded into their convolutions, NHWC layout (oneDNN's
        # and cuDNN's fast path); together ~12% off a CPU forward pass (docs/planner.md)
        self.model = fold_batchnorm(self.model).to(memory_format=torch.channels_last)
        if self.half:
            self.model = self.model.half()

    @torch.inference_mode()
    def detect_batch(self, frames: np.ndarray, cameras: Sequence[PinholeCamera]) -> list[Boxes]:
        """``frames`` uint8 ``[N, H, W, 3]``, ``cameras`` the N cameras that took them."""
        frames = np.asarray(frames)
        if frames.ndim != 4 or len(frames) != len(cameras):
            raise ValueError(
                f"expected frames [N, H, W, 3] and N cameras, got {frames.shape} and "
                f"{len(cameras)} camera(s)"
            )
        for camera in cameras:
            self.config.check_camera(camera)
        x = frames_to_tensor(frames, self.device)  # uint8: the network casts to its own dtype
        x = x.contiguous(memory_format=torch.channels_last)
        return decode(self.model(x), self.config, list(cameras), self.threshold)

    def detect(self, frame: np.ndarray, camera: PinholeCamera) -> Boxes:
        return self.detect_batch(np.asarray(frame)[None], [camera])[0]
