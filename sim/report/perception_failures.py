"""What perception got wrong when a modular agent crashed: ``drive explain DIR``.

For every collision of a planning agent (``modular``, ``modular-bev``, ``modular-gt``,
``expert``) in a ``drive eval`` folder, the episode is driven again (episodes are
deterministic per seed, and the ``truth`` sensor the re-drive adds changes nothing in the
world) while the agent's tracks are compared with ground truth at every decision.  The
object hit is the one nearest the ego when the episode ended; the verdict is about it:

``missed``       never tracked in the :data:`WINDOW_S` before the collision
``late``         first tracked less than :data:`LATE_S` before the collision although it had
                 been within :data:`RELEVANT_M` for longer
``mislocated``   tracked in time, but the track's position error over the last
                 :data:`LATE_S` had a median above :data:`MISLOCATED_M` (or its speed error
                 above :data:`SPEED_ERROR_MPS`)
``perceived``    tracked in time and where it was: the planner or the prediction failed

Each verdict also says where the object was seen from at the last decision (its bearing,
and which rig camera's field of view held it, or none: the rig's blind spot) and the track
errors, so the failure gallery of the report can be read with the perception side in view.

Every failure also gets a **mechanism** (:func:`collision_mechanism`,
:func:`shortfall_mechanism`): what happened on the road, whatever perception saw, so the
planner's failures can be counted by cause.  Collisions:

``rear-ended``        the object hit came from behind while the car kept its lane
``lane change``       the car was changing lanes in the last :data:`LANE_CHANGE_S`
``lead braking``      the object ahead in the lane slowed by more than :data:`BRAKING_MPS`
                      over the window
``stopped object``    the object ahead stood still
``cut-in``            the object ahead entered the lane from beside it within the window
``other``             none of these

An episode that ended without a collision but short of its route (a timeout) is
``stood still`` (the car stood for more than :data:`STOOD_S`), ``behind slow traffic``
(a lead within :data:`FOLLOW_M` for most of the episode) or ``slow on a free road``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from agents import make_agent
from agents.modular import PlanningAgent
from sim.geometry.bev import BevCamera
from sim.geometry.frames import world_to_ego
from sim.harness.evaluate import CONFIG, RESULTS, read_results
from sim.harness.io import atomic_write_json, atomic_write_text
from sim.harness.loop import Episode, env_sensors_for
from sim.harness.run import task_spec
from sim.world.env import DrivingEnv
from sim.world.scenarios import get_scenario

WINDOW_S = 3.0  # [s] how far back before a collision perception is examined
LATE_S = 1.0  # [s] a hazard first tracked later than this before the collision was seen late
RELEVANT_M = 40.0  # [m] within this range an object should be tracked
MATCH_M = 3.0  # [m] a track within this of the object is the object's track
MISLOCATED_M = 1.5  # [m] median track position error above this: mislocated
SPEED_ERROR_MPS = 3.0  # [m/s] median track speed error above this: mislocated
PLANNING_AGENTS = ("expert", "modular", "modular-bev", "modular-gt")
# mechanisms
LANE_BAND_M = (
    3.0  # [m] laterally within this of the car: in its lane (highway-env's half lane + 1 m)
)
LANE_CHANGE_S = 1.0  # [s] a lane change chosen this recently caused the collision
BRAKING_MPS = 2.0  # [m/s] a lead that slowed by more than this over the window was braking
STOPPED_MPS = 0.5  # [m/s] a slower object stood still
STOOD_S = 3.0  # [s] standing this long is a timeout's cause
STANDING_MPS = 0.5  # [m/s] slower than this the car stands
FOLLOW_M = 40.0  # [m] a lead within this holds the car back
FOLLOW_SHARE = 0.5  # of the episode's steps behind a lead: held back by traffic


def _relative(step: dict[str, Any], k: int) -> np.ndarray:
    """Object ``k`` of a step's truth in the ego frame [m]."""
    return world_to_ego(
        step["truth"]["position_m"][k][None], step["ego"]["position_m"], step["ego"]["heading_rad"]
    )[0]


