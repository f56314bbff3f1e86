"""``drive compare``: the main job, from a fresh clone to a side-by-side report.

Both paradigms drive from the same sensors.  ``--sensors rig`` (the default): the modular
stack and the end-to-end PilotNet both see the perspective camera rig (plus the speedometer,
and the modular stack its pose and map); ``--sensors bev``: both see the bird's-eye raster
of the road map (the earlier comparison, where perception is nearly free); ``--sensors
rig,bev``: all four on the same seeds, the sensor as an axis of the report.

It makes what the comparison needs and does not find, in this order, and caches each
piece under the recipe's root so the next run reuses it:

1. ``bev``: detector frames (``ROOT/frames``) and the bird's-eye CenterNet of
   ``modular-bev`` (``ROOT/detector``).  ``rig``: the monocular 3D detector at
   ``ROOT/detector-rig`` when one is there (``drive train detector --model mono3d``, about
   25 minutes on 2 cores: longer than the whole comparison may take), else the geometric
   detector, which needs no training (``modular:geometric``); compare.json and the report
   say which;
2. per scenario and sensor, expert demonstrations (``ROOT/demos/SCENARIO`` bird's-eye,
   ``ROOT/demos-rig/SCENARIO`` rig road crops with PilotNet's recovery views, Minari) and
   the behaviour-cloned PilotNet (``ROOT/e2e/SCENARIO``, ``ROOT/e2e-rig/SCENARIO``);
3. ``drive eval`` of every agent on the same seeds (``ROOT/compare``, ``ROOT/compare-bev``
   or ``ROOT/compare-rig-bev``; a run that was interrupted resumes, one whose checkpoints
   or settings changed is kept aside under a new name and a new one starts), then
   ``drive report`` into the same folder.

The default recipe keeps its artefacts where the other commands look for them
(``runs/detector``, ``runs/e2e-rig/{scenario}``, ...), so ``drive run --agent e2e`` drives
the network ``drive compare`` trained; checkpoints already there (say, a longer training
or DAgger) are used as they are, and their hashes are in the report.  ``--quick`` keeps
its smaller, worse networks apart, under ``runs/quick``.

What was reused, what was made and how long each step took goes to
``ROOT/compare*/compare.json``.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from agents.e2e.agent import DEFAULT_E2E_DIR, DEFAULT_E2E_RIG_DIR
from agents.e2e.checkpoint import META as E2E_META
from agents.e2e.rig import RigInput, parse_side_views
from agents.e2e.train import E2ETrainConfig, train_e2e
from agents.modular import DEFAULT_DETECTOR, DEFAULT_RIG_DETECTOR
from perception.checkpoint import training_complete
from perception.dataset import MANIFEST, DatasetError, FrameDataset
from perception.detectors.learned import META as DETECTOR_META
from perception.detectors.mono3d import META as MONO3D_META
from perception.detectors.train import TrainConfig, train_detector
from sim.geometry.pinhole import default_rig
from sim.harness.evaluate import CONFIG, ConfigMismatch, format_eval, run_eval
from sim.harness.io import atomic_write_json
from sim.harness.versions import git_revision, package_versions
from sim.pipelines.perception_data import record_frames
from sim.pipelines.record import NoiseConfig, record_dataset
from sim.report.report import write_report
from sim.world.scenarios import get_scenario

EVAL_DIR = "compare"
SENSORS = ("rig", "bev")
"""What both paradigms may be handed: the camera rig, or the bird's-eye raster."""
WEAK_DETECTOR_AP = 0.8
SUMMARY = "compare.json"


@dataclass(frozen=True)
class E2ERecipe:
    """Demonstrations and behaviour cloning for one scenario."""

    demo_episodes: int
    model: str = "pilotnet-m"
    stack: int = 1
    epochs: int = 5
    budget_s: float = 0.0
    """A cap on training time [s], 0 = none (the default of every recipe): ``epochs`` and the
    demos decide what the network sees, so a busy machine trains the same network, only
    slower.  A cap that cuts training short is loud (a warning, and the report's checkpoint
    table names the epochs it got)."""
    cameras: tuple[str, ...] = ("cam_front",)
    """Rig: the cameras the network sees."""
    side_views: str = "default"
    """Rig: the recovery views recorded (``drive record --side-views``; ``default``: its
    default)."""


