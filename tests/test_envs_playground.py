"""Playground-Text mechanics, rewards, horizons and the oracle."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import pytest

import autotelic.envs  # noqa: F401  (registers the ids)
from autotelic.envs.playground import (
    ENV_ID,
    HORIZONS,
    IMPOSSIBLE_HORIZON,
    OBJECTS_BY_CATEGORY,
    OPTIMAL_STEPS,
    EpisodeOverError,
    GoalCategory,
    InadmissibleActionError,
    ObjectCategory,
    PlaygroundConfig,
    PlaygroundTextEnv,
    all_goals,
    oracle_action,
    parse_goal,
)
from autotelic.envs.playground.objects import split_of
from tests.conftest import plain

SEEDS = range(8)


def run_oracle(env: PlaygroundTextEnv, goal: str, seed: int) -> tuple[int, float, dict[str, Any]]:
    obs, info = env.reset(seed=seed, options={"goal": goal})
    total = 0.0
    while True:
        obs, r, terminated, truncated, info = env.step(oracle_action(info["goal"], obs))
        total += r
        if terminated or truncated:
            return info["steps"], total, info


@pytest.mark.parametrize("split", ["train", "test"])
def test_oracle_solves_every_feasible_goal_in_the_optimal_number_of_steps(split):
    env = PlaygroundTextEnv(split=split)
    goals = all_goals(split)
    assert len(goals) == 4 * (6 if split == "train" else 3) + 3 * (6 if split == "train" else 3)
    for goal in goals:
        category = parse_goal(goal).category
        for seed in SEEDS:
            steps, total, info = run_oracle(env, goal, seed)
            assert info["feasible"]
            assert total == 1.0, (goal, seed)
            assert steps == OPTIMAL_STEPS[category], (goal, seed, steps)
            assert steps <= HORIZONS[category]
            assert goal in info["achieved_goals"]


def test_optimal_steps_and_horizons_follow_the_design():
    assert [OPTIMAL_STEPS[c] for c in OPTIMAL_STEPS] == [2, 4, 7, 10]
    assert [HORIZONS[c] for c in HORIZONS] == [3, 6, 10, 15]
    assert IMPOSSIBLE_HORIZON == 10


def test_held_out_goals_get_held_out_objects_in_their_scenes():
    env = PlaygroundTextEnv(split="test")
    for seed in range(20):
        env.reset(seed=seed, options={"goal": "Grow tiger"})
        names = [t.name for t in env.scene.things()]
        assert all(split_of(n) == "test" for n in names if n != "water"), names


@pytest.mark.parametrize("goal", ["Grow door", "Grow table", "Grow cupboard"])
def test_furniture_never_grows_and_gives_no_reward(goal):
    env = PlaygroundTextEnv()
    for seed in range(30):
        obs, info = env.reset(seed=seed, options={"goal": goal})
        assert not info["feasible"]
        assert info["horizon"] == IMPOSSIBLE_HORIZON
        assert info["goal_category"] == GoalCategory.GROW_FURNITURE
        done, steps = False, 0
        while not done:
            # Try hard: release everything onto every object, the furniture included.
            actions = info["admissible_actions"]
            action = actions[(seed + steps) % len(actions)]
            obs, r, term, trunc, info = env.step(action)
            steps += 1
            assert r == 0.0 and not term
            assert not any(
                g.startswith("Grow ") and parse_goal(g).category is GoalCategory.GROW_FURNITURE
                for g in info["achieved_goals"]
            )
            done = trunc
        assert steps == IMPOSSIBLE_HORIZON


def test_impossible_scenes_never_reward_and_truncate_at_the_impossible_horizon():
    env = PlaygroundTextEnv(impossible_share=1.0)
    for i, goal in enumerate(all_goals("train")):
        obs, info = env.reset(seed=i, options={"goal": goal})
        assert not info["feasible"] and info["horizon"] == IMPOSSIBLE_HORIZON
        assert parse_goal(goal).obj not in {t.name for t in env.scene.things()}
        done = False
        while not done:
            actions = info["admissible_actions"]
            obs, r, term, trunc, info = env.step(actions[info["steps"] % len(actions)])
            assert r == 0.0 and not term
            done = trunc
        assert info["steps"] == IMPOSSIBLE_HORIZON


def test_impossible_share_is_the_rate_of_infeasible_scenes():
    env = PlaygroundTextEnv(impossible_share=0.3)
    feasible = [env.reset(seed=s)[1]["feasible"] for s in range(2000)]
    share = 1 - sum(feasible) / len(feasible)
    assert 0.25 < share < 0.35


def test_feasible_goal_scenes_hold_their_prerequisites():
    env = PlaygroundTextEnv()
    for seed in range(200):
        _, info = env.reset(seed=seed)
        goal = parse_goal(info["goal"])
        names = {t.name for t in env.scene.things()}
        assert info["feasible"] and goal.obj in names
        cats = {env.scene.find(n).category for n in names}  # type: ignore[union-attr]
        if goal.category is not GoalCategory.GRASP:
            assert "water" in names
        if goal.category in (GoalCategory.GROW_HERBIVORE, GoalCategory.GROW_CARNIVORE):
            assert ObjectCategory.PLANT in cats
        if goal.category is GoalCategory.GROW_CARNIVORE:
            assert ObjectCategory.HERBIVORE in cats
        assert len(names) == 4


def test_observation_has_three_lines_and_names_growth_stages():
    env = PlaygroundTextEnv()
    obs, info = env.reset(seed=3, options={"goal": "Grow cow"})
    lines = obs.split("\n")
    assert len(lines) == 3
    assert lines[0].startswith("You see: ")
    assert lines[1] == "You are standing on: nothing"
    assert lines[2] == "Inventory (0/2): empty"
    assert "baby cow" in lines[0] and "water" in lines[0] and " seed" in lines[0]
    assert info["admissible_actions"] == [f"Go to {x}" for x in lines[0][9:].split(", ")]


def test_grasp_release_and_release_all():
    env = PlaygroundTextEnv()
    obs, info = env.reset(seed=0, options={"goal": "Grow lion"})
    env.step("Go to water")
    _, _, _, _, info = env.step("Grasp")
    assert info["achieved_goals"] == []  # water is not a goal object
    assert "Grasp" not in info["admissible_actions"]
    seed_label = next(t.label for t in env.scene.floor if t.label.endswith(" seed"))
    env.step(f"Go to {seed_label}")
    obs, *_, info = env.step("Grasp")
    assert info["achieved_goals"] == [f"Grasp {seed_label.removesuffix(' seed')}"]
    assert obs.endswith(f"Inventory (2/2): water, {seed_label}")
    assert info["admissible_actions"][-3:] == [
        "Release water",
        f"Release {seed_label}",
        "Release all",
    ]
    obs, *_, info = env.step("Release all")
    # Water is dropped first (stood on nothing), then the seed lands on the water: nothing grows.
    assert obs.splitlines()[2] == "Inventory (0/2): empty"
    assert info["achieved_goals"] == []


def test_feeding_consumes_the_food():
    env = PlaygroundTextEnv()
    obs, info = env.reset(seed=5, options={"goal": "Grow carrot"})
    for action in ["Go to water", "Grasp", "Go to carrot seed"]:
        env.step(action)
    obs, r, term, trunc, info = env.step("Release water")
    assert r == 1.0 and term and not trunc
    assert info["achieved_goals"] == ["Grow carrot"]
    assert "water" not in obs and "carrot" in obs and "carrot seed" not in obs
    assert obs.splitlines()[1] == "You are standing on: carrot"
    with pytest.raises(EpisodeOverError):
        env.step(0)


def test_inadmissible_action_raises_listing_the_admissible_ones_and_changes_nothing():
    env = PlaygroundTextEnv()
    obs, info = env.reset(seed=1, options={"goal": "Grasp cow"})
    for bad in ["Grasp", "Fly away", 99, -1, 1.0, True, None]:
        with pytest.raises(InadmissibleActionError) as err:
            env.step(bad)  # type: ignore[arg-type]
        for action in info["admissible_actions"]:
            assert action in str(err.value)
        assert env.scene.observation() == obs
        assert env.admissible_actions() == info["admissible_actions"]
    obs2, *_ = env.step(0)  # and the episode goes on normally
    assert obs2 != obs


def test_step_by_index_equals_step_by_text():
    a, b = PlaygroundTextEnv(), PlaygroundTextEnv()
    (oa, ia), (ob, ib) = a.reset(seed=9), b.reset(seed=9)
    assert oa == ob and plain(ia) == plain(ib)
    for k in range(3):
        i = k % len(ia["admissible_actions"])
        ra = a.step(i)
        rb = b.step(ib["admissible_actions"][i])
        assert plain(ra) == plain(rb)
        ia, ib = ra[4], rb[4]
        if ra[2] or ra[3]:
            break


def test_truncation_at_the_category_horizon():
    env = PlaygroundTextEnv()
    obs, info = env.reset(seed=2, options={"goal": "Grow wolf"})
    steps = 0
    while True:
        actions = info["admissible_actions"]
        # Wander between objects without ever grasping anything.
        move = next(a for a in actions if a.startswith("Go to"))
        obs, r, term, trunc, info = env.step(move)
        steps += 1
        if term or trunc:
            break
    assert trunc and not term and steps == HORIZONS[GoalCategory.GROW_CARNIVORE]


def test_reset_is_deterministic_under_a_seed_and_records_the_scene_seed():
    env = PlaygroundTextEnv()
    first = env.reset(seed=42, options={"goal": "Grow goat"})
    second = env.reset(seed=42, options={"goal": "Grow goat"})
    assert plain(first) == plain(second)
    other = env.reset(seed=43, options={"goal": "Grow goat"})
    assert other[1]["scene_seed"] != first[1]["scene_seed"]


def test_a_recorded_scene_seed_regenerates_the_scene():
    env = PlaygroundTextEnv(impossible_share=0.5)
    for seed in range(20):
        obs, info = env.reset(seed=seed)
        again, info2 = PlaygroundTextEnv(impossible_share=0.5).reset(
            options={"goal": info["goal"], "scene_seed": info["scene_seed"]}
        )
        assert again == obs and plain(info2) == plain(info)


def test_registered_with_gymnasium():
    env = gym.make(ENV_ID, split="test")
    obs, info = env.reset(seed=0)
    assert info["goal"] in all_goals("test")
    assert isinstance(obs, str) and obs.startswith("You see: ")
    env.close()


def test_config_rejects_bad_values_by_name():
    with pytest.raises(ValueError, match="n_objects"):
        PlaygroundConfig(n_objects=2)
    with pytest.raises(ValueError, match="impossible_share"):
        PlaygroundConfig(impossible_share=1.5)
    with pytest.raises(ValueError, match="unknown verb"):
        PlaygroundConfig(goals=("Eat carrot",))
    with pytest.raises(ValueError, match="never feasible"):
        PlaygroundConfig(category_weights={GoalCategory.GROW_FURNITURE: 1.0})


def test_category_weights_and_goal_lists_drive_sampling():
    env = PlaygroundTextEnv(category_weights={GoalCategory.GRASP: 1.0})
    assert all(env.reset(seed=s)[1]["goal"].startswith("Grasp ") for s in range(50))
    env = PlaygroundTextEnv(goals=("grow   Carrot", "Grasp cow"))
    seen = {env.reset(seed=s)[1]["goal"] for s in range(50)}
    assert seen == {"Grow carrot", "Grasp cow"}


def test_every_object_category_is_nine_strong():
    assert all(len(v) == 9 for v in OBJECTS_BY_CATEGORY.values())
    assert len(all_goals("all")) == 36 + 27
    assert len(all_goals("all", include_impossible=True)) == 36 + 36
