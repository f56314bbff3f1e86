"""Recorded perception datasets: round trip, determinism, refusal of damaged files; the CLI."""

import json
import re

import numpy as np
import pytest

from perception.corruptions import corrupt
from perception.dataset import DatasetError, FrameDataset
from perception.labels import labels_from_truth
from sim.cli import main
from sim.geometry.bev import BevCamera
from sim.pipelines.perception_data import record_frames


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    out = tmp_path_factory.mktemp("frames") / "ds"
    manifest = record_frames(
        ["highway", "merge"], 24, out, seed=3, every=4, per_episode=8, progress=False
    )
    return out, manifest


def test_round_trip_frames_labels_and_metadata(recorded):
    out, manifest = recorded
    ds = FrameDataset(out)
    assert len(ds) == 24 == manifest["frames"]
    items = list(ds.iter_frames())
    assert len(items) == 24
    assert sum(len(labels) for _, labels, _ in items) == manifest["labels"] > 0
    frame, _labels, meta = items[0]
    assert frame.shape == (128, 128, 3) and frame.dtype == np.uint8
    assert meta["scenario"] == "highway" and meta["seed"] == 3 and meta["step"] == 0
    assert [m["seed"] for _, _, m in items[::8]] == [3, 3, 4]  # highway seed 3, merge 3, highway 4
    assert [m["scenario"] for _, _, m in items[::8]] == ["highway", "merge", "highway"]
    assert all(m["step"] % 4 == 0 for _, _, m in items)


def test_labels_are_the_ground_truth_of_the_recorded_state(recorded):
    from sim.world.env import DrivingEnv

    out, _ = recorded
    frame, labels, meta = next(FrameDataset(out).iter_frames())
    env = DrivingEnv("highway", sensors=("bev", "truth", "pose"))
    obs, info = env.reset(seed=meta["seed"])
    env.close()
    expected = labels_from_truth(info["truth"], obs["pose"], BevCamera())
    assert np.array_equal(obs["bev"], frame)
    assert np.allclose(expected.centre_m, labels.centre_m)


def test_recording_the_same_seeds_twice_gives_identical_shards(recorded, tmp_path):
    _out, manifest = recorded
    again = record_frames(
        ["highway", "merge"], 24, tmp_path / "again", seed=3, every=4, per_episode=8, progress=False
    )
    assert [s["sha256"] for s in again["shards"]] == [s["sha256"] for s in manifest["shards"]]


def _copy(src, dst):
    dst.mkdir()
    for f in src.iterdir():
        (dst / f.name).write_bytes(f.read_bytes())
    return dst


