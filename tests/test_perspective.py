"""The perspective renderer: determinism, near-plane clipping, placement against the pinhole
model, occlusion, markings on straight and curved roads, the horizon."""

import math

import numpy as np
import pytest

from sim.geometry.frames import ego_to_world, hw_to_world_heading, hw_to_world_xy, world_to_ego
from sim.geometry.pinhole import PinholeCamera, default_rig
from sim.world.env import DrivingEnv
from sim.world.perspective import (
    MARKING_WIDTH_M,
    PerspectivePalette,
    PerspectiveRenderer,
    QuadSet,
    RoadMesh,
    _clip_crossing,
    clip_near,
    object_heights,
    render_env,
    renderer_for,
)
from sim.world.render import KIND_VEHICLE, SceneObjects

PAL = PerspectivePalette()
FRONT = default_rig()["cam_front"]


@pytest.fixture(scope="module")
def highway():
    env = DrivingEnv("highway", sensors=("speed",), overrides={"vehicles_count": 8})
    env.reset(seed=3)
    yield env
    env.close()


def _pose(env):
    ego = env.world.vehicle
    return hw_to_world_xy(ego.position), float(hw_to_world_heading(ego.heading))


def _boxes(ego_xy, heading, ahead_left_m, length_m, width_m, kind=None) -> SceneObjects:
    """Boxes at ego-frame offsets ``[N, 2]``, aligned with the ego."""
    pts = np.asarray(ahead_left_m, dtype=np.float64).reshape(-1, 2)
    n = len(pts)
    return SceneObjects(
        ego_to_world(pts, ego_xy, heading),
        np.full(n, heading),
        np.broadcast_to(np.asarray(length_m, dtype=float), (n,)).copy(),
        np.broadcast_to(np.asarray(width_m, dtype=float), (n,)).copy(),
        np.full(n, KIND_VEHICLE, dtype=np.int8) if kind is None else kind,
    )


def _is(img, colour) -> np.ndarray:
    return np.all(img == np.array(colour, dtype=np.uint8), axis=-1)


# ---------------------------------------------------------------------------- determinism
def test_same_state_same_bytes_and_same_seed_same_frames(highway):
    a = render_env(highway, FRONT, instance=True, depth=True)
    b = render_env(highway, FRONT, instance=True, depth=True)
    assert a.image.dtype == np.uint8 and a.image.shape == FRONT.shape
    assert a.image.tobytes() == b.image.tobytes()
    assert np.array_equal(a.instance, b.instance) and np.array_equal(a.depth_m, b.depth_m)
    frames = []
    for _ in range(2):
        env = DrivingEnv("highway", sensors=("speed",), overrides={"vehicles_count": 8})
        env.reset(seed=11)
        env.step(np.zeros(env.action_space.shape))
        frames.append([render_env(env, cam).image for _, cam in default_rig().items()])
        env.close()
    for x, y in zip(*frames):
        assert x.tobytes() == y.tobytes()
    assert np.unique(frames[0][0].reshape(-1, 3), axis=0).shape[0] > 4  # not a blank frame


# ---------------------------------------------------------------------------- near plane
def test_clip_near_keeps_only_the_front_part():
    quad = np.array(
        [
            [[-1.0, 1.0, -2.0], [1.0, 1.0, -2.0], [1.0, 1.0, 3.0], [-1.0, 1.0, 3.0]],
            [[0.0, 0.0, 1.0], [1.0, 0.0, 1.0], [1.0, 1.0, 1.0], [0.0, 1.0, 1.0]],
            [[0.0, 0.0, -1.0], [1.0, 0.0, -1.0], [1.0, 1.0, -1.0], [0.0, 1.0, -1.0]],
        ]
    )
    out, count = clip_near(quad, 0.1)
    assert count.tolist() == [4, 4, 0]
    assert np.all(out[0, :, 2] >= 0.1 - 1e-12)
    distinct = np.unique(np.round(out[0], 9), axis=0)
    assert sorted(distinct[:, 2].tolist()) == [0.1, 0.1, 3.0, 3.0]
    assert np.array_equal(out[1, :4], quad[1]) and np.all(out[1, 4:] == quad[1, 3])
    # a triangle in front of the plane and a corner behind it: a pentagon
    tri = np.array([[[0.0, 0.0, 1.0], [2.0, 0.0, 1.0], [2.0, 2.0, -1.0], [0.0, 2.0, 1.0]]])
    out, count = clip_near(tri, 0.1)
    assert count.tolist() == [5] and np.all(out[..., 2] >= 0.1 - 1e-12)


