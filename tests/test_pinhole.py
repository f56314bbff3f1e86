"""Perspective camera model (sim.geometry.pinhole): projection against an independent
first-principles formula, pixel <-> road-plane round trips, the horizon, the near plane,
the rear camera, validation and serialisation.  Pure numpy, no simulator."""

import json
import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from sim.geometry.pinhole import CameraRig, PinholeCamera, default_rig

MOUNTS = {
    "front": {"x_m": 0.5, "z_m": 1.5},
    "rear": {"x_m": -0.5, "z_m": 1.5, "yaw_rad": math.pi},
    "pitched": {"x_m": 1.0, "y_m": 0.3, "z_m": 2.0, "pitch_rad": math.radians(12.0)},
    "pitched_up": {"x_m": 0.0, "z_m": 1.2, "pitch_rad": math.radians(-4.0)},
    "rolled": {
        "x_m": 0.5,
        "z_m": 1.5,
        "pitch_rad": math.radians(6.0),
        "roll_rad": math.radians(8.0),
    },
    "side_left": {
        "y_m": 0.9,
        "z_m": 1.6,
        "yaw_rad": math.pi / 2,
        "pitch_rad": 0.2,
        "roll_rad": -0.1,
    },
    "odd_intrinsics": {
        "width_px": 321,
        "height_px": 97,
        "hfov_deg": 70.0,
        "yaw_rad": -2.5,
        "pitch_rad": 0.3,
        "roll_rad": 0.25,
    },
}


def reference_project(cam: PinholeCamera, p: np.ndarray) -> tuple[np.ndarray, float]:
    """Project one ego point from first principles: explicit camera basis vectors in the ego
    frame (no rotation matrices), then the pinhole equations."""
    yaw, pitch, roll = cam.yaw_rad, cam.pitch_rad, cam.roll_rad
    # optical axis: heading `yaw` (counter-clockwise), tilted `pitch` below the horizontal
    forward = np.array(
        [math.cos(pitch) * math.cos(yaw), math.cos(pitch) * math.sin(yaw), -math.sin(pitch)]
    )
    right = np.array([math.sin(yaw), -math.cos(yaw), 0.0])  # horizontal, to the right of yaw
    down = np.cross(forward, right)  # right x down = forward (x right, y down, z forward)
    # roll: right-hand turn about the optical axis; the right side goes down
    right, down = (
        math.cos(roll) * right + math.sin(roll) * down,
        math.cos(roll) * down - math.sin(roll) * right,
    )
    d = np.asarray(p, dtype=float) - np.array([cam.x_m, cam.y_m, cam.z_m])
    x, y, z = right @ d, down @ d, forward @ d
    f = (cam.width_px / 2) / math.tan(math.radians(cam.hfov_deg) / 2)
    u = (cam.width_px - 1) / 2 + f * x / z
    v = (cam.height_px - 1) / 2 + f * y / z
    return np.array([u, v]), z


def points_in_view(cam: PinholeCamera, n: int, rng: np.random.Generator) -> np.ndarray:
    """Random ego points in front of the camera (2-60 m along its axis, spread laterally)."""
    cam_pts = np.stack(
        [rng.uniform(-20, 20, n), rng.uniform(-10, 10, n), rng.uniform(2, 60, n)], axis=-1
    )
    return cam.camera_to_ego(cam_pts)


# ------------------------------------------------------------------ projection


@pytest.mark.parametrize("mount", list(MOUNTS))
def test_projection_matches_the_first_principles_formula(mount):
    cam = PinholeCamera(**MOUNTS[mount])
    rng = np.random.default_rng(0)
    pts = points_in_view(cam, 200, rng)
    uv, depth = cam.project(pts)
    for p, uv_i, d_i in zip(pts, uv, depth):
        ref_uv, ref_depth = reference_project(cam, p)
        assert np.abs(uv_i - ref_uv).max() <= 0.5
        assert np.abs(uv_i - ref_uv).max() <= 1e-6  # in fact identical up to rounding
        assert d_i == pytest.approx(ref_depth, abs=1e-9)


