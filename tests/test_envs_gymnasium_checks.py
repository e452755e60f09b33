"""Both environments follow gymnasium's conventions: gymnasium's own ``check_env`` passes
(it samples actions blindly: every action of ``action_space`` is admissible, an index past
Playground's admissible list wrapping around onto it), ``render_mode`` is accepted as
``gym.make`` passes it, ``info["action_mask"]`` makes ``action_space.sample(mask=...)``
draw only the admissible actions, once each, and ``gym.make_vec`` runs with masked
sampling."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
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
def test_gymnasiums_own_env_checker_passes(env_id: str) -> None:
    env_checker.check_env(gym.make(env_id).unwrapped, skip_render_check=False)
    env_checker.check_env(gym.make(env_id, render_mode="ansi").unwrapped)


@pytest.mark.parametrize("env_id", IDS)
def test_render_mode_is_accepted_as_gymnasium_passes_it(env_id: str) -> None:
    env = gym.make(env_id, render_mode="ansi")
    assert env.render_mode == "ansi"
    env.reset(seed=0)
    frame = env.render()
    assert isinstance(frame, str) and frame.startswith("Goal: ")
    with pytest.raises(ValueError, match="render_mode 'human' is not one of"):
        gym.make(env_id, render_mode="human")


@pytest.mark.parametrize("env_id", IDS)
def test_make_vec_runs_with_masked_sampling(env_id: str) -> None:
    """Three copies in a vector env: each sampled action is within its env's mask, and
    episodes end and restart on their own."""
    envs = gym.make_vec(env_id, num_envs=3, vectorization_mode="sync")
    envs.action_space.seed(0)
    _, infos = envs.reset(seed=0)
    finished = 0
    try:
        for _ in range(150):
            masks = tuple(np.asarray(m, dtype=np.int8) for m in infos["action_mask"])
            actions = envs.action_space.sample(mask=masks)
            assert all(m[a] == 1 for m, a in zip(masks, actions, strict=True))
            _, _, terminated, truncated, infos = envs.step(actions)
            finished += int((terminated | truncated).sum())
    finally:
        envs.close()
    assert finished >= 3


@pytest.mark.parametrize("env_id", IDS)
def test_masked_samples_are_always_admissible_and_blind_ones_too(env_id: str) -> None:
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
        _, info = env.reset(seed=1, options={"goal": "Grasp cow"})
        admissible = info["admissible_actions"]
        assert isinstance(env.action_space, gym.spaces.Discrete)
        n_actions = int(env.action_space.n)
        assert len(admissible) < n_actions
        # past the list: wraps around onto it, acting exactly as that admissible action
        twin = gym.make(env_id).unwrapped
        twin.reset(seed=1, options={"goal": "Grasp cow"})
        wrapped, *_ = env.step(len(admissible))
        same, *_ = twin.step(admissible[0])
        assert wrapped == same
        with pytest.raises(InadmissibleActionError):  # outside action_space: refused
            env.step(n_actions)
        with pytest.raises(InadmissibleActionError):  # a text that is not admissible
            env.step("Fly to the moon")