def test_one_by_one_and_vectorised_clipping_agree():
    rng = np.random.default_rng(0)
    polys = rng.normal(size=(40, 8, 3))
    polys[:, :4, 2] = np.abs(polys[:, :4, 2]) + 0.2  # every polygon crosses z = 0.1
    polys[:, 4:, 2] = -np.abs(polys[:, 4:, 2])
    many, n_many = clip_near(polys, 0.1)
    few, n_few = _clip_crossing(polys[:10], 0.1)
    assert np.array_equal(n_many[:10], n_few)
    assert np.allclose(many[:10], few, atol=1e-12)


def test_no_holes_in_the_road(highway):
    """Lane polygons are filled a group per call with OpenCV's even-odd rule: no overlap
    may cancel out into a hole between the road edges."""
    xy, h = _pose(highway)
    img = renderer_for(highway.geometry).render(FRONT, xy, h, SceneObjects.empty()).image
    lanes = list(highway.geometry.lanes.values())
    y_lo = min(float(lane.right_m[0, 1]) for lane in lanes)
    y_hi = max(float(lane.left_m[0, 1]) for lane in lanes)
    v = np.arange(int(FRONT.horizon_row()) + 8, FRONT.height_px)
    edges_u = []
    for y in (y_lo, y_hi):
        ends = np.array([[xy[0] + 6.0, y], [xy[0] + 200.0, y]])
        ends = np.concatenate([world_to_ego(ends, xy, h), np.zeros((2, 1))], axis=1)
        (ua, va), (ub, vb) = FRONT.project(ends)[0]
        edges_u.append(ua + (ub - ua) / (vb - va) * (v - va))
    for row, a, b in zip(v, *edges_u):
        lo, hi = int(np.ceil(min(a, b))) + 3, int(np.floor(max(a, b))) - 3
        lo, hi = max(lo, 0), min(hi, FRONT.width_px - 1)
        if hi > lo:
            assert not _is(img[row, lo : hi + 1], PAL.ground).any(), row


def test_a_box_behind_the_camera_changes_no_pixel(highway):
    xy, h = _pose(highway)
    r = renderer_for(highway.geometry)
    empty = r.render(FRONT, xy, h, SceneObjects.empty()).image
    for ahead_left in ([-6.0, 0.0], [-8.0, 3.5], [-20.0, -3.0]):  # front ends <= 0 m
        img = r.render(FRONT, xy, h, _boxes(xy, h, ahead_left, 12.0, 2.5)).image
        assert np.array_equal(img, empty), ahead_left


def test_a_box_straddling_the_near_plane_is_clipped_not_smeared(highway):
    xy, h = _pose(highway)
    r = renderer_for(highway.geometry)
    empty = r.render(FRONT, xy, h, SceneObjects.empty()).image
    # 5 m car from 2 m behind to 3 m ahead of the ego's centre, in the lane to the left:
    # the lens (x = 0.5 m) is inside its length, so its faces cross the near plane
    frame = r.render(FRONT, xy, h, _boxes(xy, h, [0.5, 3.0], 5.0, 2.0), instance=True)
    seen = frame.instance == 0
    assert seen.sum() > 100  # the part in front of the lens fills the lower left corner
    # its true projection: x in (near, 3] m ahead, y in [2, 4] m left; the rightmost pixel is
    # the projection of its front right edge
    edge = FRONT.project(np.array([[3.0, 2.0, 0.0], [3.0, 2.0, CAR_TOP]]))[0]
    cols = np.nonzero(seen.any(axis=0))[0]
    assert cols.max() <= edge[:, 0].max() + 1
    right = np.s_[:, int(FRONT.cx) :]
    assert np.array_equal(frame.image[right], empty[right])


