"""``drive report``: the report's subcommand, registered by :func:`register` and run by
``_cmd_report``.

Imports stay at the top, except the report writer behind the command: it takes seconds to
import (matplotlib, highway-env, video encoding), so the handler imports it and
``drive --help`` and ``drive scenarios`` do not load it.
"""

from __future__ import annotations

import argparse

from sim import arguments


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``report`` and ``explain`` to ``subparsers``."""
    _register_report(subparsers)
    _register_explain(subparsers)


def _register_report(subparsers: argparse._SubParsersAction) -> None:
    """``drive report``: its parser and its handler."""
    s = subparsers.add_parser(
        "report",
        help="write the side-by-side report of a 'drive eval' folder",
        description="Reads DIR/config.json and DIR/results.jsonl and writes DIR/report.md (figures "
        "in DIR/report_files/), a self-contained DIR/report.html and DIR/report.json: per "
        "scenario, every agent's statuses and metrics with 95%% bootstrap intervals "
        "(mean and interquartile mean), paired comparisons on shared seeds, the sensors "
        "each agent used, and figures.",
    )
    s.add_argument("dir", metavar="DIR", help="a folder written by 'drive eval'")
    s.add_argument(
        "--videos",
        type=arguments.count,
        default=3,
        metavar="N",
        help="side-by-side videos per scenario (seeds re-driven by every agent; "
        "0 for none; default: 3)",
    )
    s.add_argument("--quiet", action="store_true", help="no progress lines")
    s.set_defaults(func=_cmd_report)


def _register_explain(subparsers: argparse._SubParsersAction) -> None:
    """``drive explain``: its parser and its handler."""
    s = subparsers.add_parser(
        "explain",
        help="what perception got wrong at each collision of a 'drive eval' folder",
        description="Re-drives every collision of the planning agents (expert, modular, "
        "modular-bev, modular-gt) in DIR and compares the agent's tracks with ground truth "
        "over the last 3 s: the object hit was missed, seen late, mislocated, or perceived (then "
        "planning failed), with its bearing and which rig camera could see it.  Writes "
        "DIR/perception_failures.md and .json.  Agents without perception (straight, idm, "
        "e2e, ...) are skipped, and refused when named.  Before re-driving: the analysis "
        "files may only replace an earlier analysis of the same agents and episodes (a "
        "file drive did not write, or an analysis of other agents or episodes, is "
        "refused), and every checkpoint must still hash as DIR/config.json recorded; "
        "--force overrides both.",
    )
    s.add_argument("dir", metavar="DIR", help="a folder written by 'drive eval'")
    s.add_argument(
        "--agents",
        default=None,
        metavar="A,B",
        help="agent specs as in DIR/config.json (default: its planning agents)",
    )
    s.add_argument(
        "--device",
        default="cpu",
        choices=["auto", "cpu", "cuda"],
        help="where detectors run (default: cpu)",
    )
    s.add_argument(
        "--force",
        action="store_true",
        help="replace DIR/perception_failures.json and .md whatever they hold, and re-drive "
        "with checkpoints that changed since the evaluation (a warning, kept in the JSON)",
    )
    s.add_argument("--quiet", action="store_true", help="no progress lines")
    s.set_defaults(func=_cmd_explain)


def _cmd_report(args) -> int:
    from sim.report.report import write_report

    paths = write_report(args.dir, videos=args.videos, progress=not args.quiet)
    for kind in ("md", "html", "json"):
        print(f"{kind + ':':<6} {paths[kind]}")
    return 0


def _cmd_explain(args) -> int:
    from sim.report.perception_failures import explain_folder

    agents = list(arguments.comma_list(args.agents)) if args.agents else None
    result = explain_folder(
        args.dir, agents, device=args.device, progress=not args.quiet, force=args.force
    )
    if result["skipped"]:
        print(f"skipped (no perception to judge): {', '.join(result['skipped'])}")
    for agent, counts in result["summary"].items():
        print(f"{agent}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    print(f"wrote {args.dir}/perception_failures.md")
    return 0
