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

from sim.world.scenarios import SCENARIOS, get_scenario

MAX_COUNT = 1_000_000
"""The largest count any option takes (episodes, frames, steps, workers...): far above any
real run, far below what overflows an index or exhausts memory before the run starts."""

MAX_SEED = 2**31 - 1
"""The largest seed: seeds (and a run's consecutive seeds) stay inside numpy's 32-bit range."""

MAX_SECONDS = 1e6
"""The longest duration or time limit [s] an option takes (about 11 days)."""


def _show(text: str) -> str:
    """The value as typed, shortened so that a 5,000-digit number makes a one-line message."""
    return repr(text if len(text) <= 30 else text[:27] + "...")


def int_between(minimum: int, maximum: int, what: str) -> Callable[[str], int]:
    """An argparse type: a whole number in [minimum, maximum], with a message naming the rule
    (``what`` for the lower bound)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:  # also a number too long for int() (over 4300 digits)
            raise argparse.ArgumentTypeError(
                f"expected a whole number, got {_show(text)}"
            ) from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{what}, got {value}")
        if value > maximum:
            raise argparse.ArgumentTypeError(f"must be at most {maximum:,}, got {_show(text)}")
        return value

    return parse


def int_at_least(minimum: int, what: str, maximum: int = MAX_COUNT) -> Callable[[str], int]:
    """An argparse type: a whole number >= ``minimum`` (and <= ``maximum``), with a message
    naming the rule."""
    return int_between(minimum, maximum, what)


def number_between(
    minimum: float, maximum: float, what: str, *, low_open: bool = False
) -> Callable[[str], float]:
    """An argparse type: a finite number in [minimum, maximum] (``(minimum, maximum]`` with
    ``low_open``); nan and inf are refused."""
    low = "(" if low_open else "["

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {_show(text)}") from None
        above = value > minimum if low_open else value >= minimum
        if not (above and value <= maximum):  # also rejects nan and inf
            raise argparse.ArgumentTypeError(
                f"expected {what} in {low}{minimum:g}, {maximum:g}], got {_show(text)}"
            )
        return value

    return parse


def probability(text: str) -> float:
    """An argparse type: a number in [0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a number in [0, 1], got {_show(text)}"
        ) from None
    if not (0.0 <= value <= 1.0):
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {_show(text)}")
    return value


def fraction(text: str) -> float:
    """An argparse type: a number in [0, 1) (a share of the time, a mixing weight)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a number in [0, 1), got {_show(text)}"
        ) from None
    if not (0.0 <= value < 1.0):
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {_show(text)}")
    return value


def duration(text: str) -> float:
    """An argparse type: a finite number of seconds > 0 (nan and inf are refused)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a number of seconds, got {_show(text)}"
        ) from None
    if not (value > 0 and value <= MAX_SECONDS):  # also rejects nan and inf
        raise argparse.ArgumentTypeError(
            f"must be a finite number of seconds > 0 and at most {MAX_SECONDS:g}, got {_show(text)}"
        )
    return value


def timeout(text: str) -> float | None:
    """An argparse type: seconds per decision; 0 = no limit (``None``)."""
    if text.strip() in ("0", "0.0", "none"):
        return None
    return duration(text)


positive_int = int_at_least(1, "must be at least 1")
"""An argparse type: a whole number in [1, MAX_COUNT] (episodes, workers, epochs...)."""

seed = int_between(0, MAX_SEED, "seeds are non-negative integers")
"""An argparse type: a seed, a whole number in [0, 2**31 - 1]."""

count = int_at_least(0, "must be 0 or more")
"""An argparse type: a whole number in [0, MAX_COUNT], where 0 usually means none."""

env_steps = int_between(1, 10**9, "must be at least 1")
"""An argparse type: environment steps of a training run, [1, 10**9] (more than a count)."""

env_steps0 = int_between(0, 10**9, "must be 0 or more")
"""An argparse type: environment steps, [0, 10**9], where 0 means none."""

size_px = int_between(8, 4096, "must be at least 8 pixels")
"""An argparse type: an image side in pixels, [8, 4096]."""

width = int_between(1, 1024, "must be at least 1")
"""An argparse type: a network's channel width, [1, 1024]."""

frames_stacked = int_between(1, 64, "must be at least 1")
"""An argparse type: frames stacked or a frame stride, [1, 64]."""

workers = int_between(1, 1024, "must be at least 1")
"""An argparse type: processes or environments run side by side, [1, 1024]."""

batch_size = int_between(1, 65_536, "must be at least 1")
"""An argparse type: a training batch, [1, 65536]."""

minutes = number_between(0.0, 525_600.0, "a number of minutes")
"""An argparse type: a time budget in minutes, [0, one year]; 0 = none."""

learning_rate = number_between(0.0, 10.0, "a learning rate", low_open=True)
"""An argparse type: a learning rate, (0, 10]."""

log_std = number_between(-20.0, 5.0, "a log standard deviation")
"""An argparse type: the log of a standard deviation, [-20, 5]."""


def comma_list(text: str | None) -> tuple[str, ...]:
    """``"a, b,,a"`` -> ``("a", "b")``: the one parser of every comma-separated option
    (names stripped, empty items dropped, a repeated name kept once, in first-seen order);
    ``None`` or an empty string -> ``()``."""
    return tuple(dict.fromkeys(n.strip() for n in (text or "").split(",") if n.strip()))


def scenario_list(text: str) -> tuple[str, ...]:
    """``"a,b"`` -> ``("a", "b")``, each a known scenario (the error lists the known ones)."""
    names = comma_list(text)
    if not names:
        raise ValueError(
            f"--scenarios names no scenario (got {text!r}); known: {', '.join(SCENARIOS)}"
        )
    return tuple(dict.fromkeys(get_scenario(n).name for n in names))  # errors list the known names


def seed_range(first: int, episodes: int, option: str) -> list[int]:
    """Consecutive seeds from ``first`` (``option``'s value) for ``episodes`` episodes; the last
    one must stay a valid seed too (every command that runs seeds asks here)."""
    last = first + episodes - 1
    if last > MAX_SEED:
        raise ValueError(
            f"{option} {first} with --episodes {episodes} reaches seed {last}; seeds are at "
            f"most {MAX_SEED}"
        )
    return list(range(first, first + episodes))
