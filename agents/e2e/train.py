"""Behaviour cloning of the PilotNet policy.

:func:`train_e2e` trains on one or more demonstration datasets (:mod:`agents.e2e.demos`):

* train / validation split **by episode** (a seed's frames are all on one side);
* augmentation on the fly, in torch, on the sampled batch: PilotNet-style **viewpoint
  shifts** - the frame is re-rendered as if the car stood up to ``shift_m`` to the side
  and ``rotate_deg`` off its heading (an exact affine map of the top-down camera), and
  the steering label is corrected by pure pursuit towards the point the expert's arc
  reaches ``4 m + 1 s x speed`` ahead - plus brightness/contrast jitter and pixel noise;
* L1 (default) or MSE loss on the normalised actions, AdamW, cosine learning-rate
  schedule per step, early stopping on the validation loss (the best epoch's weights are
  kept), an optional wall-clock budget, a progress bar and TensorBoard scalars;
* data loading is an index gather from one in-memory uint8 array plus the batch
  augmentation; its own throughput is measured and reported beside the training
  throughput, so it can be seen not to be the bottleneck.

The best epoch is written as a policy checkpoint (:mod:`agents.e2e.checkpoint`: weights +
``e2e.json`` with the recipe and its history, the datasets, whatever the caller adds such
as the git revision).
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from agents.e2e.checkpoint import META, check_folder_path, load_policy, save_policy
from agents.e2e.demos import Demos, dataset_info, load_demos
from agents.e2e.model import (
    SPEED_SCALE,
    PilotNet,
    PilotNetConfig,
    aux_inputs,
    count_parameters,
    lead_targets,
    parse_model,
)
from agents.e2e.rig import recovery_labels
from agents.e2e.stream import stream_folder
from perception.checkpoint import check_fresh_out, resolve_device
from perception.splits import split_by_episode
from perception.training import EpochLoop, cosine_per_step
from sim.geometry.bev import BevCamera


@dataclass(frozen=True)
class E2ETrainConfig:
    """The behaviour-cloning recipe (saved in the checkpoint)."""

    model: str = "pilotnet-m"
    stack: int = 1
    stride: int = 1
    loss: str = "l1"
    epochs: int = 20
    samples_per_epoch: int = 0
    """Samples drawn (without replacement) from the training split each epoch; 0: all of it.
    Fixes the compute per epoch as an aggregated dataset grows (DAgger's rounds at scale)."""
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-4
    patience: int = 4
    """Stop after this many epochs without a better validation loss (``keep="best"`` only)."""
    keep: str = "best"
    """``best``: keep the epoch with the lowest validation loss (early stopping); ``last``:
    train every epoch and keep the final weights (fixed compute, no selection on a small
    validation split: the scaling study)."""
    val_fraction: float = 0.1
    seed: int = 0
    augment: bool = True
    view_prob: float | None = None
    """Share of samples given a viewpoint shift (bird's-eye frames) or drawn from one of the
    recorded recovery views (rig frames).  ``None``: :data:`DEFAULT_VIEW_PROB` where it can
    take effect, else 0; an explicit share > 0 where it cannot (no augmentation, rig demos
    without recovery views) is refused.  The checkpoint records the share that took effect
    (:func:`effective_view_prob`)."""
    shift_m: float = 1.0
    """Largest lateral viewpoint shift [m]."""
    rotate_deg: float = 5.0
    """Largest viewpoint rotation [deg]."""
    budget_s: float = 0.0
    """A cap on training time [s] (0 = none).  The recipe (``epochs``, the data) decides what
    a network sees; a budget only cuts it short, loudly: a warning, ``stopped: "budget"`` and
    the samples and epochs it got in the checkpoint, so a busy machine cannot silently give
    a different network."""
    threads: int = 0
    """torch CPU threads (0 = torch's default)."""
    keyframe_weight: float = 0.0
    """Keyframe weighting (after Wen et al. 2021, a counter-measure to copycat policies that
    repeat the previous action): each training sample's loss is weighted by
    ``1 + keyframe_weight * change / mean change``, ``change`` being how much the expert's
    action moved from the previous step of its episode (sum of |differences| over the
    actions), the weights then scaled to mean 1; 0 weighs every sample alike (as before)."""
    speed_head: float = 0.0
    """Weight of the CILRS speed-prediction loss (0: no speed branch).  > 0 gives the network
    a branch that reads the ego speed from the image features alone, trained by L1 against
    the true speed (x :data:`~agents.e2e.model.SPEED_SCALE`, the speed input's scale) beside
    the action loss; the validation loss stays the action loss alone, comparable across
    recipes.  CILRS and its reimplementations weigh it 0.05 against their action losses."""
    lead_head: float = 0.0
    """Weight of the auxiliary lead loss (0: no lead branch): L1 between a branch from the
    image features and the demos' lead auto-label (gap / 60 m, closing speed / 10 m/s), beside
    the action loss (TransFuser's auxiliary heads); needs demos recorded with the label."""
    speed_dropout: float = 0.0
    """Share of training samples whose speed input is zeroed (a counter-measure to the
    speed shortcut, issue 31: a network that cannot count on its speedometer must read its
    speed, and the traffic, from the frames; validation and driving keep the true speed).
    Its draws come from their own stream, so 0 trains exactly as before."""

    def __post_init__(self) -> None:
        parse_model(self.model)
        if self.loss not in ("l1", "mse"):
            raise ValueError(f"unknown loss {self.loss!r}; known: l1, mse")
        if self.keep not in ("best", "last"):
            raise ValueError(f"unknown keep {self.keep!r}; known: best, last")
        if self.samples_per_epoch < 0:
            raise ValueError(f"samples_per_epoch must be >= 0, got {self.samples_per_epoch}")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError("epochs and batch size must be >= 1")
        if not 0.0 <= self.keyframe_weight <= 100.0:
            raise ValueError(f"keyframe_weight must be in [0, 100], got {self.keyframe_weight}")
        if not 0.0 <= self.speed_head <= 10.0:
            raise ValueError(f"speed_head must be in [0, 10], got {self.speed_head}")
        if not 0.0 <= self.lead_head <= 10.0:
            raise ValueError(f"lead_head must be in [0, 10], got {self.lead_head}")
        if not 0.0 <= self.speed_dropout <= 1.0:
            raise ValueError(f"speed_dropout must be in [0, 1], got {self.speed_dropout}")
        if self.speed_dropout > 0 and not self.augment:
            raise ValueError(
                "--speed-dropout is a training-time augmentation; it cannot take effect with "
                "--no-augment"
            )
        if self.view_prob is not None and not 0.0 <= self.view_prob <= 1.0:
            raise ValueError(f"view_prob must be in [0, 1], got {self.view_prob}")
        if self.view_prob and not self.augment:
            raise ValueError(
                f"--view-prob {self.view_prob:g} cannot take effect with --no-augment "
                "(recovery views and viewpoint shifts are augmentation); leave one of them out"
            )


DEFAULT_VIEW_PROB = 0.5
"""The share of augmented samples from a recovery view or viewpoint shift, where none is given."""


def effective_view_prob(recipe: E2ETrainConfig, demos: Demos, where: str = "the demos") -> float:
    """The share of samples ``recipe`` draws from a recovery view on ``demos`` (named ``where``
    in errors): 0 without augmentation or without views to draw, :data:`DEFAULT_VIEW_PROB`
    when ``recipe.view_prob`` is ``None``.  An explicit share > 0 on rig demos recorded without
    recovery views is refused: it would train on the centre view only and record otherwise."""
    if not recipe.augment:
        return 0.0
    if demos.rig is not None and demos.side_frames is None:
        if recipe.view_prob:
            raise ValueError(
                f"--view-prob {recipe.view_prob:g} cannot take effect: {where} hold rig frames "
                "with no recovery views (recorded with --side-views none); leave --view-prob "
                "out, or record the demos with --side-views"
            )
        return 0.0
    return DEFAULT_VIEW_PROB if recipe.view_prob is None else float(recipe.view_prob)


# -- augmentation ---------------------------------------------------------------------------------
class ViewAugmenter:
    """Viewpoint shifts of the top-down ego camera with corrected steering labels."""

    def __init__(self, camera: dict, steering_index: int, steering_range_rad: float) -> None:
        self.camera = BevCamera.from_dict(camera)
        self.h, self.w = int(self.camera.height_px), int(self.camera.width_px)
        self.steer_i, self.steer_range = steering_index, steering_range_rad
        v, u = np.meshgrid(
            np.arange(self.h, dtype=np.float32), np.arange(self.w, dtype=np.float32), indexing="ij"
        )
        # output pixel -> ego-frame metres (x forward, y left) of the new viewpoint
        self.base = torch.from_numpy(
            self.camera.pixel_to_ego(np.stack([u, v], axis=-1)).astype(np.float32)
        )

    def grid(self, dy: torch.Tensor, dtheta: torch.Tensor) -> torch.Tensor:
        """grid_sample grid [B, H, W, 2]: where each new pixel was in the recorded frame."""
        c, s = torch.cos(dtheta)[:, None, None], torch.sin(dtheta)[:, None, None]
        x, y = self.base[..., 0][None], self.base[..., 1][None]
        px = c * x - s * y  # p = R(dtheta) p' + (0, dy)
        py = s * x + c * y + dy[:, None, None]
        # back to pixels through the camera model (float64), handed to grid_sample as float32
        uv = torch.from_numpy(
            self.camera.ego_to_pixel(torch.stack([px, py], dim=-1).numpy()).astype(np.float32)
        )
        u, v = uv[..., 0], uv[..., 1]
        return torch.stack([(2 * u + 1) / self.w - 1, (2 * v + 1) / self.h - 1], dim=-1)

    def correct(
        self, labels: np.ndarray, speed: np.ndarray, dy: np.ndarray, dtheta: np.ndarray
    ) -> np.ndarray:
        """Steering labels for the shifted viewpoints (pure pursuit to the expert's arc)."""
        return recovery_labels(labels, speed, dy, dtheta, self.steer_i, self.steer_range)


def _photometric(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    b = x.shape[0]
    gain = 0.75 + 0.5 * torch.rand(b, 1, 1, 1, generator=gen)
    bias = (torch.rand(b, 1, 1, 1, generator=gen) - 0.5) * 30.0
    noise = torch.randn(x.shape, generator=gen) * 3.0
    return x * gain + bias + noise


class BatchMaker:
    """Index gather + augmentation (the data loader): from the in-memory arrays, or from a
    streamed dataset's files (:mod:`agents.e2e.stream`), which give the same bytes.

    Every random draw of a training batch comes from streams seeded by ``(recipe.seed,
    key)``, ``key`` naming the batch (epoch, position): a batch is the same whichever process
    makes it and in whatever order, so loader workers (:class:`BatchLoader`) change the speed,
    never the network."""

    def __init__(
        self,
        demos: Demos,
        config: PilotNetConfig,
        recipe: E2ETrainConfig,
        steering_range_rad: float,
    ) -> None:
        self.d, self.config = demos, config
        self.recipe = replace(recipe, view_prob=effective_view_prob(recipe, demos))
        self.frames = demos.frames  # an array, or a streamed file indexed like one
        self.stacked = demos.stacked_indices(config.stack, config.stride)
        self.rig = demos.rig is not None
        self.aug = (
            None
            if self.rig
            else ViewAugmenter(
                demos.camera, list(demos.action_names).index("steering"), steering_range_rad
            )
        )
        self.side = demos.side_frames
        self._streams((0,))

    def _streams(self, key: tuple[int, ...]) -> None:
        """The batch ``key``'s random streams: augmentation, and speed dropout's own (so
        ``speed_dropout`` 0 draws the rest exactly as with it)."""
        seed = int(self.recipe.seed)
        self.rng = np.random.default_rng([seed, *key])
        self.gen = torch.Generator().manual_seed(int(self.rng.integers(2**62)))
        self.speed_rng = np.random.default_rng([seed, 1, *key])

    def _gather(self, rows: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(self.frames[rows]))

    def speed_input(self, speed: np.ndarray, augment: bool) -> np.ndarray:
        """The speed the network is handed: zeroed on a ``speed_dropout`` share of training
        samples, as it is otherwise."""
        p = self.recipe.speed_dropout
        if not augment or p <= 0.0:
            return speed
        return np.where(self.speed_rng.random(len(speed)) < p, 0.0, speed).astype(speed.dtype)

    def batch(
        self, idx: np.ndarray, augment: bool, key: tuple[int, ...] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Frames, head inputs and labels of the states ``idx``; ``key`` (e.g. ``(epoch,
        position)``) reseeds the augmentation for this batch (None: the streams continue)."""
        if key is not None:
            self._streams(tuple(int(k) for k in key))
        if self.rig:
            return self._rig_batch(idx, augment)
        b, k = len(idx), self.config.stack
        frames = self._gather(self.stacked[idx].reshape(-1))
        frames = frames.reshape(b, k, *frames.shape[1:])  # [B, k, H, W, 3]
        labels = self.d.labels[idx]
        speed = self.d.speed[idx]
        if augment:
            x = frames.permute(0, 1, 4, 2, 3).reshape(b, k * 3, *frames.shape[2:4]).float()
            view = self.rng.random(b) < self.recipe.view_prob
            dy = np.where(view, self.rng.uniform(-self.recipe.shift_m, self.recipe.shift_m, b), 0.0)
            dth = np.where(
                view,
                np.radians(self.rng.uniform(-self.recipe.rotate_deg, self.recipe.rotate_deg, b)),
                0.0,
            )
            if view.any():
                grid = self.aug.grid(torch.from_numpy(dy).float(), torch.from_numpy(dth).float())
                x = torch.nn.functional.grid_sample(
                    x, grid, mode="bilinear", padding_mode="border", align_corners=False
                )
                labels = self.aug.correct(labels, speed, dy, dth)
            x = _photometric(x, self.gen).round_().clamp_(0, 255).to(torch.uint8)
            frames = x.reshape(b, k, 3, *x.shape[2:]).permute(0, 1, 3, 4, 2)
        frames = (
            frames.permute(0, 2, 3, 1, 4)
            .reshape(b, frames.shape[2], frames.shape[3], k * 3)
            .contiguous()
        )
        aux = aux_inputs(self.speed_input(speed, augment), self.d.command[idx], self.config)
        return frames, aux, torch.from_numpy(np.ascontiguousarray(labels, dtype=np.float32))

    def _rig_batch(
        self, idx: np.ndarray, augment: bool
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Rig frames: a ``view_prob`` share of the samples is drawn from one of the state's
        recorded recovery views (the whole stack from the same view, as from a camera mounted
        there) with its corrected label; photometric jitter on top."""
        b, k, n = len(idx), self.config.stack, self.config.n_views
        stacked = self.stacked[idx]  # [B, k]
        labels = self.d.labels[idx].copy()
        pick = np.zeros(0, np.int64)
        if augment and self.side is not None and self.recipe.view_prob > 0:
            pick = np.flatnonzero(self.rng.random(b) < self.recipe.view_prob)
        centre = np.setdiff1d(np.arange(b), pick)
        frames = torch.empty((b, k, *self.frames.shape[1:]), dtype=torch.uint8)
        if len(centre):
            frames[torch.from_numpy(centre)] = self._gather(stacked[centre].reshape(-1)).reshape(
                len(centre), k, *self.frames.shape[1:]
            )
        if len(pick):
            view = self.rng.integers(0, self.side.shape[1], len(pick))
            side = self.side[stacked[pick].reshape(-1), np.repeat(view, k)]
            frames[torch.from_numpy(pick)] = torch.from_numpy(np.ascontiguousarray(side)).reshape(
                len(pick), k, *self.frames.shape[1:]
            )
            labels[pick] = self.d.side_labels[idx[pick], view]
        h, w = frames.shape[2:4]
        # [B, k, H, W, n*3] -> [B, H, W, n, k, 3]: each camera's frames together, oldest first
        frames = (
            frames.reshape(b, k, h, w, n, 3).permute(0, 2, 3, 4, 1, 5).reshape(b, h, w, n * k * 3)
        )
        if augment:
            x = frames.permute(0, 3, 1, 2).float()
            x = _photometric(x, self.gen).round_().clamp_(0, 255).to(torch.uint8)
            frames = x.permute(0, 2, 3, 1)
        aux = aux_inputs(
            self.speed_input(self.d.speed[idx], augment), self.d.command[idx], self.config
        )
        return (
            frames.contiguous(),
            aux,
            torch.from_numpy(np.ascontiguousarray(labels, dtype=np.float32)),
        )


class _EpochBatches(torch.utils.data.Dataset):
    """One epoch's batches (``order`` cut into ``batch_size`` runs), batch ``j`` made with key
    ``(epoch, j)``: what :class:`BatchLoader`'s workers map over."""

    def __init__(self, maker: BatchMaker, order: np.ndarray, size: int, epoch: int, augment: bool):
        self.maker, self.order, self.size = maker, order, size
        self.epoch, self.augment = epoch, augment

    def __len__(self) -> int:
        return math.ceil(len(self.order) / self.size)

    def __getitem__(self, j: int):
        idx = self.order[j * self.size : (j + 1) * self.size]
        return (*self.maker.batch(idx, self.augment, key=(self.epoch, j)), torch.from_numpy(idx))


def _one_thread(_: int) -> None:
    torch.set_num_threads(1)  # a loader worker must not fight the trainer for the cores


def epoch_batches(
    maker: BatchMaker, order: np.ndarray, batch_size: int, epoch: int, augment: bool, workers: int
):
    """The epoch's batches in order, as ``(frames, aux, labels, idx)``, made in ``workers``
    processes (0: in this one); the same batches whatever ``workers`` is."""
    data = _EpochBatches(maker, order, batch_size, epoch, augment)
    if workers <= 0:
        return (data[j] for j in range(len(data)))
    return iter(
        torch.utils.data.DataLoader(
            data,
            batch_size=None,
            shuffle=False,
            num_workers=workers,
            worker_init_fn=_one_thread,
            prefetch_factor=4,
            persistent_workers=False,
            pin_memory=torch.cuda.is_available(),
        )
    )


def _loss(
    pred: torch.Tensor, target: torch.Tensor, kind: str, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """The batch's loss; ``weight`` (per sample, mean 1 over the dataset) scales each
    sample's share (keyframe weighting)."""
    per = (pred - target).abs() if kind == "l1" else (pred - target) ** 2
    if weight is None:
        return per.mean()
    return (per.mean(dim=1) * weight).mean()


def _auxiliary_loss(
    heads: dict[str, torch.Tensor],
    demos: Demos,
    idx: np.ndarray,
    recipe: E2ETrainConfig,
    dev: torch.device,
) -> torch.Tensor | float:
    """The auxiliary heads' weighted L1 losses on the states ``idx`` (0 without heads): the
    speed read from the frames against the true speed (CILRS), the lead against its label."""
    total: torch.Tensor | float = 0.0
    if "speed" in heads and recipe.speed_head > 0:
        true_speed = torch.from_numpy(demos.speed[idx] * SPEED_SCALE).to(dev)
        total = total + recipe.speed_head * (heads["speed"] - true_speed).abs().mean()
    if "lead" in heads and recipe.lead_head > 0:
        target = lead_targets(demos.lead[idx]).to(dev)
        total = total + recipe.lead_head * (heads["lead"] - target).abs().mean()
    return total


def keyframe_weights(labels: np.ndarray, episode: np.ndarray, strength: float) -> np.ndarray:
    """Per-sample weights ``1 + strength * change / mean change`` scaled to mean 1, ``change``
    the sum over the actions of |the expert's action - its previous step's| within an episode
    (0 at an episode's first step): the moments where the expert changes what it does count
    more than the ones a copy of the last action would get right."""
    labels = np.asarray(labels, dtype=np.float64).reshape(len(labels), -1)
    change = np.zeros(len(labels))
    same = np.asarray(episode[1:]) == np.asarray(episode[:-1])
    change[1:] = np.where(same, np.abs(np.diff(labels, axis=0)).sum(axis=1), 0.0)
    mean = change.mean()
    w = 1.0 + (strength * change / mean if mean > 0 else 0.0)
    return (w / w.mean()).astype(np.float32)


@torch.inference_mode()
def evaluate_loss(
    model: PilotNet,
    maker: BatchMaker,
    idx: np.ndarray,
    device: torch.device,
    kind: str,
    batch_size: int = 256,
) -> float:
    model.eval()
    total, n = 0.0, 0
    for i in range(0, len(idx), batch_size):
        frames, aux, y = maker.batch(idx[i : i + batch_size], augment=False)
        pred = model(frames.to(device), aux.to(device))
        total += float(_loss(pred, y.to(device), kind)) * len(y)
        n += len(y)
    return total / max(n, 1)


def policy_loss(path: str | Path, demos: Demos, device: str | torch.device = "cpu") -> float:
    """A trained policy's loss (its own loss kind, no augmentation) on every state of
    ``demos``: open-loop error on data it never saw, comparable across policies."""
    dev = resolve_device(device) if isinstance(device, str) else device
    model, meta = load_policy(path, dev)
    if tuple(meta["action_names"]) != tuple(demos.action_names):
        raise ValueError(
            f"{path} drives {meta['action_names']}, the data has {list(demos.action_names)}"
        )
    h, w = demos.image_hw
    if model.config.image_hw != (h, w) or model.config.cameras != _cameras(demos):
        raise ValueError(
            f"{path} takes {model.config.image_hw} frames of {_views(model.config.cameras)}, "
            f"the data has {(h, w)} of {_views(_cameras(demos))}"
        )
    maker = BatchMaker(demos, model.config, E2ETrainConfig(), float(meta["steering_range_rad"]))
    kind = meta.get("training", {}).get("loss", E2ETrainConfig().loss)
    return evaluate_loss(model, maker, np.arange(len(demos)), dev, kind)


def _cameras(demos: Demos) -> tuple[str, ...]:
    return tuple(demos.rig["cameras"]) if demos.rig is not None else ()


def _views(cameras: tuple[str, ...]) -> str:
    return ", ".join(cameras) if cameras else "the bird's-eye camera"


def epochs_for(samples: int, frames: int, max_epochs: int, val_fraction: float = 0.1) -> int:
    """Epochs that show about ``samples`` training samples from ``frames`` labelled states
    (a ``val_fraction`` of them held out): equal compute across data sizes, at least 1."""
    return int(min(max_epochs, max(1, math.ceil(samples / max((1 - val_fraction) * frames, 1)))))


def train_e2e(
    data: str | Path | list,
    out: str | Path,
    recipe: E2ETrainConfig = E2ETrainConfig(),
    *,
    device: str = "auto",
    init: str | Path | None = None,
    progress: bool = True,
    extra_meta: dict | None = None,
    demos: Demos | None = None,
    stream: bool = True,
    loader_workers: int = 0,
) -> dict:
    """Train a PilotNet policy on the demonstrations ``data``; the best epoch goes to ``out``.

    ``stream``: read the frames from disk per batch (:mod:`agents.e2e.stream`; a temp folder
    holds them for the run), so memory does not grow with the dataset; ``loader_workers``:
    processes that make the batches while the network trains.  Neither changes the network
    (the same batches either way); ``demos`` given: trained on as they are.

    ``init``: a policy checkpoint to start from (DAgger's rounds fine-tune); its
    architecture wins over ``recipe.model``/``recipe.stack``.

    ``out`` is checked before any work (a file in its place, a finished checkpoint in it:
    refused; an interrupted training's leftovers are overwritten), and nothing is written
    there until the data, the recipe and the model are known to fit.
    """
    out = check_folder_path(out)
    check_fresh_out(out, META)
    dev = resolve_device(device)
    if recipe.threads:
        torch.set_num_threads(recipe.threads)
    torch.manual_seed(recipe.seed)
    paths = [str(p) for p in (data if isinstance(data, list) else [data])]
    with contextlib.ExitStack() as stack:
        if demos is None:
            folder = stack.enter_context(stream_folder()) if stream else None
            demos = load_demos(paths, stream_dir=folder)
        return _train(
            demos, paths, out, recipe, dev, init, progress, extra_meta, max(0, loader_workers)
        )


def _train(
    demos: Demos,
    paths: list[str],
    out: Path,
    recipe: E2ETrainConfig,
    dev: torch.device,
    init,
    progress: bool,
    extra_meta: dict | None,
    loader_workers: int,
) -> dict:
    steer_range = _steering_range(paths)
    recipe = replace(recipe, view_prob=effective_view_prob(recipe, demos, ", ".join(paths)))
    train_idx, val_idx = split_by_episode(demos.episode.tolist(), recipe.val_fraction, recipe.seed)
    if not len(train_idx) or not len(val_idx):
        raise ValueError(
            f"{', '.join(paths)}: need at least two episodes to split train / validation, "
            f"found {len(demos.episodes)}"
        )
    if recipe.lead_head > 0 and demos.lead is None:
        raise ValueError(
            f"--lead-head: {', '.join(paths)} carry no lead labels (recorded before them, or "
            "mixed with datasets that do not); record the demos again with drive record"
        )
    h, w = demos.image_hw
    if init is not None:
        model, init_meta = load_policy(init, dev)
        if tuple(init_meta["action_names"]) != demos.action_names:
            raise ValueError(
                f"--init {init} drives {init_meta['action_names']}, the data has "
                f"{demos.action_names}"
            )
        if recipe.lead_head > 0 and not model.config.lead_head:
            raise ValueError(
                f"--lead-head {recipe.lead_head:g}: --init {init} has no lead branch to "
                "train; start from a network trained with --lead-head, or leave it out"
            )
        if recipe.speed_head > 0 and not model.config.speed_head:
            raise ValueError(
                f"--speed-head {recipe.speed_head:g}: --init {init} has no speed branch to "
                "train; start from a network trained with --speed-head, or leave it out"
            )
        recipe = replace(
            recipe,
            model=model.config.model_name,
            stack=model.config.stack,
            stride=model.config.stride,
        )
    else:
        config = PilotNetConfig(
            width=parse_model(recipe.model),
            image_hw=(h, w),
            stack=recipe.stack,
            stride=recipe.stride,
            n_actions=len(demos.action_names),
            use_command=bool(len(np.unique(demos.command)) > 1 or demos.uses_command),
            cameras=_cameras(demos),
            speed_head=recipe.speed_head > 0,
            lead_head=recipe.lead_head > 0,
        )
        model = PilotNet(config).to(dev)
    if model.config.image_hw != (h, w) or model.config.cameras != _cameras(demos):
        raise ValueError(
            f"the model takes {model.config.image_hw} frames of {_views(model.config.cameras)}, "
            f"the data has {(h, w)} of {_views(_cameras(demos))}"
        )
    maker = BatchMaker(demos, model.config, recipe, steer_range)
    weights = (
        keyframe_weights(demos.labels, demos.episode, recipe.keyframe_weight)
        if recipe.keyframe_weight > 0
        else None
    )
    optimiser = torch.optim.AdamW(
        model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay
    )
    per_epoch = min(recipe.samples_per_epoch or len(train_idx), len(train_idx))
    steps_per_epoch = math.ceil(per_epoch / recipe.batch_size)
    schedule = cosine_per_step(optimiser, recipe.epochs * steps_per_epoch)
    writer = None
    try:  # lazy: tensorboard is slow to import and only training writes scalars
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(log_dir=str(out / "tensorboard"))
    except ImportError:  # pragma: no cover - tensorboard is a dependency
        pass
    history: list[dict] = []
    loop = EpochLoop(recipe.epochs, recipe.patience, recipe.keep, recipe.budget_s)
    step = 0
    load_s = compute_s = 0.0
    samples = 0
    rng = np.random.default_rng(recipe.seed)

    def meta_now(complete: bool = False) -> dict:
        """The checkpoint's JSON as training stands (the counters read at call time)."""
        return _meta(
            demos,
            paths,
            recipe,
            model,
            steer_range,
            history,
            loop.best_epoch,
            train_idx,
            val_idx,
            dev,
            init,
            samples,
            load_s,
            compute_s,
            loop.stopped,
            extra_meta,
            loader_workers,
            complete=complete,
        )

    for epoch in range(recipe.epochs):
        model.train()
        order = rng.permutation(train_idx)[:per_epoch]
        bar = tqdm(
            total=len(order),
            desc=f"epoch {epoch + 1}/{recipe.epochs}",
            unit="frame",
            disable=not progress,
            leave=False,
            dynamic_ncols=True,
        )
        run_loss, run_n = 0.0, 0
        batches = epoch_batches(
            maker, order, recipe.batch_size, epoch, recipe.augment, loader_workers
        )
        while True:
            t0 = time.perf_counter()
            batch = next(batches, None)
            if batch is None:
                break
            frames, aux, y, idx = batch
            t1 = time.perf_counter()
            pred, heads = model.forward_heads(frames.to(dev, non_blocking=True), aux.to(dev))
            w = None
            if weights is not None:
                w = torch.from_numpy(weights[idx.numpy()]).to(dev)
            loss = _loss(pred, y.to(dev), recipe.loss, w)
            loss = loss + _auxiliary_loss(heads, demos, idx.numpy(), recipe, dev)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
            t2 = time.perf_counter()
            load_s += t1 - t0
            compute_s += t2 - t1
            samples += len(y)
            step += 1
            run_loss += loss.item() * len(y)
            run_n += len(y)
            bar.update(len(y))
            if step % 20 == 0:
                bar.set_postfix_str(f"loss {run_loss / run_n:.4f}")
                if writer is not None:
                    writer.add_scalar("train/loss_step", loss.item(), step)
            if loop.over_budget():
                break
        del batches  # a loader's workers stop here (a budget may have cut the epoch short)
        bar.close()
        val_loss = evaluate_loss(model, maker, val_idx, dev, recipe.loss)
        elapsed = loop.elapsed_s()
        history.append(
            {
                "epoch": epoch + 1,
                "train_loss": run_loss / max(run_n, 1),
                "val_loss": val_loss,
                "lr": optimiser.param_groups[0]["lr"],
                "elapsed_s": elapsed,
            }
        )
        if writer is not None:
            for k in ("train_loss", "val_loss", "lr"):
                writer.add_scalar(k, history[-1][k], epoch + 1)
        if progress:
            print(
                f"epoch {epoch + 1}: train {history[-1]['train_loss']:.4f}  val {val_loss:.4f}  "
                f"({elapsed:.0f} s)",
                flush=True,
            )
        save, stop = loop.end_epoch(-val_loss)
        if save:
            save_policy(model, out, meta_now())
        if stop:
            break
    if writer is not None:
        writer.close()
    loop.warn_if_cut(out, samples, recipe.epochs * per_epoch)
    # the final JSON carries the whole history (the best epoch's weights stay as saved)
    final_model, _ = load_policy(out, "cpu")
    save_policy(final_model, out, meta_now(complete=True))
    return {
        "out": str(out),
        "best_epoch": loop.best_epoch,
        "best_val_loss": -loop.best,
        "history": history,
        "parameters": count_parameters(model),
        "train_seconds": loop.elapsed_s(),
        "train_samples_per_s": samples / max(load_s + compute_s, 1e-9),
        "loader_samples_per_s": samples / max(load_s, 1e-9),
        "stopped": loop.stopped,
        "samples_seen": int(samples),
        "epochs_trained": len(history),
        "train_frames": len(train_idx),
        "val_frames": len(val_idx),
    }


def _steering_range(paths: list[str]) -> float:
    return float(dataset_info(paths[0])["drive"].get("steering_range_rad", math.pi / 4))


def _meta(
    demos,
    paths,
    recipe,
    model,
    steer_range,
    history,
    best_epoch,
    train_idx,
    val_idx,
    dev,
    init,
    samples,
    load_s,
    compute_s,
    stopped,
    extra_meta,
    loader_workers: int = 0,
    complete: bool = False,
) -> dict:
    return {
        "model": model.config.model_name,
        "parameters": count_parameters(model),
        "camera": demos.camera,
        **({"rig": demos.rig} if demos.rig is not None else {}),
        "recovery_views": 0 if demos.side_frames is None else int(demos.side_frames.shape[1]),
        "action_names": list(demos.action_names),
        "steering_range_rad": steer_range,
        "scenario": demos.scenario,
        "training": {
            **asdict(recipe),
            "device": str(dev),
            "best_epoch": best_epoch,
            "history": history,
            "train_frames": len(train_idx),
            "val_frames": len(val_idx),
            "init": str(init) if init else None,
            "samples_seen": int(samples),
            "epochs_trained": len(history),
            "samples_planned": int(
                recipe.epochs * min(recipe.samples_per_epoch or len(train_idx), len(train_idx))
            ),
            "train_samples_per_s": samples / max(load_s + compute_s, 1e-9),
            "loader_samples_per_s": samples / max(load_s, 1e-9),
            "stopped": stopped,
            "complete": complete,
            "streamed": bool(demos.streamed),
            "loader_workers": int(loader_workers),
        },
        "dataset": {
            "paths": paths,
            "sources": demos.sources,
            "frames": len(demos),
            "episodes": len(demos.episodes),
        },
        **(extra_meta or {}),
    }
