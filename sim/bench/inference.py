"""``drive bench inference``: the end-to-end network's cost in the control loop.

Measured in one run, interleaved round-robin so machine noise hits every row alike:

* per PilotNet width (s, m, l) at the camera's size: the raw forward pass at batch 1
  (p50/p99), the ``e2e`` agent's whole ``act`` (numpy in, action out, batch padded to
  the batch-invariant size), and throughput in samples/s at batch 1/4/16/64;
* the baseline: Stable-Baselines3's ``NatureCNN`` policy (``ActorCriticCnnPolicy``)
  ``predict`` at the same input size, the way a PPO agent acts in highway-env;
* the rig network, per width: PilotNet on every rig camera's 66x200 road crop
  (``cam_front`` + ``cam_rear``: 6 channels, both cameras through the shared encoder in
  one forward call) at batch 1 - the raw forward (p50/p99) and the ``e2e`` agent's whole
  ``act`` from the full 128x256 camera frames (crop + forward + action) - beside
  ``NatureCNN`` at the same input (channels-first ``uint8[6, 66, 200]``: its forward, and
  ``policy.predict`` from that already-cropped array) and the crop alone.  The target is
  batch-1 p50 and p99 <= :data:`RIG_TARGET_MS` on the CPU; the table says which rows meet it;
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
from agents.e2e.rig import RigInput
from sim.bench.simulator import time_ms
from sim.geometry.bev import BevCamera
from sim.harness.loop import run_episodes_lockstep
from sim.harness.run import task_spec
from sim.world.env import DrivingEnv
from sim.world.scenarios import get_scenario

WIDTHS = ("s", "m", "l")
BATCHES = (1, 4, 16, 64)
RIG_TARGET_MS = 3.0
"""The rig network's budget: batch-1 p50 and p99 [ms] on the CPU (the issue's target)."""
RIG = "rig"
"""Key of the rig rows in each device's result."""


def _pct(xs: list[float]) -> dict[str, float]:
    a = np.asarray(xs)
    return {"p50_ms": float(np.percentile(a, 50)), "p99_ms": float(np.percentile(a, 99))}


