"""Episode videos: what the cameras see beside a north-up overview, with a driving HUD.

A frame (:func:`frame_layout`)::

    +----------------------+----------------------+
    | bev: bird's-eye,     | overview: north up,  |   PANEL_PX x PANEL_PX each
    | ego up (3x nearest)  | route, plan          |
    +----------------------+----------------------+
    | cam_front (1.5x)     | cam_rear (1.5x)      |   the rig's cameras in rig order,
    +----------------------+----------------------+   nearest-upscaled
    | HUD: scenario, agent, seed, time, speed, bars |
    +---------------------------------------------+

Every camera of the env's rig (:attr:`sim.world.env.DrivingEnv.rig`) gets a panel whatever
the agent declared: the video shows what a camera-driven agent would see.  A rig camera the
agent declared is taken from the observation; the others are rendered for the video alone
(:meth:`~sim.world.env.DrivingEnv.render_camera`, which only reads the state), so a run
without a video never renders them and its episodes do not depend on the video.  Labels say
which panels are the agent's inputs when the video is told its ``sensors``.

With an ``overlay_source`` (an agent that leaves an ``overlay`` behind each decision, as
:class:`agents.modular.PlanningAgent` does) the overview also shows the planner's view:
every candidate rollout (thin; light if it passed the planner's gates, grey if not) and
the chosen trajectory (thick, magenta); the objects perception reported (its tracks) are
outlined on the overview (red).  A rig agent's raw detections are drawn as 3D boxes on each
camera's own panel (orange); a bird's-eye agent's raw boxes on the bird's-eye camera, its
tracks as 3D boxes on the rig's panels (red).  A frame shows the decision that led to it, made one
step earlier (so a perceived box trails its car by one step of relative motion); the reset frame has
none.

H.264 (yuv420p, ``+faststart``) in MP4, which every browser plays.  The file is written
to a temp name and renamed at the end, so a crash never leaves a half video behind.  Its
``comment`` metadata carries :data:`MARKER`, which tells our own videos (which a new run may
replace) from anybody else's files (which ``drive run --video`` refuses to overwrite without
``--force``; :func:`is_drive_video`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

from sim.geometry.frames import world_to_ego
from sim.geometry.pinhole import CameraRig, PinholeCamera, default_rig
from sim.harness.io import publish_file
from sim.world.perspective import object_heights
from sim.world.render import SHIFT, box_corners, to_px
from sim.world.scenarios import ACCELERATION_RANGE_MPS2, STEERING_RANGE_RAD

MARKER = "drive-testbed episode video"
"""The ``comment`` metadata of every video :class:`EpisodeVideo` writes."""

PANEL_PX = 384  # each of the two top panels is PANEL_PX x PANEL_PX
HUD_PX = 64  # text strip at the bottom
RIG_ROW_PX = 2 * PANEL_PX  # the rig's cameras share a row as wide as the two top panels
OVERVIEW_MPP = 0.35  # [m/px] overview scale: 134 m across

PLAN_RGB = (255, 60, 255)  # the chosen trajectory: magenta, a colour the scene never uses
CANDIDATE_OK_RGB = (150, 225, 255)  # candidates that passed the planner's gates
PERCEIVED_RGB = (235, 40, 40)  # red outlines of the objects the agent's perception reported
DETECTED_RGB = (255, 170, 0)  # orange: a rig camera's raw detections (before fusion and tracking)
DETECTION_THICKNESS_PX = 2  # on the camera panel: still visible at the side-by-side's half size
CANDIDATE_REJECTED_RGB = (150, 150, 150)
PLAN_THICKNESS_PX = 3
CANDIDATE_THICKNESS_PX = 1
LABEL_BACKDROP = 0.4  # a panel label darkens the pixels behind it to this fraction
RIG_BOX_THICKNESS_PX = 1  # 3D boxes on the rig's panels: a car 40 m ahead is ~8 px wide there
BOX_NEAR_M = 0.3  # [m] 3D box edges are clipped this far in front of a rig camera (tame pixels)


def av_target(path: str | os.PathLike) -> str:
    """The name to hand ``av.open`` for the file ``path``: absolute, because ffmpeg reads a
    leading ``NAME:`` as a protocol, and outputs named after a scenario variant
    (``lane-keep:night/video.mp4``) begin with exactly that."""
    return os.path.abspath(path)


def is_drive_video(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a video this module wrote (an MP4 whose comment is :data:`MARKER`)."""
    try:
        with av.open(av_target(path)) as c:
            return c.metadata.get("comment") == MARKER
    except Exception:  # noqa: BLE001 - not a video at all, or an unreadable one: not ours
        return False


