"""Goal registry: validation with the goal space's reasons, sources, discovery exactly once."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autotelic.core import GoalSpace
from autotelic.envs.playground import GoalError, PlaygroundTextEnv, all_goals, parse_goal
from autotelic.goals import (
    CurriculumConfig,
    GoalDaemon,
    GoalRegistry,
    InvalidGoalError,
    InvalidOutcomeError,
    MemoryStateStore,
)
from autotelic.goals.assignments import EpisodeOutcome
from tests.goals_fixtures import PLAYGROUND, ManualClock, oracle_policy, play, random_policy


def test_the_playground_goal_space_is_a_goal_space_and_canonicalises() -> None:
    space = PLAYGROUND
    assert isinstance(space, GoalSpace)
    parsed = space.parse("  grow   CARROT ")
    assert (parsed.text, parsed.category) == ("Grow carrot", "grow_plant")
    assert space.parse("Grow lion").category == "grow_carnivore"
    assert space.parse("grasp sofa").category == "grasp"
    assert set(space.categories()) >= {"grasp", "grow_plant", "grow_furniture"}
    assert space.goals("train") == all_goals("train")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "empty goal"),
        ("Eat carrot", "unknown verb"),
        ("Grow", "names no object"),
        ("Grow unicorn", "unknown object 'unicorn'"),
        ("Grow carrot seed", "not its growth stage"),
        ("Grasp water", "'water' is not a goal object"),
    ],
)
def test_invalid_goals_rejected_with_the_goal_spaces_reason(text: str, fragment: str) -> None:
    with pytest.raises(InvalidGoalError) as caught:
        GoalDaemon(CurriculumConfig(), goal_space=PLAYGROUND).validate(text)
    assert fragment in caught.value.reason
    assert fragment in str(caught.value)
    with pytest.raises(GoalError, match=fragment[:10]):
        parse_goal(text)


def test_non_string_goal_rejected_with_reason() -> None:
    with pytest.raises(InvalidGoalError, match="a goal is a string"):
        GoalDaemon(CurriculumConfig(), goal_space=PLAYGROUND).validate(42)  # type: ignore[arg-type]


def test_invalid_configured_goal_fails_at_start_naming_the_goal() -> None:
    with pytest.raises(InvalidGoalError, match="Grow unicorn"):
        GoalDaemon(
            CurriculumConfig(configured_goals=["Grow carrot", "Grow unicorn"]),
            goal_space=PLAYGROUND,
        )


def test_config_defaults_to_the_goal_spaces_training_goals_and_explicit_lists_are_canonicalised() -> (
    None
):
    daemon = GoalDaemon(CurriculumConfig(), goal_space=PLAYGROUND)
    assert [r.text for r in daemon.goals()] == all_goals("train")
    assert {r.source for r in daemon.goals()} == {"configured"}
    listed = GoalDaemon(
        CurriculumConfig(configured_goals=["grow carrot", "Grow carrot"]), goal_space=PLAYGROUND
    )
    assert [r.text for r in listed.goals()] == ["Grow carrot"]


def test_config_without_goals_and_discovery_is_refused() -> None:
    with pytest.raises(ValueError, match="no goals"):
        CurriculumConfig(configured_goals=[], discover=False)


def test_discovered_goals_enter_once_with_first_seen_time_and_episode() -> None:
    clock = ManualClock()
    daemon = GoalDaemon(
        CurriculumConfig(configured_goals=["Grow carrot"]), clock=clock, goal_space=PLAYGROUND
    )
    clock.advance(5)
    new = daemon.report(
        EpisodeOutcome(
            goal="Grow carrot",
            source="configured",
            injection_id=None,
            success=True,
            steps=4,
            achieved_goals=["Grasp carrot", "Grow carrot", "Grasp carrot"],
            episode_id=7,
        )
    )
    assert [r.text for r in new] == ["Grasp carrot"]
    assert new[0].source == "discovered"
    assert (new[0].added_at, new[0].added_episode) == (clock.now, 7)
    clock.advance(5)
    again = daemon.report(
        EpisodeOutcome("Grow carrot", "configured", None, True, 4, ["Grasp carrot"], 8)
    )
    assert again == []
    records = {r.text: r for r in daemon.goals()}
    assert list(records) == ["Grow carrot", "Grasp carrot"]
    assert records["Grasp carrot"].added_episode == 7
    assert records["Grow carrot"].source == "configured"  # achieved, but known already
    assert daemon.stats().goals_by_source == {"configured": 1, "discovered": 1, "injected": 0}


def test_discovery_off_keeps_the_registry_fixed() -> None:
    daemon = GoalDaemon(
        CurriculumConfig(configured_goals=["Grow carrot"], discover=False), goal_space=PLAYGROUND
    )
    daemon.report(EpisodeOutcome("Grow carrot", "configured", None, True, 4, ["Grasp carrot"]))
    assert [r.text for r in daemon.goals()] == ["Grow carrot"]


def test_invalid_achieved_goal_is_skipped_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    daemon = GoalDaemon(CurriculumConfig(configured_goals=["Grow carrot"]), goal_space=PLAYGROUND)
    new = daemon.report(
        EpisodeOutcome("Grow carrot", "configured", None, False, 6, ["Fly away", "Grasp cow"])
    )
    assert [r.text for r in new] == ["Grasp cow"]
    assert "Fly away" in caplog.text


@pytest.mark.parametrize(
    ("outcome", "fragment"),
    [
        (EpisodeOutcome("Grow unicorn", "configured", None, True, 1), "unknown object"),
        (EpisodeOutcome("Grow carrot", "configured", None, True, -1), "steps"),
        (EpisodeOutcome("Grow carrot", "configured", None, True, 1.5), "steps"),  # type: ignore[arg-type]
        (EpisodeOutcome("Grow carrot", "configured", None, True, 1, "Grow carrot"), "list"),  # type: ignore[arg-type]
        (EpisodeOutcome("Grow carrot", "configured", None, True, 1, None), "list"),  # type: ignore[arg-type]
        (EpisodeOutcome("Grow carrot", "configured", None, True, 1, [], "7"), "episode_id"),  # type: ignore[arg-type]
        (EpisodeOutcome("Grow carrot", "injected", 7, True, 1), "injection_id"),  # type: ignore[arg-type]
    ],
)
def test_impossible_outcomes_are_refused_with_reasons(
    outcome: EpisodeOutcome, fragment: str
) -> None:
    daemon = GoalDaemon(CurriculumConfig(configured_goals=["Grow carrot"]), goal_space=PLAYGROUND)
    with pytest.raises(InvalidOutcomeError, match=fragment):
        daemon.report(outcome)
    assert daemon.episodes == 0


def test_real_episodes_grow_the_registry_from_what_the_agent_achieved() -> None:
    """The autotelic loop on the real env: start from one goal, discover the rest."""
    daemon = GoalDaemon(
        CurriculumConfig(configured_goals=["Grow cow"], seed=3), goal_space=PLAYGROUND
    )
    env = PlaygroundTextEnv()
    achieved_all: set[str] = set()
    for episode in range(40):
        assignment = daemon.next_goals(1)[0]
        policy = oracle_policy if episode % 2 == 0 else random_policy(episode)
        success, steps, achieved = play(env, assignment, policy, seed=episode)
        achieved_all.update(achieved)
        daemon.report(
            assignment.outcome(
                success=success, steps=steps, achieved_goals=achieved, episode_id=episode
            )
        )
    texts = [r.text for r in daemon.goals()]
    assert len(texts) == len(set(texts))
    assert set(texts) == achieved_all | {"Grow cow"}
    assert any(t.startswith("Grow ") and t != "Grow cow" for t in texts)  # a plant it grew
    discovered = [r for r in daemon.goals() if r.source == "discovered"]
    assert discovered and all(r.added_episode is not None for r in discovered)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.sampled_from(all_goals("all", include_impossible=True)), max_size=30))
def test_registry_state_round_trip_and_merge_keep_every_goal_once(goals: list[str]) -> None:
    first = GoalRegistry(PLAYGROUND)
    for i, goal in enumerate(goals):
        first.add(goal, "discovered", time=float(i), episode=i)
    store = MemoryStateStore()
    store.put_state("r", first.state_dict())
    second = GoalRegistry(PLAYGROUND)
    second.add("Grow carrot", "configured", time=-1.0)
    saved = store.get_state("r")
    assert saved is not None
    second.load_state_dict(saved)
    assert set(second.goals()) == set(goals) | {"Grow carrot"}
    assert len(second.goals()) == len(set(second.goals()))
    assert second.get("Grow carrot").source == "configured"  # type: ignore[union-attr]
    for goal in set(goals) - {"Grow carrot"}:
        assert second.get(goal) == first.get(goal)