def _sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def bench_inference(
    repeats: int = 200,
    loop_episodes: int = 8,
    loop_batches: tuple[int, ...] = (1, 2, 4, 8),
    loop_duration_s: float = 8.0,
    devices: tuple[str, ...] | None = None,
    rig_cameras: tuple[str, ...] | None = None,
) -> dict[str, Any]:
    """Time every row (see the module docstring); ``rig_cameras``: the rig network's cameras
    (default: every camera of :func:`~sim.geometry.pinhole.default_rig`, in rig order)."""
    cam = BevCamera()
    h, w = cam.height_px, cam.width_px
    if devices is None:
        devices = ("cpu", "cuda") if torch.cuda.is_available() else ("cpu",)
    rng = np.random.default_rng(0)
    scenario = get_scenario("highway")
    task: TaskSpec = task_spec(scenario, cam)
    rig_input = RigInput.build(
        task.rig, tuple(rig_cameras) if rig_cameras is not None else task.rig.names
    )
    rh, rw = rig_input.input_hw
    rc = 3 * len(rig_input.cameras)
    result: dict[str, Any] = {
        "camera": [h, w],
        "threads": torch.get_num_threads(),
        "devices": {},
        RIG: {
            "cameras": list(rig_input.cameras),
            "input": [rh, rw, rc],
            "frames": {c: [task.rig[c].height_px, task.rig[c].width_px] for c in rig_input.cameras},
            "target_ms": RIG_TARGET_MS,
        },
    }
    tmp = Path(tempfile.mkdtemp(prefix="drive-bench-"))
    meta = {
        "camera": cam.to_dict(),
        "action_names": list(task.action_names),
        "steering_range_rad": task.steering_range_rad,
        "scenario": "highway",
    }
    for dev_name in devices:
        dev = torch.device(dev_name)
        variants = [("fp32", False)] + (
            [("bf16+channels_last", True)] if dev.type == "cuda" else []
        )
        dev_rows: dict[str, Any] = {
            "name": torch.cuda.get_device_name(0) if dev.type == "cuda" else "cpu",
            "models": {},
            RIG: {"models": {}},
        }
        # each timer: "act" (a call), optionally "fwd" (a call per batch size in "batches"),
        # "params", and "group": the bird's-eye table, the rig table, or the rig's crop alone
        timers: dict[str, Any] = {}
        bev_frames = {
            b: torch.from_numpy(rng.integers(0, 256, (b, h, w, 3), dtype=np.uint8)).to(dev)
            for b in BATCHES
        }
        rig_frames = {
            1: torch.from_numpy(rng.integers(0, 256, (1, rh, rw, rc), dtype=np.uint8)).to(dev)
        }
        rig_obs = {
            **{
                c: rng.integers(
                    0, 256, (task.rig[c].height_px, task.rig[c].width_px, 3), dtype=np.uint8
                )
                for c in rig_input.cameras
            },
            "speed": np.array([25.0], np.float32),
            "command": 0,
        }
        for width in WIDTHS:
            for group, config, frames in (
                ("bev", PilotNetConfig(width=width, image_hw=(h, w), n_actions=2), bev_frames),
                (
                    RIG,
                    PilotNetConfig(
                        width=width, image_hw=(rh, rw), n_actions=2, cameras=rig_input.cameras
                    ),
                    rig_frames,
                ),
            ):
                torch.manual_seed(0)
                model = PilotNet(config).eval()
                with torch.no_grad():  # action 0: hold lane and speed (same compute as any weights)
                    model.head[-1].weight.zero_()
                    model.head[-1].bias.zero_()
                ckpt = tmp / (f"pilotnet-{width}" if group == "bev" else f"pilotnet-{width}-rig")
                save_policy(
                    model, ckpt, {**meta, **({"rig": rig_input.to_dict()} if group == RIG else {})}
                )
                batches = tuple(frames)
                auxs = {
                    b: aux_inputs(np.full(b, 25.0), np.zeros(b), config).to(dev) for b in batches
                }
                obs = (
                    rig_obs
                    if group == RIG
                    else {
                        "bev": frames[1][0].cpu().numpy(),
                        "speed": np.array([25.0], np.float32),
                        "command": 0,
                    }
                )
                for tag, half in variants:
                    m = PilotNet(config).to(dev).eval()
                    m.load_state_dict(model.state_dict())
                    if half:
                        m = m.to_channels_last()
                    agent = E2EAgent(task, str(ckpt), device=dev_name, half=half)
                    agent.prepare()

                    def fwd(b, m=m, frames=frames, auxs=auxs, half=half, dev=dev):
                        with torch.inference_mode():
                            if half:
                                with torch.autocast("cuda", dtype=torch.bfloat16):
                                    m(frames[b], auxs[b])
                            else:
                                m(frames[b], auxs[b])
                        _sync(dev)

                    key = (
                        f"pilotnet-{width} {tag}"
                        if group == "bev"
                        else f"rig pilotnet-{width} {tag}"
                    )
                    timers[key] = {
                        "fwd": fwd,
                        "batches": batches,
                        "act": (lambda agent=agent, obs=obs: agent.act(obs)),
                        "params": count_parameters(model),
                        "group": group,
                    }
        timers["rig crop"] = {
            "act": lambda obs=rig_obs: rig_input.crop(obs),
            "params": 0,
            "group": "crop",
        }
        # SB3 NatureCNN policy at the same inputs (channels-first uint8, as SB3 transposes images)
        try:
            for group, shape, key in (
                ("bev", (3, h, w), "SB3 NatureCNN policy.predict"),
                (RIG, (rc, rh, rw), f"SB3 NatureCNN {rc}x{rh}x{rw}"),
            ):
                policy = ActorCriticCnnPolicy(
                    spaces.Box(0, 255, shape, np.uint8),
                    spaces.Box(-1, 1, (2,), np.float32),
                    lambda _: 3e-4,
                ).to(dev)
                policy.set_training_mode(False)
                sb3_obs = rng.integers(0, 256, shape, dtype=np.uint8)
                timers[key] = {
                    "act": lambda policy=policy, o=sb3_obs, dev=dev: (
                        policy.predict(o, deterministic=True),
                        _sync(dev),
                    ),
                    "params": count_parameters(policy.features_extractor)
                    + count_parameters(policy.action_net),
                    "group": group,
                }
                if (
                    group == RIG
                ):  # the raw forward: normalise, NatureCNN, actor head (as PilotNet's forward)
                    x = torch.from_numpy(sb3_obs[None]).to(dev)

                    def sb3_fwd(b, policy=policy, x=x, dev=dev):
                        with torch.inference_mode():
                            policy._predict(x, deterministic=True)
                        _sync(dev)

                    timers[key].update(fwd=sb3_fwd, batches=(1,))
        except ImportError:  # SB3 is an optional extra here
            dev_rows["sb3"] = "stable-baselines3 not installed (pip install stable-baselines3)"
        samples: dict[str, dict[str, list[float]]] = {k: {} for k in timers}
        for t in timers.values():  # warm up
            for _ in range(5):
                for b in t.get("batches", ()):
                    t["fwd"](b)
                t["act"]()
        for _ in range(repeats):  # round-robin: every row sees the same machine noise
            for k, t in timers.items():
                for b in t.get("batches", ()):
                    samples[k].setdefault(f"fwd{b}", []).append(
                        time_ms(lambda t=t, b=b: t["fwd"](b))
                    )
                samples[k].setdefault("act", []).append(time_ms(t["act"]))
        for k, t in timers.items():
            if t["group"] == "crop":
                dev_rows[RIG]["crop"] = _pct(samples[k]["act"])
                continue
            row: dict[str, Any] = {"parameters": t["params"], "act": _pct(samples[k]["act"])}
            if "fwd" in t:
                row["forward_b1"] = _pct(samples[k]["fwd1"])
                if len(t["batches"]) > 1:
                    row["throughput_sps"] = {
                        b: float(b / (np.median(samples[k][f"fwd{b}"]) / 1e3)) for b in t["batches"]
                    }
            (dev_rows["models"] if t["group"] == "bev" else dev_rows[RIG]["models"])[k] = row
        result["devices"][dev_name] = dev_rows
    # the lock-step control loop on highway: decisions/s against K
    result["loop"] = _bench_loop(
        task, tmp / "pilotnet-m", scenario, loop_episodes, loop_batches, loop_duration_s
    )
    return result


