"""Route geometry and progress: laps close, junction jumps add no length, offsets are signed."""

from typing import ClassVar

import numpy as np
import pytest

from sim.world.env import DrivingEnv
from sim.world.route import Route, RouteProgress


def test_lap_progress_is_monotone_and_reaches_one():
    env = DrivingEnv("lane-keep", sensors=("autopilot",))
    _, info = env.reset(seed=0)
    progress, done = [], False
    while not done:
        _, _, term, trunc, info = env.step(info["autopilot"])
        progress.append(info["ego"]["progress_m"])
        done = term or trunc
    assert info["events"]["route_completed"]
    # near the start line the lap's end is close in space but not in s: no jump either way.
    # (highway-env's track segments do not join exactly; crossing a ~2 m seam, progress
    # holds at one lane's end and resumes on the next, hence the 3 m bound, not 0.6 m)
    steps = np.diff(progress)
    assert np.all(steps > -1e-9) and np.all(steps < 3.0)
    assert np.median(steps) == pytest.approx(8.0 / 15, rel=0.01)
    assert progress[-1] == pytest.approx(env.route.length_m)


def test_merge_route_jump_between_lanes_adds_no_length():
    env = DrivingEnv("merge", sensors=("speed",))
    env.reset(seed=0)
    net = env.world.road.network
    lanes = env.route.lanes
    start = net.get_lane(lanes[0]).local_coordinates(env.world.vehicle.position)[0]
    ramp_to_merge = sum(net.get_lane(i).length for i in lanes[:3]) - start
    # the route's s at the end of the parallel section equals the lanes' own lengths
    k = np.searchsorted(env.route.s_m, ramp_to_merge)
    assert env.route.s_m[k] == pytest.approx(ramp_to_merge, abs=1e-6)
    assert env.route.length_m == pytest.approx(340.0, abs=1.0)


def _straight_route(length=100.0):
    class Lane:
        s_m = np.array([0.0, length])
        centre_m = np.array([[0.0, 0.0], [length, 0.0]])

    class Geo:
        lanes: ClassVar[dict] = {("a", "b", 0): Lane}

    return Route.along_lanes(Geo, [("a", "b", 0)], start_s_m=10.0, length_m=50.0)


def test_route_starts_at_the_ego_and_offset_is_left_positive():
    route = _straight_route()
    assert route.points_m[0] == pytest.approx([10.0, 0.0])
    assert route.points_m[-1] == pytest.approx([60.0, 0.0])
    prog = RouteProgress(route)
    assert prog.update(np.array([20.0, 1.5])) == pytest.approx(10.0)
    assert prog.offset_m == pytest.approx(1.5)
    prog.update(np.array([25.0, -0.5]))
    assert prog.offset_m == pytest.approx(-0.5)
    prog.update(np.array([20.0, 0.0]))  # backwards: progress falls, the maximum stays
    assert prog.s_m == pytest.approx(10.0) and prog.completion == pytest.approx(15.0 / 50.0)
    prog.update(np.array([70.0, 0.0]))
    assert prog.completion == 1.0


def test_route_too_short_for_its_lanes_is_an_error():
    class Lane:
        s_m = np.array([0.0, 30.0])
        centre_m = np.array([[0.0, 0.0], [30.0, 0.0]])

    class Geo:
        lanes: ClassVar[dict] = {("a", "b", 0): Lane}

    with pytest.raises(ValueError, match="less than the route length"):
        Route.along_lanes(Geo, [("a", "b", 0)], start_s_m=0.0, length_m=50.0)
