"""3D auto-labels of the camera rig (issue 20): visibility from the instance mask,
truncation, 2D boxes, projected centres and depth; the format-2 dataset that carries them."""

import json

import numpy as np
import pytest

from perception.boxes import Boxes
from perception.dataset import DatasetError, FrameDataset
from perception.labels import (
    LABEL_RANGE_M,
    bev_labels,
    box_corners_3d,
    camera_labels,
    labels_from_truth,
    objects_in_ego,
)
from sim.geometry.bev import BevCamera
from sim.geometry.frames import ego_to_world, hw_to_world_heading, hw_to_world_xy
from sim.geometry.pinhole import default_rig
from sim.pipelines.perception_data import record_frames
from sim.world.env import DrivingEnv
from sim.world.perspective import object_heights, renderer_for
from sim.world.render import KIND_VEHICLE, SceneObjects

RIG = default_rig()
FRONT, REAR = RIG["cam_front"], RIG["cam_rear"]


@pytest.fixture(scope="module")
def road():
    env = DrivingEnv("highway", sensors=("speed",), overrides={"vehicles_count": 1})
    env.reset(seed=3)
    ego = env.world.vehicle
    yield (
        renderer_for(env.geometry),
        hw_to_world_xy(ego.position),
        float(hw_to_world_heading(ego.heading)),
    )
    env.close()


def _scene(road, ahead_left_m, length_m, width_m, ids):
    """Render boxes at ego-frame offsets (aligned with the ego) with the front camera; return
    the ego-frame :class:`Boxes` and the rendered instance mask."""
    renderer, xy, heading = road
    pts = np.asarray(ahead_left_m, dtype=np.float64).reshape(-1, 2)
    n = len(pts)
    length = np.broadcast_to(np.asarray(length_m, float), (n,)).copy()
    width = np.broadcast_to(np.asarray(width_m, float), (n,)).copy()
    kind = np.full(n, KIND_VEHICLE, np.int8)
    objs = SceneObjects(ego_to_world(pts, xy, heading), np.full(n, heading), length, width, kind)
    frame = renderer.render(FRONT, xy, heading, objs, ids=np.asarray(ids), instance=True)
    boxes = Boxes(pts, np.zeros(n), length, width, kind, np.ones(n), object_heights(length, kind))
    return boxes, np.asarray(ids), frame.instance


@pytest.mark.parametrize("ahead_m", [10.0, 20.0, 40.0])
def test_an_unoccluded_car_is_fully_visible_where_the_model_puts_it(road, ahead_m):
    boxes, ids, mask = _scene(road, [ahead_m, 0.0], 5.0, 2.0, [4])
    lab = camera_labels(boxes, ids, FRONT, mask)
    assert lab["visible_px"][0] == (mask == 4).sum() > 0
    assert lab["visible_fraction"][0] > 0.9
    assert lab["truncation"][0] == 0.0
    # the 2D box is the projected corners' bounds (an independent projection)
    corners = box_corners_3d(boxes)[0]
    q = (corners - FRONT.position_m) @ FRONT.rotation_ego_from_camera
    u = FRONT.cx + FRONT.fx * q[:, 0] / q[:, 2]
    v = FRONT.cy + FRONT.fy * q[:, 1] / q[:, 2]
    assert np.allclose(lab["box_px"][0], [u.min(), v.min(), u.max(), v.max()], atol=1e-3)
    # and the mask's pixels fill it to within a pixel
    rows, cols = np.nonzero(mask == 4)
    assert abs(cols.min() - u.min()) <= 1.0 and abs(cols.max() - u.max()) <= 1.0
    assert abs(rows.max() - v.max()) <= 1.0
    # depth of the centre along the optical axis; the centre and footprint centre project
    centre = np.array([ahead_m, 0.0, 0.75])
    uv, depth = FRONT.project(centre)
    assert lab["depth_m"][0] == pytest.approx(depth, abs=1e-4)
    assert depth == pytest.approx(
        (ahead_m - FRONT.x_m) * np.cos(FRONT.pitch_rad)
        + (FRONT.z_m - 0.75) * np.sin(FRONT.pitch_rad),
        abs=1e-6,
    )
    assert np.allclose(lab["centre_px"][0], uv, atol=1e-3)
    assert np.allclose(
        lab["bottom_px"][0], FRONT.project(np.array([ahead_m, 0.0, 0.0]))[0], atol=1e-3
    )
    assert lab["bottom_px"][0][1] > lab["centre_px"][0][1]  # the road contact is lower in the image


