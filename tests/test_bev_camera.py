"""Camera geometry: pixel <-> metre round trip, and objects appear where the spec says."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.geometry.bev import BevCamera
from sim.world.env import DrivingEnv
from sim.world.render import Palette, SceneObjects


@given(
    x=st.floats(-100, 100),
    y=st.floats(-100, 100),
    mpp=st.floats(0.05, 2.0),
    w=st.integers(8, 400),
    h=st.integers(8, 400),
)
@settings(max_examples=200, deadline=None)
def test_ego_pixel_round_trip(x, y, mpp, w, h):
    spec = BevCamera(
        width_px=w, height_px=h, metres_per_pixel=mpp, ego_u_px=(w - 1) / 2, ego_v_px=0.75 * (h - 1)
    )
    back = spec.pixel_to_ego(spec.ego_to_pixel(np.array([x, y])))
    assert back == pytest.approx([x, y], abs=1e-9)


def test_axes_forward_is_up_left_is_left():
    spec = BevCamera()
    ego = spec.ego_to_pixel(np.zeros(2))
    ahead = spec.ego_to_pixel(np.array([10.0, 0.0]))
    left = spec.ego_to_pixel(np.array([0.0, 4.0]))
    assert ego == pytest.approx([spec.ego_u_px, spec.ego_v_px])
    assert ahead[1] == pytest.approx(ego[1] - 10.0 / spec.metres_per_pixel)  # up the image
    assert ahead[0] == pytest.approx(ego[0])
    assert left[0] == pytest.approx(ego[0] - 4.0 / spec.metres_per_pixel)  # left of the image


@pytest.mark.parametrize(
    "bad",
    [
        {"width_px": 4},
        {"metres_per_pixel": 0.0},
        {"metres_per_pixel": float("nan")},
        {"ego_v_px": 500.0},
    ],
)
def test_spec_rejects_bad_values_by_name(bad):
    with pytest.raises(ValueError) as e:
        BevCamera(**bad)
    assert next(iter(bad)) in str(e.value)


def test_spec_from_dict_rejects_unknown_keys():
    with pytest.raises(ValueError, match="known"):
        BevCamera.from_dict({"width_px": 64, "zoom": 2})


def _blob_centroid(img: np.ndarray, colour) -> np.ndarray:
    mask = np.all(img == np.array(colour, dtype=np.uint8), axis=-1)
    assert mask.sum() > 0, "colour not found in the frame"
    rows, cols = np.nonzero(mask)
    return np.array([cols.mean(), rows.mean()])


@pytest.mark.parametrize("ahead_m,left_m", [(20.0, 0.0), (35.0, 4.0), (8.0, -4.0), (-8.0, 0.0)])
def test_vehicle_appears_where_the_spec_says(ahead_m, left_m):
    """Place a car at a known ego-frame offset on the real highway; find it in the frame."""
    env = DrivingEnv("highway", sensors=("bev",))
    env.reset(seed=0)
    spec, ego = env.bev_camera, env.world.vehicle
    # keep only one other car; put it at the offset, aligned with the ego
    other = next(v for v in env.world.road.vehicles if v is not ego)
    c, s = np.cos(ego.heading), np.sin(ego.heading)
    # highway-env frame: y down, so "left" is -y for a car heading +x
    other.position = ego.position + np.array([c * ahead_m + s * left_m, s * ahead_m - c * left_m])
    other.heading = ego.heading
    env._objects = [other]
    frame = env._observe()["bev"]
    found = _blob_centroid(frame, Palette().vehicle)
    expected = spec.ego_to_pixel(np.array([ahead_m, left_m]))
    assert found == pytest.approx(expected, abs=0.75)


def test_ego_is_drawn_at_the_ego_pixel():
    env = DrivingEnv("lane-keep", sensors=("bev",))
    obs, _ = env.reset(seed=0)
    found = _blob_centroid(obs["bev"], Palette().ego)
    assert found == pytest.approx([env.bev_camera.ego_u_px, env.bev_camera.ego_v_px], abs=0.75)


def test_empty_scene_and_custom_size_render():
    spec = BevCamera(width_px=96, height_px=64, ego_u_px=47.5, ego_v_px=50)
    env = DrivingEnv("merge", bev=spec, sensors=("bev",))
    obs, _ = env.reset(seed=1)
    assert obs["bev"].shape == (64, 96, 3) and obs["bev"].dtype == np.uint8
    img = env.renderer.ego_camera(spec, np.zeros(2), 0.0, SceneObjects.empty(), 5.0, 2.0)
    assert img.shape == (64, 96, 3)


def test_road_is_visible_under_the_ego():
    env = DrivingEnv("highway", sensors=("bev",))
    obs, _ = env.reset(seed=3)
    frame = obs["bev"]
    spec = env.bev_camera
    # a point 2 m to the side of the ego body is road surface, not ground
    u, v = np.round(spec.ego_to_pixel(np.array([6.0, 0.0]))).astype(int)
    assert tuple(frame[v, u]) != Palette().ground
