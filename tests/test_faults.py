"""Sensor and actuation faults (``highway:noise=2``): what each degrades, how much, seeded, and
that the harness applies them the same way in every loop."""

import numpy as np
import pytest

from agents import BaseAgent, make_agent
from agents.base import StatelessMixin
from perception.corruptions import DIRT_RGB
from planning.geometry import wrap_angle
from sim.geometry.bev import BevCamera
from sim.harness.faults import FaultInjector, describe_fault, latency_steps, severity, touches
from sim.harness.loop import (
    Episode,
    agent_view,
    env_sensors_for,
    run_episode,
    run_episodes_lockstep,
)
from sim.harness.run import task_spec
from sim.world.env import DrivingEnv
from sim.world.scenarios import get_scenario

DT_S = 1.0 / 15.0
IMAGE_FAULTS = ("noise", "blur", "brightness", "dirt")
VIEW_SENSORS = ("cam_front", "cam_rear", "bev", "speed", "pose", "command", "map")
MANY = "highway:noise=2:dirt=1:drop=2:pose=2:speed=2:latency=2"


def _task(name="highway"):
    return task_spec(get_scenario(name), BevCamera())


@pytest.fixture(scope="module")
def clean_step():
    """One real step's observation, the clean view of every sensor an agent could read."""
    env = DrivingEnv(get_scenario("highway", duration_s=2.0), sensors=VIEW_SENSORS)
    ep = Episode(env, VIEW_SENSORS, seed=3)
    for _ in range(5):
        ep.apply(np.zeros(2), None)
    return agent_view(VIEW_SENSORS, ep.obs, ep.info, ep.static)


def _copy(view):
    return {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in view.items()}


def _equal(a, b) -> bool:
    return np.array_equal(np.asarray(a), np.asarray(b)) if isinstance(a, np.ndarray) else a == b


# -- what each fault touches ----------------------------------------------------------------------
@pytest.mark.parametrize("kind", IMAGE_FAULTS)
def test_an_image_fault_changes_every_camera_frame_and_nothing_else(kind):
    sc = get_scenario(f"highway:{kind}=2", duration_s=2.0)
    env = DrivingEnv(sc, sensors=VIEW_SENSORS)
    ep = Episode(env, VIEW_SENSORS, seed=1)
    before = _copy(ep.obs)
    faulty = ep.view()
    clean = agent_view(VIEW_SENSORS, ep.obs, ep.info, ep.static)
    for name in ("cam_front", "cam_rear", "bev"):
        assert faulty[name].shape == clean[name].shape and faulty[name].dtype == np.uint8
        assert not np.array_equal(faulty[name], clean[name]), name
    for name in ("speed", "pose", "command", "map"):
        assert faulty[name] is clean[name], name
    assert all(_equal(before[k], ep.obs[k]) for k in before), "the env's own arrays were written to"
    assert ep.view() is faulty, "a second view() in one step must not degrade again"


@pytest.mark.parametrize("kind", IMAGE_FAULTS)
def test_image_fault_levels_are_ordered(kind, clean_step):
    frame = clean_step["cam_front"].astype(np.int16)
    change = [
        np.abs(
            FaultInjector(((kind, level),), 0, DT_S).observe(clean_step)["cam_front"] - frame
        ).mean()
        for level in (1, 2, 3)
    ]
    assert 0 < change[0] < change[1] < change[2], change


def test_lens_dirt_is_fixed_within_an_episode_and_differs_between_seeds(clean_step):
    grey = {"cam_front": np.full((128, 256, 3), 128, np.uint8)}
    inj = FaultInjector((("dirt", 3),), seed=0, dt_s=DT_S)
    first = inj.observe(grey)["cam_front"]
    inj.observe(clean_step)  # another frame in between
    assert np.array_equal(inj.observe(grey)["cam_front"], first)
    other = FaultInjector((("dirt", 3),), seed=1, dt_s=DT_S).observe(grey)["cam_front"]
    assert not np.array_equal(other, first)
    half_tint = (
        0.5 * np.abs(np.array(DIRT_RGB) - 128).mean()
    )  # at least half opaque: the edges are feathered
    covered = (np.abs(first.astype(np.int16) - 128).mean(axis=-1) > half_tint).mean()
    assert covered == pytest.approx(severity("dirt", 3), abs=0.05)


