"""Generated roads: continuous lanes, bounded curvature, reproducible maps, disjoint map pools,
and the two worlds on them (fast physics equal to stock, unseen maps outside the train pool)."""

import multiprocessing

import numpy as np
import pytest
from highway_env.road.lane import CircularLane, StraightLane

from sim.geometry.frames import hw_to_world_xy
from sim.world.env import DrivingEnv
from sim.world.generated import UNSEEN_MAP_SEED_BASE, CurvyHighwayWorld, TrackWorld, map_seed_for
from sim.world.roadgen import (
    MAX_ARC_TURN_RAD,
    Layout,
    RoadSpec,
    Segment,
    build_network,
    generate_layout,
    lane_heading_world_rad,
    node_name,
    self_clearance_m,
)
from sim.world.scenarios import get_scenario
from tests.test_fast_physics import run_pair

TRACK = RoadSpec(lanes_count=2, radius_range_m=(15.0, 300.0), max_arc_m=120.0, speed_limit_mps=10.0)
HIGHWAY = RoadSpec(
    lanes_count=3,
    radius_range_m=(150.0, 300.0),
    straight_range_m=(50.0, 200.0),
    turn_range_rad=(np.pi / 12, np.pi / 3),
    max_arc_m=250.0,
)
SEEDS = (0, 1, 2, 3, 7, 19, UNSEEN_MAP_SEED_BASE, UNSEEN_MAP_SEED_BASE + 5)
ROAD_M = 400.0


def _wrap(a: float) -> float:
    return (a + np.pi) % (2 * np.pi) - np.pi


def _lanes(layout: Layout, network, i: int):
    return network.graph[node_name(i)][node_name(i + 1)]


@pytest.mark.parametrize("spec", [TRACK, HIGHWAY], ids=["track", "highway"])
def test_every_lane_is_continuous_at_every_join_and_follows_the_layout(spec):
    curvatures = []
    for seed in SEEDS:
        layout = generate_layout(spec, seed, ROAD_M)
        network = build_network(layout)
        curvatures += [s.curvature_1pm for s in layout.segments]
        for i, seg in enumerate(layout.segments):
            lanes = _lanes(layout, network, i)
            assert len(lanes) == spec.lanes_count
            for k, lane in enumerate(lanes):
                # the highway-env lane traces the layout's offset curve (world frame), so a
                # left turn of the layout is a left turn of the lane (clockwise flag, y flip)
                for frac in (0.0, 0.5, 1.0):
                    xy, h = seg.pose_at(frac * seg.length_m, spec.lane_offset_m(k))
                    s_lane = frac * lane.length
                    assert np.allclose(hw_to_world_xy(lane.position(s_lane, 0.0)), xy, atol=1e-9), (
                        seed,
                        i,
                        k,
                    )
                    assert abs(_wrap(lane_heading_world_rad(lane, s_lane) - h)) < 1e-9, (seed, i, k)
                if i == 0:
                    continue
                prev = _lanes(layout, network, i - 1)[k]
                gap = np.linalg.norm(prev.position(prev.length, 0.0) - lane.position(0.0, 0.0))
                kink = _wrap(prev.heading_at(prev.length) - lane.heading_at(0.0))
                assert gap < 1e-9 and abs(kink) < 1e-9, (
                    f"map {seed} join s{i} lane {k}: {gap} m, {kink} rad"
                )
                # lane k continues into lane k, not into its neighbour
                assert (
                    network.next_lane(
                        (node_name(i - 1), node_name(i), k),
                        position=prev.position(prev.length, 0.0),
                    )[2]
                    == k
                )
    assert min(curvatures) < 0 < max(curvatures)  # right and left turns both checked


@pytest.mark.parametrize("spec", [TRACK, HIGHWAY], ids=["track", "highway"])
def test_every_lane_respects_the_radius_bound(spec):
    lo, hi = spec.radius_range_m
    radii = []
    for seed in range(15):
        layout = generate_layout(spec, seed, ROAD_M)
        network = build_network(layout)
        for i, seg in enumerate(layout.segments):
            for lane in _lanes(layout, network, i):
                if seg.kind == "straight":
                    assert type(lane) is StraightLane
                    continue
                assert type(lane) is CircularLane
                assert lo - 1e-9 <= lane.radius <= hi + 1e-9, (seed, i, lane.radius)
                assert abs(lane.end_phase - lane.start_phase) <= MAX_ARC_TURN_RAD + 1e-12
                radii.append(lane.radius)
    # the bound is used, not merely respected: tight and wide arcs both occur
    assert min(radii) < lo + 0.25 * (hi - lo) and max(radii) > hi - 0.25 * (hi - lo)


def test_roads_never_come_back_onto_themselves():
    for spec in (TRACK, HIGHWAY):
        for seed in range(12):
            layout = generate_layout(spec, seed, ROAD_M)
            heading = np.array(
                [s.start_heading_rad for s in layout.segments]
                + [layout.segments[-1].end_heading_rad]
            )
            assert np.all(np.abs(heading) <= spec.max_heading_rad + 1e-12)
            assert self_clearance_m(layout) >= spec.clearance_m
            assert (
                min(layout.lane_length_m(k) for k in range(spec.lanes_count))
                >= ROAD_M + spec.run_out_m - 1e-6
            )


