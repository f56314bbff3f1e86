"""Side-by-side videos: the same seed driven by each agent, in adjacent panels.

Episodes are deterministic per seed, so a clip is made by driving the seed again with the
episode video observer (:class:`sim.report.video.EpisodeVideo`: top-down camera with the
detector's boxes for ``modular``, overview with the plan, the rig's cameras with the perceived
objects as 3D boxes, steering and acceleration bars) and the
clips are tiled into one H.264 MP4, frame by frame (never all in memory).  An agent whose
episode ended early holds its last frame, dimmed, under its final status.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import av
import cv2
import numpy as np

from sim.geometry.bev import BevCamera
from sim.harness.io import publish_file
from sim.harness.run import EpisodeRunner
from sim.report.video import VideoFile, av_target
from sim.world.scenarios import get_scenario

SCALE = 0.5  # each agent's clip (its whole frame: panels, rig row, HUD) at half size in the grid
COLUMNS = 3
SEAM_RGB = (200, 200, 200)


def _tile_size(clip_width_px: int, clip_height_px: int) -> tuple[int, int]:
    """A clip's frame at ``SCALE``, rounded to even sizes (H.264 yuv420p)."""
    return 2 * round(clip_width_px * SCALE / 2), 2 * round(clip_height_px * SCALE / 2)


