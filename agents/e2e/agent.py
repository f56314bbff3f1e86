"""The end-to-end agent: camera frames (+ speed, + command) -> the normalised action.

``e2e`` loads a PilotNet checkpoint (:mod:`agents.e2e.checkpoint`; ``e2e:PATH``, default
``runs/e2e/{scenario}``; a ``{scenario}`` in PATH becomes the scenario's name, so one
spec names a checkpoint per scenario) at the first decision or at ``prepare()`` and runs it in
the control loop under ``torch.inference_mode``:

* ``device``: ``auto`` (CUDA when present), ``cpu`` or ``cuda``;
* on CUDA, optional ``channels_last`` + bf16 autocast (``half=True``) and
  ``torch.compile`` (``compile=True``, CUDA graphs via ``mode="reduce-overhead"``);
* **batch invariance**: the loop may step K environments in lock-step and ask for K
  actions at once (:meth:`act_batch`).  Kernels pick different code paths for different
  batch shapes (oneDNN's small-batch convolutions, GEMV vs GEMM; the choice even
  differs between widths), so the same frame can give actions a few 1e-8 apart and the
  episodes drift apart.  With ``batch_invariant=True`` (the default) the network only
  ever sees one batch shape: the batch is cut into chunks of :data:`BATCH_CHUNK` rows
  (the last padded), so an episode is bit-identical whether it ran alone or beside
  63 others (tested on the CPU).  The chunk is 1 on the CPU, where batching buys little
  and batch-1 latency matters most, and 32 on CUDA, where batching is the point.
  ``batch_invariant=False`` runs the whole batch in one call (``drive bench inference``
  shows both).

Frame stacking keeps a short history per *slot*: ``act(obs)`` uses slot 0;
``act_batch(obs, slots)`` one slot per environment, each restarted by ``reset_slot``.

torch (seconds to import) is imported when a policy is loaded or run, not with this module:
the agent registry imports every agent, and a run without a network should not pay for it.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agents.base import BaseAgent, TaskSpec

DEFAULT_E2E_DIR = "runs/e2e"
"""The bird's-eye policies (``e2e-bev``)."""
DEFAULT_E2E_RIG_DIR = "runs/e2e-rig"
"""The rig policies (``e2e``)."""
BATCH_CHUNK = {"cpu": 1, "cuda": 32}
"""Rows per forward call in batch-invariant mode, by device type."""
SENSORS = ("bev", "speed", "command")
"""A bird's-eye policy's sensors; a rig policy's are its cameras, speed and command."""
RIG_SENSORS = ("cam_front", "speed", "command")
"""A rig policy's sensors before its checkpoint says which cameras it reads."""


def default_checkpoint(scenario: str) -> str:
    return f"{DEFAULT_E2E_DIR}/{scenario}"


def policy_experience(meta: dict) -> dict:
    """``{"demo_frames": N, "env_steps": M, "samples_seen": ..., "epochs": ...}`` of a policy
    checkpoint's JSON.

    Behaviour cloning: the dataset's frames (its ``dataset.frames`` already include DAgger's
    aggregated rounds, whose rollouts are also environment steps the learner drove); RL
    (``ppo.json``): the environment steps of training plus the demo frames of the
    behaviour-cloned network it started from, if any.
    """
    if "ppo" in meta:
        init = meta["ppo"].get("init") or {}
        return {
            "demo_frames": int(init.get("demo_frames", 0)),
            "env_steps": int(meta["ppo"].get("timesteps", 0)) + int(init.get("env_steps", 0)),
        }
    frames = int((meta.get("dataset") or {}).get("frames", 0))
    rounds = (meta.get("dagger") or {}).get("rounds") or []
    training = meta.get("training") or {}
    return {
        "demo_frames": frames,
        "env_steps": int(sum(int(r.get("new_frames", 0)) for r in rounds)),
        # what the network was trained on: samples drawn and epochs, and why it stopped
        # (``budget``: a time cap cut the recipe short)
        "samples_seen": int(training.get("samples_seen", 0)),
        "epochs": len(training.get("history") or []),
        "epochs_planned": int(training.get("epochs", 0)),
        "stopped": str(training.get("stopped", "")),
    }


