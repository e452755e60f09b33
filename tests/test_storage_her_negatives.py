"""Hindsight negatives, their per-goal balance, and held-out goals kept out of training.

Every store here is a real LMDB store of real Playground-Text episodes (seeded
random policy). Each episode is stored with its own policy version, so a row of a
batch names its episode and the test can check the row against the episode it came
from, with the env's own goal predicate.
"""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pytest

from autotelic.core import Split, TransitionBatch
from autotelic.core.time_limit import steps_left, with_steps_left, with_steps_left_line
from autotelic.envs.playground import ENV_ID, PlaygroundGoalSpace, PlaygroundTextEnv
from autotelic.envs.playground import achieved as predicate
from autotelic.envs.playground.config import PlaygroundConfig
from autotelic.runtime.loop.agent import Agent
from autotelic.runtime.loop.schedules import OffPolicySchedule
from autotelic.storage import EmptyReplayError, Episode, EpisodeBuilder, EpisodeStore, ReplaySampler
from autotelic.storage.config import ReplayConfig
from autotelic.storage.her import n_step, relabel_candidates
from autotelic.storage.records import EpisodeView
from tests.storage_fixtures import hand_episode

SPACE = PlaygroundGoalSpace()
TEST_GOALS = frozenset(SPACE.goals("test"))
_ENVS: dict[str, PlaygroundTextEnv] = {}


def episode(seed: int, goal: str, *, scenes: Split = "train", observed: bool = False) -> Episode:
    """A real episode of ``goal`` under a seeded random policy, in a scene of the objects
    of split ``scenes``, its observations showing the steps left when ``observed`` (as the
    collector stores them); its policy version is its seed (rows name their episode)."""
    env = _ENVS.get(scenes)
    if env is None:
        env = _ENVS[scenes] = PlaygroundTextEnv(PlaygroundConfig(id=ENV_ID, split=scenes))
    raw, info = env.reset(seed=seed, options={"goal": goal})
    horizon = info["horizon"] if observed else 0
    obs = with_steps_left(raw, 0, horizon)
    rng = random.Random(seed)
    builder = EpisodeBuilder(
        goal=info["goal"],
        goal_category=info["goal_category"],
        goal_source="configured",
        env_id=ENV_ID,
        scene_seed=info["scene_seed"],
        observation=obs,
        admissible_actions=info["admissible_actions"],
        started_at=1.7e9 + seed,
    )
    while not builder.done:
        action = rng.randrange(len(info["admissible_actions"]))
        raw, r, terminated, truncated, info = env.step(action)
        obs = with_steps_left(raw, builder.length + 1, horizon)
        builder.add_step(
            action, r, terminated, truncated, info["achieved_goals"], seed, obs,
            info["admissible_actions"],
        )  # fmt: skip
    return builder.build(ended_at=1.7e9 + seed + 1)


def train_episodes(count: int, start: int = 0) -> list[Episode]:
    """Grow-plant and Grasp episodes on training goals (long Grow episodes grasp things)."""
    goals = ["Grow carrot", "Grow potato", "Grasp cow", "Grasp door", "Grow berry"]
    return [episode(start + i, goals[i % len(goals)]) for i in range(count)]


def rows_by_episode(batch: TransitionBatch, episodes: dict[int, Episode]) -> list[Episode]:
    return [episodes[int(v)] for v in batch.policy_versions]


def ever_achieved(ep: Episode, goal: str) -> bool:
    return any(predicate(goal, s.achieved_goals) for s in ep.steps)


def kinds(batch: TransitionBatch, owners: list[Episode]) -> list[str]:
    """Each row: own goal, positive relabel (achieved in its episode) or negative."""
    out = []
    for goal, relabeled, ep in zip(batch.goals, batch.relabeled, owners, strict=True):
        if not relabeled:
            out.append("own")
        else:
            out.append("positive" if ever_achieved(ep, goal) else "negative")
    return out


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> EpisodeStore:
    path: Path = tmp_path_factory.mktemp("negatives") / "store"
    with EpisodeStore(path, durable=False) as s:
        s.put_many(train_episodes(120))
    return EpisodeStore(path, readonly=True)


