"""PNG plots of a run: learning curves, costs per round and cumulative, accuracy vs cost, the topology.

Every function builds a ``matplotlib.figure.Figure`` on its own Agg canvas (no pyplot, no global
backend switch), so plotting works headless, in threads and in notebooks alike. Inputs are the
loop's per-round metric dicts (``history``), keyed as in ``hffm.federation.loop``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from hffm.federation.records import RoundOutcome
    from hffm.federation.world import World
    from hffm.network.topology import Topology

History = Sequence[dict[str, float]]
TIERS = ("device", "edge", "cloud")
"""cost/energy/<tier> keys split the same energy by tier: not stacked with the link kinds."""
TIER_STYLE = {"global": "-", "edge": ":", "device": "--"}
_EVAL_KEY = re.compile(r"^(global|edge|device)/([^/@]+)/(acc|mae)$")


def _figure(nrows: int = 1, ncols: int = 1, width: float = 5.0, height: float = 3.6) -> tuple[Figure, np.ndarray]:
    """A Figure on an Agg canvas and its axes as a flat array."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * ncols, height * nrows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes.ravel()


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def _series(history: History, key: str, x: str = "round") -> tuple[np.ndarray, np.ndarray]:
    """(x, y) over the rounds that logged ``key`` with a finite value."""
    rows = [r for r in history if key in r and x in r and np.isfinite(r[key]) and np.isfinite(r[x])]
    return np.array([r[x] for r in rows], dtype=float), np.array([r[key] for r in rows], dtype=float)


def _suffixes(history: History, prefix: str) -> list[str]:
    """The sorted names after ``prefix`` that appear in any round, without further slashes."""
    found = {k[len(prefix):] for r in history for k in r if k.startswith(prefix)}
    return sorted(s for s in found if s and "/" not in s)


def eval_tasks(history: History) -> dict[str, str]:
    """Task -> its headline metric (acc, or mae for regression) among the evaluated keys."""
    tasks: dict[str, str] = {}
    for row in history:
        for key in row:
            m = _EVAL_KEY.match(key)
            if m:
                tasks.setdefault(m.group(2), m.group(3))
    return dict(sorted(tasks.items()))


