"""The rig's contact sheet (``python -m sim.report.rig_strip``): its tile grid, labels,
determinism, atomic writing, and the arguments it refuses."""

import cv2
import numpy as np
import pytest

from sim.geometry.pinhole import default_rig
from sim.report import rig_strip
from sim.report.rig_strip import (
    BACKGROUND_RGB,
    GAP_PX,
    LABEL_PX,
    Tile,
    main,
    moment_steps,
    tile_sheet,
    write_strip,
)

H, W = default_rig()["cam_front"].shape[:2]


def _read(path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert img is not None, path
    return img[..., ::-1]


def test_one_tile_per_camera_and_moment_deterministic_and_atomic(tmp_path):
    out, frames = tmp_path / "sheet" / "strip.png", tmp_path / "frames"
    assert (
        write_strip(out, ["lane-keep"], seed=1, steps=2, moments=2, scale=1, frames_dir=frames)
        == out
    )
    sheet = _read(out)
    # one row (the scenario), 2 moments x 2 cameras, each a label bar over a frame
    assert sheet.shape == (GAP_PX + LABEL_PX + H + GAP_PX, GAP_PX + 4 * (W + GAP_PX), 3)
    first = sheet[GAP_PX + LABEL_PX : GAP_PX + LABEL_PX + H, GAP_PX : GAP_PX + W]
    assert len(np.unique(first.reshape(-1, 3), axis=0)) > 3  # a rendered frame, not a blank
    assert sorted(p.name for p in out.parent.iterdir()) == ["strip.png"]  # no temp file left
    names = sorted(p.name for p in frames.iterdir())
    assert names == [
        f"lane-keep_{c}_{k:04d}.png" for c in ("cam_front", "cam_rear") for k in (0, 2)
    ]
    assert _read(frames / names[0]).shape == (3 * H, 3 * W, 3)
    again = tmp_path / "again.png"
    write_strip(again, ["lane-keep"], seed=1, steps=2, moments=2, scale=1)
    assert again.read_bytes() == out.read_bytes()


def test_a_failed_render_keeps_the_old_sheet(tmp_path, monkeypatch):
    out = tmp_path / "strip.png"
    out.write_bytes(b"old")

    def boom(*a, **k):
        raise RuntimeError("encoder failed")

    monkeypatch.setattr(rig_strip, "_png", boom)
    with pytest.raises(RuntimeError):
        write_strip(out, ["lane-keep"], steps=0, moments=1, scale=1)
    assert out.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["strip.png"]


def test_labels_and_blank_tiles_after_the_episode_ended():
    img = np.full((4, 6, 3), 200, dtype=np.uint8)
    rows = [
        [
            Tile("merge", "cam_front", 30, 2.0, img, end="vehicle collision"),
            Tile("merge", "cam_front", 60, 2.0, None),
        ]
    ]
    assert rows[0][0].label == "merge  cam_front  t=2.0 s  end: vehicle collision"
    assert "episode over" in rows[0][1].label
    sheet = tile_sheet(rows, (4, 6), 2)
    assert sheet.shape == (GAP_PX + LABEL_PX + 8 + GAP_PX, GAP_PX + 2 * (12 + GAP_PX), 3)
    y = GAP_PX + LABEL_PX
    assert (sheet[y : y + 8, GAP_PX : GAP_PX + 12] == 200).all()
    x = GAP_PX + 12 + GAP_PX
    assert (sheet[y : y + 8, x : x + 12] == BACKGROUND_RGB).all()


def test_moments_are_evenly_spaced_control_steps():
    assert moment_steps(120, 3) == [0, 60, 120]
    assert moment_steps(1, 4) == [0, 1]
    assert moment_steps(0, 1) == [0]
    with pytest.raises(ValueError):
        moment_steps(-1, 2)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--out", "strip.jpg"], "must name a .png"),
        (["--out", ".", "--scenarios", "lane-keep"], "must name a .png"),
        (["--out", "x.png", "--scenarios", "nowhere"], "unknown scenario"),
    ],
)
def test_cli_refuses_bad_outputs_and_scenarios(tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "dir.png").mkdir()
    assert main(argv) == 2
    assert message in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir.png"]
    assert main(["--out", "dir.png", "--scenarios", "lane-keep", "--steps", "0"]) == 2
    assert "is a folder" in capsys.readouterr().err


def test_cli_rejects_negative_steps():
    with pytest.raises(SystemExit) as e:
        main(["--out", "x.png", "--steps", "-1"])
    assert e.value.code == 2
