"""``drive report DIR``: the side-by-side report of a ``drive eval`` folder.

Writes ``DIR/report.md`` (figures beside it in ``DIR/report_files/``) and a self-contained
``DIR/report.html`` (the same content, figures embedded), both from the same rows:

* per scenario, agents as rows: statuses counted, then every headline metric as the mean
  with its 95% bootstrap interval, and again as the interquartile mean;
* paired comparisons on shared seeds: each agent against ``expert``, the paradigms head
  to head (every ``modular`` against every ``e2e`` and ``ppo`` agent, every ``e2e`` against
  every ``ppo``; the bird's-eye variants ``modular-bev`` and ``e2e-bev`` count as their
  paradigm) and each paradigm on the rig against itself on the bird's-eye raster - the mean
  difference of the driving score with its interval and the share of seeds each wins;
* above every per-scenario table, the sensors each agent saw, privileged ones marked;
* the sensor as an axis, where a paradigm ran on both the camera rig and the bird's-eye
  raster: per scenario and (paradigm, sensor), the driving score, collisions, the paired
  difference to ``expert`` and rig - bev, and a sentence on how the verdict (modular against
  e2e) changes when perception stops being free;
* the inputs (sensors) each agent was handed, each checkpoint with its hash, and the
  experience each learned policy used: expert-labelled demo frames and environment steps
  it drove while learning (DAgger's rollouts, PPO's training);
* figures: driving-score distributions per agent, per-seed scores of ``modular`` against
  ``e2e`` (and the other duels), decision-latency histograms, DAgger's score per round where
  an ``e2e`` checkpoint came from DAgger, and PPO's closed-loop score over its training.
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from matplotlib.figure import Figure

from sim.geometry.bev import BevCamera
from sim.harness.evaluate import CONFIG, RESULTS, read_results
from sim.harness.io import (
    atomic_write_bytes,
    atomic_write_text,
    ensure_writable_dir,
    written_by,
)
from sim.harness.metrics import SIM_FAULTS, scored
from sim.harness.stats import Estimate, Paired, bootstrap, paired, wilson
from sim.report.sidebyside import drive_clips, last_frame, pick_seeds, side_by_side, worst_episode
from sim.report.tables import html_table, md_table

# (column, record field or derived name, digits); rates are shares of episodes.
METRICS: tuple[tuple[str, str, int], ...] = (
    ("driving score", "driving_score", 3),
    ("route completion", "route_completion", 3),
    ("collision rate", "collision_rate", 2),
    ("off-road rate", "offroad_rate", 2),
    ("lane violation rate", "lane_violation_rate", 2),
    ("autonomy %", "autonomy_pct", 1),
    ("mean speed m/s", "mean_speed_mps", 1),
    ("lateral RMS m", "lateral_offset_rms_m", 3),
    ("comfort violations", "comfort_violation_rate", 3),
    ("min TTC s", "min_ttc_s", 1),
    ("infractions / km", "infractions_per_km", 2),
    ("latency p50 ms", "latency_p50_ms", 2),
    ("latency p99 ms", "latency_p99_ms", 2),
)
FILES = "report_files"
RATES = ("collision_rate", "offroad_rate", "lane_violation_rate")


def _value(record: dict, field: str) -> float:
    if field == "collision_rate":
        return float(record["status"] == "collision")
    if field == "offroad_rate":
        return float(record["status"] == "offroad")
    if (
        field == "lane_violation_rate"
    ):  # episodes that left a lane they had to keep (absent: older records)
        return float(record["lane_violation"] > 0) if "lane_violation" in record else float("nan")
    v = record.get(field)
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else float("nan")


def load_eval(folder: str | Path) -> tuple[dict, list[dict]]:
    """``config.json`` and the records of a ``drive eval`` folder, with clear errors."""
    folder = Path(folder)
    config_path, results_path = folder / CONFIG, folder / RESULTS
    if not results_path.exists():
        raise ValueError(
            f"{results_path} does not exist; {folder} is not an evaluation folder "
            f"(make one with: drive eval --out {folder})"
        )
    try:
        config = json.loads(config_path.read_text())
    except FileNotFoundError:
        raise ValueError(
            f"{config_path} does not exist; {folder} is not a drive eval folder"
        ) from None
    except ValueError as e:
        raise ValueError(f"{config_path}: not valid JSON ({e})") from None
    records = read_results(results_path)
    if not records:
        raise ValueError(f"{results_path} holds no episode yet")
    return config, records


DUELS = (("modular", "e2e"), ("modular", "ppo"), ("e2e", "ppo"))
"""The paradigms compared head to head: modular vs imitation vs reinforcement learning."""


BEV_VARIANTS = {"modular-bev": "modular", "e2e-bev": "e2e"}
"""Agents that run a paradigm on the bird's-eye raster instead of the camera rig: the paradigm."""
SENSOR_AXIS = ("modular", "e2e")
"""The paradigms the report sets side by side on the rig and on the bird's-eye raster."""
SENSOR_LABELS = {"rig": "camera rig", "bev": "bird's-eye raster"}
PRIVILEGED = {
    "truth": "truth (privileged)",
    "autopilot": "autopilot (privileged)",
    "bev": "bird's-eye raster (map, privileged)",
}
"""How the report names the sensors no car carries."""


