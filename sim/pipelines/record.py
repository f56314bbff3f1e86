"""Recording driving demonstrations as Minari datasets (``drive record``, DAgger rounds).

Each step stores what the end-to-end network sees (``camera``, ``speed``, ``command``),
the action that was *executed* (Minari's ``actions``) and the expert's clean action at
that state (``infos/expert_action``, the training label).  The two differ when

* **noise is injected** (Codevilla et al. 2019): triangular steering impulses are added
  to the executed action for a chosen fraction of the time, so the data shows the car
  drifting off and the expert's recovery labels, while the label stays clean;
* **a learner drives** (DAgger, Ross et al. 2011): per step the expert's action is
  executed with probability ``beta``, the learner's otherwise; every visited state is
  labelled by the expert.

Layout (Minari 0.5 HDF5, ``jpeg_encoding=False`` so frames stay lossless)::
    DATASET/data/main_data.hdf5   episode_{i}/observations/{camera,speed,command}, actions,
                                  rewards (0: this project scores with metrics, not rewards),
                                  terminations, truncations,
                                  infos/{expert_action, learner_driving, noise}
    DATASET/data/metadata.json    Minari's metadata + "drive": scenario, camera, action names,
                                  recorder version, noise, beta, seeds, versions, git revision

Episode attributes: ``seed``, ``scenario``, ``recorder_version``, ``status``,
``driving_score`` and ``sha256``, the episode's content hash
(:func:`agents.e2e.demos.episode_digest` of the arrays written; the ``drive`` block's
``content_hash`` names the scheme), which loading checks.  ``observations`` have T+1
entries (the last is the final state), ``actions`` T; ``infos/expert_action[t]`` labels
``observations[t]``.  The dataset is built in a temp folder beside ``DATASET``
(``.DATASET.PID.XXXXXXXX.tmp``) and renamed into place when complete, so a crash never
leaves a half dataset under the final name; a temp folder that a killed recording (its PID
no longer running) left beside the same ``DATASET`` is removed by the next recording to it,
with a one-line note on stderr.

Interrupted (Ctrl-C): by default nothing is kept.  With ``keep_partial=True``
(``drive record``) the finished episodes are written as a smaller dataset, the same way
as a complete one, its ``drive`` block saying ``interrupted: true`` and
``episodes_requested``; :class:`RecordingInterrupted` (a ``KeyboardInterrupt``) then
carries its summary, or ``None`` when no episode had finished and nothing was kept.
``minari.MinariDataset("DATASET/data")`` opens it with Minari's own API;
:mod:`agents.e2e.demos` loads it for training and rejects damaged files with the path and
the reason.

A worker process that dies (killed, out of memory) never hangs a recording: its episode is
rerun once in a fresh process (same seed, same arrays), and a seed whose worker dies again
is lost; the recording then ends with :class:`RecordingIncomplete` naming the lost seeds,
after keeping the finished episodes as with Ctrl-C (``lost_seeds`` in the ``drive`` block),
or keeping nothing without ``keep_partial``.
"""

from __future__ import annotations

import contextlib
import functools
import multiprocessing as mp
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import minari
import numpy as np
from gymnasium import spaces
from minari.data_collector.episode_buffer import EpisodeBuffer
from minari.dataset.minari_storage import MinariStorage
from tqdm import tqdm

from agents import make_agent
from agents.e2e.demos import (
    CONTENT_HASH,
    DATA_DIR,
    DEMO_FORMAT,
    HASH_ATTR,
    LEAD_RANGE_M,
    RECORDED_SENSORS,
    RECORDER_VERSION,
    episode_digest,
    hashed_arrays,
)
from agents.e2e.rig import RigInput
from planning.vehicle import steering_for_curvature
from sim.geometry.bev import BevCamera
from sim.geometry.frames import corridor_ahead
from sim.harness.io import DIR_MODE
from sim.harness.loop import Episode, agent_view, check_sensors, gate_action
from sim.harness.metrics import episode_metrics
from sim.harness.parallel import LocalEpisodePool, fault_requested, ignore_sigint
from sim.harness.run import task_spec
from sim.harness.versions import git_revision, package_versions
from sim.pipelines.preflight import refuse_faults
from sim.world.env import SENSORS, DrivingEnv
from sim.world.scenarios import (
    ACCELERATION_RANGE_MPS2,
    COMMANDS,
    STEERING_RANGE_RAD,
    Scenario,
)


