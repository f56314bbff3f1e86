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
   each point: the scenario's cruise speed, capped by the lane's limit and lowered so
   curves are taken at ``lateral_accel_mps2``), plus a stop candidate per path, plus two
   candidates in the current lane that are always scored, so the argmax can always fall
   back on them: **IDM's own proposal** (highway-env's IDM parameters at the cruise speed,
   what the ``idm`` baseline does when it keeps its lane) and an **emergency brake** at the
   car's braking limit.  Each candidate approaches
   its path from the car's current offset along a cubic transition
   (:func:`planning.lanes.hermite_offset`), so a lane change is a smooth S, not a jump.
2. **Rollout** of all candidates at once for ``horizon_s`` at ``step_s``, with the
   kernels of :mod:`planning.rollout` (the ones the agent's controller drives with):
   pure pursuit steers, the Intelligent Driver Model (Treiber, Hennecke, Helbing 2000;
   above the desired speed its "improved" free-road term, Treiber & Kesting 2013) sets
   the acceleration behind the lead object on that path (and before a dead end), and
   highway-env's kinematic bicycle integrates the motion.  An object leads a candidate
   while it is within the lane band (half the lane width + 1 m, highway-env's
   ``Road.neighbour_vehicles``) of the candidate's path *or* overlaps the line the car
   takes onto that path where it will pass the object, so during a lane change both
   lanes' leads constrain it (highway-env's ``ControlledVehicle`` takes the lower of the
   two lanes' IDM accelerations) until the car has pulled out past them.  Leads
   move by their forecast acceleration (a braking lead is seen stopping).
3. **Score** (nuPlan-style): multiplicative gates - no collision the benchmark would
   count: none with the forecasts (:mod:`planning.prediction`) and none from behind
   (the follower on the candidate's path simulated as highway-env's IDM driver reacting
   to the candidate, :meth:`Planner.rear_end_s`: the driving score counts being
   rear-ended as a collision, so the rear-end risk a plan creates is gated), no driving
   past a dead end, no lane change that makes the new follower brake harder than
   ``unsafe_follower_decel_mps2`` (MOBIL's safety criterion, Kesting et al. 2007, as
   highway-env's ``IDMVehicle.mobil`` computes it) - times a weighted mean of progress
   (relative to the best candidate's), time-to-collision, comfort (nuPlan's bounds),
   staying on the route's lanes and keeping the current lane.
4. **Pick** the best.  If every candidate collides, first an **evasive** pass: the lane
   changes again on a short transition (``evasive_transition_s``: a swerve, not a
   comfortable S), at IDM's speed and at full braking, gated by the collision, rear-end
   and dead-end gates (MOBIL's comfort criterion does not bind an escape).  A car spawned
   metres behind a lead that brakes harder than its own brakes can only escape sideways,
   and a 3 s transition has moved it a few decimetres by the crash (highway-env's IDM
   drivers swerve within about a second).  If the escapes collide too, the candidate,
   escape or not, that collides latest (time to re-plan), then the slowest.

:meth:`Planner.plan` runs these as named steps (:func:`candidate_grid`,
:meth:`PathWindows.crop`, :func:`objects_along_paths`, :meth:`Planner.rollout`,
:meth:`Planner.gates`, :meth:`Planner.rank`); the :class:`Plan` carries the chosen
option and the transition onto it (:attr:`Plan.reference`), which the agent tracks.

Pure numpy, world frame [m, s, rad], no simulator objects.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields, replace

import numpy as np

from planning.comfort import within_comfort_bounds
from planning.kernel import rollout_steps, window_frame, window_speed_cap
from planning.lanes import (
    MAX_TRANSITION_SLOPE,
    MIN_TRANSITION_M,
    BlendedPath,
    LaneMap,
    ReferencePath,
    hermite_offset,
    transition_slope,
)
from planning.prediction import Forecast, ObjectStates, constant_acceleration
from planning.prediction import forecast as forecast_objects
from planning.rollout import (
    IDMParameters,
    idm_acceleration,
)
from planning.vehicle import (
    MAX_STEERING_RAD,
    VEHICLE_LENGTH_M,
    VEHICLE_WIDTH_M,
    curvature_of_steering,
)

# the window of each path the rollout can reach
MIN_REACH_SPEED_MPS = 5.0  # [m/s] the window is sized as if the car drove at least this fast
REACH_MARGIN_M = 60.0  # [m] window beyond the farthest look-ahead point
WINDOW_BEHIND_SAMPLES = 20  # path samples the window starts behind the car
WINDOW_AHEAD_SLACK_SAMPLES = 30  # path samples the window reaches beyond REACH_MARGIN_M
WINDOW_EDGE = 1.000001  # [samples] look-ups stay this far inside the window's last sample
OBJECT_REACH_MARGIN_M = 20.0  # [m] objects farther than the window reach + this are ignored
MIN_CURVATURE_1PM = 1e-6  # [1/m] curvature floor of the curve speed limit (no division by 0)
# IDM in the rollout
MIN_DESIRED_SPEED_MPS = 0.1  # [m/s] floor on a candidate's desired speed (IDM divides by it)
MIN_CLOSING_SPEED_MPS = 0.1  # [m/s] slower closing on the lead is no time-to-collision
STANDSTILL_MPS = 0.5  # [m/s] a follower this slow stands: MOBIL's braking criterion has no hold
NO_TRANSITION_INV_LENGTH_1PM = 1e9  # [1/m] a zero-length transition: on the centre line at once
# ranking
MIN_PROGRESS_TO_RANK_M = 5.0  # [m] below this best progress every candidate scores progress 1
NEVER_COLLIDES_S = 1e9  # [s] first-collision time of a candidate that never collides (for sorting)

# highway-env's driver model (highway_env/vehicle/behavior.py, IDMVehicle): COMFORT_ACC_MAX
# 3 m/s^2, COMFORT_ACC_MIN -5 m/s^2, TIME_WANTED 1.5 s, DISTANCE_WANTED 5 m + LENGTH measured
# centre to centre (a 5 m bumper gap), DELTA 4. The traffic drives with it, so followers are
# simulated with it, and the `idm` baseline's proposal is scored with it.
HIGHWAY_ENV_IDM = IDMParameters(
    accel_mps2=3.0, decel_mps2=5.0, headway_s=1.5, min_gap_m=5.0, delta=4.0
)
HIGHWAY_ENV_ACC_MAX_MPS2 = 6.0  # [m/s^2] IDMVehicle.ACC_MAX: the traffic's acceleration limit
STATIC_KIND = 1  # ObjectStates.kind of a static obstacle (sim's TRUTH_KINDS "obstacle")
# candidate kinds (Plan.kind)
PROPOSAL, STOP, IDM_PROPOSAL, EMERGENCY_BRAKE, EVASIVE = 0, 1, 2, 3, 4
CANDIDATE_KINDS = ("proposal", "stop", "idm", "emergency-brake", "evasive")


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
    idm_candidate: bool = True  # also IDM's own proposal in the current lane (HIGHWAY_ENV_IDM)
    emergency_brake: bool = True  # also full braking (max_brake_mps2) in the current lane
    evasive: bool = True  # when every candidate collides, lane changes on a short transition too
    evasive_transition_s: float = 1.0  # [s] their transition: speed x this (highway-env's drivers
    # complete a lane change in about a second: ControlledVehicle's TAU_LATERAL 0.6 s,
    # TAU_HEADING 0.2 s)
    evasive_min_transition_m: float = 6.0  # [m] ... and at least this long
    # nudging (PDM-Closed's centre lines shifted by +-1 m, Dauner et al. 2023): where a standing
    # object (a crashed car, a parked one) sits partly in the current lane, the lane's centre
    # line shifted away from it by nudge_m is a path too, so the car can squeeze past it in
    # its lane instead of stopping behind it (tuning seed 326 of highway-short:dense stood
    # 7 s behind a crashed car whose corner reached 0.6 m into the lane, with the lane ahead
    # free; idm changed lanes and drove on)
    nudge_m: float = 1.0  # [m] the shift (0: no nudging)
    nudge_standing_mps: float = 0.5  # [m/s] an object slower than this is standing
    nudge_min_object_offset_m: float = 1.0  # [m] ... whose centre is at least this far off
    # the lane's centre line (one centred in the lane cannot be passed inside it)
    nudge_max_curvature_1pm: float = 0.01  # [1/m] only where the lane bends less (100 m
    # radius: the shifted line's arc length is then within 1% of the centre line's)
    lateral_accel_mps2: float = 2.5  # [m/s^2] curvature speed limit v <= sqrt(a / |k|)
    # IDM
    idm_accel_mps2: float = 2.4  # [m/s^2] maximum acceleration a (nuPlan's comfort bound)
    idm_decel_mps2: float = 2.5  # [m/s^2] comfortable deceleration b
    # the car's own following gaps: the IDM's original jam distance s0 = 2 m (Treiber et al.
    # 2000; PDM-Closed uses 1 m) and a 1.0 s time gap, inside the range production ACC offers
    # (ISO 15622 allows settings down to 0.8 s). highway-env's drivers keep 1.5 s and 5 m
    # (HIGHWAY_ENV_IDM, which the followers, MOBIL and the `idm` proposal keep): in a jam each
    # car length of gap is route the benchmark counts. Chosen on tuning seeds 200-249 of
    # highway-short:dense (0.709 -> 0.744), the hazards unchanged there (docs/planner.md)
    idm_headway_s: float = 1.0  # [s] desired time gap T
    idm_min_gap_m: float = 2.0  # [m] jam distance s0, bumper to bumper
    idm_delta: float = 4.0  # acceleration exponent
    static_standoff_m: float = 3.0  # [m] kept behind a static object on top of the jam distance
    # (5 m in all, highway-env's DISTANCE_WANTED): room to steer round it, which a queue's
    # 2 m does not leave (merge:dense seed 201 stopped 2 m behind the on-ramp's end obstacle,
    # pointed at the main road, and no candidate could clear its corner)
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
    lane_band_margin_m: float = 1.0  # [m] an object within half the lane width + this of a lane's
    # centre line is in that lane (highway-env's Road.neighbour_vehicles: lane.on_lane(margin=1))
    overlap_margin_m: float = 0.3  # [m] lateral clearance under which the car's and an object's
    # widths overlap
    progress_terminal_s: float = 4.0  # [s] a candidate's progress counts its final speed held this
    # much longer: the benchmark scores route completion, not the first 4 s, so a lane whose traffic
    # flows beats one that stalls just past the horizon
    ttc_good_s: float = 3.0  # [s] time-to-collision at and above which the TTC score is 1
    ttc_bad_s: float = 1.0  # [s] ... and at and below which it is 0
    unsafe_follower_decel_mps2: float = (
        2.0  # [m/s^2] MOBIL's b_safe (LANE_CHANGE_MAX_BRAKING_IMPOSED)
    )
    collision_commit_s: float = 0.5  # [s] when every candidate collides, stay on the path chosen
    # last time while one of its candidates collides at most this much earlier than the latest
    keep_lane_share_in_lane: float = 1.0  # [-] of the keep-lane weight that staying in lane earns
    # when no lane change is under way (a change under way always keeps the full bonus). At 0.25
    # a change needs about 5% more progress than staying instead of 20% (MOBIL-like eagerness):
    # highway-short 0.992 -> 0.997, but three lane changes in 12 s on a highway seed where the
    # full bonus makes one, so the teacher stays calm (docs/planner.md, section 2)
    weights: dict = field(
        default_factory=lambda: {
            "progress": 5.0,
            "ttc": 5.0,
            "comfort": 2.0,
            "route": 3.0,
            "keep_lane": 1.0,
        }
    )

    @property
    def steps(self) -> int:
        return round(self.horizon_s / self.step_s)

    @property
    def idm(self) -> IDMParameters:
        return IDMParameters(
            self.idm_accel_mps2,
            self.idm_decel_mps2,
            self.idm_headway_s,
            self.idm_min_gap_m,
            self.idm_delta,
        )

    def band_m(self, lane_width_m):
        """[m] how far from a lane's centre line an object is in that lane."""
        return np.asarray(lane_width_m) / 2 + self.lane_band_margin_m

    def transition_length_m(self, speed_mps, offset_m):
        """Length [m] of the way onto a path from ``offset_m`` away: none within
        ``transition_from_m`` (lane keeping stays stiff), the full
        ``max(min_transition_m, speed x transition_time_s)`` from ``transition_full_m`` on
        (a lane change), linear between."""
        full = np.maximum(self.min_transition_m, np.asarray(speed_mps) * self.transition_time_s)
        share = np.clip(
            (np.abs(offset_m) - self.transition_from_m)
            / (self.transition_full_m - self.transition_from_m),
            0.0,
            1.0,
        )
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
    nudge_m: float = 0.0  # the path is its lane's centre line shifted this far left (nudging)


@dataclass(frozen=True)
class EgoState:
    x_m: float
    y_m: float
    heading_rad: float
    speed_mps: float
    acceleration_mps2: float = 0.0  # [m/s^2] the last command (for jerk)
    length_m: float = VEHICLE_LENGTH_M
    width_m: float = VEHICLE_WIDTH_M


def approach_path(option: PathOption, speed_mps: float, config: PlannerConfig) -> BlendedPath:
    """The way onto ``option``'s path from where the car is (the transition the rollout
    steers along for that option; :attr:`Plan.reference` for the chosen one)."""
    return BlendedPath(
        option.path,
        option.s_m,
        option.d_m,
        float(transition_slope(option.heading_error_rad)),
        float(config.transition_length_m(speed_mps, option.d_m)),
    )


@dataclass
class Plan:
    """The chosen trajectory, every candidate, and why the winner won."""

    best: int  # index into the candidate arrays
    acceleration_mps2: float  # first command of the best candidate
    steering_rad: float  # [rad] ... (pure pursuit on ``reference``, at the rollout's first step)
    target_speed_mps: np.ndarray  # [C] each candidate's desired speed (0: the stop candidate)
    path_index: np.ndarray  # [C] index into the path options
    kind: np.ndarray  # [C] index into CANDIDATE_KINDS (proposal, stop, idm, emergency-brake)
    trajectory_m: np.ndarray  # [C, T+1, 2] every candidate's rollout
    speed_mps: np.ndarray  # [C, T+1]
    heading_rad: np.ndarray  # [C, T+1]
    accelerations_mps2: np.ndarray  # [C, T] commanded in the rollout
    steerings_rad: np.ndarray  # [C, T]
    scores: dict[str, np.ndarray]  # [C] each term, plus "total"
    times_s: np.ndarray  # [T+1]
    option: PathOption  # the chosen candidate's path option
    # the line the chosen rollout steered along (onto option.path), for the controller
    reference: BlendedPath

    @property
    def best_trajectory_m(self) -> np.ndarray:
        return self.trajectory_m[self.best]


def speed_profile(path: ReferencePath, lateral_accel: float, decel: float) -> np.ndarray:
    """Speed cap [m/s] along a path: the lane's limit and the curvature limit, lowered so
    a car braking at ``decel`` reaches each curve at its limit."""
    v_curve = np.sqrt(lateral_accel / np.maximum(np.abs(path.curvature_1pm), MIN_CURVATURE_1PM))
    v2 = np.minimum(v_curve, path.speed_limit_mps) ** 2
    s = np.arange(len(v2)) * path.spacing_m
    # v(s)^2 = min_{j >= i} (v_j^2 + 2 b (s_j - s_i)): a reversed running minimum
    reach = np.minimum.accumulate((v2 + 2 * decel * s)[::-1])[::-1] - 2 * decel * s
    return np.sqrt(np.maximum(reach, 0.0))


def boxes_overlap(
    c1: np.ndarray, h1: np.ndarray, l1, w1, c2: np.ndarray, h2: np.ndarray, l2, w2
) -> np.ndarray:
    """Separating-axis test of oriented boxes, one pair per row: centres ``[N, 2]``,
    headings ``[N]``, lengths and widths ``[N]`` or scalars [m, rad]."""
    dx, dy = c2[:, 0] - c1[:, 0], c2[:, 1] - c1[:, 1]
    ca, sa, cb, sb = np.cos(h1), np.sin(h1), np.cos(h2), np.sin(h2)
    cos_ab = np.abs(ca * cb + sa * sb)  # |u1 . u2| = |v1 . v2|
    sin_ab = np.abs(sa * cb - ca * sb)  # |u1 . v2| = |v1 . u2|
    hl1, hw1, hl2, hw2 = l1 / 2, w1 / 2, l2 / 2, w2 / 2
    return (
        (np.abs(dx * ca + dy * sa) <= hl1 + hl2 * cos_ab + hw2 * sin_ab)  # along u1
        & (np.abs(-dx * sa + dy * ca) <= hw1 + hl2 * sin_ab + hw2 * cos_ab)  # along v1
        & (np.abs(dx * cb + dy * sb) <= hl2 + hl1 * cos_ab + hw1 * sin_ab)  # along u2
        & (np.abs(-dx * sb + dy * cb) <= hw2 + hl1 * sin_ab + hw1 * cos_ab)
    )  # along v2


@dataclass(frozen=True)
class Candidates:
    """What each candidate is: ``[C]`` each."""

    path_index: np.ndarray  # into the path options
    speed_fraction: np.ndarray  # of the path's speed cap (0: brakes to a stop)
    kind: np.ndarray  # index into CANDIDATE_KINDS
    brake_mps2: np.ndarray  # [m/s^2] a braking candidate's deceleration (0: IDM alone)
    idm: IDMParameters  # the IDM each candidate drives with, fields [C]

    def __len__(self) -> int:
        return len(self.path_index)


def candidate_grid(
    options: Sequence[PathOption], config: PlannerConfig, longitudinal: bool
) -> Candidates:
    """Path options x desired-speed fractions (0: the stop candidate), then IDM's own
    proposal and the emergency brake on the current lane's option (the first that keeps the
    lane); steering-only tasks get one candidate per path."""
    c = config
    n = len(options)
    fractions = list(c.speed_fractions) + ([0.0] if c.stop_candidate else [])
    if not longitudinal:
        fractions = [1.0]
    path_index = np.repeat(np.arange(n), len(fractions))
    fraction = np.tile(np.asarray(fractions, dtype=np.float64), n)
    kind = np.where(fraction == 0.0, STOP, PROPOSAL)
    brake = np.where(fraction == 0.0, c.stop_decel_mps2, 0.0)
    if longitudinal:
        keep = next((k for k, o in enumerate(options) if o.lane_change == 0), 0)
        extra = [(IDM_PROPOSAL, 1.0, 0.0)] if c.idm_candidate else []
        extra += [(EMERGENCY_BRAKE, 0.0, c.max_brake_mps2)] if c.emergency_brake else []
        for k_, f_, b_ in extra:
            path_index = np.append(path_index, keep)
            fraction = np.append(fraction, f_)
            kind = np.append(kind, k_)
            brake = np.append(brake, b_)
    own = c.idm
    hw = kind == IDM_PROPOSAL
    idm = IDMParameters(
        *(
            np.where(hw, getattr(HIGHWAY_ENV_IDM, f), getattr(own, f))
            for f in ("accel_mps2", "decel_mps2", "headway_s", "min_gap_m")
        ),
        delta=own.delta
        if own.delta == HIGHWAY_ENV_IDM.delta or not hw.any()
        else np.where(hw, HIGHWAY_ENV_IDM.delta, own.delta),
    )
    return Candidates(path_index, fraction, kind, brake, idm)


@dataclass
class PathWindows:
    """Every option's path cropped to the window the rollout can reach, padded to one
    width and flattened (x, y, tangent and their increments to the next sample, the
    speed cap), so one gather per quantity evaluates every candidate's own path."""

    reach_m: float  # [m] how far the rollout can get, look-ahead included
    width: int  # samples per window
    spacing_m: float  # [m] between samples
    s_base_m: np.ndarray  # [P] path arc length of each window's first sample
    s_end_m: np.ndarray  # [P] window-local arc length of each corridor's end
    dead_end: np.ndarray  # [P] bool
    x_m: np.ndarray  # [P * width] flat
    y_m: np.ndarray
    tx: np.ndarray
    ty: np.ndarray
    dx_m: np.ndarray
    dy_m: np.ndarray
    dtx: np.ndarray
    dty: np.ndarray
    speed_cap_mps: np.ndarray

    @classmethod
    def crop(
        cls,
        options: Sequence[PathOption],
        ego: EgoState,
        config: PlannerConfig,
        profile: Callable[[ReferencePath], np.ndarray],
    ) -> PathWindows:
        """``profile(path)`` gives a path's speed cap per sample."""
        c = config
        reach_m = (
            max(ego.speed_mps, MIN_REACH_SPEED_MPS) * c.horizon_s
            + 0.5 * c.idm_accel_mps2 * c.horizon_s**2
            + c.max_lookahead_m
            + REACH_MARGIN_M
        )
        win = int(np.ceil(reach_m / options[0].path.spacing_m)) + WINDOW_AHEAD_SLACK_SAMPLES
        xy = np.empty((len(options), win, 2))
        tan = np.empty((len(options), win, 2))
        vcap = np.empty((len(options), win))
        s_base = np.empty(len(options))
        s_end = np.empty(len(options))
        for k, o in enumerate(options):
            p = o.path
            i0 = int(max(0, np.floor(o.s_m / p.spacing_m) - WINDOW_BEHIND_SAMPLES))
            i1 = min(len(p.xy_m), i0 + win)
            n = i1 - i0
            xy[k, :n], tan[k, :n] = p.xy_m[i0:i1], p.tangent[i0:i1]
            prof = profile(p)
            vcap[k, :n] = prof[i0:i1]
            if n < win:  # straight on past the end
                ext = np.arange(1, win - n + 1)[:, None] * p.spacing_m
                xy[k, n:] = p.xy_m[i1 - 1] + ext * p.tangent[i1 - 1]
                tan[k, n:] = p.tangent[i1 - 1]
                vcap[k, n:] = prof[i1 - 1]
            s_base[k] = i0 * p.spacing_m
            s_end[k] = (len(p.xy_m) - 1 - i0) * p.spacing_m
        fx, fy = xy[..., 0].reshape(-1), xy[..., 1].reshape(-1)
        ftx, fty = tan[..., 0].reshape(-1), tan[..., 1].reshape(-1)
        return cls(
            reach_m=reach_m,
            width=win,
            spacing_m=options[0].path.spacing_m,
            s_base_m=s_base,
            s_end_m=s_end,
            dead_end=np.array([o.path.dead_end for o in options]),
            x_m=fx,
            y_m=fy,
            tx=ftx,
            ty=fty,
            dx_m=np.diff(fx, append=fx[-1]),
            dy_m=np.diff(fy, append=fy[-1]),
            dtx=np.diff(ftx, append=ftx[-1]),
            dty=np.diff(fty, append=fty[-1]),
            speed_cap_mps=vcap.reshape(-1),
        )

    def frame(self, base: np.ndarray, s_local_m: np.ndarray):
        """Centre ``(x, y)`` and unit tangent ``(tx, ty)`` at window-local ``s_local_m``
        on the windows starting at flat index ``base`` (same shape)."""
        return window_frame(
            self.x_m,
            self.y_m,
            self.tx,
            self.ty,
            self.dx_m,
            self.dy_m,
            self.dtx,
            self.dty,
            1.0 / self.spacing_m,
            self.width - WINDOW_EDGE,
            base,
            s_local_m,
        )

    def speed_cap(self, base: np.ndarray, s_local_m: np.ndarray) -> np.ndarray:
        """The path's speed cap [m/s] at the sample at or behind ``s_local_m``."""
        return window_speed_cap(
            self.speed_cap_mps, 1.0 / self.spacing_m, self.width, base, s_local_m
        )


def near_objects(forecast: Forecast, ego: EgoState, reach_m: float) -> Forecast:
    """Only the objects that can come near within the horizon."""
    if not len(forecast.id):
        return forecast
    dist = np.linalg.norm(forecast.position_m - np.array([ego.x_m, ego.y_m]), axis=-1).min(axis=1)
    keep = dist < reach_m + OBJECT_REACH_MARGIN_M
    return Forecast(
        forecast.times_s,
        forecast.position_m[keep],
        forecast.heading_rad[keep],
        forecast.speed_mps[keep],
        forecast.length_m[keep],
        forecast.width_m[keep],
        forecast.id[keep],
        acceleration_mps2=forecast.acceleration_mps2[keep],
        kind=forecast.kind[keep],
    )


@dataclass
class ObjectsAlongPaths:
    """Each object in each option's Frenet frame now (window-local ``s``), moving along the
    path at its forecast acceleration and across it at constant velocity: ``[P, K]`` each."""

    s_m: np.ndarray
    d_m: np.ndarray
    vs_mps: np.ndarray  # along the path
    vd_mps: np.ndarray  # across it, left positive
    as_mps2: np.ndarray  # acceleration along the path
    band_m: (
        np.ndarray
    )  # [P] an object this close (laterally) to the path's centre line is in its lane
    overlap_m: np.ndarray  # [K] an object this close (laterally) to the car's line overlaps it
    half_length_sum_m: np.ndarray  # [K] centre-to-centre length of the ego and the object, halved
    length_m: np.ndarray  # [K]
    standoff_m: np.ndarray  # [K] kept on top of IDM's gap behind it (static objects)
    standing: np.ndarray  # [K] bool: slower than nudge_standing_mps now and over the horizon

    def __len__(self) -> int:
        return self.s_m.shape[1]


def objects_along_paths(
    options: Sequence[PathOption],
    forecast: Forecast,
    ego: EgoState,
    windows: PathWindows,
    config: PlannerConfig,
) -> ObjectsAlongPaths:
    K = len(forecast.id)
    obj_s = np.zeros((len(options), K))
    obj_d = np.zeros((len(options), K))
    obj_vs = np.zeros((len(options), K))
    obj_vd = np.zeros((len(options), K))
    obj_as = np.zeros((len(options), K))
    if K:
        obj_pos0 = forecast.position_m[:, 0]
        obj_dir = np.stack(
            [np.cos(forecast.heading_rad[:, 0]), np.sin(forecast.heading_rad[:, 0])], axis=-1
        )
        obj_vel = forecast.speed_mps[:, None] * obj_dir
        for k, o in enumerate(options):
            sk, dk = o.path.project(obj_pos0, s_guess_m=np.full(K, o.s_m), window_m=windows.reach_m)
            _, t_obj = o.path.frame(sk)
            obj_s[k], obj_d[k] = sk - windows.s_base_m[k], dk
            obj_vs[k] = np.einsum("ij,ij->i", obj_vel, t_obj)
            obj_vd[k] = obj_vel[:, 1] * t_obj[:, 0] - obj_vel[:, 0] * t_obj[:, 1]
            # the acceleration acts along the object's heading: its share along the path
            obj_as[k] = forecast.acceleration_mps2 * np.einsum("ij,ij->i", obj_dir, t_obj)
    # a nudge's band is its lane's, narrowed on both sides by the shift: as far into the
    # neighbour lane on the side it moves to as the lane's own band reaches, and not over the
    # standing object on the other side that it is there to pass
    band = config.band_m(np.array([o.path.width_m for o in options])) - np.array(
        [abs(o.nudge_m) for o in options]
    )
    half_l_sum = (forecast.length_m + ego.length_m) / 2 if K else np.zeros(0)
    overlap = (forecast.width_m + ego.width_m) / 2 + config.overlap_margin_m if K else np.zeros(0)
    return ObjectsAlongPaths(
        obj_s,
        obj_d,
        obj_vs,
        obj_vd,
        obj_as,
        band,
        overlap,
        half_l_sum,
        np.asarray(forecast.length_m, dtype=np.float64),
        np.where(np.asarray(forecast.kind) == STATIC_KIND, config.static_standoff_m, 0.0),
        np.asarray(forecast.speed_mps, dtype=np.float64)
        + np.maximum(forecast.acceleration_mps2, 0.0) * config.horizon_s
        < config.nudge_standing_mps,
    )


@dataclass
class Rollout:
    """Every candidate simulated over the horizon."""

    x_m: np.ndarray  # [C, T+1]
    y_m: np.ndarray
    heading_rad: np.ndarray
    speed_mps: np.ndarray
    accelerations_mps2: np.ndarray  # [C, T] commanded
    steerings_rad: np.ndarray  # [C, T]
    min_ttc_s: np.ndarray  # [C] time-to-collision with the lead on its path
    progress_m: np.ndarray  # [C] rear-axle progress along its path
    final_s_m: np.ndarray  # [C] final rear-axle position, window-local
    s_m: np.ndarray  # [C, T+1] rear-axle position along its path at each step, window-local
    cap0_mps: np.ndarray  # [C] the path's speed cap where the car is now
    d_m: np.ndarray  # [C, T+1] the car's planned offset from its path at each step (the
    # transition's offset where the rear axle is, planning.lanes.hermite_offset), left positive


@dataclass
class RolloutInputs:
    """Per candidate, what the rollout's step loop needs (:meth:`Planner.rollout_inputs`)."""

    base: np.ndarray  # [C] flat index of the candidate's path window
    s0_local_m: np.ndarray  # [C] the rear axle's window-local arc length now
    blend_d0_m: np.ndarray  # [C] the way onto the path: offset now
    blend_m0_m: np.ndarray  # [C] ... its Hermite tangent term (slope x length)
    blend_inv_len_1pm: np.ndarray  # [C] ... 1 / its length
    dead_end: np.ndarray  # [C] bool: the path's corridor ends
    s_end_m: np.ndarray  # [C] window-local arc length of that end
    so_m: np.ndarray  # [T, C, K] each object's arc length along the candidate's path at each step
    gap_base_m: np.ndarray  # [T, C, K] ... less the half lengths (inf: not in the candidate's way)
    vs_mps: np.ndarray  # [T, C, K] ... its speed along the path


def concatenate_rollouts(a: Rollout, b: Rollout) -> Rollout:
    """``a``'s candidates, then ``b``'s."""
    return Rollout(
        **{
            f.name: np.concatenate([getattr(a, f.name), getattr(b, f.name)])
            for f in fields(Rollout)
        }
    )


def gated_in(scores: dict[str, np.ndarray]) -> np.ndarray:
    """``[C]`` the candidates that pass every gate."""
    return (
        scores["no_collision"]
        * scores["no_rear_end"]
        * scores["no_overrun"]
        * scores["safe_lane_change"]
    ) > 0


def transition_offset_m(ds_m: np.ndarray, r: RolloutInputs) -> np.ndarray:
    """``[C, N]`` the offset of each candidate's way onto its path ``ds_m`` [C, N] along it
    from the car: :func:`planning.lanes.hermite_offset`, its slope and length recovered from
    the rollout's hoisted constants (past the transition, on the centre line)."""
    length = 1.0 / r.blend_inv_len_1pm
    return hermite_offset(
        ds_m, r.blend_d0_m[:, None], (r.blend_m0_m / length)[:, None], length[:, None]
    )


class Planner:
    """Stateless per decision except for per-path speed profiles (cached per episode)."""

    def __init__(self, config: PlannerConfig | None = None) -> None:
        self.config = config or PlannerConfig()
        self._profiles: dict[int, tuple[ReferencePath, np.ndarray]] = {}
        self._shifted: dict[tuple[int, float], tuple[ReferencePath, ReferencePath]] = {}

    def reset(self) -> None:
        self._profiles.clear()
        self._shifted.clear()

    def profile(self, path: ReferencePath) -> np.ndarray:
        """``path``'s speed cap per sample [m/s] (cached)."""
        hit = self._profiles.get(id(path))
        if hit is None or hit[0] is not path:
            c = self.config
            hit = (path, speed_profile(path, c.lateral_accel_mps2, c.idm_decel_mps2))
            self._profiles[id(path)] = hit
        return hit[1]

    def plan(
        self,
        ego: EgoState,
        options: Sequence[PathOption],
        forecast: Forecast,
        longitudinal: bool = True,
        cruise_speed_mps: float | None = None,
    ) -> Plan:
        """The best candidate for ``ego`` on ``options`` among the ``forecast`` objects;
        ``cruise_speed_mps``: the speed the scenario asks for (None: the lanes' limits)."""
        if not options:
            raise ValueError("the planner needs at least one reference path")
        c = self.config
        times = np.arange(c.steps + 1) * c.step_s
        profile = (
            self.profile
            if cruise_speed_mps is None
            else (lambda path: np.minimum(self.profile(path), cruise_speed_mps))
        )
        windows = PathWindows.crop(options, ego, c, profile)
        forecast = near_objects(forecast, ego, windows.reach_m)
        objects = objects_along_paths(options, forecast, ego, windows, c)
        nudges = self.nudges(options, objects, windows) if longitudinal else []
        if nudges:  # after every lane option: the current lane's stays the IDM proposal's
            options = [*options, *nudges]
            windows = PathWindows.crop(options, ego, c, profile)
            objects = objects_along_paths(options, forecast, ego, windows, c)
        cands = candidate_grid(options, c, longitudinal)
        path_index, fraction = cands.path_index, cands.speed_fraction
        roll = self.rollout(ego, options, cands, windows, objects, times, longitudinal)
        gates = self.gates(ego, options, path_index, roll, forecast, windows, objects)
        scores = self.rank(ego, options, path_index, roll, gates)
        kind = cands.kind
        reference_config = c
        if longitudinal and c.evasive and not gated_in(scores).any():
            escape = self.evade(ego, options, windows, objects, forecast, times)
            if escape is not None:  # every candidate, then the escapes
                ev_cands, ev_roll, ev_scores = escape
                path_index = np.concatenate([path_index, ev_cands.path_index])
                fraction = np.concatenate([fraction, ev_cands.speed_fraction])
                kind = np.concatenate([kind, ev_cands.kind])
                roll = concatenate_rollouts(roll, ev_roll)
                scores = {k: np.concatenate([scores[k], ev_scores[k]]) for k in scores}
                reference_config = self.evasive_config
        previous = np.array([options[p].previous for p in path_index])
        best = self.pick(scores, roll, previous, c.collision_commit_s)
        option = options[int(path_index[best])]
        return Plan(
            best=best,
            acceleration_mps2=float(roll.accelerations_mps2[best, 0]),
            steering_rad=float(roll.steerings_rad[best, 0]),
            target_speed_mps=fraction * roll.cap0_mps,
            path_index=path_index,
            kind=kind,
            trajectory_m=np.stack([roll.x_m, roll.y_m], axis=-1),
            speed_mps=roll.speed_mps,
            heading_rad=roll.heading_rad,
            accelerations_mps2=roll.accelerations_mps2,
            steerings_rad=roll.steerings_rad,
            times_s=times,
            scores=scores,
            option=option,
            reference=approach_path(option, ego.speed_mps, reference_config),
        )

    def nudges(
        self, options: Sequence[PathOption], objects: ObjectsAlongPaths, windows: PathWindows
    ) -> list[PathOption]:
        """The current lane's centre line shifted ``nudge_m`` away from each side on which a
        standing object sits partly in the lane (its centre within the lane band, at least
        ``nudge_min_object_offset_m`` off the centre line), ahead of the car or beside it, on a
        lane that bends less than ``nudge_max_curvature_1pm`` there. Scored like any option:
        the collision gate (the boxes, not the band) decides whether the car fits past."""
        c = self.config
        k = next((i for i, o in enumerate(options) if o.lane_change == 0 and not o.nudge_m), None)
        if k is None or c.nudge_m <= 0.0 or not len(objects):
            return []
        o = options[k]
        s_car = o.s_m - windows.s_base_m[k]
        d = objects.d_m[k]
        partly = (
            objects.standing
            & (np.abs(d) < objects.band_m[k])
            & (np.abs(d) >= c.nudge_min_object_offset_m)
            & (objects.s_m[k] > s_car - objects.half_length_sum_m)
        )
        if not partly.any():
            return []
        ahead = o.s_m + np.arange(0.0, windows.reach_m, o.path.spacing_m * 5)
        if np.abs(o.path.lookup(o.path.curvature_1pm, ahead)).max() > c.nudge_max_curvature_1pm:
            return []
        sides = sorted({-1.0 if dk > 0 else 1.0 for dk in d[partly]}, reverse=True)
        return [
            replace(
                o,
                path=self.shifted(o.path, side * c.nudge_m),
                d_m=o.d_m - side * c.nudge_m,
                nudge_m=side * c.nudge_m,
            )
            for side in sides
        ]

    def shifted(self, path: ReferencePath, offset_m: float) -> ReferencePath:
        """``path`` shifted ``offset_m`` to its left, one object per path and offset for the
        episode (so its speed profile is computed once, :meth:`profile`)."""
        key = (id(path), offset_m)
        hit = self._shifted.get(key)
        if hit is None or hit[0] is not path:
            hit = (path, path.shifted(offset_m))
            self._shifted[key] = hit
        return hit[1]

    @property
    def evasive_config(self) -> PlannerConfig:
        """The configuration the evasive candidates are rolled out with: a short transition."""
        c = self.config
        return replace(
            c, transition_time_s=c.evasive_transition_s, min_transition_m=c.evasive_min_transition_m
        )

    def evade(
        self,
        ego: EgoState,
        options: Sequence[PathOption],
        windows: PathWindows,
        objects: ObjectsAlongPaths,
        forecast: Forecast,
        times: np.ndarray,
    ):
        """The evasive pass: every lane change on a short transition, at IDM's speed and at
        full braking, rolled out, gated (collision, rear end, dead end; not MOBIL's comfort
        criterion) and ranked: ``(candidates, rollout, scores)``; None without a lane to
        change to.  They join the candidates that all collide, so :meth:`pick` takes a gated-in
        escape, or else whichever candidate, escape or not, collides latest (time to re-plan)."""
        c = self.config
        changes = [k for k, o in enumerate(options) if o.lane_change != 0]
        if not changes:
            return None
        n = len(changes)
        cands = Candidates(
            path_index=np.repeat(np.asarray(changes), 2),
            speed_fraction=np.tile([1.0, 0.0], n),
            kind=np.full(2 * n, EVASIVE),
            brake_mps2=np.tile([0.0, c.max_brake_mps2], n),
            idm=c.idm,
        )
        swerve = Planner(self.evasive_config)
        roll = swerve.rollout(ego, options, cands, windows, objects, times, True)
        gates = swerve.gates(ego, options, cands.path_index, roll, forecast, windows, objects)
        gates["safe_lane_change"] = np.ones(len(cands), dtype=bool)
        scores = swerve.rank(ego, options, cands.path_index, roll, gates)
        return cands, roll, scores

    # -- rollout --------------------------------------------------------------------------------
    def rollout(
        self,
        ego: EgoState,
        options: Sequence[PathOption],
        cands: Candidates,
        windows: PathWindows,
        objects: ObjectsAlongPaths,
        times: np.ndarray,
        longitudinal: bool,
    ) -> Rollout:
        """Every candidate at once: pure pursuit on its way onto its path, its IDM behind the
        lead object (or a dead end), the bicycle integrating.  The lead is the nearest
        object ahead, at its forecast position and speed, that is within the lane band of
        the path or that the car's way onto the path would overlap where it passes it
        (the lane being left: both lanes' leads during a lane change).  The step loop is
        :func:`planning.kernel.rollout_steps`; this prepares its inputs."""
        c = self.config
        T, C = c.steps, len(cands)
        idm = cands.idm
        r = self.rollout_inputs(ego, options, cands, windows, objects, times, longitudinal)
        # one type signature for the compiled loop (C-contiguous, writeable), so it compiles once
        arr = lambda a, dtype=np.float64: np.require(a, dtype, ("C", "W"))
        per_candidate = lambda value: arr(np.broadcast_to(np.asarray(value, dtype=np.float64), C))
        w = windows
        X, Y, H, V, A, D, S, min_ttc, cap0 = rollout_steps(
            float(ego.x_m),
            float(ego.y_m),
            float(ego.heading_rad),
            float(max(ego.speed_mps, 0.0)),
            float(ego.length_m),
            T,
            float(c.step_s),
            float(c.lookahead_gain_s),
            float(c.min_lookahead_m),
            float(c.max_lookahead_m),
            float(MAX_STEERING_RAD),
            arr(r.base, np.int64),
            *(
                per_candidate(a)
                for a in (r.s0_local_m, r.blend_d0_m, r.blend_m0_m, r.blend_inv_len_1pm)
            ),
            *(
                arr(a)
                for a in (w.x_m, w.y_m, w.tx, w.ty, w.dx_m, w.dy_m, w.dtx, w.dty, w.speed_cap_mps)
            ),
            1.0 / w.spacing_m,
            float(w.width - WINDOW_EDGE),
            int(w.width),
            bool(longitudinal),
            per_candidate(cands.speed_fraction),
            float(MIN_DESIRED_SPEED_MPS),
            *(
                per_candidate(getattr(idm, f))
                for f in (
                    "accel_mps2",
                    "decel_mps2",
                    "headway_s",
                    "min_gap_m",
                    "delta",
                    "two_sqrt_ab_mps2",
                )
            ),
            per_candidate(cands.brake_mps2),
            float(c.max_brake_mps2),
            arr(r.dead_end, np.bool_),
            per_candidate(r.s_end_m),
            float(c.dead_end_margin_m),
            arr(r.so_m),
            arr(r.gap_base_m),
            arr(r.vs_mps),
            float(MIN_CLOSING_SPEED_MPS),
        )
        s = S[:, T]
        return Rollout(
            X,
            Y,
            H,
            V,
            A,
            D,
            min_ttc,
            progress_m=s - r.s0_local_m,
            final_s_m=s,
            cap0_mps=cap0,
            s_m=S,
            d_m=transition_offset_m(S - r.s0_local_m[:, None], r),
        )

    def rollout_inputs(
        self,
        ego: EgoState,
        options: Sequence[PathOption],
        cands: Candidates,
        windows: PathWindows,
        objects: ObjectsAlongPaths,
        times: np.ndarray,
        longitudinal: bool,
    ) -> RolloutInputs:
        """What the step loop needs per candidate, computed once per plan."""
        c = self.config
        pidx = cands.path_index
        T, C, K = c.steps, len(pidx), len(objects)
        s0_local = np.array([options[p].s_m for p in pidx]) - windows.s_base_m[pidx]
        # the way onto each path (planning.lanes.hermite_offset,
        # its per-candidate constants hoisted)
        blend_d0 = np.array([options[p].d_m for p in pidx])
        blend_slope = transition_slope(np.array([options[p].heading_error_rad for p in pidx]))
        blend_len = c.transition_length_m(max(ego.speed_mps, 0.0), blend_d0)
        blend_inv_len = np.where(
            blend_len > MIN_TRANSITION_M,
            1.0 / np.maximum(blend_len, MIN_TRANSITION_M),
            NO_TRANSITION_INV_LENGTH_1PM,
        )
        blend_m0 = np.clip(blend_slope, -MAX_TRANSITION_SLOPE, MAX_TRANSITION_SLOPE) * blend_len
        if K and longitudinal:  # objects along each candidate's path at every step: [T, C, K]
            os_c, od_c, ovd_c = objects.s_m[pidx], objects.d_m[pidx], objects.vd_mps[pidx]
            dist_all, vs_all = constant_acceleration(
                objects.vs_mps[pidx][None], objects.as_mps2[pidx][None], times[:T, None, None]
            )
            so_all = os_c[None] + dist_all
            d_all = od_c[None] + ovd_c[None] * times[:T, None, None]
            on_path_all = np.abs(d_all) < objects.band_m[pidx][None, :, None]
            # where the candidate's way onto its path puts the car when it reaches each object
            # (the transition's offset there): an object it would overlap is in its way even
            # outside the path's lane (the lane being left)
            d_planned = hermite_offset(
                so_all - s0_local[None, :, None],
                blend_d0[None, :, None],
                blend_slope[None, :, None],
                blend_len[None, :, None],
            )
            in_way_all = on_path_all | (np.abs(d_all - d_planned) < objects.overlap_m)
            g_all = np.where(
                in_way_all, so_all - objects.half_length_sum_m - objects.standoff_m, np.inf
            )  # gap = this - the ego's centre s
        else:
            so_all = g_all = vs_all = np.zeros((T, C, 0))
        return RolloutInputs(
            pidx * windows.width,
            s0_local,
            blend_d0,
            blend_m0,
            np.asarray(blend_inv_len),
            windows.dead_end[pidx],
            windows.s_end_m[pidx],
            so_all,
            g_all,
            vs_all,
        )

    # -- gates ----------------------------------------------------------------------------------
    def gates(
        self,
        ego: EgoState,
        options: Sequence[PathOption],
        pidx: np.ndarray,
        roll: Rollout,
        forecast: Forecast,
        windows: PathWindows,
        objects: ObjectsAlongPaths,
    ) -> dict[str, np.ndarray]:
        """The multiplicative gates, ``[C]`` each: no collision with a forecast object, none
        from behind, no overrun of a dead end, a MOBIL-safe lane change; plus each
        candidate's first collision of either kind [s]."""
        first_hit = self.first_collision_s(ego, options, pidx, roll, forecast)
        rear_hit = self.rear_end_s(ego, options, pidx, roll, objects)
        overrun = windows.dead_end[pidx] & (roll.final_s_m + ego.length_m > windows.s_end_m[pidx])
        safe_change = self.safe_lane_changes(ego, options, windows, objects)
        return {
            "no_collision": ~np.isfinite(first_hit),
            "no_rear_end": ~np.isfinite(rear_hit),
            "first_collision_s": np.minimum(first_hit, rear_hit),
            "no_overrun": ~overrun,
            "safe_lane_change": safe_change[pidx],
        }

    def first_collision_s(
        self,
        ego: EgoState,
        options: Sequence[PathOption],
        pidx: np.ndarray,
        roll: Rollout,
        forecast: Forecast,
    ) -> np.ndarray:
        """When each candidate first overlaps a forecast object, at fault [s] (inf: never)."""
        c = self.config
        C, K = len(pidx), len(forecast.id)
        X, Y, H = roll.x_m, roll.y_m, roll.heading_rad
        first_hit = np.full(C, np.inf)
        if not K:
            return first_hit
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
            hit = boxes_overlap(
                np.stack([X[ci, ti], Y[ci, ti]], -1),
                H[ci, ti],
                el,
                ew,
                fpos[ki, ti],
                fh[ki, ti],
                fl[ki],
                fw[ki],
            )
            # a car running into our back while we keep our lane reacts to us: that risk is
            # rear_end_s's, not the constant-velocity forecast's (changing lanes in front of
            # one stays a collision here)
            rel_x = (fpos[ki, ti, 0] - X[ci, ti]) * np.cos(H[ci, ti]) + (
                fpos[ki, ti, 1] - Y[ci, ti]
            ) * np.sin(H[ci, ti])
            keeps_lane = np.array([options[p].lane_change == 0 for p in pidx])[ci]
            hit &= ~((rel_x < -ego.length_m / 2) & keeps_lane)
            if hit.any():
                np.minimum.at(first_hit, ci[hit], ti[hit] * c.step_s)
        return first_hit

    def rear_end_s(
        self,
        ego: EgoState,
        options: Sequence[PathOption],
        pidx: np.ndarray,
        roll: Rollout,
        objects: ObjectsAlongPaths,
    ) -> np.ndarray:
        """When the follower on each candidate's path would run into the car's back [s]
        (inf: never).  The follower (the nearest object behind within the path's lane band
        now) is simulated as highway-env's IDM driver (:data:`HIGHWAY_ENV_IDM`, braking up
        to :data:`HIGHWAY_ENV_ACC_MAX_MPS2`) at its current speed as desired speed, reacting
        to the candidate's rollout along the path: braking hard in front of a tailgater is a
        collision the benchmark counts.  The car is in the follower's way only from the step
        its planned offset (:attr:`Rollout.d_m`) enters the lane band round the follower's
        line: a lane change pulls out *ahead* of a car standing alongside and behind it
        before it is in that car's lane, so that car is no follower yet (without this, a car
        boxed in behind a stopped car with a stopped car alongside never leaves: stopped-car
        seed 6032).  A lane-keeping candidate is in its lane from the start."""
        c = self.config
        C, K = len(pidx), len(objects)
        hit = np.full(C, np.inf)
        if not K:
            return hit
        half_l = ego.length_m / 2
        rear_s = roll.s_m  # [C, T+1] the rear axle is the rear bumper in highway-env's bicycle
        o_s, o_d = objects.s_m[pidx], objects.d_m[pidx]  # [C, K]
        behind = (np.abs(o_d) < objects.band_m[pidx][:, None]) & (o_s < rear_s[:, :1] + half_l)
        front = np.where(behind, o_s + objects.length_m / 2, -np.inf)  # the follower's front bumper
        f = np.argmax(front, axis=1)
        has = behind.any(axis=1)
        if not has.any():
            return hit
        rows = np.arange(C)
        fs = front[rows, f].copy()
        fv = np.maximum(objects.vs_mps[pidx][rows, f], 0.0)
        f_v0 = np.maximum(fv, MIN_DESIRED_SPEED_MPS)
        in_lane = np.abs(roll.d_m - o_d[rows, f][:, None]) < objects.band_m[pidx][:, None]
        in_lane |= np.array([options[p].lane_change == 0 for p in pidx])[:, None]
        for k in range(c.steps + 1):
            gap = rear_s[:, k] - fs
            new = has & in_lane[:, k] & (gap <= 0.0) & ~np.isfinite(hit)
            hit[new] = k * c.step_s
            if k == c.steps:
                break
            acc = idm_acceleration(
                fv, f_v0, np.maximum(gap, 0.0), roll.speed_mps[:, k], HIGHWAY_ENV_IDM
            )
            acc = np.clip(
                acc, np.maximum(-HIGHWAY_ENV_ACC_MAX_MPS2, -fv / c.step_s), HIGHWAY_ENV_ACC_MAX_MPS2
            )
            fs = fs + fv * c.step_s
            fv = fv + acc * c.step_s
        return hit

    def safe_lane_changes(
        self,
        ego: EgoState,
        options: Sequence[PathOption],
        windows: PathWindows,
        objects: ObjectsAlongPaths,
    ) -> np.ndarray:
        """MOBIL's safety criterion per option, as highway-env's ``IDMVehicle.mobil`` checks
        it: the new follower in the target lane, driving highway-env's IDM
        (:data:`HIGHWAY_ENV_IDM`), must not have to brake harder than
        ``unsafe_follower_decel_mps2`` behind the car.  Its desired speed (unobservable) is
        taken as the lane's cruise speed there: highway-env's traffic keeps the speed it was
        created with (23-25 m/s on the highway) as its ``target_speed``, so a slowed follower
        still pulls towards it, as it does in highway-env's own check."""
        c = self.config
        half_l = ego.length_m / 2
        safe = np.ones(len(options), dtype=bool)
        for k, o in enumerate(options):
            # MOBIL decides whether to start a lane change; one under way (the previous
            # decision's corridor) is finished, as in highway-env, while the other gates hold
            if o.lane_change == 0 or o.previous or not len(objects):
                continue
            s_ego = o.s_m - windows.s_base_m[k] + half_l
            behind = (np.abs(objects.d_m[k]) < objects.band_m[k]) & (objects.s_m[k] < s_ego)
            if not behind.any():
                continue
            q = int(
                np.flatnonzero(behind)[np.argmax(objects.s_m[k][behind])]
            )  # the nearest follower
            gap_f = s_ego - objects.s_m[k, q] - objects.half_length_sum_m[q]
            vf = max(objects.vs_mps[k, q], 0.0)
            if vf < STANDSTILL_MPS:
                # a car standing still cannot be made to brake; whether the car can pull out
                # in front of it (or of one alongside) is the collision and rear-end gates'
                # question (highway-env's check would veto forever: a car boxed in behind a
                # stopped car with a standing car alongside never left, stopped-car seed 6032)
                continue
            v0_f = float(windows.speed_cap(np.array([k * windows.width]), np.array([s_ego]))[0])
            acc_f = idm_acceleration(
                vf, max(v0_f, MIN_DESIRED_SPEED_MPS), gap_f, ego.speed_mps, HIGHWAY_ENV_IDM
            )
            if gap_f < 0 or acc_f < -c.unsafe_follower_decel_mps2:
                safe[k] = False
        return safe

    # -- ranking --------------------------------------------------------------------------------
    def rank(
        self,
        ego: EgoState,
        options: Sequence[PathOption],
        pidx: np.ndarray,
        roll: Rollout,
        gates: dict[str, np.ndarray],
    ) -> dict[str, np.ndarray]:
        """nuPlan-style score per candidate: the gates times a weighted mean of progress
        (relative to the best gated candidate's), TTC, comfort, route and lane keeping."""
        c = self.config
        C = len(pidx)
        gate = (
            gates["no_collision"]
            & gates["no_rear_end"]
            & gates["no_overrun"]
            & gates["safe_lane_change"]
        )
        progress = roll.progress_m + c.progress_terminal_s * roll.speed_mps[:, -1]
        best_progress = progress[gate].max() if gate.any() else progress.max()
        progress_score = (
            np.clip(progress / best_progress, 0.0, 1.0)
            if best_progress > MIN_PROGRESS_TO_RANK_M
            else np.ones(C)
        )
        ttc_score = np.clip((roll.min_ttc_s - c.ttc_bad_s) / (c.ttc_good_s - c.ttc_bad_s), 0.0, 1.0)
        kappa = curvature_of_steering(roll.steerings_rad, ego.length_m)
        A = roll.accelerations_mps2
        v_mid = roll.speed_mps[:, :-1]
        jerk = (
            np.diff(np.concatenate([np.full((C, 1), ego.acceleration_mps2), A], axis=1), axis=1)
            / c.step_s
        )
        comfort_score = within_comfort_bounds(A, v_mid**2 * kappa, jerk, v_mid * kappa).mean(axis=1)
        route_score = np.array([float(options[p].on_route) for p in pidx])
        keep = np.array(
            [
                float(
                    options[p].previous
                    if any(o.previous for o in options)
                    else options[p].lane_change == 0
                )
                for p in pidx
            ]
        )
        # the bonus commits in full to a lane change under way (the previous corridor is a
        # neighbour, or the car is still off its centre line); staying in lane gets a share
        under_way = any(
            o.previous and (o.lane_change != 0 or abs(o.d_m) > c.transition_from_m) for o in options
        )
        if not under_way:
            keep = keep * c.keep_lane_share_in_lane
        w = c.weights
        weighted = (
            w["progress"] * progress_score
            + w["ttc"] * ttc_score
            + w["comfort"] * comfort_score
            + w["route"] * route_score
            + w["keep_lane"] * keep
        ) / sum(w.values())
        return {
            "no_collision": gates["no_collision"].astype(float),
            "no_rear_end": gates["no_rear_end"].astype(float),
            "first_collision_s": gates["first_collision_s"],
            "no_overrun": gates["no_overrun"].astype(float),
            "safe_lane_change": gates["safe_lane_change"].astype(float),
            "progress": progress_score,
            "progress_m": progress,
            "ttc": ttc_score,
            "min_ttc_s": roll.min_ttc_s,
            "comfort": comfort_score,
            "route": route_score,
            "keep_lane": keep,
            "total": gate * weighted,
        }

    @staticmethod
    def pick(
        scores: dict[str, np.ndarray],
        roll: Rollout,
        previous: np.ndarray | None = None,
        commit_s: float = 0.0,
    ) -> int:
        """The best total; if every candidate is gated out, the latest collision, then the
        slowest, keeping to the path chosen last time (``previous``) while one of its
        candidates collides at most ``commit_s`` earlier than the latest (no flipping between
        braking towards one neighbour and swerving to the other)."""
        total = scores["total"]
        if gated_in(scores).any():
            return int(np.argmax(total))
        first_hit = np.where(
            np.isfinite(scores["first_collision_s"]), scores["first_collision_s"], NEVER_COLLIDES_S
        )
        key = np.lexsort((roll.speed_mps[:, -1], -first_hit))
        if previous is not None and commit_s > 0:
            committed = [
                k for k in key if previous[k] and first_hit[k] >= first_hit[key[0]] - commit_s
            ]
            if committed:
                return int(committed[0])
        return int(key[0])


def warm_up() -> None:
    """Compile the rollout's step loop now, or load it from numba's on-disk cache, by
    planning once on a made-up straight road with one car ahead.

    Agents call it when they prepare, before their first episode: the first decision then
    costs a decision, not a compile (about 5 s, which a 5 s decision timeout counts), and a
    parallel run's parent process has written the cache before its workers start, so the
    workers only read it (two processes compiling and writing the cache at once can fail
    in numba with "no compiled object yet", which ended a fresh install's first episode as
    an agent error)."""
    lane = {
        "centre_m": np.array([[0.0, 0.0], [200.0, 0.0]]),
        "heading_rad": np.zeros(2),
        "width_m": 4.0,
        "speed_limit_mps": 30.0,
        "next": [],
        "left": None,
        "right": None,
    }
    lanes = LaneMap({"lanes": {"a-b-0": lane}, "route": {"lane_ids": ["a-b-0"], "length_m": 200.0}})
    path = lanes.path(("a-b-0",))
    planner = Planner()
    car = ObjectStates(
        np.zeros(1, np.int64),
        np.zeros(1, np.int8),
        np.array([[40.0, 0.0]]),
        np.zeros(1),
        np.full(1, 10.0),
        np.full(1, 5.0),
        np.full(1, 2.0),
        np.zeros(1),
        np.zeros(1),
    )
    times = np.arange(planner.config.steps + 1) * planner.config.step_s
    option = PathOption(path, float(path.project(np.array([7.5, 0.0]))[0]), 0, on_route=True)
    planner.plan(EgoState(10.0, 0.0, 0.0, 20.0), [option], forecast_objects(car, times))
