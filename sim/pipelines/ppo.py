"""``drive train ppo``: the reinforcement-learning baseline (Stable-Baselines3 PPO, Schulman et al.
2017).

What people usually reach for to drive highway-env from pixels, set up so that it can be
compared with the others on equal terms:

* the same observation as the ``e2e`` agent (``camera`` + ``speed``, + ``command`` where
  routes turn) and the same network family (:mod:`agents.rl.policy`): PilotNet is the actor,
  a second copy of its convolutions feeds the critic;
* the reward is :func:`sim.pipelines.rl.shaped_reward` (progress, lane centring, lane keeping,
  collision and off-road penalties, comfort);
* ``--init e2e:RUN`` starts the actor from a behaviour-cloned network (BC -> PPO); the critic
  then learns alone for ``critic_warmup`` environment steps (the actor frozen) so that its
  first, random value estimates do not pull a good policy apart;
* ``K`` environments in ``SubprocVecEnv`` processes, SB3's progress bar, TensorBoard logs
  (``OUT/tensorboard``, reward terms included), and every ``eval_every`` environment steps a
  closed-loop evaluation with the project's harness and metrics on seeds held out from the
  report's (``eval_seed_start``..): ``OUT/progress.jsonl``, one line per evaluation;
* the checkpoint (:mod:`agents.rl.agent`) is weights + JSON, written atomically at every
  evaluation (the final weights in ``OUT``; the best-scoring evaluation's in ``OUT/best``,
  selected on the evaluation seeds); an interrupted run continues with ``--resume`` from the last
  one (the optimiser's moments restart; the policy, log-std and critic do not);
* the training episodes' seeds are drawn from 1,000,000 up, never the report's seeds.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

from agents.e2e.agent import policy_experience
from agents.e2e.checkpoint import ARCHITECTURE, check_folder_path, load_policy
from agents.e2e.model import PilotNet, PilotNetConfig, count_parameters, parse_model
from agents.rl.agent import META, POLICY
from agents.rl.policy import (
    load_pilotnet_into_policy,
    load_policy_state,
    policy_kwargs,
    policy_state,
    policy_to_pilotnet,
)
from perception.checkpoint import (
    CheckpointError,
    resolve_device,
    training_complete,
    write_checkpoint,
    write_weights,
)
from sim.geometry.bev import BevCamera
from sim.harness.io import DIR_MODE, append_jsonl, read_jsonl, write_jsonl
from sim.harness.run import run_agent
from sim.pipelines.dagger import closed_loop_summary
from sim.pipelines.preflight import refuse_faults
from sim.pipelines.rl import FAULTS_REFUSED, RewardConfig, RLEnv, rl_sensors
from sim.world.scenarios import Scenario, get_scenario

PROGRESS = "progress.jsonl"
TRAIN_SEED_MIN = 1_000_000
"""Training episodes draw their seeds from here up: never one of the report's seeds."""


@dataclass(frozen=True)
class PPOConfig:
    """The PPO recipe (saved in ``ppo.json``); SB3's names where it has them."""

    steps: int = 200_000
    """Environment steps to train for (summed over the K environments)."""
    envs: int = 4
    """Environments stepped in parallel (K)."""
    vec: str = "subproc"
    """``subproc``: one process per environment (SubprocVecEnv); ``dummy``: all in this one."""
    model: str = "pilotnet-s"
    """PilotNet width without ``--init`` (with it, the init's architecture). The small width by
    default: RL takes ~8 forward/backward passes per environment step, where BC takes one per
    frame."""
    n_steps: int = 256
    """Steps per environment per rollout (a rollout is n_steps x envs transitions)."""
    batch_size: int = 64
    """Minibatch (SB3's default). Larger ones are slower on the CPU: a 256-frame float32
    minibatch is 50 MB, allocated afresh (mmap + page faults) for every gradient step."""
    n_epochs: int = 4
    lr: float = 3e-4
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_range: float = 0.2
    ent_coef: float = 0.0
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    log_std_init: float = -1.6
    """Initial log std of the Gaussian policy (normalised actions): -1.6 = 0.2, i.e. about 9 deg
    of steering noise; one value for every arm of a comparison."""
    critic_warmup: int = 0
    """Environment steps at the start during which only the critic learns (BC -> PPO)."""
    eval_every: int = 20_000
    """Environment steps between closed-loop evaluations (and checkpoints)."""
    eval_episodes: int = 5
    eval_seed_start: int = 10_000
    seed: int = 0
    fast_physics: bool = True
    budget_s: float = 0.0
    """Stop after this many seconds of training (0 = none); the steps done are recorded."""
    threads: int = 0
    """torch CPU threads (0 = torch's default)."""
    duration_s: float | None = None
    """Episode time limit override [s] (None: the scenario's); for quick runs and tests."""

    def __post_init__(self) -> None:
        parse_model(self.model)
        if self.vec not in ("subproc", "dummy"):
            raise ValueError(f"unknown vec {self.vec!r}; known: subproc, dummy")
        for k in ("steps", "envs", "n_steps", "batch_size", "n_epochs", "eval_every"):
            if getattr(self, k) < 1:
                raise ValueError(f"{k} must be >= 1, got {getattr(self, k)}")
        if self.eval_episodes < 0 or self.critic_warmup < 0:
            raise ValueError("eval_episodes and critic_warmup must be >= 0")


