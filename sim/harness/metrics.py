"""Per-episode driving metrics (DESIGN.md), computed from a recorded trace.

Pure functions of arrays: no simulator objects, so they are tested on synthetic traces.

* **driving score** (CARLA leaderboard): route completion x the product of infraction
  penalties, one factor per infraction (table ``INFRACTION_PENALTY``): collisions, leaving
  the road, and (where lane changes are forbidden) leaving the followed lane.
* **autonomy** (Bojarski et al. 2016, PilotNet): ``(1 - interventions * 6 s / elapsed s) * 100``,
  clipped to [0, 100].  An intervention is an excursion of more than 1 m from the centre
  of the lane being followed that a safety driver would have corrected, one per started
  6 s of excursion (PilotNet's safety driver re-centres the car in that time, so a car
  that holds 1.6 m off-centre for 50 s is charged 9, not 1).  The lane being followed is
  the route's lane where lane changes are forbidden (lane-keep), else the nearest lane.
  Where lane changes are allowed, an excursion that ends on a lane of another index is a
  *manoeuvre*, not an intervention: a lane change (the offset's sign flips as the car
  crosses the boundary), or a junction (highway-env's roundabout entries and exits do not
  join the ring lanes exactly, so following them leaves every lane centre briefly).  An
  episode ended by a collision, by leaving the road or by an agent fault counts one more.
* **agent faults** (``agent_error``, ``invalid_action``, ``timeout``) score 0: an agent that
  stops driving has failed its route; otherwise raising just before a crash would beat
  crashing.
* **simulator faults** (``sim_error``: ``env.reset`` or ``env.step`` raised) are not the agent's:
  the record keeps the metrics of the steps driven (``driving_score`` 0.0, a placeholder so the
  field stays a number), and every aggregate, comparison and report leaves the episode out of
  the agent's scores and counts it apart (:func:`scored`).
* **comfort** (nuPlan closed-loop bounds): longitudinal acceleration, lateral acceleration,
  jerk and yaw rate, each differentiated with a Savitzky-Golay filter as nuPlan does, so
  that 15 Hz quantisation does not read as jerk; ``comfort_violation_rate`` is the share of
  steps outside any bound.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.signal import savgol_filter

from planning.comfort import within_comfort_bounds  # nuPlan's bounds, one home

STATUSES = ("ok", "collision", "offroad", "timeout", "agent_error", "invalid_action", "sim_error")
AGENT_FAULTS = ("timeout", "agent_error", "invalid_action")
SIM_FAULTS = ("sim_error",)
"""Statuses of episodes the simulator, not the agent, failed: never part of an agent's score."""


def scored(record: dict) -> bool:
    """Whether an episode record counts towards its agent's scores (not a simulator fault)."""
    return record.get("status") not in SIM_FAULTS


# CARLA-leaderboard-style infraction penalties: driving score is multiplied by the factor
# once per infraction of that kind.
INFRACTION_PENALTY = {
    "collision_vehicle": 0.60,
    "collision_object": 0.65,
    "offroad": 0.70,
    "lane_violation": 0.70,
}
"""``lane_violation``: a departure (> LANE_DEPARTURE_M) from the lane being followed where the
scenario forbids lane changes (lane-keep) - DESIGN.md's lane-boundary violation; a whole lap
in the wrong lane is one violation.  Lane changes where allowed are manoeuvres, not
infractions."""


INTERVENTION_PENALTY_S = 6.0  # [s] PilotNet: time charged per intervention
LANE_DEPARTURE_M = 1.0  # [m]
SAVGOL_WINDOW = 7  # samples (0.47 s at 15 Hz)
SAVGOL_ORDER = 2