@pytest.mark.parametrize("mount", list(MOUNTS))
def test_ego_camera_frames_are_inverse_rigid_motions(mount):
    cam = PinholeCamera(**MOUNTS[mount])
    pts = np.random.default_rng(1).uniform(-50, 50, (5, 7, 3))
    assert cam.camera_to_ego(cam.ego_to_camera(pts)) == pytest.approx(pts, abs=1e-9)
    r = cam.rotation_ego_from_camera
    assert r @ r.T == pytest.approx(np.eye(3), abs=1e-12)
    assert np.linalg.det(r) == pytest.approx(1.0)
    # the optical centre is the camera frame's origin
    assert cam.ego_to_camera(cam.position_m) == pytest.approx(np.zeros(3), abs=1e-12)


def test_axes_conventions_front_camera():
    cam = PinholeCamera(pitch_rad=0.0)
    centre = np.array([cam.x_m + 10, 0.0, cam.z_m])
    uv, depth = cam.project(np.stack([centre, centre + [0, 2, 0], centre + [0, 0, 2]]))
    assert uv[0] == pytest.approx([cam.cx, cam.cy])  # straight ahead -> principal point
    assert depth[0] == pytest.approx(10.0)
    assert uv[1, 0] < cam.cx and uv[1, 1] == pytest.approx(cam.cy)  # left -> image left
    assert uv[2, 1] < cam.cy and uv[2, 0] == pytest.approx(cam.cx)  # up -> image top
    assert cam.K == pytest.approx(np.array([[cam.fx, 0, cam.cx], [0, cam.fy, cam.cy], [0, 0, 1]]))


def test_intrinsics_follow_the_pixel_centre_convention():
    cam = PinholeCamera(width_px=200, height_px=100, hfov_deg=90.0, pitch_rad=0.0)
    assert cam.fx == pytest.approx(100.0) and cam.fy == cam.fx
    assert (cam.cx, cam.cy) == (99.5, 49.5)
    assert cam.shape == (100, 200, 3)
    # the HFOV spans edge to edge: a ray 45 deg to the right hits the right edge u = W - 0.5
    p = cam.position_m + [10.0, -10.0, 0.0]
    assert cam.project(p)[0][0] == pytest.approx(199.5)
    assert cam.vfov_deg == pytest.approx(math.degrees(2 * math.atan(0.5)))
    assert cam.in_image(
        np.array([[-0.5, -0.5], [199.4, 99.4], [199.5, 0.0], [np.nan, 0.0]])
    ).tolist() == [True, True, False, False]


def test_points_ahead_on_the_road_appear_at_the_predicted_row_and_width():
    cam = default_rig()["cam_front"]
    h, theta = cam.z_m, cam.pitch_rad
    for ahead in (10.0, 20.0, 40.0):
        # trigonometry: the ground point lies atan(h / distance) below the horizontal,
        # i.e. (that - pitch) below the optical axis
        dist = ahead - cam.x_m
        row = cam.cy + cam.fy * math.tan(math.atan2(h, dist) - theta)
        uv, depth = cam.project(
            np.array([[ahead, 0.0, 0.0], [ahead, 0.9, 0.0], [ahead, -0.9, 0.0]])
        )
        assert uv[0] == pytest.approx([cam.cx, row], abs=1e-9)
        assert depth[0] == pytest.approx(dist * math.cos(theta) + h * math.sin(theta))
        # a 1.8 m wide car spans fx * 1.8 / depth pixels
        assert uv[2, 0] - uv[1, 0] == pytest.approx(cam.fx * 1.8 / depth[0], rel=1e-9)
        assert uv[1, 1] == pytest.approx(row) and uv[2, 1] == pytest.approx(row)
    # nearer is lower in the image
    rows = cam.project(np.array([[a, 0.0, 0.0] for a in (10, 20, 40)]))[0][:, 1]
    assert rows[0] > rows[1] > rows[2] > cam.horizon_row()


