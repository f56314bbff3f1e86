"""``drive bench data``: recording and loading rates at a tiny size (the figures themselves
are a benchmark's, not a test's)."""

from sim.bench.data import bench_data, format_data
from sim.cli import main


def test_the_data_benchmark_records_with_each_worker_count_and_loads_both_ways():
    r = bench_data(scenario="lane-keep", episodes=3, duration_s=2.0, batches=2, repeats=1)
    assert [(row["driver"], row["workers"]) for row in r["recording"]] == [
        ("expert", 1),
        ("expert", 2),
    ]
    assert r["recording"][0]["frames"] == r["recording"][1]["frames"] > 0  # same seeds
    mem, stream = r["loading"]["memory"], r["loading"]["stream"]
    assert mem["frames_mb"] == stream["frames_mb"] > 0
    assert mem["load_peak_mb"] > mem["frames_mb"] > stream["load_peak_mb"]
    assert "streamed / in memory" in format_data(r)


def test_the_data_benchmark_refuses_a_driver_that_is_not_a_network(capsys):
    assert main(["bench", "data", "--agent", "idm"]) == 2
    assert "end-to-end network" in capsys.readouterr().err
