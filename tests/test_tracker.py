"""The tracker on synthetic constant-velocity scenes: ids, velocities, hysteresis."""

import numpy as np
import pytest

from perception.boxes import Boxes
from perception.tracker import Tracker
from planning.prediction import ObjectStates
from sim.geometry.frames import world_to_ego

DT = 1 / 15


def scene(t, cars):
    """World positions at time t of cars given as (x0, y0, vx, vy)."""
    c = np.asarray(cars, dtype=float)
    return c[:, :2] + c[:, 2:] * t


def detections(world_xy, pose, rng=None, noise_m=0.0):
    ego = world_to_ego(world_xy, pose[:2], pose[2])
    if rng is not None:
        ego = ego + rng.normal(0.0, noise_m, ego.shape)
    n = len(ego)
    return Boxes(
        ego, np.zeros(n), np.full(n, 5.0), np.full(n, 2.0), np.zeros(n, np.int8), np.ones(n)
    )


CARS = [(20.0, 0.0, 25.0, 0.0), (40.0, 4.0, 18.0, 0.0), (5.0, -4.0, 30.0, 1.0)]


def test_constant_velocity_cars_get_stable_ids_and_their_velocities():
    rng = np.random.default_rng(0)
    tracker = Tracker(DT)
    errors = []
    for k in range(45):  # 3 s, the ego driving along at 22 m/s
        t = k * DT
        pose = np.array([22.0 * t, 0.0, 0.0])
        tracker.update(detections(scene(t, CARS), pose, rng, noise_m=0.2), pose)
        if k == 1:
            first_ids = sorted(tracker.objects().id.tolist())
        if k >= 30:  # the last second
            out = tracker.objects()
            order = np.argsort(out.id)
            errors.append(np.linalg.norm(out.velocity_mps[order] - np.array(CARS)[:, 2:], axis=1))
    out = tracker.objects()
    assert isinstance(out, ObjectStates)  # the one format perception hands planning
    assert out.kind.dtype == np.int8 and np.all(out.yaw_rate_radps == 0.0)
    assert sorted(out.id.tolist()) == first_ids == [0, 1, 2]  # confirmed on the 2nd frame, kept
    order = np.argsort(out.id)
    # 0.2 m of position noise per frame at 15 Hz: velocity within 0.5 m/s RMS after 2 s
    assert np.sqrt(np.mean(np.square(errors))) < 0.5  # [m/s]
    assert np.abs(out.position_m[order] - scene(44 * DT, CARS)).max() < 0.3
    heading = out.heading_rad[order]
    assert heading[2] == pytest.approx(np.arctan2(1.0, 30.0), abs=0.02)  # from the velocity


def test_one_frame_ghosts_never_appear_and_one_frame_misses_lose_nothing():
    tracker = Tracker(DT, confirm_hits=2, max_misses=2)
    pose = np.zeros(3)
    cars = [(10.0, 0.0, 10.0, 0.0)]
    seen_ids = set()
    for k in range(30):
        xy = scene(k * DT, cars)
        if k == 10:
            xy = np.zeros((0, 2))  # missed
        if k == 20:
            xy = np.vstack([xy, [[30.0, 8.0]]])  # a ghost, once
        tracker.update(detections(xy, pose), pose)
        seen_ids |= set(tracker.objects().id.tolist())
    assert seen_ids == {0}  # the same car throughout, never the ghost


def test_tracks_die_after_max_misses_and_bad_settings_are_named():
    tracker = Tracker(DT, max_misses=2)
    pose = np.zeros(3)
    for _ in range(3):
        tracker.update(detections(np.array([[10.0, 0.0]]), pose), pose)
    for _ in range(3):
        tracker.update(Boxes.empty(), pose)
    assert len(tracker.objects().id) == 0 and not tracker.tracks
    with pytest.raises(ValueError, match="gate_m > 0"):
        Tracker(DT, gate_m=0.0)


