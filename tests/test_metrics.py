"""Metrics on synthetic traces: each definition checked against a hand computation."""

import numpy as np
import pytest

from sim.harness.metrics import (
    INFRACTION_PENALTY,
    EpisodeTrace,
    comfort_metrics,
    count_interventions,
    driving_score,
    episode_metrics,
)

DT = 1 / 15


def _trace(n=150, speed=20.0, lateral=None, heading=None, route_offset=None):
    tr = EpisodeTrace(dt_s=DT)
    lateral = np.zeros(n + 1) if lateral is None else lateral
    route_offset = lateral if route_offset is None else route_offset
    heading = np.zeros(n + 1) if heading is None else heading
    for k in range(n + 1):
        tr.record(
            {
                "time_s": k * DT,
                "position_m": [speed * k * DT, 0.0],
                "heading_rad": heading[k],
                "speed_mps": speed,
                "lateral_offset_m": lateral[k],
                "route_offset_m": route_offset[k],
                "lane_id": "0-1-0",
                "ttc_s": 10.0 - k * 0.01,
                "route_completion": k / n,
            }
        )
        if k:
            tr.actions.append([0.0, 0.0])
            tr.latency_ms.append(1.0 + k % 3)
    return tr


def test_penalty_table_matches_design():
    assert INFRACTION_PENALTY == {
        "collision_vehicle": 0.60,
        "collision_object": 0.65,
        "offroad": 0.70,
        "lane_violation": 0.70,
    }
    assert driving_score(
        0.8, {"collision_vehicle": 1, "collision_object": 0, "offroad": 0}
    ) == pytest.approx(0.48)
    assert driving_score(
        1.0, {"collision_vehicle": 0, "collision_object": 1, "offroad": 1}
    ) == pytest.approx(0.65 * 0.70)


def test_clean_episode():
    m = episode_metrics(_trace(), "ok", lane_changes_allowed=True)
    assert m["route_completion"] == pytest.approx(1.0) and m["route_completed"]
    assert m["driving_score"] == pytest.approx(1.0)
    assert m["distance_m"] == pytest.approx(200.0)
    assert m["mean_speed_mps"] == pytest.approx(20.0)
    assert m["autonomy_pct"] == 100.0 and m["interventions"] == 0
    assert m["comfortable"] and m["comfort_violation_rate"] == 0.0
    assert m["min_ttc_s"] == pytest.approx(8.5)
    assert m["latency_p50_ms"] == pytest.approx(2.0)
    assert m["infractions_per_km"] == 0.0


def test_collision_scores_and_counts_an_intervention():
    tr = _trace()
    tr.collision = "vehicle"
    m = episode_metrics(tr, "collision", lane_changes_allowed=True)
    assert m["collision_vehicle"] == 1 and m["driving_score"] == pytest.approx(0.6)
    assert m["interventions"] == 1
    assert m["autonomy_pct"] == pytest.approx(100 * (1 - 6.0 / 10.0))
    assert m["infractions_per_km"] == pytest.approx(1 / 0.2)


def test_unknown_status_is_rejected():
    with pytest.raises(ValueError, match="agent_error"):
        episode_metrics(_trace(), "crashed", lane_changes_allowed=True)


def test_weave_out_and_back_is_an_intervention_lane_change_is_not():
    weave = np.concatenate([np.zeros(5), [0.5, 1.2, 1.5, 1.2, 0.5], np.zeros(5)])
    lane_change = np.concatenate([np.zeros(5), [0.5, 1.2, 1.9, -1.9, -1.2, -0.5], np.zeros(5)])
    assert count_interventions(weave, None, True, DT) == (1, 0)
    assert count_interventions(lane_change, None, True, DT) == (0, 1)
    # in lane-keep every excursion is an intervention
    assert count_interventions(lane_change, None, False, DT) == (1, 0)
    assert count_interventions(np.zeros(10), None, True, DT) == (0, 0)
    # still out at the end of the episode: counted
    assert count_interventions(np.array([0.0, 1.5, 1.6]), None, True, DT) == (1, 0)


