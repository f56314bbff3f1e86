"""The careless and hostile user's trials (issue 30), re-run: malformed names and numbers,
outputs that must not be replaced, paths that must be checked before any work, options a
command would ignore, damaged files, unreachable clusters, extreme faults.  Each trial is one
``drive`` command in a scratch folder holding a user's files; it must end with the expected
exit code and a one-line message saying what is wrong, leave the user's files as they were,
and create nothing it names as refused.

Run alone: ``python -m pytest tests/test_trials.py``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from sim.cli import main

USER_TEXT = "a user's own file\n"


@dataclass(frozen=True)
class Trial:
    argv: tuple[str, ...]
    says: str  # a fragment of the one-line message ('' for a success)
    code: int = 2
    absent: tuple[str, ...] = ()  # paths a refused command must not create
    needs: str = ""  # a module the trial needs (skipped without it)
    ids: str = field(default="", compare=False)


def t(*argv: str, says: str, code: int = 2, absent: tuple[str, ...] = (), needs: str = ""):
    return Trial(tuple(argv), says, code, absent, needs)


RUN = ("run", "--episodes", "1", "--duration", "1", "--quiet")
EVAL = ("eval", "--episodes", "1", "--duration", "1", "--quiet", "--workers", "1")
SUITE = ("bench", "suite", "--suite", "quick", "--episodes", "1")

TRIALS = {
    # -- names: every unknown or malformed one refused in one line, listing the known ------
    "unknown scenario": t(*RUN, "--scenario", "nope", "--out", "o", says="known:", absent=("o",)),
    "unknown variant": t(*RUN, "--scenario", "highway:bogus=9", "--out", "o", says="bogus"),
    "fault level out of range": t(*RUN, "--scenario", "highway:noise=9", says="noise"),
    "variant given twice": t(*RUN, "--scenario", "highway:dense:dense", says="dense"),
    "non-numeric fault level": t(*RUN, "--scenario", "highway:noise=abc", says="noise"),
    "trailing colon": t(*RUN, "--scenario", "highway:", "--out", "o", says="highway"),
    "unknown agent": t(*RUN, "--agent", "nope", "--out", "o", says="known:", absent=("o",)),
    "unknown agent in a list": t(*EVAL, "--agents", "expert,nope", "--out", "e", says="known:"),
    "empty agent list": t(*EVAL, "--agents", ",", "--out", "e", says="names no agent"),
    "empty scenario list": t(*EVAL, "--scenarios", ",", "--out", "e", says="no scenario"),
    "missing e2e checkpoint": t(
        *RUN, "--agent", "e2e:no-such-run", "--out", "o", says="no-such-run", absent=("o",)
    ),
    "unknown suite": t("bench", "suite", "--suite", "ful", "--out", "s", says="known: full"),
    "unknown axis family": t(*SUITE, "--agents", "e2e@weather", "--out", "s", says="known:"),
    "unknown detector": t(
        "eval", "detector", "--data", "ds", "--detector", "yolo", says="", code=2
    ),
    "unknown corruption": t(
        "eval", "detector", "--data", "ds", "--corrupt", "fog", says="unknown corruption"
    ),
    # -- numbers: bounded, one line each ---------------------------------------------------
    "negative seed": t(*RUN, "--seed", "-1", says="", code=2),
    "seed past the largest": t(
        *EVAL, "--seed-start", "2147483647", "--episodes", "2", "--out", "e", says="2147483648"
    ),
    "suite seed past the largest": t(
        *SUITE[:4],
        "--seed-start",
        "2147483647",
        "--episodes",
        "2",
        "--out",
        "s",
        says="2147483648",
        absent=("s",),
    ),
    "record seed past the largest": t(
        "record",
        "--seed",
        "2147483647",
        "--episodes",
        "2",
        "--out",
        "d",
        says="2147483648",
        absent=("d",),
    ),
    "zero episodes": t("run", "--episodes", "0", says="", code=2),
    "NaN duration": t("run", "--duration", "nan", says="", code=2),
    "negative duration": t("run", "--duration", "-1", says="", code=2),
    "zero workers": t("eval", "--workers", "0", says="", code=2),
    "negative decision timeout": t("run", "--decision-timeout", "-3", says="", code=2),
    "huge blur": t("eval", "detector", "--data", "ds", "--corrupt", "blur:1e9", says="[0, 64]"),
    "negative noise": t(
        "eval", "detector", "--data", "ds", "--corrupt", "noise:-1", says="[0, 255]"
    ),
    "non-numeric severity": t(
        "eval", "detector", "--data", "ds", "--corrupt", "noise:loud", says="not a number"
    ),
    "full lens dirt": t("eval", "detector", "--data", "ds", "--corrupt", "dirt:1", says="0.99"),
    # -- outputs: never replaced unless drive wrote them (or --force) -----------------------
    "bench onto results": t(
        "bench", "camera", "--frames", "3", "--out", "ev/results.jsonl", says="must end in .json"
    ),
    "bench onto a manifest": t(
        "bench",
        "camera",
        "--frames",
        "3",
        "--out",
        "ds/manifest.json",
        says="drive did not write it",
    ),
    "bench onto a user's JSON": t(
        "bench", "planner", "--episodes", "1", "--out", "user.json", says="--force"
    ),
    "bench onto a folder": t("bench", "camera", "--frames", "3", "--out", "adir", says="folder"),
    "detector JSON onto a manifest": t(
        "eval", "detector", "--data", "ds", "--out", "ds/manifest.json", says="did not write"
    ),
    "detector plot onto a folder": t(
        "eval", "detector", "--data", "ds", "--plot", "adir", says="is a folder"
    ),
    "detector plot as SVG": t(
        "eval", "detector", "--data", "ds", "--plot", "p.svg", says="must end in .png"
    ),
    "detector JSON beside a file": t(
        "eval", "detector", "--data", "ds", "--out", "user.json/x.json", says="not a folder"
    ),
    "tracking onto a user's JSON": t(
        "eval",
        "tracking",
        "--agents",
        "expert",
        "--scenarios",
        "hard-brake",
        "--episodes",
        "1",
        "--out",
        "user.json",
        says="did not write",
    ),
    "tracking of a non-hazard": t(
        "eval", "tracking", "--agents", "expert", "--scenarios", "highway", says="is none"
    ),
    "video onto a user's file": t(
        *RUN,
        "--agent",
        "straight",
        "--video",
        "user.mp4",
        "--out",
        "o",
        says="--force",
        absent=("o",),
    ),
    "video onto a folder": t(*RUN, "--video", "adir", "--out", "o", says=".mp4"),
    "video not MP4": t(*RUN, "--video", "v.avi", "--out", "o", says=".mp4", absent=("o",)),
    "run into a finished run": t(
        *RUN, "--agent", "straight", "--out", "oldrun", says="already exists"
    ),
    "eval into a finished evaluation": t(
        *EVAL, "--agents", "straight", "--out", "ev", says="--resume"
    ),
    "train e2e onto a file": t(
        "train", "e2e", "--data", "ds", "--out", "user.json", says="is a file"
    ),
    "perception data onto a dataset": t(
        "perception", "data", "--frames", "2", "--out", "ds", says="manifest"
    ),
    "record onto a dataset": t("record", "--episodes", "1", "--out", "ds", says="ds"),
    # -- hangs: refused within seconds ----------------------------------------------------
    "unreachable Ray address": t(
        *EVAL,
        "--agents",
        "straight",
        "--backend",
        "ray",
        "--address",
        "127.0.0.1:1",
        "--out",
        "e",
        says="cannot reach the Ray cluster",
        absent=("e",),
        needs="ray",
    ),
    "unreachable Ray client address": t(
        *EVAL,
        "--agents",
        "straight",
        "--backend",
        "ray",
        "--address",
        "ray://127.0.0.1:1",
        "--out",
        "e",
        says="cannot reach the Ray cluster",
        absent=("e",),
        needs="ray",
    ),
    "unreachable Ray for the suite": t(
        *SUITE,
        "--agents",
        "idm",
        "--backend",
        "ray",
        "--address",
        "127.0.0.1:1",
        "--out",
        "s",
        says="cannot reach",
        absent=("s",),
        needs="ray",
    ),
    # -- faults a command cannot apply: refused, not recorded as applied --------------------
    "perception data with camera noise": t(
        "perception",
        "data",
        "--scenarios",
        "highway:noise=3",
        "--frames",
        "2",
        "--out",
        "pd",
        says="noise=3",
        absent=("pd",),
    ),
    "PPO with latency": t(
        "train",
        "ppo",
        "--scenario",
        "lane-keep:latency=3",
        "--steps",
        "64",
        "--out",
        "pp",
        says="latency=3",
        absent=("pp",),
    ),
    "record with a fault": t(
        "record",
        "--scenario",
        "highway:noise=2",
        "--episodes",
        "1",
        "--out",
        "rd",
        says="noise=2",
        absent=("rd",),
    ),
    # -- options a command would ignore: refused ---------------------------------------------
    "suite agent given twice": t(
        *SUITE,
        "--agents",
        "straight,straight@maps",
        "--out",
        "s",
        says="given twice",
        absent=("s",),
    ),
    "suite address without Ray": t(
        *SUITE,
        "--address",
        "127.0.0.1:1",
        "--out",
        "s",
        says="needs --backend ray",
        absent=("s",),
    ),
    "suite --force": t(*SUITE, "--force", "--out", "s", says="never replaced", absent=("s",)),
    "eval --force": t(*EVAL, "--agents", "idm", "--force", "--out", "e", says="--force"),
    "eval --plot": t(*EVAL, "--agents", "idm", "--plot", "x.png", "--out", "e", says="--plot"),
    "eval --data": t(*EVAL, "--agents", "idm", "--data", "ds", "--out", "e", says="--data"),
    "eval address without Ray": t(
        *EVAL, "--agents", "idm", "--address", "x:1", "--out", "e", says="needs --backend ray"
    ),
    "bird's-eye record with cameras": t(
        "record",
        "--sensors",
        "bev",
        "--cameras",
        "cam_rear",
        "--out",
        "rd",
        says="--cameras",
        absent=("rd",),
    ),
    "bird's-eye record with side views": t(
        "record",
        "--sensors",
        "bev",
        "--side-views",
        "0.5:0",
        "--out",
        "rd",
        says="--side-views",
        absent=("rd",),
    ),
    "a side view twice": t(
        "record",
        "--sensors",
        "rig",
        "--side-views",
        "0.5:0,0.5:0",
        "--out",
        "rd",
        says="twice",
        absent=("rd",),
    ),
    "PPO with cameras": t(
        "train",
        "ppo",
        "--scenario",
        "lane-keep",
        "--cameras",
        "cam_front",
        "--out",
        "pp",
        says="--cameras",
        absent=("pp",),
    ),
    "DAgger with cameras": t(
        "train",
        "dagger",
        "--init",
        "no-such-run",
        "--cameras",
        "cam_front",
        "--out",
        "dg",
        says="--cameras",
        absent=("dg",),
    ),
    # -- damaged files: refused with the path and the reason ---------------------------------
    "report of a damaged results line": t("report", "badev", says="results.jsonl:1"),
    "report of a folder without results": t("report", "adir", says="adir"),
    "resume over an unknown variant": t(
        *EVAL,
        "--agents",
        "straight",
        "--scenarios",
        "lane-keep",
        "--resume",
        "--out",
        "bogusev",
        says="highway:bogus=9",
    ),
    "suite report of a damaged plan": t(
        "bench", "suite", "--report-only", "--out", "badsuite", says="not valid JSON"
    ),
    "suite report of no suite": t(
        "bench", "suite", "--report-only", "--out", "adir", says="no suite here"
    ),
    "detector of a missing dataset": t("eval", "detector", "--data", "nope", says="nope"),
    "explain of a folder without results": t("explain", "adir", says="adir"),
    # -- help: every command explains itself ------------------------------------------------
    **{
        f"help of {cmd}": t(cmd, "--help", says="", code=0)
        for cmd in ("run", "eval", "bench", "record", "train", "explain")
    },
    # -- extreme faults: every episode ends with a status, the run goes on -------------------
    "every image fault at once": t(
        *RUN,
        "--agent",
        "straight",
        "--scenario",
        "highway:noise=3:blur=3:drop=3:dirt=3",
        "--video",
        "none",
        "--out",
        "xf",
        says="",
        code=0,
    ),
    "every state fault at once": t(
        *RUN,
        "--agent",
        "expert",
        "--scenario",
        "highway:pose=3:speed=3:latency=3",
        "--video",
        "none",
        "--out",
        "xs",
        says="",
        code=0,
    ),
    "a variant-named output folder": t(
        *RUN,
        "--agent",
        "straight",
        "--scenario",
        "lane-keep:night",
        "--out",
        "lane-keep:night",
        says="",
        code=0,
    ),
}


@pytest.fixture
def scratch(tmp_path, monkeypatch):
    """A working folder holding a user's files and drive's earlier outputs."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DRIVE_DEBUG", raising=False)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    (tmp_path / "user.json").write_text(USER_TEXT)
    (tmp_path / "user.mp4").write_text(USER_TEXT)
    (tmp_path / "adir").mkdir()
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "manifest.json").write_text(USER_TEXT)
    (tmp_path / "ev").mkdir()
    (tmp_path / "ev" / "results.jsonl").write_text(USER_TEXT)
    (tmp_path / "ev" / "config.json").write_text("{}\n")
    (tmp_path / "oldrun").mkdir()
    (tmp_path / "oldrun" / "episodes.jsonl").write_text(USER_TEXT)
    (tmp_path / "badsuite").mkdir()
    (tmp_path / "badsuite" / "suite.json").write_text("{not json")
    (tmp_path / "badev").mkdir()
    (tmp_path / "badev" / "config.json").write_text("{}\n")
    (tmp_path / "badev" / "results.jsonl").write_text('{"a": 1}\n{broken\n')
    return tmp_path


