"""A contact sheet of the perspective camera rig: what ``cam_front`` and ``cam_rear`` see in
every scenario, at a few moments of an episode driven by the env's autopilot (issue 20).

A look, not a test: the sheet is for a person to judge the renderer as a driver would
(cars on the road, markings, occlusion, the roundabout's curves, the merge's ramp), and
the documentation shows it (``docs/world.md``).  Each row is one scenario, each tile one
camera at one moment, labelled with the scenario, the camera and the episode time::

    python -m sim.report.rig_strip --out docs/img/rig_strip.png [--seed 0] [--steps 120]

The ego follows ``info["autopilot"]`` (highway-env's IDM/MOBIL decision, the
``autopilot`` sensor), so a seed gives the same episode and the same bytes every time.
An episode that ends before the last moment shows its final frame (labelled ``end``) at
the next moment and leaves the rest of its row blank.  ``--frames-dir`` also writes each
frame on its own, upscaled with nearest-neighbour sampling, to look at pixel by pixel.
The sheet is written atomically (:mod:`sim.harness.io`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from sim import arguments
from sim.harness.io import atomic_write_bytes, ensure_writable_dir
from sim.world.scenarios import SCENARIOS

DEFAULT_STEPS = 120  # control steps: 8 s at the scenarios' 15 Hz
DEFAULT_MOMENTS = 3  # moments per episode, evenly spaced over [0, steps]
DEFAULT_SCALE = 2  # each frame is upscaled this many times (nearest) on the sheet
FRAME_SCALE = 3  # the single frames of --frames-dir: upscaled this many times
LABEL_PX = 20  # label bar above each tile [px]
GAP_PX = 4  # between tiles and around the sheet [px]
BACKGROUND_RGB = (24, 24, 24)  # gaps, label bars, blank tiles
LABEL_RGB = (235, 235, 235)
FONT = cv2.FONT_HERSHEY_SIMPLEX
FONT_SCALE = 0.45


@dataclass(frozen=True)
class Tile:
    """One camera frame of the sheet (``image`` None: a blank tile after the episode ended)."""

    scenario: str
    camera: str
    step: int
    time_s: float  # [s] episode time of the frame
    image: np.ndarray | None
    end: str = ""  # why the episode ended at this frame ("" while it runs)

    @property
    def label(self) -> str:
        if self.image is None:
            return f"{self.scenario}  {self.camera}  (episode over)"
        end = f"  end: {self.end}" if self.end else ""
        return f"{self.scenario}  {self.camera}  t={self.time_s:.1f} s{end}"


def moment_steps(steps: int, moments: int) -> list[int]:
    """``moments`` control steps evenly spaced over ``[0, steps]`` (both ends; duplicates,
    from tiny ``steps``, dropped)."""
    if steps < 0 or moments < 1:
        raise ValueError(f"need steps >= 0 and moments >= 1, got steps={steps}, moments={moments}")
    return sorted({round(float(x)) for x in np.linspace(0, steps, moments)})


def _end_reason(info: dict) -> str:
    """Why an episode stopped, from its last ``info["events"]``."""
    events = info.get("events", {})
    if events.get("collision"):
        return f"{events['collision']} collision"
    for key in ("offroad", "route_completed"):
        if events.get(key):
            return key.replace("_", " ")
    return "time limit"


def drive_frames(
    scenario: str,
    seed: int,
    at_steps: Sequence[int],
    cameras: Sequence[str] = ("cam_front", "cam_rear"),
) -> list[Tile]:
    """Drive one ``scenario`` episode with the autopilot and grab ``cameras`` at ``at_steps``
    (control steps; 0 = the reset frame): ``len(at_steps) * len(cameras)`` tiles, moment by
    moment, cameras in the given order."""
    from sim.world.env import DrivingEnv  # highway-env: imported only when frames are made

    env = DrivingEnv(scenario, sensors=(*cameras, "autopilot"))
    try:
        obs, info = env.reset(seed=seed)
        tiles: list[Tile] = []
        wanted = sorted({int(k) for k in at_steps})
        step, end = 0, ""
        for k in wanted:
            while step < k and not end:
                obs, _, terminated, truncated, info = env.step(info["autopilot"])
                step += 1
                if terminated or truncated:
                    end = _end_reason(info)
            shown = step == k or (end and not any(t.step == step for t in tiles))
            for cam in cameras:
                tiles.append(
                    Tile(
                        scenario,
                        cam,
                        step,
                        env.time_s,
                        obs[cam].copy() if shown else None,
                        end if (shown and step < k) else "",
                    )
                )
        return tiles
    finally:
        env.close()


def _label(width_px: int, text: str) -> np.ndarray:
    bar = np.empty((LABEL_PX, width_px, 3), dtype=np.uint8)
    bar[:] = BACKGROUND_RGB
    cv2.putText(bar, text, (4, LABEL_PX - 6), FONT, FONT_SCALE, LABEL_RGB, 1, cv2.LINE_AA)
    return bar


def tile_sheet(
    rows: Sequence[Sequence[Tile]], frame_shape: tuple[int, int], scale: int
) -> np.ndarray:
    """Tiles ``rows`` (each a list of tiles) into one RGB sheet: each frame upscaled ``scale``
    times (nearest), a label bar above it, :data:`GAP_PX` between tiles and around."""
    h, w = frame_shape[0] * scale, frame_shape[1] * scale
    cols = max(len(r) for r in rows)
    sheet = np.empty(
        (GAP_PX + len(rows) * (LABEL_PX + h + GAP_PX), GAP_PX + cols * (w + GAP_PX), 3),
        dtype=np.uint8,
    )
    sheet[:] = BACKGROUND_RGB
    for i, row in enumerate(rows):
        y = GAP_PX + i * (LABEL_PX + h + GAP_PX)
        for j, tile in enumerate(row):
            x = GAP_PX + j * (w + GAP_PX)
            sheet[y : y + LABEL_PX, x : x + w] = _label(w, tile.label)
            if tile.image is not None:
                sheet[y + LABEL_PX : y + LABEL_PX + h, x : x + w] = np.repeat(
                    np.repeat(tile.image, scale, axis=0), scale, axis=1
                )
    return sheet


def _png(rgb: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(
        ".png", np.ascontiguousarray(rgb[..., ::-1]), [cv2.IMWRITE_PNG_COMPRESSION, 9]
    )
    if not ok:
        raise RuntimeError("OpenCV could not encode the PNG")
    return buf.tobytes()


def _check_out(out: str | Path) -> Path:
    out = Path(out)
    if out.suffix.lower() != ".png":
        raise ValueError(f"--out must name a .png file, got {str(out)!r}")
    if out.is_dir():
        raise ValueError(f"--out {str(out)!r} is a folder; name a .png file")
    return out


def write_strip(
    out: str | Path,
    scenarios: Sequence[str] = tuple(SCENARIOS),
    seed: int = 0,
    steps: int = DEFAULT_STEPS,
    moments: int = DEFAULT_MOMENTS,
    scale: int = DEFAULT_SCALE,
    frames_dir: str | Path | None = None,
    progress: bool = False,
) -> Path:
    """Render the sheet of ``scenarios`` (one row each) and write it to ``out`` (a ``.png``,
    atomically; its folder is created).  With ``frames_dir``, also every frame on its own,
    upscaled :data:`FRAME_SCALE` times, as ``{scenario}_{camera}_{step:04d}.png``."""
    out = _check_out(out)
    if scale < 1:
        raise ValueError(f"scale must be at least 1, got {scale}")
    unknown = [s for s in scenarios if s not in SCENARIOS]
    if unknown or not scenarios:
        raise ValueError(
            f"unknown or no scenario(s) {list(unknown)}; known: {', '.join(SCENARIOS)}"
        )
    at = moment_steps(steps, moments)
    rows = []
    for name in scenarios:
        if progress:
            print(f"{name}: steps {at}", file=sys.stderr, flush=True)
        rows.append(drive_frames(name, seed, at))
    shape = next(t.image.shape[:2] for row in rows for t in row if t.image is not None)
    sheet = tile_sheet(rows, shape, scale)
    ensure_writable_dir(out.parent)
    atomic_write_bytes(out, _png(sheet))
    if frames_dir is not None:
        folder = ensure_writable_dir(frames_dir)
        for tile in (t for row in rows for t in row if t.image is not None):
            big = np.repeat(np.repeat(tile.image, FRAME_SCALE, axis=0), FRAME_SCALE, axis=1)
            atomic_write_bytes(
                folder / f"{tile.scenario}_{tile.camera}_{tile.step:04d}.png", _png(big)
            )
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m sim.report.rig_strip",
        description="Contact sheet of the perspective rig (cam_front, cam_rear) in every scenario, "
        "at a few moments of an autopilot-driven episode.",
    )
    p.add_argument("--out", required=True, metavar="PNG", help="the sheet to write (.png)")
    p.add_argument("--seed", type=arguments.seed, default=0, help="episode seed (default: 0)")
    p.add_argument(
        "--steps",
        type=arguments.count,
        default=DEFAULT_STEPS,
        metavar="N",
        help=f"the last moment, in control steps (default: {DEFAULT_STEPS})",
    )
    p.add_argument(
        "--moments",
        type=arguments.int_between(1, 12, "must be 1 to 12"),
        default=DEFAULT_MOMENTS,
        metavar="K",
        help=f"moments per episode, evenly spaced over [0, N] (default: {DEFAULT_MOMENTS})",
    )
    p.add_argument(
        "--scale",
        type=arguments.int_between(1, 8, "must be 1 to 8"),
        default=DEFAULT_SCALE,
        help=f"frame upscaling on the sheet (default: {DEFAULT_SCALE})",
    )
    p.add_argument(
        "--scenarios",
        default=",".join(SCENARIOS),
        help="comma-separated scenarios, one row each (default: all)",
    )
    p.add_argument(
        "--frames-dir",
        metavar="DIR",
        help=f"also write each frame alone, upscaled x{FRAME_SCALE}, into DIR",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        scenarios = arguments.scenario_list(args.scenarios)
        out = write_strip(
            args.out,
            scenarios,
            seed=args.seed,
            steps=args.steps,
            moments=args.moments,
            scale=args.scale,
            frames_dir=args.frames_dir,
            progress=True,
        )
    except (ValueError, PermissionError) as e:
        print(f"rig_strip: error: {e}", file=sys.stderr)
        return 2
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
