"""The end-to-end network on the camera rig: road crops, recovery views, multi-camera
PilotNet, rig demos, training and the agent's view matching the trainer's."""

import json
import math

import h5py
import numpy as np
import pytest
import torch

from agents import make_agent
from agents.e2e.agent import E2EAgent
from agents.e2e.demos import DemoError, load_demos
from agents.e2e.model import PilotNet, PilotNetConfig, aux_inputs, count_parameters, encode_pixels
from agents.e2e.rig import (
    DEFAULT_SIDE_VIEWS,
    INPUT_HW,
    RigInput,
    RoadCrop,
    SideView,
    parse_side_views,
    recovery_labels,
    side_camera,
)
from agents.e2e.train import BatchMaker, E2ETrainConfig, train_e2e
from sim.geometry.bev import BevCamera
from sim.geometry.pinhole import CameraRig, PinholeCamera, default_rig
from sim.harness.loop import run_episode
from sim.harness.run import task_spec
from sim.pipelines.record import NoiseConfig, record_dataset
from sim.world.env import DrivingEnv
from sim.world.scenarios import STEERING_RANGE_RAD, get_scenario

VIEWS = (SideView(0.5, 0.0), SideView(-1.0, 0.0), SideView(0.0, 5.0))


@pytest.fixture(scope="module")
def rig_demos(tmp_path_factory):
    root = tmp_path_factory.mktemp("rig")
    view = RigInput.build(default_rig(), ("cam_front", "cam_rear"), VIEWS)
    record_dataset(
        get_scenario("lane-keep", duration_s=2.0),
        [21, 22, 23],
        root / "demos",
        noise=NoiseConfig(0.3),
        progress=False,
        rig=view,
    )
    return root / "demos"


@pytest.fixture(scope="module")
def rig_policy(rig_demos, tmp_path_factory):
    out = tmp_path_factory.mktemp("rigpolicy") / "p"
    train_e2e(
        rig_demos,
        out,
        E2ETrainConfig(model="pilotnet-s", stack=2, stride=2, epochs=1, batch_size=16),
        device="cpu",
        progress=False,
    )
    return out


def _task(scenario="lane-keep", rig=None):
    return task_spec(get_scenario(scenario), BevCamera(), rig)


def test_road_crop_is_pilotnets_66x200_from_just_above_the_horizon():
    cam = default_rig()["cam_front"]
    crop = RoadCrop.for_camera(cam)
    assert (crop.top, crop.bottom, crop.left, crop.right) == (50, 128, 0, 256)  # horizon row 54.1
    frame = np.zeros(cam.shape, np.uint8)
    frame[crop.top :] = 200  # the road region only
    out = crop.apply(frame)
    assert out.shape == (*INPUT_HW, 3) and out.dtype == np.uint8 and np.all(out == 200)
    assert RoadCrop.from_dict(crop.to_dict()) == crop
    with pytest.raises(ValueError, match="do not fit"):
        crop.apply(np.zeros((64, 256, 3), np.uint8))


def test_a_side_camera_sees_the_world_as_from_the_shifted_turned_car():
    cam = default_rig()["cam_front"]
    view = SideView(0.8, 4.0)
    side = side_camera(cam, view)
    rng = np.random.default_rng(0)
    world = np.column_stack([rng.uniform(5, 40, 20), rng.uniform(-6, 6, 20), np.zeros(20)])
    # the same points in the frame of a car standing at (0, dy) turned by yaw
    th = math.radians(view.yaw_deg)
    d = world[:, :2] - [0.0, view.dy_m]
    local = np.column_stack(
        [
            math.cos(th) * d[:, 0] + math.sin(th) * d[:, 1],
            -math.sin(th) * d[:, 0] + math.cos(th) * d[:, 1],
            world[:, 2],
        ]
    )
    uv_side, depth_side = side.project(world)
    uv_car, depth_car = cam.project(local)
    np.testing.assert_allclose(uv_side, uv_car, atol=1e-9)
    np.testing.assert_allclose(depth_side, depth_car, atol=1e-9)


def test_recovery_labels_steer_back_towards_the_path():
    label = np.array([[0.1]], np.float32)
    same = recovery_labels(
        label, np.array([8.0]), np.array([0.0]), np.array([0.0]), 0, STEERING_RANGE_RAD
    )
    np.testing.assert_allclose(same, label, atol=1e-6)  # no shift: the expert's own label
    left = recovery_labels(
        label, np.array([8.0]), np.array([1.0]), np.array([0.0]), 0, STEERING_RANGE_RAD
    )
    turned_left = recovery_labels(
        label, np.array([8.0]), np.array([0.0]), np.radians([5.0]), 0, STEERING_RANGE_RAD
    )
    assert (
        left[0, 0] < label[0, 0] and turned_left[0, 0] < label[0, 0]
    )  # standing left / facing left: steer right
    right = recovery_labels(
        label, np.array([8.0]), np.array([-1.0]), np.array([0.0]), 0, STEERING_RANGE_RAD
    )
    assert right[0, 0] > label[0, 0]
    assert parse_side_views("0.5:0, -1:0,0:5") == VIEWS
    assert parse_side_views("none") == ()
    assert parse_side_views("default") == tuple(SideView(dy, yaw) for dy, yaw in DEFAULT_SIDE_VIEWS)
    with pytest.raises(ValueError, match="SHIFT_M:YAW_DEG"):
        parse_side_views("left")
    with pytest.raises(ValueError, match="within"):
        SideView(5.0, 0.0)


