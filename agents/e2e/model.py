"""PilotNet (Bojarski et al. 2016) adapted to the project's ego camera, in three widths.

The original maps a 66x200 YUV frame through 5 convolutions (24, 36, 48 channels at
5x5 stride 2; 64, 64 at 3x3) and 3 fully connected layers (100, 50, 10) to one steering
value, about 250k parameters.  Here:

* the input is the ``uint8[H, W, 3]`` ego camera (default 128x128), normalised inside
  the network (``x / 127.5 - 1``), optionally ``stack`` consecutive frames on the
  channel axis (oldest first);
* on 128x128 the conv stack ends in a 9x9 map where the original's ended in 1x18, so a
  2x2 max-pool brings the flattened features to 64x4x4 = 1024 (the original: 1152) and
  the medium width keeps PilotNet's ~250k parameters; the flatten size is inferred by
  a dry forward pass, so other frame sizes work too;
* the ego speed [m/s] (scaled by 1/10) and, where the scenario turns, the one-hot
  route command enter the fully connected head beside the image features;
* the output is the scenario's normalised action (``[steering]`` or
  ``[acceleration, steering]``), linear as in PilotNet; the control loop clips it.

Widths ``s``/``m``/``l`` scale every layer's channels by 0.5/1/2, so parameters grow
about 4x per step (the scaling study's model axis).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

WIDTHS = {"s": 0.5, "m": 1.0, "l": 2.0}
MODELS = tuple(f"pilotnet-{w}" for w in WIDTHS)
N_COMMANDS = 4  # sim.world.scenarios.COMMANDS: follow, left, straight, right
SPEED_SCALE = 0.1  # m/s -> network input
_CONVS = ((24, 5, 2), (36, 5, 2), (48, 5, 2), (64, 3, 1), (64, 3, 1))
_FCS = (100, 50, 10)


@dataclass(frozen=True)
class PilotNetConfig:
    """Everything that fixes the architecture (saved in every checkpoint)."""

    width: str = "m"
    """``s``, ``m`` or ``l`` (channel multiplier 0.5, 1, 2)."""
    image_hw: tuple[int, int] = (128, 128)
    """Camera frame height, width [px]."""
    stack: int = 1
    """Frames fed together (1 = no stacking)."""
    stride: int = 1
    """Control steps between stacked frames (1 = consecutive). At 15 Hz and 0.5 m/px a
    car closing at 5 m/s moves 0.7 px between consecutive frames; stride 4 makes it 2.7 px."""
    n_actions: int = 1
    """1 (steering) or 2 (acceleration, steering)."""
    use_command: bool = False
    """Feed the one-hot route command (scenarios that turn)."""
    cameras: tuple[str, ...] = ()
    """Rig cameras (``cam_front``, ...), each a 66x200 road crop through the *same* conv
    encoder, the features concatenated; ``()``: one bird's-eye frame."""
    speed_head: bool = False
    """A speed-prediction branch from the image features alone (CILRS, Codevilla et al.
    2019): trained to read the ego speed from the frames, it makes the encoder carry what the
    speed input would otherwise shortcut.  Driving never uses its output."""
    lead_head: bool = False
    """An auxiliary branch from the image features alone predicting the lead auto-label (gap
    to the car ahead in the ego's corridor, closing speed; TransFuser's and TCP's dense
    targets): the encoder must represent the car it may have to brake for.  Driving never
    uses its output."""

    def __post_init__(self) -> None:
        if self.width not in WIDTHS:
            raise ValueError(f"unknown PilotNet width {self.width!r}; known: {', '.join(WIDTHS)}")
        if self.stack < 1:
            raise ValueError(f"stack must be >= 1, got {self.stack}")
        if self.stride < 1:
            raise ValueError(f"stride must be >= 1, got {self.stride}")
        if self.n_actions not in (1, 2):
            raise ValueError(f"n_actions must be 1 or 2, got {self.n_actions}")
        object.__setattr__(self, "cameras", tuple(self.cameras))
        if len(set(self.cameras)) != len(self.cameras):
            raise ValueError(f"a camera is named twice in {list(self.cameras)}")
        h, w = self.image_hw
        if h < 48 or w < 48:
            raise ValueError(f"PilotNet needs frames of at least 48x48 px, got {h}x{w}")

    @property
    def model_name(self) -> str:
        return f"pilotnet-{self.width}"

    @property
    def n_views(self) -> int:
        """Images per step through the shared encoder (1 for the bird's-eye frame)."""
        return max(1, len(self.cameras))

    @property
    def channels(self) -> int:
        """Input channels: 3 x stack per view, views in camera order, oldest frame first."""
        return 3 * self.stack * self.n_views

    @property
    def aux_size(self) -> int:
        return 1 + (N_COMMANDS if self.use_command else 0)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["image_hw"] = list(self.image_hw)
        d["cameras"] = list(self.cameras)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> PilotNetConfig:
        d = dict(d)
        d["image_hw"] = tuple(int(v) for v in d["image_hw"])
        d["cameras"] = tuple(d.get("cameras", ()))  # checkpoints from before the rig: bird's-eye
        return cls(**d)


