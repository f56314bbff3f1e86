"""Scenarios: the registry, configuration, gymnasium conformance and the merge fix."""

import re

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from highway_env.envs.merge_env import MergeEnv
from highway_env.envs.roundabout_env import RoundaboutEnv

import sim.world
from sim.world.env import DrivingEnv
from sim.world.scenarios import COMMANDS, SCENARIOS, get_scenario

NAMES = list(SCENARIOS)


def test_the_scenarios_exist():
    assert set(NAMES) == {
        "lane-keep",
        "highway",
        "merge",
        "roundabout",
        "highway-short",
        "track",
        "curvy-highway",
        "cut-in",
        "hard-brake",
        "stopped-car",
    }


def test_variants_parse_to_one_canonical_name():
    s = get_scenario("highway:night:latency=2:dense:noise=1")
    assert s.name == "highway:dense:night:noise=1:latency=2"  # traffic, maps, visual, faults
    assert (s.base, s.trained_on, s.visual, s.faults) == (
        "highway",
        "highway",
        "night",
        (("noise", 1), ("latency", 2)),
    )
    assert s.world_config["vehicles_count"] == 80
    assert get_scenario("highway:regular:day").name == "highway"  # defaults drop out
    assert get_scenario("track:unseen").world_config["map_split"] == "unseen"
    assert get_scenario("cut-in").trained_on == "highway"


@pytest.mark.parametrize(
    "name, message",
    [
        (
            "highway:dens",
            "unknown variant 'dens' of scenario 'highway'; known: traffic empty|regular|dense",
        ),
        ("lane-keep:dense", "unknown variant 'dense' of scenario 'lane-keep'; known: visual"),
        ("lane-keep:unseen", "unknown variant 'unseen'"),
        ("highway:noise=4", "fault 'noise' takes a level in 1-3, got '4'"),
        ("highway:noise", "unknown variant 'noise'"),
        ("highway:night:dusk", "two visual variants"),
        ("highway:noise=1:noise=2", "fault 'noise' given twice"),
    ],
)
def test_bad_variants_say_what_is_known(name, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        get_scenario(name)


def test_unknown_scenario_lists_the_known_ones():
    with pytest.raises(ValueError) as e:
        get_scenario("hgihway")
    for name in NAMES:
        assert name in str(e.value)


def test_overrides_reject_typos():
    assert get_scenario("highway", duration_s=5.0).duration_s == 5.0
    assert get_scenario("highway", vehicles_count=3).world_config["vehicles_count"] == 3
    with pytest.raises(ValueError, match="duration_s"):
        get_scenario("highway", duraton_s=5.0)


@pytest.mark.parametrize("name", NAMES)
def test_control_rate_is_at_least_15_hz(name):
    s = SCENARIOS[name]
    assert s.control_hz >= 15 and s.sim_hz % s.control_hz == 0


@pytest.mark.parametrize("name", NAMES)
def test_check_env_passes(name):
    env = gym.make(sim.world.env_id(name))
    check_env(env.unwrapped, skip_render_check=False)
    env.close()


@pytest.mark.parametrize("name", NAMES)
def test_spaces_and_route(name):
    env = DrivingEnv(name)
    obs, info = env.reset(seed=2)
    assert env.observation_space.contains(obs)
    expected = (2,) if SCENARIOS[name].longitudinal else (1,)
    assert env.action_space.shape == expected
    route = info["map"]["route"]
    assert route["length_m"] > 50.0
    assert np.all(np.diff(route["s_m"]) >= 0)
    assert info["ego"]["route_completion"] == pytest.approx(0.0, abs=0.01)
    assert obs["command"] in range(len(COMMANDS))


def test_lane_keep_route_is_one_lap_of_the_ego_lane():
    env = DrivingEnv("lane-keep")
    _, info = env.reset(seed=0)
    route = info["map"]["route"]
    pts = route["centre_m"]
    # the lap ends where it began
    assert np.linalg.norm(pts[0] - pts[-1]) < 0.5
    assert route["length_m"] == pytest.approx(348.2, abs=1.0) or route["length_m"] == pytest.approx(
        381.9, abs=1.0
    )


def test_roundabout_command_matches_route_exit():
    seen = set()
    for seed in range(12):
        env = DrivingEnv("roundabout", sensors=("command", "map"))
        obs, info = env.reset(seed=seed)
        cmd = COMMANDS[obs["command"]]
        seen.add(cmd)
        exit_road = info["map"]["route"]["lane_ids"][-1]
        assert exit_road.split("-")[1] == {"right": "exr", "straight": "nxr", "left": "wxr"}[cmd]
    assert seen == {"left", "straight", "right"}


def test_stock_merge_and_roundabout_crash_with_continuous_actions():
    """The highway-env bug the scenarios work around (reward does `action in [0, 2]`)."""
    for cls in (MergeEnv, RoundaboutEnv):
        with pytest.raises(ValueError, match="truth value"):
            env = cls(config={"action": {"type": "ContinuousAction"}})
            env.reset(seed=0)
            env.step(np.zeros(2, dtype=np.float32))


@pytest.mark.parametrize("name", ["merge", "roundabout"])
def test_our_merge_and_roundabout_step_with_continuous_actions(name):
    """Five steps of +0.2 (= +1 m/s^2) straight ahead: the car moves forward and speeds up by
    the commanded amount, and nothing crashes or ends the episode."""
    env = DrivingEnv(name, sensors=("speed", "pose"))
    obs, _ = env.reset(seed=0)
    v0, xy0 = float(obs["speed"][0]), obs["pose"][:2].copy()
    for _ in range(5):
        obs, _, terminated, truncated, info = env.step(np.array([0.2, 0.0]))
        assert not (terminated or truncated) and not info["events"]["collision"]
    dt = 5 / env.scenario.control_hz  # [s]
    assert float(obs["speed"][0]) == pytest.approx(v0 + 1.0 * dt, abs=1e-6)
    assert np.hypot(*(obs["pose"][:2] - xy0)) == pytest.approx(v0 * dt, rel=0.1)


def test_steering_positive_turns_left():
    env = DrivingEnv("highway", sensors=("pose",), overrides={"vehicles_count": 0})
    obs, _ = env.reset(seed=0)
    h0 = obs["pose"][2]
    for _ in range(5):
        obs, *_ = env.step(np.array([0.0, 0.5]))
    assert obs["pose"][2] > h0 + 0.05  # heading grew: counter-clockwise = left
