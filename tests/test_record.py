"""Recording demonstrations: Minari layout, noise injection, determinism, damaged datasets."""

import json
import shutil

import numpy as np
import pytest

from agents.e2e.demos import DemoError, dataset_info, load_demos
from sim.pipelines.record import NoiseConfig, record_dataset, steering_of_yaw_rate
from sim.world.scenarios import get_scenario

SEEDS = [7, 8, 9]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    root = tmp_path_factory.mktemp("demos")
    sc = get_scenario("lane-keep", duration_s=4.0)
    summary = record_dataset(sc, SEEDS, root / "a", noise=NoiseConfig(0.3), progress=False)
    return root, summary


def test_noise_profile_is_triangular_and_covers_about_the_fraction():
    rng = np.random.default_rng(0)
    p = NoiseConfig(0.2).profile(200_000, 1 / 15, rng)
    assert 0.15 < np.mean(p != 0) < 0.25
    start = np.flatnonzero((p[1:] != 0) & (p[:-1] == 0))[0] + 1
    stop = start + np.flatnonzero(p[start:] == 0)[0]
    bump = np.abs(p[start:stop])
    k = int(np.argmax(bump))
    assert np.all(np.diff(bump[: k + 1]) >= 0) and np.all(np.diff(bump[k:]) <= 0)  # up, then down
    assert 0.1 * 0.5 < bump.max() <= 0.35
    assert not np.any(NoiseConfig(0.0).profile(1000, 1 / 15, rng))
    with pytest.raises(ValueError, match="--noise"):
        NoiseConfig(1.0)
    # a yaw rate takes less steering the faster the car goes
    assert steering_of_yaw_rate(0.3, 8.0) > 2 * steering_of_yaw_rate(0.3, 25.0) > 0


def test_dataset_is_a_minari_dataset_with_seeds_and_versions(recorded):
    import minari

    root, summary = recorded
    assert summary["episodes"] == 3 and summary["bytes"] > 0
    ds = minari.MinariDataset(root / "a" / "data")  # Minari's own reader
    assert ds.total_episodes == 3
    ep = ds[0]
    n = len(ep.actions)
    assert ep.observations["camera"].shape == (n + 1, 128, 128, 3)
    assert ep.observations["camera"].dtype == np.uint8
    assert ep.infos["expert_action"].shape == (n + 1, 1)
    meta = dataset_info(root / "a")
    assert meta["drive"]["scenario"] == "lane-keep" and meta["drive"]["seeds"] == SEEDS
    assert meta["drive"]["recorder_version"] >= 1 and meta["drive"]["noise"]["fraction"] == 0.3
    import h5py

    with h5py.File(root / "a" / "data" / "main_data.hdf5") as f:
        attrs = f["episode_1"].attrs
        assert int(attrs["seed"]) == SEEDS[1] and attrs["scenario"] == "lane-keep"
        assert int(attrs["recorder_version"]) >= 1
    assert not list(root.glob(".a.*"))  # no temp folder left behind


def test_a_scenario_override_reaches_the_recorder(recorded):
    root, _ = recorded
    steps = get_scenario("lane-keep", duration_s=4.0).max_steps
    d = load_demos(root / "a")
    assert all(e["steps"] <= steps for e in d.episodes) and len(d) <= len(SEEDS) * (steps + 1)


def test_noise_perturbs_the_executed_action_but_not_the_label(recorded):
    import minari

    root, _ = recorded
    ds = minari.MinariDataset(root / "a" / "data")
    perturbed = 0
    for ep in ds.iterate_episodes():
        executed, label, noise = (
            ep.actions[:, 0],
            ep.infos["expert_action"][:-1, 0],
            ep.infos["noise"][:-1],
        )
        np.testing.assert_allclose(executed, np.clip(label + noise, -1, 1), atol=1e-6)
        perturbed += int(np.sum(noise != 0))
    assert perturbed > 0


def test_recording_the_same_seeds_twice_gives_identical_datasets(recorded, tmp_path):
    root, _ = recorded
    record_dataset(
        get_scenario("lane-keep", duration_s=4.0),
        SEEDS,
        tmp_path / "b",
        noise=NoiseConfig(0.3),
        progress=False,
        workers=2,
    )
    a, b = load_demos(root / "a"), load_demos(tmp_path / "b")
    for field in ("frames", "speed", "command", "labels", "episode", "step"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field), err_msg=field)
    assert [e["seed"] for e in a.episodes] == [e["seed"] for e in b.episodes] == SEEDS