# ------------------------------------------------------------------ near plane


@pytest.mark.parametrize("mount", list(MOUNTS))
def test_nothing_behind_the_camera_projects(mount):
    cam = PinholeCamera(**MOUNTS[mount])
    rng = np.random.default_rng(2)
    cam_pts = np.stack(
        [rng.uniform(-20, 20, 500), rng.uniform(-20, 20, 500), rng.uniform(-50, cam.near_m, 500)],
        axis=-1,
    )
    cam_pts[:5, 2] = [0.0, -1e-12, cam.near_m, cam.near_m - 1e-9, -cam.near_m]
    uv, depth = cam.project(cam.camera_to_ego(cam_pts))
    assert np.all(depth <= cam.near_m + 1e-9)
    assert np.all(np.isnan(uv[depth <= cam.near_m]))
    assert not cam.in_image(uv).any()


def test_exactly_at_the_near_plane_is_invalid_just_beyond_is_valid():
    cam = PinholeCamera(x_m=0.0, y_m=0.0, z_m=1.0, pitch_rad=0.0, near_m=0.25)
    pts = np.array(
        [
            [0.25, 0.0, 1.0],
            [0.25 - 2**-40, 0.1, 1.0],
            [0.0, 0.0, 1.0],
            [0.25 + 2**-20, 0.0, 1.0],
            [np.nan, 0.0, 0.0],
        ]
    )
    uv, depth = cam.project(pts)
    assert depth[0] == 0.25  # exactly on the plane
    assert np.isnan(uv[:3]).all() and np.isnan(uv[4]).all()
    assert np.isfinite(uv[3]).all()


# ------------------------------------------------------------------ pixel -> ground

mount_strategy = st.fixed_dictionaries(
    {
        "width_px": st.integers(16, 400),
        "height_px": st.integers(16, 300),
        "hfov_deg": st.floats(30.0, 150.0),
        "x_m": st.floats(-3.0, 3.0),
        "y_m": st.floats(-1.5, 1.5),
        "z_m": st.floats(0.5, 3.0),
        "yaw_rad": st.floats(-math.pi, math.pi),
        "pitch_rad": st.floats(-0.2, 0.7),
        "roll_rad": st.floats(-0.3, 0.3),
    }
)


@given(
    mount=mount_strategy,
    fu=st.floats(0.0, 1.0),
    fv=st.floats(0.0, 1.0),
    ground=st.sampled_from([0.0, 0.3]),
)
@settings(max_examples=300, deadline=None)
def test_pixel_to_ground_to_pixel_round_trip(mount, fu, fv, ground):
    cam = PinholeCamera(**mount)
    u = -0.5 + fu * cam.width_px
    top = max(cam.horizon_row(u) + 1.0, -0.5)  # at least a pixel below the horizon
    assume(top < cam.height_px - 0.5)
    v = top + fv * (cam.height_px - 0.5 - top)
    p = cam.pixel_to_ground(np.array([u, v]), ground_z_m=ground)
    ray = cam.pixel_to_ray(np.array([u, v]))
    hit_depth = (cam.z_m - ground) / -ray[2] * (ray @ cam.rotation_ego_from_camera[:, 2])
    if hit_depth <= cam.near_m:  # a very wide lens sees the road inside its near plane
        assert np.isnan(p).all()
        return
    assert np.isfinite(p).all()
    assert p[2] == pytest.approx(ground, abs=1e-9)
    uv, _ = cam.project(p)
    assert uv == pytest.approx([u, v], abs=1e-6)


