"""``drive bench suite``: every agent over the benchmark's axes, on shared seeds.

A benchmark ranks nothing above its worst agent while its reference sits at the ceiling
(DESIGN.md); the suite is the set of scenario variants that spread the agents, each a
*cell* on one axis:

============  ==================================================================================
axis          cells (scenario variants, :func:`sim.world.scenarios.get_scenario`)
============  ==================================================================================
density       ``highway-short:empty``, ``highway-short`` (regular), ``highway-short:dense``
              (NoCrash's empty / regular / dense)
hazards       ``cut-in``, ``hard-brake``, ``stopped-car``, ``merge:dense`` (Bench2Drive-style:
              one event each)
maps          ``track`` (the maps the e2e policy was trained on) vs ``track:unseen`` (generated
              roads; map seeds of the two splits never overlap), and ``curvy-highway`` (curves
              the highway's policies never saw)
visual        ``highway-short`` in day (trained) and ``:dusk``, ``:night``, ``:colours``, ``:worn``
faults        ``highway-short`` clean and ``:KIND=1..3`` for each kind of
              :data:`~sim.world.scenarios.FAULTS` (Bench2Drive-Robust-style)
============  ==================================================================================

An agent runs a cell only where the cell can change what it sees or does: a visual
condition or an image fault leaves an agent that reads no camera exactly where it was, so
its clean episodes stand for it there (the report says so: "unaffected").  That is a
property of the harness (an agent is handed only the sensors it declares;
``tests/test_faults.py`` checks the expert's episodes are bit-identical under image
faults), not an assumption, and it saves half the suite's episodes.

The suite's cells are grouped by the agents that must run them; each group is one ordinary
``drive eval`` folder under ``OUT/`` (resumable, ``--backend ray`` ready), and
``OUT/suite.json`` (written first) says which.  :func:`suite_scores` reads them back as one
table of per-seed driving scores per (cell, agent).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sim.arguments import comma_list
from sim.harness.io import atomic_write_json, ensure_writable_dir
from sim.world.scenarios import (
    FAULT_LEVELS,
    FAULTS,
    HAZARDS,
    HIGHWAY_TRAFFIC,
    VISUAL_CONDITIONS,
    Scenario,
    get_scenario,
)

SUITE_FILE = "suite.json"
DEFAULT_AGENTS = ("expert", "modular", "e2e", "idm")
BASE = "highway-short"
"""The highway every density, visual and fault cell varies (300 m in 15 s: the suite's
episodes are many; see ``drive scenarios``)."""


@dataclass(frozen=True)
class Cell:
    axis: str
    """``density``, ``hazards``, ``maps``, ``visual`` or ``fault:KIND``."""
    level: str
    """The cell's place on its axis: ``dense``, ``cut-in``, ``unseen``, ``night``, ``2``."""
    scenario: str
    """The canonical scenario name the cell runs."""
    reference: str
    """The clean cell it is compared with (itself where it is one)."""


def _cells_full() -> list[Cell]:
    cells = [
        Cell("density", level, get_scenario(f"{BASE}:{level}").name, BASE)
        for level in HIGHWAY_TRAFFIC
    ]
    cells += [
        Cell("hazards", name, get_scenario(name).name, name) for name in (*HAZARDS, "merge:dense")
    ]
    cells += [
        Cell("maps", "track:train", "track", "track"),
        Cell("maps", "track:unseen", get_scenario("track:unseen").name, "track"),
        # nothing is trained on curvy-highway's maps (the highway's policies drive it), so
        # its train/unseen split would measure nothing: one cell, curves never seen
        Cell("maps", "curvy-highway", "curvy-highway", "curvy-highway"),
    ]
    cells += [Cell("visual", v, get_scenario(f"{BASE}:{v}").name, BASE) for v in VISUAL_CONDITIONS]
    for kind in FAULTS:
        cells.append(Cell(f"fault:{kind}", "0", BASE, BASE))
        cells += [
            Cell(f"fault:{kind}", str(n), get_scenario(f"{BASE}:{kind}={n}").name, BASE)
            for n in FAULT_LEVELS
        ]
    return cells


def _cells_quick() -> list[Cell]:
    """A smoke-sized suite: one cell per axis beside its reference."""
    return [
        c
        for c in _cells_full()
        if (c.axis, c.level)
        in {
            ("density", "regular"),
            ("density", "dense"),
            ("hazards", "cut-in"),
            ("maps", "track:train"),
            ("maps", "track:unseen"),
            ("visual", "night"),
            ("fault:noise", "0"),
            ("fault:noise", "3"),
            ("fault:latency", "3"),
        }
    ]


SUITES = {"full": _cells_full, "quick": _cells_quick}
FAMILIES = ("density", "hazards", "maps", "visual", "fault")
"""Axis families; a suite may also be named by a comma-separated list of them
(``density,hazards``) to run part of the full suite (a later ``--suite full --resume`` adds the
rest)."""


