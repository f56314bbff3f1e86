"""The CenterNet detector: decoding, targets, training that learns, safe checkpoints."""

import json

import numpy as np
import pytest
import torch

from agents.modular import CameraPerception, ModularBevAgent
from perception.boxes import Boxes
from perception.checkpoint import CheckpointError, resolve_device
from perception.detectors.centernet import CenterNet, CenterNetConfig, decode
from perception.detectors.learned import LearnedDetector, load_checkpoint, save_checkpoint
from perception.detectors.opencv import OpenCVDetector
from perception.detectors.train import TrainConfig, encode_targets, train_detector
from planning.prediction import ObjectStates
from sim.cli import main
from sim.geometry.bev import BevCamera
from sim.harness.loop import agent_view, env_sensors_for, run_episode
from sim.harness.run import task_spec
from sim.pipelines.perception_data import record_frames
from sim.world.env import DrivingEnv
from sim.world.scenarios import get_scenario

CFG = CenterNetConfig(width=8)


def labels(rows):
    a = np.asarray(rows, dtype=float).reshape(-1, 3)
    n = len(a)
    return Boxes(
        a[:, :2], a[:, 2], np.full(n, 5.0), np.full(n, 2.0), np.zeros(n, np.int8), np.ones(n)
    )


def as_logits(targets: dict) -> dict:
    """Targets in the shape of network outputs (heatmap as logits)."""
    p = np.clip(targets["heatmap"], 1e-6, 1 - 1e-6)
    out = {k: torch.from_numpy(v) for k, v in targets.items() if k != "mask"}
    out["heatmap"] = torch.from_numpy(np.log(p / (1 - p)))
    return out


def test_decoding_a_synthetic_heatmap_finds_the_box():
    h = w = 32
    heat = torch.full((1, 1, h, w), -10.0)
    heat[0, 0, 10, 20] = 5.0  # one confident peak at cell (x=20, y=10)
    outputs = {
        "heatmap": heat,
        "offset": torch.zeros(1, 2, h, w),
        "size": torch.zeros(1, 2, h, w),
        "heading": torch.zeros(1, 2, h, w),
    }
    outputs["offset"][0, :, 10, 20] = torch.tensor([0.25, -0.5])
    outputs["size"][0, :, 10, 20] = torch.tensor([4.5, 1.8])
    outputs["heading"][0, :, 10, 20] = torch.tensor([np.sin(0.4), np.cos(0.4)])  # 2a = 0.4
    (boxes,) = decode(outputs, CFG, threshold=0.3)
    assert len(boxes) == 1
    uv = (np.array([20.25, 9.5]) + 0.5) * 4 - 0.5
    assert boxes.centre_m[0] == pytest.approx(CFG.camera.pixel_to_ego(uv))
    assert (boxes.length_m[0], boxes.width_m[0]) == (pytest.approx(4.5), pytest.approx(1.8))
    assert boxes.heading_rad[0] == pytest.approx(0.2)
    assert boxes.score[0] == pytest.approx(torch.sigmoid(torch.tensor(5.0)).item())


def test_targets_decode_back_to_the_labels():
    gt = labels([(20.0, 0.0, 0.0), (35.5, 4.2, 0.3), (-5.0, -3.7, -0.2)])
    (boxes,) = decode(as_logits(encode_targets([gt], CFG)), CFG, threshold=0.5)
    assert len(boxes) == 3
    got, want = np.argsort(boxes.centre_m[:, 0]), np.argsort(gt.centre_m[:, 0])
    assert np.allclose(boxes.centre_m[got], gt.centre_m[want], atol=1e-4)
    assert np.allclose(boxes.heading_rad[got], gt.heading_rad[want], atol=1e-4)


def test_network_checks_its_input_with_a_helpful_message():
    with pytest.raises(ValueError, match=r"expected images \[B, 3, 128, 128\].*frames_to_tensor"):
        CenterNet(CFG)(torch.zeros(1, 128, 128, 3))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("det")
    data = root / "data"
    record_frames(["highway"], 30, data, seed=5, every=5, per_episode=10, progress=False)
    ckpt = root / "ckpt"
    result = train_detector(
        data,
        ckpt,
        TrainConfig(epochs=6, width=8, batch_size=8, patience=6),
        device="cpu",
        progress=False,
        extra_meta={"git_revision": "test"},
    )
    return data, ckpt, result


