"""DESIGN.md's import rules, checked in fresh interpreters (so nothing imported by another
test hides a violation):

- only ``sim.world`` talks to highway-env, and ``import sim`` does not load it;
- ``sim.world`` imports nothing from the harness, the pipelines, the report, the benchmarks
  or the agents;
- ``agents`` and ``perception`` import no ``sim`` module but the sensor geometry
  (``sim.geometry``) and the atomic-write helpers (``sim.harness.io``);
- ``planning`` is pure numpy (the standard library and numpy; numba, when installed,
  compiles its rollout loop, and without it planning still runs);
- inference modules (the agents by name, the detectors) import no training module.
"""

import json
import subprocess
import sys

import pytest

PROBE = """
import importlib, json, pkgutil, sys
for name in {modules!r}:
    module = importlib.import_module(name)
    if {walk!r} and hasattr(module, "__path__"):
        for info in pkgutil.walk_packages(module.__path__, module.__name__ + "."):
            importlib.import_module(info.name)  # every module of the package, not just its __init__
print(json.dumps(sorted(sys.modules)))
"""

LEAF_SIM = {"sim", "sim.geometry", "sim.harness", "sim.harness.io"}
"""What of ``sim`` perception and the agents may load: package inits and the leaf modules."""


def loaded_modules(*modules: str, walk: bool = True) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(modules=list(modules), walk=walk)],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert out.returncode == 0, f"importing {modules} failed:\n{out.stderr[-2000:]}"
    return set(json.loads(out.stdout))


def top(names: set[str]) -> set[str]:
    return {n.split(".")[0] for n in names}


def test_import_sim_loads_no_simulator():
    loaded = loaded_modules("sim", walk=False)
    assert not top(loaded) & {"highway_env", "pygame", "torch"}, "import sim must stay light"


def test_sensor_geometry_is_pure_numpy():
    loaded = loaded_modules("sim.geometry")  # every module: camera, pinhole, frames
    assert not top(loaded) & {
        "highway_env",
        "pygame",
        "torch",
        "cv2",
        "gymnasium",
        "scipy",
        "agents",
        "perception",
        "planning",
    }
    other_sim = sorted(
        m
        for m in loaded
        if top({m}) == {"sim"}
        and m not in {"sim", "sim.geometry"}
        and not m.startswith("sim.geometry.")
    )
    assert not other_sim, f"sim.geometry imports {other_sim}"


def test_world_imports_nothing_downstream():
    loaded = loaded_modules("sim.world")
    bad = sorted(
        m
        for m in loaded
        if m.startswith(
            (
                "sim.harness",
                "sim.pipelines",
                "sim.report",
                "sim.bench",
                "sim.cli",
                "agents",
                "perception",
            )
        )
    )
    assert not bad, f"sim.world imports {bad}"


@pytest.mark.parametrize("package", ["agents", "perception"])
def test_agents_and_perception_see_only_the_sensor_geometry_of_sim(package):
    loaded = loaded_modules(package)
    sim_modules = {m for m in loaded if top({m}) == {"sim"}}
    bad = sorted(m for m in sim_modules if m not in LEAF_SIM and not m.startswith("sim.geometry."))
    assert not bad, f"{package} imports {bad}"
    assert not top(loaded) & {"highway_env", "pygame"}


def test_planning_is_pure_numpy():
    loaded = loaded_modules("planning")
    # numpy's and numba's own imports are their business (numba loads scipy when it finds it);
    # what planning pulls in beyond them is not
    theirs = top(loaded_modules("numpy", "numba", walk=False))
    third_party = (
        top(loaded)
        - set(sys.stdlib_module_names)
        - {"planning", "numpy", "numba", "__main__"}
        - theirs
    )
    assert not third_party & {
        "sim",
        "agents",
        "perception",
        "torch",
        "gymnasium",
        "highway_env",
        "cv2",
        "scipy",
        "pygame",
    }, f"planning imports {sorted(third_party)}"


