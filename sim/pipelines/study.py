"""``drive study scale``: closed-loop driving score against labelled data and model size.

One large expert dataset per study (recorded once, or given) is ordered by a fixed
permutation of its episodes; the data size ``F`` takes the shortest prefix of that order
holding at least ``F`` labelled frames, so every smaller subset is inside every larger one
and no episode is split.  Each cell (data size, model width, training seed) is trained with
the same recipe and the same compute: ``samples`` training samples (epochs = samples /
training frames, capped), bounded by a wall-clock budget per cell; then it drives the same
held-out seeds through the evaluation harness.  ``modular`` and ``expert`` drive those seeds
once, as references.

``sensors`` says what the network sees: ``bev`` the bird's-eye raster (the e2e-bev policy;
references expert and modular-bev), or ``rig`` 66x200 road crops of the rig's ``cameras``
with PilotNet's recovery views (the e2e policy, :mod:`agents.e2e.rig`; references expert
and modular, the same stack on the same cameras).  A rig study's demos (and DAgger's rounds)
are recorded with the recovery views; its held-out set with the cameras only, since the
open-loop loss is measured on the centre view.  A rig frame with V recovery views holds
(1 + V) crops in memory when a cell trains: :func:`rig_memory_line` says how much.

Everything lands in the study folder: ``study.json`` (the recipe, written first),
``demos/`` (the dataset, unless one was given), ``cells/{model}__{frames}__seed{S}/`` (the
checkpoint and its evaluation), ``reference/`` (the references' evaluation),
``study.jsonl`` (one line per finished cell, appended atomically) and the report
(``study.md``, ``study.html``, ``study_files/*.png``).  A study resumes cell by cell; a
cell interrupted half-way trains again (its evaluation resumes).

Cells are independent: ``workers`` runs them in that many local processes (threads split
between them), and ``backend="ray"`` hands them to a Ray cluster (``pip install -e
".[ray]"``; ``address`` as ``ray.init`` takes it).
"""

from __future__ import annotations

import base64
import html
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass
from io import BytesIO
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import torch
from matplotlib.ticker import NullFormatter

from agents import make_agent
from agents.e2e.checkpoint import META
from agents.e2e.demos import dataset_info, episode_lengths, load_demos
from agents.e2e.rig import DEFAULT_CAMERAS, DEFAULT_SIDE_VIEWS, INPUT_HW, RigInput, SideView
from agents.e2e.train import E2ETrainConfig, epochs_for, policy_loss, train_e2e
from perception.checkpoint import training_complete
from sim.geometry.bev import BevCamera
from sim.geometry.pinhole import default_rig
from sim.harness.evaluate import RESULTS, read_results, run_eval
from sim.harness.io import (
    _check_creatable,
    append_jsonl,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    ensure_writable_dir,
    read_jsonl,
    write_jsonl,
)
from sim.harness.ray_backend import connect_ray
from sim.harness.run import task_spec
from sim.harness.stats import bootstrap
from sim.harness.versions import git_revision, package_versions
from sim.pipelines.dagger import DaggerConfig, check_rounds, run_dagger
from sim.pipelines.preflight import refuse_faults
from sim.pipelines.record import NoiseConfig, record_dataset
from sim.report.report import subplots
from sim.report.tables import html_table, md_table
from sim.world.scenarios import get_scenario

CONFIG = "study.json"
CELLS = "study.jsonl"
MODELS = ("s", "m", "l")
MATCHED = (
    "scenario",
    "samples",
    "max_epochs",
    "budget_s",
    "stack",
    "episodes",
    "seed_start",
    "duration_s",
    "order_seed",
    "data",
    "heldout_episodes",
    "heldout_seed",
    "keep",
    "sensors",
    "cameras",
    "side_views",
)
"""A resumed study must agree on these; the grid (sizes, models, seeds, DAgger rounds) may grow."""
MATCHED_DAGGER = ("dagger_episodes", "dagger_seed")
"""... and on these once it has DAgger lines."""
LEGACY = {"keep": "best", "sensors": "bev"}
"""What a study written before these settings existed did (its study.json lacks them)."""
HELDOUT = "heldout"
"""The study's shared open-loop test set: expert episodes in no subset, recorded once."""
SENSORS = ("bev", "rig")
DEFAULT_REFERENCES = {"bev": ("expert", "modular-bev"), "rig": ("expert", "modular")}
"""Per sensor kind, the agents driven as horizontal lines: the expert and the modular stack on
the same sensor as the network."""