class E2EAgent(BaseAgent):
    """PilotNet behaviour-cloned policy.  Sensors: what its checkpoint was trained on - the
    rig cameras it names (``cam_front``, ...) or the bird's-eye ``bev`` - plus speed and
    command.  ``e2e`` defaults to the rig policies (``runs/e2e-rig/{scenario}``), ``e2e-bev``
    to the bird's-eye ones (``runs/e2e/{scenario}``); either drives any PilotNet checkpoint."""

    name = "e2e"
    lockstep = True  # frame-stack history is kept per slot
    meta_name = "e2e.json"
    """The checkpoint's JSON (``agents.rl.agent.PPOAgent`` loads ``ppo.json``: a PilotNet too)."""
    default_dir = DEFAULT_E2E_RIG_DIR
    default_sensors = RIG_SENSORS
    kind = "end-to-end"

    @property
    def sensors(self) -> tuple[str, ...]:
        """The checkpoint's inputs (read from its JSON, no torch); the class default when there
        is no readable checkpoint yet (loading then says what is wrong)."""
        if self._sensors is None:
            self._sensors = self.default_sensors
            try:
                config = json.loads((Path(self.checkpoint) / self.meta_name).read_text())["config"]
                cams = tuple(config.get("cameras") or ())
                self._sensors = (*cams, "speed", "command") if cams else SENSORS
            except (OSError, ValueError, KeyError, TypeError):
                pass
        return self._sensors

    def __init__(
        self,
        task: TaskSpec,
        checkpoint: str | None = None,
        *,
        device: str = "auto",
        half: bool = False,
        compile: bool = False,
        batch_invariant: bool = True,
    ) -> None:
        super().__init__(task)
        self.checkpoint = str(checkpoint or f"{self.default_dir}/{task.scenario}").replace(
            "{scenario}", task.scenario
        )
        self.requested_device, self.half, self.compile = device, half, compile
        self.batch_invariant = batch_invariant
        self.model = None
        self.meta: dict = {}
        self._device = None
        self._history: dict[int, deque] = {}
        self._sensors: tuple[str, ...] | None = None
        self.rig_input = None
        """The rig cameras' crops (:class:`agents.e2e.rig.RigInput`) of a rig policy."""

    # -- loading ------------------------------------------------------------------------------
    @property
    def device(self) -> str:
        return str(self._device) if self._device is not None else self.requested_device

    def prepare(self) -> None:
        if self.model is not None:
            return
        # lazy: these import torch (module docstring)
        from agents.e2e.checkpoint import load_policy
        from perception.checkpoint import resolve_device

        path = Path(self.checkpoint)
        if not path.exists():
            raise FileNotFoundError(
                f"no {self.kind} checkpoint at {path}; train one with: {self.how_to_train(path)}"
            )
        dev = resolve_device(self.requested_device)
        model, meta = load_policy(path, dev, self.meta_name, f"{self.kind} policy")
        if tuple(meta["action_names"]) != tuple(self.task.action_names):
            raise ValueError(
                f"{path}: the policy drives {meta['action_names']}, scenario "
                f"{self.task.scenario!r} needs {list(self.task.action_names)}"
            )
        cams = model.config.cameras
        if cams:
            self.rig_input = _check_rig(path, meta, cams, self.task.rig)
        elif self.task.bev is not None:
            cam = self.task.bev
            want = {
                k: float(getattr(cam, k))
                for k in ("width_px", "height_px", "metres_per_pixel", "ego_u_px", "ego_v_px")
            }
            got = {k: float(meta["camera"][k]) for k in want}
            if want != got:
                raise ValueError(f"{path}: trained on camera {got}, this run's camera is {want}")
        self._sensors = (*cams, "speed", "command") if cams else SENSORS
        if dev.type == "cuda":
            model = model.to_channels_last()
            if self.compile:
                import torch  # lazy: module docstring

                model = torch.compile(model, mode="reduce-overhead")
        self.model, self.meta, self._device = model, meta, dev

    def how_to_train(self, path: Path) -> str:
        sc = self.task.scenario
        return (
            f"drive record --sensors rig --scenario {sc} --out runs/demos-rig/{sc} && drive train "
            f"e2e --data runs/demos-rig/{sc} --out {path}"
        )

    def checkpoints(self) -> tuple[str, ...]:
        return (self.checkpoint,)

    def experience(self) -> dict:
        """What the policy learned from: expert-labelled demo frames and environment steps it
        drove itself (DAgger's rollouts, RL), for the report."""
        self.prepare()
        return policy_experience(self.meta)

    @property
    def config(self):
        self.prepare()
        return getattr(self.model, "_orig_mod", self.model).config

    # -- episodes and slots ---------------------------------------------------------------------
    def reset(self, seed: int | None = None) -> None:
        self._history.clear()

    def reset_slot(self, slot: int, seed: int | None = None) -> None:
        self._history.pop(int(slot), None)

    def stacked_frames(
        self, slot: int, frame: np.ndarray, stack: int, stride: int = 1
    ) -> np.ndarray:
        """This step's input: ``stack`` frames ``stride`` steps apart, oldest first; an
        episode's first steps repeat its first frame (as ``Demos.stacked_indices``)."""
        if stack == 1:
            return frame
        span = (stack - 1) * stride + 1
        h = self._history.get(slot)
        if h is None:
            h = self._history[slot] = deque([frame] * span, maxlen=span)
        else:
            h.append(frame)
        return np.concatenate(list(h)[::stride], axis=-1)

    # -- acting ------------------------------------------------------------------------------------
    def view(self, obs: Mapping[str, Any]) -> np.ndarray:
        """What the network sees of one observation: the rig cameras' road crops side by side
        on the channel axis, or the bird's-eye frame."""
        if self.rig_input is not None:
            return self.rig_input.crop(obs)
        return np.asarray(obs["bev"])

    def act(self, obs: Mapping[str, Any]) -> np.ndarray:
        return self.act_batch([obs], slots=[0])[0]

    def act_batch(
        self, obs: Sequence[Mapping[str, Any]], slots: Sequence[int] | None = None
    ) -> np.ndarray:
        # lazy: torch (module docstring)
        import torch

        from agents.e2e.model import aux_inputs

        self.prepare()
        config = self.config
        slots = range(len(obs)) if slots is None else slots
        frames = np.stack(
            [
                self.stacked_frames(int(s), self.view(o), config.stack, config.stride)
                for s, o in zip(slots, obs, strict=True)
            ]
        )
        if (
            config.n_views > 1 and config.stack > 1
        ):  # time-major -> camera-major (the network's layout)
            b, h, w = frames.shape[:3]
            frames = np.ascontiguousarray(
                frames.reshape(b, h, w, config.stack, config.n_views, 3)
                .transpose(0, 1, 2, 4, 3, 5)
                .reshape(b, h, w, -1)
            )
        speed = np.array([float(np.asarray(o["speed"]).reshape(-1)[0]) for o in obs], np.float32)
        command = np.array([int(o.get("command", 0)) for o in obs], np.int64)
        dev = self._device
        n = len(frames)
        chunk = BATCH_CHUNK.get(dev.type, 1) if self.batch_invariant else n
        pad = (-n) % chunk
        if pad:  # the last chunk is filled with copies of the last row; their outputs are dropped
            frames = np.concatenate([frames, np.repeat(frames[-1:], pad, axis=0)])
            speed = np.concatenate([speed, np.repeat(speed[-1:], pad)])
            command = np.concatenate([command, np.repeat(command[-1:], pad)])
        with torch.inference_mode():
            x = torch.from_numpy(frames).to(dev, non_blocking=True)
            aux = aux_inputs(speed, command, config).to(dev)
            outs = []
            for i in range(0, len(x), chunk):
                if self.half and dev.type == "cuda":
                    with torch.autocast("cuda", dtype=torch.bfloat16):
                        outs.append(self.model(x[i : i + chunk], aux[i : i + chunk]).float())
                else:
                    outs.append(self.model(x[i : i + chunk], aux[i : i + chunk]))
            return torch.cat(outs)[:n].cpu().numpy().astype(np.float64)


