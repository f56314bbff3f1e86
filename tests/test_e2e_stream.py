"""Training sets streamed from disk (issue 31): the same bytes as in memory, memory that does
not grow with the dataset, and loader workers that change the speed, never the network."""

import hashlib
import tracemalloc

import numpy as np
import pytest

from agents.e2e.checkpoint import load_policy
from agents.e2e.demos import DemoError, load_demos
from agents.e2e.model import PilotNetConfig
from agents.e2e.rig import RigInput, SideView
from agents.e2e.stream import FrameFile, FrameFileWriter, RowSubset
from agents.e2e.train import BatchMaker, E2ETrainConfig, train_e2e
from sim.geometry.pinhole import default_rig
from sim.pipelines.record import NoiseConfig, record_dataset
from sim.world.scenarios import STEERING_RANGE_RAD, get_scenario


@pytest.fixture(scope="module")
def demos(tmp_path_factory):
    """Five short rig episodes with two recovery views (about 1.2 MB of frames each)."""
    root = tmp_path_factory.mktemp("stream")
    view = RigInput.build(default_rig(), ("cam_front",), (SideView(0.5, 0.0), SideView(0, 5)))
    record_dataset(
        get_scenario("lane-keep", duration_s=2.0),
        [31, 32, 33, 34, 35],
        root / "demos",
        noise=NoiseConfig(0.3),
        progress=False,
        rig=view,
    )
    return root / "demos"


def test_a_frame_file_reads_any_rows_in_any_order(tmp_path):
    rng = np.random.default_rng(0)
    rows = rng.integers(0, 255, (40, 3, 4, 2), dtype=np.uint8)
    w = FrameFileWriter(tmp_path / "f.u8")
    w.append(rows[:15])
    w.append(rows[15:])
    f = w.finish()
    assert f.shape == rows.shape and len(f) == 40 and not (tmp_path / "f.u8.part").exists()
    idx = np.array([3, 4, 5, 39, 0, 4, 4, 17, -1])  # runs, repeats, the ends, a negative index
    np.testing.assert_array_equal(f[idx], rows[idx])
    np.testing.assert_array_equal(f[7], rows[7])
    np.testing.assert_array_equal(f[5:9], rows[5:9])
    with pytest.raises(IndexError, match=r"out of \[0, 40\)"):
        f[np.array([40])]
    sub = RowSubset(f, np.array([9, 2, 30]))
    np.testing.assert_array_equal(sub[np.array([2, 0])], rows[[30, 9]])
    assert sub.shape == (3, 3, 4, 2)


def test_a_frame_file_of_views_picks_one_view_per_row(tmp_path):
    rng = np.random.default_rng(1)
    views = rng.integers(0, 255, (10, 3, 2, 2), dtype=np.uint8)  # 10 states x 3 views
    w = FrameFileWriter(tmp_path / "v.u8", views=3)
    w.append(views)
    f = w.finish()
    assert f.shape == (10, 3, 2, 2)
    r, v = np.array([0, 9, 4, 4]), np.array([2, 0, 1, 1])
    np.testing.assert_array_equal(f[r, v], views[r, v])
    with pytest.raises(ValueError, match="2 views, expected 3"):
        FrameFileWriter(tmp_path / "x.u8", views=3).append(np.zeros((2, 2, 1), np.uint8))


def test_a_truncated_frame_file_is_refused_with_its_path(tmp_path):
    w = FrameFileWriter(tmp_path / "t.u8")
    w.append(np.zeros((4, 8), np.uint8))
    f = w.finish()
    (tmp_path / "t.u8").write_bytes(b"\0" * 20)
    with pytest.raises(ValueError, match=r"t\.u8: 20 bytes, expected 32"):
        FrameFile(f.path, (8,), 4)


def test_a_streamed_load_holds_the_bytes_of_the_in_memory_one(demos, tmp_path):
    mem = load_demos(demos)
    streamed = load_demos(demos, stream_dir=tmp_path)
    assert streamed.streamed and not mem.streamed
    assert streamed.frames.shape == mem.frames.shape
    assert streamed.side_frames.shape == mem.side_frames.shape
    np.testing.assert_array_equal(streamed.frames[np.arange(len(mem))], mem.frames)
    rows = np.arange(len(mem))
    np.testing.assert_array_equal(
        streamed.side_frames[rows, rows % 2], mem.side_frames[rows, rows % 2]
    )
    for name in ("speed", "command", "labels", "episode", "step", "side_labels"):
        np.testing.assert_array_equal(getattr(streamed, name), getattr(mem, name))
    # a subset of a streamed load stays on disk and reads the same rows
    sub_s = load_demos(demos, episodes=[3, 1], stream_dir=tmp_path / "sub")
    sub_m = load_demos(demos, episodes=[3, 1])
    np.testing.assert_array_equal(sub_s.frames[np.arange(len(sub_m))], sub_m.frames)


def test_a_streamed_load_does_not_hold_the_dataset_in_memory(demos, tmp_path):
    """The load's peak allocation is about one episode, not the five it reads (an in-memory
    load of the same data peaks above all of them)."""
    tracemalloc.start()
    try:
        streamed = load_demos(demos, stream_dir=tmp_path)
        _, stream_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        mem = load_demos(demos)
        _, mem_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    total = mem.frames.nbytes + mem.side_frames.nbytes
    assert streamed.frames.nbytes + streamed.side_frames.nbytes == total
    assert mem_peak > total
    assert stream_peak < 0.5 * total, (stream_peak, total)


