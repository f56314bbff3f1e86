"""Episode videos: the ego camera beside a north-up overview, with a driving HUD.

With an ``overlay_source`` (an agent that leaves an ``overlay`` behind each decision, as
:class:`agents.modular.PlanningAgent` does) the overview also shows the planner's view:
every candidate rollout (thin; light if it passed the planner's gates, grey if not) and
the chosen trajectory (thick, magenta).  A frame shows the decision that led to it,
made one step earlier; the reset frame has none.

H.264 (yuv420p, ``+faststart``) in MP4, which every browser plays.  The file is written
to a temp name and renamed at the end, so a crash never leaves a half video behind.  Its
``comment`` metadata carries :data:`MARKER`, which tells our own videos (which a new run may
replace) from anybody else's files (which ``drive run --video`` refuses to overwrite without
``--force``; :func:`is_drive_video`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

from sim.harness.io import publish_file
from sim.world.render import SHIFT, box_corners, to_px
from sim.world.scenarios import ACCELERATION_RANGE_MPS2, STEERING_RANGE_RAD

MARKER = "drive-testbed episode video"
"""The ``comment`` metadata of every video :class:`EpisodeVideo` writes."""

PANEL_PX = 384  # each of the two panels is PANEL_PX x PANEL_PX
HUD_PX = 64  # text strip under the panels
OVERVIEW_MPP = 0.35  # [m/px] overview scale: 134 m across

PLAN_RGB = (255, 60, 255)  # the chosen trajectory: magenta, a colour the scene never uses
CANDIDATE_OK_RGB = (150, 225, 255)  # candidates that passed the planner's gates
PERCEIVED_RGB = (235, 40, 40)  # red outlines of the objects the agent's perception reported
DETECTION_THICKNESS_PX = 2  # on the camera panel: still visible at the side-by-side's half size
CANDIDATE_REJECTED_RGB = (150, 150, 150)
PLAN_THICKNESS_PX = 3
CANDIDATE_THICKNESS_PX = 1


def is_drive_video(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a video this module wrote (an MP4 whose comment is :data:`MARKER`)."""
    try:
        with av.open(str(path)) as c:
            return c.metadata.get("comment") == MARKER
    except Exception:  # noqa: BLE001 - not a video at all, or an unreadable one: not ours
        return False


def _put(img, text, org, scale=0.5, colour=(255, 255, 255)):
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, colour, 1, cv2.LINE_AA)


def _polylines_px(lines_m: np.ndarray, m: np.ndarray, t: np.ndarray) -> list[np.ndarray]:
    """``[N, P, 2]`` world polylines -> fixed-point pixel polylines, non-finite points
    dropped and polylines left with fewer than two points skipped."""
    out = []
    for line in np.asarray(lines_m, dtype=np.float64).reshape(-1, *np.shape(lines_m)[-2:]):
        line = line[np.isfinite(line).all(axis=1)]
        if len(line) >= 2:
            out.append(to_px(line, m, t))
    return out


