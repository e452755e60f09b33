"""Property-based checks of Playground-Text over random action sequences."""

from __future__ import annotations

import copy

from hypothesis import given, settings
from hypothesis import strategies as st

from autotelic.envs.playground import PlaygroundTextEnv, achieved, all_goals, reward
from autotelic.envs.playground.observation import parse_observation
from autotelic.envs.playground.scene import Scene

GOALS = all_goals("all", include_impossible=True)


def assert_observation_matches(obs: str, scene: Scene) -> None:
    view = parse_observation(obs)
    assert [s.label for s in view.floor] == [t.label for t in scene.floor]
    assert [s.label for s in view.inventory] == [t.label for t in scene.inventory]
    on = scene.standing_on
    assert (view.standing_on.label if view.standing_on else None) == (on.label if on else None)
    assert on is None or any(t is on for t in scene.floor)  # one stands on a floor object
    assert len(scene.inventory) <= 2
    assert [s.grown for s in view.floor] == [t.grown for t in scene.floor]


@settings(max_examples=300, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    goal=st.sampled_from(GOALS),
    impossible=st.booleans(),
    choices=st.lists(st.integers(0, 10_000), min_size=1, max_size=20),
)
def test_random_play_keeps_observation_state_and_goals_consistent(seed, goal, impossible, choices):
    env = PlaygroundTextEnv()
    obs, info = env.reset(seed=seed, options={"goal": goal, "feasible": not impossible})
    assert_observation_matches(obs, env.scene)
    for choice in choices:
        actions = info["admissible_actions"]
        assert actions == env.scene.admissible_actions()
        for action in actions:  # every listed action is admissible
            copy.deepcopy(env.scene).apply(action)
        before = {
            t.name: (t.grown, any(t is h for h in env.scene.inventory)) for t in env.scene.things()
        }
        obs, r, terminated, truncated, info = env.step(choice % len(actions))
        after = {
            t.name: (t.grown, any(t is h for h in env.scene.inventory)) for t in env.scene.things()
        }
        assert_observation_matches(obs, env.scene)
        grown_now = {n for n, (g, _) in after.items() if g and not before[n][0]}
        grasped_now = {n for n, (_, held) in after.items() if held and not before[n][1]}
        # Objects only disappear by being consumed, one per growth.
        gone = set(before) - set(after)
        assert set(after) <= set(before)
        assert len(gone) == len(grown_now)
        # achieved_goals says exactly what changed, and agrees with the predicate.
        expected = {f"Grow {n}" for n in grown_now} | {f"Grasp {n}" for n in grasped_now}
        assert set(info["achieved_goals"]) == {g for g in expected if g != "Grasp water"}
        assert r == reward(goal, info["achieved_goals"])
        assert terminated == achieved(goal, info["achieved_goals"])
        # Furniture never grows.
        assert all(env.scene.find(n).category.value != "furniture" for n in grown_now)  # type: ignore[union-attr]
        if terminated or truncated:
            assert info["steps"] <= info["horizon"]
            assert truncated == (not terminated and info["steps"] == info["horizon"])
            break
