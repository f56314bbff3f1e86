"""The planner overlay of episode videos lands on the overview's own pixels."""

import json
from types import SimpleNamespace

import av
import numpy as np
import pytest

from agents.base import BaseAgent
from agents.modular import Overlay
from planning.prediction import ObjectStates
from sim.cli import main
from sim.geometry.pinhole import default_rig
from sim.report.video import (
    OVERVIEW_MPP,
    PANEL_PX,
    PERCEIVED_RGB,
    PLAN_RGB,
    EpisodeVideo,
    frame_layout,
)
from sim.world.env import DrivingEnv
from sim.world.render import top_down_transform

PLAN_AHEAD_M = 30.0


@pytest.fixture(scope="module")
def scene():
    env = DrivingEnv("highway", sensors=("bev", "truth", "map", "pose", "speed"))
    obs, info = env.reset(seed=0)
    yield env, obs, info
    env.close()


def _plan_overlay(info) -> Overlay:
    """A plan PLAN_AHEAD_M ahead of the ego, bending left (so a mirrored map would miss
    it), and two candidates beside it."""
    xy = np.asarray(info["ego"]["position_m"], dtype=np.float64)
    heading = info["ego"]["heading_rad"]
    fwd = np.array([np.cos(heading), np.sin(heading)])
    left = np.array([-fwd[1], fwd[0]])
    s = np.linspace(0.0, PLAN_AHEAD_M, 41)[:, None]
    plan = xy + s * fwd + (s**2 / 100.0) * left  # 9 m to the left at 30 m
    candidates = np.stack([plan + 4.0 * left, plan - 4.0 * left])
    return Overlay(
        trajectory_m=plan,
        candidates_m=candidates,
        candidate_ok=np.array([True, False]),
        objects=ObjectStates.empty(),
        path_lanes=(),
    )


def _compose(tmp_path, name, scene, source, action="zeros"):
    env, obs, info = scene
    video = EpisodeVideo(
        tmp_path / f"{name}.mp4", agent="fake", seed=0, fps=15, overlay_source=source
    )
    try:
        if action == "zeros":
            action = np.zeros(env.action_space.shape[0])
        return video.compose(env, obs, action, info)
    finally:
        video.abort()


def _frame_px(info, points_m: np.ndarray) -> np.ndarray:
    """Rows and columns in the composed frame of world points on the overview panel."""
    m, t = top_down_transform((PANEL_PX, PANEL_PX), OVERVIEW_MPP, info["ego"]["position_m"])
    uv = np.rint(points_m @ m.T + t).astype(int)
    return np.stack([uv[:, 1], PANEL_PX + uv[:, 0]], axis=1)


def test_plan_is_drawn_on_the_projected_trajectory(tmp_path, scene):
    _, _, info = scene
    overlay = _plan_overlay(info)
    plain = _compose(tmp_path, "plain", scene, None)
    drawn = _compose(tmp_path, "drawn", scene, SimpleNamespace(overlay=overlay))

    # the plan's pixels (clear of the ego box at its start) are the plan colour
    along = overlay.trajectory_m[8:-2]
    rows, cols = _frame_px(info, along).T
    assert np.all(np.abs(drawn[rows, cols].astype(int) - PLAN_RGB).max(axis=1) <= 8)
    assert np.all(np.abs(plain[rows, cols].astype(int) - PLAN_RGB).max(axis=1) > 8)
    # both candidates changed pixels along their own lines, and only the overview changed
    for cand in overlay.candidates_m:
        rows, cols = _frame_px(info, cand[8:-2]).T
        assert np.any(drawn[rows, cols] != plain[rows, cols], axis=1).mean() > 0.8
    changed = np.any(drawn != plain, axis=2)
    assert not changed[:, :PANEL_PX].any() and not changed[PANEL_PX:].any()
    assert changed[:PANEL_PX, PANEL_PX:].any()


def test_no_overlay_draws_nothing(tmp_path, scene):
    _, _, info = scene
    plain = _compose(tmp_path, "plain", scene, None)
    assert np.array_equal(_compose(tmp_path, "none", scene, SimpleNamespace(overlay=None)), plain)
    # an agent that draws nothing keeps the contract's default overlay (None)
    assert np.array_equal(_compose(tmp_path, "agent", scene, BaseAgent(task=None)), plain)
    # the reset frame (no action yet) never shows a plan: it may be the last episode's
    stale = SimpleNamespace(overlay=_plan_overlay(info))
    assert np.array_equal(_compose(tmp_path, "reset", scene, stale, action=None), plain)


