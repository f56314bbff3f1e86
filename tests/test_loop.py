"""The control loop: sensor gating, action gating, faults recorded, metrics present."""

import numpy as np
import pytest

from agents import BaseAgent, make_agent
from sim.camera import CameraSpec
from sim.env import DrivingEnv
from sim.loop import env_sensors_for, run_episode
from sim.run import task_spec
from sim.scenarios import get_scenario

SHORT = {"duration_s": 2.0}


def _task(name="highway"):
    return task_spec(get_scenario(name), CameraSpec())


class Spy(BaseAgent):
    name = "spy"

    def __init__(self, task, sensors, action=...):
        super().__init__(task)
        self.sensors = sensors
        self.seen: list[set] = []
        self.action = np.zeros(task.action_size) if action is ... else action

    def act(self, obs):
        self.seen.append(set(obs))
        return self.action


def _run(agent, name="highway", seed=0, **over):
    env = DrivingEnv(get_scenario(name, **{**SHORT, **over}), sensors=env_sensors_for(agent))
    return run_episode(env, agent, seed)


def test_agent_gets_only_its_declared_sensors():
    spy = Spy(_task(), ("camera", "speed"))
    _run(spy)
    assert spy.seen and all(s == {"camera", "speed"} for s in spy.seen)


def test_agent_cannot_see_truth_unless_it_asks():
    blind = Spy(_task(), ("camera",))
    env = DrivingEnv(get_scenario("highway", **SHORT))  # an env computing every sensor
    run_episode(env, blind, 0)
    assert all("truth" not in s and "map" not in s for s in blind.seen)
    seer = Spy(_task(), ("truth", "map", "pose"))
    _run(seer)
    assert all(s == {"truth", "map", "pose"} for s in seer.seen)


def test_map_is_handed_every_step():
    spy = Spy(_task(), ("map",))
    r = _run(spy)
    assert len(spy.seen) == r.metrics["steps"] and all(s == {"map"} for s in spy.seen)


def test_unknown_sensor_is_rejected_with_the_known_list():
    with pytest.raises(ValueError, match="camera"):
        env_sensors_for(Spy(_task(), ("lidar",)))


class GradTensorLike:
    """Stands in for a torch tensor that requires grad: refuses numpy conversion."""

    def __array__(self, dtype=None, copy=None):
        raise RuntimeError("Can't call numpy() on Tensor that requires grad")


@pytest.mark.parametrize("bad,why", [
    (np.array([np.nan, 0.0]), "non-finite"),
    (np.array([0.0, np.inf]), "non-finite"),
    (np.zeros(3), "expected shape (2,)"),
    (np.zeros((1, 2)), "got shape (1, 2)"),
    ("left", "numeric"),
    (None, "numeric"),
    (np.array([1j, 0.0]), "numeric"),
    (GradTensorLike(), "RuntimeError"),
])
def test_bad_actions_end_the_episode_as_invalid_action(bad, why):
    r = _run(Spy(_task(), ("speed",), action=bad))
    assert r.status == "invalid_action"
    assert why in r.error
    assert r.metrics["status"] == "invalid_action"
    assert r.metrics["driving_score"] == 0.0
    assert r.metrics["interventions"] == 1


class Raiser(BaseAgent):
    name = "raiser"
    sensors = ("speed",)

    def __init__(self, task, after=3):
        super().__init__(task)
        self.after, self.k = after, 0

    def reset(self, seed=None):
        self.k = 0

    def act(self, obs):
        self.k += 1
        if self.k > self.after:
            raise RuntimeError("boom")
        return np.zeros(self.task.action_size)


def test_raising_agent_is_recorded_and_the_run_goes_on():
    agent = Raiser(_task())
    env = DrivingEnv(get_scenario("highway", **SHORT), sensors=env_sensors_for(agent))
    first = run_episode(env, agent, 0)
    second = run_episode(env, agent, 1)
    for r in (first, second):
        assert r.status == "agent_error" and "RuntimeError: boom" in r.error
        assert r.metrics["steps"] == 3
    record = first.record()
    assert record["status"] == "agent_error" and record["seed"] == 0


def test_straight_agent_leaves_the_racetrack():
    agent = make_agent("straight", _task("lane-keep"))
    r = _run(agent, "lane-keep", duration_s=50.0)
    assert r.status == "offroad"
    assert r.metrics["offroad"] == 1
    assert r.metrics["driving_score"] == pytest.approx(0.7 * r.metrics["route_completion"])


def test_idm_laps_the_racetrack():
    agent = make_agent("idm", _task("lane-keep"))
    r = _run(agent, "lane-keep", seed=1, duration_s=50.0)
    assert r.status == "ok" and r.metrics["route_completed"]
    assert r.metrics["driving_score"] == pytest.approx(1.0)
    assert r.metrics["lateral_offset_rms_m"] < 0.5
    assert r.metrics["autonomy_pct"] == 100.0


def test_ramming_a_car_is_a_vehicle_collision():
    full_throttle = Spy(_task(), ("speed",), action=np.array([1.0, 0.0]))
    # highway traffic is spawned ahead of the ego; flat out, the ego rear-ends someone
    r = _run(full_throttle, duration_s=40.0)
    assert r.status == "collision"
    assert r.metrics["collision_vehicle"] == 1
    assert r.metrics["driving_score"] == pytest.approx(0.6 * r.metrics["route_completion"])


def test_every_design_metric_is_recorded():
    r = _run(make_agent("idm", _task()))
    rec = r.record()
    for key in ["agent", "scenario", "seed", "status", "route_completion", "driving_score",
                "collision_vehicle", "collision_object", "offroad", "autonomy_pct",
                "mean_speed_mps", "lateral_offset_rms_m", "max_abs_jerk_mps3",
                "max_abs_lat_accel_mps2", "max_abs_yaw_rate_radps", "min_long_accel_mps2",
                "comfort_violation_rate", "min_ttc_s", "infractions_per_km",
                "latency_p50_ms", "latency_p99_ms", "device", "sensors"]:
        assert key in rec, key
    assert rec["sensors"] == ["autopilot"]


class LateRaiser(Raiser):
    """Drives well (the IDM autopilot), then raises."""

    sensors = ("autopilot",)

    def act(self, obs):
        super().act(obs)
        return obs["autopilot"]


def test_an_agent_fault_scores_zero_even_after_progress():
    agent = LateRaiser(_task("lane-keep"), after=300)
    env = DrivingEnv(get_scenario("lane-keep"), sensors=env_sensors_for(agent))
    r = run_episode(env, agent, 0)
    assert r.status == "agent_error" and r.metrics["route_completion"] > 0.3
    assert r.metrics["driving_score"] == 0.0
