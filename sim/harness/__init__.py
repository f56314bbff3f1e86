"""The harness: the control loop, worker processes, runs and evaluations, per-episode
metrics, statistics, and atomic file I/O."""