@dataclass(frozen=True)
class CompareRecipe:
    name: str
    root: str
    """Where the artefacts live (relative to the working directory)."""
    episodes: int
    """Evaluation seeds per scenario (``seed_start`` ...)."""
    e2e: Mapping[str, E2ERecipe]
    """Per scenario, bird's-eye networks; scenarios not named use ``e2e["*"]``."""
    e2e_rig: Mapping[str, E2ERecipe] = field(default_factory=dict)
    """Per scenario, rig networks; scenarios not named use ``e2e_rig["*"]``."""
    scenarios: tuple[str, ...] = ("lane-keep", "highway")
    sensors: tuple[str, ...] = ("rig",)
    """``rig``, ``bev`` or both: which sensors both paradigms are compared on."""
    agents: tuple[str, ...] | None = None
    """None: expert, then each paradigm on each of ``sensors``, then idm (:func:`agents_for`)."""
    seed_start: int = 0
    duration_s: float | None = None
    """Episode length of the evaluation and the demos (None: each scenario's own)."""
    detector_frames: int = 2000
    detector_scenarios: tuple[str, ...] = ("highway", "merge", "roundabout")
    detector_per_episode: int = 40
    """Frames per recorded episode (many short drives: many traffic layouts)."""
    detector_epochs: int = 4
    detector_width: int = 32
    demo_seed: int = 1000
    """Demos use seeds from here on, apart from the evaluation's 0, 1, ..."""
    demo_noise: float = 0.2
    videos: int = 2
    """Side-by-side videos per scenario in the report."""
    workers: int = 2
    notes: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        unknown = [x for x in self.sensors if x not in SENSORS]
        if unknown or not self.sensors or len(set(self.sensors)) != len(self.sensors):
            raise ValueError(
                f"--sensors {','.join(self.sensors)}: give one or both of {', '.join(SENSORS)}"
            )

    def e2e_recipe(self, scenario: str, sensors: str = "bev") -> E2ERecipe:
        table = self.e2e_rig if sensors == "rig" else self.e2e
        return table.get(scenario) or table["*"]

    @property
    def agent_names(self) -> tuple[str, ...]:
        return self.agents if self.agents is not None else agents_for(self.sensors)

    @property
    def eval_dir(self) -> str:
        """``compare`` for the rig (the main job), ``compare-bev``, ``compare-rig-bev``."""
        return EVAL_DIR if self.sensors == ("rig",) else "-".join((EVAL_DIR, *self.sensors))


def agents_for(sensors: Sequence[str]) -> tuple[str, ...]:
    """``expert``, each paradigm on each sensor (``modular``/``e2e`` on the rig, ``modular-bev``/
    ``e2e-bev`` on the raster), ``idm``."""
    out = ["expert"]
    for paradigm in ("modular", "e2e"):
        out += [paradigm if x == "rig" else f"{paradigm}-bev" for x in sensors]
    return (*out, "idm")


# Measured on the 2-core CPU reference machine (README "drive compare").
HIGHWAY_BC = E2ERecipe(demo_episodes=40, stack=2, epochs=3)
LANE_KEEP_RIG = E2ERecipe(demo_episodes=12, epochs=8)
HIGHWAY_RIG = E2ERecipe(demo_episodes=24, stack=2, epochs=4)
QUICK_BC = E2ERecipe(demo_episodes=10, model="pilotnet-s", stack=1, epochs=6)
RECIPES: dict[str, CompareRecipe] = {
    "default": CompareRecipe(
        name="default",
        root="runs",
        episodes=20,
        e2e={"lane-keep": E2ERecipe(demo_episodes=30, epochs=6), "*": HIGHWAY_BC},
        e2e_rig={"lane-keep": LANE_KEEP_RIG, "*": HIGHWAY_RIG},
    ),
    "quick": CompareRecipe(
        name="quick",
        root="runs/quick",
        episodes=3,
        detector_frames=1200,
        detector_epochs=3,
        videos=1,
        e2e={"*": QUICK_BC},
        e2e_rig={"*": replace(QUICK_BC, demo_episodes=6)},
        notes=(
            (
                "--quick is a smoke view: 3 seeds per scenario and networks trained for under a "
                "minute each; run 'drive compare' for numbers worth quoting"
            ),
        ),
    ),
}