def test_a_dropped_step_repeats_exactly_the_last_delivered_frames():
    inj = FaultInjector((("drop", 3), ("noise", 1)), seed=4, dt_s=DT_S)
    p_drop = severity("drop", 3)
    prev, dropped, n = None, 0, 400
    for t in range(n):
        base = 60 if t % 2 else 180
        view = inj.observe(
            {
                "cam_front": np.full((8, 16, 3), base, np.uint8),
                "cam_rear": np.full((8, 16, 3), 255 - base, np.uint8),
                "speed": np.float32([t]),
            }
        )
        assert view["speed"][0] == t  # only cameras drop
        repeat = prev is not None and np.array_equal(view["cam_front"], prev["cam_front"])
        assert repeat == (
            prev is not None and np.array_equal(view["cam_rear"], prev["cam_rear"])
        ), "the whole rig drops together"
        if repeat:
            dropped += 1
        else:  # a fresh, noisy frame of this step
            assert abs(view["cam_front"].mean() - base) < 3, (t, view["cam_front"].mean(), base)
        if t == 0:
            assert not repeat
        prev = view
    assert abs(dropped / n - p_drop) < 0.08, dropped / n


def test_pose_noise_has_the_stated_bias_and_spread_and_touches_only_pose():
    pos_m, head_rad = severity("pose", 3)
    frame = np.zeros((4, 4, 3), np.uint8)
    truth = np.array([120.0, -4.0, 3.1])  # heading near +pi: the noisy one must wrap
    biases = []
    for seed in (0, 1):
        inj = FaultInjector((("pose", 3),), seed, DT_S)
        views = [
            inj.observe({"pose": truth, "speed": np.float32([20.0]), "cam_front": frame})
            for _ in range(3000)
        ]
        assert all(v["cam_front"] is frame and v["speed"][0] == 20.0 for v in views)
        pose = np.stack([v["pose"] for v in views])
        assert pose.dtype == np.float64 and np.all((pose[:, 2] >= -np.pi) & (pose[:, 2] < np.pi))
        err = np.column_stack([pose[:, :2] - truth[:2], wrap_angle(pose[:, 2] - truth[2])])
        bias = err.mean(axis=0)
        assert np.hypot(*bias[:2]) == pytest.approx(pos_m, rel=0.1)
        assert abs(bias[2]) == pytest.approx(head_rad, rel=0.1)
        assert err.std(axis=0) == pytest.approx([pos_m, pos_m, head_rad], rel=0.1)
        biases.append(bias)
    assert not np.allclose(biases[0], biases[1], atol=0.05 * pos_m)  # 3x the means' sampling error
    np.testing.assert_array_equal(truth, [120.0, -4.0, 3.1])  # the input was not written to


def test_sensed_objects_stay_exact_relative_to_a_car_whose_pose_is_off():
    """A pose fault hits where the car places itself on the map; the objects it senses (the
    privileged truth sensor) keep their geometry relative to it, so in the world frame they
    carry the same error.  Before, the expert's objects moved against its own position."""
    from sim.geometry.frames import world_to_ego

    pose = np.array([50.0, 2.0, 0.3])
    truth = {
        "id": np.array([0, 1]),
        "position_m": np.array([[70.0, 6.0], [30.0, -1.5]]),
        "heading_rad": np.array([0.25, -3.0]),
        "velocity_mps": np.array([[20.0, 5.0], [-10.0, 1.0]]),
        "speed_mps": np.array([20.6, 10.05]),
    }
    inj = FaultInjector((("pose", 3),), 7, DT_S)
    for _ in range(5):
        view = inj.observe({"pose": pose, "truth": truth})
        seen, truth_seen = view["pose"], view["truth"]
        assert not np.allclose(seen, pose)  # the pose is off ...
        np.testing.assert_allclose(  # ... the objects relative to it are not
            world_to_ego(truth_seen["position_m"], seen[:2], seen[2]),
            world_to_ego(truth["position_m"], pose[:2], pose[2]),
            atol=1e-9,
        )
        np.testing.assert_allclose(
            wrap_angle(truth_seen["heading_rad"] - seen[2]),
            wrap_angle(truth["heading_rad"] - pose[2]),
            atol=1e-12,
        )
        turn = wrap_angle(seen[2] - pose[2])
        c, s = np.cos(turn), np.sin(turn)
        np.testing.assert_allclose(
            truth_seen["velocity_mps"], truth["velocity_mps"] @ np.array([[c, s], [-s, c]])
        )
        assert truth_seen["speed_mps"] is truth["speed_mps"] and truth_seen["id"] is truth["id"]
    np.testing.assert_array_equal(truth["position_m"], [[70.0, 6.0], [30.0, -1.5]])  # untouched