def _bench_loop(
    task, ckpt: Path, scenario, episodes: int, batches: tuple[int, ...], duration_s: float
) -> dict:
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
        infer_ms = float(np.sum([np.sum(c) for c in calls])) / max(
            k, 1
        )  # each batch counted once per car
        rows[k] = {
            "decisions_per_s": decisions / wall,
            "wall_s": wall,
            "decisions": decisions,
            "statuses": sorted(r.status for r in results),
            "inference_share": min(1.0, infer_ms / 1e3 / wall),
            "device": agent.device,
        }
        for env in envs:
            env.close()
    base = rows[batches[0]]["decisions_per_s"]
    for row in rows.values():
        row["speedup"] = row["decisions_per_s"] / base
    return {"scenario": sc.name, "episodes": episodes, "duration_s": duration_s, "by_batch": rows}


def format_inference(r: dict[str, Any]) -> str:
    out = [f"camera {r['camera'][0]}x{r['camera'][1]}, torch threads {r['threads']}"]
    for dev, d in r["devices"].items():
        out.append(f"\n{dev} ({d['name']})")
        head = (
            f"{'model':34s} {'params':>9s} {'fwd b1 p50':>10s} {'p99':>7s} {'act p50':>8s} "
            f"{'p99':>7s} " + " ".join(f"{'b' + str(b) + ' /s':>8s}" for b in BATCHES)
        )
        out += [head, "-" * len(head)]
        for k, row in d["models"].items():
            fwd = row.get("forward_b1")
            tp = row.get("throughput_sps")
            out.append(
                f"{k:34s} {row['parameters']:9,d} "
                + (
                    f"{fwd['p50_ms']:10.2f} {fwd['p99_ms']:7.2f} "
                    if fwd
                    else f"{'-':>10s} {'-':>7s} "
                )
                + f"{row['act']['p50_ms']:8.2f} {row['act']['p99_ms']:7.2f} "
                + (" ".join(f"{tp[b]:8.0f}" for b in BATCHES) if tp else "")
            )
        if "sb3" in d:
            out.append(d["sb3"])
        if RIG in d and RIG in r:
            out += _format_rig(r[RIG], dev, d[RIG])
    loop = r["loop"]
    out.append(
        f"\nlock-step loop, {loop['scenario']}, {loop['episodes']} episodes of "
        f"{loop['duration_s']:g} s, one act_batch per step:"
    )
    out.append(f"{'K':>3s} {'decisions/s':>12s} {'vs K=1':>7s} {'inference share':>16s} device")
    for k, row in loop["by_batch"].items():
        out.append(
            f"{k:>3} {row['decisions_per_s']:12.0f} {row['speedup']:6.2f}x "
            f"{row['inference_share']:16.0%} {row['device']}"
        )
    return "\n".join(out)


