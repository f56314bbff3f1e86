"""``drive study scale``: closed-loop driving score against labelled data and model size.

One large expert dataset per study (recorded once, or given) is ordered by a fixed
permutation of its episodes; the data size ``F`` takes the shortest prefix of that order
holding at least ``F`` labelled frames, so every smaller subset is inside every larger one
and no episode is split.  Each cell (data size, model width, training seed) is trained with
the same recipe and the same compute: ``samples`` training samples (epochs = samples /
training frames, capped), bounded by a wall-clock budget per cell; then it drives the same
held-out seeds through the evaluation harness.  ``modular`` and ``expert`` drive those seeds
once, as references.

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

import json
import math
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from sim.io import append_jsonl, atomic_write_json, ensure_writable_dir, read_jsonl

CONFIG = "study.json"
CELLS = "study.jsonl"
MODELS = ("s", "m", "l")
MATCHED = ("scenario", "samples", "max_epochs", "budget_s", "stack", "episodes", "seed_start", "duration_s",
           "order_seed", "data")
"""A resumed study must agree on these; the grid (sizes, models, seeds) may grow."""


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
    references: tuple[str, ...] = ("expert", "modular")
    data: tuple[str, ...] = ()
    """Datasets to take subsets of; empty: record ``demos/`` (seeds from ``demo_seed``)."""
    demo_seed: int = 1000
    demo_noise: float = 0.2
    order_seed: int = 0
    """The permutation of episodes that makes the nested subsets."""

    def __post_init__(self) -> None:
        if not self.frames or any(f <= 0 for f in self.frames) or list(self.frames) != sorted(set(self.frames)):
            raise ValueError(f"--frames must be distinct positive sizes, got {self.frames}")
        bad = [m for m in self.models if m not in MODELS]
        if bad or not self.models:
            raise ValueError(f"unknown model size(s) {bad or self.models}; known: {', '.join(MODELS)}")
        if self.train_seeds < 1 or self.episodes < 1 or self.samples < 1:
            raise ValueError("train_seeds, episodes and samples must be >= 1")


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
    return [{"model": m, "frames": f, "seed": s} for f in cfg.frames for m in cfg.models
            for s in range(cfg.train_seeds)]


MIN_EPISODES = 2
"""A subset holds at least two episodes: training holds one out for validation."""


def nested_subsets(episode_frames: Sequence[int], sizes: Sequence[int], order_seed: int = 0) -> dict[int, list[int]]:
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
            raise ValueError(f"a subset of {size} frames needs more data: the dataset holds {int(cum[-1])} "
                             f"frames in {len(order)} episodes")
        out[int(size)] = [int(e) for e in order[:k]]
    return out


# ---------------------------------------------------------------------------- the data


def _record_data(cfg: StudyConfig, folder: Path, workers: int, progress: bool) -> list[str]:
    """Record expert demos until the largest size fits (a second dataset tops up a shortfall)."""
    from agents.demos import episode_lengths
    from sim.record import NoiseConfig, record_dataset
    from sim.scenarios import get_scenario

    world = get_scenario(cfg.scenario, **({"duration_s": cfg.duration_s} if cfg.duration_s else {}))
    need = max(cfg.frames)
    per_episode = 0.7 * world.max_steps  # a conservative guess; the top-up fixes an underestimate
    paths, have, seed, part = [], 0, cfg.demo_seed, 0
    while have < need:
        path = folder / ("demos" if part == 0 else f"demos-{part}")
        if not (path / "data").exists():
            n = max(2, math.ceil((need - have) / per_episode * 1.1))
            if progress:
                print(f"study: recording {n} expert episodes on {cfg.scenario} into {path}", flush=True)
            record_dataset(world, list(range(seed, seed + n)), path, noise=NoiseConfig(fraction=cfg.demo_noise),
                           workers=workers, progress=progress)
        paths.append(str(path))
        lengths = episode_lengths(paths)
        have = sum(lengths)
        seed = cfg.demo_seed + len(lengths)
        per_episode = max(1.0, have / len(lengths))
        part += 1
    return paths


# ---------------------------------------------------------------------------- one cell


def run_cell(folder: str, cfg_dict: dict, cell: dict, threads: int, device: str) -> dict:
    """Train and evaluate one cell (a process of its own); returns its study.jsonl line."""
    import torch

    from agents.demos import episode_lengths, load_demos
    from agents.e2e_train import META, E2ETrainConfig, train_e2e
    from perception.checkpoint import training_complete
    from sim.evaluate import run_eval
    from sim.scenarios import get_scenario

    if threads:
        torch.set_num_threads(threads)
    cfg = _cfg(cfg_dict)
    folder_p = Path(folder)
    paths = json.loads((folder_p / CONFIG).read_text())["datasets"]
    out = folder_p / "cells" / cell_name(cell["model"], cell["frames"], cell["seed"])
    ckpt = out / "policy"
    chosen = nested_subsets(episode_lengths(paths), [cell["frames"]], cfg.order_seed)[cell["frames"]]
    subset = load_demos(paths, episodes=chosen)  # only the chosen episodes' frames are read
    train_frames_est = 0.9 * len(subset)
    epochs = int(min(cfg.max_epochs, max(1, math.ceil(cfg.samples / max(train_frames_est, 1)))))
    recipe = E2ETrainConfig(model=f"pilotnet-{cell['model']}", stack=cfg.stack, epochs=epochs,
                            patience=max(4, epochs // 4), seed=int(cell["seed"]), budget_s=cfg.budget_s,
                            threads=threads)
    if not training_complete(ckpt, META):
        train_e2e(paths, ckpt, recipe, device=device, progress=False, demos=subset,
                  extra_meta={"study": {"cell": cell, "episodes": [subset.episodes[k]["seed"]
                                                                    for k in range(len(subset.episodes))]}})
    meta = json.loads((ckpt / META).read_text())
    tr = meta["training"]
    best = tr["history"][tr["best_epoch"] - 1]
    world = get_scenario(cfg.scenario, **({"duration_s": cfg.duration_s} if cfg.duration_s else {}))
    seeds = list(range(cfg.seed_start, cfg.seed_start + cfg.episodes))
    t1 = time.perf_counter()
    eval_dir = out / "eval"
    records = run_eval(eval_dir, [f"e2e:{ckpt}"], [cfg.scenario], seeds, workers=1, device=device,
                       duration_s=cfg.duration_s, progress=False, resume=(eval_dir / "config.json").exists())
    eval_s = time.perf_counter() - t1
    scores = [float(r["driving_score"]) for r in records]
    return {**cell, "cell": out.name, "labelled_frames": len(subset), "episodes_used": len(chosen),
            "hours": len(subset) / world.control_hz / 3600.0, "model_name": meta["model"],
            "parameters": int(meta["parameters"]), "epochs_planned": epochs, "epochs_run": len(tr["history"]),
            "stopped": tr["stopped"], "samples_seen": int(tr["samples_seen"]),
            "train_seconds": round(float(tr["history"][-1]["elapsed_s"]), 1),
            "val_loss": float(best["val_loss"]), "eval_seconds": round(eval_s, 1), "eval_episodes": len(records),
            "driving_score": float(np.mean(scores)),
            "collision_rate": float(np.mean([r["status"] == "collision" for r in records])),
            "offroad_rate": float(np.mean([r["status"] == "offroad" for r in records])),
            "autonomy_pct": float(np.mean([r.get("autonomy_pct", np.nan) for r in records])),
            "route_completion": float(np.mean([r.get("route_completion", np.nan) for r in records])),
            "statuses": {s: sum(r["status"] == s for r in records) for s in sorted({r["status"] for r in records})}}


# ---------------------------------------------------------------------------- the study


def _check_config(path: Path, config: dict) -> None:
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: unreadable ({e}); choose a new --out folder") from None
    diff = [k for k in MATCHED if old.get("study", {}).get(k) != config["study"].get(k)]
    if diff:
        raise ValueError(f"--resume: this study's {', '.join(diff)} differ from {path}; resume with the same "
                         "recipe (the grid of sizes, models and seeds may grow), or choose a new --out folder")


def run_study(cfg: StudyConfig, out: str | Path, *, workers: int = 1, device: str = "cpu", resume: bool = False,
              backend: str = "local", address: str | None = None, progress: bool = True,
              argv: Sequence[str] | None = None) -> list[dict]:
    """Run (or resume) the study in ``out``; returns every finished cell's line."""
    from agents.demos import episode_lengths
    from sim.evaluate import run_eval
    from sim.scenarios import get_scenario
    from sim.versions import git_revision, package_versions

    get_scenario(cfg.scenario)  # unknown names list the known ones
    if backend not in ("local", "ray"):
        raise ValueError(f"unknown backend {backend!r}; known: local, ray")
    out = ensure_writable_dir(out)
    config_path = out / CONFIG
    config = {"study": json.loads(json.dumps(asdict(cfg))), "command": list(argv) if argv else None, "versions": package_versions(),
              "git_revision": git_revision(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    if config_path.exists():
        if not resume:
            raise FileExistsError(f"{out} already holds a study; pass --resume to continue it, or choose a new --out")
        _check_config(config_path, config)
        old = json.loads(config_path.read_text())
        for key in ("datasets", "dataset_frames", "dataset_episodes", "started"):
            config[key] = old.get(key)
    if not config.get("datasets"):
        paths = list(cfg.data) or _record_data(cfg, out, max(workers, os.cpu_count() or 1), progress)
        config["datasets"] = [str(p) for p in paths]
        counts = episode_lengths(config["datasets"])
        nested_subsets(counts, cfg.frames, cfg.order_seed)  # every size fits, before any training
        config["dataset_frames"], config["dataset_episodes"] = int(sum(counts)), len(counts)
    atomic_write_json(config_path, config)

    seeds = list(range(cfg.seed_start, cfg.seed_start + cfg.episodes))
    if progress and cfg.samples < 2 * max(cfg.frames):
        print(f"study: warning: {cfg.samples:,} training samples per cell is under two passes over the "
              f"{max(cfg.frames):,}-frame subset; the largest cells are under-trained rather than data-limited "
              f"(raise --samples)", flush=True)
    ref_dir = out / "reference"
    if cfg.references:
        if progress:
            print(f"study: references {', '.join(cfg.references)} on {len(seeds)} seeds", flush=True)
        run_eval(ref_dir, list(cfg.references), [cfg.scenario], seeds, workers=max(1, workers), device=device,
                 duration_s=cfg.duration_s, progress=progress, resume=(ref_dir / "config.json").exists())

    done = {r["cell"] for r in read_cells(out)}
    todo = [c for c in grid(cfg) if cell_name(c["model"], c["frames"], c["seed"]) not in done]
    total = len(grid(cfg))
    if progress:
        print(f"study: {total} cells ({len(cfg.frames)} sizes x {len(cfg.models)} models x {cfg.train_seeds} "
              f"seeds), {total - len(todo)} done, {len(todo)} to run, {workers} at a time", flush=True)
    threads = max(1, (os.cpu_count() or 1) // max(1, workers))
    t0, finished = time.perf_counter(), 0

    def record(line: dict) -> None:
        nonlocal finished
        append_jsonl(out / CELLS, line)
        finished += 1
        if progress:
            per = (time.perf_counter() - t0) / finished
            left = per * (len(todo) - finished)
            print(f"study: cell {total - len(todo) + finished}/{total} {line['cell']}: score "
                  f"{line['driving_score']:.3f}, collisions {line['collision_rate']:.2f}, val loss "
                  f"{line['val_loss']:.4f}, {line['train_seconds']:.0f}+{line['eval_seconds']:.0f} s; "
                  f"about {left / 60:.0f} min left", flush=True)

    args = (str(out), asdict(cfg), threads, device)
    if backend == "ray":
        _run_ray(todo, args, record, address)
    else:
        _run_local(todo, args, record, workers)
    return read_cells(out)


def _run_local(todo: list[dict], args: tuple, record: Callable[[dict], None], workers: int) -> None:
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


def _run_ray(todo: list[dict], args: tuple, record: Callable[[dict], None], address: str | None) -> None:
    try:
        import ray
    except ImportError:
        raise ValueError("--backend ray needs Ray: pip install -e \".[ray]\"") from None
    folder, cfg, threads, device = args
    ray.init(address=address, ignore_reinit_error=True, log_to_driver=False)
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
    return lines


# ---------------------------------------------------------------------------- the report


def summarise(cells: Sequence[dict]) -> list[dict]:
    """Per (model, frames): mean and spread over training seeds."""
    groups: dict[tuple[str, int], list[dict]] = {}
    for c in cells:
        groups.setdefault((c["model"], int(c["frames"])), []).append(c)
    out = []
    for (model, frames), cs in sorted(groups.items(), key=lambda kv: (MODELS.index(kv[0][0]), kv[0][1])):
        score = np.array([c["driving_score"] for c in cs])
        val = np.array([c["val_loss"] for c in cs])
        out.append({"model": model, "frames": frames, "labelled_frames": int(np.mean([c["labelled_frames"] for c in cs])),
                    "hours": float(np.mean([c["hours"] for c in cs])), "parameters": cs[0]["parameters"],
                    "seeds": len(cs), "score": float(score.mean()), "score_min": float(score.min()),
                    "score_max": float(score.max()), "score_sd": float(score.std(ddof=1)) if len(cs) > 1 else 0.0,
                    "collision_rate": float(np.mean([c["collision_rate"] for c in cs])),
                    "offroad_rate": float(np.mean([c["offroad_rate"] for c in cs])),
                    "val_loss": float(val.mean()), "val_loss_min": float(val.min()), "val_loss_max": float(val.max()),
                    "train_seconds": float(np.mean([c["train_seconds"] for c in cs])),
                    "epochs_run": float(np.mean([c["epochs_run"] for c in cs]))})
    return out


def references(folder: str | Path) -> dict[str, dict]:
    """Each reference agent's mean driving score with its 95% bootstrap interval."""
    from sim.evaluate import RESULTS, read_results
    from sim.stats import bootstrap

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


def matches(rows: Sequence[dict], reference: dict | None) -> dict[str, int | None]:
    """Per model, the smallest data size whose seed-mean score reaches the reference's 95%
    interval (its lower end); None when no size does."""
    if not reference:
        return {}
    bar = reference["low"] if np.isfinite(reference["low"]) else reference["score"]
    out: dict[str, int | None] = {}
    for r in rows:
        out.setdefault(r["model"], None)
        if out[r["model"]] is None and r["score"] >= bar - 1e-12:
            out[r["model"]] = r["frames"]
    return out


def write_study_report(folder: str | Path) -> dict[str, Path]:
    """``study.md``, ``study.html`` (self-contained) and ``study_files/scaling.png``."""
    import base64
    import html

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    from sim.io import atomic_write_bytes, atomic_write_text
    from sim.scenarios import get_scenario

    folder = Path(folder)
    config = json.loads((folder / CONFIG).read_text())
    cfg = config["study"]
    cells = read_cells(folder)
    rows = summarise(cells)
    refs = references(folder)
    hz = get_scenario(cfg["scenario"]).control_hz
    reached = matches(rows, refs.get("modular"))
    files = ensure_writable_dir(folder / "study_files")

    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 4.6))
    colours = {"s": "tab:green", "m": "tab:blue", "l": "tab:purple"}
    for model in [m for m in MODELS if any(r["model"] == m for r in rows)]:
        rs = [r for r in rows if r["model"] == model]
        x = [r["labelled_frames"] for r in rs]
        params = rs[0]["parameters"]
        ax.plot(x, [r["score"] for r in rs], "o-", color=colours[model],
                label=f"PilotNet-{model} ({params / 1e3:.0f}k params)")
        ax.fill_between(x, [r["score_min"] for r in rs], [r["score_max"] for r in rs], color=colours[model],
                        alpha=0.15)
        ax2.plot(x, [r["val_loss"] for r in rs], "o-", color=colours[model], label=f"PilotNet-{model}")
        ax2.fill_between(x, [r["val_loss_min"] for r in rs], [r["val_loss_max"] for r in rs],
                         color=colours[model], alpha=0.15)
        if reached.get(model):
            r = next(r for r in rs if r["frames"] == reached[model])
            ax.plot([r["labelled_frames"]], [r["score"]], marker="*", ms=16, color=colours[model], mec="black")
    for agent, style in (("expert", ":"), ("modular", "--")):
        if agent in refs:
            ref = refs[agent]
            ax.axhline(ref["score"], color="black", ls=style, lw=1.2, label=f"{agent} ({ref['score']:.3f})")
            if np.isfinite(ref["low"]) and ref["high"] > ref["low"]:
                ax.axhspan(ref["low"], ref["high"], color="grey", alpha=0.12)
    sizes = sorted({r["labelled_frames"] for r in rows})
    for a in (ax, ax2):
        a.set_xscale("log")
        a.set_xlabel("labelled frames (log scale)")
        if sizes:
            a.set_xticks(sizes, [f"{f / 1000:.0f}k" if f >= 1000 else str(f) for f in sizes])
            a.xaxis.set_minor_formatter(NullFormatter())
        top = a.secondary_xaxis("top", functions=(lambda f: f / hz / 3600.0, lambda h: h * hz * 3600.0))
        top.set_xlabel("hours of driving")
        if sizes:
            top.set_xticks([f / hz / 3600.0 for f in sizes], [f"{f / hz / 3600.0:.2g}" for f in sizes])
            top.xaxis.set_minor_formatter(NullFormatter())
        a.grid(True, which="both", alpha=0.3)
    ax.set_ylabel("closed-loop driving score")
    ax.set_ylim(-0.02, 1.05)
    ax.set_title(f"{cfg['scenario']}: closed loop ({cfg['episodes']} held-out seeds per cell)")
    ax.legend(fontsize=8, loc="lower right")
    ax2.set_ylabel("validation loss (L1, open loop)")
    ax2.set_title("open loop: each cell's held-out demo episodes")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    from io import BytesIO

    buf = BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    chart = files / "scaling.png"
    atomic_write_bytes(chart, buf.getvalue())

    header = ["model", "params", "frames", "hours", "seeds", "driving score (mean, min-max)", "collision rate",
              "off-road rate", "val loss", "epochs", "train s"]
    table = [[f"PilotNet-{r['model']}", f"{r['parameters'] / 1e3:.0f}k", f"{r['labelled_frames']:,}",
              f"{r['hours']:.2f}", str(r["seeds"]),
              f"{r['score']:.3f} ({r['score_min']:.3f}-{r['score_max']:.3f})", f"{r['collision_rate']:.2f}",
              f"{r['offroad_rate']:.2f}", f"{r['val_loss']:.4f}", f"{r['epochs_run']:.0f}",
              f"{r['train_seconds']:.0f}"] for r in rows]
    ref_lines = [f"{a}: {v['score']:.3f} [{v['low']:.3f}, {v['high']:.3f}] over {v['episodes']} episodes"
                 for a, v in refs.items()]
    if "modular" in refs:
        match_lines = [f"PilotNet-{m}: " + (f"reaches modular at {f:,} frames" if f else
                                             "does not reach modular within the sizes run")
                       for m, f in reached.items()]
    else:
        match_lines = ["no modular reference in this study"]
    total_train = sum(c["train_seconds"] for c in cells)
    total_eval = sum(c["eval_seconds"] for c in cells)
    intro = (f"Scenario {cfg['scenario']}; {len(cells)} of {len(grid(_cfg(cfg)))} cells done; every cell trained "
             f"on {cfg['samples']:,} samples (at most {cfg['max_epochs']} epochs, {cfg['budget_s']:.0f} s budget) "
             f"from nested subsets of {config.get('dataset_episodes')} expert episodes "
             f"({config.get('dataset_frames'):,} frames), then driven on seeds {cfg['seed_start']}-"
             f"{cfg['seed_start'] + cfg['episodes'] - 1}. Bands: min-max over training seeds. A star marks the "
             f"smallest size whose mean reaches modular's 95% interval. Training {total_train / 60:.0f} min and "
             f"evaluation {total_eval / 60:.0f} min of cell time in all.")
    md = [f"# Scaling study: {cfg['scenario']}", "", intro, "", "![scaling](study_files/scaling.png)", "",
          "References: " + "; ".join(ref_lines), "", *[f"- {x}" for x in match_lines], "",
          "| " + " | ".join(header) + " |", "|" + "---|" * len(header),
          *["| " + " | ".join(row) + " |" for row in table], ""]
    data = base64.b64encode(chart.read_bytes()).decode()
    body = (f"<h1>Scaling study: {html.escape(cfg['scenario'])}</h1><p>{html.escape(intro)}</p>"
            f'<img alt="scaling chart" src="data:image/png;base64,{data}">'
            f"<p>References: {html.escape('; '.join(ref_lines))}</p><ul>"
            + "".join(f"<li>{html.escape(x)}</li>" for x in match_lines) + "</ul><table><thead><tr>"
            + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr></thead><tbody>"
            + "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in table)
            + "</tbody></table>")
    page = ("<!doctype html><html lang=en><head><meta charset=utf-8><title>Scaling study</title><style>"
            "body{font-family:system-ui,sans-serif;margin:2em;max-width:100em}img{max-width:100%}"
            "table{border-collapse:collapse;font-size:13px}th,td{border:1px solid #ccc;padding:3px 6px;"
            "text-align:right}th{background:#f3f3f3}</style></head><body>" + body + "</body></html>\n")
    paths = {"md": folder / "study.md", "html": folder / "study.html", "chart": chart}
    atomic_write_text(paths["md"], "\n".join(md))
    atomic_write_text(paths["html"], page)
    atomic_write_json(folder / "study_summary.json", {"rows": rows, "references": refs, "reaches_modular": reached})
    return paths


def _cfg(d: dict) -> StudyConfig:
    return StudyConfig(**{**d, "frames": tuple(d["frames"]), "models": tuple(d["models"]),
                          "references": tuple(d["references"]), "data": tuple(d["data"])})