# ---------------------------------------------------------------------------- placement
@pytest.mark.parametrize("ahead_m", [10.0, 20.0, 40.0])
def test_a_car_ahead_sits_where_the_pinhole_model_puts_it(highway, ahead_m):
    xy, h = _pose(highway)
    r = renderer_for(highway.geometry)
    frame = r.render(
        FRONT, xy, h, _boxes(xy, h, [ahead_m, 0.0], 5.0, 2.0), instance=True, depth=True
    )
    rows, cols = np.nonzero(frame.instance == 0)
    assert len(rows)
    rear = ahead_m - 2.5
    corners = np.array([[rear, 1.0, 0.0], [rear, -1.0, 0.0], [rear, 0.0, CAR_TOP]])
    uv = FRONT.project(corners)[0]
    assert rows.max() == pytest.approx(uv[0, 1], abs=1.0)  # bottom edge: rear bottom corners
    assert rows.min() == pytest.approx(uv[2, 1], abs=1.0)  # roof: at the lens height, the horizon
    assert cols.min() == pytest.approx(uv[0, 0], abs=1.0)  # left edge: the car's left (+y)
    assert cols.max() == pytest.approx(uv[1, 0], abs=1.0)
    # depth image: the rear face's depth at its centre pixel, and the road's elsewhere
    centre = FRONT.project(np.array([rear, 0.0, CAR_TOP / 2]))[0]
    u, v = np.rint(centre).astype(int)
    point_depth = FRONT.project(np.array([rear, 0.0, CAR_TOP / 2]))[1]
    assert frame.depth_m[v, u] == pytest.approx(point_depth, rel=0.02)
    ground_uv = np.array([10.0, FRONT.height_px - 3.0])
    ground = FRONT.pixel_to_ground(ground_uv)
    gv, gu = int(ground_uv[1]), int(ground_uv[0])
    assert frame.depth_m[gv, gu] == pytest.approx(FRONT.project(ground)[1], rel=1e-4)
    assert np.isinf(frame.depth_m[0, 0])


CAR_TOP = float(object_heights(np.array([5.0]), np.array([KIND_VEHICLE]))[0])


def test_a_car_behind_a_truck_is_hidden(highway):
    xy, h = _pose(highway)
    r = renderer_for(highway.geometry)
    car = _boxes(xy, h, [40.0, 0.0], 5.0, 2.0)
    alone = r.render(FRONT, xy, h, car, ids=np.array([7]), instance=True).instance
    assert (alone == 7).sum() > 10
    truck = _boxes(xy, h, [15.0, 0.0], 12.0, 2.5)
    fields = ("position_m", "heading_rad", "length_m", "width_m", "kind")
    both = SceneObjects(*(np.concatenate([getattr(car, f), getattr(truck, f)]) for f in fields))
    # either listing order: only the depth order hides the car
    for order in ([0, 1], [1, 0]):
        objs = SceneObjects(
            both.position_m[order],
            both.heading_rad[order],
            both.length_m[order],
            both.width_m[order],
            both.kind[order],
        )
        ids = np.array([7, 8])[order]
        mask = r.render(FRONT, xy, h, objs, ids=ids, instance=True).instance
        assert (mask == 7).sum() == 0
        assert (mask == 8).sum() > 100


