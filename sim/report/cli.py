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
    """Add ``report`` to ``subparsers``."""
    s = subparsers.add_parser(
        "report", help="write the side-by-side report of a 'drive eval' folder",
        description="Reads DIR/config.json and DIR/results.jsonl and writes DIR/report.md (figures "
                    "in DIR/report_files/), a self-contained DIR/report.html and DIR/report.json: per "
                    "scenario, every agent's statuses and metrics with 95%% bootstrap intervals "
                    "(mean and interquartile mean), paired comparisons on shared seeds, the sensors "
                    "each agent used, and figures.")
    s.add_argument("dir", metavar="DIR", help="a folder written by 'drive eval'")
    s.add_argument("--videos", type=arguments.count, default=3, metavar="N",
                   help="side-by-side videos per scenario (seeds re-driven by every agent; "
                        "0 for none; default: 3)")
    s.add_argument("--quiet", action="store_true", help="no progress lines")
    s.set_defaults(func=_cmd_report)


def _cmd_report(args) -> int:
    from sim.report.report import write_report

    paths = write_report(args.dir, videos=args.videos, progress=not args.quiet)
    for kind in ("md", "html", "json"):
        print(f"{kind + ':':<6} {paths[kind]}")
    return 0