def test_demos_load_flat_with_stacked_indices_that_stay_in_their_episode(recorded):
    root, _ = recorded
    d = load_demos(root / "a")
    assert len(d) == d.frames.shape[0] == d.labels.shape[0]
    idx = d.stacked_indices(3)
    assert idx.shape == (len(d), 3)
    assert np.all(d.episode[idx] == d.episode[:, None])  # never reaches into another episode
    first = np.flatnonzero(d.step == 0)
    assert np.all(idx[first] == first[:, None])  # the reset frame repeats
    later = np.flatnonzero(d.step >= 2)
    assert np.all(idx[later] == later[:, None] + np.array([-2, -1, 0]))
    strided = d.stacked_indices(3, stride=4)
    assert np.all(d.episode[strided] == d.episode[:, None])
    deep = np.flatnonzero(d.step >= 8)
    assert np.all(strided[deep] == deep[:, None] + np.array([-8, -4, 0]))
    mid = np.flatnonzero(d.step == 5)  # 5 - 8 reaches before the reset: clamped to it
    assert np.all(strided[mid] == mid[:, None] + np.array([-5, -4, 0]))


def test_existing_output_is_refused_and_a_failed_recording_leaves_nothing(
    recorded, tmp_path, monkeypatch
):
    root, _ = recorded
    with pytest.raises(FileExistsError):
        record_dataset(get_scenario("lane-keep"), [0], root / "a", progress=False)
    import sim.pipelines.record

    def broken(*args, **kwargs):
        raise RuntimeError("simulated crash mid-recording")
        yield  # pragma: no cover

    monkeypatch.setattr(sim.pipelines.record, "collect", broken)
    with pytest.raises(RuntimeError, match="mid-recording"):
        record_dataset(get_scenario("lane-keep"), [0], tmp_path / "c", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_damaged_datasets_are_refused_with_the_path_and_the_reason(recorded, tmp_path):
    root, _ = recorded
    with pytest.raises(DemoError, match="not a demonstration dataset"):
        load_demos(tmp_path / "missing")
    trunc = tmp_path / "trunc"
    shutil.copytree(root / "a", trunc)
    h5 = trunc / "data" / "main_data.hdf5"
    h5.write_bytes(h5.read_bytes()[: h5.stat().st_size // 2])
    with pytest.raises(DemoError, match=r"main_data.hdf5: cannot be read.*truncated or damaged"):
        load_demos(trunc)
    bad_json = tmp_path / "badjson"
    shutil.copytree(root / "a", bad_json)
    (bad_json / "data" / "metadata.json").write_text("{not json")
    with pytest.raises(DemoError, match="metadata.json: damaged metadata"):
        load_demos(bad_json)
    foreign = tmp_path / "foreign"
    shutil.copytree(root / "a", foreign)
    meta = json.loads((foreign / "data" / "metadata.json").read_text())
    del meta["drive"]
    (foreign / "data" / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(DemoError, match="not one recorded by `drive record`"):
        load_demos(foreign)
    fewer = tmp_path / "fewer"
    shutil.copytree(root / "a", fewer)
    meta = json.loads((fewer / "data" / "metadata.json").read_text())
    meta["total_episodes"] = 5
    (fewer / "data" / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(DemoError, match="holds 3 episodes, the metadata says 5"):
        load_demos(fewer)
    import h5py

    cut = tmp_path / "cut"
    shutil.copytree(root / "a", cut)
    with h5py.File(cut / "data" / "main_data.hdf5", "a") as f:
        del f["episode_2/infos/expert_action"]
    with pytest.raises(DemoError, match="episode_2: missing"):
        load_demos(cut)


def test_cli_record_rejects_a_bad_noise_fraction(capsys):
    from sim.cli import main

    with pytest.raises(SystemExit) as e:
        main(["record", "--out", "x", "--noise", "1.5"])
    assert e.value.code == 2
    assert "expected a number in [0, 1)" in capsys.readouterr().err


def _flip_camera_bytes(h5_path, episode, n_bytes=4096):
    """Invert ``n_bytes`` in the middle of ``episode``'s camera frames, in the file's raw bytes."""
    import h5py

    with h5py.File(h5_path, "r") as f:
        ds = f[f"{episode}/observations/camera"]
        if ds.chunks is None:
            offset, size = ds.id.get_offset(), ds.id.get_storage_size()
        else:  # the middle chunk's bytes
            info = ds.id.get_chunk_info(ds.id.get_num_chunks() // 2)
            offset, size = info.byte_offset, info.size
    n_bytes = min(n_bytes, size // 2)
    start = offset + size // 2 - n_bytes // 2
    with open(h5_path, "r+b") as fh:
        fh.seek(start)
        block = fh.read(n_bytes)
        fh.seek(start)
        fh.write(bytes(b ^ 0xFF for b in block))


def test_every_episode_carries_a_content_hash_and_flipped_frame_bytes_are_refused(
    recorded, tmp_path
):
    import h5py

    root, _ = recorded
    d = load_demos(root / "a")  # intact: loads, hashes checked
    assert len(d.episodes) == 3
    assert dataset_info(root / "a")["drive"]["content_hash"].startswith("sha256")
    with h5py.File(root / "a" / "data" / "main_data.hdf5") as f:
        assert all(len(str(f[f"episode_{i}"].attrs["sha256"])) == 64 for i in range(3))
    bad = tmp_path / "flipped"
    shutil.copytree(root / "a", bad)
    _flip_camera_bytes(bad / "data" / "main_data.hdf5", "episode_1")
    with pytest.raises(
        DemoError, match=r"flipped/data/main_data.hdf5: episode_1: content hash mismatch"
    ):
        load_demos(bad)
    with pytest.raises(DemoError, match="episode_1: content hash mismatch"):
        load_demos(bad, episodes=[1])
    assert len(load_demos(bad, episodes=[0, 2]).episodes) == 2  # the intact ones still load alone


def test_a_dataset_recorded_before_hashes_loads_with_a_one_line_warning(recorded, tmp_path, capsys):
    import h5py

    root, _ = recorded
    old = tmp_path / "old"
    shutil.copytree(root / "a", old)
    meta = json.loads((old / "data" / "metadata.json").read_text())
    del meta["drive"]["content_hash"]
    (old / "data" / "metadata.json").write_text(json.dumps(meta))
    with h5py.File(old / "data" / "main_data.hdf5", "a") as f:
        for i in range(3):
            del f[f"episode_{i}"].attrs["sha256"]
    d = load_demos(old)
    assert len(d.episodes) == 3
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "no content hashes" in err and str(old) in err
    # a hashed dataset whose hash is gone is damaged, not old
    gone = tmp_path / "gone"
    shutil.copytree(root / "a", gone)
    with h5py.File(gone / "data" / "main_data.hdf5", "a") as f:
        del f["episode_2"].attrs["sha256"]
    with pytest.raises(DemoError, match="episode_2: no content hash"):
        load_demos(gone)


def _drive_record(out, *extra, fault=None, episodes=3, workers=1):
    import os
    import subprocess
    import sys

    from sim.harness.parallel import FAULT_ENV

    env = {k: v for k, v in os.environ.items() if k != FAULT_ENV}
    if fault:
        env[FAULT_ENV] = fault
    cmd = [
        sys.executable,
        "-m",
        "sim.cli",
        "record",
        "--scenario",
        "lane-keep",
        "--episodes",
        str(episodes),
        "--seed",
        "7",
        "--duration",
        "2",
        "--noise",
        "0.3",
        "--workers",
        str(workers),
        "--quiet",
        "--out",
        str(out),
        *extra,
    ]
    return subprocess.run(cmd, check=False, capture_output=True, text=True, env=env, timeout=600)


@pytest.mark.parametrize("workers", [1, 2])
def test_ctrl_c_after_one_episode_keeps_it_as_a_smaller_valid_dataset(tmp_path, workers):
    out = tmp_path / "demos"
    r = _drive_record(
        out, fault="sigint-after-episodes:1", workers=workers
    )  # Ctrl-C right after episode 1
    assert r.returncode == 130, r.stderr
    assert "Traceback" not in r.stderr and "KeyboardInterrupt" not in r.stderr, r.stderr
    assert "kept the 1 finished episode of 3" in r.stderr and str(out) in r.stderr, r.stderr
    d = load_demos(out)
    assert [e["seed"] for e in d.episodes] == [7]
    drive = dataset_info(out)["drive"]
    assert (
        drive["interrupted"] is True and drive["episodes_requested"] == 3 and drive["seeds"] == [7]
    )
    assert dataset_info(out)["total_episodes"] == 1
    assert not list(tmp_path.glob(".demos.*"))  # no temp folder left behind


def test_ctrl_c_before_any_episode_finished_says_nothing_is_kept(tmp_path, monkeypatch, capsys):
    import sim.pipelines.record
    from sim.cli import main

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
        yield  # pragma: no cover

    monkeypatch.setattr(sim.pipelines.record, "collect", interrupted)
    out = tmp_path / "demos"
    assert (
        main(["record", "--scenario", "lane-keep", "--episodes", "2", "--out", str(out), "--quiet"])
        == 130
    )
    err = capsys.readouterr().err
    assert "nothing is kept" in err and "finished episodes are kept" not in err, err
    assert list(tmp_path.iterdir()) == []


def test_a_killed_recordings_temp_folder_is_removed_by_the_next_run_to_the_same_out(
    tmp_path, capsys
):
    import os
    import subprocess

    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = tmp_path / f".demos.{dead.pid}.k9x2ab_c.tmp"  # what a `kill -9`ed run leaves
    old_style = (
        tmp_path / ".demos.q1w2e3r4.tmp"
    )  # ... and one from before temp folders named their owner
    live = (
        tmp_path / f".demos.{os.getpid()}.abcdefgh.tmp"
    )  # a recording still running: not ours to touch
    other = tmp_path / f".demos.v2.{dead.pid}.abcdefgh.tmp"  # another dataset's (--out demos.v2)
    for p in (stale, old_style, live, other):
        (p / "data").mkdir(parents=True)
        (p / "data" / "main_data.hdf5").write_bytes(b"\0" * 1000)
    record_dataset(
        get_scenario("lane-keep", duration_s=1.0), [3], tmp_path / "demos", progress=False
    )
    assert not stale.exists() and not old_style.exists()
    assert live.exists() and other.exists()
    err = capsys.readouterr().err
    notes = [line for line in err.splitlines() if "removed" in line]
    assert len(notes) == 2 and str(stale) in err and str(old_style) in err, err
    assert len(load_demos(tmp_path / "demos").episodes) == 1


def test_a_worker_killed_on_every_try_loses_its_seed_with_a_clear_error_and_keeps_the_rest(
    tmp_path,
):
    # the testing hook SIGKILLs every worker that starts seed 8 (as the OOM killer would):
    # the recording must notice, retry it once, then stop with the lost seed named, never hang
    out = tmp_path / "demos"
    r = _drive_record(out, fault="kill-at:8", workers=2)
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr, r.stderr
    line = r.stderr.strip().splitlines()[-1]
    assert "seed 8" in line and "died" in line and str(out) in line, r.stderr
    d = load_demos(out)  # what finished is kept, in seed order
    assert [e["seed"] for e in d.episodes] == [7, 9]
    drive = dataset_info(out)["drive"]
    assert drive["lost_seeds"] == [8] and drive["episodes_requested"] == 3
    assert drive["seeds"] == [7, 9]
    assert not list(tmp_path.glob(".demos.*"))  # no temp folder left behind


def test_a_seed_whose_worker_died_once_is_rerun_and_the_dataset_is_unchanged(
    recorded, tmp_path, monkeypatch
):
    from sim.harness.parallel import FAULT_ENV
    from sim.pipelines.record import RecordingIncomplete

    root, _ = recorded
    sc = get_scenario("lane-keep", duration_s=4.0)
    monkeypatch.setenv(FAULT_ENV, "kill-once-at:8")  # the first worker to start seed 8 dies
    record_dataset(sc, SEEDS, tmp_path / "b", noise=NoiseConfig(0.3), progress=False, workers=2)
    a, b = load_demos(root / "a"), load_demos(tmp_path / "b")
    for field in ("frames", "speed", "command", "labels", "episode", "step"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field), err_msg=field)
    assert [e["seed"] for e in b.episodes] == SEEDS
    assert dataset_info(tmp_path / "b")["drive"]["lost_seeds"] == []
    # a pipeline's recording (no keep_partial) that loses a seed keeps nothing
    monkeypatch.setenv(FAULT_ENV, "kill-at:8")
    with pytest.raises(RecordingIncomplete, match="seed 8") as lost:
        record_dataset(sc, SEEDS, tmp_path / "c", noise=NoiseConfig(0.3), progress=False, workers=2)
    assert list(lost.value.lost) == [8] and lost.value.summary is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]
