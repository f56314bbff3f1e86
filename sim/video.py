"""Episode videos: the ego camera beside a north-up overview, with a driving HUD.

H.264 (yuv420p, ``+faststart``) in MP4, which every browser plays.  The file is written
to a temp name and renamed at the end, so a crash never leaves a half video behind.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

from sim.scenarios import ACCELERATION_RANGE_MPS2, STEERING_RANGE_RAD

PANEL_PX = 384  # each of the two panels is PANEL_PX x PANEL_PX
HUD_PX = 64  # text strip under the panels
OVERVIEW_MPP = 0.35  # [m/px] overview scale: 134 m across


def _put(img, text, org, scale=0.5, colour=(255, 255, 255)):
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, colour, 1, cv2.LINE_AA)


class EpisodeVideo:
    """A step observer for :func:`sim.loop.run_episode` that writes an MP4."""

    def __init__(self, path: str | os.PathLike, *, agent: str, seed: int, fps: int,
                 crf: int = 23) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = self.path.with_name(f".{self.path.name}.tmp.mp4")
        self.agent, self.seed = agent, seed
        self._container = av.open(str(self._tmp), mode="w", options={"movflags": "+faststart"})
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
        frame = np.zeros((PANEL_PX + HUD_PX, 2 * PANEL_PX, 3), dtype=np.uint8)
        frame[:PANEL_PX, :PANEL_PX] = cam
        frame[:PANEL_PX, PANEL_PX:] = top
        cv2.line(frame, (PANEL_PX, 0), (PANEL_PX, PANEL_PX - 1), (0, 0, 0), 2)
        _put(frame, "ego camera (agent input)", (8, 18))
        _put(frame, "top-down (north up)", (PANEL_PX + 8, 18))
        self._hud(frame, env, action, info)
        return frame

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
        os.replace(self._tmp, self.path)
        return self.path

    def abort(self) -> None:
        """Drop the unfinished video (best effort: the episode's results matter more)."""
        try:
            self._container.close()
        except Exception:  # noqa: BLE001 - the container may be the thing that failed
            pass
        finally:
            self._tmp.unlink(missing_ok=True)