def artefacts(recipe: CompareRecipe) -> dict[str, Any]:
    root = Path(recipe.root)
    return {
        "frames": root / "frames",
        "detector": root / "detector",
        "detector-rig": root / "detector-rig",
        "demos": {s: root / "demos" / s for s in recipe.scenarios},
        "e2e": {s: root / "e2e" / s for s in recipe.scenarios},
        "demos-rig": {s: root / "demos-rig" / s for s in recipe.scenarios},
        "e2e-rig": {s: root / "e2e-rig" / s for s in recipe.scenarios},
        "eval": root / recipe.eval_dir,
    }


def rig_detector(recipe: CompareRecipe) -> str:
    """The rig's modular agent: the mono3d checkpoint under the root when a complete one is
    there, else the geometric detector (no training)."""
    path = Path(recipe.root) / "detector-rig"
    return path.as_posix() if training_complete(path, MONO3D_META) else "geometric"


def agent_specs(recipe: CompareRecipe) -> list[str]:
    """The ``drive eval`` agent specs: plain names where the artefacts sit at the agents'
    default paths, ``name:PATH`` otherwise (``{scenario}`` in the e2e paths)."""

    root = Path(recipe.root)
    specs = []
    for name in recipe.agent_names:
        if name == "modular-bev" and root / "detector" != Path(DEFAULT_DETECTOR):
            name = f"modular-bev:{(root / 'detector').as_posix()}"
        elif name == "modular":
            detector = rig_detector(recipe)
            if detector != DEFAULT_RIG_DETECTOR:
                name = f"modular:{detector}"
        elif name == "e2e-bev" and root / "e2e" != Path(DEFAULT_E2E_DIR):
            name = f"e2e-bev:{(root / 'e2e').as_posix()}/{{scenario}}"
        elif name == "e2e" and root / "e2e-rig" != Path(DEFAULT_E2E_RIG_DIR):
            name = f"e2e:{(root / 'e2e-rig').as_posix()}/{{scenario}}"
        specs.append(name)
    return specs


class _Log:
    """Stages, each reused or made, with its wall time; printed as it goes."""

    def __init__(self, quiet: bool) -> None:
        self.quiet, self.stages, self.t0 = quiet, [], time.perf_counter()

    def say(self, text: str) -> None:
        if not self.quiet:
            print(f"compare: {text}", flush=True)

    def reused(self, stage: str, path: Path) -> None:
        self.stages.append({"stage": stage, "path": str(path), "action": "reused", "seconds": 0.0})
        self.say(f"{stage}: reusing {path}")

    def made(self, stage: str, path: Path, t0: float, **extra: Any) -> None:
        seconds = time.perf_counter() - t0
        self.stages.append(
            {
                "stage": stage,
                "path": str(path),
                "action": "made",
                "seconds": round(seconds, 1),
                **extra,
            }
        )
        self.say(f"{stage}: made {path} in {seconds:.0f} s")

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0