def _family(agent: str) -> str:
    """The paradigm of an agent spec: ``modular`` and ``modular-bev`` (the same stack on
    another sensor) are both ``modular``, ``e2e`` and ``e2e-bev`` both ``e2e``;
    ``modular-gt`` is an ablation, not a paradigm."""
    name = agent.split(":", 1)[0]
    return BEV_VARIANTS.get(name, name)


BEV_AGENTS = (*BEV_VARIANTS, "ppo")
"""Agents that drive from the bird's-eye raster when an evaluation did not record sensors."""


def _sensor(agent: str, sensors: dict[str, list[str]] | None = None) -> str:
    """The sensor an agent drives from: ``bev`` when its recorded sensors (the evaluation
    config's) include the bird's-eye raster, else ``rig``; without a record, by its name
    (``modular-bev``, ``e2e-bev``, ``ppo``: ``bev``)."""
    if sensors and agent in sensors:
        return "bev" if "bev" in sensors[agent] else "rig"
    return "bev" if agent.split(":", 1)[0] in BEV_AGENTS else "rig"


def _sensors_of(agents: list[str], sensors: dict[str, list[str]] | None = None) -> dict[str, str]:
    return {a: _sensor(a, sensors) for a in agents}


def _pairs(agents: list[str], sensor: dict[str, str] | None = None) -> list[tuple[str, str]]:
    """Pairs compared on shared seeds; ``sensor``: each agent's (:func:`_sensors_of`)."""
    sensor = sensor or _sensors_of(agents)
    # head to head only on the same sensor
    # (across sensors the sensor, not the paradigm, would differ)
    out = [
        (a, b)
        for fa, fb in DUELS
        for a in agents
        for b in agents
        if _family(a) == fa and _family(b) == fb and sensor[a] == sensor[b]
    ]
    out += [
        (a, b)
        for a in agents
        for b in agents
        if _family(a) == _family(b) and sensor[a] == "rig" and sensor[b] == "bev"
    ]
    if "expert" in agents:
        out += [(a, "expert") for a in agents if a != "expert"]
    return out


def build_rows(config: dict, records: list[dict]) -> dict[str, Any]:
    """Everything the report shows, as plain data (also written as ``report.json``)."""
    scenarios = [s for s in config.get("scenarios", []) if any(r["scenario"] == s for r in records)]
    agents = list(config.get("agents", []))
    out: dict[str, Any] = {
        "scenarios": {},
        "sensors": config.get("sensors", {}),
        "checkpoints": config.get("checkpoints", {}),
        "experience": config.get("experience", {}),
        "seeds": config.get("seeds", []),
        "git_revision": config.get("git_revision"),
    }
    for s in scenarios:
        by_agent = {
            a: sorted(
                (r for r in records if r["scenario"] == s and r["agent"] == a),
                key=lambda r: r["seed"],
            )
            for a in agents
        }
        by_agent = {a: rs for a, rs in by_agent.items() if rs}
        table = {}
        for a, all_rs in by_agent.items():
            rs = [r for r in all_rs if scored(r)]  # a sim_error is the simulator's, not the agent's
            row = {
                "episodes": len(all_rs),
                "status": dict(Counter(r["status"] for r in all_rs)),
                "scored": len(rs),
                "device": sorted({str(r.get("device", "?")) for r in all_rs}),
            }
            for _, field, _ in METRICS:
                vals = [_value(r, field) for r in rs]
                if (
                    field in RATES
                ):  # a share of episodes: Wilson (the IQM of 0/1 values means little)
                    known = [
                        v for v in vals if np.isfinite(v)
                    ]  # records older than a rate count as unknown
                    rate = wilson(int(np.sum(known)), len(known))
                    row[field] = {"mean": rate, "iqm": rate}
                else:
                    row[field] = {"mean": bootstrap(vals, "mean"), "iqm": bootstrap(vals, "iqm")}
            table[a] = row
        comps = []
        sensor = _sensors_of(list(by_agent), config.get("sensors"))
        for a, b in _pairs(list(by_agent), sensor):
            sa = {r["seed"]: float(r["driving_score"]) for r in by_agent[a] if scored(r)}
            sb = {r["seed"]: float(r["driving_score"]) for r in by_agent[b] if scored(r)}
            comps.append({"a": a, "b": b, "result": paired(sa, sb)})
        out["scenarios"][s] = {"table": table, "paired": comps, "records": by_agent}
        axis = _sensor_axis(table, comps, sensor)
        if axis:
            out.setdefault("sensor_axis", {})[s] = axis
    return out


