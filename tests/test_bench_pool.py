"""``drive bench pool``: both episode pools on the same evaluation (here the local one alone,
at a tiny size; the Ray row needs a cluster and runs as a benchmark, not a test)."""

from sim.bench.pool import bench_pool, format_pool


def test_the_pool_benchmark_times_the_local_pool_and_says_why_ray_is_missing():
    r = bench_pool(
        agents=("straight",),
        scenarios=("lane-keep",),
        episodes=2,
        duration_s=1.0,
        repeats=1,
        ray=False,
    )
    assert r["episodes"] == 2 and len(r["times_s"]["local"]) == 1
    assert r["local_over_ray"] is None
    text = format_pool(r)
    assert "local" in text and "ray: skipped" in text
