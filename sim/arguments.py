"""Value types shared by the ``drive`` subcommands (``sim/*/cli.py``).

Each argparse type turns one command-line string into a value or raises
``argparse.ArgumentTypeError`` with a message naming the rule, which argparse prints as a
usage error (exit status 2). ``scenario_list`` is checked in the handlers instead, so its
``ValueError`` reaches ``drive: error: ...``.

Imports only the standard library and ``sim.world.scenarios`` (names and summaries), so
building the parser stays fast.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from sim.world.scenarios import SCENARIOS


def int_at_least(minimum: int, what: str) -> Callable[[str], int]:
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


def fraction(text: str) -> float:
    """An argparse type: a number in [0, 1) (a share of the time, a mixing weight)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text!r}") from None
    if not (0.0 <= value < 1.0):
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text!r}")
    return value


def duration(text: str) -> float:
    """An argparse type: a finite number of seconds > 0 (nan and inf are refused)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not (value > 0 and value < 1e6):  # also rejects nan and inf
        raise argparse.ArgumentTypeError(f"must be a finite number of seconds > 0, got {text}")
    return value


def timeout(text: str) -> float | None:
    """An argparse type: seconds per decision; 0 = no limit (``None``)."""
    if text.strip() in ("0", "0.0", "none"):
        return None
    return duration(text)


positive_int = int_at_least(1, "must be at least 1")
"""An argparse type: a whole number >= 1 (episodes, workers, epochs...)."""

seed = int_at_least(0, "seeds are non-negative integers")
"""An argparse type: a seed, a whole number >= 0."""

count = int_at_least(0, "must be 0 or more")
"""An argparse type: a whole number >= 0, where 0 usually means none."""


def scenario_list(text: str) -> tuple[str, ...]:
    """``"a,b"`` -> ``("a", "b")``, each a known scenario (the error lists the known ones)."""
    names = tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    if not names:
        raise ValueError(f"--scenarios names no scenario (got {text!r}); known: "
                         f"{', '.join(SCENARIOS)}")
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        raise ValueError(f"unknown scenario(s) {', '.join(map(repr, unknown))}; known: "
                         f"{', '.join(SCENARIOS)}")
    return names
