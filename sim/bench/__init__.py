"""``drive bench``: benchmarks that quote medians and ratios against a baseline measured in
the same run (simulator and camera, harness loop, inference)."""
