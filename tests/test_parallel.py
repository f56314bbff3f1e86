"""Episodes across worker processes: same results per seed, and a dead worker never hangs a run."""

import json
import multiprocessing

import pytest

from sim.cli import main
from sim.harness.parallel import FAULT_ENV


def _records(path):
    out = {}
    for line in path.read_text().splitlines():
        r = json.loads(line)
        out[r["seed"]] = {k: v for k, v in r.items() if not k.startswith("latency")}
    return out


def _run(out, workers, *extra, agent="idm"):
    return main(
        [
            "run",
            "--agent",
            agent,
            "--scenario",
            "merge",
            "--episodes",
            "4",
            "--seed",
            "10",
            "--duration",
            "4",
            "--video",
            "none",
            "--quiet",
            "--workers",
            str(workers),
            "--out",
            str(out),
            *extra,
        ]
    )


@pytest.mark.parametrize("agent", ["idm", "expert"])
def test_results_per_seed_do_not_depend_on_worker_count(tmp_path, agent):
    """A worker runs several episodes with one agent object, the serial run too, in another
    order: any state an agent leaks from one episode into the next shows up here."""
    assert _run(tmp_path / "w1", 1, agent=agent) == 0
    assert _run(tmp_path / "w2", 2, agent=agent) == 0
    one, two = (
        _records(tmp_path / "w1" / "episodes.jsonl"),
        _records(tmp_path / "w2" / "episodes.jsonl"),
    )
    assert sorted(one) == [10, 11, 12, 13]
    assert one == two
    assert len(list((tmp_path / "w2" / "traces").glob("*.npz"))) == 4


