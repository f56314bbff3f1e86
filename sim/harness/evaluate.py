"""``drive eval``: every agent on every scenario, on the same seeds, into one results file.

``DIR/config.json`` is written first: the agents (with their checkpoints and the SHA-256 of
every checkpoint file), the scenarios, the seed list, the camera, versions and the git
revision.  Then each finished episode is appended to ``DIR/results.jsonl`` atomically (one
line: agent, scenario, seed, status, every metric, decision latency p50/p99, device,
versions), and its per-step trace goes to ``DIR/traces/``.

``--resume`` reads ``results.jsonl`` and runs only the (agent, scenario, seed) triples it
lacks.  Episodes are deterministic per seed, so a run killed at any moment (``kill -9``
included: every line is written whole, by rename) and resumed ends with the same results as
an uninterrupted one, wall-clock fields aside (:data:`TIMING_FIELDS`).  A damaged results
file, or a resume whose agents, scenarios, seeds or checkpoints differ from the run it
continues, stops with the reason; nothing is silently restarted or overwritten.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

from agents import make_agent
from sim.geometry.camera import CameraSpec
from sim.harness.io import append_jsonl, atomic_write_json, ensure_writable_dir, read_jsonl
from sim.harness.parallel import fault_requested
from sim.harness.run import run_seeds, scenario_record, task_spec
from sim.harness.versions import git_revision, package_versions
from sim.world.scenarios import get_scenario

RESULTS = "results.jsonl"
CONFIG = "config.json"
TIMING_FIELDS = ("latency_p50_ms", "latency_p99_ms")
"""Wall-clock measurements: the only fields that differ between two runs of the same seeds."""
MATCHED = ("agents", "scenarios", "seeds", "camera", "duration_s", "checkpoints", "decision_timeout_s")
"""What a resumed run must share with the run it continues."""
DECISION_TIMEOUT_S = 5.0
"""A decision slower than this ends its episode with ``timeout`` (at 15 Hz a decision is due
every 67 ms; 5 s leaves room for a GPU's first call, not for a hang)."""


def checkpoint_hashes(path: str | Path) -> dict[str, str]:
    """SHA-256 of every file directly in a checkpoint folder (logs in sub-folders aside)."""
    out = {}
    for f in sorted(Path(path).iterdir()):
        if f.is_file() and not f.name.startswith("."):
            out[f.name] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out


def _key(record: dict) -> tuple[str, str, int]:
    return str(record["agent"]), str(record["scenario"]), int(record["seed"])


def read_results(path: str | Path) -> list[dict]:
    """The records of a results file; a damaged one is an error naming the file and line."""
    path = Path(path)
    records = read_jsonl(path)
    for k, r in enumerate(records, start=1):
        missing = [f for f in ("agent", "scenario", "seed", "status") if f not in r]
        if missing:
            raise ValueError(f"{path}: record {k} lacks {', '.join(missing)}; not a drive eval results file")
    return records


def run_eval(out: str | Path, agents: Sequence[str], scenarios: Sequence[str], seeds: Sequence[int], *,
             workers: int = 1, device: str | None = None, resume: bool = False,
             duration_s: float | None = None, camera: CameraSpec | None = None, progress: bool = True,
             argv: Sequence[str] | None = None, decision_timeout_s: float | None = DECISION_TIMEOUT_S) -> list[dict]:
    """Run every agent on every scenario for ``seeds``; return all records of ``out``."""
    out = Path(out)
    camera = camera or CameraSpec()
    agents, scenarios, seeds = list(agents), list(scenarios), [int(s) for s in seeds]
    if not agents or not scenarios or not seeds:
        raise ValueError("drive eval needs at least one agent, one scenario and one seed")
    if len(set(seeds)) != len(seeds):
        raise ValueError("the seed list repeats a seed")
    worlds = {name: get_scenario(name, **({"duration_s": duration_s} if duration_s else {}))
              for name in scenarios}  # unknown names fail here, listing the known ones
    checkpoints: dict[str, dict[str, Any]] = {}
    experience: dict[str, dict[str, Any]] = {}
    sensors: dict[str, list[str]] = {}
    for spec in agents:  # fail fast: bad names, missing checkpoints (per scenario: e2e's default is)
        for name in scenarios:
            probe = make_agent(spec, task_spec(worlds[name], camera), device=device)
            probe.prepare()
            sensors[spec] = list(probe.sensors)
            for path in probe.checkpoints():  # one per agent today (e2e: its policy; modular: its detector)
                checkpoints.setdefault(spec, {})[name] = {"path": str(path), "sha256": checkpoint_hashes(path)}
            learned = probe.experience()  # what a learned policy learned from (demo frames, env steps)
            if learned is not None:
                experience.setdefault(spec, {})[name] = learned
    config = {
        "agents": agents, "scenarios": scenarios, "seeds": seeds, "camera": camera.to_dict(),
        "duration_s": duration_s, "checkpoints": checkpoints, "experience": experience, "sensors": sensors,
        "decision_timeout_s": decision_timeout_s,
        "scenario_specs": {n: scenario_record(w) for n, w in worlds.items()},
        "workers": int(workers), "device": device or "auto", "command": list(argv) if argv else None,
        "versions": package_versions(), "git_revision": git_revision(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    out = ensure_writable_dir(out)
    results_path, config_path = out / RESULTS, out / CONFIG
    done: set[tuple[str, str, int]] = set()
    if results_path.exists() or config_path.exists():
        if not resume:
            raise FileExistsError(f"{out} already holds an evaluation; pass --resume to continue it, "
                                  "or choose a new --out folder")
        _check_resumable(config_path, config)
        if results_path.exists():
            done = {_key(r) for r in read_results(results_path)}
    else:
        atomic_write_json(config_path, config)
    versions = config["versions"]
    todo = [(s, a, [seed for seed in seeds if (a, s, seed) not in done]) for s in scenarios for a in agents]
    todo = [t for t in todo if t[2]]
    if progress and done:
        print(f"resuming: {len(done)} episodes done, {sum(len(t[2]) for t in todo)} to run", flush=True)
    written = [0]  # results lines this process wrote (the testing hook's count)
    for scenario_name, spec, todo_seeds in todo:
        bar = tqdm(total=len(todo_seeds), desc=f"{spec} on {scenario_name}", unit="ep",
                   disable=not progress, dynamic_ncols=True)

        def on_record(record: dict, bar=bar, spec=spec) -> None:
            record = {**record, "agent": spec, "versions": versions}
            append_jsonl(results_path, record)
            written[0] += 1
            if fault_requested("kill-after-results", written[0]):
                os.kill(os.getpid(), signal.SIGKILL)
            bar.set_postfix_str(f"seed {record['seed']}: {record['status']}")
            bar.update(1)

        try:
            run_seeds(spec, worlds[scenario_name], todo_seeds, out, on_record, camera=camera,
                      workers=min(workers, len(todo_seeds)), device=device,
                      decision_timeout_s=decision_timeout_s)
        finally:
            bar.close()
    return read_results(results_path) if results_path.exists() else []


class ConfigMismatch(ValueError):
    """``--resume`` on a folder whose evaluation differs (agents, seeds, checkpoints, ...)."""


def _check_resumable(config_path: Path, config: dict) -> None:
    if not config_path.exists():
        raise ValueError(f"{config_path} is missing: cannot tell what the results in its folder are; "
                         "choose a new --out folder")
    try:
        old = json.loads(config_path.read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"{config_path}: unreadable ({e}); choose a new --out folder") from None
    diff = [k for k in MATCHED if old.get(k) != config.get(k)]
    if diff:
        raise ConfigMismatch(f"--resume: this run's {', '.join(diff)} differ from {config_path}; "
                         "resume with the same arguments and checkpoints, or choose a new --out folder")


def format_eval(records: Sequence[dict]) -> str:
    """A short table: per scenario and agent, episodes, statuses and the mean driving score."""
    rows = {}
    for r in records:
        rows.setdefault((r["scenario"], r["agent"]), []).append(r)
    lines = [f"{'scenario':<12} {'agent':<28} {'episodes':>8} {'score':>6}  status"]
    for (scenario, agent), rs in sorted(rows.items()):
        counts = Counter(r["status"] for r in rs)
        score = sum(float(r["driving_score"]) for r in rs) / len(rs)
        status = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
        lines.append(f"{scenario:<12} {agent:<28} {len(rs):>8} {score:6.3f}  {status}")
    return "\n".join(lines)
