"""``drive bench``: the benchmarks' subcommand, registered by :func:`register` and run by
``_cmd_bench``.

Imports stay at the top, except the benchmarks behind the command (and the PPO pipeline
for ``bench ppo``): they take seconds to import (highway-env, torch, Stable-Baselines3),
so the handler imports the one it runs and ``drive --help`` and ``drive scenarios`` load
none of them.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from agents import AGENTS
from sim import arguments
from sim.harness.io import check_output_file, write_json_output
from sim.world.scenarios import SCENARIOS, get_scenario

PLANNER_SCENARIOS = ("lane-keep", "highway", "merge", "roundabout")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``bench`` to ``subparsers``."""
    s = subparsers.add_parser(
        "bench",
        help="benchmarks (median and ratio against a baseline)",
        description="Benchmarks, each against a baseline measured in the same run. "
        "'camera': frame time (median, p90, p99) of the top-down ego "
        "camera, each perspective rig camera (cam_front, cam_rear, 256x128) "
        "and cam_front with instance mask + depth, beside highway-env's "
        "GrayscaleObservation at the top-down size, interleaved on the same "
        "world states; one table per scenario. 'sim': steps/s of stock "
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
        "'pool': the same mixed 40-episode evaluation (idm and expert on lane-keep and "
        "highway, 10 seeds each) with the local backend's warm worker processes and with Ray "
        "actors, alternated --repeats times: median wall time and the ratio. "
        "'data': frames/s of recording rig demos (expert-labelled) with 1 and --workers "
        "workers, and with --agent e2e:RUN on-policy (the network drives, the expert labels), "
        "beside the trainer's batch gather in samples/s and its load's peak memory with the "
        "frames in memory vs streamed from disk. "
        "'ppo': PPO training throughput (environment steps/s, rollout and "
        "update apart) with the fast physics vs stock (default: highway, "
        "--steps 1024 per round, --repeats rounds). 'suite': every agent over the "
        "benchmark's axes on shared seeds (traffic density, hazards, training vs "
        "unseen maps, visual conditions, each sensor/actuation fault at 3 levels), "
        "into --out (default runs/suite: one drive eval folder per group of agents, "
        "resumable) and its report suite.md / suite.html.",
    )
    s.add_argument(
        "what",
        choices=["camera", "sim", "planner", "inference", "loop", "ppo", "pool", "data", "suite"],
        help="what to benchmark",
    )
    s.add_argument(
        "--scenario",
        default=None,
        help="scenario (camera: one, a comma-separated list or 'all', default: "
        "highway; sim default: all; planner: same as --scenarios)",
    )
    s.add_argument(
        "--scenarios",
        default=None,
        metavar="A,B",
        help=f"planner: comma-separated scenarios (default: {','.join(PLANNER_SCENARIOS)})",
    )
    s.add_argument(
        "--episodes",
        type=arguments.positive_int,
        default=None,
        help="planner: episodes per scenario, seeds 0..N-1 (default: 2); loop: "
        "episodes per agent and worker count (default: 10)",
    )
    s.add_argument(
        "--agents",
        default="expert,modular,e2e,idm",
        metavar="A,B",
        help="loop: agents (default: expert,modular,e2e,idm)",
    )
    s.add_argument(
        "--agent",
        default="expert",
        help=f"planner: agent name (default: expert; known: {', '.join(AGENTS)}); data: "
        "e2e:RUN adds an on-policy recording row",
    )
    s.add_argument(
        "--duration",
        type=arguments.duration,
        default=None,
        metavar="SECONDS",
        help="planner, loop, suite: override each scenario's episode time limit [s]",
    )
    s.add_argument(
        "--frames",
        type=arguments.positive_int,
        default=300,
        help="camera: frames timed (default: 300)",
    )
    s.add_argument(
        "--size",
        type=arguments.size_px,
        default=128,
        help="camera: side of the top-down camera and of highway-env's frame [px] "
        "(default: 128; the rig cameras keep their own size)",
    )
    s.add_argument(
        "--steps",
        type=arguments.positive_int,
        default=None,
        help="sim: steps per replayed episode (default: 200); ppo: environment steps per round "
        "(default: 1024)",
    )
    s.add_argument(
        "--repeats",
        type=arguments.positive_int,
        default=3,
        help="sim: episodes replayed per configuration (default: 3)",
    )
    s.add_argument(
        "--worker-episodes",
        type=arguments.count,
        default=6,
        help="sim: episodes for the --workers comparison; 0 skips it (default: 6)",
    )
    s.add_argument(
        "--rig-cameras",
        default=None,
        metavar="A,B",
        help="inference: the rig network's cameras (default: every rig camera, cam_front,cam_rear)",
    )
    s.add_argument(
        "--repeats-inference",
        type=arguments.positive_int,
        default=200,
        help="inference: timed calls per row (default: 200)",
    )
    s.add_argument(
        "--loop-episodes",
        type=arguments.positive_int,
        default=8,
        help="inference: highway episodes per lock-step K (default: 8)",
    )
    s.add_argument(
        "--suite",
        default="full",
        metavar="NAME",
        help="suite: which cells (full: every axis; quick: one cell per axis) (default: full)",
    )
    s.add_argument(
        "--seed-start", type=arguments.seed, default=0, help="suite: first seed (default: 0)"
    )
    s.add_argument(
        "--workers", type=arguments.workers, default=2, help="suite: worker processes (default: 2)"
    )
    s.add_argument(
        "--backend",
        default="local",
        choices=["local", "ray"],
        help="suite: where episodes run (default: local processes; ray: a Ray cluster)",
    )
    s.add_argument(
        "--address", default=None, help="suite, ray: the cluster address (default: a local one)"
    )
    s.add_argument(
        "--device",
        default=None,
        choices=["auto", "cpu", "cuda"],
        help="suite: where networks run (default: auto = CUDA when present)",
    )
    s.add_argument("--resume", action="store_true", help="suite: continue the suite in --out")
    s.add_argument(
        "--report-only", action="store_true", help="suite: only (re)write the report of --out"
    )
    s.add_argument(
        "--out",
        default=None,
        metavar="FILE.json|DIR",
        help="also write the result as JSON; suite: the suite's folder (default: runs/suite)",
    )
    s.add_argument(
        "--force",
        action="store_true",
        help="replace the --out JSON file even when drive did not write it, or another "
        "command did (an evaluation's results, a dataset's manifest)",
    )
    s.set_defaults(
        func=_cmd_bench, on_interrupt="suite: finished episodes are kept; --resume continues"
    )


