"""``drive scenarios``, ``drive agents``, ``drive run`` and ``drive eval``: the harness's
subcommands, registered by :func:`register` and run by the ``_cmd_*`` handlers.

Imports stay at the top, except the job modules behind each command (the runner, the
evaluator, perception and its detectors): they take seconds to import (highway-env,
OpenCV, torch), so each handler imports its own and ``drive --help`` and ``drive scenarios``
load none of them. ``agents`` is light (numpy; its networks load when an agent is built).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from agents import AGENTS, DEFAULT_AGENT, agent_label, make_agent, parse_agent
from sim import arguments
from sim.geometry.bev import BevCamera
from sim.harness.io import (
    check_output_file,
    write_json_output,
    write_text_output,
)
from sim.world.scenarios import DEFAULT_SCENARIO, SCENARIOS, get_scenario


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``scenarios``, ``agents``, ``run`` and ``eval`` to ``subparsers``."""
    _register_scenarios(subparsers)
    _register_agents(subparsers)
    _register_run(subparsers)
    _register_eval(subparsers)


def _register_scenarios(subparsers: argparse._SubParsersAction) -> None:
    """``drive scenarios``: its parser and its handler."""
    s = subparsers.add_parser(
        "scenarios",
        help="list the driving scenarios",
        description="List the named driving scenarios with a one-line description.",
    )
    s.set_defaults(func=_cmd_scenarios)


def _register_agents(subparsers: argparse._SubParsersAction) -> None:
    """``drive agents``: its parser and its handler."""
    s = subparsers.add_parser(
        "agents",
        help="list the agents and their sensors",
        description="List the agents, the sensors each one is handed, and what it is.",
    )
    s.set_defaults(func=_cmd_agents)


def _register_run(subparsers: argparse._SubParsersAction) -> None:
    """``drive run``: its parser and its handler."""
    s = subparsers.add_parser(
        "run",
        help="run an agent for some episodes; write episodes.jsonl and a video",
        description="Run one agent in one scenario on consecutive seeds. Writes DIR/config.json "
        "first, then one line per finished episode to DIR/episodes.jsonl, and an "
        "H.264 MP4 of the first episode (the top-down ego camera beside a north-up overview, "
        "the rig's front and rear cameras under them, and a HUD).",
    )
    s.add_argument(
        "--agent",
        default=DEFAULT_AGENT,
        help=f"agent name (default: {DEFAULT_AGENT}; known: {', '.join(AGENTS)})",
    )
    s.add_argument(
        "--scenario",
        default=DEFAULT_SCENARIO,
        help=f"scenario name (default: {DEFAULT_SCENARIO}; known: {', '.join(SCENARIOS)})",
    )
    s.add_argument(
        "--episodes", type=arguments.positive_int, default=3, help="number of episodes (default: 3)"
    )
    s.add_argument(
        "--seed",
        type=arguments.seed,
        default=0,
        help="seed of the first episode; episode k uses seed+k (default: 0)",
    )
    s.add_argument(
        "--out",
        default=None,
        metavar="DIR",
        help="output folder (default: runs/run__{scenario}__{agent}__seed{S}__{time})",
    )
    s.add_argument(
        "--video",
        default=None,
        metavar="FILE.mp4",
        help="where to write the first episode's video (default: DIR/video.mp4; "
        "'none' for no video); an existing file is replaced only when it is a "
        "video drive wrote, or with --force",
    )
    s.add_argument(
        "--force",
        action="store_true",
        help="overwrite the --video file even when drive did not write it",
    )
    s.add_argument(
        "--duration",
        type=arguments.duration,
        default=None,
        metavar="SECONDS",
        help="override the scenario's episode time limit [s]",
    )
    s.add_argument(
        "--workers",
        type=arguments.workers,
        default=1,
        help="worker processes; whole episodes are spread over them, results per "
        "seed do not depend on it (default: 1, in-process)",
    )
    s.add_argument(
        "--batch",
        type=arguments.positive_int,
        default=1,
        help="step K environments in lock-step with one batched decision per step "
        "(agents with per-slot state: e2e, idm, straight); results per seed do "
        "not depend on it (default: 1)",
    )
    s.add_argument(
        "--device",
        default=None,
        choices=["auto", "cpu", "cuda"],
        help="where network agents (e2e) run (default: auto = CUDA when present)",
    )
    s.add_argument(
        "--decision-timeout",
        type=arguments.timeout,
        default=None,
        metavar="SECONDS",
        help="end an episode with status 'timeout' when one decision takes longer "
        "(default: 0 = no limit)",
    )
    s.add_argument(
        "--physics",
        choices=["fast", "stock"],
        default="fast",
        help="fast: sim.world.fastroad, bit-identical to highway-env and several times "
        "faster; stock: plain highway-env (default: fast)",
    )
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=_cmd_run, on_interrupt="finished episodes are kept in episodes.jsonl")