def test_crossing_cars_are_not_swapped():
    """Two cars cross each other's path 1.5 m apart at the closest point: Hungarian
    association on predicted positions keeps each id on its own car."""
    cars = [(0.0, -10.0, 0.0, 10.0), (-10.0, 1.5, 10.0, 0.0)]
    tracker = Tracker(DT)
    pose = np.array([0.0, -30.0, np.pi / 2])
    for k in range(30):
        tracker.update(detections(scene(k * DT, cars), pose), pose)
    out = tracker.objects()
    order = np.argsort(out.id)
    assert np.abs(out.velocity_mps[order] - np.array(cars)[:, 2:]).max() < 0.5


@pytest.mark.parametrize("motion", ["cv", "ca"])
def test_a_braking_car_is_reported_decelerating_by_the_constant_acceleration_model(motion):
    """A car 15 m ahead at 25 m/s brakes at 6 m/s^2 from t = 0.5 s, detected with 0.2 m of
    noise: after 1 s of braking the constant-acceleration tracker reports -6 +- 2 m/s^2 and
    its speed within 1.5 m/s; the constant-velocity one reports no acceleration and lags."""
    rng = np.random.default_rng(0)
    tracker = Tracker(DT, motion=motion)
    x, v = 15.0, 25.0
    for k in range(int(1.5 / DT)):
        t = k * DT
        pose = np.array([25.0 * t, 0.0, 0.0])
        tracker.update(detections(np.array([[x, 0.0]]), pose, rng, noise_m=0.2), pose)
        a = -6.0 if t >= 0.5 else 0.0
        x, v = x + v * DT, v + a * DT
    obj = tracker.objects()
    assert len(obj) == 1
    true_speed = v - (-6.0) * DT  # the speed at the last detection
    if motion == "ca":
        assert obj.acceleration_mps2[0] == pytest.approx(-6.0, abs=2.0)
        assert obj.speed_mps[0] == pytest.approx(true_speed, abs=1.5)
    else:
        assert obj.acceleration_mps2[0] == 0.0
        assert obj.speed_mps[0] > true_speed + 1.0  # the constant-velocity model lags the braking


def test_an_unknown_motion_model_is_refused():
    with pytest.raises(ValueError, match="known: cv, ca"):
        Tracker(DT, motion="imm")


def _stalled_car_seen_from_afar(tracker, seconds=2.0):
    """A car standing 70 m ahead, the ego closing at 20 m/s, its depth measured with the
    monocular detector's error (sigma 0.001 r^2: 4.9 m at 70 m, 1.6 m at 40 m)."""
    rng = np.random.default_rng(3)
    ids, speeds = [], []
    for k in range(int(seconds / DT)):
        t = k * DT
        pose = np.array([20.0 * t, 0.0, 0.0])
        rel = np.array([70.0 - 20.0 * t, 0.0])
        r = rel[0]
        noisy = rel + np.array([rng.normal(0.0, 0.001 * r * r), rng.normal(0.0, 0.2)])
        det = Boxes(
            noisy[None],
            np.zeros(1),
            np.full(1, 5.0),
            np.full(1, 2.0),
            np.zeros(1, np.int8),
            np.ones(1),
        )
        tracker.update(det, pose)
        obj = tracker.objects()
        ids.append(tuple(obj.id.tolist()))
        speeds.append(obj.speed_mps.tolist())
    return ids, speeds


def test_depth_noise_along_the_ray_keeps_a_far_car_tracked():
    """With the ray-aligned depth noise and the Mahalanobis gate the far stalled car is
    re-born less often than under a 3 m Euclidean gate (each new track starts at the ego's
    speed), and after 2 s its track says it is nearly standing."""
    ray = Tracker(DT, motion="ca", init_velocity="ego", depth_noise_per_m2=0.001)
    ids, speeds = _stalled_car_seen_from_afar(ray)
    ray_tracks = {i for frame in ids for i in frame}
    euclid = Tracker(DT, motion="ca", init_velocity="ego")
    ids, _ = _stalled_car_seen_from_afar(euclid)
    assert len(ray_tracks) < len({i for frame in ids for i in frame})
    assert speeds[-1][0] < 8.0  # from the ego's 20 m/s


