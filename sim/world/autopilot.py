"""highway-env's own driver model, computed for the ego: the ``autopilot`` sensor.

The ``idm`` baseline drives with exactly what highway-env's traffic uses: the
Intelligent Driver Model for speed (Treiber et al. 2000), MOBIL for lane changes
(Kesting et al. 2007) and highway-env's cascaded lane-following controller.  Agents
may not import highway-env (DESIGN.md), so ``sim`` computes that decision and
exposes it, normalised, as the privileged ``autopilot`` sensor.

A *shadow* :class:`IDMVehicle` keeps the model's own state (target lane, MOBIL
timer, route) across steps.  Each decision copies the ego's pose into it, swaps it
into the road's vehicle list in the ego's place (so neighbour search sees it where
the ego is, and not the ego as a car 0 m ahead), calls its ``act()`` and swaps back.
It never steps and draws no random numbers, so computing it does not change the
simulation.
"""

from __future__ import annotations

import numpy as np
from highway_env.vehicle.behavior import IDMVehicle

from sim.world.scenarios import ACCELERATION_RANGE_MPS2, STEERING_RANGE_RAD


class IDMAutopilot:
    def __init__(
        self,
        world,
        *,
        target_speed_mps: float,
        lane_changes: bool,
        destination: str | None,
        dt_s: float,
        longitudinal: bool,
    ) -> None:
        ego = world.vehicle
        self.world = world
        self.dt_s = dt_s
        self.longitudinal = longitudinal
        self.shadow = IDMVehicle(
            world.road,
            ego.position.copy(),
            heading=ego.heading,
            speed=ego.speed,
            target_speed=target_speed_mps,
            enable_lane_change=lane_changes,
        )
        self.shadow.lane_index, self.shadow.lane = ego.lane_index, ego.lane
        self.shadow.target_lane_index = ego.lane_index
        if destination is not None:
            self.shadow.plan_route_to(destination)

    def action(self) -> np.ndarray:
        """The normalised action highway-env's IDM/MOBIL driver would take now."""
        ego, sh = self.world.vehicle, self.shadow
        sh.position = ego.position.copy()
        sh.heading, sh.speed = ego.heading, ego.speed
        sh.lane_index, sh.lane = ego.lane_index, ego.lane
        sh.crashed = ego.crashed
        road = self.world.road
        vehicles = road.vehicles
        i = next(k for k, v in enumerate(vehicles) if v is ego)
        vehicles[i] = sh
        try:
            batch = getattr(road, "batched_queries", None)  # FastRoad: share one snapshot
            if batch is None:
                sh.act()
            else:
                with batch():
                    sh.act()
        finally:
            vehicles[i] = ego
        sh.timer += self.dt_s
        # highway-env steers clockwise-positive on its y-down screen; the project is ccw-positive
        steer = float(np.clip(-sh.action["steering"] / STEERING_RANGE_RAD, -1.0, 1.0))
        if not self.longitudinal:
            return np.array([steer], dtype=np.float32)
        acc = float(np.clip(sh.action["acceleration"] / ACCELERATION_RANGE_MPS2, -1.0, 1.0))
        return np.array([acc, steer], dtype=np.float32)
