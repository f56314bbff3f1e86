"""The expert and modular agents in the real scenarios (short episodes), and the map
topology they plan on."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agents import AGENTS, make_agent
from agents.modular import ModularAgent, PlanningAgent
from planning.prediction import ObjectStates
from sim.geometry.bev import BevCamera
from sim.harness.loop import agent_view, env_sensors_for, run_episode
from sim.harness.run import task_spec
from sim.world.env import DrivingEnv
from sim.world.scenarios import get_scenario


def episode(agent_name: str, scenario: str, seed: int, duration_s: float, agent=None):
    sc = get_scenario(scenario, duration_s=duration_s)
    agent = agent or make_agent(agent_name, task_spec(sc, BevCamera()))
    env = DrivingEnv(sc, sensors=env_sensors_for(agent))
    try:
        return run_episode(env, agent, seed), agent
    finally:
        env.close()


def test_expert_and_modular_declare_what_they_see():
    task = task_spec(get_scenario("highway"), BevCamera())
    assert set(make_agent("expert", task).sensors) == {"truth", "map", "pose", "speed"}
    assert set(make_agent("modular", task).sensors) == {
        "cam_front",
        "cam_rear",
        "map",
        "pose",
        "speed",
    }
    assert set(make_agent("modular-bev", task).sensors) == {"bev", "map", "pose", "speed"}
    assert set(make_agent("modular-gt", task).sensors) == {"truth", "map", "pose", "speed"}
    assert {"expert", "modular", "modular-bev", "modular-gt"} <= set(AGENTS)


@pytest.mark.parametrize(
    "scenario, seed, duration_s",
    [("lane-keep", 0, 6.0), ("highway", 3, 6.0), ("merge", 3, 10.0), ("roundabout", 2, 8.0)],
)
def test_expert_drives_every_scenario_cleanly(scenario, seed, duration_s):
    result, agent = episode("expert", scenario, seed, duration_s)
    assert result.status == "ok", result.error
    assert result.metrics["route_completion"] > 0.1
    assert result.metrics["interventions"] == 0
    n_act = 1 if scenario == "lane-keep" else 2
    assert np.asarray(result.trace.actions).shape == (result.metrics["steps"], n_act)
    ov = agent.overlay
    assert ov.trajectory_m.shape == (41, 2) and np.isfinite(ov.trajectory_m).all()
    assert ov.candidates_m.shape[1:] == (41, 2) and ov.candidate_ok.any()
    assert ov.path_lanes


def test_expert_is_deterministic_across_resets():
    a, agent = episode("expert", "highway", 5, 4.0)
    b, _ = episode("expert", "highway", 5, 4.0, agent=agent)  # same object, reset between
    assert a.trace.actions == b.trace.actions


def test_expert_merges_before_the_ramp_ends():
    """The ramp lane is a dead end: the expert must be on the highway's right lane at its end."""
    result, _ = episode("expert", "merge", 0, 30.0)
    assert result.status == "ok", result.error
    assert result.metrics["route_completed"]
    assert "b-c-2" not in result.trace.lane_id[-1]


class BlindPerception:
    """A perception source that sees nothing, for testing the plug."""

    sensors = ()
    device = "cpu"
    last_detections = None

    def prepare(self):
        return None

    def checkpoints(self):
        return ()

    def reset(self):
        self.calls = 0

    def perceive(self, obs, dt_s):
        self.calls += 1
        assert "truth" not in obs  # the loop hands only declared sensors
        return ObjectStates.empty()


def test_modular_takes_any_perception_source():
    task = task_spec(get_scenario("lane-keep", duration_s=2.0), BevCamera())
    blind = BlindPerception()
    agent = ModularAgent(task, perception=blind)
    assert set(agent.sensors) == {"map", "pose", "speed"}
    result, _ = episode("modular", "lane-keep", 0, 2.0, agent=agent)
    assert result.status == "ok" and blind.calls == result.metrics["steps"]


def test_map_sensor_topology():
    def lanes(scenario):
        env = DrivingEnv(scenario, sensors=("map",))
        _, info = env.reset(seed=0)
        env.close()
        return info["map"]["lanes"]

    merge = lanes("merge")
    assert merge["b-c-2"]["next"] == []  # the ramp's acceleration lane ends at an obstacle
    assert merge["b-c-2"]["left"] == "b-c-1" and merge["b-c-1"]["right"] == "b-c-2"
    assert merge["k-b-0"]["next"] == ["b-c-2"]
    ring = lanes("roundabout")
    assert "ex-exs-0" in ring["se-ex-1"]["next"]  # exits leave from the outer lane ...
    assert "ex-exs-0" not in ring["se-ex-0"]["next"]  # ... not across it from the inner one
    highway = lanes("highway")
    assert highway["0-1-0"]["left"] is None and highway["0-1-0"]["right"] == "0-1-1"


@pytest.mark.slow
@pytest.mark.parametrize("scenario", ["lane-keep", "highway", "merge", "roundabout"])
def test_expert_full_episodes(scenario):
    """Full-length episodes on 5 seeds: no crash, no off-road, the route completed.
    Run with ``python -m pytest -m slow tests/test_expert.py``."""
    for seed in range(5):
        result, _ = episode("expert", scenario, seed, get_scenario(scenario).duration_s)
        assert result.status == "ok", (seed, result.error)
        assert result.metrics["route_completed"], seed


