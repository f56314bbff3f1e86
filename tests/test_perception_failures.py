"""``drive explain``: a collision re-driven and judged on what perception got wrong."""

import ast
import json
from pathlib import Path

import numpy as np
import pytest

import sim.report.perception_failures as pf
from agents.modular import GEOMETRIC, ModularAgent, RigPerception
from perception.boxes import Boxes
from sim.cli import main
from sim.harness.evaluate import CONFIG, RESULTS, checkpoint_hashes


class BlindRig:
    device = "cpu"

    def detect_batch(self, frames, cameras):
        return [Boxes.empty() for _ in cameras]


def _blind(spec, task, device=None):
    """The rig modular agent with a detector that sees nothing (and loads no checkpoint)."""
    perception = RigPerception(task.rig, checkpoint=GEOMETRIC, detector=BlindRig())
    return ModularAgent(task, perception=perception)


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


def _eval_folder(tmp_path, monkeypatch, agents, rows, **config):
    """A ``drive eval`` folder holding ``agents`` and the results ``rows`` (read as given:
    the folder's own reader checks full records)."""
    folder = tmp_path / "eval"
    folder.mkdir(parents=True)
    (folder / CONFIG).write_text(json.dumps({"agents": agents, "duration_s": 2.0, **config}))
    (folder / RESULTS).write_text("".join(json.dumps(r) + "\n" for r in rows))
    monkeypatch.setattr(pf, "read_results", lambda p: rows)
    return folder


NO_CRASH = {"verdict": "no collision"}


def _fake_redrive(monkeypatch):
    """Replace the re-drive by a quick stand-in; returns the list of episodes re-driven."""
    calls = []

    def explain(spec, scenario, seed, *args, **kwargs):
        calls.append((spec, scenario, seed))
        return {"agent": spec, "scenario": scenario, "seed": seed, "status": "ok", **NO_CRASH}

    monkeypatch.setattr(pf, "explain_episode", explain)
    return calls


def _crash(agent, seed=0):
    return {"agent": agent, "scenario": "highway", "seed": seed, "status": "collision"}


def test_an_agent_without_perception_gets_no_perception_verdict(monkeypatch, tmp_path, capsys):
    with pytest.raises(ValueError, match=r"straight.*expert, modular, modular-bev, modular-gt"):
        pf.explain_episode("straight", "highway", 0, duration_s=2.0)
    calls = _fake_redrive(monkeypatch)
    rows = [_crash("straight"), _crash("modular-gt")]
    folder = _eval_folder(tmp_path, monkeypatch, ["modular-gt", "straight"], rows)
    capsys.readouterr()
    assert main(["explain", str(folder), "--agents", "straight", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "straight" in err and "modular-gt" in err
    assert calls == [] and not (folder / "perception_failures.json").exists()
    # by default the planning agents are analysed, the others skipped with a note
    assert main(["explain", str(folder), "--quiet"]) == 0
    assert calls == [("modular-gt", "highway", 0)]
    out = json.loads((folder / "perception_failures.json").read_text())
    assert out["agents"] == ["modular-gt"] and out["skipped"] == ["straight"]
    assert "straight" in capsys.readouterr().out
    # a folder with no planning agent at all is refused, naming the ones explain analyses
    folder = _eval_folder(tmp_path / "other", monkeypatch, ["idm", "e2e"], [_crash("idm")])
    assert main(["explain", str(folder), "--quiet"]) == 2
    assert "expert, modular" in capsys.readouterr().err and len(calls) == 1


def test_explain_keeps_files_it_did_not_write_and_other_analyses(monkeypatch, tmp_path, capsys):
    calls = _fake_redrive(monkeypatch)
    rows = [_crash("modular-gt"), _crash("expert", 1)]
    folder = _eval_folder(tmp_path, monkeypatch, ["modular-gt", "expert"], rows)
    md = folder / "perception_failures.md"
    md.write_text("my notes\n")
    assert main(["explain", str(folder), "--quiet"]) == 2  # drive did not write it
    err = capsys.readouterr().err
    assert "perception_failures.md" in err and "--force" in err and "\n" not in err.strip()
    assert md.read_text() == "my notes\n" and calls == []  # refused before any re-drive
    assert main(["explain", str(folder), "--quiet", "--force"]) == 0 and len(calls) == 2
    assert main(["explain", str(folder), "--quiet"]) == 0 and len(calls) == 4  # the same again
    saved = (folder / "perception_failures.json").read_text()
    assert json.loads(saved)["episodes"] == [["expert", "highway", 1], ["modular-gt", "highway", 0]]
    # other agents, or other episodes (a resumed evaluation): refused unless --force
    assert main(["explain", str(folder), "--agents", "expert", "--quiet"]) == 2
    assert "--force" in capsys.readouterr().err and len(calls) == 4
    rows.append(_crash("expert", 2))
    assert main(["explain", str(folder), "--quiet"]) == 2
    assert "episodes" in capsys.readouterr().err and len(calls) == 4
    assert (folder / "perception_failures.json").read_text() == saved
    assert main(["explain", str(folder), "--quiet", "--force"]) == 0 and len(calls) == 7


def test_explain_refuses_a_checkpoint_changed_since_the_evaluation(monkeypatch, tmp_path, capsys):
    calls = _fake_redrive(monkeypatch)
    ckpt = tmp_path / "det"
    ckpt.mkdir()
    (ckpt / "model.safetensors").write_bytes(b"evaluated")
    spec = f"modular:{ckpt}"
    recorded = {spec: {"highway": {"path": str(ckpt), "sha256": checkpoint_hashes(ckpt)}}}
    folder = _eval_folder(tmp_path, monkeypatch, [spec], [_crash(spec)], checkpoints=recorded)
    assert main(["explain", str(folder), "--quiet"]) == 0 and len(calls) == 1
    assert json.loads((folder / "perception_failures.json").read_text())["warnings"] == []
    (ckpt / "model.safetensors").write_bytes(b"retrained")
    capsys.readouterr()
    assert main(["explain", str(folder), "--quiet"]) == 2 and len(calls) == 1
    err = capsys.readouterr().err.strip()
    old, new = recorded[spec]["highway"]["sha256"]["model.safetensors"], checkpoint_hashes(ckpt)
    assert "\n" not in err and spec in err and "model.safetensors" in err
    assert old[:12] in err and new["model.safetensors"][:12] in err
    assert main(["explain", str(folder), "--quiet", "--force"]) == 0 and len(calls) == 2
    assert "model.safetensors" in capsys.readouterr().err  # the warning
    warnings = json.loads((folder / "perception_failures.json").read_text())["warnings"]
    assert len(warnings) == 1 and "model.safetensors" in warnings[0]


def test_explain_reads_the_agent_contract_without_probing():
    """DESIGN.md: optional capabilities are declared in ``BaseAgent``, never probed."""
    tree = ast.parse(Path(pf.__file__).read_text())
    probes = [
        n.lineno
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "getattr"
    ]
    assert probes == []
