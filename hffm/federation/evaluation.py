"""Per-round evaluation at each tier.

- ``device/``: each device's own model (its edge's modules + its personal ones) on its held-out data;
- ``global/``: the same models on the global test set, restricted to each device's modalities and tasks
  (how well what a device holds generalizes beyond its skewed labels; the headline accuracy);
- ``edge/``: each edge's (or in star mode the cloud's) modules on the whole global test set, and with
  one modality at a time (``edge/<task>/acc@<modality>``). Not reported in local mode.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from lightning.fabric import Fabric

from hffm.federation.distributed import gather, shard
from hffm.federation.local import evaluate
from hffm.federation.policy import Mode, TierPolicy
from hffm.federation.state import FederationState
from hffm.federation.world import World


def weighted_mean(results: Sequence[tuple[dict[str, float], float]]) -> dict[str, float]:
    """Average metric dicts key by key, weighting each by its sample count, over those that have the key."""
    sums: dict[str, float] = {}
    weights: dict[str, float] = {}
    for metrics, w in results:
        for key, value in metrics.items():
            sums[key] = sums.get(key, 0.0) + w * value
            weights[key] = weights.get(key, 0.0) + w
    return {k: sums[k] / weights[k] for k in sorted(sums) if weights[k] > 0}


def evaluate_round(
    fabric: Fabric, world: World, state: FederationState, policy: TierPolicy, group_of: np.ndarray
) -> dict[str, float]:
    mine_device, mine_global = [], []
    for device in shard(list(world.eval_devices), fabric):
        states = state.device_states(int(group_of[device]), device)
        mine_device.append((evaluate(fabric, world.bank, world.test[device], states), len(world.test[device])))
        view = world.global_test_view(device)
        mine_global.append((evaluate(fabric, world.bank, view, states), len(view)))
    out = _prefixed("device/", weighted_mean(gather(mine_device, fabric)))
    out |= _prefixed("global/", weighted_mean(gather(mine_global, fabric)))
    if policy.mode != Mode.local:
        mine_edge = []
        groups = list(range(len(state.group_states)))
        if len(groups) > len(world.eval_edges):  # star mode has one group; otherwise the sampled edges
            groups = list(world.eval_edges)
        for group in shard(groups, fabric):
            metrics = evaluate(fabric, world.bank, world.global_test, state.group_states[group])
            for modality, view in world.single_modality_views().items():
                single = evaluate(fabric, world.bank, view, state.group_states[group])
                metrics |= {f"{k}@{modality}": v for k, v in single.items()}
            mine_edge.append((metrics, 1.0))
        out |= _prefixed("edge/", weighted_mean(gather(mine_edge, fabric)))
    out |= _headline(out)
    return out


def _prefixed(prefix: str, metrics: dict[str, float]) -> dict[str, float]:
    return {prefix + k: v for k, v in metrics.items()}


def _headline(metrics: dict[str, float]) -> dict[str, float]:
    """One accuracy to compare methods by: the mean over classification tasks of ``global/<task>/acc``."""
    accs = [v for k, v in metrics.items() if k.startswith("global/") and k.endswith("/acc")]
    return {"accuracy": float(np.mean(accs))} if accs else {}
