"""``drive study scale``: nested subsets, cells trained and driven, resume, grown grids, the
report."""

from __future__ import annotations

import itertools
import json
from dataclasses import asdict

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.e2e.demos import episode_lengths, load_demos
from agents.e2e.rig import DEFAULT_SIDE_VIEWS, SideView
from sim.cli import main
from sim.harness.evaluate import read_results
from sim.harness.io import write_jsonl
from sim.pipelines.record import NoiseConfig, record_dataset
from sim.pipelines.study import (
    CELLS,
    CONFIG,
    StudyConfig,
    matches,
    modular_reference,
    nested_subsets,
    parse_sizes,
    read_cells,
    rig_memory_bytes,
    run_study,
    write_study_report,
)
from sim.world.scenarios import get_scenario


@given(st.lists(st.integers(1, 500), min_size=2, max_size=40), st.integers(0, 5), st.data())
@settings(max_examples=60, deadline=None)
def test_nested_subsets_are_prefixes_of_one_order_and_the_shortest_that_fit(
    frames, order_seed, data
):
    total = sum(frames)
    sizes = sorted(set(data.draw(st.lists(st.integers(1, total), min_size=1, max_size=5))))
    subsets = nested_subsets(frames, sizes, order_seed)
    for small, big in itertools.pairwise(sizes):
        assert (
            subsets[big][: len(subsets[small])] == subsets[small]
        )  # nested: a prefix of the bigger one
    for size, eps in subsets.items():
        assert len(set(eps)) == len(eps)  # whole episodes, none twice
        assert sum(frames[e] for e in eps) >= size and len(eps) >= 2
        assert len(eps) == 2 or size > sum(frames[e] for e in eps[:-1])  # the shortest that fits
    with pytest.raises(ValueError, match="needs more data"):
        nested_subsets(frames, [total + 1], order_seed)


def test_demos_subset_keeps_whole_episodes_in_order(tmp_path):
    path = tmp_path / "demos"
    record_dataset(
        get_scenario("lane-keep", duration_s=2.0),
        [3, 4, 5],
        path,
        noise=NoiseConfig(0.2),
        progress=False,
    )
    demos = load_demos(path)
    sub = demos.subset([2, 0])
    assert [e["seed"] for e in sub.episodes] == [5, 3]
    for k, e in enumerate((2, 0)):
        np.testing.assert_array_equal(
            sub.frames[sub.episode == k], demos.frames[demos.episode == e]
        )
        np.testing.assert_array_equal(sub.step[sub.episode == k], demos.step[demos.episode == e])
    with pytest.raises(ValueError):
        demos.subset([0, 0])
    only = load_demos(path, episodes=[2, 0])  # the others' frames are never read
    np.testing.assert_array_equal(only.frames, sub.frames)
    np.testing.assert_array_equal(only.episode, sub.episode)
    assert episode_lengths(path) == np.bincount(demos.episode).tolist()
    with pytest.raises(ValueError):
        load_demos(path, episodes=[3])


def test_parse_sizes_and_config_checks():
    assert parse_sizes("5k,2k, 20000,1.5M") == (2000, 5000, 20000, 1_500_000)
    for bad in ("", "2q", "0", "-3k", "1.5"):
        with pytest.raises(ValueError):
            parse_sizes(bad)
    with pytest.raises(ValueError, match="known: s, m, l"):
        StudyConfig(scenario="lane-keep", frames=(100,), models=("xl",))


def test_matches_marks_the_smallest_size_that_reaches_the_reference():
    rows = [
        {"model": "s", "method": "bc", "frames": f, "labelled_frames": f + 1, "score": v}
        for f, v in ((3, 0.99), (1, 0.2), (2, 0.95))
    ]
    rows += [
        {
            "model": "s",
            "method": "dagger",
            "dagger_rounds": 2,
            "frames": 1,
            "labelled_frames": 9,
            "score": 1.0,
        }
    ]
    assert matches(rows, {"score": 1.0, "low": 0.9, "high": 1.0}) == {
        "PilotNet-s": 3,
        "PilotNet-s + DAgger x2": 9,
    }
    assert matches(rows, {"score": 1.0, "low": 1.0, "high": 1.0}) == {
        "PilotNet-s": None,
        "PilotNet-s + DAgger x2": 9,
    }


