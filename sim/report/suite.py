"""The benchmark suite's report: one curve per axis, the hazard table, the generalisation gaps.

Reads a ``drive bench suite`` folder (:func:`sim.harness.suite.suite_scores`) and writes
``suite.md``, ``suite.html``, ``suite.json`` and its figures into it.  Every number is a
mean driving score over the cell's seeds with its 95% bootstrap interval (or a Wilson
interval for collision shares); a gap is the difference to the cell's clean reference,
paired by seed where the world is the same (visual conditions: same traffic, other
colours) and unpaired where it is not (unseen maps are other roads).
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sim.harness.io import atomic_write_bytes, atomic_write_json, ensure_writable_dir
from sim.harness.metrics import scored
from sim.harness.stats import Estimate, bootstrap, paired, wilson
from sim.report.report import _save, subplots
from sim.report.tables import html_table, md_table

FILES = "suite_files"
AXIS_TITLES = {
    "density": "Traffic density",
    "hazards": "Hazards",
    "maps": "Training vs unseen maps",
    "visual": "Visual conditions",
}
PRIVILEGED = ("truth", "bev", "autopilot")
GAPS_NOTE = (
    "Unseen maps against the training maps (unpaired: other roads), each visual condition "
    "against day (paired by seed: the same traffic)."
)


def _scores(records: Sequence[dict]) -> dict[int, float]:
    return {int(r["seed"]): float(r["driving_score"]) for r in records if scored(r)}


def _difference(a: Sequence[float], b: Sequence[float], resamples: int = 2000) -> Estimate:
    """Mean of ``a`` minus mean of ``b`` (independent samples) with a 95% percentile bootstrap."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if not len(a) or not len(b):
        return Estimate(float("nan"), float("nan"), float("nan"), 0)
    rng = np.random.default_rng(0)
    da = a[rng.integers(len(a), size=(resamples, len(a)))].mean(axis=1)
    db = b[rng.integers(len(b), size=(resamples, len(b)))].mean(axis=1)
    low, high = np.percentile(da - db, [2.5, 97.5])
    return Estimate(float(a.mean() - b.mean()), float(low), float(high), min(len(a), len(b)))


def cell_summary(records: Sequence[dict]) -> dict[str, Any]:
    """One (cell, agent): mean driving score with its interval, collisions, share at 1.000."""
    kept = [r for r in records if scored(r)]
    n = len(kept)
    collisions = sum(r["status"] == "collision" for r in kept)
    return {
        "score": bootstrap([r["driving_score"] for r in kept]),
        "n": n,
        "collisions": collisions,
        "collision_rate": wilson(collisions, n),
        "offroad": sum(r["status"] == "offroad" for r in kept),
        "perfect": float(np.mean([r["driving_score"] >= 1.0 - 1e-9 for r in kept]))
        if n
        else float("nan"),
        "unaffected": bool(kept) and all(r.get("unaffected") for r in kept),
    }


def build_suite(data: dict[str, Any]) -> dict[str, Any]:
    """Per axis the ordered cells and, per agent, each cell's summary; plus the gaps."""
    plan, records = data["plan"], data["records"]
    agents = plan["agents"]
    families = plan.get("families") or {}

    def runs(
        agent: str, axis: str
    ) -> bool:  # an agent limited to some families (e2e-bev@density+hazards)
        return families.get(agent) is None or axis.split(":", 1)[0] in families[agent]

    axes: dict[str, list[dict]] = {}
    for c in plan["cells"]:
        row = {
            **c,
            "agents": {
                a: cell_summary(records.get((c["scenario"], a), []) if runs(a, c["axis"]) else [])
                for a in agents
            },
        }
        axes.setdefault(c["axis"], []).append(row)
    gaps = []
    for c in plan["cells"]:
        if c["axis"] not in ("maps", "visual") or c["scenario"] == c["reference"]:
            continue
        for a in (a for a in agents if runs(a, c["axis"])):
            test, ref = (
                _scores(records.get((c["scenario"], a), [])),
                _scores(records.get((c["reference"], a), [])),
            )
            if not test or not ref:
                continue
            if c["axis"] == "visual":  # same worlds, seed for seed: paired
                d, how = paired(test, ref).difference, "paired"
            else:  # other roads: independent samples
                d, how = _difference(list(test.values()), list(ref.values())), "unpaired"
            gaps.append(
                {
                    "axis": c["axis"],
                    "cell": c["level"],
                    "scenario": c["scenario"],
                    "reference": c["reference"],
                    "agent": a,
                    "gap": d,
                    "how": how,
                    "unaffected": all(
                        r.get("unaffected") for r in records.get((c["scenario"], a), [])
                    ),
                }
            )
    return {"plan": plan, "agents": agents, "axes": axes, "gaps": gaps}


