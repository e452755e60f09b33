"""BabyAI-Text mechanics: levels built for goals, seeds, horizons, the registry and the batch."""

from __future__ import annotations

import random
from typing import Any

import gymnasium as gym
import pytest
from minigrid.core.world_object import Ball, Box, Key
from pydantic import ValidationError

from autotelic.core import (
    EnvStep,
    EpisodeOverError,
    InadmissibleActionError,
    TextEnvBatch,
    env_spec,
)
from autotelic.envs.babyai import (
    ACTIONS,
    ENV_ID,
    HELD_OUT,
    BabyAIConfig,
    BabyAITextEnv,
    Category,
    Thing,
    all_goals,
    oracle_action,
    parse_goal,
)
from tests.conftest import plain


def things_in(env: BabyAITextEnv) -> set[Thing]:
    level = env.level
    cells = [c for c in level.grid.grid if c is not None and c.type != "wall"]
    return {Thing(c.color, c.type) for c in cells}


def play(env: BabyAITextEnv, actions: list[int]) -> list[tuple[str, list[str], float]]:
    trace = []
    for a in actions:
        obs, reward, terminated, truncated, info = env.step(a)
        trace.append((obs, info["achieved_goals"], reward))
        if terminated or truncated:
            break
    return trace


def test_the_env_is_registered_with_gymnasium_and_autotelic():
    env = gym.make(ENV_ID)
    obs, info = env.reset(seed=0)
    assert isinstance(obs, str) and info["goal"] in all_goals("train")
    spec = env_spec(ENV_ID)
    assert spec.config is BabyAIConfig
    assert spec.config.model_fields["id"].default == ENV_ID


@pytest.mark.parametrize("split", ["train", "test"])
def test_every_goal_gets_a_level_whose_babyai_mission_is_that_goal(split):
    env = BabyAITextEnv(split=split)
    for k, goal in enumerate(all_goals(split)):
        if parse_goal(goal).category is Category.PUT_NEXT and k % 7:
            continue  # a seventh of the 306 put-next goals is plenty
        obs, info = env.reset(seed=k, options={"goal": goal})
        assert env.level.mission == goal
        assert info["goal"] == goal and info["goal_category"] == parse_goal(goal).category
        assert set(parse_goal(goal).things) <= things_in(env)
        assert info["admissible_actions"] == list(ACTIONS)
        assert info["steps"] == 0 and info["achieved_goals"] == []


def test_goal_objects_appear_once_and_door_goals_get_four_doors():
    env = BabyAITextEnv()
    for seed in range(20):
        env.reset(seed=seed, options={"goal": "put the red ball next to the blue key"})
        cells = [(c.color, c.type) for c in env.level.grid.grid if c is not None]
        assert cells.count(("red", "ball")) == 1 and cells.count(("blue", "key")) == 1
        env.reset(seed=seed, options={"goal": "open the grey door"})
        doors = [c.color for c in env.level.grid.grid if c is not None and c.type == "door"]
        assert len(doors) == 4 == len(set(doors)) and "grey" in doors


def test_training_levels_hide_held_out_pairs_and_test_levels_do_not():
    seen: set[Thing] = set()
    train, test = BabyAITextEnv(split="train"), BabyAITextEnv(split="test", num_distractors=12)
    for seed in range(40):
        train.reset(seed=seed)
        assert not things_in(train) & HELD_OUT, seed
        test.reset(seed=seed)
        seen |= things_in(test) & HELD_OUT
    assert seen, "held-out pairs appear in test levels"
    train.reset(seed=0, options={"goal": "pick up the red box"})
    assert things_in(train) & HELD_OUT == {Thing("red", "box")}


