"""The episode video shows every camera of the env's rig, and recording it changes no episode."""

import json
from dataclasses import replace
from types import SimpleNamespace

import av
import cv2
import numpy as np
import pytest

from agents.modular import Overlay
from planning.prediction import ObjectStates
from sim.cli import main
from sim.geometry.frames import ego_to_world
from sim.geometry.pinhole import CameraRig, PinholeCamera, default_rig
from sim.report.video import PANEL_PX, PERCEIVED_RGB, EpisodeVideo, frame_layout
from sim.world.env import DrivingEnv
from sim.world.scenarios import get_scenario

LABEL_ROWS = 26  # a panel's label (and its dark backdrop) covers at most its top rows


@pytest.fixture(scope="module")
def scene():
    """A highway state a second in, the rig's cameras not declared (as for most agents)."""
    env = DrivingEnv("highway", sensors=("bev", "truth", "map", "pose", "speed"))
    env.reset(seed=1)
    for _ in range(15):
        obs, _, _, _, info = env.step(np.zeros(env.action_space.shape[0]))
    yield env, obs, info
    env.close()


def _compose(tmp_path, env, obs, info, source=None, action="zeros", sensors=None):
    video = EpisodeVideo(
        tmp_path / "v.mp4",
        agent="fake",
        seed=0,
        fps=15,
        overlay_source=source,
        rig=env.rig,
        sensors=sensors,
    )
    try:
        if action == "zeros":
            action = np.zeros(env.action_space.shape[0])
        return video.compose(env, obs, action, info)
    finally:
        video.abort()


def _panel(frame, p):
    return frame[p.y_px : p.y_px + p.height_px, p.x_px : p.x_px + p.width_px]


def test_default_layout_puts_the_two_rig_cameras_in_a_row_at_one_and_a_half_times():
    lay = frame_layout(default_rig())
    assert (lay.width_px, lay.height_px) == (2 * PANEL_PX, 640)
    assert [(p.name, p.x_px, p.y_px, p.width_px, p.height_px, p.scale) for p in lay.panels] == [
        ("cam_front", 0, PANEL_PX, 384, 192, 1.5),
        ("cam_rear", PANEL_PX, PANEL_PX, 384, 192, 1.5),
    ]
    assert lay.hud_top_px == PANEL_PX + 192


def test_any_rig_gets_even_frame_sizes_and_undistorted_panels_inside_the_frame():
    odd = PinholeCamera(width_px=101, height_px=77)
    rig = CameraRig(
        {"left": odd, "front": PinholeCamera(), "right": PinholeCamera(width_px=64, height_px=96)}
    )
    lay = frame_layout(rig)
    assert lay.width_px % 2 == 0 and lay.height_px % 2 == 0
    for p in lay.panels:
        cam = rig[p.name]
        assert 0 <= p.x_px and p.x_px + p.width_px <= lay.width_px
        assert p.y_px == lay.rig_top_px and p.y_px + p.height_px <= lay.hud_top_px
        assert p.width_px / cam.width_px == pytest.approx(p.height_px / cam.height_px, rel=0.02)


def test_rig_panels_are_the_env_cameras_upscaled(tmp_path, scene):
    env, obs, info = scene
    frame = _compose(tmp_path, env, obs, info)
    lay = frame_layout(env.rig)
    assert frame.shape == (lay.height_px, lay.width_px, 3)
    assert [p.name for p in lay.panels] == list(env.rig.names) == ["cam_front", "cam_rear"]
    panels = {}
    for p in lay.panels:
        want = cv2.resize(
            env.render_camera(env.rig[p.name]).image,
            (p.width_px, p.height_px),
            interpolation=cv2.INTER_NEAREST,
        )
        panels[p.name] = got = _panel(frame, p)
        # below the label, pixel for pixel; the seam between the panels may cover one column
        assert np.array_equal(got[LABEL_ROWS:, 2:-2], want[LABEL_ROWS:, 2:-2]), p.name
    assert not np.array_equal(panels["cam_front"], panels["cam_rear"])


def test_a_declared_rig_camera_is_taken_from_the_observation(tmp_path, scene):
    """No second render for a camera the agent already gets: the panel shows ``obs``'s frame."""
    env, obs, info = scene
    front = next(p for p in frame_layout(env.rig).panels if p.name == "cam_front")
    marked = {**obs, "cam_front": np.full(env.rig["cam_front"].shape, 77, np.uint8)}
    frame = _compose(tmp_path, env, marked, info, sensors=("cam_front", "speed"))
    assert np.all(_panel(frame, front)[LABEL_ROWS:, 2:-2] == 77)