def test_the_speedometer_starts_first_frame_tracks_moving_with_the_ego():
    """At an episode's first frame the pose has no history: without the speedometer a new
    track starts at rest (25 m/s off for a lead driving with the ego), with it, at the
    ego's velocity."""
    cars = [(12.0, 0.0, 25.0, 0.0)]
    for speedometer, expected in ((None, 0.0), (25.0, 25.0)):
        tracker = Tracker(DT, motion="ca", init_velocity="ego")
        pose = np.array([0.0, 0.0, 0.0])
        tracker.update(detections(scene(0.0, cars), pose), pose, speedometer)
        assert tracker.tracks[0].x[2] == pytest.approx(expected)


def test_speed_uncertainty_is_wide_for_new_and_far_tracks_and_narrows():
    """The filter's speed standard deviation: wide when a track is born, narrower after a
    second of measurements; a far car's (metres of depth noise) narrows more slowly."""
    tracker = Tracker(DT, motion="ca", init_velocity="ego", depth_noise_per_m2=0.001)
    _stalled_car_seen_from_afar(tracker, seconds=2 * DT)
    first = tracker.speed_sigma_mps()
    assert len(first) == 1 and first[0] > 5.0
    sigma = {}
    for r0 in (70.0, 15.0):  # a second of a standing car, far and near
        t = Tracker(DT, motion="ca", init_velocity="ego", depth_noise_per_m2=0.001)
        pose = np.zeros(3)
        for _ in range(15):
            t.update(detections(np.array([[r0, 0.0]]), pose), pose, 0.0)
        sigma[r0] = t.speed_sigma_mps()[0]
    assert sigma[15.0] < 1.5 < sigma[70.0] < first[0]


def overtaker_scene(rig_view, max_unseen_s):
    """A car in the next lane, 1.5 m/s faster than the ego, drives from behind the ego
    through the rig's blind spot beside it and on ahead; the detector sees it only where a
    camera does.  Returns the tracker's ids each frame (None: not reported) and whether it
    was in view."""
    from agents.modular import CAR_CENTRE_HEIGHT_M, IN_VIEW_MARGIN_PX, RIG_TRACKER

    def sees(c):
        points = np.concatenate([c, np.full((len(c), 1), CAR_CENTRE_HEIGHT_M)], axis=1)
        return rig_view.sees(points, IN_VIEW_MARGIN_PX)

    options = {**RIG_TRACKER, "max_unseen_s": max_unseen_s}
    tracker = Tracker(DT, in_view=sees, **options)
    ids, seen = [], []
    for k in range(240):  # 16 s: from 12 m behind to 12 m ahead
        t = k * DT
        pose = np.array([25.0 * t, 0.0, 0.0])
        car = np.array([[-12.0 + 26.5 * t, 4.0]])
        visible = bool(sees(world_to_ego(car, pose[:2], pose[2]))[0])
        det = detections(car, pose) if visible else detections(np.zeros((0, 2)), pose)
        tracker.update(det, pose, ego_speed_mps=25.0)
        out = tracker.objects()
        ids.append(int(out.id[0]) if len(out) else None)
        seen.append(visible)
    return ids, seen


def test_a_car_in_the_rigs_blind_spot_is_predicted_on_not_forgotten():
    """The default rig (front and rear cameras) leaves the car's sides unseen; a car passing
    through there keeps its track, reported all the way, with its speed, and leaves it on the
    same id; without the view model it is dropped within max_misses frames and born again."""
    from sim.geometry.pinhole import default_rig

    rig = default_rig()
    ids, seen = overtaker_scene(rig, max_unseen_s=8.0)
    gap = [k for k, s in enumerate(seen) if not s and k > 0 and seen[0]]
    assert gap and seen[-1]  # the scene does cross the blind spot and end in view
    first = next(k for k, i in enumerate(ids) if i is not None)
    assert all(i == ids[first] for i in ids[first:])  # one id, reported every frame
    blind_ids, _ = overtaker_scene(rig, max_unseen_s=0.0)
    assert any(blind_ids[k] is None for k in gap)  # forgotten beside the car
    assert len({i for i in blind_ids if i is not None}) == 2  # ... and born again ahead


