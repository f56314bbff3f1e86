"""Whole episodes spread over worker processes, robust to a worker dying.

Each worker is a ``spawn``ed process with its own pipe.  The parent hands it one
episode at a time; the worker acknowledges an episode when it starts it and answers
when it is done.  The parent waits on every pipe and every process sentinel at once
(``multiprocessing.connection.wait``), so it always knows which episode each worker is
running, and a worker that dies (killed, segfault, out of memory) is noticed at once:

* an episode it had *started* is recorded as ``agent_error`` with the exit code;
* an episode it had been sent but not started goes back to the queue (once);
* a fresh worker takes over the remaining episodes, and the run never hangs.

A shared queue could not promise that: a process killed mid-write leaves a half
message that blocks the reader, and nobody knows which task it held.

Episodes are independent and seeded, so the per-seed results do not depend on the
number of workers (``tests/test_parallel.py`` checks it).

Ctrl-C belongs to the parent: workers are started with SIGINT ignored
(:func:`sigint_ignored_by_children`), so a Ctrl-C at the terminal (which signals the whole
process group) raises ``KeyboardInterrupt`` in the parent alone; the parent then stops the
workers itself (SIGTERM, then SIGKILL) and keeps what finished.  A worker whose pipe to
the parent breaks (the parent is gone) exits quietly.  One Ctrl-C, one line, no worker
tracebacks.
"""

from __future__ import annotations

import contextlib
import functools
import multiprocessing as mp
import os
import signal
import sys
import threading
import traceback
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from sim.geometry.bev import BevCamera
from sim.harness.episodes import ObserverFactory
from sim.world.scenarios import Scenario

# Testing hook: "kill-at:S" (a worker SIGKILLs itself on starting seed S), "kill-once-at:S" (the
# first attempt at seed S dies, its retry lives), "kill-after:S"
# (right after reporting seed S done), "init" (a worker fails to start),
# "kill-after-results:N" (``drive eval`` SIGKILLs itself right after writing its N-th
# results line), "pause-after-results:N" (``drive eval`` SIGSTOPs itself there, holding its
# folder's lock, until a SIGCONT; ``drive run`` likewise after its N-th episode line) or
# "sigint-after-episodes:N" (the demo recorder,
# ``sim.pipelines.record``, raises KeyboardInterrupt in its own process right after writing
# its N-th episode, as a Ctrl-C there would).  Tests use it to show that faults are
# recorded, never hang a run, and that a killed evaluation resumes to the same results, at a
# known point, not a timed one.
FAULT_ENV = "DRIVE_TEST_WORKER_FAULT"

# -- the one failure policy of both episode pools (worker processes here, Ray actors) --------
MAX_ATTEMPTS_PER_EPISODE = 2
"""An episode whose worker died while running it (a process killed by the OOM killer, a
machine lost) is run once more from its seed on a fresh worker: episodes are deterministic, so
the second attempt gives the record an undisturbed run would have.  A second death records it
as the agent's error (:func:`lost_episode_record`).  Deaths before a worker started an episode
cost the episode nothing (it goes back to the queue)."""
MAX_START_DEATHS = 3
"""Workers that may die before they are ready (before starting any episode) before the run
stops with an error: a worker that cannot even start would otherwise be replaced forever."""


def retry_lost_episode(attempts: int) -> bool:
    """Whether an episode whose worker died during its ``attempts``-th attempt runs again."""
    return attempts < MAX_ATTEMPTS_PER_EPISODE


def lost_episode_record(agent: str, scenario: str, seed: int, attempts: int) -> dict:
    """The record of an episode whose worker died on every attempt: the same on either
    backend (the cause, an exit code or a lost node, goes to the log, not the record)."""
    return failure_record(
        agent,
        scenario,
        seed,
        f"the worker died while running this episode, {attempts} times",
    )


def attempt_fault(seed: int, attempt: int) -> bool:
    """The testing hook's deaths at the start of an episode: ``kill-at:S`` every attempt at
    seed S, ``kill-once-at:S`` only the first."""
    return fault_requested("kill-at", seed) or (
        attempt == 1 and fault_requested("kill-once-at", seed)
    )