def _cmd_suite(args) -> int:
    import sys

    from sim.harness.suite import run_suite
    from sim.report.suite import write_suite_report

    if args.force:
        raise ValueError(
            "--force replaces the JSON --out of the other benchmarks; a suite's folder is "
            "never replaced (--resume continues it, or choose another --out)"
        )
    out = Path(args.out or "runs/suite")
    if not args.report_only:
        agents = list(arguments.comma_list(args.agents))
        episodes = args.episodes or 20
        seeds = arguments.seed_range(args.seed_start, episodes, "--seed-start")
        run_suite(
            out,
            suite=args.suite,
            agents=agents,
            seeds=seeds,
            workers=args.workers,
            device=args.device,
            resume=args.resume,
            backend=args.backend,
            address=args.address,
            argv=sys.argv,
            duration_s=args.duration,
        )
    paths = write_suite_report(out)
    print(f"report: {paths['md']}\n        {paths['html']}")
    return 0


def _data_learner(agent: str) -> str | None:
    """``drive bench data``'s on-policy driver: an e2e network, or none for ``expert``."""
    if agent == "expert":
        return None
    if agent.split(":", 1)[0] != "e2e":
        raise ValueError(
            f"drive bench data --agent {agent}: the on-policy row is driven by an end-to-end "
            "network (e2e or e2e:RUN); leave --agent out for the expert's rows alone"
        )
    return agent


def _cmd_bench(args) -> int:
    if args.what == "suite":
        return _cmd_suite(args)
    kind = f"drive bench {args.what}"
    if args.out:  # the output policy, before any work
        check_output_file(args.out, kind=kind, force=args.force, suffixes=(".json",))
    if args.what == "camera":
        from sim.bench.simulator import bench_cameras, format_camera

        text = args.scenario or "highway"
        names = tuple(SCENARIOS) if text.strip() == "all" else arguments.scenario_list(text)
        result = bench_cameras(names, frames=args.frames, size_px=args.size)
        print(format_camera(result))
    elif args.what == "sim":
        from sim.bench.simulator import bench_sim, format_sim

        names = tuple(SCENARIOS) if args.scenario is None else (get_scenario(args.scenario).name,)
        result = bench_sim(
            names,
            steps=args.steps or 200,
            repeats=args.repeats,
            worker_episodes=args.worker_episodes,
        )
        print(format_sim(result))
    elif args.what == "planner":
        from sim.bench.simulator import bench_planner, format_planner

        names = arguments.scenario_list(
            args.scenarios or args.scenario or ",".join(PLANNER_SCENARIOS)
        )
        result = bench_planner(
            names, episodes=args.episodes or 2, agent=args.agent, duration_s=args.duration
        )
        print(format_planner(result))
    elif args.what == "loop":
        from sim.bench.loop import bench_loop, format_loop

        agents = arguments.comma_list(args.agents)
        result = bench_loop(agents=agents, episodes=args.episodes or 10, duration_s=args.duration)
        print(format_loop(result))
    elif args.what == "pool":
        from sim.bench.pool import DURATION_S, EPISODES, bench_pool, format_pool

        result = bench_pool(
            episodes=args.episodes or EPISODES,
            duration_s=args.duration or DURATION_S,
            workers=args.workers,
            repeats=args.repeats,
        )
        print(format_pool(result))
    elif args.what == "data":
        from sim.bench.data import DURATION_S, EPISODES, bench_data, format_data

        result = bench_data(
            scenario=args.scenario or "highway",
            episodes=args.episodes or EPISODES,
            duration_s=args.duration or DURATION_S,
            workers=args.workers,
            learner=_data_learner(args.agent),
            repeats=args.repeats,
        )
        print(format_data(result))
    elif args.what == "inference":
        from sim.bench.inference import bench_inference, format_inference

        cams = arguments.comma_list(args.rig_cameras) if args.rig_cameras else None
        result = bench_inference(
            repeats=args.repeats_inference, loop_episodes=args.loop_episodes, rig_cameras=cams
        )
        print(format_inference(result))
    elif args.what == "ppo":
        from sim.pipelines.ppo import bench_ppo, format_bench_ppo

        result = bench_ppo(
            scenario=args.scenario or "highway", steps=args.steps or 1024, repeats=args.repeats
        )
        print(format_bench_ppo(result))
    else:  # argparse choices guard this; kept for direct calls
        raise ValueError(
            f"unknown benchmark {args.what!r}; known: camera, sim, planner, inference, loop, ppo, "
            "pool, data, suite"
        )
    if args.out:
        write_json_output(args.out, result, kind=kind)
        print(f"wrote {args.out}")
    return 0
