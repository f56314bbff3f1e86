"""Whole episodes on a Ray cluster (``drive eval --backend ray [--address ADDR]``).

The episodes of one (agent, scenario) go to a few Ray actors, one CPU each, each holding one
:class:`~sim.harness.run.EpisodeRunner` built once, as a local worker process does
(:mod:`sim.harness.parallel`).  The driver hands an actor one episode at a time, as a task,
and streams each finished record to the caller's ``on_record`` as it arrives (``ray.wait``).
Episodes are deterministic per seed, so the per-seed results equal local workers'.  The
actors of a :class:`RayEpisodePool` stay up between the (agent, scenario) pairs of one
evaluation (each pair builds its runner anew), so a Ray worker's imports are paid once.

An actor may run on another machine, so it writes nothing the driver needs on its own disk:

* **traces** come back as bytes with their record (the ``.npz`` of
  :func:`~sim.harness.run.save_trace`), and the driver writes them to
  ``OUT/traces/{scenario}__{agent}__{seed}.npz``, the names a local run uses;
* **checkpoints** travel by content hash: the driver reads the agent's checkpoint folder
  (``agent.checkpoints()`` of a probe agent) and puts each file's bytes into the object store
  once per Ray session, keyed by its SHA-256 (:func:`ship_checkpoint`); an actor materialises
  the folder into ``~/.cache/drive-testbed/checkpoints/<SHA-256 of the manifest>/`` (fetching
  nothing when a verified copy is there), checks every file's hash, and builds the agent from
  that folder (``e2e:<cache folder>``).  Records keep the agent spec the caller gave.

Failures, as with local workers:

* an episode whose actor dies (killed, out of memory, a lost node) is retried once on a fresh
  actor: a lost machine is not the agent's fault; dying twice on the same episode records
  ``agent_error`` (:func:`~sim.harness.parallel.failure_record`), and the run goes on;
* an episode the simulator fails records ``sim_error``; an actor that cannot build its agent
  stops the run with the reason;
* Ctrl-C (``KeyboardInterrupt`` in the driver) kills the actors and keeps what finished;
  so does any error, and the pool's ``close()`` at the end of an evaluation.

The testing hook (``DRIVE_TEST_WORKER_FAULT``, :mod:`sim.harness.parallel`) reaches the
actors: ``kill-at:S`` kills every actor that starts seed S (so S dies twice and is recorded
``agent_error``), ``kill-once-at:S`` only the first (the retry succeeds), ``init`` fails
every actor's start-up.

Ray is optional (``pip install -e ".[ray]"``): it is imported when a Ray run starts.
:func:`connect_ray` is the one place that starts or joins a cluster (the scaling study uses it
too).  Every node needs this project installed, as the driver has it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import traceback
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agents import agent_label, make_agent, parse_agent
from sim.geometry.bev import BevCamera
from sim.harness.episodes import EpisodeRunner, save_trace, task_spec
from sim.harness.io import atomic_write_bytes, checkpoint_hashes
from sim.harness.loop import EpisodeResult
from sim.harness.parallel import (
    FAULT_ENV,
    MAX_START_DEATHS,
    attempt_fault,
    failure_record,
    fault_requested,
    lost_episode_record,
    retry_lost_episode,
)
from sim.world.scenarios import Scenario

RAY_MISSING = 'the Ray backend needs Ray: pip install -e ".[ray]"'
GPU_PER_ACTOR = 0.25
"""With ``--device cuda`` an actor asks Ray for this much of a GPU: four share one (inference
is light next to the simulator).  Without it Ray hides the GPUs from an actor (``auto`` runs
on CPU)."""
POLL_S = 1.0
"""``ray.wait`` returns at least this often, so Ctrl-C reaches the driver promptly."""


def import_ray():
    """The ``ray`` module, or a :class:`ValueError` that says how to install it."""
    try:
        import ray
    except ImportError:
        raise ValueError(RAY_MISSING) from None
    return ray


def connect_ray(address: str | None = None):
    """Join the Ray cluster at ``address`` (as ``ray.init`` takes it: ``auto``,
    ``ray://host:10001``, ...), or start a local one when ``address`` is None (and
    ``RAY_ADDRESS`` is unset).  A session this process already has is used as it is.
    Returns the ``ray`` module."""
    ray = import_ray()
    if not ray.is_initialized():
        given = address or os.environ.get("RAY_ADDRESS")
        if given:
            check_reachable(given)
        try:
            ray.init(
                address=address,
                log_to_driver=False,
                logging_level=logging.WARNING,
                **({"include_dashboard": False} if not given else {}),
            )
        except ConnectionError as e:
            raise ValueError(
                f"cannot join the Ray cluster at {given!r}: {_first_line(e)}"
            ) from None
    return ray


CONNECT_TIMEOUT_S = 5.0
"""[s] How long a cluster's address may take to accept a TCP connection before the run is
refused; ``ray.init`` itself retries an unreachable address for many minutes."""


def check_reachable(address: str, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """Refuse, within ``timeout_s``, a ``HOST:PORT`` or ``ray://HOST:PORT`` cluster address
    that accepts no TCP connection, naming it; ``auto`` and other forms are left to Ray."""
    rest = address.removeprefix("ray://")
    host, sep, port = rest.rpartition(":")
    if not sep or not port.isdigit() or not host:
        return  # "auto", or a form Ray resolves itself
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
            pass
    except OSError as e:
        reason = "timed out" if isinstance(e, TimeoutError) else (e.strerror or str(e))
        raise ValueError(
            f"cannot reach the Ray cluster at {address!r} ({reason} within {timeout_s:g} s); "
            "start it (ray start --head) or check --address / RAY_ADDRESS"
        ) from None


# ---------------------------------------------------------------------------- checkpoints


def manifest_key(manifest: Mapping[str, str]) -> str:
    """The SHA-256 of a checkpoint folder's manifest (file name -> SHA-256 of its bytes): the
    name of its cached copy on every node."""
    return hashlib.sha256(json.dumps(dict(manifest), sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class CheckpointShipment:
    """A checkpoint folder in the object store: what each file must hash to, and where its
    bytes are."""

    manifest: dict[str, str]
    """File name -> SHA-256 of its bytes (:func:`sim.harness.evaluate.checkpoint_hashes`)."""
    objects: dict[str, Any]
    """SHA-256 -> the object ref of those bytes."""


_SHIPPED: dict[tuple[str, str], Any] = {}
"""(Ray job id, SHA-256) -> object ref of the bytes this driver has put."""


def ship_checkpoint(ray, path: str | Path) -> CheckpointShipment:
    """Put every file of checkpoint folder ``path`` into the object store, each distinct
    content once per Ray job (files shared by several agents or scenarios travel once)."""
    job = ray.get_runtime_context().get_job_id()
    for key in [k for k in _SHIPPED if k[0] != job]:  # an earlier session's: gone with it
        del _SHIPPED[key]
    path = Path(path)
    manifest = checkpoint_hashes(path)
    for name, sha in manifest.items():
        if (job, sha) not in _SHIPPED:
            data = (path / name).read_bytes()
            if hashlib.sha256(data).hexdigest() != sha:
                raise ValueError(
                    f"{path / name} changed while it was being shipped to the Ray cluster; "
                    "run again once nothing writes to the checkpoint"
                )
            _SHIPPED[job, sha] = ray.put(data)
    return CheckpointShipment(manifest, {sha: _SHIPPED[job, sha] for sha in manifest.values()})


def checkpoint_cache_root() -> Path:
    """Where a node keeps the checkpoint folders it was shipped (``$XDG_CACHE_HOME`` or
    ``~/.cache``)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "drive-testbed" / "checkpoints"