def _register_eval(subparsers: argparse._SubParsersAction) -> None:
    """``drive eval``: its parser and its handler."""
    s = subparsers.add_parser(
        "eval",
        help="run every agent on every scenario on the same seeds; or score detectors",
        description="Without 'detector': every agent of --agents on every scenario of --scenarios "
        "on the same seeds, one line per finished episode appended to DIR/results.jsonl "
        "(config.json first, with checkpoint hashes); --resume runs only what is missing; "
        "--backend ray runs the episodes on a Ray cluster. 'detector': nuScenes-style average "
        "precision (centre distance 0.5/1/2/4 m) overall and by range (0-20, 20-40, 40+ m), with "
        "the translation (ATE) and orientation (AOE) errors of true positives and, on the rig's "
        "perspective cameras, the depth error, for each detector on each camera it reads and each "
        "sensor corruption.",
    )
    s.add_argument(
        "what",
        nargs="?",
        choices=["detector", "tracking"],
        default=None,
        help="'detector' to score detectors; 'tracking' to time how fast each planning "
        "agent's perception gets the hazard right (hard-brake, stopped-car, cut-in: "
        "latency from onset, speed and position errors; --out FILE.json); omit to "
        "evaluate agents",
    )
    s.add_argument(
        "--agents",
        default="expert,modular,e2e,idm",
        metavar="A,B",
        help="agents to evaluate (default: expert,modular,e2e,idm: both paradigms from the "
        "camera rig; modular-bev and e2e-bev drive from the bird's-eye raster)",
    )
    s.add_argument(
        "--scenarios",
        default="lane-keep,highway",
        metavar="A,B",
        help="scenarios (default: lane-keep,highway)",
    )
    s.add_argument(
        "--episodes",
        type=arguments.positive_int,
        default=20,
        help="seeds per scenario (default: 20)",
    )
    s.add_argument("--seed-start", type=arguments.seed, default=0, help="first seed (default: 0)")
    s.add_argument(
        "--workers",
        type=arguments.workers,
        default=2,
        help="worker processes; with --backend ray, Ray actors of one CPU each (default: 2)",
    )
    s.add_argument(
        "--backend",
        choices=["local", "ray"],
        default="local",
        help="local: worker processes on this machine; ray: actors on a Ray cluster, "
        'checkpoints shipped to them, traces sent back (pip install -e ".[ray]"); '
        "results per seed are the same, and a run may be resumed on either (default: local)",
    )
    s.add_argument(
        "--address",
        default=None,
        metavar="ADDR",
        help="with --backend ray: the cluster to join, as ray.init takes it (auto, "
        "ray://HOST:10001, HOST:6379) (default: RAY_ADDRESS, else a local cluster)",
    )
    s.add_argument(
        "--duration",
        type=arguments.duration,
        default=None,
        metavar="SECONDS",
        help="override every scenario's episode time limit [s]",
    )
    s.add_argument(
        "--decision-timeout",
        type=arguments.timeout,
        default=5.0,
        metavar="SECONDS",
        help="a decision slower than this ends its episode with status 'timeout' "
        "(default: 5; 0 = no limit)",
    )
    s.add_argument("--resume", action="store_true", help="continue the evaluation in --out")
    s.add_argument("--quiet", action="store_true", help="no progress bars")
    s.add_argument(
        "--data",
        default=None,
        metavar="DIR",
        help="detector: a dataset from 'drive perception data'",
    )
    s.add_argument(
        "--detector",
        default="opencv",
        metavar="A,B",
        help="detectors: opencv, learned:CHECKPOINT_DIR (the bird's-eye camera), "
        "geometric, mono3d:CHECKPOINT_DIR (perspective cameras) (default: opencv)",
    )
    s.add_argument(
        "--cameras",
        default=None,
        metavar="A,B",
        help="detector: the dataset's cameras to score on (default: all it has; each "
        "detector runs on those it reads)",
    )
    s.add_argument(
        "--plot",
        default=None,
        metavar="FILE.png",
        help="detector: also plot the perspective detectors' depth error against range",
    )
    s.add_argument(
        "--device",
        default="auto",
        choices=["auto", "cpu", "cuda"],
        help="where networks run (default: auto = CUDA when present)",
    )
    s.add_argument(
        "--corrupt",
        default="none,noise,blur,brightness",
        metavar="A,B",
        help="corruptions to evaluate under, each with an optional severity after a "
        "colon, e.g. noise:40,blur:2 (default: none,noise,blur,brightness at "
        "noise 20, blur 1 px, brightness -60)",
    )
    s.add_argument(
        "--force",
        action="store_true",
        help="detector, tracking: replace the --out / --plot file even when drive did not "
        "write it, or another command did",
    )
    s.add_argument(
        "--out",
        default=None,
        metavar="DIR|FILE.json",
        help="agents: the evaluation folder (default: runs/eval__{time}); detector: "
        "also write the reports as JSON",
    )
    s.set_defaults(func=_cmd_eval, on_interrupt="finished episodes are kept; --resume continues")


