"""The control loop: sensor gating, action gating, faults recorded, metrics present."""

import numpy as np
import pytest

from agents import BaseAgent, make_agent
from sim.geometry.bev import BevCamera
from sim.harness.loop import env_sensors_for, run_episode
from sim.harness.run import task_spec
from sim.world.env import DrivingEnv
from sim.world.scenarios import get_scenario

SHORT = {"duration_s": 2.0}


def _task(name="highway"):
    return task_spec(get_scenario(name), BevCamera())


class Spy(BaseAgent):
    name = "spy"

    def __init__(self, task, sensors, action=...):
        super().__init__(task)
        self.sensors = sensors
        self.seen: list[set] = []
        self.action = np.zeros(task.action_size) if action is ... else action

    def act(self, obs):
        self.seen.append(set(obs))
        return self.action


def _run(agent, name="highway", seed=0, **over):
    env = DrivingEnv(get_scenario(name, **{**SHORT, **over}), sensors=env_sensors_for(agent))
    return run_episode(env, agent, seed)


def test_agent_gets_only_its_declared_sensors():
    spy = Spy(_task(), ("bev", "speed"))
    _run(spy)
    assert spy.seen and all(s == {"bev", "speed"} for s in spy.seen)


def test_agent_cannot_see_truth_unless_it_asks():
    blind = Spy(_task(), ("bev",))
    env = DrivingEnv(get_scenario("highway", **SHORT))  # an env computing every sensor
    run_episode(env, blind, 0)
    assert all("truth" not in s and "map" not in s for s in blind.seen)
    seer = Spy(_task(), ("truth", "map", "pose"))
    _run(seer)
    assert all(s == {"truth", "map", "pose"} for s in seer.seen)


def test_map_is_handed_every_step():
    spy = Spy(_task(), ("map",))
    r = _run(spy)
    assert len(spy.seen) == r.metrics["steps"] and all(s == {"map"} for s in spy.seen)


def test_unknown_sensor_is_rejected_with_the_known_list():
    with pytest.raises(ValueError, match="known: bev, speed"):
        env_sensors_for(Spy(_task(), ("lidar",)))


class GradTensorLike:
    """Stands in for a torch tensor that requires grad: refuses numpy conversion."""

    def __array__(self, dtype=None, copy=None):
        raise RuntimeError("Can't call numpy() on Tensor that requires grad")


@pytest.mark.parametrize(
    "bad,why",
    [
        (np.array([np.nan, 0.0]), "non-finite"),
        (np.array([0.0, np.inf]), "non-finite"),
        (np.zeros(3), "expected shape (2,)"),
        (np.zeros((1, 2)), "got shape (1, 2)"),
        ("left", "numeric"),
        (None, "numeric"),
        (np.array([1j, 0.0]), "numeric"),
        (GradTensorLike(), "RuntimeError"),
    ],
)
def test_bad_actions_end_the_episode_as_invalid_action(bad, why):
    r = _run(Spy(_task(), ("speed",), action=bad))
    assert r.status == "invalid_action"
    assert why in r.error
    assert r.metrics["status"] == "invalid_action"
    assert r.metrics["driving_score"] == 0.0
    assert r.metrics["interventions"] == 1


class Raiser(BaseAgent):
    name = "raiser"
    sensors = ("speed",)

    def __init__(self, task, after=3):
        super().__init__(task)
        self.after, self.k = after, 0

    def reset(self, seed=None):
        self.k = 0

    def act(self, obs):
        self.k += 1
        if self.k > self.after:
            raise RuntimeError("boom")
        return np.zeros(self.task.action_size)


def test_raising_agent_is_recorded_and_the_run_goes_on():
    agent = Raiser(_task())
    env = DrivingEnv(get_scenario("highway", **SHORT), sensors=env_sensors_for(agent))
    first = run_episode(env, agent, 0)
    second = run_episode(env, agent, 1)
    for r in (first, second):
        assert r.status == "agent_error" and "RuntimeError: boom" in r.error
        assert r.metrics["steps"] == 3
    record = first.record()
    assert record["status"] == "agent_error" and record["seed"] == 0