def plot_learning_curves(
    history: History,
    path: str | Path,
    chance: dict[str, float] | None = None,
    units: dict[str, tuple[str, float]] | None = None,
) -> Path | None:
    """One panel per task: its acc (or mae) against the round, global tier solid, edge dotted, device dashed.

    chance: task -> the accuracy of guessing (drawn as a grey line); units: task -> (unit, factor) of a
    regression target, so its MAE is also read in that unit on a right-hand axis (e.g. SNR in dB).
    """
    tasks = eval_tasks(history)
    if not tasks:
        return None
    chance, units = chance or {}, units or {}
    fig, axes = _figure(1, len(tasks), width=4.0)
    for ax, (task, metric) in zip(axes, tasks.items()):
        for tier, style in TIER_STYLE.items():
            x, y = _series(history, f"{tier}/{task}/{metric}")
            if x.size:
                ax.plot(x, y, style, marker=".", label=tier)
        if task in chance and metric == "acc":
            ax.axhline(chance[task], color="0.5", lw=1, ls="-.", label=f"chance ({chance[task]:.2f})")
        ylabel = "accuracy" if metric == "acc" else "MAE (normalised target)"
        if task in units and metric == "mae":
            unit, factor = units[task]
            ax.secondary_yaxis("right", functions=(lambda v, f=factor: v * f, lambda v, f=factor: v / f)).set_ylabel(
                f"MAE ({unit})")
        ax.set(title=task, xlabel="round", ylabel=ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    return _save(fig, path)


def task_chance_and_units(world: World) -> tuple[dict[str, float], dict[str, tuple[str, float]]]:
    """Chance accuracy of each classification task (1 / classes) and, for a regression target whose raw
    value the data keeps as ``extras[<task>_db]``, the factor from the normalised target to dB."""
    data = world.global_test
    chance = {t.name: 1.0 / t.num_classes for t in data.tasks if t.kind == "classification" and t.num_classes}
    units = {}
    for t in data.tasks:
        raw = data.extras.get(f"{t.name}_db")
        if t.kind == "regression" and raw is not None and len(raw) > 1:
            target = data.targets[t.name].double()
            spread = float(target.max() - target.min())
            if spread > 0:
                units[t.name] = ("dB", float(raw.double().max() - raw.double().min()) / spread)
    return chance, units


def plot_train_loss(history: History, path: str | Path) -> Path | None:
    """Mean local training loss per task against the round."""
    tasks = sorted({m.group(1) for r in history for k in r if (m := re.match(r"^train/([^/]+)/loss$", k))})
    if not tasks:
        return None
    fig, (ax,) = _figure()
    for task in tasks:
        ax.plot(*_series(history, f"train/{task}/loss"), marker=".", label=task)
    x, y = _series(history, "train/loss")
    if x.size:
        ax.plot(x, y, "k-", lw=2, label="mean")
    ax.set(xlabel="round", ylabel="training loss", title="local training loss")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return _save(fig, path)


def link_kinds(history: History, quantity: str) -> list[str]:
    """The link kinds (compute, uplink, d2d, ...) under cost/<quantity>/, without the tier split."""
    return [k for k in _suffixes(history, f"cost/{quantity}/") if k not in TIERS]


def plot_costs_per_round(history: History, path: str | Path) -> Path | None:
    """Latency and energy of each round as bars stacked by link kind, the round total as a line."""
    if not any("cost/latency_s" in r for r in history):
        return None
    fig, axes = _figure(1, 2)
    for ax, quantity, total, unit in zip(axes, ("latency", "energy"), ("cost/latency_s", "cost/energy_j"), ("s", "J")):
        x, y = _series(history, total)
        bottom = np.zeros_like(x)
        for kind in link_kinds(history, quantity):
            part = np.array([r.get(f"cost/{quantity}/{kind}", 0.0) for r in history if total in r], dtype=float)
            ax.bar(x, part, bottom=bottom, label=kind, width=0.8)
            bottom = bottom + part
        ax.plot(x, y, "k.-", label="round total")
        ax.set(xlabel="round", ylabel=f"{quantity} ({unit})", title=f"{quantity} per round")
        ax.grid(alpha=0.3, axis="y")
        ax.legend(fontsize="small")
    return _save(fig, path)


def plot_costs_cumulative(history: History, path: str | Path) -> Path | None:
    """Cumulative latency and energy, stacked by link kind (areas) with the loop's running total."""
    if not any("cost/cum_latency_s" in r for r in history):
        return None
    fig, axes = _figure(1, 2)
    for ax, quantity, cum, unit in zip(axes, ("latency", "energy"), ("cost/cum_latency_s", "cost/cum_energy_j"),
                                       ("s", "J")):
        x, y = _series(history, cum)
        kinds = link_kinds(history, quantity)
        if kinds:
            parts = [np.cumsum([r.get(f"cost/{quantity}/{k}", 0.0) for r in history if cum in r]) for k in kinds]
            ax.stackplot(x, *parts, labels=kinds, alpha=0.6)
        ax.plot(x, y, "k.-", label="cumulative total")
        ax.set(xlabel="round", ylabel=f"cumulative {quantity} ({unit})", title=f"cumulative {quantity}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small", loc="upper left")
    return _save(fig, path)


def plot_accuracy_vs_cost(histories: dict[str, History], path: str | Path, metric: str = "accuracy") -> Path | None:
    """``metric`` against cumulative latency and cumulative energy, one line per method (name -> history)."""
    if not isinstance(histories, dict):
        raise TypeError(f"histories must be a dict of method name -> history, got {type(histories).__name__}")
    fig, axes = _figure(1, 2)
    drawn = False
    for name, history in histories.items():
        for ax, cum in zip(axes, ("cost/cum_latency_s", "cost/cum_energy_j")):
            x, y = _series(history, metric, x=cum)
            if x.size:
                ax.plot(x, y, marker="o", ms=3, label=name)
                drawn = True
    if not drawn:
        return None
    for ax, label in zip(axes, ("cumulative latency (s)", "cumulative energy (J)")):
        ax.set(xlabel=label, ylabel=metric, title=f"{metric} vs {label.split(' (')[0]}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    return _save(fig, path)


def plot_topology(
    topology: Topology, outcome: RoundOutcome | None = None, path: str | Path | None = None, title: str | None = None
) -> Path:
    """Edge servers (squares), devices coloured by cluster, D2D links thin grey, uplinks faint, and the
    round's forwarding links (relays and tree links, device -> next hop) as arrows."""
    if path is None or isinstance(outcome, (str, Path)):
        raise TypeError("plot_topology(topology, outcome=None, path=...): pass the output file as path=")
    fig, (ax,) = _figure(width=6.0, height=6.0)
    colours = [ax._get_lines.get_next_color() for _ in range(topology.num_edges)]  # the default colour cycle
    dev, edge, owner = topology.device_pos, topology.edge_pos, topology.device_edge
    for i, j in topology.link_ends:
        ax.plot(*dev[[i, j]].T, color="0.6", lw=0.6, zorder=1)
    for i in range(topology.num_devices):
        ax.plot(*np.stack([dev[i], edge[owner[i]]]).T, color=colours[owner[i]], lw=0.4, alpha=0.3, zorder=1)
    ax.scatter(dev[:, 0], dev[:, 1], c=[colours[e] for e in owner], s=22, zorder=3, label="device")
    ax.scatter(edge[:, 0], edge[:, 1], c=colours, marker="s", s=90, edgecolors="k", zorder=4, label="edge server")
    relayed = outcome.relay_links() if outcome is not None else []
    for src, dst in relayed:
        ax.annotate("", xy=dev[dst], xytext=dev[src], zorder=5,
                    arrowprops={"arrowstyle": "->", "color": "crimson", "lw": 1.4})
    if relayed:
        ax.plot([], [], color="crimson", label=f"D2D forwarding ({len(relayed)})")
    ax.set_aspect("equal", adjustable="datalim")
    ax.set(xlabel="x (m)", ylabel="y (m)",
           title=title or f"{topology.num_edges} edges, {topology.num_devices} devices")
    ax.legend(fontsize="small", loc="best")
    return _save(fig, path)


def save_run_plots(
    history: History, world: World, out_dir: str | Path, outcome: RoundOutcome | None = None, name: str | None = None
) -> list[Path]:
    """Write every plot of a run under ``out_dir/plots`` and return the files written (plots with
    nothing to draw, e.g. no evaluated task, are skipped)."""
    if not history:
        raise ValueError("save_run_plots: history is empty (no round finished), nothing to plot")
    folder = Path(out_dir) / "plots"
    written = [
        plot_learning_curves(history, folder / "learning_curves.png", *task_chance_and_units(world)),
        plot_train_loss(history, folder / "train_loss.png"),
        plot_costs_per_round(history, folder / "cost_per_round.png"),
        plot_costs_cumulative(history, folder / "cost_cumulative.png"),
        plot_accuracy_vs_cost({name or Path(out_dir).name or "run": history}, folder / "accuracy_vs_cost.png"),
        plot_topology(world.topology, outcome, path=folder / "topology.png"),
    ]
    return [p for p in written if p is not None]
