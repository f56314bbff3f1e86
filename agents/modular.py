"""The modular driving stack: perception -> prediction -> planner -> controller.

:class:`PlanningAgent` is the stack with a pluggable perception source
(:class:`PerceptionSource`); every source hands planning one format,
:class:`~planning.prediction.ObjectStates` (world frame):

``modular``      the camera rig (front and rear perspective cameras): a monocular 3D detector
                 per camera (or the geometric baseline), the cameras' detections fused, a
                 tracker (:class:`RigPerception`)
``modular-bev``  the bird's-eye raster: a CenterNet detector and a tracker
                 (:class:`CameraPerception`); the ablation where perception is nearly free
``modular-gt``   ground-truth objects (:class:`GroundTruthPerception`): the ablation that
                 separates perception errors from planning errors; it drives exactly like
                 the privileged expert (:mod:`agents.expert`)

Each decision leaves :attr:`PlanningAgent.overlay` behind (the chosen trajectory, every
candidate, the objects the planner saw), which videos draw.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from agents.base import BaseAgent, TaskSpec
from perception.boxes import Boxes
from perception.fusion import fuse
from perception.localisation import SpeedometerCheck, TrafficLocalisation
from perception.tracker import Tracker
from planning.control import PurePursuit, SpeedPID, Stanley, normalise_action
from planning.geometry import wrap_angle
from planning.lanes import ALIGNED_RAD, LaneMap, ReferencePath
from planning.planner import EgoState, PathOption, Plan, Planner, PlannerConfig, warm_up
from planning.prediction import (
    Forecast,
    MotionEstimator,
    ObjectStates,
    cautious_speeds,
    forecast,
    forecast_along_paths,
)
from sim.geometry.pinhole import CameraRig

CORRIDOR_M = 250.0  # [m] how far ahead reference paths reach (> 4 s at 40 m/s + look-ahead)
MAX_FORECAST_SPEED_MPS = (
    20.0  # [m/s] objects within 2 x horizon x this get lane-following forecasts
)
MOVING_OBJECT_MPS = 0.5  # [m/s] faster objects get lane yaw rates and lane-following forecasts
OBJECT_CORRIDOR_SLACK_M = (
    10.0  # [m] an object's forecast corridor reaches this beyond its horizon travel
)
PROJECTION_WINDOW_M = (
    30.0  # [m] the ego is searched for this far around its lane position on a corridor
)
DEFAULT_DETECTOR = (
    "runs/detector"  # the bird's-eye CenterNet: `drive train detector --out runs/detector`
)
DEFAULT_RIG_DETECTOR = (
    "runs/detector-rig"  # the rig's: `drive train detector --model mono3d --out ...`
)
GEOMETRIC = "geometric"  # `modular:geometric`: the rig's no-learning baseline, no checkpoint
# the rig's tracker (perception.tracker), chosen with `drive eval tracking` on hazard seeds 0-9
# (docs/planner.md): constant acceleration reports a braking car's deceleration to the planner, a
# new track starts moving with the ego, and the measurement noise is the monocular depth's: 1 m
# near, growing along the viewing ray as 0.001 r^2 (the detector's median depth error: 0.3 m at
# 15 m, 1.4 m at 45 m, 4.6 m at 70 m), with a Mahalanobis gate, so a far car keeps its track
RIG_TRACKER = {
    "motion": "ca",
    "init_velocity": "ego",
    "position_noise_m": 1.0,
    "depth_noise_per_m2": 0.001,
    # a track out of every rig camera's view is predicted on, not missed, for up to this long
    # [s]: the default rig's blind spot beside the car is about 8 m long for a car in the next
    # lane, which a car 1 m/s faster or slower than the ego takes 8 s to cross
    "max_unseen_s": 8.0,
}
# a track's centre counts as in a camera's view this far inside its image [px]: nearer the edge
# the car is mostly outside the image and the detector may miss it
IN_VIEW_MARGIN_PX = 8.0
CAR_CENTRE_HEIGHT_M = 0.75  # [m] the centre of a 1.5 m tall car (the detector's size prior)
# the rig's tracks are planned at the cautious end of their speed interval, this many standard
# deviations (planning.prediction.cautious_speeds): a stalled car revealed 60-80 m out reads as
# moving for seconds, and the mean drove into it.  Chosen on hazard and highway seeds 0-19:
# more caution costs progress on a free road for no further gain (docs/planner.md, section 3)
RIG_CAUTION_SIGMA = 1.0


class PerceptionSource(Protocol):
    """Turns the agent's sensors into object states (world frame)."""

    sensors: tuple[str, ...]
    device: str  # where its model runs ("cpu" without one)
    last_detections: (
        Boxes | None
    )  # the last frame's raw detections (ego frame); None without a detector

    def reset(self) -> None: ...

    def prepare(self) -> None: ...

    def checkpoints(self) -> tuple[str, ...]: ...

    def perceive(self, obs: Mapping[str, Any], dt_s: float) -> ObjectStates: ...