def draw_plan_overlay(img: np.ndarray, overlay: Any, m: np.ndarray, t: np.ndarray) -> None:
    """Draw a planner overlay (``trajectory_m`` [T+1, 2], ``candidates_m`` [C, T+1, 2],
    ``candidate_ok`` [C]; world frame) onto an overview ``img`` in place, with a legend.

    ``(m, t)`` is the overview's world -> pixel map
    (:meth:`sim.world.env.DrivingEnv.overview_transform`).
    """
    candidates = np.asarray(overlay.candidates_m, dtype=np.float64)
    ok = np.asarray(overlay.candidate_ok, dtype=bool).reshape(-1)
    if candidates.size:
        if len(ok) != len(candidates):
            raise ValueError(f"overlay has {len(candidates)} candidates but {len(ok)} "
                             f"candidate_ok flags")
        # rejected first, so the candidates the planner could pick stay on top
        for sel, colour in ((~ok, CANDIDATE_REJECTED_RGB), (ok, CANDIDATE_OK_RGB)):
            lines = _polylines_px(candidates[sel], m, t)
            if lines:
                cv2.polylines(img, lines, False, colour, CANDIDATE_THICKNESS_PX, cv2.LINE_AA,
                              SHIFT)
    objects = getattr(overlay, "objects", None)
    if objects is not None and len(objects.position_m):
        # what perception reported, as outlines over the true cars (they differ once a
        # detector replaces ground truth)
        boxes = box_corners(np.asarray(objects.position_m), np.asarray(objects.heading_rad),
                            np.asarray(objects.length_m), np.asarray(objects.width_m))
        outlines = _polylines_px(boxes, m, t)
        if outlines:
            cv2.polylines(img, outlines, True, PERCEIVED_RGB, 1, cv2.LINE_AA, SHIFT)
    plan = _polylines_px(overlay.trajectory_m, m, t)
    if plan:
        cv2.polylines(img, plan, False, PLAN_RGB, PLAN_THICKNESS_PX, cv2.LINE_AA, SHIFT)
    h = img.shape[0]
    legend = (("plan", PLAN_RGB, PLAN_THICKNESS_PX),
              ("candidates (grey: rejected)", CANDIDATE_OK_RGB, CANDIDATE_THICKNESS_PX),
              ("perceived objects", PERCEIVED_RGB, 1))
    for k, (label, colour, width) in enumerate(legend):
        y = h - 44 + 16 * k
        cv2.line(img, (8, y), (28, y), colour, width, cv2.LINE_AA)
        _put(img, label, (34, y + 4), 0.4, colour)


def draw_detections(img: np.ndarray, detections: Any, spec: Any, scale: float) -> None:
    """Outline a detector's boxes (ego frame: ``centre_m``, ``heading_rad``, ``length_m``,
    ``width_m``) on the camera panel ``img``, the camera frame scaled by ``scale``."""
    corners = box_corners(np.asarray(detections.centre_m), np.asarray(detections.heading_rad),
                          np.asarray(detections.length_m),
                          np.asarray(detections.width_m))  # ego frame [N, 4, 2]
    uv = spec.ego_to_pixel(corners)  # [N, 4, 2] camera pixels (centres at integers)
    px = np.rint((uv + 0.5) * scale * (1 << SHIFT)).astype(np.int32)
    cv2.polylines(img, list(px), True, PERCEIVED_RGB, DETECTION_THICKNESS_PX, cv2.LINE_AA, SHIFT)


