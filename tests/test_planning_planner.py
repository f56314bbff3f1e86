"""The PDM-style planner on hand-made scenes, and its output contract under random inputs."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from planning.control import PurePursuit
from planning.lanes import LaneMap
from planning.planner import EgoState, PathOption, Planner, approach_path, boxes_overlap
from planning.prediction import (
    MotionEstimator,
    ObjectStates,
    cautious_speeds,
    forecast,
    forecast_along_paths,
)
from planning.rollout import BicycleState, IDMParameters, bicycle_step, idm_acceleration

TIMES = np.arange(41) * 0.1


def three_lane_map(length_m=2000.0, merge_end_m=None) -> LaneMap:
    """Straight road along +x; lane 0 on the left (y=+4), 1 centre (y=0), 2 right (y=-4).
    With ``merge_end_m`` lane 2 is a merge lane that ends there."""
    lanes = {}
    for k, y in enumerate((4.0, 0.0, -4.0)):
        end = merge_end_m if (k == 2 and merge_end_m) else length_m
        pts = np.array([[0.0, y], [end, y]])
        lanes[f"a-b-{k}"] = {
            "centre_m": pts,
            "heading_rad": np.zeros(2),
            "width_m": 4.0,
            "speed_limit_mps": 30.0,
            "next": [],
            "left": f"a-b-{k - 1}" if k > 0 else None,
            "right": f"a-b-{k + 1}" if k < 2 else None,
        }
    return LaneMap({"lanes": lanes, "route": {"lane_ids": ["a-b-1"], "length_m": 1000.0}})


def objects(rows) -> ObjectStates:
    """rows: (x, y, heading, speed) of vehicles 5 m x 2 m."""
    a = np.asarray(rows, dtype=float).reshape(-1, 4)
    n = len(a)
    return ObjectStates(
        np.arange(n),
        np.zeros(n, np.int8),
        a[:, :2],
        a[:, 2],
        a[:, 3],
        np.full(n, 5.0),
        np.full(n, 2.0),
        np.zeros(n),
    )


def options(lm: LaneMap, ego: EgoState, lane_changes=True):
    rear_x = ego.x_m - 2.5
    out = []
    for lid, change in (("a-b-1", 0), ("a-b-0", -1), ("a-b-2", +1)):
        if change and not lane_changes:
            continue
        path = lm.path((lid,))
        s, _ = path.project(np.array([rear_x, ego.y_m]))
        out.append(PathOption(path, float(s), change, on_route=True))
    return out


def plan(lm, ego, objs, **kw):
    return Planner().plan(ego, options(lm, ego, **kw), forecast(objs, TIMES, "cv"))


def test_free_road_accelerates_towards_the_limit_and_keeps_its_lane():
    lm = three_lane_map()
    ego = EgoState(100.0, 0.0, 0.0, 20.0)
    p = plan(lm, ego, ObjectStates.empty())
    assert p.path_index[p.best] == 0  # keep the lane when nothing is gained by leaving it
    assert p.acceleration_mps2 > 0.5
    assert abs(p.steering_rad) < 1e-3
    assert p.scores["total"][p.best] > 0.9


def test_stopped_car_ahead_with_all_lanes_blocked_means_braking():
    lm = three_lane_map()
    ego = EgoState(100.0, 0.0, 0.0, 20.0)
    wall = objects([(150.0, y, 0.0, 0.0) for y in (4.0, 0.0, -4.0)])
    p = plan(lm, ego, wall)
    assert p.acceleration_mps2 < -2.0
    assert p.scores["no_collision"][p.best] == 1.0
    end = p.trajectory_m[p.best, -1]
    assert end[0] < 150.0 - 5.0  # stops short of the stopped cars


def test_slow_car_ahead_is_overtaken_through_a_free_neighbour_lane():
    lm = three_lane_map()
    ego = EgoState(100.0, 0.0, 0.0, 25.0)
    slow = objects([(135.0, 0.0, 0.0, 10.0)])
    p = plan(lm, ego, slow)
    assert p.path_index[p.best] in (1, 2)  # a neighbour lane
    assert p.scores["no_collision"][p.best] == 1.0


def test_no_lane_change_in_front_of_a_fast_follower():
    """MOBIL's safety criterion: a car 8 m behind in the target lane at +10 m/s vetoes it."""
    lm = three_lane_map()
    ego = EgoState(100.0, 0.0, 0.0, 20.0)
    scene = objects([(130.0, 0.0, 0.0, 5.0), (85.0, 4.0, 0.0, 30.0), (85.0, -4.0, 0.0, 30.0)])
    p = plan(lm, ego, scene)
    assert p.scores["safe_lane_change"][p.path_index == 1].max() == 0.0
    assert p.scores["safe_lane_change"][p.path_index == 2].max() == 0.0
    assert p.path_index[p.best] == 0


