"""DAgger (Ross et al. 2011) for the end-to-end policy: ``drive train dagger``.

Round ``r`` (1..K):

1. roll out ``beta_r * expert + (1 - beta_r) * policy_{r-1}`` (per step: the expert's
   action with probability ``beta_r``, else the network's; ``beta_r = beta * 0.5^(r-1)``)
   on fresh training seeds, labelling **every visited state** with the expert's action
   (:func:`sim.pipelines.record.record_dataset` with a learner);
2. aggregate: the initial demos plus every round's data so far;
3. fine-tune the previous round's policy on the aggregate (same recipe, fewer epochs);
4. score the new policy in closed loop (``beta = 0``) on held-out seeds ``10000..`` (apart
   from the evaluation seeds 0.. the reports quote, so no table is measured on the seeds
   that watched the rounds).

A rig policy's rounds record what it sees: the rig cameras' road crops and the same
recovery views as its first dataset (so the aggregate keeps them).

Several scenarios (``scenario="highway,stopped-car,hard-brake"``: a policy's scenario and
variants of it, all with the same ``trained_on``) make each round collect ``episodes`` on
every one of them, into ``OUT/rounds/r/demos-NAME``; the closed-loop score is the first's.
The aggregate is streamed from disk (:mod:`agents.e2e.stream`), so memory does not grow
with the rounds.

Round 0 is the initial policy's score, so the curve starts from behaviour cloning.
``OUT/dagger.jsonl`` gets one line per round (appended atomically); a rerun of the same
command skips the rounds already there (resume).  The last round's checkpoint is copied
to ``OUT`` itself, so ``e2e:OUT`` is the DAgger policy; ``OUT/rounds/r/`` keeps each
round's demos, checkpoint and evaluation episodes.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from agents.e2e.checkpoint import META, load_policy, save_policy
from agents.e2e.demos import Demos, dataset_info, episode_lengths, load_demos
from agents.e2e.rig import RigInput
from agents.e2e.stream import stream_folder
from agents.e2e.train import E2ETrainConfig, epochs_for, train_e2e
from sim.harness.io import append_jsonl, read_jsonl
from sim.harness.run import run_agent
from sim.pipelines.preflight import refuse_faults
from sim.pipelines.record import NoiseConfig, record_dataset
from sim.world.scenarios import Scenario, get_scenario


@dataclass(frozen=True)
class DaggerConfig:
    rounds: int = 3
    episodes: int = 10
    """Episodes collected per round."""
    beta: float = 0.5
    """Share of expert control in round 1; halved each round."""
    decay: float = 0.5
    eval_episodes: int = 20
    """Closed-loop episodes scored per round, seeds ``eval_seed_start``.. (held out from
    training)."""
    eval_seed_start: int = 10000
    """The rounds' closed-loop seeds start here, apart from the 0.. the reports quote."""
    data_seed_start: int = 5000
    """Round r collects seeds data_seed_start + (r-1) * episodes + i."""
    workers: int = 2
    duration_s: float | None = None
    """Episode time limit override [s] (None: the scenario's); for quick runs and tests."""


def closed_loop_summary(records: list[dict]) -> dict:
    """Mean driving score, collision rate, route completion and autonomy of some episodes."""
    if not records:
        return {"episodes": 0}
    return {
        "episodes": len(records),
        "driving_score": float(np.mean([r["driving_score"] for r in records])),
        "collision_rate": float(np.mean([r["status"] == "collision" for r in records])),
        "offroad_rate": float(np.mean([r["status"] == "offroad" for r in records])),
        "route_completion": float(np.mean([r["route_completion"] for r in records])),
        "autonomy_pct": float(np.mean([r["autonomy_pct"] for r in records])),
    }


def _scenario(name: str, config: DaggerConfig):
    return get_scenario(name, **({"duration_s": config.duration_s} if config.duration_s else {}))


def _evaluate(policy: Path, scenario, config: DaggerConfig, out: Path, progress: bool) -> dict:
    n = config.eval_episodes
    if n <= 0:
        return {"episodes": 0}
    if out.exists():
        shutil.rmtree(out)  # a half-finished evaluation from an interrupted round
    seeds = list(range(config.eval_seed_start, config.eval_seed_start + n))
    records = run_agent(
        f"e2e:{policy}",
        scenario,
        seeds,
        out,
        video=None,
        workers=config.workers,
        progress=progress,
    )
    return closed_loop_summary(records)