@dataclass(frozen=True)
class VideoFile:
    """One episode's video at ``path``, as a run is handed it: the observer factory the
    harness calls for the episode (it builds an :class:`EpisodeVideo`; the harness imports no
    report), picklable, so a worker process builds the writer itself, and the file's output
    policy (:meth:`check`)."""

    path: Path

    def check(self, force: bool = False) -> None:
        """Before any work: a folder is refused, and an existing file unless it is a video
        drive wrote (:func:`is_drive_video`) or ``force`` (``--force``)."""
        shown = str(self.path)
        if self.path.is_dir():
            raise ValueError(f"--video {shown!r} is a folder; give a file name ending in .mp4")
        if self.path.exists() and not force and not is_drive_video(self.path):
            raise FileExistsError(
                f"--video {shown!r} already exists and is not a video drive wrote; "
                "choose another file name, or pass --force to overwrite it"
            )

    def __call__(self, *, env, agent, agent_name: str, seed: int, fps: float) -> EpisodeVideo:
        return EpisodeVideo(
            self.path,
            agent=agent_name,
            seed=int(seed),
            fps=fps,
            overlay_source=agent,
            rig=env.rig,
            sensors=agent.sensors,
        )


@dataclass(frozen=True)
class RigPanel:
    """Where one rig camera's frame sits in the video frame: ``scale`` x its pixels,
    nearest-upscaled, top-left corner at ``(x_px, y_px)``."""

    name: str
    x_px: int
    y_px: int
    width_px: int
    height_px: int
    scale: float


@dataclass(frozen=True)
class FrameLayout:
    """The video frame's size and its rig panels (:func:`frame_layout`)."""

    width_px: int
    height_px: int
    rig_top_px: int  # first row of the rig's panels
    hud_top_px: int  # first row of the HUD strip
    panels: tuple[RigPanel, ...]


def _even(n: float) -> int:
    """The nearest even integer at or above ``n`` (H.264 yuv420p needs even sizes)."""
    n = int(np.ceil(n - 1e-9))
    return n + (n % 2)


