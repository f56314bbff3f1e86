"""Pipelines that drive the env to make data or train: demo recording, DAgger, PPO (and its
reward env), the scaling study, detector data, and ``drive compare``."""
