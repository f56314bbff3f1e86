"""The RL baseline: the shaped reward, PPO around PilotNet, its checkpoints and the ``ppo``
agent."""

import json

import numpy as np
import pytest
import torch

from agents import make_agent, parse_agent
from agents.e2e.agent import policy_experience
from agents.e2e.checkpoint import load_policy
from agents.e2e.model import aux_inputs
from agents.e2e.train import E2ETrainConfig, train_e2e
from agents.rl.agent import META, POLICY
from sim.geometry.bev import BevCamera
from sim.harness.loop import run_episode
from sim.harness.run import task_spec
from sim.pipelines.record import NoiseConfig, record_dataset
from sim.pipelines.rl import RewardConfig, RLEnv, shaped_reward
from sim.world.scenarios import get_scenario

CAM = BevCamera()
DT = 1 / 15
KEEP = {"cruise_speed_mps": 8.0, "dt_s": DT, "lane_changes_allowed": False}


def _ego(s=0.0, route=0.0, lateral=None, speed=8.0, heading=0.0):
    return {
        "progress_m": s,
        "route_offset_m": route,
        "lateral_offset_m": route if lateral is None else lateral,
        "speed_mps": speed,
        "heading_rad": heading,
    }


NO_EVENTS = {"collision": None, "offroad": False}


# -- the reward, on hand-made states ------------------------------------------------------------
def test_a_centred_smooth_step_at_cruise_speed_earns_the_progress_weight_only():
    t = shaped_reward(_ego(0.0), _ego(8.0 * DT), NO_EVENTS, [0.1], [0.1], **KEEP)
    assert t["progress"] == pytest.approx(0.1)
    assert {k: v for k, v in t.items() if k not in ("progress", "total")} == {
        "centring": 0.0,
        "lane": 0.0,
        "collision": 0.0,
        "offroad": 0.0,
        "smoothness": 0.0,
        "lateral": 0.0,
    }
    assert t["total"] == pytest.approx(0.1)


def test_progress_is_relative_to_cruise_speed_and_clipped():
    half = shaped_reward(_ego(0.0), _ego(4.0 * DT), NO_EVENTS, [0.0], None, **KEEP)
    assert half["progress"] == pytest.approx(0.05)
    back = shaped_reward(_ego(10.0), _ego(0.0), NO_EVENTS, [0.0], None, **KEEP)
    assert back["progress"] == pytest.approx(
        -0.1
    )  # a jump backwards costs at most one step's worth
    fast = shaped_reward(_ego(0.0), _ego(10.0), NO_EVENTS, [0.0], None, **KEEP)
    assert fast["progress"] == pytest.approx(0.2)


def test_centring_uses_the_followed_lane_and_lane_keeping_penalises_departures():
    off = _ego(
        0.0, route=1.5, lateral=-0.2
    )  # 1.5 m off the route's lane, 0.2 m from the nearest lane's centre
    keep = shaped_reward(_ego(), off, NO_EVENTS, [0.0], None, **KEEP)
    assert keep["centring"] == pytest.approx(
        -0.028125
    )  # -0.05 x (1.5 m / 2 m half lane)^2 = -0.05 x 0.5625
    assert keep["lane"] == pytest.approx(-0.1)
    free = shaped_reward(
        _ego(),
        off,
        NO_EVENTS,
        [0.0],
        None,
        cruise_speed_mps=8.0,
        dt_s=DT,
        lane_changes_allowed=True,
    )
    assert free["centring"] == pytest.approx(-0.0005)  # -0.05 x (0.2 m / 2 m)^2 = -0.05 x 0.01
    assert free["lane"] == 0.0  # lane changes are manoeuvres where they are allowed
    far = shaped_reward(_ego(), _ego(route=9.0), NO_EVENTS, [0.0], None, **KEEP)
    assert far["centring"] == pytest.approx(-0.05)  # capped