def test_perceived_objects_are_outlined_where_perception_put_them(tmp_path, scene):
    """A phantom 5 m x 2 m object 12 m behind-left of the ego (no real car there):
    its outline's pixels turn the perceived-object colour."""
    _, _, info = scene
    xy = np.asarray(info["ego"]["position_m"], dtype=np.float64)
    phantom = xy + np.array([-12.0, 7.0])
    overlay = _plan_overlay(info)
    overlay.objects = ObjectStates(
        np.array([0]),
        np.zeros(1, np.int8),
        phantom[None],
        np.zeros(1),
        np.zeros(1),
        np.array([5.0]),
        np.array([2.0]),
        np.zeros(1),
    )
    drawn = _compose(tmp_path, "objects", scene, SimpleNamespace(overlay=overlay))
    edges = phantom + np.array([[0.0, 1.0], [0.0, -1.0], [2.5, 0.0], [-2.5, 0.0]])  # side midpoints
    rows, cols = _frame_px(info, edges).T
    near = [
        drawn[r - 1 : r + 2, c - 1 : c + 2].reshape(-1, 3).astype(int) for r, c in zip(rows, cols)
    ]
    assert all((np.abs(px - PERCEIVED_RGB).max(axis=1) <= 40).any() for px in near)
    centre_r, centre_c = _frame_px(info, phantom[None])[0]
    assert np.abs(drawn[centre_r, centre_c].astype(int) - PERCEIVED_RGB).max() > 40  # an outline


def test_mismatched_candidate_flags_are_named(tmp_path, scene):
    _, _, info = scene
    overlay = _plan_overlay(info)
    overlay.candidate_ok = np.array([True])
    with pytest.raises(ValueError, match="2 candidates but 1 candidate_ok"):
        _compose(tmp_path, "bad", scene, SimpleNamespace(overlay=overlay))


def test_expert_run_writes_a_video_with_the_plan(tmp_path):
    out, video = tmp_path / "run", tmp_path / "clips" / "expert.mp4"
    assert (
        main(
            [
                "run",
                "--agent",
                "expert",
                "--scenario",
                "highway",
                "--episodes",
                "1",
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
    assert video.stat().st_size > 0
    rec = json.loads((out / "episodes.jsonl").read_text())
    assert rec["status"] == "ok", rec["error"]
    with av.open(str(video)) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert len(frames) == rec["steps"] + 1
    layout = frame_layout(default_rig())  # the top panels, the rig's cameras, the HUD
    assert frames[0].shape == (layout.height_px, layout.width_px, 3)

    def plan_px(frame):  # near the plan colour, after H.264's chroma subsampling
        top = frame[:PANEL_PX, PANEL_PX:].astype(int)
        return int((np.abs(top - PLAN_RGB).max(axis=2) < 60).sum())

    assert plan_px(frames[0]) == 0  # the reset frame has no plan
    assert plan_px(frames[-1]) > 100


def test_detections_are_outlined_on_the_camera_panel(tmp_path, scene):
    from perception.boxes import Boxes

    env, _, info = scene
    overlay = _plan_overlay(info)
    overlay.detections = Boxes(
        np.array([[20.0, -8.0]]),
        np.zeros(1),
        np.array([5.0]),
        np.array([2.0]),
        np.zeros(1, np.int8),
        np.ones(1),
    )  # 20 m ahead, 8 m right: empty ground
    plain = _compose(tmp_path, "plain", scene, SimpleNamespace(overlay=_plan_overlay(info)))
    drawn = _compose(tmp_path, "dets", scene, SimpleNamespace(overlay=overlay))
    scale = PANEL_PX / env.bev_camera.width_px
    u, v = env.bev_camera.ego_to_pixel(np.array([20.0, -8.0 - 1.0]))  # the box's right edge
    r, c = int(np.rint((v + 0.5) * scale)), int(np.rint((u + 0.5) * scale))
    patch = drawn[r - 2 : r + 3, c - 2 : c + 3].reshape(-1, 3).astype(int)
    assert (np.abs(patch - PERCEIVED_RGB).max(axis=1) <= 60).any()
    changed = np.any(drawn != plain, axis=2)
    assert changed[:PANEL_PX, :PANEL_PX].any() and not changed[:, PANEL_PX:].any()
