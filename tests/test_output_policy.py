"""The output policy: a file a command writes is refused, before any work and leaving nothing
behind, when it exists and drive did not write it (or another command did); ``--force``
replaces it.  And outputs named after a scenario variant (a colon in a relative path)."""

import json

import pytest

from sim.cli import main
from sim.harness.io import (
    WRITTEN_BY,
    check_output_file,
    text_marker,
    write_json_output,
    write_text_output,
    written_by,
)


def test_a_missing_file_may_be_written_and_nothing_is_created(tmp_path):
    target = tmp_path / "a" / "b" / "result.json"
    assert check_output_file(target, kind="drive bench camera") == target
    assert not (tmp_path / "a").exists()  # checking creates nothing


def test_a_users_file_is_refused_and_kept(tmp_path):
    mine = tmp_path / "notes.json"
    mine.write_text('{"mine": 1}')
    with pytest.raises(FileExistsError, match="drive did not write it.*--force"):
        check_output_file(mine, kind="drive bench camera")
    assert mine.read_text() == '{"mine": 1}'
    assert check_output_file(mine, kind="drive bench camera", force=True) == mine


def test_an_earlier_output_of_the_same_command_may_be_replaced_another_commands_not(tmp_path):
    out = tmp_path / "bench.json"
    write_json_output(out, {"median_ms": 1.0}, kind="drive bench camera")
    assert json.loads(out.read_text())[WRITTEN_BY] == "drive bench camera"
    check_output_file(out, kind="drive bench camera")
    with pytest.raises(FileExistsError, match="drive bench camera wrote it"):
        check_output_file(out, kind="drive eval detector")


@pytest.mark.parametrize("name", ["x.md", "x.html"])
def test_markdown_and_html_outputs_carry_their_author_on_the_first_line(tmp_path, name):
    out = tmp_path / name
    write_text_output(out, "# title\n", kind="drive eval tracking")
    assert out.read_text().splitlines()[0] == text_marker("drive eval tracking")
    assert written_by(out) == "drive eval tracking"
    out.write_text("# a user's own notes\n")
    assert written_by(out) is None


def test_folders_wrong_suffixes_and_unwritable_places_are_refused(tmp_path):
    with pytest.raises(ValueError, match="is a folder"):
        check_output_file(tmp_path, kind="k")
    with pytest.raises(ValueError, match="must end in .json"):
        check_output_file(tmp_path / "r.jsonl", kind="k", suffixes=(".json",))
    afile = tmp_path / "file"
    afile.write_text("x")
    with pytest.raises(ValueError, match="is not a folder"):
        check_output_file(afile / "r.json", kind="k")


@pytest.mark.parametrize(
    "argv_tail",
    [
        ["bench", "camera", "--scenario", "lane-keep", "--frames", "3"],
        ["bench", "planner", "--scenarios", "lane-keep", "--episodes", "1"],
    ],
)
def test_a_benchmark_never_replaces_an_evaluations_results_or_a_manifest(
    capsys, tmp_path, argv_tail
):
    results = tmp_path / "eval" / "results.jsonl"
    manifest = tmp_path / "ds" / "manifest.json"
    for f, text in ((results, '{"seed": 0}\n'), (manifest, '{"frames": 8}\n')):
        f.parent.mkdir()
        f.write_text(text)
    assert main([*argv_tail, "--out", str(results)]) == 2
    assert "must end in .json" in capsys.readouterr().err
    assert main([*argv_tail, "--out", str(manifest)]) == 2
    assert "drive did not write it" in capsys.readouterr().err
    assert main([*argv_tail, "--out", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err
    assert results.read_text() == '{"seed": 0}\n'
    assert manifest.read_text() == '{"frames": 8}\n'


def test_detector_evaluation_checks_its_outputs_before_reading_the_dataset(capsys, tmp_path):
    manifest = tmp_path / "manifest.json"
    manifest.write_text('{"frames": 8}\n')
    missing = str(tmp_path / "no-such-dataset")
    argv = ["eval", "detector", "--data", missing]
    assert main([*argv, "--out", str(manifest)]) == 2
    assert "drive did not write it" in capsys.readouterr().err
    assert main([*argv, "--plot", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err
    assert main([*argv, "--plot", str(tmp_path / "p.svg")]) == 2
    assert "must end in .png" in capsys.readouterr().err
    assert manifest.read_text() == '{"frames": 8}\n'


def test_the_depth_plot_is_tagged_so_a_rerun_may_replace_it(tmp_path):
    from sim.pipelines.perception_data import plot_depth_errors

    png = plot_depth_errors([], tmp_path / "depth.png")
    assert written_by(png) == "drive eval detector"
    check_output_file(png, kind="drive eval detector")


def test_tracking_output_refuses_a_users_markdown_beside_it(capsys, tmp_path):
    (tmp_path / "t.md").write_text("my notes\n")
    argv = ["eval", "tracking", "--agents", "expert", "--scenarios", "hard-brake"]
    assert main([*argv, "--episodes", "1", "--out", str(tmp_path / "t.json")]) == 2
    assert "t.md" in capsys.readouterr().err
    assert (tmp_path / "t.md").read_text() == "my notes\n"
    assert not (tmp_path / "t.json").exists()


@pytest.mark.parametrize("option", ["--force", "--plot", "--data"])
def test_agent_evaluation_refuses_the_detector_options_it_would_ignore(capsys, tmp_path, option):
    extra = [option] if option == "--force" else [option, str(tmp_path / "x.png")]
    out = tmp_path / "ev"
    assert main(["eval", "--agents", "idm", "--episodes", "1", "--out", str(out), *extra]) == 2
    assert option in capsys.readouterr().err
    assert not out.exists()


def test_outputs_named_after_a_variant_keep_their_video(capsys, tmp_path, monkeypatch):
    """ffmpeg reads a leading ``NAME:`` of a relative path as a protocol: the episode that
    records the video used to end as ``sim_error`` with no video written."""
    monkeypatch.chdir(tmp_path)
    argv = ["run", "--agent", "straight", "--scenario", "lane-keep:night", "--episodes", "1"]
    assert main([*argv, "--duration", "1", "--quiet", "--out", "lane-keep:night"]) == 0
    out = capsys.readouterr().out
    record = json.loads((tmp_path / "lane-keep:night" / "episodes.jsonl").read_text())
    assert record["status"] == "ok", record.get("error")
    assert (tmp_path / "lane-keep:night" / "video.mp4").is_file()
    assert "video:    lane-keep:night/video.mp4" in out