@given(mount=mount_strategy, x=st.floats(-80, 80), y=st.floats(-40, 40))
@settings(max_examples=300, deadline=None)
def test_ground_to_pixel_to_ground_round_trip(mount, x, y):
    cam = PinholeCamera(**mount)
    p = np.array([x, y, 0.0])
    uv, depth = cam.project(p)
    assume(depth > cam.near_m + 1e-6)
    back = cam.pixel_to_ground(uv)
    assert back == pytest.approx(p, abs=1e-7 * (1.0 + np.linalg.norm(p - cam.position_m)))


@pytest.mark.parametrize("mount", list(MOUNTS))
def test_pixel_rays_are_unit_and_point_through_the_pixel(mount):
    cam = PinholeCamera(**MOUNTS[mount])
    uv = np.random.default_rng(3).uniform(0, 1, (4, 6, 2)) * [cam.width_px, cam.height_px] - 0.5
    rays = cam.pixel_to_ray(uv)
    assert rays.shape == (4, 6, 3)
    assert np.linalg.norm(rays, axis=-1) == pytest.approx(np.ones((4, 6)))
    back, depth = cam.project(cam.position_m + 7.0 * rays)
    assert back == pytest.approx(uv, abs=1e-9)
    assert np.all(depth > 0)


@pytest.mark.parametrize("mount", list(MOUNTS))
def test_pixels_at_or_above_the_horizon_have_no_ground_point(mount):
    cam = PinholeCamera(**MOUNTS[mount])
    u = np.linspace(-0.5, cam.width_px - 0.5, 41)
    hz = cam.horizon_row(u)
    above = np.stack([u, hz - 0.5], axis=-1)
    on = np.stack([u, hz], axis=-1)
    below = np.stack([u, hz + 0.5], axis=-1)
    assert np.isnan(cam.pixel_to_ground(above)).all()
    on_ground = cam.pixel_to_ground(on)  # exactly horizontal rays: NaN or absurdly far
    assert np.all(np.isnan(on_ground[:, 0]) | (np.linalg.norm(on_ground, axis=-1) > 1e4))
    assert np.isfinite(cam.pixel_to_ground(below)).all()


def test_camera_below_the_plane_sees_no_ground():
    cam = PinholeCamera(z_m=1.5, pitch_rad=0.3)
    uv = np.array([[cam.cx, cam.height_px - 1.0]])
    assert np.isfinite(cam.pixel_to_ground(uv)).all()
    assert np.isnan(cam.pixel_to_ground(uv, ground_z_m=2.0)).all()


# ------------------------------------------------------------------ horizon


@pytest.mark.parametrize("pitch_deg", [-10.0, 0.0, 5.0, 20.0])
def test_horizon_row_matches_the_pitch_and_far_ground_points_approach_it(pitch_deg):
    cam = PinholeCamera(pitch_rad=math.radians(pitch_deg))
    expected = cam.cy - cam.fy * math.tan(math.radians(pitch_deg))  # positive pitch: above cy
    assert cam.horizon_row() == pytest.approx(expected)
    assert cam.horizon_row(np.array([0.0, 100.0, 255.0])) == pytest.approx([expected] * 3)
    rows = cam.project(np.array([[d, 0.0, 0.0] for d in (1e2, 1e3, 1e5)]))[0][:, 1]
    assert np.all(np.diff(rows) < 0) and np.all(rows > expected)  # from below, ever closer
    assert rows[-1] == pytest.approx(expected, abs=0.01)


@pytest.mark.parametrize("mount", ["rolled", "side_left", "odd_intrinsics", "rear"])
def test_horizon_with_roll_is_the_vanishing_line_of_the_road(mount):
    cam = PinholeCamera(**MOUNTS[mount])
    p, r = cam.pitch_rad, cam.roll_rad
    u = np.linspace(0, cam.width_px - 1, 9)
    closed_form = cam.cy - cam.fy * math.tan(p) / math.cos(r) - math.tan(r) * (u - cam.cx)
    assert cam.horizon_row(u) == pytest.approx(closed_form)
    # points on the road 1e6 m away, in every direction the camera sees, land on it
    heading = cam.yaw_rad + np.linspace(-0.6, 0.6, 13) * math.radians(cam.hfov_deg) / 2
    far = np.stack([1e6 * np.cos(heading), 1e6 * np.sin(heading), np.zeros_like(heading)], -1)
    uv, _ = cam.project(far)
    assert uv[:, 1] == pytest.approx(cam.horizon_row(uv[:, 0]), abs=1e-3)