def test_speed_noise_has_the_stated_scale_error_and_spread_and_touches_only_speed():
    scale, noise_mps = severity("speed", 3)
    inj = FaultInjector((("speed", 3),), 2, DT_S)
    pose = np.array([1.0, 2.0, 0.3])
    views = [inj.observe({"speed": np.float32([20.0]), "pose": pose}) for _ in range(3000)]
    assert all(v["pose"] is pose for v in views)
    speed = np.array([v["speed"][0] for v in views])
    assert views[0]["speed"].dtype == np.float32 and views[0]["speed"].shape == (1,)
    assert abs(speed.mean() / 20.0 - 1.0) == pytest.approx(scale, abs=0.01)
    assert speed.std() == pytest.approx(noise_mps, rel=0.1)
    stopped = FaultInjector((("speed", 3),), 2, DT_S)
    assert all(stopped.observe({"speed": np.float32([0.0])})["speed"][0] >= 0.0 for _ in range(100))


# -- latency ---------------------------------------------------------------------------------------
class Script(BaseAgent):
    """Outputs a known action sequence, one entry per call."""

    name = "script"
    sensors = ("speed",)

    def __init__(self, task, actions):
        super().__init__(task)
        self.actions, self.calls = actions, 0

    def reset(self, seed=None):
        self.calls = 0

    def act(self, obs):
        self.calls += 1
        return self.actions[self.calls - 1]


def _script(steps=30):
    t = np.arange(steps)
    return np.column_stack([0.3 * np.sin(t / 3.0), 0.05 * np.cos(t / 5.0)])


@pytest.mark.parametrize("level", [1, 2, 3])
def test_latency_delivers_the_agents_actions_k_steps_late(level):
    k = latency_steps(level, DT_S)
    assert k == {1: 1, 2: 2, 3: 4}[level]
    seq = _script()
    late = run_episode(
        DrivingEnv(get_scenario(f"highway:latency={level}", duration_s=2.0), sensors=("speed",)),
        Script(_task(), seq),
        seed=5,
    )
    assert late.status == "ok" and late.metrics["steps"] == len(seq)
    delivered = np.vstack([np.zeros((k, 2)), seq[:-k]])
    np.testing.assert_array_equal(late.trace.arrays()["actions"], delivered)
    # the world's response is that of a clean world driven by the shifted script
    shifted = run_episode(
        DrivingEnv(get_scenario("highway", duration_s=2.0), sensors=("speed",)),
        Script(_task(), delivered),
        seed=5,
    )
    for key in ("x_m", "y_m", "heading_rad", "speed_mps"):
        np.testing.assert_array_equal(late.trace.arrays()[key], shifted.trace.arrays()[key])


def test_without_latency_an_action_passes_through_unchanged():
    inj = FaultInjector((("noise", 1),), 0, DT_S)
    a = np.array([0.2, -0.1])
    assert inj.act(a) is a


# -- the harness applies them: seeded, the same in every loop, only where they touch ---------------
class Reader(StatelessMixin, BaseAgent):
    """Steers and brakes from the camera's brightness, the pose and the speedometer, so any
    fault on those reaches the world."""

    name = "reader"
    sensors = ("cam_front", "pose", "speed")

    def act(self, obs):
        light = obs["cam_front"].mean() / 255.0
        return np.array(
            [
                np.tanh(0.1 * (22.0 - float(obs["speed"][0]))),
                0.05 * (light - 0.5) + 0.02 * np.sin(obs["pose"][1]),
            ],
            np.float32,
        )


