"""``drive compare``: makes what is missing, reuses what exists, resumes, keeps old runs."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from sim.cli import main
from sim.harness.evaluate import CONFIG, RESULTS, read_results
from sim.pipelines.compare import (
    RECIPES,
    SUMMARY,
    CompareRecipe,
    E2ERecipe,
    agent_specs,
    get_recipe,
    run_compare,
)


def tiny(root: Path, **overrides) -> CompareRecipe:
    net = E2ERecipe(demo_episodes=2, model="pilotnet-s", epochs=1, budget_s=60.0)
    values = {
        "name": "tiny",
        "root": str(root),
        "episodes": 1,
        "duration_s": 3.0,
        "detector_frames": 24,
        "detector_per_episode": 8,
        "detector_scenarios": ("highway",),
        "detector_epochs": 1,
        "detector_width": 8,
        "videos": 0,
        "workers": 1,
        "e2e": {"*": net},
        "e2e_rig": {"*": replace(net, side_views="0.5:0,-0.5:0")},
        "sensors": ("bev",),
    }
    values.update(overrides)
    return CompareRecipe(**values)


def stages(summary: dict) -> dict[str, str]:
    return {s["stage"]: s["action"] for s in summary["stages"]}


def test_compare_makes_then_reuses_then_keeps_a_changed_run_aside(tmp_path):
    root = tmp_path / "runs"
    recipe = tiny(root)
    first = run_compare(recipe, device="cpu", quiet=True)
    assert stages(first) == {
        "detector frames": "made",
        "detector": "made",
        "demos lane-keep": "made",
        "e2e lane-keep": "made",
        "demos highway": "made",
        "e2e highway": "made",
        "evaluation": "made",
        "report": "made",
    }
    out = root / "compare-bev"
    for name in ("report.html", "report.md", "report.json", CONFIG, RESULTS, SUMMARY):
        assert (out / name).is_file(), name
    records = read_results(out / RESULTS)
    specs = agent_specs(recipe)
    assert specs == [
        "expert",
        f"modular-bev:{(root / 'detector').as_posix()}",
        f"e2e-bev:{(root / 'e2e').as_posix()}/{{scenario}}",
        "idm",
    ]
    assert sorted((r["agent"], r["scenario"]) for r in records) == sorted(
        (a, s) for a in specs for s in ("lane-keep", "highway")
    )
    config = json.loads((out / CONFIG).read_text())
    e2e_ckpts = config["checkpoints"][specs[2]]  # the {scenario} template picked one per scenario
    assert {s: Path(c["path"]).name for s, c in e2e_ckpts.items()} == {
        "lane-keep": "lane-keep",
        "highway": "highway",
    }
    assert json.loads((out / SUMMARY).read_text())["stages"] == first["stages"]
    before = (out / RESULTS).read_bytes()

    study = root / "study" / "lane-keep" / "study.html"
    study.parent.mkdir(parents=True)
    study.write_text("<html></html>")
    again = run_compare(
        recipe, device="cpu", quiet=True
    )  # everything cached: nothing retrained or re-run
    assert again["studies"] == [str(study)]
    assert (
        "[scaling study: lane-keep](../study/lane-keep/study.html)"
        in (out / "report.md").read_text()
    )
    assert stages(again) == {
        "detector": "reused",
        "e2e lane-keep": "reused",
        "e2e highway": "reused",
        "evaluation": "made",
        "report": "made",
    }
    assert next(s for s in again["stages"] if s["stage"] == "evaluation")["resumed"] is True
    assert (out / RESULTS).read_bytes() == before

    changed = run_compare(tiny(root, agents=("expert",)), device="cpu", quiet=True)
    kept = [p for p in root.iterdir() if p.name.startswith("compare-bev.")]
    assert (
        len(kept) == 1 and (kept[0] / RESULTS).read_bytes() == before
    )  # the old run is kept, whole
    assert {r["agent"] for r in read_results(out / RESULTS)} == {"expert"}
    assert next(s for s in changed["stages"] if s["stage"] == "evaluation")["resumed"] is False


def test_compare_retrains_a_checkpoint_an_interrupted_training_left_and_reuses_its_demos(tmp_path):
    from agents.e2e.checkpoint import META
    from perception.checkpoint import check_fresh_out, training_complete

    root = tmp_path / "runs"
    recipe = tiny(root, scenarios=("lane-keep",), agents=("e2e-bev",))
    run_compare(recipe, device="cpu", quiet=True)
    ckpt = root / "e2e" / "lane-keep"
    assert training_complete(ckpt, META)
    with pytest.raises(FileExistsError):
        check_fresh_out(ckpt, META)  # a finished checkpoint is never trained over
    meta = json.loads((ckpt / META).read_text())
    meta["training"]["complete"] = False  # what a killed training leaves: the best epoch so far
    (ckpt / META).write_text(json.dumps(meta))
    assert not training_complete(ckpt, META)
    summary = run_compare(recipe, device="cpu", quiet=True)
    assert (
        stages(summary)["demos lane-keep"] == "reused"
        and stages(summary)["e2e lane-keep"] == "made"
    )
    assert training_complete(ckpt, META)


def test_compare_on_the_rig_trains_the_rig_network_and_uses_the_geometric_detector(tmp_path):
    """The main job: both paradigms from the camera rig; without a trained mono3d detector
    under the root, the modular agent's is the geometric one (no training)."""
    root = tmp_path / "runs"
    recipe = tiny(root, scenarios=("lane-keep",), sensors=("rig",), episodes=2)
    summary = run_compare(recipe, device="cpu", quiet=True)
    assert stages(summary) == {
        "detector (rig)": "none needed",
        "demos lane-keep (rig)": "made",
        "e2e lane-keep (rig)": "made",
        "evaluation": "made",
        "report": "made",
    }
    out = root / "compare"
    config = json.loads((out / CONFIG).read_text())
    e2e = f"e2e:{(root / 'e2e-rig').as_posix()}/{{scenario}}"
    assert config["agents"] == ["expert", "modular:geometric", e2e, "idm"]
    assert config["sensors"][e2e] == ["cam_front", "speed", "command"]
    assert "bev" not in config["sensors"]["modular:geometric"]
    assert {r["agent"] for r in read_results(out / RESULTS)} == set(config["agents"])
    demos = json.loads((root / "demos-rig" / "lane-keep" / "data" / "metadata.json").read_text())[
        "drive"
    ]
    assert demos["rig"]["side_views"] == [[0.5, 0.0], [-0.5, 0.0]]
    both = tiny(root, scenarios=("lane-keep",), sensors=("rig", "bev"))
    assert both.eval_dir == "compare-rig-bev"
    assert [a.split(":")[0] for a in agent_specs(both)] == [
        "expert",
        "modular",
        "modular-bev",
        "e2e",
        "e2e-bev",
        "idm",
    ]
    with pytest.raises(ValueError, match="give one or both of rig, bev"):
        tiny(root, sensors=("lidar",))