def _cmd_scenarios(args) -> int:
    from sim.world.scenarios import variant_help

    width = max(len(n) for n in SCENARIOS)
    for name, s in SCENARIOS.items():
        print(f"{name:{width}s}  {s.summary}")
        print(f"{'':{width}s}    variants: {variant_help(s)}")
    print(
        "\nvariants follow the name after colons, e.g. highway:dense:night:noise=2 (drive run "
        "--scenario, drive eval --scenarios)"
    )
    return 0


def _cmd_agents(args) -> int:
    from sim.harness.run import task_spec

    # an agent's sensors can depend on how it is built (a pluggable perception source):
    # ask a built one
    task = task_spec(get_scenario(DEFAULT_SCENARIO), BevCamera())
    width = max(len(n) for n in AGENTS)
    for name, (_, summary) in AGENTS.items():
        sensors = ", ".join(make_agent(name, task).sensors) or "(none)"
        print(f"{name:{width}s}  sensors: {sensors:28s} {summary}")
    return 0


def _cmd_run(args) -> int:
    from sim.harness.run import default_run_dir, format_summary, run_agent

    parse_agent(args.agent)  # an unknown name lists the known ones
    overrides = {"duration_s": args.duration} if args.duration is not None else {}
    scenario = get_scenario(args.scenario, **overrides)
    out = (
        Path(args.out)
        if args.out
        else default_run_dir(args.scenario, agent_label(args.agent), args.seed)
    )
    if args.video is None:
        video = out / "video.mp4"
    elif args.video.lower() == "none":
        video = None
    else:
        video = Path(args.video)
        if video.suffix.lower() != ".mp4":
            raise ValueError(f"--video must end in .mp4 (or be 'none'), got {args.video!r}")
    seeds = arguments.seed_range(args.seed, args.episodes, "--seed")
    # the command hands the run its video writer as an observer factory (the harness itself
    # imports no report)
    from sim.report.video import VideoFile

    records = run_agent(
        args.agent,
        scenario,
        seeds,
        out,
        video=VideoFile(video) if video is not None else None,
        workers=args.workers,
        fast_physics=args.physics == "fast",
        progress=not args.quiet,
        argv=sys.argv,
        batch=args.batch,
        device=args.device,
        decision_timeout_s=args.decision_timeout,
        overwrite_video=args.force,
    )
    print(format_summary(records))
    for r in records:
        if r.get("error"):
            print(f"seed {r['seed']}: {r['status']}: {r['error']}")
    print(f"episodes: {out / 'episodes.jsonl'}")
    if video is not None:  # named only when it is there: its episode may have failed
        print(f"video:    {video}" if video.is_file() else "video:    none written")
    return 0