def _scenario(name: str | Scenario, config: PPOConfig) -> Scenario:
    sc = get_scenario(name) if isinstance(name, str) else name
    return sc.with_overrides(duration_s=config.duration_s) if config.duration_s else sc


class _SeededRLEnv(RLEnv):
    """``RLEnv`` whose unseeded resets draw seeds >= TRAIN_SEED_MIN from a stream seeded by the
    first seeded reset (SB3 seeds each environment once, ``seed + rank``)."""

    _seeds: np.random.Generator | None = None

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self._seeds = np.random.default_rng([int(seed), 7919])
        if self._seeds is None:
            self._seeds = np.random.default_rng(7919)
        return super().reset(
            seed=int(self._seeds.integers(TRAIN_SEED_MIN, 2**31 - 1)), options=options
        )


def _make_env(scenario: Scenario, camera: dict, reward: dict, fast: bool, sensors: tuple[str, ...]):
    def make():
        return Monitor(
            _SeededRLEnv(
                scenario,
                camera=camera,
                reward=RewardConfig(**reward),
                fast_physics=fast,
                sensors=sensors,
            )
        )

    return make


def build_ppo(
    scenario: Scenario,
    config: PPOConfig,
    *,
    camera: BevCamera | None = None,
    reward: RewardConfig | None = None,
    init_net=None,
    device: str = "auto",
    tensorboard: Path | None = None,
):
    """The SB3 PPO model and its vectorised environments (the caller closes ``model.env``)."""
    reward = reward or RewardConfig()

    camera = camera or BevCamera()
    sensors = rl_sensors(scenario)
    if init_net is not None:
        net_config = init_net.config
    else:
        net_config = PilotNetConfig(
            width=parse_model(config.model),
            image_hw=(camera.height_px, camera.width_px),
            n_actions=len(scenario.action_names),
            use_command="command" in sensors,
        )
    if config.threads:
        torch.set_num_threads(config.threads)
    fns = [
        _make_env(scenario, camera.to_dict(), asdict(reward), config.fast_physics, sensors)
        for _ in range(config.envs)
    ]
    venv = SubprocVecEnv(fns) if config.vec == "subproc" and config.envs > 1 else DummyVecEnv(fns)
    dev = resolve_device(device)
    model = PPO(
        "MultiInputPolicy",
        venv,
        learning_rate=config.lr,
        n_steps=config.n_steps,
        batch_size=config.batch_size,
        n_epochs=config.n_epochs,
        gamma=config.gamma,
        gae_lambda=config.gae_lambda,
        clip_range=config.clip_range,
        ent_coef=config.ent_coef,
        vf_coef=config.vf_coef,
        max_grad_norm=config.max_grad_norm,
        policy_kwargs=policy_kwargs(net_config, config.log_std_init),
        tensorboard_log=str(tensorboard) if tensorboard else None,
        seed=config.seed,
        device=dev,
        verbose=0,
    )
    if init_net is not None:
        load_pilotnet_into_policy(model.policy, init_net)
    return model


def check_init(net, meta: dict, scenario: Scenario, camera: BevCamera, path: str) -> None:
    """A policy that can start PPO here: same actions, camera, inputs; one frame."""
    if tuple(meta["action_names"]) != tuple(scenario.action_names):
        raise ValueError(
            f"--init {path} drives {meta['action_names']}, {scenario.name} needs "
            f"{list(scenario.action_names)}"
        )
    if net.config.stack != 1:
        raise ValueError(
            f"--init {path} stacks {net.config.stack} frames; PPO here takes single-frame "
            "networks (train the e2e policy with --stack 1)"
        )
    if net.config.image_hw != (camera.height_px, camera.width_px):
        raise ValueError(
            f"--init {path} takes {net.config.image_hw} frames, the camera gives "
            f"{(camera.height_px, camera.width_px)}"
        )
    if net.config.use_command != ("command" in rl_sensors(scenario)):
        raise ValueError(
            f"--init {path} {'uses' if net.config.use_command else 'lacks'} the command input; "
            f"{scenario.name} {'needs' if 'command' in rl_sensors(scenario) else 'has'} none"
        )