def collision_mechanism(window: list[dict[str, Any]], hit: int, dt_s: float) -> str:
    """What happened on the road before a collision with object ``hit`` (see the module
    docstring), from the re-drive's steps (``truth``, ``ego`` and the planning agent's
    ``lane_change`` at each decision)."""
    last = window[-1]
    k_last = int(np.flatnonzero(last["truth"]["id"] == hit)[0])
    rel = _relative(last, k_last)
    recent = window[-max(1, round(LANE_CHANGE_S / dt_s)) :]
    changing = any((s.get("lane_change") or 0) != 0 for s in recent)
    if rel[0] < 0 and not changing:
        return "rear-ended"
    if changing:
        return "lane change"
    speeds = [
        float(s["truth"]["speed_mps"][np.flatnonzero(s["truth"]["id"] == hit)[0]]) for s in window
    ]
    if speeds[-1] < STOPPED_MPS and speeds[0] < STOPPED_MPS:
        return "stopped object"
    if max(speeds) - speeds[-1] > BRAKING_MPS:
        return "lead braking"
    first = window[0]
    k_first = np.flatnonzero(first["truth"]["id"] == hit)
    if len(k_first) and abs(_relative(first, int(k_first[0]))[1]) > LANE_BAND_M:
        return "cut-in"
    return "other"


def shortfall_mechanism(steps: list[dict[str, Any]], dt_s: float) -> str:
    """Why an episode without a collision ended short of its route (see the module docstring)."""
    speeds = np.array([float(s["ego"]["speed_mps"]) for s in steps])
    standing = speeds < STANDING_MPS
    longest, run = 0, 0
    for st in standing:
        run = run + 1 if st else 0
        longest = max(longest, run)
    if longest * dt_s > STOOD_S:
        return "stood still"
    behind = []
    for s in steps:
        n = len(s["truth"]["id"])
        if not n:
            behind.append(False)
            continue
        rel = world_to_ego(
            s["truth"]["position_m"], s["ego"]["position_m"], s["ego"]["heading_rad"]
        )
        behind.append(
            bool(
                ((rel[:, 0] > 0) & (rel[:, 0] < FOLLOW_M) & (np.abs(rel[:, 1]) < LANE_BAND_M)).any()
            )
        )
    return "behind slow traffic" if np.mean(behind) >= FOLLOW_SHARE else "slow on a free road"


def _in_view(camera, rel_xy: np.ndarray) -> bool:
    """Whether a point at ego-frame ``rel_xy`` (1 m up) projects into ``camera``'s image."""
    uv, _ = camera.project(np.array([rel_xy[0], rel_xy[1], 1.0]))
    return bool(np.isfinite(uv).all() and camera.in_image(uv))


def redrive(
    agent,
    scenario,
    seed: int,
    bev: BevCamera | None = None,
    observe: Callable[[Any], dict[str, Any]] = lambda agent: {},
) -> tuple[list[dict[str, Any]], Episode]:
    """Drive ``agent`` (prepared) on ``scenario`` / ``seed`` again with the ``truth`` sensor
    added (it changes nothing in the world): one dict per decision with ``truth``, ``ego``
    and what ``observe(agent)`` returns after the decision; and the finished episode."""
    env = DrivingEnv(
        scenario,
        bev=bev or BevCamera(),
        sensors=tuple(dict.fromkeys((*env_sensors_for(agent), "truth"))),
    )
    ep = Episode(env, tuple(agent.sensors), seed, catch_sim_errors=True)
    agent.reset(seed=int(seed))
    steps: list[dict[str, Any]] = []
    try:
        while not ep.done:
            raw = agent.act(ep.view())
            steps.append({"truth": ep.info["truth"], "ego": ep.info["ego"], **observe(agent)})
            ep.apply(raw, 0.0)
    finally:
        env.close()
    return steps, ep


def _tracks_and_lane_change(agent) -> dict[str, Any]:
    objects = agent.overlay.objects if getattr(agent, "overlay", None) is not None else None
    plan = agent.last_plan if isinstance(agent, PlanningAgent) else None
    return {
        "tracks": None
        if objects is None
        else (objects.position_m.copy(), objects.speed_mps.copy()),
        "lane_change": None if plan is None else int(plan.option.lane_change),
    }


