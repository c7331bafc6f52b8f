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
    with pytest.raises(ValueError, match="solver.time_limit_s"):
        _compose("solver.time_limit_s=-1")
    with pytest.raises(ValueError, match="solver.gap"):
        _compose("solver.gap=1.5")
    with pytest.raises(ValueError, match="solver.budget"):
        _compose("solver.budget=wall")
    with pytest.raises(Exception, match="not_a_field"):
        _compose("topology.channel.not_a_field=1")
    with pytest.raises(Exception, match="federation.d2d"):
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


def test_power_and_frequency_decisions_compose_and_pass_to_the_solver():
    cfg = _compose("experiment=hffm_joint", "solver.lam=0.1", "solver.max_tx_power_w=2", "solver.cpu_scale_min=0.3")
    assert cfg.solver.options() == {"gamma": 0.5, "lam": 0.1, "max_tx_power_w": 2.0, "cpu_scale_min": 0.3,
                                    "cpu_scale_max": 1.0}
    assert _compose("experiment=hffm_joint").solver.options() == {"gamma": 0.5, "lam": 0.0}  # off by default


@pytest.mark.parametrize(("overrides", "match"), [
    (["solver.max_tx_power_w=0.5"], r"max_tx_power_w = 0.5 W: must be a finite power >= "
                                    r"topology.channel.device_tx_power_w = 1 W"),
    (["solver.cpu_scale_min=1.5"], r"cpu_scale_min <= 1 <= cpu_scale_max"),
    (["solver.cpu_scale_max=0.5"], r"cpu_scale_min <= 1 <= cpu_scale_max"),
    (["solver.cpu_scale_min=0"], r"solver.cpu_scale_min = 0(\.0)?: must be a finite number > 0"),
    (["topology=prototype", "solver.max_tx_power_w=2"], r"device_energy_power_w = 0.6 W"),
    (["topology=prototype", "solver.cpu_scale_min=0.5"], r"topology.compute.enabled is false"),
    (["solver.name=greedy", "solver.max_tx_power_w=2"], r"solver.name='greedy': only joint plans"),
    (["solver.name=none", "solver.max_tx_power_w=2"], r"solver.name='none': only joint plans"),
    (["federation.mode=star", "federation.d2d=none", "solver.max_tx_power_w=2"], r"federation.mode=star"),
    (["federation.d2d=tree", "solver.cpu_scale_min=0.5"], r"federation.d2d=tree: power and frequency"),
    (["federation.d2d=gossip", "solver.max_tx_power_w=2"], r"federation.d2d=gossip"),
])
def test_power_and_frequency_decisions_refuse_what_cannot_apply(overrides, match):
    with pytest.raises(ValueError, match=match):
        _compose("experiment=hffm_joint", *overrides)
