"""The oracle re-plans from any state and feasibility is decided correctly."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autotelic.envs.playground import (
    NoPlanError,
    PlaygroundTextEnv,
    all_goals,
    oracle_action,
)

FEASIBLE = all_goals("all")


@settings(max_examples=150, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    goal=st.sampled_from(FEASIBLE),
    detour=st.lists(st.integers(0, 100), max_size=4),
)
def test_feasibility_is_exactly_what_the_oracle_can_reach(seed, goal, detour):
    """After random detours, the oracle succeeds exactly when the scene says feasible."""
    env = PlaygroundTextEnv(impossible_share=0.5)
    obs, info = env.reset(seed=seed, options={"goal": goal})
    for d in detour:
        obs, r, term, trunc, info = env.step(d % len(info["admissible_actions"]))
        if term or trunc:
            return
    scene = env.scene  # plan on the scene itself: no time limit in the way
    feasible = scene.is_feasible(goal)
    for _ in range(40):  # far beyond any plan length: the oracle must get there or give up
        try:
            action = oracle_action(goal, scene.observation())
        except NoPlanError:
            assert not feasible
            return
        if goal in scene.apply(action):
            assert feasible
            return
    pytest.fail(f"oracle neither solved nor gave up on {goal!r}")


def test_oracle_names_what_is_impossible():
    env = PlaygroundTextEnv()
    obs, _ = env.reset(seed=0, options={"goal": "Grow door"})
    with pytest.raises(NoPlanError, match="door"):
        oracle_action("Grow door", obs)
