"""The loop's sections of the configuration, beside the code they configure, and what a
run reads of the configuration as a whole.

``run:`` (what run this is and how it is driven), ``collector:`` (how experience is
gathered) and ``checkpoint:`` (when the run's state is saved) are the loop's own; the
root configuration (``runtime/config.py``) composes them with every other layer's.
:class:`RunSettings` names the sections a run reads, each typed by the model of the
layer that owns it, so the loop takes a configuration without importing the root
``Settings`` (which has them all, and is what the service and the commands pass).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, Protocol, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator

from autotelic.core import AlgorithmConfig, EnvConfig
from autotelic.core.registry import backend_spec
from autotelic.core.time_limit import DEFAULT_TIME_LIMIT, TimeLimit
from autotelic.goals import CurriculumConfig
from autotelic.learners.model_config import ModelConfig
from autotelic.runtime.evaluation.config import EvalConfig
from autotelic.runtime.telemetry.config import TrackingConfig
from autotelic.storage.config import ReplayConfig


class RunConfig(BaseModel):
    """What run this is and how it is driven."""

    model_config = ConfigDict(extra="forbid")

    dir: Path = Field(Path("runs/default"), description="Run directory: store, checkpoints, log.")
    agent: str = Field("default", description="Agent name; MQTT topics live under it.")
    seed: int = Field(
        0,
        description="Seed of env scenes, action sampling and replay sampling; also the seed "
        "of model.seed, curriculum.seed and algorithm.seed wherever those are not set "
        "explicitly (eval.seed stays apart: every seed is measured on the same evaluation set).",
    )
    mode: Literal["concurrent", "serial"] = Field(
        "concurrent",
        description="concurrent: collector and learner threads; serial: one deterministic loop.",
    )
    backend: str = Field(
        "local",
        description="A registered backend (autotelic.core.register_backend). Built in: "
        "local: everything in this process (collector and learner threads); ray: "
        "collector actors on a Ray cluster, the goal daemon as a named actor, the learner "
        "and the episode store here (the `ray` section; docs/scale.md). ray needs "
        "mode: concurrent.",
    )
    max_env_steps: int | None = Field(
        None, ge=1, description="Stop after this many env steps (None: run until stopped)."
    )
    profile: Literal["auto", "cpu", "paper"] = Field(
        "auto",
        description="Hardware profile, for fields the configuration leaves unset. 'paper': the "
        "algorithm's defaults and collector.when_learner_behind 'wait'. 'cpu': an off-policy "
        "algorithm learns 16 transitions every 4 env steps (the paper's 4 replayed per env "
        "step, in short updates) and collection never waits for the learner. 'auto': 'cpu' "
        "for a concurrent run on the CPU, else 'paper' (serial runs are experiments). "
        "See docs/performance.md.",
    )
    torch_threads: int | None = Field(
        None,
        ge=1,
        description="CPU threads torch may use (None: half the cores when collector and "
        "learner run concurrently on the CPU, else torch's default).",
    )
    plugins: list[str] = Field(
        default_factory=list,
        description="Modules to import before validation: they register your own "
        "environments, algorithms and backends (see docs/environments.md).",
    )
    time_limit: TimeLimit = Field(
        DEFAULT_TIME_LIMIT,
        description="How an episode cut by its time limit is learned from, for every "
        "algorithm (replay targets and on-policy rollouts; docs/learning.md). observed: the "
        "observation shows a last line `Steps left: k` (collector, stored episodes, "
        "evaluation) and the cut is terminal, so the task stays Markov; terminal: the cut "
        "is terminal but not shown (the authors' LittleZoo); bootstrap: the cut state is "
        "bootstrapped (the behaviour before this option existed; at gamma 0.99 its "
        "soft-optimal policy avoids the goal).",
    )

    @field_validator("backend")
    @classmethod
    def _registered_backend(cls, value: str) -> str:
        """Refuse an unknown backend here, with the registered names, not when the
        service starts (the run's plug-ins are loaded before this section is read)."""
        return backend_spec(value).name


class CollectorConfig(BaseModel):
    """How experience is gathered."""

    model_config = ConfigDict(extra="forbid")

    max_lag_updates: int = Field(
        4,
        ge=0,
        description="Updates the learner may fall behind before `when_learner_behind` applies.",
    )
    when_learner_behind: Literal["auto", "wait", "skip"] = Field(
        "auto",
        description="Concurrent runs, once the learner is max_lag_updates behind the "
        "update-to-data ratio: 'wait' pauses collection until it catches up (the ratio holds "
        "exactly; a slow learner stops collection); 'skip' keeps collecting and drops the "
        "updates owed beyond the lag (the ratio becomes a ceiling; env steps and updates both "
        "keep moving); 'auto': 'skip' under the cpu profile, else 'wait' (run.profile).",
    )
    inference_batch: int | None = Field(
        None, ge=1, description="States scored per forward pass (None: all envs at once)."
    )
    exploration_epsilon: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="Behaviour policy (1 - eps) * pi + eps * uniform over the admissible "
        "actions; the stored log-prob is the behaviour's (valid off-policy, and the "
        "importance ratio of an on-policy learner). 0: act with pi.",
    )
    precursor_share: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="Fraction of episodes whose first steps act under precursor goals: "
        "those a recent episode of the same goal achieved on the way, in its order (its "
        "scenes afford them), each until achieved or precursor_steps spent; the episode "
        "is stored under its own goal. Reaches the ends of long chains that the goal's own "
        "policy does not yet try. Off-policy learners only. 0: off.",
    )
    precursor_length: int = Field(
        3, ge=1, description="Precursor goals per chain, at most (the end of the order)."
    )
    precursor_steps: int = Field(
        6, ge=1, description="Steps a precursor goal is pursued before the next takes over."
    )


class CheckpointConfig(BaseModel):
    """When the run's state is saved."""

    model_config = ConfigDict(extra="forbid")

    interval_s: float = Field(300.0, gt=0, description="Seconds between periodic checkpoints.")
    keep: int = Field(3, ge=1, description="Checkpoints kept; older ones are deleted.")


class ServiceSection(Protocol):
    """What a run reads of the ``service:`` section (the service's own)."""

    @property
    def mqtt_enabled(self) -> bool:
        """Whether a transport acknowledges injection results (the daemon keeps them)."""
        ...


class RunSettings(Protocol):
    """The configuration as a run reads it: its sections, the hardware profile's copy and
    the dump written to the run directory's ``config.yaml``."""

    @property
    def run(self) -> RunConfig: ...
    @property
    def env(self) -> EnvConfig: ...
    @property
    def model(self) -> ModelConfig: ...
    @property
    def algorithm(self) -> AlgorithmConfig: ...
    @property
    def replay(self) -> ReplayConfig: ...
    @property
    def curriculum(self) -> CurriculumConfig: ...
    @property
    def collector(self) -> CollectorConfig: ...
    @property
    def tracking(self) -> TrackingConfig: ...
    @property
    def checkpoint(self) -> CheckpointConfig: ...
    @property
    def service(self) -> ServiceSection: ...
    @property
    def eval(self) -> EvalConfig: ...
    @property
    def model_fields_set(self) -> set[str]: ...

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """A copy with ``update``'s sections (the hardware profile's changes)."""
        ...

    def dump(self) -> dict[str, Any]:
        """The effective configuration as plain data, secrets masked (``config.yaml``)."""
        ...
