"""Hindsight relabeling and n-step returns: exact hand-built cases and properties.

The reference below computes each expected row from the validated ``Episode``
model in closed form (window length, then sums), independently of the
incremental loop in ``autotelic.storage.her``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autotelic.core import TransitionBatch
from autotelic.core.time_limit import TIME_LIMITS, TimeLimit
from autotelic.envs.playground import achieved as env_predicate
from autotelic.storage import Episode, EpisodeStore, Predicate, ReplaySampler
from autotelic.storage.her import achievement_events, n_step, relabel_candidates
from autotelic.storage.records import EpisodeView
from autotelic.testing.memory_store import MemoryEpisodeStore
from tests.storage_fixtures import hand_episode

GOALS = ["Grasp cow", "Grasp lion", "Grow carrot", "Grow deer", "Grasp door"]
ROW = re.compile(r"e(\d+):state (\d+)")


# -- exact hand-built cases ------------------------------------------------------------------------


def _five_steps() -> Episode:
    # goal Grasp cow never achieved; Grasp lion at step 1, Grow carrot at 3; time limit at 4.
    return hand_episode([[], ["Grasp lion"], [], ["Grow carrot"], []], goal="Grasp cow")


def test_future_candidates_are_the_goals_achieved_at_or_after_the_step():
    events = achievement_events(EpisodeView.of(_five_steps()))
    assert events == [(1, "Grasp lion"), (3, "Grow carrot")]
    assert relabel_candidates(events, 0, "future") == ["Grasp lion", "Grow carrot"]
    assert relabel_candidates(events, 1, "future") == ["Grasp lion", "Grow carrot"]  # at t itself
    assert relabel_candidates(events, 2, "future") == ["Grow carrot"]
    assert relabel_candidates(events, 4, "future") == []
    # final: the last achieving step's goals, only for rows at or before that step
    # (the issue "Learning that holds": before, step 4 was relabeled with Grow carrot,
    # achieved at step 3, which its action cannot have contributed to).
    assert relabel_candidates(events, 3, "final") == ["Grow carrot"]
    assert relabel_candidates(events, 0, "final") == ["Grow carrot"]
    assert relabel_candidates(events, 4, "final") == []
    assert relabel_candidates(events, 4, "episode") == ["Grasp lion", "Grow carrot"]
    with pytest.raises(ValueError, match="unknown HER strategy 'past'"):
        relabel_candidates(events, 0, "past")  # type: ignore[arg-type]


def test_own_goal_is_never_a_relabel_candidate():
    ep = hand_episode(
        [["Grasp lion"], ["Grasp cow", "Grow deer"]], goal="Grasp cow", terminated_last=True
    )
    events = achievement_events(EpisodeView.of(ep))
    assert events == [(0, "Grasp lion"), (1, "Grow deer")]


@pytest.mark.parametrize(
    ("t", "goal", "relabeled", "expected"),
    [
        # Grasp lion achieved at step 1: r = 0 + 0.5 * 1, two steps summed, terminated.
        (0, "Grasp lion", True, (0.5, 0.25, True, 2)),
        # Achieved at the sampled step itself: one step, reward 1.
        (1, "Grasp lion", True, (1.0, 0.5, True, 2)),
        (2, "Grow carrot", True, (0.5, 0.25, True, 4)),
        # Not within n = 3 steps: nothing earned, bootstraps from s_3.
        (0, "Grow carrot", True, (0.0, 0.125, False, 3)),
        # Grasp lion no longer achievable after step 1: the window runs to the end.
        (3, "Grasp lion", True, (0.0, 0.25, False, 5)),
        # Own goal, time limit at the last step: under `bootstrap`, truncation is not
        # termination.
        (4, "Grasp cow", False, (0.0, 0.5, False, 5)),
        (2, "Grasp cow", False, (0.0, 0.125, False, 5)),
    ],
)
def test_n_step_sums_discounts_and_termination_are_exact(t, goal, relabeled, expected):
    view = EpisodeView.of(_five_steps())
    got = n_step(view, t, goal, relabeled, 3, 0.5, env_predicate, "bootstrap")
    assert (got.reward, got.discount, got.terminated, got.next_index) == expected
    # Counting the cut as terminal changes exactly the rows whose window reaches it.
    reaches_cut = expected[3] == 5 and not expected[2]
    for mode in ("terminal", "observed"):
        got = n_step(view, t, goal, relabeled, 3, 0.5, env_predicate, mode)
        assert (got.reward, got.discount, got.next_index) == (*expected[:2], expected[3])
        assert got.terminated == (expected[2] or reaches_cut)


@pytest.mark.parametrize("mode", TIME_LIMITS)
def test_a_time_limit_cut_is_terminal_unless_bootstrapped_for_own_goal_and_relabels(mode):
    view = EpisodeView.of(_five_steps())  # cut by its time limit after step 4
    bootstraps = mode == "bootstrap"
    own = n_step(view, 3, "Grasp cow", False, 3, 0.9, env_predicate, mode)
    assert (own.terminated, own.next_index) == (not bootstraps, 5)
    relabel = n_step(view, 4, "Grasp lion", True, 3, 0.9, env_predicate, mode)
    assert (relabel.terminated, relabel.next_index, relabel.reward) == (not bootstraps, 5, 0.0)
    # A window that ends before the cut bootstraps in every mode.
    early = n_step(view, 0, "Grow carrot", True, 3, 0.9, env_predicate, mode)
    assert (early.terminated, early.next_index) == (False, 3)


@pytest.mark.parametrize("mode", TIME_LIMITS)
def test_an_episode_ended_by_its_own_goal_bootstraps_a_relabel_in_every_mode(mode):
    """For the relabeled goal nothing ended there: no time limit, no termination."""
    ep = hand_episode(
        [["Grow deer"], [], ["Grasp cow"]],
        goal="Grasp cow",
        terminated_last=True,
        truncated_last=False,
    )
    got = n_step(EpisodeView.of(ep), 1, "Grow deer", True, 3, 0.9, env_predicate, mode)
    assert (got.terminated, got.next_index, got.reward) == (False, 3, 0.0)


def test_own_goal_uses_the_recorded_reward_and_termination():
    ep = hand_episode([[], [], ["Grasp cow"]], goal="Grasp cow", terminated_last=True)
    view = EpisodeView.of(ep)
    got = n_step(view, 1, "Grasp cow", False, 3, 0.9, env_predicate)
    assert got.reward == pytest.approx(0.9) and got.discount == pytest.approx(0.81)
    assert got.terminated and got.next_index == 3
    # A relabel replayed through the end of an episode that ended for its own goal
    # is not terminated for the relabeled goal: it bootstraps from the final state.
    got = n_step(view, 1, "Grow deer", True, 3, 0.9, env_predicate)
    assert (got.reward, got.terminated, got.next_index) == (0.0, False, 3)


def test_a_final_state_without_actions_is_absorbing():
    ep = hand_episode(
        [[], []], goal="Grasp cow", terminated_last=True, final_admissible=[], rewards=[0.0, 1.0]
    )
    got = n_step(EpisodeView.of(ep), 0, "Grasp lion", True, 3, 0.9, env_predicate)
    assert got.terminated and got.next_index == 2 and got.reward == 0.0


def test_the_predicate_parameter_decides_relabeled_rewards():
    ep = hand_episode([["grasp LION"], []], goal="Grasp cow")
    view = EpisodeView.of(ep)

    def case_blind(goal, achieved_goals):
        return goal.lower() in {g.lower() for g in achieved_goals}

    assert n_step(view, 0, "Grasp lion", True, 1, 0.9, env_predicate).reward == 0.0
    assert n_step(view, 0, "Grasp lion", True, 1, 0.9, case_blind).reward == 1.0


# -- properties over random episodes --------------------------------------------------------------


@dataclass
class Spec:
    goal: str
    achieved: list[list[str]]
    terminated: bool
    truncated: bool


@st.composite
def episode_specs(draw):
    goal = draw(st.sampled_from(GOALS))
    length = draw(st.integers(1, 10))
    achieved = [
        draw(st.lists(st.sampled_from(GOALS), max_size=3, unique=True)) for _ in range(length)
    ]
    for j, goals in enumerate(achieved):
        if goal in goals:  # the env ends an episode when its goal holds
            return Spec(goal, achieved[: j + 1], True, False)
    return Spec(goal, achieved, False, draw(st.booleans()))


def _build(specs: list[Spec]) -> list[Episode]:
    return [
        hand_episode(
            s.achieved,
            goal=s.goal,
            terminated_last=s.terminated,
            truncated_last=s.truncated,
            tag=f"e{i}:",
        )
        for i, s in enumerate(specs)
    ]


def expected_target(
    ep: Episode,
    t: int,
    goal: str,
    relabeled: bool,
    n: int,
    gamma: float,
    predicate: Predicate = env_predicate,
    time_limit: TimeLimit = "bootstrap",
) -> tuple[float, float, bool, int]:
    """Closed form: the window is cut at the first step where the goal holds; a window
    that reaches the episode's time-limit cut is terminal unless ``time_limit`` is
    ``bootstrap``."""
    steps = ep.steps
    horizon = min(n, ep.length - t)
    if relabeled:
        hits = [predicate(goal, steps[j].achieved_goals) for j in range(t, t + horizon)]
        rewards = [1.0 if h else 0.0 for h in hits]
    else:
        hits = [steps[j].terminated for j in range(t, t + horizon)]
        rewards = [steps[j].reward for j in range(t, t + horizon)]
    k = hits.index(True) + 1 if any(hits) else horizon
    reward = sum(gamma**j * rewards[j] for j in range(k))
    cut = t + k == ep.length and steps[-1].truncated and time_limit != "bootstrap"
    return reward, gamma**k, any(hits) or cut, t + k


def strategy_goals(ep: Episode, t: int, strategy: str) -> set[str]:
    own = ep.goal
    per_step = [[g for g in s.achieved_goals if g != own] for s in ep.steps]
    if strategy == "future":
        return {g for goals in per_step[t:] for g in goals}
    if strategy == "episode":
        return {g for goals in per_step for g in goals}
    last = max((j for j, goals in enumerate(per_step) if goals), default=-1)
    return set(per_step[last]) if last >= t else set()


@given(
    spec=episode_specs(),
    n=st.integers(1, 5),
    gamma=st.floats(0.5, 1.0),
    mode=st.sampled_from(TIME_LIMITS),
    data=st.data(),
)
def test_n_step_matches_the_closed_form(spec, n, gamma, mode, data):
    (ep,) = _build([spec])
    view = EpisodeView.of(ep)
    t = data.draw(st.integers(0, ep.length - 1))
    goal = data.draw(st.sampled_from(GOALS))
    relabeled = goal != ep.goal
    got = n_step(view, t, goal, relabeled, n, gamma, env_predicate, mode)
    reward, discount, terminated, nxt = expected_target(
        ep, t, goal, relabeled, n, gamma, time_limit=mode
    )
    assert got.reward == pytest.approx(reward) and got.discount == pytest.approx(discount)
    assert (got.terminated, got.next_index) == (terminated, nxt)
    if n == 1 and relabeled and mode == "bootstrap":
        # reward 1 and termination exactly where the predicate holds
        holds = goal in ep.steps[t].achieved_goals
        assert (got.reward == 1.0) == holds == got.terminated


@given(spec=episode_specs(), data=st.data())
def test_candidates_follow_each_strategy(spec, data):
    (ep,) = _build([spec])
    events = achievement_events(EpisodeView.of(ep))
    t = data.draw(st.integers(0, ep.length - 1))
    for strategy in ("future", "final", "episode"):
        candidates = relabel_candidates(events, t, strategy)
        assert set(candidates) == strategy_goals(ep, t, strategy)
        assert ep.goal not in candidates


def check_batch(
    batch: TransitionBatch,
    episodes: list[Episode],
    *,
    her_ratio: float,
    strategy: str,
    n: int,
    gamma: float,
    predicate: Predicate = env_predicate,
    time_limit: TimeLimit = "observed",
) -> None:
    for i in range(len(batch)):
        match = ROW.search(batch.observations[i])
        assert match is not None
        ep, t = episodes[int(match.group(1))], int(match.group(2))
        step, goal = ep.steps[t], batch.goals[i]
        assert batch.observations[i] == step.observation
        assert batch.candidates[i] == step.admissible_actions
        assert batch.actions[i] == step.action and batch.policy_versions[i] == step.policy_version
        if batch.relabeled[i]:
            assert goal != ep.goal and goal in strategy_goals(ep, t, strategy)
        else:
            assert goal == ep.goal
            if her_ratio == 1.0:
                assert not strategy_goals(ep, t, strategy)  # nothing to relabel with
        reward, discount, terminated, nxt = expected_target(
            ep, t, goal, bool(batch.relabeled[i]), n, gamma, predicate, time_limit
        )
        assert batch.rewards[i] == pytest.approx(reward, rel=1e-6, abs=1e-6)
        assert batch.discounts[i] == pytest.approx(discount, rel=1e-6)
        assert bool(batch.terminated[i]) == terminated
        states = [(s.observation, s.admissible_actions) for s in ep.steps]
        states.append((ep.final_observation, ep.final_admissible_actions))
        assert batch.next_observations[i] == states[nxt][0]
        assert batch.next_candidates[i] == states[nxt][1]


@settings(max_examples=60, deadline=None)
@given(
    specs=st.lists(episode_specs(), min_size=1, max_size=6),
    her_ratio=st.sampled_from([0.0, 0.5, 0.8, 1.0]),
    strategy=st.sampled_from(["future", "final", "episode"]),
    n=st.integers(1, 4),
    gamma=st.floats(0.5, 1.0),
    mode=st.sampled_from(TIME_LIMITS),
    seed=st.integers(0, 2**32 - 1),
)
def test_sampled_batches_are_correct_relabels_with_exact_targets(
    specs, her_ratio, strategy, n, gamma, mode, seed
):
    episodes = _build(specs)
    store = MemoryEpisodeStore()
    store.put_many(episodes)
    sampler = ReplaySampler(
        store,
        predicate=env_predicate,
        her_ratio=her_ratio,
        her_negatives=0.0,  # positive relabels only: check_batch's closed form
        strategy=strategy,
        n_step=n,
        gamma=gamma,
        time_limit=mode,
        rng=seed,
    )
    for _ in range(2):  # the second batch reads the events the first one listed
        batch = sampler.sample(48)
        assert len(batch) == 48
        check_batch(
            batch, episodes, her_ratio=her_ratio, strategy=strategy, n=n, gamma=gamma,
            time_limit=mode,
        )  # fmt: skip
        if her_ratio == 0.0:
            assert not batch.relabeled.any()


@settings(max_examples=20, deadline=None)
@given(
    specs=st.lists(episode_specs(), min_size=1, max_size=6),
    strategy=st.sampled_from(["future", "final", "episode"]),
    seed=st.integers(0, 2**32 - 1),
)
def test_events_listed_once_per_episode_give_the_batches_of_events_listed_afresh(
    specs, strategy, seed
):
    store = MemoryEpisodeStore()
    store.put_many(_build(specs))
    kept, afresh = (
        ReplaySampler(
            store,
            predicate=env_predicate,
            her_negatives=0.0,
            strategy=strategy,
            her_ratio=0.8,
            rng=seed,
        )
        for _ in range(2)
    )
    afresh.keep_events = False  # lists every drawn episode's events in each batch
    for _ in range(4):
        a, b = kept.sample(32), afresh.sample(32)
        assert a.goals == b.goals and a.observations == b.observations
        np.testing.assert_array_equal(a.rewards, b.rewards)
        np.testing.assert_array_equal(a.relabeled, b.relabeled)
    assert kept._events  # the kept sampler did list them once


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    specs=st.lists(episode_specs(), min_size=1, max_size=8),
    strategy=st.sampled_from(["future", "final", "episode"]),
    seed=st.integers(0, 2**32 - 1),
)
def test_lmdb_and_memory_sources_give_identical_batches(tmp_path_factory, specs, strategy, seed):
    episodes = _build(specs)
    memory = MemoryEpisodeStore()
    memory.put_many(episodes)
    with EpisodeStore(tmp_path_factory.mktemp("s"), durable=False) as store:
        store.put_many(episodes)
        a = ReplaySampler(
            store, predicate=env_predicate, her_negatives=0.0, strategy=strategy, rng=seed
        ).sample(64)
    b = ReplaySampler(
        memory, predicate=env_predicate, her_negatives=0.0, strategy=strategy, rng=seed
    ).sample(64)
    check_batch(a, episodes, her_ratio=0.8, strategy=strategy, n=3, gamma=0.99)
    for field in ("goals", "observations", "candidates", "next_observations", "next_candidates"):
        assert getattr(a, field) == getattr(b, field)
    for field in ("actions", "rewards", "discounts", "terminated", "relabeled", "policy_versions"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))


def test_the_sampler_requires_the_environments_goal_predicate():
    store = MemoryEpisodeStore()
    store.put_many(_build([Spec("Grasp cow", [["Grasp lion"]], False, True)]))
    with pytest.raises(TypeError, match="predicate"):
        ReplaySampler(store, her_ratio=1.0)  # type: ignore[call-arg]


def test_a_custom_predicate_reaches_the_sampled_batch():
    episodes = _build([Spec("Grasp cow", [["Grasp lion"], [], ["Grow deer"]], False, True)])
    store = MemoryEpisodeStore()
    store.put_many(episodes)

    def never(goal, achieved_goals):
        return False

    playground = ReplaySampler(
        store, predicate=env_predicate, her_negatives=0.0, her_ratio=1.0, rng=0
    ).sample(64)
    assert (
        playground.relabeled.any() and playground.rewards.max() > 0 and playground.terminated.any()
    )
    # Bootstrapped time limits: termination can then only come from the predicate.
    batch = ReplaySampler(
        store, her_ratio=1.0, predicate=never, her_negatives=0.0, time_limit="bootstrap", rng=0
    ).sample(64)
    assert batch.relabeled.any() and batch.rewards.max() == 0 and not batch.terminated.any()
    check_batch(
        batch,
        episodes,
        her_ratio=1.0,
        strategy="future",
        n=3,
        gamma=0.99,
        predicate=never,
        time_limit="bootstrap",
    )


def test_final_never_relabels_a_row_with_a_goal_achieved_before_it():
    """Grasp lion is achieved at step 1 of 5 and nothing after: rows 0 and 1 are relabeled
    with it (row 1 earns the reward: its own action achieved it), rows 2-4 keep their goal."""
    episodes = _build([Spec("Grasp cow", [[], ["Grasp lion"], [], [], []], False, True)])
    store = MemoryEpisodeStore()
    store.put_many(episodes)
    batch = ReplaySampler(
        store,
        predicate=env_predicate,
        her_negatives=0.0,
        her_ratio=1.0,
        strategy="final",
        n_step=1,
        rng=3,
    ).sample(200)
    steps = np.array([int(ROW.search(o).group(2)) for o in batch.observations])  # type: ignore[union-attr]
    assert set(steps.tolist()) == {0, 1, 2, 3, 4}
    np.testing.assert_array_equal(batch.relabeled, steps <= 1)
    assert all(g == "Grasp lion" for g in np.array(batch.goals)[steps <= 1])
    np.testing.assert_array_equal(batch.rewards, (steps == 1).astype(np.float32))


def test_the_sampler_refuses_an_unknown_time_limit_mode():
    store = MemoryEpisodeStore()
    with pytest.raises(ValueError, match="unknown time-limit mode 'ignore'"):
        ReplaySampler(store, predicate=env_predicate, time_limit="ignore")  # type: ignore[arg-type]