@dataclass(frozen=True)
class StudyConfig:
    scenario: str
    frames: tuple[int, ...]
    """Data sizes in labelled frames, ascending."""
    models: tuple[str, ...] = MODELS
    train_seeds: int = 3
    episodes: int = 20
    """Held-out evaluation seeds per cell (seed_start, ...)."""
    seed_start: int = 0
    samples: int = 120_000
    """Training samples per cell, whatever its data size (equal compute)."""
    max_epochs: int = 60
    budget_s: float = 900.0
    """Wall-clock bound on one cell's training."""
    stack: int = 1
    duration_s: float | None = None
    references: tuple[str, ...] | None = None
    """Agents driven once as horizontal lines (None: DEFAULT_REFERENCES of ``sensors``)."""
    data: tuple[str, ...] = ()
    """Datasets to take subsets of; empty: record ``demos/`` (seeds from ``demo_seed``)."""
    demo_seed: int = 1000
    demo_noise: float = 0.2
    order_seed: int = 0
    """The permutation of episodes that makes the nested subsets."""
    heldout_episodes: int = 5
    """Expert episodes (seeds heldout_seed, ...) in no subset: every cell's open-loop loss is
    measured on the same states (0: only each cell's own validation split)."""
    heldout_seed: int = 90_000
    dagger_rounds: int = 0
    """After behaviour cloning, this many DAgger rounds per cell (a second line per cell)."""
    dagger_episodes: int = 5
    """Episodes collected (and labelled by the expert) per DAgger round."""
    dagger_seed: int = 5_000
    keep: str = "last"
    """Which weights a cell keeps: ``last`` (fixed compute, the final epoch) or ``best`` (lowest
    loss on the cell's own validation episodes, with early stopping)."""
    sensors: str = "bev"
    """What the network sees: ``bev`` (the bird's-eye raster) or ``rig`` (road crops of
    ``cameras``)."""
    cameras: tuple[str, ...] = ()
    """rig: the cameras the network sees (empty: DEFAULT_CAMERAS); bev: none."""
    side_views: tuple[tuple[float, float], ...] | None = None
    """rig: the recovery views recorded with the demos, ``(dy_m, yaw_deg)`` each (None:
    ``drive record``'s DEFAULT_SIDE_VIEWS); bev: none."""

    def __post_init__(self) -> None:
        if self.sensors not in SENSORS:
            raise ValueError(f"unknown sensors {self.sensors!r}; known: {', '.join(SENSORS)}")
        if self.sensors == "bev" and (self.cameras or self.side_views):
            raise ValueError(
                "--cameras and --side-views choose what a rig study records; "
                "pass --sensors rig, or drop them for a bird's-eye study"
            )
        views = (
            DEFAULT_SIDE_VIEWS
            if self.sensors == "rig" and self.side_views is None
            else self.side_views or ()
        )
        views = tuple(
            (float(v.dy_m), float(v.yaw_deg))
            if isinstance(v, SideView)
            else (float(v[0]), float(v[1]))
            for v in views
        )
        object.__setattr__(self, "side_views", views)
        object.__setattr__(
            self,
            "cameras",
            tuple(self.cameras or (DEFAULT_CAMERAS if self.sensors == "rig" else ())),
        )
        if self.references is None:
            object.__setattr__(self, "references", DEFAULT_REFERENCES[self.sensors])
        object.__setattr__(self, "references", tuple(self.references))
        # unknown cameras, views out of range: refused now, not after the recording
        self.rig_input()
        if (
            not self.frames
            or any(f <= 0 for f in self.frames)
            or list(self.frames) != sorted(set(self.frames))
        ):
            raise ValueError(f"--frames must be distinct positive sizes, got {self.frames}")
        bad = [m for m in self.models if m not in MODELS]
        if bad or not self.models:
            raise ValueError(
                f"unknown model size(s) {bad or self.models}; known: {', '.join(MODELS)}"
            )
        if self.train_seeds < 1 or self.episodes < 1 or self.samples < 1:
            raise ValueError("train_seeds, episodes and samples must be >= 1")
        if self.keep not in ("best", "last"):
            raise ValueError(f"unknown keep {self.keep!r}; known: best, last")
        if self.heldout_episodes < 0 or self.dagger_rounds < 0 or self.dagger_episodes < 1:
            raise ValueError(
                "heldout_episodes and dagger_rounds must be >= 0, dagger_episodes >= 1"
            )

    def rig_input(self, side_views: bool = True) -> RigInput | None:
        """What a rig study records (its cameras, with the recovery views unless ``side_views``
        is false); None for a bird's-eye study."""
        if self.sensors != "rig":
            return None
        views = [SideView(dy, yaw) for dy, yaw in self.side_views] if side_views else []
        return RigInput.build(default_rig(), self.cameras, views)

    def sensor_label(self) -> str:
        """What the network sees, for charts: ``camera rig (cam_front)`` or
        ``bird's-eye raster``."""
        return (
            f"camera rig ({', '.join(self.cameras)})"
            if self.sensors == "rig"
            else "bird's-eye raster"
        )


def rig_memory_bytes(
    frames: int, recovery_views: int, cameras: int = 1, input_hw: tuple[int, int] = INPUT_HW
) -> int:
    """RAM a cell's rig frames take when it trains: every labelled frame holds its centre crop
    and ``recovery_views`` more, ``66 x 200 x 3`` bytes per camera each."""
    h, w = input_hw
    return int(frames) * (1 + int(recovery_views)) * h * w * 3 * int(cameras)


def rig_memory_line(cfg: StudyConfig, workers: int = 1) -> str:
    """The one line a rig study prints first: what its largest subset costs in RAM."""
    views = _data_side_views(cfg)
    per_frame = rig_memory_bytes(1, views, len(cfg.cameras))
    largest = max(cfg.frames)
    total = rig_memory_bytes(largest, views, len(cfg.cameras))
    h, w = INPUT_HW
    text = (
        f"study: memory: a rig frame is 1 + {views} recovery views x {h}x{w}x3 bytes x "
        f"{len(cfg.cameras)} camera{'s' if len(cfg.cameras) != 1 else ''} = {per_frame / 1e3:.0f} "
        f"kB; the largest subset ({largest:,} frames or a little more) takes about "
        f"{total / 1e9:.2f} GB of RAM in each training cell"
    )
    if workers > 1:
        text += f", {workers * total / 1e9:.2f} GB with {workers} cells at a time"
    if cfg.dagger_rounds:
        text += ", more as DAgger's rounds add frames"
    return text


def _data_side_views(cfg: StudyConfig) -> int:
    """Recovery views per frame of a rig study's data: the given datasets' (their largest), or
    the study's own ``side_views`` when it records them."""
    if not cfg.data:
        return len(cfg.side_views)
    return max(
        len((dataset_info(p)["drive"].get("rig") or {}).get("side_views") or []) for p in cfg.data
    )


def _check_data_sensors(cfg: StudyConfig, paths: Sequence[str]) -> None:
    """Given datasets must hold what the study's network sees: bird's-eye frames, or the
    study's rig cameras."""
    for path in paths:
        rig = dataset_info(path)["drive"].get("rig")
        if cfg.sensors == "bev" and rig is not None:
            raise ValueError(
                f"{path} holds rig frames ({', '.join(rig['cameras'])}); pass --sensors rig "
                f"--cameras {','.join(rig['cameras'])} to study them"
            )
        if cfg.sensors == "rig" and (rig is None or tuple(rig["cameras"]) != cfg.cameras):
            held = (
                "bird's-eye frames" if rig is None else f"rig frames of {', '.join(rig['cameras'])}"
            )
            raise ValueError(
                f"{path} holds {held}, the study's network sees the rig's "
                f"{', '.join(cfg.cameras)}; record rig demos with 'drive record --sensors rig' or "
                "match --sensors/--cameras"
            )


