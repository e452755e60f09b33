"""Playground-Text behind the batch contract: reset with goals and seeds, no auto-reset,
validation before any env moves, results aligned with the envs given."""

from __future__ import annotations

import pytest

from autotelic import core
from autotelic.core import EnvStep, EpisodeOverError, InadmissibleActionError, TextState
from autotelic.envs import playground
from autotelic.envs.gym_batch import GymTextBatch
from autotelic.envs.playground import (
    HORIZONS,
    GoalCategory,
    PlaygroundGoalSpace,
    PlaygroundTextEnv,
    make_batch,
    oracle_action,
)


def oracle_index(state: TextState) -> int:
    """Index of the oracle's next action for the state's own goal."""
    return state.actions.index(oracle_action(state.goal, state.observation))


def observations(batch: GymTextBatch) -> list[str]:
    """What every env of the batch shows now, read from the envs themselves."""
    return [env.unwrapped.scene.observation() for env in batch.envs]  # type: ignore[attr-defined]


def run_oracle(batch: GymTextBatch, env: int, state: TextState) -> list[EnvStep]:
    """Step ``env`` with the oracle until its episode ends."""
    steps = [batch.step([env], [oracle_index(state)])[0]]
    while not steps[-1].done:
        steps.append(batch.step([env], [oracle_index(steps[-1].state)])[0])
    return steps


def test_the_playground_batch_implements_the_contract_with_the_core_errors():
    batch = make_batch(num_envs=2)
    assert isinstance(batch, core.TextEnvBatch)
    assert batch.num_envs == 2 and isinstance(batch.goal_space, PlaygroundGoalSpace)
    assert playground.EpisodeOverError is core.EpisodeOverError
    assert playground.InadmissibleActionError is core.InadmissibleActionError


def test_reset_starts_each_env_on_its_goal_as_an_independent_env_would_under_the_same_seed():
    goals = ["Grow cow", "Grasp lamp", "Grow lion"]
    batch = make_batch(num_envs=3)
    batch.seed(10)
    states = batch.reset([0, 1, 2], goals)
    for i, (state, goal) in enumerate(zip(states, goals, strict=True)):
        observation, info = PlaygroundTextEnv().reset(seed=10 + i, options={"goal": goal})
        assert state.goal == goal == info["goal"]
        assert (state.observation, state.actions) == (observation, info["admissible_actions"])
        assert state.episode_seed == info["episode_seed"]
        assert state.steps == 0
        assert state.horizon == HORIZONS[GoalCategory(info["goal_category"])]


def test_reset_without_a_goal_samples_one_from_the_goal_space():
    batch, again = make_batch(num_envs=4), make_batch(num_envs=4)
    batch.seed(0)
    again.seed(0)
    states = batch.reset([0, 1, 2, 3], [None] * 4)
    train_goals = set(batch.goal_space.goals("train"))
    assert all(state.goal in train_goals for state in states)
    assert again.reset([0, 1, 2, 3], [None] * 4) == states


def test_the_same_seed_and_goal_regenerate_the_same_start_in_any_env():
    batch = make_batch(num_envs=2)
    (first,) = batch.reset([0], ["Grow carrot"], seeds=[7])
    batch.step([0], [oracle_index(first)])  # env 0 moves on
    (same_env,) = batch.reset([0], ["Grow carrot"], seeds=[7])
    (other_env,) = batch.reset([1], ["Grow carrot"], seeds=[7])
    assert same_env == first and other_env == first


def test_a_states_episode_seed_with_its_goal_regenerates_the_episode_start():
    batch = make_batch(num_envs=2)
    batch.seed(10)
    (state,) = batch.reset([0], ["Grow cow"])  # drawn from env 0's stream
    (replayed,) = batch.reset([1], [state.goal], seeds=[state.episode_seed])
    assert replayed == state


def test_a_finished_env_raises_episode_over_until_it_is_reset():
    batch = make_batch(num_envs=2)
    grasp, grow = batch.reset([0, 1], ["Grasp cow", "Grow carrot"], seeds=[3, 4])
    ended = run_oracle(batch, 0, grasp)
    assert [s.done for s in ended] == [False] * (len(ended) - 1) + [True]
    before = observations(batch)
    for envs, actions in (([0], [0]), ([1, 0], [oracle_index(grow), 0])):
        with pytest.raises(EpisodeOverError, match="env 0 has no running episode"):
            batch.step(envs, actions)
    assert observations(batch) == before  # env 1 did not move either
    (moved,) = batch.step([1], [oracle_index(grow)])  # the other env goes on
    assert moved.state.steps == 1 and not moved.done
    (restarted,) = batch.reset([0], ["Grasp lion"])
    assert restarted.goal == "Grasp lion" and restarted.steps == 0
    (stepped,) = batch.step([0], [oracle_index(restarted)])
    assert stepped.state.steps == 1


