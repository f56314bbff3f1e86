"""``drive eval``: shared seeds, atomic results, resume after kill -9, refusals."""

import json
import os
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest

from agents.base import BaseAgent
from agents.registry import AGENTS as AGENT_REGISTRY
from sim.cli import main
from sim.geometry.bev import BevCamera
from sim.harness.evaluate import CONFIG, RESULTS, comparable_results, read_results, run_eval
from sim.harness.parallel import FAULT_ENV
from sim.harness.run import EpisodeRunner, run_agent
from sim.world.scenarios import get_scenario

AGENTS = ["idm", "straight"]
SCENARIOS = ["lane-keep", "highway"]
SEEDS = [0, 1, 2]


_comparable = comparable_results  # keyed by (agent, scenario, seed), wall-clock fields dropped


@pytest.fixture(scope="module")
def serial(tmp_path_factory):
    out = tmp_path_factory.mktemp("eval") / "serial"
    return out, run_eval(out, AGENTS, SCENARIOS, SEEDS, workers=1, duration_s=3.0, progress=False)


def test_every_agent_runs_every_scenario_on_the_same_seeds(serial):
    out, records = serial
    got = _comparable(records)
    assert set(got) == {(a, s, seed) for a in AGENTS for s in SCENARIOS for seed in SEEDS}
    config = json.loads((out / "config.json").read_text())
    assert (
        config["agents"] == AGENTS and config["scenarios"] == SCENARIOS and config["seeds"] == SEEDS
    )
    assert config["sensors"]["straight"] == [] and "git_revision" in config and "versions" in config
    for r in records:
        assert r["versions"] == config["versions"]
        assert {"status", "driving_score", "latency_p50_ms", "latency_p99_ms", "device"} <= set(r)
    assert (out / "traces" / "highway__idm__2.npz").exists()


def test_parallel_results_equal_serial_results(serial, tmp_path):
    _, records = serial
    parallel = run_eval(
        tmp_path / "par", AGENTS, SCENARIOS, SEEDS, workers=2, duration_s=3.0, progress=False
    )
    assert _comparable(parallel) == _comparable(records)