def test_a_car_hidden_behind_a_truck_is_labelled_invisible(road):
    boxes, ids, mask = _scene(road, [[40.0, 0.0], [15.0, 0.0]], [5.0, 12.0], [2.0, 2.5], [7, 8])
    boxes.height_m[:] = [1.5, 3.5]  # the second box is a truck (object_heights: >= 7 m long)
    lab = camera_labels(boxes, ids, FRONT, mask)
    assert lab["visible_px"][0] == 0 and lab["visible_fraction"][0] == 0.0
    assert np.isfinite(
        lab["box_px"][0]
    ).all()  # in the image, behind the truck: in view, not visible
    assert lab["visible_fraction"][1] > 0.9


def test_a_half_hidden_car_is_partly_visible(road):
    # seen from the camera (0.5 m ahead of the ego's centre), the 2.5 m wide truck's rear
    # 8.5 m away covers +-5.1 m at the car's rear 34.5 m away: a car centred 5.5 m left
    # shows about half of itself
    boxes, ids, mask = _scene(road, [[37.5, 5.5], [15.0, 0.0]], [5.0, 12.0], [2.0, 2.5], [7, 8])
    lab = camera_labels(boxes, ids, FRONT, mask)
    assert 0.1 < lab["visible_fraction"][0] < 0.9
    alone = camera_labels(
        boxes.select(np.array([True, False])),
        ids[:1],
        FRONT,
        _scene(road, [[37.5, 5.5]], 5.0, 2.0, [7])[2],
    )
    assert lab["visible_fraction"][0] == pytest.approx(
        lab["visible_px"][0] / alone["visible_px"][0], abs=0.05
    )


def test_truncation_at_the_image_border(road):
    # 100 deg HFOV: the left image edge is at 50 deg; a car straddling that ray is cut
    x = 12.0
    y_edge = (x - FRONT.x_m) * np.tan(np.radians(50.0))
    boxes, ids, mask = _scene(road, [[x, y_edge]], 5.0, 2.0, [3])
    lab = camera_labels(boxes, ids, FRONT, mask)
    assert 0.2 < lab["truncation"][0] < 0.8
    assert lab["box_px"][0][0] == -0.5  # clipped to the left edge
    assert lab["visible_fraction"][0] > 0.9  # truncation is not occlusion


def test_objects_behind_or_beside_the_camera(road):
    # behind the front camera: not in view, negative depth, no pixel
    boxes, ids, mask = _scene(road, [[-15.0, 0.0], [0.5, 3.5]], 5.0, 2.0, [1, 2])
    lab = camera_labels(boxes, ids, FRONT, mask)
    assert np.isnan(lab["box_px"][0]).all() and lab["visible_px"][0] == 0
    assert lab["depth_m"][0] < 0 and np.isnan(lab["centre_px"][0]).all()
    # beside the ego, straddling the camera's near plane: clipped, finite, mostly out of the image
    assert np.isfinite(lab["truncation"][1]) and lab["truncation"][1] > 0.3
    assert 0.0 <= lab["visible_fraction"][1] <= 1.0


def test_without_an_instance_mask_visibility_is_unknown_not_zero(road):
    boxes, ids, _ = _scene(road, [20.0, 0.0], 5.0, 2.0, [4])
    lab = camera_labels(boxes, ids, FRONT, None)
    assert np.isnan(lab["visible_fraction"][0]) and lab["visible_px"][0] == -1
    with pytest.raises(ValueError, match="instance mask"):
        camera_labels(boxes, ids, FRONT, np.zeros((5, 5), np.int32))