def _folder_matches(folder: Path, manifest: Mapping[str, str]) -> bool:
    """Whether ``folder`` holds exactly the manifest's files, each with its hash."""
    if not folder.is_dir():
        return False
    names = {f.name for f in folder.iterdir() if f.is_file() and not f.name.startswith(".")}
    return names == set(manifest) and all(
        hashlib.sha256((folder / n).read_bytes()).hexdigest() == sha for n, sha in manifest.items()
    )


def materialise_checkpoint(
    manifest: Mapping[str, str], fetch: Callable[[str], bytes], root: Path
) -> Path:
    """The checkpoint folder ``root/<manifest key>``, verified; built from
    ``fetch(sha256) -> bytes`` when missing or damaged.  Written to a temporary sibling first
    and renamed into place, so a reader (another actor on this node) never sees half a
    folder."""
    folder = root / manifest_key(manifest)
    if _folder_matches(folder, manifest):
        return folder
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=root))
    try:
        for name, sha in manifest.items():
            data = fetch(sha)
            got = hashlib.sha256(data).hexdigest()
            if got != sha:
                raise ValueError(
                    f"checkpoint file {name!r} arrived with SHA-256 {got}, expected {sha}"
                )
            (tmp / name).write_bytes(data)
        if folder.exists() and not _folder_matches(folder, manifest):
            shutil.rmtree(folder, ignore_errors=True)  # damaged: replaced by the verified copy
        try:
            os.rename(tmp, folder)
        except OSError:  # another actor on this node got there first
            if not _folder_matches(folder, manifest):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def agent_checkpoint(agent_name: str, scenario: Scenario, camera: BevCamera) -> str | None:
    """The checkpoint folder ``agent_name`` loads on ``scenario`` (its default resolved), or
    None."""
    folders = make_agent(agent_name, task_spec(scenario, camera), device="cpu").checkpoints()
    if len(folders) > 1:
        raise ValueError(
            f"agent {agent_name!r} loads {len(folders)} checkpoints ({', '.join(folders)}); "
            "the Ray backend ships one per agent: use --backend local"
        )
    return str(folders[0]) if folders else None