@dataclass(frozen=True)
class NoiseConfig:
    """Triangular steering impulses (Codevilla et al. 2019, "noise injection").

    Each impulse ramps linearly up to a peak and back down over ``duration``; its peak is
    a yaw rate, so the steering it takes shrinks with speed (a fixed steering angle that
    is a nudge at 8 m/s would be a swerve at 25 m/s).  Gaps between impulses are drawn
    so that about ``fraction`` of the steps are perturbed.
    """

    fraction: float = 0.0
    """Share of the steps under an impulse (0 = clean demos)."""
    duration_s: tuple[float, float] = (0.5, 1.5)
    """Impulse length [s], uniform in this range."""
    peak_yaw_rate_rps: tuple[float, float] = (0.1, 0.35)
    """Peak of an impulse as a yaw rate [rad/s], uniform in this range, random sign."""

    def __post_init__(self) -> None:
        if not (0.0 <= self.fraction < 1.0):
            raise ValueError(f"--noise must be a fraction in [0, 1), got {self.fraction}")

    def profile(self, n_steps: int, dt_s: float, rng: np.random.Generator) -> np.ndarray:
        """Per-step impulse value as a yaw rate [rad/s] (0 outside impulses)."""
        out = np.zeros(n_steps)
        if self.fraction <= 0.0:
            return out
        mean_duration = 0.5 * sum(self.duration_s)
        mean_gap = mean_duration * (1.0 - self.fraction) / self.fraction
        t = rng.exponential(mean_gap)
        while True:
            length = rng.uniform(*self.duration_s)
            start = round(t / dt_s)
            if start >= n_steps:
                return out
            k = max(2, round(length / dt_s))
            peak = rng.uniform(*self.peak_yaw_rate_rps) * rng.choice((-1.0, 1.0))
            tri = peak * (1.0 - np.abs(np.linspace(-1.0, 1.0, k)))
            stop = min(n_steps, start + k)
            out[start:stop] = tri[: stop - start]
            t += length + rng.exponential(mean_gap)


def steering_of_yaw_rate(yaw_rate_rps: float, speed_mps: float) -> float:
    """Normalised steering that turns at ``yaw_rate_rps`` at ``speed_mps`` (kinematic bicycle)."""
    v = max(abs(float(speed_mps)), 2.0)
    return float(steering_for_curvature(yaw_rate_rps / v) / STEERING_RANGE_RAD)


@dataclass
class DemoEpisode:
    """One recorded episode as arrays (see the module docstring for the alignment)."""

    seed: int
    frames: np.ndarray
    """What the network sees: the bird's-eye frames ``uint8[T+1, H, W, 3]``, or the rig's road
    crops ``uint8[T+1, 66, 200, 3 x cameras]`` (cameras concatenated on the channel axis)."""
    speed: np.ndarray
    command: np.ndarray
    actions: np.ndarray
    expert_action: np.ndarray
    learner_driving: np.ndarray
    noise: np.ndarray
    terminated: bool
    truncated: bool
    status: str
    driving_score: float
    metrics: dict
    side_frames: np.ndarray | None = None
    """Rig recordings with recovery views: ``uint8[T+1, V, 66, 200, 3 x cameras]``."""
    side_labels: np.ndarray | None = None
    """``float32[T+1, V, k]``: the expert's action corrected for each recovery view."""
    lead: np.ndarray | None = None
    """``float32[T+1, 2]``: the lead auto-label of each state (:func:`lead_label`)."""

    @property
    def steps(self) -> int:
        return len(self.actions)


def lead_label(objects: dict[str, np.ndarray], ego: dict) -> np.ndarray:
    """The lead auto-label of one state (:data:`~agents.e2e.demos.LEAD_LABEL`): the bumper
    gap to the nearest object ahead in the ego's corridor, capped at
    :data:`~agents.e2e.demos.LEAD_RANGE_M` (the cap when there is none) [m], and its closing
    speed [m/s] (0 when none).  A dense target from the privileged world (TransFuser's and
    TCP's auxiliary heads): what a network must see to brake in time."""
    if not len(objects["position_m"]):
        return np.array([LEAD_RANGE_M, 0.0], np.float32)
    gap, closing, ahead = corridor_ahead(objects, ego)
    ahead &= gap < LEAD_RANGE_M
    if not ahead.any():
        return np.array([LEAD_RANGE_M, 0.0], np.float32)
    k = int(np.flatnonzero(ahead)[np.argmin(gap[ahead])])
    return np.array([max(float(gap[k]), 0.0), float(closing[k])], np.float32)


