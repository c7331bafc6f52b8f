"""Every experiment preset composes into a valid typed config (compose, no training)."""

from importlib.resources import files

import pytest
from hydra import compose, initialize_config_module

from hffm.config import network_config, register_configs, resolve

PRESETS = sorted(p.name.removesuffix(".yaml") for p in (files("hffm.conf") / "experiment").iterdir()
                 if p.name.endswith(".yaml"))


def _compose(*overrides):
    register_configs()
    with initialize_config_module(config_module="hffm.conf", version_base="1.3"):
        return resolve(compose(config_name="config", overrides=list(overrides)))


@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_resolves(preset):
    cfg = _compose(f"experiment={preset}")
    assert cfg.name == preset
    network_config(cfg.topology)  # the network preset and overrides build too


def test_presets_set_what_their_method_means():
    assert _compose("experiment=star").federation.mode == "star"
    assert _compose("experiment=edge_only").federation.e_agg == 0
    assert _compose("experiment=hffm_e8").federation.e_agg == 8
    d2d = _compose("experiment=hffm_d2d").federation
    assert d2d.d2d == "tree" and d2d.e_agg == 2
    assert _compose("experiment=hffm_d2d", "federation.d2d=none").federation.d2d == "none"
    joint = _compose("experiment=hffm_joint")
    assert joint.solver.name == "joint" and joint.federation.d2d == "relay"
    assert _compose("experiment=hffm_gossip").federation.d2d == "gossip"
    assert _compose().federation.d2d == "none"
    assert _compose("topology=prototype").topology.preset == "prototype"


def test_bad_values_fail_at_start_naming_the_field():
    with pytest.raises(ValueError, match="federation.e_agg"):
        _compose("federation.e_agg=-1")
    with pytest.raises(ValueError, match="solver.name"):
        _compose("solver.name=gurobi")
    with pytest.raises(Exception, match="not_a_field"):
        _compose("topology.channel.not_a_field=1")
    with pytest.raises(Exception, match="federation.d2d|D2DMode"):
        _compose("federation.d2d=mesh")
    with pytest.raises(ValueError, match="federation.d2d=tree: mode=star"):
        _compose("experiment=star", "federation.d2d=tree")
    with pytest.raises(ValueError, match="data.partition.num_devices"):
        from hffm.run import make_world

        make_world(_compose("data.partition.num_devices=7"))


def test_network_fields_override_without_a_plus():
    cfg = _compose("topology.channel.device_tx_power_w=0.5", "topology.layout.d2d_radius_m=100",
                   "topology.compute.kappa=1e-27")
    net = network_config(cfg.topology)
    assert net.channel.device_tx_power_w == 0.5 and net.topology.d2d_radius_m == 100
    assert net.compute.kappa == 1e-27
    assert network_config(_compose().topology).channel.device_tx_power_w == 1.0  # unset keeps the preset's