# ---------------------------------------------------------------------------- the actor


class _TraceKeepingRunner(EpisodeRunner):
    """An :class:`EpisodeRunner` that keeps each episode's trace as bytes for the driver
    (the same ``.npz`` as :func:`save_trace`) instead of a file on the actor's disk."""

    trace: bytes | None = None

    def save(self, result: EpisodeResult) -> dict:
        with tempfile.TemporaryDirectory(prefix="drive-trace-") as tmp:
            path = Path(tmp) / "trace.npz"
            save_trace(path, result)
            self.trace = path.read_bytes()
        return result.record()


class EpisodeActor:
    """One Ray actor (one CPU): the episodes of one (agent, scenario) at a time, on an agent and
    an env built once per :meth:`load`, as a local worker builds them once.

    Plain Python; :class:`RayEpisodePool` wraps it with ``ray.remote``.  A start-up failure is
    returned by :meth:`load`, not raised, so the driver can tell it from a death."""

    def __init__(self) -> None:
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
        self.runner: _TraceKeepingRunner | None = None

    def load(
        self,
        agent_name: str,
        scenario: Scenario,
        camera: BevCamera,
        fast_physics: bool,
        device: str | None,
        decision_timeout_s: float | None,
        checkpoint: CheckpointShipment | None,
        fault: str | None,
    ) -> tuple[int, str | None]:
        """Build the runner of ``agent_name`` on ``scenario``; (this process's id, why it could
        not be built or None)."""
        if fault:  # the driver's testing hook, which a node's environment would not carry
            os.environ[FAULT_ENV] = fault
        else:
            os.environ.pop(FAULT_ENV, None)
        if self.runner is not None:
            self.runner.close()
            self.runner = None
        try:
            if fault_requested("init"):
                raise RuntimeError("worker start-up fault injected for a test")
            spec = agent_name
            if checkpoint is not None:
                import ray

                folder = materialise_checkpoint(
                    checkpoint.manifest,
                    lambda sha: ray.get(checkpoint.objects[sha]),
                    checkpoint_cache_root(),
                )
                spec = f"{parse_agent(agent_name)[0]}:{folder}"
            self.runner = _TraceKeepingRunner(
                spec,
                scenario,
                camera,
                fast_physics=fast_physics,
                out_dir=Path(tempfile.gettempdir()),
                device=device,
                decision_timeout_s=decision_timeout_s,
            )
            if (
                "torch" in sys.modules
            ):  # one intra-op thread, as OMP_NUM_THREADS says (RayEpisodePool)
                sys.modules["torch"].set_num_threads(1)
        except Exception:  # noqa: BLE001 - reported: no episode can run here
            return os.getpid(), traceback.format_exc(limit=8)
        return os.getpid(), None

    def run(self, seed: int, attempt: int) -> tuple[str, Any, bytes | None]:
        """``("done", record, trace bytes)``, or ``("failed", traceback, None)`` where the
        simulator raised."""
        if attempt_fault(seed, attempt):
            os.kill(os.getpid(), signal.SIGKILL)
        assert self.runner is not None, "run() before a successful load()"
        try:
            record = self.runner.run(seed)
        except Exception:  # noqa: BLE001 - a sim-side failure: report it, keep serving
            return "failed", traceback.format_exc(limit=8), None
        return "done", record, self.runner.trace