def _sensor_axis(
    table: dict[str, dict], comps: list[dict], sensor: dict[str, str]
) -> dict[str, Any] | None:
    """One scenario's paradigms on the rig and on the bird's-eye raster (None unless one of
    :data:`SENSOR_AXIS` ran on both): per agent its driving score, collisions and paired
    difference to ``expert``; per paradigm rig - bev on shared seeds; and the reading."""
    agents = [
        a
        for p in SENSOR_AXIS
        for x in SENSOR_LABELS
        for a in table
        if _family(a) == p and sensor[a] == x
    ]
    if not any(
        {sensor[a] for a in agents if _family(a) == p} == set(SENSOR_LABELS) for p in SENSOR_AXIS
    ):
        return None
    result = {(c["a"], c["b"]): c["result"] for c in comps}
    rows = [
        {
            "paradigm": _family(a),
            "sensor": sensor[a],
            "agent": a,
            "scored": table[a]["scored"],
            "driving_score": table[a]["driving_score"]["mean"],
            "collisions": table[a]["status"].get("collision", 0),
            "vs_expert": result.get((a, "expert")),
        }
        for a in agents
    ]
    rig_minus_bev = [
        {"paradigm": _family(a), "rig": a, "bev": b, "result": r}
        for (a, b), r in result.items()
        if _family(a) == _family(b) and sensor.get(a) == "rig" and sensor.get(b) == "bev"
    ]
    return {
        "rows": rows,
        "rig_minus_bev": rig_minus_bev,
        "reading": _reading(agents, result, sensor),
    }


def _lead(a: str, b: str, d: Estimate) -> str:
    """``a leads b by x [low, high]`` (or trails it) from the paired difference ``a - b``,
    saying so when the interval does not exclude a tie."""
    if d.value == 0:
        return f"{a} and {b} tie"
    lead = (
        f"leads {b} by {d.format(3)}"
        if d.value > 0
        else f"trails {b} by {Estimate(0.0 - d.value, 0.0 - d.high, 0.0 - d.low, d.n).format(3)}"
    )
    return f"{a} {lead}" + (" (interval includes 0)" if d.low <= 0 <= d.high else "")


def _reading(
    agents: list[str], result: dict[tuple[str, str], Paired], sensor: dict[str, str]
) -> str:
    """One sentence from the paired numbers: modular against e2e on each sensor (the first
    agent of each), whether the verdict holds or flips from the bird's-eye raster (perception
    free) to the rig, and what the rig costs each paradigm (rig - bev)."""
    first: dict[tuple[str, str], str] = {}
    for a in agents:
        first.setdefault((_family(a), sensor[a]), a)
    duels, signs = [], []
    for kind in ("bev", "rig"):
        m, e = first.get(("modular", kind)), first.get(("e2e", kind))
        r = result.get((m, e))
        if r is not None and r.n:
            duels.append(f"on the {SENSOR_LABELS[kind]}, {_lead(m, e, r.difference)}")
            signs.append(np.sign(r.difference.value))
    costs = []
    for p in SENSOR_AXIS:
        r = result.get((first.get((p, "rig")), first.get((p, "bev"))))
        if r is not None and r.n:
            costs.append(f"{p} {r.difference.format(3)}")
    text = "; ".join(duels)
    if len(signs) == 2:
        verdict = (
            "holds" if signs[0] == signs[1] else "flips" if signs[0] * signs[1] < 0 else "changes"
        )
        text += f": the verdict {verdict} when perception stops being free"
    if costs:
        cost = "rig - bev, paired: " + ", ".join(costs)
        text = f"{text} ({cost})" if text else cost
    return f"{text[0].upper()}{text[1:]}." if text else "No shared seeds to compare on."


# -- figures -------------------------------------------------------------------------------------
def subplots(nrows: int = 1, ncols: int = 1, figsize: tuple[float, float] | None = None):
    """A matplotlib figure and its axes without pyplot: no global state, no backend to pick
    (``savefig`` renders PNGs with Agg), safe in worker processes and notebooks alike."""
    fig = Figure(figsize=figsize)
    return fig, fig.subplots(nrows, ncols)


