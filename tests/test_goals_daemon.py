"""The goal daemon as the runtime uses it: goals out, outcomes in, stats, save and restore."""

from __future__ import annotations

import json
from typing import Any

import msgpack
import numpy as np
import pytest

from autotelic.goals import (
    CurriculumConfig,
    EpisodeOutcome,
    GoalDaemon,
    InjectionRejected,
    MemoryStateStore,
    SamplerConfig,
    StateStore,
)
from autotelic.goals.daemon import INJECTIONS_KEY, REGISTRY_KEY
from autotelic.goals.state import STATE_PREFIX
from autotelic.testing.simulated import SimulatedLearner, playground_sim_goals, simulate
from tests.goals_fixtures import PLAYGROUND, ManualClock, RecordingStore, saved

SIM = playground_sim_goals()
TEXTS = [g.text for g in SIM]
CONFIG = CurriculumConfig(
    configured_goals=TEXTS, seed=11, sampler=SamplerConfig(balance="goal")
)  # per goal: "nothing learnt" is then one uniform distribution


def trained(estimator: str, episodes: int = 600) -> GoalDaemon:
    config = CONFIG.model_copy(update={"estimator": estimator})
    daemon = GoalDaemon(config, goal_space=PLAYGROUND)
    simulate(daemon, SimulatedLearner(SIM, seed=11), episodes=episodes)
    return daemon


def shaped(estimator: str, store: StateStore | None = None) -> GoalDaemon:
    """A daemon whose sampling distribution LP has made clearly non-uniform."""
    config = CONFIG.model_copy(update={"estimator": estimator})
    daemon = GoalDaemon(config, store=store, goal_space=PLAYGROUND)
    learner = SimulatedLearner(SIM, seed=11)
    for _ in range(40):
        simulate(daemon, learner, episodes=100)
        probs = daemon.probabilities().values()
        if max(probs) > 2 * min(probs):
            return daemon
    raise AssertionError("LP never shaped the distribution")


def checkpointed(daemon: GoalDaemon) -> dict[str, Any]:
    """``daemon.state_dict()`` as it comes back from a checkpoint file."""
    state: dict[str, Any] = json.loads(json.dumps(daemon.state_dict()))
    return state


@pytest.mark.parametrize("estimator", ["goal", "bucket"])
def test_a_checkpoint_restores_the_learning_state_exactly(estimator: str) -> None:
    store = MemoryStateStore()
    daemon = shaped(estimator, store)
    restarted = GoalDaemon(daemon.config, store=store, goal_space=PLAYGROUND)
    restarted.load_state_dict(checkpointed(daemon))
    assert restarted.state_dict() == daemon.state_dict()
    assert restarted.episodes == daemon.episodes
    assert restarted.stats(detail=True) == daemon.stats(detail=True)
    assert restarted.probabilities() == pytest.approx(daemon.probabilities(), abs=0, rel=1e-12)
    assert [a.goal for a in restarted.next_goals(50)] == [a.goal for a in daemon.next_goals(50)]


def test_a_daemon_restored_from_the_store_alone_keeps_goals_and_injections_but_learns_afresh() -> (
    None
):
    store = MemoryStateStore()
    daemon = shaped("goal", store)
    daemon.report(
        EpisodeOutcome("Grow cow", "configured", None, True, 8, ["Grow cow", "Grow tiger"], 9)
    )
    injection = daemon.inject("Grow lion", episodes=3, priority=1)
    restarted = GoalDaemon(daemon.config, store=store, goal_space=PLAYGROUND)
    assert restarted.goals() == daemon.goals()
    assert "Grow tiger" in [r.text for r in restarted.goals()]
    assert restarted.injection(injection.id) == daemon.injection(injection.id)
    never_trained = GoalDaemon(daemon.config, goal_space=PLAYGROUND)
    assert restarted.state_dict()["learning"] == never_trained.state_dict()["learning"]
    assert restarted.episodes == 0
    assert len(set(restarted.probabilities().values())) == 1  # nothing learnt: uniform


