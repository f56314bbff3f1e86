"""``drive eval --backend ray`` on a real local Ray cluster: the local backend's results per seed,
traces and shipped checkpoints included; a Ray worker killed mid-episode loses nothing; a run
started on one backend resumes on the other."""

import hashlib
import importlib.util
import json
import shutil
import sys

import pytest

from agents import agent_label
from sim.cli import main
from sim.harness.evaluate import CONFIG, RESULTS, comparable_results, read_results, run_eval
from sim.harness.parallel import FAULT_ENV
from sim.harness.ray_backend import RAY_MISSING, manifest_key, materialise_checkpoint

needs_ray = pytest.mark.skipif(
    importlib.util.find_spec("ray") is None, reason='Ray is not installed: pip install -e ".[ray]"'
)

AGENTS = ["idm", "straight"]
SCENARIOS = ["lane-keep", "highway"]
SEEDS = [0, 1, 2, 3]
DURATION_S = 2.0


_comparable = comparable_results  # keyed by (agent, scenario, seed), wall-clock fields dropped


def _traces_equal(a, b):
    """Two trace files hold the same arrays (the per-step decision latency aside)."""
    import numpy as np

    x, y = np.load(a), np.load(b)
    assert sorted(x.files) == sorted(y.files)
    for name in x.files:
        if name != "latency_ms":
            np.testing.assert_array_equal(x[name], y[name], err_msg=f"{a.name}: {name}")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A local two-CPU Ray cluster for this module; its workers cache shipped checkpoints in a
    temporary folder (they inherit the environment ``ray.init`` starts them with)."""
    import os

    import ray

    if ray.is_initialized():
        ray.shutdown()
    cache = tmp_path_factory.mktemp("xdg-cache")
    old = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(cache)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield cache
    finally:
        ray.shutdown()
        if old is None:
            os.environ.pop("XDG_CACHE_HOME", None)
        else:
            os.environ["XDG_CACHE_HOME"] = old


@pytest.fixture(scope="module")
def pool(cluster):
    """Two warm actors shared by this module's evaluations (a Ray worker's imports cost seconds)."""
    from sim.harness.ray_backend import RayEpisodePool

    with RayEpisodePool(2) as p:
        yield p


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    """The local backend's evaluation (in-process; per-seed results do not depend on the number
    of workers: tests/test_parallel.py)."""
    out = tmp_path_factory.mktemp("eval") / "local"
    return out, run_eval(
        out, AGENTS, SCENARIOS, SEEDS, workers=1, duration_s=DURATION_S, progress=False
    )


def _only(records, agent, scenario):
    return {k: v for k, v in _comparable(records).items() if k[:2] == (agent, scenario)}


@pytest.mark.ray
@needs_ray
def test_ray_backend_equals_local_per_seed_with_traces(pool, local, tmp_path):
    local_out, local_records = local
    out = tmp_path / "ray"
    records = run_eval(
        out,
        AGENTS,
        SCENARIOS,
        SEEDS,
        duration_s=DURATION_S,
        progress=False,
        backend="ray",
        ray_pool=pool,
    )
    assert _comparable(records) == _comparable(local_records)
    for a in AGENTS:
        for s in SCENARIOS:
            for seed in SEEDS:
                name = f"{s}__{a}__{seed}.npz"
                _traces_equal(local_out / "traces" / name, out / "traces" / name)
    config = json.loads((out / CONFIG).read_text())
    assert config["backend"] == "ray" and config["workers"] == 2


@pytest.mark.ray
@needs_ray
def test_a_ray_worker_killed_mid_episode_is_retried_and_nothing_is_lost(
    pool, local, tmp_path, monkeypatch
):
    _, local_records = local
    monkeypatch.setenv(
        FAULT_ENV, "kill-once-at:2"
    )  # the first actor to start seed 2 SIGKILLs itself
    records = run_eval(
        tmp_path / "k",
        ["idm"],
        ["highway"],
        SEEDS,
        duration_s=DURATION_S,
        progress=False,
        backend="ray",
        ray_pool=pool,
    )
    assert len((tmp_path / "k" / RESULTS).read_text().splitlines()) == len(SEEDS)
    assert _comparable(records) == _only(
        local_records, "idm", "highway"
    )  # every seed once: the retry's


@pytest.mark.ray
@needs_ray
def test_an_episode_whose_worker_dies_twice_is_the_agents_error_and_the_run_ends(
    pool, local, tmp_path, monkeypatch
):
    _, local_records = local
    monkeypatch.setenv(FAULT_ENV, "kill-at:1")  # every actor that starts seed 1 dies
    records = run_eval(
        tmp_path / "d",
        ["idm"],
        ["highway"],
        SEEDS,
        duration_s=DURATION_S,
        progress=False,
        backend="ray",
        ray_pool=pool,
    )
    got, want = _comparable(records), _only(local_records, "idm", "highway")
    assert sorted(got) == sorted(want)
    dead = got.pop(("idm", "highway", 1))
    assert dead["status"] == "agent_error" and dead["driving_score"] == 0.0
    assert dead["error"] == "the worker died while running this episode, 2 times"
    assert got == {k: v for k, v in want.items() if k[2] != 1}


@pytest.mark.ray
@needs_ray
def test_a_local_run_resumes_on_ray(pool, local, tmp_path):
    """Interrupted locally (its last lines never written), finished on Ray: the same results."""
    local_out, local_records = local
    out = tmp_path / "moved"
    out.mkdir()
    shutil.copy(local_out / CONFIG, out / CONFIG)
    lines = (local_out / RESULTS).read_text().splitlines(keepends=True)
    (out / RESULTS).write_text("".join(lines[:5]))
    records = run_eval(
        out,
        AGENTS,
        SCENARIOS,
        SEEDS,
        duration_s=DURATION_S,
        progress=False,
        resume=True,
        backend="ray",
        ray_pool=pool,
    )
    assert _comparable(records) == _comparable(local_records)
    assert json.loads((out / CONFIG).read_text())["backend"] == "local"  # what it was started with


@pytest.mark.ray
@needs_ray
def test_checkpoints_are_shipped_by_hash_and_the_agent_spec_is_kept(cluster, pool, tmp_path):
    import torch

    from agents.e2e.checkpoint import save_policy
    from agents.e2e.model import PilotNet, PilotNetConfig
    from sim.geometry.bev import BevCamera
    from sim.harness.evaluate import checkpoint_hashes

    torch.manual_seed(0)
    ckpt = tmp_path / "policy"
    save_policy(
        PilotNet(PilotNetConfig(width="s")),
        ckpt,
        {
            "camera": BevCamera().to_dict(),
            "action_names": ["steering"],
            "steering_range_rad": 0.785,
        },
    )
    spec = f"e2e-bev:{ckpt}"
    local = run_eval(
        tmp_path / "l",
        [spec],
        ["lane-keep"],
        [0, 1],
        workers=1,
        duration_s=DURATION_S,
        progress=False,
    )
    remote = run_eval(
        tmp_path / "r",
        [spec],
        ["lane-keep"],
        [0, 1],
        duration_s=DURATION_S,
        progress=False,
        backend="ray",
        ray_pool=pool,
    )
    assert _comparable(remote) == _comparable(local)
    assert {r["agent"] for r in remote} == {spec}
    cached = cluster / "drive-testbed" / "checkpoints" / manifest_key(checkpoint_hashes(ckpt))
    assert checkpoint_hashes(cached) == checkpoint_hashes(
        ckpt
    )  # what the actors built the agent from
    label = agent_label(spec)  # the trace names a local run gives
    for seed in (0, 1):
        _traces_equal(
            tmp_path / "l" / "traces" / f"lane-keep__{label}__{seed}.npz",
            tmp_path / "r" / "traces" / f"lane-keep__{label}__{seed}.npz",
        )


@pytest.mark.ray
@needs_ray
def test_an_interrupted_ray_run_stops_its_actors_and_keeps_what_finished(
    pool, tmp_path, monkeypatch
):
    import ray
    from ray.exceptions import RayActorError

    from sim.geometry.bev import BevCamera
    from sim.harness.ray_backend import run_seeds_on_ray
    from sim.world.scenarios import get_scenario

    got, dropped = [], []
    drop = pool._drop
    monkeypatch.setattr(pool, "_drop", lambda actor: (dropped.append(actor), drop(actor)))

    def on_record(record):  # a Ctrl-C right after the first finished episode
        got.append(record)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_seeds_on_ray(
            "idm",
            get_scenario("highway", duration_s=DURATION_S),
            range(20),
            tmp_path,
            on_record,
            camera=BevCamera(),
            workers=2,
            pool=pool,
        )
    assert len(got) == 1 and (tmp_path / "traces" / f"highway__idm__{got[0]['seed']}.npz").exists()
    assert pool.idle == 0  # both were running an episode (one already its next) when Ctrl-C came
    assert len(dropped) == 2
    for actor in dropped:  # each is dead: a call to it fails (ray.get waits for the answer)
        with pytest.raises(RayActorError):
            ray.get(actor.__ray_ready__.remote())


@pytest.mark.ray
@needs_ray
def test_drive_eval_backend_ray_from_the_command_line(pool, local, tmp_path):
    _, local_records = local
    pool.close()  # the command starts its own actors: the shared ones make room on the two CPUs
    out = tmp_path / "cli"
    assert (
        main(
            [
                "eval",
                "--agents",
                "straight",
                "--scenarios",
                "lane-keep",
                "--episodes",
                str(len(SEEDS)),
                "--duration",
                str(DURATION_S),
                "--backend",
                "ray",
                "--workers",
                "2",
                "--out",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    assert _comparable(read_results(out / RESULTS)) == _only(local_records, "straight", "lane-keep")
    assert len(list((out / "traces").glob("*.npz"))) == len(SEEDS)


# ---------------------------------------------------------------------------- no cluster needed


def _files():
    files = {"model.safetensors": b"\x00weights" * 100, "e2e.json": b'{"config": {}}'}
    return files, {n: hashlib.sha256(b).hexdigest() for n, b in files.items()}


def test_a_checkpoint_folder_is_materialised_once_verified_and_repaired(tmp_path):
    files, manifest = _files()
    by_hash = {manifest[n]: b for n, b in files.items()}
    fetched = []

    def fetch(sha):
        fetched.append(sha)
        return by_hash[sha]

    folder = materialise_checkpoint(manifest, fetch, tmp_path)
    assert folder == tmp_path / manifest_key(manifest)
    assert {f.name: f.read_bytes() for f in folder.iterdir()} == files
    assert (
        materialise_checkpoint(manifest, fetch, tmp_path) == folder and len(fetched) == 2
    )  # cached
    (folder / "e2e.json").write_bytes(b"tampered")
    materialise_checkpoint(manifest, fetch, tmp_path)
    assert (folder / "e2e.json").read_bytes() == files["e2e.json"] and len(fetched) == 4  # rebuilt
    assert [p.name for p in tmp_path.iterdir()] == [folder.name]  # no temporary folder left


def test_checkpoint_bytes_that_do_not_match_their_hash_are_refused(tmp_path):
    _, manifest = _files()
    with pytest.raises(ValueError, match="arrived with SHA-256"):
        materialise_checkpoint(manifest, lambda sha: b"something else", tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_bad_backend_choices_are_refused_with_the_fix(tmp_path, monkeypatch, capsys):
    with pytest.raises(ValueError, match="unknown backend 'slurm'; known: local, ray"):
        run_eval(tmp_path / "x", ["idm"], ["highway"], [0], backend="slurm")
    assert (
        main(
            [
                "eval",
                "--agents",
                "idm",
                "--scenarios",
                "highway",
                "--episodes",
                "1",
                "--address",
                "auto",
                "--out",
                str(tmp_path / "y"),
            ]
        )
        == 2
    )
    assert "--address auto needs --backend ray" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    with pytest.raises(ValueError, match=r'pip install -e "\.\[ray\]"'):
        run_eval(tmp_path / "z", ["idm"], ["highway"], [0], backend="ray")
    assert not (tmp_path / "z").exists()  # refused before anything is written
    assert 'pip install -e ".[ray]"' in RAY_MISSING