def collect_episode(
    env: DrivingEnv,
    expert,
    seed: int,
    *,
    noise: NoiseConfig = NoiseConfig(),
    learner=None,
    beta: float = 1.0,
    rig: RigInput | None = None,
) -> DemoEpisode:
    """Drive one episode and label every visited state with ``expert``'s action.

    ``rig``: record the rig cameras' road crops (and ``rig.side_views``, rendered from the
    shifted poses, with corrected labels) instead of the bird's-eye frames; ``env`` must
    declare those cameras.

    The executed action is the expert's (or, with probability ``1 - beta`` per step, the
    ``learner``'s), plus the noise impulse on the steering.  An expert that fails ends
    the recording with an error: demos are never labelled by a broken expert.  A learner
    that fails or returns garbage is replaced by the expert for that step.
    """
    scenario = env.scenario
    names = scenario.action_names
    n_act = len(names)
    steer_i = names.index("steering")
    rng = np.random.default_rng([int(seed), 0x5EED])  # noise and mixture: a function of the seed
    impulses = noise.profile(scenario.max_steps + 1, scenario.dt_s, rng)
    e_sensors = check_sensors(expert)
    l_sensors = check_sensors(learner) if learner is not None else ()
    ep = Episode(env, (), seed)
    expert.reset(seed=int(seed))
    if learner is not None:
        learner.reset(seed=int(seed))
    cams, speeds, cmds, acts, labels, by_learner, noises = [], [], [], [], [], [], []
    sides, side_labels, leads = [], [], []
    steer_range = float(STEERING_RANGE_RAD)

    def render(camera):
        return env.render_camera(camera).image

    def label_of(obs, info) -> np.ndarray:
        action, why = gate_action(
            expert.act(agent_view(e_sensors, obs, info, ep.static)), n_act, names
        )
        if action is None:
            raise RuntimeError(
                f"expert {expert.name!r} returned an invalid action at seed {seed}: {why}"
            )
        return action

    step = 0
    while True:
        obs, info = ep.obs, ep.info
        speeds.append(np.asarray(obs["speed"], np.float32).reshape(1))
        cmds.append(int(obs["command"]))
        label = label_of(obs, info)
        labels.append(label)
        leads.append(lead_label(env.object_arrays(), info["ego"]))
        if rig is None:
            cams.append(obs["bev"])
        else:
            cams.append(rig.crop(obs))
            if rig.side_views:
                sides.append(rig.side_frames(render))
                side_labels.append(
                    rig.side_labels(label, float(speeds[-1][0]), steer_i, steer_range)
                )
        if ep.done:
            by_learner.append(False)
            noises.append(0.0)
            break
        executed, driven_by_learner = label.copy(), False
        if learner is not None and rng.random() >= beta:
            try:
                proposal, _ = gate_action(
                    learner.act(agent_view(l_sensors, obs, info, ep.static)), n_act, names
                )
            except Exception:  # noqa: BLE001 - a failing learner hands the wheel back
                proposal = None
            if proposal is not None:
                executed, driven_by_learner = proposal, True
        kick = steering_of_yaw_rate(impulses[step], float(np.asarray(obs["speed"]).reshape(-1)[0]))
        executed[steer_i] = np.clip(executed[steer_i] + kick, -1.0, 1.0)
        by_learner.append(driven_by_learner)
        noises.append(kick)
        acts.append(executed.astype(np.float32))
        ep.apply(executed, latency_ms=None)  # already in range: the gate passes it unchanged
        step += 1
    status, terminated, truncated = ep.status, ep.terminated, ep.truncated
    metrics = episode_metrics(ep.trace, status, scenario.lane_changes_allowed)
    return DemoEpisode(
        seed=int(seed),
        frames=np.stack(cams),
        speed=np.stack(speeds).astype(np.float32),
        command=np.asarray(cmds, np.int64),
        actions=np.stack(acts).astype(np.float32) if acts else np.zeros((0, n_act), np.float32),
        expert_action=np.stack(labels).astype(np.float32),
        learner_driving=np.asarray(by_learner, np.int8),
        noise=np.asarray(noises, np.float32),
        terminated=bool(terminated or status != "ok"),
        truncated=bool(truncated),
        status=status,
        driving_score=float(metrics["driving_score"]),
        metrics=metrics,
        side_frames=np.stack(sides) if sides else None,
        side_labels=np.stack(side_labels).astype(np.float32) if side_labels else None,
        lead=np.stack(leads).astype(np.float32),
    )