def parse_sizes(text: str) -> tuple[int, ...]:
    """``"2k,5k,20k"`` -> ``(2000, 5000, 20000)`` (sorted; ``k`` and ``M`` suffixes)."""
    out = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        mult = {"k": 1_000, "K": 1_000, "m": 1_000_000, "M": 1_000_000}.get(part[-1], 1)
        try:
            value = float(part[:-1] if mult > 1 else part) * mult
        except ValueError:
            raise ValueError(f"--frames: {part!r} is not a size (e.g. 2k, 5000, 1.5M)") from None
        if not math.isfinite(value) or value < 1 or value != int(value):
            raise ValueError(f"--frames: {part!r} is not a positive whole number of frames")
        out.append(int(value))
    if not out:
        raise ValueError(f"--frames names no size (got {text!r})")
    return tuple(sorted(set(out)))


def cell_name(model: str, frames: int, seed: int) -> str:
    return f"{model}__{frames}__seed{seed}"


def grid(cfg: StudyConfig) -> list[dict]:
    """Cells in the order they run: small data first, so a partial study already draws a curve."""
    return [
        {"model": m, "frames": f, "seed": s}
        for f in cfg.frames
        for m in cfg.models
        for s in range(cfg.train_seeds)
    ]


def line_names(cfg: StudyConfig, cell: dict) -> list[str]:
    """The study.jsonl lines a cell owes: behaviour cloning, then DAgger when asked for."""
    name = cell_name(cell["model"], cell["frames"], cell["seed"])
    return [name] + ([f"{name}__dagger{cfg.dagger_rounds}"] if cfg.dagger_rounds else [])


MIN_EPISODES = 2
"""A subset holds at least two episodes: training holds one out for validation."""


def nested_subsets(
    episode_frames: Sequence[int], sizes: Sequence[int], order_seed: int = 0
) -> dict[int, list[int]]:
    """Per size, the episodes (indices) of the shortest prefix of one fixed permutation that
    holds at least that many frames (and MIN_EPISODES); prefixes of one order, so each
    subset holds the smaller ones."""
    n = np.asarray(episode_frames, dtype=np.int64)
    order = np.random.default_rng(order_seed).permutation(len(n))
    cum = np.cumsum(n[order])
    out = {}
    for size in sizes:
        k = max(MIN_EPISODES, int(np.searchsorted(cum, size)) + 1)  # first prefix with cum >= size
        if k > len(order) or cum[-1] < size:
            raise ValueError(
                f"a subset of {size} frames needs more data: the dataset holds {int(cum[-1])} "
                f"frames in {len(order)} episodes"
            )
        out[int(size)] = [int(e) for e in order[:k]]
    return out


# ---------------------------------------------------------------------------- the data


def _record_data(cfg: StudyConfig, folder: Path, workers: int, progress: bool) -> list[str]:
    """Record expert demos until the largest size fits (a second dataset tops up a shortfall);
    a rig study's with its cameras and recovery views."""

    world = get_scenario(cfg.scenario, **({"duration_s": cfg.duration_s} if cfg.duration_s else {}))
    need = max(cfg.frames)
    per_episode = 0.7 * world.max_steps  # a conservative guess; the top-up fixes an underestimate
    paths, have, seed, part = [], 0, cfg.demo_seed, 0
    while have < need:
        path = folder / ("demos" if part == 0 else f"demos-{part}")
        if not (path / "data").exists():
            n = max(2, math.ceil((need - have) / per_episode * 1.1))
            if progress:
                seen = (
                    f"{cfg.sensor_label()} with {len(cfg.side_views)} recovery views"
                    if cfg.sensors == "rig"
                    else cfg.sensor_label()
                )
                print(
                    f"study: recording {n} expert episodes on {cfg.scenario} ({seen}) into {path}",
                    flush=True,
                )
            record_dataset(
                world,
                list(range(seed, seed + n)),
                path,
                noise=NoiseConfig(fraction=cfg.demo_noise),
                workers=workers,
                progress=progress,
                rig=cfg.rig_input(),
            )
        paths.append(str(path))
        lengths = episode_lengths(paths)
        have = sum(lengths)
        seed = cfg.demo_seed + len(lengths)
        per_episode = max(1.0, have / len(lengths))
        part += 1
    return paths


# ---------------------------------------------------------------------------- one cell