@pytest.fixture(scope="module")
def stored(store: EpisodeStore) -> dict[int, Episode]:
    return {int(ep.steps[0].policy_version): ep for ep in store.iter_episodes()}


def sampler(
    store: EpisodeStore,
    *,
    her_ratio: float = 1.0,
    her_negatives: float = 0.0,
    her_balance: bool = True,
) -> ReplaySampler:
    return ReplaySampler(
        store,
        predicate=predicate,
        goal_space=SPACE,
        her_ratio=her_ratio,
        her_negatives=her_negatives,
        her_balance=her_balance,
        n_step=3,
        gamma=0.9,
        rng=7,
    )


def test_a_negative_is_a_goal_the_episode_never_achieved_of_an_achieved_goals_category(
    store, stored
):
    batch = sampler(store, her_ratio=1.0, her_negatives=1.0).sample(2048)
    owners = rows_by_episode(batch, stored)
    negatives = 0
    for i, ep in enumerate(owners):
        if not batch.relabeled[i]:
            continue
        goal = batch.goals[i]
        negatives += 1
        assert goal != ep.goal and not ever_achieved(ep, goal)
        assert batch.rewards[i] == 0.0
        # Of the category of a goal achieved at or after the row's step.
        step = next(t for t, s in enumerate(ep.steps) if s.observation == batch.observations[i])
        events = [(t, g) for t, s in enumerate(ep.steps) for g in s.achieved_goals if g != ep.goal]
        future = {SPACE.parse(g).category for g in relabel_candidates(events, step, "future")}
        assert SPACE.parse(goal).category in future
    assert negatives > 300  # most rows with a future event got one


def test_without_negatives_every_relabel_is_a_positive(store, stored):
    batch = sampler(store, her_ratio=1.0, her_negatives=0.0).sample(1024)
    found = Counter(kinds(batch, rows_by_episode(batch, stored)))
    assert found["negative"] == 0 and found["positive"] > 300


def test_negatives_take_their_share_of_the_relabeled_rows(store, stored):
    batch = sampler(store, her_ratio=1.0, her_negatives=0.5).sample(4096)
    found = Counter(kinds(batch, rows_by_episode(batch, stored)))
    share = found["negative"] / (found["negative"] + found["positive"])
    assert 0.4 < share < 0.55  # a few negative draws find no goal and keep their own


def _per_goal(batch: TransitionBatch, owners: list[Episode]) -> dict[str, Counter[str]]:
    table: dict[str, Counter[str]] = {}
    for goal, kind in zip(batch.goals, kinds(batch, owners), strict=True):
        if kind != "own":
            table.setdefault(goal, Counter())[kind] += 1
    return table


def _rare(table: dict[str, Counter[str]]) -> Counter[str]:
    """Positives and negatives of the goals with few positives, summed."""
    total: Counter[str] = Counter()
    for counts in table.values():
        if counts["positive"] < 20:
            total.update(counts)
    return total


def test_balance_gives_each_goal_negatives_in_proportion_to_its_positives(store, stored):
    batch = sampler(store, her_ratio=1.0, her_negatives=0.5, her_balance=True).sample(4096)
    table = _per_goal(batch, rows_by_episode(batch, stored))
    frequent = {g: c for g, c in table.items() if c["positive"] >= 40}
    assert len(frequent) >= 5
    for goal, counts in frequent.items():
        share = counts["negative"] / (counts["negative"] + counts["positive"])
        assert 0.35 < share < 0.65, (goal, counts)
    rare = _rare(table)
    assert rare["positive"] > 30 and rare["negative"] < 1.5 * rare["positive"]


def test_without_balance_negatives_are_uniform_over_the_training_goals(store, stored):
    """The counterpart: goals the batch rarely achieves get far more negatives than
    positives (each Grasp goal gets about the same number of negatives)."""
    batch = sampler(store, her_ratio=1.0, her_negatives=0.5, her_balance=False).sample(4096)
    table = _per_goal(batch, rows_by_episode(batch, stored))
    rare = _rare(table)
    assert rare["negative"] > 2 * rare["positive"]