def test_the_clearance_check_sees_a_road_that_loops():
    # three 120-degree arcs of 30 m radius: a closed circle, the road meets its own start
    segs, xy, h = [], (0.0, 0.0), 0.0
    for _ in range(3):
        seg = Segment(xy, h, 30.0 * 2 * np.pi / 3, 1 / 30.0)
        segs.append(seg)
        xy, h = seg.end_xy_m, seg.end_heading_rad
    loop = Layout(tuple(segs), TRACK, map_seed=0)
    assert self_clearance_m(loop) < 0.0


def _digests(args):
    """Layout digest and a digest of the built network's lane points, in this process."""
    spec, seed = args
    import hashlib

    layout = generate_layout(spec, seed, ROAD_M)
    network = build_network(layout)
    pts = np.array(
        [
            lane.position(s, 0.0)
            for lane in network.lanes_list()
            for s in np.linspace(0.0, lane.length, 7)
        ]
    )
    return layout.digest(), hashlib.sha256(pts.tobytes()).hexdigest()


def test_a_map_seed_gives_the_same_map_in_a_fresh_process():
    jobs = [(TRACK, 3), (HIGHWAY, 3), (TRACK, UNSEEN_MAP_SEED_BASE + 11)]
    with multiprocessing.get_context("spawn").Pool(
        1
    ) as pool:  # no inherited state, fresh hash seed
        theirs = pool.map(_digests, jobs)
    assert theirs == [_digests(job) for job in jobs]
    assert len({d for d, _ in theirs}) == len(jobs)  # and different seeds give different maps


def test_train_and_unseen_map_pools_never_overlap():
    episodes = range(5000)
    for train_maps in (1, 20, 1000, UNSEEN_MAP_SEED_BASE):
        train = {map_seed_for("train", s, train_maps) for s in episodes}
        unseen = {map_seed_for("unseen", s, train_maps) for s in episodes}
        assert train <= set(range(train_maps)) and len(train) == min(train_maps, len(episodes))
        assert not train & unseen and len(unseen) == len(episodes)
    with pytest.raises(ValueError, match="'holdout'.*train, unseen"):
        map_seed_for("holdout", 0, 20)
    with pytest.raises(ValueError, match="train_maps"):
        map_seed_for("train", 0, UNSEEN_MAP_SEED_BASE + 1)  # would reach into the unseen pool
    with pytest.raises(ValueError, match="-1"):
        map_seed_for("unseen", -1, 20)


def test_road_spec_names_the_bad_value():
    with pytest.raises(ValueError, match=r"\(15.0, 17.0\).*3 lanes"):
        RoadSpec(lanes_count=3, radius_range_m=(15.0, 17.0))  # no arc can hold 3 lanes in 2 m
    with pytest.raises(ValueError, match="max_heading_rad"):
        RoadSpec(max_heading_rad=2.0)
    with pytest.raises(ValueError, match="map_seed"):
        generate_layout(TRACK, -3, ROAD_M)


def test_track_unseen_drives_a_map_outside_the_train_pool():
    train_maps = get_scenario("track").world_config["train_maps"]
    env = DrivingEnv("track", sensors=("speed",))
    train_digests = set()
    for seed in range(train_maps):
        env.reset(seed=seed)
        assert env.world.map_key() == ("train", seed)
        train_digests.add(env.world.layout.digest())
    env.reset(seed=train_maps + 4)  # the train split cycles through its maps
    assert env.world.map_key() == ("train", 4)
    unseen = DrivingEnv("track:unseen", sensors=("speed",))
    for seed in (0, 4):
        unseen.reset(seed=seed)
        split, map_seed = unseen.world.map_key()
        assert split == "unseen" and map_seed >= UNSEEN_MAP_SEED_BASE
        assert unseen.world.layout.digest() not in train_digests
    assert isinstance(unseen.world, TrackWorld)


@pytest.mark.parametrize(
    "name,seed,steps", [("track", 1, 120), ("track:unseen", 2, 60), ("curvy-highway", 0, 30)]
)
def test_fast_physics_equals_stock_on_generated_roads(name, seed, steps):
    n, _, _ = run_pair(name, seed, noise=0.2, max_steps=steps)
    assert n == steps


def test_curvy_highway_places_traffic_around_the_ego():
    env = DrivingEnv("curvy-highway", sensors=("speed",))
    _, info = env.reset(seed=5)
    world = env.world
    assert isinstance(world, CurvyHighwayWorld)
    others = [v for v in world.road.vehicles if v is not world.vehicle]
    assert len(others) == get_scenario("curvy-highway").world_config["vehicles_count"]
    assert info["ego"]["speed_mps"] == pytest.approx(20.0)
    pos = np.array([v.position for v in world.road.vehicles])
    d = np.linalg.norm(pos[:, None] - pos[None], axis=-1) + np.eye(len(pos)) * 1e9
    assert d.min() > 5.0  # nobody starts inside another car
    assert all(world.road.network.get_lane(v.lane_index).on_lane(v.position) for v in others)
    ego_x = world.vehicle.position[0]  # the road's first straight runs along highway-env's x
    assert any(v.position[0] < ego_x for v in others) and any(v.position[0] > ego_x for v in others)
    empty = DrivingEnv("curvy-highway:empty", sensors=("speed",))
    empty.reset(seed=5)
    assert empty.world.road.vehicles == [empty.world.vehicle]
