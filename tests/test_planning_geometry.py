"""Polylines and Frenet coordinates (planning.geometry), reference paths (planning.lanes)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from planning.geometry import Polyline, wrap_angle
from planning.lanes import BlendedPath, LaneMap, hermite_offset

MIN_RADIUS_M = 15.0  # [m] the tightest curve in the scenarios is 14.6 m


def smooth_line(curvatures: list[float], spacing_m: float, heading0: float) -> Polyline:
    """A polyline integrated from piecewise-constant curvature (exact vertex headings)."""
    h = heading0 + np.concatenate([[0.0], np.cumsum(np.asarray(curvatures) * spacing_m)])
    steps = spacing_m * np.stack(
        [np.cos(h[:-1] + np.diff(h) / 2), np.sin(h[:-1] + np.diff(h) / 2)], -1
    )
    pts = np.concatenate([[[0.0, 0.0]], np.cumsum(steps, axis=0)])
    return Polyline.from_points(pts, h)


lines = st.builds(
    smooth_line,
    st.lists(st.floats(-1 / MIN_RADIUS_M, 1 / MIN_RADIUS_M), min_size=2, max_size=120).filter(
        lambda k: abs(sum(k)) * 1.0 < 3.0
    ),  # total turn < ~170 deg: the line never folds back
    st.sampled_from([0.5, 1.0, 2.0]),
    st.floats(-np.pi, np.pi),
)


@settings(max_examples=150, deadline=None)
@given(line=lines, u=st.floats(0.0, 1.0), d=st.floats(-MIN_RADIUS_M / 3, MIN_RADIUS_M / 3))
def test_frenet_round_trip(line, u, d):
    s = u * line.length_m
    xy = line.to_xy(np.array([s]), np.array([d]))
    s2, d2 = line.project(xy)
    assert s2[0] == pytest.approx(s, abs=1e-6)
    assert d2[0] == pytest.approx(d, abs=1e-6)


@settings(max_examples=100, deadline=None)
@given(line=lines, x=st.floats(-30, 30), y=st.floats(-30, 30))
def test_projection_is_the_nearest_foot_point(line, x, y):
    """Going to Frenet and back returns the point (near the line), and no sample of the
    line is closer than |d| by more than the chord sag."""
    q = line.points_m[len(line) // 2] + np.array([x, y]) * 0.2
    s, d = line.project(q)
    back = line.to_xy(s, d)
    assert np.allclose(back, q, atol=1e-6)
    dense = line.resample(0.05)
    assert np.min(np.linalg.norm(dense.points_m - q, axis=1)) >= abs(d) - 0.05


def test_straight_line_frenet_is_exact():
    line = Polyline.from_points(np.array([[0.0, 0.0], [10.0, 0.0], [100.0, 0.0]]))
    s, d = line.project(np.array([[50.0, 2.0], [-5.0, -1.0], [130.0, 3.0]]))
    assert s.tolist() == pytest.approx([50.0, -5.0, 130.0])  # beyond the ends: straight on
    assert d.tolist() == pytest.approx([2.0, -1.0, 3.0])  # left positive


def test_arc_curvature_and_heading():
    r = 20.0
    th = np.linspace(0.0, np.pi / 2, 60)
    arc = Polyline.from_points(np.stack([r * np.sin(th), r - r * np.cos(th)], -1), th)
    assert arc.length_m == pytest.approx(np.pi * r / 2, rel=1e-3)
    assert np.allclose(arc.curvature_1pm, 1 / r, rtol=1e-3)
    assert float(arc.heading_at(arc.length_m / 2)) == pytest.approx(np.pi / 4, abs=1e-3)


def test_polyline_rejects_degenerate_input():
    with pytest.raises(ValueError, match="at least 2 distinct points"):
        Polyline.from_points(np.array([[1.0, 1.0], [1.0, 1.0]]))
    with pytest.raises(ValueError, match="finite"):
        Polyline.from_points(np.array([[0.0, 0.0], [np.nan, 1.0]]))


def _map(lanes: dict, route: list[str]) -> dict:
    out = {}
    for lid, (pts, nxt, left, right) in lanes.items():
        pts = np.asarray(pts, dtype=float)
        h = np.arctan2(*np.diff(pts, axis=0)[:, ::-1].T)
        out[lid] = {
            "centre_m": pts,
            "heading_rad": np.append(h, h[-1]),
            "width_m": 4.0,
            "speed_limit_mps": 20.0,
            "next": nxt,
            "left": left,
            "right": right,
        }
    return {"lanes": out, "route": {"lane_ids": route, "length_m": 300.0}}


def test_lane_map_corridors_follow_the_route_and_flag_dead_ends():
    # a two-lane road a-b; lane 1 continues to b-c, lane 2 (a merge lane) ends at b
    m = LaneMap(
        _map(
            {
                "a-b-1": ([[0, 0], [100, 0]], ["b-c-1"], None, "a-b-2"),
                "a-b-2": ([[0, -4], [100, -4]], [], "a-b-1", None),
                "b-c-1": ([[100, 0], [300, 0]], [], None, None),
            },
            ["a-b-1", "b-c-1"],
        )
    )
    assert m.corridor("a-b-1", 150.0) == ("a-b-1", "b-c-1")
    assert not m.path(("a-b-1", "b-c-1")).dead_end
    assert m.path(("a-b-2",)).dead_end  # stops before the route does
    lane, s = m.locate(np.array([40.0, -3.5]), 0.0)
    assert (lane, s) == ("a-b-2", pytest.approx(40.0))
    assert m.locate(np.array([40.0, -3.5]), np.pi) is None  # nothing heads west
    path = m.path(("a-b-1", "b-c-1"))
    s, d = path.project(np.array([[150.0, 1.0]]))
    assert (float(s[0]), float(d[0])) == (pytest.approx(150.0), pytest.approx(1.0))
    assert path.lane_at(150.0) == ("b-c-1", pytest.approx(50.0))


def test_lane_map_rejects_a_route_through_unknown_lanes():
    with pytest.raises(ValueError, match="not in the map"):
        LaneMap(_map({"a-b-0": ([[0, 0], [10, 0]], [], None, None)}, ["a-b-0", "b-c-0"]))


def test_hermite_transition_leaves_the_car_and_joins_the_line_tangentially():
    d0, slope, length = 3.0, 0.2, 40.0
    s = np.array([0.0, length, length + 10.0])
    assert hermite_offset(s, d0, slope, length).tolist() == pytest.approx([3.0, 0.0, 0.0])
    eps = 1e-4
    start_slope = (
        hermite_offset(eps, d0, slope, length) - hermite_offset(0.0, d0, slope, length)
    ) / eps
    end_slope = (
        hermite_offset(length, d0, slope, length) - hermite_offset(length - eps, d0, slope, length)
    ) / eps
    assert start_slope == pytest.approx(slope, abs=1e-3)  # leaves along the car's heading
    assert end_slope == pytest.approx(0.0, abs=1e-3)  # arrives along the line


def test_blended_path_is_the_shifted_line_for_the_controllers():
    m = LaneMap(_map({"a-b-0": ([[0, 0], [300, 0]], [], None, None)}, ["a-b-0"]))
    base = m.path(("a-b-0",))
    line = BlendedPath(base, s0_m=50.0, d0_m=4.0, slope0=0.0, length_m=30.0)
    # the car itself is on the blended line; 30 m on, the line is the lane centre
    assert line.to_xy(50.0, 0.0).tolist() == pytest.approx([50.0, 4.0])
    assert line.to_xy(80.0, 0.0).tolist() == pytest.approx([80.0, 0.0])
    s, d = line.project(np.array([[65.0, 2.0]]))
    assert (float(s[0]), float(d[0])) == (pytest.approx(65.0), pytest.approx(0.0, abs=1e-9))
    assert float(line.heading_at(65.0)) < -0.1  # heading down towards the centre line


@given(st.floats(-50.0, 50.0))
def test_wrap_angle_lands_in_minus_pi_to_pi_on_the_same_direction(angle):
    wrapped = float(wrap_angle(angle))
    assert -np.pi <= wrapped < np.pi
    assert np.cos(wrapped) == pytest.approx(np.cos(angle), abs=1e-9)
    assert np.sin(wrapped) == pytest.approx(np.sin(angle), abs=1e-9)
