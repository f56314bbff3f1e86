"""Outputs: the evaluation report, side-by-side videos and episode videos."""