def test_recipes_and_cli_flags():
    default, quick = RECIPES["default"], RECIPES["quick"]
    assert default.sensors == ("rig",) and default.eval_dir == "compare"
    assert [a.split(":")[0] for a in agent_specs(default)] == ["expert", "modular", "e2e", "idm"]
    bev = replace(default, sensors=("bev",))
    assert agent_specs(bev) == [
        "expert",
        "modular-bev",
        "e2e-bev",
        "idm",
    ]  # the agents' own default paths
    assert default.scenarios == quick.scenarios == ("lane-keep", "highway")
    assert (
        default.episodes >= 20 and quick.root != default.root
    )  # quick's small nets never shadow the default's
    assert (
        get_recipe(True, episodes=7).episodes == 7
        and get_recipe(False, episodes=None).episodes == default.episodes
    )
    assert get_recipe(False, sensors=("rig", "bev")).eval_dir == "compare-rig-bev"
    assert get_recipe(True, sensors=None).sensors == ("rig",)
    assert default.e2e_recipe("merge") is default.e2e["*"]
    assert default.e2e_recipe("merge", "rig") is default.e2e_rig["*"]


@pytest.mark.parametrize(
    "argv",
    [
        ["compare", "--episodes", "0"],
        ["compare", "--videos", "-1"],
        ["compare", "--device", "tpu"],
        ["compare", "--sensors", "lidar"],
        ["compare", "--sensors", "rig,rig"],
    ],
)
def test_compare_refuses_bad_flags(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2


def test_compare_records_again_detector_frames_of_an_older_format(tmp_path):
    root = tmp_path / "runs"
    recipe = tiny(root, scenarios=("lane-keep",), agents=("modular-bev",))  # sensors bev
    run_compare(recipe, device="cpu", quiet=True)
    frames, detector = root / "frames", root / "detector"
    m = json.loads((frames / "manifest.json").read_text())
    m["version"] = 1  # a dataset recorded before the camera rig
    (frames / "manifest.json").write_text(json.dumps(m))
    shutil.rmtree(detector)
    summary = run_compare(recipe, device="cpu", quiet=True)
    assert stages(summary)["detector frames"] == "made" and stages(summary)["detector"] == "made"
    assert json.loads((frames / "manifest.json").read_text())["version"] == 2
