"""Sensor corruptions for robustness tests: the same frame, degraded on purpose.

Each is a pure function of the frame, a severity and a seed (for the random ones), so
a corrupted evaluation is reproducible.  Severities are in natural units:

``noise``       additive Gaussian noise, standard deviation [0-255 grey levels]
``blur``        Gaussian blur, standard deviation [px]
``brightness``  additive shift of every channel [0-255 grey levels] (negative: darker)
``dirt``        mud on the lens: opaque blobs with feathered edges covering a fraction
                [0-1] of the image (:func:`lens_dirt_mask`, :func:`apply_lens_dirt`)

The harness's fault injector (:mod:`sim.harness.faults`) degrades camera frames with these
functions, so each piece of image maths has this one home.
"""

from __future__ import annotations

import cv2
import numpy as np

CORRUPTIONS = ("none", "noise", "blur", "brightness", "dirt")
DEFAULT_SEVERITY = {"none": 0.0, "noise": 20.0, "blur": 1.0, "brightness": -60.0, "dirt": 0.15}

SEVERITY_RANGE = {
    "none": (0.0, 0.0),
    "noise": (0.0, 255.0),  # [grey levels] beyond a standard deviation of 255 it is all clipping
    "blur": (0.0, 64.0),  # [px] a sigma of 64 px already blurs a 256 x 128 frame to its mean
    "brightness": (-255.0, 255.0),  # [grey levels] beyond +-255 every pixel is black or white
    "dirt": (0.0, 0.99),  # [fraction] full coverage would never stop adding blobs
}
"""The severities each corruption accepts (inclusive): past them the image cannot get worse,
and an unbounded blur's kernel grows with its sigma (``blur:1e9`` would run for hours)."""


def check_severity(kind: str, severity: float) -> float:
    """``severity`` as a float when ``kind`` accepts it (:data:`SEVERITY_RANGE`); a one-line
    error naming the range otherwise."""
    low, high = SEVERITY_RANGE[kind]
    value = float(severity)
    if not low <= value <= high:  # NaN fails too
        raise ValueError(f"{kind} severity must be within [{low:g}, {high:g}], got {severity!r}")
    return value


DIRT_RGB = (72, 60, 48)
"""Colour of lens dirt (dried mud, RGB): dark and brown, unlike any road, car or sky colour
the renderer draws, so a detector cannot mistake a blob for a car's body by colour alone."""
DIRT_BLOB_RADIUS = (0.06, 0.16)
"""Semi-axis range of one dirt blob as a fraction of the image's shorter side: droplets
large enough to hide a car 20 m ahead (~10 px wide in a 128-row frame), few enough that
30 % coverage is a handful of splashes, not a uniform veil."""
DIRT_FEATHER = 0.25
"""Blur of the blobs' edges (Gaussian sigma as a fraction of the mean blob semi-axis): dirt
on a lens is out of focus, so its edges are soft, not drawn."""


def corrupt(
    frame: np.ndarray, kind: str, severity: float | None = None, seed: int | np.random.Generator = 0
) -> np.ndarray:
    """A corrupted copy of an RGB uint8 frame.

    ``seed``: an integer, or a ``numpy`` Generator to draw from (the harness passes its
    per-camera fault stream, so a whole episode's noise comes from one seeded stream).
    """
    if kind not in CORRUPTIONS:
        raise ValueError(f"unknown corruption {kind!r}; known: {', '.join(CORRUPTIONS)}")
    s = DEFAULT_SEVERITY[kind] if severity is None else check_severity(kind, severity)
    if kind == "none":
        return frame.copy()
    if kind == "dirt":
        return apply_lens_dirt(frame, lens_dirt_mask(frame.shape[:2], s, seed))
    if kind == "noise":
        rng = np.random.default_rng(seed)
        out = frame.astype(np.float32) + rng.normal(0.0, s, frame.shape).astype(np.float32)
    elif kind == "blur":
        out = cv2.GaussianBlur(frame, (0, 0), sigmaX=max(s, 1e-3)).astype(np.float32)
    else:
        out = frame.astype(np.float32) + s
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def lens_dirt_mask(
    shape_hw: tuple[int, int], coverage: float, seed: int | np.random.Generator = 0
) -> np.ndarray:
    """Opacity ``float32[H, W]`` in [0, 1] of mud on a lens covering ``coverage`` of the image.

    Random ellipses (centres uniform over the image, semi-axes :data:`DIRT_BLOB_RADIUS` of
    the shorter side) are added until their union covers at least ``coverage`` of the
    pixels, then their edges are feathered (:data:`DIRT_FEATHER`); the area where the
    opacity exceeds one half stays close to ``coverage``.  A pure function of its arguments,
    so one seed gives one lens for a whole episode.
    """
    if not 0.0 <= coverage < 1.0:
        raise ValueError(f"lens dirt coverage must be a fraction in [0, 1), got {coverage!r}")
    h, w = int(shape_hw[0]), int(shape_hw[1])
    rng = np.random.default_rng(seed)
    hard = np.zeros((h, w), np.uint8)
    side = min(h, w)
    axes_sum, blobs = 0.0, 0
    while hard.mean() < coverage:
        axes = rng.uniform(*DIRT_BLOB_RADIUS, size=2) * side
        centre = rng.uniform((0, 0), (w, h))
        angle_deg = rng.uniform(0.0, 180.0)
        cv2.ellipse(
            hard,
            (int(centre[0]), int(centre[1])),
            (max(int(axes[0]), 1), max(int(axes[1]), 1)),
            angle_deg,
            0.0,
            360.0,
            1,
            thickness=-1,
        )
        axes_sum, blobs = axes_sum + float(axes.mean()), blobs + 1
    if blobs == 0:
        return hard.astype(np.float32)
    sigma_px = DIRT_FEATHER * axes_sum / blobs
    return np.clip(cv2.GaussianBlur(hard.astype(np.float32), (0, 0), sigmaX=sigma_px), 0.0, 1.0)


def apply_lens_dirt(frame: np.ndarray, opacity: np.ndarray, colour_rgb=DIRT_RGB) -> np.ndarray:
    """A copy of an RGB uint8 ``frame`` seen through dirt of ``opacity`` ``[H, W]`` (see
    :func:`lens_dirt_mask`): each pixel blended towards ``colour_rgb`` by its opacity."""
    if opacity.shape != frame.shape[:2]:
        raise ValueError(
            f"dirt opacity of shape {opacity.shape} does not fit a frame of shape {frame.shape}"
        )
    alpha = opacity[..., None]
    out = frame.astype(np.float32) * (1.0 - alpha) + np.asarray(colour_rgb, np.float32) * alpha
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)