def _reader_run(name, seed):
    agent = Reader(_task())
    env = DrivingEnv(get_scenario(name, duration_s=2.0), sensors=env_sensors_for(agent))
    return run_episode(env, agent, seed)


def _record(result) -> dict:
    """The result record without the wall-clock decision latencies."""
    return {k: v for k, v in result.record().items() if not k.startswith("latency_")}


def _same(a, b):
    assert _record(a) == _record(b)
    ta, tb = a.trace.arrays(), b.trace.arrays()
    assert ta.keys() == tb.keys()
    for key in ta:
        if key != "latency_ms":  # wall-clock time of each decision
            np.testing.assert_array_equal(ta[key], tb[key], err_msg=key)


def test_the_same_seed_gives_the_same_faulty_episode():
    a, b = _reader_run(MANY, 7), _reader_run(MANY, 7)
    _same(a, b)
    clean = _reader_run("highway", 7)
    assert not np.array_equal(a.trace.arrays()["x_m"], clean.trace.arrays()["x_m"])
    assert not np.array_equal(
        _reader_run(MANY, 8).trace.arrays()["actions"], a.trace.arrays()["actions"]
    )


def test_an_agent_that_does_not_read_the_faulty_sensor_drives_the_clean_episode():
    expert = make_agent("expert", _task())
    assert not touches("noise", expert.sensors) and touches("pose", expert.sensors)
    runs = []
    for name in ("highway", "highway:noise=3:blur=3:dirt=3:drop=3"):
        runs.append(
            run_episode(
                DrivingEnv(get_scenario(name, duration_s=2.0), sensors=env_sensors_for(expert)),
                expert,
                seed=2,
            )
        )
    clean, faulty = (_record(r) for r in runs)
    assert faulty.pop("scenario") != clean.pop("scenario")
    assert faulty == clean
    np.testing.assert_array_equal(
        runs[0].trace.arrays()["actions"], runs[1].trace.arrays()["actions"]
    )


def test_lockstep_and_one_at_a_time_agree_under_faults():
    agent = Reader(_task())
    sc = get_scenario(MANY, duration_s=2.0)
    seeds = [0, 1, 2]
    serial = [run_episode(DrivingEnv(sc, sensors=env_sensors_for(agent)), agent, s) for s in seeds]
    envs = [DrivingEnv(sc, sensors=env_sensors_for(agent)) for _ in range(2)]
    batched = run_episodes_lockstep(envs, agent, seeds)
    for a, b in zip(serial, batched):
        _same(a, b)


# -- descriptions and errors -----------------------------------------------------------------------
def test_descriptions_name_the_units():
    assert describe_fault("latency", 2) == "actions 2 steps (133 ms) late"
    assert describe_fault("latency", 3) == "actions 4 steps (267 ms) late"
    assert describe_fault("noise", 3) == "camera noise, sigma 32 grey levels"
    assert "1 m" in describe_fault("pose", 3) and "2 deg" in describe_fault("pose", 3)
    assert "20 %" in describe_fault("speed", 3)


def test_touches_says_which_agents_a_fault_can_change():
    assert touches("latency", ())
    assert touches("blur", ("bev",)) and touches("drop", ("cam_rear", "speed"))
    assert not touches("dirt", ("truth", "map", "pose", "speed"))
    assert touches("speed", ("speed",)) and not touches("speed", ("pose",))


@pytest.mark.parametrize(
    "faults, match",
    [
        ((("fog", 1),), "unknown fault 'fog'; known: noise, blur"),
        ((("noise", 4),), "level 4 is not one of 1, 2, 3"),
        ((("noise", 1), ("noise", 2)), "given twice"),
    ],
)
def test_a_bad_fault_is_refused_with_the_known_ones(faults, match):
    with pytest.raises(ValueError, match=match):
        FaultInjector(faults, 0, DT_S)


def test_demos_are_never_recorded_under_faults(tmp_path):
    from sim.pipelines.record import record_dataset

    with pytest.raises(
        ValueError, match="demos are recorded without sensor or actuation faults.*'highway'"
    ):
        record_dataset(get_scenario("highway:latency=1"), [0], tmp_path / "demos", progress=False)
    assert not (tmp_path / "demos").exists()