def test_a_tiny_training_run_reduces_the_loss(trained):
    _, _, result = trained
    history = result["history"]
    assert history[-1]["train_loss"] < 0.5 * history[0]["train_loss"]
    assert result["best_val_loss"] < history[0]["val_loss"]
    # the checkpoint says how the run ended (the one training skeleton's labels)
    _, ckpt, _ = trained
    training = json.loads((ckpt / "detector.json").read_text())["training"]
    assert training["stopped"] == result["stopped"] in ("epochs", "early_stopping")
    assert training["epochs_trained"] == len(history) and training["complete"]
    assert training["samples_seen"] == result["samples_seen"] > 0


def test_checkpoint_round_trip_is_exact_and_self_describing(trained, tmp_path):
    _, ckpt, _ = trained
    model, meta = load_checkpoint(ckpt)
    assert meta["architecture"] == "centernet-v1" and meta["config"]["width"] == 8
    assert meta["git_revision"] == "test" and meta["training"]["val_frames"] > 0
    save_checkpoint(model, tmp_path / "copy", {"note": "copy"})
    again, _ = load_checkpoint(tmp_path / "copy")
    x = torch.randint(0, 255, (2, 3, 128, 128), dtype=torch.uint8)
    with torch.inference_mode():
        a, b = model(x), again(x)
    assert all(torch.equal(a[k], b[k]) for k in a)


def _copy(src, dst):
    dst.mkdir()
    for f in src.iterdir():
        if f.is_file():
            (dst / f.name).write_bytes(f.read_bytes())
    return dst


