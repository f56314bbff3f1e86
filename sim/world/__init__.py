"""The world: scenarios, highway-env worlds, fast physics, the shadow autopilot, the road
map and route, the sensor renderer, and the gymnasium env (:class:`sim.world.env.DrivingEnv`).

The only part of the project that talks to highway-env.
"""