def _figures(rows: dict, files: Path) -> dict[str, list[tuple[str, Path]]]:
    figs: dict[str, list[tuple[str, Path]]] = {}
    for s, data in rows["scenarios"].items():
        recs = data["records"]
        agents = list(recs)
        out = figs.setdefault(s, [])
        fig, ax = subplots(figsize=(1.4 + 1.3 * len(agents), 3.2))
        scores = [[r["driving_score"] for r in recs[a] if scored(r)] for a in agents]
        ax.boxplot(scores, showfliers=False, widths=0.5)
        rng = np.random.default_rng(0)
        for k, v in enumerate(scores, start=1):
            ax.scatter(k + rng.uniform(-0.15, 0.15, len(v)), v, s=10, alpha=0.6)
        ax.set_xticks(range(1, len(agents) + 1), agents, rotation=15)
        ax.set_ylabel("driving score")
        ax.set_ylim(-0.05, 1.05)
        ax.set_title(f"{s}: driving score per episode")
        out.append(
            (
                "Driving score per episode (box: quartiles; dots: episodes)",
                _save(fig, files / f"{s}__scores.png"),
            )
        )
        fig, ax = subplots(figsize=(5.5, 3.2))
        for a in agents:
            lat = [
                r["latency_p50_ms"]
                for r in recs[a]
                if scored(r) and np.isfinite(r.get("latency_p50_ms", np.nan))
            ]
            if lat:
                ax.hist(lat, bins=20, alpha=0.6, label=a)
        ax.set_xlabel("decision latency p50 per episode [ms]")
        ax.set_ylabel("episodes")
        ax.legend(fontsize=8)
        ax.set_title(f"{s}: decision latency")
        out.append(
            ("Decision latency (per-episode median)", _save(fig, files / f"{s}__latency.png"))
        )
        for c in data["paired"]:
            a, b = c["a"], c["b"]
            if (_family(a), _family(b)) not in DUELS:
                continue
            sa = {r["seed"]: r["driving_score"] for r in recs[a] if scored(r)}
            sb = {r["seed"]: r["driving_score"] for r in recs[b] if scored(r)}
            seeds = sorted(set(sa) & set(sb))
            fig, ax = subplots(figsize=(3.6, 3.6))
            ax.scatter([sa[k] for k in seeds], [sb[k] for k in seeds], s=14, alpha=0.7)
            ax.plot([0, 1], [0, 1], color="grey", lw=0.8)
            ax.set_xlabel(f"{a} driving score")
            ax.set_ylabel(f"{b} driving score")
            ax.set_title(f"{s}: per seed")
            name = f"{s}__{_slug(a)}__vs__{_slug(b)}.png"
            out.append(
                (
                    f"Per seed: {a} against {b} (above the line: {b} better)",
                    _save(fig, files / name),
                )
            )
    dagger = _dagger_rounds(rows)
    if dagger:
        fig, ax = subplots(figsize=(5, 3.2))
        for label, rounds in dagger.items():
            ax.plot(
                [r["round"] for r in rounds],
                [r["closed_loop"].get("driving_score", np.nan) for r in rounds],
                marker="o",
                label=label,
            )
        ax.set_xlabel("DAgger round (0 = behaviour cloning)")
        ax.set_ylabel("driving score (DAgger's own eval seeds)")
        ax.legend(fontsize=8)
        figs.setdefault("DAgger", []).append(
            ("Driving score per DAgger round", _save(fig, files / "dagger.png"))
        )
    curves = _ppo_curves(rows)
    if curves:
        fig, ax = subplots(figsize=(5, 3.2))
        for label, hist in curves.items():
            pts = [
                (h["timesteps"], h["closed_loop"]["driving_score"])
                for h in hist
                if h["closed_loop"].get("episodes")
            ]
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=label)
        ax.set_xlabel("environment steps of PPO training")
        ax.set_ylabel("driving score (training's eval seeds)")
        ax.set_ylim(-0.02, 1.02)
        ax.legend(fontsize=8)
        figs.setdefault("PPO", []).append(
            ("Closed-loop driving score during PPO training", _save(fig, files / "ppo.png"))
        )
    return figs


def _ppo_curves(rows: dict) -> dict[str, list[dict]]:
    """Each PPO checkpoint's evaluations during training (``ppo.json``)."""
    out = {}
    for agent, per_scenario in (rows.get("checkpoints") or {}).items():
        if _family(agent) != "ppo":
            continue
        for scenario, ck in per_scenario.items():
            try:
                meta = json.loads((Path(ck["path"]) / "ppo.json").read_text())
            except (OSError, ValueError):
                continue
            hist = (meta.get("ppo") or {}).get("history")
            if hist:
                out[f"{agent} ({scenario})"] = hist
    return out


def _dagger_rounds(rows: dict) -> dict[str, list[dict]]:
    out = {}
    for agent, per_scenario in (rows.get("checkpoints") or {}).items():
        for scenario, ck in per_scenario.items():
            meta_path = Path(ck["path"]) / "e2e.json"
            try:
                meta = json.loads(meta_path.read_text())
            except (OSError, ValueError):
                continue
            rounds = (meta.get("dagger") or {}).get("rounds")
            if rounds:
                out[f"{agent} ({scenario})"] = rounds
    return out


def _save(fig, path: Path) -> Path:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=110)
    atomic_write_bytes(path, buf.getvalue())
    return path


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)


# -- rendering -------------------------------------------------------------------------------
def _status(counts: dict) -> str:
    """Statuses counted, most frequent first; simulator faults apart, after ``not scored:``."""
    order = lambda kv: (-kv[1], kv[0])
    text = ", ".join(
        f"{k} {v}" for k, v in sorted(counts.items(), key=order) if k not in SIM_FAULTS
    )
    sim = ", ".join(f"{k} {v}" for k, v in sorted(counts.items(), key=order) if k in SIM_FAULTS)
    return "; ".join(part for part in (text, sim and f"not scored: {sim}") if part)


TITLES = {
    "mean": "{s}: mean [95% CI]",
    "iqm": "{s}: interquartile mean [95% CI]",
    "paired": "{s}: paired on shared seeds",
    "axis": "{s}: the sensor as an axis",
}
"""The per-scenario tables' titles (``{s}``: the scenario)."""
SENSOR_AXIS_INTRO = (
    "The same paradigm on the camera rig and on the privileged bird's-eye raster: how the "
    "verdict (modular against e2e) changes when perception stops being free. Differences are "
    "paired on shared seeds."
)


def _sensor_list(sensors: Sequence[str] | None) -> str:
    """An agent's sensors as the report names them, privileged ones marked."""
    if sensors is None:
        return "not recorded"
    return ", ".join(PRIVILEGED.get(x, x) for x in sensors) or "(none)"


