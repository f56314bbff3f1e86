"""The compiled rollout (planning.kernel) against the numpy loop it replaced, to the last bits.

The reference below is the planner's rollout loop as it was written in numpy (every
candidate a lane of an array, ~150 small operations per step).  The compiled loop must give
the same floats on any scene, so that compiling it changed no episode: the pinned seeds,
the held-out tables and the recorded demos all stay valid.

Bit for bit where numpy's sin and cos are the C library's (as numba's are); on a CPU with
AVX-512 numpy takes its own SIMD versions, which differ in the last bit (``NPY_DISABLE_CPU_
FEATURES="X86_V4 AVX512_ICL"`` restores equality), so the comparison allows ``ULP_TOL``: far
below any difference a change to the loop makes, which shows in the first steps at 1e-3 or
more.  Determinism is unaffected: one machine runs the same code in every process.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from planning.kernel import window_frame
from planning.planner import (
    MIN_CLOSING_SPEED_MPS,
    MIN_DESIRED_SPEED_MPS,
    EgoState,
    PathOption,
    PathWindows,
    Planner,
    candidate_grid,
    near_objects,
    objects_along_paths,
)
from planning.prediction import forecast
from planning.rollout import (
    BicycleState,
    bicycle_step,
    idm_acceleration,
    lookahead_distance,
    pure_pursuit_steering,
    rear_axle_speed_mps,
)
from planning.vehicle import MAX_STEERING_RAD
from tests.test_planner_soundness import options
from tests.test_planning_planner import TIMES, objects, offset_options, ring_map, three_lane_map

# relative and absolute tolerance: a few ulps, amplified over 40 steps (module docstring)
ULP_TOL = 1e-12


def numpy_rollout(planner, ego, opts, cands, windows, objs, times, longitudinal):
    """The numpy step loop the kernel replaced (2008c58), verbatim in its arithmetic, on the
    inputs the planner prepares for the kernel."""
    c = planner.config
    r = planner.rollout_inputs(ego, opts, cands, windows, objs, times, longitudinal)
    frac = cands.speed_fraction
    T, C, K = c.steps, len(cands), r.so_m.shape[2]
    half_l = ego.length_m / 2
    idm = cands.idm
    base, s0_local, blend_d0, blend_m0, blend_inv_len = (
        r.base,
        r.s0_local_m,
        r.blend_d0_m,
        r.blend_m0_m,
        r.blend_inv_len_1pm,
    )
    dead_c, s_end_c, so_all, g_all, vs_all = r.dead_end, r.s_end_m, r.so_m, r.gap_base_m, r.vs_mps
    base2 = np.concatenate([base, base])
    state = BicycleState(
        np.full(C, ego.x_m),
        np.full(C, ego.y_m),
        np.full(C, ego.heading_rad),
        np.full(C, max(ego.speed_mps, 0.0)),
    )
    s = s0_local.copy()  # rear axle, local
    X = np.empty((C, T + 1))
    Y = np.empty((C, T + 1))
    H = np.empty((C, T + 1))
    V = np.empty((C, T + 1))
    A = np.empty((C, T))
    D = np.empty((C, T))
    X[:, 0], Y[:, 0], H[:, 0], V[:, 0] = state.x_m, state.y_m, state.heading_rad, state.speed_mps
    S = np.empty((C, T + 1))
    min_ttc = np.full(C, np.inf)
    cap0 = windows.speed_cap(base, s)  # [m/s] here
    brake = cands.brake_mps2
    braking = brake > 0
    rows = np.arange(C)
    any_dead, any_brake = bool(dead_c.any()), bool(braking.any())
    for k in range(T):
        x, y, h, v = state.x_m, state.y_m, state.heading_rad, state.speed_mps
        rx, ry = x - half_l * np.cos(h), y - half_l * np.sin(h)
        ld = lookahead_distance(v, c.lookahead_gain_s, c.min_lookahead_m, c.max_lookahead_m)
        # one lookup for the foot point (at the predicted s) and the look-ahead point; the
        # Gauss-Newton correction below is centimetres, so the look-ahead point keeps it
        fcx, fcy, ftx_, fty_ = windows.frame(base2, np.concatenate([s, s + ld]))
        s = s + (rx - fcx[:C]) * ftx_[:C] + (ry - fcy[:C]) * fty_[:C]
        S[:, k] = s
        # the look-ahead point on the way onto the path (planning.lanes.BlendedPath)
        u = np.minimum(np.maximum((s + ld - s0_local) * blend_inv_len, 0.0), 1.0)
        u2 = u * u
        off = blend_d0 * (2 * u2 * u - 3 * u2 + 1) + blend_m0 * (u2 * u - 2 * u2 + u)
        gx, gy = fcx[C:] - off * fty_[C:], fcy[C:] + off * ftx_[C:]
        steer = pure_pursuit_steering(rx, ry, h, gx, gy, ego.length_m)
        steer = np.minimum(np.maximum(steer, -MAX_STEERING_RAD), MAX_STEERING_RAD)
        D[:, k] = steer
        if longitudinal:
            v0 = np.maximum(
                frac * windows.speed_cap(base, s), MIN_DESIRED_SPEED_MPS
            )  # a fraction of what this spot allows
            centre = s + half_l  # rear axle -> centre
            if K:
                g = np.where(so_all[k] > centre[:, None], g_all[k] - centre[:, None], np.inf)
                lead = np.argmin(g, axis=1)
                gap = g[rows, lead]
                found = gap < np.inf
                v_lead = np.where(found, vs_all[k][rows, lead], 0.0)
                closing = v - v_lead
                ttc = np.where(
                    (closing > MIN_CLOSING_SPEED_MPS) & found,
                    np.maximum(gap, 0.0) / np.maximum(closing, MIN_CLOSING_SPEED_MPS),
                    np.inf,
                )
                min_ttc = np.minimum(min_ttc, ttc)
            else:
                gap, v_lead = np.full(C, np.inf), np.zeros(C)
            if any_dead:
                dead_gap = s_end_c - (s + ego.length_m) - c.dead_end_margin_m
                use_dead = dead_c & (dead_gap < gap)
                gap = np.where(use_dead, dead_gap, gap)
                v_lead = np.where(use_dead, 0.0, v_lead)
            acc = idm_acceleration(v, v0, gap, v_lead, idm)
            if any_brake:
                acc = np.where(braking, np.minimum(acc, -np.minimum(brake, v / c.step_s)), acc)
            acc = np.minimum(
                np.maximum(acc, np.maximum(-c.max_brake_mps2, -v / c.step_s)), idm.accel_mps2
            )  # never reverse
        else:
            acc = np.zeros(C)
        A[:, k] = acc
        s = s + rear_axle_speed_mps(v, steer) * c.step_s  # predicted progress (corrected next step)
        state = bicycle_step(state, acc, steer, c.step_s, ego.length_m)
        X[:, k + 1], Y[:, k + 1], H[:, k + 1], V[:, k + 1] = (
            state.x_m,
            state.y_m,
            state.heading_rad,
            state.speed_mps,
        )
    # the final foot point
    x, y, h = state.x_m, state.y_m, state.heading_rad
    rx, ry = x - half_l * np.cos(h), y - half_l * np.sin(h)
    fcx, fcy, ftx_, fty_ = windows.frame(base, s)
    s = s + (rx - fcx) * ftx_ + (ry - fcy) * fty_
    S[:, T] = s
    return X, Y, H, V, A, D, S, min_ttc, cap0


def assert_same_rollout(ego, opts, objs_forecast, longitudinal=True, planner=None):
    planner = planner or Planner()
    c = planner.config
    cands = candidate_grid(opts, c, longitudinal)
    windows = PathWindows.crop(opts, ego, c, planner.profile)
    fc = near_objects(objs_forecast, ego, windows.reach_m)
    objs = objects_along_paths(opts, fc, ego, windows, c)
    times = np.arange(c.steps + 1) * c.step_s
    want = numpy_rollout(planner, ego, opts, cands, windows, objs, times, longitudinal)
    roll = planner.rollout(ego, opts, cands, windows, objs, times, longitudinal)
    got = (
        roll.x_m,
        roll.y_m,
        roll.heading_rad,
        roll.speed_mps,
        roll.accelerations_mps2,
        roll.steerings_rad,
        roll.s_m,
        roll.min_ttc_s,
        roll.cap0_mps,
    )
    for name, g, w in zip(["X", "Y", "H", "V", "A", "D", "S", "min_ttc", "cap0"], got, want):
        assert g.shape == w.shape, name
        same = np.array_equal(g, w, equal_nan=True) or np.allclose(
            g, w, rtol=ULP_TOL, atol=ULP_TOL, equal_nan=True
        )
        assert same, (name, np.nanmax(np.abs(g - w)))


scene_rows = st.lists(
    st.tuples(st.floats(0, 400), st.floats(-6, 6), st.floats(-0.5, 0.5), st.floats(0, 40)),
    max_size=10,
)


@settings(max_examples=40, deadline=None)
@given(
    x=st.floats(50, 300),
    y=st.floats(-5.0, 5.0),
    heading=st.floats(-0.4, 0.4),
    speed=st.floats(0, 40),
    rows=scene_rows,
    accel=st.floats(-8, 3),
    longitudinal=st.booleans(),
)
def test_the_compiled_rollout_is_the_numpy_rollout_bit_for_bit(
    x, y, heading, speed, rows, accel, longitudinal
):
    ego = EgoState(x, y, heading, speed)
    objs = objects(rows) if rows else objects([])
    objs.acceleration_mps2 = np.full(len(objs), accel)  # braking and accelerating leads
    assert_same_rollout(ego, options(ego), forecast(objs, TIMES, "cv"), longitudinal)


def test_the_compiled_rollout_is_the_numpy_rollout_before_a_dead_end_and_while_braking_hard():
    lm = three_lane_map(merge_end_m=260.0)
    ego = EgoState(200.0, -4.0, 0.0, 25.0)  # on the merge lane, 60 m before its end
    rear = np.array([ego.x_m - 2.5, ego.y_m])
    opts = []
    for lid, change in (("a-b-2", 0), ("a-b-1", -1)):
        path = lm.path((lid,))
        s, d = path.project(rear)
        opts.append(PathOption(path, float(s), change, on_route=True, d_m=float(d)))
    wall = objects([(215.0, 0.0, 0.0, 3.0), (190.0, 0.0, 0.0, 30.0)])
    assert_same_rollout(ego, opts, forecast(wall, TIMES, "cv"))
    planner = Planner()
    assert_same_rollout(
        ego, opts, forecast(wall, TIMES, "cv"), planner=Planner(planner.evasive_config)
    )


def test_window_lookups_compiled_and_in_numpy_agree():
    """The same function on arrays (numpy) and, inside the kernel, on floats."""
    ego = EgoState(100.0, 0.0, 0.0, 20.0)
    opts = options(ego)
    w = PathWindows.crop(opts, ego, Planner().config, Planner().profile)
    s = np.linspace(-3.0, w.reach_m + 50.0, 17)
    base = np.zeros(len(s), dtype=np.int64) + w.width
    got = w.frame(base, s)
    for k in range(len(s)):
        one = window_frame(
            w.x_m,
            w.y_m,
            w.tx,
            w.ty,
            w.dx_m,
            w.dy_m,
            w.dtx,
            w.dty,
            1.0 / w.spacing_m,
            w.width - 1.000001,
            base[k : k + 1],
            s[k : k + 1],
        )
        assert all(g[k] == o[0] for g, o in zip(got, one))


def test_the_uncompiled_loop_is_the_compiled_loop(monkeypatch):
    """Without numba the kernel's own source runs as Python (planning.jit): the same floats."""
    from planning import kernel
    from planning import planner as planner_module

    if not kernel.COMPILED:
        return  # the Python loop is what the tests above already checked
    monkeypatch.setattr(planner_module, "rollout_steps", kernel.rollout_steps.py_func)
    ego = EgoState(150.0, 1.0, 0.05, 22.0)
    objs = objects([(175.0, 0.0, 0.0, 12.0), (160.0, 4.0, 0.0, 25.0), (140.0, -4.0, 0.0, 30.0)])
    objs.acceleration_mps2 = np.array([-4.0, 0.0, 1.0])
    assert_same_rollout(ego, options(ego), forecast(objs, TIMES, "cv"))
    assert_same_rollout(*ring_scene())