def fault_requested(kind: str, at: int | None = None) -> bool:
    """Whether the testing hook asks for fault ``kind`` at ``at`` (a seed or a count)."""
    spec = os.environ.get(FAULT_ENV, "")
    if kind == "init":
        return spec == "init"
    return spec == f"{kind}:{at}"


@contextmanager
def sigint_ignored_by_children() -> Iterator[None]:
    """Processes started inside this block start with SIGINT ignored.

    An ignored signal stays ignored across ``exec``, and a Python interpreter that starts
    with SIGINT ignored installs no ``KeyboardInterrupt`` handler, so a ``spawn`` ed worker
    ignores Ctrl-C from its first instruction (also while it imports, before its target
    runs).  The parent ignores SIGINT only while it starts them; outside the main thread
    (where signal handlers cannot be set) this does nothing, and the workers' own
    ``ignore_sigint()`` still applies once they run.
    """
    previous = signal.getsignal(signal.SIGINT)
    if threading.current_thread() is not threading.main_thread() or previous is None:
        yield
        return
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def ignore_sigint() -> None:
    """In a worker: Ctrl-C is the parent's to handle (it stops the workers itself)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def stop_processes(procs: Sequence[mp.process.BaseProcess], *, grace_s: float = 2.0) -> None:
    """SIGTERM each live process, wait up to ``grace_s`` for each, SIGKILL what is left."""
    for proc in procs:
        if proc.is_alive():
            proc.terminate()
    for proc in procs:
        proc.join(timeout=grace_s)
        if proc.is_alive():
            proc.kill()
            proc.join()


def _worker_main(conn: Connection, device: str | None = None) -> None:
    try:
        _serve(conn, device)
    except (BrokenPipeError, ConnectionResetError, EOFError):
        return  # the parent is gone (interrupted, or killed): nobody to report to


def _serve(conn: Connection, device: str | None) -> None:
    """A warm worker: ``("load", factory)`` builds the runner of the next job
    (``factory(device)``: an :class:`~sim.harness.episodes.EpisodeRunner` for an (agent,
    scenario), a demo recorder for ``drive record``) and answers ``loaded``;
    ``("run", k, seed, extra, attempt)`` answers ``started`` then ``done`` with
    ``runner.run(seed, extra)`` or ``failed``; ``None`` (or a closed pipe) ends it."""
    ignore_sigint()
    # one BLAS/OpenMP thread per worker: W workers already fill W cores, and torch's
    # default (all cores per process) would oversubscribe them
    os.environ["OMP_NUM_THREADS"] = "1"
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    if "torch" in sys.modules:  # pragma: no cover - spawn starts clean; kept for forked starts
        sys.modules["torch"].set_num_threads(1)
    runner = None
    while True:
        try:
            message = conn.recv()
        except EOFError:
            return
        if message is None:
            return
        if message[0] == "load":
            if runner is not None:
                runner.close()
                runner = None
            try:
                if fault_requested("init"):
                    raise RuntimeError("worker start-up fault injected for a test")
                runner = message[1](device)
            except Exception:  # noqa: BLE001 - report why: no episode of this pair can run here
                conn.send(("init_failed", None, traceback.format_exc(limit=8)))
                continue
            conn.send(("loaded", None, None))
            continue
        _, k, seed, extra, attempt = message
        conn.send(("started", k, None))
        if attempt_fault(seed, attempt):
            os.kill(os.getpid(), signal.SIGKILL)
        try:
            result = runner.run(seed, extra)
            conn.send(("done", k, result))
        except Exception:  # noqa: BLE001 - a sim-side failure: report it, keep serving
            conn.send(("failed", k, traceback.format_exc(limit=8)))
        if fault_requested("kill-after", seed):
            os.kill(os.getpid(), signal.SIGKILL)


def failure_record(
    agent: str, scenario: str, seed: int, error: str, status: str = "agent_error"
) -> dict:
    """The ``episodes.jsonl`` line for an episode that could not be run to its end: the agent's
    fault by default (a worker that died), ``sim_error`` where the simulator raised."""
    return {
        "agent": agent,
        "scenario": scenario,
        "seed": int(seed),
        "status": status,
        "error": error,
        "driving_score": 0.0,
        "route_completion": 0.0,
    }


class _Worker:
    def __init__(self, proc: mp.Process, conn: Connection) -> None:
        self.proc, self.conn = proc, conn
        self.sent: tuple[int, int] | None = None  # (k, seed) handed over
        self.started = False  # acknowledged by the worker
        self.loaded = False  # holds the runner of the current (agent, scenario)


class LocalEpisodePool:
    """Up to ``workers`` worker processes on this machine, kept warm across the (agent,
    scenario) pairs of one evaluation: a worker's imports (highway-env, torch) cost seconds,
    paid once per pool, not once per pair.  The local implementation of the episode pool
    whose other one is :class:`~sim.harness.ray_backend.RayEpisodePool`: the same
    :meth:`run`, the same failure policy (:data:`MAX_ATTEMPTS_PER_EPISODE`).  Use it as a
    context manager; :meth:`close` stops every worker."""

    def __init__(self, workers: int, *, device: str | None = None) -> None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        self.workers, self.device = workers, device
        self._ctx = mp.get_context("spawn")
        self._idle: list[_Worker] = []  # alive, between two pairs
        self._every: list[mp.Process] = []

    def __enter__(self) -> LocalEpisodePool:  # noqa: PYI034 - typing.Self is Python 3.11+
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def idle(self) -> int:
        """Warm workers waiting for the next (agent, scenario)."""
        return len(self._idle)

    def close(self) -> None:
        """Tell idle workers to stop, then stop whatever is left (mid-episode after an error
        or a Ctrl-C) with SIGTERM, then SIGKILL."""
        for w in self._idle:
            try:
                w.conn.send(None)
            except OSError:
                pass
            w.conn.close()
        for proc in self._every:
            proc.join(timeout=2)
        stop_processes(self._every)
        self._idle.clear()
        self._every.clear()

    def _spawn(self) -> _Worker:
        parent, child = self._ctx.Pipe()
        proc = self._ctx.Process(target=_worker_main, daemon=True, args=(child, self.device))
        with sigint_ignored_by_children():
            proc.start()
        child.close()
        self._every.append(proc)
        return _Worker(proc, parent)

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
        video: ObserverFactory | None = None,
    ) -> None:
        """Run every seed of ``agent_name`` on ``scenario``; ``on_record`` gets each finished
        record once (the first seed's episode is watched by the observer ``video`` makes, in
        the worker: a video writer the caller hands in, pickled across).  An error or a
        Ctrl-C stops every worker (the pool starts fresh ones next time)."""
        factory = functools.partial(
            _episode_runner,
            agent_name,
            scenario,
            camera,
            fast_physics,
            str(out_dir),
            decision_timeout_s,
        )
        extras = {0: video} if video is not None else {}
        # closed at once on an error in on_record (a Ctrl-C), which stops the workers: a
        # traceback that keeps this frame alive would otherwise keep the generator open
        with contextlib.closing(self.results(factory, seeds, extras)) as events:
            self._record(events, agent_name, scenario, on_record)

    @staticmethod
    def _record(events, agent_name: str, scenario: Scenario, on_record) -> None:
        for kind, _k, seed, payload in events:
            if kind == "done":
                on_record(payload)
            elif kind == "failed":
                on_record(
                    failure_record(
                        agent_name,
                        scenario.name,
                        seed,
                        f"episode failed in the simulator: {payload}",
                        status="sim_error",
                    )
                )
            else:  # "lost": the worker died on every attempt (payload: attempts, exit code)
                attempts, exitcode = payload
                print(
                    f"drive: seed {seed}: the worker died on each of {attempts} attempts "
                    f"(the last with exit code {exitcode})",
                    file=sys.stderr,
                    flush=True,
                )
                on_record(lost_episode_record(agent_name, scenario.name, seed, attempts))

    def results(
        self,
        factory: Callable[[str | None], Any],
        seeds: Sequence[int],
        extras: Mapping[int, Any] | None = None,
    ) -> Iterator[tuple[str, int, int, Any]]:
        """The pool's engine: every seed run by a runner ``factory(device)`` builds in each
        worker (picklable; ``runner.run(seed, extras.get(k))`` gives the k-th result), as
        events in the order they happen: ``("done", k, seed, result)``, ``("failed", k, seed,
        traceback)`` (the runner raised) and ``("lost", k, seed, (attempts, exit code))`` (its
        worker died on every attempt, :data:`MAX_ATTEMPTS_PER_EPISODE`).  Closing the
        iterator early, or an exception in its consumer, stops every worker."""
        extras = extras or {}
        todo: deque[tuple[int, int]] = deque(enumerate(int(s) for s in seeds))
        attempts: dict[int, int] = {}  # episodes a worker started (acknowledged), per index
        start_deaths = 0
        live: dict[Connection, _Worker] = {}
        events: deque[tuple[str, int, int, Any]] = deque()
        load = ("load", factory)

        def take_worker() -> None:
            w = self._idle.pop() if self._idle else self._spawn()
            w.sent, w.started, w.loaded = None, False, False
            live[w.conn] = w
            try:
                w.conn.send(load)
            except OSError:  # died while idle: a fresh one instead
                retire(w)

        def feed(w: _Worker) -> None:
            """Hand ``w`` the next episode, or give it back to the idle ones."""
            w.sent, w.started = None, False
            if not todo:
                live.pop(w.conn, None)
                self._idle.append(w)
                return
            k, seed = task = todo.popleft()
            try:
                w.conn.send(("run", k, seed, extras.get(k), attempts.get(k, 0) + 1))
                w.sent = task
            except OSError:  # it died between two messages: the task was never handed over
                todo.appendleft(task)
                retire(w)

        def retire(w: _Worker) -> None:
            """``w`` is dead (or its pipe is): account for its episode, replace it if needed."""
            nonlocal start_deaths
            live.pop(w.conn, None)
            w.conn.close()
            if w.proc.is_alive():
                w.proc.kill()
            w.proc.join()
            if w.sent is None or not w.started:  # no episode lost: it goes back to the queue
                if w.sent is not None:
                    todo.appendleft(w.sent)
                start_deaths += 1
                if start_deaths > MAX_START_DEATHS:
                    raise RuntimeError(
                        f"worker processes keep dying before they start an episode (the last "
                        f"with exit code {w.proc.exitcode})"
                    )
            else:
                k, seed = w.sent
                if retry_lost_episode(attempts[k]):
                    todo.appendleft(w.sent)  # once more from its seed, on a fresh worker
                else:
                    events.append(("lost", k, seed, (attempts[k], w.proc.exitcode)))
            if todo and len(live) < min(self.workers, len(todo) + len(live)):
                take_worker()

        def handle(w: _Worker) -> None:
            try:
                kind, k, payload = w.conn.recv()
            except (EOFError, OSError):
                retire(w)  # died mid-message or with nothing to say
                return
            if kind == "init_failed":
                raise RuntimeError(f"a worker could not start: {payload}")
            if kind == "loaded":
                w.loaded = True
                feed(w)
                return
            if kind == "started":
                w.started = True
                attempts[k] = attempts.get(k, 0) + 1
                return
            events.append((kind, k, w.sent[1], payload))  # "done" or "failed"
            feed(w)

        finished = False
        try:
            for _ in range(min(self.workers, len(todo))):
                take_worker()
            while live or events:
                while events:
                    yield events.popleft()
                by_sentinel = {w.proc.sentinel: w for w in live.values()}
                for obj in wait(list(live) + list(by_sentinel), timeout=5.0) if live else ():
                    w = live.get(obj) or by_sentinel.get(obj)
                    if w is None or w.conn not in live:
                        continue  # retired or given back earlier in this round
                    if obj is w.conn or w.conn.poll():
                        handle(w)  # messages first: a worker may answer and then die
                    else:
                        retire(w)
            finished = True
        finally:
            if not finished:  # interrupted, closed early or failed: stop every worker now
                self.close()


def _episode_runner(
    agent_name: str,
    scenario: Scenario,
    camera: BevCamera,
    fast_physics: bool,
    out_dir: str,
    decision_timeout_s: float | None,
    device: str | None,
):
    """In a worker: the :class:`~sim.harness.episodes.EpisodeRunner` of one (agent, scenario)
    (imported here: a spawned worker starts clean, and the parent needs none of it)."""
    from sim.harness.episodes import EpisodeRunner

    return EpisodeRunner(
        agent_name,
        scenario,
        camera,
        fast_physics=fast_physics,
        device=device,
        out_dir=Path(out_dir),
        decision_timeout_s=decision_timeout_s,
    )
