"""The monocular 3D detector: targets decode back to labels, mirroring, checkpoints, training."""

import json
import math

import numpy as np
import pytest
import torch

from perception.boxes import Boxes
from perception.checkpoint import CheckpointError, fold_batchnorm, training_complete
from perception.dataset import FrameDataset
from perception.detectors.learned import META
from perception.detectors.mono3d import (
    Mono3DConfig,
    Mono3DDetector,
    Mono3DNet,
    decode,
    heading_from_observation,
    observation_angle,
    save_checkpoint,
    suppress_duplicates,
)
from perception.detectors.train_mono3d import (
    Mono3DTrainConfig,
    encode_targets,
    key_points,
    mirror_labels,
    target_objects,
    train_mono3d,
)
from perception.labels import camera_labels
from sim.cli import main
from sim.geometry.pinhole import PinholeCamera, default_rig
from sim.pipelines.perception_data import record_frames

CFG = Mono3DConfig(width=4)
RIG = default_rig()
FRONT, REAR = RIG["cam_front"], RIG["cam_rear"]


def scene(rows, camera: PinholeCamera):
    """Labels of ego-frame boxes ``(x, y, heading, length, width, height)`` as a recording
    stores them, every box fully visible."""
    a = np.asarray(rows, dtype=float).reshape(-1, 6)
    n = len(a)
    boxes = Boxes(a[:, :2], a[:, 2], a[:, 3], a[:, 4], np.zeros(n, np.int8), np.ones(n), a[:, 5])
    fields = camera_labels(boxes, np.arange(n), camera, None)
    fields["visible_px"] = np.full(
        n, 100, np.int32
    )  # no instance mask here: call everything visible
    return boxes, fields


def as_outputs(targets: dict) -> dict:
    """Targets in the shape of network outputs: what a perfect network would predict."""
    p = np.clip(targets["heatmap"], 1e-6, 1 - 1e-6)
    out = {k: torch.from_numpy(v) for k, v in targets.items() if k != "mask"}
    out["heatmap"] = torch.from_numpy(np.log(p / (1 - p)))
    out["facing"] = torch.from_numpy(20.0 * targets["facing"] - 10.0)  # logits for 0 / 1
    return out


def matched(det: Boxes, gt: Boxes) -> tuple[Boxes, Boxes]:
    order = [int(np.argmin(np.linalg.norm(gt.centre_m - c, axis=1))) for c in det.centre_m]
    return det, gt.select(np.array(order, dtype=np.int64))


# a car ahead, one in the next lane turning, one at 45 m, one beside the ego cut by the image's
# right border (its centre projects outside the image), a truck coming the other way
FRONT_ROWS = [
    (12.0, 0.0, 0.0, 5.0, 2.0, 1.5),
    (25.0, 4.0, 0.4, 5.0, 2.0, 1.5),
    (45.0, -3.5, -0.1, 5.0, 2.0, 1.5),
    (3.0, -4.0, 0.05, 5.0, 2.0, 1.5),
    (30.0, 8.0, math.pi - 0.1, 9.0, 2.5, 3.5),
]
REAR_ROWS = [(-15.0, 0.5, 0.0, 5.0, 2.0, 1.5), (-30.0, -4.0, 0.2, 4.5, 1.9, 1.4)]


@pytest.mark.parametrize(("rows", "camera"), [(FRONT_ROWS, FRONT), (REAR_ROWS, REAR)])
def test_targets_decode_back_to_the_labels(rows, camera):
    labels = scene(rows, camera)
    assert (
        not camera.in_image(labels[1]["centre_px"][3:4]).any() if camera is FRONT else True
    )  # truncated
    targets = encode_targets([labels], [camera], CFG, min_visible_px=1)
    assert targets["mask"].sum() == len(rows)
    (det,) = decode(as_outputs(targets), CFG, [camera], threshold=0.5)
    assert len(det) == len(rows)
    det, gt = matched(det, labels[0])
    assert det.centre_m == pytest.approx(gt.centre_m, abs=1e-3)
    assert (
        np.abs(np.angle(np.exp(1j * (det.heading_rad - gt.heading_rad)))).max() < 1e-4
    )  # full circle, not mod pi
    for name in ("length_m", "width_m", "height_m"):
        assert getattr(det, name) == pytest.approx(getattr(gt, name), rel=1e-4)


