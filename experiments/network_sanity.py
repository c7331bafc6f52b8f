"""Sanity numbers of the network model for the default and prototype presets.

Draws `--topologies` seeded topologies x `--draws` channel draws each and reports: uplink SNR and rate
on 1 MHz, D2D link rates and lengths, the time to upload 1 MB on 1 MHz, and one full round (all 40
devices upload directly on an equal share of the edge band, with and without a cloud round, and the
star baseline) for 6 MB (the prototype's assumed model size) and 38 MB (its adapters in fp32), and the
mean latency per round of HF-FM without D2D at E_agg 2 and 8 (one cloud round every E_agg edge rounds).
Besides the two presets it measures `prototype_noise_fixed`: the prototype preset with the noise taken
over the bandwidth in Hz (noise_bandwidth_scale = 1), every other assumption kept.

    .venv/bin/python experiments/network_sanity.py [--topologies 20] [--draws 50] [--json out.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json

import numpy as np

from hffm.network import DeviceUpload, NetworkConfig, charge_round, draw_channel, draw_cpu_hz, make_topology


def _q(x: np.ndarray) -> dict[str, float]:
    p10, p50, p90 = np.percentile(x, [10, 50, 90])
    return {"p10": float(p10), "median": float(p50), "p90": float(p90)}


def _noise_fixed(net: NetworkConfig) -> NetworkConfig:
    channel = dataclasses.replace(net.channel, noise_bandwidth_scale=1.0)
    return dataclasses.replace(net, channel=channel, name=f"{net.name}_noise_fixed")


VARIANTS = {
    "default": lambda: NetworkConfig.preset("default"),
    "prototype": lambda: NetworkConfig.preset("prototype"),
    "prototype_noise_fixed": lambda: _noise_fixed(NetworkConfig.preset("prototype")),
}


def preset_numbers(name: str, topologies: int, draws: int) -> dict:
    net = VARIANTS[name]()
    up_rate, up_snr, d2d_rate, d2d_len, patched = [], [], [], [], []
    rounds: dict[str, list[float]] = {}
    for seed in range(topologies):
        rng = np.random.default_rng(np.random.SeedSequence([seed, 1]))
        topo = make_topology(net.topology, rng)
        cpu = draw_cpu_hz(net.compute, topo.num_devices, rng)
        d2d_len.append(topo.link_dist)
        patched.append(topo.link_patched.mean())
        for r in range(draws):
            ch = draw_channel(topo, net.channel, np.random.default_rng(np.random.SeedSequence([seed, 2, r])))
            up_rate.append(ch.uplink_rate_at(1e6))
            up_snr.append(ch.uplink_snr_db(1e6))
            d2d_rate.append(ch.link_rate)
            if r == 0:  # one full round per topology
                for mb in (6, 38):
                    ups = [DeviceUpload(i, mb * 10**6, i, 6.0 * 9.46e6 * 16) for i in range(topo.num_devices)]
                    kw = {"edge_to_device_bytes": mb * 1e6}
                    edge = charge_round(net, topo, ch, cpu, ups, cloud_round=False, **kw)
                    cloud = charge_round(net, topo, ch, cpu, ups, cloud_round=True, edge_to_cloud_bytes=mb * 1e6,
                                         cloud_to_edge_bytes=mb * 1e6, **kw)
                    star = charge_round(net, topo, ch, cpu, ups, cloud_round=True, star=True,
                                        cloud_to_device_bytes=mb * 1e6)
                    for tag, c in (("edge", edge), ("cloud", cloud), ("star", star)):
                        rounds.setdefault(f"{tag}_{mb}MB_latency_s", []).append(c.latency_s)
                        rounds.setdefault(f"{tag}_{mb}MB_energy_j", []).append(c.energy_j)
                    for e_agg in (2, 8):  # HF-FM without D2D: a cloud round every e_agg edge rounds
                        mean = ((e_agg - 1) * edge.latency_s + cloud.latency_s) / e_agg
                        rounds.setdefault(f"hffm_e{e_agg}_{mb}MB_latency_s", []).append(mean)
    up = np.concatenate(up_rate)
    return {
        "uplink_rate_1MHz_bps": _q(up),
        "uplink_snr_1MHz_db": _q(np.concatenate(up_snr)),
        "upload_1MB_on_1MHz_s": _q(8e6 / up),
        "d2d_rate_bps": _q(np.concatenate(d2d_rate)),
        "d2d_link_length_m": _q(np.concatenate(d2d_len)),
        "d2d_links_from_patch_fraction": float(np.mean(patched)),
        "round_medians": {k: float(np.median(v)) for k, v in rounds.items()},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--topologies", type=int, default=20)
    ap.add_argument("--draws", type=int, default=50)
    ap.add_argument("--json", default=None, help="also write the numbers to this file")
    args = ap.parse_args()
    out = {name: preset_numbers(name, args.topologies, args.draws) for name in VARIANTS}
    for name, res in out.items():
        print(f"== {name} ({args.topologies} topologies x {args.draws} channel draws, 40 devices)")
        for key, val in res.items():
            if isinstance(val, dict) and "median" in val:
                scale, unit = (1e-6, "M") if key.endswith("bps") else (1.0, "")
                print(f"  {key:32s} p10 {val['p10'] * scale:10.3f}{unit}  median {val['median'] * scale:10.3f}{unit}"
                      f"  p90 {val['p90'] * scale:10.3f}{unit}")
            elif isinstance(val, dict):
                for k, v in val.items():
                    print(f"  round {k:26s} median {v:10.3f}")
            else:
                print(f"  {key:32s} {val:.3f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
