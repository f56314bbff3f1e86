"""DESIGN.md's import rules: only ``sim`` talks to highway-env; planning is pure numpy."""

import subprocess
import sys

import pytest

PROBE = """
import sys, importlib, pkgutil
package = importlib.import_module({module!r})
for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
    importlib.import_module(info.name)  # every module of the package, not just its __init__
bad = sorted(m for m in sys.modules if m.split('.')[0] in {forbidden!r})
print(",".join(bad))
"""


@pytest.mark.parametrize("module,forbidden", [
    ("agents", {"highway_env", "sim", "pygame"}),
    ("planning", {"highway_env", "sim", "pygame", "torch", "gymnasium"}),
    ("perception", {"highway_env", "pygame"}),
])
def test_package_does_not_import(module, forbidden):
    out = subprocess.run([sys.executable, "-c", PROBE.format(module=module, forbidden=forbidden)],
                         capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "", f"{module} imports {out.stdout.strip()}"
