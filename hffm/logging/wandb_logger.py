"""Weights & Biases logging of a run: metrics per round, the solver's plan, topology maps, plots.

Offline by default (``cfg.logger.mode``): the run is written under ``out_dir/wandb/offline-run-*``
and never touches the network; ``wandb sync`` uploads it later. ``mode="disabled"`` makes every call
a no-op. A ``WANDB_MODE`` environment variable, when set, wins over the config, so a CI job or a test
session can force offline or disabled whatever the config says. Each logger owns its own run
(``reinit="create_new"``), so a Hydra ``--multirun`` gives one wandb run per job, grouped by the
experiment name.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hffm.plots import plot_topology

if TYPE_CHECKING:
    from hffm.config import Config
    from hffm.federation.records import Plan, RoundOutcome
    from hffm.federation.world import World

COST_AXES = {"cost/cum_latency_s": "vs_latency", "cost/cum_energy_j": "vs_energy"}
"""Cumulative cost -> the prefix under which accuracy is logged again with that cost as its x axis."""


class WandbLogger:
    """A round-loop logger (``logger(metrics, step, plan)``) that owns one wandb run.

    ``table_every``: log the per-device plan table on the first round, the last one and every
    ``table_every`` rounds (0: first and last only).
    """

    def __init__(
        self, cfg: Config, out_dir: str | Path, world: World, *, name: str | None = None, table_every: int = 10
    ) -> None:
        import wandb

        if table_every < 0:
            raise ValueError(f"WandbLogger table_every={table_every}: must be >= 0 (0 = first and last round only)")
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.world = world
        self.table_every = table_every
        self.total_rounds = int(cfg.federation.rounds)
        self._first_step: int | None = None
        self._last_relays: frozenset[tuple[int, int]] | None = None
        self._last_round = 0.0
        self.run = wandb.init(
            project=cfg.logger.project,
            group=cfg.logger.group or cfg.name,
            name=name or f"{cfg.name}-seed{cfg.seed}-{self.out_dir.name}"[:128],
            dir=str(self.out_dir),
            mode=os.environ.get("WANDB_MODE") or cfg.logger.mode,  # type: ignore[arg-type]  # checked by resolve
            config=dataclasses.asdict(cfg),
            tags=list(cfg.logger.tags),
            reinit="create_new",
            settings=wandb.Settings(quiet=cfg.progress == "none"),
        )
        self.enabled = not getattr(self.run, "disabled", False)
        self._define_metrics()

    def _define_metrics(self) -> None:
        """Charts against the round; the accuracy copies against cumulative latency and energy."""
        self.run.define_metric("round")
        for cum, prefix in COST_AXES.items():
            self.run.define_metric(cum, step_metric="round")
            self.run.define_metric(f"{prefix}/*", step_metric=cum)
        self.run.define_metric("accuracy", step_metric="round", summary="max,last")
        self.run.define_metric("*", step_metric="round")

    # ---- the loop's call ------------------------------------------------------------------
    def __call__(
        self, metrics: dict[str, float], step: int, plan: Plan | None = None, outcome: RoundOutcome | None = None
    ) -> None:
        """Log one round: its metrics, the plan summary, and on some rounds the plan table and map."""
        import wandb

        if self._first_step is None:
            self._first_step = step
        row: dict[str, Any] = {k: v for k, v in metrics.items() if isinstance(v, (int, float))}
        row.setdefault("round", float(step))
        self._last_round = float(row["round"])
        if "accuracy" in row:
            for cum, prefix in COST_AXES.items():
                if cum in row:
                    row[f"{prefix}/accuracy"] = row["accuracy"]
        if plan is not None:
            row |= self.plan_summary(plan, outcome)
            if plan.bandwidth_hz is not None:
                shares = self.bandwidth_shares(plan)
                if shares.size:
                    row["plan/bandwidth_share"] = wandb.Histogram(shares.tolist())
            if self._table_due(step):
                row["plan/devices"] = wandb.Table(
                    columns=["device", "edge", "relay", "bandwidth_hz", "num_modules", "modules"],
                    data=self.plan_rows(plan),
                )
        if outcome is not None:
            relays = frozenset(outcome.relay_links())
            if relays != self._last_relays and self.enabled:
                row["plan/topology"] = wandb.Image(str(self._topology_map(outcome, step)),
                                                   caption=f"round {step}: {len(relays)} D2D forwarding link(s)")
                self._last_relays = relays
        self.run.log(row)

    def _table_due(self, step: int) -> bool:
        every = self.table_every and step % self.table_every == 0
        return step == self._first_step or step == self.total_rounds or bool(every)

    def plan_summary(self, plan: Plan, outcome: RoundOutcome | None = None) -> dict[str, float]:
        """Placement counts per module kind and the D2D forwarding links used this round."""
        out: dict[str, float] = {}
        for modules in plan.placement.values():
            for name in modules:
                key = f"plan/placed/{self.world.bank.kind(name)}"
                out[key] = out.get(key, 0.0) + 1.0
        links = outcome.relay_links() if outcome is not None else []
        out["plan/placed/total"] = float(sum(len(m) for m in plan.placement.values()))
        out["plan/relayed_devices"] = float(len(links))
        out["plan/relay_nodes"] = float(len({r for _, r in links}))
        return out

    def bandwidth_shares(self, plan: Plan) -> np.ndarray:
        """Each participant's share of its edge server's uplink budget (bandwidth_hz / budget)."""
        budget = float(self.world.network.channel.edge_bandwidth_hz)
        devices = sorted(plan.relay or plan.placement)
        return np.asarray(plan.bandwidth_hz, dtype=float)[devices] / budget

    def plan_rows(self, plan: Plan) -> list[list[Any]]:
        """(device, edge, relay, bandwidth_hz, number of modules, module names) per participant."""
        edge_of = self.world.topology.device_edge
        rows = []
        for d in sorted(set(plan.placement) | set(plan.relay)):
            modules = list(plan.placement.get(d, []))
            bandwidth = float(plan.bandwidth_hz[d]) if plan.bandwidth_hz is not None else float("nan")
            rows.append([int(d), int(edge_of[d]), int(plan.relay.get(d, d)), bandwidth, len(modules),
                         " ".join(modules)])
        return rows

    def _topology_map(self, outcome: RoundOutcome, step: int) -> Path:
        path = self.out_dir / "plots" / "relays" / f"topology_round_{step:04d}.png"
        n = len(outcome.relay_links())
        return plot_topology(self.world.topology, outcome, path=path, title=f"round {step}: {n} D2D forwarding link(s)")

    # ---- after the loop ---------------------------------------------------------------------
    def log_images(self, paths: Iterable[str | Path]) -> None:
        """Log saved plot files as images, keyed ``plots/<file stem>``, at the last round."""
        import wandb

        if not self.enabled:
            return
        images = {f"plots/{Path(p).stem}": wandb.Image(str(p)) for p in paths}
        if images:
            self.run.log({"round": self._last_round, **images})

    def finish(self, history: Sequence[dict[str, float]] = (), exit_code: int | None = None) -> None:
        """Write the run summary (final accuracy, cumulative latency and energy) and close the run;
        a non-zero ``exit_code`` marks it failed (call from an ``except``/``finally`` when the loop raised)."""
        if history:
            last = history[-1]
            summary = {
                "final/accuracy": last.get("accuracy"),
                "final/cum_latency_s": last.get("cost/cum_latency_s"),
                "final/cum_energy_j": last.get("cost/cum_energy_j"),
                "final/rounds": last.get("round", len(history)),
            }
            accuracies = [r["accuracy"] for r in history if "accuracy" in r and np.isfinite(r["accuracy"])]
            if accuracies:
                summary["best/accuracy"] = max(accuracies)
            for key, value in summary.items():
                if value is not None:
                    self.run.summary[key] = value
        self.run.finish(exit_code=exit_code)