def test_bev_labels_mark_the_centre_inside_labels():
    env = DrivingEnv("highway", sensors=("truth", "pose"))
    obs, info = env.reset(seed=1)
    env.close()
    boxes, _ = objects_in_ego(info["truth"], obs["pose"], kinds=(0,))
    lab = bev_labels(boxes, BevCamera())
    old = labels_from_truth(info["truth"], obs["pose"], BevCamera())
    assert np.array_equal(boxes.centre_m[lab["visible_fraction"] > 0], old.centre_m)
    cut = lab["visible_fraction"] > 0
    assert np.isfinite(lab["box_px"][cut]).all() and (lab["truncation"][cut] < 1).all()
    assert np.isnan(lab["depth_m"]).all()


# ------------------------------------------------------------------------------ the dataset
@pytest.fixture(scope="module")
def rig_data(tmp_path_factory):
    out = tmp_path_factory.mktemp("rig") / "ds"
    manifest = record_frames(
        ["highway", "roundabout"],
        12,
        out,
        seed=5,
        every=6,
        per_episode=6,
        cameras=("bev", "cam_front", "cam_rear"),
        progress=False,
    )
    return out, manifest


def test_rig_dataset_round_trip(rig_data):
    out, manifest = rig_data
    ds = FrameDataset(out)
    assert list(ds.cameras) == ["bev", "cam_front", "cam_rear"]
    assert ds.camera("cam_front") == FRONT and ds.camera("bev") == BevCamera()
    assert manifest["version"] == 2
    for name in ds.cameras:
        items = list(ds.iter_frames(name, kinds=(0, 1)))
        assert len(items) == 12
        assert items[0][0].shape == ds.camera(name).shape
    front = list(ds.iter_frames("cam_front"))
    assert sum(len(b) for _, b, _ in front) > 0
    for _, boxes, meta in front:
        lab = meta["labels"]
        assert (lab["visible_px"] >= 1).all() and np.isfinite(lab["box_px"]).all()
        assert (boxes.range_m <= LABEL_RANGE_M).all() and (boxes.height_m > 0).all()
        assert len(lab["id"]) == len(boxes)


def test_rig_frames_and_labels_are_the_env_s_own(rig_data):
    out, _ = rig_data
    frame, boxes, meta = next(FrameDataset(out).iter_frames("cam_front", min_visible_px=0))
    env = DrivingEnv(meta["scenario"], sensors=("cam_front", "truth", "pose"))
    obs, info = env.reset(seed=meta["seed"])
    assert meta["step"] == 0
    assert np.array_equal(obs["cam_front"], frame)  # the sensor's bytes
    truth_boxes, ids = objects_in_ego(info["truth"], obs["pose"])
    mask = env.render_camera(FRONT, instance=True).instance
    env.close()
    lab = camera_labels(truth_boxes, ids, FRONT, mask)
    for k, i in enumerate(meta["labels"]["id"]):
        j = int(np.flatnonzero(ids == i)[0])
        assert np.allclose(boxes.centre_m[k], truth_boxes.centre_m[j])
        assert meta["labels"]["visible_px"][k] == lab["visible_px"][j]


