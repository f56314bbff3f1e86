"""``drive probe``: a policy asked about counterfactual versions of the same moment.  Two
made-up camera policies calibrate it: one that brakes for whatever stands in the road ahead
(it looks), one that answers from its speed input alone (it does not)."""

import json

import numpy as np
import pytest

from agents import BaseAgent
from agents.registry import AGENTS as REGISTRY
from sim.cli import main
from sim.pipelines.probe import counterfactual_scenes, format_probe, probe_agent
from sim.world.render import KIND_OBSTACLE, KIND_VEHICLE


class _Camera(BaseAgent):
    sensors = ("cam_front", "speed")
    lockstep = True

    def reset_slot(self, slot, seed=None):
        return None

    def act_batch(self, obs, slots=None):
        return np.stack([self.act(o) for o in obs])


class Looks(_Camera):
    """Brakes by how much of the road 15-30 m ahead (a window just under the horizon, in
    the middle of the 256 x 128 frame) is not road."""

    def act(self, obs):
        ahead = np.asarray(obs["cam_front"])[52:76, 104:152].astype(int)
        r, g, b = ahead[..., 0], ahead[..., 1], ahead[..., 2]
        coloured = ahead.max(axis=-1) - ahead.min(axis=-1) > 25  # not road, marking, grey
        sky = (b - r > 40) & (b > 180)
        grass = (g - r > 25) & (g - b > 15) & (g < 130)
        blocked = np.mean(coloured & ~sky & ~grass)
        return np.array([np.clip(0.5 - 8.0 * blocked, -1, 1), 0.0])


class Blind(_Camera):
    """Answers from its speed input alone."""

    def act(self, obs):
        speed = float(np.asarray(obs["speed"]).reshape(-1)[0])
        return np.array([0.5 - speed / 50.0, speed / 100.0])


@pytest.fixture
def agents(monkeypatch):
    monkeypatch.setitem(REGISTRY, "looks", (Looks, "test: brakes for the road ahead"))
    monkeypatch.setitem(REGISTRY, "blind", (Blind, "test: speed input only"))


def test_the_counterfactual_scenes_edit_only_what_they_say():
    arrays = {
        "position_m": np.array([[30.0, 0.5], [50.0, 4.0], [10.0, -4.0], [60.0, 0.0]]),
        "heading_rad": np.zeros(4),
        "speed_mps": np.array([20.0, 25.0, 22.0, 0.0]),
        "length_m": np.full(4, 5.0),
        "width_m": np.full(4, 2.0),
        "kind": np.array([KIND_VEHICLE] * 3 + [KIND_OBSTACLE], np.int8),
    }
    scenes = counterfactual_scenes(arrays, np.zeros(2), 0.0, stopped_m=20.0)
    assert list(scenes["empty"]["kind"]) == [KIND_OBSTACLE]  # vehicles gone, the obstacle kept
    stopped = scenes["stopped"]
    assert stopped["position_m"][-1].tolist() == [20.0, 0.0] and stopped["speed_mps"][-1] == 0
    assert len(stopped["kind"]) == 5 and stopped["kind"][-1] == KIND_VEHICLE
    closer = scenes["closer"]  # the lead in the lane (30 m ahead) at half its gap
    assert closer["position_m"][0].tolist() == [15.0, 0.5]
    np.testing.assert_array_equal(closer["position_m"][1:], arrays["position_m"][1:])
    assert arrays["position_m"][0].tolist() == [30.0, 0.5]  # the scene itself untouched


def test_a_policy_that_looks_brakes_for_the_stopped_car_and_a_blind_one_does_not(agents):
    kw = {"seeds": [3000, 3001], "every": 15, "duration_s": 4.0, "progress": False}
    looks = probe_agent("looks", "highway", **kw)["summary"]
    blind = probe_agent("blind", "highway", **kw)["summary"]
    assert looks["states"] == blind["states"] >= 4
    assert looks["brakes_for_stopped_car"] == 1.0
    assert looks["empty_acceleration_mean_abs_change"] > 0.1  # the traffic it saw is gone
    assert looks["brakes_for_closer_lead"] > 0.5
    assert looks["faster_acceleration_per_mps"] == 0.0
    assert blind["brakes_for_stopped_car"] == 0.0
    assert blind["empty_acceleration_mean_abs_change"] == 0.0
    assert blind["stopped_steering_mean_abs_change"] == 0.0
    assert blind["faster_acceleration_per_mps"] == pytest.approx(-1 / 50)
    assert blind["faster_steering_per_mps"] == pytest.approx(1 / 100)


def test_drive_probe_writes_every_answer_and_refuses_what_it_cannot_probe(agents, tmp_path, capsys):
    out = tmp_path / "probe.json"
    argv = ["probe", "looks", "--episodes", "1", "--duration", "3", "--quiet"]
    assert main([*argv, "--out", str(out)]) == 0
    assert "brakes harder in 100% of states" in capsys.readouterr().out
    result = json.loads(out.read_text())
    assert result["written_by"] == "drive probe" and result["states"]
    assert set(result["states"][0]["actions"]) >= {"real", "empty", "stopped", "faster"}
    assert main(["probe", "idm", "--episodes", "1"]) == 2  # reads no camera
    assert "reads no camera" in capsys.readouterr().err


def test_the_report_shows_the_probes_saved_beside_the_evaluation(agents, tmp_path, capsys):
    from sim.report.report import write_report

    ev = tmp_path / "ev"
    argv = ["eval", "--agents", "straight", "--scenarios", "lane-keep", "--episodes", "1"]
    assert main([*argv, "--duration", "1", "--workers", "1", "--quiet", "--out", str(ev)]) == 0
    probe = ["probe", "looks", "--episodes", "1", "--duration", "3", "--quiet"]
    assert main([*probe, "--out", str(ev / "probe-looks.json")]) == 0
    (ev / "probe-notes.json").write_text('{"mine": true}\n')  # not drive's: left alone
    md = write_report(ev, videos=0)["md"].read_text()
    assert "## Does it look? Counterfactual probes (drive probe)" in md
    row = next(line for line in md.splitlines() if line.startswith("| looks |"))
    assert "| 100% |" in row and "probe-looks.json" in row
    teacher = json.loads((ev / "probe-looks.json").read_text())["teacher_summary"]
    shares = f"{100 * teacher['brakes_for_stopped_car']:.0f}% / "
    assert shares in row  # the teacher's answers on the same states, beside the agent's
    assert "probe-notes.json" not in md


def test_the_teacher_answers_the_same_counterfactuals_from_their_truth(agents):
    """The expert, reading each edited scene's truth, is the probe's ceiling: it brakes for a
    car stopped in its lane and ignores the speed input's shift only as its plan says."""
    result = probe_agent(
        "blind", "highway", seeds=[3000, 3001], every=15, duration_s=4.0, progress=False
    )
    teacher = result["teacher_summary"]
    assert result["teacher"] == "expert" and teacher["states"] == result["summary"]["states"]
    assert all(set(r["teacher_actions"]) == set(r["actions"]) for r in result["states"])
    assert teacher["brakes_for_stopped_car"] >= 0.75
    assert teacher["stopped_acceleration_mean_change"] < -0.2
    assert result["summary"]["brakes_for_stopped_car"] == 0.0  # the blind policy, same states
    assert "the teacher (expert" in format_probe(result)
