"""Controllers with physics: highway-env's bicycle, closed loop at the scenarios' 15 Hz."""

import numpy as np
import pytest

from planning.control import PurePursuit, SpeedPID, Stanley, normalise_action
from planning.geometry import Polyline
from planning.rollout import BicycleState, bicycle_step
from planning.vehicle import curvature_of_steering, steering_for_curvature

DT_S = 1 / 15


def drive(controller, path: Polyline, state: BicycleState, duration_s: float) -> np.ndarray:
    """Closed loop at constant speed; returns the centre's Frenet offset d per step."""
    offsets = []
    for _ in range(round(duration_s / DT_S)):
        steer, _debug = controller.update(
            float(state.x_m),
            float(state.y_m),
            float(state.heading_rad),
            float(state.speed_mps),
            path,
        )
        assert np.isfinite(steer) and abs(steer) <= np.pi / 4
        state = bicycle_step(state, 0.0, steer, DT_S)
        offsets.append(float(path.project(np.array([float(state.x_m), float(state.y_m)]))[1]))
    return np.array(offsets)


def start(y_m=0.0, speed_mps=20.0) -> BicycleState:
    return BicycleState(np.float64(0.0), np.float64(y_m), np.float64(0.0), np.float64(speed_mps))


STRAIGHT = Polyline.from_points(np.array([[-50.0, 0.0], [2000.0, 0.0]]))


@pytest.mark.parametrize("speed_mps", [8.0, 20.0, 30.0])
@pytest.mark.parametrize(
    "controller, settle_s, overshoot_m",
    [
        (PurePursuit(), 1.0, 0.10),  # pure pursuit: fast, small overshoot
        (Stanley(), 2.5, 0.01),  # Stanley: slower, no overshoot
    ],
)
def test_one_metre_offset_converges_on_a_straight_lane(
    controller, settle_s, overshoot_m, speed_mps
):
    d = drive(controller, STRAIGHT, start(y_m=1.0, speed_mps=speed_mps), 8.0)
    t = np.arange(1, len(d) + 1) * DT_S
    outside = np.abs(d) > 0.1
    settled_at = t[np.flatnonzero(outside).max() + 1] if outside.any() else 0.0
    assert settled_at <= settle_s
    assert -d.min() <= overshoot_m  # crossing to the other side
    assert abs(d[-1]) < 0.02


def arc(radius_m: float) -> Polyline:
    th = np.linspace(-0.3, 4.0, 1200)
    return Polyline.from_points(
        np.stack([radius_m * np.sin(th), radius_m - radius_m * np.cos(th)], -1), th
    )


@pytest.mark.parametrize(
    "controller, radius_m, speed_mps, bound_m",
    [
        (PurePursuit(), 14.6, 8.0, 0.30),  # the racetrack's tightest curve at lane-keep's speed
        (PurePursuit(), 50.0, 15.0, 0.15),
        (PurePursuit(), 200.0, 30.0, 0.10),
        (
            Stanley(),
            14.6,
            8.0,
            0.55,
        ),  # Stanley holds the *front axle* on the path: the centre cuts in
        (Stanley(), 50.0, 15.0, 0.10),
        (Stanley(), 200.0, 30.0, 0.10),
    ],
)
def test_constant_curvature_arc_is_tracked(controller, radius_m, speed_mps, bound_m):
    path = arc(radius_m)
    d = drive(controller, path, start(speed_mps=speed_mps), min(10.0, 3 * radius_m / speed_mps))
    assert np.abs(d[len(d) // 2 :]).max() <= bound_m


def test_steering_and_curvature_are_inverse():
    k = np.linspace(-0.1, 0.1, 41)
    assert np.allclose(curvature_of_steering(steering_for_curvature(k)), k, atol=1e-12)
    # a steady steering angle drives the circle it claims to
    steer = float(steering_for_curvature(1 / 25.0))
    s = start(speed_mps=10.0)
    for _ in range(600):  # explicit Euler: a small step keeps its drift below 1 cm
        s = bicycle_step(s, 0.0, steer, 0.005)
    beta = np.arctan(0.5 * np.tan(steer))
    centre = np.array([-25.0 * np.sin(beta), 25.0 * np.cos(beta)])
    assert np.hypot(float(s.x_m) - centre[0], float(s.y_m) - centre[1]) == pytest.approx(
        25.0, abs=0.03
    )


def test_speed_pid_reaches_the_target_without_overshoot_and_resets():
    pid = SpeedPID()
    v = 10.0
    history = []
    for _ in range(300):  # 20 s
        a, debug = pid.update(20.0, v, DT_S)
        assert set(debug) >= {"p", "i", "d", "ff", "error_mps"}
        v += a * DT_S
        history.append(v)
    assert history[-1] == pytest.approx(20.0, abs=0.05)
    assert max(history) <= 20.3
    pid.reset()
    assert pid.update(20.0, 20.0, DT_S)[0] == 0.0  # no integral left over
    with pytest.raises(ValueError, match="time constants"):
        SpeedPID(tau_s=0.0)


def test_normalise_action_orders_clips_and_scales():
    a = normalise_action(2.5, np.pi / 8, ("acceleration", "steering"), np.pi / 4, 5.0)
    assert a.tolist() == pytest.approx([0.5, 0.5])
    assert normalise_action(-50.0, -2.0, ("acceleration", "steering"), np.pi / 4, 5.0).tolist() == [
        -1.0,
        -1.0,
    ]
    assert normalise_action(
        0.0, np.pi / 8, ("steering",), np.pi / 4, 5.0
    ).tolist() == pytest.approx([0.5])