def test_the_store_gets_goals_and_injections_as_they_change_and_never_the_learning_state() -> None:
    store = RecordingStore()
    daemon = GoalDaemon(
        CurriculumConfig(configured_goals=["Grow carrot"]), store=store, goal_space=PLAYGROUND
    )
    assert [g["text"] for g in saved(store, REGISTRY_KEY)["goals"]] == ["Grow carrot"]
    daemon.report(EpisodeOutcome("Grow carrot", "configured", None, True, 4, ["Grasp carrot"]))
    assert [g["text"] for g in saved(store, REGISTRY_KEY)["goals"]] == [
        "Grow carrot",
        "Grasp carrot",
    ]
    injection = daemon.inject("Grow cow")
    assert [i["id"] for i in saved(store, INJECTIONS_KEY)["active"]] == [injection.id]
    writes = len(store.written)
    for _ in range(500):  # episodes that change neither goals nor injections
        daemon.report(EpisodeOutcome("Grow carrot", "configured", None, False, 6))
    assert len(store.written) == writes
    daemon.persist()
    assert set(store.written) == {REGISTRY_KEY, INJECTIONS_KEY}


def test_a_learning_state_an_older_version_left_in_the_store_is_ignored() -> None:
    """Older daemons also wrote their learning state to the store; only checkpoints count now."""
    store = MemoryStateStore()
    store.put_state(
        STATE_PREFIX + "learning", trained("goal", episodes=50).state_dict()["learning"]
    )
    restarted = GoalDaemon(CONFIG, store=store, goal_space=PLAYGROUND)
    assert restarted.episodes == 0
    assert len(set(restarted.probabilities().values())) == 1


def test_loading_a_checkpoint_replaces_learning_but_merges_goals_and_injections() -> None:
    """The store may be newer than the checkpoint: what it knows stays known."""
    store = MemoryStateStore()
    daemon = GoalDaemon(CONFIG, store=store, goal_space=PLAYGROUND)
    simulate(daemon, SimulatedLearner(SIM, seed=11), episodes=200)
    checkpoint = checkpointed(daemon)
    daemon.report(
        EpisodeOutcome("Grow cow", "configured", None, True, 8, ["Grow cow", "Grow tiger"], 9)
    )
    injection = daemon.inject("Grow lion", episodes=2)
    restarted = GoalDaemon(CONFIG, store=store, goal_space=PLAYGROUND)
    restarted.load_state_dict(checkpoint)
    assert restarted.state_dict()["learning"] == checkpoint["learning"]
    assert restarted.episodes == 200
    assert restarted.goals() == daemon.goals()
    assert "Grow tiger" in [g["text"] for g in saved(store, REGISTRY_KEY)["goals"]]
    assert [a.injection_id for a in restarted.next_goals(2)] == [injection.id] * 2


def test_a_state_with_the_old_category_windows_still_loads() -> None:
    """Before they were a WindowedLP, category windows were saved as plain lists."""
    daemon = trained("bucket", episodes=400)
    state = checkpointed(daemon)
    windows = state["learning"].pop("category_windows")
    state["learning"]["windows"] = windows["outcomes"]
    config = daemon.config.model_copy(update={"stats_window": 50})
    fresh = GoalDaemon(config, goal_space=PLAYGROUND)
    fresh.load_state_dict(state)
    for name, stats in fresh.stats().categories.items():
        kept = windows["outcomes"].get(name, [])[-50:]
        assert stats.episodes == len(kept)
        assert stats.success_rate == (float(np.mean(kept)) if kept else 0.0)
    same = GoalDaemon(daemon.config, goal_space=PLAYGROUND)
    same.load_state_dict(state)
    assert same.stats() == daemon.stats()


def test_a_checkpoint_of_another_version_is_refused() -> None:
    state = checkpointed(trained("goal", episodes=10))
    state["version"] = 99
    with pytest.raises(ValueError, match="version 99"):
        GoalDaemon(CONFIG, goal_space=PLAYGROUND).load_state_dict(state)


def test_state_is_json_and_msgpack_able() -> None:
    daemon = trained("goal", episodes=100)
    daemon.inject("Grow cow", episodes=2, ttl=30)
    state = daemon.state_dict()
    assert json.loads(json.dumps(state)) == state
    assert msgpack.unpackb(msgpack.packb(state), strict_map_key=False) == state