def test_damaged_or_mismatched_checkpoints_are_refused(trained, tmp_path):
    _, ckpt, _ = trained
    broken = _copy(ckpt, tmp_path / "broken")
    data = (broken / "model.safetensors").read_bytes()
    (broken / "model.safetensors").write_bytes(data[: len(data) // 3])
    with pytest.raises(CheckpointError, match="model.safetensors: cannot be read"):
        load_checkpoint(broken)
    other = _copy(ckpt, tmp_path / "other")
    meta = json.loads((other / "detector.json").read_text())
    meta["architecture"] = "yolo"
    (other / "detector.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="architecture 'yolo'"):
        load_checkpoint(other)
    wider = _copy(ckpt, tmp_path / "wider")
    meta = json.loads((wider / "detector.json").read_text())
    meta["config"]["width"] = 16
    (wider / "detector.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="does not fit the config"):
        load_checkpoint(wider)
    with pytest.raises(CheckpointError, match="not a detector checkpoint"):
        load_checkpoint(tmp_path)


def test_learned_detector_runs_batched_on_the_cpu(trained):
    from perception.dataset import FrameDataset

    data, ckpt, _ = trained
    frames = np.stack([f for f, _, _ in FrameDataset(data).iter_frames()][:4])
    det = LearnedDetector(ckpt, device="cpu")
    batch = det.detect_batch(frames)
    assert len(batch) == 4 and all(isinstance(b, Boxes) for b in batch)
    single = det.detect(frames[0])
    assert np.allclose(single.centre_m, batch[0].centre_m)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA device"):
            resolve_device("cuda")


def test_cli_trains_and_evaluates_the_learned_detector(trained, tmp_path, capsys):
    data, ckpt, _ = trained
    out = tmp_path / "cli_ckpt"
    assert (
        main(
            [
                "train",
                "detector",
                "--data",
                str(data),
                "--out",
                str(out),
                "--epochs",
                "1",
                "--width",
                "8",
                "--quiet",
            ]
        )
        == 0
    )
    assert "checkpoint:" in capsys.readouterr().out and (out / "detector.json").exists()
    assert (
        main(
            [
                "eval",
                "detector",
                "--data",
                str(data),
                "--detector",
                f"opencv,learned:{ckpt}",
                "--corrupt",
                "none",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    assert f"learned:{ckpt}" in capsys.readouterr().out
    assert (
        main(
            [
                "train",
                "detector",
                "--data",
                str(data),
                "--out",
                str(out),
                "--epochs",
                "1",
                "--quiet",
            ]
        )
        == 2
    )
    assert "already exists" in capsys.readouterr().err


class BlindDetector:
    """A detector that never sees anything."""

    device = "cpu"

    def detect(self, frame):
        return Boxes.empty()


def cars_tracked_ahead(agent, scenario, seed, steps, range_m=40.0, match_m=3.0) -> int:
    """Decisions at which the agent's perception reported a vehicle within ``match_m`` of a
    real one that is up to ``range_m`` ahead of the ego (ground truth kept from the agent)."""
    env = DrivingEnv(scenario, sensors=tuple(set(env_sensors_for(agent)) | {"truth"}))
    obs, info = env.reset(seed=seed)
    static = {"map": info["map"]}
    agent.reset(seed)
    hits = 0
    try:
        for _ in range(steps):
            agent.act(agent_view(agent.sensors, obs, info, static))
            seen = agent.overlay.objects.position_m
            pose, truth = obs["pose"], info["truth"]
            rel = truth["position_m"] - pose[:2]
            ahead = rel @ np.array([np.cos(pose[2]), np.sin(pose[2])])
            cars = truth["position_m"][(truth["kind"] == 0) & (ahead > 0) & (ahead < range_m)]
            if len(seen) and len(cars):
                hits += bool((np.linalg.norm(seen[:, None] - cars[None], axis=-1) < match_m).any())
            obs, _, terminated, truncated, info = env.step(
                np.zeros(env.action_space.shape, np.float32)
            )
            if terminated or truncated:
                break
    finally:
        env.close()
    return hits


def test_modular_bev_drives_from_the_bev_camera_only(trained):
    _, ckpt, _ = trained
    sc = get_scenario("highway", duration_s=3.0)
    agent = ModularBevAgent(task_spec(sc, BevCamera()), checkpoint=str(ckpt))
    assert set(agent.sensors) == {"bev", "pose", "map", "speed"}  # no truth
    env = DrivingEnv(sc, sensors=env_sensors_for(agent))
    result = run_episode(env, agent, 3)
    env.close()
    assert result.status in ("ok", "collision"), result.error  # a 4-epoch detector; it must run
    assert result.device == "cpu"
    assert isinstance(agent.perception.last_detections, Boxes)
    assert isinstance(agent.overlay.objects, ObjectStates)


def test_the_modular_stack_sees_the_cars_ahead_through_its_detector():
    """Detector -> tracker -> planner carries what the camera sees: with a detector that
    works (the geometric one; a 4-epoch CenterNet sees little) the planner is handed the
    cars ahead where they are, and with a blind detector in the same seat it never is."""
    sc = get_scenario("highway", duration_s=3.0)
    task = task_spec(sc, BevCamera())

    def seat(detector):
        return ModularBevAgent(
            task, perception=CameraPerception(detector=detector, dt_s=1.0 / task.control_hz)
        )

    assert cars_tracked_ahead(seat(OpenCVDetector(task.bev)), sc, 3, steps=30) >= 20
    assert cars_tracked_ahead(seat(BlindDetector()), sc, 3, steps=30) == 0


def test_a_missing_detector_stops_a_run_up_front(tmp_path, capsys):
    code = main(
        [
            "run",
            "--agent",
            f"modular-bev:{tmp_path / 'nothing'}",
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
    assert "no detector checkpoint" in err and "drive train detector" in err
    assert main(["run", "--agent", "expert:foo", "--out", str(tmp_path / "r2")]) == 2
    assert "takes no checkpoint" in capsys.readouterr().err


@pytest.mark.parametrize("dtype", [torch.int8, torch.float16])
def test_detector_weights_resaved_in_another_dtype_are_refused(tmp_path, dtype):
    from perception.checkpoint import WEIGHTS, write_weights

    model = CenterNet(CenterNetConfig())
    save_checkpoint(model, tmp_path / "d", {})
    write_weights(tmp_path / "d" / WEIGHTS, {k: v.to(dtype) for k, v in model.state_dict().items()})
    name = str(dtype).removeprefix("torch.")
    with pytest.raises(
        CheckpointError, match=rf"model.safetensors: .*dtype.*expected float32, found {name}"
    ):
        load_checkpoint(tmp_path / "d")
    with pytest.raises(CheckpointError, match=rf"found {name}"):
        LearnedDetector(tmp_path / "d", device="cpu")


def test_a_half_precision_network_takes_camera_frames_as_they_come():
    """fp16 weights (LearnedDetector's CUDA path) are fed uint8 frames and cast them to their own
    dtype: a float32 input to fp16 convolutions would fail."""
    import torch

    from perception.detectors.centernet import CenterNet, CenterNetConfig, decode, frames_to_tensor

    net = CenterNet(CenterNetConfig(width=8)).eval().half()
    out = net(frames_to_tensor(np.zeros((2, 128, 128, 3), np.uint8)))
    assert out["heatmap"].dtype == torch.float16
    assert len(decode(out, net.config)) == 2
