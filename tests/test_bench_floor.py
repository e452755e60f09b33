"""bench/floor.py: the bare update it compares against computes the real update's shapes."""

from __future__ import annotations

import math
from pathlib import Path

from autotelic.learners.scorer import pack_states
from bench.floor import BareUpdate, Variant, build_agent, update_shapes


def test_floor_shapes_are_the_ones_the_real_update_computes(tmp_path: Path) -> None:
    agent = build_agent(Variant("playground", "sac-glam-her"), tmp_path / "run", budget=10**9)
    try:
        while agent.learner.num_updates < 1:
            agent.step_once()
        batch = agent.schedule.sampler.sample(agent.settings.algorithm.batch_size)
        shapes = update_shapes(agent.learner, batch, pack_states)
        stats = agent.learner.update(batch)

        # The real update reports the positions it computed: states once, next states
        # with the online model and again with the target twin.
        passes_over_next = 2 if agent.learner.twin is not None else 1
        computed = shapes.states[0] * shapes.states[1]
        computed += passes_over_next * shapes.nexts[0] * shapes.nexts[1]
        assert stats["tokens"] == computed
        assert shapes.states[0] == len(batch)
        assert shapes.candidates == sum(len(c) for c in batch.candidates)
        live = [i for i in range(len(batch)) if not batch.terminated[i]]
        assert shapes.nexts[0] == len(live)
        assert shapes.next_candidates == sum(len(batch.next_candidates[i]) for i in live)
        # One LM-head row per state plus one per later token of each candidate.
        assert shapes.states[0] <= shapes.lm_rows < shapes.states[0] + shapes.states[1] * len(batch)

        bare = BareUpdate(agent.learner)
        before = [p.detach().clone() for p in bare.critic.parameters()]
        for with_math in (False, True):
            seconds = bare.run(shapes, math=with_math)
            assert math.isfinite(seconds) and seconds > 0
        # Only the update's math trains the bare heads: it really ran them.
        after = list(bare.critic.parameters())
        assert any(not b.equal(a) for b, a in zip(before, after, strict=True))
    finally:
        agent.close()
