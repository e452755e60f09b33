"""The agent's loop in-process (serial driver, tiny model): what is stored, learned and resumed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from autotelic.core.time_limit import with_steps_left
from autotelic.envs.playground import PlaygroundTextEnv, parse_goal, reward
from autotelic.goals import InjectionRejected
from autotelic.runtime.config import ConfigError, Settings, deep_merge, load_settings
from autotelic.runtime.loop.agent import Agent
from autotelic.runtime.loop.schedules import OffPolicySchedule
from autotelic.storage import EpisodeStore
from tests.runtime_fixtures import TINY_PPO, TINY_SERVICE


def settings_for(tmp_path: Path, algorithm: dict[str, Any] | None = None, **extra: Any) -> Settings:
    base = deep_merge(TINY_SERVICE, {"run": {"dir": str(tmp_path / "run"), "mode": "serial"}})
    if algorithm is not None:
        base["algorithm"] = algorithm
    return load_settings(None, **deep_merge(base, extra))


@pytest.mark.parametrize("time_limit", ["observed", "bootstrap"])
def test_stored_episodes_replay_exactly_in_a_fresh_env(tmp_path: Path, time_limit: str) -> None:
    """Every stored step is what the env did: replaying the actions from the scene seed
    reproduces observations, rewards, achieved goals and endings. In the ``observed``
    time-limit mode (the default) each observation also shows the steps left, as the
    policy read it; with ``bootstrap`` it is the env's own text."""
    agent = Agent(settings_for(tmp_path, run={"max_env_steps": 200, "time_limit": time_limit}))
    agent.run_serial()
    episodes = list(agent.store.iter_episodes())
    agent.close()
    assert len(episodes) >= 20
    env = PlaygroundTextEnv()

    def shown(obs: str, steps: int, horizon: int) -> str:
        return with_steps_left(obs, steps, horizon) if time_limit == "observed" else obs

    for episode in episodes:
        obs, info = env.reset(options={"goal": episode.goal, "scene_seed": episode.scene_seed})
        horizon = info["horizon"]
        assert episode.steps[0].observation == shown(obs, 0, horizon)
        for t, step in enumerate(episode.steps):
            assert step.observation == shown(obs, t, horizon)
            assert step.admissible_actions == info["admissible_actions"]
            obs, r, term, trunc, info = env.step(step.action)
            assert (r, term, trunc) == (step.reward, step.terminated, step.truncated)
            assert step.achieved_goals == info["achieved_goals"]
            assert r == reward(episode.goal, step.achieved_goals)
        assert episode.final_observation == shown(obs, episode.length, horizon)
        assert episode.goal_category == parse_goal(episode.goal).category.value


def test_every_step_records_the_policy_version_that_acted(tmp_path: Path) -> None:
    agent = Agent(settings_for(tmp_path, run={"max_env_steps": 400}))
    agent.run_serial()
    versions = [s.policy_version for e in agent.store.iter_episodes() for s in e.steps]
    assert versions == sorted(versions) or len(set(versions)) > 1
    assert min(versions) == 0 and max(versions) > 0
    assert max(versions) <= agent.learner.policy_version
    assert isinstance(agent.schedule, OffPolicySchedule)
    assert agent.learner.num_updates == agent.schedule.throttle.updates > 0
    agent.close()


def test_serial_runs_are_deterministic_under_a_seed(tmp_path: Path) -> None:
    """The in-thread driver and the service's worker in ``run.mode: serial`` agree exactly."""
    runs = []
    for name in ("inline", "worker"):
        agent = Agent(settings_for(tmp_path / name, run={"max_env_steps": 240, "seed": 7}))
        if name == "inline":
            agent.run_serial()
        else:
            threads = agent.start_threads()
            assert [t.name for t in threads] == ["serial"]
            threads[0].join(timeout=300)
            assert agent.error is None and not threads[0].is_alive()
        runs.append([(e.goal, [s.action for s in e.steps]) for e in agent.store.iter_episodes()])
        agent.close()
    assert runs[0] == runs[1] and len(runs[0]) > 10


def test_resume_continues_counters_policy_and_episodes(tmp_path: Path) -> None:
    first = Agent(settings_for(tmp_path, run={"max_env_steps": 200}))
    first.run_serial()
    counters = first.counters()
    ids = set(first.store.ids())
    first.close()
    second = Agent(settings_for(tmp_path, run={"max_env_steps": 400}))
    assert second.collector.env_steps == counters["env_steps"]
    assert second.learner.num_updates == counters["updates"]
    assert second.learner.policy_version == counters["policy_version"]
    assert second.restarts == 1
    second.run_serial()
    assert second.collector.env_steps >= 400 and second.learner.num_updates > counters["updates"]
    assert ids < set(second.store.ids())
    second.close()


def test_a_resume_past_the_replay_capacity_keeps_learning_at_the_ratio(tmp_path: Path) -> None:
    small = {"replay": {"capacity_transitions": 1000}}  # the least allowed
    first = Agent(settings_for(tmp_path, run={"max_env_steps": 1200}, **small))
    first.run_serial()
    counters = first.counters()
    first.close()
    second = Agent(settings_for(tmp_path, run={"max_env_steps": 1400}, **small))
    assert second.store.num_transitions <= 1000 < counters["env_steps"]  # evicted
    assert isinstance(second.schedule, OffPolicySchedule)
    throttle = second.schedule.throttle
    assert throttle.env_steps == counters["env_steps"]  # the run's, not the store's
    second.run_serial()
    gained = second.learner.num_updates - counters["updates"]
    ratio = throttle.ratio
    expected = (second.collector.env_steps - counters["env_steps"]) * ratio
    assert gained >= expected - second.settings.collector.max_lag_updates - 1, (gained, expected)
    second.close()