def test_positive_roll_raises_the_horizon_on_the_right():
    cam = PinholeCamera(roll_rad=0.1)
    assert cam.horizon_row(cam.width_px - 1.0) < cam.horizon_row(0.0)


def test_horizon_undefined_looking_straight_down():
    cam = PinholeCamera(pitch_rad=math.pi / 2)
    assert math.isnan(cam.horizon_row())
    assert np.isnan(cam.horizon_row(np.array([1.0, 2.0]))).all()
    # and straight down still maps its centre pixel to the road below the lens
    assert cam.pixel_to_ground(np.array([cam.cx, cam.cy])) == pytest.approx([cam.x_m, 0.0, 0.0])


# ------------------------------------------------------------------ rear camera


def test_rear_camera_sees_behind_not_ahead():
    rig = default_rig()
    rear = rig["cam_rear"]
    behind = np.array([[-20.0, 0.0, rear.z_m], [-15.0, 0.0, 0.0]])
    uv, depth = rear.project(behind)
    assert np.all(depth > 0)
    assert uv[0, 0] == pytest.approx(rear.cx, abs=1e-9)
    assert abs(uv[0, 1] - rear.cy) < 0.1 * rear.height_px
    assert rear.in_image(uv).all()
    # straight along its optical axis: exactly the principal point
    axis_point = rear.position_m + 20.0 * rear.rotation_ego_from_camera[:, 2]
    assert rear.project(axis_point)[0] == pytest.approx([rear.cx, rear.cy], abs=1e-9)
    ahead = np.array([[20.0, 0.0, 0.0], [5.0, 0.0, 1.5], [10.0, 3.0, 0.0]])
    uv, depth = rear.project(ahead)
    assert np.all(depth < 0) and np.isnan(uv).all()
    # left of the ego appears on the rear image's right (it looks backward)
    assert rear.project(np.array([-20.0, 3.0, 0.0]))[0][0] > rear.cx
    # the front camera is the other way round
    front = rig["cam_front"]
    assert np.isnan(front.project(behind)[0]).all()


# ------------------------------------------------------------------ validation and dicts


@pytest.mark.parametrize(
    "bad",
    [
        {"width_px": 4},
        {"width_px": 100.5},
        {"height_px": 0},
        {"height_px": "tall"},
        {"hfov_deg": 0.0},
        {"hfov_deg": 180.0},
        {"hfov_deg": float("nan")},
        {"x_m": float("inf")},
        {"z_m": float("nan")},
        {"yaw_rad": None},
        {"pitch_rad": 2.0},
        {"roll_rad": -1.7},
        {"near_m": 0.0},
        {"near_m": -1.0},
    ],
)
def test_camera_rejects_bad_values_by_name(bad):
    with pytest.raises(ValueError) as e:
        PinholeCamera(**bad)
    name, value = next(iter(bad.items()))
    assert name in str(e.value) and repr(value) in str(e.value)


@pytest.mark.parametrize("mount", list(MOUNTS))
def test_camera_dict_round_trip(mount):
    cam = PinholeCamera(**MOUNTS[mount])
    d = json.loads(json.dumps(cam.to_dict()))
    assert PinholeCamera.from_dict(d) == cam
    assert PinholeCamera.from_dict({}) == PinholeCamera()


def test_camera_from_dict_rejects_unknown_keys():
    with pytest.raises(ValueError, match="unknown PinholeCamera keys.*'zoom'.*known"):
        PinholeCamera.from_dict({"width_px": 64, "zoom": 2})


