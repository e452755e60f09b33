"""The batch of envs the collector steps: same-step auto-reset, goal source, validation."""

from __future__ import annotations

import numpy as np
import pytest

from autotelic.envs.playground import (
    InadmissibleActionError,
    PlaygroundBatch,
    PlaygroundTextEnv,
    oracle_action,
)


def test_batch_matches_independent_envs_under_the_same_seeds():
    batch = PlaygroundBatch(3)
    obs, infos = batch.reset(seed=10, goals=["Grow cow", "Grasp lamp", "Grow lion"])
    singles = [PlaygroundTextEnv() for _ in range(3)]
    for i, env in enumerate(singles):
        o, info = env.reset(seed=10 + i, options={"goal": infos[i]["goal"]})
        assert o == obs[i] and info == infos[i]


def test_same_step_auto_reset_reports_the_final_state_and_pulls_the_next_goal():
    asked: list[int] = []

    def goal_source(i: int) -> str:
        asked.append(i)
        return "Grasp door" if i == 0 else "Grow carrot"

    batch = PlaygroundBatch(2, goal_source=goal_source)
    obs, infos = batch.reset(seed=0)
    assert [i["goal"] for i in infos] == ["Grasp door", "Grow carrot"]
    asked.clear()
    episodes_done = [0, 0]
    for _ in range(12):
        actions = [oracle_action(info["goal"], o) for o, info in zip(obs, infos, strict=True)]
        step = batch.step(actions)
        for i in np.flatnonzero(step.done):
            final = step.infos[i]["final_info"]
            assert step.rewards[i] == 1.0 and step.terminated[i]
            assert final["goal"] in final["achieved_goals"]
            assert step.infos[i]["steps"] == 0  # already the next episode
            assert step.observations[i].endswith("Inventory (0/2): empty")
            assert step.infos[i]["final_observation"] != step.observations[i]
            episodes_done[i] += 1
        obs, infos = step.observations, step.infos
    assert episodes_done == [6, 3]  # 2-step and 4-step optimal plans
    assert asked.count(0) == 6 and asked.count(1) == 3


def test_truncated_episodes_auto_reset_too():
    batch = PlaygroundBatch(1, goal_source=lambda i: "Grasp cow")
    _, infos = batch.reset(seed=1)
    for k in range(3):
        moves = [a for a in infos[0]["admissible_actions"] if a.startswith("Go to")]
        step = batch.step([moves[k % len(moves)] if "cow" not in moves[0] else moves[-1]])
        infos = step.infos
    assert step.truncated[0] and not step.terminated[0] and step.rewards[0] == 0.0
    assert "final_info" in step.infos[0] and step.infos[0]["final_info"]["steps"] == 3


def test_an_inadmissible_action_leaves_the_whole_batch_unchanged():
    batch = PlaygroundBatch(3)
    obs, infos = batch.reset(seed=4)
    with pytest.raises(InadmissibleActionError):
        batch.step([0, "Fly", 0])
    assert [env.scene.observation() for env in batch.envs] == obs
    assert all(env.scene.observation() == o for env, o in zip(batch.envs, obs, strict=True))
    step = batch.step([0, 0, 0])
    assert all(info["steps"] == 1 for info in step.infos)


def test_wrong_sizes_are_rejected():
    with pytest.raises(ValueError, match="num_envs"):
        PlaygroundBatch(0)
    batch = PlaygroundBatch(2)
    batch.reset()
    with pytest.raises(ValueError, match="1 actions for 2 envs"):
        batch.step([0])
    with pytest.raises(ValueError, match="3 goals for 2 envs"):
        batch.reset(goals=["Grasp cow"] * 3)
