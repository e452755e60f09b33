"""Time limits as a choice (run.time_limit): terminal, bootstrap, observed.

The replay side (n-step targets per mode) is tested with the other target
properties in tests/test_storage_her.py; this file covers what the policy reads
(the ``observed`` mode's "Steps left" line, on every state of a batch), the
on-policy rollout recorder, and the wiring of one mode through an agent.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from autotelic.core import TextEnvBatch
from autotelic.core.time_limit import (
    DEFAULT_TIME_LIMIT,
    TIME_LIMITS,
    StepsLeftBatch,
    time_limited,
    with_steps_left,
)
from autotelic.envs.playground import make_batch
from autotelic.runtime.config import ConfigError, Settings, deep_merge, load_settings
from autotelic.runtime.loop.agent import Agent
from autotelic.runtime.loop.collector import Collector
from autotelic.runtime.loop.rollout import RolloutRecorder
from autotelic.runtime.loop.schedules import OffPolicySchedule
from tests.runtime_fixtures import TINY_PPO, TINY_SERVICE

# -- what the policy reads -------------------------------------------------------------------------


def test_steps_left_is_one_last_line_and_an_unlimited_env_shows_nothing():
    obs = "You see: cow, water\nYou are standing on: nothing\nInventory (0/2): empty"
    assert with_steps_left(obs, 1, 3) == obs + "\nSteps left: 2"
    assert with_steps_left(obs, 3, 3).endswith("\nSteps left: 0")
    assert with_steps_left(obs, 0, 0) == obs  # horizon 0: no time limit


def _pair(num_envs: int = 3) -> tuple[TextEnvBatch, TextEnvBatch]:
    plain, shown = (
        make_batch(num_envs=num_envs),
        time_limited(make_batch(num_envs=num_envs), "observed"),
    )
    plain.seed(11)
    shown.seed(11)
    return plain, shown


def test_the_observed_batch_shows_the_steps_left_on_every_state_and_changes_nothing_else():
    plain, shown = _pair()
    assert isinstance(shown, StepsLeftBatch) and shown.num_envs == 3
    assert shown.goal_space.goals("train") == plain.goal_space.goals("train")
    envs = [0, 1, 2]
    goals = ["Grasp cow", "Grow carrot", "Grow lion"]
    a, b = plain.reset(envs, goals), shown.reset(envs, goals)
    rng = np.random.default_rng(0)
    cut_seen = False
    while envs:
        for x, y in zip(a, b, strict=True):
            assert y.observation == with_steps_left(x.observation, x.steps, x.horizon)
            assert (y.actions, y.goal, y.episode_seed, y.steps) == (
                x.actions,
                x.goal,
                x.episode_seed,
                x.steps,
            )
        actions = [int(rng.integers(len(s.actions))) for s in a]
        ra, rb = plain.step(envs, actions), shown.step(envs, actions)
        for p, q in zip(ra, rb, strict=True):
            assert (q.reward, q.terminated, q.truncated, q.achieved) == (
                p.reward,
                p.terminated,
                p.truncated,
                p.achieved,
            )
            assert q.state.observation == with_steps_left(
                p.state.observation, p.state.steps, p.state.horizon
            )
            if p.truncated:
                cut_seen = True
                assert q.state.observation.endswith("\nSteps left: 0")
        keep = [i for i, r in enumerate(ra) if not r.done]
        envs = [envs[i] for i in keep]
        a, b = [ra[i].state for i in keep], [rb[i].state for i in keep]
    assert cut_seen  # a random policy runs out of time on some of these goals


@pytest.mark.parametrize("mode", TIME_LIMITS)
def test_only_the_observed_mode_wraps_a_batch_and_never_twice(mode):
    envs = make_batch(num_envs=1)
    wrapped = time_limited(envs, mode)
    assert (wrapped is envs) == (mode != "observed")
    assert time_limited(wrapped, mode) is wrapped
    with pytest.raises(ValueError, match="unknown time-limit mode 'soft'"):
        time_limited(envs, "soft")  # type: ignore[arg-type]


# -- the on-policy recorder ----------------------------------------------------------------------


def _record(recorder: RolloutRecorder, *, terminated: bool, truncated: bool, cut: str | None):
    recorder.record(
        0,
        prompt="p",
        candidates=["a", "b"],
        action=1,
        log_prob=-0.7,
        reward=float(terminated),
        terminated=terminated,
        truncated=truncated,
        final_prompt=cut,
        policy_version=0,
    )


@pytest.mark.parametrize("mode", TIME_LIMITS)
def test_a_cut_step_is_terminal_without_a_final_prompt_unless_bootstrapped(mode):
    recorder = RolloutRecorder(1, time_limit=mode)
    _record(recorder, terminated=False, truncated=False, cut=None)  # mid-episode
    _record(recorder, terminated=False, truncated=True, cut="cut state")  # time limit
    _record(recorder, terminated=True, truncated=False, cut=None)  # goal reached
    (traj,) = recorder.take(["now"]).trajectories
    bootstrap = mode == "bootstrap"
    assert recorder.bootstraps_cuts == bootstrap
    np.testing.assert_array_equal(traj.terminated, [False, not bootstrap, True])
    np.testing.assert_array_equal(traj.truncated, [False, True, False])
    np.testing.assert_array_equal(traj.cut, [False, bootstrap, False])
    assert traj.final_prompts == [None, "cut state" if bootstrap else None, None]
    assert traj.bootstrap_prompt is None  # the last step ended its episode


def test_the_recorder_refuses_an_unknown_mode():
    with pytest.raises(ValueError, match="unknown time-limit mode"):
        RolloutRecorder(2, time_limit="never")  # type: ignore[arg-type]


# -- one mode through an agent -------------------------------------------------------------------


def settings_for(tmp_path: Path, algorithm: dict[str, Any] | None = None, **extra: Any) -> Settings:
    base = deep_merge(TINY_SERVICE, {"run": {"dir": str(tmp_path / "run"), "mode": "serial"}})
    if algorithm is not None:
        base["algorithm"] = algorithm
    return load_settings(None, **deep_merge(base, extra))


def test_the_default_mode_and_a_bad_one():
    assert load_settings(None).run.time_limit == DEFAULT_TIME_LIMIT == "observed"
    with pytest.raises(ConfigError, match="time_limit"):
        load_settings(None, run={"time_limit": "ignore"})


@pytest.mark.parametrize("mode", TIME_LIMITS)
def test_an_on_policy_agent_records_cuts_and_prompts_as_its_mode_says(tmp_path, mode):
    agent = Agent(settings_for(tmp_path, algorithm=TINY_PPO, run={"time_limit": mode}))
    try:
        assert agent.recorder is not None and agent.recorder.time_limit == mode
        assert agent.collector.time_limit == mode
        prompts = []
        for _ in range(16):  # Grasp goals end within 3 steps, impossible ones within 10
            prompts += agent.collector.prompts
            agent.collector.step()
        rollout = agent.recorder.take(agent.collector.prompts)
    finally:
        agent.close()
    assert all(("\nSteps left: " in p) == (mode == "observed") for p in prompts)
    truncated = [t for traj in rollout.trajectories for t in np.flatnonzero(traj.truncated)]
    assert truncated, "no episode was cut: lengthen the run"
    for traj in rollout.trajectories:
        for t in np.flatnonzero(traj.truncated & ~np.asarray(traj.cut)):
            assert mode != "bootstrap" and traj.terminated[t] and traj.final_prompts[t] is None
        for t in np.flatnonzero(traj.cut):
            final = traj.final_prompts[t]
            assert mode == "bootstrap" and final is not None and "Steps left" not in final


def test_an_off_policy_agent_replays_in_its_mode(tmp_path):
    agent = Agent(settings_for(tmp_path, run={"time_limit": "terminal"}))
    try:
        assert isinstance(agent.schedule, OffPolicySchedule)
        assert agent.schedule.sampler.time_limit == "terminal"
        assert agent.collector.envs is agent.envs  # nothing shown in the terminal mode
    finally:
        agent.close()


def test_collector_and_recorder_must_agree(tmp_path):
    agent = Agent(settings_for(tmp_path, algorithm=TINY_PPO))
    try:
        with pytest.raises(ValueError, match="must agree"):
            Collector(
                agent.envs,
                agent.learner,
                agent.daemon,
                agent.store,
                env_id="playground-text",
                rng=np.random.default_rng(0),
                recorder=RolloutRecorder(agent.envs.num_envs, time_limit="bootstrap"),
                time_limit="observed",
            )
    finally:
        agent.close()