class GroundTruthPerception:
    """Every object exactly, from the privileged ``truth`` sensor; yaw rates and
    accelerations estimated from heading and speed changes between decisions (the sensor
    gives poses and speeds, not rates)."""

    sensors = ("truth",)
    device = "cpu"
    last_detections: Boxes | None = None

    def __init__(self) -> None:
        self._motion = MotionEstimator()

    def reset(self) -> None:
        self._motion.reset()

    def prepare(self) -> None:
        return None

    def checkpoints(self) -> tuple[str, ...]:
        return ()

    def perceive(self, obs: Mapping[str, Any], dt_s: float) -> ObjectStates:
        return self._motion.update(ObjectStates.from_truth(obs["truth"]), dt_s)


class CameraPerception:
    """Objects from the bird's-eye camera only: detector -> tracker (world frame, via
    localisation).

    The detector is loaded at the first frame (or by :meth:`prepare`), so an agent can be
    built (and listed) before a checkpoint exists; a missing checkpoint then fails with
    how to make one.  ``detector``: any object with ``detect(frame) -> Boxes`` to use
    instead of loading the checkpoint (it runs on the CPU).
    """

    sensors = ("bev", "pose")

    def __init__(
        self,
        checkpoint: str = DEFAULT_DETECTOR,
        device: str = "auto",
        dt_s: float = 1 / 15,
        detector: Any = None,
    ) -> None:
        self.checkpoint = checkpoint
        self.device_name = device  # requested: auto, cpu or cuda
        self.device = "cpu"  # where the detector runs (the learned one's device once it is loaded)
        self.detector = detector
        self.tracker = Tracker(dt_s)
        self.last_detections: Boxes | None = None

    def prepare(self) -> None:
        """Load the detector now (a run calls this before its first episode)."""
        if self.detector is None:
            self._load()

    def checkpoints(self) -> tuple[str, ...]:
        return (self.checkpoint,)

    def _load(self) -> None:
        # torch is heavy and optional for the other agents: imported only when a detector loads
        from perception.detectors.learned import LearnedDetector

        if not (Path(self.checkpoint) / "detector.json").exists():
            raise ValueError(
                f"no detector checkpoint at {self.checkpoint}; record frames and train one: drive "
                "perception data --scenarios highway,merge,roundabout --frames 3000 --out "
                f"runs/frames && drive train detector --data runs/frames --out {self.checkpoint}"
            )
        self.detector = LearnedDetector(self.checkpoint, device=self.device_name)
        self.device = str(self.detector.device)

    def reset(self) -> None:
        self.tracker.reset()
        self.last_detections = None

    def perceive(self, obs: Mapping[str, Any], dt_s: float) -> ObjectStates:
        if self.detector is None:
            self._load()
        self.last_detections = self.detector.detect(obs["bev"])
        self.tracker.update(self.last_detections, np.asarray(obs["pose"], dtype=np.float64))
        return self.tracker.objects()


