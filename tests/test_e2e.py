"""The end-to-end policy: PilotNet, behaviour cloning, checkpoints, the agent, lock-step
batching."""

import json

import numpy as np
import pytest
import torch

from agents import make_agent
from agents.e2e.agent import E2EAgent
from agents.e2e.checkpoint import load_policy, save_policy
from agents.e2e.demos import load_demos
from agents.e2e.model import PilotNet, PilotNetConfig, aux_inputs, count_parameters, parse_model
from agents.e2e.train import E2ETrainConfig, ViewAugmenter, train_e2e
from perception.checkpoint import CheckpointError
from sim.geometry.bev import BevCamera
from sim.harness.loop import run_episode, run_episodes_lockstep
from sim.harness.run import task_spec
from sim.pipelines.record import NoiseConfig, record_dataset
from sim.world.env import DrivingEnv
from sim.world.scenarios import get_scenario

CAM = BevCamera()


@pytest.fixture(scope="module")
def demos_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    record_dataset(
        get_scenario("lane-keep", duration_s=5.0),
        [11, 12, 13, 14],
        root / "demos",
        noise=NoiseConfig(0.3),
        progress=False,
    )
    return root / "demos"


@pytest.fixture(scope="module")
def trained(demos_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("policy") / "p"
    result = train_e2e(
        demos_dir,
        out,
        E2ETrainConfig(model="pilotnet-s", epochs=3, batch_size=32, lr=2e-3, patience=5),
        device="cpu",
        progress=False,
        extra_meta={"git_revision": "test"},
    )
    return out, result


def _task(scenario="lane-keep"):
    return task_spec(get_scenario(scenario), CAM)


def test_pilotnet_widths_are_about_4x_apart_and_m_is_pilotnet_sized():
    n = {w: count_parameters(PilotNet(PilotNetConfig(width=w))) for w in "sml"}
    assert 200_000 < n["m"] < 300_000  # PilotNet's ~250k
    assert 3.0 < n["m"] / n["s"] < 5.0 and 3.0 < n["l"] / n["m"] < 5.0
    assert parse_model("pilotnet-l") == "l"
    with pytest.raises(ValueError, match="known: pilotnet-s, pilotnet-m, pilotnet-l"):
        parse_model("resnet")
    # the flatten size comes from a dry run, so other frame sizes work
    small = PilotNet(PilotNetConfig(image_hw=(64, 96), stack=2, n_actions=2, use_command=True))
    y = small(
        torch.zeros(3, 64, 96, 6, dtype=torch.uint8),
        aux_inputs([1.0, 2.0, 3.0], [0, 1, 3], small.config),
    )
    assert y.shape == (3, 2)


def test_pilotnet_checks_its_input_with_a_helpful_message():
    net = PilotNet(PilotNetConfig())
    aux = torch.zeros(2, 1)
    with pytest.raises(ValueError, match=r"expects frames of shape \[B, 128, 128, 3\]"):
        net(torch.zeros(2, 3, 128, 128, dtype=torch.uint8), aux)
    with pytest.raises(ValueError, match="expects uint8 frames"):
        net(torch.zeros(2, 128, 128, 3), aux)
    with pytest.raises(ValueError, match=r"aux of shape \[B, 1\]"):
        net(torch.zeros(2, 128, 128, 3, dtype=torch.uint8), torch.zeros(2, 5))
    with pytest.raises(ValueError, match="at least 48x48"):
        PilotNetConfig(image_hw=(32, 32))


def test_overfitting_a_handful_of_frames_reaches_near_zero_loss():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    frames = torch.from_numpy(rng.integers(0, 256, (6, 64, 64, 3), dtype=np.uint8))
    aux = torch.rand(6, 1)
    target = torch.from_numpy(rng.uniform(-0.5, 0.5, (6, 1)).astype(np.float32))
    net = PilotNet(PilotNetConfig(width="s", image_hw=(64, 64)))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    first = None
    for _ in range(300):
        loss = ((net(frames, aux) - target) ** 2).mean()
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 1e-4 and first > 0.02


def test_a_tiny_training_run_reduces_the_loss_and_reports_throughput(trained):
    out, result = trained
    hist = result["history"]
    assert hist[-1]["train_loss"] < hist[0]["train_loss"]
    assert result["best_val_loss"] <= hist[0]["val_loss"]
    assert result["loader_samples_per_s"] > result["train_samples_per_s"] > 0
    assert (out / "tensorboard").is_dir()


def test_checkpoint_round_trips_through_safetensors_and_json_only(trained, tmp_path):
    out, _ = trained
    assert sorted(p.name for p in out.iterdir() if p.is_file()) == ["e2e.json", "model.safetensors"]
    meta = json.loads((out / "e2e.json").read_text())
    assert meta["architecture"] == "pilotnet-v1" and meta["config"]["width"] == "s"
    assert meta["action_names"] == ["steering"] and meta["git_revision"] == "test"
    assert meta["dataset"]["episodes"] == 4 and meta["training"]["best_epoch"] >= 1
    model, _ = load_policy(out)
    save_policy(
        model,
        tmp_path / "copy",
        {k: v for k, v in meta.items() if k not in ("architecture", "config")},
    )
    again, _ = load_policy(tmp_path / "copy")
    x = torch.randint(0, 256, (4, 128, 128, 3), dtype=torch.uint8)
    a = torch.rand(4, 1)
    with torch.inference_mode():
        assert torch.equal(model(x, a), again(x, a))
    from safetensors.torch import load_file

    assert set(load_file(str(out / "model.safetensors"))) == set(model.state_dict())


def test_damaged_or_wrong_architecture_checkpoints_are_refused(trained, tmp_path):
    import shutil

    out, _ = trained
    wrong = tmp_path / "wrong"
    shutil.copytree(out, wrong)
    meta = json.loads((wrong / "e2e.json").read_text())
    meta["config"]["width"] = "l"  # the weights are pilotnet-s
    (wrong / "e2e.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="does not fit the config"):
        load_policy(wrong)
    meta["architecture"] = "resnet-18"
    (wrong / "e2e.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="architecture 'resnet-18'"):
        load_policy(wrong)
    damaged = tmp_path / "damaged"
    shutil.copytree(out, damaged)
    (damaged / "model.safetensors").write_bytes(b"\x00" * 100)
    with pytest.raises(CheckpointError, match="model.safetensors: cannot be read"):
        load_policy(damaged)
    with pytest.raises(CheckpointError, match="not an end-to-end policy checkpoint"):
        load_policy(tmp_path / "nothing")


def test_viewpoint_augmentation_moves_the_image_and_corrects_the_steering():
    aug = ViewAugmenter(CAM.to_dict(), steering_index=0, steering_range_rad=np.pi / 4)
    img = torch.zeros(1, 3, 128, 128)
    img[:, :, :, 60] = 255.0  # a line along the road, 3.5 px left of the ego's column (63.5)
    same = torch.nn.functional.grid_sample(
        img, aug.grid(torch.zeros(1), torch.zeros(1)), align_corners=False
    )
    assert torch.allclose(same, img, atol=1e-3)
    moved = torch.nn.functional.grid_sample(
        img, aug.grid(torch.tensor([1.0]), torch.zeros(1)), align_corners=False
    )
    # the car 1 m further left sees the line 2 px further right (0.5 m/px)
    assert int(moved[0, 0, 50].argmax()) == 62
    labels = np.array([[0.1], [0.1], [0.1]], np.float32)
    speed = np.full(3, 8.0, np.float32)
    out = aug.correct(labels, speed, np.array([0.0, 1.0, 0.0]), np.array([0.0, 0.0, np.radians(5)]))
    assert out[0, 0] == pytest.approx(0.1, abs=1e-6)  # no shift, no change
    assert out[1, 0] < 0.1 and out[2, 0] < 0.1  # moved left / turned left -> steer right to return


def _obs(rng, n):
    return [
        {
            "bev": rng.integers(0, 256, (128, 128, 3), dtype=np.uint8),
            "speed": np.array([rng.uniform(0, 30)], np.float32),
            "command": 0,
        }
        for _ in range(n)
    ]


def test_e2e_agent_acts_through_the_contract_and_is_batch_invariant(trained):
    out, _ = trained
    agent = make_agent(f"e2e:{out}", _task(), device="cpu")
    assert agent.sensors == ("bev", "speed", "command")
    agent.reset(seed=0)
    rng = np.random.default_rng(1)
    obs = _obs(rng, 7)
    one = np.stack([agent.act(o) for o in obs])
    assert one.shape == (7, 1) and np.all(np.isfinite(one))
    for k in (2, 3, 5, 7):
        batched = agent.act_batch(obs[:k], slots=list(range(k)))
        np.testing.assert_array_equal(batched, one[:k])  # bit-identical, any batch size
    assert agent.device == "cpu"


def test_agent_frame_history_matches_the_training_gather_with_a_stride(demos_dir):
    """What the agent stacks in closed loop is what training stacked: same frames, same
    order, the first frame repeated at an episode's start, ``stride`` steps apart."""
    d = load_demos(demos_dir)
    stack, stride = 3, 2
    gathered = d.frames[d.stacked_indices(stack, stride)]  # [N, stack, H, W, 3]
    agent = E2EAgent(_task())
    for ep in np.unique(d.episode)[:2]:
        rows = np.flatnonzero(d.episode == ep)
        agent.reset_slot(5)
        for r in rows:
            got = agent.stacked_frames(5, d.frames[r], stack, stride)
            want = np.concatenate(list(gathered[r]), axis=-1)
            assert np.array_equal(got, want), (ep, r)
    with pytest.raises(ValueError, match="stride"):
        PilotNetConfig(stack=2, stride=0)


def test_e2e_agent_errors_name_the_fix(trained, tmp_path):
    agent = E2EAgent(_task(), str(tmp_path / "none"))
    with pytest.raises(FileNotFoundError, match="drive train e2e"):
        agent.prepare()
    out, _ = trained
    with pytest.raises(ValueError, match=r"drives \['steering'\]"):
        E2EAgent(_task("highway"), str(out)).prepare()


def test_lockstep_episodes_equal_one_by_one_episodes(trained):
    out, _ = trained
    sc = get_scenario("lane-keep", duration_s=3.0)
    task = task_spec(sc, CAM)
    seeds = [3, 4, 5, 6, 7]
    agent = make_agent(f"e2e:{out}", task, device="cpu")
    env = DrivingEnv(sc, sensors=agent.sensors)
    alone = [run_episode(env, agent, s) for s in seeds]
    envs = [DrivingEnv(sc, sensors=agent.sensors) for _ in range(3)]
    together = run_episodes_lockstep(envs, make_agent(f"e2e:{out}", task, device="cpu"), seeds)
    assert [r.seed for r in together] == seeds
    for a, b in zip(alone, together, strict=True):
        assert a.status == b.status
        ta, tb = a.trace.arrays(), b.trace.arrays()
        for key in ta:
            if "latency" not in key:
                np.testing.assert_array_equal(ta[key], tb[key], err_msg=key)
        skip = {"latency_p50_ms", "latency_p99_ms", "latency_mean_ms", "latency_max_ms"}
        assert {k: v for k, v in a.metrics.items() if k not in skip} == {
            k: v for k, v in b.metrics.items() if k not in skip
        }


def test_lockstep_refuses_agents_without_slots_and_records_batch_faults():
    sc = get_scenario("highway", duration_s=1.0)
    task = task_spec(sc, CAM)
    expert = make_agent("expert", task)
    with pytest.raises(ValueError, match="cannot be stepped in lock-step"):
        run_episodes_lockstep([DrivingEnv(sc, sensors=expert.sensors)], expert, [0])
    idm = make_agent("idm", task)

    class Broken(type(idm)):
        def act_batch(self, obs, slots=None):
            raise RuntimeError("boom")

    broken = Broken(task)
    results = run_episodes_lockstep(
        [DrivingEnv(sc, sensors=idm.sensors) for _ in range(2)], broken, [0, 1, 2]
    )
    assert [r.status for r in results] == ["agent_error"] * 3
    assert "boom" in results[0].error


def test_cli_trains_e2e_and_runs_it_batched(demos_dir, tmp_path, capsys):
    from sim.cli import main

    ckpt = tmp_path / "ckpt"
    assert (
        main(
            [
                "train",
                "e2e",
                "--data",
                str(demos_dir),
                "--out",
                str(ckpt),
                "--model",
                "pilotnet-s",
                "--epochs",
                "1",
                "--quiet",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    assert "data loading alone" in capsys.readouterr().out
    run = tmp_path / "run"
    assert (
        main(
            [
                "run",
                "--agent",
                f"e2e:{ckpt}",
                "--scenario",
                "lane-keep",
                "--episodes",
                "3",
                "--batch",
                "2",
                "--duration",
                "2",
                "--video",
                "none",
                "--out",
                str(run),
                "--quiet",
            ]
        )
        == 0
    )
    lines = [json.loads(x) for x in (run / "episodes.jsonl").read_text().splitlines()]
    assert sorted(r["seed"] for r in lines) == [0, 1, 2] and all(
        r["device"] == "cpu" for r in lines
    )
    assert json.loads((run / "config.json").read_text())["batch"] == 2
    assert (
        main(["run", "--agent", "expert", "--batch", "2", "--out", str(tmp_path / "x"), "--quiet"])
        == 2
    )
    assert "cannot be run with --batch" in capsys.readouterr().err


def test_dagger_round_aggregates_relabels_and_scores(trained, demos_dir, tmp_path):
    from sim.pipelines.dagger import DaggerConfig, run_dagger

    out, _ = trained
    config = DaggerConfig(
        rounds=1, episodes=2, beta=0.5, eval_episodes=2, workers=1, duration_s=3.0
    )
    recipe = E2ETrainConfig(model="pilotnet-s", epochs=1, lr=1e-4, patience=1)
    result = run_dagger(out, tmp_path / "dagger", config, recipe, device="cpu", progress=False)
    rounds = result["rounds"]
    assert [r["round"] for r in rounds] == [0, 1]
    assert rounds[1]["frames"] == rounds[0]["frames"] + rounds[1]["new_frames"]
    assert (
        rounds[1]["closed_loop"]["episodes"] == 2
        and 0 <= rounds[1]["closed_loop"]["driving_score"] <= 1
    )
    import minari

    ds = minari.MinariDataset(tmp_path / "dagger" / "rounds" / "1" / "demos" / "data")
    drove = np.concatenate([ep.infos["learner_driving"] for ep in ds.iterate_episodes()])
    assert 0 < drove.mean() < 1  # beta 0.5: both drove
    _, meta = load_policy(tmp_path / "dagger")
    assert meta["dagger"]["rounds"][1]["round"] == 1
    # a rerun resumes: nothing left to do, same rounds
    again = run_dagger(out, tmp_path / "dagger", config, recipe, device="cpu", progress=False)
    assert [r["round"] for r in again["rounds"]] == [0, 1]
    assert len((tmp_path / "dagger" / "dagger.jsonl").read_text().splitlines()) == 2
    assert (
        len(load_demos([demos_dir, tmp_path / "dagger" / "rounds" / "1" / "demos"]).episodes) == 6
    )


def test_dagger_rounds_collect_on_every_variant_named_and_score_the_first(tmp_path):
    from sim.pipelines.dagger import DaggerConfig, run_dagger

    record_dataset(
        get_scenario("highway", duration_s=2.0), [41, 42], tmp_path / "demos", progress=False
    )
    recipe = E2ETrainConfig(model="pilotnet-s", epochs=1, batch_size=32, lr=1e-4, patience=1)
    train_e2e(tmp_path / "demos", tmp_path / "bc", recipe, device="cpu", progress=False)
    config = DaggerConfig(rounds=1, episodes=1, eval_episodes=1, workers=1, duration_s=2.0)
    result = run_dagger(
        tmp_path / "bc",
        tmp_path / "d",
        config,
        recipe,
        scenario="highway,stopped-car",
        device="cpu",
        progress=False,
        loader_workers=1,
    )
    rdir = tmp_path / "d" / "rounds" / "1"
    plain = load_demos(rdir / "demos-highway")
    hazard = load_demos(rdir / "demos-stopped-car")
    assert {e["scenario"] for e in hazard.episodes} == {"stopped-car"}
    assert hazard.scenario == plain.scenario == "highway"  # the policy a variant trains
    assert result["rounds"][1]["new_frames"] == len(plain) + len(hazard)
    evaluated = (rdir / "eval" / "episodes.jsonl").read_text().splitlines()
    assert [json.loads(x)["scenario"] for x in evaluated] == ["highway"]  # the first is scored
    _, meta = load_policy(rdir / "policy")
    assert meta["training"]["streamed"] and meta["training"]["loader_workers"] == 1
    assert len(meta["dataset"]["paths"]) == 3  # the demos and both variants' rounds
    for bad, why in (("merge", "trains one policy"), ("highway,highway", "once")):
        with pytest.raises(ValueError, match=why):
            run_dagger(tmp_path / "bc", tmp_path / "x", config, recipe, scenario=bad)
    assert not (tmp_path / "x").exists()


def test_bench_inference_reports_every_width_and_the_sb3_baseline():
    from sim.bench.inference import bench_inference, format_inference

    r = bench_inference(
        repeats=3, loop_episodes=2, loop_batches=(1, 2), loop_duration_s=0.5, devices=("cpu",)
    )
    rows = r["devices"]["cpu"]["models"]
    assert {
        "pilotnet-s fp32",
        "pilotnet-m fp32",
        "pilotnet-l fp32",
        "SB3 NatureCNN policy.predict",
    } <= set(rows)
    assert rows["pilotnet-s fp32"]["parameters"] < rows["pilotnet-l fp32"]["parameters"]
    loop = r["loop"]["by_batch"]
    assert set(loop) == {1, 2}
    # the zeroed head holds lane and speed: both K run the same full-length episodes
    assert loop[1]["statuses"] == loop[2]["statuses"] == ["ok", "ok"]
    assert loop[1]["decisions"] == loop[2]["decisions"] >= 2 * 7
    text = format_inference(r)
    assert "SB3 NatureCNN" in text and "decisions/s" in text


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (run: pytest -m gpu)")
def test_e2e_on_cuda_matches_the_cpu_and_is_batch_invariant(trained):
    out, _ = trained
    rng = np.random.default_rng(2)
    obs = _obs(rng, 40)
    cpu = make_agent(f"e2e:{out}", _task(), device="cpu").act_batch(obs)
    cuda = make_agent(f"e2e:{out}", _task(), device="cuda")
    one = np.stack([cuda.act(o) for o in obs])
    np.testing.assert_array_equal(cuda.act_batch(obs), one)  # chunks of 32: invariant
    np.testing.assert_allclose(one, cpu, atol=1e-3)
    half = E2EAgent(_task(), str(out), device="cuda", half=True)
    np.testing.assert_allclose(half.act_batch(obs), cpu, atol=5e-2)


@pytest.mark.parametrize("dtype", [torch.int8, torch.float16])
def test_weights_resaved_in_another_dtype_are_refused(tmp_path, dtype):
    from perception.checkpoint import WEIGHTS, write_weights

    out = tmp_path / "p"
    net = PilotNet(PilotNetConfig(width="s"))
    save_policy(net, out, {"camera": {}, "action_names": ["steering"], "steering_range_rad": 0.785})
    write_weights(out / WEIGHTS, {k: v.to(dtype) for k, v in net.state_dict().items()})
    name = str(dtype).removeprefix("torch.")
    with pytest.raises(
        CheckpointError, match=rf"model.safetensors: .*dtype.*expected float32, found {name}"
    ):
        load_policy(out)
    with pytest.raises(CheckpointError, match=rf"found {name}"):
        E2EAgent(_task(), str(out)).prepare()


def test_train_e2e_checks_its_out_folder_and_options_before_loading_data(tmp_path, capsys):
    """``--out EXISTING_FILE`` failed with an internal error after the whole training; the out
    path and the options that could not take effect are refused before the data is read."""
    from sim.cli import main

    a_file = tmp_path / "f"
    a_file.write_text("x")
    nodata = str(tmp_path / "no-demos")  # never read: each refusal comes first
    for out in (a_file, a_file / "p"):
        assert main(["train", "e2e", "--data", nodata, "--out", str(out), "--quiet"]) == 2
        err = capsys.readouterr().err
        assert f"{a_file} is a file" in err and len(err.strip().splitlines()) == 1
    done = tmp_path / "done"
    save_policy(PilotNet(PilotNetConfig(width="s")), done, {"camera": {}})
    assert main(["train", "e2e", "--data", nodata, "--out", str(done), "--quiet"]) == 2
    assert "e2e.json already exists" in capsys.readouterr().err
    for extra, word in (
        (["--cameras", "cam_rear"], "--cameras"),
        (["--no-augment", "--view-prob", "0.5"], "--view-prob"),
    ):
        out = tmp_path / word.strip("-")
        assert main(["train", "e2e", "--data", nodata, "--out", str(out), *extra]) == 2
        assert word in capsys.readouterr().err and not out.exists()


def _bev_checkpoint(out):
    save_policy(
        PilotNet(PilotNetConfig(width="s")),
        out,
        {"camera": CAM.to_dict(), "action_names": ["steering"], "steering_range_rad": 0.785},
    )
    return json.loads((out / "e2e.json").read_text())


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        (lambda m: m.pop("steering_range_rad"), "missing key 'steering_range_rad'"),
        (lambda m: m.update(steering_range_rad="wide"), "'steering_range_rad' must be a number"),
        (lambda m: m.update(action_names="steering"), "'action_names' must be a list"),
        (lambda m: m.update(action_names=["steering", "x"]), "2 action names for 1 output"),
        (lambda m: m.update(camera=[1, 2]), "'camera' must be an object"),
        (lambda m: m["camera"].pop("width_px"), "'camera'.*width_px"),
        (lambda m: m.update(config="pilotnet"), "'config' must be an object"),
        (lambda m: m["config"].update(cameras="cam_front"), "'cameras' in 'config' must be a"),
    ],
)
def test_a_damaged_checkpoint_json_is_refused_with_its_path_and_reason(tmp_path, edit, reason):
    out = tmp_path / "p"
    meta = _bev_checkpoint(out)
    edit(meta)
    (out / "e2e.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match=rf"{out / 'e2e.json'}: .*{reason}"):
        load_policy(out)


def test_speed_dropout_zeroes_the_speed_input_of_a_share_of_training_samples(demos_dir):
    """The speed-shortcut counter-measure: on a ``speed_dropout`` share of training samples
    the network is handed speed 0; validation batches keep the true speed; 0 changes no
    draw of the other augmentations."""
    from agents.e2e.train import BatchMaker

    demos = load_demos(demos_dir)
    config = PilotNetConfig(width="s", image_hw=demos.frames.shape[1:3], n_actions=2)
    idx = np.arange(min(400, len(demos)))
    true_speed = aux_inputs(demos.speed[idx], demos.command[idx], config)[:, 0]
    drop = BatchMaker(demos, config, E2ETrainConfig(speed_dropout=0.5), np.pi / 4)
    _, aux, _ = drop.batch(idx, augment=True)
    zeroed = (aux[:, 0] == 0) & (true_speed != 0)
    assert 0.35 < zeroed.float().mean() < 0.65
    assert torch.equal(aux[~zeroed, 0], true_speed[~zeroed])
    _, aux_val, _ = drop.batch(idx, augment=False)
    assert torch.equal(aux_val[:, 0], true_speed)
    plain = BatchMaker(demos, config, E2ETrainConfig(), np.pi / 4).batch(idx, augment=True)
    fresh = BatchMaker(demos, config, E2ETrainConfig(speed_dropout=0.5), np.pi / 4)
    dropped = fresh.batch(idx, augment=True)  # the same frames and labels, speed aside
    assert torch.equal(plain[0], dropped[0]) and torch.equal(plain[2], dropped[2])
    with pytest.raises(ValueError, match="--no-augment"):
        E2ETrainConfig(speed_dropout=0.5, augment=False)


def test_keyframe_weights_favour_the_moments_the_expert_changes_what_it_does():
    from agents.e2e.train import _loss, keyframe_weights

    labels = np.array([[0.0, 0.0], [0.0, 0.0], [0.5, 0.0], [0.5, 0.0], [0.0, 0.2], [0.0, 0.2]])
    episode = np.array([0, 0, 0, 0, 1, 1])  # the jump at index 4 starts an episode: no change
    w = keyframe_weights(labels, episode, strength=2.0)
    assert w.mean() == pytest.approx(1.0) and w.dtype == np.float32
    assert w[2] == w.max() and np.allclose(np.delete(w, 2), w[0])  # only index 2 changed
    assert w[2] / w[0] == pytest.approx(1 + 2.0 * 0.5 / (0.5 / 6))
    assert np.allclose(keyframe_weights(labels, episode, 0.0), 1.0)
    pred, target = torch.zeros(3, 2), torch.tensor([[1.0, 1.0], [0.0, 0.0], [0.0, 0.0]])
    assert _loss(pred, target, "l1") == pytest.approx(1 / 3)
    weighted = _loss(pred, target, "l1", torch.tensor([3.0, 0.0, 0.0]))
    assert weighted == pytest.approx(1.0)  # the first sample counts three times


def test_the_speed_head_learns_to_read_the_speed_from_the_frames_alone():
    """CILRS's speed branch sees the image features only: frames whose brightness encodes a
    speed teach it that speed, while the speed *input* carries nothing (zeros)."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    speed = rng.uniform(0.0, 3.0, 16).astype(np.float32)  # in the input's scale (m/s / 10)
    frames = torch.from_numpy(
        np.broadcast_to((speed * 80)[:, None, None, None], (16, 64, 64, 3)).astype(np.uint8)
    )
    net = PilotNet(PilotNetConfig(width="s", image_hw=(64, 64), speed_head=True))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    target = torch.from_numpy(speed)
    for _ in range(300):
        _, heads = net.forward_heads(frames, torch.zeros(16, 1))
        loss = (heads["speed"] - target).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.1
    plain = PilotNet(PilotNetConfig(width="s", image_hw=(64, 64)))
    assert plain.forward_heads(frames, torch.zeros(16, 1))[1] == {}
    assert net(frames, torch.zeros(16, 1)).shape == (16, 1)  # driving: the actions only


def test_training_with_a_speed_head_saves_the_branch_and_refuses_an_init_without_one(
    demos_dir, trained, tmp_path
):
    recipe = E2ETrainConfig(model="pilotnet-s", epochs=1, batch_size=32, speed_head=0.05)
    out = tmp_path / "speed"
    train_e2e(demos_dir, out, recipe, device="cpu", progress=False)
    model, meta = load_policy(out)
    assert model.config.speed_head and model.speed_branch is not None
    assert meta["training"]["speed_head"] == 0.05
    plain, _ = trained
    with pytest.raises(ValueError, match="no speed branch"):
        train_e2e(demos_dir, tmp_path / "x", recipe, device="cpu", init=plain, progress=False)
    with pytest.raises(ValueError, match="speed_head must be in"):
        E2ETrainConfig(speed_head=-1)