def test_restart_keeps_discovered_goals_and_their_first_sighting() -> None:
    store, clock = MemoryStateStore(), ManualClock()
    config = CurriculumConfig(configured_goals=["Grow carrot"])
    daemon = GoalDaemon(config, store=store, clock=clock, goal_space=PLAYGROUND)
    daemon.report(EpisodeOutcome("Grow carrot", "configured", None, True, 4, ["Grasp carrot"], 3))
    first = {r.text: r for r in daemon.goals()}
    clock.advance(100)
    restarted = GoalDaemon(config, store=store, clock=clock, goal_space=PLAYGROUND)
    assert {r.text: r for r in restarted.goals()} == first
    assert first["Grasp carrot"].added_episode == 3


def test_a_changed_estimator_starts_afresh_instead_of_failing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    checkpoint = checkpointed(trained("goal", episodes=50))
    bucket = GoalDaemon(CONFIG.model_copy(update={"estimator": "bucket"}), goal_space=PLAYGROUND)
    bucket.load_state_dict(checkpoint)
    assert "starts afresh" in caplog.text
    assert bucket.episodes == 50
    assert len(set(bucket.probabilities().values())) == 1  # nothing learnt yet: uniform


def test_stats_per_category_without_goal_text_and_per_goal_detail() -> None:
    config = CurriculumConfig(configured_goals=["Grow carrot", "Grow potato", "Grasp cow"])
    daemon = GoalDaemon(config, goal_space=PLAYGROUND)
    for success in (False, False, True, True):
        daemon.report(EpisodeOutcome("Grow carrot", "configured", None, success, 4))
    daemon.report(EpisodeOutcome("Grasp cow", "configured", None, True, 2))
    stats = daemon.stats()
    assert set(stats.categories) == {
        "grasp",
        "grow_plant",
        "grow_herbivore",
        "grow_carnivore",
        "grow_furniture",
    }
    plant = stats.categories["grow_plant"]
    assert (plant.goals, plant.episodes, plant.success_rate, plant.lp) == (2, 4, 0.5, 1.0)
    assert stats.categories["grasp"].success_rate == 1.0
    assert stats.categories["grow_carnivore"].episodes == 0
    assert sum(c.sample_share for c in stats.categories.values()) == pytest.approx(1.0)
    assert stats.goals is None
    assert stats.episodes == 5
    detail = {g.goal: g for g in daemon.stats(detail=True).goals or []}
    assert set(detail) == {"Grow carrot", "Grow potato", "Grasp cow"}
    assert (detail["Grow carrot"].attempts, detail["Grow carrot"].successes) == (4, 2)
    assert detail["Grow carrot"].lp == 1.0
    assert detail["Grow carrot"].probability > detail["Grow potato"].probability
    assert sum(g.probability for g in detail.values()) == pytest.approx(1.0)
    json.dumps(daemon.stats(detail=True).to_dict())


def test_next_goals_count_is_checked() -> None:
    daemon = GoalDaemon(CurriculumConfig(configured_goals=["Grow carrot"]), goal_space=PLAYGROUND)
    assert daemon.next_goals(0) == []
    assert [a.goal for a in daemon.next_goals(3)] == ["Grow carrot"] * 3
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="count >= 0"):
            daemon.next_goals(bad)  # type: ignore[arg-type]


class FailingStore(MemoryStateStore):
    """A store whose disk is full."""

    def put_state(self, key: str, value: Any) -> None:
        raise OSError("no space left on device")


def test_a_failing_store_rejects_injections_but_collection_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = CurriculumConfig(configured_goals=["Grow carrot"])
    daemon = GoalDaemon(config, store=FailingStore(), goal_space=PLAYGROUND)
    with pytest.raises(InjectionRejected, match="could not be stored: no space left"):
        daemon.inject("Grow cow")
    assert daemon.stats().injections_active == 0
    (assignment,) = daemon.next_goals(1)
    daemon.report(assignment.outcome(success=True, steps=3, achieved_goals=["Grasp carrot"]))
    assert "no space left" in caplog.text
    assert "Grasp carrot" in [r.text for r in daemon.goals()]


def test_restored_probabilities_are_a_distribution_over_known_goals() -> None:
    daemon = trained("goal", episodes=200)
    probs = np.array(list(daemon.probabilities().values()))
    assert probs.sum() == pytest.approx(1.0)
    floor = daemon.config.sampler.floor / len(probs)
    assert probs.min() >= floor - 1e-12