def test_the_same_seed_and_goal_replay_the_same_episode():
    env, twin = BabyAITextEnv(), BabyAITextEnv()
    rng = random.Random(0)
    for goal in [
        "go to the red ball",
        "open the purple door",
        "put the grey key next to the red ball",
    ]:
        actions = [rng.randrange(6) for _ in range(60)]
        first = env.reset(seed=11, options={"goal": goal})
        again = twin.reset(seed=11, options={"goal": goal})
        assert plain(first) == plain(again)
        assert plain(play(env, actions)) == plain(play(twin, actions))


def test_the_reported_episode_seed_regenerates_an_unseeded_episode():
    env, replay = BabyAITextEnv(), BabyAITextEnv()
    env.reset(seed=5)
    for _ in range(5):
        obs, info = env.reset()  # sampled goal, seed drawn from the env's stream
        seed, goal = info["episode_seed"], info["goal"]
        assert plain(replay.reset(seed=seed, options={"goal": goal})) == plain((obs, info))
        again = replay.reset(options={"goal": goal, "episode_seed": seed})
        assert plain(again) == plain((obs, info))
        assert plain(replay.reset(seed=seed)) == plain((obs, info))


def test_a_batch_seeds_each_env_stream_and_replays_reported_episode_seeds():
    spec = env_spec(ENV_ID)
    one, two = (spec.make_batch(BabyAIConfig(num_envs=2)) for _ in range(2))
    if hasattr(one, "seed"):  # the batch contract's stream seeding
        one.seed(7)
        two.seed(7)
        assert one.reset([0, 1], [None, None]) == two.reset([0, 1], [None, None])
    first = one.reset([0, 1], [None, "go to the red key"])
    replayed = two.reset(
        [1, 0], [s.goal for s in reversed(first)], [s.episode_seed for s in reversed(first)]
    )
    assert list(reversed(replayed)) == first


def test_a_goal_is_sampled_per_family_from_the_configured_goals():
    env = BabyAITextEnv(categories=("open",))
    assert {env.reset(seed=s)[1]["goal_category"] for s in range(10)} == {"open"}
    env = BabyAITextEnv(goals=("Go to a red ball", "open the red door"))
    goals = {env.reset(seed=s)[1]["goal"] for s in range(20)}
    assert goals == {"go to the red ball", "open the red door"}
    test = BabyAITextEnv(split="test")
    assert all(test.reset(seed=s)[1]["goal"] in all_goals("test") for s in range(20))


def test_reaching_the_goal_gives_reward_one_and_ends_the_episode():
    env = BabyAITextEnv()
    obs, info = env.reset(seed=3, options={"goal": "pick up the green ball"})
    rewards = []
    while True:
        obs, reward, terminated, truncated, info = env.step(oracle_action(env))
        rewards.append(reward)
        if terminated or truncated:
            break
    assert terminated and not truncated and rewards[-1] == 1.0 and sum(rewards) == 1.0
    assert "pick up the green ball" in info["achieved_goals"] and info["mission_success"]
    assert "You carry a green ball." in obs
    with pytest.raises(EpisodeOverError):
        env.step(0)


def test_the_horizon_truncates_an_episode_per_family():
    env = BabyAITextEnv(go_to_horizon=5, put_next_horizon=7)
    for goal, horizon in [("go to the red ball", 5), ("put the red ball next to the grey box", 7)]:
        obs, info = env.reset(seed=0, options={"goal": goal})
        assert info["horizon"] == horizon
        trace = play(env, [0] * 20)  # turning on the spot never reaches these goals
        assert len(trace) == horizon
        with pytest.raises(EpisodeOverError):
            env.step(0)


def test_actions_outside_the_six_are_inadmissible():
    env = BabyAITextEnv()
    env.reset(seed=0)
    for bad in (6, -1, True, 1.0, "jump"):
        with pytest.raises(InadmissibleActionError):
            env.step(bad)  # type: ignore[arg-type]
    env.step("turn left")
    assert env.steps == 1 and env.last_action == 0


def test_stepping_before_any_reset_is_refused():
    with pytest.raises(EpisodeOverError):
        BabyAITextEnv().step(0)


