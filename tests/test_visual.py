"""Visual conditions (:mod:`sim.world.visual`): ``day`` is the renderers' defaults to the
byte; every other condition changes the rig's frames and the bird's-eye raster the way it
says (night darker, dusk redder sky, colours only the road users, worn faded paint and
patched asphalt); rendering stays deterministic; caches keep conditions apart."""

import cv2
import numpy as np
import pytest

from sim.geometry.frames import ego_to_world, hw_to_world_heading, hw_to_world_xy
from sim.world.env import DrivingEnv
from sim.world.perspective import (
    _RENDERERS,
    RENDERER_CACHE_SIZE,
    PerspectivePalette,
    renderer_for,
)
from sim.world.render import (
    KIND_OBSTACLE,
    Palette,
    SceneObjects,
    SceneRenderer,
    _convex_overlap,
    wear_patches,
)
from sim.world.roadmap import RoadGeometry
from sim.world.scenarios import VISUAL_CONDITIONS, get_scenario
from sim.world.visual import CONDITIONS, MARKING_FADE, visual_palettes

CAMERAS = ("cam_front", "cam_rear", "bev")
SEED, STEPS = 7, 30  # a truck and cars ahead of the ego, cars behind it


def _drive(name: str) -> dict:
    """Frames of every camera, the front camera's instance mask and the overview after
    ``STEPS`` steps straight ahead on ``SEED``."""
    env = DrivingEnv(name, sensors=("bev", "speed", "cam_front", "cam_rear"))
    try:
        obs, _ = env.reset(seed=SEED)
        for _ in range(STEPS):
            obs, *_ = env.step(np.zeros(env.action_space.shape))
        front = env.render_camera(env.rig["cam_front"], instance=True)
        return {
            **{c: obs[c] for c in CAMERAS},
            "instance": front.instance,
            "overview": env.overview(),
            "env_palettes": env.palettes,
        }
    finally:
        env.close()


@pytest.fixture(scope="module")
def frames() -> dict[str, dict]:
    out = {c: _drive("highway" if c == "day" else f"highway:{c}") for c in VISUAL_CONDITIONS}
    assert (out["day"]["instance"] >= 0).sum() > 50, "no vehicle in view: the tests mean nothing"
    return out


def _is(img: np.ndarray, colour) -> np.ndarray:
    return np.all(img == np.asarray(colour, dtype=np.uint8), axis=-1)


# ---------------------------------------------------------------------------- the table
def test_every_condition_of_the_scenarios_has_its_palettes():
    assert tuple(CONDITIONS) == VISUAL_CONDITIONS
    day = visual_palettes("day")
    assert day.bev == Palette() and day.rig == PerspectivePalette()
    for name in VISUAL_CONDITIONS[1:]:
        p = visual_palettes(name)
        assert p.condition == name and (p.bev != Palette() or p.rig != PerspectivePalette())


def test_an_unknown_condition_is_refused_with_the_known_list():
    known = "known: day, dusk, night, colours, worn"
    with pytest.raises(ValueError, match=f"unknown visual condition 'foggy'; {known}"):
        visual_palettes("foggy")
    with pytest.raises(ValueError, match="foggy"):
        get_scenario("highway:foggy")


def test_the_default_palettes_are_unchanged():
    """``day`` is what every policy was trained on: its colours are pinned."""
    assert Palette() == Palette(
        ground=(46, 92, 52),
        road=(96, 96, 96),
        marking=(235, 235, 235),
        vehicle=(60, 110, 220),
        obstacle=(235, 150, 40),
        ego=(70, 210, 100),
        route=(240, 220, 80),
        patch=None,
    )
    p = PerspectivePalette()
    assert (p.sky, p.ground, p.road, p.marking, p.obstacle) == (
        (150, 190, 230),
        (46, 92, 52),
        (96, 96, 96),
        (235, 235, 235),
        (235, 150, 40),
    )
    assert p.vehicles[:3] == ((190, 35, 35), (40, 75, 190), (215, 215, 220))
    assert len(p.vehicles) == 10
    assert (p.light, p.ambient, p.patch, p.dims_the_frame) == ((0.25, 0.45, 0.86), 0.5, None, False)


