"""Checkpoint folders: ``model.safetensors`` (weights only) beside a JSON description.

Used by every trained network in the project (the detector, the end-to-end policy, PPO).
Nothing is pickled: weights go through safetensors, everything else is JSON.  Both files
are written atomically through :mod:`sim.harness.io` (temp file + rename, and the project's
one file-mode policy: a checkpoint gets the mode of every other output, not mkstemp's
0600), so a crash never leaves half a checkpoint under the final name; loading names the
path and the reason for anything it refuses (missing file, bad JSON, another
architecture, tensors that do not fit in name, shape or dtype).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from sim.harness.io import atomic_path, atomic_write_text

WEIGHTS = "model.safetensors"


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded, with the path and the reason."""


def write_checkpoint(out: Path, state_dict: dict, meta_name: str, body: dict) -> None:
    """Weights and JSON into folder ``out``, each written to a temp file and renamed."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_weights(out / WEIGHTS, state_dict)
    _write_meta(out / meta_name, body)


def _write_meta(path: Path, body: dict) -> None:
    atomic_write_text(path, json.dumps(body, indent=2, default=float))


def write_weights(path: Path, tensors: dict) -> None:
    """Tensors to a safetensors file, via a temp file in the same folder and a rename."""
    with atomic_path(path) as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp))


def training_complete(path: str | Path, meta_name: str) -> bool:
    """Whether folder ``path`` holds a checkpoint whose training finished.  Training saves the
    best epoch as it goes with ``training.complete`` false and sets it true at the end, so a
    checkpoint left by an interrupted run is told apart (written before the flag: complete)."""
    meta_path = Path(path) / meta_name
    if not meta_path.exists() or not (Path(path) / WEIGHTS).exists():
        return False
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError):
        return False
    return bool(isinstance(meta, dict) and (meta.get("training") or {}).get("complete", True))


def check_fresh_out(out: Path, meta_name: str) -> None:
    """Refuse to train into a folder that holds a finished checkpoint; the leftovers of an
    interrupted training there are overwritten."""
    if training_complete(out, meta_name):
        raise FileExistsError(f"{Path(out) / meta_name} already exists; choose a new --out folder")


def mark_complete(path: str | Path, meta_name: str, training: dict | None = None) -> None:
    """Set ``training.complete`` in the checkpoint's JSON (atomically), with ``training``'s
    entries: how the run ended (its stop label, epochs and samples), known only now."""
    meta_path = Path(path) / meta_name
    meta = json.loads(meta_path.read_text())
    meta.setdefault("training", {}).update({**(training or {}), "complete": True})
    _write_meta(meta_path, meta)


def read_meta(path: str | Path, meta_name: str, architecture: str, kind: str) -> dict:
    """The checkpoint's JSON, checked for the architecture this code loads."""
    path = Path(path)
    meta_path = path / meta_name
    if not meta_path.exists() or not (path / WEIGHTS).exists():
        article = "an" if kind[:1].lower() in "aeiou" else "a"
        raise CheckpointError(
            f"{path}: not {article} {kind} checkpoint (needs {meta_name} and {WEIGHTS})"
        )
    try:
        meta = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{meta_path}: not valid JSON ({e})") from None
    if not isinstance(meta, dict) or meta.get("architecture") != architecture:
        got = meta.get("architecture") if isinstance(meta, dict) else None
        raise CheckpointError(
            f"{meta_path}: architecture {got!r}, this code loads {architecture!r}"
        )
    return meta