class RigPerception:
    """Objects from the rig's perspective cameras only: one detector for every camera (one
    batched call per decision), the cameras' ego-frame detections fused
    (:func:`perception.fusion.fuse`), then the tracker (world frame, via localisation).

    ``checkpoint``: a monocular 3D detector's folder (:class:`Mono3DDetector
    <perception.detectors.mono3d.Mono3DDetector>`), or ``"geometric"`` for the no-learning
    baseline (:class:`GeometricDetector <perception.detectors.geometric.GeometricDetector>`).
    The detector is loaded at the first frame or by :meth:`prepare`; ``detector``: any object
    with ``detect_batch(frames, cameras) -> list[Boxes]`` to use instead; ``tracker``: the
    :class:`~perception.tracker.Tracker`'s options (default :data:`RIG_TRACKER`);
    ``caution_sigma``: tracks are reported at the cautious end of their speed interval, this
    many standard deviations (default :data:`RIG_CAUTION_SIGMA`; 0: the filter's mean).
    """

    def __init__(
        self,
        rig,
        checkpoint: str = DEFAULT_RIG_DETECTOR,
        device: str = "auto",
        dt_s: float = 1 / 15,
        detector: Any = None,
        cameras: tuple[str, ...] | None = None,
        tracker: Mapping[str, Any] | None = None,
        caution_sigma: float | None = None,
    ) -> None:
        if rig is None:
            raise ValueError("RigPerception needs the task's camera rig (TaskSpec.rig)")
        self.rig = rig
        self.cameras = tuple(cameras or rig.names)
        unknown = [c for c in self.cameras if c not in rig.names]
        if unknown:
            raise ValueError(f"unknown rig camera(s) {unknown}; the rig has {', '.join(rig.names)}")
        self.sensors = (*self.cameras, "pose")
        self.models = [rig[c] for c in self.cameras]
        self.checkpoint = checkpoint
        self.device_name = device
        self.device = "cpu"
        self.detector = detector
        self.view = CameraRig([(c, rig[c]) for c in self.cameras])  # what this stack reads
        self.tracker = Tracker(
            dt_s, in_view=self.sees, **(RIG_TRACKER if tracker is None else tracker)
        )
        self.caution_sigma = RIG_CAUTION_SIGMA if caution_sigma is None else float(caution_sigma)
        self.last_detections: Boxes | None = None
        self.last_per_camera: dict[str, Boxes] = {}

    def prepare(self) -> None:
        if self.detector is None:
            self._load()

    def sees(self, centres_ego_m: np.ndarray) -> np.ndarray:
        """Whether one of this stack's cameras images each ego-frame car centre ``[N, 2]``
        (at a car's mid-height, :data:`IN_VIEW_MARGIN_PX` inside the image)."""
        c = np.asarray(centres_ego_m, dtype=np.float64)
        points = np.concatenate([c, np.full((len(c), 1), CAR_CENTRE_HEIGHT_M)], axis=1)
        return self.view.sees(points, IN_VIEW_MARGIN_PX)

    def checkpoints(self) -> tuple[str, ...]:
        return () if self.checkpoint == GEOMETRIC else (self.checkpoint,)

    def _load(self) -> None:
        # torch is heavy and optional for the other agents: imported only when a detector loads
        if self.checkpoint == GEOMETRIC:
            from perception.detectors.geometric import GeometricDetector

            self.detector = GeometricDetector()
            return
        from perception.detectors.mono3d import META, Mono3DDetector

        if not (Path(self.checkpoint) / META).exists():
            raise ValueError(
                f"no rig detector checkpoint at {self.checkpoint}; record frames and train one: "
                "drive perception data --cameras cam_front,cam_rear --scenarios "
                "highway,merge,roundabout --frames 3000 --out runs/frames-rig && drive train "
                f"detector --model mono3d --data runs/frames-rig --out {self.checkpoint} (or use "
                "modular:geometric)"
            )
        self.detector = Mono3DDetector(self.checkpoint, device=self.device_name)
        self.device = str(self.detector.device)

    def reset(self) -> None:
        self.tracker.reset()
        self.last_detections = None
        self.last_per_camera = {}

    def perceive(self, obs: Mapping[str, Any], dt_s: float) -> ObjectStates:
        if self.detector is None:
            self._load()
        frames = np.stack([np.asarray(obs[c]) for c in self.cameras])
        per_camera = self.detector.detect_batch(frames, self.models)
        self.last_per_camera = dict(zip(self.cameras, per_camera, strict=True))
        self.last_detections = fuse(per_camera)
        pose = np.asarray(obs["pose"], dtype=np.float64)
        speed = obs.get(
            "speed"
        )  # the speedometer: new tracks start moving with the ego from the first frame
        self.tracker.update(
            self.last_detections,
            pose,
            None if speed is None else float(np.asarray(speed).reshape(-1)[0]),
        )
        return cautious_speeds(
            self.tracker.objects(),
            self.tracker.speed_sigma_mps(),
            pose[:2],
            float(pose[2]),
            self.caution_sigma,
        )


@dataclass
class Overlay:
    """What the last decision looked like, for videos (world frame)."""

    trajectory_m: np.ndarray  # [T+1, 2] the chosen rollout
    candidates_m: np.ndarray  # [C, T+1, 2] every candidate
    candidate_ok: np.ndarray  # [C] passed the planner's gates
    objects: ObjectStates  # what perception reported
    path_lanes: tuple[str, ...]  # the chosen corridor's lane ids
    detections: Boxes | None = (
        None  # the detector's raw boxes (ego frame) when perception has a camera
    )
    camera_detections: dict[str, Boxes] | None = (
        None  # each rig camera's raw boxes (ego frame), before fusion
    )