def _weights_sha(folder) -> str:
    return hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()


def test_streaming_and_loader_workers_train_the_same_network(demos, tmp_path):
    recipe = E2ETrainConfig(model="pilotnet-s", stack=2, epochs=2, batch_size=16, view_prob=0.5)
    runs = {
        "memory": {"stream": False, "loader_workers": 0},
        "stream": {"stream": True, "loader_workers": 0},
        "workers": {"stream": True, "loader_workers": 2},
    }
    shas, metas = {}, {}
    for name, how in runs.items():
        out = tmp_path / name
        result = train_e2e(demos, out, recipe, device="cpu", progress=False, **how)
        shas[name] = _weights_sha(out)
        metas[name] = result
    assert shas["memory"] == shas["stream"] == shas["workers"], shas
    assert metas["workers"]["samples_seen"] == metas["memory"]["samples_seen"] > 0


def test_a_batch_is_the_same_whichever_order_batches_are_made_in(demos):
    d = load_demos(demos)
    config = PilotNetConfig(
        width="s", image_hw=d.image_hw, stack=2, n_actions=2, cameras=("cam_front",)
    )
    recipe = E2ETrainConfig(view_prob=0.5, speed_dropout=0.3)
    a = BatchMaker(d, config, recipe, STEERING_RANGE_RAD)
    b = BatchMaker(d, config, recipe, STEERING_RANGE_RAD)
    idx = np.arange(0, len(d), 3)[:24]
    first = a.batch(idx, augment=True, key=(0, 5))
    b.batch(idx[::-1], augment=True, key=(0, 4))  # another batch made first
    second = b.batch(idx, augment=True, key=(0, 5))
    for x, y in zip(first, second, strict=True):
        assert x.equal(y)
    other = a.batch(idx, augment=True, key=(1, 5))  # the next epoch draws afresh
    assert not other[0].equal(first[0])


def test_the_lead_label_is_the_nearest_object_ahead_in_the_ego_corridor():
    from sim.pipelines.record import lead_label

    ego = {
        "position_m": [0.0, 0.0],
        "heading_rad": 0.0,
        "speed_mps": 20.0,
        "length_m": 5.0,
        "width_m": 2.0,
    }
    objects = {
        "position_m": np.array([[40.0, 0.5], [25.0, 3.5], [-10.0, 0.0], [30.0, -0.8]]),
        "heading_rad": np.zeros(4),
        "speed_mps": np.array([10.0, 0.0, 30.0, 15.0]),
        "length_m": np.full(4, 5.0),
        "width_m": np.full(4, 2.0),
    }
    # 25 m ahead is a lane over, -10 m is behind: the car 30 m ahead leads, 25 m bumper to bumper
    np.testing.assert_allclose(lead_label(objects, ego), [25.0, 5.0])
    far = {**objects, "position_m": objects["position_m"] + [100.0, 0.0]}
    np.testing.assert_allclose(lead_label(far, ego), [60.0, 0.0])  # out of range: none
    none = {k: v[:0] for k, v in objects.items()}
    np.testing.assert_allclose(lead_label(none, ego), [60.0, 0.0])


@pytest.fixture(scope="module")
def hazard_demos(tmp_path_factory):
    root = tmp_path_factory.mktemp("lead")
    view = RigInput.build(default_rig(), ("cam_front",), ())
    record_dataset(
        get_scenario("stopped-car", duration_s=3.0),
        [7, 8],
        root / "demos",
        noise=NoiseConfig(0.0),
        progress=False,
        rig=view,
        workers=1,
    )
    return root / "demos"


def test_demos_carry_the_lead_label_under_their_hash(hazard_demos, tmp_path):
    import shutil

    import h5py

    d = load_demos(hazard_demos)
    assert d.lead is not None and d.lead.shape == (len(d), 2)
    assert d.lead[:, 0].min() < 60.0  # the stopped car is seen ahead
    copy = tmp_path / "copy"
    shutil.copytree(hazard_demos, copy)
    with h5py.File(copy / "data" / "main_data.hdf5", "r+") as f:
        f["episode_0/infos/lead"][0, 0] += 1.0
    with pytest.raises(DemoError, match="content hash mismatch"):
        load_demos(copy)


def test_training_a_lead_head_needs_the_label(hazard_demos, tmp_path):
    from dataclasses import replace

    recipe = E2ETrainConfig(model="pilotnet-s", stack=2, epochs=1, batch_size=16, lead_head=1.0)
    train_e2e(hazard_demos, tmp_path / "lead", recipe, device="cpu", progress=False)
    model, meta = load_policy(tmp_path / "lead")
    assert model.config.lead_head and meta["training"]["lead_head"] == 1.0
    unlabelled = replace(load_demos(hazard_demos), lead=None)  # as recorded before the label
    with pytest.raises(ValueError, match="no lead labels"):
        train_e2e(hazard_demos, tmp_path / "x", recipe, progress=False, demos=unlabelled)
