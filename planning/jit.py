"""numba, when it is installed: the planner's rollout loop compiled (:mod:`planning.kernel`).

``planning`` needs numpy only (DESIGN.md). numba is a dependency of the package, so it is
normally there and the loop runs compiled; without it the same functions run as plain
Python, with the same results (``tests/test_planning_kernel.py``) and about ten times slower.
"""

from __future__ import annotations

try:
    from numba import njit, types
    from numba.extending import overload, register_jitable
except (
    ImportError
):  # pragma: no cover - exercised by tests/test_boundaries.py in a fresh interpreter
    njit = types = overload = None

    def register_jitable(fn):
        """Without numba: the function itself."""
        return fn


COMPILED = njit is not None
"""Whether the rollout loop runs compiled."""


def jit(**options):
    """``numba.njit(**options)`` when numba is there, else the function unchanged."""
    if not COMPILED:
        return lambda fn: fn
    return njit(**options)