def test_an_invalid_goal_at_reset_says_why():
    with pytest.raises(ValueError, match="unknown colour 'plaid'"):
        BabyAITextEnv().reset(options={"goal": "go to the plaid ball"})


def test_the_config_rejects_bad_settings_with_reasons():
    with pytest.raises(ValidationError, match="do not fit a room"):
        BabyAIConfig(room_size=6, num_distractors=8)
    with pytest.raises(ValidationError, match="must be odd"):
        BabyAIConfig(agent_view_size=6)
    with pytest.raises(ValidationError, match="unknown object 'chair'"):
        BabyAIConfig(goals=("go to the red chair",))
    with pytest.raises(ValidationError):
        BabyAIConfig(colour="red")  # type: ignore[call-arg]
    assert BabyAIConfig(goals=("Go to a red ball",)).goals == ("go to the red ball",)
    for name, field in BabyAIConfig.model_fields.items():
        assert field.description, name


def test_the_registry_builds_a_batch_that_resets_and_steps():
    spec = env_spec(ENV_ID)
    batch = spec.make_batch(BabyAIConfig(num_envs=3))
    assert isinstance(batch, TextEnvBatch) and batch.num_envs == 3
    states = batch.reset([0, 1, 2], [None, "open the red door", None], [1, 2, None])
    assert states[1].goal == "open the red door" and states[0].episode_seed == 1
    assert all(s.actions == list(ACTIONS) for s in states)
    steps = batch.step([0, 2], [2, 1])
    assert all(isinstance(s, EnvStep) for s in steps) and steps[0].state.steps == 1
    with pytest.raises(InadmissibleActionError):
        batch.step([1], [6])
    goals = batch.goal_space.goals
    assert not set(goals("train")) & set(goals("test"))


def test_a_test_split_batch_samples_only_held_out_goals():
    spec = env_spec(ENV_ID)
    batch = spec.make_batch(BabyAIConfig(), num_envs=4, split="test")
    states = batch.reset(range(4), [None] * 4, range(4))
    assert all(s.goal in batch.goal_space.goals("test") for s in states)


def test_a_batch_plays_episodes_to_the_end_with_the_oracle():
    spec = env_spec(ENV_ID)
    batch = spec.make_batch(BabyAIConfig(), num_envs=2)
    batch.reset(
        [0, 1], ["go to the green door", "put the purple ball next to the grey key"], [0, 1]
    )
    envs = batch.envs  # type: ignore[attr-defined]
    running, rewards = [0, 1], [0.0, 0.0]
    while running:
        results = batch.step(running, [oracle_action(envs[i]) for i in running])
        for i, r in zip(list(running), results, strict=True):
            rewards[i] += r.reward
            if r.done:
                running.remove(i)
                assert batch.goal_space.achieved(r.state.goal, r.achieved)
    assert rewards == [1.0, 1.0]


def test_a_drop_reports_put_next_to_each_side_neighbour_but_not_its_own_kind():
    env = BabyAITextEnv()
    env.reset(seed=0, options={"goal": "go to the purple ball"})
    level: Any = env.level
    for x in range(1, 7):
        for y in range(1, 7):
            level.grid.set(x, y, None)
    level.agent_pos, level.agent_dir = (2, 3), 0  # facing (3, 3)
    level.grid.set(4, 3, Key("blue"))  # beside the drop cell
    ball: Any = Ball  # minigrid's Ball is untyped
    level.grid.set(3, 2, ball("red"))  # beside it too, same kind as the dropped ball
    level.grid.set(4, 4, Box("grey"))  # diagonal: not next to it
    level.carrying = ball("red")
    _, _, _, _, info = env.step(ACTIONS.index("drop"))
    assert info["achieved_goals"] == ["go to the red ball", "put the red ball next to the blue key"]
    _, _, _, _, info = env.step(ACTIONS.index("pick up"))
    assert info["achieved_goals"] == ["pick up the red ball"]
