"""Embedding LP over the packaged MiniLM encoder (loaded once for this module)."""

from __future__ import annotations

from collections.abc import Sequence

import msgpack
import numpy as np
import numpy.typing as npt
import pytest

from autotelic.goals import (
    CurriculumConfig,
    EmbeddingCache,
    EmbeddingConfig,
    EmbeddingLP,
    GoalDaemon,
    MemoryStateStore,
    MiniLMEncoder,
    SamplerConfig,
    minilm_model_dir,
)
from autotelic.testing.simulated import (
    SimulatedLearner,
    playground_sim_goals,
    simulate,
    uniform_config,
)
from tests.goals_fixtures import PLAYGROUND, saved

PLANTS = ["Grow carrot", "Grow potato", "Grow berry", "Grow onion", "Grow cucumber"]
CARNIVORES = ["Grow lion", "Grow jackal", "Grow bobcat", "Grow panthera", "Grow coyote"]
GRASPS = ["Grasp door", "Grasp chair", "Grasp desk", "Grasp sofa", "Grasp cow", "Grasp lion"]


@pytest.fixture(scope="module")
def minilm() -> EmbeddingCache:
    return EmbeddingCache(MiniLMEncoder())


def test_minilm_loads_from_the_package_files_and_embeds_unit_vectors(
    minilm: EmbeddingCache,
) -> None:
    assert (minilm_model_dir() / "model.safetensors").is_file()
    texts = ["Grow tomato", "Grow potato", "Grasp sofa", "Grow tiger", "Grow lion"]
    vectors = minilm(texts)
    assert vectors.shape == (5, 384)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    sim = vectors @ vectors.T
    assert sim[0, 1] > sim[0, 2]  # two plants to grow are closer than a plant and a sofa
    assert sim[3, 4] > sim[3, 1]  # tiger is closer to lion than to potato
    # Cached: the same rows again, in any order; one batch and one text agree.
    np.testing.assert_array_equal(minilm(texts[::-1]), vectors[::-1])
    alone = MiniLMEncoder.__call__(minilm.embed, ["Grow tomato"])  # type: ignore[arg-type]
    np.testing.assert_allclose(alone[0], vectors[0], atol=1e-5)


def _train(estimator: EmbeddingLP, seed: int) -> None:
    """Plants go from always failing to always succeeding; carnivores fail; grasps succeed."""
    rng = np.random.default_rng(seed)
    for step in range(750):
        plant_success = step >= 600
        kind = rng.integers(3)
        if kind == 0:
            estimator.update(PLANTS[rng.integers(len(PLANTS))], plant_success)
        elif kind == 1:
            estimator.update(CARNIVORES[rng.integers(len(CARNIVORES))], False)
        else:
            estimator.update(GRASPS[rng.integers(len(GRASPS))], True)


@pytest.mark.parametrize("seed", [0, 1])
def test_a_never_tried_goal_gets_estimates_close_to_its_similar_trained_goals(
    minilm: EmbeddingCache, seed: int
) -> None:
    estimator = EmbeddingLP(minilm, seed=seed)
    _train(estimator, seed)
    groups = {"plants": PLANTS, "carnivores": CARNIVORES, "grasps": GRASPS}
    for measure in (estimator.lp, estimator.competence):
        means = {name: float(measure(goals).mean()) for name, goals in groups.items()}
        tomato = float(measure(["Grow tomato"])[0])  # never tried, a plant
        tiger = float(measure(["Grow tiger"])[0])  # never tried, a carnivore
        gaps = {name: abs(tomato - m) for name, m in means.items()}
        assert min(gaps, key=gaps.__getitem__) == "plants", (measure.__name__, tomato, means)
        assert gaps["plants"] < 0.6 * means["plants"], (measure.__name__, tomato, means)
        if measure == estimator.competence:  # (carnivores and grasps both have LP ~0)
            tiger_gaps = {name: abs(tiger - m) for name, m in means.items()}
            assert min(tiger_gaps, key=tiger_gaps.__getitem__) == "carnivores"
    assert estimator.lp(["Grow tomato"])[0] > 5 * estimator.lp(["Grow tiger"])[0]


def test_embedding_lp_state_round_trip_continues_identically(minilm: EmbeddingCache) -> None:
    goals = [*PLANTS, *CARNIVORES, "Grow tomato"]
    first = EmbeddingLP(minilm, EmbeddingConfig(snapshot_every=10), seed=3)
    _train(first, 3)
    store = MemoryStateStore()
    store.put_state("e", first.state_dict())
    second = EmbeddingLP(minilm, EmbeddingConfig(snapshot_every=10), seed=99)
    second.load_state_dict(saved(store, "e"))
    np.testing.assert_array_equal(second.lp(goals), first.lp(goals))
    np.testing.assert_array_equal(second.competence(goals), first.competence(goals))
    for goal, success in [("Grow carrot", True), ("Grow lion", True)] * 15:
        first.update(goal, success)
        second.update(goal, success)
    np.testing.assert_allclose(second.lp(goals), first.lp(goals), atol=1e-6)
    with pytest.raises(ValueError, match="hidden=64, configured 8"):
        EmbeddingLP(minilm, EmbeddingConfig(hidden=8)).load_state_dict(first.state_dict())