def test_truncated_key_point_is_on_the_border_on_the_way_to_the_centre():
    _, fields = scene(FRONT_ROWS, FRONT)
    key, truncated = key_points(fields, FRONT)
    assert truncated.tolist() == [False, False, False, True, False]
    assert key[~truncated] == pytest.approx(fields["centre_px"][~truncated].astype(float))
    k, c = key[3], fields["centre_px"][3].astype(float)
    box = fields["box_px"][3].astype(float)
    start = 0.5 * (box[:2] + box[2:])
    assert FRONT.in_image(k) and k[0] == pytest.approx(
        FRONT.width_px - 0.5, abs=0.01
    )  # the right border
    cross = (k - start)[0] * (c - start)[1] - (k - start)[1] * (c - start)[0]
    assert (
        abs(cross) < 1e-6 * np.linalg.norm(c - start) ** 2
    )  # on the segment box centre -> 3D centre


def test_labels_with_few_visible_pixels_or_behind_the_lens_are_not_targets():
    boxes, fields = scene(
        FRONT_ROWS[:2] + [(0.4, 3.5, 0.0, 5.0, 2.0, 1.5)], FRONT
    )  # the last: level with the lens
    fields["visible_px"][1] = 2
    t = target_objects((boxes, fields), FRONT, CFG, min_visible_px=4)
    assert len(t["cell"]) == 1 and t["depth_m"][0] == pytest.approx(fields["depth_m"][0])


def test_the_weaker_of_two_peaks_on_one_car_is_dropped():
    centre = np.array([[10.0, 0.0], [11.5, 0.3], [10.0, 3.5], [30.0, 0.0]])
    keep = suppress_duplicates(centre, np.array([0.6, 0.9, 0.5, 0.4]), 2.0)
    assert keep.tolist() == [1, 2, 3]


def test_observation_angle():
    # a car straight ahead driving away shows its back: alpha 0; one coming at the lens: pi
    assert observation_angle(np.array([[20.0, 0.0]]), np.array([0.0]), FRONT) == pytest.approx(
        [0.0]
    )
    assert abs(
        observation_angle(np.array([[20.0, 0.0]]), np.array([np.pi]), FRONT)[0]
    ) == pytest.approx(np.pi)
    # behind the ego, driving the ego's way, seen by the rear camera: coming at it
    assert abs(
        observation_angle(np.array([[-20.0, 0.0]]), np.array([0.0]), REAR)[0]
    ) == pytest.approx(np.pi)
    # a car 45 deg to the left driving forward is seen at alpha = -45 deg (the ray turned left)
    x = np.array([[20.0, 19.5]])  # lens at x = 0.5
    assert observation_angle(x, np.array([0.0]), FRONT) == pytest.approx([-np.pi / 4])
    rng = np.random.default_rng(0)
    centre, heading = rng.uniform(-40, 40, (20, 2)), rng.uniform(-np.pi, np.pi, 20)
    for cam in (FRONT, REAR, PinholeCamera(yaw_rad=0.7, y_m=0.4)):
        back = heading_from_observation(observation_angle(centre, heading, cam), centre, cam)
        assert np.allclose(np.exp(1j * back), np.exp(1j * heading))


@pytest.mark.parametrize(
    "camera", [FRONT, REAR, PinholeCamera(yaw_rad=0.6, x_m=1.0, y_m=0.8, pitch_rad=0.1)]
)
def test_mirrored_labels_are_what_the_mirrored_image_shows(camera):
    rng = np.random.default_rng(1)
    n = 12
    forward = rng.uniform(5, 60, n)
    side = rng.uniform(-0.8, 0.8, n) * forward
    c, s = math.cos(camera.yaw_rad), math.sin(camera.yaw_rad)
    xy = np.stack(
        [camera.x_m + c * forward - s * side, camera.y_m + s * forward + c * side], axis=1
    )
    rows = np.column_stack(
        [xy, rng.uniform(-np.pi, np.pi, n), np.full(n, 5.0), np.full(n, 2.0), np.full(n, 1.5)]
    )
    labels = scene(rows, camera)
    boxes, fields = labels
    mboxes, mfields = mirror_labels(labels, camera)
    # the mirrored 3D boxes project where the mirrored pixel fields say
    again = camera_labels(mboxes, np.arange(n), camera, None)
    for key in ("centre_px", "bottom_px", "box_px"):
        assert mfields[key] == pytest.approx(again[key], abs=1e-3)
    assert mfields["depth_m"] == pytest.approx(again["depth_m"], abs=1e-4)
    assert fields["centre_px"][:, 0] + mfields["centre_px"][:, 0] == pytest.approx(
        camera.width_px - 1.0, abs=1e-3
    )
    # the observation angle changes sign, and mirroring twice is the identity
    a, ma = (observation_angle(b.centre_m, b.heading_rad, camera) for b in (boxes, mboxes))
    assert np.allclose(np.exp(1j * ma), np.exp(-1j * a))
    twice, _ = mirror_labels((mboxes, mfields), camera)
    assert twice.centre_m == pytest.approx(boxes.centre_m) and np.allclose(
        np.exp(1j * twice.heading_rad), np.exp(1j * boxes.heading_rad)
    )