# ---------------------------------------------------------------------------- markings
def test_straight_highway_markings_lie_on_the_projected_lines(highway):
    xy, h = _pose(highway)
    img = renderer_for(highway.geometry).render(FRONT, xy, h, SceneObjects.empty()).image
    lanes = list(highway.geometry.lanes.values())
    # every lane edge carrying a line: its world y (the highway runs along +x)
    ys = sorted(
        {
            round(float(edge[0, 1]), 6)
            for lane in lanes
            for kind, edge in ((lane.line_left, lane.left_m), (lane.line_right, lane.right_m))
            if kind != "none"
        }
    )
    assert len(ys) == 5
    v, u = np.nonzero(_is(img, PAL.marking))
    assert len(v) > 200
    # each line projects to an image line u = u0 + k v; a marking pixel lies on one of them,
    # within half the painted width, plus the fill's slack of up to a pixel across and a row
    # along (a row's run is |k| px)
    keep = v > FRONT.horizon_row() + 3
    v, u = v[keep].astype(float), u[keep].astype(float)
    off = []
    for y in ys:
        ends = np.array([[xy[0] + 6.0, y], [xy[0] + 200.0, y]])
        ends = np.concatenate([world_to_ego(ends, xy, h), np.zeros((2, 1))], axis=1)
        (ua, va), (ub, vb) = FRONT.project(ends)[0]
        k = (ub - ua) / (vb - va)
        depth = FRONT.pixel_to_ground(np.stack([u, v], axis=-1))
        width_px = MARKING_WIDTH_M * FRONT.fx / FRONT.project(depth)[1]
        off.append(np.abs(u - (ua + k * (v - va))) - (abs(k) + width_px / 2 + 1.0))
    assert np.all(np.min(off, axis=0) <= 0.0)
    # and the dashes and edges are where their projection says, up to 15 m away
    hits = 0
    for lane in lanes:
        for kind, edge in ((lane.line_left, lane.left_m), (lane.line_right, lane.right_m)):
            if kind == "none":
                continue
            starts = np.arange(0.0, lane.s_m[-1], 8.0) if kind == "striped" else None
            s = starts + 1.5 if starts is not None else np.arange(0.0, lane.s_m[-1], 1.0)
            pts = np.stack([np.interp(s, lane.s_m, edge[:, k]) for k in (0, 1)], axis=-1)
            ego_pts = np.concatenate([world_to_ego(pts, xy, h), np.zeros((len(pts), 1))], axis=1)
            uv, depth = FRONT.project(ego_pts)
            sel = FRONT.in_image(uv) & (depth < 15.0)
            for uu, vv in np.rint(uv[sel]).astype(int):
                assert _is(img[vv, uu], PAL.marking), (lane.index, kind, uu, vv)
                hits += 1
    assert hits >= 5


def test_curved_lane_marking_points_project_onto_marking_pixels():
    env = DrivingEnv("lane-keep", sensors=("speed",))
    env.reset(seed=0)
    geometry = env.geometry
    curved = [
        lane
        for lane in geometry.lanes.values()
        if np.ptp(np.unwrap(lane.heading_rad)) > 1.0 and lane.line_left == "continuous"
    ]
    assert curved
    lane = curved[0]
    i = len(lane.s_m) // 4
    xy, h = lane.centre_m[i], float(lane.heading_rad[i])
    img = renderer_for(geometry).render(FRONT, xy, h, SceneObjects.empty()).image
    pts = lane.left_m[i + 3 : i + 16]  # samples of a continuous line on the curve, 3-15 m ahead
    ego_pts = np.concatenate([world_to_ego(pts, xy, h), np.zeros((len(pts), 1))], axis=1)
    uv = FRONT.project(ego_pts)[0]
    sel = FRONT.in_image(uv)
    assert sel.sum() >= 5
    assert np.ptp(uv[sel, 0]) > 20  # it does bend across the image
    for uu, vv in np.rint(uv[sel]).astype(int):
        assert _is(img[vv, uu], PAL.marking), (uu, vv)
    env.close()


