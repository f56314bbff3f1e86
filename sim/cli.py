"""The ``drive`` command line.

    drive compare [--quick]               the main job: train what is missing under runs/,
                                          evaluate expert, modular, e2e, idm; write the report
    drive scenarios                       list the scenarios
    drive agents                          list the agents and the sensors each uses
    drive run [--agent expert] [--scenario highway] [--episodes 3] [--seed 0] [--out DIR]
              [--workers W] [--physics fast|stock]
    drive bench camera                    ego camera vs highway-env's renderer
    drive bench sim                       fast vs stock physics, workers
    drive bench planner [--scenarios a,b] [--episodes 2] [--agent expert] [--duration S]
                                          per-decision latency in closed loop
    drive perception data --out DIR [--scenarios a,b] [--frames N] [--every K]
                                          record auto-labelled camera frames
    drive eval detector --data DIR [--detector opencv,learned:CKPT] [--corrupt none,noise,...]
                                          detection AP by range and corruption
    drive train detector --data DIR --out CKPT [--epochs 30] [--device auto]
                                          train the CenterNet vehicle detector
    drive train ppo --scenario NAME --out RUN [--steps N] [--envs K] [--init e2e:RUN]
                                          reinforcement learning (SB3 PPO, PilotNet actor)
    drive bench ppo                       PPO training throughput, fast vs stock physics
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

EXIT_USAGE = 2


def _int_at_least(minimum: int, what: str):
    """An argparse type: a whole number >= ``minimum``, with a message naming the rule."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{what}, got {value}")
        return value
    return parse


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text!r}") from None
    if not (0.0 <= value < 1.0):
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text!r}")
    return value