def test_an_unseen_track_coasts_at_constant_velocity_and_expires():
    """Out of view: no misses, the acceleration and the velocity across the box's axis
    dropped, gone after max_unseen_s;
    in view, a missing detection is a miss as before."""
    tracker = Tracker(DT, motion="ca", in_view=lambda c: c[:, 0] > 10.0, max_unseen_s=1.0)
    pose = np.zeros(3)
    for _ in range(10):  # a car 20 m ahead, braking
        tracker.update(detections(np.array([[20.0, 0.0]]), pose), pose)
    tracker.tracks[0].x[4] = -3.0
    tracker.tracks[0].x[2:4] = [-1.0, 2.0]  # 2 m/s across the box's axis (heading 0)
    far = Tracker(DT, in_view=lambda c: c[:, 0] > 10.0, max_unseen_s=1.0)
    for _ in range(3):
        far.update(detections(np.array([[20.0, 0.0]]), pose), pose)
    # the view now ends before the car: its track coasts
    tracker.in_view = lambda c: c[:, 0] > 30.0
    tracker.update(detections(np.zeros((0, 2)), pose), pose)
    assert tracker.tracks[0].misses == 0 and tracker.tracks[0].unseen == 1
    assert tracker.tracks[0].x[4] == 0.0  # no acceleration extrapolated while unseen
    assert tracker.tracks[0].x[3] == 0.0 and tracker.tracks[0].x[2] < -0.5  # along its axis
    for _ in range(14):
        tracker.update(detections(np.zeros((0, 2)), pose), pose)
    assert len(tracker.objects()) == 1  # 15 frames = 1 s unseen: still there
    tracker.update(detections(np.zeros((0, 2)), pose), pose)
    assert len(tracker.objects()) == 0  # past max_unseen_s
    for _ in range(4):  # in view and not detected: max_misses (3) frames, then gone
        far.update(detections(np.zeros((0, 2)), pose), pose)
    assert len(far.objects()) == 0
    with pytest.raises(ValueError, match="max_unseen_s"):
        Tracker(DT, max_unseen_s=-1.0)


def test_the_default_rig_sees_ahead_and_behind_but_not_beside_the_car():
    from sim.geometry.pinhole import default_rig

    rig = default_rig()
    points = np.array(
        [[20.0, 0.0, 0.75], [-20.0, 4.0, 0.75], [0.0, 4.0, 0.75], [2.0, -4.0, 0.75], [8, 4, 0.75]]
    )
    assert rig.sees(points).tolist() == [True, True, False, False, True]
    # a margin narrows each image: a point near the front camera's edge drops out
    edge = np.array([[4.0 * np.tan(np.radians(40.5)) + 0.5, 4.0, 0.75]])
    assert rig.sees(edge)[0] and not rig.sees(edge, margin_px=20)[0]


def test_a_track_back_from_the_blind_spot_takes_only_a_near_detection():
    """Predicted through a blind spot, a track's covariance grows wide: under the Mahalanobis
    gate alone it would take a detection metres away (a ghost grabbing the next car out of
    the blind spot, which then reads as moving at 34 m/s); it reacquires within gate_m."""
    from agents.modular import RIG_TRACKER

    def run(offset_m):
        tracker = Tracker(DT, in_view=lambda c: c[:, 0] > 20.0, **RIG_TRACKER)
        pose = np.zeros(3)
        for _ in range(5):
            tracker.update(detections(np.array([[30.0, 0.0]]), pose), pose)
        tracker.in_view = lambda c: c[:, 0] > 40.0  # out of view: predicted on for 2 s
        for _ in range(30):
            tracker.update(detections(np.zeros((0, 2)), pose), pose)
        tracker.in_view = lambda c: c[:, 0] > 20.0
        tracker.update(detections(np.array([[30.0 + offset_m, 0.0]]), pose), pose)
        return [t.id for t in tracker.tracks]

    assert run(1.0) == [0]  # within gate_m: the same track
    assert run(6.0) == [0, 1]  # 6 m off: a new track; the old one, now in view, is missed