def test_straight_agent_leaves_the_racetrack():
    agent = make_agent("straight", _task("lane-keep"))
    r = _run(agent, "lane-keep", duration_s=50.0)
    assert r.status == "offroad"
    assert (
        r.metrics["offroad"] == 1 and r.metrics["lane_violation"] == 1
    )  # left its lane, then the road
    assert r.metrics["driving_score"] == pytest.approx(0.7 * 0.7 * r.metrics["route_completion"])


def test_idm_laps_the_racetrack():
    agent = make_agent("idm", _task("lane-keep"))
    r = _run(agent, "lane-keep", seed=1, duration_s=50.0)
    assert r.status == "ok" and r.metrics["route_completed"]
    assert r.metrics["driving_score"] == pytest.approx(1.0)
    assert r.metrics["lateral_offset_rms_m"] < 0.5
    assert r.metrics["autonomy_pct"] == 100.0


def test_ramming_a_car_is_a_vehicle_collision():
    full_throttle = Spy(_task(), ("speed",), action=np.array([1.0, 0.0]))
    # highway traffic is spawned ahead of the ego; flat out, the ego rear-ends someone
    r = _run(full_throttle, duration_s=40.0)
    assert r.status == "collision"
    assert r.metrics["collision_vehicle"] == 1
    assert r.metrics["driving_score"] == pytest.approx(0.6 * r.metrics["route_completion"])


def test_every_design_metric_is_recorded():
    r = _run(make_agent("idm", _task()))
    rec = r.record()
    for key in [
        "agent",
        "scenario",
        "seed",
        "status",
        "route_completion",
        "driving_score",
        "collision_vehicle",
        "collision_object",
        "offroad",
        "autonomy_pct",
        "mean_speed_mps",
        "lateral_offset_rms_m",
        "max_abs_jerk_mps3",
        "max_abs_lat_accel_mps2",
        "max_abs_yaw_rate_radps",
        "min_long_accel_mps2",
        "comfort_violation_rate",
        "min_ttc_s",
        "infractions_per_km",
        "latency_p50_ms",
        "latency_p99_ms",
        "device",
        "sensors",
    ]:
        assert key in rec, key
    assert rec["sensors"] == ["autopilot"]


class LateRaiser(Raiser):
    """Drives well (the IDM autopilot), then raises."""

    sensors = ("autopilot",)

    def act(self, obs):
        super().act(obs)
        return obs["autopilot"]


def test_an_agent_fault_scores_zero_even_after_progress():
    agent = LateRaiser(_task("lane-keep"), after=300)
    env = DrivingEnv(get_scenario("lane-keep"), sensors=env_sensors_for(agent))
    r = run_episode(env, agent, 0)
    assert r.status == "agent_error" and r.metrics["route_completion"] > 0.3
    assert r.metrics["driving_score"] == 0.0


# -- per-decision timeout --------------------------------------------------------------------------
class Hanger(BaseAgent):
    """Hangs on decision ``at`` (a busy loop that even swallows ``Exception``, or a sleep)
    after making its own decision timer expire: the agent sends this process the SIGALRM the
    loop's timer would send, so no test waits for wall-clock time.  ``cut`` records whether
    the hang was interrupted; the hang itself is bounded (``seconds``) only so that a broken
    timeout fails the test rather than hanging it."""

    name = "hanger"
    sensors = ("speed",)
    lockstep = True

    def __init__(self, task, at=3, how="spin", seconds=60.0):
        super().__init__(task)
        self.at, self.how, self.seconds, self.calls = at, how, seconds, 0
        self.cut, self.armed_s = None, None

    def act(self, obs):
        self.calls += 1
        if self.calls == self.at:
            import os
            import signal
            import time

            self.armed_s = signal.getitimer(signal.ITIMER_REAL)[0]  # the loop armed a timer
            self.cut = True  # until the hang below runs to its end
            if self.armed_s:
                os.kill(os.getpid(), signal.SIGALRM)  # ... and here it fires
            t0 = time.monotonic()
            while time.monotonic() - t0 < self.seconds:
                try:
                    if self.how == "sleep":
                        time.sleep(self.seconds)
                except Exception:  # noqa: BLE001, S110 - a badly written agent
                    pass
            self.cut = False  # reached only when nothing interrupted the hang
        return np.zeros(self.task.action_size)

    def reset_slot(self, slot, seed=None):
        return None