def test_multi_camera_pilotnet_runs_every_camera_through_one_encoder():
    one = PilotNet(PilotNetConfig(image_hw=INPUT_HW, cameras=("cam_front",)))
    assert 240_000 < count_parameters(one) < 260_000  # PilotNet's ~250k on its own 66x200 input
    assert one.flat_features == 64 * 18  # the original's 1x18x64 map
    torch.manual_seed(0)
    two = PilotNet(
        PilotNetConfig(width="s", image_hw=INPUT_HW, cameras=("cam_front", "cam_rear"), stack=2)
    ).eval()
    x = torch.randint(0, 256, (3, 66, 200, 12), dtype=torch.uint8)
    aux = aux_inputs([1.0, 2.0, 3.0], [0, 0, 0], two.config)
    with torch.no_grad():
        pixels = x.permute(0, 3, 1, 2).float()
        per_camera = torch.cat(
            [encode_pixels(two.features, two.pool, pixels[:, k : k + 6]) for k in (0, 6)], dim=1
        )
        np.testing.assert_allclose(two.encode(pixels).numpy(), per_camera.numpy(), atol=1e-5)
        swapped = torch.cat([x[..., 6:], x[..., :6]], dim=-1)
        assert not torch.allclose(
            two(x, aux), two(swapped, aux)
        )  # the head knows which camera is which
    with pytest.raises(ValueError, match=r"3 x stack 2 x cameras 2"):
        two(x[..., :6], aux)
    with pytest.raises(ValueError, match="named twice"):
        PilotNetConfig(cameras=("cam_front", "cam_front"))


def test_rig_demos_hold_road_crops_recovery_views_and_their_labels(rig_demos):
    d = load_demos(rig_demos)
    n = len(d)
    assert d.rig["cameras"] == ["cam_front", "cam_rear"]
    assert d.frames.shape == (n, 66, 200, 6) and d.image_hw == INPUT_HW
    assert d.side_frames.shape == (n, 3, 66, 200, 6) and d.side_labels.shape == (n, 3, 1)
    # each recovery label is the expert's label corrected for that view
    want = recovery_labels(
        np.repeat(d.labels[:, None], 3, axis=1),
        d.speed[:, None],
        np.array([v.dy_m for v in VIEWS])[None],
        np.radians([v.yaw_deg for v in VIEWS])[None],
        0,
        STEERING_RANGE_RAD,
    )
    np.testing.assert_allclose(d.side_labels, want, atol=1e-6)
    assert not np.array_equal(d.side_frames[:, 0], d.frames)  # rendered from elsewhere
    sub = d.subset([1])
    assert sub.side_frames.shape[0] == len(sub) == int(np.sum(d.episode == 1))


def test_a_flipped_byte_in_a_recovery_view_is_caught(rig_demos, tmp_path):
    import shutil

    copy = tmp_path / "demos"
    shutil.copytree(rig_demos, copy)
    with h5py.File(copy / "data" / "main_data.hdf5", "r+") as f:
        f["episode_1/infos/side_cam_rear"][3, 1, 10, 10, 0] ^= 0xFF
    with pytest.raises(DemoError, match="episode_1: content hash mismatch"):
        load_demos(copy)


def test_the_agent_sees_exactly_what_training_fed_the_network(rig_demos, rig_policy):
    """Closed-loop input == the trainer's (no augmentation): road crops of both cameras,
    stacked with the stride, camera-major - from the env's full camera frames."""
    d = load_demos(rig_demos)
    agent = make_agent(f"e2e:{rig_policy}", _task(), device="cpu")
    assert agent.sensors == ("cam_front", "cam_rear", "speed", "command")
    agent.prepare()
    maker = BatchMaker(d, agent.config, E2ETrainConfig(), STEERING_RANGE_RAD)
    sc = get_scenario("lane-keep", duration_s=2.0)
    env = DrivingEnv(sc, sensors=agent.sensors)
    obs, _ = env.reset(seed=21)  # the first demo episode, replayed with its executed actions
    with h5py.File(rig_demos / "data" / "main_data.hdf5") as f:
        actions = f["episode_0/actions"][()]
    rows = np.flatnonzero(d.episode == 0)
    for t, r in enumerate(rows[:12]):
        want, _, _ = maker.batch(np.array([r]), augment=False)
        view = agent.view(obs)
        got = agent.stacked_frames(0, view, 2, 2)
        b, h, w = 1, *got.shape[:2]
        got = got.reshape(b, h, w, 2, 2, 3).transpose(0, 1, 2, 4, 3, 5).reshape(b, h, w, 12)
        np.testing.assert_array_equal(got, want.numpy(), err_msg=f"step {t}")
        obs, *_ = env.step(actions[t])
    env.close()