def test_a_dead_end_lane_is_left_before_its_end():
    lm = three_lane_map(merge_end_m=160.0)
    ego = EgoState(100.0, -4.0, 0.0, 20.0)
    rear = np.array([97.5, -4.0])
    opts = []
    for lid, change in (("a-b-2", 0), ("a-b-1", -1)):
        path = lm.path((lid,))
        opts.append(PathOption(path, float(path.project(rear)[0]), change, on_route=True))
    assert opts[0].path.dead_end and not opts[1].path.dead_end
    p = Planner().plan(ego, opts, forecast(ObjectStates.empty(), TIMES))
    assert p.path_index[p.best] == 1
    # staying in the merge lane stops before its end
    stay = np.flatnonzero(p.path_index == 0)
    assert (p.trajectory_m[stay, -1, 0] <= 160.0).all()


def test_steering_only_mode_holds_speed():
    lm = three_lane_map()
    ego = EgoState(100.0, 1.0, 0.0, 8.0)
    p = Planner().plan(
        ego,
        options(lm, ego, lane_changes=False),
        forecast(ObjectStates.empty(), TIMES),
        longitudinal=False,
    )
    assert len(p.path_index) == 1
    assert p.acceleration_mps2 == 0.0
    assert p.steering_rad < 0  # 1 m left of the lane: steer right
    assert np.allclose(p.speed_mps, 8.0)


def test_ctrv_keeps_a_turning_car_on_its_circle():
    r, v = 20.0, 8.0
    car = objects([(r, 0.0, np.pi / 2, v)])
    car.yaw_rate_radps = np.array([v / r])
    f = forecast(car, TIMES, "ctrv")
    assert np.allclose(np.linalg.norm(f.position_m[0], axis=1), r, atol=1e-9)
    cv = forecast(car, TIMES, "cv")
    assert np.linalg.norm(cv.position_m[0, -1]) > r + 10  # a straight line leaves the circle
    with pytest.raises(ValueError, match="known: cv, ctrv"):
        forecast(car, TIMES, "kalman")


def test_yaw_rate_estimator_matches_ids_in_any_order():
    est = MotionEstimator(smoothing=0.0)
    a = objects([(0, 0, 0.0, 5.0), (10, 0, 1.0, 5.0)])
    est.update(a, 0.1)
    b = objects([(10, 0, 1.05, 5.0), (0, 0, -0.02, 5.0)])
    b.id = np.array([1, 0])
    out = est.update(b, 0.1)
    assert out.yaw_rate_radps.tolist() == pytest.approx([0.5, -0.2])
    c = objects([(0, 0, 0.0, 5.0)])
    c.id = np.array([7])  # never seen: no rate yet
    assert est.update(c, 0.1).yaw_rate_radps.tolist() == [0.0]


scene_rows = st.lists(
    st.tuples(st.floats(0, 400), st.floats(-10, 10), st.floats(-np.pi, np.pi), st.floats(0, 40)),
    max_size=12,
)


@settings(max_examples=60, deadline=None)
@given(
    x=st.floats(50, 300),
    y=st.floats(-5.5, 5.5),
    heading=st.floats(-0.6, 0.6),
    speed=st.floats(0, 40),
    rows=scene_rows,
    longitudinal=st.booleans(),
    yaw=st.floats(-1, 1),
)
def test_planner_output_is_always_finite_and_in_range(
    x, y, heading, speed, rows, longitudinal, yaw
):
    lm = three_lane_map()
    ego = EgoState(x, y, heading, speed)
    objs = objects(rows) if rows else ObjectStates.empty()
    objs.yaw_rate_radps = np.full(len(objs), yaw)
    p = Planner().plan(ego, options(lm, ego), forecast(objs, TIMES), longitudinal=longitudinal)
    assert np.isfinite(p.acceleration_mps2) and -5.0 <= p.acceleration_mps2 <= 5.0
    assert np.isfinite(p.steering_rad) and abs(p.steering_rad) <= np.pi / 4
    assert np.isfinite(p.trajectory_m).all() and (p.speed_mps >= 0).all()
    assert 0 <= p.best < len(p.path_index)
    assert np.all((p.scores["total"] >= 0) & (p.scores["total"] <= 1))


