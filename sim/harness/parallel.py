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

import multiprocessing as mp
import os
import signal
import sys
import threading
import traceback
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from multiprocessing.connection import Connection, wait
from pathlib import Path

from sim.geometry.bev import BevCamera
from sim.world.scenarios import Scenario

# Testing hook: "kill-at:S" (a worker SIGKILLs itself on starting seed S), "kill-once-at:S" (the
# Ray backend only: the first attempt at seed S dies, its retry lives), "kill-after:S"
# (right after reporting seed S done), "init" (a worker fails to start),
# "kill-after-results:N" (``drive eval`` SIGKILLs itself right after writing its N-th
# results line), "pause-after-results:N" (``drive eval`` SIGSTOPs itself there, holding its
# folder's lock, until a SIGCONT) or "sigint-after-episodes:N" (the demo recorder,
# ``sim.pipelines.record``, raises KeyboardInterrupt in its own process right after writing
# its N-th episode, as a Ctrl-C there would).  Tests use it to show that faults are
# recorded, never hang a run, and that a killed evaluation resumes to the same results, at a
# known point, not a timed one.
FAULT_ENV = "DRIVE_TEST_WORKER_FAULT"
MAX_SENDS_PER_EPISODE = 2  # an episode whose worker died before starting it is re-sent once


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


def _worker_main(
    conn: Connection,
    agent_name: str,
    scenario: Scenario,
    camera: BevCamera,
    fast_physics: bool,
    out_dir: str,
    device: str | None = None,
    decision_timeout_s: float | None = None,
) -> None:
    try:
        _serve(
            conn, agent_name, scenario, camera, fast_physics, out_dir, device, decision_timeout_s
        )
    except (BrokenPipeError, ConnectionResetError, EOFError):
        return  # the parent is gone (interrupted, or killed): nobody to report to


def _serve(
    conn: Connection,
    agent_name: str,
    scenario: Scenario,
    camera: BevCamera,
    fast_physics: bool,
    out_dir: str,
    device: str | None,
    decision_timeout_s: float | None,
) -> None:
    ignore_sigint()
    # one BLAS/OpenMP thread per worker: W workers already fill W cores, and torch's
    # default (all cores per process) would oversubscribe them
    os.environ["OMP_NUM_THREADS"] = "1"
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    if "torch" in sys.modules:  # pragma: no cover - spawn starts clean; kept for forked starts
        sys.modules["torch"].set_num_threads(1)
    # imported here: spawn starts from a clean interpreter, and the parent needs none of it
    from sim.harness.run import EpisodeRunner

    try:
        if fault_requested("init"):
            raise RuntimeError("worker start-up fault injected for a test")
        runner = EpisodeRunner(
            agent_name,
            scenario,
            camera,
            fast_physics=fast_physics,
            device=device,
            out_dir=Path(out_dir),
            decision_timeout_s=decision_timeout_s,
        )
    except Exception:  # noqa: BLE001 - report why, then stop: no episode can run here
        conn.send(("init_failed", None, traceback.format_exc(limit=8)))
        return
    while True:
        try:
            task = conn.recv()
        except EOFError:
            return
        if task is None:
            return
        k, seed, video_path = task
        conn.send(("started", k, None))
        if fault_requested("kill-at", seed):
            os.kill(os.getpid(), signal.SIGKILL)
        try:
            record = runner.run(seed, Path(video_path) if video_path else None)
            conn.send(("done", k, record))
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


def run_parallel(
    agent_name: str,
    scenario: Scenario,
    seeds: Sequence[int],
    *,
    workers: int,
    camera: BevCamera,
    fast_physics: bool,
    out_dir: Path,
    device: str | None = None,
    video_path: Path | None,
    on_record: Callable[[dict], None],
    decision_timeout_s: float | None = None,
) -> None:
    """Run every seed on ``workers`` processes; ``on_record`` gets each finished record once."""
    ctx = mp.get_context("spawn")
    todo: deque[tuple[int, int]] = deque(enumerate(seeds))
    sends: dict[int, int] = {}
    live: dict[Connection, _Worker] = {}
    every_proc: list[mp.Process] = []

    def start_worker() -> None:
        parent, child = ctx.Pipe()
        proc = ctx.Process(
            target=_worker_main,
            daemon=True,
            args=(
                child,
                agent_name,
                scenario,
                camera,
                fast_physics,
                str(out_dir),
                device,
                decision_timeout_s,
            ),
        )
        with sigint_ignored_by_children():
            proc.start()
        child.close()
        every_proc.append(proc)
        live[parent] = _Worker(proc, parent)
        feed(live[parent])

    def feed(w: _Worker) -> None:
        """Hand ``w`` the next episode, or tell it to stop; a dead pipe retires it."""
        w.sent, w.started = None, False
        task = todo.popleft() if todo else None
        try:
            if task is None:
                w.conn.send(None)
                release(w)
                return
            k, seed = task
            w.conn.send((k, seed, str(video_path) if (video_path and k == 0) else None))
            w.sent = task
            sends[k] = sends.get(k, 0) + 1
        except OSError:  # it died between two messages: the task was never handed over
            if task is not None:
                todo.appendleft(task)
            retire(w)

    def release(w: _Worker) -> None:
        live.pop(w.conn, None)
        w.conn.close()

    def retire(w: _Worker) -> None:
        """``w`` is dead (or its pipe is): account for its episode, replace it if needed."""
        release(w)
        if w.proc.is_alive():
            w.proc.kill()
        w.proc.join()
        if w.sent is not None:
            k, seed = w.sent
            if w.started or sends.get(k, 0) >= MAX_SENDS_PER_EPISODE:
                on_record(
                    failure_record(
                        agent_name,
                        scenario.name,
                        seed,
                        f"worker process died (exit code {w.proc.exitcode}) "
                        f"while running this episode",
                    )
                )
            else:
                todo.appendleft(w.sent)  # never started: hand it to someone else
        if todo and len(live) < workers:
            start_worker()

    def handle(w: _Worker) -> None:
        try:
            kind, _k, payload = w.conn.recv()
        except (EOFError, OSError):
            retire(w)  # died mid-message or with nothing to say
            return
        if kind == "init_failed":
            raise RuntimeError(f"a worker could not start: {payload}")
        if kind == "started":
            w.started = True
            return
        seed = w.sent[1]
        if kind == "done":
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
        feed(w)

    finished = False
    try:
        for _ in range(min(workers, len(todo))):
            start_worker()
        while live:
            by_sentinel = {w.proc.sentinel: w for w in live.values()}
            for obj in wait(list(live) + list(by_sentinel), timeout=5.0):
                w = live.get(obj) or by_sentinel.get(obj)
                if w is None or w.conn not in live:
                    continue  # retired earlier in this round
                if obj is w.conn or w.conn.poll():
                    handle(w)  # messages first: a worker may answer and then die
                else:
                    retire(w)
        finished = True
    finally:
        for w in list(live.values()):
            release(w)
        if finished:  # every worker was told to stop: let them exit on their own
            for proc in every_proc:
                proc.join(timeout=2)
        stop_processes(every_proc)  # interrupted or failed: stop them now, mid-episode or not