def ring_scene():
    """On a ring the window look-ups interpolate between samples that turn."""
    lm = ring_map()
    angle = -0.3
    ego = EgoState(61.0 * np.cos(angle), 61.0 * np.sin(angle), angle + np.pi / 2 + 0.05, 15.0)
    objs = objects([(60.0 * np.cos(0.0), 60.0 * np.sin(0.0), np.pi / 2, 8.0)])
    return (
        ego,
        offset_options(lm, ego, [("r-s-1", 0), ("r-s-0", -1)]),
        forecast(objs, TIMES, "ctrv"),
    )


def test_the_compiled_rollout_is_the_numpy_rollout_on_a_curve():
    assert_same_rollout(*ring_scene())


def test_a_changed_source_drops_the_cached_loop(tmp_path):
    """numba would keep running a cached loop after an edit to rollout.py (it keys the cache
    on kernel.py alone): the digest of every source the loop compiles guards it."""
    from planning.kernel import drop_stale_cache

    sources = [tmp_path / "kernel.py", tmp_path / "rollout.py"]
    for p in sources:
        p.write_text("x = 1\n")
    cache = tmp_path / "__pycache__"
    cache.mkdir()
    cached = [
        cache / "kernel.rollout_steps-67.py311.nbi",
        cache / "kernel.rollout_steps-67.py311.1.nbc",
    ]
    other = cache / "lanes.cpython-311.pyc"
    for p in [*cached, other]:
        p.write_text("compiled")
    assert drop_stale_cache(cache, sources)  # no digest yet: nothing to trust
    assert not any(p.exists() for p in cached) and other.exists()
    for p in cached:
        p.write_text("compiled again")
    assert not drop_stale_cache(cache, sources)  # the same sources: the cache stays
    assert all(p.exists() for p in cached)
    sources[1].write_text("x = 2\n")  # IDM edited
    assert drop_stale_cache(cache, sources)
    assert not any(p.exists() for p in cached) and other.exists()


def test_an_agent_compiles_the_rollout_loop_when_it_prepares():
    """A planning agent's prepare() compiles (or loads from numba's cache) the rollout loop,
    so a parallel run's parent has it before its workers start and no first decision pays
    for the compile (a fresh process: this one has compiled it already)."""
    import subprocess
    import sys

    from planning.jit import COMPILED

    if not COMPILED:
        pytest.skip("numba is not installed: the loop runs as plain Python")
    code = (
        "from agents import make_agent\n"
        "from sim.geometry.bev import BevCamera\n"
        "from sim.harness.episodes import task_spec\n"
        "from sim.world.scenarios import get_scenario\n"
        "from planning.kernel import rollout_steps\n"
        "agent = make_agent('expert', task_spec(get_scenario('highway'), BevCamera()))\n"
        "before = len(rollout_steps.signatures)\n"
        "agent.prepare()\n"
        "print(before, len(rollout_steps.signatures))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True
    )
    assert out.stdout.split() == ["0", "1"]