def test_cameras_are_immutable_and_hashable():
    cam = PinholeCamera()
    with pytest.raises(AttributeError):
        cam.z_m = 3.0  # type: ignore[misc]
    with pytest.raises(ValueError):
        cam.rotation_ego_from_camera[0, 0] = 2.0
    assert (
        hash(cam) == hash(PinholeCamera())
        and len({cam, PinholeCamera(), default_rig()["cam_rear"]}) == 2
    )


def test_default_rig():
    rig = default_rig()
    assert rig.names == ("cam_front", "cam_rear") and list(rig) == list(rig.names)
    assert len(rig) == 2 and "cam_front" in rig and "cam_left" not in rig
    front, rear = rig["cam_front"], rig["cam_rear"]
    assert (front.width_px, front.height_px, front.hfov_deg, front.z_m) == (256, 128, 100.0, 1.5)
    assert 0 < front.pitch_rad < 0.2  # looking a little down
    assert 0.3 * front.height_px < front.horizon_row() < 0.5 * front.height_px  # above the middle
    # the bottom edge of the image meets the road about at the ego's front bumper (x = 2.5 m)
    bottom = front.pixel_to_ground(np.array([front.cx, front.height_px - 0.5]))
    assert 2.0 < bottom[0] < 3.5
    assert rear.yaw_rad == pytest.approx(math.pi) and rear.x_m == -front.x_m
    assert (rear.width_px, rear.height_px, rear.hfov_deg, rear.z_m, rear.pitch_rad) == (
        front.width_px,
        front.height_px,
        front.hfov_deg,
        front.z_m,
        front.pitch_rad,
    )
    with pytest.raises(KeyError, match="cam_left"):
        rig["cam_left"]


def test_rig_dict_round_trip_keeps_order():
    rig = CameraRig(
        [("cam_rear", PinholeCamera(yaw_rad=math.pi)), ("cam_front", PinholeCamera(hfov_deg=70.0))]
    )
    d = json.loads(json.dumps(rig.to_dict()))
    back = CameraRig.from_dict(d)
    assert back == rig and back.names == ("cam_rear", "cam_front")
    assert CameraRig.from_dict(default_rig().to_dict()) == default_rig()
    assert CameraRig(dict(rig.items())) == rig


@pytest.mark.parametrize(
    "bad,match",
    [
        ({"cameras": {}, "version": 2}, "unknown CameraRig keys.*version"),
        ({"cameras": {"cam_front": {"fov": 90}}}, "unknown PinholeCamera keys.*fov"),
        ({}, "cameras"),
        ({"cameras": {}}, "at least one camera"),
    ],
)
def test_rig_from_dict_rejects_bad_dicts(bad, match):
    with pytest.raises(ValueError, match=match):
        CameraRig.from_dict(bad)


@pytest.mark.parametrize("name", ["", "cam front", "1cam", "cam-rear", "câm", 3])
def test_rig_rejects_bad_names(name):
    with pytest.raises(ValueError) as e:
        CameraRig([(name, PinholeCamera())])
    assert repr(name) in str(e.value)


def test_rig_rejects_duplicates_empties_and_non_cameras():
    with pytest.raises(ValueError, match="'cam_front' appears twice"):
        CameraRig([("cam_front", PinholeCamera()), ("cam_front", PinholeCamera(yaw_rad=1.0))])
    with pytest.raises(ValueError, match="at least one"):
        CameraRig([])
    with pytest.raises(TypeError, match="cam_front.*PinholeCamera"):
        CameraRig({"cam_front": {"width_px": 64}})


def test_numpy_scalars_become_plain_numbers():
    cam = PinholeCamera(
        width_px=np.int64(256), height_px=128.0, hfov_deg=np.float32(100.0), z_m=np.float64(1.5)
    )
    assert type(cam.width_px) is int and type(cam.height_px) is int
    assert type(cam.hfov_deg) is float and type(cam.z_m) is float
    assert cam == PinholeCamera(z_m=1.5) and json.dumps(cam.to_dict())