def parse_model(name: str) -> str:
    """``pilotnet-m`` (or just ``m``) -> ``"m"``; an unknown name lists the known ones."""
    width = name.removeprefix("pilotnet-")
    if width not in WIDTHS:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(MODELS)}")
    return width


class PilotNet(nn.Module):
    """``forward(frames uint8[B, H, W, channels], aux float[B, aux_size]) -> float[B, n_actions]``.

    With several rig cameras the frames hold ``3 x stack`` channels per camera (camera-major);
    each camera's block goes through the same encoder as its own image (the batch grows by
    the number of cameras, one forward call for all of them) and the features are
    concatenated in camera order before the head."""

    def __init__(self, config: PilotNetConfig) -> None:
        super().__init__()
        self.config = config
        k = WIDTHS[config.width]
        layers: list[nn.Module] = []
        c_in = 3 * config.stack
        for c, size, stride in _CONVS:
            c_out = max(4, round(c * k))
            layers += [nn.Conv2d(c_in, c_out, size, stride), nn.ELU()]
            c_in = c_out
        self.features = nn.Sequential(*layers)
        h, w = config.image_hw
        with torch.no_grad():  # dry run: the map size decides the pooling and the flatten size
            fmap = self.features(torch.zeros(1, 3 * config.stack, h, w))
        if fmap.shape[-1] < 1 or fmap.shape[-2] < 1:
            raise ValueError(f"frames of {h}x{w} px are too small for PilotNet's conv stack")
        self.pool = nn.MaxPool2d(2) if min(fmap.shape[-2:]) >= 4 else nn.Identity()
        flat = int(self.pool(fmap).numel()) * config.n_views
        fcs: list[nn.Module] = []
        n_in = flat + config.aux_size
        for n in _FCS:
            n_out = max(4, round(n * k))
            fcs += [nn.Linear(n_in, n_out), nn.ELU()]
            n_in = n_out
        fcs.append(nn.Linear(n_in, config.n_actions))
        self.head = nn.Sequential(*fcs)
        hidden = max(4, round(_FCS[0] * k))
        self.speed_branch = (
            nn.Sequential(nn.Linear(flat, hidden), nn.ELU(), nn.Linear(hidden, 1))
            if config.speed_head
            else None
        )
        self.lead_branch = (
            nn.Sequential(nn.Linear(flat, hidden), nn.ELU(), nn.Linear(hidden, 2))
            if config.lead_head
            else None
        )
        self.flat_features = flat
        self.channels_last = False
        """Keep the NHWC camera layout through the convolutions (set by ``to_channels_last``)."""

    def to_channels_last(self) -> PilotNet:
        """Run the convolutions in channels_last layout (faster on CUDA tensor cores)."""
        self.channels_last = True
        return self.to(memory_format=torch.channels_last)

    def check_input(self, frames: torch.Tensor, aux: torch.Tensor) -> None:
        h, w = self.config.image_hw
        want = (h, w, self.config.channels)
        if frames.ndim != 4 or tuple(frames.shape[1:]) != want:
            views = f" x cameras {len(self.config.cameras)}" if self.config.cameras else ""
            raise ValueError(
                f"{self.config.model_name} expects frames of shape [B, {h}, {w}, "
                f"{self.config.channels}] (H, W, 3 x stack {self.config.stack}{views}), got "
                f"{list(frames.shape)}"
            )
        if frames.dtype != torch.uint8:
            raise ValueError(
                f"{self.config.model_name} expects uint8 frames (0..255), got {frames.dtype}"
            )
        if aux.shape != (frames.shape[0], self.config.aux_size):
            raise ValueError(
                f"{self.config.model_name} expects aux of shape [B, {self.config.aux_size}] "
                f"(speed{' + one-hot command' if self.config.use_command else ''}), got "
                f"{list(aux.shape)}"
            )

    def forward(self, frames: torch.Tensor, aux: torch.Tensor) -> torch.Tensor:
        return self.forward_heads(frames, aux)[0]

    def forward_heads(
        self, frames: torch.Tensor, aux: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The actions and the auxiliary branches' outputs, each from the image features
        alone: ``speed`` (``speed_head``: [B], in the speed input's scale, [m/s] x
        :data:`SPEED_SCALE`) and ``lead`` (``lead_head``: [B, 2], the lead label in
        :func:`lead_targets`' scale)."""
        self.check_input(frames, aux)
        x = frames.permute(0, 3, 1, 2).float()  # NHWC memory: already channels_last
        if not self.channels_last:
            x = x.contiguous()
        features = self.encode(x)
        actions = self.head(torch.cat([features, aux.to(x.dtype)], dim=1))
        heads: dict[str, torch.Tensor] = {}
        if self.speed_branch is not None:
            heads["speed"] = self.speed_branch(features)[:, 0]
        if self.lead_branch is not None:
            heads["lead"] = self.lead_branch(features)
        return actions, heads

    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        """The image features of float [B, channels, H, W] pixels in 0..255 (:func:`encode_pixels`),
        each camera's block through the shared encoder, concatenated in camera order."""
        n = self.config.n_views
        if n == 1:
            return encode_pixels(self.features, self.pool, pixels)
        b, c, h, w = pixels.shape
        return encode_pixels(self.features, self.pool, pixels.reshape(b * n, c // n, h, w)).reshape(
            b, -1
        )


def encode_pixels(features: nn.Module, pool: nn.Module, pixels: torch.Tensor) -> torch.Tensor:
    """PilotNet's conv stack on float [B, 3*stack, H, W] pixels in 0..255 -> [B, flat_features],
    normalised here, so every user of the stack (the RL extractor too) sees the same input scale."""
    return pool(features(pixels / 127.5 - 1.0)).flatten(1)


def aux_inputs(speed_mps, command, config: PilotNetConfig) -> torch.Tensor:
    """The head's scalar inputs: speed / 10 and, when used, the one-hot command."""
    speed = torch.as_tensor(speed_mps, dtype=torch.float32).reshape(-1, 1) * SPEED_SCALE
    if not config.use_command:
        return speed
    cmd = torch.as_tensor(command, dtype=torch.long).reshape(-1)
    return torch.cat([speed, nn.functional.one_hot(cmd, N_COMMANDS).float()], dim=1)


LEAD_GAP_SCALE_M = 60.0
"""[m] The lead head's gap target is the gap over this (the label's range: 0..1)."""
LEAD_CLOSING_SCALE_MPS = 10.0
"""[m/s] The lead head's closing-speed target is the closing speed over this."""


def lead_targets(lead) -> torch.Tensor:
    """The lead head's targets from the lead labels (float [B, 2]: gap m, closing m/s)."""
    t = torch.as_tensor(lead, dtype=torch.float32).reshape(-1, 2)
    return t / torch.tensor([LEAD_GAP_SCALE_M, LEAD_CLOSING_SCALE_MPS])


def count_parameters(model: nn.Module) -> int:
    return int(sum(p.numel() for p in model.parameters()))