def check_state(expected: dict, state: dict, where: str, what: str = "the config") -> None:
    """Refuse ``state`` (a CheckpointError naming ``where``) unless it holds exactly the tensors of
    ``expected`` (a model's ``state_dict()``: parameters and buffers), each with the same shape
    and dtype.  A dtype is never converted: int8 weights would load as an all-zero network and
    fp16 ones as a silently different one."""
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    both = sorted(set(expected) & set(state))
    wrong = [k for k in both if tuple(expected[k].shape) != tuple(state[k].shape)]
    if missing or extra or wrong:
        raise CheckpointError(
            f"{where}: does not fit {what}: missing {missing[:3]}, "
            f"unexpected {extra[:3]}, wrong shape {wrong[:3]}"
        )
    dtypes = [k for k in both if expected[k].dtype != state[k].dtype]
    if dtypes:
        k = dtypes[0]
        more = f" (and {len(dtypes) - 1} more)" if len(dtypes) > 1 else ""
        raise CheckpointError(
            f"{where}: tensor {k!r} has the wrong dtype: expected "
            f"{_dtype(expected[k].dtype)}, found {_dtype(state[k].dtype)}{more}; "
            "re-save the checkpoint from the trainer, unconverted"
        )


def _dtype(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def load_weights_into(model: torch.nn.Module, path: str | Path) -> None:
    """Load ``path/model.safetensors`` into ``model``; every name, shape and dtype must fit."""
    weights_path = Path(path) / WEIGHTS
    try:
        state = load_file(str(weights_path))
    except Exception as e:  # noqa: BLE001 - safetensors' errors for a damaged file
        raise CheckpointError(f"{weights_path}: cannot be read ({type(e).__name__}: {e})") from None
    check_state(model.state_dict(), state, str(weights_path))
    model.load_state_dict(state)


def resolve_device(name: str = "auto") -> torch.device:
    """``auto``: CUDA when present, else CPU; ``cuda`` without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name not in ("cpu", "cuda"):
        raise ValueError(f"unknown device {name!r}; known: auto, cpu, cuda")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda, but no CUDA device is available (use auto or cpu)")
    return torch.device(name)


def fold_batchnorm(model: torch.nn.Module) -> torch.nn.Module:
    """``model`` (in eval mode) with every ``Conv2d`` that a ``BatchNorm2d`` follows inside an
    ``nn.Sequential`` merged with it into one convolution, in place.

    For inference only: the folded convolution computes the frozen normalisation in its
    weights and bias, one pass over the feature map instead of two (the outputs agree with
    the unfolded network to float32 rounding, ~1e-6). Training a folded model would learn
    without the normalisation, so a model in training mode is refused."""
    if model.training:
        raise ValueError("fold_batchnorm folds a frozen normalisation: call model.eval() first")
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    for name, child in model.named_children():
        if isinstance(child, torch.nn.Sequential):
            kids, folded, i = list(child), [], 0
            while i < len(kids):
                conv, nxt = kids[i], kids[i + 1] if i + 1 < len(kids) else None
                if isinstance(conv, torch.nn.Conv2d) and isinstance(nxt, torch.nn.BatchNorm2d):
                    folded.append(fuse_conv_bn_eval(conv, nxt))
                    i += 2
                else:
                    folded.append(fold_batchnorm(conv))
                    i += 1
            setattr(model, name, torch.nn.Sequential(*folded))
        else:
            fold_batchnorm(child)
    return model


def save_model(
    model: torch.nn.Module, out: Path, meta_name: str, architecture: str, meta: dict
) -> None:
    """A network with a ``config`` (``to_dict()``) into folder ``out``: its weights, and the
    JSON naming its ``architecture`` and config beside ``meta``."""
    write_checkpoint(
        out,
        model.state_dict(),
        meta_name,
        {"architecture": architecture, "config": model.config.to_dict(), **meta},
    )


def load_model(
    path: str | Path,
    meta_name: str,
    architecture: str,
    kind: str,
    build: Callable[[dict], torch.nn.Module],
    device: torch.device | str = "cpu",
) -> tuple[torch.nn.Module, dict]:
    """The network :func:`save_model` wrote (``build`` makes it from the JSON's config), in eval
    mode on ``device``, and its JSON; anything else is refused with the path and the reason."""
    path = Path(path)
    meta = read_meta(path, meta_name, architecture, kind)
    try:
        model = build(meta["config"])
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path / meta_name}: bad config ({e})") from None
    load_weights_into(model, path)
    return model.to(device).eval(), meta