def test_an_injected_embedding_function_is_used_and_checked() -> None:
    calls: list[list[str]] = []

    def by_verb(texts: Sequence[str]) -> npt.NDArray[np.float32]:
        calls.append(list(texts))
        return np.array([[t.startswith("Grow"), t.startswith("Grasp")] for t in texts], "f4")

    estimator = EmbeddingLP(by_verb, EmbeddingConfig(hidden=0, snapshot_every=5))
    for _ in range(200):
        estimator.update("Grasp cow", True)
        estimator.update("Grow lion", False)
    competence = estimator.competence(["Grasp sofa", "Grow tiger"])
    assert competence[0] > 0.8
    assert competence[1] < 0.2
    assert sorted(t for batch in calls for t in batch) == sorted(
        ["Grasp cow", "Grow lion", "Grasp sofa", "Grow tiger"]
    )  # each text embedded once
    broken = EmbeddingLP(lambda texts: np.zeros((len(texts) + 1, 3), "f4"))
    with pytest.raises(ValueError, match="expected \\(1, dim\\)"):
        broken.update("Grow cow", True)


def test_daemon_with_embedding_lp_restores_the_same_distribution_from_a_checkpoint(
    minilm: EmbeddingCache,
) -> None:
    sims = playground_sim_goals()
    config = CurriculumConfig(configured_goals=[g.text for g in sims], estimator="embedding")
    store = MemoryStateStore()
    daemon = GoalDaemon(config, store=store, embed=minilm, goal_space=PLAYGROUND)
    simulate(daemon, SimulatedLearner(sims, seed=0), episodes=400)
    checkpoint = msgpack.unpackb(msgpack.packb(daemon.state_dict()), strict_map_key=False)
    before = daemon.probabilities()
    assert max(before.values()) > 1.5 * min(before.values())
    restored = GoalDaemon(config, store=store, embed=minilm, goal_space=PLAYGROUND)
    restored.load_state_dict(checkpoint)
    assert restored.probabilities() == pytest.approx(before, rel=1e-6)
    assert [a.goal for a in restored.next_goals(30)] == [a.goal for a in daemon.next_goals(30)]


def test_embedding_lp_curriculum_beats_uniform_on_the_simulated_learner(
    minilm: EmbeddingCache,
) -> None:
    sims = playground_sim_goals()
    texts = [g.text for g in sims]
    kind = {g.text: g.difficulty for g in sims}
    lp_config = CurriculumConfig(
        configured_goals=texts,
        estimator="embedding",
        embedding=EmbeddingConfig(),
        seed=1,
        sampler=SamplerConfig(balance="goal"),  # LP over the one pool, against uniform
    )
    lp_trace = simulate(
        GoalDaemon(lp_config, embed=minilm, goal_space=PLAYGROUND),
        SimulatedLearner(sims, seed=1),
        episodes=2500,
    )
    uniform_trace = simulate(
        GoalDaemon(uniform_config(texts, seed=1), goal_space=PLAYGROUND),
        SimulatedLearner(sims, seed=1),
        episodes=2500,
    )
    assert lp_trace.total_competence[-1] > uniform_trace.total_competence[-1] + 0.01

    learnable = lp_trace.per_goal_share(kind, "learnable")
    assert learnable > 1.3 * lp_trace.per_goal_share(kind, "mastered")
    assert learnable > 2 * lp_trace.per_goal_share(kind, "impossible")


def test_restoring_with_another_embedding_starts_afresh(caplog: pytest.LogCaptureFixture) -> None:
    def small(texts: Sequence[str]) -> npt.NDArray[np.float32]:
        rows = [[len(t) / 10, t.count("o") / 10, 0.1] for t in texts]
        return np.array(rows, dtype=np.float32)

    def wider(texts: Sequence[str]) -> npt.NDArray[np.float32]:
        return np.hstack([small(texts), small(texts)]).astype(np.float32)

    config = CurriculumConfig(configured_goals=["Grow cow", "Grasp lion"], estimator="embedding")
    daemon = GoalDaemon(config, embed=small, goal_space=PLAYGROUND)
    for _ in range(30):
        for a in daemon.next_goals(2):
            daemon.report(a.outcome(success=a.goal == "Grasp lion", steps=2))
    restored = GoalDaemon(config, embed=wider, goal_space=PLAYGROUND)
    restored.load_state_dict(daemon.state_dict())
    assert "starts afresh" in caplog.text
    assert "6" in caplog.text and "3-dimensional" in caplog.text
    assert restored.episodes == 60
    (assignment,) = restored.next_goals(1)
    restored.report(assignment.outcome(success=True, steps=2))
    assert restored.estimator.competence(["Grow cow"]).shape == (1,)