def test_an_inadmissible_action_in_one_env_leaves_the_whole_batch_unchanged():
    batch = make_batch(num_envs=3)
    states = batch.reset([0, 1, 2], ["Grasp cow", "Grow carrot", "Grasp lion"], seeds=[4, 5, 6])
    before = observations(batch)
    for bad in (len(states[1].actions), -1, True):
        with pytest.raises(InadmissibleActionError) as err:
            batch.step([0, 1, 2], [0, bad, 0])
        assert err.value.admissible == states[1].actions
        for action in states[1].actions:
            assert action in str(err.value)
        assert observations(batch) == before
    results = batch.step([0, 1, 2], [0, 0, 0])
    assert [r.state.steps for r in results] == [1, 1, 1]


def test_results_align_with_the_env_indices_given():
    batch = make_batch(num_envs=3)
    cow, carrot = batch.reset([2, 0], ["Grasp cow", "Grow carrot"], seeds=[1, 2])
    assert (cow.goal, carrot.goal) == ("Grasp cow", "Grow carrot")
    (only,) = batch.step([2], [oracle_index(cow)])
    assert only.state.goal == "Grasp cow" and only.state.steps == 1
    # The same moves, in another order and from independent envs, give the same results.
    singles = {2: PlaygroundTextEnv(), 0: PlaygroundTextEnv()}
    singles[2].reset(options={"goal": "Grasp cow", "episode_seed": 1})
    singles[0].reset(options={"goal": "Grow carrot", "episode_seed": 2})
    singles[2].step(oracle_index(cow))
    actions = {0: oracle_index(carrot), 2: oracle_index(only.state)}
    results = batch.step([0, 2], [actions[0], actions[2]])
    for env, result in zip([0, 2], results, strict=True):
        observation, reward, terminated, truncated, info = singles[env].step(actions[env])
        assert result.state.goal == info["goal"] and result.state.steps == info["steps"]
        assert result.state.observation == observation
        assert (result.reward, result.terminated, result.truncated) == (
            reward,
            terminated,
            truncated,
        )
        assert result.achieved == info["achieved_goals"]
    assert [r.state.steps for r in results] == [1, 2]
    with pytest.raises(EpisodeOverError, match="env 1 has no running episode"):
        batch.step([1], [0])  # never reset


def test_achieved_goals_are_reported_and_the_own_goal_terminates_with_reward_one():
    batch = make_batch(num_envs=1)
    space = batch.goal_space
    (state,) = batch.reset([0], ["Grow carrot"], seeds=[5])
    steps = run_oracle(batch, 0, state)
    last = steps[-1]
    assert last.terminated and not last.truncated and last.done and last.reward == 1.0
    assert "Grow carrot" in last.achieved
    for step in steps:
        assert space.achieved("Grow carrot", step.achieved) == step.terminated
        assert step.reward == (1.0 if step.terminated else 0.0)
    assert last.state.steps == len(steps) <= last.state.horizon


def test_the_time_limit_truncates_at_the_horizon():
    batch = make_batch(num_envs=1)
    (state,) = batch.reset([0], ["Grasp cow"], seeds=[1])
    assert state.horizon == HORIZONS[GoalCategory.GRASP]
    results: list[EnvStep] = []
    for _ in range(state.horizon):
        wander = [a for a in state.actions if a.startswith("Go to") and "cow" not in a]
        (result,) = batch.step([0], [state.actions.index(wander[0])])
        results.append(result)
        state = result.state
    assert [r.done for r in results] == [False] * (len(results) - 1) + [True]
    last = results[-1]
    assert last.truncated and not last.terminated and last.reward == 0.0
    assert last.state.steps == last.state.horizon == HORIZONS[GoalCategory.GRASP]
    with pytest.raises(EpisodeOverError):
        batch.step([0], [0])


def test_wrong_sizes_and_unknown_envs_are_rejected():
    with pytest.raises(ValueError, match="at least one environment"):
        GymTextBatch([], PlaygroundGoalSpace())
    batch = make_batch(num_envs=2)
    batch.reset([0, 1], [None, None])
    with pytest.raises(ValueError, match="1 actions for 2 envs"):
        batch.step([0, 1], [0])
    with pytest.raises(ValueError, match="2 envs need as many goals"):
        batch.reset([0, 1], ["Grasp cow"] * 3)
    with pytest.raises(ValueError, match="2 envs need as many goals"):
        batch.reset([0, 1], ["Grasp cow"] * 2, seeds=[1])
    with pytest.raises(IndexError, match="env 2 outside a batch of 2"):
        batch.step([2], [0])