def test_a_run_killed_with_sigkill_and_resumed_equals_an_uninterrupted_one(serial, tmp_path):
    _, records = serial
    out = tmp_path / "killed"
    cmd = [
        sys.executable,
        "-m",
        "sim.cli",
        "eval",
        "--agents",
        ",".join(AGENTS),
        "--scenarios",
        ",".join(SCENARIOS),
        "--episodes",
        str(len(SEEDS)),
        "--duration",
        "3",
        "--workers",
        "1",
        "--out",
        str(out),
        "--quiet",
    ]
    # killed at a known point, through the fault hook: right after its second results line
    env = {
        **os.environ,
        "SDL_VIDEODRIVER": "dummy",
        "SDL_AUDIODRIVER": "dummy",
        FAULT_ENV: "kill-after-results:2",
    }
    proc = subprocess.run(
        cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=300, check=False
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    partial = read_results(out / RESULTS)  # whole lines only: every append is a rename
    assert len(partial) == 2 < len(records)
    resumed = run_eval(
        out, AGENTS, SCENARIOS, SEEDS, workers=1, duration_s=3.0, resume=True, progress=False
    )
    assert _comparable(resumed) == _comparable(records)


def test_existing_evaluations_are_never_overwritten_or_silently_mixed(serial, tmp_path):
    out, _ = serial
    with pytest.raises(FileExistsError, match="--resume"):
        run_eval(out, AGENTS, SCENARIOS, SEEDS, duration_s=3.0, progress=False)
    with pytest.raises(ValueError, match="seeds differ"):
        run_eval(out, AGENTS, SCENARIOS, [0, 1, 2, 3], duration_s=3.0, resume=True, progress=False)
    with pytest.raises(ValueError, match="duration_s differ"):
        run_eval(out, AGENTS, SCENARIOS, SEEDS, duration_s=4.0, resume=True, progress=False)


def test_a_damaged_results_file_stops_the_resume_with_the_line(serial, tmp_path):
    src, _ = serial
    out = tmp_path / "damaged"
    out.mkdir()
    (out / "config.json").write_bytes((src / "config.json").read_bytes())
    lines = (src / RESULTS).read_text().splitlines()
    (out / RESULTS).write_text(lines[0] + "\n" + lines[1][: len(lines[1]) // 2] + "\n")
    with pytest.raises(ValueError, match=rf"{RESULTS}:2: not valid JSON"):
        run_eval(out, AGENTS, SCENARIOS, SEEDS, duration_s=3.0, resume=True, progress=False)
    (out / RESULTS).write_text('{"agent": "idm"}\n')
    with pytest.raises(ValueError, match="lacks scenario, seed, status"):
        run_eval(out, AGENTS, SCENARIOS, SEEDS, duration_s=3.0, resume=True, progress=False)


def test_cli_eval_refuses_unknown_names_and_keeps_eval_detector(tmp_path, capsys):
    assert main(["eval", "--agents", "idm,nope", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "nope" in err and "expert" in err
    assert (
        main(
            ["eval", "--scenarios", "highway,moon", "--agents", "idm", "--out", str(tmp_path / "y")]
        )
        == 2
    )
    assert "lane-keep" in capsys.readouterr().err
    assert main(["eval", "detector"]) == 2
    assert "--data" in capsys.readouterr().err
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


# -- statistics and the report ---------------------------------------------------------------------
def test_bootstrap_interval_covers_the_known_mean_at_about_95_percent():
    import numpy as np

    from sim.harness.stats import bootstrap

    rng = np.random.default_rng(3)
    hits = 0
    for _ in range(200):
        est = bootstrap(rng.normal(1.0, 2.0, 40))
        hits += est.low <= 1.0 <= est.high
    assert 0.88 <= hits / 200 <= 0.99  # nominal 95%; BCa on n=40 runs slightly narrow
    # the normal-theory interval for a known case: n=400, sd 1 -> half-width ~ 1.96 / 20
    x = np.random.default_rng(4).normal(0.0, 1.0, 400)
    est = bootstrap(x)
    assert abs((est.high - est.low) / 2 - 1.96 * x.std(ddof=1) / 20) < 0.02
    assert bootstrap([0.5] * 10).format() == "0.500 [0.500, 0.500]"
    assert bootstrap([1.0]).format() == "1.000" and bootstrap([]).format() == "-"
    assert bootstrap([1.0, float("nan"), 3.0]).n == 2


def test_iqm_ignores_the_outer_quartiles_and_paired_counts_wins():
    from sim.harness.stats import bootstrap, paired

    x = [0, 1, 1, 1, 1, 1, 1, 100]
    assert bootstrap(x, "iqm").value == 1.0 and bootstrap(x).value > 10
    p = paired({0: 1.0, 1: 0.5, 2: 0.2, 9: 1.0}, {0: 0.5, 1: 0.5, 2: 0.4, 7: 0.0})
    assert p.n == 3 and (p.a_wins, p.b_wins, p.ties) == (1 / 3, 1 / 3, 1 / 3)
    assert abs(p.difference.value - (0.5 + 0.0 - 0.2) / 3) < 1e-12


def test_report_has_every_agent_interval_paired_rows_sensors_and_figures(serial, tmp_path):
    import shutil

    from sim.report.report import write_report

    src, _records = serial
    out = tmp_path / "rep"
    shutil.copytree(src, out)
    # pretend idm is the expert to get paired rows (the report pairs everything with "expert")
    text = (out / RESULTS).read_text().replace('"agent": "idm"', '"agent": "expert"')
    (out / RESULTS).write_text(text)
    config = json.loads((out / "config.json").read_text())
    config["agents"] = ["expert", "straight"]
    config["sensors"] = {"expert": ["autopilot"], "straight": []}
    (out / "config.json").write_text(json.dumps(config))
    paths = write_report(out)
    md = paths["md"].read_text()
    for s in SCENARIOS:
        assert f"## {s}: mean [95% CI]" in md and f"## {s}: paired on shared seeds" in md
    assert "| straight | expert | 3 |" in md
    assert "| straight | (none) |" in md
    page = paths["html"].read_text()
    assert page.count("data:image/png;base64,") >= 2 * len(SCENARIOS) and "<table>" in page
    rep = json.loads(paths["json"].read_text())
    row = rep["scenarios"]["highway"]["table"]["straight"]["driving_score"]["mean"]
    assert row["low"] <= row["value"] <= row["high"] and row["n"] == 3


def test_report_refuses_folders_that_are_not_evaluations(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert "drive eval" in capsys.readouterr().err


def test_wilson_rate_intervals_do_not_collapse_when_nothing_happened():
    from sim.harness.stats import wilson

    zero = wilson(0, 20)
    assert zero.value == 0.0 and zero.low == 0.0 and 0.15 < zero.high < 0.17  # 0/20: 0-16%
    half = wilson(10, 20)
    assert abs(half.low - 0.299) < 1e-3 and abs(half.high - 0.701) < 1e-3  # textbook values


def test_lane_violation_rate_counts_episodes_and_leaves_older_records_unknown():
    from sim.report.report import build_rows

    def rec(seed, **extra):
        return {
            "agent": "e2e",
            "scenario": "lane-keep",
            "seed": seed,
            "status": "ok",
            "driving_score": 1.0,
            **extra,
        }

    config = {"agents": ["e2e"], "scenarios": ["lane-keep"]}
    rows = build_rows(
        config,
        [
            rec(0, lane_violation=1),
            rec(1, lane_violation=0),
            rec(2, lane_violation=0),
            rec(3, lane_violation=2),
        ],
    )
    rate = rows["scenarios"]["lane-keep"]["table"]["e2e"]["lane_violation_rate"]["mean"]
    assert rate.value == 0.5 and rate.n == 4
    old = build_rows(config, [rec(0), rec(1)])["scenarios"]["lane-keep"]["table"]["e2e"][
        "lane_violation_rate"
    ]
    assert old["mean"].format(2) == "-"  # not 0.00: those records never measured it


def test_each_fault_gets_its_status_counts_in_the_denominators_and_the_report(
    tmp_path, monkeypatch
):
    import time as _time

    import numpy as np

    from agents import BaseAgent
    from agents.registry import AGENTS as REGISTRY
    from sim.report.report import write_report

    class Faulty(BaseAgent):
        sensors = ("speed",)
        how = "ok"

        def act(self, obs):
            if self.how == "raise":
                raise RuntimeError("perception crashed")
            if self.how == "nan":
                return np.full(self.task.action_size, np.nan)
            if self.how == "hang":  # its timer fires at once (sent by itself: no waiting)
                import os
                import signal

                if signal.getitimer(signal.ITIMER_REAL)[0]:
                    os.kill(os.getpid(), signal.SIGALRM)
                _time.sleep(60)
                finished.append(True)  # reached only when nothing cut the hang
            return np.zeros(self.task.action_size)

    for how in ("raise", "nan", "hang"):
        cls = type(f"Faulty_{how}", (Faulty,), {"how": how, "name": f"faulty-{how}"})
        monkeypatch.setitem(REGISTRY, f"faulty-{how}", (cls, f"test agent: {how}"))
    agents = ["faulty-raise", "faulty-nan", "faulty-hang", "straight"]
    out = tmp_path / "faults"
    finished: list[bool] = []
    records = run_eval(
        out,
        agents,
        ["highway"],
        [0, 1],
        workers=1,
        duration_s=2.0,
        progress=False,
        decision_timeout_s=30.0,
    )
    assert finished == []  # the hang was cut, twice
    status = {(r["agent"], r["seed"]): r["status"] for r in records}
    assert {status[("faulty-raise", s)] for s in (0, 1)} == {"agent_error"}
    assert {status[("faulty-nan", s)] for s in (0, 1)} == {"invalid_action"}
    assert {status[("faulty-hang", s)] for s in (0, 1)} == {"timeout"}
    assert all(r["driving_score"] == 0.0 for r in records if r["agent"].startswith("faulty"))
    md = write_report(out)["md"].read_text()
    assert "| faulty-hang | 2 | timeout 2 |" in md and "| faulty-raise | 2 | agent_error 2 |" in md
    assert "| faulty-nan | 2 | invalid_action 2 |" in md


def test_report_videos_tile_every_agent_on_the_same_seed_and_match_the_evaluation(serial, tmp_path):
    import shutil

    import av

    from sim.geometry.pinhole import default_rig
    from sim.report.report import FILES, write_report
    from sim.report.sidebyside import pick_seeds
    from sim.report.video import frame_layout

    src, records = serial
    out = tmp_path / "vid"
    shutil.copytree(src, out)
    paths = write_report(out, videos=1)
    videos = sorted((out / FILES).glob("*.mp4"))
    assert sorted(v.name.split("__")[0] for v in videos) == sorted(SCENARIOS)  # one per scenario
    with av.open(str(videos[0])) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    steps = max(
        r["steps"]
        for r in records
        if r["scenario"] == videos[0].name.split("__")[0]
        and r["seed"] == int(videos[0].stem.split("seed")[1])
    )
    layout = frame_layout(default_rig())  # each agent's clip at half size, tiled side by side
    assert (
        frames[0].shape == (layout.height_px // 2, 2 * layout.width_px // 2, 3)
        and len(frames) == steps + 1
    )
    md, page = paths["md"].read_text(), paths["html"].read_text()
    assert "differs from the evaluation" not in md  # the re-driven episodes equal the evaluation's
    assert page.count("data:video/mp4;base64,") == 2 and "Failure gallery" in page
    by_agent = {
        "a": [
            {"seed": 0, "driving_score": 1.0, "status": "ok"},
            {"seed": 1, "driving_score": 1.0, "status": "ok"},
        ],
        "b": [
            {"seed": 0, "driving_score": 1.0, "status": "ok"},
            {"seed": 1, "driving_score": 0.2, "status": "collision"},
        ],
    }
    picks = pick_seeds(by_agent)
    assert picks[0][0] == 1 and "differ by 0.80" in picks[0][1] and [s for s, _ in picks] == [1, 0]


CHROMIUM = next(
    (p for p in ("/usr/bin/chromium", "/usr/bin/chromium-browser") if os.path.exists(p)), None
)


@pytest.mark.skipif(
    CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium; .ci/run does)"
)
def test_report_html_loads_every_table_figure_and_video_in_headless_chromium(serial, tmp_path):
    import re
    import shutil

    from sim.report.report import write_report

    src, _ = serial
    out = tmp_path / "html"
    shutil.copytree(src, out)
    page = write_report(out, videos=1)["html"]
    cmd = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--virtual-time-budget=15000",
        "--dump-dom",
        page.resolve().as_uri(),
    ]
    dom = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False).stdout
    media = re.search(r'<body data-media="images (\d+)/(\d+), videos (\d+)/(\d+)"', dom)
    assert media, f"the page's self-check did not run: {dom[:500]!r}"
    ok_img, n_img, ok_vid, n_vid = map(int, media.groups())
    assert n_img >= 2 * len(SCENARIOS) and ok_img == n_img  # every figure decodes
    assert n_vid == len(SCENARIOS) and ok_vid == n_vid  # every H.264 video plays
    assert dom.count("<table>") == 2 * len(SCENARIOS) + 1  # mean and IQM per scenario, sensors


def test_bench_loop_times_the_harness_beside_the_stock_sb3_loop():
    from sim.bench.loop import bench_loop, format_loop

    r = bench_loop(agents=("idm", "e2e:/nonexistent"), episodes=1, workers=(1,), duration_s=1.0)
    idm = r["agents"]["idm"]["runs"][0]
    assert idm["episodes"] == 1 and idm["steps"] == 15 and idm["decisions_per_s"] > 0
    assert idm["vs_baseline"] == idm["decisions_per_s"] / r["baseline"]["decisions_per_s"]
    assert "no end-to-end checkpoint" in r["agents"]["e2e:/nonexistent"]["skipped"]
    assert r["baseline"]["steps"] in (
        15,
        16,
    )  # highway-env ends at time >= 1 s (float steps); frames non-blank
    text = format_loop(r)
    assert "stock highway-env + SB3 CnnPolicy.predict" in text and "skipped" in text


def test_failure_gallery_lists_failed_episodes_worst_first_and_films_only_the_worst(
    monkeypatch, tmp_path
):
    from sim.report import report

    calls = []
    monkeypatch.setattr(
        report,
        "_thumbnail",
        lambda config, a, s, seed, files, progress: (
            calls.append((a, s, seed)) or tmp_path / f"{a}.png"
        ),
    )

    def rec(seed, score, status="ok"):
        return {"seed": seed, "driving_score": score, "status": status, "error": None}

    rows = {
        "scenarios": {
            "highway": {
                "records": {
                    "clean": [rec(0, 1.0), rec(1, 1.0)],
                    "bad": [
                        rec(0, 0.5, "collision"),
                        rec(1, 0.2, "collision"),
                        rec(2, 1.0),
                        rec(3, 0.9, "ok"),
                        rec(4, 0.2, "offroad"),
                        rec(5, 0.0, "agent_error"),
                    ],
                }
            }
        }
    }
    filmed = {"highway": [{"thumbnails": {"clean": tmp_path / "c.png"}}]}
    g = {x["agent"]: x for x in report._gallery({}, rows, filmed, tmp_path, False)["highway"]}
    assert (
        g["clean"]["failed"] == 0 and g["clean"]["worst"] == [] and g["clean"]["thumbnail"] is None
    )
    assert g["bad"]["failed"] == 5 and [w["seed"] for w in g["bad"]["worst"]] == [5, 1, 4]
    assert calls == [("bad", "highway", 5)] and g["bad"]["thumbnail"] == tmp_path / "bad.png"
    calls.clear()
    assert (
        report._gallery({}, rows, {}, tmp_path, False)["highway"][1]["thumbnail"] is None
    )  # no videos, no re-drive
    assert calls == []


class _BrokenCheckpoint(BaseAgent):
    """An agent whose checkpoint cannot be loaded: ``prepare`` raises, as a missing file would."""

    name = "broken"
    sensors = ("speed",)

    def prepare(self) -> None:
        raise FileNotFoundError("no checkpoint at /nowhere/broken; train one first")

    def act(self, obs):
        return np.zeros(self.task.action_size)


@pytest.mark.parametrize("workers", [1, 2])
def test_a_failing_prepare_stops_the_run_with_its_reason(monkeypatch, tmp_path, workers):
    """The Agent contract's prepare(): its error is the run's, before any episode, never
    swallowed into per-episode faults (serial or with worker processes)."""
    monkeypatch.setitem(AGENT_REGISTRY, "broken", (_BrokenCheckpoint, "test agent"))
    with pytest.raises(FileNotFoundError, match="no checkpoint at /nowhere/broken"):
        run_eval(
            tmp_path / "e",
            ["broken"],
            ["highway"],
            [0, 1],
            workers=workers,
            duration_s=1.0,
            progress=False,
        )
    assert not (tmp_path / "e" / RESULTS).exists()
    with pytest.raises(FileNotFoundError, match="no checkpoint at /nowhere/broken"):
        run_agent(
            "broken",
            get_scenario("highway", duration_s=1.0),
            [0, 1],
            tmp_path / "r",
            workers=workers,
            progress=False,
        )
    # the runner each process builds (in-process or a worker's) prepares its own agent: same error
    with pytest.raises(FileNotFoundError, match="no checkpoint at /nowhere/broken"):
        EpisodeRunner(
            "broken", get_scenario("highway"), BevCamera(), fast_physics=True, out_dir=tmp_path
        )


# -- one owner per results folder; results that cannot be silently corrupted ----------------------
SMALL = ["idm", "straight"]
SMALL_SEEDS = [0, 1, 2]


def _small_cli(out, *extra):
    return [
        sys.executable,
        "-m",
        "sim.cli",
        "eval",
        "--agents",
        ",".join(SMALL),
        "--scenarios",
        "highway",
        "--episodes",
        str(len(SMALL_SEEDS)),
        "--duration",
        "2",
        "--workers",
        "1",
        "--out",
        str(out),
        "--quiet",
        *extra,
    ]


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """A finished 6-episode evaluation (idm, straight on highway, seeds 0-2) to copy and tamper
    with."""
    out = tmp_path_factory.mktemp("eval") / "small"
    run_eval(out, SMALL, ["highway"], SMALL_SEEDS, workers=1, duration_s=2.0, progress=False)
    return out


def _copy_with(small, dest, lines):
    dest.mkdir()
    (dest / "config.json").write_bytes((small / "config.json").read_bytes())
    (dest / RESULTS).write_text("".join(line + "\n" for line in lines))
    return dest


def test_two_resumes_on_one_folder_run_each_missing_episode_once(small, tmp_path):
    """A second ``drive eval --resume`` on a folder another one is writing is refused at once,
    naming the owner's PID; the owner finishes and the file holds one line per episode."""
    out = _copy_with(small, tmp_path / "shared", (small / RESULTS).read_text().splitlines()[:2])
    env = {**os.environ, "SDL_VIDEODRIVER": "dummy", "SDL_AUDIODRIVER": "dummy"}
    # the first stops itself (SIGSTOP) right after its first results line: it holds the folder
    first = subprocess.Popen(
        _small_cli(out, "--resume"),
        env={**env, FAULT_ENV: "pause-after-results:1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:  # blocks until the child stops (or exits): an event, not a poll
        pid, status = os.waitpid(first.pid, os.WUNTRACED)
        assert pid and os.WIFSTOPPED(status), "the first resume did not pause holding the folder"
        assert len((out / RESULTS).read_text().splitlines()) == 3
        second = subprocess.run(
            _small_cli(out, "--resume"),
            check=False,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert second.returncode == 2, second.stderr[-2000:]
        assert str(first.pid) in second.stderr and "drive: error:" in second.stderr
        assert len(second.stderr.strip().splitlines()) == 1
    finally:
        if first.poll() is None:
            os.kill(first.pid, signal.SIGCONT)
    assert first.wait(timeout=300) == 0, first.stderr.read().decode()[-2000:]
    lines = (out / RESULTS).read_text().splitlines()
    keys = [(r["agent"], r["scenario"], r["seed"]) for r in map(json.loads, lines)]
    assert sorted(keys) == sorted((a, "highway", s) for a in SMALL for s in SMALL_SEEDS)
    # the folder is free again: a later resume has nothing to do and accepts the file
    again = subprocess.run(
        _small_cli(out, "--resume"),
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert again.returncode == 0, again.stderr[-2000:]
    assert len((out / RESULTS).read_text().splitlines()) == len(lines)


def test_a_folder_held_by_another_process_is_refused_before_anything_is_read(
    small, tmp_path, capsys
):
    import fcntl

    out = _copy_with(small, tmp_path / "held", (small / RESULTS).read_text().splitlines()[:2])
    with open(out / ".lock", "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        held.truncate(0)
        held.write(f"{os.getpid()}\n")
        held.flush()
        args = [
            "eval",
            "--agents",
            ",".join(SMALL),
            "--scenarios",
            "highway",
            "--episodes",
            "3",
            "--duration",
            "2",
            "--workers",
            "1",
            "--resume",
            "--quiet",
            "--out",
            str(out),
        ]
        assert main(args) == 2
        assert f"PID {os.getpid()}" in capsys.readouterr().err
        assert len((out / RESULTS).read_text().splitlines()) == 2  # nothing ran
    # released (as when its owner dies): the resume runs the rest
    assert main(args) == 0
    assert len(read_results(out / RESULTS)) == 6


@pytest.mark.parametrize(
    "field, value",
    [
        ("seed", "two"),
        ("seed", True),
        ("agent", 3),
        ("status", "crashed"),
        ("driving_score", "0.5"),
        ("route_completion", None),
        ("lane_violation", "1"),
        ("latency_p50_ms", [1.0]),
        ("scenario", "highway:bogus=9"),  # an unknown variant used to pass on --resume
        ("scenario", "highway:night:dense"),  # not the canonical name results are keyed by
    ],
)
def test_a_wrong_typed_results_field_is_refused_naming_file_line_and_field(
    small, tmp_path, field, value
):
    lines = (small / RESULTS).read_text().splitlines()
    bad = json.loads(lines[1])
    bad[field] = value
    out = _copy_with(small, tmp_path / "bad", [lines[0], json.dumps(bad), *lines[2:]])
    with pytest.raises(ValueError, match=rf"{RESULTS}:2: .*{field}"):
        read_results(out / RESULTS)


def test_report_and_resume_name_the_line_and_field_of_a_wrong_typed_record(small, tmp_path, capsys):
    lines = (small / RESULTS).read_text().splitlines()
    bad = {**json.loads(lines[2]), "seed": "two"}
    out = _copy_with(small, tmp_path / "bad", [*lines[:2], json.dumps(bad)])
    assert main(["report", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{RESULTS}:3" in err and "seed" in err and "internal error" not in err
    assert (
        main(
            [
                "eval",
                "--agents",
                ",".join(SMALL),
                "--scenarios",
                "highway",
                "--episodes",
                "3",
                "--duration",
                "2",
                "--workers",
                "1",
                "--resume",
                "--quiet",
                "--out",
                str(out),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert f"{RESULTS}:3" in err and "seed" in err
    (out / RESULTS).write_text("[1, 2]\n")
    with pytest.raises(ValueError, match=rf"{RESULTS}:1: not a JSON object"):
        read_results(out / RESULTS)


def test_duplicate_episodes_are_refused_naming_both_lines(small, tmp_path, capsys):
    lines = (small / RESULTS).read_text().splitlines()
    out = _copy_with(small, tmp_path / "dup", [*lines[:4], lines[1]])
    with pytest.raises(ValueError, match=rf"{RESULTS}:5: .*line 2"):
        read_results(out / RESULTS)
    assert main(["report", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{RESULTS}:5" in err and "line 2" in err


def test_agents_may_join_an_evaluation_on_resume_and_nothing_else_may_change(serial, tmp_path):
    src, records = serial
    out = tmp_path / "grow"
    shutil.copytree(src, out)
    grown = run_eval(
        out,
        [*AGENTS, "expert"],
        SCENARIOS,
        SEEDS,
        workers=1,
        duration_s=3.0,
        resume=True,
        progress=False,
    )
    config = json.loads((out / CONFIG).read_text())
    assert config["agents"] == [*AGENTS, "expert"] and config["added"][0]["agents"] == ["expert"]
    assert "expert" in config["sensors"]
    old = [r for r in grown if r["agent"] != "expert"]
    assert _comparable(old) == _comparable(records)  # the finished episodes are kept as they were
    assert sorted((r["scenario"], r["seed"]) for r in grown if r["agent"] == "expert") == sorted(
        (s, seed) for s in SCENARIOS for seed in SEEDS
    )
    with pytest.raises(ValueError, match="agents differ"):  # dropping an agent is not a resume
        run_eval(out, AGENTS[:1], SCENARIOS, SEEDS, duration_s=3.0, resume=True, progress=False)