def _cmd_eval_agents(args) -> int:
    from sim.harness.evaluate import RESULTS, format_eval, run_eval

    if args.address is not None and args.backend != "ray":
        raise ValueError(f"--address {args.address} needs --backend ray")
    for option, given in (("--force", args.force), ("--plot", args.plot), ("--data", args.data)):
        if given:  # an option this command would ignore is refused, not dropped
            raise ValueError(
                f"{option} belongs to 'drive eval detector'; an evaluation of agents never "
                "replaces its folder (--resume continues it)"
            )
    agents = list(arguments.comma_list(args.agents))
    if not agents:
        raise ValueError(f"--agents names no agent (got {args.agents!r})")
    for a in agents:
        parse_agent(a)  # an unknown name lists the known ones
    out = Path(args.out) if args.out else Path("runs") / f"eval__{time.strftime('%Y%m%d-%H%M%S')}"
    seeds = arguments.seed_range(args.seed_start, args.episodes, "--seed-start")
    records = run_eval(
        out,
        agents,
        arguments.scenario_list(args.scenarios),
        seeds,
        workers=args.workers,
        device=args.device,
        resume=args.resume,
        duration_s=args.duration,
        progress=not args.quiet,
        argv=sys.argv,
        decision_timeout_s=args.decision_timeout,
        backend=args.backend,
        address=args.address,
    )
    print(format_eval(records))
    print(f"results: {out / RESULTS}")
    return 0


def _cmd_eval_tracking(args) -> int:
    from sim.report.hazard_tracking import (
        HAZARDS,
        format_tracking,
        summarise_tracking,
        track_hazard,
    )

    agents = list(arguments.comma_list(args.agents))
    for a in agents:
        parse_agent(a)  # an unknown name lists the known ones
    scenarios = arguments.scenario_list(args.scenarios)
    wrong = [sc for sc in scenarios if sc.split(":", 1)[0] not in HAZARDS]
    if wrong:
        raise ValueError(
            f"drive eval tracking times hazards; {', '.join(wrong)} is none (known: "
            f"{', '.join(HAZARDS)})"
        )
    out = Path(args.out) if args.out else None
    kind = "drive eval tracking"
    if out is not None:  # the output policy, before any work: the JSON and its Markdown
        check_output_file(out, kind=kind, force=args.force, suffixes=(".json",))
        check_output_file(out.with_suffix(".md"), kind=kind, force=args.force)
    seeds = arguments.seed_range(args.seed_start, args.episodes, "--seed-start")
    rows = []
    for a in agents:
        for sc in scenarios:
            for seed in seeds:
                rows.append(track_hazard(a, sc, seed, device=args.device))
                if not args.quiet:
                    r = rows[-1]
                    print(
                        f"{a} {sc} seed {seed}: {r['status']}, latency {r['latency_s']} s",
                        flush=True,
                    )
    summary = summarise_tracking(rows)
    print(format_tracking(summary))
    if out is not None:
        write_json_output(
            out,
            {
                "agents": agents,
                "scenarios": scenarios,
                "seeds": list(seeds),
                "summary": summary,
                "episodes": rows,
            },
            kind=kind,
        )
        write_text_output(out.with_suffix(".md"), format_tracking(summary), kind=kind)
        print(f"wrote {out}")
    return 0


def _cmd_eval(args) -> int:
    if args.what is None:
        return _cmd_eval_agents(args)
    if args.what == "tracking":
        return _cmd_eval_tracking(args)
    # the detector evaluation is perception's pipeline, not the harness's
    from sim.pipelines.perception_data import eval_detectors_command

    return eval_detectors_command(args)
