"""Goal registry and the learning-progress curriculum that picks what to practise.

The runtime uses :class:`GoalDaemon`: ``next_goals(n)`` before episodes,
``report(outcome)`` after each, ``inject(...)`` for goals people ask for.
It knows environments only through the :class:`~autotelic.core.GoalSpace`
contract it is given. Goals and injections are kept in a state store as they
change; the learning state travels in the runtime's checkpoints
(``state_dict`` / ``load_state_dict``), with the policy.
"""

from autotelic.core import GoalSpace, ParsedGoal
from autotelic.goals.assignments import EpisodeOutcome, GoalAssignment
from autotelic.goals.config import (
    CurriculumConfig,
    EmbeddingConfig,
    EpsilonSchedule,
    InjectionConfig,
    SamplerConfig,
)
from autotelic.goals.daemon import GoalDaemon, ReportCallback, make_estimator
from autotelic.goals.embedding_lp import EmbeddingLP
from autotelic.goals.embeddings import (
    EmbeddingCache,
    EmbedFn,
    EncoderUnavailableError,
    MiniLMEncoder,
    minilm_model_dir,
)
from autotelic.goals.errors import (
    InjectionRejected,
    InvalidGoalError,
    InvalidOutcomeError,
    NoGoalsError,
)
from autotelic.goals.estimators import (
    BucketLP,
    CompetenceEstimator,
    GoalLP,
    WindowedLP,
    absolute_lp,
)
from autotelic.goals.injections import Injection, InjectionQueue, InjectionReport
from autotelic.goals.registry import SOURCES, GoalRecord, GoalRegistry, Source
from autotelic.goals.sampler import LPSampler, lp_probabilities
from autotelic.goals.state import STATE_PREFIX, BatchStateStore, MemoryStateStore, StateStore
from autotelic.goals.stats import CategoryStats, CurriculumStats, GoalStats

__all__ = [
    "SOURCES",
    "STATE_PREFIX",
    "BatchStateStore",
    "BucketLP",
    "CategoryStats",
    "CompetenceEstimator",
    "CurriculumConfig",
    "CurriculumStats",
    "EmbedFn",
    "EmbeddingCache",
    "EmbeddingConfig",
    "EmbeddingLP",
    "EncoderUnavailableError",
    "EpisodeOutcome",
    "EpsilonSchedule",
    "GoalAssignment",
    "GoalDaemon",
    "GoalLP",
    "GoalRecord",
    "GoalRegistry",
    "GoalSpace",
    "GoalStats",
    "Injection",
    "InjectionConfig",
    "InjectionQueue",
    "InjectionRejected",
    "InjectionReport",
    "InvalidGoalError",
    "InvalidOutcomeError",
    "LPSampler",
    "MemoryStateStore",
    "MiniLMEncoder",
    "NoGoalsError",
    "ParsedGoal",
    "ReportCallback",
    "SamplerConfig",
    "Source",
    "StateStore",
    "WindowedLP",
    "absolute_lp",
    "lp_probabilities",
    "make_estimator",
    "minilm_model_dir",
]