# ---------------------------------------------------------------------------- day
def test_day_frames_are_the_default_palettes_bytes(frames):
    env = DrivingEnv("highway", sensors=("bev", "speed", "cam_front", "cam_rear"))
    try:
        obs, _ = env.reset(seed=SEED)
        for _ in range(STEPS):
            obs, *_ = env.step(np.zeros(env.action_space.shape))
        ego = env.world.vehicle
        xy, h = hw_to_world_xy(ego.position), float(hw_to_world_heading(ego.heading))
        objs = env._scene_objects()
        default_rig = renderer_for(env.geometry)  # the default palette
        for cam in ("cam_front", "cam_rear"):
            want = default_rig.render(
                env.rig[cam], xy, h, objs, ids=np.arange(len(objs.kind))
            ).image
            assert obs[cam].tobytes() == want.tobytes() == frames["day"][cam].tobytes()
        bev = SceneRenderer(env.geometry).ego_camera(
            env.bev_camera, xy, h, objs, ego.LENGTH, ego.WIDTH
        )
        assert obs["bev"].tobytes() == bev.tobytes() == frames["day"]["bev"].tobytes()
    finally:
        env.close()


# ---------------------------------------------------------------------------- the others
def test_night_is_much_darker_yet_not_black(frames):
    for cam in (*CAMERAS, "overview"):
        day, night = frames["day"][cam].astype(float), frames["night"][cam].astype(float)
        assert night.mean() < 0.5 * day.mean(), cam
        assert night.mean() > 10 and len(np.unique(night.reshape(-1, 3), axis=0)) > 20, cam
    # the markings still stand out from the road, the cars from the road
    front, inst = frames["night"]["cam_front"].astype(float), frames["night"]["instance"]
    day_front = frames["day"]["cam_front"]
    marking = _is(day_front, Palette().marking) & (inst < 0)
    road = _is(day_front, Palette().road) & (inst < 0)
    assert front[marking].mean() > front[road].mean() + 20


