"""LP-proportional sampling: exploration schedules, the floor, and determinism."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from autotelic.goals import (
    EpsilonSchedule,
    LPSampler,
    MemoryStateStore,
    SamplerConfig,
    lp_probabilities,
)
from tests.goals_fixtures import saved

lp_arrays = st.lists(
    st.floats(min_value=0.0, max_value=1.0, allow_nan=False), min_size=1, max_size=40
)


@settings(max_examples=150, deadline=None)
@given(
    lp_arrays,
    st.floats(min_value=0.0, max_value=1.0),
    st.floats(min_value=0.0, max_value=0.99),
)
def test_probabilities_sum_to_one_and_respect_the_floor(
    lp: list[float], epsilon: float, floor: float
) -> None:
    probs = lp_probabilities(lp, epsilon, floor)
    n = len(lp)
    assert probs.sum() == pytest.approx(1.0)
    assert np.all(probs >= floor / n - 1e-12)
    assert np.all(probs >= (epsilon * (1 - floor) + floor) / n - 1e-12)
    # More LP never means less probability.
    order = np.argsort(lp, kind="stable")
    assert np.all(np.diff(probs[order]) >= -1e-12)


def test_probabilities_follow_lp_without_exploration() -> None:
    probs = lp_probabilities([0.0, 0.1, 0.3], epsilon=0.0, floor=0.0)
    np.testing.assert_allclose(probs, [0.0, 0.25, 0.75])
    mixed = lp_probabilities([0.0, 0.1, 0.3], epsilon=0.5, floor=0.0)
    np.testing.assert_allclose(mixed, 0.5 * np.array([0.0, 0.25, 0.75]) + 0.5 / 3)


def test_no_lp_anywhere_or_bad_values_mean_uniform() -> None:
    np.testing.assert_allclose(lp_probabilities([0.0] * 4, 0.0, 0.0), [0.25] * 4)
    np.testing.assert_allclose(lp_probabilities([float("nan"), -1.0, 0.0], 0.0, 0.0), [1 / 3] * 3)
    assert lp_probabilities([], 0.1, 0.1).size == 0


@pytest.mark.parametrize(
    ("schedule", "points"),
    [
        (EpsilonSchedule(kind="constant", start=0.3), {0: 0.3, 10_000: 0.3}),
        (
            EpsilonSchedule(kind="linear", start=0.5, end=0.1, decay_episodes=100),
            {0: 0.5, 50: 0.3, 100: 0.1, 1000: 0.1},
        ),
        (
            EpsilonSchedule(kind="exponential", start=0.5, end=0.1, decay_episodes=100),
            {0: 0.5, 100: 0.3, 200: 0.2, 100_000: 0.1},
        ),
    ],
)
def test_epsilon_schedules(schedule: EpsilonSchedule, points: dict[int, float]) -> None:
    for episode, value in points.items():
        assert schedule.value(episode) == pytest.approx(value)


def test_schedule_and_floor_settings_are_validated() -> None:
    with pytest.raises(ValidationError, match="kind"):
        EpsilonSchedule(kind="cosine")
    with pytest.raises(ValidationError, match="start"):
        EpsilonSchedule(start=1.5)
    with pytest.raises(ValidationError, match="floor"):
        SamplerConfig(floor=1.0)
    with pytest.raises(ValidationError, match="extra"):
        SamplerConfig(flor=0.1)  # type: ignore[call-arg]


def test_every_config_field_is_described() -> None:
    from autotelic.goals import CurriculumConfig, EmbeddingConfig, InjectionConfig

    for model in (
        CurriculumConfig,
        EmbeddingConfig,
        InjectionConfig,
        SamplerConfig,
        EpsilonSchedule,
    ):
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name} has no description"


def test_sampling_is_deterministic_under_a_seed_and_follows_the_probabilities() -> None:
    config = SamplerConfig(epsilon=EpsilonSchedule(kind="constant", start=0.2), floor=0.1)
    lp = np.array([0.0, 0.05, 0.2, 0.6])
    a, b, c = LPSampler(config, seed=5), LPSampler(config, seed=5), LPSampler(config, seed=6)
    probs = a.probabilities(lp, episode=0)
    draws = a.sample(probs, 20_000)
    np.testing.assert_array_equal(draws, b.sample(probs, 20_000))
    assert not np.array_equal(draws, c.sample(probs, 20_000))
    freq = np.bincount(draws, minlength=4) / draws.size
    np.testing.assert_allclose(freq, probs, atol=0.015)
    assert freq[0] > 0  # the floor: a goal with no LP still gets episodes


def test_sampler_state_restores_the_same_draws() -> None:
    config = SamplerConfig()
    sampler = LPSampler(config, seed=1)
    probs = sampler.probabilities([0.1, 0.2, 0.3], episode=10)
    sampler.sample(probs, 7)
    store = MemoryStateStore()
    store.put_state("s", sampler.state_dict())
    restored = LPSampler(config, seed=999)
    restored.load_state_dict(saved(store, "s"))
    np.testing.assert_array_equal(restored.sample(probs, 50), sampler.sample(probs, 50))


def test_sampling_refuses_impossible_requests() -> None:
    sampler = LPSampler(SamplerConfig())
    with pytest.raises(ValueError, match="empty goal set"):
        sampler.sample(np.zeros(0), 1)
    with pytest.raises(ValueError, match="cannot draw -1"):
        sampler.sample(np.ones(2) / 2, -1)