def _detector(recipe: CompareRecipe, paths: dict, log: _Log, device: str, meta: dict) -> None:
    if training_complete(paths["detector"], DETECTOR_META):
        log.reused("detector", paths["detector"])
        return
    if (paths["frames"] / MANIFEST).exists():
        try:
            FrameDataset(paths["frames"], verify=False)  # an older format is recorded again
        except DatasetError as e:
            log.say(f"cached detector frames unusable ({e}); recording them again")
            shutil.rmtree(paths["frames"])  # compare's own cache, derived from seeds: nothing lost
    if (paths["frames"] / MANIFEST).exists():
        log.reused("detector frames", paths["frames"])
    else:
        log.say(
            f"recording {recipe.detector_frames} labelled camera frames for the detector "
            f"({', '.join(recipe.detector_scenarios)})"
        )
        t0 = time.perf_counter()
        record_frames(
            list(recipe.detector_scenarios),
            recipe.detector_frames,
            paths["frames"],
            seed=0,
            per_episode=recipe.detector_per_episode,
            progress=not log.quiet,
        )
        log.made("detector frames", paths["frames"], t0, frames=recipe.detector_frames)
    log.say(f"training the modular agent's detector ({recipe.detector_epochs} epochs)")
    t0 = time.perf_counter()
    result = train_detector(
        paths["frames"],
        paths["detector"],
        TrainConfig(epochs=recipe.detector_epochs, width=recipe.detector_width),
        device=device,
        progress=not log.quiet,
        extra_meta=meta,
    )
    ap = float(result["history"][result["best_epoch"] - 1]["val_ap_2m"])
    log.made("detector", paths["detector"], t0, val_ap_2m=round(ap, 4))
    if ap < WEAK_DETECTOR_AP:
        log.say(
            f"warning: the detector's validation AP@2m is {ap:.2f}; the modular agent will miss "
            f"vehicles (train longer: drive train detector --data {paths['frames']} --out DIR)"
        )


def _e2e(
    recipe: CompareRecipe,
    scenario: str,
    sensors: str,
    paths: dict,
    log: _Log,
    device: str,
    workers: int,
    meta: dict,
) -> None:
    rig = sensors == "rig"
    ckpt = paths["e2e-rig" if rig else "e2e"][scenario]
    demos = paths["demos-rig" if rig else "demos"][scenario]
    tag = f"{scenario}{' (rig)' if rig else ''}"
    if training_complete(ckpt, E2E_META):
        log.reused(f"e2e {tag}", ckpt)
        return
    r = recipe.e2e_recipe(scenario, sensors)
    if demos.exists():
        log.reused(f"demos {tag}", demos)
    else:
        log.say(
            f"recording {r.demo_episodes} expert demonstrations on {scenario}"
            + (f" (rig: {', '.join(r.cameras)} + recovery views)" if rig else "")
        )
        t0 = time.perf_counter()
        world = get_scenario(
            scenario, **({"duration_s": recipe.duration_s} if recipe.duration_s else {})
        )
        seeds = list(range(recipe.demo_seed, recipe.demo_seed + r.demo_episodes))
        view = (
            RigInput.build(default_rig(), r.cameras, parse_side_views(r.side_views))
            if rig
            else None
        )
        record_dataset(
            world,
            seeds,
            demos,
            noise=NoiseConfig(fraction=recipe.demo_noise),
            workers=workers,
            progress=not log.quiet,
            rig=view,
        )
        log.made(f"demos {tag}", demos, t0, episodes=r.demo_episodes)
    log.say(
        f"training the end-to-end network for {tag} ({r.model}, {r.stack} frame(s), "
        f"{r.epochs} epochs" + (f", at most {r.budget_s:.0f} s)" if r.budget_s else ")")
    )
    t0 = time.perf_counter()
    result = train_e2e(
        [demos],
        ckpt,
        E2ETrainConfig(model=r.model, stack=r.stack, epochs=r.epochs, budget_s=r.budget_s),
        device=device,
        progress=not log.quiet,
        extra_meta=meta,
    )
    log.made(f"e2e {tag}", ckpt, t0, epochs=len(result["history"]), stopped=result["stopped"])


def _evaluate(
    recipe: CompareRecipe,
    paths: dict,
    log: _Log,
    device: str,
    workers: int,
    argv: Sequence[str] | None,
) -> list[dict]:
    out = paths["eval"]
    specs = agent_specs(recipe)
    seeds = list(range(recipe.seed_start, recipe.seed_start + recipe.episodes))
    n = len(specs) * len(recipe.scenarios) * len(seeds)
    log.say(
        f"evaluating {', '.join(specs)} on {', '.join(recipe.scenarios)}: {len(seeds)} seeds each "
        f"({seeds[0]}-{seeds[-1]}), {n} episodes -> {out}"
    )
    kwargs = {
        "workers": workers,
        "device": device,
        "duration_s": recipe.duration_s,
        "progress": not log.quiet,
        "argv": argv,
    }
    t0 = time.perf_counter()
    resume, kept = (out / CONFIG).exists(), None
    try:
        records = run_eval(out, specs, recipe.scenarios, seeds, resume=resume, **kwargs)
    except ConfigMismatch as e:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        names = (out.with_name(f"{out.name}.{stamp}" + (f"-{k}" if k else "")) for k in range(1000))
        kept = next(p for p in names if not p.exists())
        out.rename(kept)
        log.say(
            f"the comparison in {out} was made with other checkpoints or settings ({e}); "
            f"kept it as {kept} and starting a new one"
        )
        resume = False
        records = run_eval(out, specs, recipe.scenarios, seeds, resume=False, **kwargs)
    log.made(
        "evaluation",
        out,
        t0,
        episodes=len(records),
        resumed=resume,
        kept_previous=kept and str(kept),
    )
    return records


