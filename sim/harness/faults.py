"""Sensor and actuation faults the harness applies (``highway:noise=2``), at three severities.

A scenario names its faults (:attr:`sim.world.scenarios.Scenario.faults`, kinds in
:data:`~sim.world.scenarios.FAULTS`); the control loop builds one :class:`FaultInjector` per
episode and passes every agent view through :meth:`FaultInjector.observe` and every action
through :meth:`FaultInjector.act`.  The world itself stays clean: events, metrics and videos
see the real state, only what the agent reads (its sensors, the ``truth`` sensor included)
and what its actuators deliver degrade.

Severities (one table, :data:`SEVERITY`; natural units; level 1 / 2 / 3):

==========  =========================================  ==================  =========================
kind        what it models                             parameter           level 1 / 2 / 3
==========  =========================================  ==================  =========================
noise       sensor read-out noise, every camera        Gaussian sigma      8 / 16 / 32 grey levels
blur        defocus / motion blur, every camera        Gaussian sigma      1 / 2 / 4 px
brightness  under-exposure, every camera               additive shift      -40 / -80 / -120
                                                                           grey levels
dirt        mud on each lens, fixed for the episode    image area covered  5 / 15 / 30 %
drop        camera frames lost in transport            P(step dropped)     0.1 / 0.3 / 0.5
pose        localisation (GPS-like) error on ``pose``  episode bias +      0.25 / 0.5 / 1.0 m and
                                                       per-step noise      0.5 / 1 / 2 deg
speed       speedometer error on ``speed``             episode scale +     5 / 10 / 20 % and
                                                       per-step noise      0.25 / 0.5 / 1.0 m/s
latency     actuation delay                            delay               67 / 133 / 267 ms
                                                                           (1 / 2 / 4 steps at
                                                                           15 Hz)
==========  =========================================  ==================  =========================

Details that decide what an agent sees:

* cameras are the rig's cameras and the ``bev`` raster (:data:`CAMERA_SENSORS`); image faults
  compose in the physical order lens (dirt) -> optics (blur) -> exposure (brightness) ->
  read-out (noise) -> transport (drop), whatever order the scenario names them in;
* ``drop``: one draw per step for the whole rig (a stalled camera bus); on a dropped step every
  camera repeats the frame it last delivered, exactly; the first step always delivers;
* ``pose``: a bias fixed for the episode, of exactly the level's size (position: that many
  metres in a uniformly random direction; heading: that many degrees, random sign), plus white
  noise per step with the same sigma per axis, as a GNSS fix with a slowly varying offset
  would hit a map-based stack; objects the agent senses (the privileged ``truth`` sensor)
  stay exact relative to the car, so in the world frame they carry the same error
  (:func:`carried_by_pose_error`): the fault hits where the car places itself on the map;
* ``speed``: a scale error fixed for the episode, of exactly the level's size with a random
  sign (a wrong tyre radius), plus white noise per step; a speedometer never reads below 0;
* ``latency``: the action an agent decides at step t reaches the world at step t + k; the first
  k steps apply the neutral action (zero acceleration, zero steering).

Randomness: every fault draws from its own stream,
``SeedSequence([seed, FAULT_STREAM, kind index, crc32(sensor)])``, so the same episode seed
gives bit-identical faults, the env's own randomness is untouched, and adding a fault or a
camera never changes the draws of another.
"""

from __future__ import annotations

import zlib
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from perception.corruptions import apply_lens_dirt, corrupt, lens_dirt_mask
from planning.geometry import wrap_angle
from sim.geometry.pinhole import camera_sensors, default_rig
from sim.world.scenarios import FAULT_LEVELS, FAULTS

CAMERA_SENSORS = camera_sensors(default_rig())
"""Image sensors (``uint8[H, W, 3]``) the image faults degrade: the bird's-eye raster and the
default rig's cameras (an env with another rig: pass its names to :class:`FaultInjector`)."""

