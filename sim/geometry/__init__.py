"""Sensor geometry: camera models (pixel <-> ego-frame metres) and coordinate frames.

Pure numpy, importable without highway-env, so perception, the trainers and the renderer
share one implementation of every pixel <-> metre map.

- ``bev``: :class:`~sim.geometry.bev.BevCamera`, the bird's-eye raster that turns with
  the car (metres per pixel, ego pixel): a privileged top-down map view, kept as a camera
  model of its own for ablations (the ``bev`` sensor).
- ``pinhole``: :class:`~sim.geometry.pinhole.PinholeCamera`, a perspective camera
  (intrinsics from size and horizontal FOV; mount x, y, z, yaw, pitch, roll in the ego
  frame): ego point <-> camera frame, ego point -> pixel + depth, pixel -> ray, pixel ->
  road plane, horizon row; :class:`~sim.geometry.pinhole.CameraRig`, an ordered set of named
  cameras (sensor names such as ``cam_front``), and ``default_rig()``.
- ``frames``: highway-env's y-down screen frame <-> the world frame, world <-> ego.

This ``__init__`` imports nothing: import the module you need.
"""
