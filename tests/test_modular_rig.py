"""The modular agent on the camera rig: a detector per camera -> fusion -> tracker -> planner."""

import numpy as np
import pytest

from agents import make_agent
from agents.modular import ModularAgent, RigPerception
from perception.boxes import Boxes
from sim.cli import main
from sim.geometry.bev import BevCamera
from sim.geometry.pinhole import CameraRig, PinholeCamera
from sim.harness.loop import env_sensors_for, run_episode
from sim.harness.run import task_spec
from sim.world.env import DrivingEnv
from sim.world.scenarios import get_scenario
from tests.test_detector import cars_tracked_ahead


class Scripted:
    """A rig detector returning fixed ego-frame boxes per camera (by the camera's yaw)."""

    device = "cpu"

    def __init__(self, front: Boxes, rear: Boxes):
        self.front, self.rear, self.calls = front, rear, 0

    def detect_batch(self, frames, cameras):
        self.calls += 1
        assert len(frames) == len(cameras) and frames.ndim == 4
        return [self.rear if abs(c.yaw_rad) > 1.0 else self.front for c in cameras]


class BlindRig:
    device = "cpu"

    def detect_batch(self, frames, cameras):
        return [Boxes.empty() for _ in cameras]


def _car(x, y, score=0.9):
    return Boxes(
        np.array([[x, y]]),
        np.zeros(1),
        np.full(1, 5.0),
        np.full(1, 2.0),
        np.zeros(1),
        np.full(1, score),
        np.full(1, 1.5),
    )


def _task(name="highway", **kw):
    return task_spec(get_scenario(name, **kw), BevCamera())


def test_modular_sees_only_the_rig_pose_map_and_speed():
    task = _task()
    agent = make_agent("modular", task)
    assert set(agent.sensors) == {"cam_front", "cam_rear", "pose", "map", "speed"}
    assert agent.checkpoints() == ("runs/detector-rig",)
    assert make_agent("modular:geometric", task).checkpoints() == ()
    rig = CameraRig({"cam_left": PinholeCamera(yaw_rad=np.pi / 2)})
    with pytest.raises(ValueError, match="unknown rig camera.*the rig has cam_left"):
        RigPerception(rig, cameras=("cam_front",))


def test_cameras_are_fused_then_tracked_into_world_objects():
    task = _task(duration_s=2.0)
    # the same car reported twice (as two overlapping cameras would) and one behind
    perception = RigPerception(
        task.rig, detector=Scripted(_car(20.0, 0.0), _car(-15.0, 3.5)), dt_s=1 / 15
    )
    agent = ModularAgent(task, perception=perception)
    env = DrivingEnv(get_scenario("highway", duration_s=2.0), sensors=env_sensors_for(agent))
    result = run_episode(env, agent, 0)
    env.close()
    assert result.status in ("ok", "collision")
    assert perception.detector.calls == result.metrics["steps"]  # one batched call per decision
    assert len(perception.last_detections) == 2 and set(perception.last_per_camera) == {
        "cam_front",
        "cam_rear",
    }
    assert set(agent.overlay.camera_detections) == {"cam_front", "cam_rear"}
    objects = agent.overlay.objects
    assert len(objects.position_m) == 2  # confirmed tracks, world frame


def test_the_rig_stack_sees_the_cars_ahead_through_its_detector():
    """With the geometric detector the planner is handed the cars ahead where they are; a
    blind detector in the same seat hands it none."""
    task = _task(duration_s=3.0)
    sc = get_scenario("highway", duration_s=3.0)
    seen = cars_tracked_ahead(ModularAgent(task, "geometric"), sc, 3, steps=30)
    blind = cars_tracked_ahead(
        ModularAgent(task, perception=RigPerception(task.rig, detector=BlindRig())), sc, 3, steps=30
    )
    assert seen >= 20 and blind == 0


def test_a_missing_rig_detector_stops_a_run_and_says_how_to_make_one(tmp_path, capsys):
    code = main(
        [
            "run",
            "--agent",
            f"modular:{tmp_path / 'nothing'}",
            "--episodes",
            "1",
            "--video",
            "none",
            "--out",
            str(tmp_path / "run"),
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert (
        "no rig detector checkpoint" in err
        and "--model mono3d" in err
        and "modular:geometric" in err
    )


def test_the_rig_reports_new_tracks_at_the_cautious_end_of_their_speed():
    """A car just confirmed ahead has a wide speed interval: with caution the planner is
    handed its slower end (and the ego's speed from the speedometer as the track's prior),
    without caution the filter's mean; the speedometer, not the pose, seeds the prior."""
    task = _task()
    frames = np.zeros(
        (2, task.rig["cam_front"].height_px, task.rig["cam_front"].width_px, 3), np.uint8
    )
    reported = {}
    for k in (0.0, 1.0):
        perception = RigPerception(
            task.rig, detector=Scripted(_car(40.0, 0.0), Boxes.empty()), caution_sigma=k
        )
        for step in range(3):
            pose = np.array([25.0 * step / 15, 0.0, 0.0])
            obs = {
                "cam_front": frames[0],
                "cam_rear": frames[1],
                "pose": pose,
                "speed": np.array([25.0]),
            }
            out = perception.perceive(obs, 1 / 15)
        reported[k] = out.speed_mps[0]
        sigma = perception.tracker.speed_sigma_mps()[0]
    assert reported[0.0] > 20.0  # the prior: moving with the ego
    assert reported[1.0] == pytest.approx(max(reported[0.0] - sigma, 0.0))
    assert reported[1.0] < reported[0.0] - 2.0