def _bogus_evaluation(root: Path) -> None:
    """A finished one-episode evaluation whose results line names an unknown variant."""
    assert (
        main([*EVAL, "--agents", "straight", "--scenarios", "lane-keep", "--out", "bogusev"]) == 0
    )
    path = root / "bogusev" / "results.jsonl"
    record = json.loads(path.read_text())
    path.write_text(json.dumps({**record, "scenario": "highway:bogus=9"}) + "\n")


def _snapshot(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and not p.name.startswith(".")
    }


@pytest.mark.parametrize("name", list(TRIALS))
def test_trial(name, scratch, capsys):
    trial = TRIALS[name]
    if trial.needs:
        pytest.importorskip(trial.needs)
    if name == "resume over an unknown variant":
        _bogus_evaluation(scratch)
        capsys.readouterr()
    before = _snapshot(scratch)
    try:
        code = main(list(trial.argv))
    except SystemExit as e:  # argparse's own refusals (a bad number, an unknown choice)
        code = e.code
    err = capsys.readouterr().err
    assert code == trial.code, err[-2000:]
    if trial.code:
        lines = [line for line in err.strip().splitlines() if line.strip()]
        assert lines and "Traceback" not in err, err[-2000:]
        assert "internal error" not in err, err[-2000:]
        assert trial.says in lines[-1], lines[-1]
    after = _snapshot(scratch)
    for path, data in before.items():  # the user's files and earlier outputs, untouched
        assert after.get(path) == data, f"{name}: {path} was changed or removed"
    for path in trial.absent:
        assert not (scratch / path).exists(), f"{name}: a refused command left {path}"


def test_there_are_about_eighty_trials():
    assert len(TRIALS) >= 75