def test_collisions_and_leaving_the_road_are_penalised_once_per_step():
    hit = shaped_reward(
        _ego(), _ego(), {"collision": "vehicle", "offroad": False}, [0.0], None, **KEEP
    )
    assert hit["collision"] == -2.0 and hit["offroad"] == 0.0
    out = shaped_reward(_ego(), _ego(), {"collision": None, "offroad": True}, [0.0], None, **KEEP)
    assert out["offroad"] == -2.0 and out["collision"] == 0.0


def test_comfort_terms_penalise_action_changes_and_hard_lateral_acceleration():
    jerky = shaped_reward(_ego(), _ego(), NO_EVENTS, [0.5, -0.2], [0.0, 0.2], **KEEP)
    # -0.02 x ((0.5 - 0.0)^2 + (-0.2 - 0.2)^2) = -0.02 x (0.25 + 0.16) = -0.02 x 0.41
    assert jerky["smoothness"] == pytest.approx(-0.0082)
    # 10 m/s turning 0.04 rad in one step = 6 m/s^2 > 4.89; across the +-pi seam too
    for h0, h1 in ((0.0, 0.04), (np.pi - 0.02, -np.pi + 0.02)):
        hard = shaped_reward(
            _ego(speed=10.0, heading=h0),
            _ego(speed=10.0, heading=h1),
            NO_EVENTS,
            [0.0],
            None,
            **KEEP,
        )
        assert hard["lateral"] == -0.05, (h0, h1)
    gentle = shaped_reward(
        _ego(speed=10.0), _ego(speed=10.0, heading=0.02), NO_EVENTS, [0.0], None, **KEEP
    )
    assert gentle["lateral"] == 0.0


def test_reward_weights_switch_terms_off_and_bad_weights_are_refused():
    w = RewardConfig(progress=0.0, collision=0.0)
    t = shaped_reward(
        _ego(0.0),
        _ego(5.0),
        {"collision": "object", "offroad": False},
        [0.0],
        None,
        weights=w,
        **KEEP,
    )
    assert t["progress"] == 0.0 and t["collision"] == 0.0
    with pytest.raises(ValueError, match="collision"):
        RewardConfig(collision=-1.0)


def test_the_rl_env_hands_the_image_policy_its_sensors_and_the_terms_sum_to_the_reward():
    env = RLEnv("lane-keep", overrides={"duration_s": 1.0})
    obs, _ = env.reset(seed=3)
    assert set(obs) == {"bev", "speed"} and obs["bev"].shape == (128, 128, 3)
    total = 0.0
    for k in range(15):
        obs, r, term, trunc, info = env.step(np.array([0.3 * (-1) ** k]))
        terms = info["reward_terms"]
        assert r == pytest.approx(sum(v for n, v in terms.items() if n != "total"))
        # the wheel flips between +0.3 and -0.3: -0.02 x (0.3 - -0.3)^2 = -0.02 x 0.36
        # (none on the first step)
        assert terms["smoothness"] == pytest.approx(0.0 if k == 0 else -0.0072), k
        total += r
        if term or trunc:
            break
    assert trunc and terms["smoothness"] < 0  # 15 steps = the 1 s limit; the wheel flips every step
    assert set(RLEnv("roundabout").observation_space.spaces) == {"bev", "speed", "command"}


# -- PPO around PilotNet ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def bc(tmp_path_factory):
    """A small behaviour-cloned lane-keep policy (PilotNet-s) to start PPO from."""
    root = tmp_path_factory.mktemp("ppo-bc")
    record_dataset(
        get_scenario("lane-keep", duration_s=4.0),
        [21, 22, 23],
        root / "demos",
        noise=NoiseConfig(0.3),
        progress=False,
    )
    train_e2e(
        root / "demos",
        root / "bc",
        E2ETrainConfig(model="pilotnet-s", epochs=2, batch_size=32),
        device="cpu",
        progress=False,
    )
    return root / "bc"


def _tiny(**kw):
    from sim.pipelines.ppo import PPOConfig

    base = {
        "steps": 64,
        "envs": 2,
        "vec": "dummy",
        "n_steps": 16,
        "batch_size": 16,
        "n_epochs": 1,
        "eval_every": 32,
        "eval_episodes": 1,
        "duration_s": 2.0,
    }
    return PPOConfig(**{**base, **kw})


