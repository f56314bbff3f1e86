"""Training is decided by samples, not seconds: a recipe fixes the samples a network sees, so a
busy machine trains the same network as a quiet one; a time budget only caps, loudly (a
warning, ``stopped: "budget"``, and the samples and epochs it got in the checkpoint and the
report).  The busy machine is a fake clock: every reading is 100 s after the last."""

import hashlib
import itertools
import json
import time

import pytest

from agents.e2e.agent import policy_experience
from agents.e2e.train import E2ETrainConfig, train_e2e
from sim.pipelines.compare import RECIPES
from sim.pipelines.record import NoiseConfig, record_dataset
from sim.world.scenarios import get_scenario


@pytest.fixture(scope="module")
def demos(tmp_path_factory):
    root = tmp_path_factory.mktemp("budget") / "demos"
    record_dataset(
        get_scenario("lane-keep", duration_s=3.0),
        [21, 22],
        root,
        noise=NoiseConfig(0.3),
        progress=False,
    )
    return root


def _train(demos, out, *, busy: bool, monkeypatch, budget_s: float = 0.0) -> dict:
    recipe = E2ETrainConfig(
        model="pilotnet-s", epochs=3, batch_size=32, patience=5, budget_s=budget_s, threads=1
    )
    with monkeypatch.context() as m:
        if busy:  # a loaded machine: each step takes "100 s"
            start, ticks = time.time(), itertools.count()
            m.setattr(time, "time", lambda: start + 100.0 * next(ticks))
        train_e2e(demos, out, recipe, device="cpu", progress=False)
    return json.loads((out / "e2e.json").read_text())


def _sha(path) -> str:
    return hashlib.sha256((path / "model.safetensors").read_bytes()).hexdigest()


def test_every_compare_recipe_is_fixed_by_its_samples_not_a_clock():
    for recipe in RECIPES.values():
        for table in (recipe.e2e, recipe.e2e_rig):
            for name, e2e in table.items():
                assert e2e.budget_s == 0, (recipe.name, name)


def test_a_busy_machine_trains_the_same_network(demos, tmp_path, monkeypatch):
    quiet = _train(demos, tmp_path / "quiet", busy=False, monkeypatch=monkeypatch)
    busy = _train(demos, tmp_path / "busy", busy=True, monkeypatch=monkeypatch)
    assert _sha(tmp_path / "quiet") == _sha(tmp_path / "busy")
    for meta in (quiet, busy):
        t = meta["training"]
        assert t["stopped"] == "epochs" and t["epochs_trained"] == 3
        assert t["samples_seen"] == t["samples_planned"] == 3 * t["train_frames"]


def test_a_budget_only_caps_and_says_so(demos, tmp_path, monkeypatch, capsys):
    meta = _train(demos, tmp_path / "cut", busy=True, monkeypatch=monkeypatch, budget_s=150.0)
    t = meta["training"]
    assert t["stopped"] == "budget" and t["epochs_trained"] == 1
    assert t["samples_seen"] < t["samples_planned"]
    err = capsys.readouterr().err
    assert "budget stopped training after 1 of 3 epochs" in err
    seen = policy_experience(meta)
    assert seen["stopped"] == "budget" and seen["epochs"] == 1 and seen["epochs_planned"] == 3
    assert seen["samples_seen"] == t["samples_seen"]


def test_the_report_names_the_samples_and_a_budgets_cut():
    from sim.report.report import _tables

    exp = {
        "samples_seen": 1200,
        "epochs": 1,
        "epochs_planned": 3,
        "stopped": "budget",
        "demo_frames": 500,
        "env_steps": 0,
    }
    rows = {
        "scenarios": {},
        "checkpoints": {"e2e": {"highway": {"path": "runs/x", "sha256": {}}}},
        "experience": {"e2e": {"highway": exp}},
    }
    (_, header, cells) = _tables(rows)[-1]
    assert header[-1] == "training samples (epochs)"
    assert cells[0][-1] == "1,200 (1 epochs of 3: cut by the time budget)"
