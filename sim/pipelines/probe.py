"""``drive probe AGENT``: does a policy look?  Counterfactual versions of the same moment.

A network can score well while driving from its speed input and its prior (causal
confusion, de Haan et al. 2019; copycat policies, Wen et al. 2020).  The probe asks it
directly.  The privileged ``expert`` drives held-out seeds; every ``every`` decisions the
probed agent is queried on the moment as its sensors show it and on counterfactual versions
of it, each rendered by the same camera rig from an edited copy of the scene:

``empty``     every other vehicle removed (obstacles stay);
``stopped``   a stopped car inserted :data:`STOPPED_AHEAD_M` ahead of the ego, in its lane
              (along its heading), its size a regular car's;
``closer``    the nearest car ahead in the ego's lane moved to half its gap (a lead that
              braked: its distance, the one cue a single moment shows);
``faster``    the speed input raised by :data:`SPEED_SHIFT_MPS`, the frames unchanged.

Each query starts a fresh slot of the agent (``reset_slot``), so a frame-stacking network
sees the moment repeated, as on an episode's first step; the real moment is queried the same
way, and every difference is counterfactual minus real on the same states.  Reported per
agent: the share of states where it brakes harder for the inserted stopped car (its
acceleration output lower by more than :data:`BRAKE_MARGIN`), the mean change of its
acceleration and steering when the traffic vanishes or the lead closes in, and its
sensitivity to the speed input (per m/s).  A policy that looks brakes for the stopped car
nearly always; one that drives from its speed input barely moves for any frame edit.

The teacher answers the same questions: a second ``expert`` reads each counterfactual
scene's ``truth`` (and the shifted speed) from a fresh start.  Its row is the ceiling an
imitation of it could reach, and says where a target misreads it (a teacher that changes
lanes round a stopped car rather than braking for it).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agents import make_agent
from sim.geometry.bev import BevCamera
from sim.geometry.frames import world_to_ego
from sim.harness.episodes import task_spec
from sim.harness.loop import Episode, agent_view, env_sensors_for
from sim.world.env import DrivingEnv
from sim.world.render import KIND_VEHICLE
from sim.world.scenarios import get_scenario

STOPPED_AHEAD_M = (15.0, 30.0)
"""[m] The inserted stopped car's distance ahead, drawn per state (the issue's 15-30 m)."""
CAR_SIZE_M = (5.0, 2.0)
"""[m] length, width of an inserted car (highway-env's regular vehicle)."""
SPEED_SHIFT_MPS = 5.0
"""[m/s] The speed input's shift for the ``faster`` probe."""
BRAKE_MARGIN = 0.05
"""Acceleration output (normalised to [-1, 1], i.e. 0.25 m/s^2 at +-5 m/s^2) by which the
answer to the stopped car must fall below the real moment's to count as braking harder."""
LANE_HALF_WIDTH_M = 2.0
"""[m] A car this close to the ego's heading line counts as in its lane (the ``closer`` probe)."""
VARIANTS = ("real", "empty", "stopped", "closer", "faster")
DRIVER = "expert"
"""Who drives the probed states: the privileged expert, the teacher whose states a
behaviour-cloned network learned from."""


def counterfactual_scenes(
    arrays: dict[str, np.ndarray], ego_xy: np.ndarray, heading: float, stopped_m: float
) -> dict[str, dict[str, np.ndarray] | None]:
    """The edited scenes of one moment (object arrays as ``DrivingEnv.object_arrays`` gives
    them); ``closer`` is None when no car is ahead in the ego's lane."""
    vehicle = arrays["kind"] == KIND_VEHICLE
    empty = {k: v[~vehicle] for k, v in arrays.items()}
    c, s = np.cos(heading), np.sin(heading)
    at = np.asarray(ego_xy, dtype=np.float64) + stopped_m * np.array([c, s])
    length, width = CAR_SIZE_M
    stopped = {
        "position_m": np.vstack([arrays["position_m"], at[None]]),
        "heading_rad": np.append(arrays["heading_rad"], heading),
        "speed_mps": np.append(arrays["speed_mps"], 0.0),
        "length_m": np.append(arrays["length_m"], length),
        "width_m": np.append(arrays["width_m"], width),
        "kind": np.append(arrays["kind"], np.int8(KIND_VEHICLE)).astype(arrays["kind"].dtype),
    }
    rel = world_to_ego(arrays["position_m"], ego_xy, heading)
    lane = vehicle & (rel[:, 0] > 0) & (np.abs(rel[:, 1]) < LANE_HALF_WIDTH_M)
    closer = None
    if lane.any():
        k = int(np.flatnonzero(lane)[np.argmin(rel[lane, 0])])
        closer = {key: v.copy() for key, v in arrays.items()}
        gap = rel[k, 0]
        closer["position_m"][k] -= 0.5 * gap * np.array([c, s])
    return {"empty": empty, "stopped": stopped, "closer": closer}


def probe_agent(
    spec: str,
    scenario: str = "highway",
    seeds: Sequence[int] = range(3000, 3010),
    *,
    every: int = 15,
    duration_s: float | None = None,
    device: str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Probe agent ``spec`` on the states the expert reaches on ``seeds`` of ``scenario``, one
    every ``every`` decisions; returns the per-state answers and their summary."""
    sc = get_scenario(scenario, **({"duration_s": duration_s} if duration_s else {}))
    camera = BevCamera()
    task = task_spec(sc, camera)
    agent = make_agent(spec, task, device=device)
    agent.prepare()
    if not agent.lockstep:
        raise ValueError(
            f"drive probe queries an agent on several versions of one moment (one slot each); "
            f"{spec!r} keeps per-episode state without slots"
        )
    cameras = [s for s in agent.sensors if s in task.rig.names]
    if not cameras and "bev" not in agent.sensors:
        raise ValueError(
            f"agent {spec!r} reads no camera ({', '.join(agent.sensors)}): nothing to probe"
        )
    if "speed" not in agent.sensors:
        raise ValueError(f"agent {spec!r} reads no speed input; the probe shifts it")
    driver = make_agent(DRIVER, task)
    driver.prepare()
    teacher = make_agent(DRIVER, task)  # answers the same counterfactuals from their truth
    teacher.prepare()
    sensors = tuple(dict.fromkeys((*env_sensors_for(driver), *env_sensors_for(agent))))
    rows: list[dict[str, Any]] = []
    for seed in seeds:
        env = DrivingEnv(sc, bev=camera, sensors=sensors)
        ep = Episode(env, tuple(driver.sensors), int(seed), catch_sim_errors=True)
        driver.reset(seed=int(seed))
        rng = np.random.default_rng([int(seed), 0x9B0BE])
        step = 0
        try:
            while not ep.done:
                if step and step % every == 0:
                    rows.append(
                        _probe_moment(agent, teacher, env, ep, cameras, rng, int(seed), step)
                    )
                ep.apply(driver.act(ep.view()), 0.0)
                step += 1
        finally:
            env.close()
        if progress:
            print(f"probe {spec} on {sc.name} seed {seed}: {len(rows)} states so far", flush=True)
    return {
        "agent": spec,
        "driver": DRIVER,
        "scenario": sc.name,
        "seeds": [int(s) for s in seeds],
        "every": int(every),
        "action_names": list(sc.action_names),
        "states": rows,
        "summary": summarise_probe(rows, list(sc.action_names)),
        "teacher": DRIVER,
        "teacher_summary": summarise_probe(
            [{**r, "actions": r["teacher_actions"]} for r in rows], list(sc.action_names)
        ),
    }


def _probe_moment(agent, teacher, env, ep, cameras, rng, seed: int, step: int) -> dict[str, Any]:
    """The agent's answers to the real moment and to each counterfactual of it, and the
    teacher's (the privileged expert reading each scene's ``truth``): what imitation could
    at best learn to answer."""
    base = agent_view(tuple(agent.sensors), ep.obs, ep.info, ep.static)
    arrays = env.object_arrays()
    ego = ep.info["ego"]
    ego_xy = np.asarray(ego["position_m"], dtype=np.float64)
    heading = float(ego["heading_rad"])
    stopped_m = float(rng.uniform(*STOPPED_AHEAD_M))
    scenes = counterfactual_scenes(arrays, ego_xy, heading, stopped_m)

    def rendered(scene: dict[str, np.ndarray]) -> dict[str, Any]:
        view = dict(base)
        for name in cameras:
            view[name] = env.render_camera(env.rig[name], scene).image
        if "bev" in view:
            view["bev"] = env.render_bev(scene)
        return view

    views = {"real": base, "faster": {**base, "speed": base["speed"] + SPEED_SHIFT_MPS}}
    views.update({k: rendered(s) for k, s in scenes.items() if s is not None})
    names = list(views)
    for slot in range(len(names)):
        agent.reset_slot(slot, seed)
    actions = np.asarray(agent.act_batch([views[n] for n in names], slots=range(len(names))))
    seen = agent_view(tuple(teacher.sensors), ep.obs, ep.info, ep.static)
    taught = {}
    for n in names:
        view = dict(seen)
        if n == "faster":
            view["speed"] = seen["speed"] + SPEED_SHIFT_MPS
        elif n != "real":
            view["truth"] = env.truth_of(scenes[n])
        teacher.reset(seed=seed)  # a fresh decision, as the probed agent's fresh slot
        taught[n] = [float(x) for x in np.asarray(teacher.act(view)).reshape(-1)]
    return {
        "seed": seed,
        "step": step,
        "speed_mps": float(np.asarray(base["speed"]).reshape(-1)[0]),
        "stopped_m": stopped_m,
        "actions": {n: [float(x) for x in actions[i]] for i, n in enumerate(names)},
        "teacher_actions": taught,
    }


def summarise_probe(rows: list[dict[str, Any]], action_names: list[str]) -> dict[str, Any]:
    """Shares and mean changes over the probed states (counterfactual minus real)."""
    out: dict[str, Any] = {"states": len(rows)}
    if not rows:
        return out
    idx = {n: i for i, n in enumerate(action_names)}

    def delta(variant: str, name: str) -> np.ndarray:
        return np.array(
            [
                r["actions"][variant][idx[name]] - r["actions"]["real"][idx[name]]
                for r in rows
                if variant in r["actions"]
            ]
        )

    for name in action_names:
        for variant in ("empty", "stopped", "closer"):
            d = delta(variant, name)
            out[f"{variant}_{name}_mean_abs_change"] = float(np.mean(np.abs(d))) if len(d) else None
        out[f"faster_{name}_per_mps"] = float(np.mean(delta("faster", name))) / SPEED_SHIFT_MPS
    if "acceleration" in idx:
        d = delta("stopped", "acceleration")
        out["brakes_for_stopped_car"] = float(np.mean(d < -BRAKE_MARGIN))
        out["stopped_acceleration_mean_change"] = float(np.mean(d))
        c = delta("closer", "acceleration")
        out["closer_states"] = len(c)
        out["brakes_for_closer_lead"] = float(np.mean(c < -BRAKE_MARGIN)) if len(c) else None
    return out


def format_probe(result: dict[str, Any]) -> str:
    s = result["summary"]
    lines = [
        (
            f"probe of {result['agent']} on {result['scenario']}: {s['states']} states the "
            f"{result['driver']} reached on seeds {result['seeds'][0]}-{result['seeds'][-1]} "
            f"(one every {result['every']} decisions); counterfactual minus real, same states"
        )
    ]
    if not s["states"]:
        return lines[0] + "\n(no state probed)"
    if "brakes_for_stopped_car" in s:
        lines.append(
            f"stopped car {STOPPED_AHEAD_M[0]:g}-{STOPPED_AHEAD_M[1]:g} m ahead: brakes harder in "
            f"{100 * s['brakes_for_stopped_car']:.0f}% of states (acceleration "
            f"{s['stopped_acceleration_mean_change']:+.3f} on average)"
        )
        if s["closer_states"]:
            lines.append(
                f"lead at half its gap ({s['closer_states']} states with a lead): brakes harder "
                f"in {100 * s['brakes_for_closer_lead']:.0f}%"
            )
    for name in result["action_names"]:
        lines.append(
            f"{name}: mean |change| traffic removed {s[f'empty_{name}_mean_abs_change']:.3f}, "
            f"stopped car {s[f'stopped_{name}_mean_abs_change']:.3f}; speed input "
            f"{s[f'faster_{name}_per_mps']:+.4f} per m/s"
        )
    t = result.get("teacher_summary")
    if t and "brakes_for_stopped_car" in t:
        closer = t.get("brakes_for_closer_lead")
        lines.append(
            f"the teacher ({result['teacher']}, reading each scene's truth) on the same states: "
            f"brakes harder for the stopped car in {100 * t['brakes_for_stopped_car']:.0f}% "
            f"(acceleration {t['stopped_acceleration_mean_change']:+.3f} on average), for the "
            f"closer lead in {'-' if closer is None else f'{100 * closer:.0f}%'}"
        )
    return "\n".join(lines)


def write_probe(path: str | Path, result: dict[str, Any]) -> None:
    from sim.harness.io import write_json_output

    write_json_output(path, result, kind="drive probe")
