"""The report states what each agent saw and sets each paradigm on the rig beside the same
paradigm on the bird's-eye raster (``sim/report/report.py``), on hand-written evaluations."""

import html
import json

import pytest

from sim.harness.evaluate import CONFIG, RESULTS
from sim.report.report import TITLES, _family, _pairs, _sensors_of, build_rows, write_report

E2E = "e2e:runs/x/{scenario}"
E2E_BEV = "e2e-bev:runs/y"
SENSORS = {
    "expert": ["truth", "map", "pose", "speed"],
    "modular": ["cam_front", "cam_rear", "pose", "map", "speed"],
    "modular-bev": ["bev", "pose", "map", "speed"],
    E2E: ["cam_front", "speed", "command"],
    E2E_BEV: ["bev", "speed", "command"],
}
# driving score per seed 0-3; a score under 0.7 here ended in a collision
SCORES = {
    "expert": [1.0, 1.0, 1.0, 1.0],
    "modular": [0.6, 0.8, 1.0, 0.6],
    "modular-bev": [1.0, 1.0, 1.0, 0.8],
    E2E: [0.4, 0.4, 0.6, 0.2],
    E2E_BEV: [1.0, 1.0, 1.0, 1.0],
}
SCENARIOS = ["highway", "lane-keep"]


def _records(scores: dict[str, list[float]]) -> list[dict]:
    return [
        {
            "agent": a,
            "scenario": s,
            "seed": seed,
            "status": "collision" if v < 0.7 else "ok",
            "driving_score": v,
            "route_completion": 1.0,
            "latency_p50_ms": 1.0 + seed,
            "device": "cpu",
        }
        for s in SCENARIOS
        for a, vs in scores.items()
        for seed, v in enumerate(vs)
    ]


def _config(agents: list[str]) -> dict:
    return {
        "agents": agents,
        "scenarios": SCENARIOS,
        "seeds": [0, 1, 2, 3],
        "sensors": {a: SENSORS[a] for a in agents},
    }


def _eval_folder(path, agents: list[str]):
    path.mkdir()
    (path / CONFIG).write_text(json.dumps(_config(agents)))
    (path / RESULTS).write_text(
        "".join(json.dumps(r) + "\n" for r in _records({a: SCORES[a] for a in agents}))
    )
    return path


def _sections(md: str) -> dict[str, str]:
    """Markdown ``## title`` -> the text up to the next heading."""
    return {part.split("\n", 1)[0]: part.split("\n", 1)[1] for part in md.split("\n## ")[1:]}


def test_bev_variants_belong_to_their_paradigm_and_duel_with_the_others():
    assert _family("e2e-bev:x") == "e2e" and _family("e2e-bev") == "e2e" and _family(E2E) == "e2e"
    assert _family("modular-bev") == "modular" and _family("modular-gt") == "modular-gt"
    pairs = _pairs(list(SENSORS))
    for duel in [
        ("modular", E2E),
        ("modular-bev", E2E_BEV),
        ("modular", "modular-bev"),
        (E2E, E2E_BEV),
        (E2E_BEV, "expert"),
    ]:
        assert duel in pairs
    # head to head only on one sensor: across sensors the sensor would differ, not just the paradigm
    assert ("modular", E2E_BEV) not in pairs and ("modular-bev", E2E) not in pairs
    assert ("modular-bev", "modular") not in pairs and (
        E2E_BEV,
        E2E,
    ) not in pairs  # rig - bev, one way


def test_every_scenario_table_names_each_agents_sensors_privileged_marked(tmp_path):
    paths = write_report(_eval_folder(tmp_path / "ev", list(SENSORS)), videos=0)
    line = (
        "Sensors — expert: truth (privileged), map, pose, speed · modular: cam_front, cam_rear, "
        "pose, map, speed · modular-bev: bird's-eye raster (map, privileged), pose, map, speed · "
        f"{E2E}: cam_front, speed, command · {E2E_BEV}: bird's-eye raster (map, privileged), "
        "speed, command"
    )
    sections = _sections(paths["md"].read_text())
    titles = [t.format(s=s) for s in SCENARIOS for t in TITLES.values()]
    assert all(t in sections for t in titles)
    for t in titles:
        assert line in sections[t].split("|", 1)[0], t  # above the table
    page = paths["html"].read_text()
    assert page.count(f"<p class=note>{html.escape(line)}</p>") == len(titles)


