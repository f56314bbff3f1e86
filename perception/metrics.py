"""Detection metrics, nuScenes style (Caesar et al. 2020, "nuScenes: A multimodal
dataset for autonomous driving", sec. 3.1).

A detection matches a ground-truth box when their *centres* are within a distance
threshold (0.5, 1, 2, 4 m) - not by box overlap, which punishes small objects for
small errors.  Per threshold, detections of all frames are ranked by score and matched
greedily (highest score first, to the nearest unmatched box of its frame); average
precision is the area under the precision-recall curve, precision made monotone and
sampled at 101 recall points (COCO's interpolation).  Unlike nuScenes we do not clip
recall and precision below 0.1: these scenes are small and a detector that finds
little should score little.

Range bands (0-20, 20-40, 40+ m from the ego) filter ground truth and detections by
their own distance.  True positives at a threshold also give the position error [m]
and the heading error [rad, modulo pi: a box looks the same turned round].
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from perception.boxes import Boxes
from planning.geometry import wrap_angle

DISTANCE_THRESHOLDS_M = (0.5, 1.0, 2.0, 4.0)
RANGE_BANDS_M = ((0.0, 20.0), (20.0, 40.0), (40.0, np.inf))
RECALL_POINTS = np.linspace(0.0, 1.0, 101)


def _in_band(boxes: Boxes, band: tuple[float, float] | None) -> Boxes:
    if band is None:
        return boxes
    r = boxes.range_m
    return boxes.select((r >= band[0]) & (r < band[1]))


def match_frame(det: Boxes, gt: Boxes, threshold_m: float) -> tuple[np.ndarray, np.ndarray]:
    """Greedy centre-distance matching in one frame, highest score first.

    Returns (``gt_index`` [len(det)], -1 for a false positive, in the input order of
    ``det``; ``distance_m`` of each match, NaN for a false positive).
    """
    gt_index = np.full(len(det), -1, dtype=np.int64)
    dist_out = np.full(len(det), np.nan)
    if not len(det) or not len(gt):
        return gt_index, dist_out
    dist = np.linalg.norm(det.centre_m[:, None, :] - gt.centre_m[None, :, :], axis=-1)
    taken = np.zeros(len(gt), dtype=bool)
    for i in np.argsort(-det.score, kind="stable"):
        d = np.where(taken, np.inf, dist[i])
        j = int(np.argmin(d))
        if d[j] <= threshold_m:
            taken[j] = True
            gt_index[i], dist_out[i] = j, d[j]
    return gt_index, dist_out


def average_precision(
    frames: Sequence[tuple[Boxes, Boxes]],
    threshold_m: float,
    band: tuple[float, float] | None = None,
) -> dict[str, float]:
    """AP over ``frames`` of ``(detections, ground truth)`` at one distance threshold.

    Returns ``ap`` (NaN when there is no ground truth in the band), the number of
    ground-truth boxes and detections, and the mean position / heading error of true
    positives.
    """
    scores, hits, errors, heading_errors = [], [], [], []
    n_gt = 0
    for det, gt in frames:
        det, gt = _in_band(det, band), _in_band(gt, band)
        n_gt += len(gt)
        idx, dist = match_frame(det, gt, threshold_m)
        scores.append(det.score)
        hits.append(idx >= 0)
        tp = idx >= 0
        errors.append(dist[tp])
        dh = wrap_angle(2 * (det.heading_rad[tp] - gt.heading_rad[idx[tp]])) / 2  # modulo pi
        heading_errors.append(np.abs(dh))
    score = np.concatenate(scores) if scores else np.zeros(0)
    hit = np.concatenate(hits) if hits else np.zeros(0, dtype=bool)
    n_det = len(score)
    out = {
        "ap": float("nan"),
        "gt": int(n_gt),
        "detections": int(n_det),
        "position_error_m": float("nan"),
        "heading_error_rad": float("nan"),
    }
    err = np.concatenate(errors) if errors else np.zeros(0)
    if len(err):
        out["position_error_m"] = float(np.mean(err))
        out["heading_error_rad"] = float(np.mean(np.concatenate(heading_errors)))
    if n_gt == 0:
        return out
    order = np.argsort(-score, kind="stable")
    tp = np.cumsum(hit[order])
    fp = np.cumsum(~hit[order])
    recall = tp / n_gt
    precision = tp / np.maximum(tp + fp, 1)
    # monotone precision envelope, sampled at 101 recall points (0 beyond the last recall)
    envelope = np.maximum.accumulate(precision[::-1])[::-1] if len(precision) else precision
    sampled = np.zeros_like(RECALL_POINTS)
    for k, r in enumerate(RECALL_POINTS):
        reach = np.flatnonzero(recall >= r - 1e-12)
        sampled[k] = envelope[reach[0]] if len(reach) else 0.0
    out["ap"] = float(sampled.mean())
    return out


def detection_report(frames: Sequence[tuple[Boxes, Boxes]]) -> dict:
    """AP at every threshold, overall and per range band, plus true-positive errors."""
    report = {"thresholds_m": list(DISTANCE_THRESHOLDS_M), "bands": {}}
    for band in (None,) + RANGE_BANDS_M:
        name = "all" if band is None else f"{band[0]:.0f}-{band[1]:.0f}m".replace("-infm", "+m")
        report["bands"][name] = {
            f"{t:g}m": average_precision(frames, t, band) for t in DISTANCE_THRESHOLDS_M
        }
    return report