def test_mirrored_targets_are_the_targets_flipped():
    # (a centre exactly on a cell border, like straight ahead of the lens, u = cx = 127.5, falls
    # into the cell right of it both ways; shifted off it here)
    labels = scene([(12.0, 0.3, 0.0, 5.0, 2.0, 1.5)] + FRONT_ROWS[1:], FRONT)
    t = encode_targets([labels], [FRONT], CFG, 1)
    m = encode_targets([mirror_labels(labels, FRONT)], [FRONT], CFG, 1)
    flip = {k: v[..., ::-1] for k, v in t.items()}
    for k in ("heatmap", "mask", "depth", "size", "facing"):
        assert m[k] == pytest.approx(flip[k], abs=1e-4), k
    assert m["offset"][:, 0] == pytest.approx(
        -flip["offset"][:, 0], abs=1e-4
    )  # u offsets turn round
    assert m["offset"][:, 1] == pytest.approx(flip["offset"][:, 1], abs=1e-4)
    assert m["axis"][:, 0] == pytest.approx(
        -flip["axis"][:, 0], abs=1e-4
    )  # sin 2 alpha: alpha -> -alpha
    assert m["axis"][:, 1] == pytest.approx(flip["axis"][:, 1], abs=1e-4)


def test_mirroring_a_rolled_camera_is_refused():
    camera = PinholeCamera(roll_rad=0.1)
    with pytest.raises(ValueError, match="roll"):
        mirror_labels(scene(FRONT_ROWS[:1], camera), camera)


# -- checkpoints and inference ------------------------------------------------------------
@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = Mono3DNet(CFG).eval()
    with torch.no_grad():  # a net that finds something: peaks in a few places
        model.heatmap[-1].bias.fill_(0.0)
    out = tmp_path_factory.mktemp("m3d") / "ckpt"
    save_checkpoint(model, out, {"training": {"complete": True}})
    return out, model


def frames(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 128, 256, 3), dtype=np.uint8)


def test_checkpoint_round_trip_and_batch_equals_single(checkpoint):
    path, model = checkpoint
    meta = json.loads((path / META).read_text())
    assert meta["architecture"] == "mono3d-v1" and meta["config"]["image_hw"] == [128, 256]
    det = Mono3DDetector(path, device="cpu", threshold=0.3)
    f = frames(3)
    cams = [FRONT, REAR, FRONT]
    with torch.no_grad():
        want = decode(model(torch.from_numpy(f.transpose(0, 3, 1, 2).copy())), CFG, cams, 0.3)
    batch = det.detect_batch(f, cams)
    assert sum(len(b) for b in batch) > 0
    for b, w, frame, cam in zip(batch, want, f, cams):
        one = det.detect(frame, cam)
        for got in (b, one):
            assert len(got) == len(w)
            assert got.centre_m == pytest.approx(w.centre_m, abs=1e-4)
            assert got.score == pytest.approx(w.score, abs=1e-5)
            assert got.height_m == pytest.approx(w.height_m, rel=1e-4)
    assert np.all(batch[1].centre_m[:, 0] < 0)  # the rear camera's detections are behind the ego


def test_folding_the_batch_norms_keeps_the_outputs_and_refuses_a_training_model():
    torch.manual_seed(0)
    model = Mono3DNet(CFG)
    for m in model.modules():  # normalisation statistics far from the identity
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-1.0, 1.0)
            m.running_var.uniform_(0.2, 3.0)
            m.weight.data.uniform_(0.5, 2.0)
            m.bias.data.uniform_(-0.5, 0.5)
    with pytest.raises(ValueError, match="eval"):
        fold_batchnorm(model)
    model.eval()
    x = torch.from_numpy(frames(2).transpose(0, 3, 1, 2).copy())
    with torch.no_grad():
        want = model(x)
        folded = fold_batchnorm(model)
        got = folded(x.contiguous(memory_format=torch.channels_last))
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    for k, w in want.items():
        assert got[k].shape == w.shape
        assert torch.allclose(got[k], w, atol=1e-4, rtol=1e-4), k