@pytest.mark.parametrize(
    "c2, h2, expected",
    [
        ((4.9, 0.0), 0.0, True),  # nose to tail, 0.1 m overlap (two 5 m cars)
        ((5.1, 0.0), 0.0, False),  # 0.1 m apart
        ((0.0, 1.9), 0.0, True),  # side by side, touching (2 m wide)
        ((0.0, 2.1), 0.0, False),
        ((3.7, 3.7), np.pi / 4, False),  # diagonal: bounding circles overlap, the boxes do not
        ((3.4, 3.4), np.pi / 4, True),  # ... a corner 0.16 m inside
        ((2.0, 2.0), np.pi / 2, True),  # crossing at right angles
    ],
)
def test_boxes_overlap_separating_axes(c2, h2, expected):
    got = boxes_overlap(
        np.array([[0.0, 0.0]]),
        np.array([0.0]),
        5.0,
        2.0,
        np.array([c2]),
        np.array([h2]),
        np.array([5.0]),
        np.array([2.0]),
    )
    assert got.tolist() == [expected]
    # symmetric in its two boxes
    back = boxes_overlap(
        np.array([c2]),
        np.array([h2]),
        np.array([5.0]),
        np.array([2.0]),
        np.array([[0.0, 0.0]]),
        np.array([0.0]),
        5.0,
        2.0,
    )
    assert back.tolist() == [expected]


def ring_map(radius_m=60.0) -> LaneMap:
    """Two lanes around a half circle (counter-clockwise): inner "r-s-1", outer "r-s-0"."""
    th = np.linspace(-np.pi / 2, np.pi / 2, 200)
    lanes = {}
    for k, r in enumerate((radius_m + 4.0, radius_m)):
        lanes[f"r-s-{k}"] = {
            "centre_m": np.stack([r * np.cos(th), r * np.sin(th)], -1),
            "heading_rad": th + np.pi / 2,
            "width_m": 4.0,
            "speed_limit_mps": 20.0,
            "next": [],
            "left": "r-s-0" if k == 1 else None,
            "right": "r-s-1" if k == 0 else None,
        }
    return LaneMap({"lanes": lanes, "route": {"lane_ids": ["r-s-1"], "length_m": 150.0}})


def offset_options(lm, ego, lanes):
    rear = np.array(
        [ego.x_m - 2.5 * np.cos(ego.heading_rad), ego.y_m - 2.5 * np.sin(ego.heading_rad)]
    )
    out = []
    for lid, change in lanes:
        path = lm.path((lid,))
        s, d = (float(v) for v in path.project(rear))
        out.append(
            PathOption(
                path,
                s,
                change,
                True,
                d_m=d,
                heading_error_rad=float(ego.heading_rad - path.heading_at(s)),
            )
        )
    return out


STRAIGHT = [(100.0, 3.0, 0.0), (100.0, -1.2, 0.1), (100.0, 0.2, -0.05)]
ON_THE_RING = [
    (60.0, -0.3, 0.0),
    (61.0, -0.3, 0.1),
    (59.3, -0.3, -0.05),
]  # (radius, angle, heading error)


