"""``drive bench inference``: the end-to-end network's cost in the control loop.

Measured in one run, interleaved round-robin so machine noise hits every row alike:

* per PilotNet width (s, m, l) at the camera's size: the raw forward pass at batch 1
  (p50/p99), the ``e2e`` agent's whole ``act`` (numpy in, action out, batch padded to
  the batch-invariant size), and throughput in samples/s at batch 1/4/16/64;
* the baseline: Stable-Baselines3's ``NatureCNN`` policy (``ActorCriticCnnPolicy``)
  ``predict`` at the same input size, the way a PPO agent acts in highway-env;
* the lock-step loop: decisions/s of K ``highway`` environments stepped together with
  one batched ``e2e`` decision per step, against K = 1;
* on every device present (CPU always; CUDA with fp32 and with bf16 autocast +
  channels_last; the card is named).

Weights are random: the cost of a forward pass does not depend on their values. The
output layer is zeroed, so the loop's car holds its lane and speed and every episode runs
its full length (a random policy crashes within a second and the loop would time resets).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.policies import ActorCriticCnnPolicy

from agents import TaskSpec
from agents.e2e.agent import E2EAgent
from agents.e2e.checkpoint import save_policy
from agents.e2e.model import PilotNet, PilotNetConfig, aux_inputs, count_parameters
from sim.bench.simulator import time_ms
from sim.geometry.bev import BevCamera
from sim.harness.loop import run_episodes_lockstep
from sim.harness.run import task_spec
from sim.world.env import DrivingEnv
from sim.world.scenarios import get_scenario

WIDTHS = ("s", "m", "l")
BATCHES = (1, 4, 16, 64)


def _pct(xs: list[float]) -> dict[str, float]:
    a = np.asarray(xs)
    return {"p50_ms": float(np.percentile(a, 50)), "p99_ms": float(np.percentile(a, 99))}


def _sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def bench_inference(repeats: int = 200, loop_episodes: int = 8, loop_batches: tuple[int, ...] = (1, 2, 4, 8),
                    loop_duration_s: float = 8.0, devices: tuple[str, ...] | None = None) -> dict[str, Any]:
    cam = BevCamera()
    h, w = cam.height_px, cam.width_px
    if devices is None:
        devices = ("cpu", "cuda") if torch.cuda.is_available() else ("cpu",)
    rng = np.random.default_rng(0)
    result: dict[str, Any] = {"camera": [h, w], "threads": torch.get_num_threads(), "devices": {}}
    scenario = get_scenario("highway")
    task: TaskSpec = task_spec(scenario, cam)
    tmp = Path(tempfile.mkdtemp(prefix="drive-bench-"))
    for dev_name in devices:
        dev = torch.device(dev_name)
        variants = [("fp32", False)] + ([("bf16+channels_last", True)] if dev.type == "cuda" else [])
        dev_rows: dict[str, Any] = {"name": torch.cuda.get_device_name(0) if dev.type == "cuda" else "cpu",
                                    "models": {}}
        timers: dict[str, Any] = {}
        for width in WIDTHS:
            config = PilotNetConfig(width=width, image_hw=(h, w), n_actions=2)
            torch.manual_seed(0)
            model = PilotNet(config).eval()
            with torch.no_grad():  # action 0: hold lane and speed (same compute as any weights)
                model.head[-1].weight.zero_()
                model.head[-1].bias.zero_()
            ckpt = tmp / f"pilotnet-{width}"
            save_policy(model, ckpt, {"camera": cam.to_dict(), "action_names": list(task.action_names),
                                      "steering_range_rad": task.steering_range_rad, "scenario": "highway"})
            for tag, half in variants:
                m = PilotNet(config).to(dev).eval()
                m.load_state_dict(model.state_dict())
                if half:
                    m = m.to_channels_last()
                agent = E2EAgent(task, str(ckpt), device=dev_name, half=half)
                agent.prepare()
                key = f"pilotnet-{width} {tag}"
                frames = {b: torch.from_numpy(rng.integers(0, 256, (b, h, w, 3), dtype=np.uint8)).to(dev)
                          for b in BATCHES}
                auxs = {b: aux_inputs(np.full(b, 25.0), np.zeros(b), config).to(dev) for b in BATCHES}
                obs = {"bev": frames[1][0].cpu().numpy(), "speed": np.array([25.0], np.float32), "command": 0}

                def fwd(b, m=m, frames=frames, auxs=auxs, half=half, dev=dev):
                    with torch.inference_mode():
                        if half:
                            with torch.autocast("cuda", dtype=torch.bfloat16):
                                m(frames[b], auxs[b])
                        else:
                            m(frames[b], auxs[b])
                    _sync(dev)

                timers[key] = {"fwd": fwd, "act": (lambda agent=agent, obs=obs: agent.act(obs)),
                               "params": count_parameters(model)}
        # SB3 NatureCNN policy at the same input (channels-first uint8, as SB3 transposes images)
        try:
            policy = ActorCriticCnnPolicy(spaces.Box(0, 255, (3, h, w), np.uint8), spaces.Box(-1, 1, (2,), np.float32),
                                          lambda _: 3e-4).to(dev)
            policy.set_training_mode(False)
            sb3_obs = rng.integers(0, 256, (3, h, w), dtype=np.uint8)
            timers["SB3 NatureCNN policy.predict"] = {
                "act": lambda policy=policy, o=sb3_obs, dev=dev: (policy.predict(o, deterministic=True), _sync(dev)),
                "params": count_parameters(policy.features_extractor) + count_parameters(policy.action_net),
            }
        except ImportError:  # SB3 is an optional extra here
            dev_rows["sb3"] = "stable-baselines3 not installed (pip install stable-baselines3)"
        samples: dict[str, dict[str, list[float]]] = {k: {} for k in timers}
        for t in timers.values():  # warm up
            for _ in range(5):
                if "fwd" in t:
                    for b in BATCHES:
                        t["fwd"](b)
                t["act"]()
        for _ in range(repeats):
            for k, t in timers.items():
                if "fwd" in t:
                    for b in BATCHES:
                        samples[k].setdefault(f"fwd{b}", []).append(time_ms(lambda t=t, b=b: t["fwd"](b)))
                samples[k].setdefault("act", []).append(time_ms(t["act"]))
        for k, t in timers.items():
            row: dict[str, Any] = {"parameters": t["params"], "act": _pct(samples[k]["act"])}
            if "fwd" in t:
                row["forward_b1"] = _pct(samples[k]["fwd1"])
                row["throughput_sps"] = {b: float(b / (np.median(samples[k][f"fwd{b}"]) / 1e3)) for b in BATCHES}
            dev_rows["models"][k] = row
        result["devices"][dev_name] = dev_rows
    # the lock-step control loop on highway: decisions/s against K
    result["loop"] = _bench_loop(task, tmp / "pilotnet-m", scenario, loop_episodes, loop_batches, loop_duration_s)
    return result


def _bench_loop(task, ckpt: Path, scenario, episodes: int, batches: tuple[int, ...], duration_s: float) -> dict:
    sc = get_scenario(scenario.name, duration_s=duration_s)
    rows = {}
    for k in batches:
        agent = E2EAgent(task, str(ckpt), device="auto")
        agent.prepare()
        envs = [DrivingEnv(sc, sensors=agent.sensors) for _ in range(k)]
        t0 = time.perf_counter()
        results = run_episodes_lockstep(envs, agent, list(range(episodes)))
        wall = time.perf_counter() - t0
        decisions = sum(len(r.trace.actions) for r in results)
        calls = [r.trace.latency_ms for r in results]
        infer_ms = float(np.sum([np.sum(c) for c in calls])) / max(k, 1)  # each batch counted once per car
        rows[k] = {"decisions_per_s": decisions / wall, "wall_s": wall, "decisions": decisions,
                   "statuses": sorted(r.status for r in results),
                   "inference_share": min(1.0, infer_ms / 1e3 / wall), "device": agent.device}
        for env in envs:
            env.close()
    base = rows[batches[0]]["decisions_per_s"]
    for k in rows:
        rows[k]["speedup"] = rows[k]["decisions_per_s"] / base
    return {"scenario": sc.name, "episodes": episodes, "duration_s": duration_s, "by_batch": rows}


def format_inference(r: dict[str, Any]) -> str:
    out = [f"camera {r['camera'][0]}x{r['camera'][1]}, torch threads {r['threads']}"]
    for dev, d in r["devices"].items():
        out.append(f"\n{dev} ({d['name']})")
        head = (f"{'model':34s} {'params':>9s} {'fwd b1 p50':>10s} {'p99':>7s} {'act p50':>8s} {'p99':>7s} "
                + " ".join(f"{'b' + str(b) + ' /s':>8s}" for b in BATCHES))
        out += [head, "-" * len(head)]
        for k, row in d["models"].items():
            fwd = row.get("forward_b1")
            tp = row.get("throughput_sps")
            out.append(f"{k:34s} {row['parameters']:9,d} "
                       + (f"{fwd['p50_ms']:10.2f} {fwd['p99_ms']:7.2f} " if fwd else f"{'-':>10s} {'-':>7s} ")
                       + f"{row['act']['p50_ms']:8.2f} {row['act']['p99_ms']:7.2f} "
                       + (" ".join(f"{tp[b]:8.0f}" for b in BATCHES) if tp else ""))
        if "sb3" in d:
            out.append(d["sb3"])
    loop = r["loop"]
    out.append(f"\nlock-step loop, {loop['scenario']}, {loop['episodes']} episodes of {loop['duration_s']:g} s, "
               f"one act_batch per step:")
    out.append(f"{'K':>3s} {'decisions/s':>12s} {'vs K=1':>7s} {'inference share':>16s} device")
    for k, row in loop["by_batch"].items():
        out.append(f"{k:>3} {row['decisions_per_s']:12.0f} {row['speedup']:6.2f}x {row['inference_share']:16.0%} "
                   f"{row['device']}")
    return "\n".join(out)
