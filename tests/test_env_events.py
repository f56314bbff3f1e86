"""Events the env reports: what was hit, leaving the road, lane departure, route done."""

import numpy as np

from sim.env import DrivingEnv
from sim.metrics import EpisodeTrace  # noqa: F401  (metrics consume these events)


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
    assert not info["events"]["lane_departure"]
    for _ in range(6):
        _, _, _, _, info = env.step(np.array([0.0, 0.1]))  # drift left
    for _ in range(30):
        _, _, _, _, info = env.step(np.array([0.0, 0.0]))
        if info["events"]["lane_departure"]:
            break
    assert info["events"]["lane_departure"]
    assert info["ego"]["lateral_offset_m"] > 1.0 or info["ego"]["lane_id"] != "0-1-0"


def test_route_completion_reaches_one_and_terminates():
    env = DrivingEnv("highway", sensors=("autopilot",),
                     overrides={"vehicles_count": 0, "route_length_m": 60.0})
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
