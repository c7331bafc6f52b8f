"""``--help`` for the Hydra apps, read from the shipped configs alone.

Hydra's own help says "<app> is powered by Hydra", lists the ConfigStore schemas (``base_*``) as choices
and prints the whole config; this one lists the real choices of each group on one line, and answers
without importing torch (it reads ``conf/`` through importlib.resources).
"""

from __future__ import annotations

import re
from importlib import resources

HELP_FLAGS = ("--help", "-h")

USAGE = {
    "hffm-train": (
        "Train a hierarchical federated foundation model: devices -> edge servers -> cloud, with D2D links,\n"
        "planned each round by a convex solver, every transfer charged to a latency and energy ledger."
    ),
    "hffm-pretrain": "Pretrain the module bank centrally; hffm-train pretrained=PATH starts from the checkpoint.",
}

EXAMPLES = {
    "hffm-train": (
        "  hffm-train                                      the demo (12 devices, 10 rounds, under a minute)\n"
        "  hffm-train experiment=hffm_d2d federation.e_agg=8 seed=1\n"
        "  hffm-train -m federation.e_agg=1,2,8            a sweep: one job per value\n"
        "  hffm-train experiment=hffm --cfg job            print the composed config, run nothing"
    ),
    "hffm-pretrain": (
        "  hffm-pretrain model=small steps=600 out=outputs/pretrained/trunk.pt\n"
        "  hffm-pretrain --cfg job                         print the composed config, run nothing"
    ),
}


def wants_help(argv: list[str]) -> bool:
    return any(a in HELP_FLAGS for a in argv)


def config_groups(config_name: str) -> dict[str, tuple[str, list[str]]]:
    """For each group in ``config_name``'s defaults list: its default and every choice shipped in conf/."""
    conf = resources.files("hffm.conf")
    defaults = re.findall(r"^\s*-\s*(\w+)\s*:\s*(\w+)\s*$", conf.joinpath(f"{config_name}.yaml").read_text(), re.M)
    out = {}
    for group, default in defaults:
        folder = conf.joinpath(group)
        choices = sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))
        out[group] = (default, choices)
    return out


def help_text(app: str, config_name: str) -> str:
    groups = config_groups(config_name)
    width = max(len(g) for g in groups)
    lines = [
        f"{app}: {USAGE[app]}",
        "",
        f"Usage: {app} [GROUP=CHOICE ...] [KEY=VALUE ...]        one run",
        f"       {app} -m KEY=A,B [KEY=C,D ...]                   a sweep: one job per combination",
        "",
        "Config groups (the default in brackets):",
        *(f"  {g:<{width}}  {', '.join(c if c != d else f'[{c}]' for c in choices)}" for g, (d, choices) in
          sorted(groups.items())),
        "",
        "Any field can be set as KEY=VALUE (e.g. federation.rounds=4); a wrong key or type fails at start,",
        "naming it. Every field and its meaning: docs/configuration.md.",
        "",
        "Examples:",
        EXAMPLES[app],
        "",
        "Hydra's own options (--cfg, --multirun, --info, ...): --hydra-help.",
    ]
    return "\n".join(lines)