SEVERITY: dict[str, tuple[Any, ...]] = {
    "noise": (8.0, 16.0, 32.0),  # [grey levels] Gaussian sigma per pixel and channel
    "blur": (1.0, 2.0, 4.0),  # [px] Gaussian sigma
    "brightness": (-40.0, -80.0, -120.0),  # [grey levels] added to every channel
    "dirt": (0.05, 0.15, 0.30),  # [fraction of image area] covered by mud, per lens
    "drop": (0.3, 0.6, 0.9),  # [probability] that a step delivers no new camera frame
    "pose": (
        (0.25, np.deg2rad(0.5)),
        (0.5, np.deg2rad(1.0)),
        (1.0, np.deg2rad(2.0)),
    ),  # ([m], [rad])
    "speed": (
        (0.05, 0.25),
        (0.10, 0.5),
        (0.20, 1.0),
    ),  # ([fraction] scale error, [m/s] noise sigma)
    "latency": (0.067, 0.133, 0.267),  # [s] actuation delay; whole control periods in effect
}
"""Severity of each fault kind at levels 1, 2, 3 (index ``level - 1``); units as commented and
in the module's table."""

FAULT_TARGETS = {
    **{kind: "cameras" for kind in ("noise", "blur", "brightness", "dirt", "drop")},
    "pose": "pose",
    "speed": "speed",
    "latency": "actuators",
}
"""What each fault kind degrades: the camera sensors, one named sensor, or the actuators
(which every agent drives through)."""

IMAGE_ORDER = ("dirt", "blur", "brightness", "noise", "drop")
"""Image faults in the order light meets them: lens, optics, exposure, read-out, transport."""

FAULT_STREAM = 0xFA017
"""Fixed entropy word that separates the fault streams from every other use of a seed."""


def _check(kind: str, level: int) -> None:
    if kind not in FAULTS:
        raise ValueError(f"unknown fault {kind!r}; known: {', '.join(FAULTS)}")
    if level not in FAULT_LEVELS:
        raise ValueError(
            f"fault {kind!r}: level {level!r} is not one of {', '.join(map(str, FAULT_LEVELS))}"
        )


def severity(kind: str, level: int) -> Any:
    """The severity of fault ``kind`` at ``level`` (units: :data:`SEVERITY`)."""
    _check(kind, level)
    return SEVERITY[kind][level - 1]


def latency_steps(level: int, dt_s: float) -> int:
    """Whole control periods of delay for latency ``level`` at control period ``dt_s`` [s]: the
    delay rounded to the loop's grid, at least one step (a fault that delays nothing is none)."""
    return max(1, round(severity("latency", level) / dt_s))


def describe_fault(kind: str, level: int, dt_s: float = 1.0 / 15.0) -> str:
    """Fault ``kind`` at ``level`` in words with units, for reports (``dt_s``: the control
    period [s] latency is counted in)."""
    s = severity(kind, level)
    if kind == "noise":
        return f"camera noise, sigma {s:g} grey levels"
    if kind == "blur":
        return f"camera blur, sigma {s:g} px"
    if kind == "brightness":
        return f"cameras {-s:g} grey levels darker"
    if kind == "dirt":
        return f"lens dirt over {100 * s:g} % of each camera image"
    if kind == "drop":
        return f"{100 * s:g} % of steps repeat the last camera frames"
    if kind == "pose":
        pos_m, head_rad = s
        return (
            f"pose off by {pos_m:g} m and {np.rad2deg(head_rad):g} deg, "
            f"plus {pos_m:g} m / {np.rad2deg(head_rad):g} deg noise per step"
        )
    if kind == "speed":
        scale, noise_mps = s
        return f"speedometer {100 * scale:g} % off, plus {noise_mps:g} m/s noise per step"
    k = latency_steps(level, dt_s)
    return f"actions {k} step{'s' if k > 1 else ''} ({1e3 * k * dt_s:.0f} ms) late"


