"""The geometric (IPM) baseline detector on synthetic perspective frames: single cars placed
at known ego-frame offsets on a real highway road, rendered by the perspective renderer."""

import math

import numpy as np
import pytest

from perception.detectors.geometric import GeometricDetector, SceneColours, l_shape_heading
from sim.geometry.frames import ego_to_world, hw_to_world_heading, hw_to_world_xy
from sim.geometry.pinhole import default_rig
from sim.world.env import DrivingEnv
from sim.world.perspective import (
    MARKING_FAR_BLEND,
    PerspectivePalette,
    PerspectiveRenderer,
    renderer_for,
)
from sim.world.render import KIND_VEHICLE, SceneObjects

RIG = default_rig()
FRONT, REAR = RIG["cam_front"], RIG["cam_rear"]


@pytest.fixture(scope="module")
def highway():
    env = DrivingEnv("highway", sensors=("speed",), overrides={"vehicles_count": 8})
    env.reset(seed=3)
    ego = env.world.vehicle
    yield env, hw_to_world_xy(ego.position), float(hw_to_world_heading(ego.heading))
    env.close()


def _cars(xy, heading, ahead_left_m, rel_heading_rad=0.0) -> SceneObjects:
    """5 m x 2 m cars at ego-frame offsets ``[N, 2]``, turned ``rel_heading_rad`` from the ego."""
    pts = np.asarray(ahead_left_m, dtype=np.float64).reshape(-1, 2)
    n = len(pts)
    return SceneObjects(
        ego_to_world(pts, xy, heading),
        np.full(n, heading + rel_heading_rad),
        np.full(n, 5.0),
        np.full(n, 2.0),
        np.full(n, KIND_VEHICLE, dtype=np.int8),
    )


def _frame(highway, camera, ahead_left_m, rel_heading_rad=0.0, renderer=None, colour_seed=1):
    env, xy, heading = highway
    objects = _cars(xy, heading, ahead_left_m, rel_heading_rad)
    r = renderer if renderer is not None else renderer_for(env.geometry)
    return r.render(
        camera, xy, heading, objects, ids=np.arange(len(objects.kind)), colour_seed=colour_seed
    ).image


def _row_m(camera, x_m: float) -> float:
    """[m] Road length one image row spans at ego-frame distance ``x_m`` straight ahead."""
    uv, _ = camera.project(np.array([[x_m, 0.0, 0.0]]))
    pts = camera.pixel_to_ground(uv + np.array([[0.0, -0.5], [0.0, 0.5]]))
    return float(abs(pts[0, 0] - pts[1, 0]))


def _one(boxes, truth_xy):
    assert len(boxes) == 1, f"expected one detection, got {boxes.centre_m.tolist()}"
    assert boxes.kind[0] == 0 and 0.0 < boxes.score[0] <= 1.0
    return float(np.hypot(*(boxes.centre_m[0] - truth_xy)))


def test_default_colours_are_the_renderers():
    pal = PerspectivePalette()
    assert SceneColours() == SceneColours.from_palette(pal, MARKING_FAR_BLEND)


def test_ipm_places_a_car_at_10_m_within_0_2_m(highway):
    det = GeometricDetector(FRONT)
    for y in (0.0, 4.0, -4.0):  # own lane, the lanes to the left and right (side face shows)
        boxes = det.detect(_frame(highway, FRONT, [[10.0, y]]))
        assert _one(boxes, [10.0, y]) < 0.2, (y, boxes.centre_m)
        assert abs(boxes.heading_rad[0]) < 0.05
        assert boxes.width_m[0] == pytest.approx(2.0, abs=0.15)


def test_far_cars_within_half_an_image_row(highway):
    """Beyond ~15 m a car's contact row is the whole measurement: a bottom edge is known to
    +-0.5 px, and one row spans 1.8 m of road at 20 m and 8.5 m at 40 m (range error grows
    with its square).  The bound is that IPM quantisation; the width cue does better at 40 m."""
    det = GeometricDetector(FRONT)
    for x in (20.0, 40.0):
        tol = 0.5 * _row_m(FRONT, x)
        assert 0.8 < tol < 5.0  # 0.9 m at 20 m, 4.2 m at 40 m
        for y in (0.0, -4.0):
            boxes = det.detect(_frame(highway, FRONT, [[x, y]]))
            assert _one(boxes, [x, y]) < tol, (x, y, boxes.centre_m)
            assert (
                abs(boxes.centre_m[0, 1] - y) < 0.5
            )  # the bearing is sharp even when range is not


def test_heading_of_a_turned_car_from_its_visible_side(highway):
    det = GeometricDetector(FRONT)
    for y, turn in ((-4.0, 0.2), (0.0, -0.2)):
        boxes = det.detect(_frame(highway, FRONT, [[10.0, y]], rel_heading_rad=turn))
        assert _one(boxes, [10.0, y]) < 0.5
        assert boxes.heading_rad[0] == pytest.approx(turn, abs=0.05)