def explain_episode(
    spec: str,
    scenario: str,
    seed: int,
    duration_s: float | None = None,
    device: str = "cpu",
    bev: BevCamera | None = None,
) -> dict[str, Any]:
    """Drive ``spec`` on ``scenario``/``seed`` again and judge perception at its collision."""
    sc = get_scenario(scenario, **({"duration_s": duration_s} if duration_s else {}))
    bev = bev or BevCamera()
    agent = make_agent(spec, task_spec(sc, bev), device=device)
    agent.prepare()
    steps, ep = redrive(agent, sc, seed, bev, _tracks_and_lane_change)
    final_ego, final_truth = ep.info.get("ego"), ep.info.get("truth")
    out: dict[str, Any] = {
        "agent": spec,
        "scenario": scenario,
        "seed": int(seed),
        "status": ep.status,
        "steps": len(steps),
    }
    if ep.status != "collision" or final_truth is None or not len(final_truth["id"]):
        out["verdict"] = "no collision"
        completed = bool(
            final_ego is not None and final_ego.get("route_completion", 0.0) >= 1.0 - 1e-9
        )
        out["route_completion"] = (
            None if final_ego is None else round(float(final_ego["route_completion"]), 3)
        )
        out["mechanism"] = (
            None
            if completed or ep.status != "ok" or not steps
            else shortfall_mechanism(steps, sc.dt_s)
        )
        return out
    d = np.linalg.norm(final_truth["position_m"] - final_ego["position_m"], axis=1)
    hit = int(final_truth["id"][int(np.argmin(d))])
    out["object_id"] = hit
    out["object_kind"] = ("vehicle", "obstacle")[int(final_truth["kind"][int(np.argmin(d))])]
    dt = sc.dt_s
    window = steps[-max(1, round(WINDOW_S / dt)) :]
    tracked, within, pos_err, speed_err = [], [], [], []
    for s in window:
        k = int(np.flatnonzero(s["truth"]["id"] == hit)[0])
        p, v = s["truth"]["position_m"][k], float(s["truth"]["speed_mps"][k])
        within.append(bool(np.linalg.norm(p - s["ego"]["position_m"]) <= RELEVANT_M))
        if s["tracks"] is None or not len(s["tracks"][0]):
            tracked.append(False)
            continue
        e = np.linalg.norm(s["tracks"][0] - p, axis=1)
        j = int(np.argmin(e))
        tracked.append(bool(e[j] <= MATCH_M))
        if e[j] <= MATCH_M:
            pos_err.append(float(e[j]))
            speed_err.append(abs(float(s["tracks"][1][j]) - v))
    n_late = round(LATE_S / dt)
    first_tracked = next((i for i, t in enumerate(tracked) if t), None)
    last = window[-1]
    k = int(np.flatnonzero(last["truth"]["id"] == hit)[0])
    rel = world_to_ego(
        last["truth"]["position_m"][k][None], last["ego"]["position_m"], last["ego"]["heading_rad"]
    )[0]
    rig = getattr(getattr(agent, "task", None), "rig", None)
    seen_by = [name for name, cam in rig.items() if _in_view(cam, rel)] if rig is not None else []
    out.update(
        {
            "bearing_deg": round(float(np.degrees(np.arctan2(rel[1], rel[0]))), 1),
            "range_m": round(float(np.hypot(*rel)), 2),
            "in_camera_view": seen_by,
            "tracked_share": round(float(np.mean(tracked)), 3),
            "first_tracked_s_before": None
            if first_tracked is None
            else round((len(window) - first_tracked) * dt, 2),
            "median_position_error_m": round(float(np.median(pos_err[-n_late:])), 2)
            if pos_err
            else None,
            "median_speed_error_mps": round(float(np.median(speed_err[-n_late:])), 2)
            if speed_err
            else None,
        }
    )
    relevant_since = next((i for i, w in enumerate(within) if w), None)
    if first_tracked is None:
        verdict = "missed"
    elif (
        len(window) - first_tracked < n_late
        and relevant_since is not None
        and len(window) - relevant_since >= n_late
    ):
        verdict = "late"
    elif (out["median_position_error_m"] or 0.0) > MISLOCATED_M or (
        out["median_speed_error_mps"] or 0.0
    ) > SPEED_ERROR_MPS:
        verdict = "mislocated"
    else:
        verdict = "perceived"
    out["verdict"] = verdict
    out["mechanism"] = collision_mechanism(window, hit, dt)
    return out