def test_perceived_objects_are_drawn_as_3d_boxes_on_the_camera_that_sees_them(tmp_path, scene):
    """A phantom 5 m x 2 m car 20 m ahead, 8 m right of the ego: its box's vertical edges turn
    the perceived colour on the front camera's panel; the rear camera cannot see it."""
    env, obs, info = scene
    ego = info["ego"]
    centre_ego = np.array([20.0, -8.0])
    centre = ego_to_world(centre_ego[None], ego["position_m"], ego["heading_rad"])
    objects = ObjectStates(
        np.array([0]),
        np.zeros(1, np.int8),
        centre,
        np.array([ego["heading_rad"]]),
        np.zeros(1),
        np.array([5.0]),
        np.array([2.0]),
        np.zeros(1),
    )
    empty = Overlay(
        trajectory_m=np.zeros((0, 2)),
        candidates_m=np.zeros((0, 2, 2)),
        candidate_ok=np.zeros(0, bool),
        objects=ObjectStates.empty(),
        path_lanes=(),
    )
    boxed = replace(empty, objects=objects)
    plain = _compose(tmp_path, env, obs, info, SimpleNamespace(overlay=empty))
    drawn = _compose(tmp_path, env, obs, info, SimpleNamespace(overlay=boxed))
    panels = {p.name: p for p in frame_layout(env.rig).panels}
    front, cam = panels["cam_front"], env.rig["cam_front"]
    for dx, dy in ((-2.5, 1.0), (-2.5, -1.0), (2.5, 1.0)):  # three visible vertical edges
        # a car of 1.5 m (object_heights): mid-height of each vertical edge
        uv, _ = cam.project(np.array([centre_ego[0] + dx, centre_ego[1] + dy, 0.75]))
        c, r = np.rint((uv + 0.5) * front.scale - 0.5).astype(int) + (front.x_px, front.y_px)
        patch = drawn[r - 1 : r + 2, c - 1 : c + 2].reshape(-1, 3).astype(int)
        assert (np.abs(patch - PERCEIVED_RGB).max(axis=1) <= 60).any(), (dx, dy)
    changed = np.any(drawn != plain, axis=2)
    assert _panel(changed, front).any()
    assert not _panel(changed, panels["cam_rear"]).any()  # behind the rear camera: clipped away
    assert not changed[:PANEL_PX, :PANEL_PX].any()  # the top-down camera draws detections only


def test_a_box_crossing_the_near_plane_is_clipped_not_wrapped(tmp_path, scene):
    """A car right beside the ego reaches behind both cameras' lenses: it still draws (its
    part in front of each camera) without the wild lines of points projected from behind."""
    env, obs, info = scene
    ego = info["ego"]
    centre = ego_to_world(np.array([[0.0, 3.0]]), ego["position_m"], ego["heading_rad"])
    objects = ObjectStates(
        np.array([0]),
        np.zeros(1, np.int8),
        centre,
        np.array([ego["heading_rad"]]),
        np.zeros(1),
        np.array([5.0]),
        np.array([2.0]),
        np.zeros(1),
    )
    overlay = Overlay(
        trajectory_m=np.zeros((0, 2)),
        candidates_m=np.zeros((0, 2, 2)),
        candidate_ok=np.zeros(0, bool),
        objects=objects,
        path_lanes=(),
    )
    drawn = _compose(tmp_path, env, obs, info, SimpleNamespace(overlay=overlay))
    for p in frame_layout(env.rig).panels:
        red = np.abs(_panel(drawn, p).astype(int) - PERCEIVED_RGB).max(axis=2) <= 60
        assert red.any(), p.name
        # the box is on the ego's left: nothing red right of the image centre's column
        right = (
            slice(p.width_px // 2 + 4, None)
            if p.name == "cam_front"
            else slice(None, p.width_px // 2 - 4)
        )
        assert not red[:, right].any(), p.name


def _run(tmp_path, name, video):
    out = tmp_path / name
    assert (
        main(
            [
                "run",
                "--agent",
                "expert",
                "--scenario",
                "roundabout",
                "--episodes",
                "1",
                "--seed",
                "3",
                "--duration",
                "3",
                "--video",
                str(video),
                "--out",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    return out


def test_recording_the_video_changes_nothing_in_the_episode(tmp_path):
    """The rig is rendering only: the same seed with and without --video gives the same
    record and trace (decision latencies aside: they are wall-clock), and the video's reset
    frame shows the env's own camera frames."""
    clip = tmp_path / "clip.mp4"
    with_video, without = _run(tmp_path, "with", clip), _run(tmp_path, "without", "none")

    def record(out):
        rec = json.loads((out / "episodes.jsonl").read_text())
        return {k: v for k, v in rec.items() if not k.startswith("latency_")}

    assert record(with_video) == record(without)
    a, b = (np.load(next((out / "traces").glob("*.npz"))) for out in (with_video, without))
    keys = sorted(k for k in a.files if "latency" not in k)
    assert keys == sorted(k for k in b.files if "latency" not in k) and "action" in " ".join(keys)
    for k in keys:
        assert np.array_equal(a[k], b[k]), k

    env = DrivingEnv(get_scenario("roundabout", duration_s=3), sensors=("pose",))
    env.reset(seed=3)
    lay = frame_layout(env.rig)
    with av.open(str(clip)) as c:
        first = next(c.decode(video=0)).to_ndarray(format="rgb24")
    assert first.shape == (lay.height_px, lay.width_px, 3)
    for p in lay.panels:
        want = cv2.resize(
            env.render_camera(env.rig[p.name]).image,
            (p.width_px, p.height_px),
            interpolation=cv2.INTER_NEAREST,
        ).astype(int)
        got = _panel(first, p).astype(int)
        err = np.abs(got - want)[LABEL_ROWS:, 2:-2].mean()  # H.264 at crf 23: a few levels
        assert err < 6, (p.name, err)
        other = next(q for q in lay.panels if q.name != p.name)
        assert np.abs(_panel(first, other).astype(int) - want)[LABEL_ROWS:, 2:-2].mean() > 2 * err
    env.close()