# -- collecting in worker processes -----------------------------------------------------------
_WORKER: dict = {}


def _worker_init(
    scenario: Scenario,
    camera: dict,
    expert: str,
    learner: str | None,
    fast_physics: bool,
    device: str,
    rig: dict | None = None,
) -> None:
    if mp.parent_process() is not None:  # a pool worker: one thread each (see sim.harness.parallel)
        os.environ["OMP_NUM_THREADS"] = "1"
        ignore_sigint()  # Ctrl-C is the parent's: it stops the pool
    sc = (
        scenario  # the object, not its name: overrides (a shorter duration_s) must reach the worker
    )
    cam = BevCamera(**camera)
    rig_input = RigInput.from_dict(rig) if rig is not None else None
    task = task_spec(sc, cam, rig_input.rig if rig_input is not None else None)
    expert_agent = make_agent(expert, task)
    learner_agent = _make_learner(learner, task, device) if learner else None
    recorded = RECORDED_SENSORS if rig_input is None else ("speed", "command", *rig_input.cameras)
    sensors = set(recorded) | set(check_sensors(expert_agent))
    if learner_agent is not None:
        sensors |= set(check_sensors(learner_agent))
    env = DrivingEnv(
        sc,
        bev=cam,
        fast_physics=fast_physics,
        rig=task.rig,
        sensors=tuple(s for s in dict.fromkeys((*SENSORS, *task.rig.names)) if s in sensors),
    )
    _WORKER.update(env=env, expert=expert_agent, learner=learner_agent, rig=rig_input)


def _make_learner(spec: str, task, device: str):
    agent = make_agent(spec, task)
    if hasattr(agent, "to_device"):
        agent.to_device(device)
    return agent


def _worker_episode(args: tuple[int, int, NoiseConfig, float, int]) -> DemoEpisode:
    """One episode in this process (``--workers 1``), from the recorder :func:`_worker_init`
    set up."""
    _k, seed, noise, beta, _attempt = args
    return collect_episode(
        _WORKER["env"],
        _WORKER["expert"],
        seed,
        noise=noise,
        learner=_WORKER["learner"],
        beta=beta,
        rig=_WORKER["rig"],
    )


class DemoRunner:
    """The demo recorder of one worker of the harness's episode pool
    (:class:`~sim.harness.parallel.LocalEpisodePool`): built in the worker from the recording's
    settings, ``run(seed, extra)`` records one episode (``extra``: its noise and beta)."""

    def __init__(self, init: tuple, device: str | None = None) -> None:
        _worker_init(*init)

    def run(self, seed: int, extra: tuple[NoiseConfig, float]) -> DemoEpisode:
        noise, beta = extra
        return _worker_episode((0, seed, noise, beta, 1))

    def close(self) -> None:
        if "env" in _WORKER:
            _WORKER["env"].close()
        _WORKER.clear()


def collect(
    scenario: Scenario,
    seeds: Sequence[int],
    *,
    camera: BevCamera,
    noise: NoiseConfig,
    expert: str = "expert",
    learner: str | None = None,
    beta: float = 1.0,
    workers: int = 1,
    fast_physics: bool = True,
    device: str = "cpu",
    rig: RigInput | None = None,
):
    """Yield :class:`DemoEpisode` s in seed order (the same arrays for any ``workers``).

    With ``workers > 1`` a worker process that dies is survived (:func:`_collect_in_pool`):
    a seed whose worker died on every try is skipped, and :class:`EpisodesLost` is raised
    after the last episode."""
    init = (
        scenario,
        camera.to_dict(),
        expert,
        learner,
        fast_physics,
        device,
        rig.to_dict() if rig else None,
    )
    jobs = [(int(s), noise, float(beta)) for s in seeds]
    if workers <= 1:
        _worker_init(*init)
        try:
            for k, (seed, noise_, beta_) in enumerate(jobs):
                yield _worker_episode((k, seed, noise_, beta_, 1))
        finally:
            _WORKER["env"].close()
            _WORKER.clear()
        return
    yield from _collect_in_pool(init, jobs, workers)


