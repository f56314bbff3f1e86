"""CLI smoke tests on tiny budgets, and bad input giving clear messages."""

import json
import re
import subprocess
import sys

import av
import pytest

from agents import make_agent
from sim.cli import main
from sim.world.scenarios import SCENARIOS


def test_help_for_every_subcommand(capsys):
    for argv in (
        ["--help"],
        ["run", "--help"],
        ["scenarios", "--help"],
        ["agents", "--help"],
        ["bench", "--help"],
    ):
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 0
        assert "usage: drive" in capsys.readouterr().out


def test_building_the_parser_loads_no_training_library():
    """``drive --help`` and ``drive scenarios`` stay fast: the job modules behind each command
    (torch, Stable-Baselines3) are imported by its handler, not by the parser."""
    code = (
        "import sys, sim.cli; sim.cli.build_parser(); "
        "print('torch' in sys.modules, 'stable_baselines3' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "False"]


def test_help_lists_every_subcommand_by_area(capsys):
    """Each area registers its own subcommands: harness, pipelines, report, benchmarks."""
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    commands = [
        "scenarios",
        "agents",
        "run",
        "eval",
        "record",
        "perception",
        "compare",
        "study",
        "train",
        "probe",
        "report",
        "explain",
        "bench",
    ]
    assert re.findall(r"^    (\S+)", out, flags=re.MULTILINE) == commands
    with pytest.raises(SystemExit):
        main(["nope"])
    assert "(choose from " + ", ".join(map(repr, commands)) + ")" in capsys.readouterr().err


def test_scenarios_lists_each_with_a_description(capsys):
    assert main(["scenarios"]) == 0
    out = capsys.readouterr().out.splitlines()
    names = [
        line.split()[0] for line in out if line and not line.startswith((" ", "variants follow"))
    ]
    assert names == list(SCENARIOS)
    rows = [
        line for line in out if line and not line.startswith(" ") and line.split()[0] in SCENARIOS
    ]
    assert all(len(line.split()) > 3 for line in rows)
    variants = [line.strip() for line in out if line.startswith(" ")]
    assert len(variants) == len(SCENARIOS) and all(v.startswith("variants: ") for v in variants)
    assert any("traffic empty|regular|dense" in v for v in variants) and any(
        "maps train|unseen" in v for v in variants
    )


def test_agents_lists_the_sensors_each_is_handed(capsys):
    assert main(["agents"]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert {"expert", "modular", "idm", "straight"} <= set(rows)
    assert "sensors: truth, map, pose, speed" in rows["expert"]
    assert "sensors: autopilot" in rows["idm"]


def test_unknown_scenario_and_agent(capsys, tmp_path):
    assert main(["run", "--scenario", "hgihway", "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err
    assert "unknown scenario 'hgihway'" in err and "lane-keep" in err and "Traceback" not in err
    assert main(["run", "--agent", "pilot", "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert "unknown agent 'pilot'" in err and "idm" in err


def test_negative_episodes_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as e:
        main(["run", "--episodes", "-1"])
    assert e.value.code == 2
    assert "must be at least 1" in capsys.readouterr().err


def test_unwritable_output_folder(capsys, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["run", "--out", str(blocker / "sub"), "--episodes", "1"]) == 2
    err = capsys.readouterr().err
    assert "not writable" in err and "Traceback" not in err


def test_existing_results_are_not_overwritten(capsys, tmp_path):
    (tmp_path / "episodes.jsonl").write_text('{"seed": 0}\n')
    assert main(["run", "--out", str(tmp_path), "--episodes", "1", "--video", "none"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert (tmp_path / "episodes.jsonl").read_text() == '{"seed": 0}\n'


def test_run_writes_episodes_config_and_a_playable_video(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "sim.cli",
            "run",
            "--agent",
            "idm",
            "--scenario",
            "merge",
            "--episodes",
            "2",
            "--seed",
            "3",
            "--duration",
            "3",
            "--out",
            str(out),
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "status:" in proc.stdout and "mean" in proc.stdout
    config = json.loads((out / "config.json").read_text())
    assert config["agent"] == "idm" and config["seeds"] == [3, 4]
    assert config["versions"]["highway-env"]
    lines = (out / "episodes.jsonl").read_text().splitlines()
    recs = [json.loads(x) for x in lines]
    assert [r["seed"] for r in recs] == [3, 4]
    assert all(r["scenario"] == "merge" and r["agent"] == "idm" for r in recs)
    with av.open(str(out / "video.mp4")) as c:
        stream = c.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert stream.codec_context.pix_fmt == "yuv420p"
        frames = [f for f in c.decode(video=0)]
    assert len(frames) == recs[0]["steps"] + 1  # the reset frame + one per decision
    assert frames[0].width == 768 and frames[0].height % 2 == 0


def test_negative_seed_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as e:
        main(["run", "--seed", "-3"])
    assert e.value.code == 2
    assert "non-negative" in capsys.readouterr().err


def test_bench_camera_smoke(capsys, tmp_path):
    out = tmp_path / "bench.json"
    assert main(["bench", "camera", "--frames", "5", "--scenario", "merge", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "ego camera" in text and "cam_front" in text and "GrayscaleObservation" in text
    result = json.loads(out.read_text())
    assert result["frames"] == 5 and [sc["scenario"] for sc in result["scenarios"]] == ["merge"]
    assert all(row["median_ms"] > 0 for row in result["scenarios"][0]["rows"])


@pytest.mark.parametrize("value", ["nan", "inf", "-2", "0", "soon"])
def test_bad_duration_is_a_usage_error(capsys, value):
    with pytest.raises(SystemExit) as e:
        main(["run", "--duration", value])
    assert e.value.code == 2
    assert "--duration" in capsys.readouterr().err


def test_video_path_that_is_a_folder_is_refused_before_running(capsys, tmp_path):
    folder = tmp_path / "clip.mp4"
    folder.mkdir()
    out = tmp_path / "run"
    assert main(["run", "--out", str(out), "--video", str(folder), "--episodes", "1"]) == 2
    assert "is a folder" in capsys.readouterr().err


def test_traces_are_saved_without_pickle(tmp_path):
    import numpy as np

    out = tmp_path / "run"
    assert (
        main(
            [
                "run",
                "--scenario",
                "lane-keep",
                "--agent",
                "straight",
                "--episodes",
                "1",
                "--video",
                "none",
                "--out",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    rec = json.loads((out / "episodes.jsonl").read_text())
    with np.load(out / "traces" / "lane-keep__straight__0.npz", allow_pickle=False) as z:
        assert len(z["actions"]) == rec["steps"] and len(z["x_m"]) == rec["steps"] + 1
        assert z["lane_departure"].dtype == bool


def test_bench_sim_smoke(capsys):
    assert (
        main(
            [
                "bench",
                "sim",
                "--scenario",
                "merge",
                "--steps",
                "5",
                "--repeats",
                "1",
                "--worker-episodes",
                "0",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "merge" in out and "2x" in out and "physics x" in out
    assert "vehicles" in out and "N^" in out


def test_bench_planner_smoke(capsys, tmp_path):
    out = tmp_path / "planner.json"
    assert (
        main(
            [
                "bench",
                "planner",
                "--scenarios",
                "lane-keep",
                "--episodes",
                "1",
                "--duration",
                "2",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "lane-keep" in text and "p99" in text and "> 10 ms" in text
    result = json.loads(out.read_text())
    assert result["agent"] == "expert" and result["episodes"] == 1
    (row,) = result["scenarios"]
    assert row["scenario"] == "lane-keep" and row["decisions"] > 0
    assert (
        0
        < row["latency_p50_ms"]
        <= row["latency_p90_ms"]
        <= row["latency_p99_ms"]
        <= row["latency_max_ms"]
    )
    assert 0.0 <= row["over_budget_share"] <= 1.0 and row["env_step_median_ms"] > 0


def test_bench_planner_times_a_prepared_agent_on_one_torch_thread(monkeypatch):
    """The benchmark times decisions as an evaluation makes them: after prepare() (a
    checkpoint's load and the rollout's compile are not a decision) and on one torch thread."""
    import torch

    from sim.bench import simulator

    seen = []

    def spy(name, task):
        bot = make_agent(name, task)
        prepare, act = bot.prepare, bot.act

        def prepared():
            seen.append("prepare")
            prepare()

        def acting(obs):
            seen.append(torch.get_num_threads())
            return act(obs)

        bot.prepare, bot.act = prepared, acting
        return bot

    monkeypatch.setattr(simulator, "make_agent", spy)
    torch.set_num_threads(2)
    simulator.bench_planner(scenarios=("lane-keep",), episodes=1, duration_s=1.0)
    assert seen[0] == "prepare" and len(seen) > 2 and set(seen[1:]) == {1}
    assert torch.get_num_threads() == 2  # the caller's threads back


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--scenarios", "lane-keep,hgihway"], "unknown scenario 'hgihway'"),
        (["--scenarios", ","], "names no scenario"),
        (["--agent", "pilot"], "unknown agent 'pilot'"),
    ],
)
def test_bench_planner_bad_names_fail_before_running(capsys, argv, message):
    assert main(["bench", "planner", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert "lane-keep" in err or "expert" in err  # the known names are listed


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "--episodes", "99999999999999999999"],
        ["eval", "--seed-start", "99999999999999999999"],
        ["run", "--seed", str(2**31)],
    ],
)
def test_huge_numbers_are_a_one_line_usage_error(capsys, argv):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "Error:" not in err
    last = err.strip().splitlines()[-1]
    assert argv[1] in last and "at most" in last, err


def _typed_options(parser, path=()):
    """(command path, option, type) for every option of every subcommand that parses a value."""
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _typed_options(sub, (*path, name))
        elif callable(action.type) and action.type is not str and action.option_strings:
            yield " ".join(path), action.option_strings[0], action.type


def test_no_numeric_option_of_any_subcommand_takes_a_huge_or_non_finite_value():
    import argparse

    from sim.cli import build_parser

    found = list(_typed_options(build_parser()))
    assert len(found) > 40
    for command, option, parse in found:
        for text in ("99999999999999999999", "1e300", "inf", "nan", "-inf"):
            with pytest.raises(argparse.ArgumentTypeError):
                parse(text)
                pytest.fail(f"drive {command} {option} {text} was accepted")


def test_consecutive_seeds_may_not_run_past_the_largest_seed(capsys, tmp_path):
    assert (
        main(["run", "--seed", str(2**31 - 1), "--episodes", "2", "--out", str(tmp_path / "r")])
        == 2
    )
    err = capsys.readouterr().err
    assert "reaches seed 2147483648" in err and "Traceback" not in err
    assert not (tmp_path / "r").exists()


def test_video_refuses_to_overwrite_a_file_it_did_not_write(capsys, tmp_path):
    clip = tmp_path / "holiday.mp4"
    clip.write_bytes(b"somebody else's film")
    base = [
        "run",
        "--agent",
        "idm",
        "--scenario",
        "merge",
        "--episodes",
        "1",
        "--duration",
        "1",
        "--quiet",
        "--video",
        str(clip),
    ]
    assert main([*base, "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err
    assert str(clip) in err and "--force" in err and "Traceback" not in err
    assert clip.read_bytes() == b"somebody else's film"
    assert not (tmp_path / "a" / "episodes.jsonl").exists()
    assert main([*base, "--out", str(tmp_path / "b"), "--force"]) == 0
    with av.open(str(clip)) as c:
        assert c.streams.video[0].codec_context.name == "h264"
    capsys.readouterr()
    assert (
        main([*base, "--out", str(tmp_path / "c")]) == 0
    )  # our own earlier video: replaced freely
    assert (tmp_path / "c" / "episodes.jsonl").exists()


def test_a_librarys_value_error_is_an_internal_error_not_a_usage_error(capsys, monkeypatch):
    """Any ValueError used to exit 2 as if the user had erred (numpy's bare 'scale < 0' for
    ``--corrupt noise:-1``); one raised inside a library is a defect of the project: exit 1."""
    import numpy as np

    from sim.harness import cli as harness_cli

    monkeypatch.delenv("DRIVE_DEBUG", raising=False)
    monkeypatch.setattr(
        harness_cli, "_cmd_scenarios", lambda args: np.random.default_rng(0).normal(0.0, -1.0)
    )
    assert main(["scenarios"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("drive: internal error: ValueError") and "DRIVE_DEBUG=1" in err


def test_drive_debug_shows_the_traceback_of_a_refusal_too(monkeypatch):
    monkeypatch.setenv("DRIVE_DEBUG", "1")
    with pytest.raises(ValueError, match="unknown scenario"):
        main(["run", "--scenario", "no-such-place", "--episodes", "1"])


def test_a_second_ctrl_c_during_shutdown_lets_the_cleanup_finish(capfd, monkeypatch):
    """The first SIGINT stops the command; a second one, sent while its cleanup runs, used to
    raise KeyboardInterrupt into the cleanup (tqdm's traceback).  Signals sent to this
    process are handled at the next bytecode, so no timing is involved."""
    import os
    import signal

    from sim.harness import cli as harness_cli

    cleaned = []

    def command(args):
        try:
            os.kill(os.getpid(), signal.SIGINT)
            raise AssertionError("the first Ctrl-C did not stop the command")
        finally:
            os.kill(os.getpid(), signal.SIGINT)  # again, during the cleanup
            cleaned.append(True)

    monkeypatch.setattr(harness_cli, "_cmd_scenarios", command)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        assert main(["scenarios"]) == 130
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, previous)
    assert cleaned == [True]
    err = capfd.readouterr().err
    assert "already stopping" in err and "drive: interrupted" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("address", ["127.0.0.1:1", "ray://127.0.0.1:1"])
def test_an_unreachable_cluster_is_refused_at_once_and_nothing_is_written(
    tmp_path, capsys, address
):
    """``ray.init`` retried ``127.0.0.1:1`` for over ten minutes; ``ray://`` gave an internal
    ConnectionError after 33 s.  Both are refused on the first failed TCP connection."""
    ray = pytest.importorskip("ray")
    if ray.is_initialized():  # a session this process has is used as it is
        pytest.skip("this process already holds a Ray session")
    out = tmp_path / "ev"
    argv = ["eval", "--agents", "straight", "--scenarios", "lane-keep", "--episodes", "1"]
    assert main([*argv, "--backend", "ray", "--address", address, "--out", str(out)]) == 2
    assert f"cannot reach the Ray cluster at '{address}'" in capsys.readouterr().err
    assert not out.exists()


def test_each_subcommand_is_registered_by_its_own_function():
    """An area's ``register`` only calls one ``_register_<command>`` per command, the home of
    that command's parser (a change to one command's options touches one function)."""
    from sim.cli import AREAS, build_parser

    commands = build_parser()._subparsers._group_actions[0].choices
    for area in AREAS:
        own = [n for n in dir(area) if n.startswith("_register_")]
        assert own or area.__name__ == "sim.bench.cli", area.__name__
        for name in own:
            assert name.removeprefix("_register_").replace("_", "-") in commands, name
