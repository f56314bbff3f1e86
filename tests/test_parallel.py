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
    return main(["run", "--agent", agent, "--scenario", "merge", "--episodes", "4", "--seed", "10",
                 "--duration", "4", "--video", "none", "--quiet", "--workers", str(workers),
                 "--out", str(out), *extra])


@pytest.mark.parametrize("agent", ["idm", "expert"])
def test_results_per_seed_do_not_depend_on_worker_count(tmp_path, agent):
    """A worker runs several episodes with one agent object, the serial run too, in another
    order: any state an agent leaks from one episode into the next shows up here."""
    assert _run(tmp_path / "w1", 1, agent=agent) == 0
    assert _run(tmp_path / "w2", 2, agent=agent) == 0
    one, two = _records(tmp_path / "w1" / "episodes.jsonl"), _records(tmp_path / "w2" / "episodes.jsonl")
    assert sorted(one) == [10, 11, 12, 13]
    assert one == two
    assert len(list((tmp_path / "w2" / "traces").glob("*.npz"))) == 4


def test_a_killed_worker_is_recorded_and_the_run_finishes(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(FAULT_ENV, "kill-at:11")  # the worker that starts seed 11 SIGKILLs itself
    assert _run(tmp_path / "k", 2) == 0
    recs = _records(tmp_path / "k" / "episodes.jsonl")
    assert sorted(recs) == [10, 11, 12, 13]  # every episode accounted for
    assert recs[11]["status"] == "agent_error" and "worker process died" in recs[11]["error"]
    assert recs[11]["driving_score"] == 0.0
    assert all(recs[s]["status"] == "ok" for s in (10, 12, 13))
    assert "seed 11: agent_error: worker process died" in capsys.readouterr().out
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
    assert _records(tmp_path / "fast" / "episodes.jsonl") == _records(tmp_path / "stock" / "episodes.jsonl")
    config = json.loads((tmp_path / "stock" / "config.json").read_text())
    assert config["fast_physics"] is False and config["workers"] == 1