class EpisodesLost(RuntimeError):
    """Seeds :func:`collect` could not record: the worker process running each died on every
    try (``lost``: seed -> why); every other episode was yielded before."""

    def __init__(self, lost: dict[int, str]) -> None:
        self.lost = dict(sorted(lost.items()))
        super().__init__("; ".join(f"seed {s}: {why}" for s, why in self.lost.items()))


def _exit_reason(code: int | None) -> str:
    """A dead process's exit code in words (``-9``: killed by SIGKILL, as the OOM killer does)."""
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"killed by {name}" + (", as the out-of-memory killer does" if code == -9 else "")
    return f"exit code {code}"


def _collect_in_pool(
    init: tuple, jobs: list[tuple[int, NoiseConfig, float]], workers: int
) -> Iterator[DemoEpisode]:
    """Yield the episodes of ``jobs`` in order from ``workers`` processes of the harness's
    episode pool (:class:`~sim.harness.parallel.LocalEpisodePool`), with its failure policy:
    a worker that dies (killed, out of memory, a segfault) is noticed at once
    (``multiprocessing.Pool`` waited for it forever), an episode it was running runs once more
    from its seed (an episode is a function of its seed, so a rerun changes no array), and a
    seed whose worker died on every attempt is lost: :class:`EpisodesLost` after every other
    episode was yielded.  Episodes finishing out of order wait for their turn."""
    seeds = [seed for seed, _, _ in jobs]
    extras = {k: (noise, beta) for k, (_, noise, beta) in enumerate(jobs)}
    factory = functools.partial(DemoRunner, init)
    finished: dict[int, DemoEpisode] = {}  # finished, not yet yielded (they go out in order)
    lost: dict[int, str] = {}
    nxt = 0  # the next job to yield
    with (
        LocalEpisodePool(min(workers, len(jobs))) as pool,
        contextlib.closing(pool.results(factory, seeds, extras)) as events,
    ):
        for kind, k, _seed, payload in events:
            if kind == "done":
                finished[k] = payload
            elif kind == "failed":  # the recorder raised: the episode cannot be recorded
                raise RuntimeError(f"recording seed {seeds[k]} failed: {payload}")
            else:
                attempts, code = payload
                why = _exit_reason(code)
                lost[k] = f"its worker process died on each of {attempts} tries ({why})"
            while nxt in finished or nxt in lost:
                if nxt in finished:
                    yield finished.pop(nxt)
                nxt += 1
    if lost:
        raise EpisodesLost({jobs[k][0]: why for k, why in lost.items()})


# -- writing the Minari dataset ----------------------------------------------------------------
def _spaces(scenario: Scenario, camera: BevCamera, rig: RigInput | None = None):
    frames = (
        {"camera": spaces.Box(0, 255, camera.shape, np.uint8)}
        if rig is None
        else {name: spaces.Box(0, 255, (*rig.input_hw, 3), np.uint8) for name in rig.cameras}
    )
    obs = spaces.Dict(
        {
            **frames,
            "speed": spaces.Box(-50.0, 50.0, (1,), np.float32),
            "command": spaces.Discrete(len(COMMANDS)),
        }
    )
    return obs, spaces.Box(-1.0, 1.0, (len(scenario.action_names),), np.float32)


class RecordingInterrupted(KeyboardInterrupt):
    """Ctrl-C during :func:`record_dataset` with ``keep_partial=True``.

    ``summary`` is the summary of the smaller dataset kept at ``path`` (its finished
    episodes), or ``None`` when no episode had finished and nothing was kept.
    """

    def __init__(self, path: Path, requested: int, summary: dict | None) -> None:
        super().__init__(str(path))
        self.path, self.requested, self.summary = Path(path), int(requested), summary