def run_cell(folder: str, cfg_dict: dict, cell: dict, threads: int, device: str) -> list[dict]:
    """Train and evaluate one cell (a process of its own): behaviour cloning on the cell's
    subset, then (``dagger_rounds``) DAgger from that policy; returns the study.jsonl lines
    not in ``cell["done"]``."""

    if threads:
        torch.set_num_threads(threads)
    cfg = _cfg(cfg_dict)
    folder_p = Path(folder)
    paths = json.loads((folder_p / CONFIG).read_text())["datasets"]
    names = line_names(cfg, cell)
    done = set(cell.get("done", ()))
    out = folder_p / "cells" / names[0]
    ckpt = out / "policy"
    chosen = nested_subsets(episode_lengths(paths), [cell["frames"]], cfg.order_seed)[
        cell["frames"]
    ]
    subset = load_demos(paths, episodes=chosen)  # only the chosen episodes' frames are read
    epochs = epochs_for(cfg.samples, len(subset), cfg.max_epochs)
    # keep="last" (the default): fixed compute, final weights, no selection on a validation split
    # that is one episode for the smallest subsets (where best-epoch selection kept barely
    # trained epoch-1 networks)
    recipe = E2ETrainConfig(
        model=f"pilotnet-{cell['model']}",
        stack=cfg.stack,
        epochs=epochs,
        keep=cfg.keep,
        patience=max(4, epochs // 4),
        seed=int(cell["seed"]),
        budget_s=cfg.budget_s,
        threads=threads,
    )
    key = {k: cell[k] for k in ("model", "frames", "seed")}
    if not training_complete(ckpt, META):
        train_e2e(
            paths,
            ckpt,
            recipe,
            device=device,
            progress=False,
            demos=subset,
            extra_meta={
                "study": {
                    "cell": key,
                    "episodes": [subset.episodes[k]["seed"] for k in range(len(subset.episodes))],
                }
            },
        )
    lines = []
    if names[0] not in done:
        meta = json.loads((ckpt / META).read_text())
        tr = meta["training"]
        lines.append(
            {
                **key,
                **_score(folder_p, cfg, ckpt, out / "eval", device),
                "cell": names[0],
                "method": "bc",
                "labelled_frames": len(subset),
                "episodes_used": len(chosen),
                "epochs_planned": epochs,
                "epochs_run": len(tr["history"]),
                "stopped": tr["stopped"],
                "samples_seen": int(tr["samples_seen"]),
                "train_seconds": round(float(tr["history"][-1]["elapsed_s"]), 1),
                "val_loss": _best_val(tr),
            }
        )
    if cfg.dagger_rounds and names[1] not in done:
        del subset
        t0 = time.perf_counter()
        dagger = out / "dagger"
        dcfg = DaggerConfig(
            rounds=cfg.dagger_rounds,
            episodes=cfg.dagger_episodes,
            eval_episodes=0,
            data_seed_start=cfg.dagger_seed,
            workers=1,
            duration_s=cfg.duration_s,
        )
        fine_tune = E2ETrainConfig(
            epochs=cfg.max_epochs,
            lr=3e-4,
            keep=cfg.keep,
            patience=3,
            seed=int(cell["seed"]),
            budget_s=cfg.budget_s,
            threads=threads,
        )
        result = run_dagger(
            ckpt,
            dagger,
            dcfg,
            fine_tune,
            scenario=cfg.scenario,
            data=paths,
            episodes=chosen,
            samples=cfg.samples // 2,
            device=device,
            progress=False,
            extra_meta={"study": {"cell": key, "dagger_rounds": cfg.dagger_rounds}},
        )
        rounds = [r for r in result["rounds"] if 1 <= r["round"] <= cfg.dagger_rounds]
        final = Path(rounds[-1]["policy"])
        bc = json.loads((ckpt / META).read_text())["training"]
        trs = [json.loads((Path(r["policy"]) / META).read_text())["training"] for r in rounds]
        lines.append(
            {
                **key,
                **_score(folder_p, cfg, final, dagger / f"eval{cfg.dagger_rounds}", device),
                "cell": names[1],
                "method": "dagger",
                "dagger_rounds": cfg.dagger_rounds,
                "labelled_frames": int(rounds[-1]["frames"]),
                "dagger_frames": int(sum(r["new_frames"] for r in rounds)),
                "episodes_used": len(chosen) + cfg.dagger_rounds * cfg.dagger_episodes,
                "epochs_planned": sum(int(t["epochs"]) for t in trs),
                "epochs_run": len(bc["history"]) + sum(len(t["history"]) for t in trs),
                "stopped": trs[-1]["stopped"],
                "samples_seen": int(bc["samples_seen"]) + sum(int(t["samples_seen"]) for t in trs),
                "train_seconds": round(
                    float(bc["history"][-1]["elapsed_s"])
                    + sum(float(t["history"][-1]["elapsed_s"]) for t in trs),
                    1,
                ),
                "dagger_seconds": round(time.perf_counter() - t0, 1),
                "val_loss": _best_val(trs[-1]),
            }
        )
    return lines


def _best_val(training: dict) -> float:
    return float(training["history"][training["best_epoch"] - 1]["val_loss"])


def _score(folder: Path, cfg: StudyConfig, policy: Path, eval_dir: Path, device: str) -> dict:
    """A policy's study figures: closed loop on the held-out seeds (through the harness) and
    open-loop loss on the study's held-out episodes."""

    meta = json.loads((policy / META).read_text())
    world = get_scenario(cfg.scenario, **({"duration_s": cfg.duration_s} if cfg.duration_s else {}))
    seeds = list(range(cfg.seed_start, cfg.seed_start + cfg.episodes))
    t1 = time.perf_counter()
    records = run_eval(
        eval_dir,
        [f"e2e:{policy}"],
        [cfg.scenario],
        seeds,
        workers=1,
        device=device,
        duration_s=cfg.duration_s,
        progress=False,
        resume=(eval_dir / "config.json").exists(),
    )
    eval_s = time.perf_counter() - t1
    scores = [float(r["driving_score"]) for r in records]
    frames = int(meta["dataset"]["frames"])
    return {
        "policy": str(policy.relative_to(folder)),
        "hours": frames / world.control_hz / 3600.0,
        "model_name": meta["model"],
        "parameters": int(meta["parameters"]),
        "heldout_loss": _heldout_loss(folder, policy, device),
        "eval_seconds": round(eval_s, 1),
        "eval_episodes": len(records),
        "driving_score": float(np.mean(scores)),
        "collision_rate": float(np.mean([r["status"] == "collision" for r in records])),
        "offroad_rate": float(np.mean([r["status"] == "offroad" for r in records])),
        "autonomy_pct": float(np.mean([r.get("autonomy_pct", np.nan) for r in records])),
        "route_completion": float(np.mean([r.get("route_completion", np.nan) for r in records])),
        "statuses": {
            s: sum(r["status"] == s for r in records)
            for s in sorted({r["status"] for r in records})
        },
    }


def _heldout_loss(folder: Path, policy: Path, device: str) -> float | None:
    """Open-loop loss on the study's held-out episodes (None when the study has none)."""

    path = json.loads((folder / CONFIG).read_text()).get(HELDOUT)
    if not path:
        return None
    if path not in _HELDOUT_CACHE:
        _HELDOUT_CACHE.clear()
        _HELDOUT_CACHE[path] = load_demos(path)
    return policy_loss(policy, _HELDOUT_CACHE[path], device)


_HELDOUT_CACHE: dict = {}


# ---------------------------------------------------------------------------- the study


def _check_config(path: Path, config: dict) -> None:
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: unreadable ({e}); choose a new --out folder") from None
    old_cfg = (
        json.loads(json.dumps(asdict(_cfg(old["study"]))))
        if "scenario" in old.get("study", {})
        else {}
    )
    keys = MATCHED + (
        MATCHED_DAGGER if any(r["method"] == "dagger" for r in read_cells(path.parent)) else ()
    )
    diff = [k for k in keys if old_cfg.get(k) != config["study"].get(k)]
    if diff:
        raise ValueError(
            f"--resume: this study's {', '.join(diff)} differ from {path}; resume with the same "
            "recipe (the grid of sizes, models and seeds may grow), or choose a new --out folder"
        )


def _preflight(cfg: StudyConfig, config: dict, device: str) -> None:
    """Refuse now what would stop the study after minutes of recording, training or driving:
    a scenario with faults where the study records demos (they are recorded clean), given
    data it cannot use (missing, other sensors, too small for the largest size, another
    scenario than DAgger's rounds), a reference agent that cannot drive (an unknown name, a
    missing checkpoint).  ``config``: the study.json being written (a resumed study's
    datasets and held-out set are in it already)."""
    world = get_scenario(cfg.scenario, **({"duration_s": cfg.duration_s} if cfg.duration_s else {}))
    datasets = list(config.get("datasets") or cfg.data)
    records = [
        what
        for what, due in (
            ("its demos", not datasets),
            ("held-out episodes", cfg.heldout_episodes and not config.get(HELDOUT)),
            ("DAgger rounds", cfg.dagger_rounds),
        )
        if due
    ]
    if records:
        refuse_faults(
            world,
            f"drive study records {' and '.join(records)} on --scenario {cfg.scenario}, and "
            "demos are recorded without sensor or actuation faults",
        )
    if cfg.data and not config.get("datasets"):
        _check_data_sensors(cfg, cfg.data)
        nested_subsets(episode_lengths(list(cfg.data)), cfg.frames, cfg.order_seed)
    if cfg.dagger_rounds and datasets:
        check_rounds(cfg.scenario, world, datasets)
    task = task_spec(world, BevCamera())  # as drive eval builds them (run_eval's probe)
    for spec in cfg.references:
        try:
            make_agent(spec, task, device=device).prepare()
        except (ValueError, FileNotFoundError) as e:
            raise ValueError(f"--references {spec}: {e}") from None


def run_study(
    cfg: StudyConfig,
    out: str | Path,
    *,
    workers: int = 1,
    device: str = "cpu",
    resume: bool = False,
    backend: str = "local",
    address: str | None = None,
    progress: bool = True,
    argv: Sequence[str] | None = None,
) -> list[dict]:
    """Run (or resume) the study in ``out``; returns every finished cell's line.

    Whatever would stop the study later is refused first, before it records or creates
    anything (a refused study leaves no folder and costs seconds): the output folder, the
    recipe against a resumed study, the scenario, the data and the references
    (:func:`_preflight`), then the backend (Ray installed, the cluster reachable)."""

    if backend not in ("local", "ray"):
        raise ValueError(f"unknown backend {backend!r}; known: local, ray")
    if address is not None and backend != "ray":
        raise ValueError(f"--address {address} needs --backend ray")
    out = Path(out)
    _check_creatable(out, "--out", str(out))  # a folder, or one that can be made; none made yet
    config_path = out / CONFIG
    config = {
        "study": json.loads(json.dumps(asdict(cfg))),
        "command": list(argv) if argv else None,
        "versions": package_versions(),
        "git_revision": git_revision(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if config_path.exists():
        if not resume:
            raise FileExistsError(
                f"{out} already holds a study; pass --resume to continue it, or choose a new --out"
            )
        _check_config(config_path, config)
        old = json.loads(config_path.read_text())
        for key in ("datasets", "dataset_frames", "dataset_episodes", "started", HELDOUT):
            config[key] = old.get(key)
    _preflight(cfg, config, device)
    if backend == "ray":  # Ray missing, a cluster out of reach: refused before any work
        connect_ray(address)
    out = ensure_writable_dir(out)
    if progress and cfg.sensors == "rig":
        print(rig_memory_line(cfg, workers), flush=True)
    if not config.get("datasets"):
        paths = list(cfg.data) or _record_data(
            cfg, out, max(workers, os.cpu_count() or 1), progress
        )
        config["datasets"] = [str(p) for p in paths]
        counts = episode_lengths(config["datasets"])
        nested_subsets(counts, cfg.frames, cfg.order_seed)  # every size fits, before any training
        config["dataset_frames"], config["dataset_episodes"] = int(sum(counts)), len(counts)
    if cfg.heldout_episodes and not config.get(HELDOUT):
        config[HELDOUT] = str(
            _record_heldout(cfg, out, max(workers, os.cpu_count() or 1), progress)
        )
    atomic_write_json(config_path, config)
    _backfill_heldout(out, device, progress)

    seeds = list(range(cfg.seed_start, cfg.seed_start + cfg.episodes))
    if progress and cfg.samples < 2 * max(cfg.frames):
        print(
            f"study: warning: {cfg.samples:,} training samples per cell is under two passes over "
            f"the {max(cfg.frames):,}-frame subset; the largest cells are under-trained rather "
            "than data-limited (raise --samples)",
            flush=True,
        )
    ref_dir = out / "reference"
    if cfg.references:
        if progress:
            print(
                f"study: references {', '.join(cfg.references)} on {len(seeds)} seeds", flush=True
            )
        run_eval(
            ref_dir,
            list(cfg.references),
            [cfg.scenario],
            seeds,
            workers=max(1, workers),
            device=device,
            duration_s=cfg.duration_s,
            progress=progress,
            resume=(ref_dir / "config.json").exists(),
        )

    done = {r["cell"] for r in read_cells(out)}
    todo = [
        {**c, "done": [n for n in line_names(cfg, c) if n in done]}
        for c in grid(cfg)
        if any(n not in done for n in line_names(cfg, c))
    ]
    total = len(grid(cfg))
    if progress:
        dagger = f", each then {cfg.dagger_rounds} DAgger rounds" if cfg.dagger_rounds else ""
        print(
            f"study: {total} cells ({len(cfg.frames)} sizes x {len(cfg.models)} models x "
            f"{cfg.train_seeds} seeds{dagger}), {total - len(todo)} done, {len(todo)} to run, "
            f"{workers} at a time",
            flush=True,
        )
    threads = max(1, (os.cpu_count() or 1) // max(1, workers))
    t0, finished = time.perf_counter(), 0

    def record(lines: list[dict]) -> None:
        nonlocal finished
        for line in lines:
            append_jsonl(out / CELLS, line)
        finished += 1
        if progress:
            per = (time.perf_counter() - t0) / finished
            left = per * (len(todo) - finished)
            for line in lines:
                held = line.get("heldout_loss")
                print(
                    f"study: cell {total - len(todo) + finished}/{total} {line['cell']}: score "
                    f"{line['driving_score']:.3f}, collisions {line['collision_rate']:.2f}, val "
                    f"loss {line['val_loss']:.4f}"
                    + ("" if held is None else f", held-out loss {held:.4f}")
                    + (
                        f", {line['train_seconds']:.0f}+{line['eval_seconds']:.0f} s; "
                        f"about {left / 60:.0f} min left"
                    ),
                    flush=True,
                )

    args = (str(out), asdict(cfg), threads, device)
    if backend == "ray":
        _run_ray(todo, args, record, address)
    else:
        _run_local(todo, args, record, workers)
    return read_cells(out)


def _record_heldout(cfg: StudyConfig, folder: Path, workers: int, progress: bool) -> Path:
    """The shared open-loop test set (reused when a complete one is there)."""

    path = folder / HELDOUT
    if not (path / "data").exists():
        if progress:
            print(
                f"study: recording {cfg.heldout_episodes} held-out expert episodes into {path}",
                flush=True,
            )
        world = get_scenario(
            cfg.scenario, **({"duration_s": cfg.duration_s} if cfg.duration_s else {})
        )
        # a rig study's without recovery views: the open-loop loss is measured on the centre view
        record_dataset(
            world,
            list(range(cfg.heldout_seed, cfg.heldout_seed + cfg.heldout_episodes)),
            path,
            noise=NoiseConfig(fraction=cfg.demo_noise),
            workers=workers,
            progress=progress,
            rig=cfg.rig_input(side_views=False),
        )
    return path


def _backfill_heldout(folder: Path, device: str, progress: bool) -> None:
    """Lines written before the study had its held-out set get their held-out loss now."""
    lines = read_cells(folder)
    todo = [r for r in lines if r.get("heldout_loss") is None]
    if not todo or not json.loads((folder / CONFIG).read_text()).get(HELDOUT):
        return
    if progress:
        print(f"study: held-out loss for {len(todo)} earlier cells", flush=True)
    for r in todo:
        r["heldout_loss"] = _heldout_loss(
            folder, folder / r.get("policy", f"cells/{r['cell']}/policy"), device
        )
    write_jsonl(folder / CELLS, lines)


def _run_local(
    todo: list[dict], args: tuple, record: Callable[[list[dict]], None], workers: int
) -> None:
    folder, cfg, threads, device = args
    if workers <= 1:
        for cell in todo:
            record(run_cell(folder, cfg, cell, threads, device))
        return
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
        pending = {pool.submit(run_cell, folder, cfg, cell, threads, device) for cell in todo}
        while pending:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for f in finished:
                record(f.result())


def _run_ray(
    todo: list[dict], args: tuple, record: Callable[[list[dict]], None], address: str | None
) -> None:
    folder, cfg, threads, device = args
    ray = connect_ray(address)  # Ray is optional: imported there, when asked for
    remote = ray.remote(num_cpus=max(1, threads))(run_cell)
    pending = [remote.remote(folder, cfg, cell, threads, device) for cell in todo]
    while pending:
        ready, pending = ray.wait(pending, num_returns=1)
        for ref in ready:
            record(ray.get(ref))


def read_cells(folder: str | Path) -> list[dict]:
    """The finished cells of a study; a damaged study.jsonl is an error naming file and line."""
    path = Path(folder) / CELLS
    if not path.exists():
        return []
    lines = read_jsonl(path)
    for k, r in enumerate(lines, start=1):
        missing = [f for f in ("cell", "model", "frames", "seed", "driving_score") if f not in r]
        if missing:
            raise ValueError(f"{path}: line {k} lacks {', '.join(missing)}; not a drive study file")
        r.setdefault("method", "bc")  # lines from before DAgger cells
    return lines


# ---------------------------------------------------------------------------- the report


def summarise(cells: Sequence[dict]) -> list[dict]:
    """Per (model, method, frames): mean and spread over training seeds."""
    groups: dict[tuple[str, str, int], list[dict]] = {}
    for c in cells:
        groups.setdefault((c["model"], c.get("method", "bc"), int(c["frames"])), []).append(c)
    out = []
    for (model, method, frames), cs in sorted(
        groups.items(), key=lambda kv: (MODELS.index(kv[0][0]), kv[0][1], kv[0][2])
    ):
        score = np.array([c["driving_score"] for c in cs])
        val = np.array([c["val_loss"] for c in cs])
        held = np.array(
            [np.nan if c.get("heldout_loss") is None else c["heldout_loss"] for c in cs], float
        )
        out.append(
            {
                "model": model,
                "method": method,
                "dagger_rounds": cs[0].get("dagger_rounds", 0),
                "frames": frames,
                "labelled_frames": int(np.mean([c["labelled_frames"] for c in cs])),
                "hours": float(np.mean([c["hours"] for c in cs])),
                "parameters": cs[0]["parameters"],
                "seeds": len(cs),
                "score": float(score.mean()),
                "score_min": float(score.min()),
                "score_max": float(score.max()),
                "score_sd": float(score.std(ddof=1)) if len(cs) > 1 else 0.0,
                "collision_rate": float(np.mean([c["collision_rate"] for c in cs])),
                "offroad_rate": float(np.mean([c["offroad_rate"] for c in cs])),
                "autonomy_pct": float(np.mean([c.get("autonomy_pct", np.nan) for c in cs])),
                "val_loss": float(val.mean()),
                "val_loss_min": float(val.min()),
                "val_loss_max": float(val.max()),
                "heldout_loss": float(held.mean()),
                "heldout_loss_min": float(held.min()),
                "heldout_loss_max": float(held.max()),
                "train_seconds": float(np.mean([c["train_seconds"] for c in cs])),
                "epochs_run": float(np.mean([c["epochs_run"] for c in cs])),
            }
        )
    return out


def references(folder: str | Path) -> dict[str, dict]:
    """Each reference agent's mean driving score with its 95% bootstrap interval."""

    path = Path(folder) / "reference" / RESULTS
    if not path.exists():
        return {}
    by: dict[str, list[float]] = {}
    for r in read_results(path):
        by.setdefault(r["agent"], []).append(float(r["driving_score"]))
    out = {}
    for agent, scores in by.items():
        est = bootstrap(scores)
        out[agent] = {"score": est.value, "low": est.low, "high": est.high, "episodes": len(scores)}
    return out


def series_name(row: dict) -> str:
    """``PilotNet-m`` (behaviour cloning) or ``PilotNet-m + DAgger x2``."""
    base = f"PilotNet-{row['model']}"
    return (
        base
        if row.get("method", "bc") == "bc"
        else f"{base} + DAgger x{row.get('dagger_rounds', '?')}"
    )


def matches(rows: Sequence[dict], reference: dict | None) -> dict[str, int | None]:
    """Per series (model, and method), the fewest labelled frames whose seed-mean score reaches
    the reference's 95% interval (its lower end); None when no size does."""
    if not reference:
        return {}
    bar = reference["low"] if np.isfinite(reference["low"]) else reference["score"]
    out: dict[str, int | None] = {}
    for r in sorted(rows, key=lambda r: r["labelled_frames"]):
        name = series_name(r)
        out.setdefault(name, None)
        if out[name] is None and r["score"] >= bar - 1e-12:
            out[name] = r["labelled_frames"]
    return out


MODULAR = {"rig": "modular", "bev": "modular-bev"}
"""The modular agent that sees what the study's network sees."""


def modular_reference(refs: dict[str, dict], sensors: str = "bev") -> str | None:
    """The modular agent among the references (``modular``, ``modular-bev``, with or without a
    checkpoint: ``modular:geometric``), the line the learned networks are measured against;
    the one on the study's ``sensors`` when both drove."""
    kinds = {a: a.split(":", 1)[0] for a in refs}
    return next((a for a, k in kinds.items() if k == MODULAR[sensors]), None) or next(
        (a for a, k in kinds.items() if k in MODULAR.values()), None
    )


def write_study_report(folder: str | Path) -> dict[str, Path]:
    """``study.md``, ``study.html`` (self-contained) and ``study_files/scaling.png``."""

    folder = Path(folder)
    config = json.loads((folder / CONFIG).read_text())
    cfg = config["study"]
    recipe = _cfg(cfg)
    sensor = recipe.sensor_label()
    cells = read_cells(folder)
    rows = summarise(cells)
    refs = references(folder)
    hz = get_scenario(cfg["scenario"]).control_hz
    modular = modular_reference(refs, recipe.sensors)
    reached = matches(rows, refs.get(modular) if modular else None)
    files = ensure_writable_dir(folder / "study_files")

    # open loop on the shared held-out episodes when every row has it, else each cell's own split
    shared = bool(rows) and all(np.isfinite(r["heldout_loss"]) for r in rows)
    loss_key = "heldout_loss" if shared else "val_loss"
    fig, (ax, ax2) = subplots(1, 2, figsize=(12, 4.6))
    colours = {"s": "tab:green", "m": "tab:blue", "l": "tab:purple"}
    series: dict[str, list[dict]] = {}
    for r in rows:
        series.setdefault(series_name(r), []).append(r)
    for name, rs in series.items():
        rs = sorted(rs, key=lambda r: r["labelled_frames"])
        colour, bc = colours[rs[0]["model"]], rs[0]["method"] == "bc"
        style = "o-" if bc else "s--"
        x = [r["labelled_frames"] for r in rs]
        label = f"{name} ({rs[0]['parameters'] / 1e3:.0f}k params)" if bc else name
        ax.plot(
            x,
            [r["score"] for r in rs],
            style,
            color=colour,
            label=label,
            mfc=None if bc else "white",
        )
        ax.fill_between(
            x,
            [r["score_min"] for r in rs],
            [r["score_max"] for r in rs],
            color=colour,
            alpha=0.15 if bc else 0.07,
        )
        ax2.plot(
            x,
            [r[loss_key] for r in rs],
            style,
            color=colour,
            label=name,
            mfc=None if bc else "white",
        )
        ax2.fill_between(
            x,
            [r[f"{loss_key}_min"] for r in rs],
            [r[f"{loss_key}_max"] for r in rs],
            color=colour,
            alpha=0.15 if bc else 0.07,
        )
        if reached.get(name):
            r = next(r for r in rs if r["labelled_frames"] == reached[name])
            ax.plot(
                [r["labelled_frames"]], [r["score"]], marker="*", ms=16, color=colour, mec="black"
            )
    for agent, style in (("expert", ":"), (modular, "--")):
        if agent in refs:
            ref = refs[agent]
            ax.axhline(
                ref["score"], color="black", ls=style, lw=1.2, label=f"{agent} ({ref['score']:.3f})"
            )
            if np.isfinite(ref["low"]) and ref["high"] > ref["low"]:
                ax.axhspan(ref["low"], ref["high"], color="grey", alpha=0.12)
    sizes = sorted({r["labelled_frames"] for r in rows})
    for a in (ax, ax2):
        a.set_xscale("log")
        a.set_xlabel("labelled frames (log scale)")
        if sizes:
            a.set_xticks(sizes, [f"{f / 1000:.0f}k" if f >= 1000 else str(f) for f in sizes])
            a.xaxis.set_minor_formatter(NullFormatter())
        top = a.secondary_xaxis(
            "top", functions=(lambda f: f / hz / 3600.0, lambda h: h * hz * 3600.0)
        )
        top.set_xlabel("hours of driving")
        if sizes:
            top.set_xticks(
                [f / hz / 3600.0 for f in sizes], [f"{f / hz / 3600.0:.2g}" for f in sizes]
            )
            top.xaxis.set_minor_formatter(NullFormatter())
        a.grid(True, which="both", alpha=0.3)
    ax.set_ylabel("closed-loop driving score")
    ax.set_ylim(-0.02, 1.05)
    ax.set_title(
        f"{cfg['scenario']}: closed loop ({cfg['episodes']} held-out seeds per cell)\n"
        f"PilotNet on the {sensor}"
    )
    ax.legend(fontsize=8, loc="lower right")
    ax2.set_ylabel("loss (L1, open loop, log scale)")
    ax2.set_yscale("log")
    ax2.set_title(
        f"open loop: {cfg.get('heldout_episodes')} held-out expert episodes, in no subset"
        if shared
        else "open loop: each cell's own validation episodes"
    )
    ax2.legend(fontsize=8)
    fig.tight_layout()

    buf = BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    chart = files / "scaling.png"
    atomic_write_bytes(chart, buf.getvalue())

    header = [
        "policy",
        "params",
        "frames",
        "hours",
        "seeds",
        "driving score (mean, min-max)",
        "collision rate",
        "off-road rate",
        "autonomy %",
        "held-out loss",
        "val loss",
        "epochs",
        "train s",
    ]
    table = [
        [
            series_name(r),
            f"{r['parameters'] / 1e3:.0f}k",
            f"{r['labelled_frames']:,}",
            f"{r['hours']:.2f}",
            str(r["seeds"]),
            f"{r['score']:.3f} ({r['score_min']:.3f}-{r['score_max']:.3f})",
            f"{r['collision_rate']:.2f}",
            f"{r['offroad_rate']:.2f}",
            f"{r['autonomy_pct']:.1f}",
            "-" if not np.isfinite(r["heldout_loss"]) else f"{r['heldout_loss']:.4f}",
            f"{r['val_loss']:.4f}",
            f"{r['epochs_run']:.0f}",
            f"{r['train_seconds']:.0f}",
        ]
        for r in sorted(rows, key=lambda r: (r["method"], MODELS.index(r["model"]), r["frames"]))
    ]
    ref_lines = [
        f"{a}: {v['score']:.3f} [{v['low']:.3f}, {v['high']:.3f}] over {v['episodes']} episodes"
        for a, v in refs.items()
    ]
    if modular:
        match_lines = [
            f"{m}: "
            + (
                f"reaches {modular} at {f:,} labelled frames"
                if f
                else f"does not reach {modular} within the sizes run"
            )
            for m, f in reached.items()
        ]
    else:
        match_lines = ["no modular reference in this study"]
    bc_cells = [c for c in cells if c["method"] == "bc"]
    dagger_cells = [c for c in cells if c["method"] == "dagger"]
    total_train = sum(c["train_seconds"] for c in bc_cells)
    total_eval = sum(c["eval_seconds"] for c in bc_cells)
    total_dagger = sum(c.get("dagger_seconds", 0.0) for c in dagger_cells)
    dagger_text = ""
    if dagger_cells:
        k = sorted({c["dagger_rounds"] for c in dagger_cells})
        dagger_text = (
            f" DAgger lines: from each cell's policy, {'/'.join(map(str, k))} rounds of "
            f"{cfg.get('dagger_episodes')} episodes driven by the mix of expert and network, every "
            "visited state labelled by the expert and aggregated with the cell's subset, "
            f"fine-tuned on {cfg['samples'] // 2:,} samples per round; their x is all labelled "
            f"frames (subset + DAgger's), {total_dagger / 60:.0f} min of cell time."
        )
    held_text = (
        f" Open-loop loss on {cfg.get('heldout_episodes')} expert episodes in no subset (seeds "
        f"{cfg.get('heldout_seed')}+)."
        if shared
        else " Open-loop loss on each cell's own validation episodes (not comparable across sizes)."
    )
    intro = (
        f"Scenario {cfg['scenario']}, PilotNet on the {sensor}; {len(bc_cells)} cells done "
        f"({len(grid(recipe))} in the last run's grid); every cell trained on {cfg['samples']:,} "
        f"samples (at most {cfg['max_epochs']} epochs, {cfg['budget_s']:.0f} s budget) from nested "
        f"subsets of {config.get('dataset_episodes')} expert episodes "
        f"({config.get('dataset_frames'):,} frames), then driven on seeds {cfg['seed_start']}-"
        f"{cfg['seed_start'] + cfg['episodes'] - 1}. Bands: min-max over training seeds. A star "
        "marks the smallest size whose mean reaches modular's 95% interval. Training "
        f"{total_train / 60:.0f} min and "
        f"evaluation {total_eval / 60:.0f} min of cell time in all." + held_text + dagger_text
    )
    md = [
        f"# Scaling study: {cfg['scenario']}",
        "",
        intro,
        "",
        "![scaling](study_files/scaling.png)",
        "",
        "References: " + "; ".join(ref_lines),
        "",
        *[f"- {x}" for x in match_lines],
        "",
        md_table(header, table),
        "",
    ]
    data = base64.b64encode(chart.read_bytes()).decode()
    body = (
        f"<h1>Scaling study: {html.escape(cfg['scenario'])}</h1><p>{html.escape(intro)}</p>"
        f'<img alt="scaling chart" src="data:image/png;base64,{data}">'
        f"<p>References: {html.escape('; '.join(ref_lines))}</p><ul>"
        + "".join(f"<li>{html.escape(x)}</li>" for x in match_lines)
        + "</ul>"
        + html_table(header, table)
    )
    page = (
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>Scaling study</title><style>"
        "body{font-family:system-ui,sans-serif;margin:2em;max-width:100em}img{max-width:100%}"
        "table{border-collapse:collapse;font-size:13px}th,td{border:1px solid #ccc;padding:3px 6px;"
        "text-align:right}th{background:#f3f3f3}</style></head><body>" + body + "</body></html>\n"
    )
    paths = {"md": folder / "study.md", "html": folder / "study.html", "chart": chart}
    atomic_write_text(paths["md"], "\n".join(md))
    atomic_write_text(paths["html"], page)
    atomic_write_json(
        folder / "study_summary.json",
        {"rows": rows, "references": refs, "reaches_modular": reached},
    )
    return paths


def _cfg(d: dict) -> StudyConfig:
    """A study.json's recipe (keys it lacks: what the version that wrote it did, LEGACY)."""
    d = {**{k: v for k, v in LEGACY.items() if k not in d}, **d}
    views = d.get("side_views")
    return StudyConfig(
        **{
            **d,
            "frames": tuple(d["frames"]),
            "models": tuple(d["models"]),
            "references": tuple(d["references"]),
            "data": tuple(d["data"]),
            "cameras": tuple(d.get("cameras", ())),
            "side_views": None if views is None else tuple(tuple(v) for v in views),
        }
    )
