"""The round loop holds one round's channel at a time (a 100,000-device channel is megabytes a round)."""

from __future__ import annotations

import gc
import weakref

import pytest
from conftest import tiny_config
from lightning.fabric import Fabric

from hffm.federation.loop import run_federation
from hffm.run import make_world


@pytest.mark.slow
def test_the_previous_rounds_channel_is_released_before_the_next_is_drawn():
    cfg = tiny_config(e_agg=2, rounds=3)
    world = make_world(cfg)
    drawn: list[weakref.ref] = []
    draw = world.draw_channel

    def watched(rng):  # noqa: ANN001, ANN202 - stands in for World.draw_channel
        gc.collect()
        alive = [i for i, ref in enumerate(drawn) if ref() is not None]
        assert not alive, f"round {len(drawn) + 1} draws its channel while round(s) {alive} still hold theirs"
        channel = draw(rng)
        drawn.append(weakref.ref(channel))
        return channel

    world.draw_channel = watched  # type: ignore[method-assign]
    run_federation(Fabric(accelerator="cpu", devices=1), world, cfg)
    assert len(drawn) == 3
