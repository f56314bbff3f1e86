"""``DrivingEnv``: a gymnasium env over a highway-env world, with its cameras and sensors.

Observation (a gymnasium ``Dict`` of fixed-shape sensors; a subset can be asked for):

=========  ==========================  =================================================
sensor     value                       meaning
=========  ==========================  =================================================
bev        uint8[H, W, 3]              bird's-eye raster of the road map turning with the car
                                       (:mod:`sim.geometry.bev`; privileged), RGB, row 0 ahead
speed      float32[1]                  ego speed [m/s]
pose       float64[3]                  localisation: world x [m], y [m], heading [rad]
command    int in [0, 4)               navigation command, index into ``COMMANDS``
cam_front  uint8[128, 256, 3]          perspective camera of the rig (:func:`default_rig`), RGB
cam_rear   uint8[128, 256, 3]          the rig's rear camera, RGB
=========  ==========================  =================================================

Each camera of the rig (``rig=``, default :func:`sim.geometry.pinhole.default_rig`) is a
sensor of its own, named as in the rig and shaped ``(H, W, 3)`` as its camera; it is
rendered (:class:`sim.world.perspective.PerspectiveRenderer`) only when declared in
``sensors``.  ``sensors=None`` means every sensor *except* the rig's cameras.

Every camera (the rig's, ``bev`` and the :meth:`~DrivingEnv.overview`) renders in the
scenario's visual condition (``highway:night``; :mod:`sim.world.visual`).

Structured sensors travel in ``info`` when asked for: ``truth`` (every other object's
pose, size and velocity), ``map`` (lane and route geometry; static, so only in the
``reset`` info), ``autopilot`` (highway-env's IDM/MOBIL decision for the ego, normalised).  ``info``
always carries ``events`` (collision with what, off-road, lane departure, route completed) and
``ego`` (the ground-truth state the control loop scores with; agents never receive it).

Action: normalised ``[acceleration, steering]`` (or ``[steering]`` in steering-only
scenarios) in [-1, 1]; steering +1 = +pi/4 rad = full *left* (counter-clockwise),
acceleration +1 = +5 m/s^2.

Reward: progress along the route as a fraction of its length, minus 1 on a collision
or on leaving the road.  It is there for RL users; the harness scores with metrics.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from highway_env.vehicle.objects import Landmark, Obstacle

from planning.geometry import wrap_angle
from sim.geometry.bev import BevCamera
from sim.geometry.frames import corridor_ahead, hw_to_world_heading, hw_to_world_xy
from sim.geometry.pinhole import CameraRig, PinholeCamera, default_rig
from sim.world.autopilot import IDMAutopilot
from sim.world.fastroad import make_fast
from sim.world.perspective import PerspectiveFrame, object_heights, renderer_for
from sim.world.render import (
    KIND_OBSTACLE,
    KIND_VEHICLE,
    SceneObjects,
    SceneRenderer,
    top_down_transform,
)
from sim.world.roadmap import RoadGeometry, lane_id
from sim.world.route import Route, RouteProgress
from sim.world.scenarios import COMMANDS, Scenario, get_scenario
from sim.world.visual import visual_palettes

OBS_SENSORS = ("bev", "speed", "pose", "command")
INFO_SENSORS = ("truth", "map", "autopilot")
RIG_SENSORS = default_rig().names  # ("cam_front", "cam_rear"): observation entries too
DEFAULT_SENSORS = OBS_SENSORS + INFO_SENSORS  # sensors=None: all but the rig's cameras
SENSORS = DEFAULT_SENSORS + RIG_SENSORS
TRUTH_KINDS = ("vehicle", "obstacle")  # truth["kind"] codes (== sim.world.render.KIND_*)

LANE_DEPARTURE_M = 1.0  # [m] |offset from lane centre| beyond which the ego has departed its lane
TTC_HORIZON_S = 10.0  # [s] time-to-collision above this (or no closing vehicle) reads as this

# Road geometry depends only on the scenario's world class and config; sampling it is
# the slow part of a reset, so it is shared across resets and envs of one process, with
# its bird's-eye renderer per visual condition (a renderer is cheap; a worn road's draws
# its wear patches once).
_GEOMETRY_CACHE: dict[tuple, tuple[RoadGeometry, dict[str, SceneRenderer]]] = {}
GEOMETRY_CACHE_SIZE = 32  # maps kept per process (generated roads give one per map seed)


def _validate_sensors(
    sensors: Sequence[str] | None, rig_names: Sequence[str] = RIG_SENSORS
) -> tuple[str, ...]:
    if sensors is None:
        return DEFAULT_SENSORS
    known = DEFAULT_SENSORS + tuple(rig_names)
    unknown = [s for s in sensors if s not in known]
    if unknown:
        raise ValueError(f"unknown sensor(s) {unknown}; known: {', '.join(known)}")
    return tuple(dict.fromkeys(sensors))


class DrivingEnv(gym.Env):
    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": 15}

    def __init__(
        self,
        scenario: str | Scenario = "highway",
        bev: BevCamera | dict | None = None,
        sensors: Sequence[str] | None = None,
        render_mode: str | None = None,
        overrides: dict[str, Any] | None = None,
        fast_physics: bool = True,
        rig: CameraRig | None = None,
    ) -> None:
        """
        :param scenario: a scenario name (``drive scenarios``) or a :class:`Scenario`
        :param bev: the bird's-eye camera's :class:`BevCamera` (or its dict); default 128x128
            at 0.5 m/px
        :param sensors: which sensors to compute (default: ``DEFAULT_SENSORS``, i.e. all
            but the rig's cameras); the
            observation space holds the fixed-shape ones among them
        :param render_mode: ``"rgb_array"`` for a north-up overview from :meth:`render`
        :param overrides: scenario fields to override, e.g. ``{"duration_s": 10}``
        :param fast_physics: step the world with :class:`sim.world.fastroad.FastRoad` (same
            trajectories as highway-env, several times faster); False runs stock highway-env
        :param rig: the perspective cameras, each a sensor named as in the rig (default
            :func:`default_rig`: ``cam_front``, ``cam_rear``); rendered only when declared
        """
        if isinstance(scenario, str):
            scenario = get_scenario(scenario, **(overrides or {}))
        elif overrides:
            scenario = scenario.with_overrides(**overrides)
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"unknown render_mode {render_mode!r}; known: {self.metadata['render_modes']}"
            )
        self.scenario = scenario
        self.bev_camera = (
            BevCamera.from_dict(bev) if isinstance(bev, dict) else (bev or BevCamera())
        )
        self.rig = rig if rig is not None else default_rig()
        if set(self.rig.names) & set(DEFAULT_SENSORS):
            raise ValueError(
                f"rig camera names {self.rig.names} clash with sensors {DEFAULT_SENSORS}"
            )
        self.sensors = _validate_sensors(sensors, self.rig.names)
        self.palettes = visual_palettes(scenario.visual)  # every camera renders in this condition
        self._rig_sensors = tuple(n for n in self.rig.names if n in self.sensors)
        self.fast_physics = bool(fast_physics)
        self.render_mode = render_mode
        self.metadata = {**self.metadata, "render_fps": scenario.control_hz}

        obs_spaces: dict[str, spaces.Space] = {}
        if "bev" in self.sensors:
            obs_spaces["bev"] = spaces.Box(0, 255, self.bev_camera.shape, np.uint8)
        if "speed" in self.sensors:
            obs_spaces["speed"] = spaces.Box(-50.0, 50.0, (1,), np.float32)
        if "pose" in self.sensors:
            lim = np.array([1e6, 1e6, np.pi])  # [m, m, rad]: worlds are far smaller than 1000 km
            obs_spaces["pose"] = spaces.Box(-lim, lim, (3,), np.float64)
        if "command" in self.sensors:
            obs_spaces["command"] = spaces.Discrete(len(COMMANDS))
        for name in self._rig_sensors:
            obs_spaces[name] = spaces.Box(0, 255, self.rig[name].shape, np.uint8)
        self.observation_space = spaces.Dict(obs_spaces)
        n_act = 2 if scenario.longitudinal else 1
        self.action_space = spaces.Box(-1.0, 1.0, (n_act,), np.float32)

        self.world = scenario.world_class()(config=scenario.highway_env_config())
        self.world.render_mode = None
        self.geometry: RoadGeometry | None = None
        self.renderer: SceneRenderer | None = None
        self.route: Route | None = None
        self.progress: RouteProgress | None = None
        self.autopilot: IDMAutopilot | None = None
        self.command = "follow"
        self.time_s = 0.0
        self.steps = 0
        self._objects: list = []  # other vehicles and obstacles; truth ids are indices here
        self._object_static: tuple | None = None  # (the list it describes, lengths, widths, kinds)

    # -- gymnasium API -----------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is None:
            # highway-env needs a seed to be reproducible; derive one from our own stream
            seed = int(self.np_random.integers(2**31 - 1))
        self.world.reset(seed=int(seed))
        if self.fast_physics:
            make_fast(self.world.road)
        self._load_geometry()
        plan = self.world.route_plan()
        self.command = plan.command
        self.route = Route.along_lanes(self.geometry, plan.lanes, plan.start_s_m, plan.length_m)
        self.progress = RouteProgress(self.route)
        self.time_s, self.steps = 0.0, 0
        self._objects = [o for o in self.world.road.vehicles if o is not self.world.vehicle] + [
            o for o in self.world.road.objects if not isinstance(o, Landmark)
        ]
        self._object_static = None
        self.autopilot = None
        if "autopilot" in self.sensors:
            dest = None
            if plan.command in ("left", "straight", "right"):
                dest = plan.lanes[-1][1]
            self.autopilot = IDMAutopilot(
                self.world,
                target_speed_mps=self.scenario.cruise_speed_mps,
                lane_changes=self.scenario.lane_changes_allowed,
                destination=dest,
                dt_s=self.scenario.dt_s,
                longitudinal=self.scenario.longitudinal,
            )
        ego_state = self._ego_state()
        self.progress.update(ego_state["position_m"])
        arrays = self._object_arrays()
        return self._observe(arrays), self._info(self._events(None), ego_state, arrays)

    def step(self, action):
        a = np.asarray(action, dtype=np.float64).reshape(-1)
        if a.shape != self.action_space.shape:
            raise ValueError(
                f"action must have shape {self.action_space.shape} "
                f"({', '.join(self.scenario.action_names)}), got {np.shape(action)}"
            )
        if not np.all(np.isfinite(a)):
            raise ValueError(f"action must be finite, got {a.tolist()}")
        hw_action = np.clip(a, -1.0, 1.0)
        hw_action[-1] = -hw_action[-1]  # highway-env steers clockwise-positive
        was_crashed = self.world.vehicle.crashed
        self.world.step(hw_action)
        self.steps += 1
        self.time_s = self.steps * self.scenario.dt_s
        ego_state = self._ego_state()
        before = self.progress.completion
        self.progress.update(ego_state["position_m"])
        events = self._events(None if was_crashed else self._collision_kind())
        terminated = bool(events["collision"] or events["offroad"] or events["route_completed"])
        truncated = (not terminated) and self.steps >= self.scenario.max_steps
        reward = self.progress.completion - before
        if events["collision"] or events["offroad"]:
            reward -= 1.0
        arrays = self._object_arrays()
        return (
            self._observe(arrays),
            float(reward),
            terminated,
            bool(truncated),
            self._info(events, ego_state, arrays),
        )

    def render(self):
        if self.render_mode != "rgb_array":
            return None
        return self.overview()

    def overview(
        self, size_px: tuple[int, int] = (256, 256), metres_per_pixel: float = 0.5
    ) -> np.ndarray:
        """A north-up view centred on the ego, with the route drawn: for people, not agents.

        :meth:`overview_transform` gives its world -> pixel map, to draw more on it.
        """
        ego = self.world.vehicle
        xy = self._overview_centre_m()
        return self.renderer.top_down(
            size_px,
            metres_per_pixel,
            xy,
            self._scene_objects(),
            xy,
            hw_to_world_heading(ego.heading),
            ego.LENGTH,
            ego.WIDTH,
            route_m=self.route.points_m,
        )

    def overview_transform(
        self, size_px: tuple[int, int] = (256, 256), metres_per_pixel: float = 0.5
    ) -> tuple[np.ndarray, np.ndarray]:
        """The affine world -> pixel map ``(m, t)`` of :meth:`overview` with the same
        arguments, in the current state (see :func:`sim.world.render.top_down_transform`)."""
        return top_down_transform(size_px, metres_per_pixel, self._overview_centre_m())

    def _overview_centre_m(self) -> np.ndarray:
        """The overview's centre: the ego's position (world frame)."""
        return hw_to_world_xy(self.world.vehicle.position)

    def close(self) -> None:
        self.world.close()

    # -- internals ----------------------------------------------------------------------------
    def _load_geometry(self) -> None:
        key = (
            self.scenario.world,
            repr(sorted(self.scenario.world_config.items())),
            repr(self.world.map_key()),
        )
        if key not in _GEOMETRY_CACHE:
            while len(_GEOMETRY_CACHE) >= GEOMETRY_CACHE_SIZE:  # the oldest map goes first
                _GEOMETRY_CACHE.pop(next(iter(_GEOMETRY_CACHE)))
            _GEOMETRY_CACHE[key] = (RoadGeometry.from_network(self.world.road.network), {})
        self.geometry, renderers = _GEOMETRY_CACHE[key]
        condition = self.palettes.condition
        if condition not in renderers:
            renderers[condition] = SceneRenderer(self.geometry, self.palettes.bev)
        self.renderer = renderers[condition]

    def _ego_state(self) -> dict[str, Any]:
        ego = self.world.vehicle
        s_lane, lat_hw = ego.lane.local_coordinates(ego.position)
        heading = float(wrap_angle(hw_to_world_heading(ego.heading)))
        lane_heading = float(hw_to_world_heading(ego.lane.heading_at(s_lane)))
        return {
            "position_m": hw_to_world_xy(ego.position),
            "heading_rad": heading,
            "speed_mps": float(ego.speed),
            "lane_id": lane_id(ego.lane_index),
            "lateral_offset_m": -float(lat_hw),  # left-positive
            "heading_error_rad": float(wrap_angle(heading - lane_heading)),
            "length_m": float(ego.LENGTH),
            "width_m": float(ego.WIDTH),
        }

    def _on_road(self) -> bool:
        ego = self.world.vehicle
        if ego.lane.on_lane(ego.position):
            return True
        return any(lane.on_lane(ego.position) for lane in self.world.road.network.lanes_list())

    def _collision_kind(self) -> str | None:
        """What the ego hit this step: ``"vehicle"``, ``"object"``, or None."""
        ego = self.world.vehicle
        if not ego.crashed:
            return None
        # highway-env flags both parties `crashed`; the ego's partner is the nearest flagged
        # object within touching distance (traffic may have crashed elsewhere earlier)
        best, best_d = None, np.inf
        for o in self._objects:
            if getattr(o, "crashed", False) or getattr(o, "hit", False):
                d = float(np.linalg.norm(o.position - ego.position))
                reach = (ego.diagonal + o.diagonal) / 2 + ego.speed * self.scenario.dt_s + 1.0
                if d < min(best_d, reach):
                    best, best_d = o, d
        return "object" if isinstance(best, Obstacle) else "vehicle"

    def _events(self, collision: str | None) -> dict[str, Any]:
        ego = self.world.vehicle
        _, lat = ego.lane.local_coordinates(ego.position)
        return {
            "collision": collision,
            "offroad": not self._on_road(),
            "lane_departure": bool(abs(lat) > LANE_DEPARTURE_M),
            "route_completed": self.progress.max_s_m >= self.route.length_m,
        }

    def _object_arrays(self) -> dict[str, np.ndarray]:
        """Every other object's state, world frame; sizes and kinds are fixed per episode."""
        objs = self._objects
        pos = np.array([o.position for o in objs], dtype=np.float64).reshape(-1, 2)
        pos[:, 1] *= -1.0
        heading = -np.array([o.heading for o in objs], dtype=np.float64)
        speed = np.array([o.speed for o in objs], dtype=np.float64)
        if self._object_static is None or self._object_static[0] is not objs:
            self._object_static = (
                objs,
                np.array([o.LENGTH for o in objs], dtype=np.float64),
                np.array([o.WIDTH for o in objs], dtype=np.float64),
                np.array(
                    [KIND_OBSTACLE if isinstance(o, Obstacle) else KIND_VEHICLE for o in objs],
                    dtype=np.int8,
                ),
            )
        _, length, width, kind = self._object_static
        return {
            "position_m": pos,
            "heading_rad": heading,
            "speed_mps": speed,
            "length_m": length.copy(),
            "width_m": width.copy(),
            "kind": kind.copy(),
        }

    def object_arrays(self) -> dict[str, np.ndarray]:
        """Every other object's state now (world frame, structure of arrays: ``position_m``,
        ``heading_rad``, ``speed_mps``, ``length_m``, ``width_m``, ``kind``), a copy a caller
        may edit and hand back to :meth:`render_camera` / :meth:`render_bev` to render a
        counterfactual scene (``drive probe``); the world itself is never changed."""
        return {k: np.array(v, copy=True) for k, v in self._object_arrays().items()}

    def render_bev(self, arrays: dict[str, np.ndarray] | None = None) -> np.ndarray:
        """The bird's-eye ``bev`` frame of the current ego pose over ``arrays`` (default: the
        scene as it is), as :meth:`_observe` renders it."""
        ego = self.world.vehicle
        return self.renderer.ego_camera(
            self.bev_camera,
            hw_to_world_xy(ego.position),
            hw_to_world_heading(ego.heading),
            self._scene_objects(arrays),
            ego.LENGTH,
            ego.WIDTH,
        )

    def _scene_objects(self, arrays: dict | None = None) -> SceneObjects:
        a = arrays if arrays is not None else self._object_arrays()
        return SceneObjects(
            a["position_m"], a["heading_rad"], a["length_m"], a["width_m"], a["kind"]
        )

    def _observe(self, arrays: dict[str, np.ndarray] | None = None) -> dict[str, Any]:
        ego = self.world.vehicle
        obs: dict[str, Any] = {}
        if "bev" in self.sensors:
            obs["bev"] = self.render_bev(arrays)
        if "speed" in self.sensors:
            obs["speed"] = np.array([ego.speed], dtype=np.float32)
        if "pose" in self.sensors:
            xy = hw_to_world_xy(ego.position)
            obs["pose"] = np.array([xy[0], xy[1], wrap_angle(hw_to_world_heading(ego.heading))])
        if "command" in self.sensors:
            obs["command"] = COMMANDS.index(self.command)
        for name in self._rig_sensors:
            obs[name] = self.render_camera(self.rig[name], arrays).image
        return obs

    def render_camera(
        self,
        camera: PinholeCamera,
        arrays: dict[str, np.ndarray] | None = None,
        instance: bool = False,
        depth: bool = False,
        colour_seed: int = 0,
    ) -> PerspectiveFrame:
        """Render a perspective ``camera`` on the current state: the ego's pose, every other
        vehicle and obstacle (identities = the ``truth`` sensor's ids, their index), the
        road map (one cached :class:`~sim.world.perspective.PerspectiveRenderer` per map and
        visual condition), in the scenario's visual condition.

        :param arrays: this step's object arrays, when already built (else built here)
        """
        ego = self.world.vehicle
        a = arrays if arrays is not None else self._object_arrays()
        return renderer_for(self.geometry, self.palettes.rig).render(
            camera,
            hw_to_world_xy(ego.position),
            float(hw_to_world_heading(ego.heading)),
            self._scene_objects(a),
            ids=np.arange(len(a["kind"])),
            colour_seed=colour_seed,
            instance=instance,
            depth=depth,
        )

    def truth_of(self, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The ``truth`` sensor of an edited scene (:meth:`object_arrays`, changed): what the
        privileged expert would read there (``drive probe``'s teacher row); ids number the
        scene's objects in order."""
        return self._truth(arrays)

    def _truth(self, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Every other object (vehicles and obstacles), world frame, structure of arrays."""
        h = arrays["heading_rad"]
        vel = arrays["speed_mps"][:, None] * np.stack([np.cos(h), np.sin(h)], axis=-1)
        return {
            "id": np.arange(len(arrays["position_m"]), dtype=np.int64),
            "kind": arrays["kind"].copy(),  # index into TRUTH_KINDS
            "position_m": arrays["position_m"],
            "heading_rad": h,
            "velocity_mps": vel,
            "speed_mps": arrays["speed_mps"],
            "length_m": arrays["length_m"],
            "width_m": arrays["width_m"],
            "height_m": object_heights(arrays["length_m"], arrays["kind"]),  # as the rig draws them
        }

    def _min_ttc(self, arrays: dict[str, np.ndarray], ego_state: dict[str, Any]) -> float:
        """Time-to-collision [s] with the nearest object ahead in the ego's corridor."""
        if not len(arrays["position_m"]):
            return TTC_HORIZON_S
        gap, closing, in_lane = corridor_ahead(arrays, ego_state)
        ok = in_lane & (closing > 1e-6)
        if not ok.any():
            return TTC_HORIZON_S
        ttc = np.maximum(gap[ok], 0.0) / closing[ok]
        return float(min(TTC_HORIZON_S, ttc.min()))

    def _info(
        self, events: dict[str, Any], ego_state: dict[str, Any], arrays: dict[str, np.ndarray]
    ) -> dict[str, Any]:
        ego_state = {
            **ego_state,
            "time_s": self.time_s,
            "progress_m": self.progress.s_m,
            "route_offset_m": self.progress.offset_m,
            "route_completion": self.progress.completion,
            "ttc_s": self._min_ttc(arrays, ego_state),
        }
        info: dict[str, Any] = {"events": events, "ego": ego_state, "command": self.command}
        if "truth" in self.sensors:
            info["truth"] = self._truth(arrays)
        if "map" in self.sensors and self.steps == 0:
            # static for the episode: in the reset info only; the control loop re-hands it
            # to agents each step
            info["map"] = {"lanes": self.geometry.map_sensor(), "route": self.route.sensor()}
        if "autopilot" in self.sensors:
            info["autopilot"] = self.autopilot.action()
        return info