@pytest.mark.parametrize("scene", STRAIGHT + ON_THE_RING)
def test_the_agent_executes_what_the_planner_scored(scene):
    """The plan carries the line its winner steered along (Plan.reference) and the agent's
    controller tracks that line with the rollout's own kernels (planning.rollout): its first
    command is the rollout's first command (exactly on straight roads; on curves the
    rollout's one-step foot-point update leaves ~1e-3 rad), and the bicycle the planner
    integrated is the kernel's, bit for bit."""
    if scene in STRAIGHT:
        lm, lanes = three_lane_map(), (("a-b-1", 0), ("a-b-0", -1), ("a-b-2", +1))
        x, y, heading = scene
        tolerance = 0.0
    else:
        lm, lanes = ring_map(), (("r-s-1", 0), ("r-s-0", -1))
        r, angle, error = scene
        x, y, heading = r * np.cos(angle), r * np.sin(angle), angle + np.pi / 2 + error
        tolerance = 2.5e-3
    ego = EgoState(x, y, heading, 15.0)
    opts = offset_options(lm, ego, lanes)
    planner = Planner()
    p = planner.plan(ego, opts, forecast(ObjectStates.empty(), TIMES))
    c = planner.config
    assert p.option is opts[p.path_index[p.best]]
    controller = PurePursuit(c.lookahead_gain_s, c.min_lookahead_m, c.max_lookahead_m)
    steer, _ = controller.update(x, y, heading, 15.0, p.reference)
    assert abs(steer - p.steering_rad) <= tolerance
    for k, o in enumerate(
        opts
    ):  # every candidate's first steer is pure pursuit along its own approach
        steer, _ = controller.update(x, y, heading, 15.0, approach_path(o, 15.0, c))
        assert abs(p.steerings_rad[p.path_index == k][0, 0] - steer) <= tolerance
    after = bicycle_step(
        BicycleState(np.float64(x), np.float64(y), np.float64(heading), np.float64(15.0)),
        p.accelerations_mps2[p.best, 0],
        p.steerings_rad[p.best, 0],
        c.step_s,
    )
    assert p.trajectory_m[p.best, 1].tolist() == [after.x_m, after.y_m]
    assert (p.heading_rad[p.best, 1], p.speed_mps[p.best, 1]) == (
        after.heading_rad,
        after.speed_mps,
    )


def test_idm_kernel_follows_a_leader_and_reaches_the_desired_speed():
    idm = IDMParameters(accel_mps2=1.5, decel_mps2=2.5, headway_s=1.2, min_gap_m=3.0, delta=4.0)
    assert idm_acceleration(0.0, 20.0, np.inf, 0.0, idm) == pytest.approx(1.5)  # standing start: a
    assert idm_acceleration(20.0, 20.0, np.inf, 0.0, idm) == pytest.approx(0.0)  # at v0: cruise
    assert -2.5 < idm_acceleration(25.0, 20.0, np.inf, 0.0, idm) < 0  # above v0: ease off at most b
    # the equilibrium gap behind a leader at the same speed: s0 + v T
    assert idm_acceleration(20.0, 1e9, 3.0 + 20.0 * 1.2, 20.0, idm) == pytest.approx(0.0, abs=1e-9)
    assert (
        idm_acceleration(20.0, 30.0, 10.0, 10.0, idm) < -5.0
    )  # closing fast on a slow leader: brake


def test_lane_following_forecast_stays_on_the_path_and_falls_back_without_one():
    lm = three_lane_map()
    path = lm.path(("a-b-1",))
    cars = objects([(100.0, 0.5, 0.3, 10.0), (100.0, 4.0, 0.3, 10.0)])  # heading off the lane
    f = forecast_along_paths(cars, TIMES, [path, None], fallback="cv")
    # the first follows its lane at its speed, keeping its 0.5 m offset
    assert np.allclose(f.position_m[0, :, 1], 0.5) and f.position_m[0, -1, 0] == pytest.approx(
        140.0
    )
    assert np.allclose(f.heading_rad[0], 0.0)
    # the second, with no path, goes straight along its heading
    assert f.position_m[1, -1, 1] == pytest.approx(4.0 + 40.0 * np.sin(0.3))


def test_cautious_speeds_move_each_speed_to_the_end_that_is_worse_for_the_ego():
    """Ahead: slower (never below 0); behind: faster; crossing traffic: unchanged."""
    n = 4
    objects = ObjectStates(
        id=np.arange(n),
        kind=np.zeros(n, np.int8),
        position_m=np.array([[50.0, 0.0], [-30.0, 4.0], [40.0, 0.0], [20.0, 10.0]]),
        heading_rad=np.array([0.0, 0.0, 0.0, np.pi / 2]),
        speed_mps=np.array([25.0, 25.0, 3.0, 10.0]),
        length_m=np.full(n, 5.0),
        width_m=np.full(n, 2.0),
        yaw_rate_radps=np.zeros(n),
    )
    sigma = np.array([4.0, 4.0, 4.0, 4.0])
    out = cautious_speeds(objects, sigma, np.zeros(2), 0.0, k_sigma=2.0)
    np.testing.assert_allclose(out.speed_mps, [17.0, 33.0, 0.0, 10.0])
    np.testing.assert_allclose(objects.speed_mps, [25.0, 25.0, 3.0, 10.0])  # the input is untouched
    assert cautious_speeds(objects, sigma, np.zeros(2), 0.0, k_sigma=0.0) is objects