# -- held-out goals ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> tuple[EpisodeStore, dict[int, Episode]]:
    """Training goals pursued among held-out objects (they achieve test goals), training
    episodes, and episodes pursued under test goals (injected, say)."""
    among_test = [episode(1000 + i, g, scenes="test") for i, g in
                  enumerate(["Grasp cow", "Grow carrot", "Grow potato"] * 10)]  # fmt: skip
    pursued_test = [episode(2000 + i, g) for i, g in enumerate(sorted(TEST_GOALS)[:12] * 2)]
    episodes = train_episodes(20, start=3000) + among_test + pursued_test
    assert any(g in TEST_GOALS for ep in among_test for g in ep.achieved_goals)
    path: Path = tmp_path_factory.mktemp("held_out") / "store"
    with EpisodeStore(path, durable=False) as s:
        s.put_many(episodes)
    return EpisodeStore(path, readonly=True), {e.steps[0].policy_version: e for e in episodes}


@pytest.mark.parametrize(("negatives", "balance"), [(0.0, True), (0.5, True), (0.5, False)])
def test_no_test_split_goal_and_no_test_pursued_episode_in_a_training_batch(
    mixed, negatives, balance
):
    source, episodes = mixed
    s = sampler(source, her_ratio=1.0, her_negatives=negatives, her_balance=balance)
    relabeled = 0
    for _ in range(8):
        batch = s.sample(512)
        assert not TEST_GOALS & set(batch.goals)
        assert all(episodes[int(v)].goal not in TEST_GOALS for v in batch.policy_versions)
        relabeled += int(batch.relabeled.sum())
    assert relabeled > 1000


def test_without_the_goal_space_a_test_goal_would_be_relabeled(mixed):
    """The held-out filter is what keeps them out: the same store without it trains on
    them (so the test above could fail)."""
    source, episodes = mixed
    s = ReplaySampler(source, predicate=predicate, her_ratio=1.0, rng=7)
    goals = {g for _ in range(4) for g in s.sample(512).goals}
    assert goals & TEST_GOALS


def test_the_held_out_episodes_stay_stored_and_the_rest_is_drawn_uniformly(mixed):
    source, episodes = mixed
    s = sampler(source, her_ratio=0.0)
    counts: Counter[int] = Counter()
    for _ in range(20):
        counts.update(int(v) for v in s.sample(512).policy_versions)
    allowed = {v: e.length for v, e in episodes.items() if e.goal not in TEST_GOALS}
    assert set(counts) == set(allowed)
    assert len(list(source.iter_episodes())) == len(episodes)  # nothing was removed
    total = sum(counts.values())
    longest = max(allowed, key=allowed.__getitem__)
    expected = allowed[longest] / sum(allowed.values())
    assert abs(counts[longest] / total - expected) < 0.01


def test_a_store_of_held_out_episodes_only_has_nothing_to_train_on(tmp_path):
    with EpisodeStore(tmp_path / "s", durable=False) as store:
        store.put_many([episode(i, sorted(TEST_GOALS)[i]) for i in range(3)])
        with pytest.raises(EmptyReplayError, match="held-out"):
            sampler(store).sample(8)


def test_the_replay_section_configures_the_agents_sampler(tmp_path):
    from tests.test_time_limits import settings_for

    agent = Agent(
        settings_for(
            tmp_path, replay={"her_ratio": 0.4, "her_negatives": 0.3, "her_balance": False}
        )
    )
    try:
        assert isinstance(agent.schedule, OffPolicySchedule)
        got = agent.schedule.sampler
        assert (got.her_ratio, got.her_negatives, got.her_balance) == (0.4, 0.3, False)
        assert got.goals.held_out is not None and got.goals.held_out(sorted(TEST_GOALS)[0])
    finally:
        agent.close()
    with pytest.raises(ValueError, match="her_negatives"):
        ReplayConfig(her_negatives=1.5)


# -- the steps left of a relabeled row ---------------------------------------------------------