def suite_cells(name: str) -> list[Cell]:
    """The cells of suite ``name`` (a :data:`SUITES` name or a list of :data:`FAMILIES`); an
    unknown name lists the known ones."""
    if name in SUITES:
        return SUITES[name]()
    families = list(comma_list(name))
    unknown = [f for f in families if f not in FAMILIES]
    if unknown or not families:
        raise ValueError(
            f"unknown suite {name!r}; known: {', '.join(SUITES)}, or axis families from "
            f"{', '.join(FAMILIES)} (comma-separated)"
        )
    return [c for c in _cells_full() if c.axis.split(":", 1)[0] in families]


def affects(scenario: Scenario, sensors: Sequence[str]) -> bool:
    """Whether running ``scenario`` can differ, for an agent reading ``sensors``, from running
    its clean version: the world itself differs (any non-suite variant does), or a visual
    condition / fault touches a sensor the agent reads."""
    from sim.harness.faults import (
        CAMERA_SENSORS,
        touches,
    )  # the faults' own table of what each hits

    if scenario.visual != "day" and any(s in CAMERA_SENSORS for s in sensors):
        return True
    return any(touches(kind, sensors) for kind, _ in scenario.faults)


def _clean(scenario: Scenario) -> bool:
    return scenario.visual == "day" and not scenario.faults


def parse_suite_agent(spec: str) -> tuple[str, tuple[str, ...] | None]:
    """``"e2e-bev@density+hazards"`` -> ``("e2e-bev", ("density", "hazards"))``: an agent that
    runs only those axis families (None: all).  Unknown families list the known ones."""
    name, sep, fams = spec.partition("@")
    if not sep:
        return name, None
    families = tuple(f.strip() for f in fams.split("+") if f.strip())
    unknown = [f for f in families if f not in FAMILIES]
    if unknown or not families:
        raise ValueError(
            f"agent {spec!r}: unknown axis families {unknown or fams!r}; known: "
            f"{', '.join(FAMILIES)}"
        )
    return name, families


def plan_groups(
    cells: Sequence[Cell],
    agent_sensors: dict[str, list[str]],
    families: dict[str, tuple[str, ...] | None] | None = None,
) -> dict[str, dict[str, list[str]]]:
    """``{folder: {"agents": [...], "scenarios": [...]}}``: one folder per axis family (the
    faults are one family) and set of agents; each scenario goes, once, to the folder of the
    agents it affects (all agents where its world differs: density, hazards, maps), among
    those that run its family (``families``: per agent, None = every family)."""
    families = families or {}
    groups: dict[str, dict[str, list[str]]] = {}
    placed: set[str] = set()
    for c in cells:
        if c.scenario in placed:
            continue  # e.g. the clean base: density's "regular", visual's "day", each fault's 0
        placed.add(c.scenario)
        sc = get_scenario(c.scenario)
        family = c.axis.split(":", 1)[0]
        who = tuple(
            a
            for a, sensors in agent_sensors.items()
            if (families.get(a) is None or family in families[a])
            and (_clean(sc) or affects(sc, sensors))
        )
        if not who:
            continue
        folder = f"{family}__" + re.sub(r"[^A-Za-z0-9_.-]+", "-", "+".join(who))
        groups.setdefault(folder, {"agents": list(who), "scenarios": []})["scenarios"].append(
            c.scenario
        )
    return groups


def agent_sensors(agents: Sequence[str], device: str | None = None) -> dict[str, list[str]]:
    """What each agent reads (built once on the suite's base scenario)."""
    from agents import make_agent
    from sim.geometry.bev import BevCamera
    from sim.harness.run import task_spec

    task = task_spec(get_scenario(BASE), BevCamera())
    return {a: list(make_agent(a, task, device=device).sensors) for a in agents}


