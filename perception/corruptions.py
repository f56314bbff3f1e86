"""Sensor corruptions for robustness tests: the same frame, degraded on purpose.

Each is a pure function of the frame, a severity and a seed (for the random ones), so
a corrupted evaluation is reproducible.  Severities are in natural units:

``noise``       additive Gaussian noise, standard deviation [0-255 grey levels]
``blur``        Gaussian blur, standard deviation [px]
``brightness``  additive shift of every channel [0-255 grey levels] (negative: darker)
"""

from __future__ import annotations

import cv2
import numpy as np

CORRUPTIONS = ("none", "noise", "blur", "brightness")
DEFAULT_SEVERITY = {"none": 0.0, "noise": 20.0, "blur": 1.0, "brightness": -60.0}


def corrupt(frame: np.ndarray, kind: str, severity: float | None = None, seed: int = 0) -> np.ndarray:
    """A corrupted copy of an RGB uint8 frame."""
    if kind not in CORRUPTIONS:
        raise ValueError(f"unknown corruption {kind!r}; known: {', '.join(CORRUPTIONS)}")
    s = DEFAULT_SEVERITY[kind] if severity is None else float(severity)
    if kind == "none":
        return frame.copy()
    if kind == "noise":
        rng = np.random.default_rng(seed)
        out = frame.astype(np.float32) + rng.normal(0.0, s, frame.shape).astype(np.float32)
    elif kind == "blur":
        out = cv2.GaussianBlur(frame, (0, 0), sigmaX=max(s, 1e-3)).astype(np.float32)
    else:
        out = frame.astype(np.float32) + s
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)