# ---------------------------------------------------------------------------- background
@pytest.mark.parametrize(
    "camera",
    [
        FRONT,
        default_rig()["cam_rear"],
        PinholeCamera(pitch_rad=-0.1, roll_rad=0.2, width_px=96, height_px=64, hfov_deg=70.0),
    ],
)
def test_sky_and_ground_split_at_the_horizon(camera):
    empty = RoadMesh(QuadSet.build([]), QuadSet.build([]))
    img = PerspectiveRenderer(empty).render(camera, np.zeros(2), 0.3, SceneObjects.empty()).image
    v, u = np.mgrid[0 : camera.height_px, 0 : camera.width_px]
    horizon = camera.horizon_row(u.astype(float))
    assert np.all(_is(img, PAL.sky)[v < horizon - 0.5])
    assert np.all(_is(img, PAL.ground)[v > horizon + 0.5])
    assert _is(img, PAL.sky).any() and _is(img, PAL.ground).any()


def test_heights_and_colours_are_deterministic_per_identity(highway):
    assert object_heights(np.array([5.0, 12.0, 2.0]), np.array([0, 0, 1])).tolist() == [
        1.5,
        3.5,
        1.0,
    ]
    xy, h = _pose(highway)
    r = renderer_for(highway.geometry)
    car = _boxes(xy, h, [[20.0, 0.0]], 5.0, 2.0)
    colours = set()
    for ident in range(12):
        img = r.render(FRONT, xy, h, car, ids=np.array([ident]), instance=True)
        again = r.render(FRONT, xy, h, car, ids=np.array([ident]), instance=True)
        assert np.array_equal(img.image, again.image)
        colours.add(tuple(img.image[img.instance == ident][0]))
    assert len(colours) >= 4
    assert math.isfinite(FRONT.fx)


# ---------------------------------------------------------------------------- road surface seams
def _inside_any(points: np.ndarray, polys: np.ndarray) -> np.ndarray:
    """Even-odd point-in-polygon: whether each point ``[N, 2]`` lies inside at least one of
    the polygons ``[Q, V, 2]`` (repeated padding vertices make zero-length edges: no crossing)."""
    out = np.zeros(len(points), dtype=bool)
    a, b = polys, np.roll(polys, -1, axis=1)
    for lo in range(0, len(points), 256):
        p = points[lo : lo + 256, None, None, :]  # [n, 1, 1, 2]
        spans = (a[None, ..., 1] > p[..., 1]) != (b[None, ..., 1] > p[..., 1])
        with np.errstate(divide="ignore", invalid="ignore"):
            x = (
                a[None, ..., 0]
                + (p[..., 1] - a[None, ..., 1])
                * ((b[..., 0] - a[..., 0]) / (b[..., 1] - a[..., 1]))[None]
            )
        odd = (spans & (p[..., 0] < x)).sum(axis=2) % 2 == 1  # [n, Q]
        out[lo : lo + 256] = odd.any(axis=1)
    return out


def _lane_points(env, step_m: float, lateral: tuple[float, ...]) -> np.ndarray:
    """World points of every highway-env lane: every ``step_m`` along it, at the given
    fractions of its half width (+ = its right, highway-env's lateral axis)."""
    pts = []
    for tos in env.world.road.network.graph.values():
        for lanes in tos.values():
            for lane in lanes:
                for s in np.arange(0.01, lane.length - 0.01, step_m):
                    half = lane.width_at(s) / 2
                    pts.extend(lane.position(s, f * half) for f in lateral)
    return hw_to_world_xy(np.array(pts))


def test_the_road_surface_covers_every_lane_up_to_its_borders():
    """lane-keep's racetrack pairs concentric arcs sampled every metre each: the two
    polygons of their shared border are different chords of one circle, and a sliver of
    ground (up to ~1 cm) showed between them as a dotted line in the frames.  Every point
    of every lane, 2 mm inside its borders, must lie on the surface mesh."""
    env = DrivingEnv("lane-keep", sensors=("speed",))
    env.reset(seed=0)
    mesh = RoadMesh.from_geometry(env.geometry)
    half_in = 1.0 - 0.004 / 5.0  # 2 mm inside the 5 m lanes' borders
    pts = _lane_points(env, 0.2, (-half_in, 0.0, half_in))
    inside = _inside_any(pts, mesh.surface.quads_m)
    env.close()
    assert inside.all(), pts[~inside][:5]