@pytest.fixture(scope="module")
def observed(tmp_path_factory: pytest.TempPathFactory) -> tuple[EpisodeStore, dict[int, Episode]]:
    """Observed-mode episodes: Grow plant (horizon 6, they grasp things on the way) and
    Grasp (horizon 3)."""
    goals = ["Grow carrot", "Grow potato", "Grasp cow", "Grow berry"]
    episodes = [episode(4000 + i, goals[i % 4], observed=True) for i in range(80)]
    path: Path = tmp_path_factory.mktemp("observed") / "store"
    with EpisodeStore(path, durable=False) as s:
        s.put_many(episodes)
    return EpisodeStore(path, readonly=True), {e.steps[0].policy_version: e for e in episodes}


def _strip(observation: str) -> str:
    return observation.rsplit("\n", 1)[0]


def _grasp_relabels(batch: TransitionBatch) -> list[int]:
    return [i for i, g in enumerate(batch.goals) if batch.relabeled[i] and g.startswith("Grasp")]


def test_the_steps_left_line_reads_back_what_it_writes():
    """One module writes the line (collection) and parses it (relabeling)."""
    shown = with_steps_left("You see: desk\nYou are standing on: nothing", 1, 3)
    assert shown.endswith("\nSteps left: 2")
    assert steps_left(shown) == 2
    assert steps_left(with_steps_left_line(shown, 9)) == 9
    assert with_steps_left_line(shown, -4).endswith("\nSteps left: 0")
    assert steps_left("You see: desk") is None
    assert with_steps_left_line("You see: desk", 5) == "You see: desk"


def test_a_relabeled_row_shows_its_own_goals_steps_left_and_stops_at_its_horizon(observed):
    source, episodes = observed
    s = ReplaySampler(
        source, predicate=predicate, goal_space=SPACE, her_ratio=1.0, her_negatives=0.5,
        her_steps_left=True, n_step=3, gamma=0.9, rng=3,
    )  # fmt: skip
    batch = s.sample(2048)
    grasps = _grasp_relabels(batch)
    from_grow = 0
    for i in grasps:
        ep = episodes[int(batch.policy_versions[i])]
        left = steps_left(batch.observations[i])
        assert left is not None and 1 <= left <= 3
        t = 3 - left  # the step a Grasp episode from the same start would be at
        assert _strip(ep.steps[t].observation) == _strip(batch.observations[i])
        after = steps_left(batch.next_observations[i])
        assert after is not None and after >= 0
        if after == 0:  # the window reached the Grasp horizon: a cut, terminal when observed
            assert batch.terminated[i]
        from_grow += ep.goal.startswith("Grow")
    assert from_grow > 50


def test_without_it_a_relabeled_row_keeps_the_pursued_episodes_count(observed):
    source, _ = observed
    s = ReplaySampler(source, predicate=predicate, goal_space=SPACE, her_ratio=1.0, rng=3)
    batch = s.sample(2048)
    shown = [steps_left(batch.observations[i]) for i in _grasp_relabels(batch)]
    assert max(k for k in shown if k is not None) > 3  # a Grow episode's count on a Grasp row


@pytest.mark.parametrize(("mode", "cut_is_terminal"), [("observed", True), ("bootstrap", False)])
def test_a_relabeled_goals_horizon_cuts_the_window_like_a_time_limit(mode, cut_is_terminal):
    # Grasp lion at step 1, Grow carrot at step 3, the episode cut after step 4.
    view = EpisodeView.of(
        hand_episode([[], ["Grasp lion"], [], ["Grow carrot"], []], goal="Grasp cow")
    )
    reached = n_step(view, 0, "Grasp lion", True, 3, 0.5, predicate, mode, limit=3)
    assert (reached.reward, reached.terminated, reached.next_index) == (0.5, True, 2)
    cut = n_step(view, 1, "Grow carrot", True, 3, 0.5, predicate, mode, limit=3)
    assert (cut.reward, cut.discount, cut.next_index) == (0.0, 0.25, 3)
    assert cut.terminated == cut_is_terminal  # without the limit it would see step 3's reward
    free = n_step(view, 1, "Grow carrot", True, 3, 0.5, predicate, mode)
    assert (free.reward, free.terminated) == (0.25, True)