def _format_rig(spec: dict[str, Any], dev: str, d: dict[str, Any]) -> list[str]:
    """The rig network's table on one device, the target stated, and one line per width
    setting it beside NatureCNN at the same input."""
    cams, (ih, iw, ic) = spec["cameras"], spec["input"]
    n, target = len(cams), spec["target_ms"]
    frames = ", ".join(f"{c} {hw[0]}x{hw[1]}" for c, hw in spec["frames"].items())
    sb3_key = f"SB3 NatureCNN {ic}x{ih}x{iw}"
    on_cpu = dev == "cpu"
    out = [
        (
            f"\nrig network on {dev}: PilotNet on {' + '.join(cams)} ({n} camera{'s' * (n > 1)}), "
            f"each a {ih}x{iw} road crop through the shared encoder in one forward (uint8[1, {ih}, "
            f"{iw}, {ic}]), batch 1"
        ),
        (
            f"target: batch-1 p50 and p99 <= {target:g} ms on the CPU"
            + ("" if on_cpu else " (this table: not the CPU, shown for scale)")
        ),
        (
            "fwd = the network alone; act = the e2e agent's act from the full camera frames "
            f"({frames}): crop + forward + action;"
        ),
        (
            f"{sb3_key}: SB3 ActorCriticCnnPolicy at the same input (channels-first uint8[{ic}, "
            f"{ih}, {iw}]); its fwd = normalise + NatureCNN + actor head, its act = policy.predict "
            "from the already-cropped array"
        ),
    ]
    head = (
        f"{'model':34s} {'params':>9s} {'fwd b1 p50':>10s} {'p99':>7s} {'act p50':>8s} "
        f"{'p99':>7s}  {f'<= {target:g} ms (p50 & p99)':>22s}"
    )
    out += [head, "-" * len(head)]

    def meets(p: dict[str, float]) -> str:
        return "yes" if max(p["p50_ms"], p["p99_ms"]) <= target else "NO"

    def row_line(k: str, row: dict[str, Any], verdict: str) -> str:
        fwd, act = row["forward_b1"], row["act"]
        return (
            f"{k:34s} {row['parameters']:9,d} {fwd['p50_ms']:10.2f} {fwd['p99_ms']:7.2f} "
            f"{act['p50_ms']:8.2f} {act['p99_ms']:7.2f}  {verdict:>22s}"
        )

    for k, row in d["models"].items():
        if k != sb3_key:
            verdict = f"fwd {meets(row['forward_b1'])}, act {meets(row['act'])}" if on_cpu else "-"
            out.append(row_line(k, row, verdict))
    if "crop" in d:
        out.append(
            f"{'rig crop alone (in every act above)':34s} {'-':>9s} {'-':>10s} {'-':>7s} "
            f"{d['crop']['p50_ms']:8.2f} {d['crop']['p99_ms']:7.2f}"
        )
    sb3 = d["models"].get(sb3_key)
    if sb3 is not None:
        out.append(row_line(sb3_key, sb3, "(baseline)"))
    for k, row in d["models"].items():
        if k == sb3_key:
            continue
        name, _, tag = k.removeprefix("rig ").partition(" ")
        line = (
            f"rig PilotNet-{name.removeprefix('pilotnet-')} {tag}, {n} camera{'s' * (n > 1)}: "
            f"{row['forward_b1']['p50_ms']:.2f} ms"
        )
        if sb3 is not None:
            line += (
                f" vs NatureCNN at the same input ({ic}x{ih}x{iw}): "
                f"{sb3['forward_b1']['p50_ms']:.2f} ms"
            )
        line += f" (forward p50); act {row['act']['p50_ms']:.2f} ms"
        if sb3 is not None:
            line += f" vs predict {sb3['act']['p50_ms']:.2f} ms"
        out.append(line)
    return out
