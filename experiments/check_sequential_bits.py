"""Does the one-device-at-a-time path still train bit for bit as before? Run it on two engines and compare.

Runs 2 rounds of the tests' tiny config with ``federation.batched=false`` and saves the cloud and edge module
states and the per-round losses; ``--compare A B`` checks two such files for exact equality. To compare with an
older engine, extract it and put it first on the path:

    git archive 0418c74 hffm | tar -x -C /tmp/base
    PYTHONPATH=/tmp/base python experiments/check_sequential_bits.py /tmp/before.pt
    python experiments/check_sequential_bits.py /tmp/after.pt
    python experiments/check_sequential_bits.py --compare /tmp/before.pt /tmp/after.pt
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import torch


def run(path: Path) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from conftest import tiny_config
    from lightning.fabric import Fabric

    import hffm
    from hffm.federation.loop import run_federation
    from hffm.run import make_world

    cfg = tiny_config(rounds=2, e_agg=2).replace(federation={"batched": False})
    result = run_federation(Fabric(accelerator="cpu", devices=1), make_world(cfg), cfg)
    torch.save({"cloud": result.state.cloud_state, "groups": result.state.group_states,
                "loss": [h["train/loss"] for h in result.history]}, path)
    print(f"{hffm.__file__} -> {path}")


def compare(a: Path, b: Path) -> bool:
    x, y = torch.load(a, weights_only=True), torch.load(b, weights_only=True)

    def same(s: dict, t: dict) -> bool:
        return s.keys() == t.keys() and all(s[m].keys() == t[m].keys() and all(torch.equal(s[m][k], t[m][k])
                                                                            for k in s[m]) for m in s)

    ok = x["loss"] == y["loss"] and same(x["cloud"], y["cloud"]) and len(x["groups"]) == len(y["groups"]) \
        and all(same(s, t) for s, t in zip(x["groups"], y["groups"]))
    print("bit for bit equal" if ok else "DIFFERENT", x["loss"], y["loss"])
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="+", type=Path)
    parser.add_argument("--compare", action="store_true")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    if args.compare:
        raise SystemExit(0 if compare(*args.paths) else 1)
    run(args.paths[0])


if __name__ == "__main__":
    main()