def test_the_sensor_axis_pairs_each_paradigm_across_sensors_and_reads_the_verdict(tmp_path):
    paths = write_report(_eval_folder(tmp_path / "ev", list(SENSORS)), videos=0)
    axis = json.loads(paths["json"].read_text())["sensor_axis"]
    assert set(axis) == set(SCENARIOS)
    got = axis["highway"]
    rows = {r["agent"]: r for r in got["rows"]}
    assert [(r["paradigm"], r["sensor"]) for r in got["rows"]] == [
        ("modular", "rig"),
        ("modular", "bev"),
        ("e2e", "rig"),
        ("e2e", "bev"),
    ]
    assert rows["modular"]["driving_score"]["value"] == pytest.approx(0.75)
    assert (
        rows["modular"]["collisions"],
        rows[E2E]["collisions"],
        rows[E2E_BEV]["collisions"],
    ) == (2, 4, 0)
    vs_expert = {a: r["vs_expert"]["difference"]["value"] for a, r in rows.items()}
    assert vs_expert == pytest.approx(
        {"modular": -0.25, "modular-bev": -0.05, E2E: -0.6, E2E_BEV: 0.0}
    )
    zero = rows[E2E_BEV]["vs_expert"]["difference"]  # equal on every seed: a zero-width interval
    assert zero["low"] == zero["high"] == 0.0
    cost = {c["paradigm"]: (c["rig"], c["bev"], c["result"]) for c in got["rig_minus_bev"]}
    assert cost["modular"][:2] == ("modular", "modular-bev") and cost["e2e"][:2] == (E2E, E2E_BEV)
    assert cost["modular"][2]["difference"]["value"] == pytest.approx(
        -0.2
    )  # (-0.4 - 0.2 + 0 - 0.2) / 4
    assert cost["e2e"][2]["difference"]["value"] == pytest.approx(
        -0.6
    )  # (-0.6 - 0.6 - 0.4 - 0.8) / 4
    assert cost["modular"][2]["n"] == 4 and cost["modular"][2]["b_wins"] == 0.75
    # on bev modular trails e2e by 0.05; on the rig it leads by 0.35
    reading = got["reading"]
    assert reading.startswith(
        f"On the bird's-eye raster, modular-bev trails {E2E_BEV} by 0.050 [0.000, 0.150]"
        " (interval includes 0); "
    )
    assert f"on the camera rig, modular leads {E2E} by 0.350 [0.250, 0.400]:" in reading
    assert "the verdict flips when perception stops being free" in reading
    assert "rig - bev, paired: modular -0.200 [" in reading and ", e2e -0.600 [" in reading

    md = paths["md"].read_text()
    section = _sections(md)[TITLES["axis"].format(s="highway")]
    assert (
        "| modular | camera rig | modular | 4 | 0.750 [" in section
        and "| 2 of 4 | -0.250 [" in section
    )
    assert "| modular-bev: -0.200 [" in section
    assert section.index("| paradigm |") < section.index(reading)  # the reading under the table
    assert html.escape(reading) in paths["html"].read_text()
    paired = _sections(md)[TITLES["paired"].format(s="highway")]
    assert (
        f"| modular | {E2E_BEV} | 4 |" not in paired
        and f"| {E2E} | {E2E_BEV} | 4 | -0.600 [" in paired
    )


def test_the_reading_follows_the_numbers():
    scores = {**SCORES, E2E_BEV: [0.8, 0.8, 0.8, 0.8]}  # now modular-bev leads on bev too
    rows = build_rows(_config(list(SENSORS)), _records(scores))
    reading = rows["sensor_axis"]["lane-keep"]["reading"]
    assert reading.startswith(f"On the bird's-eye raster, modular-bev leads {E2E_BEV} by 0.150 [")
    assert "the verdict holds when perception stops being free" in reading


def test_one_paradigm_on_both_sensors_is_enough_and_reads_the_rig_duel():
    agents = ["expert", "modular", "modular-bev", E2E]
    axis = build_rows(_config(agents), _records({a: SCORES[a] for a in agents}))["sensor_axis"][
        "highway"
    ]
    assert [r["agent"] for r in axis["rows"]] == ["modular", "modular-bev", E2E]
    assert [c["paradigm"] for c in axis["rig_minus_bev"]] == ["modular"]
    assert axis["reading"].startswith(f"On the camera rig, modular leads {E2E} by 0.350 [")
    assert (
        "verdict" not in axis["reading"]
        and "(rig - bev, paired: modular -0.200 [" in axis["reading"]
    )


def test_no_sensor_axis_when_every_paradigm_ran_on_one_sensor(tmp_path):
    paths = write_report(_eval_folder(tmp_path / "ev", ["expert", "modular", E2E]), videos=0)
    assert "sensor_axis" not in json.loads(paths["json"].read_text())
    md = paths["md"].read_text()
    assert "the sensor as an axis" not in md and "Sensors — expert: truth (privileged)" in md
    assert "the sensor as an axis" not in paths["html"].read_text()


def test_the_sensor_comes_from_the_recorded_inputs_and_ppo_drives_the_raster():
    # ppo is PilotNet on the bird's-eye raster: it duels e2e-bev, not the rig's e2e
    pairs = _pairs(["e2e", "e2e-bev", "ppo"])
    assert ("e2e-bev", "ppo") in pairs and ("e2e", "ppo") not in pairs
    # a checkpoint spec named e2e that was handed the raster (a bird's-eye study's cell)
    # counts as bev
    recorded = {
        "e2e:cells/x": ["bev", "speed", "command"],
        "modular-bev": ["bev", "pose", "map", "speed"],
        "modular": ["cam_front", "cam_rear", "pose", "map", "speed"],
    }
    sensor = _sensors_of(list(recorded), recorded)
    assert sensor == {"e2e:cells/x": "bev", "modular-bev": "bev", "modular": "rig"}
    assert ("modular-bev", "e2e:cells/x") in _pairs(list(recorded), sensor)
    assert ("modular", "e2e:cells/x") not in _pairs(list(recorded), sensor)
