"""What happened on the road at a failure (``drive explain``'s mechanisms) and how fast
perception gets a hazard right (``drive eval tracking``)."""

import json

import numpy as np
import pytest

from sim.cli import main
from sim.report.hazard_tracking import (
    format_tracking,
    hazard_object,
    summarise_tracking,
    track_hazard,
)
from sim.report.perception_failures import collision_mechanism, shortfall_mechanism

DT = 1 / 15


def step(objects, ego_speed=20.0, lane_change=0, t=0.0):
    """One re-drive step: the ego at x = ego_speed * t heading +x; objects (id, x, y, speed)
    in the world frame."""
    o = np.asarray(objects, dtype=float).reshape(-1, 4)
    return {
        "truth": {"id": o[:, 0].astype(np.int64), "position_m": o[:, 1:3], "speed_mps": o[:, 3]},
        "ego": {
            "position_m": np.array([ego_speed * t, 0.0]),
            "heading_rad": 0.0,
            "speed_mps": ego_speed,
        },
        "lane_change": lane_change,
    }


def window(fn, n=45):
    return [step(*fn(k * DT), t=k * DT) for k in range(n)]


@pytest.mark.parametrize(
    "case, expected",
    [
        (lambda t: ([(7, 20 * t + 6, 0.0, 20.0 - 6 * t)], 20.0, 0), "lead braking"),
        (lambda t: ([(7, 20 * t + 6, 0.0, 0.0)],), "stopped object"),
        (lambda t: ([(7, 20 * t - 4, 0.0, 25.0)],), "rear-ended"),
        (lambda t: ([(7, 20 * t + 5, 0.0, 20.0)], 20.0, -1), "lane change"),
        (lambda t: ([(7, 20 * t + 5, max(0.0, 4.0 - 2 * t), 20.0)],), "cut-in"),
    ],
)
def test_each_collision_gets_its_mechanism(case, expected):
    w = window(case)
    assert collision_mechanism(w, 7, DT) == expected


def test_a_shortfall_is_standing_following_or_slow():
    stood = [step([(1, 50.0, 0.0, 0.0)], ego_speed=0.0) for _ in range(60)]
    assert shortfall_mechanism(stood, DT) == "stood still"
    follow = [step([(1, 10 * k * DT + 20, 0.0, 10.0)], ego_speed=10.0, t=k * DT) for k in range(60)]
    assert shortfall_mechanism(follow, DT) == "behind slow traffic"
    free = [step([], ego_speed=10.0, t=k * DT) for k in range(60)]
    assert shortfall_mechanism(free, DT) == "slow on a free road"


def test_the_hazard_object_is_found_from_ground_truth():
    steps = window(lambda t: ([(3, 20 * t + 14, 0.0, 20.0), (4, 20 * t + 30, 4.0, 20.0)],))
    assert hazard_object("hard-brake", steps) == 3
    steps = window(lambda t: ([(3, 180.0, 0.0, 0.0), (4, 20 * t + 20, 0.0, 20.0)],))
    assert hazard_object("stopped-car", steps) == 3
    steps = window(lambda t: ([(5, 20 * t + 12, max(0.0, 4.0 - 2 * t), 17.0)],))
    assert hazard_object("cut-in", steps) == 5
    with pytest.raises(ValueError, match="known: cut-in, hard-brake"):
        hazard_object("highway", steps)


def test_ground_truth_perception_gets_a_braking_lead_right_fast():
    """modular-gt's objects are ground truth: its latency is the acceleration estimate's
    (two speed differences), a fraction of a second, with no speed or position error."""
    r = track_hazard("modular-gt", "hard-brake", 0)
    assert r["onset_s"] is not None and r["latency_s"] is not None and r["latency_s"] <= 0.2
    assert r["median_speed_error_mps"] == 0.0 and r["median_position_error_m"] == 0.0
    table = format_tracking(summarise_tracking([r]))
    assert "`modular-gt` | hard-brake | 1 | 1 |" in table


def test_drive_eval_tracking_refuses_what_it_cannot_time(tmp_path, capsys):
    assert (
        main(
            [
                "eval",
                "tracking",
                "--agents",
                "modular-gt",
                "--scenarios",
                "highway",
                "--episodes",
                "1",
            ]
        )
        == 2
    )
    assert "known: cut-in, hard-brake, stopped-car" in capsys.readouterr().err
    out = tmp_path / "t.json"
    out.write_text("{}")
    assert (
        main(
            [
                "eval",
                "tracking",
                "--agents",
                "modular-gt",
                "--scenarios",
                "hard-brake",
                "--episodes",
                "1",
                "--out",
                str(out),
            ]
        )
        == 2
    )
    assert json.loads(out.read_text()) == {}  # never overwritten


def test_drive_eval_tracking_writes_its_table(tmp_path, capsys):
    out = tmp_path / "tracking.json"
    assert (
        main(
            [
                "eval",
                "tracking",
                "--agents",
                "modular-gt",
                "--scenarios",
                "hard-brake",
                "--episodes",
                "1",
                "--quiet",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    data = json.loads(out.read_text())
    assert data["seeds"] == [0] and len(data["episodes"]) == 1
    assert data["summary"][0]["scenario"] == "hard-brake" and data["summary"][0]["right"] == 1
    assert "| `modular-gt` | hard-brake | 1 | 1 |" in out.with_suffix(".md").read_text()
    assert "latency p50" in capsys.readouterr().out
