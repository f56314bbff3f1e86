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

Each area registers its own subcommands and holds their handlers: ``sim.harness.cli``
(scenarios, agents, run, eval), ``sim.pipelines.cli`` (record, perception, compare, study,
train), ``sim.bench.cli`` (bench) and ``sim.report.cli`` (report); their shared argument
types are in ``sim.arguments``. This module builds the top parser and runs a command.
"""

from __future__ import annotations

import argparse
import os
import sys

from sim.bench import cli as bench_cli
from sim.harness import cli as harness_cli
from sim.pipelines import cli as pipelines_cli
from sim.report import cli as report_cli

EXIT_USAGE = 2

AREAS = (harness_cli, pipelines_cli, report_cli, bench_cli)
"""Each area adds its own subcommands, in this order (``drive --help`` lists them so)."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="drive",
        description="Modular vs end-to-end driving in highway-env worlds: run agents, "
        "record, train, compare.",
    )
    p.set_defaults(
        on_interrupt=None
    )  # what an interrupted command keeps; set by the commands that keep something
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for area in AREAS:
        area.register(sub)
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
        print(
            "drive: interrupted" + (f"; {args.on_interrupt}" if args.on_interrupt else ""),
            file=sys.stderr,
        )
        return 130
    except Exception as e:
        if os.environ.get("DRIVE_DEBUG"):
            raise
        print(
            f"drive: internal error: {type(e).__name__}: {e} (set DRIVE_DEBUG=1 for the traceback)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