def run_compare(
    recipe: CompareRecipe,
    *,
    device: str = "auto",
    workers: int | None = None,
    videos: int | None = None,
    quiet: bool = False,
    argv: Sequence[str] | None = None,
) -> dict:
    """Make what is missing, evaluate, report; return the summary written to compare.json."""

    for name in recipe.scenarios:
        get_scenario(name)  # an unknown name lists the known ones, before any work
    workers = recipe.workers if workers is None else workers
    videos = recipe.videos if videos is None else videos
    log = _Log(quiet)
    paths = artefacts(recipe)
    meta = {
        "git_revision": git_revision(),
        "versions": package_versions(),
        "command": list(argv) if argv else None,
        "made_by": f"drive compare ({recipe.name} recipe)",
    }
    names = recipe.agent_names
    if "modular-bev" in names:
        _detector(recipe, paths, log, device, meta)
    if "modular" in names:
        detector = rig_detector(recipe)
        if detector == "geometric":
            log.say(
                "the rig's modular agent uses the geometric detector (no training; for the learned "
                "monocular 3D detector, about 25 min on 2 cores: drive perception data --cameras "
                f"cam_front,cam_rear --out {recipe.root}/frames-rig && drive train detector "
                f"--model mono3d --data {recipe.root}/frames-rig --out {paths['detector-rig']})"
            )
            log.stages.append(
                {
                    "stage": "detector (rig)",
                    "path": "geometric",
                    "action": "none needed",
                    "seconds": 0.0,
                }
            )
        else:
            log.reused("detector (rig)", Path(detector))
    for scenario in recipe.scenarios:
        for sensors, agent in (("rig", "e2e"), ("bev", "e2e-bev")):
            if agent in names:
                _e2e(recipe, scenario, sensors, paths, log, device, workers, meta)
    records = _evaluate(recipe, paths, log, device, workers, argv)
    log.say(f"writing the report ({videos} side-by-side video(s) per scenario)")
    t0 = time.perf_counter()
    studies = sorted(Path(recipe.root, "study").glob("*/study.html"))
    report = write_report(
        paths["eval"],
        videos=videos,
        progress=not quiet,
        links=[(f"scaling study: {p.parent.name}", p) for p in studies],
    )
    log.made("report", report["html"], t0)
    summary = {
        "recipe": asdict(recipe),
        "agents": agent_specs(recipe),
        "device": device,
        "workers": workers,
        "videos": videos,
        "stages": log.stages,
        "seconds": round(log.elapsed(), 1),
        "report": {k: str(v) for k, v in report.items()},
        "studies": [str(p) for p in studies],
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    atomic_write_json(paths["eval"] / SUMMARY, summary)
    if not quiet:
        print(format_eval(records))
        for note in recipe.notes:
            print(f"note: {note}")
        made = sum(s["seconds"] for s in log.stages if s["stage"] not in ("evaluation", "report"))
        for p in studies:
            print(f"scaling study: {p}")
        print(
            f"compare: done in {summary['seconds'] / 60:.1f} min ({made / 60:.1f} min making "
            "checkpoints)"
        )
    return summary


def get_recipe(quick: bool, **overrides: Any) -> CompareRecipe:
    recipe = RECIPES["quick" if quick else "default"]
    return replace(recipe, **{k: v for k, v in overrides.items() if v is not None})