# -- figures ---------------------------------------------------------------------------------
COLOURS = ("#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d", "#666666")


def _curve(ax, rows: list[dict], agents: list[str], xlabels: list[str], title: str) -> None:
    for k, a in enumerate(agents):
        if not any(r["agents"][a]["n"] for r in rows):
            continue  # an agent that does not run this axis
        x = (
            np.arange(len(rows)) + (k - (len(agents) - 1) / 2) * 0.04
        )  # dodged: equal scores stay visible
        est = [r["agents"][a]["score"] for r in rows]
        y = np.array([e.value for e in est])
        lo = np.array([e.low if np.isfinite(e.low) else e.value for e in est])
        hi = np.array([e.high if np.isfinite(e.high) else e.value for e in est])
        dashed = any(r["agents"][a]["unaffected"] for r in rows[1:])
        ax.plot(
            x,
            y,
            marker="o",
            color=COLOURS[k % len(COLOURS)],
            label=a + (" (unaffected)" if dashed else ""),
            linestyle="--" if dashed else "-",
            linewidth=1.6,
        )
        ax.fill_between(x, lo, hi, color=COLOURS[k % len(COLOURS)], alpha=0.15, linewidth=0)
    ax.set_xticks(np.arange(len(rows)), xlabels)
    ax.set_ylim(-0.03, 1.05)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)


def _ran(rows: list[dict], agents: list[str]) -> bool:
    """Whether any agent has an episode in these cells (an axis no agent runs gets no plot)."""
    return any(r["agents"][a]["n"] for r in rows for a in agents)


