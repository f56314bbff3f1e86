"""Full-length baseline episodes (slow: ~1 min). Run with: python -m pytest -m slow"""

import pytest

from agents import make_agent
from sim.geometry.bev import BevCamera
from sim.harness.loop import env_sensors_for, run_episode
from sim.harness.run import task_spec
from sim.world.env import DrivingEnv
from sim.world.scenarios import get_scenario

pytestmark = pytest.mark.slow


def _statuses(scenario: str, agent_name: str, seeds) -> list[str]:
    sc = get_scenario(scenario)
    agent = make_agent(agent_name, task_spec(sc, BevCamera()))
    env = DrivingEnv(sc, sensors=env_sensors_for(agent))
    return [run_episode(env, agent, s).status for s in seeds]


def test_idm_completes_highway_without_crashing_in_most_seeds():
    statuses = _statuses("highway", "idm", range(10))
    assert statuses.count("ok") >= 9, statuses


def test_idm_merges_in_most_seeds():
    statuses = _statuses("merge", "idm", range(10))
    assert statuses.count("ok") >= 9, statuses