class RecordingIncomplete(RuntimeError):
    """Seeds lost to worker processes that died on every try (:class:`EpisodesLost`).

    ``lost`` maps each lost seed to why; ``summary`` is the summary of the smaller dataset
    of the finished episodes kept at ``path`` (``keep_partial=True``, its ``drive`` block
    listing ``lost_seeds``), or ``None`` when nothing was kept.
    """

    def __init__(self, path: Path, requested: int, summary: dict | None, lost: dict) -> None:
        self.path, self.requested, self.summary = Path(path), int(requested), summary
        self.lost = dict(sorted(lost.items()))
        seeds = list(self.lost)
        text = "; ".join(f"seed {s} lost: {why}" for s, why in self.lost.items())
        if summary is None:
            text += (
                f"; nothing is kept (no dataset at {self.path}); record again, with fewer "
                "workers if memory ran out"
            )
        else:
            n = summary["episodes"]
            text += (
                f"; kept the {n} finished episode{'s' if n != 1 else ''} of {self.requested} as "
                f"a smaller dataset -> {self.path} (its metadata lists lost_seeds); record the "
                f"lost seed{'s' if len(seeds) != 1 else ''} into another dataset (drive record "
                f"--seed {seeds[0]} --episodes 1 --out OTHER"
                + (", one per seed" if len(seeds) != 1 else "")
                + f") and train on both (--data {self.path},OTHER)"
            )
        super().__init__(text)


class _SigintDeferred:
    """Hold a Ctrl-C back until the block is done (an HDF5 write half done is a damaged
    file); it is raised as ``KeyboardInterrupt`` on leaving, or with ``reraise=False`` only
    noted in ``got``.  Only in the main thread."""

    def __init__(self, reraise: bool = True) -> None:
        self.reraise = reraise

    def __enter__(self) -> Self:
        self.got, self.previous = False, None
        if threading.current_thread() is threading.main_thread():
            previous = signal.getsignal(signal.SIGINT)
            if previous is not None and previous is not signal.SIG_IGN:
                self.previous = signal.signal(signal.SIGINT, self._note)
        return self

    def _note(self, signum, frame) -> None:
        self.got = True

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
        if self.got and exc_type is None and self.reraise:
            raise KeyboardInterrupt


_TEMP_SUFFIX = ".tmp"


def _temp_prefix(out: Path) -> str:
    return f".{out.name}."


def _remove_stale_temps(out: Path) -> None:
    """Remove the temp folders killed recordings to ``out`` left beside it (one note each).

    A temp folder is ``.NAME.PID.XXXXXXXX.tmp``; it is stale when process PID is gone.
    ``.NAME.XXXXXXXX.tmp`` (named before temp folders carried their owner) is stale too.
    """
    prefix = _temp_prefix(out)
    owned = re.compile(r"(?:(\d+)\.)?[a-z0-9_]{8}")  # tempfile's 8 random characters
    try:
        candidates = [
            p
            for p in out.parent.iterdir()
            if p.name.startswith(prefix) and p.name.endswith(_TEMP_SUFFIX) and p.is_dir()
        ]
    except FileNotFoundError:
        return
    for p in candidates:
        m = owned.fullmatch(p.name[len(prefix) : -len(_TEMP_SUFFIX)])
        if m is None or (m.group(1) is not None and _process_alive(int(m.group(1)))):
            continue  # another dataset's, or a recording still running
        shutil.rmtree(p, ignore_errors=True)
        if not p.exists():
            print(
                f"note: removed {p}, a temp folder an interrupted recording to {out} left behind",
                file=sys.stderr,
            )


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's, alive
    except OverflowError:
        return False
    return True