def _figures(suite: dict, files: Path) -> dict[str, Path]:
    agents, axes, out = suite["agents"], suite["axes"], {}
    for axis in ("density", "visual"):
        if axis in axes and _ran(axes[axis], agents):
            fig, ax = subplots(figsize=(6.4, 3.8))
            _curve(
                ax,
                axes[axis],
                agents,
                [r["level"] for r in axes[axis]],
                f"{AXIS_TITLES[axis]}: driving score (mean, 95% CI)",
            )
            ax.set_ylabel("driving score")
            ax.legend(fontsize=8, loc="lower left")
            out[axis] = _save(fig, files / f"{axis}.png")
    faults = [a for a in axes if a.startswith("fault:") and _ran(axes[a], agents)]
    if faults:
        ncols = 4
        nrows = -(-len(faults) // ncols)
        fig, grid = subplots(nrows, ncols, figsize=(3.4 * ncols, 2.9 * nrows))
        grid = np.atleast_1d(grid).ravel()
        for ax, axis in zip(grid, faults):
            _curve(ax, axes[axis], agents, [r["level"] for r in axes[axis]], axis.split(":", 1)[1])
        for ax in grid[len(faults) :]:
            ax.set_visible(False)
        grid[0].legend(fontsize=7, loc="lower left")
        fig.suptitle(
            "Faults: driving score against severity level (0 = clean; mean, 95% CI)", fontsize=11
        )
        out["faults"] = _save(fig, files / "faults.png")
    for axis in ("hazards", "maps"):
        if axis in axes:
            rows = axes[axis]
            present = [a for a in agents if any(r["agents"][a]["n"] for r in rows)]
            if not present:
                continue  # no agent ran this axis (e2e-bev@density+hazards and the maps): no plot
            fig, ax = subplots(figsize=(7.2, 3.8))
            width = 0.8 / max(1, len(present))
            x = np.arange(len(rows))
            for k, a in enumerate(present):
                est = [r["agents"][a]["score"] for r in rows]
                y = np.array([e.value for e in est])
                err = np.array(
                    [
                        [max(0.0, e.value - e.low) if np.isfinite(e.low) else 0.0 for e in est],
                        [max(0.0, e.high - e.value) if np.isfinite(e.high) else 0.0 for e in est],
                    ]
                )
                ax.bar(
                    x + (k - (len(present) - 1) / 2) * width,
                    y,
                    width,
                    yerr=err,
                    capsize=2,
                    color=COLOURS[agents.index(a) % len(COLOURS)],
                    label=a,
                )
            ax.set_xticks(x, [r["level"] for r in rows], fontsize=8)
            ax.set_ylim(0, 1.08)
            ax.set_ylabel("driving score")
            ax.set_title(f"{AXIS_TITLES[axis]}: driving score (mean, 95% CI)", fontsize=10)
            ax.legend(
                fontsize=8, ncol=len(present), loc="upper center", bbox_to_anchor=(0.5, -0.12)
            )
            ax.grid(axis="y", alpha=0.3)
            out[axis] = _save(fig, files / f"{axis}.png")
    return out


# -- tables ----------------------------------------------------------------------------------
def _cell_text(s: dict) -> str:
    if not s["n"]:
        return "-"
    text = f"{s['score'].format()} ({s['collisions']} coll"
    if s["offroad"]:
        text += f", {s['offroad']} off"
    text += ")"
    return text + " =clean" if s["unaffected"] else text


def _axis_table(
    rows: list[dict], agents: list[str], first: str
) -> tuple[list[str], list[list[str]]]:
    header = [first, "scenario"] + agents + ["expert at 1.000"]
    cells = []
    for r in rows:
        expert = r["agents"].get("expert")
        share = f"{expert['perfect']:.0%}" if expert and expert["n"] else "-"
        cells.append(
            [r["level"], f"`{r['scenario']}`"]
            + [_cell_text(r["agents"][a]) for a in agents]
            + [share]
        )
    return header, cells


def _faults_table(suite: dict) -> tuple[list[str], list[list[str]]]:
    from sim.harness.faults import describe_fault

    agents = suite["agents"]
    header = ["fault", "level", "what"] + agents
    cells = []
    for axis, rows in suite["axes"].items():
        if not axis.startswith("fault:"):
            continue
        kind = axis.split(":", 1)[1]
        for r in rows:
            what = "clean" if r["level"] == "0" else describe_fault(kind, int(r["level"]))
            cells.append([kind, r["level"], what] + [_cell_text(r["agents"][a]) for a in agents])
    return header, cells


def _gaps_table(suite: dict) -> tuple[list[str], list[list[str]]]:
    header = ["axis", "cell", "agent", "score there", "reference", "gap (95% CI)", "how"]
    cells = []
    for g in suite["gaps"]:
        rows = {r["scenario"]: r for r in suite["axes"][g["axis"]]}
        there = rows[g["scenario"]]["agents"][g["agent"]]["score"].format()
        ref_row = next(
            (r for r in suite["axes"][g["axis"]] if r["scenario"] == g["reference"]), None
        )
        ref = ref_row["agents"][g["agent"]]["score"].format() if ref_row else "-"
        how = "unaffected (reads no camera)" if g["unaffected"] else g["how"]
        cells.append([g["axis"], g["cell"], g["agent"], there, ref, g["gap"].format(), how])
    return header, cells


def _sensors_line(suite: dict) -> str:
    parts = []
    for a, sensors in suite["plan"]["sensors"].items():
        priv = [s for s in sensors if s in PRIVILEGED]
        parts.append(
            f"{a}: {', '.join(sensors)}" + (f" (privileged: {', '.join(priv)})" if priv else "")
        )
    return "Sensors: " + "; ".join(parts) + "."


INTRO = (
    "Each cell is a scenario variant run by every agent on the same seeds; a number is the mean "
    "driving score (route completion x infraction penalties) with its 95% bootstrap interval, then "
    "the collisions (and off-road ends) out of the cell's episodes. '=clean' marks an agent the "
    "cell cannot affect (a visual condition or image fault for an agent that reads no camera; "
    "pose noise for one that reads no pose): its clean episodes stand for it, unchanged."
)


def reading(suite: dict) -> list[str]:
    """Sentences computed from the numbers: where the agents separate, where the expert stops
    sitting at the ceiling."""
    out = []
    agents = suite["agents"]
    for axis, rows in suite["axes"].items():
        if axis not in ("density", "hazards"):
            continue
        for r in rows:
            e = r["agents"].get("expert")
            if e and e["n"] and e["perfect"] < 1.0:
                out.append(
                    f"{r['scenario']}: the expert scores 1.000 on {e['perfect']:.0%} of {e['n']} "
                    f"seeds (mean {e['score'].value:.3f}, {e['collisions']} collisions): below the "
                    "ceiling."
                )
    for axis in ("density", "hazards", "maps", "visual"):
        for r in suite["axes"].get(axis, []):
            vals = {a: r["agents"][a]["score"].value for a in agents if r["agents"][a]["n"]}
            if len(vals) >= 2:
                best, worst = max(vals, key=vals.get), min(vals, key=vals.get)
                if vals[best] - vals[worst] >= 0.2:
                    out.append(
                        f"{r['scenario']}: {best} {vals[best]:.3f} vs {worst} {vals[worst]:.3f}."
                    )
    return out


def write_suite_report(folder: str | Path) -> dict[str, Path]:
    """Write ``suite.md``, ``suite.html``, ``suite.json`` and the figures into ``folder``."""
    from sim.harness.suite import suite_scores

    folder = Path(folder)
    suite = build_suite(suite_scores(folder))
    files = ensure_writable_dir(folder / FILES)
    figs = _figures(suite, files)
    plan = suite["plan"]
    seeds = plan["seeds"]
    head = (
        f"Suite {plan['suite']!r}: {len(plan['cells'])} cells x {len(plan['agents'])} agents on "
        f"seeds {seeds[0]}-{seeds[-1]} ({len(seeds)} per cell)."
    )
    sections: list[tuple[str, list[str], tuple[list[str], list[list[str]]] | None, str | None]] = []
    axes = suite["axes"]
    for axis, first in (
        ("density", "traffic"),
        ("hazards", "hazard"),
        ("maps", "maps"),
        ("visual", "condition"),
    ):
        if axis in axes:
            sections.append(
                (AXIS_TITLES[axis], [], _axis_table(axes[axis], suite["agents"], first), axis)
            )
    if any(a.startswith("fault:") for a in axes):
        sections.append(("Sensor and actuation faults", [], _faults_table(suite), "faults"))
    if suite["gaps"]:
        sections.append(
            ("Generalisation gaps (unseen - training)", [GAPS_NOTE], _gaps_table(suite), None)
        )
    notes = reading(suite)
    md = [f"# Benchmark suite: {folder.name}", "", head, "", INTRO, "", _sensors_line(suite), ""]
    body = [
        f"<h1>Benchmark suite: {html.escape(folder.name)}</h1>",
        f"<p>{html.escape(head)}</p>",
        f"<p>{html.escape(INTRO)}</p>",
        f"<p class=note>{html.escape(_sensors_line(suite))}</p>",
    ]
    if notes:
        md += ["## Reading", "", *[f"- {n}" for n in notes], ""]
        body += ["<h2>Reading</h2><ul>", *[f"<li>{html.escape(n)}</li>" for n in notes], "</ul>"]
    for title, above, table, fig in sections:
        md += [f"## {title}", "", *[x for p in above for x in (p, "")]]
        body.append(f"<h2>{html.escape(title)}</h2>")
        body += [f"<p class=note>{html.escape(p)}</p>" for p in above]
        if fig and fig in figs:
            rel = f"{FILES}/{figs[fig].name}"
            md += [f"![{title}]({rel})", ""]
            body.append(f"<img src='{html.escape(rel)}' alt='{html.escape(title)}'>")
        if table:
            header, cells = table
            md += [md_table(header, cells), ""]
            body.append(html_table(header, cells))
    if plan.get("command"):
        md += ["## Command", "", "```", " ".join(plan["command"]), "```", ""]
        body.append(f"<h2>Command</h2><pre>{html.escape(' '.join(plan['command']))}</pre>")
    style = (
        "body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}"
        "table{border-collapse:collapse;font-size:13px;margin:1em 0}td,th{border:1px solid #ccc;"
        "padding:3px 6px;text-align:left}img{max-width:100%}.note{color:#444}"
    )
    page = (
        f"<!doctype html><html><head><meta charset=utf-8><title>{html.escape(folder.name)}</title>"
        f"<style>{style}</style></head><body>" + "\n".join(body) + "</body></html>"
    )
    md_path, html_path, json_path = (
        folder / "suite.md",
        folder / "suite.html",
        folder / "suite_report.json",
    )
    atomic_write_bytes(md_path, "\n".join(md).encode())
    atomic_write_bytes(html_path, page.encode())
    atomic_write_json(
        json_path,
        json.loads(json.dumps({"axes": suite["axes"], "gaps": suite["gaps"]}, default=_plain)),
    )
    return {"md": md_path, "html": html_path, "json": json_path, **figs}


def _plain(o: Any) -> Any:
    if isinstance(o, Estimate):
        return {"value": o.value, "low": o.low, "high": o.high, "n": o.n}
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    raise TypeError(type(o).__name__)