def test_rear_camera_puts_a_following_car_behind_the_ego(highway):
    det = GeometricDetector(REAR)
    for y in (0.0, 4.0):
        boxes = det.detect(_frame(highway, REAR, [[-10.0, y]]))
        assert boxes.centre_m[0, 0] < 0.0
        assert _one(boxes, [-10.0, y]) < 0.2
    # the same frame read as the front camera's would put it ahead: the camera matters
    img = _frame(highway, REAR, [[-10.0, 0.0]])
    assert GeometricDetector().detect(img, FRONT).centre_m[0, 0] > 0.0


def test_empty_road_gives_no_detections(highway):
    det = GeometricDetector()
    for cam in (FRONT, REAR):
        assert len(det.detect(_frame(highway, cam, np.zeros((0, 2))), cam)) == 0


def test_two_cars_far_apart_give_two_detections(highway):
    truth = np.array([[10.0, 0.0], [18.0, -4.0]])
    boxes = GeometricDetector(FRONT).detect(_frame(highway, FRONT, truth))
    assert len(boxes) == 2
    order = np.argsort(boxes.centre_m[:, 0])
    err = np.hypot(*(boxes.centre_m[order] - truth).T)
    assert err[0] < 0.2 and err[1] < 0.5 * _row_m(FRONT, 18.0)


def test_a_car_cut_by_the_image_border_is_still_found(highway):
    """Left border: its near end is missing, so the box hangs off the visible end; bottom
    border: a car beside the ego's bumper, placed at the bottom row's road line."""
    det = GeometricDetector(FRONT)
    img = _frame(highway, FRONT, [[8.0, 8.0]])
    assert np.any(np.any(img[:, 0] != img[0, 0], axis=-1))  # the car reaches the left border
    boxes = det.detect(img)
    assert _one(boxes, [8.0, 8.0]) < 1.5
    whole = det.detect(_frame(highway, FRONT, [[10.0, 0.0]]))
    assert boxes.score[0] < whole.score[0]  # a cut contact ranks below a whole one
    beside = det.detect(_frame(highway, FRONT, [[2.0, -3.5]]))
    assert _one(beside, [2.0, -3.5]) < 2.5 and beside.score[0] < 0.5


def test_every_body_colour_is_segmented(highway):
    """A changed palette (each car colour alone, and a darker road) still works when passed."""
    env = highway[0]
    for colour in PerspectivePalette().vehicles:
        pal = PerspectivePalette(vehicles=(colour,), road=(80, 80, 84))
        img = _frame(highway, FRONT, [[10.0, 0.0]], renderer=PerspectiveRenderer(env.geometry, pal))
        boxes = GeometricDetector(FRONT, palette=pal).detect(img)
        assert _one(boxes, [10.0, 0.0]) < 0.2, colour
    # the default colours do not know that road: the whole road becomes one blob
    assert len(GeometricDetector(FRONT).detect(img)) != 1 or not np.allclose(
        GeometricDetector(FRONT).detect(img).centre_m, [[10.0, 0.0]], atol=0.2
    )


def test_detect_batch_matches_detect_and_checks_its_inputs(highway):
    frames = [_frame(highway, FRONT, [[10.0, 0.0]]), _frame(highway, REAR, [[-15.0, 4.0]])]
    det = GeometricDetector()
    out = det.detect_batch(frames, [FRONT, REAR])
    for f, cam, b in zip(frames, (FRONT, REAR), out):
        np.testing.assert_array_equal(det.detect(f, cam).centre_m, b.centre_m)
    with pytest.raises(ValueError, match="camera"):
        det.detect(frames[0])
    with pytest.raises(ValueError, match="frame is"):
        det.detect(frames[0][:64], FRONT)
    with pytest.raises(ValueError, match="min_area_px"):
        GeometricDetector(min_area_px=0)


def test_l_shape_fit_recovers_a_corner():
    """Road points on the rear and right side of a car turned 0.3 rad, seen from behind and
    to its right (from straight behind, the right side would not show)."""
    h = 0.3
    along, across = np.array([math.cos(h), math.sin(h)]), np.array([-math.sin(h), math.cos(h)])
    corner = np.array([10.0, 2.0])
    rear = corner + np.linspace(0.0, 2.0, 8)[:, None] * across
    side = corner + np.linspace(0.0, 5.0, 12)[:, None] * along
    pts = np.concatenate([rear, side])
    eye = np.array([0.0, -5.0])
    assert l_shape_heading(pts, eye, math.radians(30.0)) == pytest.approx(h, abs=math.radians(1.0))
    # a bare rear face: the ego-aligned heading
    assert (
        l_shape_heading(
            np.stack([np.full(8, 10.0), np.linspace(-1, 1, 8)], axis=1),
            np.zeros(2),
            math.radians(30.0),
        )
        == 0.0
    )