# ---------------------------------------------------------------------------- the driver


class RayEpisodePool:
    """Up to ``workers`` :class:`EpisodeActor` s on the cluster at ``address``, kept warm across
    the (agent, scenario) pairs of one evaluation (a Ray worker's imports cost seconds), all
    killed on :meth:`close`.  Use it as a context manager."""

    def __init__(
        self, workers: int, *, address: str | None = None, device: str | None = None
    ) -> None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        self.ray = connect_ray(address)
        num_gpus = 0.0
        if device == "cuda":
            if not self.ray.cluster_resources().get("GPU"):
                raise ValueError(
                    "--device cuda: the Ray cluster has no GPU; use --device cpu (or auto)"
                )
            num_gpus = GPU_PER_ACTOR
        self.workers, self.device = workers, device
        # one CPU and one BLAS/OpenMP thread per actor, as a local worker, set before its
        # interpreter starts (a node's own environment, or the driver's, may say otherwise)
        self._actor_class = self.ray.remote(
            num_cpus=1,
            num_gpus=num_gpus,
            max_restarts=0,
            runtime_env={"env_vars": {"OMP_NUM_THREADS": "1"}},
        )(EpisodeActor)
        self._idle: list[Any] = []  # alive, between two pairs
        self._every: list[Any] = []

    def __enter__(self) -> RayEpisodePool:  # noqa: PYI034 - typing.Self is Python 3.11+
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Kill every actor this pool started (idle, or mid-episode after an error or a Ctrl-C)."""
        for actor in self._every:
            with contextlib.suppress(Exception):  # one already gone
                self.ray.kill(actor, no_restart=True)
        self._every.clear()
        self._idle.clear()

    @property
    def idle(self) -> int:
        """Warm actors waiting for the next (agent, scenario)."""
        return len(self._idle)

    def _actor(self) -> Any:
        if self._idle:
            return self._idle.pop()
        actor = self._actor_class.remote()
        self._every.append(actor)
        return actor

    def _drop(self, actor: Any) -> None:
        with contextlib.suppress(Exception):
            self.ray.kill(actor, no_restart=True)
        with contextlib.suppress(ValueError):
            self._every.remove(actor)

    def run(
        self,
        agent_name: str,
        scenario: Scenario,
        seeds: Sequence[int],
        out_dir: Path,
        on_record: Callable[[dict], None],
        *,
        camera: BevCamera,
        fast_physics: bool = True,
        decision_timeout_s: float | None = None,
    ) -> None:
        """Run every seed of ``agent_name`` on ``scenario``; ``on_record`` gets each finished
        record once, after its trace is written under ``out_dir/traces``."""
        from ray.exceptions import RayError, RayTaskError

        ray = self.ray
        folder = agent_checkpoint(agent_name, scenario, camera)
        shipment = ship_checkpoint(ray, folder) if folder is not None else None
        load_args = (
            agent_name,
            scenario,
            camera,
            fast_physics,
            self.device,
            decision_timeout_s,
            shipment,
            os.environ.get(FAULT_ENV),
        )
        traces = Path(out_dir) / "traces"
        todo: deque[int] = deque(int(s) for s in seeds)
        attempts: Counter[int] = Counter()
        loading: dict[Any, Any] = {}  # load() ref -> actor
        busy: dict[Any, tuple[Any, int]] = {}  # run() ref -> (actor, seed)
        start_deaths = 0

        def start_actor() -> None:
            actor = self._actor()
            loading[actor.load.remote(*load_args)] = actor

        def hand(actor) -> None:
            """Give ``actor`` the next episode, or back to the idle ones."""
            if not todo:
                self._idle.append(actor)
                return
            seed = todo.popleft()
            attempts[seed] += 1
            busy[actor.run.remote(seed, attempts[seed])] = (actor, seed)

        def replace_lost() -> None:
            if todo and len(loading) + len(busy) < self.workers:
                start_actor()

        try:
            for _ in range(min(self.workers, len(todo))):
                start_actor()
            while loading or busy:
                ready, _ = ray.wait([*loading, *busy], num_returns=1, timeout=POLL_S)
                for ref in ready:
                    if ref in loading:
                        actor = loading.pop(ref)
                        try:
                            _, error = ray.get(ref)
                        except RayError as e:  # died before it was ready: no episode lost
                            self._drop(actor)
                            start_deaths += 1
                            if start_deaths > MAX_START_DEATHS:
                                raise RuntimeError(
                                    f"Ray workers keep dying as they start: {_first_line(e)}"
                                ) from None
                            replace_lost()
                            continue
                        if error is not None:
                            self._idle.append(actor)  # alive; the pool's close() stops it
                            raise RuntimeError(f"a Ray worker could not start: {error}")
                        hand(actor)
                        continue
                    # an episode ended: the actor gets its next one before the caller sees this
                    # one, so it works while the driver writes, and an exception in ``on_record``
                    # (Ctrl-C) finds every actor accounted for
                    actor, seed = busy.pop(ref)
                    try:
                        kind, payload, trace = ray.get(ref)
                    except (
                        RayTaskError
                    ) as e:  # run() raised past its own handler (a result Ray could not send)
                        hand(actor)
                        on_record(
                            failure_record(
                                agent_name,
                                scenario.name,
                                seed,
                                f"episode failed on a Ray worker: {e}",
                                status="sim_error",
                            )
                        )
                        continue
                    except RayError as e:  # the actor (its process or its node) is gone
                        self._drop(actor)
                        if retry_lost_episode(attempts[seed]):  # the one failure policy
                            todo.appendleft(seed)
                            replace_lost()
                            continue
                        replace_lost()
                        print(
                            f"drive: seed {seed}: the Ray worker died on each of "
                            f"{attempts[seed]} attempts ({_first_line(e)})",
                            file=sys.stderr,
                            flush=True,
                        )
                        on_record(
                            lost_episode_record(agent_name, scenario.name, seed, attempts[seed])
                        )
                        continue
                    hand(actor)
                    if kind == "done":
                        traces.mkdir(parents=True, exist_ok=True)
                        atomic_write_bytes(
                            traces / f"{scenario.name}__{agent_label(agent_name)}__{seed}.npz",
                            trace,
                        )
                        on_record(payload)
                    else:
                        on_record(
                            failure_record(
                                agent_name,
                                scenario.name,
                                seed,
                                f"episode failed in the simulator: {payload}",
                                status="sim_error",
                            )
                        )
        finally:  # failed or interrupted: actors mid-episode are stopped now; idle ones stay warm
            for actor in [*loading.values(), *(a for a, _ in busy.values())]:
                self._drop(actor)


def run_seeds_on_ray(
    agent_name: str,
    scenario: Scenario,
    seeds: Sequence[int],
    out_dir: Path,
    on_record: Callable[[dict], None],
    *,
    camera: BevCamera,
    workers: int,
    fast_physics: bool = True,
    device: str | None = None,
    decision_timeout_s: float | None = None,
    address: str | None = None,
    pool: RayEpisodePool | None = None,
) -> None:
    """:meth:`RayEpisodePool.run` on ``pool``, or on a pool of ``workers`` actors for this
    call alone."""
    with (
        contextlib.nullcontext(pool)
        if pool is not None
        else RayEpisodePool(workers, address=address, device=device)
    ) as own:
        own.run(
            agent_name,
            scenario,
            seeds,
            out_dir,
            on_record,
            camera=camera,
            fast_physics=fast_physics,
            decision_timeout_s=decision_timeout_s,
        )


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return (text.splitlines() or [type(error).__name__])[0][:300]