def test_rig_policy_drives_and_refuses_another_camera_model(rig_policy):
    sc = get_scenario("lane-keep", duration_s=1.0)
    agent = make_agent(f"e2e:{rig_policy}", task_spec(sc, BevCamera()), device="cpu")
    result = run_episode(DrivingEnv(sc, sensors=agent.sensors), agent, 3)
    assert (
        result.status in ("ok", "offroad", "collision")
        and len(result.trace.arrays()["actions"]) > 0
    )
    wide = CameraRig(
        {"cam_front": PinholeCamera(hfov_deg=120.0), "cam_rear": default_rig()["cam_rear"]}
    )
    with pytest.raises(ValueError, match="other camera models for \\['cam_front'\\]"):
        E2EAgent(_task(rig=wide), str(rig_policy)).prepare()
    with pytest.raises(ValueError, match="reads camera"):
        E2EAgent(_task(rig=CameraRig({"cam_front": PinholeCamera()})), str(rig_policy)).prepare()


def test_training_draws_recovery_views_with_their_labels(rig_demos):
    d = load_demos(rig_demos)
    config = PilotNetConfig(width="s", image_hw=INPUT_HW, cameras=("cam_front", "cam_rear"))
    maker = BatchMaker(d, config, E2ETrainConfig(view_prob=1.0), STEERING_RANGE_RAD)
    idx = np.arange(0, len(d), 3)
    _, _, labels = maker.batch(idx, augment=True)
    # every sample came from one of its recovery views: its label is one of that state's side labels
    for i, y in zip(idx, labels.numpy()):
        assert np.min(np.abs(d.side_labels[i, :, 0] - y[0])) < 1e-6
    none = BatchMaker(d, config, E2ETrainConfig(view_prob=0.0), STEERING_RANGE_RAD)
    _, _, labels = none.batch(idx, augment=True)
    np.testing.assert_array_equal(labels.numpy(), d.labels[idx])