def test_no_ground_shows_through_the_road_between_concentric_arcs():
    """The rendered counterpart: along the racetrack's tightest arcs, no ground-coloured
    pixel (between two road pixels) lies on the road 3 cm or more from every lane border."""
    env = DrivingEnv("lane-keep", sensors=("speed",))
    env.reset(seed=0)
    geometry, net = env.geometry, env.world.road.network
    lanes = [la for tos in net.graph.values() for ls in tos.values() for la in ls]
    r = renderer_for(geometry)

    def on_road(world_xy):
        hw = np.array([world_xy[0], -world_xy[1]])  # highway-env's y points down
        for la in lanes:
            s, lat = la.local_coordinates(hw)
            if 0.0 <= s <= la.length and abs(lat) <= la.width_at(s) / 2:
                return True
        return False

    holes = []
    for index in (("d", "e", 0), ("d", "e", 1), ("e", "f", 0), ("e", "f", 1)):  # 15 m / 20 m arcs
        lane = geometry.lanes[index]
        for i in np.linspace(2, len(lane.s_m) - 3, 12).astype(int):
            xy, h = lane.centre_m[i], float(lane.heading_rad[i])
            for cam in (FRONT, default_rig()["cam_rear"]):
                img = r.render(cam, xy, h, SceneObjects.empty()).image
                g = _is(img, PAL.ground)
                road = ~g & ~_is(img, PAL.sky)
                cand = np.zeros_like(g)
                cand[:, 1:-1] = g[:, 1:-1] & road[:, :-2] & road[:, 2:]
                v, u = np.nonzero(cand)
                ground = cam.pixel_to_ground(np.stack([u, v], axis=-1).astype(float))
                for p in ground[np.isfinite(ground[:, 0]), :2]:
                    w = ego_to_world(p[None], xy, h)[0]
                    if all(on_road(w + d) for d in ((0.03, 0), (-0.03, 0), (0, 0.03), (0, -0.03))):
                        holes.append((index, int(i), w.round(2).tolist()))
    env.close()
    assert not holes, holes[:5]


# ---------------------------------------------------------------------------- one road pass, caches
def test_the_one_road_pass_culls_the_same_polygons_as_each_set(highway):
    mesh = renderer_for(highway.geometry).mesh
    flat, ns = mesh.flat, len(mesh.surface.group)
    xy, _ = _pose(highway)
    for eye in (xy, xy + [300.0, 0.0], xy + [-900.0, 40.0]):
        for reach in (5.0, 60.0, 250.0):
            want = np.concatenate(
                [mesh.surface.candidates(eye, reach), ns + mesh.markings.candidates(eye, reach)]
            )
            assert np.array_equal(np.sort(flat.candidates(eye, reach)), np.sort(want))
    assert np.array_equal(flat.quads_m[:ns], mesh.surface.quads_m)
    assert flat.marking.sum() == len(mesh.markings.group) and not flat.marking[:ns].any()


def test_cached_object_styles_follow_seed_ids_and_heights(highway):
    """Heights and colours are remembered per object list; a new colour seed, new
    identities or explicit heights must still change the frame."""
    xy, h = _pose(highway)
    r = renderer_for(highway.geometry)
    car = _boxes(xy, h, [[12.0, 0.0]], 5.0, 2.0)

    def colour(**kw):
        f = r.render(FRONT, xy, h, car, instance=True, **kw)
        return tuple(f.image[f.instance == (kw.get("ids", [0])[0])][0]), f

    seen = {colour(colour_seed=s)[0] for s in range(8)}
    assert len(seen) >= 3
    assert colour(colour_seed=5)[0] == colour(colour_seed=5)[0]
    low, tall = colour()[1], colour(heights_m=np.array([3.5]))[1]
    rows_low, rows_tall = (np.flatnonzero((f.instance == 0).any(axis=1)) for f in (low, tall))
    assert rows_tall[0] < rows_low[0] and rows_tall[-1] == rows_low[-1]
    assert colour()[1].image.tobytes() == low.image.tobytes()  # heights not stuck at 3.5 m