def test_a_killed_worker_is_recorded_and_the_run_finishes(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(FAULT_ENV, "kill-at:11")  # each worker that starts seed 11 SIGKILLs itself
    assert _run(tmp_path / "k", 2) == 0
    recs = _records(tmp_path / "k" / "episodes.jsonl")
    assert sorted(recs) == [10, 11, 12, 13]  # every episode accounted for
    lost = "the worker died while running this episode, 2 times"  # as on Ray: one policy
    assert recs[11]["status"] == "agent_error" and recs[11]["error"] == lost
    assert recs[11]["driving_score"] == 0.0
    assert all(recs[s]["status"] == "ok" for s in (10, 12, 13))
    out = capsys.readouterr()
    assert f"seed 11: agent_error: {lost}" in out.out and "exit code -9" in out.err
    assert multiprocessing.active_children() == []


def test_a_worker_killed_once_mid_episode_is_retried_and_nothing_changes(tmp_path, monkeypatch):
    """The retry rule local workers share with Ray actors: an episode whose worker died while
    running it runs once more from its seed; its record is the undisturbed one."""
    assert _run(tmp_path / "calm", 2) == 0
    monkeypatch.setenv(FAULT_ENV, "kill-once-at:11")  # the first worker to start seed 11 dies
    assert _run(tmp_path / "once", 2) == 0
    calm, once = (_records(tmp_path / d / "episodes.jsonl") for d in ("calm", "once"))
    assert once == calm
    assert len((tmp_path / "once" / "episodes.jsonl").read_text().splitlines()) == 4
    assert multiprocessing.active_children() == []  # nothing left running


def test_a_worker_dying_between_episodes_loses_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv(FAULT_ENV, "kill-after:10")  # dies right after reporting seed 10
    assert _run(tmp_path / "a", 2) == 0
    recs = _records(tmp_path / "a" / "episodes.jsonl")
    assert sorted(recs) == [10, 11, 12, 13]
    assert all(r["status"] == "ok" for r in recs.values()), recs  # nobody blamed
    lines = (tmp_path / "a" / "episodes.jsonl").read_text().splitlines()
    assert len(lines) == 4  # each episode recorded once
    assert multiprocessing.active_children() == []


def test_a_worker_that_cannot_start_stops_the_run_with_its_reason(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(FAULT_ENV, "init")
    assert _run(tmp_path / "i", 2) == 1
    err = capsys.readouterr().err
    assert "a worker could not start" in err and "fault injected" in err
    assert multiprocessing.active_children() == []


def test_stock_physics_flag_gives_the_same_episodes(tmp_path):
    assert _run(tmp_path / "fast", 1) == 0
    assert _run(tmp_path / "stock", 1, "--physics", "stock") == 0
    assert _records(tmp_path / "fast" / "episodes.jsonl") == _records(
        tmp_path / "stock" / "episodes.jsonl"
    )
    config = json.loads((tmp_path / "stock" / "config.json").read_text())
    assert config["fast_physics"] is False and config["workers"] == 1


def _workers_in_group(pgid: int) -> list[str]:
    """Command lines of the live processes of process group ``pgid`` other than
    multiprocessing's resource tracker (which exits on its own once its pipe closes); a
    zombie, or a process whose command line is gone (its memory released: it is exiting),
    is not live."""
    import os
    from pathlib import Path

    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:  # it exited while we looked
            continue
        state, pgrp = fields[0], int(fields[2])
        if pgrp == pgid and state != "Z" and cmdline and "resource_tracker" not in cmdline:
            found.append(f"{stat.parent.name}: {cmdline}")
    assert os.getpgid(0) != pgid
    return found


def _interrupt_a_two_worker_run(tmp_path, *, whole_group):
    """``drive run --workers 2`` in its own process group; once one episode is recorded, SIGINT
    to the group (a Ctrl-C at a terminal) or to the parent alone. Returns (exit code, stderr,
    episodes.jsonl lines)."""
    import os
    import signal
    import subprocess
    import sys

    out = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "sim.cli",
        "run",
        "--agent",
        "idm",
        "--scenario",
        "merge",
        "--episodes",
        "60",
        "--seed",
        "10",
        "--duration",
        "4",
        "--video",
        "none",
        "--quiet",
        "--workers",
        "2",
        "--out",
        str(out),
    ]
    # the run stops itself (SIGSTOP) right after its first episode line: a known point
    env = {**os.environ, FAULT_ENV: "pause-after-results:1"}
    # a Ctrl-C reaches the run as at a terminal even when the tests themselves run in the
    # background: a non-interactive shell starts background jobs with SIGINT ignored, a child
    # inherits an ignored signal, and Python then installs no KeyboardInterrupt handler
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            start_new_session=True,
        )
    finally:
        signal.signal(signal.SIGINT, previous)
    episodes = out / "episodes.jsonl"
    try:
        _, status = os.waitpid(proc.pid, os.WUNTRACED)  # blocks until it stops (or exits)
        assert os.WIFSTOPPED(status), proc.communicate()
        if whole_group:  # the SIGINT waits while the run is stopped, and lands on SIGCONT
            os.killpg(proc.pid, signal.SIGINT)
        else:
            os.kill(proc.pid, signal.SIGINT)
        os.kill(proc.pid, signal.SIGCONT)
        _, err = proc.communicate(timeout=600)
        # and no worker outlives the parent: it joins them before it exits
        assert _workers_in_group(proc.pid) == [], "worker processes outlived the run"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc.returncode, err, episodes.read_text().splitlines()


@pytest.mark.parametrize(
    "whole_group", [True, False], ids=["ctrl-c-to-the-group", "sigint-to-the-parent"]
)
def test_ctrl_c_with_two_workers_prints_one_line_and_keeps_finished_episodes(tmp_path, whole_group):
    code, err, lines = _interrupt_a_two_worker_run(tmp_path, whole_group=whole_group)
    assert code == 130
    assert "Traceback" not in err and "KeyboardInterrupt" not in err and "BrokenPipe" not in err, (
        err
    )
    assert len(err.strip().splitlines()) == 1 and "interrupted" in err, err
    assert 1 <= len(lines) < 60
    assert all(json.loads(line)["status"] == "ok" for line in lines)  # nobody blamed for the Ctrl-C
