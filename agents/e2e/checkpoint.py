"""A PilotNet policy checkpoint: a folder with ``model.safetensors`` and a JSON description.

The JSON (``e2e.json``; the RL policy's ``ppo.json`` describes a PilotNet too) holds the
architecture name and :class:`~agents.e2e.model.PilotNetConfig`, the camera, action names and
steering range, and whatever the trainer adds (the recipe and its history, the datasets, the
git revision).  Nothing is pickled; loading checks the architecture name, the config, every
tensor name, shape and dtype (:mod:`perception.checkpoint`) and the keys the agents read, and
names the file and what does not fit: a damaged JSON is a refusal, never a ``KeyError``.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from agents.e2e.model import PilotNet, PilotNetConfig
from perception.checkpoint import CheckpointError, load_weights_into, read_meta, write_checkpoint
from sim.geometry.bev import BevCamera
from sim.geometry.pinhole import default_rig

ARCHITECTURE = "pilotnet-v1"
META = "e2e.json"
REQUIRED_KEYS = ("camera", "action_names", "steering_range_rad")
"""What the agent needs from the JSON besides the network's config."""


def check_folder_path(out: str | Path) -> Path:
    """Refuse, before any work, an ``--out`` that cannot become a checkpoint folder: a file
    where the folder or one of its parents should be (training used to fail only when it
    saved, after the whole run).  Creates nothing; whether the folder may already hold a
    checkpoint is the trainer's rule (:func:`perception.checkpoint.check_fresh_out`)."""
    out = Path(out)
    for path in (out, *out.parents):
        if path.exists():
            if not path.is_dir():
                raise FileExistsError(f"{path} is a file; --out {out} must be a checkpoint folder")
            break
    return out


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
    describes a PilotNet too); refuses anything that does not fit, as a
    :class:`~perception.checkpoint.CheckpointError` naming the file and the reason: the
    config and the keys the agents read (:data:`REQUIRED_KEYS`), the weights, then those keys'
    types and, for a rig policy, its ``rig`` block (:func:`check_meta`)."""
    path = Path(path)
    where = path / meta_name
    meta = read_meta(path, meta_name, ARCHITECTURE, kind)
    missing = [k for k in ("config", *REQUIRED_KEYS) if k not in meta]
    if missing:
        keys = ", ".join(repr(k) for k in missing)
        raise CheckpointError(f"{where}: missing key{'s' if len(missing) > 1 else ''} {keys}")
    config = meta["config"]
    if not isinstance(config, dict):
        raise CheckpointError(f"{where}: 'config' must be an object, got {config!r}")
    cameras = config.get("cameras", [])
    if not isinstance(cameras, list) or not all(isinstance(c, str) for c in cameras):
        raise CheckpointError(
            f"{where}: 'cameras' in 'config' must be a list of camera names, got {cameras!r}"
        )
    try:
        model = PilotNet(PilotNetConfig.from_dict(config))
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{where}: bad config ({type(e).__name__}: {e})") from None
    load_weights_into(model, path)
    try:
        check_meta(meta, model.config)
    except ValueError as e:
        raise CheckpointError(f"{where}: {e}") from None
    return model.to(device).eval(), meta


def check_meta(meta: dict, config: PilotNetConfig) -> None:
    """Raise ``ValueError`` with the reason unless ``meta`` holds what the agents and trainers
    read, with the right types: ``action_names`` (one name per network output),
    ``steering_range_rad`` (a number > 0), ``camera`` (an object; a bird's-eye policy's every
    :class:`~sim.geometry.bev.BevCamera` field), and for a rig policy its ``rig`` block naming
    the network's cameras, each with a camera model and a crop (the known cameras listed)."""
    names = meta["action_names"]
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise ValueError(f"'action_names' must be a list of action names, got {names!r}")
    if len(names) != config.n_actions:
        raise ValueError(
            f"{len(names)} action names for {config.n_actions} output(s) of the network: {names}"
        )
    rng = meta["steering_range_rad"]
    if isinstance(rng, bool) or not isinstance(rng, (int, float)) or not 0 < rng < math.inf:
        raise ValueError(f"'steering_range_rad' must be a number > 0 [rad], got {rng!r}")
    camera = meta["camera"]
    if not isinstance(camera, dict):
        raise ValueError(  # noqa: TRY004 - a damaged file is refused as a ValueError
            f"'camera' must be an object (the bird's-eye camera), got {camera!r}"
        )
    if not config.cameras:
        lacking = [k for k in BevCamera().to_dict() if k not in camera]
        if lacking:
            raise ValueError(f"'camera' lacks {', '.join(lacking)} (a bird's-eye policy)")
        try:
            BevCamera.from_dict(camera)
        except (TypeError, ValueError) as e:
            raise ValueError(f"bad 'camera' ({type(e).__name__}: {e})") from None
        return
    _check_rig_block(meta, config.cameras)


def _check_rig_block(meta: dict, cameras: tuple[str, ...]) -> None:
    from agents.e2e.rig import RigInput  # lazy: cv2 only for rig policies

    rig = meta.get("rig")
    if rig is None:
        raise ValueError(f"a rig policy ({', '.join(cameras)}) whose JSON has no 'rig' block")
    inner = rig.get("rig") if isinstance(rig, dict) else None
    models = inner.get("cameras") if isinstance(inner, dict) else None
    if not isinstance(models, dict):
        raise ValueError(  # noqa: TRY004 - a damaged file is refused as a ValueError
            "bad 'rig' block: no camera models ('rig': {'cameras': {...}})"
        )
    unknown = [c for c in cameras if c not in models]
    if unknown:
        known = dict.fromkeys([*models, *default_rig().names])
        raise ValueError(
            f"unknown camera(s) {unknown}: the 'rig' block has no model of them "
            f"(known: {', '.join(known)})"
        )
    if rig.get("cameras") != list(cameras):
        raise ValueError(
            f"the network reads {list(cameras)}, its 'rig' block crops {rig.get('cameras')!r}"
        )
    try:
        RigInput.from_dict(rig)
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise ValueError(f"bad 'rig' block ({type(e).__name__}: {e})") from None