@dataclass
class EpisodeTrace:
    """Per-step ego state; index 0 is the state after reset, then one row per decision."""

    dt_s: float
    t_s: list[float] = field(default_factory=list)
    x_m: list[float] = field(default_factory=list)
    y_m: list[float] = field(default_factory=list)
    heading_rad: list[float] = field(default_factory=list)
    speed_mps: list[float] = field(default_factory=list)
    lateral_offset_m: list[float] = field(default_factory=list)  # from the nearest lane centre
    route_offset_m: list[float] = field(default_factory=list)  # from the route's centre line
    lane_id: list[str] = field(default_factory=list)
    ttc_s: list[float] = field(default_factory=list)
    route_completion: list[float] = field(default_factory=list)
    actions: list[list[float]] = field(default_factory=list)  # one per decision
    latency_ms: list[float] = field(default_factory=list)  # one per decision
    lane_departure: list[bool] = field(default_factory=list)  # per decision
    collision: str | None = None  # "vehicle" | "object" | None (the episode's first)
    offroad: bool = False

    def record_events(self, events: dict) -> None:
        """The env's events after one decision."""
        self.lane_departure.append(bool(events["lane_departure"]))
        if events["collision"] and self.collision is None:
            self.collision = events["collision"]
        if events["offroad"]:
            self.offroad = True

    def arrays(self) -> dict[str, np.ndarray]:
        """The trace as arrays, for ``np.savez`` (no pickled objects)."""
        return {
            "t_s": np.asarray(self.t_s),
            "x_m": np.asarray(self.x_m),
            "y_m": np.asarray(self.y_m),
            "heading_rad": np.asarray(self.heading_rad),
            "speed_mps": np.asarray(self.speed_mps),
            "lateral_offset_m": np.asarray(self.lateral_offset_m),
            "route_offset_m": np.asarray(self.route_offset_m),
            "lane_id": np.asarray(self.lane_id, dtype=str),
            "ttc_s": np.asarray(self.ttc_s),
            "route_completion": np.asarray(self.route_completion),
            # (steps, action size); (0, 0) when the agent failed before its first action
            "actions": (
                np.asarray(self.actions, dtype=np.float64).reshape(len(self.actions), -1)
                if self.actions
                else np.zeros((0, 0))
            ),
            "latency_ms": np.asarray(self.latency_ms),
            "lane_departure": np.asarray(self.lane_departure, dtype=bool),
        }

    def record(self, ego: dict) -> None:
        self.t_s.append(float(ego["time_s"]))
        self.x_m.append(float(ego["position_m"][0]))
        self.y_m.append(float(ego["position_m"][1]))
        self.heading_rad.append(float(ego["heading_rad"]))
        self.speed_mps.append(float(ego["speed_mps"]))
        self.lateral_offset_m.append(float(ego["lateral_offset_m"]))
        self.route_offset_m.append(float(ego["route_offset_m"]))
        self.lane_id.append(str(ego["lane_id"]))
        self.ttc_s.append(float(ego["ttc_s"]))
        self.route_completion.append(float(ego["route_completion"]))


def _lane_number(lane_id: str) -> str:
    """``"from-to-k"`` -> ``"k"``: the lane's index across its road."""
    return lane_id.rsplit("-", 1)[-1]


def count_interventions(
    lateral_offset_m: np.ndarray,
    lane_ids: list[str] | None,
    lane_changes_allowed: bool,
    dt_s: float,
    threshold_m: float = LANE_DEPARTURE_M,
) -> tuple[int, int]:
    """Count (interventions, manoeuvres) among excursions beyond ``threshold_m``.

    ``lateral_offset_m`` is the signed offset from the centre of the lane followed; with
    the *nearest* lane, a lane change shows as an excursion that leaves on one side of a
    lane centre and comes back on the other side of the next lane's centre, so its sign
    flips.  ``lane_ids`` (``"from-to-k"`` per step) reveal junctions: the index k of the
    lane just before the excursion differs from that of the lane just after it.
    An excursion is charged one intervention per started ``INTERVENTION_PENALTY_S``.
    """
    d = np.asarray(lateral_offset_m, dtype=np.float64)
    out = np.abs(d) > threshold_m
    interventions = manoeuvres = 0
    k, n = 0, len(d)
    while k < n:
        if not out[k]:
            k += 1
            continue
        start = k
        while k < n and out[k]:
            k += 1
        end = k - 1
        crossed = np.sign(d[start]) != np.sign(d[end])
        if lane_ids is not None:
            # the lanes just outside the excursion: inside it the nearest lane may still be
            # the one being left (a roundabout exit is > 1 m from every lane for a moment)
            before, after = lane_ids[max(start - 1, 0)], lane_ids[min(end + 1, n - 1)]
            crossed = crossed or _lane_number(before) != _lane_number(after)
        if lane_changes_allowed and crossed:
            manoeuvres += 1
        else:
            duration_s = (end - start + 1) * dt_s
            interventions += max(1, int(np.ceil(duration_s / INTERVENTION_PENALTY_S - 1e-9)))
    return interventions, manoeuvres


def _derivative(x: np.ndarray, dt: float) -> np.ndarray:
    if len(x) >= SAVGOL_WINDOW:
        return savgol_filter(x, SAVGOL_WINDOW, SAVGOL_ORDER, deriv=1, delta=dt, mode="interp")
    if len(x) >= 2:
        return np.gradient(x, dt)
    return np.zeros_like(x)


