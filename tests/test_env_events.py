"""Events the env reports: what was hit, leaving the road, lane departure, route done."""

import numpy as np
import pytest
from highway_env.vehicle.objects import Obstacle

from sim.world.env import DrivingEnv


def test_hitting_the_ramp_end_is_an_object_collision():
    env = DrivingEnv("merge", sensors=("speed",))
    env.reset(seed=0)
    ramp_end = env.world.road.network.get_lane(("b", "c", 2))
    ego = env.world.vehicle
    ego.position = ramp_end.position(ramp_end.length - 12.0, 0.0)
    ego.heading = ramp_end.heading_at(ramp_end.length - 12.0)
    ego.speed = 15.0
    for _ in range(30):
        _, reward, terminated, _, info = env.step(np.array([0.0, 0.0]))
        if terminated:
            break
    assert info["events"]["collision"] == "object"
    assert reward < 0


def test_leaving_the_road_is_reported_and_terminates():
    env = DrivingEnv("highway", sensors=("speed",), overrides={"vehicles_count": 0})
    env.reset(seed=0)
    terminated, k = False, 0
    while not terminated and k < 200:
        _, _, terminated, _, info = env.step(np.array([0.0, -0.3]))  # steer right, off the edge
        k += 1
    assert terminated and info["events"]["offroad"] and not info["events"]["collision"]


def test_lane_departure_flag_and_left_positive_offset():
    env = DrivingEnv("highway", sensors=("speed",), overrides={"vehicles_count": 0})
    _, info = env.reset(seed=0)
    start_lane = info["ego"]["lane_id"]
    assert not info["events"]["lane_departure"]
    for _ in range(4):
        _, _, _, _, info = env.step(np.array([0.0, 0.1]))  # turn a little left
    for _ in range(60):
        _, _, _, _, info = env.step(np.array([0.0, 0.0]))
        if info["events"]["lane_departure"]:
            break
    # drifting left: offsets grow positive (left-positive), still in the starting lane
    assert info["events"]["lane_departure"]
    assert info["ego"]["lane_id"] == start_lane
    assert info["ego"]["lateral_offset_m"] > 1.0
    assert info["ego"]["route_offset_m"] > 1.0


def test_nearest_vehicle_ahead_sets_ttc():
    env = DrivingEnv("highway", sensors=("speed",))
    env.reset(seed=0)
    ego = env.world.vehicle
    state = env._ego_state()
    h = state["heading_rad"]
    fwd = np.array([np.cos(h), np.sin(h)])
    left = np.array([-fwd[1], fwd[0]])
    p = state["position_m"]
    arrays = {
        # 20 m ahead in lane (gap 15 m) at ego speed - 10 -> 1.5 s; ahead in the next lane;
        # behind in lane: neither counts
        "position_m": np.array([p + 20 * fwd, p + 10 * fwd + 4 * left, p - 10 * fwd]),
        "heading_rad": np.full(3, h),
        "speed_mps": np.array([ego.speed - 10.0, 0.0, 0.0]),
        "length_m": np.full(3, 5.0),
        "width_m": np.full(3, 2.0),
        "kind": np.zeros(3, dtype=np.int8),
    }
    assert env._min_ttc(arrays, state) == pytest.approx(15.0 / 10.0)
    arrays["speed_mps"][0] = ego.speed + 1.0  # pulling away: no threat
    assert env._min_ttc(arrays, state) == 10.0


def test_collision_partner_is_the_touching_object_not_earlier_wreckage():
    env = DrivingEnv("merge", sensors=("speed",))
    env.reset(seed=0)
    ego = env.world.vehicle
    cars = [o for o in env._objects if not isinstance(o, Obstacle)]
    wreck, partner = cars[0], cars[1]
    wreck.crashed = True  # an earlier crash, 30 m away
    wreck.position = ego.position + np.array([30.0, 0.0])
    partner.position = ego.position + np.array([4.0, 0.0])
    partner.crashed = ego.crashed = True
    assert env._collision_kind() == "vehicle"
    obstacle = next(o for o in env._objects if isinstance(o, Obstacle))
    partner.crashed = False
    obstacle.position = ego.position + np.array([3.5, 0.0])
    obstacle.crashed = True
    assert env._collision_kind() == "object"


def test_route_completion_reaches_one_and_terminates():
    env = DrivingEnv(
        "highway", sensors=("autopilot",), overrides={"vehicles_count": 0, "route_length_m": 60.0}
    )
    _, info = env.reset(seed=0)
    terminated = truncated = False
    while not (terminated or truncated):
        _, _, terminated, truncated, info = env.step(info["autopilot"])
    assert terminated and info["events"]["route_completed"]
    assert info["ego"]["route_completion"] == 1.0


def test_time_limit_truncates():
    env = DrivingEnv("lane-keep", sensors=("speed",), overrides={"duration_s": 1.0})
    env.reset(seed=0)
    flags = [env.step(np.array([0.0]))[2:4] for _ in range(15)]
    assert flags[-1] == (False, True) and all(f == (False, False) for f in flags[:-1])