def test_dusk_has_a_redder_sky_and_a_dimmer_ground(frames):
    def sky(img):  # the top rows of the front camera are sky
        return img[:10].reshape(-1, 3).astype(float).mean(axis=0)

    day, dusk = sky(frames["day"]["cam_front"]), sky(frames["dusk"]["cam_front"])
    assert day[0] < day[2] and dusk[0] > dusk[2] + 60  # red over blue at dusk, not by day
    for cam in CAMERAS:
        lower = slice(frames["day"][cam].shape[0] // 2, None)  # ground and road
        assert frames["dusk"][cam][lower].mean() < 0.9 * frames["day"][cam][lower].mean(), cam


def test_colours_change_the_vehicles_and_nothing_else(frames):
    day, col = frames["day"], frames["colours"]
    assert np.array_equal(day["instance"], col["instance"])  # the same world, the same pixels
    cars = day["instance"] >= 0
    changed = np.any(day["cam_front"] != col["cam_front"], axis=-1)
    assert changed[cars].mean() > 0.95 and not changed[~cars].any()
    # bev: every vehicle pixel takes the new colour, nothing away from the boxes changes
    was_car = _is(day["bev"], Palette().vehicle)
    assert was_car.sum() > 20
    assert _is(col["bev"], visual_palettes("colours").bev.vehicle)[was_car].all()
    near_box = (
        cv2.dilate(
            (was_car | _is(day["bev"], Palette().ego)).astype(np.uint8), np.ones((5, 5), np.uint8)
        )
        > 0
    )
    assert not np.any(day["bev"] != col["bev"], axis=-1)[~near_box].any()


def test_colours_give_obstacles_another_colour_too(frames):
    env = DrivingEnv("highway", sensors=("speed",), overrides={"vehicles_count": 0})
    try:
        env.reset(seed=0)
        ego = env.world.vehicle
        xy, h = hw_to_world_xy(ego.position), float(hw_to_world_heading(ego.heading))
        block = SceneObjects(
            ego_to_world(np.array([[12.0, 0.0]]), xy, h),
            np.array([h]),
            np.array([2.0]),
            np.array([2.0]),
            np.array([KIND_OBSTACLE], dtype=np.int8),
        )
        seen = {}
        for name in ("day", "colours"):
            f = renderer_for(env.geometry, visual_palettes(name).rig).render(
                env.rig["cam_front"], xy, h, block, instance=True
            )
            seen[name] = f.image[f.instance == 0].astype(float).mean(axis=0)
        assert np.abs(seen["day"] - seen["colours"]).max() > 100
    finally:
        env.close()


def test_worn_fades_the_markings_towards_the_road_and_patches_it(frames):
    day, worn = frames["day"], frames["worn"]
    pal = visual_palettes("worn")
    contrast_day = np.linalg.norm(np.subtract(Palette().marking, Palette().road))
    # rig: the pixels of painted lines (by day) are now nearer the road's colour
    paint = _is(day["cam_front"], Palette().marking) & (day["instance"] < 0)
    assert paint.sum() > 100
    gap = np.linalg.norm(worn["cam_front"][paint].astype(float) - pal.rig.road, axis=-1)
    assert gap.mean() < (1.0 - MARKING_FADE + 0.05) * contrast_day
    # bev: thin anti-aliased lines; the brightest road pixels by day are markings
    lines = np.linalg.norm(day["bev"].astype(float) - Palette().road, axis=-1) > 60
    lines &= ~_is(day["bev"], Palette().vehicle) & ~_is(day["bev"], Palette().ego)
    lines &= day["bev"].astype(float).mean(axis=-1) > 110
    assert lines.sum() > 50
    day_gap = np.linalg.norm(day["bev"][lines].astype(float) - Palette().road, axis=-1).mean()
    worn_gap = np.linalg.norm(worn["bev"][lines].astype(float) - pal.bev.road, axis=-1).mean()
    assert worn_gap < 0.6 * day_gap
    # older asphalt, lighter, with darker repaired patches in both views
    for cam in ("cam_front", "bev"):
        assert _is(worn[cam], pal.bev.patch).sum() > 30, cam
        assert _is(worn[cam], pal.bev.road).sum() > 300, cam


def test_every_condition_renders_the_same_bytes_twice(frames):
    for name in ("night", "worn"):
        again = _drive(f"highway:{name}")
        for cam in (*CAMERAS, "overview"):
            assert again[cam].tobytes() == frames[name][cam].tobytes(), (name, cam)


def _frames_digest() -> str:
    """sha256 of the front camera and the raster of ``highway:worn`` and ``highway:night``."""
    import hashlib

    h = hashlib.sha256()
    for name in ("highway:worn", "highway:night"):
        env = DrivingEnv(name, sensors=("bev", "cam_front"), overrides={"vehicles_count": 10})
        obs, _ = env.reset(seed=2)
        for _ in range(3):
            obs, *_ = env.step(np.zeros(env.action_space.shape))
        h.update(obs["cam_front"].tobytes() + obs["bev"].tobytes())
        env.close()
    return h.hexdigest()


def test_conditions_render_the_same_bytes_across_processes_and_hash_seeds():
    """The wear patches are a fixed texture of the map: seeded by lane ids, not ``hash()``."""
    import os
    import subprocess
    import sys

    code = (
        f"import importlib.util as u; s = u.spec_from_file_location('tv', {__file__!r}); "
        "m = u.module_from_spec(s); s.loader.exec_module(m); print(m._frames_digest())"
    )
    hash_seed = "321" if os.environ.get("PYTHONHASHSEED") != "321" else "0"
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONHASHSEED": hash_seed},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == _frames_digest()


# ---------------------------------------------------------------------------- caches, patches
def test_renderers_are_cached_per_map_and_condition_and_bounded():
    env_day = DrivingEnv("highway", sensors=("speed",))
    env_night = DrivingEnv("highway:night", sensors=("speed",))
    try:
        env_day.reset(seed=0)
        env_night.reset(seed=0)
        g = env_day.geometry
        assert env_night.geometry is g  # one map, shared
        assert env_day.renderer.palette == Palette()
        assert env_night.renderer.palette == visual_palettes("night").bev
        day, night = renderer_for(g), renderer_for(g, visual_palettes("night").rig)
        worn = renderer_for(g, visual_palettes("worn").rig)
        assert day is renderer_for(g, PerspectivePalette()) and night is not day
        assert night.mesh is day.mesh  # the mesh is built once per map ...
        assert worn.mesh is not day.mesh and len(worn.mesh.patches.group) > 0  # ... and once worn
    finally:
        env_day.close()
        env_night.close()
    for _ in range(RENDERER_CACHE_SIZE + 5):  # e.g. generated maps, one per seed
        renderer_for(RoadGeometry(lanes={}))
        assert len(_RENDERERS) <= RENDERER_CACHE_SIZE


def test_wear_patches_are_fixed_inside_the_road_and_never_overlap():
    env = DrivingEnv("roundabout", sensors=("speed",))  # lanes of different roads overlap here
    try:
        env.reset(seed=0)
        patches = wear_patches(env.geometry)
        assert len(patches) > 20 and np.array_equal(patches, wear_patches(env.geometry))
        lanes = env.world.road.network
        for quad in patches:
            for corner in quad:
                hw = np.array([corner[0], -corner[1]])  # world -> highway-env
                assert any(lane.on_lane(hw, margin=0.05) for lane in lanes.lanes_list())
        centre = patches.mean(axis=1)
        for i in range(len(patches)):
            for j in range(i + 1, len(patches)):
                if np.linalg.norm(centre[i] - centre[j]) < 8.0:
                    assert not _convex_overlap(patches[i], patches[j]), (i, j)
    finally:
        env.close()
