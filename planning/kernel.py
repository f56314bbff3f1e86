"""The planner's rollout loop, compiled: every candidate stepped through the horizon in one
call instead of ~150 small numpy operations per step.

:meth:`planning.planner.Planner.rollout` prepares everything that is computed once per plan
(the windows, the objects' positions along each path at every step, the per-candidate
constants) with numpy and hands the step loop to :func:`rollout_steps`.  The loop calls the
*same* functions the rest of the project uses on arrays (pure pursuit, the bicycle, IDM, the
window look-ups, all marked ``register_jitable``), so there is one definition of each law,
and the compiled loop reproduces the numpy loop it replaced bit for bit (the same
operations in the same order; ``tests/test_planning_kernel.py`` holds the numpy reference
and checks it).  numba compiles it once per machine and caches it next to this file (or in
``NUMBA_CACHE_DIR``); without numba it runs as Python (:mod:`planning.jit`).

Why not fewer, longer steps: that would change every episode; the compiled loop changes
none.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from planning.jit import COMPILED, jit, overload, register_jitable, types
from planning.rollout import (
    bicycle_step_xyhv,
    idm_free_road_terms,
    idm_interaction_terms,
    lookahead_distance,
    pure_pursuit_steering,
    rear_axle_speed_mps,
)


def as_index(f):
    """``f`` truncated to int64 (an index): arrays in numpy, floats in compiled code (and in
    the uncompiled loop)."""
    return f.astype(np.int64) if isinstance(f, np.ndarray) else int(f)


if COMPILED:

    @overload(as_index)
    def _as_index_compiled(f):
        if isinstance(f, types.Float):
            return lambda f: np.int64(f)
        return None


@register_jitable
def window_frame(x_m, y_m, tx, ty, dx_m, dy_m, dtx, dty, inv_spacing_1pm, f_max, base, s_local_m):
    """Centre ``(x, y)`` and unit tangent ``(tx, ty)`` at window-local ``s_local_m`` on the
    flat windows starting at index ``base``, interpolated between samples (``f_max``: the
    largest fractional sample index a look-up may reach)."""
    f = np.minimum(np.maximum(s_local_m * inv_spacing_1pm, 0.0), f_max)
    i = as_index(f)
    u = f - i
    j = base + i
    tx_, ty_ = tx[j] + u * dtx[j], ty[j] + u * dty[j]
    n = np.sqrt(tx_ * tx_ + ty_ * ty_)
    return x_m[j] + u * dx_m[j], y_m[j] + u * dy_m[j], tx_ / n, ty_ / n


@register_jitable
def window_speed_cap(cap_mps, inv_spacing_1pm, width, base, s_local_m):
    """The speed cap [m/s] at the sample at or behind ``s_local_m`` on the flat windows
    starting at index ``base``."""
    return cap_mps[
        base + np.minimum(np.maximum(as_index(s_local_m * inv_spacing_1pm), 0), width - 1)
    ]


@jit(cache=True, error_model="numpy")  # numpy's division: x/0 is inf or nan, not an exception
def rollout_steps(
    x0,
    y0,
    h0,
    v0,
    length_m,
    steps,
    step_s,
    look_gain_s,
    look_min_m,
    look_max_m,
    max_steering_rad,
    base,
    s0_local,
    blend_d0,
    blend_m0,
    blend_inv_len,
    wx,
    wy,
    wtx,
    wty,
    wdx,
    wdy,
    wdtx,
    wdty,
    wcap,
    inv_spacing_1pm,
    f_max,
    width,
    longitudinal,
    frac,
    min_desired_mps,
    idm_a,
    idm_b,
    idm_t,
    idm_s0,
    idm_delta,
    idm_2sab,
    brake,
    max_brake_mps2,
    dead,
    s_end,
    dead_end_margin_m,
    so_all,
    g_all,
    vs_all,
    min_closing_mps,
):
    """Steps every candidate ``c`` through ``steps`` steps of ``step_s``: pure pursuit onto
    its way (the Hermite transition ``blend_*`` onto its path window at ``base``), IDM at
    ``frac[c]`` of the window's speed cap behind the nearest object in its way (``g_all``,
    ``so_all``, ``vs_all``: ``[T, C, K]`` gap base, position and speed along the path, gap
    inf where not in its way) or its dead end, capped by its braking ``brake[c]``, and the
    bicycle.  Returns the state arrays, the commands, the rear axle's window-local ``s`` at
    each step, the minimum time-to-collision and the speed cap at the start."""
    C = base.shape[0]
    K = so_all.shape[2]
    half_l = length_m / 2
    X = np.empty((C, steps + 1))
    Y = np.empty((C, steps + 1))
    H = np.empty((C, steps + 1))
    V = np.empty((C, steps + 1))
    A = np.empty((C, steps))
    D = np.empty((C, steps))
    S = np.empty((C, steps + 1))
    min_ttc = np.full(C, np.inf)
    cap0 = np.empty(C)
    for c in range(C):
        x, y, h, v = x0, y0, h0, v0
        X[c, 0], Y[c, 0], H[c, 0], V[c, 0] = x, y, h, v
        s = s0_local[c]
        b = base[c]
        cap0[c] = window_speed_cap(wcap, inv_spacing_1pm, width, b, s)
        ttc_min = np.inf
        for k in range(steps):
            rx, ry = x - half_l * np.cos(h), y - half_l * np.sin(h)
            ld = lookahead_distance(v, look_gain_s, look_min_m, look_max_m)
            fcx, fcy, ftx, fty = window_frame(
                wx, wy, wtx, wty, wdx, wdy, wdtx, wdty, inv_spacing_1pm, f_max, b, s
            )
            lcx, lcy, ltx, lty = window_frame(
                wx, wy, wtx, wty, wdx, wdy, wdtx, wdty, inv_spacing_1pm, f_max, b, s + ld
            )
            s = s + (rx - fcx) * ftx + (ry - fcy) * fty
            S[c, k] = s
            u = np.minimum(np.maximum((s + ld - s0_local[c]) * blend_inv_len[c], 0.0), 1.0)
            u2 = u * u
            off = blend_d0[c] * (2 * u2 * u - 3 * u2 + 1) + blend_m0[c] * (u2 * u - 2 * u2 + u)
            gx, gy = lcx - off * lty, lcy + off * ltx
            steer = pure_pursuit_steering(rx, ry, h, gx, gy, length_m)
            steer = np.minimum(np.maximum(steer, -max_steering_rad), max_steering_rad)
            D[c, k] = steer
            if longitudinal:
                desired = np.maximum(
                    frac[c] * window_speed_cap(wcap, inv_spacing_1pm, width, b, s), min_desired_mps
                )
                centre = s + half_l
                gap, v_lead = np.inf, 0.0
                if K:
                    lead = 0
                    for q in range(K):  # np.argmin: the first minimum, or the first nan
                        g = g_all[k, c, q] - centre if so_all[k, c, q] > centre else np.inf
                        if np.isnan(g):
                            gap, lead = g, q
                            break
                        if q == 0 or g < gap:
                            gap, lead = g, q
                    found = gap < np.inf
                    v_lead = vs_all[k, c, lead] if found else 0.0
                    closing = v - v_lead
                    if closing > min_closing_mps and found:
                        ttc = np.maximum(gap, 0.0) / np.maximum(closing, min_closing_mps)
                    else:
                        ttc = np.inf
                    ttc_min = np.minimum(ttc_min, ttc)
                if dead[c]:
                    dead_gap = s_end[c] - (s + length_m) - dead_end_margin_m
                    if dead_gap < gap:
                        gap, v_lead = dead_gap, 0.0
                acc = idm_free_road_terms(
                    v, desired, idm_a[c], idm_b[c], idm_delta[c]
                ) + idm_interaction_terms(
                    v, v_lead, gap, idm_a[c], idm_t[c], idm_s0[c], idm_2sab[c]
                )
                if brake[c] > 0:
                    acc = np.minimum(acc, -np.minimum(brake[c], v / step_s))
                acc = np.minimum(
                    np.maximum(acc, np.maximum(-max_brake_mps2, -v / step_s)), idm_a[c]
                )
            else:
                acc = 0.0
            A[c, k] = acc
            s = s + rear_axle_speed_mps(v, steer) * step_s
            x, y, h, v = bicycle_step_xyhv(x, y, h, v, acc, steer, step_s, length_m)
            X[c, k + 1], Y[c, k + 1], H[c, k + 1], V[c, k + 1] = x, y, h, v
        rx, ry = x - half_l * np.cos(h), y - half_l * np.sin(h)
        fcx, fcy, ftx, fty = window_frame(
            wx, wy, wtx, wty, wdx, wdy, wdtx, wdty, inv_spacing_1pm, f_max, b, s
        )
        S[c, steps] = s + (rx - fcx) * ftx + (ry - fcy) * fty
        min_ttc[c] = ttc_min
    return X, Y, H, V, A, D, S, min_ttc, cap0


KERNEL_SOURCES = tuple(
    Path(__file__).with_name(n) for n in ("kernel.py", "rollout.py", "vehicle.py", "jit.py")
)
"""The files whose code the compiled loop contains (the ``register_jitable`` functions are
compiled into it)."""


def drop_stale_cache(
    cache_dir: Path,
    sources: Sequence[Path] = KERNEL_SOURCES,
    pattern: str = "kernel.rollout_steps-*.nb[ci]",
) -> bool:
    """numba keys a cached function on its own file only, so an edit to IDM in
    ``rollout.py`` would leave the loop running yesterday's IDM.  Keep a digest of every
    source the loop compiles next to the cache and drop the cached loop when it changes.
    Returns whether it dropped (or found nothing to trust)."""
    digest = hashlib.sha256(b"".join(Path(p).read_bytes() for p in sources)).hexdigest()
    stamp = Path(cache_dir) / "kernel.rollout_steps.sources.sha256"
    try:
        if stamp.read_text() == digest:
            return False
    except OSError:
        pass
    for f in Path(cache_dir).glob(pattern):
        f.unlink(missing_ok=True)
    try:  # atomic: a concurrent process reads the old stamp or the new one
        tmp = stamp.with_name(f"{stamp.name}.{os.getpid()}.tmp")
        tmp.write_text(digest)
        tmp.replace(stamp)
    except OSError:  # a read-only install: numba then caches elsewhere or compiles each time
        pass
    return True


if COMPILED:
    _cache_dir = getattr(getattr(rollout_steps, "_cache", None), "_cache_path", None)
    if _cache_dir:
        drop_stale_cache(Path(_cache_dir))
