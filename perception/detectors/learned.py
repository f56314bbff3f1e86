"""The trained CenterNet as a detector (inference), and its checkpoints.

Checkpoints are a folder: ``model.safetensors`` (weights only) beside ``detector.json``
(architecture name and :class:`~perception.detectors.centernet.CenterNetConfig`, the training
recipe, the dataset it saw, validation metrics, whatever the caller adds such as the
git revision).  Nothing is pickled; loading checks the architecture name, the config
keys and every tensor name, shape and dtype, and names what is wrong.  The trainer that writes
them is :mod:`perception.detectors.train`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from perception.boxes import Boxes
from perception.checkpoint import load_model, resolve_device, save_model
from perception.detectors.centernet import CenterNet, CenterNetConfig, decode, frames_to_tensor

ARCHITECTURE = "centernet-v1"
META = "detector.json"


# -- checkpoints ---------------------------------------------------------------------------
def save_checkpoint(model: CenterNet, out: Path, meta: dict) -> None:
    """Weights (safetensors) and JSON (architecture, config, ``meta``) into folder ``out``."""
    save_model(model, out, META, ARCHITECTURE, meta)


def load_checkpoint(path: str | Path, device: torch.device | str = "cpu") -> tuple[CenterNet, dict]:
    return load_model(
        path,
        META,
        ARCHITECTURE,
        "detector",
        lambda c: CenterNet(CenterNetConfig.from_dict(c)),
        device,
    )


class LearnedDetector:
    """The trained CenterNet as a detector: ``detect(frame)`` / ``detect_batch(frames)``.

    On CUDA it can run ``channels_last`` and in half precision (``half=True``); on the CPU
    it always runs float32.
    """

    name = "learned"

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
        if self.device.type == "cuda":
            self.model = self.model.to(memory_format=torch.channels_last)
            if self.half:
                self.model = self.model.half()

    @torch.inference_mode()
    def detect_batch(self, frames) -> list[Boxes]:
        x = frames_to_tensor(np.asarray(frames), self.device)
        if self.device.type == "cuda":
            x = x.contiguous(
                memory_format=torch.channels_last
            )  # uint8: the network casts to its dtype
        return decode(self.model(x), self.config, self.threshold)

    def detect(self, frame: np.ndarray) -> Boxes:
        return self.detect_batch(np.asarray(frame)[None])[0]