class PlanningAgent(BaseAgent):
    """Perception -> prediction -> :class:`~planning.planner.Planner` -> controllers.

    The controllers track the plan the planner chose: its transition onto the chosen
    path (:attr:`Plan.reference`, the line its rollout steered along) and its speed.
    """

    name = "planning"
    base_sensors = ("map", "pose", "speed")

    def __init__(
        self,
        task: TaskSpec,
        perception: PerceptionSource | None = None,
        config: PlannerConfig | None = None,
        lateral: str = "pure-pursuit",
        motion_model: str = "ctrv",
        traffic_localisation: bool = False,
    ) -> None:
        """:param traffic_localisation: correct the pose and the privileged ``truth`` objects
        for the displacement the traffic shows against its lanes
        (:class:`perception.localisation.TrafficLocalisation`; the expert's)"""
        super().__init__(task)
        self.perception = perception or GroundTruthPerception()
        self.sensors = tuple(dict.fromkeys(self.perception.sensors + self.base_sensors))
        self.planner = Planner(config)
        self.odometry = SpeedometerCheck()
        self.traffic_localisation = TrafficLocalisation() if traffic_localisation else None
        self.longitudinal = "acceleration" in task.action_names
        if lateral == "pure-pursuit":
            c = self.planner.config
            self.lateral = PurePursuit(c.lookahead_gain_s, c.min_lookahead_m, c.max_lookahead_m)
        elif lateral == "stanley":
            self.lateral = Stanley()
        else:
            raise ValueError(
                f"unknown lateral controller {lateral!r}; known: pure-pursuit, stanley"
            )
        self.speed_pid = SpeedPID(
            accel_limits_mps2=(-task.acceleration_range_mps2, task.acceleration_range_mps2)
        )
        if motion_model not in ("lane", "ctrv", "cv"):
            raise ValueError(f"unknown motion model {motion_model!r}; known: lane, ctrv, cv")
        # "ctrv" (default) or "cv"; "lane": lane following where the map bends, else CTRV.
        # Measured on roundabout seeds 0-29: "lane" hesitates less (3.3 vs 4.7 large
        # acceleration jumps per episode) but accepts tighter gaps (median min TTC 0.57 s
        # vs 1.51 s, comfort violations 2.4% vs 1.5%), so the expert keeps CTRV.
        self.motion_model = motion_model
        self.dt_s = 1.0 / task.control_hz
        self.overlay: Overlay | None = None
        self.last_plan: Plan | None = None
        self._path_cache: dict = {}  # reference paths, reused across episodes of one network
        self.reset()

    @property
    def device(self) -> str:
        """Where perception's model runs (known once it is loaded)."""
        return self.perception.device

    def reset(self, seed: int | None = None) -> None:
        """A new episode: the lane map is rebuilt from the first observation's map."""
        self.perception.reset()
        self.odometry.reset()
        if self.traffic_localisation is not None:
            self.traffic_localisation.reset()
        self.planner.reset()
        self.lateral.reset()
        self.speed_pid.reset()
        self.lane_map: LaneMap | None = None
        self._lane: str | None = None  # lane under the ego at the last decision
        self._target: tuple[str, ...] = ()  # corridor chosen at the last decision
        self._target_path: ReferencePath | None = None
        self._seen_ids = np.zeros(0, dtype=np.int64)
        self._last_accel = 0.0
        self.overlay = None
        self.last_plan = None

    def prepare(self) -> None:
        """Load whatever the perception source needs (a checkpoint) before the first episode,
        so a missing file stops a run up front instead of failing every episode; and compile
        the planner's rollout loop (or load it from numba's cache) before the first decision."""
        self.perception.prepare()
        warm_up()

    def checkpoints(self) -> tuple[str, ...]:
        return self.perception.checkpoints()

    # -- one decision ------------------------------------------------------------------------
    def act(self, obs: Mapping[str, Any]) -> np.ndarray:
        if self.lane_map is None:  # the episode's first decision
            self.lane_map = LaneMap(obs["map"], path_cache=self._path_cache)
        if self.traffic_localisation is not None and "truth" in obs:
            pose, truth = self.traffic_localisation.correct(
                self.lane_map, obs["pose"], obs["truth"]
            )
            obs = {**obs, "pose": pose, "truth": truth}
        x, y, heading = (float(v) for v in np.asarray(obs["pose"], dtype=np.float64))
        # the speedometer, its scale checked against the distance the fixes travelled
        speed = self.odometry.update(
            obs["pose"], float(np.asarray(obs["speed"]).reshape(-1)[0]), self.dt_s
        )
        ego = EgoState(x, y, heading, speed, self._last_accel)
        objects = self._with_lane_yaw_rates(self.perception.perceive(obs, self.dt_s))
        plan = self.planner.plan(
            ego,
            self._path_options(ego),
            self._forecast(objects, ego),
            longitudinal=self.longitudinal,
            cruise_speed_mps=self.task.cruise_speed_mps,
        )
        self._target = plan.option.path.lanes
        self._target_path = plan.option.path
        # steer along the transition onto the chosen path that the planner rolled out
        steering, _ = self.lateral.update(x, y, heading, speed, plan.reference)
        accel = 0.0
        if self.longitudinal:
            # track the plan's speed one control period ahead, its acceleration as feed-forward
            v_next = float(np.interp(self.dt_s, plan.times_s, plan.speed_mps[plan.best]))
            accel, _ = self.speed_pid.update(v_next, speed, self.dt_s, plan.acceleration_mps2)
        self._last_accel = accel
        self.last_plan = plan
        self.overlay = Overlay(
            trajectory_m=plan.best_trajectory_m,
            candidates_m=plan.trajectory_m,
            candidate_ok=plan.scores["total"] > 0,
            objects=objects,
            path_lanes=plan.option.path.lanes,
            detections=self.perception.last_detections,
            camera_detections=dict(getattr(self.perception, "last_per_camera", {})) or None,
        )
        return normalise_action(
            accel,
            steering,
            self.task.action_names,
            self.task.steering_range_rad,
            self.task.acceleration_range_mps2,
        )

    def _forecast(self, objects: ObjectStates, ego: EgoState) -> Forecast:
        """Every object over the planning horizon, by the agent's motion model."""
        c = self.planner.config
        times = np.arange(c.steps + 1) * c.step_s
        paths = self._object_paths(objects, ego) if self.motion_model == "lane" else None
        kinematic = "ctrv" if self.motion_model == "lane" else self.motion_model
        return (
            forecast_along_paths(objects, times, paths, fallback=kinematic)
            if paths is not None
            else forecast(objects, times, kinematic)
        )

    def _object_paths(self, objects: ObjectStates, ego: EgoState) -> list | None:
        """The lane path each nearby moving vehicle follows (None: forecast it with CTRV),
        on maps whose lanes bend; None on straight maps, where CTRV is lane following."""
        lm = self.lane_map
        if not lm.curved:
            return None
        c = self.planner.config
        near_m = 2 * c.horizon_s * MAX_FORECAST_SPEED_MPS
        paths: list = []
        for k in range(len(objects)):
            path = None
            pos, v = objects.position_m[k], float(objects.speed_mps[k])
            if (
                objects.kind[k] == 0
                and v > MOVING_OBJECT_MPS
                and np.hypot(pos[0] - ego.x_m, pos[1] - ego.y_m) < near_m
            ):
                found = lm.locate(pos, float(objects.heading_rad[k]))
                if found is not None:
                    lane, s = found
                    candidate = lm.path(
                        lm.corridor(
                            lane, v * c.horizon_s + OBJECT_CORRIDOR_SLACK_M, s, follow_route=False
                        )
                    )
                    _, d = candidate.project(pos)
                    if abs(float(d)) <= candidate.width_m / 2:  # on that lane, not just near it
                        path = candidate
            paths.append(path)
        return paths

    def _with_lane_yaw_rates(self, objects: ObjectStates) -> ObjectStates:
        """Objects seen for the first time have no heading history: give them the yaw rate
        of following their lane (speed x the lane's curvature), so a car already in a
        roundabout is forecast around it rather than off along its tangent."""
        new = ~np.isin(objects.id, self._seen_ids)
        self._seen_ids = np.union1d(self._seen_ids, objects.id)
        for k in np.flatnonzero(
            new & (objects.kind == 0) & (objects.speed_mps > MOVING_OBJECT_MPS)
        ):
            found = self.lane_map.locate(objects.position_m[k], float(objects.heading_rad[k]))
            if found is not None:
                lane, s = found
                kappa = float(self.lane_map.lanes[lane].centre.curvature_at(s))
                objects.yaw_rate_radps[k] = objects.speed_mps[k] * kappa
        return objects

    def _on_target(self, rear_xy: np.ndarray, heading_rad: float) -> tuple[str, float] | None:
        """(lane, s on it) along the corridor chosen last time while the car is still on it:
        through a junction gap (a roundabout exit) the corridor knows where it was going."""
        path = self._target_path
        if path is None:
            return None
        s, d = path.project(rear_xy)
        s = float(s)
        aligned = abs(wrap_angle(float(path.heading_at(s)) - heading_rad)) < ALIGNED_RAD
        if abs(float(d)) > path.width_m / 2 or not aligned or not 0.0 <= s <= path.length_m:
            return None
        return path.lane_at(s)

    def _path_options(self, ego: EgoState) -> list[PathOption]:
        lm = self.lane_map
        xy = np.array([ego.x_m, ego.y_m])
        rear = xy - ego.length_m / 2 * np.array([np.cos(ego.heading_rad), np.sin(ego.heading_rad)])
        found = self._on_target(rear, ego.heading_rad) or lm.locate(rear, ego.heading_rad)
        if found is None:  # no lane heads our way: steer for the route's first lane
            found = (lm.route_lanes[0], None)
        lane, s_on_lane = found
        if not self.task.lane_changes_allowed:  # keep the route's lane on this road
            road = lane.rsplit("-", 1)[0]
            lane = next((r for r in lm.route_lanes if r.rsplit("-", 1)[0] == road), lane)
        self._lane = lane
        candidates = [(lane, 0)]
        if self.task.lane_changes_allowed:
            here = lm.lanes[lane]
            candidates += [(n, side) for n, side in ((here.left, -1), (here.right, +1)) if n]
        options = []
        for lane_id, change in candidates:
            # lanes of one road share their parameterisation closely enough for a search window
            corridor = lm.corridor(lane_id, CORRIDOR_M, s_on_lane or 0.0)
            path: ReferencePath = lm.path(corridor)
            s, d = path.project(rear, s_guess_m=s_on_lane, window_m=PROJECTION_WINDOW_M)
            heading_error = float(wrap_angle(ego.heading_rad - float(path.heading_at(float(s)))))
            options.append(
                PathOption(
                    path=path,
                    s_m=float(s),
                    d_m=float(d),
                    heading_error_rad=heading_error,
                    lane_change=change,
                    on_route=all(lm.is_route_lane(x) for x in corridor),
                    previous=bool(self._target) and corridor[0] in self._target,
                )
            )
        return options


