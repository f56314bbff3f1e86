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

Only the planning agents are analysed: the others (``straight``, ``idm``, ``e2e``, ...) have
no tracks to compare, and a verdict of theirs would blame a perception they do not have.
Naming one is refused; by default they are skipped, and the analysis says so.

Before any episode is re-driven (minutes of work), two checks, each overridden by ``force``
(``--force``):

* the output policy (:func:`sim.harness.io.check_output_file`): the analysis files may
  replace only an earlier analysis of the **same** agents and episodes (re-running it, e.g.
  after a code fix); a file drive did not write, or an analysis of other agents or of other
  episodes (the evaluation was resumed since), is kept: replacing it would lose work
  silently.  The JSON records the agents and episodes it analysed to compare.
* the checkpoints: every agent's checkpoint files are hashed as ``drive eval`` hashed them
  (:func:`~sim.harness.evaluate.checkpoint_hashes`) and compared with ``config.json``: a
  re-drive with a retrained detector would not reproduce the evaluated collisions, so its
  verdicts would be about other episodes.  Forced, the mismatch is a warning, printed and
  kept in the JSON's ``warnings``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from agents import make_agent, parse_agent
from agents.modular import PlanningAgent
from sim.geometry.bev import BevCamera
from sim.geometry.frames import world_to_ego
from sim.harness.episodes import one_inference_thread
from sim.harness.evaluate import CONFIG, RESULTS, checkpoint_hashes, read_results
from sim.harness.io import check_output_file, write_json_output, write_text_output, written_by
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
"""The agents with perception to judge (tracks in their ``overlay``); the registry's others
drive without one."""
KIND = "drive explain"
"""The author recorded in the analysis files (:func:`sim.harness.io.written_by`)."""
OUTPUTS = ("perception_failures.json", "perception_failures.md")
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
    and what ``observe(agent)`` returns after the decision; and the finished episode.  On one
    torch thread, as the evaluation drove it (:func:`~sim.harness.episodes.one_inference_thread`),
    so the episode re-driven is the one recorded."""
    env = DrivingEnv(
        scenario,
        bev=bev or BevCamera(),
        sensors=tuple(dict.fromkeys((*env_sensors_for(agent), "truth"))),
    )
    ep = Episode(env, tuple(agent.sensors), seed, catch_sim_errors=True)
    agent.reset(seed=int(seed))
    steps: list[dict[str, Any]] = []
    try:
        with one_inference_thread():
            while not ep.done:
                raw = agent.act(ep.view())
                steps.append({"truth": ep.info["truth"], "ego": ep.info["ego"], **observe(agent)})
                ep.apply(raw, 0.0)
    finally:
        env.close()
    return steps, ep


def _tracks_and_lane_change(agent) -> dict[str, Any]:
    objects = None if agent.overlay is None else agent.overlay.objects  # BaseAgent declares it
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
    """Drive ``spec`` on ``scenario``/``seed`` again and judge perception at its collision.
    ``spec`` must be a planning agent (:data:`PLANNING_AGENTS`): the others have no tracks,
    and a verdict would blame a perception they lack."""
    parse_agent(spec)  # an unknown name lists the known ones
    _check_planning([spec])
    sc = get_scenario(scenario, **({"duration_s": duration_s} if duration_s else {}))
    bev = bev or BevCamera()
    task = task_spec(sc, bev)  # what the agent is built from: its rig is the one to check
    agent = make_agent(spec, task, device=device)
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
    rig = task.rig
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


def _is_planning(spec: str) -> bool:
    """Whether agent ``spec`` has perception to judge (:data:`PLANNING_AGENTS`)."""
    return spec.partition(":")[0] in PLANNING_AGENTS


def _check_planning(specs: list[str], where: str = "") -> None:
    """Refuse the agents without perception: a verdict would blame what they do not have."""
    bad = [a for a in specs if not _is_planning(a)]
    if bad:
        raise ValueError(
            f"agent(s) {', '.join(bad)} have no perception to judge; drive explain analyses "
            f"the planning agents: {', '.join(PLANNING_AGENTS)}{where}"
        )


def _check_outputs(
    folder: Path, agents: list[str], episodes: list[tuple[str, str, int]], force: bool
) -> None:
    """The output policy for the analysis files, before any re-drive: each may be written when
    absent, or when it is ``drive explain``'s analysis of the same agents and episodes; with
    ``force`` whatever it holds (see the module docstring)."""
    for name in OUTPUTS:
        path = folder / name
        try:
            check_output_file(path, kind=KIND, force=force, option="analysis file")
        except FileExistsError:  # the policy's refusal, worded for a path the user did not pick
            author = written_by(path)
            whose = f"{author} wrote it, not {KIND}" if author else "drive did not write it"
            raise FileExistsError(
                f"{path} exists and {whose}; move it away, or pass --force to replace it"
            ) from None
    path = folder / OUTPUTS[0]
    if force or written_by(path) != KIND:
        return
    old = json.loads(path.read_text())
    old_agents = list(old.get("agents") or [])
    old_episodes = {tuple(e) for e in old.get("episodes") or []}
    changed = []
    if sorted(old_agents) != sorted(agents):
        was = ", ".join(old_agents) or "none"
        changed.append(f"agents {was} (this run: {', '.join(agents)})")
    if old_episodes != set(episodes):
        new, gone = len(set(episodes) - old_episodes), len(old_episodes - set(episodes))
        changed.append(f"{len(old_episodes)} episodes (this run adds {new}, drops {gone})")
    if changed:
        raise FileExistsError(
            f"{path} holds an analysis of other settings: {'; '.join(changed)}; move it away "
            "to keep it, or pass --force to replace it"
        )


def _short(digest: str | None) -> str:
    return "absent" if digest is None else digest[:12]


def checkpoint_changes(
    folder: str | Path,
    config: dict[str, Any],
    pairs: list[tuple[str, str]],
    bev: BevCamera,
    device: str = "cpu",
) -> list[str]:
    """How the checkpoints each (agent, scenario) of ``pairs`` would load now differ from the
    ones ``drive eval`` hashed into ``folder/config.json`` (one line each, naming the agent,
    the file and both SHA-256 prefixes; empty: unchanged).  Hashed as the evaluation hashed
    them (:func:`~sim.harness.evaluate.checkpoint_hashes`, the last checkpoint per agent)."""
    config_path = Path(folder) / CONFIG
    recorded = config.get("checkpoints") or {}
    duration = {"duration_s": config["duration_s"]} if config.get("duration_s") else {}
    changes: list[str] = []
    for spec, scenario in pairs:
        agent = make_agent(spec, task_spec(get_scenario(scenario, **duration), bev), device=device)
        now: dict[str, Any] = {}
        for path in agent.checkpoints():  # nothing is loaded: the paths only
            now = {"path": str(path)}
            if Path(path).is_dir():
                now["sha256"] = checkpoint_hashes(path)
        old = (recorded.get(spec) or {}).get(scenario) or {}
        if old.get("sha256") == now.get("sha256"):
            continue
        if not old:
            change = f"agent {spec} loads {now['path']}, which {config_path} does not record"
        elif not now:
            change = f"agent {spec} loads no checkpoint now; {config_path} records {old['path']}"
        elif "sha256" not in now:
            change = f"agent {spec}'s checkpoint {now['path']} is missing; {config_path} records it"
        else:
            was, new = old.get("sha256") or {}, now["sha256"]
            # a file changed in place first, then files added or removed
            files = sorted(
                (f for f in {*was, *new} if was.get(f) != new.get(f)),
                key=lambda f: (f not in was or f not in new, f),
            )
            more = f" (and {len(files) - 1} more file(s))" if len(files) > 1 else ""
            change = (
                f"agent {spec}'s checkpoint {now['path']} changed since the evaluation: "
                f"{files[0]} sha256 {_short(was.get(files[0]))} in {config_path}, "
                f"{_short(new.get(files[0]))} now{more}"
            )
        changes.append(change)
    return list(dict.fromkeys(changes))  # one line per change, however many scenarios share it


def explain_folder(
    folder: str | Path,
    agents: list[str] | None = None,
    device: str = "cpu",
    progress: bool = True,
    force: bool = False,
) -> dict[str, Any]:
    """Every collision (and shortfall) of the planning agents in a ``drive eval`` folder,
    explained; writes ``perception_failures.json`` and ``perception_failures.md`` there.

    ``agents``: specs as in ``config.json`` (default: its planning agents; the others are
    skipped and listed under ``skipped``; naming one is refused).  Before any re-drive the
    analysis files are checked against the output policy and the checkpoints against the
    ones the evaluation hashed (see the module docstring); ``force`` replaces any earlier
    analysis and turns a changed checkpoint into a warning (kept under ``warnings``)."""
    folder = Path(folder)
    config = json.loads((folder / CONFIG).read_text())
    records = read_results(folder / RESULTS)
    planning = [a for a in config["agents"] if _is_planning(a)]
    chosen = agents or planning
    unknown = [a for a in chosen if a not in config["agents"]]
    if unknown:
        raise ValueError(
            f"agent(s) {unknown} not in {folder / CONFIG}; it has {', '.join(config['agents'])}"
        )
    _check_planning(chosen, f"; {folder / CONFIG} has {', '.join(planning) or 'none of them'}")
    if not chosen:
        raise ValueError(
            f"{folder / CONFIG} holds no planning agent (it has {', '.join(config['agents'])}); "
            f"drive explain judges the perception of {', '.join(PLANNING_AGENTS)} only"
        )
    skipped = [] if agents else [a for a in config["agents"] if not _is_planning(a)]
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
    episodes = sorted(crashes + short)
    _check_outputs(folder, chosen, episodes, force)
    pairs = sorted({(a, s) for a, s, _ in episodes})
    warnings = checkpoint_changes(folder, config, pairs, bev, device=device)
    if warnings and not force:
        more = f" (and {len(warnings) - 1} more)" if len(warnings) > 1 else ""
        raise ValueError(
            f"{warnings[0]}{more}; a re-drive would not reproduce the evaluated episodes: "
            "restore the checkpoint, or pass --force to explain with it anyway"
        )
    for w in warnings:
        print(f"drive explain: warning: {w}; re-driving anyway (--force)", file=sys.stderr)
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
        "episodes": [list(e) for e in episodes],  # with the agents: what a re-run must match
        "skipped": skipped,
        "warnings": warnings,
        "collisions": rows,
        "shortfalls": shortfalls,
        "summary": summary,
        "mechanisms": mechanisms,
    }
    write_json_output(folder / OUTPUTS[0], result, kind=KIND)
    write_text_output(folder / OUTPUTS[1], format_failures(result), kind=KIND)
    return result


def format_failures(result: dict[str, Any]) -> str:
    """The markdown: verdict counts per agent, then one row per collision."""
    notes = [f"**Warning:** {w}; re-driven anyway (`--force`)." for w in result.get("warnings", ())]
    if result.get("skipped"):
        skipped = ", ".join(f"`{a}`" for a in result["skipped"])
        notes.append(f"Not analysed (no perception to judge): {skipped}.")
    notes = [line for note in notes for line in (note, "")]
    lines = [
        "# What perception got wrong at each collision",
        "",
        (
            f"`drive explain {result['folder']}`: each collision re-driven, the agent's tracks "
            f"compared with ground truth over the last {WINDOW_S:g} s (see "
            "`sim/report/perception_failures.py`)."
        ),
        "",
        *notes,
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