def _frames(n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 128, 128, 3), dtype=np.uint8), rng.uniform(0, 12, n).astype(
        np.float32
    )


def test_a_behaviour_cloned_network_becomes_the_ppo_actor_exactly(bc):
    from agents.rl.policy import policy_to_pilotnet
    from sim.pipelines.ppo import build_ppo

    net, _ = load_policy(bc)
    model = build_ppo(get_scenario("lane-keep"), _tiny(), init_net=net, device="cpu")
    try:
        frames, speed = _frames(5)
        with torch.no_grad():
            want = net(torch.from_numpy(frames), aux_inputs(speed, np.zeros(5), net.config)).numpy()
        obs = {
            "bev": frames.transpose(0, 3, 1, 2),
            "speed": speed[:, None],
        }  # SB3's channel-first view
        got, _ = model.predict(obs, deterministic=True)
        np.testing.assert_allclose(got, np.clip(want, -1, 1), atol=1e-5)
        back = policy_to_pilotnet(model.policy)
        for (k, a), (k2, b) in zip(
            net.state_dict().items(), back.state_dict().items(), strict=True
        ):
            assert k == k2 and torch.equal(a, b), k
    finally:
        model.env.close()


def test_a_tiny_training_run_saves_weights_and_json_that_reload_and_drive(bc, tmp_path):
    from sim.pipelines.ppo import train_ppo

    out = tmp_path / "ppo"
    r = train_ppo(
        "lane-keep", out, _tiny(critic_warmup=32), init=f"e2e:{bc}", device="cpu", progress=False
    )
    assert r["timesteps"] == 64 and [h["timesteps"] for h in r["history"]] == [
        0,
        32,
        64,
    ]  # 0: the BC net
    assert all(h["closed_loop"]["episodes"] == 1 for h in r["history"])
    files = {p.name for p in out.iterdir()}
    assert {"model.safetensors", POLICY, META, "progress.jsonl", "tensorboard"} <= files
    assert not [
        p for p in out.rglob("*") if p.suffix in (".zip", ".pkl", ".pt", ".pth")
    ]  # nothing pickled
    meta = json.loads((out / META).read_text())
    assert meta["training"]["complete"] and meta["ppo"]["timesteps"] == 64
    assert meta["ppo"]["reward"] == {
        "progress": 0.1,
        "centring": 0.05,
        "lane": 0.1,
        "collision": 2.0,
        "offroad": 2.0,
        "smoothness": 0.02,
        "lateral": 0.05,
    }
    assert policy_experience(meta) == {
        "demo_frames": meta["ppo"]["init"]["demo_frames"],
        "env_steps": 64,
    }
    assert meta["ppo"]["init"]["demo_frames"] > 0
    agent = make_agent(f"ppo:{out}", task_spec(get_scenario("lane-keep"), CAM), device="cpu")
    assert agent.experience()["env_steps"] == 64
    from sim.world.env import DrivingEnv

    env = DrivingEnv(get_scenario("lane-keep", duration_s=1.0), sensors=agent.sensors)
    res = run_episode(env, agent, seed=0)
    assert res.metrics["status"] == "ok" and res.metrics["steps"] == 15
    with pytest.raises(FileExistsError, match="choose a new"):
        train_ppo("lane-keep", out, _tiny(), device="cpu", progress=False)
    scores = [h["closed_loop"]["driving_score"] for h in r["history"]]
    best = json.loads((out / "best" / META).read_text())["selected"]
    assert best["timesteps"] == r["history"][int(np.argmax(scores))]["timesteps"]  # the first best
    assert best["driving_score"] == max(scores) and best["eval_seeds"] == [10_000, 10_000]
    assert make_agent(
        f"ppo:{out}/best", task_spec(get_scenario("lane-keep"), CAM), device="cpu"
    ).act(
        {"bev": np.zeros((128, 128, 3), np.uint8), "speed": np.array([8.0]), "command": 0}
    ).shape == (1,)
    assert not [
        p.name for p in out.iterdir() if p.name.startswith(".")
    ]  # no temp folder left behind


