"""The speedometer check: a scale error is found from the localisation and taken out; a
speedometer within tolerance, clean or beside a noisy localisation, is read untouched."""

import numpy as np
import pytest

from perception.odometry import SpeedometerCheck

DT_S = 1.0 / 15.0


def drive(check, speed_true, scale, steps, pose_noise_m=0.0, speed_noise=0.0, radius_m=None):
    """Feed ``steps`` decisions of a car at ``speed_true``; returns the speeds handed back."""
    rng = np.random.default_rng(0)
    bias = np.array([1.0, -1.0]) * (pose_noise_m > 0)
    x = y = heading = 0.0
    out = []
    for _ in range(steps):
        fix = np.array([x, y]) + bias + rng.normal(0.0, pose_noise_m, 2)
        reading = max(speed_true * scale + rng.normal(0.0, speed_noise), 0.0)
        out.append(check.update(np.array([*fix, heading]), reading, DT_S))
        if radius_m is not None:
            heading += speed_true * DT_S / radius_m
        x += speed_true * DT_S * np.cos(heading)
        y += speed_true * DT_S * np.sin(heading)
    return np.array(out)


@pytest.mark.parametrize("scale", [1.2, 0.8, 1.1, 0.95])
def test_a_scale_error_is_found_and_taken_out(scale):
    """The suite's speed faults (5-20 % with noise): within 5 s the speed handed to the
    planner is the true one within 1.5 %."""
    speeds = drive(SpeedometerCheck(), 25.0, scale, 150, pose_noise_m=0.0, speed_noise=1.0)
    late = speeds[75:]
    assert abs(np.mean(late) / 25.0 - 1.0) < 0.015


def test_before_the_check_is_trusted_the_reading_is_used():
    speeds = drive(SpeedometerCheck(), 25.0, 1.2, 40)  # under 3 s: no window yet
    assert np.all(speeds == 30.0)


def test_a_true_speedometer_is_read_as_it_is_even_beside_a_noisy_localisation():
    """1 m of noise a fix on top of a 1 m bias (the pose fault's level 3): the estimate stays
    within tolerance, so every reading comes back bit-identical."""
    check = SpeedometerCheck()
    speeds = drive(check, 25.0, 1.0, 600, pose_noise_m=1.0)
    assert np.array_equal(speeds, np.full(600, 25.0))
    assert check.scale == 1.0


def test_arcs_do_not_read_as_a_slow_speedometer():
    """On a 20 m roundabout at 8 m/s the chord is far shorter than the path: those windows
    are left out (and too short), so the reading stands."""
    speeds = drive(SpeedometerCheck(), 8.0, 1.0, 600, radius_m=20.0)
    assert np.all(speeds == 8.0)
    speeds = drive(SpeedometerCheck(), 25.0, 1.0, 600, radius_m=60.0)
    assert np.all(speeds == 25.0)


def test_reset_forgets_the_episode():
    check = SpeedometerCheck()
    drive(check, 25.0, 1.2, 150)
    assert check.scale == pytest.approx(1.2, rel=0.01)
    check.reset()
    assert check.scale == 1.0