def test_rig_dataset_errors_name_the_problem(rig_data, tmp_path):
    out, _ = rig_data
    ds = FrameDataset(out)
    with pytest.raises(
        DatasetError, match="no camera 'cam_left'; this dataset has bev, cam_front, cam_rear"
    ):
        next(ds.iter_frames("cam_left"))
    with pytest.raises(DatasetError, match="holds cameras bev, cam_front, cam_rear; name one"):
        next(ds.iter_frames())
    old = tmp_path / "v1"
    old.mkdir()
    m = json.loads((out / "manifest.json").read_text())
    m["version"] = 1
    (old / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(
        DatasetError, match="version 1; this code reads version 2 .*record it again"
    ):
        FrameDataset(old)
    m["version"] = 2
    m["cameras"]["cam_front"]["model"] = "fisheye"
    (old / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(
        DatasetError, match="camera 'cam_front': camera model 'fisheye'; known: bev, pinhole"
    ):
        FrameDataset(old)
    with pytest.raises(ValueError, match="unknown camera.*known: bev, cam_front, cam_rear"):
        record_frames(["highway"], 1, tmp_path / "x", cameras=("cam_left",), progress=False)


# ------------------------------------------------------------------ scoring rig detectors
class _Oracle:
    """A perfect perspective detector: the dataset's own labels of each frame, in order."""

    def __init__(self, ds, camera, shift_m=0.0):
        self.labels = [b for _, b, _ in ds.iter_frames(camera)]
        self.k, self.shift_m = 0, shift_m

    def detect(self, frame, camera):
        assert camera.width_px == frame.shape[1]
        b = self.labels[self.k]
        self.k += 1
        far = (
            b.centre_m * (1.0 + self.shift_m / np.maximum(b.range_m, 1e-9))[:, None]
        )  # push along the ray
        return Boxes(far, b.heading_rad, b.length_m, b.width_m, b.kind, b.score, b.height_m)


def test_rig_detectors_are_scored_with_depth_errors(rig_data, tmp_path):
    from sim.pipelines.perception_data import (
        depth_error_by_band,
        evaluate_detector,
        plot_depth_errors,
    )

    out, _ = rig_data
    ds = FrameDataset(out)
    perfect = evaluate_detector(_Oracle(ds, "cam_front"), ds, camera="cam_front")
    assert perfect["bands"]["all"]["2m"]["ap"] == pytest.approx(1.0)
    assert perfect["camera"] == "cam_front" and len(perfect["depth"]["error_m"]) > 0
    assert np.allclose(perfect["depth"]["error_m"], 0.0, atol=1e-9)
    off = evaluate_detector(_Oracle(ds, "cam_front", shift_m=1.0), ds, camera="cam_front")
    assert np.isclose(off["bands"]["all"]["0.5m"]["ap"], 0.0) and off["bands"]["all"]["2m"][
        "ap"
    ] == pytest.approx(1.0)
    err = np.asarray(off["depth"]["error_m"])
    # 1 m farther from the ego: 1 m deeper straight ahead, cos(bearing) m off to the side
    assert np.all((err > 0.3) & (err < 1.05)) and np.median(err) > 0.9
    assert sum(b["n"] for b in depth_error_by_band(off["depth"])) == len(err)
    png = plot_depth_errors([("oracle+1m", off)], tmp_path / "depth.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_eval_detector_cli_refuses_what_it_cannot_score(rig_data, capsys):
    from sim.cli import main

    out, _ = rig_data
    assert main(["eval", "detector", "--data", str(out), "--cameras", "cam_left"]) == 2
    assert (
        "no camera 'cam_left'; this dataset has bev, cam_front, cam_rear" in capsys.readouterr().err
    )
    assert (
        main(
            [
                "eval",
                "detector",
                "--data",
                str(out),
                "--cameras",
                "cam_front",
                "--detector",
                "opencv",
            ]
        )
        == 2
    )
    assert "reads bird's-eye cameras; the chosen cameras are cam_front" in capsys.readouterr().err
    assert main(["eval", "detector", "--data", str(out), "--corrupt", "noise:loud"]) == 2
    assert "severity 'loud' is not a number" in capsys.readouterr().err
    assert main(["eval", "detector", "--data", str(out), "--detector", "learned"]) == 2
    assert "needs its checkpoint: --detector learned:DIR" in capsys.readouterr().err
    assert (
        main(
            [
                "eval",
                "detector",
                "--data",
                str(out),
                "--detector",
                "opencv",
                "--corrupt",
                "none,noise:40",
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "noise:40" in text and "ATE m" in text and "AOE deg" in text


def test_eval_detector_outputs_carry_their_author_and_a_rerun_replaces_them(
    rig_data, tmp_path, capsys
):
    """The corruption loop reused the name of the outputs' author: the JSON and the plot were
    stamped with the last corruption ('noise'), so the same command run again was refused."""
    from sim.cli import main
    from sim.harness.io import written_by

    out, _ = rig_data
    files = {"--out": tmp_path / "det.json", "--plot": tmp_path / "depth.png"}
    argv = ["eval", "detector", "--data", str(out), "--detector", "geometric"]
    argv += ["--cameras", "cam_front", "--corrupt", "none,noise"]
    argv += [x for option, path in files.items() for x in (option, str(path))]
    for _ in range(2):  # the second run replaces the first's outputs
        assert main(argv) == 0, capsys.readouterr().err
        for path in files.values():
            assert written_by(path) == "drive eval detector"