def test_the_critic_warmup_leaves_the_actor_untouched(bc, tmp_path):
    from sim.pipelines.ppo import train_ppo

    out = tmp_path / "warm"
    train_ppo(
        "lane-keep",
        out,
        _tiny(steps=32, critic_warmup=32, eval_episodes=0),
        init=f"e2e:{bc}",
        device="cpu",
        progress=False,
    )
    before, _ = load_policy(bc)
    after, _ = load_policy(out, meta_name=META)
    for (k, a), b in zip(before.state_dict().items(), after.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    critic = json.loads((out / META).read_text())["ppo"]["log_std"]
    assert critic == pytest.approx([-1.6])  # log std is the actor's too: frozen


def test_an_interrupted_run_resumes_to_the_same_step_count(tmp_path, monkeypatch):
    from sim.pipelines import ppo

    out = tmp_path / "resumed"
    calls = {"n": 0}
    real = ppo._Monitor._evaluate

    def flaky(self):
        calls["n"] += 1
        if calls["n"] == 2:
            # killed during the evaluation at step 32 (its checkpoint is on disk)
            raise KeyboardInterrupt
        return real(self)

    monkeypatch.setattr(ppo._Monitor, "_evaluate", flaky)
    with pytest.raises(KeyboardInterrupt):
        ppo.train_ppo("lane-keep", out, _tiny(steps=96), device="cpu", progress=False)
    meta = json.loads((out / META).read_text())
    assert not meta["training"]["complete"] and meta["ppo"]["timesteps"] == 32
    with pytest.raises(FileExistsError, match="--resume"):
        ppo.train_ppo("lane-keep", out, _tiny(steps=96), device="cpu", progress=False)
    with pytest.raises(ValueError, match="recipe differs"):
        ppo.train_ppo(
            "lane-keep", out, _tiny(steps=96, lr=1e-3), device="cpu", progress=False, resume=True
        )
    r = ppo.train_ppo("lane-keep", out, _tiny(steps=96), device="cpu", progress=False, resume=True)
    assert r["timesteps"] == 96
    assert [h["timesteps"] for h in r["history"]] == [0, 64, 96]
    assert json.loads((out / META).read_text())["training"]["complete"]


def test_damaged_policy_state_and_mismatched_inits_are_refused(bc, tmp_path):
    from perception.checkpoint import CheckpointError
    from sim.pipelines.ppo import train_ppo

    with pytest.raises(ValueError, match="drives"):  # a lane-keep network cannot drive the highway
        train_ppo(
            "highway", tmp_path / "x", _tiny(), init=f"e2e:{bc}", device="cpu", progress=False
        )
    with pytest.raises(ValueError, match="e2e:RUN"):
        train_ppo(
            "lane-keep", tmp_path / "y", _tiny(), init=f"modular:{bc}", device="cpu", progress=False
        )
    out = tmp_path / "z"
    (out).mkdir()
    (out / POLICY).write_bytes(b"not a safetensors file")
    (out / META).write_text("{not json")
    with pytest.raises(CheckpointError, match="not a PPO run's JSON"):
        train_ppo("lane-keep", out, _tiny(), device="cpu", progress=False, resume=True)
    from dataclasses import asdict

    from agents.e2e.model import PilotNetConfig

    (out / META).write_text(
        json.dumps(
            {
                "ppo": {"config": asdict(_tiny()), "timesteps": 32},
                "config": PilotNetConfig(width="s").to_dict(),
            }
        )
    )
    with pytest.raises(CheckpointError, match="cannot be read"):
        train_ppo("lane-keep", out, _tiny(), device="cpu", progress=False, resume=True)


# -- the agent -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    from sim.pipelines.ppo import train_ppo

    out = tmp_path_factory.mktemp("ppo-scratch") / "p"
    train_ppo(
        "lane-keep",
        out,
        _tiny(steps=32, eval_episodes=0, vec="subproc"),
        device="cpu",
        progress=False,
    )
    return out


def test_ppo_agent_acts_through_the_contract_and_is_batch_invariant(scratch):
    assert parse_agent(f"ppo:{scratch}") == ("ppo", str(scratch))
    agent = make_agent(f"ppo:{scratch}", task_spec(get_scenario("lane-keep"), CAM), device="cpu")
    assert agent.name == "ppo" and agent.sensors == ("bev", "speed", "command")
    agent.reset(seed=0)
    frames, speed = _frames(6, seed=4)
    obs = [
        {"bev": f, "speed": np.array([s]), "command": 0} for f, s in zip(frames, speed, strict=True)
    ]
    one = np.stack([agent.act(o) for o in obs])
    assert one.shape == (6, 1) and np.all(np.isfinite(one))
    for k in (2, 5):
        np.testing.assert_array_equal(agent.act_batch(obs[:k], slots=list(range(k))), one[:k])
    assert agent.device == "cpu"


def test_ppo_agent_errors_name_the_fix(tmp_path, bc):
    task = task_spec(get_scenario("lane-keep"), CAM)
    with pytest.raises(FileNotFoundError, match="drive train ppo --scenario lane-keep"):
        make_agent(f"ppo:{tmp_path / 'none'}", task).prepare()
    from perception.checkpoint import CheckpointError

    with pytest.raises(CheckpointError, match="ppo.json"):  # an e2e checkpoint is not a PPO one
        make_agent(f"ppo:{bc}", task).prepare()


def _seen(meta: dict) -> dict:
    return {k: policy_experience(meta)[k] for k in ("demo_frames", "env_steps")}


def test_experience_counts_demo_frames_and_environment_steps():
    assert _seen({"dataset": {"frames": 2000}}) == {"demo_frames": 2000, "env_steps": 0}
    dagger = {
        "dataset": {"frames": 2600},
        "dagger": {"rounds": [{"new_frames": 0}, {"new_frames": 300}, {"new_frames": 300}]},
        "training": {"samples_seen": 5000, "epochs": 3, "history": [{}, {}], "stopped": "budget"},
    }
    assert policy_experience(dagger) == {
        "demo_frames": 2600,
        "env_steps": 600,
        "samples_seen": 5000,  # what the network was trained on, and why it stopped
        "epochs": 2,
        "epochs_planned": 3,
        "stopped": "budget",
    }
    ppo = {"ppo": {"timesteps": 5000, "init": {"demo_frames": 2000, "env_steps": 0}}}
    assert policy_experience(ppo) == {"demo_frames": 2000, "env_steps": 5000}
    assert policy_experience({"ppo": {"timesteps": 7, "init": None}}) == {
        "demo_frames": 0,
        "env_steps": 7,
    }


def test_the_report_puts_ppo_beside_e2e_with_the_experience_each_used(bc, scratch, tmp_path):
    from sim.harness.evaluate import run_eval
    from sim.report.report import write_report

    out = tmp_path / "eval"
    agents = [f"e2e:{bc}", f"ppo:{scratch}"]
    run_eval(out, agents, ["lane-keep"], [0, 1], duration_s=1.0, progress=False, device="cpu")
    config = json.loads((out / "config.json").read_text())
    bc_frames = json.loads((bc / "e2e.json").read_text())["dataset"]["frames"]
    seen = {
        a: {s: {k: e[k] for k in ("demo_frames", "env_steps")} for s, e in per.items()}
        for a, per in config["experience"].items()
    }
    assert seen == {
        agents[0]: {"lane-keep": {"demo_frames": bc_frames, "env_steps": 0}},
        agents[1]: {"lane-keep": {"demo_frames": 0, "env_steps": 32}},
    }
    assert config["experience"][agents[0]]["lane-keep"]["samples_seen"] > 0
    paths = write_report(out, videos=0)
    md = paths["md"].read_text()
    assert "| environment steps driven while learning |" in md
    assert f"| {bc_frames:,} | 0 |" in md and "| 0 | 32 |" in md
    assert f"| {agents[0]} | {agents[1]} | 2 |" in md  # e2e against ppo, paired on the shared seeds
    assert (out / "report_files" / "ppo.png").exists()


def test_cli_trains_ppo_and_the_harness_drives_it(tmp_path, capsys):
    from sim.cli import main

    out = tmp_path / "cli"
    assert (
        main(
            [
                "train",
                "ppo",
                "--scenario",
                "lane-keep",
                "--steps",
                "32",
                "--envs",
                "2",
                "--vec",
                "dummy",
                "--n-steps",
                "16",
                "--batch-size",
                "16",
                "--epochs",
                "1",
                "--eval-every",
                "32",
                "--eval-episodes",
                "1",
                "--duration",
                "1",
                "--out",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "32 environment steps" in text and f"--agent ppo:{out}" in text
    assert (
        main(
            [
                "run",
                "--agent",
                f"ppo:{out}",
                "--scenario",
                "lane-keep",
                "--episodes",
                "1",
                "--duration",
                "1",
                "--out",
                str(tmp_path / "run"),
                "--quiet",
            ]
        )
        == 0
    )
    assert (
        main(["train", "ppo", "--scenario", "nowhere", "--out", str(tmp_path / "x"), "--quiet"])
        == 2
    )
    assert "known: lane-keep" in capsys.readouterr().err


def test_bench_ppo_times_fast_and_stock_physics_in_the_same_run():
    from sim.pipelines.ppo import bench_ppo, format_bench_ppo

    r = bench_ppo("lane-keep", steps=32, repeats=1, envs=2)
    assert r["steps"] == 32 and len(r["runs"]["fast"]) == len(r["runs"]["stock"]) == 1
    for kind in ("fast", "stock"):
        assert (
            r[kind]["env_steps_per_s"] > 0
            and r[kind]["rollout_steps_per_s"] >= r[kind]["env_steps_per_s"]
        )
    assert r["speedup"] == pytest.approx(
        r["fast"]["env_steps_per_s"] / r["stock"]["env_steps_per_s"]
    )
    assert "fast / stock" in format_bench_ppo(r)


def test_the_same_seed_trains_the_same_weights(tmp_path):
    from safetensors.torch import load_file

    from sim.pipelines.ppo import train_ppo

    runs = []
    for k in range(2):
        train_ppo(
            "lane-keep",
            tmp_path / str(k),
            _tiny(steps=32, eval_episodes=0),
            device="cpu",
            progress=False,
        )
        runs.append(load_file(str(tmp_path / str(k) / POLICY)))
    assert runs[0].keys() == runs[1].keys()
    for name in runs[0]:
        assert torch.equal(runs[0][name], runs[1][name]), name


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (run: pytest -m gpu)")
def test_ppo_trains_on_cuda_and_its_agent_matches_the_cpu(tmp_path):
    from sim.pipelines.ppo import train_ppo

    out = tmp_path / "cuda"
    train_ppo("lane-keep", out, _tiny(steps=32, eval_episodes=0), device="cuda", progress=False)
    frames, speed = _frames(4, seed=9)
    obs = [
        {"bev": f, "speed": np.array([s]), "command": 0} for f, s in zip(frames, speed, strict=True)
    ]
    task = task_spec(get_scenario("lane-keep"), CAM)
    cpu = make_agent(f"ppo:{out}", task, device="cpu").act_batch(obs)
    gpu = make_agent(f"ppo:{out}", task, device="cuda").act_batch(obs)
    np.testing.assert_allclose(gpu, cpu, atol=1e-4)


def test_the_best_snapshot_is_swapped_in_whole(tmp_path):
    from types import SimpleNamespace

    from sim.pipelines import ppo

    (tmp_path / "model.safetensors").write_bytes(b"weights 1")
    (tmp_path / META).write_text(json.dumps({"ppo": {"timesteps": 10}}))
    fake = SimpleNamespace(out=tmp_path, config=_tiny(eval_episodes=5))
    ppo._Monitor._keep_best(fake, {"timesteps": 10, "closed_loop": {"driving_score": 0.5}})
    (tmp_path / "model.safetensors").write_bytes(b"weights 2")
    ppo._Monitor._keep_best(fake, {"timesteps": 20, "closed_loop": {"driving_score": 0.9}})
    assert (tmp_path / "best" / "model.safetensors").read_bytes() == b"weights 2"
    assert json.loads((tmp_path / "best" / META).read_text())["selected"] == {
        "timesteps": 20,
        "driving_score": 0.9,
        "eval_seeds": [10_000, 10_004],
    }
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["best", META, "model.safetensors"])


def test_cli_names_a_missing_checkpoint_and_how_to_train_it(tmp_path, capsys, monkeypatch):
    from sim.cli import main

    monkeypatch.chdir(tmp_path)  # no runs/ppo/lane-keep here
    assert (
        main(["run", "--agent", "ppo", "--scenario", "lane-keep", "--episodes", "1", "--quiet"])
        == 2
    )
    err = capsys.readouterr().err
    assert (
        "no PPO checkpoint at runs/ppo/lane-keep" in err
        and "drive train ppo --scenario lane-keep" in err
    )
    assert (
        main(
            [
                "train",
                "ppo",
                "--scenario",
                "lane-keep",
                "--init",
                "e2e:nowhere",
                "--out",
                "x",
                "--quiet",
            ]
        )
        == 2
    )
    assert "not a behaviour-cloned (e2e) policy checkpoint" in capsys.readouterr().err


def test_a_policy_state_resaved_in_another_dtype_is_refused():
    from agents.rl.policy import load_policy_state, policy_state
    from perception.checkpoint import CheckpointError
    from sim.pipelines.ppo import build_ppo

    model = build_ppo(get_scenario("lane-keep"), _tiny(envs=1), device="cpu")
    try:
        state = policy_state(model.policy)
        load_policy_state(model.policy, state)  # the same dtypes load
        for dtype in (torch.int8, torch.float16):
            name = str(dtype).removeprefix("torch.")
            bad = {k: v.to(dtype) for k, v in state.items()}
            with pytest.raises(
                CheckpointError,
                match=rf"policy.safetensors: .*dtype.*expected float32, found {name}",
            ):
                load_policy_state(model.policy, bad)
    finally:
        model.env.close()


_TINY_CLI = [
    "train", "ppo", "--steps", "32", "--envs", "1", "--vec", "dummy", "--n-steps", "16",
    "--batch-size", "16", "--epochs", "1", "--eval-every", "32", "--eval-episodes", "0",
    "--duration", "1", "--device", "cpu", "--quiet",
]  # fmt: skip


def test_ppo_refuses_faults_before_writing_anything(tmp_path, capsys):
    """``--scenario lane-keep:latency=3`` trained weights identical to plain lane-keep's under a
    JSON that said latency=3: the RL environment cannot apply the harness's faults."""
    from sim.cli import main

    out = tmp_path / "p"
    assert main([*_TINY_CLI, "--scenario", "lane-keep:latency=3", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "drive train ppo" in err and "latency=3" in err and "'lane-keep'" in err
    assert len(err.strip().splitlines()) == 1 and not out.exists()
    with pytest.raises(ValueError, match="noise=1"):
        RLEnv("lane-keep:noise=1")


def test_ppo_out_and_ignored_options_are_refused_before_any_work(tmp_path, capsys):
    from sim.cli import main

    a_file = tmp_path / "f"
    a_file.write_text("x")
    for out in (a_file, a_file / "p"):
        assert main([*_TINY_CLI, "--scenario", "lane-keep", "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert f"{a_file} is a file" in err and len(err.strip().splitlines()) == 1
    assert a_file.read_text() == "x"
    for extra, word in (
        (["--cameras", "cam_front"], "--cameras"),
        (["--view-prob", "0.3"], "--view-prob"),
    ):
        out = tmp_path / word.strip("-")
        assert main([*_TINY_CLI, "--scenario", "lane-keep", "--out", str(out), *extra]) == 2
        assert word in capsys.readouterr().err and not out.exists()
