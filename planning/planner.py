"""A PDM-Closed-style trajectory planner: propose, simulate, score, pick.

Dauner, Hallgarten, Geiger, Chitta (CoRL 2023), "Parting with Misconceptions about
Learning-based Vehicle Motion Planning": a rule-based planner that proposes a few
candidates (centre lines x IDM target speeds), simulates each in closed loop with a
tracking controller and a kinematic bicycle, scores them with nuPlan's closed-loop
metrics against forecasts of the other agents, and executes the best; it won the
2023 nuPlan challenge (92-93 closed-loop score) ahead of learned planners.

Here, per decision:

1. **Candidates** = reference paths (the lane followed and, where lane changes are
   allowed, its left and right neighbours, each continued along the route: see
   :mod:`planning.lanes`) x desired speeds (fractions of the speed the path allows at
   each point: the lane's limit, lowered so curves are taken at
   ``lateral_accel_mps2``), plus a stop candidate per path.  Each candidate approaches
   its path from the car's current offset along a cubic transition
   (:func:`planning.lanes.hermite_offset`), so a lane change is a smooth S, not a jump.
2. **Rollout** of all candidates at once for ``horizon_s`` at ``step_s``: pure pursuit
   steers (:func:`planning.control.pure_pursuit_steering`), the Intelligent Driver Model
   (Treiber, Hennecke, Helbing 2000; above the desired speed its "improved" free-road
   term, Treiber & Kesting 2013) sets the acceleration behind the lead object on that
   path (and before a dead end), and highway-env's own bicycle
   (:mod:`planning.vehicle`) integrates the motion.
3. **Score** (nuPlan-style): multiplicative gates - no at-fault collision with the
   forecasts (:mod:`planning.prediction`), no driving past a dead end, no lane change
   that makes the new follower brake harder than ``unsafe_follower_decel_mps2`` (MOBIL's
   safety criterion, Kesting et al. 2007) - times a weighted mean of progress
   (relative to the best candidate's), time-to-collision, comfort (nuPlan's bounds),
   staying on the route's lanes and keeping the current lane.
4. **Pick** the best; if every candidate collides, the one that collides latest,
   then the slowest.

Pure numpy, world frame [m, s, rad], no simulator objects.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from planning.lanes import ReferencePath
from planning.prediction import Forecast
from planning.vehicle import MAX_SPEED_MPS, VEHICLE_LENGTH_M, VEHICLE_WIDTH_M, curvature_of_steering

# nuPlan comfort bounds (same as sim.harness.metrics; planning may not import sim)
LONG_ACCEL_MIN_MPS2 = -4.05
LONG_ACCEL_MAX_MPS2 = 2.40
LAT_ACCEL_MAX_MPS2 = 4.89
JERK_MAX_MPS3 = 8.37
YAW_RATE_MAX_RADPS = 0.95


@dataclass(frozen=True)
class PlannerConfig:
    """Every tunable of the planner, with units."""

    horizon_s: float = 4.0  # [s] rollout length
    step_s: float = 0.1  # [s] rollout step (10 Hz)
    # desired speeds: fractions of the speed the path allows where the car is (the lane's
    # limit, lowered ahead of curves so they are taken at lateral_accel_mps2)
    speed_fractions: tuple[float, ...] = (0.4, 0.6, 0.8, 1.0)
    stop_candidate: bool = True  # also a candidate that brakes to a stop on each path
    stop_decel_mps2: float = 3.0  # [m/s^2] its braking
    lateral_accel_mps2: float = 2.5  # [m/s^2] curvature speed limit v <= sqrt(a / |k|)
    # IDM
    idm_accel_mps2: float = 1.5  # [m/s^2] maximum acceleration a
    idm_decel_mps2: float = 2.5  # [m/s^2] comfortable deceleration b
    idm_headway_s: float = 1.2  # [s] desired time gap T
    idm_min_gap_m: float = 3.0  # [m] jam distance s0
    idm_delta: float = 4.0  # acceleration exponent
    max_brake_mps2: float = 5.0  # [m/s^2] the car's braking limit
    dead_end_margin_m: float = 3.0  # [m] stop this far before a corridor's end
    # the way onto a path: from the car's offset and heading to the centre line over up to
    # max(min_transition_m, speed x transition_time_s) (planning.lanes.hermite_offset)
    transition_time_s: float = 3.0  # [s] a 4 m lane change then peaks near 2.7 m/s^2 lateral
    min_transition_m: float = 12.0  # [m]
    transition_from_m: float = 0.5  # [m] offsets up to this are corrected directly
    transition_full_m: float = 2.0  # [m] offsets from this on get the full transition
    # pure pursuit (the same law the agent drives with)
    lookahead_gain_s: float = 0.5  # [s]
    min_lookahead_m: float = 5.0  # [m]
    max_lookahead_m: float = 25.0  # [m]
    # scoring
    safety_length_m: float = 1.0  # [m] ego box grown by this for the collision check
    safety_width_m: float = 0.4  # [m]
    lane_margin_m: float = 0.3  # [m] an object this close to the path's swept width is "in lane"
    ttc_good_s: float = 3.0  # [s] time-to-collision at and above which the TTC score is 1
    ttc_bad_s: float = 1.0  # [s] ... and at and below which it is 0
    unsafe_follower_decel_mps2: float = 3.0  # [m/s^2] MOBIL's b_safe
    weights: dict = field(default_factory=lambda: {
        "progress": 5.0, "ttc": 5.0, "comfort": 2.0, "route": 3.0, "keep_lane": 1.0})

    @property
    def steps(self) -> int:
        return int(round(self.horizon_s / self.step_s))

    def transition_length_m(self, speed_mps, offset_m):
        """Length [m] of the way onto a path from ``offset_m`` away: none within
        ``transition_from_m`` (lane keeping stays stiff), the full
        ``max(min_transition_m, speed x transition_time_s)`` from ``transition_full_m`` on
        (a lane change), linear between."""
        full = np.maximum(self.min_transition_m, np.asarray(speed_mps) * self.transition_time_s)
        share = np.clip((np.abs(offset_m) - self.transition_from_m)
                        / (self.transition_full_m - self.transition_from_m), 0.0, 1.0)
        return full * share


@dataclass(frozen=True)
class PathOption:
    """One reference path offered to the planner."""

    path: ReferencePath
    s_m: float  # ego's arc length on it now (rear-axle projection)
    lane_change: int  # 0 keep the current lane, -1 / +1 move to the left / right neighbour
    on_route: bool  # the corridor stays on the route's roads
    previous: bool = False  # the path the previous decision chose (commitment)
    d_m: float = 0.0  # the rear axle's offset from it now, left positive
    heading_error_rad: float = 0.0  # the car's heading minus the path's, at s_m


@dataclass(frozen=True)
class EgoState:
    x_m: float
    y_m: float
    heading_rad: float
    speed_mps: float
    acceleration_mps2: float = 0.0  # [m/s^2] the last command (for jerk)
    length_m: float = VEHICLE_LENGTH_M
    width_m: float = VEHICLE_WIDTH_M


@dataclass
class Plan:
    """The chosen trajectory, every candidate, and why the winner won."""

    best: int  # index into the candidate arrays
    acceleration_mps2: float  # first command of the best candidate
    steering_rad: float
    target_speed_mps: np.ndarray  # [C] each candidate's desired speed (0: the stop candidate)
    path_index: np.ndarray  # [C] index into the path options
    trajectory_m: np.ndarray  # [C, T+1, 2] every candidate's rollout
    speed_mps: np.ndarray  # [C, T+1]
    heading_rad: np.ndarray  # [C, T+1]
    accelerations_mps2: np.ndarray  # [C, T] commanded in the rollout
    steerings_rad: np.ndarray  # [C, T]
    scores: dict[str, np.ndarray]  # [C] each term, plus "total"
    times_s: np.ndarray  # [T+1]

    @property
    def best_trajectory_m(self) -> np.ndarray:
        return self.trajectory_m[self.best]


def _speed_profile(path: ReferencePath, lateral_accel: float, decel: float) -> np.ndarray:
    """Speed cap [m/s] along a path: the lane's limit and the curvature limit, lowered so
    a car braking at ``decel`` reaches each curve at its limit."""
    v_curve = np.sqrt(lateral_accel / np.maximum(np.abs(path.curvature_1pm), 1e-6))
    v2 = np.minimum(v_curve, path.speed_limit_mps) ** 2
    s = np.arange(len(v2)) * path.spacing_m
    # v(s)^2 = min_{j >= i} (v_j^2 + 2 b (s_j - s_i)): a reversed running minimum
    reach = np.minimum.accumulate((v2 + 2 * decel * s)[::-1])[::-1] - 2 * decel * s
    return np.sqrt(np.maximum(reach, 0.0))


def boxes_overlap(c1: np.ndarray, h1: np.ndarray, l1, w1, c2: np.ndarray, h2: np.ndarray,
                  l2, w2) -> np.ndarray:
    """Separating-axis test of oriented boxes, one pair per row: centres ``[N, 2]``,
    headings ``[N]``, lengths and widths ``[N]`` or scalars [m, rad]."""
    dx, dy = c2[:, 0] - c1[:, 0], c2[:, 1] - c1[:, 1]
    ca, sa, cb, sb = np.cos(h1), np.sin(h1), np.cos(h2), np.sin(h2)
    cos_ab = np.abs(ca * cb + sa * sb)  # |u1 . u2| = |v1 . v2|
    sin_ab = np.abs(sa * cb - ca * sb)  # |u1 . v2| = |v1 . u2|
    hl1, hw1, hl2, hw2 = l1 / 2, w1 / 2, l2 / 2, w2 / 2
    return ((np.abs(dx * ca + dy * sa) <= hl1 + hl2 * cos_ab + hw2 * sin_ab)  # along u1
            & (np.abs(-dx * sa + dy * ca) <= hw1 + hl2 * sin_ab + hw2 * cos_ab)  # along v1
            & (np.abs(dx * cb + dy * sb) <= hl2 + hl1 * cos_ab + hw1 * sin_ab)  # along u2
            & (np.abs(-dx * sb + dy * cb) <= hw2 + hl1 * sin_ab + hw1 * cos_ab))  # along v2


class Planner:
    """Stateless per decision except for per-path speed profiles (cached per episode)."""

    def __init__(self, config: PlannerConfig | None = None) -> None:
        self.config = config or PlannerConfig()
        self._profiles: dict[int, tuple[ReferencePath, np.ndarray]] = {}

    def reset(self) -> None:
        self._profiles.clear()

    def _profile(self, path: ReferencePath) -> np.ndarray:
        hit = self._profiles.get(id(path))
        if hit is None or hit[0] is not path:
            c = self.config
            hit = (path, _speed_profile(path, c.lateral_accel_mps2, c.idm_decel_mps2))
            self._profiles[id(path)] = hit
        return hit[1]

    def plan(self, ego: EgoState, options: Sequence[PathOption], forecast: Forecast,
             longitudinal: bool = True) -> Plan:
        if not options:
            raise ValueError("the planner needs at least one reference path")
        c = self.config
        T = c.steps
        times = np.arange(T + 1) * c.step_s
        half_l = ego.length_m / 2

        # -- candidates -------------------------------------------------------------------
        fractions = list(c.speed_fractions) + ([0.0] if c.stop_candidate else [])
        if not longitudinal:
            fractions = [1.0]
        pidx = np.repeat(np.arange(len(options)), len(fractions))
        frac = np.tile(np.asarray(fractions, dtype=np.float64), len(options))
        C = len(pidx)

        # each path cropped to the window the rollout can reach, padded to one width
        reach_m = max(ego.speed_mps, 5.0) * c.horizon_s + 0.5 * c.idm_accel_mps2 * c.horizon_s ** 2 \
            + c.max_lookahead_m + 60.0
        win = int(np.ceil(reach_m / options[0].path.spacing_m)) + 30
        xy = np.empty((len(options), win, 2))
        tan = np.empty((len(options), win, 2))
        vcap = np.empty((len(options), win))
        s_base = np.empty(len(options))
        s_end = np.empty(len(options))  # local s of the corridor's end [m]
        dead = np.array([o.path.dead_end for o in options])
        spacing = options[0].path.spacing_m
        for k, o in enumerate(options):
            p = o.path
            i0 = int(max(0, np.floor(o.s_m / p.spacing_m) - 20))
            i1 = min(len(p.xy_m), i0 + win)
            n = i1 - i0
            xy[k, :n], tan[k, :n] = p.xy_m[i0:i1], p.tangent[i0:i1]
            prof = self._profile(p)
            vcap[k, :n] = prof[i0:i1]
            if n < win:  # straight on past the end
                ext = np.arange(1, win - n + 1)[:, None] * p.spacing_m
                xy[k, n:] = p.xy_m[i1 - 1] + ext * p.tangent[i1 - 1]
                tan[k, n:] = p.tangent[i1 - 1]
                vcap[k, n:] = prof[i1 - 1]
            s_base[k] = i0 * p.spacing_m
            s_end[k] = (len(p.xy_m) - 1 - i0) * p.spacing_m
        # flat per-sample arrays (x, y, tangent and their increments to the next sample), so
        # one gather per quantity evaluates every candidate's own path
        fx, fy = xy[..., 0].reshape(-1), xy[..., 1].reshape(-1)
        ftx, fty = tan[..., 0].reshape(-1), tan[..., 1].reshape(-1)
        dfx, dfy = np.diff(fx, append=fx[-1]), np.diff(fy, append=fy[-1])
        dtx, dty = np.diff(ftx, append=ftx[-1]), np.diff(fty, append=fty[-1])
        flat_v = vcap.reshape(-1)
        base = pidx * win
        inv_sp = 1.0 / spacing
        top = win - 1.000001

        base2 = np.concatenate([base, base])

        def frame(s_local: np.ndarray):
            """Centre and unit tangent of each candidate's path at ``s_local`` ([C] or [2C])."""
            f = np.minimum(np.maximum(s_local * inv_sp, 0.0), top)
            i = f.astype(np.int64)
            u = f - i
            j = (base if len(s_local) == len(base) else base2) + i
            tx, ty = ftx[j] + u * dtx[j], fty[j] + u * dty[j]
            n = np.sqrt(tx * tx + ty * ty)
            return fx[j] + u * dfx[j], fy[j] + u * dfy[j], tx / n, ty / n

        # -- objects on each path (Frenet, constant velocity along it) for IDM ---------------
        K = len(forecast.id)
        if K:  # only objects that can come near within the horizon
            dist = np.linalg.norm(forecast.position_m - np.array([ego.x_m, ego.y_m]), axis=-1).min(axis=1)
            keep = dist < reach_m + 20.0
            forecast = Forecast(forecast.times_s, forecast.position_m[keep], forecast.heading_rad[keep],
                                forecast.speed_mps[keep], forecast.length_m[keep], forecast.width_m[keep],
                                forecast.id[keep])
            K = int(keep.sum())
        if K:
            obj_pos0 = forecast.position_m[:, 0]
            obj_vel = forecast.speed_mps[:, None] * np.stack(
                [np.cos(forecast.heading_rad[:, 0]), np.sin(forecast.heading_rad[:, 0])], axis=-1)
        obj_s = np.zeros((len(options), K))
        obj_d = np.zeros((len(options), K))
        obj_vs = np.zeros((len(options), K))
        obj_vd = np.zeros((len(options), K))
        for k, o in enumerate(options):
            if not K:
                break
            sk, dk = o.path.project(obj_pos0, s_guess_m=np.full(K, o.s_m), window_m=reach_m)
            _, t_obj = o.path.frame(sk)
            obj_s[k], obj_d[k] = sk - s_base[k], dk
            obj_vs[k] = np.einsum("ij,ij->i", obj_vel, t_obj)
            obj_vd[k] = obj_vel[:, 1] * t_obj[:, 0] - obj_vel[:, 0] * t_obj[:, 1]
        half_w_sum = (forecast.width_m + ego.width_m) / 2 + c.lane_margin_m if K else np.zeros(0)
        half_l_sum = (forecast.length_m + ego.length_m) / 2 if K else np.zeros(0)

        # -- rollout ------------------------------------------------------------------------
        x, y = np.full(C, ego.x_m), np.full(C, ego.y_m)
        h, v = np.full(C, ego.heading_rad), np.full(C, max(ego.speed_mps, 0.0))
        s0_local = np.array([options[p].s_m for p in pidx]) - s_base[pidx]
        blend_d0 = np.array([options[p].d_m for p in pidx])
        blend_slope = np.tan(np.clip([options[p].heading_error_rad for p in pidx], -1.0, 1.0))
        blend_len = c.transition_length_m(max(ego.speed_mps, 0.0), blend_d0)
        # planning.lanes.hermite_offset, with its per-candidate constants hoisted
        blend_inv_len = np.where(blend_len > 1e-6, 1.0 / np.maximum(blend_len, 1e-6), 1e9)
        blend_m0 = np.clip(blend_slope, -1.0, 1.0) * blend_len
        s = s0_local.copy()  # rear axle, local
        X = np.empty((C, T + 1)); Y = np.empty((C, T + 1))
        H = np.empty((C, T + 1)); V = np.empty((C, T + 1))
        A = np.empty((C, T)); D = np.empty((C, T))
        X[:, 0], Y[:, 0], H[:, 0], V[:, 0] = x, y, h, v
        min_ttc = np.full(C, np.inf)
        os_c, od_c = obj_s[pidx], obj_d[pidx]  # [C, K]
        ovs_c, ovd_c = obj_vs[pidx], obj_vd[pidx]
        cap0 = flat_v[base + np.minimum(np.maximum((s * inv_sp).astype(np.int64), 0), win - 1)]  # [m/s] here
        stop = frac == 0.0
        dead_c, s_end_c = dead[pidx], s_end[pidx]
        rows = np.arange(C)
        idm_sqrt_ab2 = 2 * np.sqrt(c.idm_accel_mps2 * c.idm_decel_mps2)
        wheelbase2 = 2.0 * ego.length_m
        max_steer = np.pi / 4
        if K and longitudinal:  # objects along each candidate's path at every step: [T, C, K]
            so_all = os_c[None] + ovs_c[None] * times[:T, None, None]
            in_lane_all = np.abs(od_c[None] + ovd_c[None] * times[:T, None, None]) < half_w_sum
            g_all = so_all - half_l_sum  # gap = this - the ego's centre s
        any_dead, any_stop = bool(dead_c.any()), bool(stop.any())
        for k in range(T):
            rx, ry = x - half_l * np.cos(h), y - half_l * np.sin(h)
            ld = np.minimum(np.maximum(c.lookahead_gain_s * v, c.min_lookahead_m), c.max_lookahead_m)
            # one lookup for the foot point (at the predicted s) and the look-ahead point; the
            # Gauss-Newton correction below is centimetres, so the look-ahead point keeps it
            fcx, fcy, ftx_, fty_ = frame(np.concatenate([s, s + ld]))
            s = s + (rx - fcx[:C]) * ftx_[:C] + (ry - fcy[:C]) * fty_[:C]
            # the look-ahead point on the way onto the path (planning.lanes.BlendedPath)
            u = np.minimum(np.maximum((s + ld - s0_local) * blend_inv_len, 0.0), 1.0)
            u2 = u * u
            off = blend_d0 * (2 * u2 * u - 3 * u2 + 1) + blend_m0 * (u2 * u - 2 * u2 + u)
            gx, gy = fcx[C:] - off * fty_[C:], fcy[C:] + off * ftx_[C:]
            # pure pursuit (planning.control.pure_pursuit_steering, inlined for speed)
            ex, ey = gx - rx, gy - ry
            alpha = np.arctan2(ey, ex) - h
            steer = np.arctan(wheelbase2 * np.sin(alpha) / np.maximum(np.sqrt(ex * ex + ey * ey), 1e-3))
            steer = np.minimum(np.maximum(steer, -max_steer), max_steer)
            D[:, k] = steer
            if longitudinal:
                cap = flat_v[base + np.minimum(np.maximum((s * inv_sp).astype(np.int64), 0), win - 1)]
                v0 = np.maximum(frac * cap, 0.1)  # a fraction of the speed this spot allows
                centre = s + half_l  # rear axle -> centre
                if K:
                    g = np.where(in_lane_all[k] & (so_all[k] > centre[:, None]),
                                 g_all[k] - centre[:, None], np.inf)
                    lead = np.argmin(g, axis=1)
                    gap = g[rows, lead]
                    found = gap < np.inf
                    v_lead = np.where(found, ovs_c[rows, lead], 0.0)
                    closing = v - v_lead
                    ttc = np.where((closing > 0.1) & found, np.maximum(gap, 0.0) / np.maximum(closing, 0.1),
                                   np.inf)
                    min_ttc = np.minimum(min_ttc, ttc)
                else:
                    gap, v_lead = np.full(C, np.inf), np.zeros(C)
                if any_dead:
                    dead_gap = s_end_c - (s + ego.length_m) - c.dead_end_margin_m
                    use_dead = dead_c & (dead_gap < gap)
                    gap = np.where(use_dead, dead_gap, gap)
                    v_lead = np.where(use_dead, 0.0, v_lead)
                gap = np.maximum(gap, 0.1)
                s_star = c.idm_min_gap_m + np.maximum(0.0, v * c.idm_headway_s + v * (v - v_lead) / idm_sqrt_ab2)
                # free-road term of the improved IDM (Treiber & Kesting 2013): above the
                # desired speed, ease off at up to b instead of IDM's (v/v0)^4 plunge
                free = np.where(v <= v0, c.idm_accel_mps2 * (1 - (v / v0) ** c.idm_delta),
                                -c.idm_decel_mps2 * (1 - (v0 / np.maximum(v, 1e-6))
                                                     ** (c.idm_accel_mps2 * c.idm_delta / c.idm_decel_mps2)))
                acc = free - c.idm_accel_mps2 * (s_star / gap) ** 2
                if any_stop:
                    acc = np.where(stop, np.minimum(acc, -np.minimum(c.stop_decel_mps2, v / c.step_s)), acc)
                acc = np.minimum(np.maximum(acc, np.maximum(-c.max_brake_mps2, -v / c.step_s)),
                                 c.idm_accel_mps2)  # never reverse
            else:
                acc = np.zeros(C)
            A[:, k] = acc
            # highway-env's bicycle (planning.vehicle.bicycle_step, inlined for speed)
            beta = np.arctan(0.5 * np.tan(steer))
            hb = h + beta
            x = x + v * np.cos(hb) * c.step_s
            y = y + v * np.sin(hb) * c.step_s
            h = h + v * np.sin(beta) / half_l * c.step_s
            s = s + v * np.cos(beta) * c.step_s  # predicted rear-axle progress (corrected next step)
            v = np.minimum(np.maximum(v + acc * c.step_s, 0.0), MAX_SPEED_MPS)
            X[:, k + 1], Y[:, k + 1], H[:, k + 1], V[:, k + 1] = x, y, h, v
        # the final foot point
        rx, ry = x - half_l * np.cos(h), y - half_l * np.sin(h)
        fcx, fcy, ftx_, fty_ = frame(s)
        s = s + (rx - fcx) * ftx_ + (ry - fcy) * fty_
        progress = s - s0_local

        # -- scoring ----------------------------------------------------------------------
        traj = np.stack([X, Y], axis=-1)
        first_hit = np.full(C, np.inf)
        if K:
            fpos, fh = forecast.position_m, forecast.heading_rad  # [K, T+1, 2], [K, T+1]
            fl, fw = forecast.length_m, forecast.width_m
            el, ew = ego.length_m + c.safety_length_m, ego.width_m + c.safety_width_m
            # broad phase: only pairs whose bounding circles touch go to the exact test
            ox = fpos[:, :, 0].T[None]  # [1, T+1, K]
            oy = fpos[:, :, 1].T[None]
            reach2 = ((np.hypot(el, ew) + np.hypot(fl, fw)) / 2) ** 2  # [K]
            close = (X[:, :, None] - ox) ** 2 + (Y[:, :, None] - oy) ** 2 <= reach2
            close[:, 0] = False  # touching now is not something a plan can avoid
            ci, ti, ki = np.nonzero(close)
            if len(ci):
                hit = boxes_overlap(np.stack([X[ci, ti], Y[ci, ti]], -1), H[ci, ti], el, ew,
                                    fpos[ki, ti], fh[ki, ti], fl[ki], fw[ki])
                # at fault: not a car running into our back while we keep our lane
                # (changing lanes in front of one is our fault)
                rel_x = (fpos[ki, ti, 0] - X[ci, ti]) * np.cos(H[ci, ti]) \
                    + (fpos[ki, ti, 1] - Y[ci, ti]) * np.sin(H[ci, ti])
                keeps_lane = np.array([options[p].lane_change == 0 for p in pidx])[ci]
                hit &= ~((rel_x < -half_l) & keeps_lane)
                if hit.any():
                    t_hit = np.full(C, np.inf)
                    np.minimum.at(t_hit, ci[hit], ti[hit] * c.step_s)
                    first_hit = t_hit
        no_collision = ~np.isfinite(first_hit)
        overrun = dead[pidx] & (s + ego.length_m > s_end[pidx])  # s: final rear axle, local
        # MOBIL safety: the new follower in the target lane must not have to brake hard
        safe_change = np.ones(len(options), dtype=bool)
        for k, o in enumerate(options):
            if o.lane_change == 0 or not K:
                continue
            s_ego = o.s_m - s_base[k] + half_l
            behind = (np.abs(obj_d[k]) < half_w_sum) & (obj_s[k] < s_ego)
            for q in np.flatnonzero(behind):
                gap_f = s_ego - obj_s[k, q] - half_l_sum[q]
                vf = max(obj_vs[k, q], 0.0)
                s_star = c.idm_min_gap_m + max(0.0, vf * c.idm_headway_s + vf * (vf - ego.speed_mps)
                                               / (2 * np.sqrt(c.idm_accel_mps2 * c.idm_decel_mps2)))
                acc_f = c.idm_accel_mps2 * (1 - (s_star / max(gap_f, 0.1)) ** 2)
                if gap_f < 0 or acc_f < -c.unsafe_follower_decel_mps2:
                    safe_change[k] = False
        gate = no_collision & ~overrun & safe_change[pidx]

        best_progress = progress[gate].max() if gate.any() else progress.max()
        progress_score = np.clip(progress / best_progress, 0.0, 1.0) if best_progress > 5.0 else np.ones(C)
        ttc_score = np.clip((min_ttc - c.ttc_bad_s) / (c.ttc_good_s - c.ttc_bad_s), 0.0, 1.0)
        kappa = curvature_of_steering(D, ego.length_m)
        v_mid = V[:, :-1]
        jerk = np.diff(np.concatenate([np.full((C, 1), ego.acceleration_mps2), A], axis=1), axis=1) / c.step_s
        comfy = ((A >= LONG_ACCEL_MIN_MPS2) & (A <= LONG_ACCEL_MAX_MPS2)
                 & (np.abs(v_mid ** 2 * kappa) <= LAT_ACCEL_MAX_MPS2)
                 & (np.abs(v_mid * kappa) <= YAW_RATE_MAX_RADPS) & (np.abs(jerk) <= JERK_MAX_MPS3))
        comfort_score = comfy.mean(axis=1)
        route_score = np.array([float(options[p].on_route) for p in pidx])
        keep = np.array([float(options[p].previous if any(o.previous for o in options)
                               else options[p].lane_change == 0) for p in pidx])
        w = c.weights
        weighted = (w["progress"] * progress_score + w["ttc"] * ttc_score + w["comfort"] * comfort_score
                    + w["route"] * route_score + w["keep_lane"] * keep) / sum(w.values())
        total = gate * weighted
        if gate.any():
            best = int(np.argmax(total))
        else:  # everything collides: the latest collision, then the slowest
            key = np.lexsort((V[:, -1], -np.where(np.isfinite(first_hit), first_hit, 1e9)))
            best = int(key[0])
        return Plan(
            best=best, acceleration_mps2=float(A[best, 0]), steering_rad=float(D[best, 0]),
            target_speed_mps=frac * cap0, path_index=pidx, trajectory_m=traj,
            speed_mps=V, heading_rad=H, accelerations_mps2=A, steerings_rad=D, times_s=times,
            scores={"no_collision": no_collision.astype(float), "first_collision_s": first_hit,
                    "no_overrun": (~overrun).astype(float), "safe_lane_change": safe_change[pidx].astype(float),
                    "progress": progress_score, "progress_m": progress, "ttc": ttc_score,
                    "min_ttc_s": min_ttc, "comfort": comfort_score, "route": route_score,
                    "keep_lane": keep, "total": total})