def touches(kind: str, sensors: Iterable[str], cameras: Sequence[str] = CAMERA_SENSORS) -> bool:
    """Whether fault ``kind`` changes anything for an agent reading ``sensors``: latency hits
    every agent, the others only one that reads what they degrade (a report says "unaffected:
    does not read this sensor" otherwise)."""
    if kind not in FAULTS:
        raise ValueError(f"unknown fault {kind!r}; known: {', '.join(FAULTS)}")
    target = FAULT_TARGETS[kind]
    sensors = set(sensors)
    if target == "actuators":
        return True
    if target == "cameras":
        return bool(sensors & set(cameras))
    return target in sensors


def fault_stream(seed: int, kind: str, sensor: str = "") -> np.random.Generator:
    """The random stream of fault ``kind`` on ``sensor`` in the episode of ``seed``."""
    return np.random.default_rng(
        np.random.SeedSequence(
            [int(seed), FAULT_STREAM, FAULTS.index(kind), zlib.crc32(sensor.encode())]
        )
    )


class FaultInjector:
    """One episode's faults: degrades the agent's view and delays its actions.

    Stateful (the dropped frame's predecessor, the latency queue, the streams), so build one
    per episode and call :meth:`observe` exactly once per step, :meth:`act` once per action.
    With no faults both return their input unchanged, so a clean episode is bit-identical to
    one run without an injector.
    """

    def __init__(
        self,
        faults: Iterable[tuple[str, int]],
        seed: int,
        dt_s: float,
        cameras: Sequence[str] = CAMERA_SENSORS,
    ) -> None:
        """
        :param faults: ``(kind, level)`` pairs, e.g. ``scenario.faults``
        :param seed: the episode's seed; every draw derives from it
        :param dt_s: the control period [s] (latency is a whole number of periods)
        :param cameras: names of the image sensors the image faults degrade
        """
        self.levels: dict[str, int] = {}
        for kind, level in faults:
            _check(kind, level)
            if kind in self.levels:
                raise ValueError(f"fault {kind!r} given twice ({self.levels[kind]} and {level})")
            self.levels[kind] = int(level)
        if not dt_s > 0:
            raise ValueError(f"control period dt_s must be > 0 s, got {dt_s!r}")
        self.seed, self.dt_s, self.cameras = int(seed), float(dt_s), tuple(cameras)
        self._streams: dict[tuple[str, str], np.random.Generator] = {}
        self._dirt: dict[str, np.ndarray] = {}  # per camera: the lens's opacity, fixed per episode
        self._held: dict[str, np.ndarray] = {}  # per camera: the last frame delivered (drop)
        self._pose_bias = self._speed_scale = None
        if "pose" in self.levels:
            pos_m, head_rad = severity("pose", self.levels["pose"])
            rng = self._stream("pose")
            direction = rng.uniform(-np.pi, np.pi)
            self._pose_bias = np.array(
                [
                    pos_m * np.cos(direction),
                    pos_m * np.sin(direction),
                    head_rad * rng.choice((-1.0, 1.0)),
                ]
            )
        if "speed" in self.levels:
            scale, _ = severity("speed", self.levels["speed"])
            self._speed_scale = 1.0 + scale * self._stream("speed").choice((-1.0, 1.0))
        k = latency_steps(self.levels["latency"], self.dt_s) if "latency" in self.levels else 0
        self._queue: deque[np.ndarray | None] = deque([None] * k)  # None: the neutral action

    @property
    def active(self) -> bool:
        """Whether any fault is applied."""
        return bool(self.levels)

    def _stream(self, kind: str, sensor: str = "") -> np.random.Generator:
        key = (kind, sensor)
        if key not in self._streams:
            self._streams[key] = fault_stream(self.seed, kind, sensor)
        return self._streams[key]

    def observe(self, view: Mapping[str, Any]) -> dict[str, Any]:
        """This step's ``view`` as the faulty sensors deliver it: degraded copies of the
        sensors the faults touch, the others as they are (never written to)."""
        if not self.levels:
            return dict(view)
        out = dict(view)
        drop = "drop" in self.levels
        dropped = drop and self._stream("drop").random() < severity("drop", self.levels["drop"])
        for name in self.cameras:
            if name in out:
                out[name] = self._camera(name, out[name], dropped)
        if "pose" in out and "pose" in self.levels:
            true_pose = np.asarray(out["pose"])
            out["pose"] = self._pose(true_pose)
            if "truth" in out:  # sensed from the car: exact relative to it
                out["truth"] = carried_by_pose_error(out["truth"], true_pose, out["pose"])
        if "speed" in out and "speed" in self.levels:
            out["speed"] = self._speed(np.asarray(out["speed"]))
        return out

    def _camera(self, name: str, frame: np.ndarray, dropped: bool) -> np.ndarray:
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[-1] != 3:
            raise ValueError(
                f"camera sensor {name!r} is not a uint8[H, W, 3] image "
                f"(dtype {frame.dtype}, shape {frame.shape}); image faults need one"
            )
        if dropped and name in self._held:
            return self._held[name].copy()
        for kind in IMAGE_ORDER:
            if kind not in self.levels or kind == "drop":
                continue
            s = severity(kind, self.levels[kind])
            if kind == "dirt":
                if name not in self._dirt:
                    self._dirt[name] = lens_dirt_mask(
                        frame.shape[:2], s, self._stream("dirt", name)
                    )
                frame = apply_lens_dirt(frame, self._dirt[name])
            else:
                frame = corrupt(frame, kind, s, seed=self._stream(kind, name))
        if "drop" in self.levels:
            self._held[name] = frame.copy()
        return frame

    def _pose(self, pose: np.ndarray) -> np.ndarray:
        pos_m, head_rad = severity("pose", self.levels["pose"])
        noise = self._stream("pose").normal(0.0, (pos_m, pos_m, head_rad))
        out = pose.astype(np.float64) + self._pose_bias + noise
        out[2] = wrap_angle(out[2])
        return out.astype(pose.dtype)

    def _speed(self, speed: np.ndarray) -> np.ndarray:
        _, noise_mps = severity("speed", self.levels["speed"])
        noise = self._stream("speed").normal(0.0, noise_mps, speed.shape)
        return np.maximum(speed.astype(np.float64) * self._speed_scale + noise, 0.0).astype(
            speed.dtype
        )

    def act(self, action: np.ndarray) -> np.ndarray:
        """The action the actuators deliver this step: ``action`` itself without latency,
        else the one decided k steps ago (zeros - no acceleration, no steering - for the
        first k steps)."""
        if not self._queue:
            return action
        self._queue.append(np.array(action, dtype=np.float64))
        delivered = self._queue.popleft()
        return np.zeros_like(action, dtype=np.float64) if delivered is None else delivered


