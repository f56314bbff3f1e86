"""The benchmark suite: its cells, which agents run which, the run into drive eval folders, the
report with one curve per axis and the generalisation gaps."""

from __future__ import annotations

import json

import pytest

from sim.harness.suite import SUITE_FILE, plan_groups, run_suite, suite_cells, suite_scores
from sim.report.suite import build_suite, write_suite_report
from sim.world.scenarios import FAULT_LEVELS, FAULTS, get_scenario

SENSORS = {
    "expert": ["truth", "map", "pose", "speed"],
    "e2e": ["cam_front", "speed", "command"],
    "modular": ["cam_front", "cam_rear", "speed", "pose", "map"],
    "idm": ["autopilot"],
}


def test_full_suite_has_every_axis_and_every_fault_at_three_levels():
    cells = suite_cells("full")
    axes = {c.axis for c in cells}
    assert {"density", "hazards", "maps", "visual"} <= axes
    for kind in FAULTS:
        levels = [c.level for c in cells if c.axis == f"fault:{kind}"]
        assert levels == ["0", *map(str, FAULT_LEVELS)]
    for c in cells:  # every cell is a canonical scenario name that parses
        assert get_scenario(c.scenario).name == c.scenario
    maps = {c.level: c.scenario for c in cells if c.axis == "maps"}
    assert maps["track:unseen"] == "track:unseen" and maps["track:train"] == "track"
    with pytest.raises(ValueError, match="unknown suite 'ful'; known: full, quick"):
        suite_cells("ful")


def test_agents_run_only_the_cells_that_can_change_their_episodes():
    groups = plan_groups(suite_cells("full"), SENSORS)
    runs = {(s, a) for g in groups.values() for s in g["scenarios"] for a in g["agents"]}
    assert ("highway-short:noise=2", "e2e") in runs and ("highway-short:noise=2", "modular") in runs
    assert (
        "highway-short:noise=2",
        "expert",
    ) not in runs  # reads no camera: its clean episodes stand
    assert ("highway-short:night", "idm") not in runs
    assert ("highway-short:pose=1", "modular") in runs and (
        "highway-short:pose=1",
        "e2e",
    ) not in runs
    for agent in SENSORS:  # latency reaches every agent; the world axes too
        for s in (
            "highway-short:latency=3",
            "highway-short:dense",
            "cut-in",
            "track:unseen",
            "highway-short",
        ):
            assert (s, agent) in runs


def test_quick_suite_runs_reports_and_marks_unaffected_agents(tmp_path):
    out = tmp_path / "suite"
    cells = [c for c in suite_cells("quick") if not c.scenario.startswith("track")]
    import sim.harness.suite as suite_mod

    suite_mod.SUITES["tiny"] = lambda: cells
    try:
        run_suite(
            out,
            suite="tiny",
            agents=["idm", "straight"],
            seeds=[0, 1],
            workers=1,
            progress=False,
            duration_s=1.0,
        )
    finally:
        del suite_mod.SUITES["tiny"]
    plan = json.loads((out / SUITE_FILE).read_text())
    assert plan["agents"] == ["idm", "straight"] and plan["duration_s"] == 1.0
    data = suite_scores(out)
    noisy = data["records"][("highway-short:noise=3", "idm")]
    assert [r["seed"] for r in noisy] == [0, 1] and all(r["unaffected"] for r in noisy)
    late = data["records"][("highway-short:latency=3", "idm")]
    assert not any(r.get("unaffected") for r in late)
    suite = build_suite(data)
    assert [r["level"] for r in suite["axes"]["density"]] == ["regular", "dense"]
    paths = write_suite_report(out)
    md = paths["md"].read_text()
    for title in (
        "Traffic density",
        "Hazards",
        "Visual conditions",
        "Sensor and actuation faults",
        "Generalisation gaps",
    ):
        assert f"## {title}" in md
    assert "=clean" in md
    for key in ("density", "faults", "hazards", "visual"):
        assert paths[key].stat().st_size > 5000
    with pytest.raises(FileExistsError, match="--resume"):
        run_suite(out, suite="quick", agents=["idm", "straight"], seeds=[0, 1], progress=False)


def test_an_agent_can_be_limited_to_some_axis_families():
    from sim.harness.suite import parse_suite_agent

    assert parse_suite_agent("e2e-bev@density+hazards") == ("e2e-bev", ("density", "hazards"))
    assert parse_suite_agent("e2e") == ("e2e", None)
    with pytest.raises(
        ValueError, match="unknown axis families.*known: density, hazards, maps, visual, fault"
    ):
        parse_suite_agent("e2e@weather")
    sensors = {**SENSORS, "e2e-bev": ["bev", "speed", "command"]}
    groups = plan_groups(suite_cells("full"), sensors, {"e2e-bev": ("density", "hazards")})
    runs = {(s, a) for g in groups.values() for s in g["scenarios"] for a in g["agents"]}
    assert ("cut-in", "e2e-bev") in runs and ("highway-short:dense", "e2e-bev") in runs
    assert not any(
        a == "e2e-bev" and s in ("track", "highway-short:night", "highway-short:latency=3")
        for s, a in runs
    )
