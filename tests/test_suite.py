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


def _plan_folder(tmp_path, plan: dict):
    out = tmp_path / "suite"
    out.mkdir()
    (out / SUITE_FILE).write_text(json.dumps(plan))
    return out


def test_the_report_survives_an_axis_no_agent_ran(tmp_path):
    """straight@density+hazards in the quick suite: the maps axis has no agent (its bar chart
    used to die in matplotlib with 'number sections must be larger than 0')."""
    from dataclasses import asdict

    cells = [asdict(c) for c in suite_cells("quick")]
    plan = {
        "suite": "quick",
        "agents": ["straight"],
        "families": {"straight": ["density", "hazards"]},
        "seeds": [0],
        "cells": cells,
        "groups": {},
        "duration_s": None,
        "sensors": {"straight": []},
    }
    paths = write_suite_report(_plan_folder(tmp_path, plan))
    md = paths["md"].read_text()
    assert "## Generalisation" not in md and "## Hazards" in md
    assert "maps" not in paths


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "a JSON list"),
        ('{"suite": "quick", "agents": [], "seeds": [], "groups": {}}', "'cells' is missing"),
        (
            (
                '{"suite": "q", "agents": [], "seeds": [], "groups": {}, "sensors": {}, '
                '"cells": [{"axis": 1}]}'
            ),
            "a damaged cell",
        ),
    ],
)
def test_a_damaged_plan_is_refused_with_its_path_and_reason(tmp_path, capsys, text, reason):
    from sim.cli import main

    out = tmp_path / "suite"
    out.mkdir()
    (out / SUITE_FILE).write_text(text)
    assert main(["bench", "suite", "--report-only", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert str(out / SUITE_FILE) in err and reason in err
    assert main(["bench", "suite", "--resume", "--agents", "idm", "--out", str(out)]) == 2
    assert reason in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--seed-start", "2147483647", "--episodes", "2"], "reaches seed 2147483648"),
        (["--agents", "straight,straight@maps"], "given twice"),
        (["--address", "127.0.0.1:1"], "needs --backend ray"),
        (["--force"], "never replaced"),
    ],
)
def test_suite_options_are_checked_before_anything_is_written(tmp_path, capsys, argv, message):
    from sim.cli import main

    out = tmp_path / "suite"
    assert main(["bench", "suite", "--suite", "quick", "--out", str(out), *argv]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_an_unreachable_ray_cluster_is_refused_before_the_plan_is_written(tmp_path, capsys):
    pytest.importorskip("ray")
    from sim.cli import main

    out = tmp_path / "suite"
    argv = ["bench", "suite", "--suite", "quick", "--agents", "idm", "--out", str(out)]
    assert main([*argv, "--backend", "ray", "--address", "127.0.0.1:1"]) == 2
    assert "cannot reach the Ray cluster at '127.0.0.1:1'" in capsys.readouterr().err
    assert not out.exists()


def test_the_suite_passes_its_duration_on(monkeypatch, tmp_path):
    """``drive bench suite --duration`` used to be accepted and dropped."""
    import sim.harness.suite as suite_mod
    from sim.cli import main

    seen = {}

    def fake_run_suite(out, **kwargs):
        seen.update(kwargs)
        raise SystemExit(0)

    monkeypatch.setattr(suite_mod, "run_suite", fake_run_suite)
    with pytest.raises(SystemExit):
        main(["bench", "suite", "--duration", "3", "--out", str(tmp_path / "s")])
    assert seen["duration_s"] == 3.0


def test_the_suites_cells_come_from_the_scenario_table():
    """The hazards, densities and visual conditions are listed once, beside the scenarios: a
    new hazard scenario joins the suite's hazard axis (and drive eval tracking) by itself."""
    from sim.report.hazard_tracking import HAZARDS as TRACKED
    from sim.world.scenarios import HAZARDS, HIGHWAY_TRAFFIC, VISUAL_CONDITIONS

    cells = suite_cells("full")
    levels = {axis: [c.level for c in cells if c.axis == axis] for axis in ("hazards", "visual")}
    assert levels["hazards"] == [*HAZARDS, "merge:dense"] and TRACKED == HAZARDS
    assert levels["visual"] == list(VISUAL_CONDITIONS)
    assert [c.level for c in cells if c.axis == "density"] == list(HIGHWAY_TRAFFIC)
