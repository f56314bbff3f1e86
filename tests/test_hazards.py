"""The hazard scenarios: each scripted event happens as its one-line description says, varies
with the seed and repeats exactly for the same seed."""

from __future__ import annotations

import numpy as np
import pytest

from sim.world.env import DrivingEnv
from sim.world.hazards import BrakingVehicle, CutInVehicle, RevealingVehicle
from sim.world.scenarios import get_scenario

HOLD = np.array([0.0, 0.0])  # normalised [acceleration, steering]: hold speed, wheel straight


def _drive(name: str, seed: int, steps: int, action=HOLD):
    """Yield (env, step) while a passive ego holds its speed and its lane."""
    env = DrivingEnv(name, sensors=("speed",))
    env.reset(seed=seed)
    for k in range(steps):
        _, _, terminated, truncated, _ = env.step(action)
        yield env, k
        if terminated or truncated:
            break
    env.close()


def _actor(env, cls):
    found = [v for v in env.world.hazard_actors if isinstance(v, cls)]
    assert len(found) == 1, f"expected one {cls.__name__}, got {env.world.hazard_actors}"
    return found[0]


@pytest.mark.parametrize("seed", [0, 3])
def test_cut_in_car_changes_into_the_egos_lane_at_a_short_gap(seed):
    lanes, gaps = [], []
    for env, _ in _drive("cut-in", seed, 150):
        car, ego = _actor(env, CutInVehicle), env.world.vehicle
        lanes.append(car.lane_index[2] == ego.lane_index[2])
        if car.triggered and len(gaps) == 0:
            gaps.append(
                ego.lane.local_coordinates(car.position)[0]
                - ego.lane.local_coordinates(ego.position)[0]
                - (car.LENGTH + ego.LENGTH) / 2
            )
    assert not lanes[0], "the cutter starts in the next lane"
    assert any(lanes), "it never reached the ego's lane"
    assert gaps and 4.0 <= gaps[0] <= 16.0, f"cut at gap {gaps}"


def test_hard_brake_lead_brakes_at_six_mps2_to_a_stop_and_drives_on():
    speeds = []
    for env, _ in _drive("hard-brake", 1, 160, action=np.array([-1.0, 0.0])):  # the ego brakes hard
        speeds.append(_actor(env, BrakingVehicle).speed)
    dv = np.diff(speeds) * 15.0  # [m/s^2] at 15 Hz
    braking = dv[dv < -0.5]
    assert len(braking) > 20
    assert np.median(braking) == pytest.approx(-6.0, abs=0.05)
    assert min(speeds) < 0.01, "it brakes to a stop"
    assert speeds[-1] > 1.0, "then drives on"


def test_stopped_car_is_revealed_late_by_the_lead_changing_lanes():
    reveal = None
    for env, k in _drive("stopped-car", 2, 200, action=np.array([-0.3, 0.0])):
        lead, ego = _actor(env, RevealingVehicle), env.world.vehicle
        stalled = lead.stalled
        assert stalled.speed == 0.0
        if lead.phase != "hold" and reveal is None:
            s = ego.lane.local_coordinates
            reveal = s(stalled.position)[0] - s(lead.position)[0]
            assert lead.lane_index[2] == ego.lane_index[2], "it hid the stalled car until then"
    assert reveal is not None and 35.0 <= reveal <= 61.0, f"revealed at {reveal} m"


@pytest.mark.parametrize("name", ["cut-in", "hard-brake", "stopped-car"])
def test_hazards_vary_with_the_seed_and_repeat_for_the_same_seed(name):
    def layout(seed):
        env = DrivingEnv(name, sensors=("speed",))
        env.reset(seed=seed)
        out = np.array([[*v.position, v.speed] for v in env.world.hazard_actors])
        env.close()
        return out

    assert np.array_equal(layout(5), layout(5))
    assert not np.array_equal(layout(5), layout(6))


def test_hazards_drive_with_the_highway_policies():
    for name in ("cut-in", "hard-brake", "stopped-car"):
        assert get_scenario(name).trained_on == "highway"
    assert get_scenario("merge:dense").trained_on == "merge"
