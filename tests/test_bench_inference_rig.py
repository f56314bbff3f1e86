"""``drive bench inference``'s rig rows: PilotNet on every rig camera's road crop, the e2e
agent's whole ``act`` from the full camera frames, and NatureCNN at the same input.

Timings are measured, never asserted: these tests check the rows exist, are well formed
(finite, positive, p50 <= p99) and reach the printed table."""

import math

import pytest

from sim.bench.inference import RIG, RIG_TARGET_MS, WIDTHS, bench_inference, format_inference

CAMERAS = ["cam_front", "cam_rear"]
SB3_RIG = "SB3 NatureCNN 6x66x200"


@pytest.fixture(scope="module")
def result():
    return bench_inference(
        repeats=2, loop_episodes=1, loop_batches=(1,), loop_duration_s=0.5, devices=("cpu",)
    )


def _well_formed(p: dict) -> bool:
    return (
        all(math.isfinite(p[k]) and p[k] > 0 for k in ("p50_ms", "p99_ms"))
        and p["p50_ms"] <= p["p99_ms"]
    )


def test_rig_rows_for_every_width_with_forward_and_act(result):
    assert result[RIG]["cameras"] == CAMERAS
    assert result[RIG]["input"] == [66, 200, 6]
    assert result[RIG]["frames"] == {"cam_front": [128, 256], "cam_rear": [128, 256]}
    assert result[RIG]["target_ms"] == RIG_TARGET_MS
    rows = result["devices"]["cpu"][RIG]["models"]
    for width in WIDTHS:
        row = rows[f"rig pilotnet-{width} fp32"]
        assert _well_formed(row["forward_b1"]) and _well_formed(row["act"]), (width, row)
    params = [rows[f"rig pilotnet-{w} fp32"]["parameters"] for w in WIDTHS]
    assert params == sorted(params) and len(set(params)) == len(params)
    assert _well_formed(result["devices"]["cpu"][RIG]["crop"])


def test_rig_has_naturecnn_at_the_same_input(result):
    row = result["devices"]["cpu"][RIG]["models"][SB3_RIG]
    assert _well_formed(row["forward_b1"]) and _well_formed(row["act"])
    assert row["parameters"] > 0


def test_bird_eye_rows_are_kept(result):
    rows = result["devices"]["cpu"]["models"]
    assert {
        "pilotnet-s fp32",
        "pilotnet-m fp32",
        "pilotnet-l fp32",
        "SB3 NatureCNN policy.predict",
    } <= set(rows)
    assert not any(k.startswith("rig ") for k in rows)


def test_format_prints_the_rig_table_with_its_target(result):
    text = format_inference(result)
    assert f"p99 <= {RIG_TARGET_MS:g} ms on the CPU" in text
    assert "cam_front + cam_rear" in text and "cam_front 128x256" in text
    for width in WIDTHS:
        assert f"rig pilotnet-{width} fp32" in text
        assert f"rig PilotNet-{width} fp32, 2 cameras: " in text
    assert SB3_RIG in text and "vs NatureCNN at the same input (6x66x200)" in text
    assert "rig crop alone" in text
    assert (
        "SB3 NatureCNN policy.predict" in text and "decisions/s" in text
    )  # the bird's-eye rows stay


def test_format_verdicts_follow_the_target():
    """The table's "meets the target" column, from made-up numbers (no timing involved)."""

    def p(p50, p99):
        return {"p50_ms": p50, "p99_ms": p99}

    fast, slow = p(1.0, 2.0), p(2.0, RIG_TARGET_MS + 1.0)
    r = {
        "camera": [128, 128],
        "threads": 1,
        RIG: {
            "cameras": CAMERAS,
            "input": [66, 200, 6],
            "frames": {c: [128, 256] for c in CAMERAS},
            "target_ms": RIG_TARGET_MS,
        },
        "devices": {
            "cpu": {
                "name": "cpu",
                "models": {},
                RIG: {
                    "crop": p(0.3, 0.4),
                    "models": {
                        "rig pilotnet-s fp32": {"parameters": 10, "forward_b1": fast, "act": fast},
                        "rig pilotnet-m fp32": {"parameters": 20, "forward_b1": fast, "act": slow},
                        SB3_RIG: {"parameters": 30, "forward_b1": fast, "act": fast},
                    },
                },
            }
        },
        "loop": {"scenario": "highway", "episodes": 1, "duration_s": 1.0, "by_batch": {}},
    }
    lines = format_inference(r).splitlines()
    row = {
        k: next(line for line in lines if line.startswith(k))
        for k in ("rig pilotnet-s", "rig pilotnet-m")
    }
    assert row["rig pilotnet-s"].endswith("fwd yes, act yes")
    assert row["rig pilotnet-m"].endswith("fwd yes, act NO")
    assert next(line for line in lines if line.startswith(SB3_RIG + " ")).endswith("(baseline)")


def test_one_camera_rig_sizes_the_baseline_to_match():
    r = bench_inference(
        repeats=1,
        loop_episodes=1,
        loop_batches=(1,),
        loop_duration_s=0.5,
        devices=("cpu",),
        rig_cameras=("cam_front",),
    )
    assert r[RIG]["input"] == [66, 200, 3]
    rows = r["devices"]["cpu"][RIG]["models"]
    assert "SB3 NatureCNN 3x66x200" in rows and "rig pilotnet-m fp32" in rows
    assert "rig PilotNet-m fp32, 1 camera: " in format_inference(r)