def test_cli_records_rig_demos(tmp_path, capsys):
    from sim.cli import main

    out = tmp_path / "d"
    assert (
        main(
            [
                "record",
                "--sensors",
                "rig",
                "--scenario",
                "lane-keep",
                "--episodes",
                "2",
                "--duration",
                "1",
                "--side-views",
                "0.5:0,0:-5",
                "--workers",
                "1",
                "--out",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    d = load_demos(out)
    assert d.rig["cameras"] == ["cam_front"] and d.side_frames.shape[1] == 2
    ckpt = tmp_path / "p"
    assert (
        main(
            [
                "train",
                "e2e",
                "--data",
                str(out),
                "--out",
                str(ckpt),
                "--model",
                "pilotnet-s",
                "--epochs",
                "1",
                "--view-prob",
                "0",
                "--quiet",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    meta = json.loads((ckpt / "e2e.json").read_text())
    assert meta["training"]["view_prob"] == 0.0 and meta["recovery_views"] == 2
    assert meta["config"]["cameras"] == ["cam_front"] and meta["config"]["image_hw"] == [66, 200]
    with pytest.raises(SystemExit) as bad:
        main(
            ["train", "e2e", "--data", str(out), "--out", str(tmp_path / "q"), "--view-prob", "1.5"]
        )
    assert (
        bad.value.code == 2 and "expected a number in [0, 1], got '1.5'" in capsys.readouterr().err
    )
    assert (
        main(
            [
                "record",
                "--sensors",
                "rig",
                "--cameras",
                "cam_side",
                "--out",
                str(tmp_path / "x"),
                "--quiet",
            ]
        )
        == 2
    )
    assert (
        "unknown rig camera(s) ['cam_side']; the rig has: cam_front, cam_rear"
        in capsys.readouterr().err
    )


def test_dagger_on_a_rig_policy_records_its_view_with_the_same_recovery_views(
    rig_policy, rig_demos, tmp_path
):
    from sim.pipelines.dagger import DaggerConfig, run_dagger

    config = DaggerConfig(
        rounds=1, episodes=1, beta=0.5, eval_episodes=1, workers=1, duration_s=1.5
    )
    result = run_dagger(
        rig_policy,
        tmp_path / "dagger",
        config,
        E2ETrainConfig(model="pilotnet-s", epochs=1, patience=1),
        device="cpu",
        progress=False,
    )
    assert [r["round"] for r in result["rounds"]] == [0, 1]
    new = load_demos(tmp_path / "dagger" / "rounds" / "1" / "demos")
    assert new.rig["cameras"] == ["cam_front", "cam_rear"] and new.side_frames.shape[1] == len(
        VIEWS
    )
    both = load_demos([rig_demos, tmp_path / "dagger" / "rounds" / "1" / "demos"])
    assert both.side_frames is not None and len(both.side_frames) == len(both)
    seeds = sorted(
        int(line.split('"seed": ')[1].split(",")[0])
        for line in (tmp_path / "dagger" / "rounds" / "1" / "eval" / "episodes.jsonl")
        .read_text()
        .splitlines()
    )
    assert seeds == [10000]  # the rounds are scored apart from the reported seeds 0..


def _rig_checkpoint(out, cameras=("cam_front",)):
    from agents.e2e.checkpoint import save_policy

    config = PilotNetConfig(width="s", image_hw=INPUT_HW, cameras=cameras)
    save_policy(
        PilotNet(config),
        out,
        {
            "camera": {},
            "action_names": ["steering"],
            "steering_range_rad": STEERING_RANGE_RAD,
            "rig": RigInput.build(default_rig(), cameras).to_dict(),
        },
    )
    return json.loads((out / "e2e.json").read_text())


def test_a_checkpoint_naming_an_unknown_camera_is_refused_with_the_known_ones(tmp_path):
    """A rig block naming a camera its rig lacks gave a bare ``KeyError: 'cam_left'``."""
    from agents.e2e.checkpoint import load_policy
    from perception.checkpoint import CheckpointError

    out = tmp_path / "p"
    meta = _rig_checkpoint(out)
    meta["rig"]["cameras"] = meta["config"]["cameras"] = ["cam_left"]
    (out / "e2e.json").write_text(json.dumps(meta))
    where = str(out / "e2e.json")
    with pytest.raises(
        CheckpointError, match=rf"{where}: .*'cam_left'.*known: cam_front, cam_rear"
    ):
        load_policy(out)
    with pytest.raises(CheckpointError, match="cam_left.*known: cam_front, cam_rear"):
        E2EAgent(_task(rig=default_rig()), str(out)).prepare()
    for edit, reason in (
        (lambda m: m.pop("rig"), "a rig policy .*no 'rig' block"),
        (lambda m: m["rig"].update(cameras=["cam_rear"]), r"network reads \['cam_front'\]"),
        (lambda m: m["rig"]["crops"].clear(), "bad 'rig' block"),
    ):
        meta = _rig_checkpoint(tmp_path / "q")
        edit(meta)
        (tmp_path / "q" / "e2e.json").write_text(json.dumps(meta))
        with pytest.raises(CheckpointError, match=rf"{tmp_path / 'q' / 'e2e.json'}: .*{reason}"):
            load_policy(tmp_path / "q")


def test_a_side_view_named_twice_is_refused():
    """``--side-views 0.5:0,0.5:0`` recorded the same view twice (twice the RAM and disk, and
    that view drawn twice as often)."""
    with pytest.raises(ValueError, match=r"recovery view 0.5:0 is named twice"):
        parse_side_views("0.5:0,-0.5:0,0.5")
    with pytest.raises(ValueError, match="named twice"):
        RigInput.build(default_rig(), ("cam_front",), (SideView(0, 5), SideView(0.0, 5.0)))
    assert len(parse_side_views("0.5:0,-0.5:0")) == 2


def test_view_prob_on_rig_demos_without_recovery_views(tmp_path, capsys):
    """``--view-prob 1`` on rig demos without recovery views trained on the centre view and
    recorded view_prob 1.0: an explicit value that cannot take effect is refused; the
    default records the 0 that took effect."""
    from sim.cli import main

    demos = tmp_path / "d"
    record_dataset(
        get_scenario("lane-keep", duration_s=1.0),
        [31, 32],
        demos,
        noise=NoiseConfig(0.0),
        progress=False,
        rig=RigInput.build(default_rig(), ("cam_front",)),
    )
    argv = ["train", "e2e", "--data", str(demos), "--model", "pilotnet-s", "--epochs", "1"]
    assert main([*argv, "--view-prob", "1", "--out", str(tmp_path / "p"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "--view-prob 1" in err and "no recovery views" in err and str(demos) in err
    assert not (tmp_path / "p").exists()
    assert main([*argv, "--out", str(tmp_path / "q"), "--quiet", "--device", "cpu"]) == 0
    meta = json.loads((tmp_path / "q" / "e2e.json").read_text())
    assert meta["training"]["view_prob"] == 0.0 and meta["recovery_views"] == 0