def frame_layout(rig: CameraRig) -> FrameLayout:
    """The two top panels, then every camera of ``rig`` in one row of equal cells (each
    camera scaled to fill its cell's width, at most PANEL_PX high, aspect kept), then the
    HUD.  The default rig (two 256x128 cameras) gets 1.5x: two 384x192 panels; the frame is
    768 x 640."""
    cell = RIG_ROW_PX // max(len(rig), 1)
    panels, row_h = [], 0
    for k, (name, cam) in enumerate(rig.items()):
        scale = min(cell / cam.width_px, PANEL_PX / cam.height_px)
        w, h = round(cam.width_px * scale), round(cam.height_px * scale)
        panels.append(RigPanel(name, k * cell + (cell - w) // 2, PANEL_PX, w, h, scale))
        row_h = max(row_h, h)
    row_h = _even(row_h)
    return FrameLayout(
        width_px=2 * PANEL_PX,
        height_px=PANEL_PX + row_h + HUD_PX,
        rig_top_px=PANEL_PX,
        hud_top_px=PANEL_PX + row_h,
        panels=tuple(panels),
    )


def _put(img, text, org, scale=0.5, colour=(255, 255, 255)):
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, colour, 1, cv2.LINE_AA)


def _label(img, text, org, scale=0.5, colour=(255, 255, 255)):
    """Text on a darkened backdrop: readable on a pale sky as on dark asphalt."""
    (w, h), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    x, y = org
    box = img[max(y - h - 4, 0) : y + base + 1, max(x - 4, 0) : x + w + 4]
    box[:] = (box * LABEL_BACKDROP).astype(np.uint8)
    _put(img, text, org, scale, colour)


def _polylines_px(lines_m: np.ndarray, m: np.ndarray, t: np.ndarray) -> list[np.ndarray]:
    """``[N, P, 2]`` world polylines -> fixed-point pixel polylines, non-finite points
    dropped and polylines left with fewer than two points skipped."""
    out = []
    if not np.size(lines_m):  # e.g. no candidates, or an empty plan
        return out
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
            raise ValueError(
                f"overlay has {len(candidates)} candidates but {len(ok)} candidate_ok flags"
            )
        # rejected first, so the candidates the planner could pick stay on top
        for sel, colour in ((~ok, CANDIDATE_REJECTED_RGB), (ok, CANDIDATE_OK_RGB)):
            lines = _polylines_px(candidates[sel], m, t)
            if lines:
                cv2.polylines(img, lines, False, colour, CANDIDATE_THICKNESS_PX, cv2.LINE_AA, SHIFT)
    objects = getattr(overlay, "objects", None)
    if objects is not None and len(objects.position_m):
        # what perception reported, as outlines over the true cars (they differ once a
        # detector replaces ground truth)
        boxes = box_corners(
            np.asarray(objects.position_m),
            np.asarray(objects.heading_rad),
            np.asarray(objects.length_m),
            np.asarray(objects.width_m),
        )
        outlines = _polylines_px(boxes, m, t)
        if outlines:
            cv2.polylines(img, outlines, True, PERCEIVED_RGB, 1, cv2.LINE_AA, SHIFT)
    plan = _polylines_px(overlay.trajectory_m, m, t)
    if plan:
        cv2.polylines(img, plan, False, PLAN_RGB, PLAN_THICKNESS_PX, cv2.LINE_AA, SHIFT)
    h = img.shape[0]
    legend = (
        ("plan", PLAN_RGB, PLAN_THICKNESS_PX),
        ("candidates (grey: rejected)", CANDIDATE_OK_RGB, CANDIDATE_THICKNESS_PX),
        ("perceived objects", PERCEIVED_RGB, 1),
    )
    for k, (label, colour, width) in enumerate(legend):
        y = h - 44 + 16 * k
        cv2.line(img, (8, y), (28, y), colour, width, cv2.LINE_AA)
        _put(img, label, (34, y + 4), 0.4, colour)


def draw_detections(img: np.ndarray, detections: Any, spec: Any, scale: float) -> None:
    """Outline a detector's boxes (ego frame: ``centre_m``, ``heading_rad``, ``length_m``,
    ``width_m``) on the camera panel ``img``, the camera frame scaled by ``scale``."""
    corners = box_corners(
        np.asarray(detections.centre_m),
        np.asarray(detections.heading_rad),
        np.asarray(detections.length_m),
        np.asarray(detections.width_m),
    )  # ego frame [N, 4, 2]
    uv = spec.ego_to_pixel(corners)  # [N, 4, 2] camera pixels (centres at integers)
    px = np.rint((uv + 0.5) * scale * (1 << SHIFT)).astype(np.int32)
    cv2.polylines(img, list(px), True, PERCEIVED_RGB, DETECTION_THICKNESS_PX, cv2.LINE_AA, SHIFT)


_BOX_EDGES = np.array(
    [
        [0, 1],
        [1, 2],
        [2, 3],
        [3, 0],  # bottom face (ground)
        [4, 5],
        [5, 6],
        [6, 7],
        [7, 4],  # top face
        [0, 4],
        [1, 5],
        [2, 6],
        [3, 7],
    ]
)  # verticals


def draw_boxes_3d(
    img: np.ndarray,
    camera: PinholeCamera,
    scale: float,
    corners_ego_m: np.ndarray,
    heights_m: np.ndarray,
    colour=PERCEIVED_RGB,
    thickness_px: int = RIG_BOX_THICKNESS_PX,
) -> None:
    """Draw boxes standing on the road (ego-frame footprints ``[N, 4, 2]`` [m], heights
    ``[N]`` [m]) as 3D wireframes on ``img``, ``camera``'s frame upscaled by ``scale``.

    Each of the 12 edges is clipped to ``BOX_NEAR_M`` in front of the camera in 3D, then
    projected (:meth:`~sim.geometry.pinhole.PinholeCamera.camera_to_pixel`): a box beside or
    behind the camera draws only what lies in front of it.
    """
    footprint = np.asarray(corners_ego_m, dtype=np.float64).reshape(-1, 4, 2)
    if not len(footprint):
        return
    z = (
        np.asarray(heights_m, dtype=np.float64).reshape(-1, 1, 1)
        * np.array([0.0, 1.0])[None, :, None]
    )
    pts = np.concatenate(
        [
            np.broadcast_to(footprint[:, None], (len(footprint), 2, 4, 2)),
            np.broadcast_to(z, (len(footprint), 2, 4))[..., None],
        ],
        axis=-1,
    )
    q = camera.ego_to_camera(pts.reshape(-1, 8, 3))  # [N, 8, 3] camera frame
    a, b = q[:, _BOX_EDGES[:, 0]].reshape(-1, 3), q[:, _BOX_EDGES[:, 1]].reshape(-1, 3)
    near = max(camera.near_m, BOX_NEAR_M)
    keep = (a[:, 2] > near) | (b[:, 2] > near)
    a, b = a[keep], b[keep]
    if not len(a):
        return
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (near - a[:, 2]) / (b[:, 2] - a[:, 2])  # where the edge crosses the near plane
        cut = a + t[:, None] * (b - a)  # used only where one end is behind it: t in [0, 1]
    a = np.where((a[:, 2] <= near)[:, None], cut, a)
    b = np.where((b[:, 2] <= near)[:, None], cut, b)
    uv = camera.camera_to_pixel(np.stack([a, b], axis=1))  # [E, 2, 2] camera pixels
    px = (uv + 0.5) * scale - 0.5  # panel pixels (centres at integers, as the camera's)
    px = np.rint(np.clip(px, -(1 << 20), 1 << 20) * (1 << SHIFT)).astype(np.int32)
    cv2.polylines(img, list(px), False, colour, thickness_px, cv2.LINE_AA, SHIFT)


class EpisodeVideo:
    """A step observer for :func:`sim.harness.loop.run_episode` that writes an MP4.

    ``overlay_source``: an object whose ``overlay`` attribute (read at every frame; None
    or absent: nothing drawn) holds the last decision's plan (see :func:`draw_plan_overlay`),
    normally the agent itself.  ``rig``: the cameras of the env it will watch (default
    :func:`default_rig`; the frame size depends on it, :func:`frame_layout`).  ``sensors``:
    the agent's declared sensors, to mark its inputs in the panel labels (None: unmarked).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        agent: str,
        seed: int,
        fps: int,
        crf: int = 23,
        overlay_source: Any = None,
        rig: CameraRig | None = None,
        sensors: Collection[str] | None = None,
    ) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = self.path.with_name(f".{self.path.name}.tmp.mp4")
        self.agent, self.seed = agent, seed
        self.overlay_source = overlay_source
        self.rig = rig if rig is not None else default_rig()
        self.layout = frame_layout(self.rig)
        self.sensors = None if sensors is None else frozenset(sensors)
        self._container = av.open(
            av_target(self._tmp), mode="w", options={"movflags": "+faststart"}
        )
        self._container.metadata["comment"] = MARKER
        self._stream = self._container.add_stream("libx264", rate=int(fps))
        self._stream.width = self.layout.width_px
        self._stream.height = self.layout.height_px
        self._stream.pix_fmt = "yuv420p"
        self._stream.options = {"crf": str(crf), "preset": "veryfast"}
        self.frames = 0
        self.status = "ok"

    def __call__(self, env, obs, action, info) -> None:
        self._encode(self.compose(env, obs, action, info))

    def compose(self, env, obs, action, info) -> np.ndarray:
        if env.rig != self.rig:
            raise ValueError(
                f"the env's rig {env.rig.to_dict()} is not the video's {self.rig.to_dict()}; "
                "build the EpisodeVideo with rig=env.rig"
            )
        lay = self.layout
        cam = cv2.resize(obs["bev"], (PANEL_PX, PANEL_PX), interpolation=cv2.INTER_NEAREST)
        top = env.overview((PANEL_PX, PANEL_PX), OVERVIEW_MPP)
        overlay = self._overlay(action)
        rig_imgs = {p.name: self.rig_panel(env, obs, p) for p in lay.panels}
        if overlay is not None:
            m, t = env.overview_transform((PANEL_PX, PANEL_PX), OVERVIEW_MPP)
            draw_plan_overlay(top, overlay, m, t)
            detections = getattr(overlay, "detections", None)
            per_camera = getattr(overlay, "camera_detections", None)
            if (
                per_camera
            ):  # a rig agent: each camera's detections on its panel (tracks: the overview)
                self._draw_detected(rig_imgs, per_camera)
            else:
                if detections is not None and len(detections.centre_m):
                    draw_detections(
                        cam, detections, env.bev_camera, PANEL_PX / env.bev_camera.width_px
                    )
                objects = getattr(overlay, "objects", None)
                if objects is not None and len(objects.position_m):
                    self._draw_perceived(rig_imgs, objects, info["ego"])
        frame = np.zeros((lay.height_px, lay.width_px, 3), dtype=np.uint8)
        frame[:PANEL_PX, :PANEL_PX] = cam
        frame[:PANEL_PX, PANEL_PX:] = top
        for p in lay.panels:
            frame[p.y_px : p.y_px + p.height_px, p.x_px : p.x_px + p.width_px] = rig_imgs[p.name]
        # dark seams between the panels
        cv2.line(frame, (PANEL_PX, 0), (PANEL_PX, PANEL_PX - 1), (0, 0, 0), 2)
        cv2.line(frame, (0, lay.rig_top_px), (lay.width_px - 1, lay.rig_top_px), (0, 0, 0), 2)
        for p in lay.panels[1:]:
            cv2.line(frame, (p.x_px, lay.rig_top_px), (p.x_px, lay.hud_top_px - 1), (0, 0, 0), 2)
        sp = env.bev_camera
        _label(
            frame,
            self._input_label(f"bev: bird's-eye {sp.width_px}x{sp.height_px}, ego up", "bev"),
            (8, 18),
        )
        _label(frame, "overview (north up)", (PANEL_PX + 8, 18))
        for p in lay.panels:
            c = self.rig[p.name]
            _label(
                frame,
                self._input_label(
                    f"{p.name}: {c.hfov_deg:.0f} deg, {c.width_px}x{c.height_px}", p.name
                ),
                (p.x_px + 8, p.y_px + 18),
            )
        self._hud(frame, env, action, info)
        return frame

    def rig_panel(self, env, obs, panel: RigPanel) -> np.ndarray:
        """``panel``'s camera frame, upscaled: the agent's own observation when it declared
        the camera, else rendered for the video (:meth:`DrivingEnv.render_camera`: reads the
        state, changes nothing)."""
        img = obs.get(panel.name)
        if img is None:
            img = env.render_camera(self.rig[panel.name]).image
        return cv2.resize(img, (panel.width_px, panel.height_px), interpolation=cv2.INTER_NEAREST)

    def _draw_perceived(
        self, rig_imgs: dict[str, np.ndarray], objects: Any, ego: dict[str, Any]
    ) -> None:
        """The perceived objects (world frame) as 3D boxes on every rig panel, at the frame's
        ego pose."""
        centre = world_to_ego(np.asarray(objects.position_m), ego["position_m"], ego["heading_rad"])
        heading = np.asarray(objects.heading_rad, dtype=np.float64) - ego["heading_rad"]
        footprint = box_corners(
            centre, heading, np.asarray(objects.length_m), np.asarray(objects.width_m)
        )
        heights = object_heights(objects.length_m, objects.kind)
        for p in self.layout.panels:
            draw_boxes_3d(rig_imgs[p.name], self.rig[p.name], p.scale, footprint, heights)

    def _draw_detected(self, rig_imgs: dict[str, np.ndarray], per_camera: dict[str, Any]) -> None:
        """Each rig camera's own detections (ego frame, at the decision) as orange 3D boxes on
        its panel, at their detected heights (a default car's where a detector gives none)."""
        for p in self.layout.panels:
            det = per_camera.get(p.name)
            if det is None or not len(det.centre_m):
                continue
            footprint = box_corners(
                np.asarray(det.centre_m),
                np.asarray(det.heading_rad),
                np.asarray(det.length_m),
                np.asarray(det.width_m),
            )
            heights = np.asarray(det.height_m, dtype=np.float64)
            heights = np.where(
                np.isfinite(heights), heights, object_heights(det.length_m, det.kind)
            )
            draw_boxes_3d(
                rig_imgs[p.name], self.rig[p.name], p.scale, footprint, heights, colour=DETECTED_RGB
            )

    def _input_label(self, text: str, sensor: str) -> str:
        return (
            f"{text}  (agent input)"
            if self.sensors is not None and sensor in self.sensors
            else text
        )

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
        y0 = self.layout.hud_top_px + 22
        names = sc.action_names
        a = np.zeros(len(names)) if action is None else np.asarray(action)
        steer = float(a[names.index("steering")])
        acc = float(a[names.index("acceleration")]) if "acceleration" in names else 0.0
        _put(
            frame,
            f"{sc.name}  agent={self.agent}  seed={self.seed}  cmd={info['command']}",
            (8, y0),
        )
        _put(
            frame,
            f"t={ego['time_s']:5.1f}s  speed={ego['speed_mps']:5.1f} m/s "
            f"({ego['speed_mps'] * 3.6:5.1f} km/h)  route={100 * ego['route_completion']:5.1f}%",
            (8, y0 + 22),
        )
        # steering bar grows to the left for a left turn; acceleration bar to the right
        cx, cy, half = self.layout.width_px - 120, y0 - 6, 100
        cv2.rectangle(frame, (cx - half, cy - 6), (cx + half, cy + 6), (80, 80, 80), 1)
        cv2.rectangle(frame, (cx, cy - 5), (int(cx - steer * half), cy + 5), (80, 200, 255), -1)
        _put(
            frame,
            f"steer {np.degrees(steer * STEERING_RANGE_RAD):+5.1f} deg",
            (cx - half - 130, cy + 5),
            0.45,
        )
        cy2 = y0 + 16
        cv2.rectangle(frame, (cx - half, cy2 - 6), (cx + half, cy2 + 6), (80, 80, 80), 1)
        cv2.rectangle(
            frame,
            (cx, cy2 - 5),
            (int(cx + acc * half), cy2 + 5),
            (90, 220, 90) if acc >= 0 else (230, 80, 80),
            -1,
        )
        _put(
            frame,
            f"accel {acc * ACCELERATION_RANGE_MPS2:+4.1f} m/s2",
            (cx - half - 130, cy2 + 5),
            0.45,
        )
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
            with contextlib.suppress(Exception):  # the container may be the thing that failed
                self._container.close()
        finally:
            self._tmp.unlink(missing_ok=True)