def carried_by_pose_error(
    truth: Mapping[str, Any], true_pose: np.ndarray, faulty_pose: np.ndarray
) -> dict[str, Any]:
    """The ``truth`` objects as a car whose localisation reads ``faulty_pose`` places them:
    objects are sensed relative to the car, so their geometry relative to it stays exact and,
    in the world frame, they carry the pose's error (the rigid transform taking the true pose
    to the faulty one).  Without it a pose fault moved the privileged expert's objects
    against its own position, an error no perception stack makes: a GNSS offset hits where a
    car places itself on the map, not where it sees the car ahead."""
    true_pose = np.asarray(true_pose, dtype=np.float64)
    faulty_pose = np.asarray(faulty_pose, dtype=np.float64)
    dtheta = float(wrap_angle(faulty_pose[2] - true_pose[2]))
    c, s = np.cos(dtheta), np.sin(dtheta)
    rot = np.array([[c, -s], [s, c]])
    out = dict(truth)
    pos = np.asarray(truth["position_m"], dtype=np.float64).reshape(-1, 2)
    out["position_m"] = (pos - true_pose[:2]) @ rot.T + faulty_pose[:2]
    out["heading_rad"] = wrap_angle(np.asarray(truth["heading_rad"], dtype=np.float64) + dtheta)
    if "velocity_mps" in truth:
        vel = np.asarray(truth["velocity_mps"], dtype=np.float64).reshape(-1, 2)
        out["velocity_mps"] = vel @ rot.T
    return out
