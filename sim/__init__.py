"""Simulation: the sensor geometry (``sim.geometry``), the world (``sim.world``), the harness
(``sim.harness``), the outputs (``sim.report``), the pipelines (``sim.pipelines``), the
benchmarks (``sim.bench``) and the ``drive`` CLI (``sim.cli``).

Importing ``sim`` or ``sim.geometry`` imports nothing heavy: perception and the trainers use
the sensor geometry without loading the simulator.  The gymnasium ids (``drive/highway-v0``
...) are registered by ``sim.world``: ``import sim.world`` then ``gym.make("drive/highway-v0")``,
or in one call ``gym.make("sim.world:drive/highway-v0")``.
"""
