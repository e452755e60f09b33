"""Both environments follow gymnasium's conventions where state-dependent actions allow:
the checker's checks that do not sample blindly pass, and ``info["action_mask"]`` makes
``action_space.sample(mask=...)`` draw only admissible actions."""

from __future__ import annotations

import gymnasium as gym
import pytest
from gymnasium.utils import env_checker, passive_env_checker

import autotelic.envs  # noqa: F401 (registers the ids)
from autotelic.core import InadmissibleActionError

IDS = ["autotelic/PlaygroundText-v0", "autotelic/BabyAIText-v0"]


@pytest.mark.parametrize("env_id", IDS)
def test_gymnasiums_checks_that_do_not_sample_blindly_pass(env_id: str) -> None:
    env = gym.make(env_id).unwrapped
    env_checker.check_reset_return_type(env)
    env_checker.check_reset_seed_determinism(env)
    env_checker.check_reset_options(env)
    passive_env_checker.check_observation_space(env.observation_space)
    passive_env_checker.check_action_space(env.action_space)


@pytest.mark.parametrize("env_id", IDS)
def test_masked_samples_are_always_admissible_and_unmasked_ones_may_not_be(env_id: str) -> None:
    env = gym.make(env_id).unwrapped
    env.action_space.seed(0)
    _, info = env.reset(seed=0)
    for _ in range(300):
        assert info["action_mask"].sum() == len(info["admissible_actions"])
        action = env.action_space.sample(mask=info["action_mask"])
        _, _, terminated, truncated, info = env.step(action)
        if terminated or truncated:
            _, info = env.reset()
    if env_id.startswith("autotelic/Playground"):  # fewer admissible actions than indices
        _, info = env.reset(seed=1)
        with pytest.raises(InadmissibleActionError):
            env.step(len(info["admissible_actions"]))