WITHOUT_NUMBA = """
import sys
sys.modules["numba"] = None  # as if it were not installed
import numpy as np
from planning.jit import COMPILED
from tests.test_planning_planner import TIMES, objects, three_lane_map, options
from planning.planner import EgoState, Planner
from planning.prediction import forecast
ego = EgoState(100.0, 0.0, 0.0, 20.0)
p = Planner().plan(
    ego,
    options(three_lane_map(), ego),
    forecast(objects([(130.0, 0.0, 0.0, 10.0)]), TIMES, "cv"),
)
print(
    COMPILED,
    "numba" in sys.modules and sys.modules["numba"] is not None,
    p.trajectory_m.tobytes().hex(),
)
"""


def test_planning_runs_on_numpy_alone_when_numba_is_missing():
    """DESIGN.md: planning needs numpy only. Without numba the rollout loop runs as Python,
    and plans exactly what the compiled loop plans."""
    from planning.planner import EgoState, Planner
    from planning.prediction import forecast
    from tests.test_planning_planner import TIMES, objects, options, three_lane_map

    out = subprocess.run(
        [sys.executable, "-c", WITHOUT_NUMBA],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    compiled, has_numba, trajectories = out.stdout.split()
    assert compiled == "False" and has_numba == "False"
    ego = EgoState(100.0, 0.0, 0.0, 20.0)
    here = Planner().plan(
        ego,
        options(three_lane_map(), ego),
        forecast(objects([(130.0, 0.0, 0.0, 10.0)]), TIMES, "cv"),
    )  # compiled, in this process
    assert bytes.fromhex(trajectories) == here.trajectory_m.tobytes()


def test_inference_imports_no_training_code():
    """Driving never imports training: building every agent by name and running a detector
    loads no trainer, no TensorBoard writer and no RL library."""
    loaded = loaded_modules("agents.registry", "perception.detectors", walk=False)
    training = sorted(
        m
        for m in loaded
        if m.startswith(("agents", "perception"))
        and any(part in ("train", "training", "trainer") for part in m.split("."))
    )
    assert not training, f"inference imports training modules {training}"
    assert "torch.utils.tensorboard" not in loaded
    assert "stable_baselines3" not in top(loaded)


HARNESS_RUN = (
    "sim.harness.episodes",
    "sim.harness.loop",
    "sim.harness.parallel",
    "sim.harness.ray_backend",
    "sim.harness.run",
    "sim.harness.evaluate",
)
"""The harness's run path: the episode runner, the loop, both episode pools, drive run/eval."""


def test_the_harness_writes_no_report():
    """A video reaches a run as an observer factory it is handed (sim.report.video.VideoFile);
    the run path itself imports no report module."""
    loaded = loaded_modules(*HARNESS_RUN, walk=False)
    report = sorted(m for m in loaded if m == "sim.report" or m.startswith("sim.report."))
    assert not report, f"the harness imports {report}"


def test_the_harness_modules_import_each_other_without_a_cycle():
    """Every import among sim.harness's modules, at the top or inside a function, forms a
    chain (episodes <- parallel <- ray_backend <- run <- evaluate), never a cycle."""
    import ast
    from pathlib import Path

    import sim.harness

    folder = Path(sim.harness.__file__).parent
    graph: dict[str, set[str]] = {}
    for path in folder.glob("*.py"):
        name = f"sim.harness.{path.stem}"
        edges = graph.setdefault(name, set())
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                targets = [node.module]
                if node.module == "sim.harness":
                    targets = [f"sim.harness.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            edges |= {t for t in targets if t.startswith("sim.harness.") and t != name}

    def cycle_from(start: str, path: list[str]) -> list[str] | None:
        for nxt in sorted(graph.get(path[-1], ())):
            if nxt == start:
                return [*path, nxt]
            if nxt not in path:
                found = cycle_from(start, [*path, nxt])
                if found:
                    return found
        return None

    for module in sorted(graph):
        cycle = cycle_from(module, [module])
        assert cycle is None, " -> ".join(cycle)