def test_first_seen_cars_in_the_ring_are_forecast_around_it():
    """With no heading history yet, a car in the roundabout gets its lane's yaw rate
    (speed x curvature), so the first plan does not see it fly off along its tangent."""
    sc = get_scenario("roundabout")
    agent = make_agent("expert", task_spec(sc, BevCamera()))
    env = DrivingEnv(sc, sensors=env_sensors_for(agent))
    obs, info = env.reset(seed=0)
    agent.reset(0)
    agent.act(agent_view(agent.sensors, obs, info, {"map": info["map"]}))
    objs = agent.overlay.objects
    radius = np.linalg.norm(objs.position_m, axis=1)
    in_ring = (radius > 18) & (radius < 26) & (objs.speed_mps > 1)
    assert in_ring.any()
    expected = objs.speed_mps[in_ring] / radius[in_ring]  # counter-clockwise: left turn, > 0
    assert np.allclose(objs.yaw_rate_radps[in_ring], expected, rtol=0.35)
    env.close()


@pytest.fixture(scope="module")
def highway_map():
    env = DrivingEnv("highway", sensors=("map",))
    _, info = env.reset(seed=0)
    env.close()
    return info["map"]


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    x=st.floats(50, 900),
    y=st.floats(-25, 12),
    heading=st.floats(-np.pi, np.pi),
    speed=st.floats(0, 40),
    cars=st.lists(
        st.tuples(
            st.floats(-60, 60), st.floats(-15, 15), st.floats(-np.pi, np.pi), st.floats(0, 40)
        ),
        max_size=8,
    ),
)
def test_expert_always_returns_a_valid_action(highway_map, x, y, heading, speed, cars):
    """Anywhere near (or off) the road, facing any way, among arbitrary traffic: a finite
    action of the right shape in [-1, 1], never an exception."""
    task = task_spec(get_scenario("highway"), BevCamera())
    agent = make_agent("expert", task)
    agent.reset(0)
    rows = np.array(cars, dtype=float).reshape(-1, 4)
    n = len(rows)
    truth = {
        "id": np.arange(n),
        "kind": np.zeros(n, np.int8),
        "position_m": np.array([x, y]) + rows[:, :2],
        "heading_rad": rows[:, 2],
        "speed_mps": rows[:, 3],
        "velocity_mps": np.zeros((n, 2)),
        "length_m": np.full(n, 5.0),
        "width_m": np.full(n, 2.0),
    }
    obs = {
        "map": highway_map,
        "truth": truth,
        "pose": np.array([x, y, heading]),
        "speed": np.array([speed], dtype=np.float32),
    }
    for _ in range(2):  # the second decision has history (yaw rates, previous target)
        action = agent.act(obs)
        assert action.shape == (2,) and np.all(np.isfinite(action)) and np.all(np.abs(action) <= 1)


def test_the_lateral_controller_and_motion_model_are_choices_with_named_options():
    task = task_spec(get_scenario("lane-keep", duration_s=5.0), BevCamera())
    stanley = PlanningAgent(task, lateral="stanley")
    stanley.name = "stanley"
    result, _ = episode("stanley", "lane-keep", 0, 5.0, agent=stanley)
    assert result.status == "ok" and result.metrics["lateral_offset_rms_m"] < 0.6
    with pytest.raises(ValueError, match="known: pure-pursuit, stanley"):
        PlanningAgent(task, lateral="mpc")
    with pytest.raises(ValueError, match="known: lane, ctrv, cv"):
        PlanningAgent(task, motion_model="kalman")


def straight_road_obs(x=100.0, y=1.0, heading=0.05, speed=20.0):
    lanes = {
        f"a-b-{k}": {
            "centre_m": np.array([[0.0, y0], [2000.0, y0]]),
            "heading_rad": np.zeros(2),
            "width_m": 4.0,
            "speed_limit_mps": 30.0,
            "next": [],
            "left": f"a-b-{k - 1}" if k else None,
            "right": f"a-b-{k + 1}" if k < 2 else None,
        }
        for k, y0 in enumerate((4.0, 0.0, -4.0))
    }
    empty = {
        "id": np.zeros(0, np.int64),
        "kind": np.zeros(0, np.int8),
        "position_m": np.zeros((0, 2)),
        "heading_rad": np.zeros(0),
        "speed_mps": np.zeros(0),
        "velocity_mps": np.zeros((0, 2)),
        "length_m": np.zeros(0),
        "width_m": np.zeros(0),
    }
    return {
        "map": {"lanes": lanes, "route": {"lane_ids": ["a-b-1"], "length_m": 1000.0}},
        "truth": empty,
        "pose": np.array([x, y, heading]),
        "speed": np.array([speed], dtype=np.float32),
    }


def test_the_agent_steers_the_plans_first_command():
    """The agent tracks the line the chosen plan steered along (Plan.reference): on a
    straight road its steering is the rollout's first steering command exactly."""
    task = task_spec(get_scenario("highway"), BevCamera())
    agent = make_agent("expert", task)
    agent.reset(0)
    action = agent.act(straight_road_obs())
    plan = agent.last_plan
    assert plan.option.path.lanes == agent.overlay.path_lanes
    assert action[1] == np.float32(plan.steering_rad / task.steering_range_rad)


def test_a_new_episode_starts_at_reset_not_at_a_new_map_object():
    """The lane map is rebuilt on the first decision after reset(), whatever object the map
    sensor is; reference paths stay cached across episodes."""
    task = task_spec(get_scenario("highway"), BevCamera())
    agent = make_agent("expert", task)
    agent.reset(0)
    obs = straight_road_obs()
    agent.act(obs)
    first_map = agent.lane_map
    agent.act(dict(obs, map=dict(obs["map"])))  # an equal map in a new dict: the same episode
    assert agent.lane_map is first_map
    cached = dict(agent._path_cache)
    agent.reset(1)
    assert agent.lane_map is None
    agent.act(obs)
    assert agent.lane_map is not first_map and cached.items() <= agent._path_cache.items()
