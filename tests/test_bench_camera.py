"""``drive bench camera``: every row (top-down, each rig camera, the label path, highway-env)
is timed and reported with median, p90 and p99, per scenario; names are checked first."""

import io
import json
from contextlib import redirect_stdout

import pytest

from sim.bench import simulator
from sim.bench.simulator import CAMERA_ROWS, bench_camera, format_camera
from sim.cli import main
from sim.geometry.pinhole import default_rig
from sim.world.scenarios import SCENARIOS


@pytest.fixture(scope="module")
def two_scenarios(tmp_path_factory):
    """One short run on two scenarios through the CLI: (printed text, the JSON written)."""
    out = tmp_path_factory.mktemp("bench") / "camera.json"
    buf = io.StringIO()
    with redirect_stdout(buf):
        rc = main(
            [
                "bench",
                "camera",
                "--frames",
                "4",
                "--scenario",
                "lane-keep, roundabout",
                "--out",
                str(out),
            ]
        )
    assert rc == 0
    return buf.getvalue(), json.loads(out.read_text())


def test_every_row_of_every_scenario_is_timed(two_scenarios):
    _, result = two_scenarios
    assert result["benchmark"] == "camera" and result["frames"] == 4
    assert [sc["scenario"] for sc in result["scenarios"]] == ["lane-keep", "roundabout"]
    rig = default_rig()
    for sc in result["scenarios"]:
        rows = {row["renderer"]: row for row in sc["rows"]}
        assert [row["renderer"] for row in sc["rows"]] == list(CAMERA_ROWS)
        for row in sc["rows"]:
            assert 0 < row["median_ms"] <= row["p90_ms"] <= row["p99_ms"], row
            assert row["vs_highway_env"] > 0 and row["vs_top_down"] > 0
        for name in ("cam_front", "cam_rear"):  # the rig's cameras at their default size
            assert (rows[name]["width_px"], rows[name]["height_px"]) == rig[name].shape[1::-1]
        assert (rows["top_down"]["width_px"], rows["top_down"]["height_px"]) == (128, 128)
        assert rows["highway_env"]["vs_highway_env"] == pytest.approx(1.0)
        assert rows["top_down"]["vs_top_down"] == pytest.approx(1.0)
        base = rows["highway_env"]["median_ms"]
        assert rows["cam_front"]["vs_highway_env"] == pytest.approx(
            base / rows["cam_front"]["median_ms"]
        )


def test_the_text_has_one_table_per_scenario_with_p99(two_scenarios):
    text, _ = two_scenarios
    tables = text.split("camera benchmark: ")[1:]
    assert [t.split(",")[0] for t in tables] == ["lane-keep", "roundabout"]
    for table in tables:
        assert "p99 ms" in table and "median ms" in table
        for label in (
            "top-down",
            "cam_front (",
            "cam_rear (",
            "instance mask + depth",
            "GrayscaleObservation",
        ):
            assert label in table


def test_all_means_every_scenario(monkeypatch, capsys):
    seen = {}

    def fake(names, frames, size_px):
        seen["names"] = names
        return {
            "benchmark": "camera",
            "frames": frames,
            "size_px": size_px,
            "seed": 0,
            "scenarios": [],
        }

    monkeypatch.setattr(simulator, "bench_cameras", fake)
    assert main(["bench", "camera", "--scenario", "all", "--frames", "1"]) == 0
    assert seen["names"] == tuple(SCENARIOS)


def test_an_unknown_scenario_lists_the_known_ones(capsys):
    assert main(["bench", "camera", "--scenario", "highway,nowhere", "--frames", "1"]) == 2
    err = capsys.readouterr().err
    assert "nowhere" in err and all(name in err for name in SCENARIOS)


def test_bad_frame_count_is_refused():
    with pytest.raises(ValueError, match="frames"):
        bench_camera("highway", frames=0)


def test_format_shows_ratios_of_medians():
    rows = [
        {
            "renderer": n,
            "label": n,
            "width_px": 8,
            "height_px": 8,
            "median_ms": m,
            "p90_ms": m,
            "p99_ms": 2 * m,
            "vs_highway_env": 4.0 / m,
            "vs_top_down": m / 1.0,
        }
        for n, m in zip(CAMERA_ROWS, (1.0, 2.0, 2.0, 3.0, 4.0))
    ]
    text = format_camera(
        {
            "scenarios": [
                {"scenario": "highway", "frames": 3, "episodes": 1, "seed": 0, "rows": rows}
            ]
        }
    )
    line = next(x for x in text.splitlines() if x.startswith("cam_front "))
    assert line.split()[-5:] == ["2.000", "2.000", "4.000", "2.00x", "2.00x"]
