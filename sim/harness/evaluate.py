"""``drive eval``: every agent on every scenario, on the same seeds, into one results file.

``DIR/config.json`` is written first: the agents (with their checkpoints and the SHA-256 of
every checkpoint file), the scenarios, the seed list, the camera, versions and the git
revision.  Then each finished episode is appended to ``DIR/results.jsonl`` (one line, in
one ``write`` + ``fsync``: agent, scenario, seed, status, every metric, decision latency
p50/p99, device, versions), and its per-step trace goes to ``DIR/traces/``.

A folder has one writer at a time: ``run_eval`` holds ``DIR/.lock`` (``flock``, the owner's
PID inside) from before it reads what is done until it returns, and a second run on the same
folder is refused at once, naming that PID; the kernel drops the lock when its owner dies.

``--resume`` reads ``results.jsonl`` and runs only the (agent, scenario, seed) triples it
lacks.  Episodes are deterministic per seed, so a run killed at any moment (``kill -9``
included: every line is written whole) and resumed ends with the same results as an
uninterrupted one, wall-clock fields aside (:data:`TIMING_FIELDS`).  A damaged results file
(a cut line, a field of the wrong type, an episode recorded twice: :func:`read_results`
names the line and the field), or a resume whose agents, scenarios, seeds or checkpoints
differ from the run it continues, stops with the reason; nothing is silently restarted or
overwritten.

``backend="ray"`` runs the episodes on a Ray cluster (:mod:`sim.harness.ray_backend`;
``address`` as ``ray.init`` takes it, a local cluster without one) with the same per-seed
results; the backend is recorded in ``config.json`` but is not what a resume must match, so a
run started on this machine may be resumed on a cluster, and back.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import signal
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

from agents import make_agent
from sim.geometry.bev import BevCamera
from sim.harness.episodes import scenario_record, task_spec
from sim.harness.io import (
    append_jsonl,
    atomic_write_json,
    checkpoint_hashes,
    ensure_writable_dir,
    folder_lock,
    iter_jsonl,
)
from sim.harness.metrics import STATUSES, scored
from sim.harness.parallel import LocalEpisodePool, fault_requested
from sim.harness.ray_backend import RayEpisodePool
from sim.harness.run import BACKENDS, run_seeds
from sim.harness.versions import git_revision, package_versions
from sim.world.scenarios import get_scenario

RESULTS = "results.jsonl"
CONFIG = "config.json"
TIMING_FIELDS = ("latency_p50_ms", "latency_p99_ms")
"""Wall-clock measurements: the only fields that differ between two runs of the same seeds."""
MATCHED = (
    "agents",
    "scenarios",
    "seeds",
    "camera",
    "duration_s",
    "checkpoints",
    "decision_timeout_s",
)
"""What a resumed run must share with the run it continues."""
DECISION_TIMEOUT_S = 5.0
"""A decision slower than this ends its episode with ``timeout`` (at 15 Hz a decision is due
every 67 ms; 5 s leaves room for a GPU's first call, not for a hang)."""


def _key(record: dict) -> tuple[str, str, int]:
    return record["agent"], record["scenario"], record["seed"]


def comparable_results(records) -> dict[tuple[str, str, int], dict]:
    """Records keyed by (agent, scenario, seed) with the wall-clock fields
    (:data:`TIMING_FIELDS`) dropped: two runs of the same seeds (any worker count, backend,
    or a resume) must give equal dicts.  An episode recorded twice is an error."""
    out: dict[tuple[str, str, int], dict] = {}
    for r in records:
        key = _key(r)
        if key in out:
            raise ValueError(f"episode {key} recorded twice")
        out[key] = {k: v for k, v in r.items() if k not in TIMING_FIELDS}
    return out


_INT, _NUMBER, _BOOL, _STR = "an integer", "a number", "true or false", "a string"
REQUIRED_FIELDS = {
    "agent": _STR,
    "scenario": _STR,
    "seed": _INT,
    "status": _STR,
    "driving_score": _NUMBER,
    "route_completion": _NUMBER,
}
"""What every results line holds (:class:`~sim.harness.loop.EpisodeResult` and
:func:`~sim.harness.parallel.failure_record` both write them), and the type of each."""
TYPED_FIELDS = {
    "steps": _INT,
    "elapsed_s": _NUMBER,
    "route_completed": _BOOL,
    "collision_vehicle": _INT,
    "collision_object": _INT,
    "offroad": _INT,
    "lane_violation": _INT,
    "distance_m": _NUMBER,
    "infractions_per_km": _NUMBER,
    "mean_speed_mps": _NUMBER,
    "lateral_offset_rms_m": _NUMBER,
    "lane_departures": _INT,
    "manoeuvres": _INT,
    "interventions": _INT,
    "autonomy_pct": _NUMBER,
    "max_long_accel_mps2": _NUMBER,
    "min_long_accel_mps2": _NUMBER,
    "max_abs_lat_accel_mps2": _NUMBER,
    "max_abs_jerk_mps3": _NUMBER,
    "max_abs_yaw_rate_radps": _NUMBER,
    "comfort_violation_rate": _NUMBER,
    "comfortable": _BOOL,
    "min_ttc_s": _NUMBER,
    "latency_p50_ms": _NUMBER,
    "latency_p99_ms": _NUMBER,
    "device": _STR,
}
"""Fields a results line may hold (the per-episode metrics and the run's bookkeeping): when
present, of this type.  Other extra fields are kept unchecked."""


def _type_ok(value: Any, kind: str) -> bool:
    if kind == _BOOL:
        return isinstance(value, bool)
    if isinstance(value, bool):  # JSON true is no seed and no metric
        return False
    if kind == _INT:
        return isinstance(value, int)
    if kind == _NUMBER:
        return isinstance(value, (int, float))
    return isinstance(value, str)


@functools.lru_cache(maxsize=256)
def _scenario_error(name: str) -> str | None:
    """What is wrong with a record's scenario name (it must be a canonical name
    :func:`get_scenario` accepts: results are keyed by it), or None."""
    try:
        canonical = get_scenario(name).name
    except ValueError as e:
        return f"field 'scenario' is {json.dumps(name)}: {e}"
    if canonical != name:
        return f"field 'scenario' is {json.dumps(name)}; results are keyed by {canonical!r}"
    return None


def _schema_error(r: Any) -> str | None:
    """What is wrong with one results record, or None."""
    if not isinstance(r, dict):
        return f"not a JSON object ({type(r).__name__})"
    missing = [f for f in REQUIRED_FIELDS if f not in r]
    if missing:
        return f"lacks {', '.join(missing)}; not a drive eval results line"
    for name, kind in (*REQUIRED_FIELDS.items(), *TYPED_FIELDS.items()):
        if name in r and not _type_ok(r[name], kind):
            return f"field {name!r} is {json.dumps(r[name])}; expected {kind}"
    if r["status"] not in STATUSES:
        return f"field 'status' is {json.dumps(r['status'])}; expected one of {', '.join(STATUSES)}"
    for name in ("driving_score", "route_completion"):
        if not math.isfinite(r[name]):
            return f"field {name!r} is {r[name]}; expected a finite number"
    why = _scenario_error(r["scenario"])
    if why:
        return why
    if r.get("error") is not None and not isinstance(r["error"], str):
        return f"field 'error' is {json.dumps(r['error'])}; expected a string or null"
    if "sensors" in r and not (
        isinstance(r["sensors"], list) and all(isinstance(s, str) for s in r["sensors"])
    ):
        return f"field 'sensors' is {json.dumps(r['sensors'])}; expected a list of strings"
    return None


def read_results(path: str | Path) -> list[dict]:
    """The records of a results file, checked: a damaged line, a field of the wrong type (see
    :data:`REQUIRED_FIELDS`, :data:`TYPED_FIELDS`) or an episode recorded twice is an error
    naming the file, the line(s) and the field; nothing downstream guesses."""
    path = Path(path)
    records: list[dict] = []
    seen: dict[tuple[str, str, int], int] = {}
    for k, r in iter_jsonl(path):
        why = _schema_error(r)
        if why:
            raise ValueError(f"{path}:{k}: {why}")
        key = _key(r)
        if key in seen:
            raise ValueError(
                f"{path}:{k}: episode (agent {key[0]!r}, scenario {key[1]!r}, seed {key[2]}) "
                f"is already recorded at line {seen[key]}; a results file holds each episode "
                "once (two writers at once?): keep one of the two lines"
            )
        seen[key] = k
        records.append(r)
    return records


def run_eval(
    out: str | Path,
    agents: Sequence[str],
    scenarios: Sequence[str],
    seeds: Sequence[int],
    *,
    workers: int = 1,
    device: str | None = None,
    resume: bool = False,
    duration_s: float | None = None,
    camera: BevCamera | None = None,
    progress: bool = True,
    argv: Sequence[str] | None = None,
    decision_timeout_s: float | None = DECISION_TIMEOUT_S,
    backend: str = "local",
    address: str | None = None,
    ray_pool: RayEpisodePool | None = None,
) -> list[dict]:
    """Run every agent on every scenario for ``seeds``; return all records of ``out``.
    ``backend``: ``local`` (``workers`` processes here) or ``ray`` (``workers`` actors on the
    Ray cluster at ``address``, a local cluster when None; or the warm actors of ``ray_pool``,
    a :class:`~sim.harness.ray_backend.RayEpisodePool` the caller keeps across evaluations)."""
    out = Path(out)
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; known: {', '.join(BACKENDS)}")
    if (address is not None or ray_pool is not None) and backend != "ray":
        raise ValueError("a cluster address or actor pool needs backend 'ray'")
    camera = camera or BevCamera()
    agents, scenarios, seeds = list(agents), list(scenarios), [int(s) for s in seeds]
    if not agents or not scenarios or not seeds:
        raise ValueError("drive eval needs at least one agent, one scenario and one seed")
    if len(set(seeds)) != len(seeds):
        raise ValueError("the seed list repeats a seed")
    worlds = {
        name: get_scenario(name, **({"duration_s": duration_s} if duration_s else {}))
        for name in scenarios
    }  # unknown names fail here, listing the known ones
    checkpoints: dict[str, dict[str, Any]] = {}
    experience: dict[str, dict[str, Any]] = {}
    sensors: dict[str, list[str]] = {}
    for (
        spec
    ) in agents:  # fail fast: bad names, missing checkpoints (per scenario: e2e's default is)
        for name in scenarios:
            probe = make_agent(spec, task_spec(worlds[name], camera), device=device)
            probe.prepare()
            sensors[spec] = list(probe.sensors)
            for path in (
                probe.checkpoints()
            ):  # one per agent today (e2e: its policy; modular: its detector)
                checkpoints.setdefault(spec, {})[name] = {
                    "path": str(path),
                    "sha256": checkpoint_hashes(path),
                }
            learned = (
                probe.experience()
            )  # what a learned policy learned from (demo frames, env steps)
            if learned is not None:
                experience.setdefault(spec, {})[name] = learned
    config = {
        "agents": agents,
        "scenarios": scenarios,
        "seeds": seeds,
        "camera": camera.to_dict(),
        "duration_s": duration_s,
        "checkpoints": checkpoints,
        "experience": experience,
        "sensors": sensors,
        "decision_timeout_s": decision_timeout_s,
        "scenario_specs": {n: scenario_record(w) for n, w in worlds.items()},
        "workers": int(ray_pool.workers if ray_pool is not None else workers),
        "backend": backend,
        "address": address,
        "device": device or "auto",
        "command": list(argv) if argv else None,
        "versions": package_versions(),
        "git_revision": git_revision(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    pool, own_pool = ray_pool, None
    if (
        backend == "ray" and pool is None
    ):  # Ray missing, a cluster out of reach: said before anything is written
        pool = own_pool = RayEpisodePool(
            workers, address=address, device=device
        )  # kept across the pairs
    elif backend == "local" and workers > 1:  # warm worker processes, kept across the pairs
        pool = own_pool = LocalEpisodePool(workers, device=device)
    out = ensure_writable_dir(out)
    # one writer per folder, from reading what is done to the last line: a second run is
    # refused at once, naming the owner (two resumes would both run the missing episodes)
    with folder_lock(out), own_pool or contextlib.nullcontext():
        results_path, config_path = out / RESULTS, out / CONFIG
        done: set[tuple[str, str, int]] = set()
        if results_path.exists() or config_path.exists():
            if not resume:
                raise FileExistsError(
                    f"{out} already holds an evaluation; pass --resume to continue it, "
                    "or choose a new --out folder"
                )
            grown = _check_resumable(config_path, config)
            if grown is not None:  # new agents join the finished ones: the config says so first
                atomic_write_json(config_path, grown)
                config = grown
                agents = list(grown["agents"])
            if results_path.exists():
                done = {_key(r) for r in read_results(results_path)}
        else:
            atomic_write_json(config_path, config)
        versions = config["versions"]
        todo = [
            (s, a, [seed for seed in seeds if (a, s, seed) not in done])
            for s in scenarios
            for a in agents
        ]
        todo = [t for t in todo if t[2]]
        if progress and done:
            print(
                f"resuming: {len(done)} episodes done, {sum(len(t[2]) for t in todo)} to run",
                flush=True,
            )
        written = [0]  # results lines this process wrote (the testing hook's count)
        for scenario_name, spec, todo_seeds in todo:
            bar = tqdm(
                total=len(todo_seeds),
                desc=f"{spec} on {scenario_name}",
                unit="ep",
                disable=not progress,
                dynamic_ncols=True,
            )

            def on_record(record: dict, bar=bar, spec=spec) -> None:
                record = {**record, "agent": spec, "versions": versions}
                append_jsonl(results_path, record)
                written[0] += 1
                if fault_requested("kill-after-results", written[0]):
                    os.kill(os.getpid(), signal.SIGKILL)
                if fault_requested("pause-after-results", written[0]):
                    os.kill(os.getpid(), signal.SIGSTOP)  # holding the folder, until a SIGCONT
                bar.set_postfix_str(f"seed {record['seed']}: {record['status']}")
                bar.update(1)

            try:
                run_seeds(
                    spec,
                    worlds[scenario_name],
                    todo_seeds,
                    out,
                    on_record,
                    camera=camera,
                    workers=min(workers, len(todo_seeds)),
                    device=device,
                    decision_timeout_s=decision_timeout_s,
                    backend=backend,
                    pool=pool,
                )
            finally:
                bar.close()
        return read_results(results_path) if results_path.exists() else []


class ConfigMismatch(ValueError):
    """``--resume`` on a folder whose evaluation differs (agents, seeds, checkpoints, ...)."""


def _check_resumable(config_path: Path, config: dict) -> dict | None:
    """Whether this run may continue the folder's evaluation: the same scenarios, seeds,
    camera, duration and decision timeout, every agent it already has with unchanged
    checkpoints.  New agents may join (their episodes run on the same seeds); returns the
    grown config to write then, else None."""
    if not config_path.exists():
        raise ValueError(
            f"{config_path} is missing: cannot tell what the results in its folder are; "
            "choose a new --out folder"
        )
    try:
        old = json.loads(config_path.read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"{config_path}: unreadable ({e}); choose a new --out folder") from None
    diff = [
        k for k in MATCHED if k not in ("agents", "checkpoints") and old.get(k) != config.get(k)
    ]
    old_agents, new_agents = list(old.get("agents") or []), list(config.get("agents") or [])
    if set(old_agents) - set(new_agents):
        diff.insert(0, "agents")
    old_ckpt, new_ckpt = old.get("checkpoints") or {}, config.get("checkpoints") or {}
    if any(old_ckpt.get(a) != new_ckpt.get(a) for a in old_agents if a in new_agents):
        diff.append("checkpoints")
    if diff:
        raise ConfigMismatch(
            f"--resume: this run's {', '.join(diff)} differ from {config_path}; "
            "resume with the same arguments and checkpoints (agents may be added), or "
            "choose a new --out folder"
        )
    extra = [a for a in new_agents if a not in old_agents]
    if not extra:
        return None
    grown = dict(old)
    grown["agents"] = old_agents + extra
    for key in ("checkpoints", "experience", "sensors"):
        grown[key] = {
            **(old.get(key) or {}),
            **{a: v for a, v in (config.get(key) or {}).items() if a in extra},
        }
    grown["added"] = [
        *(old.get("added") or []),
        {
            "agents": extra,
            "command": config.get("command"),
            "git_revision": config.get("git_revision"),
            "started": config.get("started"),
        },
    ]
    return grown


def format_eval(records: Sequence[dict]) -> str:
    """A short table: per scenario and agent, episodes, statuses and the mean driving score."""
    rows = {}
    for r in records:
        rows.setdefault((r["scenario"], r["agent"]), []).append(r)
    lines = [f"{'scenario':<12} {'agent':<28} {'episodes':>8} {'score':>6}  status"]
    for (scenario, agent), rs in sorted(rows.items()):
        counts = Counter(r["status"] for r in rs)
        kept = [r for r in rs if scored(r)]  # a simulator fault is no agent's score
        score = sum(float(r["driving_score"]) for r in kept) / len(kept) if kept else float("nan")
        status = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
        lines.append(f"{scenario:<12} {agent:<28} {len(rs):>8} {score:6.3f}  {status}")
    return "\n".join(lines)
