"""Each camera of the rig is an env sensor of its own (issue 20, "Sensors in the env")."""

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from agents import BaseAgent
from sim.geometry.bev import BevCamera
from sim.geometry.pinhole import CameraRig, PinholeCamera, default_rig
from sim.harness.loop import env_sensors_for, run_episode
from sim.harness.run import task_spec
from sim.world.env import DEFAULT_SENSORS, SENSORS, DrivingEnv
from sim.world.perspective import render_env
from sim.world.scenarios import get_scenario

SHORT = {"duration_s": 1.0}
RIG = ("cam_front", "cam_rear")


def test_sensor_names_come_from_the_default_rig():
    assert default_rig().names == RIG
    assert set(RIG) <= set(SENSORS)
    assert not set(RIG) & set(DEFAULT_SENSORS)


def test_check_env_passes_with_rig_cameras():
    env = DrivingEnv("highway", sensors=("cam_front", "cam_rear", "speed"), overrides=SHORT)
    check_env(env, skip_render_check=True)
    env.close()


def test_observation_space_shapes():
    env = DrivingEnv("highway", sensors=("cam_front", "cam_rear", "pose"))
    rig = default_rig()
    space = env.observation_space
    assert set(space.spaces) == {"cam_front", "cam_rear", "pose"}
    for name in RIG:
        box = space[name]
        assert box.shape == rig[name].shape == (128, 256, 3) and box.dtype == np.uint8
        assert box.low.min() == 0 and box.high.max() == 255
    obs, _ = env.reset(seed=0)
    assert space.contains(obs)
    obs, *_ = env.step(env.action_space.sample() * 0)
    assert space.contains(obs)
    assert obs["cam_front"].shape == (128, 256, 3) and obs["cam_rear"].dtype == np.uint8
    env.close()


def test_rig_cameras_absent_unless_declared():
    env = DrivingEnv("highway")  # sensors=None: every sensor but the rig's cameras
    assert not set(RIG) & set(env.observation_space.spaces)
    obs, _ = env.reset(seed=0)
    assert not set(RIG) & set(obs)
    env = DrivingEnv("highway", sensors=("cam_rear",))
    obs, _ = env.reset(seed=0)
    assert set(obs) == {"cam_rear"}


def test_custom_rig():
    rig = CameraRig({"cam_left": PinholeCamera(width_px=64, height_px=32, yaw_rad=np.pi / 2)})
    env = DrivingEnv("highway", sensors=("cam_left",), rig=rig)
    assert env.observation_space["cam_left"].shape == (32, 64, 3)
    obs, _ = env.reset(seed=0)
    assert obs["cam_left"].shape == (32, 64, 3)
    with pytest.raises(ValueError, match="cam_left"):
        DrivingEnv("highway", sensors=("cam_front",), rig=rig)


def test_same_seed_same_cam_bytes():
    frames = []
    for _ in range(2):
        env = DrivingEnv("highway", sensors=RIG)
        obs, _ = env.reset(seed=5)
        seq = [obs]
        for _ in range(3):
            obs, *_ = env.step(np.array([0.2, 0.05], dtype=np.float32))
            seq.append(obs)
        frames.append(seq)
        env.close()
    for a, b in zip(*frames, strict=True):
        for name in RIG:
            assert a[name].tobytes() == b[name].tobytes()
    # the frame shows something: road below the horizon, sky above
    assert len(np.unique(frames[0][0]["cam_front"].reshape(-1, 3), axis=0)) > 2


def test_cam_equals_render_env_adapter():
    env = DrivingEnv("highway", sensors=("cam_front",))
    obs, _ = env.reset(seed=1)
    frame = render_env(env, default_rig()["cam_front"])
    assert frame.image.tobytes() == obs["cam_front"].tobytes()


def test_declaring_cam_front_changes_nothing_else():
    base = ("bev", "pose", "speed")
    envs = [
        DrivingEnv("highway", sensors=base),
        DrivingEnv("highway", sensors=(*base, "cam_front")),
    ]
    rng = np.random.default_rng(0)
    actions = rng.uniform(-1, 1, (6, 2)).astype(np.float32)
    runs = []
    for env in envs:
        obs, info = env.reset(seed=11)
        seq = [(obs, info["ego"], 0.0, False, False)]
        for a in actions:
            obs, r, term, trunc, info = env.step(a)
            seq.append((obs, info["ego"], r, term, trunc))
            if term or trunc:
                break
        runs.append(seq)
        env.close()
    assert len(runs[0]) == len(runs[1])
    for (oa, ea, ra, ta, tra), (ob, eb, rb, tb, trb) in zip(*runs, strict=True):
        for k in base:
            assert oa[k].tobytes() == ob[k].tobytes(), k
        assert "cam_front" not in oa and "cam_front" in ob
        assert np.array_equal(ea["position_m"], eb["position_m"])
        assert ea["speed_mps"] == eb["speed_mps"] and ea["heading_rad"] == eb["heading_rad"]
        assert (ra, ta, tra) == (rb, tb, trb)


def test_unknown_sensor_lists_known_ones():
    with pytest.raises(ValueError, match="cam_front") as e:
        DrivingEnv("highway", sensors=("cam_top",))
    assert "cam_top" in str(e.value) and "cam_rear" in str(e.value) and "bev" in str(e.value)


class Spy(BaseAgent):
    name = "spy"

    def __init__(self, task, sensors):
        super().__init__(task)
        self.sensors = sensors
        self.seen: list[dict] = []

    def act(self, obs):
        self.seen.append({k: np.shape(v) for k, v in obs.items()})
        return np.zeros(self.task.action_size)


def test_loop_hands_exactly_cam_front():
    task = task_spec(get_scenario("highway"), BevCamera())
    assert task.rig == default_rig()
    spy = Spy(task, ("cam_front",))
    assert env_sensors_for(spy) == ("cam_front",)
    env = DrivingEnv(get_scenario("highway", **SHORT), sensors=env_sensors_for(spy))
    run_episode(env, spy, 0)
    assert spy.seen and all(s == {"cam_front": (128, 256, 3)} for s in spy.seen)


RIG_DIGEST = """
import hashlib, numpy as np
from sim.world.env import DrivingEnv
h = hashlib.sha256()
env = DrivingEnv("roundabout", sensors=("cam_front", "cam_rear", "autopilot"))
obs, info = env.reset(seed=4)
for _ in range(6):
    for name in ("cam_front", "cam_rear"):
        h.update(obs[name].tobytes())
    h.update(env.render_camera(env.rig["cam_front"], instance=True, depth=True).depth_m.tobytes())
    obs, _, _, _, info = env.step(info["autopilot"])
print(h.hexdigest())
"""


def test_rig_frames_bit_identical_across_processes_and_hash_seeds():
    import os
    import subprocess
    import sys

    digests = set()
    for hash_seed in ("0", "123"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        out = subprocess.run(
            [sys.executable, "-c", RIG_DIGEST],
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        assert out.returncode == 0, out.stderr[-2000:]
        digests.add(out.stdout.strip())
    assert len(digests) == 1
