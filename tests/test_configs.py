"""Every experiment preset composes into a valid typed config (compose, no training)."""

from importlib.resources import files

import pytest
from hydra import compose, initialize_config_module

from hffm.config import network_config, register_configs, resolve
from hffm.run import federation_config

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
    d2d = federation_config(_compose("experiment=hffm_d2d"))
    assert d2d.d2d_tree and d2d.e_agg == 2
    no_links = federation_config(_compose("experiment=hffm_d2d", "topology.d2d=false"))
    assert not no_links.d2d_tree  # D2D features act only where the topology has D2D links
    joint = _compose("experiment=hffm_joint")
    assert joint.solver.name == "joint" and joint.federation.d2d_relay and not joint.federation.d2d_tree
    assert federation_config(_compose("topology.d2d=true")).d2d_tree  # the switch alone turns D2D on
    assert not federation_config(_compose("topology.d2d=false")).d2d_tree
    assert _compose("topology=prototype").topology.preset == "prototype"


def test_bad_values_fail_at_start_naming_the_field():
    with pytest.raises(ValueError, match="federation.e_agg"):
        _compose("federation.e_agg=-1")
    with pytest.raises(ValueError, match="solver.name"):
        _compose("solver.name=gurobi")
    with pytest.raises(ValueError, match="topology.channel"):
        network_config(_compose("+topology.channel.not_a_field=1").topology)
