"""Precursor goals (collector.precursor_share): what a goal affords, the chains drawn
from it, the behaviour that follows them, and an agent that acts under them while it
stores every episode under its own goal."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from autotelic.runtime.config import Settings, deep_merge, load_settings
from autotelic.runtime.loop.agent import Agent
from autotelic.runtime.loop.collector import Collector
from autotelic.runtime.loop.precursors import Behaviour, Precursors
from autotelic.runtime.loop.rollout import RolloutRecorder
from tests.runtime_fixtures import TINY_PPO, TINY_SERVICE


def test_a_goal_affords_what_its_episodes_achieved_besides_itself_first_seen_first():
    p = Precursors(share=1.0)
    p.observe("Grow cow", ["Grasp water"])
    p.observe("Grow cow", ["Grasp water", "Grow carrot", "Grow cow"])
    p.observe("Grasp cow", ["Grasp cow"])  # only itself: nothing to replay
    assert p.afforded("Grow cow") == ["Grasp water", "Grow carrot"]
    assert p.afforded("Grasp cow") == [] and p.afforded("Grow lion") == []


def test_no_share_draws_nothing_and_leaves_the_random_stream_alone():
    p = Precursors(share=0.0)
    p.observe("Grow cow", ["Grow carrot"])
    rng = np.random.default_rng(3)
    assert p.plan("Grow cow", rng).chain == []
    assert rng.random() == np.random.default_rng(3).random()


def test_chains_replay_the_end_of_an_order_the_longest_most_in_share_of_episodes():
    p = Precursors(share=0.5, length=2, allowance=4)
    p.observe("Grow cow", ["Grasp cow"])
    p.observe("Grow cow", ["Grasp water", "Grow carrot", "Grasp carrot"])
    rng = np.random.default_rng(0)
    plans = [p.plan("Grow cow", rng) for _ in range(800)]
    chained = [tuple(b.chain) for b in plans if b.chain]
    assert 0.43 < len(chained) / len(plans) < 0.57
    assert set(chained) == {("Grasp cow",), ("Grow carrot", "Grasp carrot")}
    assert all(b.steps_left == 4 for b in plans if b.chain)
    long_share = chained.count(("Grow carrot", "Grasp carrot")) / len(chained)
    assert 0.82 < long_share < 0.98  # weights 9 : 1
    assert p.plan("Grow lion", rng).chain == []  # nothing achieved on its way yet


def test_only_the_most_recent_orders_are_kept():
    p = Precursors(share=1.0, memory=2)
    for goal in ["Grasp water", "Grasp cow", "Grasp carrot"]:
        p.observe("Grow cow", [goal])
    assert p.afforded("Grow cow") == ["Grasp cow", "Grasp carrot"]


def test_the_behaviour_moves_on_when_its_goal_is_achieved_or_its_steps_are_spent():
    b = Behaviour(["Grow carrot", "Grasp carrot"], steps_left=2)
    assert b.goal("Grow cow") == "Grow carrot"
    b.advance(["Grasp water"], allowance=2)
    assert b.goal("Grow cow") == "Grow carrot"
    b.advance(["Grow carrot"], allowance=2)  # achieved
    assert b.goal("Grow cow") == "Grasp carrot" and b.steps_left == 2
    b.advance([], allowance=2)
    b.advance(["Grasp water"], allowance=2)  # out of steps
    assert b.goal("Grow cow") == "Grow cow" and b.chain == []
    b.advance(["Grow cow"], allowance=2)
    assert b.goal("Grow cow") == "Grow cow"
    assert b.reached == ["Grasp water", "Grow carrot", "Grow cow"]


def settings_for(tmp_path: Path, algorithm: dict[str, Any] | None = None, **extra: Any) -> Settings:
    base = deep_merge(TINY_SERVICE, {"run": {"dir": str(tmp_path / "run"), "mode": "serial"}})
    if algorithm is not None:
        base["algorithm"] = algorithm
    return load_settings(None, **deep_merge(base, extra))


def collector_of(agent: Agent, share: float, recorder: RolloutRecorder | None = None) -> Collector:
    """A collector over the agent's parts that acts under precursors in ``share`` of episodes."""
    return Collector(
        agent.envs,
        agent.learner,
        agent.daemon,
        agent.store,
        env_id="playground-text",
        rng=np.random.default_rng(0),
        recorder=recorder,
        time_limit=agent.settings.run.time_limit,
        precursors=Precursors(share=share),
    )


def test_a_collector_acts_under_precursors_and_stores_each_episode_under_its_own_goal(tmp_path):
    agent = Agent(settings_for(tmp_path))
    shown_other = 0
    finished = []
    try:
        collector = collector_of(agent, share=1.0)
        collector.start(seed=5)
        for _ in range(150):
            goals = [s.goal for s in collector._states]
            for own, prompt, behaviour in zip(
                goals, collector.prompts, collector._behaviour, strict=True
            ):
                acting = behaviour.goal(own)
                assert acting in prompt
                if acting != own:
                    assert acting in collector.precursors.afforded(own)
                    assert acting in behaviour.chain
                    shown_other += 1
            finished += collector.step()
    finally:
        agent.close()
    assert shown_other > 0, "no episode acted under a precursor"
    assert finished
    for episode in finished:  # stored under the goal assigned, won only by that goal
        assert episode.success == (episode.goal in episode.achieved_goals)


def test_an_on_policy_learner_refuses_precursors(tmp_path):
    agent = Agent(settings_for(tmp_path, algorithm=TINY_PPO))
    try:
        assert agent.recorder is not None
        with pytest.raises(ValueError, match="on-policy"):
            collector_of(agent, share=0.5, recorder=agent.recorder)
    finally:
        agent.close()


def test_the_collector_section_reaches_the_agents_collector(tmp_path):
    collector = {"precursor_share": 0.25, "precursor_length": 2, "precursor_steps": 4}
    agent = Agent(settings_for(tmp_path, collector=collector))
    try:
        p = agent.collector.precursors
        assert (p.share, p.length, p.allowance) == (0.25, 2, 4)
    finally:
        agent.close()
