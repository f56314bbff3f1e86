"""Sensor geometry: camera models (pixel <-> ego-frame metres) and coordinate frames.

Pure numpy, importable without highway-env, so perception, the trainers and the renderer
share one implementation of every pixel <-> metre map.
"""