def check_rounds(scenario: str, world: Scenario, data: list[str]) -> None:
    """Refuse, before round 0, a ``scenario`` whose rounds could not be recorded or trained on:
    one with faults (demos are recorded clean), one in another visual condition than day (the
    conditions stay unseen), or one that trains another policy than the initial demos' (a
    round's demos join them in one training set, which trains one policy: a variant such as
    ``stopped-car`` or ``highway:dense`` joins ``highway`` demos)."""
    refuse_faults(
        world,
        f"--scenario {scenario}: DAgger records a demo set every round, and demos are recorded "
        "without sensor or actuation faults",
    )
    if world.visual != "day":
        raise ValueError(
            f"--scenario {scenario}: DAgger would train the {world.trained_on} policy on "
            f"{world.visual} frames, and every policy is trained in daylight so that the visual "
            f"conditions stay unseen (the benchmark's generalisation axis); pass --scenario "
            f"{world.trained_on} or another traffic variant of it"
        )
    drive = dataset_info(data[0])["drive"]
    recorded = drive.get("trained_on", drive["scenario"])
    if world.trained_on != recorded:
        raise ValueError(
            f"--scenario {scenario}: DAgger trains on its rounds' demos together with {data[0]} "
            f"(demos of the {recorded} policy), and a training set trains one policy; pass "
            f"--scenario {recorded} (or a variant of it), or --data demos recorded on "
            f"{world.trained_on} (drive record --scenario {world.trained_on})"
        )


def round_scenarios(scenario: str) -> list[str]:
    """The scenarios a round collects on: ``scenario`` split at commas, in order, each once."""
    names = [n.strip() for n in scenario.split(",") if n.strip()]
    if not names or len(set(names)) != len(names):
        raise ValueError(f"--scenario {scenario!r}: name each scenario once, comma-separated")
    return names


def _demos_dirs(rdir: Path, names: list[str]) -> list[Path]:
    """Where round ``rdir`` keeps each scenario's demos (one scenario: ``demos``, as before)."""
    if len(names) == 1:
        return [rdir / "demos"]
    return [rdir / f"demos-{n.replace(':', '-').replace('=', '')}" for n in names]


def run_dagger(
    init: str | Path,
    out: str | Path,
    config: DaggerConfig = DaggerConfig(),
    recipe: E2ETrainConfig | None = None,
    *,
    scenario: str | None = None,
    data: list[str] | None = None,
    episodes: list[int] | None = None,
    samples: int | None = None,
    device: str = "auto",
    progress: bool = True,
    extra_meta: dict | None = None,
    stream: bool = True,
    loader_workers: int = 0,
) -> dict:
    """Run (or resume) ``config.rounds`` DAgger rounds from the policy ``init``.

    ``scenario``: one name or several, comma-separated (every round collects on each; the
    first is scored).  ``stream``/``loader_workers``: as :func:`agents.e2e.train.train_e2e`.

    ``data``: the initial demos (default: ``init``'s training data); ``episodes``: only these
    of them (indices over ``data``'s episodes, as :func:`agents.e2e.demos.load_demos` takes them;
    the scaling study's subsets).  ``samples``: each round fine-tunes for about that many
    samples (epochs from the aggregate's size, at most ``recipe.epochs``) instead of a fixed
    ``recipe.epochs``.

    Everything a round would refuse late (the scenario, the data) is checked first
    (:func:`check_rounds`): a refused run scores, records, trains and creates nothing.
    """
    init, out = Path(init), Path(out)
    recipe = recipe or E2ETrainConfig(epochs=4, lr=3e-4, patience=2)
    _, init_meta = load_policy(init)
    scenario = scenario or init_meta.get("scenario")
    if not scenario:
        raise ValueError(f"{init / META} names no scenario; pass --scenario")
    data = list(data or init_meta["dataset"]["paths"])
    names = round_scenarios(scenario)
    for name in names:
        check_rounds(name, _scenario(name, config), data)
    scored = names[0]
    aggregate = _Aggregate(data, episodes)
    rig = None
    if init_meta["config"].get(
        "cameras"
    ):  # a rig policy: record its view, with the data's recovery views
        first = dataset_info(data[0])["drive"].get("rig") or init_meta["rig"]
        rig = RigInput.from_dict({**init_meta["rig"], "side_views": first.get("side_views") or []})
    log_path = out / "dagger.jsonl"
    out.mkdir(parents=True, exist_ok=True)
    done = {int(r["round"]): r for r in read_jsonl(log_path)} if log_path.exists() else {}
    started = time.time()
    if 0 not in done:
        if progress:
            print(
                f"round 0: scoring the initial policy {init} on {config.eval_episodes} seeds",
                flush=True,
            )
        row = {
            "round": 0,
            "beta": None,
            "policy": str(init),
            "frames": aggregate.frames(),
            "new_frames": 0,
            "closed_loop": _evaluate(
                init, _scenario(scored, config), config, out / "rounds" / "0" / "eval", progress
            ),
            "val_loss": _best_val(init_meta),
            "seconds": time.time() - started,
        }
        append_jsonl(log_path, row)
        done[0] = row
    current = init
    for r in range(1, config.rounds + 1):
        rdir = out / "rounds" / str(r)
        beta = config.beta * config.decay ** (r - 1)
        dirs = _demos_dirs(rdir, names)
        if r in done:
            current = Path(done[r]["policy"])
            for d in dirs:
                aggregate.add(d)
            continue
        t0 = time.time()
        seeds = [
            config.data_seed_start + (r - 1) * config.episodes + i for i in range(config.episodes)
        ]
        new_frames = 0
        for name, demos in zip(names, dirs, strict=True):
            if demos.exists():  # complete (datasets appear atomically) from an interrupted round
                new_frames += _frames([demos])
            else:
                if progress:
                    print(
                        f"round {r}: collecting {len(seeds)} episodes on {name}, beta {beta:.3f}",
                        flush=True,
                    )
                new_frames += int(
                    record_dataset(
                        _scenario(name, config),
                        seeds,
                        demos,
                        noise=NoiseConfig(0.0),
                        learner=f"e2e:{current}",
                        beta=beta,
                        workers=config.workers,
                        progress=progress,
                        extra={"dagger_round": r},
                        rig=rig,
                    )["frames"]
                )
            aggregate.add(demos)
        policy = rdir / "policy"
        if policy.exists():
            shutil.rmtree(policy)  # a half-trained round: train it again
        frames = aggregate.frames()
        rec = (
            recipe
            if samples is None
            else replace(recipe, epochs=epochs_for(samples, frames, recipe.epochs))
        )
        with stream_folder() as folder:
            result = train_e2e(
                aggregate.paths,
                policy,
                rec,
                device=device,
                init=current,
                progress=progress,
                demos=aggregate.load(folder if stream else None),
                extra_meta={**(extra_meta or {}), "dagger_round": r},
                stream=stream,
                loader_workers=loader_workers,
            )
        current = policy
        row = {
            "round": r,
            "beta": beta,
            "policy": str(policy),
            "frames": frames,
            "new_frames": int(new_frames),
            "closed_loop": _evaluate(
                policy, _scenario(scored, config), config, rdir / "eval", progress
            ),
            "val_loss": float(result["best_val_loss"]),
            "seconds": time.time() - t0,
        }
        append_jsonl(log_path, row)
        done[r] = row
        if progress:
            cl = row["closed_loop"]
            print(
                f"round {r}: score {cl.get('driving_score', float('nan')):.3f}, collisions "
                f"{cl.get('collision_rate', float('nan')):.2f}, val loss {row['val_loss']:.4f}",
                flush=True,
            )
    final, final_meta = load_policy(current)
    final_meta["dagger"] = {
        "config": asdict(config),
        "rounds": [done[k] for k in sorted(done)],
        "init": str(init),
    }
    save_policy(
        final, out, {k: v for k, v in final_meta.items() if k not in ("architecture", "config")}
    )
    return {"out": str(out), "rounds": [done[k] for k in sorted(done)], "scenario": scenario}