def load_init(spec: str):
    """``e2e:RUN``, ``ppo:RUN`` or a plain ``RUN`` (e2e) -> (PilotNet, its JSON, path)."""

    kind, sep, path = spec.partition(":")
    if not sep:
        kind, path = "e2e", spec
    if kind not in ("e2e", "ppo") or not path:
        raise ValueError(f"--init {spec!r}: give e2e:RUN (a behaviour-cloned network) or ppo:RUN")
    net, meta = load_policy(
        path,
        "cpu",
        META if kind == "ppo" else "e2e.json",
        "PPO policy" if kind == "ppo" else "behaviour-cloned (e2e) policy",
    )
    return net, meta, f"{kind}:{path}"


def train_ppo(
    scenario: str | None,
    out: str | Path,
    config: PPOConfig = PPOConfig(),
    *,
    init: str | None = None,
    reward: RewardConfig | None = None,
    camera: BevCamera | None = None,
    device: str = "auto",
    resume: bool = False,
    progress: bool = True,
    extra_meta: dict | None = None,
) -> dict:
    """Train (or, with ``resume``, continue) a PPO policy; the checkpoint goes to ``out``.

    Refused before ``out`` is created: a file in ``out``'s place, a finished run there (an
    interrupted one needs ``resume``), a scenario with faults (:data:`FAULTS_REFUSED`), a
    device this machine lacks."""

    out = check_folder_path(out)
    camera = camera or BevCamera()
    reward = reward or RewardConfig()
    init_net = init_meta = None
    if init:
        init_net, init_meta, init = load_init(init)
    name = scenario or (init_meta or {}).get("scenario")
    if not name:
        raise ValueError(
            "drive train ppo needs --scenario (or an --init checkpoint that names one)"
        )
    sc = _scenario(name, config)
    refuse_faults(sc, FAULTS_REFUSED)
    if init_net is not None:
        check_init(init_net, init_meta, sc, camera, init)
    if training_complete(out, META):
        raise FileExistsError(
            f"{out / META} already exists (training finished); choose a new --out folder"
        )
    done_steps, state = 0, None
    if (out / META).exists() or (out / POLICY).exists():
        if not resume:
            raise FileExistsError(
                f"{out} holds an interrupted PPO run; pass --resume to continue it, "
                "or choose a new --out folder"
            )
        try:
            old = json.loads((out / META).read_text())
            old["ppo"]["config"], old["config"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise CheckpointError(
                f"{out / META}: not a PPO run's JSON ({type(e).__name__}: {e})"
            ) from None
        free = ("steps", "budget_s")  # a resumed run may train longer, or within another budget
        if {k: v for k, v in old["ppo"]["config"].items() if k not in free} != {
            k: v for k, v in asdict(config).items() if k not in free
        }:
            raise ValueError(
                f"--resume: this run's recipe differs from {out / META}; resume with the same "
                "arguments, or choose a new --out folder"
            )
        try:
            state = load_file(str(out / POLICY))
        except Exception as e:  # noqa: BLE001 - safetensors' errors for a damaged file
            raise CheckpointError(
                f"{out / POLICY}: cannot be read ({type(e).__name__}: {e})"
            ) from None
        done_steps = int(old["ppo"]["timesteps"])
    elif resume:
        raise ValueError(f"--resume: {out} holds no PPO run to continue")
    resolve_device(device)  # an unavailable --device is refused before out exists
    out.mkdir(parents=True, exist_ok=True)
    if (
        state is not None
    ):  # the architecture the run was started with (its weights come from the state)
        init_net = PilotNet(PilotNetConfig.from_dict(old["config"]))
    model = build_ppo(
        sc,
        config,
        camera=camera,
        reward=reward,
        init_net=init_net,
        device=device,
        tensorboard=out / "tensorboard",
    )
    history = (
        [r for r in read_jsonl(out / PROGRESS) if r["timesteps"] <= done_steps]
        if done_steps
        else []
    )
    if state is not None:
        load_policy_state(model.policy, state, str(out / POLICY))
        model.num_timesteps = done_steps
        write_jsonl(out / PROGRESS, history)
    elif (out / PROGRESS).exists():
        (out / PROGRESS).unlink()
    base_meta = {
        "model": init_net.config.model_name if init_net is not None else config.model,
        "camera": camera.to_dict(),
        "action_names": list(sc.action_names),
        "steering_range_rad": math.pi / 4,
        "scenario": sc.name,
        "sensors": list(rl_sensors(sc)),
        **(extra_meta or {}),
    }
    init_info = None
    if state is not None:
        init_info = old["ppo"].get("init")
    elif init_meta is not None:
        init_info = {"path": init, **policy_experience(init_meta)}
    monitor = _Monitor(out, sc, config, reward, base_meta, init_info, history, progress)
    started = time.time()
    try:
        torch.manual_seed(config.seed)
        model.learn(
            total_timesteps=config.steps - done_steps,
            callback=monitor,
            progress_bar=progress,
            reset_num_timesteps=state is None,
            tb_log_name="ppo",
        )
        monitor.checkpoint(final=True)
    finally:
        model.env.close()
    return {
        "out": str(out),
        "scenario": sc.name,
        "timesteps": int(model.num_timesteps),
        "seconds": time.time() - started,
        "history": monitor.history,
        "stopped": monitor.stopped,
        "env_steps_per_s": (model.num_timesteps - done_steps) / max(time.time() - started, 1e-9),
        "init": init_info,
    }


class _Monitor(BaseCallback):
    """Critic warm-up, reward-term logging, periodic checkpoint + closed-loop evaluation, budget."""

    def __init__(
        self,
        out: Path,
        scenario: Scenario,
        config: PPOConfig,
        reward: RewardConfig,
        base_meta: dict,
        init_info: dict | None,
        history: list[dict],
        progress: bool,
    ) -> None:
        super().__init__(verbose=0)
        self.out, self.scenario, self.config, self.reward, self.base_meta = (
            out,
            scenario,
            config,
            reward,
            base_meta,
        )
        self.init_info, self.history, self.show = init_info, history, progress
        self.terms: dict[str, list[float]] = {}
        self.started = time.time()
        self.stopped = "steps"
        self.next_eval = 0
        self.frozen: bool | None = None
        self.rollout_start = 0

    def _on_training_start(self) -> None:
        every = self.config.eval_every
        self.next_eval = (self.num_timesteps // every + 1) * every
        self._freeze(self.num_timesteps < self.config.critic_warmup)
        if self.num_timesteps == 0 and not self.history:
            self.checkpoint()  # step 0: the starting policy's score (BC -> PPO: the BC network's)

    def _actor_parameters(self):
        p = self.model.policy
        yield from p.pi_features_extractor.parameters()
        yield from p.mlp_extractor.policy_net.parameters()
        yield from p.action_net.parameters()
        yield p.log_std

    def _freeze(self, frozen: bool) -> None:
        if frozen != self.frozen:
            for q in self._actor_parameters():
                q.requires_grad_(not frozen)
            self.frozen = frozen

    def _on_rollout_start(self) -> None:
        self.rollout_start = self.num_timesteps

    def _on_rollout_end(
        self,
    ) -> None:  # before each update: critic only on rollouts begun in the warm-up
        self._freeze(self.rollout_start < self.config.critic_warmup)
        for k, v in self.terms.items():
            self.logger.record(f"reward/{k}", float(np.mean(v)))
        self.terms = {}

    def _on_step(self) -> bool:
        for info in self.locals.get("infos", ()):
            for k, v in (info.get("reward_terms") or {}).items():
                self.terms.setdefault(k, []).append(v)
        if self.num_timesteps >= self.next_eval:
            self.checkpoint()
            self.next_eval += self.config.eval_every
        if self.config.budget_s and time.time() - self.started > self.config.budget_s:
            self.stopped = "budget"
            return False
        return True

    def checkpoint(self, final: bool = False) -> None:
        """Save the policy (weights + JSON) and score it in closed loop."""
        if final and self.history and self.history[-1]["timesteps"] == self.num_timesteps:
            self._save(complete=True)  # the last evaluation was at this very step
            return
        self._save(complete=False)
        row = {
            "timesteps": int(self.num_timesteps),
            "seconds": time.time() - self.started,
            "closed_loop": self._evaluate(),
            "episode_reward_mean": _mean([e["r"] for e in self.model.ep_info_buffer]),
            "episode_length_mean": _mean([e["l"] for e in self.model.ep_info_buffer]),
        }
        self.history.append(row)

        append_jsonl(self.out / PROGRESS, row)
        cl = row["closed_loop"]
        for k in (
            "driving_score",
            "route_completion",
            "collision_rate",
            "offroad_rate",
            "autonomy_pct",
        ):
            if k in cl:
                self.logger.record(f"eval/{k}", cl[k])
        if self.show and cl.get("episodes"):
            print(
                f"\n{row['timesteps']} steps ({row['seconds'] / 60:.1f} min): closed-loop score "
                f"{cl['driving_score']:.3f}, route {cl['route_completion']:.2f}, off-road "
                f"{cl['offroad_rate']:.2f}, collisions {cl['collision_rate']:.2f}",
                flush=True,
            )
        self._save(complete=final)
        earlier = [
            h["closed_loop"]["driving_score"]
            for h in self.history[:-1]
            if h["closed_loop"].get("episodes")
        ]
        if cl.get("episodes") and (not earlier or cl["driving_score"] > max(earlier)):
            self._keep_best(row)

    def _keep_best(self, row: dict) -> None:
        """Copy the checkpoint just scored to ``OUT/best`` (``ppo:OUT/best``): the best closed-loop
        score so far on the evaluation seeds, which are never the report's - model selection on a
        validation set, as SB3's EvalCallback does.  Swapped in whole (temp folder + rename)."""

        tmp = Path(tempfile.mkdtemp(prefix=".best.", dir=self.out))
        try:
            os.chmod(tmp, DIR_MODE)
            shutil.copy2(self.out / "model.safetensors", tmp / "model.safetensors")
            meta = json.loads((self.out / META).read_text())
            meta["selected"] = {
                "timesteps": row["timesteps"],
                "driving_score": row["closed_loop"]["driving_score"],
                "eval_seeds": [
                    self.config.eval_seed_start,
                    self.config.eval_seed_start + self.config.eval_episodes - 1,
                ],
            }
            (tmp / META).write_text(json.dumps(meta, indent=2, default=float))
            old = self.out / "best"
            if old.exists():
                stale = Path(tempfile.mkdtemp(prefix=".best-old.", dir=self.out))
                os.replace(old, stale / "best")
                os.replace(tmp, old)
                shutil.rmtree(stale)
            else:
                os.replace(tmp, old)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp)

    def _save(self, complete: bool) -> None:
        policy = self.model.policy
        write_weights(self.out / POLICY, policy_state(policy))
        net = policy_to_pilotnet(policy)
        meta = {
            **self.base_meta,
            "parameters": count_parameters(net),
            "ppo": {
                "config": asdict(self.config),
                "timesteps": int(self.num_timesteps),
                "init": self.init_info,
                "reward": asdict(self.reward),
                "history": self.history,
                "stopped": self.stopped,
                "log_std": policy.log_std.detach().cpu().tolist(),
                "critic_parameters": sum(q.numel() for q in policy.parameters())
                - count_parameters(net),
            },
            "training": {"complete": bool(complete)},
        }
        write_checkpoint(
            self.out,
            net.state_dict(),
            META,
            {"architecture": ARCHITECTURE, "config": net.config.to_dict(), **meta},
        )

    def _evaluate(self) -> dict:
        n = self.config.eval_episodes
        if n <= 0:
            return {"episodes": 0}
        folder = self.out / "evals" / str(int(self.num_timesteps))
        if folder.exists():
            shutil.rmtree(folder)
        records = run_agent(
            f"ppo:{self.out}",
            self.scenario,
            list(range(self.config.eval_seed_start, self.config.eval_seed_start + n)),
            folder,
            video=None,
            workers=1,
            progress=False,
            device="cpu",
        )
        return closed_loop_summary(records)


def _mean(values: list) -> float | None:
    return float(np.mean(values)) if values else None


def format_ppo(result: dict) -> str:
    lines = [
        (
            f"PPO on {result['scenario']} -> {result['out']} (ppo:{result['out']}): "
            f"{result['timesteps']} environment steps in {result['seconds'] / 60:.1f} min "
            f"({result['env_steps_per_s']:.0f} steps/s, stopped: {result['stopped']})"
        )
    ]
    if result.get("init"):
        i = result["init"]
        lines.append(f"started from {i['path']} ({i['demo_frames']} demo frames)")
    lines.append(" steps     min   score  route  off-road  collisions  autonomy %  episode reward")
    for row in result["history"]:
        cl = row["closed_loop"]
        if not cl.get("episodes"):
            continue
        rew = "-" if row.get("episode_reward_mean") is None else f"{row['episode_reward_mean']:.1f}"
        lines.append(
            f"{row['timesteps']:6d}  {row['seconds'] / 60:6.1f}  {cl['driving_score']:6.3f}  "
            f"{cl['route_completion']:5.2f}  {cl['offroad_rate']:8.2f}  "
            f"{cl['collision_rate']:10.2f}  {cl['autonomy_pct']:10.1f}  {rew:>14s}"
        )
    return "\n".join(lines)


# -- benchmark -------------------------------------------------------------------------------------
def bench_ppo(
    scenario: str = "highway",
    steps: int = 1024,
    repeats: int = 3,
    envs: int = 4,
    vec: str = "dummy",
    model: str = "pilotnet-s",
) -> dict:
    """PPO training throughput (environment steps/s) with the fast physics against stock, same run.

    One PPO model per physics, built once; then ``repeats`` rounds, alternating the two, each
    a ``model.learn`` of ``steps`` (one rollout of ``steps`` transitions + one update), timed
    whole and split into the rollout (stepping the environments + the policy's forward pass)
    and the update (the gradient steps).  Medians; the ratio is fast over stock.
    """

    class Clock(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.rollout_s = 0.0
            self._t = 0.0

        def _on_rollout_start(self) -> None:
            self._t = time.perf_counter()

        def _on_rollout_end(self) -> None:
            self.rollout_s = time.perf_counter() - self._t

        def _on_step(self) -> bool:
            return True

    sc = get_scenario(scenario)
    n_steps = max(1, steps // envs)
    arms = {}
    for kind in ("stock", "fast"):
        cfg = PPOConfig(
            steps=n_steps * envs,
            envs=envs,
            vec=vec,
            model=model,
            n_steps=n_steps,
            batch_size=min(PPOConfig.batch_size, n_steps * envs),
            fast_physics=kind == "fast",
            eval_episodes=0,
        )
        arms[kind] = build_ppo(sc, cfg, device="cpu")
    rows: dict[str, list[dict]] = {"stock": [], "fast": []}
    try:
        for _ in range(repeats):
            for kind in ("stock", "fast"):
                clock = Clock()
                t0 = time.perf_counter()
                arms[kind].learn(
                    total_timesteps=n_steps * envs, callback=clock, reset_num_timesteps=False
                )
                total = time.perf_counter() - t0
                rows[kind].append(
                    {
                        "seconds": total,
                        "rollout_s": clock.rollout_s,
                        "update_s": total - clock.rollout_s,
                    }
                )
    finally:
        for m in arms.values():
            m.env.close()
    n = n_steps * envs
    out = {
        "benchmark": "ppo",
        "scenario": sc.name,
        "steps": n,
        "repeats": repeats,
        "envs": envs,
        "vec": vec,
        "model": model,
        "runs": rows,
    }
    for kind, rs in rows.items():
        out[kind] = {
            "env_steps_per_s": float(np.median([n / r["seconds"] for r in rs])),
            "rollout_steps_per_s": float(np.median([n / r["rollout_s"] for r in rs])),
            "update_s": float(np.median([r["update_s"] for r in rs])),
        }
    out["speedup"] = out["fast"]["env_steps_per_s"] / out["stock"]["env_steps_per_s"]
    out["rollout_speedup"] = (
        out["fast"]["rollout_steps_per_s"] / out["stock"]["rollout_steps_per_s"]
    )
    return out


def format_bench_ppo(r: dict) -> str:
    lines = [
        (
            f"PPO training on {r['scenario']}: {r['model']}, {r['envs']} envs ({r['vec']}), median "
            f"of {r['repeats']} rounds of {r['steps']} environment steps (one rollout + one update "
            f"of {PPOConfig.n_epochs} epochs), stock and fast physics alternating"
        ),
        f"{'physics':8s} {'training env st/s':>18s} {'rollout env st/s':>17s} {'update s':>9s}",
    ]
    for kind in ("stock", "fast"):
        k = r[kind]
        lines.append(
            f"{kind:8s} {k['env_steps_per_s']:18.1f} {k['rollout_steps_per_s']:17.1f} "
            f"{k['update_s']:9.2f}"
        )
    lines.append(
        f"fast / stock: training {r['speedup']:.2f}x, rollouts alone {r['rollout_speedup']:.2f}x"
    )
    return "\n".join(lines)