class ModularAgent(PlanningAgent):
    """The modular stack from the camera rig: a 3D detector on every rig camera -> fusion ->
    tracker -> the expert's planner and controllers.  Sensors: the rig's cameras, pose, map,
    speed.  ``checkpoint``: the rig detector's folder (``modular:PATH``; default
    ``runs/detector-rig``), or ``modular:geometric`` for the no-learning baseline."""

    name = "modular"

    def __init__(
        self,
        task: TaskSpec,
        checkpoint: str | None = None,
        perception: PerceptionSource | None = None,
        device: str = "auto",
    ) -> None:
        super().__init__(
            task,
            perception
            or RigPerception(
                task.rig,
                checkpoint or DEFAULT_RIG_DETECTOR,
                device=device,
                dt_s=1.0 / task.control_hz,
            ),
        )


class ModularBevAgent(PlanningAgent):
    """The modular stack from the bird's-eye raster (the privileged map view): CenterNet ->
    tracker -> the expert's planner and controllers; the ablation where perception is nearly
    free.  Sensors: bev, pose, map, speed.  ``checkpoint``: the detector's folder
    (``modular-bev:PATH``; default ``runs/detector``)."""

    name = "modular-bev"

    def __init__(
        self,
        task: TaskSpec,
        checkpoint: str | None = None,
        perception: PerceptionSource | None = None,
    ) -> None:
        super().__init__(
            task,
            perception
            or CameraPerception(checkpoint or DEFAULT_DETECTOR, dt_s=1.0 / task.control_hz),
        )


class ModularGroundTruthAgent(PlanningAgent):
    """The modular stack with perfect perception (ground-truth objects): the ablation that
    separates perception errors from planning errors.  Drives exactly like ``expert``."""

    name = "modular-gt"

    def __init__(self, task: TaskSpec) -> None:
        super().__init__(task, GroundTruthPerception())
