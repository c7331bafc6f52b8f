"""Issue 19's smaller items: the ledger charges the samples devices really train on, faults are loud, a device
whose relay failed gets a band, config errors name the key at compose time."""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import pytest
from conftest import tiny_config
from lightning.fabric import Fabric

from hffm.engine import train_devices
from hffm.engine.jobs import rows_trained
from hffm.federation.fault_steps import _rewire
from hffm.federation.faults import FaultsConfig
from hffm.federation.loop import run_federation
from hffm.federation.records import Plan
from hffm.federation.traffic import module_cycles, samples_per_round, traffic_of
from hffm.run import make_world

FABRIC = Fabric(accelerator="cpu", devices=1)


def test_rows_trained_counts_short_last_batches_and_small_devices():
    assert rows_trained(100, 32, 2) == 64
    assert rows_trained(20, 32, 5) == 100  # a device holding 20 rows trains 20 a step, not 32
    assert rows_trained(40, 32, 3) == 32 + 8 + 32  # passes of reshuffled batches, the last one short
    assert rows_trained(0, 32, 3) == 0


@pytest.mark.parametrize("batched", [True, False])
def test_the_ledger_charges_what_each_device_really_trained_on(batched):
    cfg = tiny_config(rounds=1, local_steps=3, batch_size=64, batched=batched)  # batches above some devices' rows
    world = make_world(cfg)
    seen = {}

    def spy(fabric, bank, jobs, local):
        results = train_devices(fabric, bank, jobs, local)
        seen.update({r.device: r.samples for r in results})
        return results

    outcomes = []
    run_federation(FABRIC, world, cfg, trainer=spy, loggers=[lambda m, t, p, o: outcomes.append((m, o))])
    predicted = {d: samples_per_round(world, cfg.federation, d) for d in seen}
    assert seen == predicted and any(v < 64 * 3 for v in seen.values())  # some device holds fewer rows
    metrics, outcome = outcomes[0]
    assert metrics["train/samples"] == sum(seen.values())
    trained = {r.device: r.modules for r in outcome.results}
    traffic = traffic_of(world, cfg.federation, trained, outcome.routes, outcome.transfers,
                         samples={r.device: r.samples for r in outcome.results})
    for upload in traffic.uploads:
        want = seen[upload.device] * sum(module_cycles(world, m) for m in trained[upload.device])
        assert upload.compute_cycles == pytest.approx(want)


def test_a_round_that_loses_most_updates_says_why_and_train_loss_leaves_rejected_devices_out(caplog):
    cfg = tiny_config(rounds=1)
    cfg = dataclasses.replace(cfg, faults=FaultsConfig(dropout=0.9))
    with caplog.at_level(logging.WARNING, logger="hffm"):
        run_federation(FABRIC, make_world(cfg), cfg)
    assert any("lost the updates of" in r.message and "dropped" in r.message for r in caplog.records)

    cfg = tiny_config(rounds=1)
    cfg = dataclasses.replace(cfg, faults=FaultsConfig(attack="nan", attack_fraction=0.25))
    history = run_federation(FABRIC, make_world(cfg), cfg).history
    assert np.isfinite(history[-1]["train/loss"])  # the NaN sender's loss is logged apart
    assert "train_rejected/loss" in history[-1]


def test_a_device_whose_relay_failed_uploads_with_a_band_and_the_edge_stays_in_budget():
    topo = make_world(tiny_config()).topology
    plan = Plan(placement={0: [], 1: [], 2: [], 3: []}, relay={0: 1, 1: 1, 2: 2, 3: 3},
                bandwidth_hz=np.array([0.0, 1e6, 5e5, 5e5]))
    out = _rewire(plan, {1}, topo, 1e6, silent={1})
    assert out.relay[0] == 0 and out.bandwidth_hz[0] > 0
    for e in range(topo.num_edges):
        assert out.bandwidth_hz[topo.device_edge == e].sum() <= 1e6 * (1 + 1e-9)


@pytest.mark.parametrize(("override", "message"), [
    ("+federation.max_update_nrom=0.001", "federation.max_update_nrom: unknown key (did you mean federation.max_update_norm?)"),
    ("++foo=1", "foo: unknown key"),
    ("+defense.clip=3", "did you mean defense.clip_factor"),
    ("topology.device_memory_mb=nan", "topology.device_memory_mb=nan: must be a finite number"),
    ("data.device_test_fraction=0", "data.device_test_fraction=0: must be strictly between 0 and 1"),
    ("topology.channel.device_tx_power_w=1e308", "topology.channel.device_tx_power_w=1e+308"),
    ("seed=-1", "seed=-1: must be an integer >= 0"),
    ("federation.optimizer=adamx", "federation.optimizer='adamx': choose one of"),
    ("federation.lr=1e308", "federation.lr=1e+308"),
    ("data.global_test_fraction=1.0", "data.global_test_fraction=1"),
])
def test_config_errors_name_the_key_at_compose_time(override, message):
    from hydra.errors import CompactHydraException

    from hffm.config import compose
    from hffm.config_checks import ConfigError

    with pytest.raises(ConfigError) as info:
        compose(override)
    assert message in str(info.value) and isinstance(info.value, CompactHydraException)


def test_sizes_are_refused_before_any_topology_is_drawn():
    from hffm.config import compose
    from hffm.config_checks import ConfigError

    with pytest.raises(ConfigError, match="10,000,000,000 devices"):
        compose("topology.num_edges=100000", "topology.devices_per_edge=100000")
