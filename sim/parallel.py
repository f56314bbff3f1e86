"""Whole episodes spread over worker processes, robust to a worker dying.

Each worker is a ``spawn``ed process with its own pipe: the parent hands it one episode
at a time and waits on every pipe and every process sentinel at once
(``multiprocessing.connection.wait``).  So the parent always knows which episode each
worker holds, and a worker that dies (killed, segfault, out of memory) is noticed at
once: its episode is recorded as ``agent_error`` with the exit code, a fresh worker
takes over the remaining episodes, and the run never hangs.  A shared queue could not
promise that: a process killed mid-write leaves a half message that blocks the reader.

Episodes are independent and seeded, so the per-seed results do not depend on the
number of workers (``tests/test_parallel.py`` checks it).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import traceback
from collections import deque
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection, wait
from pathlib import Path

from sim.camera import CameraSpec
from sim.scenarios import Scenario

# Testing hook: a worker that starts this seed kills itself with SIGKILL, so the tests can
# check that a dying worker is recorded and does not hang the run.
KILL_AT_SEED_ENV = "DRIVE_TEST_KILL_WORKER_AT_SEED"


def _worker_main(conn: Connection, agent_name: str, scenario: Scenario, camera: CameraSpec,
                 fast_physics: bool, out_dir: str) -> None:
    # imported here: the parent does not need them, and spawn starts from a clean interpreter
    from sim.run import EpisodeRunner

    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    runner = EpisodeRunner(agent_name, scenario, camera, fast_physics=fast_physics,
                           out_dir=Path(out_dir))
    kill_at = os.environ.get(KILL_AT_SEED_ENV)
    while True:
        try:
            task = conn.recv()
        except EOFError:
            return
        if task is None:
            return
        k, seed, video_path = task
        if kill_at is not None and int(kill_at) == seed:
            os.kill(os.getpid(), signal.SIGKILL)
        try:
            record = runner.run(seed, Path(video_path) if video_path else None)
            conn.send(("done", k, record))
        except Exception:  # noqa: BLE001 - a sim-side failure: report it, keep serving
            conn.send(("failed", k, traceback.format_exc(limit=5)))


def failure_record(agent: str, scenario: str, seed: int, error: str) -> dict:
    """The ``episodes.jsonl`` line for an episode that could not be run to its end."""
    return {"agent": agent, "scenario": scenario, "seed": int(seed), "status": "agent_error",
            "error": error, "driving_score": 0.0, "route_completion": 0.0}


def run_parallel(agent_name: str, scenario: Scenario, seeds: Sequence[int], *, workers: int,
                 camera: CameraSpec, fast_physics: bool, out_dir: Path,
                 video_path: Path | None, on_record: Callable[[dict], None]) -> None:
    """Run every seed on ``workers`` processes; ``on_record`` gets each finished record."""
    ctx = mp.get_context("spawn")
    todo = deque(enumerate(seeds))
    busy: dict[Connection, tuple[mp.Process, tuple[int, int] | None]] = {}

    def start_worker() -> None:
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_worker_main, daemon=True,
                           args=(child, agent_name, scenario, camera, fast_physics, str(out_dir)))
        proc.start()
        child.close()
        busy[parent] = (proc, None)
        feed(parent)

    def feed(conn: Connection) -> None:
        proc, _ = busy[conn]
        if todo:
            k, seed = todo.popleft()
            conn.send((k, seed, str(video_path) if (video_path and k == 0) else None))
            busy[conn] = (proc, (k, seed))
        else:
            conn.send(None)
            busy[conn] = (proc, None)

    def retire(conn: Connection) -> None:
        proc, held = busy.pop(conn)
        proc.join(timeout=5)
        if proc.is_alive():
            proc.kill()
            proc.join()
        conn.close()
        if held is not None:
            k, seed = held
            on_record(failure_record(agent_name, scenario.name, seed,
                                     f"worker process died (exit code {proc.exitcode}) "
                                     f"while running this episode"))
            if todo:
                start_worker()

    try:
        for _ in range(min(workers, len(todo))):
            start_worker()
        while busy:
            by_sentinel = {proc.sentinel: conn for conn, (proc, _) in busy.items()}
            ready = wait(list(busy) + list(by_sentinel), timeout=5.0)
            for obj in ready:
                conn = obj if obj in busy else by_sentinel.get(obj)
                if conn is None or conn not in busy:
                    continue  # already retired in this round
                proc, held = busy[conn]
                if obj is conn:
                    try:
                        kind, k, payload = conn.recv()
                    except (EOFError, OSError):
                        retire(conn)  # died mid-message or before answering
                        continue
                    seed = held[1]
                    if kind == "done":
                        on_record(payload)
                    else:
                        on_record(failure_record(agent_name, scenario.name, seed,
                                                 f"episode failed in the simulator: {payload}"))
                    busy[conn] = (proc, None)
                    feed(conn)
                    if busy[conn][1] is None:  # told to stop: wait for it to exit
                        proc.join(timeout=10)
                        conn.close()
                        busy.pop(conn)
                elif not conn.poll():  # the process ended and left no message behind
                    retire(conn)
    finally:
        for conn, (proc, _) in list(busy.items()):
            if proc.is_alive():
                proc.kill()
            proc.join()
            conn.close()