class _Aggregate:
    """The initial demos (all their episodes, or the chosen ones) plus every round's data."""

    def __init__(self, data: list[str], episodes: list[int] | None) -> None:
        self.paths = [str(p) for p in data]
        self.base = None if episodes is None else [int(e) for e in episodes]
        self.n_base = len(episode_lengths(self.paths)) if episodes is not None else 0

    def add(self, path: str | Path) -> None:
        self.paths.append(str(path))

    def chosen(self) -> list[int] | None:
        if self.base is None:
            return None
        return self.base + list(range(self.n_base, len(episode_lengths(self.paths))))

    def frames(self) -> int:
        chosen = self.chosen()
        if chosen is None:
            return _frames(self.paths)
        lengths = episode_lengths(self.paths)
        return int(sum(lengths[e] for e in chosen))

    def load(self, stream_dir: Path | None = None) -> Demos | None:
        """The chosen episodes (None: all of them, loaded by the trainer itself), their frames
        streamed into ``stream_dir`` when given."""
        chosen = self.chosen()
        if chosen is None:
            return None
        return load_demos(self.paths, episodes=chosen, stream_dir=stream_dir)


def _frames(paths: list) -> int:
    return int(sum(dataset_info(p)["drive"]["frames"] for p in paths))


def _best_val(meta: dict) -> float | None:
    t = meta.get("training", {})
    hist, best = t.get("history") or [], t.get("best_epoch")
    return float(hist[best - 1]["val_loss"]) if hist and best else None


def format_dagger(result: dict) -> str:
    lines = [
        f"DAgger on {result['scenario']} -> {result['out']} (e2e:{result['out']})",
        "round  beta   frames  val loss  score  collisions  route  autonomy %",
    ]
    for row in result["rounds"]:
        cl = row["closed_loop"]
        beta = "-" if row["beta"] is None else f"{row['beta']:.3f}"
        vl = "-" if row["val_loss"] is None else f"{row['val_loss']:.4f}"
        lines.append(
            f"{row['round']:5d}  {beta:>5s}  {row['frames']:7d}  {vl:>8s}  "
            f"{cl.get('driving_score', float('nan')):5.3f}  "
            f"{cl.get('collision_rate', float('nan')):10.2f}  "
            f"{cl.get('route_completion', float('nan')):5.2f}  "
            f"{cl.get('autonomy_pct', float('nan')):10.1f}"
        )
    return "\n".join(lines)