def _duration(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not (value > 0 and value < 1e6):  # also rejects nan and inf
        raise argparse.ArgumentTypeError(f"must be a finite number of seconds > 0, got {text}")
    return value


def _timeout(text: str) -> float | None:
    """Seconds per decision; 0 = no limit."""
    if text.strip() in ("0", "0.0", "none"):
        return None
    return _duration(text)


_positive_int = _int_at_least(1, "must be at least 1")
_seed = _int_at_least(0, "seeds are non-negative integers")
_count = _int_at_least(0, "must be 0 or more")


def _cmd_scenarios(args) -> int:
    from sim.world.scenarios import SCENARIOS

    width = max(len(n) for n in SCENARIOS)
    for name, s in SCENARIOS.items():
        print(f"{name:{width}s}  {s.summary}")
    return 0


def _cmd_agents(args) -> int:
    from agents import AGENTS, make_agent
    from sim.geometry.camera import CameraSpec
    from sim.harness.run import task_spec
    from sim.world.scenarios import DEFAULT_SCENARIO, get_scenario

    # an agent's sensors can depend on how it is built (a pluggable perception source):
    # ask a built one
    task = task_spec(get_scenario(DEFAULT_SCENARIO), CameraSpec())
    width = max(len(n) for n in AGENTS)
    for name, (_, summary) in AGENTS.items():
        sensors = ", ".join(make_agent(name, task).sensors) or "(none)"
        print(f"{name:{width}s}  sensors: {sensors:28s} {summary}")
    return 0


def _cmd_run(args) -> int:
    from agents import agent_label, parse_agent
    from sim.harness.run import default_run_dir, format_summary, run_agent
    from sim.world.scenarios import get_scenario

    parse_agent(args.agent)  # an unknown name lists the known ones
    overrides = {"duration_s": args.duration} if args.duration is not None else {}
    scenario = get_scenario(args.scenario, **overrides)
    out = Path(args.out) if args.out else default_run_dir(args.scenario, agent_label(args.agent), args.seed)
    if args.video is None:
        video = out / "video.mp4"
    elif args.video.lower() == "none":
        video = None
    else:
        video = Path(args.video)
        if video.suffix.lower() != ".mp4":
            raise ValueError(f"--video must end in .mp4 (or be 'none'), got {args.video!r}")
    seeds = list(range(args.seed, args.seed + args.episodes))
    records = run_agent(args.agent, scenario, seeds, out, video_path=video, workers=args.workers,
                        fast_physics=args.physics == "fast", progress=not args.quiet,
                        argv=sys.argv, batch=args.batch, device=args.device,
                        decision_timeout_s=args.decision_timeout)
    print(format_summary(records))
    for r in records:
        if r.get("error"):
            print(f"seed {r['seed']}: {r['status']}: {r['error']}")
    print(f"episodes: {out / 'episodes.jsonl'}")
    if video is not None:
        print(f"video:    {video}")
    return 0


PLANNER_SCENARIOS = ("lane-keep", "highway", "merge", "roundabout")


def _scenario_list(text: str) -> tuple[str, ...]:
    """``"a,b"`` -> ``("a", "b")``, each a known scenario (the error lists the known ones)."""
    from sim.world.scenarios import SCENARIOS

    names = tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    if not names:
        raise ValueError(f"--scenarios names no scenario (got {text!r}); known: "
                         f"{', '.join(SCENARIOS)}")
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        raise ValueError(f"unknown scenario(s) {', '.join(map(repr, unknown))}; known: "
                         f"{', '.join(SCENARIOS)}")
    return names


def _cmd_bench(args) -> int:
    from sim.bench.simulator import bench_camera, format_camera
    from sim.harness.io import atomic_write_json, ensure_writable_dir

    if args.what == "camera":
        result = bench_camera(scenario=args.scenario or "highway", frames=args.frames,
                              size_px=args.size)
        print(format_camera(result))
    elif args.what == "sim":
        from sim.bench.simulator import bench_sim, format_sim
        from sim.world.scenarios import SCENARIOS, get_scenario

        names = tuple(SCENARIOS) if args.scenario is None else (get_scenario(args.scenario).name,)
        result = bench_sim(names, steps=args.steps or 200, repeats=args.repeats,
                           worker_episodes=args.worker_episodes)
        print(format_sim(result))
    elif args.what == "planner":
        from sim.bench.simulator import bench_planner, format_planner

        names = _scenario_list(args.scenarios or args.scenario or ",".join(PLANNER_SCENARIOS))
        result = bench_planner(names, episodes=args.episodes or 2, agent=args.agent,
                               duration_s=args.duration)
        print(format_planner(result))
    elif args.what == "loop":
        from sim.bench.loop import bench_loop, format_loop

        agents = tuple(a.strip() for a in args.agents.split(",") if a.strip())
        result = bench_loop(agents=agents, episodes=args.episodes or 10, duration_s=args.duration)
        print(format_loop(result))
    elif args.what == "inference":
        from sim.bench.inference import bench_inference, format_inference

        result = bench_inference(repeats=args.repeats_inference, loop_episodes=args.loop_episodes)
        print(format_inference(result))
    elif args.what == "ppo":
        from sim.pipelines.ppo import bench_ppo, format_bench_ppo

        result = bench_ppo(scenario=args.scenario or "highway", steps=args.steps or 1024,
                           repeats=args.repeats)
        print(format_bench_ppo(result))
    else:  # argparse choices guard this; kept for direct calls
        raise ValueError(f"unknown benchmark {args.what!r}; known: camera, sim, planner, inference, loop, ppo")
    if args.out:
        path = Path(args.out)
        ensure_writable_dir(path.parent if str(path.parent) else Path("."))
        atomic_write_json(path, result)
        print(f"wrote {path}")
    return 0


DETECTORS = ("opencv", "learned")


def _cmd_perception(args) -> int:
    from sim.pipelines.perception_data import dataset_size_bytes, record_frames

    names = _scenario_list(args.scenarios)
    out = Path(args.out)
    manifest = record_frames(names, args.frames, out, seed=args.seed, every=args.every,
                             per_episode=args.per_episode, progress=not args.quiet)
    size = dataset_size_bytes(out) / 1e6
    print(f"dataset: {out}  frames {manifest['frames']}  labels {manifest['labels']}  "
          f"shards {len(manifest['shards'])}  episodes {manifest['recorder']['episodes']}  "
          f"{size:.1f} MB  scenarios {', '.join(names)}")
    return 0


def _cmd_eval_agents(args) -> int:
    from agents import parse_agent
    from sim.harness.evaluate import RESULTS, format_eval, run_eval

    agents = list(dict.fromkeys(a.strip() for a in args.agents.split(",") if a.strip()))
    if not agents:
        raise ValueError(f"--agents names no agent (got {args.agents!r})")
    for a in agents:
        parse_agent(a)  # an unknown name lists the known ones
    out = Path(args.out) if args.out else Path("runs") / f"eval__{time.strftime('%Y%m%d-%H%M%S')}"
    seeds = list(range(args.seed_start, args.seed_start + args.episodes))
    records = run_eval(out, agents, _scenario_list(args.scenarios), seeds, workers=args.workers,
                       device=args.device, resume=args.resume, duration_s=args.duration,
                       progress=not args.quiet, argv=sys.argv, decision_timeout_s=args.decision_timeout)
    print(format_eval(records))
    print(f"results: {out / RESULTS}")
    return 0


def _cmd_compare(args) -> int:
    from sim.pipelines.compare import get_recipe, run_compare

    recipe = get_recipe(args.quick, episodes=args.episodes)
    summary = run_compare(recipe, device=args.device, workers=args.workers, videos=args.videos,
                          quiet=args.quiet, argv=sys.argv)
    print(f"report: {summary['report']['html']}")
    return 0


def _cmd_study(args) -> int:
    from sim.pipelines.study import StudyConfig, parse_sizes, run_study, write_study_report

    models = tuple(m.strip().removeprefix("pilotnet-") for m in args.models.split(",") if m.strip())
    refs = tuple(a.strip() for a in args.references.split(",") if a.strip())
    cfg = StudyConfig(scenario=args.scenario, frames=parse_sizes(args.frames), models=models,
                      train_seeds=args.train_seeds, episodes=args.episodes, seed_start=args.seed_start,
                      samples=parse_sizes(args.samples)[0], max_epochs=args.max_epochs,
                      budget_s=60.0 * args.budget_min, stack=args.stack, duration_s=args.duration, references=refs,
                      data=tuple(d for d in (args.data or "").split(",") if d),
                      heldout_episodes=args.heldout_episodes, dagger_rounds=args.dagger_rounds,
                      dagger_episodes=args.dagger_episodes, keep=args.keep)
    out = Path(args.out or f"runs/study/{args.scenario}")
    run_study(cfg, out, workers=args.workers, device=args.device, resume=args.resume, backend=args.backend,
              address=args.address, progress=not args.quiet, argv=sys.argv)
    paths = write_study_report(out)
    print("\n".join(line for line in paths["md"].read_text().splitlines()[2:] if not line.startswith("![")))
    for kind in ("md", "html", "chart"):
        print(f"{kind + ':':<6} {paths[kind]}")
    return 0


def _cmd_report(args) -> int:
    from sim.report.report import write_report

    paths = write_report(args.dir, videos=args.videos, progress=not args.quiet)
    for kind in ("md", "html", "json"):
        print(f"{kind + ':':<6} {paths[kind]}")
    return 0


def _cmd_eval(args) -> int:
    if args.what is None:
        return _cmd_eval_agents(args)
    if not args.data:
        raise ValueError("drive eval detector needs --data DIR (a dataset from 'drive perception data')")
    from perception.corruptions import CORRUPTIONS
    from perception.dataset import FrameDataset
    from perception.opencv_detector import OpenCVDetector
    from sim.geometry.camera import CameraSpec
    from sim.harness.io import atomic_write_json, ensure_writable_dir
    from sim.pipelines.perception_data import evaluate_detector, format_detection_report

    dataset = FrameDataset(args.data)
    spec = CameraSpec.from_dict(dataset.camera)
    corruptions = [c.strip() for c in args.corrupt.split(",") if c.strip()]
    unknown = [c for c in corruptions if c not in CORRUPTIONS]
    if unknown or not corruptions:
        raise ValueError(f"unknown corruption(s) {unknown or args.corrupt!r}; known: {', '.join(CORRUPTIONS)}")
    names = [d.strip() for d in args.detector.split(",") if d.strip()]
    bad = [d for d in names if d.split(":", 1)[0] not in DETECTORS]
    if bad or not names:
        raise ValueError(f"unknown detector(s) {bad or args.detector!r}; known: opencv, "
                         f"learned:CHECKPOINT_DIR")
    reports = []
    for name in names:
        if name == "opencv":
            det = OpenCVDetector(spec)
        else:
            from perception.detector import LearnedDetector

            kind, _, path = name.partition(":")
            if not path:
                raise ValueError("the learned detector needs its checkpoint: --detector learned:DIR")
            det = LearnedDetector(path, device=args.device)
        for c in corruptions:
            reports.append((name, evaluate_detector(det, dataset, c)))
    print(f"{args.data}: {len(dataset)} frames; nuScenes-style AP, centre distance thresholds; "
          f"position error of true positives at 2 m")
    print(format_detection_report(reports))
    if args.out:
        path = Path(args.out)
        ensure_writable_dir(path.parent if str(path.parent) else Path("."))
        atomic_write_json(path, {"data": str(args.data), "reports": [
            {"detector": n, **r} for n, r in reports]})
        print(f"wrote {path}")
    return 0


def _cmd_train(args) -> int:
    from sim.harness.versions import git_revision, package_versions

    meta = {"git_revision": git_revision(), "versions": package_versions(), "command": sys.argv}
    if args.what == "e2e":
        return _train_e2e(args, meta)
    if args.what == "dagger":
        return _train_dagger(args, meta)
    if args.what == "ppo":
        return _train_ppo(args, meta)
    from perception.detector import TrainConfig, train_detector

    if not args.data:
        raise ValueError("drive train detector needs --data (a dataset from 'drive perception data')")
    recipe = TrainConfig(epochs=args.epochs or 30, batch_size=args.batch_size or 32, lr=args.lr or 2e-3,
                         width=args.width, seed=args.seed, patience=args.patience or 5)
    result = train_detector(args.data, args.out, recipe, device=args.device, progress=not args.quiet,
                            extra_meta=meta)
    best = result["history"][result["best_epoch"] - 1]
    print(f"checkpoint: {args.out}  best epoch {result['best_epoch']}/{len(result['history'])}  "
          f"val loss {best['val_loss']:.4f}  val AP@2m {best['val_ap_2m']:.3f}  "
          f"({best['elapsed_s']:.0f} s; TensorBoard logs in {Path(args.out) / 'tensorboard'})")
    return 0


def _e2e_recipe(args, **overrides):
    from agents.e2e_train import E2ETrainConfig

    values = dict(model=args.model or "pilotnet-m", stack=args.stack, stride=args.stride, loss=args.loss, epochs=args.epochs or 20,
                  batch_size=args.batch_size or 64, lr=args.lr or 1e-3, patience=args.patience or 4,
                  seed=args.seed, augment=not args.no_augment, budget_s=60.0 * args.budget_min)
    values.update(overrides)
    return E2ETrainConfig(**values)


def _train_e2e(args, meta: dict) -> int:
    from agents.e2e_train import train_e2e

    if not args.data:
        raise ValueError("drive train e2e needs --data (datasets from 'drive record', comma-separated)")
    result = train_e2e([d for d in args.data.split(",") if d], args.out, _e2e_recipe(args), device=args.device,
                       progress=not args.quiet, extra_meta=meta)
    print(format_training(result))
    return 0


def format_training(result: dict) -> str:
    best = result["history"][result["best_epoch"] - 1]
    return (f"checkpoint: {result['out']}  best epoch {result['best_epoch']}/{len(result['history'])} "
            f"({result['stopped']})  val loss {best['val_loss']:.4f}  {result['parameters']:,} parameters  "
            f"{result['train_seconds']:.0f} s\n"
            f"throughput: training {result['train_samples_per_s']:.0f} samples/s, data loading alone "
            f"{result['loader_samples_per_s']:.0f} samples/s  ({result['train_frames']} train / "
            f"{result['val_frames']} validation frames; TensorBoard logs in {Path(result['out']) / 'tensorboard'})")


def _train_dagger(args, meta: dict) -> int:
    from sim.pipelines.dagger import DaggerConfig, format_dagger, run_dagger

    if not args.init:
        raise ValueError("drive train dagger needs --init RUN (an e2e checkpoint from 'drive train e2e')")
    config = DaggerConfig(rounds=args.rounds, episodes=args.episodes, beta=args.beta,
                          eval_episodes=20 if args.eval_episodes is None else args.eval_episodes,
                          workers=args.workers)
    recipe = _e2e_recipe(args, epochs=args.epochs or 4, lr=args.lr or 3e-4, patience=args.patience or 2)
    data = [d for d in args.data.split(",") if d] if args.data else None
    result = run_dagger(args.init, args.out, config, recipe, scenario=args.scenario, data=data,
                        device=args.device, progress=not args.quiet, extra_meta=meta)
    print(format_dagger(result))
    return 0


def _train_ppo(args, meta: dict) -> int:
    from sim.pipelines.ppo import PPOConfig, format_ppo, train_ppo

    values = dict(steps=args.steps, envs=args.envs, vec=args.vec, model=args.model or "pilotnet-s",
                  seed=args.seed, budget_s=60.0 * args.budget_min, fast_physics=args.physics == "fast",
                  eval_every=args.eval_every, eval_episodes=5 if args.eval_episodes is None else args.eval_episodes,
                  critic_warmup=(args.critic_warmup if args.critic_warmup is not None
                                 else (10_000 if args.init else 0)),
                  duration_s=args.duration)
    for arg, field in (("lr", "lr"), ("batch_size", "batch_size"), ("epochs", "n_epochs"),
                       ("n_steps", "n_steps"), ("log_std_init", "log_std_init")):
        if getattr(args, arg) is not None:
            values[field] = getattr(args, arg)
    result = train_ppo(args.scenario, args.out, PPOConfig(**values), init=args.init, device=args.device,
                       resume=args.resume, progress=not args.quiet, extra_meta=meta)
    print(format_ppo(result))
    print(f"TensorBoard logs in {Path(args.out) / 'tensorboard'}; drive it with: drive run --agent ppo:{args.out} "
          f"--scenario {result['scenario']}")
    return 0


def _cmd_record(args) -> int:
    from agents import parse_agent
    from sim.pipelines.record import NoiseConfig, format_record_summary, record_dataset
    from sim.world.scenarios import get_scenario

    parse_agent(args.agent)
    scenario = get_scenario(args.scenario)
    seeds = list(range(args.seed, args.seed + args.episodes))
    summary = record_dataset(scenario, seeds, Path(args.out), noise=NoiseConfig(fraction=args.noise),
                             expert=args.agent, workers=args.workers, progress=not args.quiet)
    print(format_record_summary(summary))
    return 0


def build_parser() -> argparse.ArgumentParser:
    from agents import AGENTS, DEFAULT_AGENT
    from sim.world.scenarios import DEFAULT_SCENARIO, SCENARIOS

    p = argparse.ArgumentParser(
        prog="drive",
        description="Modular vs end-to-end driving in highway-env worlds: run agents, "
                    "record, train, compare.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    s = sub.add_parser("scenarios", help="list the driving scenarios",
                       description="List the named driving scenarios with a one-line description.")
    s.set_defaults(func=_cmd_scenarios)

    s = sub.add_parser("agents", help="list the agents and their sensors",
                       description="List the agents, the sensors each one is handed, and what it is.")
    s.set_defaults(func=_cmd_agents)

    s = sub.add_parser(
        "run", help="run an agent for some episodes; write episodes.jsonl and a video",
        description="Run one agent in one scenario on consecutive seeds. Writes DIR/config.json "
                    "first, then one line per finished episode to DIR/episodes.jsonl, and an "
                    "H.264 MP4 of the first episode (ego camera beside a top-down view).")
    s.add_argument("--agent", default=DEFAULT_AGENT,
                   help=f"agent name (default: {DEFAULT_AGENT}; known: {', '.join(AGENTS)})")
    s.add_argument("--scenario", default=DEFAULT_SCENARIO,
                   help=f"scenario name (default: {DEFAULT_SCENARIO}; known: {', '.join(SCENARIOS)})")
    s.add_argument("--episodes", type=_positive_int, default=3, help="number of episodes (default: 3)")
    s.add_argument("--seed", type=_seed, default=0,
                   help="seed of the first episode; episode k uses seed+k (default: 0)")
    s.add_argument("--out", default=None, metavar="DIR",
                   help="output folder (default: runs/run__{scenario}__{agent}__seed{S}__{time})")
    s.add_argument("--video", default=None, metavar="FILE.mp4",
                   help="where to write the first episode's video (default: DIR/video.mp4; "
                        "'none' for no video)")
    s.add_argument("--duration", type=_duration, default=None, metavar="SECONDS",
                   help="override the scenario's episode time limit [s]")
    s.add_argument("--workers", type=_positive_int, default=1,
                   help="worker processes; whole episodes are spread over them, results per "
                        "seed do not depend on it (default: 1, in-process)")
    s.add_argument("--batch", type=_positive_int, default=1,
                   help="step K environments in lock-step with one batched decision per step "
                        "(agents with per-slot state: e2e, idm, straight); results per seed do "
                        "not depend on it (default: 1)")
    s.add_argument("--device", default=None, choices=["auto", "cpu", "cuda"],
                   help="where network agents (e2e) run (default: auto = CUDA when present)")
    s.add_argument("--decision-timeout", type=_timeout, default=None, metavar="SECONDS",
                   help="end an episode with status 'timeout' when one decision takes longer "
                        "(default: 0 = no limit)")
    s.add_argument("--physics", choices=["fast", "stock"], default="fast",
                   help="fast: sim.world.fastroad, bit-identical to highway-env and several times "
                        "faster; stock: plain highway-env (default: fast)")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=_cmd_run)

    s = sub.add_parser(
        "record", help="record expert demonstrations as a Minari dataset",
        description="Drive episodes with the expert and record what the end-to-end network sees "
                    "(camera, speed, command), the executed action and the expert's clean action "
                    "(the label) as a Minari dataset (HDF5, lossless frames). --noise injects "
                    "triangular steering impulses into the executed action for that fraction of "
                    "the time (Codevilla et al. 2019); the label stays the expert's. The dataset "
                    "is built in a temp folder and renamed into place when complete.")
    s.add_argument("--agent", default="expert", help="the demonstrator (default: expert)")
    s.add_argument("--scenario", default=DEFAULT_SCENARIO,
                   help=f"scenario name (default: {DEFAULT_SCENARIO}; known: {', '.join(SCENARIOS)})")
    s.add_argument("--episodes", type=_positive_int, default=40, help="episodes (default: 40)")
    s.add_argument("--seed", type=_seed, default=1000,
                   help="seed of the first episode; keep evaluation seeds (0..) apart (default: 1000)")
    s.add_argument("--noise", type=_fraction, default=0.2,
                   help="share of steps under a steering impulse, 0 for clean demos (default: 0.2)")
    s.add_argument("--out", required=True, metavar="DATASET", help="dataset folder (must not exist)")
    s.add_argument("--workers", type=_positive_int, default=2, help="worker processes (default: 2)")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=_cmd_record)

    s = sub.add_parser("bench", help="benchmarks (median and ratio against a baseline)",
                       description="Benchmarks, each against a baseline measured in the same run. "
                                   "'camera': the ego camera's frame time beside highway-env's "
                                   "GrayscaleObservation at the same size. 'sim': steps/s of stock "
                                   "vs fast physics per scenario at default and 2x traffic, highway "
                                   "cost vs vehicle count, and drive run episodes/min with 1 vs 2 "
                                   "workers. 'planner': an agent's per-decision latency (p50, p90, "
                                   "p99, max, share over 10 ms) in closed-loop episodes per "
                                   "scenario, beside the env's step time. 'inference': PilotNet "
                                   "s/m/l batch-1 latency p50/p99 and throughput vs batch size on "
                                   "each device, beside SB3's NatureCNN policy.predict at the same "
                                   "input, and decisions/s of the lock-step loop against K. 'loop': "
                                   "episodes/min and decisions/s of the whole evaluation harness "
                                   "per agent on highway with 1 and 2 workers, beside stock "
                                   "highway-env + GrayscaleObservation + SB3 CnnPolicy.predict. "
                                   "'ppo': PPO training throughput (environment steps/s, rollout and "
                                   "update apart) with the fast physics vs stock (default: highway, "
                                   "--steps 1024 per round, --repeats rounds).")
    s.add_argument("what", choices=["camera", "sim", "planner", "inference", "loop", "ppo"],
                   help="what to benchmark")
    s.add_argument("--scenario", default=None,
                   help="scenario (camera default: highway; sim default: all; planner: same "
                        "as --scenarios)")
    s.add_argument("--scenarios", default=None, metavar="A,B",
                   help=f"planner: comma-separated scenarios (default: "
                        f"{','.join(PLANNER_SCENARIOS)})")
    s.add_argument("--episodes", type=_positive_int, default=None,
                   help="planner: episodes per scenario, seeds 0..N-1 (default: 2); loop: "
                        "episodes per agent and worker count (default: 10)")
    s.add_argument("--agents", default="expert,modular,e2e,idm", metavar="A,B",
                   help="loop: agents (default: expert,modular,e2e,idm)")
    s.add_argument("--agent", default="expert",
                   help=f"planner: agent name (default: expert; known: {', '.join(AGENTS)})")
    s.add_argument("--duration", type=_duration, default=None, metavar="SECONDS",
                   help="planner: override each scenario's episode time limit [s]")
    s.add_argument("--frames", type=_positive_int, default=300,
                   help="camera: frames timed (default: 300)")
    s.add_argument("--size", type=_positive_int, default=128,
                   help="camera: image side [px] (default: 128)")
    s.add_argument("--steps", type=_positive_int, default=None,
                   help="sim: steps per replayed episode (default: 200); ppo: environment steps per round "
                        "(default: 1024)")
    s.add_argument("--repeats", type=_positive_int, default=3,
                   help="sim: episodes replayed per configuration (default: 3)")
    s.add_argument("--worker-episodes", type=_count, default=6,
                   help="sim: episodes for the --workers comparison; 0 skips it (default: 6)")
    s.add_argument("--repeats-inference", type=_positive_int, default=200,
                   help="inference: timed calls per row (default: 200)")
    s.add_argument("--loop-episodes", type=_positive_int, default=8,
                   help="inference: highway episodes per lock-step K (default: 8)")
    s.add_argument("--out", default=None, metavar="FILE.json", help="also write the result as JSON")
    s.set_defaults(func=_cmd_bench)

    s = sub.add_parser(
        "perception", help="record auto-labelled camera frames for detectors",
        description="'data': drive episodes with highway-env's autopilot and keep every "
                    "--every-th camera frame with its labels (each visible vehicle's box in "
                    "ego-frame metres, from ground truth) until --frames are recorded; written "
                    "as perception.dataset format 1 (sharded .npz + manifest.json, written last).")
    s.add_argument("what", choices=["data"], help="what to do")
    s.add_argument("--scenarios", default="highway,merge", metavar="A,B",
                   help="scenarios, visited round-robin (default: highway,merge)")
    s.add_argument("--frames", type=_positive_int, default=2000, help="frames to record (default: 2000)")
    s.add_argument("--out", required=True, metavar="DIR", help="dataset folder (must not hold one)")
    s.add_argument("--seed", type=_seed, default=0, help="seed of the first episode (default: 0)")
    s.add_argument("--every", type=_positive_int, default=5,
                   help="keep every N-th step of an episode (default: 5)")
    s.add_argument("--per-episode", type=_positive_int, default=40,
                   help="at most N frames from one episode (default: 40)")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=_cmd_perception)

    s = sub.add_parser(
        "compare", help="the main job: train what is missing, evaluate every agent, write the report",
        description="Make what the comparison needs and is not cached under runs/ (detector frames and "
                    "detector, expert demos and the end-to-end network per scenario), run 'drive eval' of "
                    "expert, modular, e2e and idm on lane-keep and highway with the same seeds, and write "
                    "'drive report'.  Defaults: 20 seeds per scenario, about 17 min from nothing on 2 CPU "
                    "cores (minutes once the checkpoints exist); --quick: 3 seeds and small networks under "
                    "runs/quick, about 4 min.  An interrupted run resumes.")
    s.add_argument("--quick", action="store_true", help="smoke view in a few minutes (runs/quick)")
    s.add_argument("--episodes", type=_positive_int, default=None,
                   help="seeds per scenario (default: 20, --quick 3)")
    s.add_argument("--workers", type=_positive_int, default=None, help="worker processes (default: 2)")
    s.add_argument("--videos", type=_count, default=None, metavar="N",
                   help="side-by-side videos per scenario (default: 2, --quick 1)")
    s.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="(default: auto)")
    s.add_argument("--quiet", action="store_true", help="no progress lines")
    s.set_defaults(func=_cmd_compare)

    s = sub.add_parser(
        "study", help="scaling study: closed-loop score of the e2e network against data and model size",
        description="Record (or reuse) one expert dataset, train PilotNet on nested subsets of it for every "
                    "(data size, model size, training seed) cell with the same recipe and compute, drive each "
                    "cell on the same held-out seeds, and chart driving score against labelled frames with "
                    "modular and expert as references.  Resumable cell by cell (--resume).")
    s.add_argument("what", choices=["scale"], help="the study")
    s.add_argument("--scenario", default="lane-keep", help="(default: lane-keep)")
    s.add_argument("--frames", default="2k,5k,20k,50k", metavar="A,B",
                   help="data sizes in labelled frames (default: 2k,5k,20k,50k)")
    s.add_argument("--models", default="s,m,l", metavar="A,B", help="PilotNet widths (default: s,m,l)")
    s.add_argument("--train-seeds", type=_positive_int, default=3, help="training seeds per cell (default: 3)")
    s.add_argument("--episodes", type=_positive_int, default=20, help="held-out seeds per cell (default: 20)")
    s.add_argument("--seed-start", type=_seed, default=0, help="first held-out seed (default: 0)")
    s.add_argument("--samples", default="120k", help="training samples per cell, any size (default: 120k)")
    s.add_argument("--max-epochs", type=_positive_int, default=60, help="(default: 60)")
    s.add_argument("--budget-min", type=float, default=15.0, help="training minutes per cell at most (default: 15)")
    s.add_argument("--stack", type=_positive_int, default=1, help="frames stacked (default: 1; highway: 2)")
    s.add_argument("--duration", type=_duration, default=None, metavar="SECONDS", help="episode length")
    s.add_argument("--references", default="expert,modular", metavar="A,B",
                   help="agents driven once as horizontal lines (default: expert,modular)")
    s.add_argument("--data", default=None, metavar="DATASET[,DATASET]",
                   help="demos to take subsets of (default: record them into OUT/demos)")
    s.add_argument("--heldout-episodes", type=_count, default=5,
                   help="expert episodes in no subset, every cell's open-loop test set (default: 5; 0: none)")
    s.add_argument("--dagger-rounds", type=_count, default=0,
                   help="after behaviour cloning, DAgger rounds per cell, charted as lines of their own "
                        "(default: 0; a study may add them on --resume)")
    s.add_argument("--dagger-episodes", type=_positive_int, default=5,
                   help="episodes collected per DAgger round (default: 5)")
    s.add_argument("--keep", default="last", choices=["last", "best"],
                   help="weights a cell keeps: the final epoch (fixed compute) or the lowest loss on its own "
                        "validation episodes, with early stopping (default: last; studies before it: best)")
    s.add_argument("--workers", type=_positive_int, default=1, help="cells at a time (default: 1)")
    s.add_argument("--backend", default="local", choices=["local", "ray"], help="(default: local processes)")
    s.add_argument("--address", default=None, help="ray: the cluster address (default: start a local one)")
    s.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"], help="(default: cpu)")
    s.add_argument("--out", default=None, metavar="DIR", help="(default: runs/study/SCENARIO)")
    s.add_argument("--resume", action="store_true", help="continue the study in --out")
    s.add_argument("--quiet", action="store_true", help="no progress lines")
    s.set_defaults(func=_cmd_study)

    s = sub.add_parser(
        "report", help="write the side-by-side report of a 'drive eval' folder",
        description="Reads DIR/config.json and DIR/results.jsonl and writes DIR/report.md (figures "
                    "in DIR/report_files/), a self-contained DIR/report.html and DIR/report.json: per "
                    "scenario, every agent's statuses and metrics with 95%% bootstrap intervals "
                    "(mean and interquartile mean), paired comparisons on shared seeds, the sensors "
                    "each agent used, and figures.")
    s.add_argument("dir", metavar="DIR", help="a folder written by 'drive eval'")
    s.add_argument("--videos", type=_count, default=3, metavar="N",
                   help="side-by-side videos per scenario (seeds re-driven by every agent; "
                        "0 for none; default: 3)")
    s.add_argument("--quiet", action="store_true", help="no progress lines")
    s.set_defaults(func=_cmd_report)

    s = sub.add_parser(
        "eval", help="run every agent on every scenario on the same seeds; or score detectors",
        description="Without 'detector': every agent of --agents on every scenario of --scenarios "
                    "on the same seeds, one line per finished episode appended to "
                    "DIR/results.jsonl (config.json first, with checkpoint hashes); --resume runs "
                    "only what is missing. 'detector': nuScenes-style average precision (centre "
                    "distance 0.5/1/2/4 m) overall and by range (0-20, 20-40, 40+ m), with position "
                    "error of true positives, for each detector and each sensor corruption.")
    s.add_argument("what", nargs="?", choices=["detector"], default=None,
                   help="'detector' to score detectors; omit to evaluate agents")
    s.add_argument("--agents", default="expert,modular,e2e,idm", metavar="A,B",
                   help="agents to evaluate (default: expert,modular,e2e,idm)")
    s.add_argument("--scenarios", default="lane-keep,highway", metavar="A,B",
                   help="scenarios (default: lane-keep,highway)")
    s.add_argument("--episodes", type=_positive_int, default=20, help="seeds per scenario (default: 20)")
    s.add_argument("--seed-start", type=_seed, default=0, help="first seed (default: 0)")
    s.add_argument("--workers", type=_positive_int, default=2, help="worker processes (default: 2)")
    s.add_argument("--duration", type=_duration, default=None, metavar="SECONDS",
                   help="override every scenario's episode time limit [s]")
    s.add_argument("--decision-timeout", type=_timeout, default=5.0, metavar="SECONDS",
                   help="a decision slower than this ends its episode with status 'timeout' "
                        "(default: 5; 0 = no limit)")
    s.add_argument("--resume", action="store_true", help="continue the evaluation in --out")
    s.add_argument("--quiet", action="store_true", help="no progress bars")
    s.add_argument("--data", default=None, metavar="DIR", help="detector: a dataset from 'drive perception data'")
    s.add_argument("--detector", default="opencv", metavar="A,B",
                   help="detectors: opencv, learned:CHECKPOINT_DIR (default: opencv)")
    s.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                   help="where networks run (default: auto = CUDA when present)")
    s.add_argument("--corrupt", default="none,noise,blur,brightness", metavar="A,B",
                   help="corruptions to evaluate under (default: none,noise,blur,brightness)")
    s.add_argument("--out", default=None, metavar="DIR|FILE.json",
                   help="agents: the evaluation folder (default: runs/eval__{time}); detector: "
                        "also write the reports as JSON")
    s.set_defaults(func=_cmd_eval)

    s = sub.add_parser(
        "train", help="train a network: detector, e2e (behaviour cloning), dagger or ppo (RL)",
        description="'detector': the CenterNet vehicle detector on a dataset from 'drive perception "
                    "data'. 'e2e': the PilotNet policy by behaviour cloning on datasets from 'drive "
                    "record' (split by episode, viewpoint + photometric augmentation, L1/MSE, AdamW "
                    "+ cosine, early stopping, optional --budget-min). 'dagger': DAgger rounds from "
                    "an e2e checkpoint (--init): roll out the policy mixed with the expert (beta), "
                    "label every visited state with the expert, aggregate, fine-tune, and score each "
                    "round in closed loop. 'ppo': reinforcement learning with Stable-Baselines3 PPO on the "
                    "camera (+ speed) with the shaped reward of sim.pipelines.rl, PilotNet as the actor, from scratch or "
                    "from an e2e network (--init e2e:RUN), K environment processes, a closed-loop "
                    "evaluation every --eval-every steps (--resume continues an interrupted run). Each "
                    "writes OUT/model.safetensors + a JSON config and TensorBoard logs in OUT/tensorboard.")
    s.add_argument("what", choices=["detector", "e2e", "dagger", "ppo"], help="what to train")
    s.add_argument("--data", default=None, metavar="DIR[,DIR]",
                   help="detector: a 'drive perception data' dataset; e2e: demo datasets from "
                        "'drive record' (comma-separated); dagger: the demos to aggregate with "
                        "(default: the --init checkpoint's)")
    s.add_argument("--out", required=True, metavar="DIR", help="checkpoint folder (must not hold one)")
    s.add_argument("--model", default=None, help="e2e/ppo: pilotnet-s, pilotnet-m or pilotnet-l "
                                                  "(default: e2e pilotnet-m, ppo pilotnet-s)")
    s.add_argument("--stack", type=_positive_int, default=1, help="e2e: frames stacked (default: 1)")
    s.add_argument("--stride", type=_positive_int, default=1,
                   help="e2e: control steps between stacked frames (default: 1)")
    s.add_argument("--loss", default="l1", choices=["l1", "mse"], help="e2e: (default: l1)")
    s.add_argument("--budget-min", type=float, default=0.0,
                   help="e2e/dagger: stop training after this many minutes (default: none)")
    s.add_argument("--no-augment", action="store_true", help="e2e: no augmentation")
    s.add_argument("--epochs", type=_positive_int, default=None,
                   help="at most this many epochs (default: detector 30, e2e 20, dagger rounds 4)")
    s.add_argument("--batch-size", type=_positive_int, default=None, help="(default: detector 32, e2e 64)")
    s.add_argument("--lr", type=float, default=None,
                   help="AdamW peak learning rate (default: detector 2e-3, e2e 1e-3, dagger 3e-4)")
    s.add_argument("--width", type=_positive_int, default=32, help="detector: network width (default: 32)")
    s.add_argument("--patience", type=_positive_int, default=None,
                   help="stop after this many epochs without a better validation loss (default: 5, e2e 4)")
    s.add_argument("--init", default=None, metavar="RUN",
                   help="dagger: the e2e checkpoint to start from; ppo: e2e:RUN (BC -> PPO) or ppo:RUN")
    s.add_argument("--scenario", default=None, help="dagger/ppo: scenario (default: the --init checkpoint's)")
    s.add_argument("--steps", type=_positive_int, default=200_000,
                   help="ppo: environment steps, all environments together (default: 200000)")
    s.add_argument("--envs", type=_positive_int, default=4, help="ppo: environments stepped in parallel (default: 4)")
    s.add_argument("--vec", default="subproc", choices=["subproc", "dummy"],
                   help="ppo: one process per environment, or all in this one (default: subproc)")
    s.add_argument("--n-steps", type=_positive_int, default=None,
                   help="ppo: steps per environment per rollout (default: 256)")
    s.add_argument("--log-std-init", type=float, default=None,
                   help="ppo: initial log std of the Gaussian policy (default: -1.6)")
    s.add_argument("--critic-warmup", type=_count, default=None,
                   help="ppo: environment steps at the start that train only the critic (default: 10000 "
                        "with --init, else 0)")
    s.add_argument("--eval-every", type=_positive_int, default=20_000,
                   help="ppo: environment steps between closed-loop evaluations and checkpoints (default: 20000)")
    s.add_argument("--physics", default="fast", choices=["fast", "stock"], help="ppo: (default: fast)")
    s.add_argument("--duration", type=_duration, default=None, metavar="SECONDS",
                   help="ppo: episode time limit (default: the scenario's)")
    s.add_argument("--resume", action="store_true", help="ppo: continue the interrupted run in --out")
    s.add_argument("--rounds", type=_positive_int, default=3, help="dagger: rounds (default: 3)")
    s.add_argument("--episodes", type=_positive_int, default=10,
                   help="dagger: episodes collected per round (default: 10)")
    s.add_argument("--beta", type=_fraction, default=0.5,
                   help="dagger: share of expert control in round 1, halved every round (default: 0.5)")
    s.add_argument("--eval-episodes", type=_count, default=None,
                   help="dagger: closed-loop episodes scored per round on seeds 0.. (default: 20); ppo: per "
                        "evaluation, on seeds 10000.. (default: 5)")
    s.add_argument("--workers", type=_positive_int, default=2, help="dagger: worker processes (default: 2)")
    s.add_argument("--seed", type=_seed, default=0, help="(default: 0)")
    s.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="(default: auto)")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=_cmd_train)
    return p


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileExistsError, FileNotFoundError, PermissionError) as e:
        print(f"drive: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("drive: interrupted; finished episodes are kept", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - a bug: one line for users, the trace on request
        if os.environ.get("DRIVE_DEBUG"):
            raise
        print(f"drive: internal error: {type(e).__name__}: {e} "
              "(set DRIVE_DEBUG=1 for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
