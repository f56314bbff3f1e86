"""Checks a pipeline makes before any work: the scenario faults it cannot apply.

A scenario's sensor and actuation faults (``highway:noise=2``,
:data:`~sim.world.scenarios.FAULTS`) are applied by the control loop's ``Episode``
(:mod:`sim.harness.faults`), so that every loop (serial, lock-step, Ray) applies them the
same way.  The pipelines that step the world themselves - ``drive perception data``'s
autopilot episodes, ``drive train ppo``'s RL environments - run no ``Episode``: a faulted
scenario there gave exactly the clean scenario's output under a name that said otherwise.
They refuse it here, in one wording, before anything is written; faults are for
evaluation (``drive run``, ``drive eval``, ``drive suite``).
"""

from __future__ import annotations

from sim.world.scenarios import Scenario


def without_faults(scenario: Scenario) -> str:
    """``scenario``'s name with its fault tokens dropped (``highway:dense:noise=2`` ->
    ``highway:dense``): the clean scenario a refusal suggests."""
    return ":".join(t for t in scenario.name.split(":") if "=" not in t)


def refuse_faults(scenario: Scenario, what: str) -> None:
    """Raise ``ValueError`` if ``scenario`` names faults; ``what`` says which command cannot
    apply them and why (``"drive train ppo cannot apply ... (its environments ...)"``)."""
    if scenario.faults:
        faults = ", ".join(f"{kind}={level}" for kind, level in scenario.faults)
        raise ValueError(
            f"{what}; {scenario.name!r} has {faults}: use {without_faults(scenario)!r} "
            "(faults are for evaluation: drive run, drive eval and drive suite apply them)"
        )