def run_suite(
    out: str | Path,
    *,
    suite: str = "full",
    agents: Sequence[str] = DEFAULT_AGENTS,
    seeds: Sequence[int],
    workers: int = 2,
    device: str | None = None,
    resume: bool = False,
    backend: str = "local",
    address: str | None = None,
    progress: bool = True,
    argv: Sequence[str] | None = None,
    duration_s: float | None = None,
) -> Path:
    """Run every cell of ``suite`` for ``agents`` on ``seeds`` into ``out``; returns ``out``."""
    from sim.harness.evaluate import run_eval

    out = Path(out)
    cells = suite_cells(suite)
    parsed: dict[str, tuple[str, ...] | None] = {}
    for spec in dict.fromkeys(agents):
        name, families = parse_suite_agent(spec)
        if name in parsed:  # straight,straight@maps: which one was meant?
            raise ValueError(
                f"agent {name!r} is given twice in --agents ({spec!r} and an earlier spec); "
                "give each agent once, its axis families joined with '+'"
            )
        parsed[name] = families
    if not parsed:
        raise ValueError("--agents names no agent")
    agents = list(parsed)
    if address is not None and backend != "ray":
        raise ValueError(f"--address {address} needs --backend ray")
    if backend == "ray":  # refused before anything is written (suite.json would bar a rerun)
        from sim.harness.ray_backend import connect_ray

        connect_ray(address)
    sensors = agent_sensors(agents, device)
    groups = plan_groups(cells, sensors, parsed)
    plan = {
        "suite": suite,
        "agents": agents,
        "families": {a: f and list(f) for a, f in parsed.items()},
        "sensors": sensors,
        "seeds": [int(s) for s in seeds],
        "duration_s": duration_s,
        "cells": [asdict(c) for c in cells],
        "groups": groups,
        "command": list(argv) if argv else None,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    path = out / SUITE_FILE
    if path.exists():
        old = read_plan(out)
        if not resume:
            raise FileExistsError(
                f"{out} already holds a suite; pass --resume to continue it, or choose "
                "a new --out folder"
            )
        for key in ("agents", "families", "seeds", "duration_s"):
            if old.get(key) != plan[key]:
                raise ValueError(
                    f"--resume: this run's {key} differ from {path}; resume with the same "
                    "agents, seeds and duration, or choose a new --out folder"
                )
        # a resume may add cells (e.g. --suite density,hazards, then --suite full): the union
        have = [Cell(**c) for c in old["cells"]]
        cells = have + [c for c in cells if c not in have]
        groups = plan_groups(cells, sensors, parsed)
        plan.update(
            cells=[asdict(c) for c in cells],
            groups=groups,
            suite=old["suite"] if old["suite"] == suite else f"{old['suite']}+{suite}",
        )
    else:
        ensure_writable_dir(out)
    atomic_write_json(path, plan)
    n = sum(len(g["agents"]) * len(g["scenarios"]) for g in groups.values()) * len(seeds)
    if progress:
        print(
            f"suite {suite!r}: {len(cells)} cells, {len(agents)} agents, {len(seeds)} seeds -> {n} "
            f"episodes in {len(groups)} evaluation folders under {out}",
            flush=True,
        )
    for folder, group in groups.items():
        kwargs: dict[str, Any] = (
            {"backend": backend, "address": address} if backend != "local" else {}
        )
        run_eval(
            out / folder,
            group["agents"],
            group["scenarios"],
            seeds,
            workers=workers,
            device=device,
            resume=(out / folder).exists(),
            progress=progress,
            argv=argv,
            duration_s=duration_s,
            **kwargs,
        )
    return out


PLAN_KEYS = {
    "suite": str,
    "agents": list,
    "seeds": list,
    "cells": list,
    "groups": dict,
    "sensors": dict,
}
"""The keys a suite's plan (``suite.json``) must hold, with their JSON types."""


def read_plan(out: str | Path) -> dict[str, Any]:
    """The plan in ``out/suite.json``; a missing, damaged or foreign file is refused with its
    path and the reason."""
    path = Path(out) / SUITE_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no suite here (run drive bench suite --out {out})")
    try:
        plan = json.loads(path.read_bytes())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: not a suite plan: not valid JSON ({e})") from None
    # a damaged file is the user's input, refused (ValueError: exit 2), not a TypeError
    if not isinstance(plan, dict):
        raise ValueError(  # noqa: TRY004
            f"{path}: not a suite plan: a JSON {type(plan).__name__}, not an object"
        )
    for key, kind in PLAN_KEYS.items():
        if not isinstance(plan.get(key), kind):
            raise ValueError(  # noqa: TRY004
                f"{path}: not a suite plan: {key!r} is missing or not a JSON {kind.__name__}"
            )
    try:
        for c in plan["cells"]:
            Cell(**c)
        for g in plan["groups"].values():
            if not (isinstance(g["agents"], list) and isinstance(g["scenarios"], list)):
                raise TypeError("a group's agents and scenarios are lists")
    except (TypeError, KeyError, AttributeError) as e:
        raise ValueError(f"{path}: not a suite plan: a damaged cell or group ({e})") from None
    return plan


def suite_scores(out: str | Path) -> dict[str, Any]:
    """The suite's results: ``{"plan": suite.json, "records": {(scenario, agent): [record]}}``
    with, for every (cell, agent) the agent did not need to run, the clean reference's
    records under the cell's scenario, marked ``"unaffected": True``."""
    from sim.harness.evaluate import RESULTS, read_results

    out = Path(out)
    plan = read_plan(out)
    records: dict[tuple[str, str], list[dict]] = {}
    for folder in plan["groups"]:
        path = out / folder / RESULTS
        if path.exists():
            for r in read_results(path):
                records.setdefault((r["scenario"], r["agent"]), []).append(r)
    ran = {
        (s, a)
        for folder in plan["groups"].values()
        for s in folder["scenarios"]
        for a in folder["agents"]
    }
    families = plan.get("families") or {}
    for c in plan["cells"]:
        for a in plan["agents"]:
            if families.get(a) is not None and c["axis"].split(":", 1)[0] not in families[a]:
                continue  # this agent does not run this axis at all
            if (c["scenario"], a) not in ran and (c["reference"], a) in records:
                records[(c["scenario"], a)] = [
                    {**r, "scenario": c["scenario"], "unaffected": True}
                    for r in records[(c["reference"], a)]
                ]
    for rs in records.values():
        rs.sort(key=lambda r: r["seed"])
    return {"plan": plan, "records": records}