@pytest.mark.parametrize("how", ["spin", "sleep"])
def test_a_hanging_decision_ends_the_episode_as_timeout_and_the_alarm_is_cleared(how):
    import signal

    agent = Hanger(_task(), at=3, how=how)
    env = DrivingEnv(get_scenario("highway", **SHORT), sensors=env_sensors_for(agent))
    before = signal.getsignal(signal.SIGALRM)
    r = run_episode(env, agent, 0, decision_timeout_s=30.0)
    assert 0 < agent.armed_s <= 30.0 and agent.cut  # armed with the limit, and it cut
    assert r.status == "timeout" and "30 s limit" in r.error
    assert r.metrics["driving_score"] == 0.0 and len(r.trace.latency_ms) == 3
    assert (
        signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
        and signal.getsignal(signal.SIGALRM) is before
    )
    ok = run_episode(env, Hanger(_task(), at=10**6), 1, decision_timeout_s=30.0)
    assert ok.status == "ok"  # decisions within the limit are never cut


def test_off_the_main_thread_a_slow_decision_is_judged_by_its_latency(monkeypatch):
    """No signal can interrupt a decision off the main thread: a decision that took longer
    than the limit (on a fake clock: 0.4 s pass during decision 2) ends the episode after it."""
    import threading

    from agents.baselines import StraightAgent
    from sim.harness import loop

    clock = {"ns": 0}
    monkeypatch.setattr(loop, "now_ns", lambda: clock["ns"])

    class Slow(StraightAgent):
        calls = 0

        def act(self, obs):
            self.calls += 1
            if self.calls == 2:
                clock["ns"] += 400_000_000
            return super().act(obs)

    agent = Slow(_task())
    env = DrivingEnv(get_scenario("highway", **SHORT), sensors=env_sensors_for(agent))
    out = {}
    t = threading.Thread(
        target=lambda: out.setdefault("r", run_episode(env, agent, 0, decision_timeout_s=0.1))
    )
    t.start()
    t.join()
    r = out["r"]
    assert r.status == "timeout" and r.trace.latency_ms[-1] == 400.0
    assert len(r.trace.latency_ms) == 2 and "stopped after 0.40 s" in r.error


def test_a_hanging_batch_times_out_every_episode_in_it():
    from sim.harness.loop import run_episodes_lockstep

    agent = Hanger(_task(), at=3)
    agent.act_batch = lambda obs, slots=None: np.stack([agent.act(o) for o in obs])
    envs = [
        DrivingEnv(get_scenario("highway", **SHORT), sensors=env_sensors_for(agent))
        for _ in range(2)
    ]
    rs = run_episodes_lockstep(envs, agent, [0, 1], decision_timeout_s=30.0)
    assert [r.status for r in rs] == ["timeout", "timeout"] and agent.cut


# -- simulator faults are not the agent's ----------------------------------------------------------
def _failing(env, method, after=0):
    """Make ``env.<method>`` raise on its call number ``after + 1`` (0: the first)."""
    real, calls = getattr(env, method), []

    def broken(*args, **kwargs):
        calls.append(1)
        if len(calls) > after:
            raise RuntimeError("the road cannot be built")
        return real(*args, **kwargs)

    setattr(env, method, broken)
    return env


@pytest.mark.parametrize("method, after, steps", [("step", 3, 3), ("reset", 0, 0)])
def test_a_simulator_exception_is_a_sim_error_not_the_agents(method, after, steps):
    agent = Spy(_task(), ("speed",))
    env = _failing(
        DrivingEnv(get_scenario("highway", **SHORT), sensors=env_sensors_for(agent)), method, after
    )
    r = run_episode(env, agent, 0)
    assert r.status == "sim_error" and "RuntimeError: the road cannot be built" in r.error
    assert r.error.startswith(f"{method}: ")
    assert r.metrics["steps"] == steps and r.record()["status"] == "sim_error"


def test_a_simulator_exception_in_lockstep_ends_only_its_slot_as_sim_error():
    from sim.harness.loop import run_episodes_lockstep

    agent = make_agent("idm", _task())
    envs = [
        DrivingEnv(get_scenario("highway", **SHORT), sensors=env_sensors_for(agent))
        for _ in range(2)
    ]
    _failing(envs[1], "step", after=2)
    rs = run_episodes_lockstep(envs, agent, [0, 1, 2])
    assert [r.seed for r in rs] == [0, 1, 2]
    assert (
        rs[0].status != "sim_error"
        and rs[1].status == "sim_error"
        and "cannot be built" in rs[1].error
    )
    assert rs[2].status == "sim_error"  # the broken env takes the next seed and fails again


