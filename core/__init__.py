"""The contracts every other part of autotelic is written against.

Nothing here imports from the rest of the package: environments, learners,
storage, the curriculum and the runtime all depend on this core, never the
other way. An environment or an algorithm plugs in by implementing a contract
and registering itself (:func:`register_env`, :func:`register_algorithm`; a way of
running the agent, :func:`register_backend`); the runtime finds it through the registry
by the id or name the configuration gives.

- :mod:`autotelic.core.env`: a batch of text environments (:class:`TextEnvBatch`).
- :mod:`autotelic.core.goals`: what goals are (:class:`GoalSpace`).
- :mod:`autotelic.core.learner`: what the runtime drives (:class:`Learner` and its kinds).
- :mod:`autotelic.core.batch`, :mod:`autotelic.core.rollout`: the data the two learner
  kinds consume.
- :mod:`autotelic.core.registry`: the registries and plug-in loading.
- :mod:`autotelic.core.vocabulary`: the words an environment's text uses.
"""

from autotelic.core.batch import TransitionBatch, check_rows
from autotelic.core.env import (
    EnvConfig,
    EnvStep,
    EpisodeOverError,
    InadmissibleActionError,
    TextEnvBatch,
    TextState,
)
from autotelic.core.errors import CheckpointError, UserError
from autotelic.core.goals import GoalSpace, InvalidGoalError, ParsedGoal, Split
from autotelic.core.learner import (
    ActResult,
    AlgorithmConfig,
    Generator,
    Learner,
    LearnerKind,
    Lock,
    OffPolicyConfig,
    OffPolicyLearner,
    OnPolicyConfig,
    OnPolicyLearner,
    ProgressReporting,
    held,
)
from autotelic.core.registry import (
    AlgorithmSpec,
    BackendSpec,
    EnvSpec,
    RegistryError,
    algorithm_spec,
    backend_spec,
    env_spec,
    load_plugins,
    register_algorithm,
    register_backend,
    register_env,
    registered_algorithms,
    registered_backends,
    registered_envs,
)
from autotelic.core.rollout import Rollout, Trajectory
from autotelic.core.vocabulary import TextVocabulary

__all__ = [
    "ActResult",
    "AlgorithmConfig",
    "AlgorithmSpec",
    "BackendSpec",
    "CheckpointError",
    "EnvConfig",
    "EnvSpec",
    "EnvStep",
    "EpisodeOverError",
    "Generator",
    "GoalSpace",
    "InadmissibleActionError",
    "InvalidGoalError",
    "Learner",
    "LearnerKind",
    "Lock",
    "OffPolicyConfig",
    "OffPolicyLearner",
    "OnPolicyConfig",
    "OnPolicyLearner",
    "ParsedGoal",
    "ProgressReporting",
    "RegistryError",
    "Rollout",
    "Split",
    "TextEnvBatch",
    "TextState",
    "TextVocabulary",
    "Trajectory",
    "TransitionBatch",
    "UserError",
    "algorithm_spec",
    "backend_spec",
    "check_rows",
    "env_spec",
    "held",
    "load_plugins",
    "register_algorithm",
    "register_backend",
    "register_env",
    "registered_algorithms",
    "registered_backends",
    "registered_envs",
]
