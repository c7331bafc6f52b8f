"""Checkpoints of the whole federation state: atomic, safe to load, checked before a resume.

A checkpoint holds tensors and plain Python data only (read with ``weights_only=True``, so a crafted
file cannot run code), the run's resolved config (the dict ``config.json`` holds) and the round.
A resume refuses a checkpoint whose state means something else in this run: another seed, data,
model, topology, mode or module policy (the keys are named), a state of other modules or shapes,
or one already at the last round.
"""

from __future__ import annotations

import dataclasses
import json
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hffm.safe_io import CheckpointError, atomic_torch_save, payload_digest, safe_torch_load

FORMAT = "hffm-federation/3"
"""/3: the payload carries ``checksum`` (``payload_digest`` of the rest), verified on load."""
MEANING_KEYS = (
    "seed", "pretrained", "model", "data", "topology", "federation.mode", "federation.policy",
)
"""Config keys (and everything under them) that change what a saved state means: these must match on resume.
The others (rounds, learning rate, rule, logging, processes...) only change what happens next."""


def config_dict(cfg: Any) -> dict[str, Any]:
    """The resolved config (a dataclass) as plain JSON data: what config.json holds and checkpoints carry."""
    return json.loads(json.dumps(dataclasses.asdict(cfg), default=str))


def rng_state(rng: np.random.Generator) -> dict[str, Any]:
    """Everything random the loop uses: its numpy generator, and torch / python for safety."""
    return {
        "numpy": rng.bit_generator.state,
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
    }


def restore_rng(state: dict[str, Any], rng: np.random.Generator) -> None:
    rng.bit_generator.state = state["numpy"]
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])


def make_payload(state: dict[str, Any], rng: np.random.Generator, config: Mapping[str, Any]) -> dict[str, Any]:
    """What a checkpoint holds: ``state`` (FederationState.to_dict()), the RNGs, the run's config as JSON and the
    checksum of all of it."""
    payload = {"format": FORMAT, "round": state["round"], "state": state, "rng": rng_state(rng),
               "config_json": json.dumps(config, default=str, sort_keys=True)}
    return payload | {"checksum": payload_digest(payload)}


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> Path:
    """Save ``payload`` to ``path`` atomically (temp file + fsync + rename)."""
    return atomic_torch_save(payload, path)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint without running anything in it; errors name the file."""
    try:
        payload = safe_torch_load(path, "checkpoint (federation.resume)")
    except FileNotFoundError:
        raise FileNotFoundError(
            f"checkpoint {str(path)!r} not found; set federation.resume to an existing file or leave it empty"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        hint = (" (an older hffm without checksums wrote it: resume it with that version, or start a new run)"
                if found == "hffm-federation/2" else "")
        raise CheckpointError(f"checkpoint {str(path)!r} is not an hffm federation checkpoint ({FORMAT!r}); "
                              f"found {found!r}{hint}")
    missing = [k for k in ("round", "state", "rng", "config_json", "checksum") if k not in payload]
    if missing:
        raise CheckpointError(f"checkpoint {str(path)!r} lacks {missing}: truncated or written by something else")
    content = {k: v for k, v in payload.items() if k != "checksum"}
    if payload_digest(content) != payload["checksum"]:
        raise CheckpointError(f"checkpoint {str(path)!r} fails its checksum: its content changed after it was "
                              "written (disk or transfer corruption, or an edit); use another checkpoint")
    return payload


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'a': {'b': 1}} -> {'a.b': 1}; lists stay values."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out |= flatten(value, f"{name}.")
        else:
            out[name] = value
    return out


def _plain(config: Mapping[str, Any]) -> dict[str, Any]:
    """The config as its JSON round trip (tuples -> lists), how the checkpoint holds it."""
    return json.loads(json.dumps(config, default=str, sort_keys=True))


def config_mismatch(saved: Mapping[str, Any], current: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Keys under ``MEANING_KEYS`` whose values differ: key -> (checkpoint's, this run's); '<absent>' if missing."""
    a, b = flatten(_plain(saved)), flatten(_plain(current))
    meaning = lambda k: any(k == m or k.startswith(m + ".") for m in MEANING_KEYS)  # noqa: E731
    return {k: (a.get(k, "<absent>"), b.get(k, "<absent>")) for k in sorted(set(a) | set(b))
            if meaning(k) and a.get(k, "<absent>") != b.get(k, "<absent>")}


def state_mismatch(saved: Mapping[str, Any], fresh: Mapping[str, Any]) -> list[str]:
    """How a saved FederationState dict differs in structure (groups, modules, tensor shapes) from a fresh one."""
    problems: list[str] = []
    for tier in ("group_states", "cloud_state"):
        if tier not in saved:
            return [f"no {tier}"]
    if len(saved["group_states"]) != len(fresh["group_states"]):
        problems.append(f"{len(saved['group_states'])} aggregation groups, this run has {len(fresh['group_states'])}")
    for where, theirs, ours in [("cloud", saved["cloud_state"], fresh["cloud_state"])] + [
        (f"edge {g}", s, o) for g, (s, o) in enumerate(zip(saved["group_states"], fresh["group_states"]))
    ]:
        if set(theirs) != set(ours):
            diff = sorted(set(theirs) ^ set(ours))
            problems.append(f"{where}: modules differ {diff[:5]}")
            continue
        for module, tensors in ours.items():
            shapes = {k: tuple(v.shape) for k, v in theirs[module].items() if isinstance(v, torch.Tensor)}
            if shapes != {k: tuple(v.shape) for k, v in tensors.items()}:
                problems.append(f"{where}: module {module!r} has other keys or shapes")
        if problems:
            break
    return problems


def check_resume(
    payload: Mapping[str, Any], path: str | Path, config: Mapping[str, Any], rounds: int, fresh: Mapping[str, Any]
) -> None:
    """Refuse a resume that would continue from a state meaning something else, or with nothing left to run.

    ``config`` is this run's (resolved, as in config.json), ``fresh`` its initial state dict.
    """
    where = f"checkpoint {str(path)!r}"
    try:
        saved_config = json.loads(payload["config_json"])
    except (TypeError, ValueError):
        raise CheckpointError(f"{where}: its config is not readable JSON") from None
    diff = config_mismatch(saved_config, config)
    if diff:
        lines = "\n  ".join(f"{k}: checkpoint {a!r}, this run {b!r}" for k, a, b in
                            ((k, *v) for k, v in list(diff.items())[:20]))
        more = f"\n  ... and {len(diff) - 20} more" if len(diff) > 20 else ""
        raise CheckpointError(
            f"{where} was made with another setup; these keys change what its state means and must match:\n  "
            f"{lines}{more}\nset them as in the checkpoint's run (its config.json) or start a new run"
        )
    problems = state_mismatch(payload["state"], fresh)
    if problems:
        raise CheckpointError(f"{where}: its state does not fit this run: {'; '.join(problems)}")
    done = int(payload["round"])
    if done >= rounds:
        raise CheckpointError(
            f"{where} is at round {done} and federation.rounds={rounds}: nothing left to run; "
            f"set federation.rounds above {done} to continue training"
        )
