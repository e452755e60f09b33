"""LMDB episode store, hindsight-relabeling replay, and atomic checkpoints.

Public API (everything below is importable from ``autotelic.storage``):

Records
    ``Episode``, ``Step``: the validated episode record (pydantic); ``GoalSource``.
    ``EpisodeBuilder(goal=, goal_category=, goal_source=, env_id=, scene_seed=,
    observation=, admissible_actions=, injection_id=None, started_at=None, extra=None)``
    with ``add_step(action_index, reward, terminated, truncated, achieved_goals,
    policy_version, next_observation, next_admissible)`` and ``build()``.
    ``SCHEMA_VERSION``: the record version this code writes.

Store
    ``EpisodeStore(path, *, capacity_transitions=None, durable=True, readonly=False,
    map_size=None, max_map_size=None)``: ``put(episode) -> id``,
    ``put_many(episodes) -> ids``, ``get(id)``, ``iter_episodes(start_id, end_id)``,
    ``ids()``, ``len()``, ``num_transitions``, ``stats() -> StoreStats``,
    ``export_jsonl(dest)``, ``get_state(key)``, ``put_state(key, value)``,
    ``put_states(values, delete)``, ``delete_state(key)``, ``state_keys(prefix)``,
    ``sync()``, ``close()``.
    (an in-memory replay source for tests: :mod:`autotelic.testing.memory_store`)

Replay
    ``ReplaySampler(source, *, predicate, her_ratio=0.8, strategy="future", n_step=3, gamma=0.99,
    time_limit="observed", rng=None)``: ``sample(batch_size) -> TransitionBatch``;
    ``predicate`` is the goal space's ``achieved`` (storage knows no environment);
    ``time_limit`` (``autotelic.core.time_limit.TIME_LIMITS``) says whether a cut episode
    bootstraps.

Checkpoints
    ``CheckpointManager(directory, keep=3)``: ``save(state, step=, metadata=)``,
    ``latest()``, ``load(checkpoint=None, map_location="cpu")``, ``checkpoints()``,
    ``prune()``. torch is imported only when a checkpoint is written or read.

Errors
    ``StorageError`` and its subclasses ``StorageFullError``, ``StorageWriteError``,
    ``StoreLockedError``, ``SchemaVersionError``, ``CorruptRecordError``,
    ``EpisodeNotFoundError``, ``EmptyReplayError``, ``CheckpointError``.
"""

from autotelic.core.errors import CheckpointError
from autotelic.storage.builder import EpisodeBuilder
from autotelic.storage.checkpoints import (
    Checkpoint,
    CheckpointFile,
    CheckpointManager,
    CheckpointWarning,
    LoadedCheckpoint,
)
from autotelic.storage.errors import (
    CorruptRecordError,
    EmptyReplayError,
    EpisodeNotFoundError,
    SchemaVersionError,
    StorageError,
    StorageFullError,
    StorageWriteError,
    StoreLockedError,
)
from autotelic.storage.her import STRATEGIES, Predicate, Strategy
from autotelic.storage.index import IndexSnapshot
from autotelic.storage.layout import RunLayout
from autotelic.storage.records import SCHEMA_VERSION, Episode, EpisodeView, GoalSource, Step
from autotelic.storage.replay import EpisodeSource, ReplaySampler
from autotelic.storage.store import EpisodeStore, StoreStats

__all__ = [
    "SCHEMA_VERSION",
    "STRATEGIES",
    "Checkpoint",
    "CheckpointError",
    "CheckpointFile",
    "CheckpointManager",
    "CheckpointWarning",
    "CorruptRecordError",
    "EmptyReplayError",
    "Episode",
    "EpisodeBuilder",
    "EpisodeNotFoundError",
    "EpisodeSource",
    "EpisodeStore",
    "EpisodeView",
    "GoalSource",
    "IndexSnapshot",
    "LoadedCheckpoint",
    "Predicate",
    "ReplaySampler",
    "RunLayout",
    "SchemaVersionError",
    "Step",
    "StorageError",
    "StorageFullError",
    "StorageWriteError",
    "StoreLockedError",
    "StoreStats",
    "Strategy",
]