def test_a_tiny_study_runs_end_to_end_resumes_and_grows(tmp_path):
    out = tmp_path / "study"
    cfg = StudyConfig(
        scenario="lane-keep",
        frames=(60, 150),
        models=("s",),
        train_seeds=1,
        episodes=1,
        samples=200,
        max_epochs=2,
        budget_s=60,
        duration_s=3.0,
        references=("expert",),
        demo_seed=2000,
        heldout_episodes=2,
    )
    cells = run_study(cfg, out, progress=False)
    assert all(
        np.isfinite(c["heldout_loss"]) and c["method"] == "bc" for c in cells
    )  # one shared test set
    assert json.loads((out / "study.json").read_text())["heldout"] == str(out / "heldout")
    trained = json.loads((out / "cells" / "s__60__seed0" / "policy" / "e2e.json").read_text())[
        "training"
    ]
    assert (
        trained["keep"] == "last"
        and trained["best_epoch"] == len(trained["history"]) == trained["epochs"]
    )
    assert sorted((c["frames"], c["model"], c["seed"]) for c in cells) == [
        (60, "s", 0),
        (150, "s", 0),
    ]
    by = {c["frames"]: c for c in cells}
    assert by[60]["labelled_frames"] >= 60 and by[150]["labelled_frames"] >= 150
    assert by[60]["episodes_used"] <= by[150]["episodes_used"] and by[60]["eval_episodes"] == 1
    small = json.loads((out / "cells" / "s__60__seed0" / "policy" / "e2e.json").read_text())[
        "study"
    ]["episodes"]
    big = json.loads((out / "cells" / "s__150__seed0" / "policy" / "e2e.json").read_text())[
        "study"
    ]["episodes"]
    assert big[: len(small)] == small  # the bigger cell trained on a superset, in the same order
    assert (out / "reference" / "results.jsonl").exists()
    before = (out / CELLS).read_bytes()
    with pytest.raises(FileExistsError):
        run_study(cfg, out, progress=False)
    assert (
        run_study(cfg, out, resume=True, progress=False) == cells
        and (out / CELLS).read_bytes() == before
    )
    with pytest.raises(ValueError, match="samples"):
        run_study(StudyConfig(**{**cfg.__dict__, "samples": 300}), out, resume=True, progress=False)
    grown = StudyConfig(
        **{**cfg.__dict__, "train_seeds": 2}
    )  # the grid may grow: only new cells run
    cells = run_study(grown, out, resume=True, workers=2, progress=False)
    assert len(cells) == 4 and (out / CELLS).read_bytes().startswith(before)
    paths = write_study_report(out)
    md = paths["md"].read_text()
    assert (
        "4 cells done (4 in the last run's grid)" in md
        and "| PilotNet-s |" in md
        and "expert:" in md
        and paths["chart"].stat().st_size > 0
    )
    assert "no modular reference" in md and "expert episodes in no subset" in md

    # DAgger added on resume: a second line per cell, from that cell's policy and subset
    dagger = StudyConfig(
        **{**grown.__dict__, "train_seeds": 1, "dagger_rounds": 1, "dagger_episodes": 1}
    )
    cells = run_study(dagger, out, resume=True, progress=False)
    assert len(cells) == 6 and (out / CELLS).read_bytes().startswith(before)
    bc = {c["frames"]: c for c in cells if c["method"] == "bc" and c["seed"] == 0}
    for d in (c for c in cells if c["method"] == "dagger"):
        assert d["cell"] == f"s__{d['frames']}__seed0__dagger1" and d["dagger_frames"] > 0
        assert d["labelled_frames"] == bc[d["frames"]]["labelled_frames"] + d["dagger_frames"]
        assert d["samples_seen"] > bc[d["frames"]]["samples_seen"] and np.isfinite(
            d["heldout_loss"]
        )
        assert (out / d["policy"]).parent.name == "1"  # cells/NAME/dagger/rounds/1/policy
    md = write_study_report(out)["md"].read_text()
    assert "| PilotNet-s + DAgger x1 |" in md and "DAgger lines" in md

    # a study from before the shared held-out set: its lines get the loss on resume
    lines = read_cells(out)
    for r in lines:
        r.pop("heldout_loss")
    write_jsonl(out / CELLS, lines)
    again = run_study(dagger, out, resume=True, progress=False)
    assert [round(r["heldout_loss"], 6) for r in again] == [
        round(r["heldout_loss"], 6) for r in cells
    ]
    # and one from before `keep`: it kept the best epoch, so a default (last) resume is refused
    config = json.loads((out / "study.json").read_text())
    del config["study"]["keep"]
    (out / "study.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="keep"):
        run_study(dagger, out, resume=True, progress=False)
    assert (
        len(
            run_study(
                StudyConfig(**{**dagger.__dict__, "keep": "best"}), out, resume=True, progress=False
            )
        )
        == 6
    )

    (out / CELLS).write_text((out / CELLS).read_text() + '{"cell": "x"}\n')
    with pytest.raises(ValueError, match="lacks"):
        read_cells(out)


def test_rig_config_defaults_and_checks():
    rig = StudyConfig(scenario="lane-keep", frames=(100,), sensors="rig")
    assert rig.references == ("expert", "modular") and rig.cameras == ("cam_front",)
    assert rig.side_views == DEFAULT_SIDE_VIEWS and rig.sensor_label() == "camera rig (cam_front)"
    bev = StudyConfig(scenario="lane-keep", frames=(100,))
    assert (
        bev.references == ("expert", "modular-bev") and bev.cameras == () and bev.side_views == ()
    )
    assert bev.sensor_label() == "bird's-eye raster" and bev.rig_input() is None
    views = StudyConfig(
        scenario="lane-keep", frames=(100,), sensors="rig", side_views=(SideView(0.5, 2.0),)
    )
    assert views.side_views == ((0.5, 2.0),) and views.rig_input(side_views=False).side_views == ()
    for bad, match in (
        ({"sensors": "lidar"}, "known: bev, rig"),
        ({"cameras": ("cam_front",)}, "--sensors rig"),
        ({"sensors": "rig", "cameras": ("cam_left",)}, "cam_left"),
        ({"sensors": "rig", "side_views": ((5.0, 0.0),)}, "3 m"),
    ):
        with pytest.raises(ValueError, match=match):
            StudyConfig(scenario="lane-keep", frames=(100,), **bad)
    # (1 + V) crops of 66x200x3 bytes per camera and frame
    assert rig_memory_bytes(1000, 6) == 1000 * 7 * 66 * 200 * 3
    assert rig_memory_bytes(10, 0, cameras=2) == 10 * 66 * 200 * 3 * 2
    # the modular line is the one on the study's sensors, with or without a checkpoint
    refs = {"expert": {}, "modular-bev": {}, "modular:geometric": {}}
    assert (
        modular_reference(refs, "rig") == "modular:geometric"
        and modular_reference(refs, "bev") == "modular-bev"
    )
    assert modular_reference({"expert": {}}, "rig") is None


def test_a_tiny_rig_study_records_trains_and_drives_on_the_camera_rig(tmp_path, capsys):
    out = tmp_path / "rig"
    cfg = StudyConfig(
        scenario="lane-keep",
        frames=(40, 80),
        models=("s",),
        train_seeds=1,
        episodes=1,
        samples=100,
        max_epochs=1,
        budget_s=60,
        duration_s=2.0,
        demo_seed=2000,
        heldout_episodes=1,
        references=("expert", "modular:geometric"),
        sensors="rig",
        side_views=((0.5, 0.0),),
    )
    cells = run_study(cfg, out, progress=True)
    printed = capsys.readouterr().out
    assert (
        "study: memory: a rig frame is 1 + 1 recovery views x 66x200x3 bytes x 1 camera = 79 kB"
        in printed
    )
    config = json.loads((out / CONFIG).read_text())
    assert config["study"]["sensors"] == "rig" and config["study"]["cameras"] == ["cam_front"]
    demos = load_demos(config["datasets"])
    assert demos.rig["cameras"] == ["cam_front"] and demos.side_frames.shape[1:3] == (1, 66)
    held = load_demos(config["heldout"])
    assert held.rig["cameras"] == ["cam_front"] and held.side_frames is None  # centre view only
    assert sorted(c["frames"] for c in cells) == [40, 80]
    for c in cells:
        meta = json.loads((out / c["policy"] / "e2e.json").read_text())
        assert meta["config"]["cameras"] == ["cam_front"] and np.isfinite(c["heldout_loss"])
    agents = {r["agent"] for r in read_results(out / "reference" / "results.jsonl")}
    assert agents == {"expert", "modular:geometric"}
    md = write_study_report(out)["md"].read_text()
    assert "PilotNet on the camera rig (cam_front)" in md and "modular:geometric:" in md
    assert "no modular reference" not in md
    with pytest.raises(ValueError, match="sensors"):  # a rig study resumes as a rig study only
        run_study(
            StudyConfig(
                **{
                    **asdict(cfg),
                    "sensors": "bev",
                    "cameras": (),
                    "side_views": (),
                    "references": None,
                }
            ),
            out,
            resume=True,
            progress=False,
        )


def test_an_old_study_without_sensors_resumes_as_a_birds_eye_study(tmp_path):
    out = tmp_path / "old"
    out.mkdir()
    cfg = StudyConfig(
        scenario="lane-keep",
        frames=(60,),
        models=("s",),
        train_seeds=1,
        episodes=1,
        references=(),
        heldout_episodes=0,
        keep="last",
    )
    study = {
        k: v
        for k, v in json.loads(json.dumps(asdict(cfg))).items()
        if k not in ("sensors", "cameras", "side_views")
    }  # what the version before --sensors wrote
    (out / CONFIG).write_text(
        json.dumps(
            {
                "study": study,
                "datasets": ["elsewhere/demos"],
                "dataset_frames": 600,
                "dataset_episodes": 10,
                "started": "then",
            }
        )
    )
    line = {
        "cell": "s__60__seed0",
        "model": "s",
        "frames": 60,
        "seed": 0,
        "driving_score": 0.5,
        "method": "bc",
    }
    write_jsonl(out / CELLS, [line])  # every cell done: the resume trains nothing
    with pytest.raises(ValueError, match="sensors"):
        run_study(
            StudyConfig(
                **{**asdict(cfg), "sensors": "rig", "references": None, "side_views": None}
            ),
            out,
            resume=True,
            progress=False,
        )
    assert run_study(cfg, out, resume=True, progress=False) == [line]
    resumed = json.loads((out / CONFIG).read_text())
    assert resumed["study"]["sensors"] == "bev" and resumed["datasets"] == ["elsewhere/demos"]


def test_study_cli_refuses_bad_input(capsys):
    assert main(["study", "scale", "--frames", "2q"]) == 2
    assert "not a size" in capsys.readouterr().err
    assert main(["study", "scale", "--models", "xl"]) == 2
    assert main(["study", "scale", "--scenario", "moon"]) == 2
    assert "known:" in capsys.readouterr().err
    assert (
        main(["study", "scale", "--cameras", "cam_front"]) == 2
    )  # the rig's options need --sensors rig
    assert "--sensors rig" in capsys.readouterr().err
    assert main(["study", "scale", "--sensors", "rig", "--cameras", "cam_left"]) == 2
    assert main(["study", "scale", "--sensors", "rig", "--side-views", "0.5:x"]) == 2


@pytest.mark.ray
# 80 s: the study on Ray (pytest -m slow); drive eval's Ray path is tests/test_ray.py
@pytest.mark.slow
def test_the_ray_backend_runs_cells_on_a_local_cluster(tmp_path):
    pytest.importorskip("ray")
    cfg = StudyConfig(
        scenario="lane-keep",
        frames=(60,),
        models=("s",),
        train_seeds=2,
        episodes=1,
        samples=100,
        max_epochs=1,
        budget_s=60,
        duration_s=3.0,
        references=(),
        demo_seed=2000,
    )
    cells = run_study(cfg, tmp_path / "ray", backend="ray", progress=False)
    assert len(cells) == 2


def _tiny_study(out, *extra):
    """``drive study scale`` with a recipe small enough that a late refusal costs seconds."""
    return main(
        [
            "study",
            "scale",
            "--scenario",
            "lane-keep",
            "--frames",
            "60",
            "--models",
            "s",
            "--train-seeds",
            "1",
            "--episodes",
            "1",
            "--samples",
            "100",
            "--max-epochs",
            "1",
            "--duration",
            "3",
            "--heldout-episodes",
            "0",
            "--quiet",
            "--out",
            str(out),
            *extra,
        ]
    )


def test_a_study_refuses_a_missing_reference_before_recording_or_creating_anything(
    tmp_path, capsys
):
    out = tmp_path / "study"
    nope = tmp_path / "no-detector"
    refs = ["--references", f"expert,modular:{nope}"]
    assert _tiny_study(out, *refs, "--backend", "ray") == 2
    assert list(tmp_path.iterdir()) == []  # no demos recorded, no folder made
    err = capsys.readouterr().err
    assert str(nope) in err and "--references" in err, err


def test_a_study_refuses_an_unusable_ray_cluster_before_recording_or_creating_anything(
    tmp_path, capsys
):
    out = tmp_path / "study"
    # port 1: nothing listens, so the refusal comes on the first TCP attempt
    args = ["--references", "expert", "--backend", "ray", "--address", "127.0.0.1:1"]
    assert _tiny_study(out, *args) == 2
    assert "127.0.0.1:1" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_refused_studies_leave_no_folder_behind(tmp_path, capsys):
    out = tmp_path / "study"
    # demos are recorded without faults: refused before the study folder exists
    assert _tiny_study(out, "--scenario", "lane-keep:noise=2", "--references", "expert") == 2
    err = capsys.readouterr().err
    assert "noise=2" in err and "lane-keep" in err, err
    assert list(tmp_path.iterdir()) == []
    assert _tiny_study(out, "--data", str(tmp_path / "missing"), "--references", "expert") == 2
    assert str(tmp_path / "missing") in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
    # a study folder that cannot be made (a file is in the way) is refused before any work
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert _tiny_study(blocker / "study", "--references", "expert") == 2
    assert str(blocker) in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]