def explain_folder(
    folder: str | Path, agents: list[str] | None = None, device: str = "cpu", progress: bool = True
) -> dict[str, Any]:
    """Every collision of the planning agents in a ``drive eval`` folder, explained; writes
    ``perception_failures.json`` and ``perception_failures.md`` there."""
    folder = Path(folder)
    config = json.loads((folder / CONFIG).read_text())
    records = read_results(folder / RESULTS)
    chosen = agents or [a for a in config["agents"] if a.split(":", 1)[0] in PLANNING_AGENTS]
    unknown = [a for a in chosen if a not in config["agents"]]
    if unknown:
        raise ValueError(
            f"agent(s) {unknown} not in {folder / CONFIG}; it has {', '.join(config['agents'])}"
        )
    bev = BevCamera.from_dict(config["camera"]) if config.get("camera") else BevCamera()
    crashes = sorted(
        (r["agent"], r["scenario"], int(r["seed"]))
        for r in records
        if r["agent"] in chosen and r["status"] == "collision"
    )
    short = sorted(
        (r["agent"], r["scenario"], int(r["seed"]))
        for r in records
        if r["agent"] in chosen and r["status"] == "ok" and not r.get("route_completed", True)
    )
    rows, shortfalls = [], []
    todo = [(c, rows) for c in crashes] + [(c, shortfalls) for c in short]
    for k, ((a, s, seed), into) in enumerate(todo):
        if progress:
            print(f"explain: {k + 1}/{len(todo)} {a} {s} seed {seed}", flush=True)
        into.append(explain_episode(a, s, seed, config.get("duration_s"), device=device, bev=bev))
    summary: dict[str, dict[str, int]] = {}
    for r in rows:
        summary.setdefault(r["agent"], {}).setdefault(r["verdict"], 0)
        summary[r["agent"]][r["verdict"]] += 1
    mechanisms: dict[str, dict[str, int]] = {}
    for r in rows + shortfalls:
        if r.get("mechanism"):
            key = r["mechanism"] if r["status"] == "collision" else f"short: {r['mechanism']}"
            mechanisms.setdefault(r["agent"], {}).setdefault(key, 0)
            mechanisms[r["agent"]][key] += 1
    result = {
        "folder": str(folder),
        "agents": chosen,
        "collisions": rows,
        "shortfalls": shortfalls,
        "summary": summary,
        "mechanisms": mechanisms,
    }
    atomic_write_json(folder / "perception_failures.json", result)
    atomic_write_text(folder / "perception_failures.md", format_failures(result))
    return result


def format_failures(result: dict[str, Any]) -> str:
    """The markdown: verdict counts per agent, then one row per collision."""
    lines = [
        "# What perception got wrong at each collision",
        "",
        (
            f"`drive explain {result['folder']}`: each collision re-driven, the agent's tracks "
            f"compared with ground truth over the last {WINDOW_S:g} s (see "
            "`sim/report/perception_failures.py`)."
        ),
        "",
        "| agent | missed | late | mislocated | perceived (planning failed) | re-drive differed |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for a in result["agents"]:
        c = result["summary"].get(a, {})
        lines.append(
            f"| `{a}` | {c.get('missed', 0)} | {c.get('late', 0)} | {c.get('mislocated', 0)} | "
            f"{c.get('perceived', 0)} | {c.get('no collision', 0)} |"
        )
    lines += [
        "",
        (
            "What happened on the road (collisions by mechanism; `short:` episodes that ended "
            "without a collision but short of the route):"
        ),
        "",
        "| agent | mechanism | episodes |",
        "| --- | --- | ---: |",
    ]
    for a in result["agents"]:
        for m, n in sorted(result.get("mechanisms", {}).get(a, {}).items()):
            lines.append(f"| `{a}` | {m} | {n} |")
    lines += [
        "",
        (
            "| agent | scenario | seed | verdict | mechanism | object | bearing deg | range m | in "
            "view of | tracked share | first tracked s before | pos err m | speed err m/s |"
        ),
        "| --- | --- | ---: | --- | --- | --- | ---: | ---: | --- | ---: | ---: | ---: | ---: |",
    ]
    for r in result["collisions"]:
        if r["verdict"] == "no collision":
            lines.append(
                f"| `{r['agent']}` | {r['scenario']} | {r['seed']} | re-drive ended {r['status']} "
                "| | | | | | | | | |"
            )
            continue
        lines.append(
            f"| `{r['agent']}` | {r['scenario']} | {r['seed']} | **{r['verdict']}** | "
            f"{r['mechanism']} | {r['object_kind']} {r['object_id']} | {r['bearing_deg']} | "
            f"{r['range_m']} | {', '.join(r['in_camera_view']) or 'none'} | {r['tracked_share']} | "
            f"{r['first_tracked_s_before'] if r['first_tracked_s_before'] is not None else '-'} | "
            f"{r['median_position_error_m'] if r['median_position_error_m'] is not None else '-'} "
            f"| {r['median_speed_error_mps'] if r['median_speed_error_mps'] is not None else '-'} |"
        )
    if result.get("shortfalls"):
        lines += [
            "",
            "| agent | scenario | seed | route completion | mechanism |",
            "| --- | --- | ---: | ---: | --- |",
        ]
        for r in result["shortfalls"]:
            lines.append(
                f"| `{r['agent']}` | {r['scenario']} | {r['seed']} | {r.get('route_completion')} | "
                f"{r.get('mechanism') or 're-drive ' + r['status']} |"
            )
    return "\n".join(lines) + "\n"
