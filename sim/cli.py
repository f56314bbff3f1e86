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
    drive probe AGENT [--scenario highway] [--episodes 10] [--every 15]
                                          does a policy look? counterfactual frames
    drive bench ppo                       PPO training throughput, fast vs stock physics

Each area registers its own subcommands and holds their handlers: ``sim.harness.cli``
(scenarios, agents, run, eval), ``sim.pipelines.cli`` (record, perception, compare, study,
train), ``sim.bench.cli`` (bench) and ``sim.report.cli`` (report); their shared argument
types are in ``sim.arguments``. This module builds the top parser and runs a command.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator

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


PACKAGES = ("sim", "agents", "perception", "planning")
"""The project's own packages: a ``ValueError`` raised in their code is a refusal of the
user's input, one raised inside a library is an internal error."""

USAGE_ERRORS = (FileExistsError, FileNotFoundError, PermissionError)
"""Refusals whatever raised them: a path that exists, is missing or cannot be written."""


def is_usage_error(e: BaseException) -> bool:
    """Whether ``e`` refuses the user's input (exit 2, one line) rather than being a defect
    (exit 1): a path error, or a ``ValueError`` whose innermost frame is the project's own
    code (the project words its refusals; a library's bare ``ValueError``, such as numpy's
    "scale < 0", means the project let bad input through)."""
    if isinstance(e, USAGE_ERRORS):
        return True
    if not isinstance(e, ValueError):
        return False
    tb = e.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    module = tb.tb_frame.f_globals.get("__name__", "") if tb is not None else ""
    return module.split(".", 1)[0] in PACKAGES


REPEAT_NOTE = b"drive: already stopping; the cleanup finishes first\n"


@contextlib.contextmanager
def one_interrupt() -> Iterator[None]:
    """Ctrl-C stops the command once (``KeyboardInterrupt``); a second Ctrl-C while it shuts
    down (stopping workers, closing progress bars, keeping what finished) prints a note
    instead of raising into the cleanup, which used to end in tqdm's traceback.  Only in the
    main thread, and only over Python's default handler (a caller's own handler stays)."""
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    ):
        yield
        return

    def repeated(signum, frame) -> None:
        os.write(2, REPEAT_NOTE)

    def first(signum, frame) -> None:
        signal.signal(signal.SIGINT, repeated)
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, first)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def main(argv: list[str] | None = None) -> int:
    """Run one ``drive`` command: 0 done, 2 refused (one line), 1 an internal error (its
    traceback with ``DRIVE_DEBUG=1``, which shows refusals' tracebacks too), 130 interrupted."""
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    parser = build_parser()
    args = parser.parse_args(argv)
    with one_interrupt():
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    try:
        return int(args.func(args) or 0)
    except Exception as e:
        if os.environ.get("DRIVE_DEBUG"):
            raise
        if is_usage_error(e):
            print(f"drive: error: {e}", file=sys.stderr)
            return EXIT_USAGE
        print(
            f"drive: internal error: {type(e).__name__}: {e} (set DRIVE_DEBUG=1 for the traceback)",
            file=sys.stderr,
        )
        return 1
    except KeyboardInterrupt:
        print(
            "drive: interrupted" + (f"; {args.on_interrupt}" if args.on_interrupt else ""),
            file=sys.stderr,
        )
        return 130


if __name__ == "__main__":
    sys.exit(main())