class E2EBevAgent(E2EAgent):
    """The PilotNet policy on the bird's-eye raster (``runs/e2e/{scenario}``): the ablation
    where the end-to-end network is handed a clean top-down map instead of camera frames."""

    name = "e2e-bev"
    default_dir = DEFAULT_E2E_DIR
    default_sensors = SENSORS

    def how_to_train(self, path: Path) -> str:
        sc = self.task.scenario
        return (
            f"drive record --scenario {sc} --out runs/demos/{sc} && drive train e2e --data "
            f"runs/demos/{sc} --out {path}"
        )


def _check_rig(path: Path, meta: dict, cameras: tuple[str, ...], rig):
    """The policy's :class:`~agents.e2e.rig.RigInput`, checked against this run's rig: the same
    cameras with the same models (a network is only valid for the view it learned)."""
    from agents.e2e.rig import RigInput  # lazy: cv2 and the camera models only for rig policies

    if "rig" not in meta:
        raise ValueError(
            f"{path}: a rig policy ({', '.join(cameras)}) whose JSON has no 'rig' block"
        )
    trained = RigInput.from_dict(meta["rig"])
    if rig is None:
        return trained
    missing = [c for c in cameras if c not in rig]
    if missing:
        raise ValueError(
            f"{path}: the policy reads camera(s) {missing}, this run's rig has "
            f"{', '.join(rig.names)}"
        )
    here = RigInput.build(rig, cameras)
    if not here.same_view(trained):
        diff = [c for c in cameras if rig[c].to_dict() != trained.rig[c].to_dict()]
        raise ValueError(
            f"{path}: trained on other camera models for {diff or list(cameras)} "
            f"({[trained.rig[c].to_dict() for c in diff or cameras]}); this run's: "
            f"{[rig[c].to_dict() for c in diff or cameras]}"
        )
    return trained