def _notes(rows: dict) -> dict[str, tuple[list[str], list[str]]]:
    """Paragraphs (above, below) the per-scenario tables, by title: above each, the sensors of
    the scenario's agents; above the sensor axis its purpose, below it the reading."""
    sensors = rows.get("sensors") or {}
    out = {}
    for s, data in rows["scenarios"].items():
        line = "Sensors — " + " · ".join(
            f"{a}: {_sensor_list(sensors.get(a))}" for a in data["table"]
        )
        out.update({t.format(s=s): ([line], []) for t in TITLES.values()})
        axis = (rows.get("sensor_axis") or {}).get(s)
        if axis:
            out[TITLES["axis"].format(s=s)] = ([SENSOR_AXIS_INTRO, line], [axis["reading"]])
    return out


def _tables(rows: dict) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, header, cells) for every table, in order; shared by markdown and HTML."""
    out = []
    for s, data in rows["scenarios"].items():
        for stat in ("mean", "iqm"):
            header = ["agent", "episodes", "status", *[m[0] for m in METRICS], "device"]
            cells = []
            for a, row in data["table"].items():
                cells.append(
                    [
                        a,
                        str(row["episodes"]),
                        _status(row["status"]),
                        *[row[f][stat].format(d) for _, f, d in METRICS],
                        ", ".join(row["device"]),
                    ]
                )
            out.append((TITLES[stat].format(s=s), header, cells))
        if data["paired"]:
            header = [
                "a",
                "b",
                "seeds",
                "driving score a - b [95% CI]",
                "a better",
                "b better",
                "tied",
            ]
            cells = [
                [
                    c["a"],
                    c["b"],
                    str(c["result"].n),
                    c["result"].difference.format(3),
                    f"{c['result'].a_wins:.0%}",
                    f"{c['result'].b_wins:.0%}",
                    f"{c['result'].ties:.0%}",
                ]
                for c in data["paired"]
            ]
            out.append((TITLES["paired"].format(s=s), header, cells))
        axis = (rows.get("sensor_axis") or {}).get(s)
        if axis:
            header = [
                "paradigm",
                "sensor",
                "agent",
                "scored episodes",
                "driving score mean [95% CI]",
                "collisions",
                "agent - expert, paired [95% CI]",
                "rig - bev, paired [95% CI]",
            ]
            cells = [
                [
                    r["paradigm"],
                    SENSOR_LABELS[r["sensor"]],
                    r["agent"],
                    str(r["scored"]),
                    r["driving_score"].format(3),
                    f"{r['collisions']} of {r['scored']}",
                    r["vs_expert"].difference.format(3) if r["vs_expert"] else "-",
                    "; ".join(
                        f"{c['bev']}: {c['result'].difference.format(3)}"
                        for c in axis["rig_minus_bev"]
                        if c["rig"] == r["agent"]
                    ),
                ]
                for r in axis["rows"]
            ]
            out.append((TITLES["axis"].format(s=s), header, cells))
    sensors = rows.get("sensors") or {}
    if sensors:
        out.append(
            (
                "Inputs each agent was handed",
                ["agent", "sensors"],
                [[a, _sensor_list(v)] for a, v in sensors.items()],
            )
        )
    cks = rows.get("checkpoints") or {}
    exp = rows.get("experience") or {}
    if cks:

        def used(a: str, s: str, key: str) -> str:
            e = (exp.get(a) or {}).get(s)
            return f"{int(e[key]):,}" if e and key in e else "-"

        def trained(a: str, s: str) -> str:
            """Samples and epochs a network was trained on; a time budget's cut is named."""
            e = (exp.get(a) or {}).get(s) or {}
            if not e.get("samples_seen"):
                return "-"
            text = f"{int(e['samples_seen']):,} ({e['epochs']} epochs"
            if e.get("stopped") == "budget":
                text += f" of {e['epochs_planned']}: cut by the time budget"
            return text + ")"

        out.append(
            (
                "Checkpoints and the experience each learned from",
                [
                    "agent",
                    "scenario",
                    "path",
                    "model sha256",
                    "expert-labelled demo frames",
                    "environment steps driven while learning",
                    "training samples (epochs)",
                ],
                [
                    [
                        a,
                        s,
                        c["path"],
                        (c["sha256"].get("model.safetensors") or "")[:16],
                        used(a, s, "demo_frames"),
                        used(a, s, "env_steps"),
                        trained(a, s),
                    ]
                    for a, per in cks.items()
                    for s, c in per.items()
                ],
            )
        )
    probes = rows.get("probes") or []
    if probes:

        def pct(x) -> str:
            return "-" if x is None else f"{100 * x:.0f}%"

        def num(x, fmt: str = "{:.3f}") -> str:
            return "-" if x is None else fmt.format(x)

        out.append(
            (
                "Does it look? Counterfactual probes (drive probe)",
                [
                    "agent",
                    "scenario",
                    "probed states (seeds)",
                    "brakes harder for a stopped car 15-30 m ahead",
                    "|acceleration change|, traffic removed",
                    "brakes harder, lead at half its gap",
                    "acceleration change per +1 m/s of speed input",
                    "the teacher on the same states: brakes for the stopped car / lead closer",
                    "file",
                ],
                [
                    [
                        pr["agent"],
                        pr["scenario"],
                        f"{pr['summary']['states']} ({pr['seeds'][0]}-{pr['seeds'][-1]})",
                        pct(pr["summary"].get("brakes_for_stopped_car")),
                        num(pr["summary"].get("empty_acceleration_mean_abs_change")),
                        pct(pr["summary"].get("brakes_for_closer_lead")),
                        num(pr["summary"].get("faster_acceleration_per_mps"), "{:+.4f}"),
                        (
                            f"{pct(pr['teacher_summary'].get('brakes_for_stopped_car'))} / "
                            f"{pct(pr['teacher_summary'].get('brakes_for_closer_lead'))}"
                            if pr.get("teacher_summary")
                            else "-"  # probes saved before the teacher answered
                        ),
                        pr["file"],
                    ]
                    for pr in probes
                ],
            )
        )
    return out


