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
    assert np.all(np.diff(bump[:k + 1]) >= 0) and np.all(np.diff(bump[k:]) <= 0)  # up, then down
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
        executed, label, noise = ep.actions[:, 0], ep.infos["expert_action"][:-1, 0], ep.infos["noise"][:-1]
        np.testing.assert_allclose(executed, np.clip(label + noise, -1, 1), atol=1e-6)
        perturbed += int(np.sum(noise != 0))
    assert perturbed > 0


def test_recording_the_same_seeds_twice_gives_identical_datasets(recorded, tmp_path):
    root, _ = recorded
    record_dataset(get_scenario("lane-keep", duration_s=4.0), SEEDS, tmp_path / "b", noise=NoiseConfig(0.3),
                   progress=False, workers=2)
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


def test_existing_output_is_refused_and_a_failed_recording_leaves_nothing(recorded, tmp_path, monkeypatch):
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
