"""How fast perception gets a hazard right: ``drive eval tracking``.

The modular stack drives with the expert's planner, so where it loses to the expert on a
hazard the difference is what its tracks say about the hazard, and when.  For every
episode of a hazard scenario the agent drives again (episodes are deterministic per seed;
the ``truth`` sensor the re-drive adds changes nothing in the world) while its tracks are
compared with ground truth at every decision:

===============  =========================================  ========================================
hazard           onset (from ground truth)                  right when a track within MATCH_M has
===============  =========================================  ========================================
``hard-brake``   the lead ahead in the lane has slowed by   its speed within SPEED_OK_MPS and a
                 ONSET_MPS                                  deceleration of at least
                                                            DECEL_SEEN_MPS2 (as the planner gets it)
``stopped-car``  nothing stands between the car and the     a speed under STOPPED_MPS
                 stalled car
``cut-in``       the car cutting in is within LANE_BAND_M   its lateral offset within LANE_BAND_M
                 of the ego's line
===============  =========================================  ========================================

The **latency** is the time from onset to right (None: never right before the episode
ended); the **errors** are the tracks' median speed and position errors over the
:data:`ERROR_WINDOW_S` after onset.  The hazard object is found from ground truth alone:
the nearest car ahead in the ego's lane at the start (hard-brake), the car standing still
ahead in the lane (stopped-car), the first car that enters the lane band from outside it
(cut-in).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from agents import make_agent
from agents.modular import PlanningAgent
from sim.geometry.bev import BevCamera
from sim.geometry.frames import world_to_ego
from sim.harness.run import task_spec
from sim.report.perception_failures import redrive
from sim.world.scenarios import HAZARDS, get_scenario

MATCH_M = 3.0  # [m] a track within this of the hazard object is its track
LANE_BAND_M = (
    3.0  # [m] laterally within this of the ego: in its lane (highway-env: half a lane + 1 m)
)
AHEAD_M = (
    250.0  # [m] the hazard is looked for this far ahead (the stalled car stands 150-220 m ahead)
)
ONSET_MPS = 0.5  # [m/s] a lead this much slower than at the start has begun braking
SPEED_OK_MPS = 2.0  # [m/s] a track's speed this close to the truth is right
DECEL_SEEN_MPS2 = 2.0  # [m/s^2] a braking lead is seen braking once its track decelerates this hard
STOPPED_MPS = 2.0  # [m/s] a track slower than this says "standing"
ERROR_WINDOW_S = 2.0  # [s] errors are medians over this long after onset


def _ego_frame(step: dict[str, Any]) -> np.ndarray:
    truth, ego = step["truth"], step["ego"]
    if not len(truth["id"]):
        return np.zeros((0, 2))
    return world_to_ego(truth["position_m"], ego["position_m"], ego["heading_rad"])


def hazard_object(scenario: str, steps: list[dict[str, Any]]) -> int | None:
    """The id of the hazard object of ``scenario`` (see the module docstring), or None."""
    base = scenario.split(":", 1)[0]
    first = steps[0]
    rel = _ego_frame(first)
    ahead = (
        (rel[:, 0] > 0) & (rel[:, 0] < AHEAD_M) & (np.abs(rel[:, 1]) < LANE_BAND_M)
        if len(rel)
        else np.zeros(0, bool)
    )
    if base == "hard-brake":
        if not ahead.any():
            return None
        k = np.flatnonzero(ahead)[np.argmin(rel[ahead, 0])]
        return int(first["truth"]["id"][k])
    if base == "stopped-car":
        still = ahead & (first["truth"]["speed_mps"] < 0.1)
        return int(first["truth"]["id"][np.flatnonzero(still)[0]]) if still.any() else None
    if base == "cut-in":
        outside = {int(i) for i, r in zip(first["truth"]["id"], rel) if abs(r[1]) >= LANE_BAND_M}
        for s in steps[1:]:
            r = _ego_frame(s)
            for i, p in zip(s["truth"]["id"], r):
                if int(i) in outside and 0 < p[0] < AHEAD_M and abs(p[1]) < LANE_BAND_M:
                    return int(i)
        return None
    raise ValueError(f"no hazard in scenario {scenario!r}; known: {', '.join(HAZARDS)}")


def _onset(scenario: str, steps: list[dict[str, Any]], hazard: int) -> int | None:
    base = scenario.split(":", 1)[0]
    v0 = None
    for n, s in enumerate(steps):
        ids = s["truth"]["id"]
        k = np.flatnonzero(ids == hazard)
        if not len(k):
            continue
        k = int(k[0])
        rel = _ego_frame(s)
        if base == "hard-brake":
            v = float(s["truth"]["speed_mps"][k])
            v0 = v if v0 is None else v0
            if v < v0 - ONSET_MPS:
                return n
        elif base == "stopped-car":
            between = (rel[:, 0] > 0) & (rel[:, 0] < rel[k, 0]) & (np.abs(rel[:, 1]) < LANE_BAND_M)
            if not between.any():
                return n
        elif 0 < rel[k, 0] < AHEAD_M and abs(rel[k, 1]) < LANE_BAND_M:  # cut-in
            return n
    return None


def _right(
    scenario: str, step: dict[str, Any], hazard: int
) -> tuple[bool, float | None, float | None]:
    """Whether the step's tracks have the hazard right, and the matched track's speed and
    position errors (None: no track within MATCH_M)."""
    truth = step["truth"]
    k = int(np.flatnonzero(truth["id"] == hazard)[0])
    tracks = step["tracks"]
    if tracks is None or not len(tracks["position_m"]):
        return False, None, None
    e = np.linalg.norm(tracks["position_m"] - truth["position_m"][k], axis=1)
    j = int(np.argmin(e))
    if e[j] > MATCH_M:
        return False, None, None
    v_true, v_track = float(truth["speed_mps"][k]), float(tracks["speed_mps"][j])
    speed_err = abs(v_track - v_true)
    base = scenario.split(":", 1)[0]
    if base == "hard-brake":
        ok = speed_err < SPEED_OK_MPS and float(tracks["acceleration_mps2"][j]) <= -DECEL_SEEN_MPS2
    elif base == "stopped-car":
        ok = v_track < STOPPED_MPS
    else:
        rel = world_to_ego(
            tracks["position_m"][j][None], step["ego"]["position_m"], step["ego"]["heading_rad"]
        )[0]
        ok = abs(rel[1]) < LANE_BAND_M
    return bool(ok), speed_err, float(e[j])


def track_hazard(
    spec: str, scenario: str, seed: int, device: str = "cpu", agent=None
) -> dict[str, Any]:
    """Drive ``spec`` on hazard ``scenario`` / ``seed`` and time its perception of the hazard
    (``agent``: an already built planning agent to drive instead, labelled ``spec``)."""
    sc = get_scenario(scenario)
    agent = agent or make_agent(spec, task_spec(sc, BevCamera()), device=device)
    if not isinstance(agent, PlanningAgent):
        # ValueError, not TypeError: a wrong --agents spec, which the CLI reports as a usage error
        raise ValueError(f"{spec!r} is not a planning agent: it has no tracks to time")  # noqa: TRY004
    agent.prepare()
    steps, ep = redrive(
        agent,
        sc,
        seed,
        observe=lambda a: {
            "tracks": {
                "position_m": a.overlay.objects.position_m.copy(),
                "speed_mps": a.overlay.objects.speed_mps.copy(),
                "acceleration_mps2": a.overlay.objects.acceleration_mps2.copy(),
            }
        },
    )
    out: dict[str, Any] = {
        "agent": spec,
        "scenario": scenario,
        "seed": int(seed),
        "status": ep.status,
    }
    hazard = hazard_object(scenario, steps) if steps else None
    onset = None if hazard is None else _onset(scenario, steps, hazard)
    out.update(
        {"hazard_id": hazard, "onset_s": None if onset is None else round(onset * sc.dt_s, 3)}
    )
    if onset is None:
        out.update(
            {"latency_s": None, "median_speed_error_mps": None, "median_position_error_m": None}
        )
        return out
    right_at = None
    speed_err, pos_err = [], []
    window = round(ERROR_WINDOW_S / sc.dt_s)
    for n in range(onset, len(steps)):
        if not (steps[n]["truth"]["id"] == hazard).any():
            continue
        ok, se, pe = _right(scenario, steps[n], hazard)
        if ok and right_at is None:
            right_at = n
        if n < onset + window and se is not None:
            speed_err.append(se)
            pos_err.append(pe)
    out.update(
        {
            "latency_s": None if right_at is None else round((right_at - onset) * sc.dt_s, 3),
            "median_speed_error_mps": round(float(np.median(speed_err)), 2) if speed_err else None,
            "median_position_error_m": round(float(np.median(pos_err)), 2) if pos_err else None,
        }
    )
    return out


def summarise_tracking(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (agent, scenario): episodes, share right before the end, median and p90
    latency of those, median errors."""
    out = []
    for key in sorted({(r["agent"], r["scenario"]) for r in rows}):
        rs = [r for r in rows if (r["agent"], r["scenario"]) == key and r["onset_s"] is not None]
        lat = [r["latency_s"] for r in rs if r["latency_s"] is not None]
        se = [r["median_speed_error_mps"] for r in rs if r["median_speed_error_mps"] is not None]
        pe = [r["median_position_error_m"] for r in rs if r["median_position_error_m"] is not None]
        out.append(
            {
                "agent": key[0],
                "scenario": key[1],
                "episodes": len(rs),
                "right": len(lat),
                "latency_p50_s": round(float(np.median(lat)), 3) if lat else None,
                "latency_p90_s": round(float(np.percentile(lat, 90)), 3) if lat else None,
                "speed_error_mps": round(float(np.median(se)), 2) if se else None,
                "position_error_m": round(float(np.median(pe)), 2) if pe else None,
                "collisions": sum(
                    r["status"] == "collision" for r in rows if (r["agent"], r["scenario"]) == key
                ),
            }
        )
    return out


def format_tracking(summary: list[dict[str, Any]]) -> str:
    """The summary as a Markdown table."""
    lines = [
        (
            "| agent | hazard | episodes | right in time | latency p50 / p90 s | speed error m/s | "
            "position error m | collisions |"
        ),
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in summary:
        lat = (
            "-"
            if r["latency_p50_s"] is None
            else f"{r['latency_p50_s']:.2f} / {r['latency_p90_s']:.2f}"
        )
        lines.append(
            f"| `{r['agent']}` | {r['scenario']} | {r['episodes']} | {r['right']} | {lat} | "
            f"{r['speed_error_mps'] if r['speed_error_mps'] is not None else '-'} | "
            f"{r['position_error_m'] if r['position_error_m'] is not None else '-'} | "
            f"{r['collisions']} |"
        )
    return "\n".join(lines) + "\n"