def test_damaged_datasets_are_refused_with_path_and_reason(recorded, tmp_path):
    out, manifest = recorded
    shard = manifest["shards"][0]["file"]

    truncated = _copy(out, tmp_path / "truncated")
    data = (truncated / shard).read_bytes()
    (truncated / shard).write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError, match=f"{shard}: damaged"):
        FrameDataset(truncated).shard(0)
    with pytest.raises(
        DatasetError, match="cannot be read"
    ):  # without the checksum, numpy's own error
        FrameDataset(truncated, verify=False).shard(0)

    unfinished = _copy(out, tmp_path / "unfinished")
    (unfinished / "manifest.json").unlink()
    with pytest.raises(DatasetError, match="did not finish"):
        FrameDataset(unfinished)

    future = _copy(out, tmp_path / "future")
    m = json.loads((future / "manifest.json").read_text())
    m["version"] = 99
    (future / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(DatasetError, match="version 99"):
        FrameDataset(future)

    missing = _copy(out, tmp_path / "missing")
    (missing / shard).unlink()
    with pytest.raises(DatasetError, match="listed in the manifest but missing"):
        FrameDataset(missing)


def test_corruptions_are_reproducible_and_named():
    frame = np.full((8, 8, 3), 100, np.uint8)
    assert np.array_equal(corrupt(frame, "noise", seed=1), corrupt(frame, "noise", seed=1))
    assert not np.array_equal(corrupt(frame, "noise", seed=1), corrupt(frame, "noise", seed=2))
    assert corrupt(frame, "brightness", -30)[0, 0, 0] == 70
    assert np.array_equal(corrupt(frame, "none"), frame)
    with pytest.raises(ValueError, match="known: none, noise, blur, brightness"):
        corrupt(frame, "fog")


def test_cli_records_evaluates_and_refuses_to_overwrite(tmp_path, capsys):
    out = tmp_path / "ds"
    assert (
        main(["perception", "data", "--frames", "12", "--every", "6", "--out", str(out), "--quiet"])
        == 0
    )
    assert "frames 12" in capsys.readouterr().out
    assert (
        main(
            [
                "eval",
                "detector",
                "--data",
                str(out),
                "--corrupt",
                "none,blur",
                "--out",
                str(tmp_path / "r.json"),
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "AP@2m" in text and "blur" in text
    report = json.loads((tmp_path / "r.json").read_text())
    assert [r["corruption"] for r in report["reports"]] == ["none", "blur:1"]
    assert main(["perception", "data", "--frames", "2", "--out", str(out), "--quiet"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["eval", "detector", "--data", str(out), "--detector", "yolo"]) == 2
    assert (
        "unknown detector 'yolo'; known: opencv, learned:CHECKPOINT_DIR, geometric"
        in capsys.readouterr().err
    )
    assert main(["eval", "detector", "--data", str(tmp_path / "nope")]) == 2
    assert "no such dataset folder" in capsys.readouterr().err


def test_a_manifest_may_name_only_files_inside_its_folder(recorded, tmp_path):
    out, manifest = recorded
    shard = manifest["shards"][0]["file"]
    root = tmp_path / "a" / "b"
    root.mkdir(parents=True)
    outside = tmp_path / "a" / "outside.npz"  # DATASET/../../outside.npz
    outside.write_bytes((out / shard).read_bytes())  # a valid shard, but not the dataset's
    for name, bad in (("up", "../../outside.npz"), ("absolute", str(outside))):
        ds = _copy(out, root / name)
        m = json.loads((ds / "manifest.json").read_text())
        m["shards"][0]["file"] = bad
        (ds / "manifest.json").write_text(json.dumps(m))
        with pytest.raises(DatasetError, match=rf"{re.escape(bad)}.*outside the dataset folder"):
            FrameDataset(ds)
    ds = _copy(out, root / "odd")
    m = json.loads((ds / "manifest.json").read_text())
    m["shards"][0]["file"] = 7
    (ds / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(DatasetError, match="not a file name"):
        FrameDataset(ds)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("blur:1e9", "blur severity must be within [0, 64]"),
        ("noise:-1", "noise severity must be within [0, 255]"),
        ("dirt:1", "dirt severity must be within [0, 0.99]"),
        ("brightness:nan", "brightness severity must be within"),
    ],
)
def test_corruption_severities_are_bounded(spec, message):
    """``--corrupt blur:1e9`` ran for minutes on 6 frames (the kernel grows with sigma);
    ``noise:-1`` surfaced numpy's bare 'scale < 0'."""
    from perception.corruptions import corrupt
    from sim.pipelines.perception_data import parse_corruptions

    with pytest.raises(ValueError, match=re.escape(message)):
        parse_corruptions(spec)
    kind, _, level = spec.partition(":")
    with pytest.raises(ValueError, match=re.escape(message)):
        corrupt(np.zeros((8, 8, 3), np.uint8), kind, float(level))


def test_perception_data_refuses_faults_before_writing_anything(tmp_path, capsys):
    """``--scenarios highway:noise=3`` wrote frames identical to plain ``highway`` under a
    manifest that said noise=3: the recorder cannot apply the harness's faults, so it refuses
    them, before the output folder exists."""
    out = tmp_path / "ds"
    argv = ["perception", "data", "--frames", "2", "--every", "1", "--quiet", "--out", str(out)]
    assert main([*argv, "--scenarios", "highway:noise=3"]) == 2
    err = capsys.readouterr().err
    assert "drive perception data" in err and "noise=3" in err and "'highway'" in err
    assert len(err.strip().splitlines()) == 1 and not out.exists()
    with pytest.raises(ValueError, match=r"latency=1.*use 'merge'"):
        record_frames(["highway", "merge:latency=1"], 2, out, progress=False)
    assert not out.exists()


def test_perception_data_out_must_be_a_folder_and_is_checked_before_any_work(tmp_path, capsys):
    a_file = tmp_path / "f"
    a_file.write_text("not a dataset")
    for out in (a_file, a_file / "ds"):
        argv = ["perception", "data", "--frames", "2", "--quiet", "--out", str(out)]
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert f"{a_file} is a file" in err and len(err.strip().splitlines()) == 1
    assert a_file.read_text() == "not a dataset"
    with pytest.raises(FileExistsError, match="is a file"):
        record_frames(["highway"], 2, a_file, progress=False)