def test_ppo_learns_from_on_policy_rollouts_of_the_same_collector(tmp_path: Path) -> None:
    agent = Agent(settings_for(tmp_path, TINY_PPO, run={"max_env_steps": 200}))
    agent.run_serial()
    assert agent.learner.num_updates >= 2  # one per 64 collected steps
    assert agent.learner_loop.last["steps"] == 64
    assert len(agent.store) > 10  # episodes are stored for every learner
    agent.close()


def test_injected_goals_are_served_first_and_stored_as_injected(tmp_path: Path) -> None:
    agent = Agent(settings_for(tmp_path, run={"max_env_steps": 160}))
    reply = agent.inject("grow Tiger", episodes=2, priority=5)
    assert reply.goal == "Grow tiger" and reply.episodes == 2 and reply.feasible is True
    with pytest.raises(InjectionRejected, match="unicorn"):
        agent.inject("Grow unicorn")
    agent.run_serial()
    injected = [e for e in agent.store.iter_episodes() if e.goal_source == "injected"]
    assert [e.goal for e in injected] == ["Grow tiger", "Grow tiger"]
    assert {e.injection_id for e in injected} == {reply.injection_id}
    assert agent.inject("Grow chair").feasible is False  # accepted, and said infeasible
    agent.close()


def test_concurrent_threads_collect_and_learn_together(tmp_path: Path) -> None:
    agent = Agent(settings_for(tmp_path, run={"max_env_steps": 400, "mode": "concurrent"}))
    threads = agent.start_threads()
    for t in threads:
        t.join(timeout=300)
    assert agent.error is None
    assert agent.collector.env_steps >= 400 and agent.learner.num_updates > 0
    assert isinstance(agent.schedule, OffPolicySchedule)
    throttle = agent.schedule.throttle
    lag = throttle.target() - throttle.updates - throttle.skipped  # skipped: cpu profile
    assert lag <= agent.settings.collector.max_lag_updates + 2
    agent.checkpoint(pause=True)
    agent.close()
    with EpisodeStore(tmp_path / "run/store", readonly=True) as store:
        assert store.num_transitions > 300


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"algorithm": {"name": "dqn"}}, "unknown algorithm 'dqn'; registered: "),
        ({"env": {"id": "Pong-v5"}}, "unknown environment 'Pong-v5'; registered: autotelic/"),
        ({"algorithm": {"name": "ppo", "tau": 0.1}}, "algorithm.tau: Extra inputs"),
        ({"env": {"num_envs": 0}}, "env.num_envs"),
        ({"replay": {"strategy": "past"}}, "'future', 'final' or 'episode'"),
        ({"mqtt": {"url": "http://x"}}, "mqtt.url"),
    ],
)
def test_invalid_configuration_names_the_field_and_the_allowed_values(override, message) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(None, **override)
    assert message in str(err.value)


def test_config_file_and_environment_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[run]\nseed = 3\nagent = "lab"\n[env]\nnum_envs = 2\n')
    monkeypatch.setenv("AUTOTELIC_ENV__NUM_ENVS", "5")
    settings = load_settings(path)
    assert (settings.run.seed, settings.run.agent, settings.env.num_envs) == (3, "lab", 5)
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "missing.yaml")
    assert settings.algorithm.name == "sac"
    assert np.isclose(getattr(settings.algorithm, "gamma", 0.0), 0.99)


def test_every_start_draws_new_seed_streams_even_without_a_checkpoint(tmp_path: Path) -> None:
    """A start that dies before its first checkpoint still counts: the next start does not
    replay its scenes and action draws; a new run directory is reproducible from its seed."""

    def opening_scenes(agent: Agent) -> list[int]:
        return [state.episode_seed for state in agent.collector._states]

    firsts = []
    for start in range(3):
        agent = Agent(settings_for(tmp_path / "run", run={"seed": 5}))
        assert agent.restarts == start
        firsts.append(opening_scenes(agent))
        agent.step_once()  # then "killed": closed without a checkpoint
        agent.close()
    assert len({tuple(f) for f in firsts}) == 3
    fresh = Agent(settings_for(tmp_path / "fresh", run={"seed": 5}))
    assert fresh.restarts == 0 and opening_scenes(fresh) == firsts[0]
    fresh.close()


def test_an_epsilon_mixed_behaviour_samples_every_action_and_records_its_own_log_prob() -> None:
    from autotelic.runtime.loop.collector import behaviour_sample

    peaked = [np.array([0.999, 0.001, 0.0, 0.0], dtype=np.float32)] * 4000
    actions, log_probs = behaviour_sample(peaked, 0.2, np.random.default_rng(0))
    counts = np.bincount(actions, minlength=4) / len(actions)
    expected = 0.8 * peaked[0] + 0.05
    assert np.allclose(counts, expected, atol=0.02)  # every action is reached
    assert np.allclose(np.exp(log_probs), expected[actions], rtol=1e-5)
