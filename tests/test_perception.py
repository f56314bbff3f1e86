"""Perception foundations: boxes, auto-labels, nuScenes-style metrics, the OpenCV baseline."""

import numpy as np
import pytest

from perception.boxes import Boxes
from perception.detectors.opencv import OpenCVDetector
from perception.labels import boxes_to_pixels, labels_from_truth
from perception.metrics import average_precision, detection_report, match_frame
from sim.geometry.bev import BevCamera
from sim.geometry.frames import ego_to_world, world_to_ego
from sim.world.env import DrivingEnv

SPEC = BevCamera()


def boxes(rows, score=None) -> Boxes:
    """rows: (x, y, heading) in the ego frame; 5 m x 2 m vehicles."""
    a = np.asarray(rows, dtype=float).reshape(-1, 3)
    n = len(a)
    return Boxes(
        a[:, :2],
        a[:, 2],
        np.full(n, 5.0),
        np.full(n, 2.0),
        np.zeros(n, np.int8),
        np.ones(n) if score is None else np.asarray(score, dtype=float),
    )


GT = boxes([(10.0, 0.0, 0.0), (25.0, 4.0, 0.1), (45.0, -4.0, 0.0), (-8.0, 0.0, 0.0)])


def test_a_perfect_detector_scores_one_everywhere():
    report = detection_report([(GT, GT), (GT, GT)])
    for band, by_threshold in report["bands"].items():
        for threshold, r in by_threshold.items():
            assert r["ap"] == pytest.approx(1.0), (band, threshold)
            assert r["position_error_m"] == pytest.approx(0.0)


def test_a_detector_offset_by_three_metres_scores_zero_at_two():
    shifted = Boxes(
        GT.centre_m + np.array([3.0, 0.0]),
        GT.heading_rad,
        GT.length_m,
        GT.width_m,
        GT.kind,
        GT.score,
    )
    frames = [(shifted, GT)]
    for t in (0.5, 1.0, 2.0):
        assert average_precision(frames, t)["ap"] == 0.0
    r = average_precision(frames, 4.0)
    assert r["ap"] == pytest.approx(1.0) and r["position_error_m"] == pytest.approx(3.0)


def test_false_positives_cost_precision_only_when_they_outrank_true_ones():
    fp = boxes([(30.0, -10.0, 0.0)])
    low = Boxes(
        *(
            np.concatenate([getattr(GT, f), getattr(fp, f)])
            for f in ("centre_m", "heading_rad", "length_m", "width_m", "kind")
        ),
        score=np.r_[np.ones(4), 0.1],
    )
    high = Boxes(
        low.centre_m,
        low.heading_rad,
        low.length_m,
        low.width_m,
        low.kind,
        score=np.r_[np.full(4, 0.5), 0.9],
    )
    assert average_precision([(low, GT)], 2.0)["ap"] == pytest.approx(1.0)
    assert average_precision([(high, GT)], 2.0)["ap"] < 1.0
    # a missed box caps recall: half the boxes found, AP about a half
    assert average_precision([(GT.select(np.array([1, 1, 0, 0], bool)), GT)], 2.0)[
        "ap"
    ] == pytest.approx(51 / 101)


def test_matching_is_greedy_by_score_and_one_to_one():
    gt = boxes([(10.0, 0.0, 0.0)])
    det = boxes([(10.5, 0.0, 0.0), (10.1, 0.0, 0.0)], score=[0.9, 0.3])
    idx, dist = match_frame(det, gt, 2.0)
    assert idx.tolist() == [0, -1]  # the higher score wins the box though it is farther
    assert dist[0] == pytest.approx(0.5) and np.isnan(dist[1])


def test_range_bands_and_empty_cases():
    report = detection_report([(GT, GT)])
    assert report["bands"]["0-20m"]["2m"]["gt"] == 2  # 10 m ahead and 8 m behind
    assert report["bands"]["40+m"]["2m"]["gt"] == 1
    assert np.isnan(average_precision([(GT, Boxes.empty())], 2.0)["ap"])  # nothing to find
    assert average_precision([(Boxes.empty(), GT)], 2.0)["ap"] == 0.0


def test_heading_error_ignores_which_end_is_the_front():
    turned = Boxes(GT.centre_m, GT.heading_rad + np.pi, GT.length_m, GT.width_m, GT.kind, GT.score)
    assert average_precision([(turned, GT)], 1.0)["heading_error_rad"] == pytest.approx(
        0.0, abs=1e-9
    )


def test_boxes_reject_ragged_fields_and_frames_round_trip():
    with pytest.raises(ValueError, match="heading_rad has 1 entries, score has 2"):
        Boxes(np.zeros((2, 2)), np.zeros(1), np.ones(2), np.ones(2), np.zeros(2), np.ones(2))
    pose = np.array([12.0, -3.0, 0.7])
    pts = np.array([[1.0, 2.0], [-5.0, 0.5]])
    assert np.allclose(world_to_ego(ego_to_world(pts, pose[:2], pose[2]), pose[:2], pose[2]), pts)
    assert world_to_ego(
        np.array([12.0 + np.cos(0.7), -3.0 + np.sin(0.7)]), pose[:2], pose[2]
    ) == pytest.approx([1.0, 0.0])


@pytest.fixture(scope="module")
def highway_frames():
    """Camera frames with their auto-labels from a few seconds of real highway traffic."""
    env = DrivingEnv("highway", sensors=("bev", "truth", "pose", "autopilot"))
    out = []
    for seed in (100, 101):
        obs, info = env.reset(seed=seed)
        for k in range(60):
            obs, _, term, trunc, info = env.step(info["autopilot"])
            if k % 6 == 0:
                out.append(
                    (
                        obs["bev"],
                        labels_from_truth(info["truth"], obs["pose"], SPEC),
                        info["truth"],
                        obs["pose"],
                    )
                )
            if term or trunc:
                break
    env.close()
    return out


def test_labels_sit_on_the_cars_the_camera_shows(highway_frames):
    blue = np.array([60, 110, 220])
    n = 0
    for frame, labels, truth, pose in highway_frames:
        px = boxes_to_pixels(labels, SPEC)
        for u, v in np.rint(px["uv_px"]).astype(int):
            if 0 <= u < SPEC.width_px and 0 <= v < SPEC.height_px:
                assert np.abs(frame[v, u].astype(int) - blue).max() <= 30
                n += 1
        # every labelled object is in the image; every vehicle in the image is labelled
        ego = world_to_ego(truth["position_m"][truth["kind"] == 0], pose[:2], pose[2])
        uv = SPEC.ego_to_pixel(ego)
        inside = (uv[:, 0] >= -0.5) & (uv[:, 0] < 127.5) & (uv[:, 1] >= -0.5) & (uv[:, 1] < 127.5)
        assert len(labels) == int(inside.sum())
    assert n > 20


def test_opencv_baseline_finds_the_cars_on_clean_frames(highway_frames):
    det = OpenCVDetector(SPEC)
    frames = [(det.detect(f), labels) for f, labels, _, _ in highway_frames]
    report = detection_report(frames)
    assert report["bands"]["all"]["2m"]["ap"] >= 0.95
    assert report["bands"]["all"]["2m"]["position_error_m"] < 0.3
    assert report["bands"]["all"]["2m"]["heading_error_rad"] < 0.1
    assert len(det.detect(np.zeros((128, 128, 3), np.uint8))) == 0
    with pytest.raises(ValueError, match="RGB uint8 frame"):
        det.detect(np.zeros((128, 128), np.uint8))