def _rec(agent, seed, status, score):
    return {
        "agent": agent,
        "scenario": "highway",
        "seed": seed,
        "status": status,
        "driving_score": score,
        "route_completion": score,
        "latency_p50_ms": 1.0,
        "error": None if status != "sim_error" else "x",
    }


def test_the_report_counts_sim_errors_apart_and_leaves_them_out_of_the_agents_scores():
    from sim.report.report import _tables, build_rows

    records = [_rec("idm", s, "ok", 1.0) for s in range(4)] + [_rec("idm", 4, "sim_error", 0.0)]
    records += [_rec("expert", s, "ok", 0.5) for s in range(5)]
    rows = build_rows({"scenarios": ["highway"], "agents": ["idm", "expert"]}, records)
    row = rows["scenarios"]["highway"]["table"]["idm"]
    assert row["status"] == {"ok": 4, "sim_error": 1}
    assert (
        row["driving_score"]["mean"].value == pytest.approx(1.0)
        and row["driving_score"]["mean"].n == 4
    )
    assert row["route_completion"]["mean"].n == 4 and row["collision_rate"]["mean"].n == 4
    (comp,) = rows["scenarios"]["highway"]["paired"]
    assert comp["result"].n == 4  # the sim_error seed is no comparison
    _, header, cells = _tables(rows)[0]
    idm = next(c for c in cells if c[0] == "idm")
    status = idm[header.index("status")]
    assert status.startswith("ok 4") and "not scored: sim_error 1" in status


def test_an_agent_whose_every_episode_was_a_sim_error_has_no_scores():
    from sim.report.report import _tables, build_rows

    rows = build_rows(
        {"scenarios": ["highway"], "agents": ["idm"]}, [_rec("idm", 0, "sim_error", 0.0)]
    )
    row = rows["scenarios"]["highway"]["table"]["idm"]
    assert row["scored"] == 0 and row["driving_score"]["mean"].n == 0
    assert _tables(rows)[0][2][0][2] == "not scored: sim_error 1"


def test_the_run_summary_mean_leaves_sim_errors_out():
    from sim.harness.run import format_summary

    text = format_summary([_rec("idm", 0, "ok", 1.0), _rec("idm", 1, "sim_error", 0.0)])
    mean = next(line for line in text.splitlines() if line.lstrip().startswith("mean"))
    assert "1.00" in mean.split() and "0.50" not in mean.split()
    assert "not scored: 1 sim_error" in text


def test_a_world_that_cannot_be_built_is_a_sim_error_in_a_run(tmp_path, monkeypatch):
    from sim.harness.run import EpisodeRunner, run_seeds

    def broken(self, camera):
        raise RuntimeError("the road cannot be built")

    monkeypatch.setattr(EpisodeRunner, "_make_env", broken)
    records = []
    run_seeds(
        "idm",
        get_scenario("highway", **SHORT),
        [0, 1],
        tmp_path,
        records.append,
        camera=BevCamera(),
    )
    assert [r["status"] for r in records] == ["sim_error", "sim_error"]
    assert all("the road cannot be built" in r["error"] for r in records)


def test_episodes_in_this_process_run_on_one_torch_thread_as_in_a_worker(tmp_path, monkeypatch):
    """The same seed gives the same episode whatever --workers: torch's kernels reduce in
    an order that depends on the thread count, so the in-process path runs its episodes on
    one thread, as every worker process does, and gives the caller's count back after."""
    torch = pytest.importorskip("torch")
    from sim.harness.run import EpisodeRunner, run_seeds

    seen = []
    run = EpisodeRunner.run

    def spy(self, seed, video=None):
        seen.append(torch.get_num_threads())
        return run(self, seed, video)

    monkeypatch.setattr(EpisodeRunner, "run", spy)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        run_seeds("idm", get_scenario("highway", **SHORT), [0], tmp_path, print, camera=BevCamera())
        assert seen == [1]
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