def test_junction_transition_is_a_manoeuvre_where_lane_changes_are_allowed():
    lateral = np.array([0.0, -1.1, -1.8, -1.3, 0.2])
    lanes = ["ses-se-0", "ses-se-0", "sx-se-1", "sx-se-1", "se-ex-1"]
    assert count_interventions(lateral, lanes, True, DT) == (0, 1)
    assert count_interventions(lateral, lanes, False, DT) == (1, 0)
    # same lane index, same side: a weave, even across a road-segment boundary (a ring)
    ring = ["se-ex-1", "se-ex-1", "ex-ee-1", "ex-ee-1", "ex-ee-1"]
    assert count_interventions(lateral, ring, True, DT) == (1, 0)
    # a roundabout exit: inside the excursion the nearest lane is still the ring's; the
    # lanes just before and after it tell the transition
    exit_lanes = ["se-ex-1", "ex-ee-1", "ex-ee-1", "ex-ee-1", "ex-exs-0"]
    assert count_interventions(lateral, exit_lanes, True, DT) == (0, 1)


def test_a_long_excursion_is_charged_every_six_seconds():
    n = 750  # 50 s held 1.6 m off the followed lane's centre
    held = np.full(n + 1, 1.6)
    m = episode_metrics(
        _trace(n, lateral=np.zeros(n + 1), route_offset=held), "ok", lane_changes_allowed=False
    )
    assert m["interventions"] == 9  # ceil(50.07 s / 6 s)
    assert m["autonomy_pct"] == 0.0
    assert m["lateral_offset_rms_m"] == pytest.approx(1.6)
    # ... and it is a lane-boundary violation: the lap in the wrong lane is not a clean lap
    assert m["lane_violation"] == 1 and m["driving_score"] == pytest.approx(0.70)
    # where lane changes are allowed the nearest lane is followed: here it is centred
    m2 = episode_metrics(
        _trace(n, lateral=np.zeros(n + 1), route_offset=held), "ok", lane_changes_allowed=True
    )
    assert m2["interventions"] == 0 and m2["lateral_offset_rms_m"] == 0.0
    assert m2["lane_violation"] == 0 and m2["driving_score"] == pytest.approx(1.0)


def test_autonomy_follows_pilotnet():
    n = 300  # 20 s
    lateral = np.zeros(n + 1)
    lateral[50:60] = 1.5
    lateral[200:210] = -1.5
    m = episode_metrics(_trace(n, lateral=lateral), "ok", lane_changes_allowed=False)
    assert m["interventions"] == 2
    assert m["autonomy_pct"] == pytest.approx(100 * (1 - 2 * 6.0 / 20.0))
    assert m["lane_departures"] == 2
    assert m["lane_violation"] == 2 and m["driving_score"] == pytest.approx(0.70**2)
    lane_changes = episode_metrics(_trace(n, lateral=lateral), "ok", lane_changes_allowed=True)
    assert lane_changes["lane_violation"] == 0 and lane_changes["driving_score"] == pytest.approx(
        1.0
    )


def test_comfort_flags_hard_braking_and_fast_yaw():
    n = 60
    v = np.concatenate(
        [np.full(20, 25.0), 25.0 - 8.0 * DT * np.arange(1, 21), np.full(21, 25 - 8 * 20 * DT)]
    )
    m = comfort_metrics(v, np.zeros(n + 1), DT)
    assert m["min_long_accel_mps2"] == pytest.approx(-8.0, abs=0.6)
    assert not m["comfortable"] and m["comfort_violation_rate"] > 0.2
    yaw = comfort_metrics(np.full(n + 1, 10.0), 1.5 * DT * np.arange(n + 1), DT)
    assert yaw["max_abs_yaw_rate_radps"] == pytest.approx(1.5, rel=1e-6)
    assert yaw["max_abs_lat_accel_mps2"] == pytest.approx(15.0, rel=1e-6)
    assert not yaw["comfortable"]
    smooth = comfort_metrics(np.linspace(20, 22, n + 1), np.zeros(n + 1), DT)
    assert smooth["comfortable"]


def test_heading_wrap_is_not_a_yaw_spike():
    h = np.pi - 0.01 + 0.005 * np.arange(10)
    wrapped = (h + np.pi) % (2 * np.pi) - np.pi
    m = comfort_metrics(np.full(10, 10.0), wrapped, DT)
    assert m["max_abs_yaw_rate_radps"] == pytest.approx(0.005 / DT, rel=1e-3)