def record_dataset(
    scenario: Scenario,
    seeds: Sequence[int],
    out: Path,
    *,
    camera: BevCamera | None = None,
    noise: NoiseConfig = NoiseConfig(),
    expert: str = "expert",
    learner: str | None = None,
    beta: float = 1.0,
    workers: int = 1,
    fast_physics: bool = True,
    device: str = "cpu",
    progress: bool = True,
    extra: dict | None = None,
    on_episode: Callable[[DemoEpisode], None] | None = None,
    keep_partial: bool = False,
    rig: RigInput | None = None,
) -> dict:
    """Record ``seeds`` into a new Minari dataset at ``out``; return its summary.

    ``rig``: record the rig cameras' road crops (``observations/cam_front``, ...) and the
    recovery views (``infos/side_cam_front`` ``[T+1, V, 66, 200, 3]``, ``infos/side_labels``
    ``[T+1, V, k]``) instead of the bird's-eye frames (``observations/camera``).

    ``keep_partial``: on Ctrl-C keep the finished episodes as a smaller dataset and raise
    :class:`RecordingInterrupted` (see the module docstring); otherwise an interrupted
    recording keeps nothing (pipelines that check ``out`` exists must never mistake a
    partial dataset for a complete one).  Seeds lost to worker processes that died on every
    try (:func:`_collect_in_pool`) raise :class:`RecordingIncomplete` the same way: after
    the smaller dataset is written with ``keep_partial``, with nothing kept otherwise.
    """

    # the recorder stores the executed action; latency would delay what the world got
    refuse_faults(scenario, "demos are recorded without sensor or actuation faults")
    out = Path(out)
    if out.exists():
        raise FileExistsError(f"{out} already exists; choose a new --out path")
    out = out.resolve()  # Minari's size bookkeeping breaks on relative paths
    if not seeds:
        raise ValueError("nothing to record: no seeds")
    if not 0.0 <= beta <= 1.0:
        raise ValueError(f"beta must be in [0, 1], got {beta}")
    if learner is None and beta < 1.0:
        raise ValueError("beta < 1 mixes in a learner, but none was given")
    camera = camera or BevCamera()
    out.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(out)
    tmp = Path(
        tempfile.mkdtemp(
            prefix=f"{_temp_prefix(out)}{os.getpid()}.", suffix=_TEMP_SUFFIX, dir=out.parent
        )
    )
    os.chmod(tmp, DIR_MODE)
    started = time.time()
    statuses: dict[str, int] = {}
    episode_meta: list[dict] = []
    kept_seeds: list[int] = []
    frames = 0
    interrupted = False
    lost: dict[int, str] = {}  # seed -> why: worker processes that died on every try
    try:
        obs_space, act_space = _spaces(scenario, camera, rig)
        storage = MinariStorage.new(
            tmp / DATA_DIR,
            observation_space=obs_space,
            action_space=act_space,
            data_format="hdf5",
            jpeg_encoding=False,
        )
        bar = tqdm(
            total=len(seeds),
            desc=f"recording {scenario.name}",
            unit="ep",
            disable=not progress,
            dynamic_ncols=True,
        )
        episodes = collect(
            scenario,
            seeds,
            camera=camera,
            noise=noise,
            expert=expert,
            learner=learner,
            beta=beta,
            workers=workers,
            fast_physics=fast_physics,
            device=device,
            rig=rig,
        )
        try:
            for i, ep in enumerate(episodes):
                n = ep.steps
                views = (
                    {"camera": ep.frames}
                    if rig is None
                    else {c: ep.frames[..., 3 * k : 3 * k + 3] for k, c in enumerate(rig.cameras)}
                )
                infos = {
                    "expert_action": ep.expert_action,
                    "learner_driving": ep.learner_driving,
                    "noise": ep.noise,
                    "lead": ep.lead,
                }
                if rig is not None and rig.side_views:
                    infos.update(
                        {
                            f"side_{c}": ep.side_frames[..., 3 * k : 3 * k + 3]
                            for k, c in enumerate(rig.cameras)
                        },
                        side_labels=ep.side_labels,
                    )
                arrays = {
                    "observations": {**views, "speed": ep.speed, "command": ep.command},
                    "actions": ep.actions,
                    "rewards": np.zeros(n, np.float64),
                    "terminations": np.asarray(
                        [False] * (n - 1) + [ep.terminated] if n else [], bool
                    ),
                    "truncations": np.asarray(
                        [False] * (n - 1) + [ep.truncated and not ep.terminated] if n else [], bool
                    ),
                    "infos": infos,
                }
                digest = episode_digest(
                    {
                        **{f"observations/{k}": v for k, v in arrays["observations"].items()},
                        **{f"infos/{k}": v for k, v in arrays["infos"].items()},
                        **{
                            k: arrays[k]
                            for k in ("actions", "rewards", "terminations", "truncations")
                        },
                    },
                    hashed_arrays(
                        rig.cameras if rig else None, bool(rig and rig.side_views), lead=True
                    ),
                )
                buffer = EpisodeBuffer(id=i, seed=ep.seed, **arrays)
                with _SigintDeferred():  # an episode is in the file whole, or not at all
                    storage.update_episodes([buffer])
                    episode_meta.append(
                        {
                            "scenario": scenario.name,
                            "recorder_version": RECORDER_VERSION,
                            "status": ep.status,
                            "driving_score": ep.driving_score,
                            HASH_ATTR: digest,
                        }
                    )
                    kept_seeds.append(ep.seed)
                    statuses[ep.status] = statuses.get(ep.status, 0) + 1
                    frames += n + 1
                if on_episode is not None:
                    on_episode(ep)
                bar.set_postfix_str(f"seed {ep.seed}: {ep.status}, {frames} frames")
                bar.update(1)
                if fault_requested("sigint-after-episodes", len(kept_seeds)):
                    raise KeyboardInterrupt  # testing hook: a Ctrl-C right after this episode
        except KeyboardInterrupt:
            if not keep_partial or not kept_seeds:
                raise
            interrupted = True
        except EpisodesLost as e:  # every other episode is written: keep them, or nothing
            lost = e.lost
            if not keep_partial or not kept_seeds:
                raise RecordingIncomplete(out, len(seeds), None, lost) from None
        finally:
            episodes.close()  # stops the workers now, before the dataset is written
            bar.close()
        # the metadata and the rename: all of it, or nothing; a Ctrl-C now comes too late to
        # stop anything, the dataset is written
        with _SigintDeferred(reraise=False):
            storage.update_episode_metadata(episode_meta)
            drive = {
                "format": DEMO_FORMAT,
                "recorder_version": RECORDER_VERSION,
                "scenario": scenario.name,
                "trained_on": scenario.trained_on,
                "uses_command": scenario.uses_command,
                "action_names": list(scenario.action_names),
                "control_hz": scenario.control_hz,
                "steering_range_rad": STEERING_RANGE_RAD,
                "acceleration_range_mps2": ACCELERATION_RANGE_MPS2,
                "camera": camera.to_dict(),
                "sensors": list(RECORDED_SENSORS)
                if rig is None
                else ["speed", "command", *rig.cameras],
                **({"rig": rig.to_dict()} if rig is not None else {}),
                "expert": expert,
                "learner": learner,
                "beta": float(beta),
                "noise": {
                    "fraction": noise.fraction,
                    "duration_s": list(noise.duration_s),
                    "peak_yaw_rate_rps": list(noise.peak_yaw_rate_rps),
                },
                "seeds": kept_seeds,
                "frames": frames,
                "statuses": statuses,
                "content_hash": CONTENT_HASH,
                "auto_labels": ["lead"],
                "interrupted": interrupted,
                "episodes_requested": len(seeds),
                "lost_seeds": sorted(lost),
                "versions": package_versions(),
                "git_revision": git_revision(),
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                **(extra or {}),
            }
            storage.update_metadata(
                {
                    "minari_version": minari.__version__,
                    "dataset_id": f"drive/{scenario.name}/{_slug(out.name)}-v0",
                    "algorithm_name": expert
                    if learner is None
                    else f"dagger({expert}, {learner}, beta={beta:g})",
                    "description": f"{scenario.name}: {len(kept_seeds)} episodes driven by {expert}"
                    f"{' mixed with ' + learner if learner else ''}, noise fraction "
                    f"{noise.fraction:g}; labels in infos/expert_action"
                    + (
                        f" (interrupted: {len(kept_seeds)} of the {len(seeds)} requested)"
                        if interrupted
                        else ""
                    )
                    + (
                        f" (seeds {', '.join(map(str, sorted(lost)))} lost: their workers died)"
                        if lost
                        else ""
                    ),
                    "drive": drive,
                }
            )
            os.replace(tmp, out)
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if keep_partial and isinstance(e, KeyboardInterrupt):
            raise RecordingInterrupted(out, len(seeds), None) from None
        raise
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    summary = {
        "path": str(out),
        "episodes": len(kept_seeds),
        "frames": frames,
        "bytes": size,
        "statuses": statuses,
        "seconds": time.time() - started,
    }
    if interrupted:
        summary["episodes_requested"] = len(seeds)
        raise RecordingInterrupted(out, len(seeds), summary)
    if lost:
        summary["episodes_requested"] = len(seeds)
        raise RecordingIncomplete(out, len(seeds), summary, lost)
    return summary


def _slug(name: str) -> str:
    s = "".join(c if c.isalnum() or c in "_" else "_" for c in name).strip("_") or "demos"
    return s.lower()


def format_record_summary(summary: dict) -> str:
    st = ", ".join(f"{k} {v}" for k, v in sorted(summary["statuses"].items()))
    return (
        f"recorded {summary['episodes']} episodes, {summary['frames']} frames, "
        f"{summary['bytes'] / 1e6:.1f} MB in {summary['seconds']:.0f} s -> {summary['path']}\n"
        f"expert under noise: {st}"
    )
