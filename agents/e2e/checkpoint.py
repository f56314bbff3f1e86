"""A PilotNet policy checkpoint: a folder with ``model.safetensors`` and a JSON description.

The JSON (``e2e.json``; the RL policy's ``ppo.json`` describes a PilotNet too) holds the
architecture name and :class:`~agents.e2e.model.PilotNetConfig`, the camera, action names and
steering range, and whatever the trainer adds (the recipe and its history, the datasets, the
git revision).  Nothing is pickled; loading checks the architecture name, the config and every
tensor name, shape and dtype, and names what does not fit (:mod:`perception.checkpoint`).
"""

from __future__ import annotations

from pathlib import Path

import torch

from agents.e2e.model import PilotNet, PilotNetConfig
from perception.checkpoint import CheckpointError, load_weights_into, read_meta, write_checkpoint

ARCHITECTURE = "pilotnet-v1"
META = "e2e.json"
REQUIRED_KEYS = ("camera", "action_names", "steering_range_rad")
"""What the agent needs from the JSON besides the network's config."""


def save_policy(model: PilotNet, out: Path, meta: dict) -> None:
    """The network's weights and ``meta`` (plus its architecture and config) into folder ``out``."""
    write_checkpoint(
        out,
        model.state_dict(),
        META,
        {"architecture": ARCHITECTURE, "config": model.config.to_dict(), **meta},
    )


def load_policy(
    path: str | Path,
    device: torch.device | str = "cpu",
    meta_name: str = META,
    kind: str = "end-to-end policy",
) -> tuple[PilotNet, dict]:
    """The trained policy (eval mode) and its JSON (``e2e.json``; the RL policy's ``ppo.json``
    describes a PilotNet too); refuses anything that does not fit."""
    path = Path(path)
    meta = read_meta(path, meta_name, ARCHITECTURE, kind)
    try:
        model = PilotNet(PilotNetConfig.from_dict(meta["config"]))
        missing = [k for k in REQUIRED_KEYS if k not in meta]
        if missing:
            raise KeyError(f"missing {missing}")
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path / meta_name}: bad config ({type(e).__name__}: {e})") from None
    load_weights_into(model, path)
    return model.to(device).eval(), meta