def test_a_camera_of_another_size_or_fov_is_refused(checkpoint):
    det = Mono3DDetector(checkpoint[0], device="cpu")
    with pytest.raises(ValueError, match=r"camera is 128x128 px.*trained on 256x128"):
        det.detect(frames(1)[0, :, :128], PinholeCamera(width_px=128))
    with pytest.raises(ValueError, match="90 deg field of view"):
        det.detect(frames(1)[0], PinholeCamera(hfov_deg=90.0))
    with pytest.raises(ValueError, match="N cameras"):
        det.detect_batch(frames(2), [FRONT])


def test_damaged_or_foreign_checkpoints_are_refused(checkpoint, tmp_path):
    model = checkpoint[1]
    bad = tmp_path / "bad"
    save_checkpoint(model, bad, {})
    weights = bad / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match="model.safetensors"):
        Mono3DDetector(bad, device="cpu")
    other = tmp_path / "other"
    save_checkpoint(Mono3DNet(Mono3DConfig(width=8)), other, {})
    meta = json.loads((other / META).read_text())
    meta["config"]["width"] = 4
    (other / META).write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="does not fit"):
        Mono3DDetector(other, device="cpu")
    meta["architecture"] = "centernet-v1"
    (other / META).write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="architecture 'centernet-v1'"):
        Mono3DDetector(other, device="cpu")


# -- training --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    out = tmp_path_factory.mktemp("m3d") / "data"
    record_frames(["highway"], 12, out, cameras=("cam_front",), per_episode=6, progress=False)
    return out


def test_trainer_runs_an_epoch_and_keeps_a_complete_checkpoint(tiny_data, tmp_path):
    out = tmp_path / "ckpt"
    result = train_mono3d(
        tiny_data,
        out,
        Mono3DTrainConfig(epochs=1, width=4, batch_size=4),
        device="cpu",
        progress=False,
        extra_meta={"note": "test"},
    )
    assert (
        len(result["history"]) == 1 and result["best_epoch"] == 1 and training_complete(out, META)
    )
    meta = json.loads((out / META).read_text())
    assert meta["training"]["cameras"] == ["cam_front"] and meta["note"] == "test"
    assert meta["cameras"]["cam_front"] == FrameDataset(tiny_data).camera("cam_front").to_dict()
    assert (out / "tensorboard").is_dir()
    frame, _, _ = next(FrameDataset(tiny_data).iter_frames("cam_front"))
    assert isinstance(Mono3DDetector(out, device="cpu").detect(frame, FRONT), Boxes)
    with pytest.raises(FileExistsError):
        train_mono3d(
            tiny_data, out, Mono3DTrainConfig(epochs=1, width=4), device="cpu", progress=False
        )


def test_trainer_refuses_cameras_it_cannot_use(tiny_data, tmp_path):
    with pytest.raises(ValueError, match="not perspective cameras.*known: cam_front"):
        train_mono3d(
            tiny_data,
            tmp_path / "x",
            Mono3DTrainConfig(cameras=("bev",)),
            device="cpu",
            progress=False,
        )


def test_cli_trains_mono3d_and_names_known_models(tiny_data, tmp_path, capsys):
    out = tmp_path / "cli"
    assert (
        main(
            [
                "train",
                "detector",
                "--data",
                str(tiny_data),
                "--out",
                str(out),
                "--model",
                "mono3d",
                "--cameras",
                "cam_front",
                "--epochs",
                "1",
                "--width",
                "4",
                "--batch-size",
                "4",
                "--quiet",
            ]
        )
        == 0
    )
    assert "val AP@2m" in capsys.readouterr().out and training_complete(out, META)
    assert (
        main(
            [
                "train",
                "detector",
                "--data",
                str(tiny_data),
                "--out",
                str(tmp_path / "y"),
                "--model",
                "yolo",
            ]
        )
        == 2
    )
    assert "unknown detector model 'yolo'; known: centernet, mono3d" in capsys.readouterr().err


def test_a_tiny_training_run_reduces_the_loss(tiny_data):
    """Thirty AdamW steps on eight real frames: the loss falls well below where it started."""
    from perception.detectors.mono3d import Mono3DConfig, Mono3DNet
    from perception.detectors.train_mono3d import encode_targets, load_samples, mono3d_loss

    torch.manual_seed(0)
    frames, labels, _, _ = load_samples(FrameDataset(tiny_data), ["cam_front"])
    config = Mono3DConfig(width=4)
    net = Mono3DNet(config)
    cameras = [FRONT] * 8
    x = torch.from_numpy(np.ascontiguousarray(frames[:8].transpose(0, 3, 1, 2)))
    target = {
        k: torch.from_numpy(v) for k, v in encode_targets(labels[:8], cameras, config).items()
    }
    assert target["mask"].sum() > 0
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        loss, _ = mono3d_loss(net(x), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.5 * losses[0]
