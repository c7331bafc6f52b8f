import numpy as np
import pytest
import torch

from hffm.federation.aggregate import ModuleUpdate
from hffm.federation.d2d import cooperate, relay
from hffm.federation.gossip import gossip_average, metropolis_weights
from hffm.federation.policy import TierPolicy


def _path_graph(n):
    adj = np.zeros((n, n), dtype=bool)
    for i in range(n - 1):
        adj[i, i + 1] = adj[i + 1, i] = True
    return adj


def test_metropolis_weights_are_doubly_stochastic():
    w = metropolis_weights(_path_graph(5))
    assert np.allclose(w.sum(0), 1) and np.allclose(w.sum(1), 1) and np.allclose(w, w.T)


def test_gossip_converges_to_the_weighted_mean():
    states = [{"w": torch.tensor([float(i), 2.0 * i])} for i in range(5)]
    weights = [1.0, 2.0, 3.0, 4.0, 5.0]
    target = sum(w * s["w"] for s, w in zip(states, weights)) / sum(weights)
    errors = []
    for rounds in (1, 5, 20, 200):
        mixed = gossip_average(states, weights, _path_graph(5), rounds)
        errors.append(max(float((m["w"] - target).abs().max()) for m in mixed))
    assert errors == sorted(errors, reverse=True)  # monotone in the number of rounds
    assert errors[-1] < 1e-6
    unchanged = gossip_average(states, weights, _path_graph(5), 0)
    assert all(torch.equal(a["w"], b["w"]) for a, b in zip(unchanged, states))


def test_cooperate_uploads_one_consensus_per_connected_group():
    adj = np.zeros((4, 4), dtype=bool)
    adj[0, 1] = adj[1, 0] = True  # {0,1} linked, {2} alone, {3} linked to nobody
    ups = [ModuleUpdate(d, "m", {"w": torch.tensor([float(d)])}, 1.0) for d in range(3)]
    out, routes, transfers = cooperate(ups, adj, cons_rounds=50)
    assert sorted(u.node for u in out) == [0, 2]
    merged = next(u for u in out if u.node == 0)
    assert merged.num_samples == 2.0 and merged.state["w"].item() == pytest.approx(0.5)
    assert len(transfers) == 2 * 50  # one link, both ways, every gossip step
    assert [r.device for r in routes] == [0, 2]


def test_relay_merges_at_the_relay():
    ups = [ModuleUpdate(0, "m", {"w": torch.tensor([1.0])}, 1.0), ModuleUpdate(1, "m", {"w": torch.tensor([3.0])}, 3.0)]
    merged, routes = relay(ups, {0: 1, 1: 1}, relay_aggregates=True)
    assert len(merged) == 1 and merged[0].node == 1 and merged[0].num_samples == 4.0
    assert merged[0].state["w"].item() == pytest.approx(2.5)
    assert [(r.device, r.relay) for r in routes] == [(0, 1), (1, 1)]
    separate, _ = relay(ups, {0: 1, 1: 1}, relay_aggregates=False)
    assert len(separate) == 2


def test_cloud_rounds_follow_e_agg():
    assert [r for r in range(8) if TierPolicy(e_agg=2).is_cloud_round(r)] == [1, 3, 5, 7]
    assert [r for r in range(8) if TierPolicy(e_agg=8).is_cloud_round(r)] == [7]
    assert not any(TierPolicy(e_agg=0).is_cloud_round(r) for r in range(8))
    with pytest.raises(ValueError, match="policy.head"):
        TierPolicy(places={"encoder": "hierarchical", "prompt": "edge", "expert": "edge", "adapter": "edge", "head": "nowhere"})


def test_fetch_takes_a_missing_personal_module_from_a_neighbour():
    from hffm.federation.d2d import fetch_missing

    adj = np.zeros((3, 3), dtype=bool)
    adj[0, 1] = adj[1, 0] = True
    personal = {1: {"encoder/iq": {"w": torch.ones(1)}}, 2: {"encoder/iq": {"w": torch.ones(1)}}}
    got = fetch_missing({0: ["encoder/iq", "head/snr"], 1: ["encoder/iq"]}, personal, adj)
    assert got == {0: {"encoder/iq": 1}}  # device 2 holds it too but is not a neighbour; device 1 has its own


def test_tree_aggregation_gives_the_exact_weighted_mean_from_one_upload():
    from hffm.federation.d2d import tree_aggregate

    adj = _path_graph(4)  # 0 - 1 - 2 - 3, one connected group
    gain = np.array([1.0, 5.0, 2.0, 3.0])  # device 1 has the best uplink: the root
    ups = [ModuleUpdate(d, "m", {"w": torch.tensor([float(d)])}, float(d + 1)) for d in range(4)]
    ups += [ModuleUpdate(3, "only3", {"w": torch.tensor([7.0])}, 4.0)]
    out, routes, transfers = tree_aggregate(ups, adj, gain)
    assert [(u.node, u.module) for u in out] == [(1, "m"), (1, "only3")]
    m = next(u for u in out if u.module == "m")
    assert m.num_samples == 10.0 and m.state["w"].item() == pytest.approx((0 * 1 + 1 * 2 + 2 * 3 + 3 * 4) / 10)
    assert next(u for u in out if u.module == "only3").state["w"].item() == 7.0
    assert [(r.device, r.relay) for r in routes] == [(1, 1)]
    # depth 2 (device 3) sends first, then depth 1 (devices 0 and 2), each one payload up the tree
    assert [(t.step, t.src, t.dst, t.modules) for t in transfers] == [
        (0, 3, 2, ("m", "only3")), (1, 0, 1, ("m",)), (1, 2, 1, ("m", "only3"))]


def test_tree_aggregation_uploads_once_per_connected_group():
    from hffm.federation.d2d import tree_aggregate

    adj = np.zeros((3, 3), dtype=bool)
    adj[0, 1] = adj[1, 0] = True
    ups = [ModuleUpdate(d, "m", {"w": torch.tensor([1.0])}, 1.0) for d in range(3)]
    out, routes, transfers = tree_aggregate(ups, adj, np.array([1.0, 2.0, 3.0]))
    assert sorted(u.node for u in out) == [1, 2] and len(transfers) == 1


def test_tree_follows_the_fastest_path_to_the_root():
    from hffm.federation.d2d import tree_aggregate

    adj = ~np.eye(3, dtype=bool)  # a triangle
    rate = np.array([[0, 10e6, 1e6], [10e6, 0, 10e6], [1e6, 10e6, 0]])  # 0-2 is slow: 2 goes through 1
    ups = [ModuleUpdate(d, "m", {"w": torch.tensor([1.0])}, 1.0) for d in range(3)]
    _, _, by_rate = tree_aggregate(ups, adj, np.array([9.0, 1.0, 1.0]), rate)
    assert [(t.src, t.dst) for t in by_rate] == [(2, 1), (1, 0)]
    _, _, by_hops = tree_aggregate(ups, adj, np.array([9.0, 1.0, 1.0]))
    assert sorted((t.src, t.dst) for t in by_hops) == [(1, 0), (2, 0)]