PROBE_PATTERN = "probe*.json"
"""Probe results (``drive probe AGENT --out DIR/probe-NAME.json``) the report of ``DIR`` shows."""


def read_probes(folder: Path) -> list[dict[str, Any]]:
    """The ``drive probe`` results saved in an evaluation folder (files drive wrote as probes;
    any other file is left alone), oldest first."""
    out = []
    for path in sorted(folder.glob(PROBE_PATTERN), key=lambda p: p.stat().st_mtime):
        if written_by(path) != "drive probe":
            continue
        try:
            data = json.loads(path.read_text())
            out.append(
                {
                    "agent": str(data["agent"]),
                    "scenario": str(data["scenario"]),
                    "seeds": list(data["seeds"]),
                    "summary": dict(data["summary"]),
                    # probes saved before the teacher answered have none
                    "teacher_summary": dict(data.get("teacher_summary") or {}),
                    "file": path.name,
                }
            )
        except (ValueError, KeyError, TypeError) as e:
            raise ValueError(f"{path}: not a drive probe result ({e})") from None
    return out


GALLERY_INTRO = (
    "Per scenario and agent: the failed episodes (not ok, or a driving score under 1), "
    "worst first, with the last frame of the worst one (camera and top-down view at the "
    "moment it ended)."
)
INTRO = (
    "Each scenario's agents ran the same seeds. Intervals are 95% bootstrap intervals over "
    "episodes (BCa, 2000 resamples), except the collision and off-road rates (shares of "
    "episodes), which have Wilson score intervals: a bootstrap cannot see an event that never "
    "happened. A metric equal in every episode has a zero-width interval. Every status counts "
    "in every denominator: an agent fault scores 0. The exception is `sim_error` (the simulator, "
    "not the agent, failed: its reset or step raised): such episodes are counted apart in the "
    'status column ("not scored") and left out of every metric, figure and paired comparison.'
)


def _redrive(config: dict) -> dict:
    """The evaluation's settings an episode is re-driven with (videos, thumbnails)."""
    return {
        "duration_s": config.get("duration_s"),
        "camera": BevCamera.from_dict(config["camera"]) if config.get("camera") else None,
        "device": None if config.get("device") in (None, "auto") else config["device"],
        "decision_timeout_s": config.get("decision_timeout_s"),
    }