class EpisodeVideo:
    """A step observer for :func:`sim.harness.loop.run_episode` that writes an MP4.

    ``overlay_source``: an object whose ``overlay`` attribute (read at every frame; None
    or absent: nothing drawn) holds the last decision's plan (see :func:`draw_plan_overlay`),
    normally the agent itself.
    """

    def __init__(self, path: str | os.PathLike, *, agent: str, seed: int, fps: int,
                 crf: int = 23, overlay_source: Any = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = self.path.with_name(f".{self.path.name}.tmp.mp4")
        self.agent, self.seed = agent, seed
        self.overlay_source = overlay_source
        self._container = av.open(str(self._tmp), mode="w", options={"movflags": "+faststart"})
        self._container.metadata["comment"] = MARKER
        self._stream = self._container.add_stream("libx264", rate=int(fps))
        self._stream.width = 2 * PANEL_PX
        self._stream.height = PANEL_PX + HUD_PX
        self._stream.pix_fmt = "yuv420p"
        self._stream.options = {"crf": str(crf), "preset": "veryfast"}
        self.frames = 0
        self.status = "ok"

    def __call__(self, env, obs, action, info) -> None:
        self._encode(self.compose(env, obs, action, info))

    def compose(self, env, obs, action, info) -> np.ndarray:
        cam = cv2.resize(obs["camera"], (PANEL_PX, PANEL_PX), interpolation=cv2.INTER_NEAREST)
        top = env.overview((PANEL_PX, PANEL_PX), OVERVIEW_MPP)
        overlay = self._overlay(action)
        if overlay is not None:
            m, t = env.overview_transform((PANEL_PX, PANEL_PX), OVERVIEW_MPP)
            draw_plan_overlay(top, overlay, m, t)
            detections = getattr(overlay, "detections", None)
            if detections is not None and len(detections.centre_m):
                draw_detections(cam, detections, env.camera_spec, PANEL_PX / env.camera_spec.width_px)
        frame = np.zeros((PANEL_PX + HUD_PX, 2 * PANEL_PX, 3), dtype=np.uint8)
        frame[:PANEL_PX, :PANEL_PX] = cam
        frame[:PANEL_PX, PANEL_PX:] = top
        cv2.line(frame, (PANEL_PX, 0), (PANEL_PX, PANEL_PX - 1), (0, 0, 0), 2)
        _put(frame, "ego camera (agent input)", (8, 18))
        _put(frame, "top-down (north up)", (PANEL_PX + 8, 18))
        self._hud(frame, env, action, info)
        return frame

    def _overlay(self, action) -> Any:
        """The overlay to draw on this frame, or None.  The reset frame (no action yet)
        gets none: the source may still hold the previous episode's last plan."""
        if action is None or self.overlay_source is None:
            return None
        return self.overlay_source.overlay

    def _hud(self, frame: np.ndarray, env, action, info: dict[str, Any]) -> None:
        sc = env.scenario
        ego = info["ego"]
        events = info["events"]
        y0 = PANEL_PX + 22
        names = sc.action_names
        a = np.zeros(len(names)) if action is None else np.asarray(action)
        steer = float(a[names.index("steering")])
        acc = float(a[names.index("acceleration")]) if "acceleration" in names else 0.0
        _put(frame, f"{sc.name}  agent={self.agent}  seed={self.seed}  cmd={info['command']}",
             (8, y0))
        _put(frame, f"t={ego['time_s']:5.1f}s  speed={ego['speed_mps']:5.1f} m/s "
                    f"({ego['speed_mps'] * 3.6:5.1f} km/h)  route={100 * ego['route_completion']:5.1f}%",
             (8, y0 + 22))
        # steering bar grows to the left for a left turn; acceleration bar to the right
        cx, cy, half = 2 * PANEL_PX - 120, y0 - 6, 100
        cv2.rectangle(frame, (cx - half, cy - 6), (cx + half, cy + 6), (80, 80, 80), 1)
        cv2.rectangle(frame, (cx, cy - 5), (int(cx - steer * half), cy + 5), (80, 200, 255), -1)
        _put(frame, f"steer {np.degrees(steer * STEERING_RANGE_RAD):+5.1f} deg",
             (cx - half - 130, cy + 5), 0.45)
        cy2 = y0 + 16
        cv2.rectangle(frame, (cx - half, cy2 - 6), (cx + half, cy2 + 6), (80, 80, 80), 1)
        cv2.rectangle(frame, (cx, cy2 - 5), (int(cx + acc * half), cy2 + 5),
                      (90, 220, 90) if acc >= 0 else (230, 80, 80), -1)
        _put(frame, f"accel {acc * ACCELERATION_RANGE_MPS2:+4.1f} m/s2", (cx - half - 130, cy2 + 5), 0.45)
        if events["collision"] or events["offroad"]:
            what = f"COLLISION ({events['collision']})" if events["collision"] else "OFF ROAD"
            _put(frame, what, (PANEL_PX + 8, 44), 0.7, (255, 60, 60))

    def _encode(self, frame: np.ndarray) -> None:
        vf = av.VideoFrame.from_ndarray(frame, format="rgb24")
        for packet in self._stream.encode(vf):
            self._container.mux(packet)
        self.frames += 1

    def close(self) -> Path:
        """Flush, close and move the finished video into place."""
        for packet in self._stream.encode():
            self._container.mux(packet)
        self._container.close()
        publish_file(self._tmp, self.path)
        return self.path

    def abort(self) -> None:
        """Drop the unfinished video (best effort: the episode's results matter more)."""
        try:
            self._container.close()
        except Exception:  # noqa: BLE001 - the container may be the thing that failed
            pass
        finally:
            self._tmp.unlink(missing_ok=True)
