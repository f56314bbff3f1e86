"""``drive explain``: a collision re-driven and judged on what perception got wrong."""

import json

import numpy as np

import sim.report.perception_failures as pf
from agents.modular import ModularAgent, RigPerception
from perception.boxes import Boxes
from sim.cli import main
from sim.harness.evaluate import CONFIG, RESULTS


class BlindRig:
    device = "cpu"

    def detect_batch(self, frames, cameras):
        return [Boxes.empty() for _ in cameras]


def _blind(spec, task, device=None):
    return ModularAgent(task, perception=RigPerception(task.rig, detector=BlindRig()))


def _find_crash(monkeypatch):
    monkeypatch.setattr(pf, "make_agent", _blind)
    for seed in range(8):
        r = pf.explain_episode("modular", "highway", seed, duration_s=20.0)
        if r["status"] == "collision":
            return r
    raise AssertionError("a blind modular agent never crashed on highway seeds 0-7")


def test_a_blind_agent_s_collision_is_a_missed_object(monkeypatch):
    r = _find_crash(monkeypatch)
    assert (
        r["verdict"] == "missed"
        and r["tracked_share"] == 0.0
        and r["first_tracked_s_before"] is None
    )
    assert r["object_kind"] == "vehicle" and r["range_m"] < 10.0
    assert isinstance(r["in_camera_view"], list)


def test_a_perfect_agent_is_never_blamed_on_perception(monkeypatch):
    r = pf.explain_episode("modular-gt", "highway", 0, duration_s=3.0)
    assert r["verdict"] == "no collision" and r["status"] == "ok"


def test_explain_writes_a_table_of_every_collision(monkeypatch, tmp_path):
    crash = _find_crash(monkeypatch)
    folder = tmp_path / "eval"
    folder.mkdir()
    (folder / CONFIG).write_text(json.dumps({"agents": ["modular", "idm"], "duration_s": 20.0}))
    rows = [
        {"agent": "modular", "scenario": "highway", "seed": crash["seed"], "status": "collision"},
        {"agent": "idm", "scenario": "highway", "seed": 0, "status": "collision"},
        {"agent": "modular", "scenario": "highway", "seed": 99, "status": "ok"},
    ]
    (folder / RESULTS).write_text("".join(json.dumps(r) + "\n" for r in rows))
    monkeypatch.setattr(
        pf, "read_results", lambda p: rows
    )  # the folder's own reader checks full records
    assert main(["explain", str(folder), "--quiet"]) == 0
    out = json.loads((folder / "perception_failures.json").read_text())
    assert out["agents"] == ["modular"] and out["summary"] == {"modular": {"missed": 1}}
    md = (folder / "perception_failures.md").read_text()
    assert "**missed**" in md and f"| highway | {crash['seed']} |" in md
    assert main(["explain", str(folder), "--agents", "ppo"]) == 2
    assert np.isfinite(out["collisions"][0]["bearing_deg"])