def _videos(
    config: dict, rows: dict, files: Path, per_scenario: int, progress: bool
) -> dict[str, list[dict]]:
    """Side-by-side videos of picked seeds per scenario, and the failure gallery's thumbnails."""
    out: dict[str, list[dict]] = {}
    for s, data in rows["scenarios"].items():
        by_agent = data["records"]
        agents = list(by_agent)
        worst = {a: worst_episode(rs) for a, rs in by_agent.items()}
        items = out.setdefault(s, [])
        for seed, why in pick_seeds(by_agent)[:per_scenario]:
            path = files / f"{s}__seed{seed}.mp4"
            if progress:
                print(f"video: {s} seed {seed} ({len(agents)} agents)", flush=True)
            made = side_by_side(agents, s, seed, path, **_redrive(config))
            evaluated = {
                a: next((r for r in by_agent[a] if r["seed"] == seed), None) for a in agents
            }
            differs = [
                a
                for a in agents
                if evaluated[a] is not None
                and (made["records"][a]["status"], made["records"][a]["driving_score"])
                != (evaluated[a]["status"], evaluated[a]["driving_score"])
            ]
            thumbs = {}
            for a, img in made["thumbnails"].items():
                if worst[a]["seed"] == seed:
                    thumb = files / f"{s}__seed{seed}__{_slug(a)}.png"
                    ok, buf = cv2.imencode(".png", cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
                    if ok:
                        atomic_write_bytes(thumb, buf.tobytes())
                        thumbs[a] = thumb
            items.append(
                {"seed": seed, "why": why, "path": path, "differs": differs, "thumbnails": thumbs}
            )
    return out


GALLERY_PER_AGENT = 3
"""Failed episodes listed per agent and scenario, worst first."""


def failed(record: dict) -> bool:
    return record["status"] != "ok" or record["driving_score"] < 1.0


def _gallery(
    config: dict, rows: dict, videos: dict[str, list[dict]], files: Path, progress: bool
) -> dict[str, list[dict]]:
    """Per scenario and agent, the failed episodes (worst first, up to GALLERY_PER_AGENT) and a
    thumbnail of the worst: the filmed one's, else (when videos are on) the seed re-driven alone."""
    out = {}
    for s, data in rows["scenarios"].items():
        thumbs = {a: v["thumbnails"][a] for v in videos.get(s, []) for a in v["thumbnails"]}
        out[s] = []
        for a, rs in data["records"].items():
            bad = sorted(
                (r for r in rs if failed(r)), key=lambda r: (r["driving_score"], r["seed"])
            )
            episodes = [
                {
                    "seed": r["seed"],
                    "status": r["status"],
                    "score": r["driving_score"],
                    "error": r.get("error"),
                }
                for r in bad[:GALLERY_PER_AGENT]
            ]
            thumb = thumbs.get(a)
            if bad and thumb is None and videos:
                thumb = _thumbnail(config, a, s, int(bad[0]["seed"]), files, progress)
            out[s].append(
                {
                    "agent": a,
                    "episodes": len(rs),
                    "failed": len(bad),
                    "worst": episodes,
                    "thumbnail": thumb if bad else None,
                }
            )
    return out


def _thumbnail(
    config: dict, agent: str, scenario: str, seed: int, files: Path, progress: bool
) -> Path | None:
    """Re-drive one agent's episode and keep its last frame (the moment it failed)."""
    if progress:
        print(f"thumbnail: {scenario} seed {seed} ({agent})", flush=True)
    work = Path(tempfile.mkdtemp(prefix="drive-thumb-", dir=files))
    try:
        [(clip, _)] = drive_clips([agent], scenario, seed, work, **_redrive(config))
        img = last_frame(clip)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    ok, buf = (
        cv2.imencode(".png", cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
        if img is not None
        else (False, None)
    )
    if not ok:
        return None
    path = files / f"{scenario}__seed{seed}__{_slug(agent)}.png"
    atomic_write_bytes(path, buf.tobytes())
    return path


SELF_CHECK = """<script>
// After load, count the figures and videos the browser could decode; the result lands in
// the body's data-media attribute ("images 9 of 9 ..."), which the tests read in headless Chromium.
window.addEventListener("load", () => {
  const imgs = [...document.images], vids = [...document.querySelectorAll("video")];
  const okImgs = imgs.filter(i => i.complete && i.naturalWidth > 0).length;
  Promise.all(vids.map(v => v.readyState >= 1 ? true : new Promise(done => {
    v.addEventListener("loadedmetadata", () => done(v.videoWidth > 0));
    v.addEventListener("error", () => done(false));
  }))).then(res => {
    document.body.dataset.media =
      `images ${okImgs}/${imgs.length}, videos ${res.filter(Boolean).length}/${vids.length}`;
  });
});
</script>"""


def write_report(
    folder: str | Path,
    videos: int = 3,
    progress: bool = False,
    links: Sequence[tuple[str, Path]] = (),
) -> dict[str, Path]:
    """Write ``report.md``, ``report.html`` and ``report.json`` into ``folder``; with
    ``videos`` > 0, up to that many side-by-side videos per scenario (episodes re-driven);
    ``links``: (title, file) pairs listed at the end (``drive compare``: scaling studies)."""
    folder = Path(folder)
    config, records = load_eval(folder)
    rows = build_rows(config, records)
    rows["probes"] = read_probes(folder)
    files = ensure_writable_dir(folder / FILES)
    figs = _figures(rows, files)
    tables = _tables(rows)
    notes = _notes(rows)
    clips = _videos(config, rows, files, videos, progress) if videos > 0 else {}
    gallery = _gallery(config, rows, clips, files, progress)
    seeds = rows["seeds"]
    seed_text = f"seeds {seeds[0]}-{seeds[-1]}" if seeds else "no seeds"
    md = [
        f"# Evaluation report: {folder.name}",
        "",
        f"{len(records)} episodes; {seed_text}; git revision {rows['git_revision']}.",
        "",
        INTRO,
        "",
    ]
    body = [
        f"<h1>Evaluation report: {html.escape(folder.name)}</h1>",
        (
            f"<p>{len(records)} episodes; {html.escape(seed_text)}; git revision "
            f"{html.escape(str(rows['git_revision']))}.</p>"
        ),
        f"<p>{html.escape(INTRO)}</p>",
    ]
    for title, header, cells in tables:
        above, below = notes.get(title, ([], []))
        md += [
            f"## {title}",
            "",
            *[x for p in above for x in (p, "")],
            md_table(header, cells),
            "",
            *[x for p in below for x in (p, "")],
        ]
        body.append(f"<h2>{html.escape(title)}</h2>")
        body += [f"<p class=note>{html.escape(p)}</p>" for p in above]
        body.append(html_table(header, cells))
        body += [f"<p class=note>{html.escape(p)}</p>" for p in below]
    for group, items in figs.items():
        md += [f"## Figures: {group}", ""]
        body.append(f"<h2>Figures: {html.escape(group)}</h2>")
        for caption, path in items:
            md += [f"![{caption}]({FILES}/{path.name})", "", f"*{caption}*", ""]
            data = base64.b64encode(path.read_bytes()).decode()
            body.append(
                f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">'
                f"<figcaption>{html.escape(caption)}</figcaption></figure>"
            )
    for s, items in clips.items():
        if not items:
            continue
        md += [f"## Side by side: {s}", ""]
        body.append(f"<h2>Side by side: {html.escape(s)}</h2>")
        for v in items:
            note = (
                f" Re-driven episode differs from the evaluation for: {', '.join(v['differs'])}."
                if v["differs"]
                else ""
            )
            md += [f"[{v['why']}]({FILES}/{v['path'].name}){note}", ""]
            data = base64.b64encode(v["path"].read_bytes()).decode()
            body.append(
                f"<figure><video controls muted preload=metadata width=900 "
                f'src="data:video/mp4;base64,{data}"></video>'
                f"<figcaption>{html.escape(v['why'] + note)}</figcaption></figure>"
            )
    md += ["## Failure gallery", "", GALLERY_INTRO, ""]
    body += ["<h2>Failure gallery</h2>", f"<p>{html.escape(GALLERY_INTRO)}</p>"]
    for s, items in gallery.items():
        md += [
            f"### {s}",
            "",
            "| agent | failed | seed | status | driving score | error |",
            "|---|---|---|---|---|---|",
        ]
        body.append(f"<h3>{html.escape(s)}</h3><div class=gallery>")
        for g in items:
            if not g["worst"]:
                md.append(f"| {g['agent']} | 0 of {g['episodes']} | | | | |")
                body.append(
                    f"<p class=clean>{html.escape(g['agent'])}: no failed episode "
                    f"(all {g['episodes']} ok, score 1.000)</p>"
                )
                continue
            lines, count = [], f"{g['failed']} of {g['episodes']}"
            for k, w in enumerate(g["worst"]):
                err = (w["error"] or "").splitlines()[0][:120] if w["error"] else ""
                first = k == 0
                md.append(
                    f"| {g['agent'] if first else ''} | {count if first else ''} "
                    f"| {w['seed']} | {w['status']} | {w['score']:.3f} | {err.replace('|', '/')} |"
                )
                lines.append(
                    f"seed {w['seed']}: {html.escape(w['status'])}, score {w['score']:.3f}"
                    + (f" - {html.escape(err)}" if err else "")
                )
            img = ""
            if g["thumbnail"] is not None:
                data = base64.b64encode(Path(g["thumbnail"]).read_bytes()).decode()
                img = (
                    f'<img alt="last frame of seed {g["worst"][0]["seed"]}" width=384 '
                    f'src="data:image/png;base64,{data}">'
                )
            body.append(
                f"<figure>{img}<figcaption><b>{html.escape(g['agent'])}</b>: {g['failed']} of "
                f"{g['episodes']} failed<br>" + "<br>".join(lines) + "</figcaption></figure>"
            )
        md.append("")
        body.append("</div>")
    if links:
        md += ["## See also", ""]
        body.append("<h2>See also</h2><ul>")
        for title, target in links:
            rel = os.path.relpath(Path(target).resolve(), folder.resolve())
            md.append(f"- [{title}]({rel})")
            body.append(f'<li><a href="{html.escape(rel)}">{html.escape(title)}</a></li>')
        md.append("")
        body.append("</ul>")
    page = (
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>"
        + html.escape(f"Evaluation report: {folder.name}")
        + "</title><style>"
        "body{font-family:system-ui,sans-serif;margin:2em;max-width:110em}"
        "table{border-collapse:collapse;font-size:13px;margin-bottom:1.5em}"
        "th,td{border:1px solid #ccc;padding:3px 6px;text-align:right}"
        "td:first-child,th:first-child{text-align:left}th{background:#f3f3f3}"
        "figure{display:inline-block;margin:0 1em 1em 0;vertical-align:top}"
        "figcaption{font-size:12px;color:#555}p.clean{font-size:13px;color:#2a7a2a}"
        "p.note{font-size:13px;color:#333;max-width:80em}"
        "</style></head><body>" + "\n".join(body) + SELF_CHECK + "</body></html>\n"
    )
    paths = {
        "md": folder / "report.md",
        "html": folder / "report.html",
        "json": folder / "report.json",
    }
    atomic_write_text(paths["md"], "\n".join(md))
    atomic_write_text(paths["html"], page)
    atomic_write_text(paths["json"], json.dumps(_plain(rows), indent=1, sort_keys=True) + "\n")
    return paths


def _plain(rows: dict) -> Any:
    """report.json: the tables' numbers (records left out: they are in results.jsonl)."""

    def conv(o):
        if hasattr(o, "__dataclass_fields__"):
            return {k: conv(getattr(o, k)) for k in o.__dataclass_fields__}
        if isinstance(o, dict):
            return {str(k): conv(v) for k, v in o.items() if k != "records"}
        if isinstance(o, list):
            return [conv(v) for v in o]
        if isinstance(o, float) and not np.isfinite(o):
            return None
        return o

    return conv(rows)