def _label(img: np.ndarray, text: str, colour=(255, 255, 255)) -> None:
    cv2.rectangle(img, (0, 0), (img.shape[1], 20), (0, 0, 0), -1)
    cv2.putText(img, text, (6, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, 1, cv2.LINE_AA)


def drive_clips(
    agents: Sequence[str],
    scenario: str,
    seed: int,
    folder: Path,
    *,
    duration_s: float | None = None,
    camera: BevCamera | None = None,
    device: str | None = None,
    decision_timeout_s: float | None = None,
) -> list[tuple[Path, dict]]:
    """Drive ``seed`` once per agent with the episode video on; ``(clip, record)`` each."""
    world = get_scenario(scenario, **({"duration_s": duration_s} if duration_s else {}))
    camera = camera or BevCamera()
    out = []
    with tempfile.TemporaryDirectory(prefix="drive-clips-") as traces:
        for k, spec in enumerate(agents):
            runner = EpisodeRunner(
                spec,
                world,
                camera,
                fast_physics=True,
                out_dir=Path(traces),
                device=device,
                decision_timeout_s=decision_timeout_s,
            )
            try:
                path = folder / f"{scenario}__{seed}__{k}.mp4"
                record = runner.run(seed, VideoFile(path))
            finally:
                runner.close()
            out.append((path, record))
    return out


def tile(
    clips: Sequence[tuple[Path, dict]], labels: Sequence[str], out: Path, fps: int
) -> dict[str, np.ndarray]:
    """Tile the clips into ``out`` (H.264); returns each label's last frame (a thumbnail)."""
    containers = [av.open(av_target(p)) for p, _ in clips]
    first = containers[0].streams.video[
        0
    ]  # the clips share one layout (sim.report.video.frame_layout)
    w, h = _tile_size(first.width, first.height)
    cols = min(COLUMNS, len(clips))
    rows = -(-len(clips) // cols)
    width, height = cols * w, rows * h
    streams = [c.decode(video=0) for c in containers]
    last: list[np.ndarray | None] = [None] * len(clips)
    done = [False] * len(clips)
    tmp = out.with_name(f".{out.name}.tmp.mp4")
    sink = av.open(av_target(tmp), mode="w", options={"movflags": "+faststart"})
    stream = sink.add_stream("libx264", rate=int(fps))
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    stream.options = {"crf": "26", "preset": "veryfast"}
    try:
        while not all(done):
            canvas = np.zeros((height, width, 3), dtype=np.uint8)
            for k, frames in enumerate(streams):
                if not done[k]:
                    try:
                        img = next(frames).to_ndarray(format="rgb24")
                        last[k] = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
                    except StopIteration:
                        done[k] = True
                tile_img = last[k].copy() if last[k] is not None else np.zeros((h, w, 3), np.uint8)
                record = clips[k][1]
                if done[k]:
                    tile_img = (tile_img * 0.45).astype(np.uint8)
                    _label(
                        tile_img,
                        f"{labels[k]}: ended, {record['status']} "
                        f"(score {record['driving_score']:.2f})",
                        (255, 200, 80),
                    )
                else:
                    _label(tile_img, labels[k])
                r, c = divmod(k, cols)
                canvas[r * h : (r + 1) * h, c * w : (c + 1) * w] = tile_img
                if c:  # a pale seam between agents (each clip is several panels itself)
                    canvas[r * h : (r + 1) * h, c * w - 1 : c * w + 1] = SEAM_RGB
                if r:
                    canvas[r * h - 1 : r * h + 1, c * w : (c + 1) * w] = SEAM_RGB
            if all(done):
                break
            for packet in stream.encode(av.VideoFrame.from_ndarray(canvas, format="rgb24")):
                sink.mux(packet)
        for packet in stream.encode():
            sink.mux(packet)
        sink.close()
        publish_file(tmp, out)
    except BaseException:
        sink.close()
        tmp.unlink(missing_ok=True)
        raise
    finally:
        for c in containers:
            c.close()
    return {labels[k]: last[k] for k in range(len(clips)) if last[k] is not None}


def side_by_side(agents: Sequence[str], scenario: str, seed: int, out: Path, **kw) -> dict:
    """Drive ``seed`` with every agent and write the tiled video to ``out``; returns the
    records of the re-driven episodes (they equal the evaluation's) and the thumbnails."""
    work = Path(tempfile.mkdtemp(prefix="drive-sbs-", dir=out.parent))
    try:
        clips = drive_clips(agents, scenario, seed, work, **kw)
        fps = get_scenario(scenario).control_hz
        thumbs = tile(clips, list(agents), out, fps)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {
        "records": {a: rec for a, (_, rec) in zip(agents, clips, strict=True)},
        "thumbnails": thumbs,
    }


def worst_episode(records: Sequence[dict]) -> dict | None:
    """The lowest driving score, the earliest seed among equals (None for no records)."""
    return min(records, key=lambda r: (r["driving_score"], r["seed"]), default=None)


def pick_seeds(by_agent: dict[str, list[dict]], n_representative: int = 2) -> list[tuple[int, str]]:
    """Seeds worth watching, with why: where the agents' scores differ most (then the first
    seed), and each agent's worst episode (lowest score, then the earliest seed)."""
    scores: dict[int, dict[str, float]] = {}
    for a, rs in by_agent.items():
        for r in rs:
            scores.setdefault(int(r["seed"]), {})[a] = float(r["driving_score"])
    shared = sorted(s for s, v in scores.items() if len(v) == len(by_agent))
    picks: list[tuple[int, str]] = []
    spread = sorted(shared, key=lambda s: (-(max(scores[s].values()) - min(scores[s].values())), s))
    for s in spread[:n_representative]:
        gap = max(scores[s].values()) - min(scores[s].values())
        picks.append(
            (
                s,
                f"seed {s}: agents' scores differ by {gap:.2f}"
                if gap > 0
                else f"seed {s}: every agent scored {max(scores[s].values()):.2f}",
            )
        )
    for a, rs in by_agent.items():
        worst = worst_episode([r for r in rs if int(r["seed"]) in shared])
        if worst is not None and worst["driving_score"] < 1.0:
            picks.append(
                (
                    int(worst["seed"]),
                    (
                        f"seed {worst['seed']}: worst episode of {a} "
                        f"({worst['status']}, score {worst['driving_score']:.2f})"
                    ),
                )
            )
    seen, out = set(), []
    for s, why in picks:
        if s not in seen:
            seen.add(s)
            out.append((s, why))
    return out


def last_frame(clip: Path) -> np.ndarray | None:
    """The last frame of a video (RGB), or None for an empty one."""
    img = None
    with av.open(av_target(clip)) as c:
        for frame in c.decode(video=0):
            img = frame
    return None if img is None else img.to_ndarray(format="rgb24")