def comfort_metrics(speed_mps: np.ndarray, heading_rad: np.ndarray, dt_s: float) -> dict:
    v = np.asarray(speed_mps, dtype=np.float64)
    h = np.unwrap(np.asarray(heading_rad, dtype=np.float64))
    if len(v) < 2:
        return {
            "max_long_accel_mps2": 0.0,
            "min_long_accel_mps2": 0.0,
            "max_abs_lat_accel_mps2": 0.0,
            "max_abs_jerk_mps3": 0.0,
            "max_abs_yaw_rate_radps": 0.0,
            "comfort_violation_rate": 0.0,
            "comfortable": True,
        }
    lon = _derivative(v, dt_s)
    yaw_rate = _derivative(h, dt_s)
    lat = v * yaw_rate
    jerk = _derivative(lon, dt_s)
    bad = ~within_comfort_bounds(lon, lat, jerk, yaw_rate)
    return {
        "max_long_accel_mps2": float(lon.max()),
        "min_long_accel_mps2": float(lon.min()),
        "max_abs_lat_accel_mps2": float(np.abs(lat).max()),
        "max_abs_jerk_mps3": float(np.abs(jerk).max()),
        "max_abs_yaw_rate_radps": float(np.abs(yaw_rate).max()),
        "comfort_violation_rate": float(bad.mean()),
        "comfortable": bool(not bad.any()),
    }


def driving_score(route_completion: float, infractions: dict[str, int]) -> float:
    penalty = 1.0
    for kind, count in infractions.items():
        penalty *= INFRACTION_PENALTY[kind] ** count
    return float(route_completion * penalty)


def episode_metrics(trace: EpisodeTrace, status: str, lane_changes_allowed: bool) -> dict:
    """All per-episode metrics of DESIGN.md as a flat JSON-ready dict."""
    if status not in STATUSES:
        raise ValueError(f"unknown status {status!r}; known: {', '.join(STATUSES)}")
    x, y = np.asarray(trace.x_m), np.asarray(trace.y_m)
    steps = len(trace.actions)
    elapsed_s = steps * trace.dt_s
    distance_m = float(np.sum(np.hypot(np.diff(x), np.diff(y)))) if len(x) > 1 else 0.0
    completion = float(max(trace.route_completion)) if trace.route_completion else 0.0
    # the lane being followed: the route's where lane changes are forbidden, else the nearest
    followed = np.asarray(trace.lateral_offset_m if lane_changes_allowed else trace.route_offset_m)
    lat = followed
    lat_moves = np.abs(lat) > LANE_DEPARTURE_M
    lane_departures = int(np.sum(lat_moves[1:] & ~lat_moves[:-1])) + int(
        bool(len(lat) and lat_moves[0])
    )
    infractions = {
        "collision_vehicle": int(trace.collision == "vehicle"),
        "collision_object": int(trace.collision == "object"),
        "offroad": int(trace.offroad),
        "lane_violation": 0 if lane_changes_allowed else lane_departures,
    }
    interventions, manoeuvres = count_interventions(
        followed, trace.lane_id, lane_changes_allowed, trace.dt_s
    )
    if trace.collision or trace.offroad or status in AGENT_FAULTS:
        interventions += 1
    autonomy = (
        100.0 * (1.0 - interventions * INTERVENTION_PENALTY_S / elapsed_s) if elapsed_s else 0.0
    )
    latency = np.asarray(trace.latency_ms)
    n_infractions = sum(infractions.values())
    return {
        "status": status,
        "steps": steps,
        "elapsed_s": float(elapsed_s),
        "route_completion": completion,
        "route_completed": bool(completion >= 1.0 - 1e-9),
        "driving_score": 0.0
        if status in AGENT_FAULTS + SIM_FAULTS
        else driving_score(completion, infractions),
        **infractions,
        "distance_m": distance_m,
        "infractions_per_km": float(n_infractions / (max(distance_m, 1.0) / 1000.0)),
        "mean_speed_mps": float(np.mean(trace.speed_mps)) if trace.speed_mps else 0.0,
        "lateral_offset_rms_m": float(np.sqrt(np.mean(lat**2))) if len(lat) else 0.0,
        "lane_departures": lane_departures,
        "manoeuvres": manoeuvres,
        "interventions": interventions,
        "autonomy_pct": float(np.clip(autonomy, 0.0, 100.0)),
        **comfort_metrics(np.asarray(trace.speed_mps), np.asarray(trace.heading_rad), trace.dt_s),
        "min_ttc_s": float(min(trace.ttc_s)) if trace.ttc_s else float("nan"),
        "latency_p50_ms": float(np.percentile(latency, 50)) if len(latency) else 0.0,
        "latency_p99_ms": float(np.percentile(latency, 99)) if len(latency) else 0.0,
    }
