"""How each learner kind is scheduled: a registry keyed by the kind an algorithm's
registration declares (:attr:`autotelic.core.AlgorithmSpec.kind`).

The run builds its schedule by looking its learner's kind up here, so a new kind of
learner registers its schedule (and says whether the collector records rollouts for
it) and the loop needs no branch for it. A backend may still bring its own schedule
for a kind (:meth:`~autotelic.runtime.loop.parts.RunParts.schedule`): the Ray backend
gathers on-policy rollouts from every actor.

Built in: ``off_policy`` learns from replay (HER-relabeled samples of the episode store)
at ``1 / update_every`` updates per env step, in a learner thread when concurrent;
``on_policy`` learns inline from the rollout the collector just recorded.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from autotelic.core import OffPolicyConfig, OnPolicyConfig, RegistryError
from autotelic.runtime.loop.parts import Run
from autotelic.runtime.loop.profiles import when_learner_behind
from autotelic.runtime.loop.schedules import OffPolicySchedule, OnPolicySchedule, Schedule
from autotelic.storage import ReplaySampler

BuildSchedule = Callable[[Run, np.random.Generator], Schedule]
"""``build(run, replay_rng) -> Schedule``, called once the run's collection and learner
loop exist."""


@dataclass(frozen=True)
class ScheduleKind:
    """A learner kind's schedule, as registered."""

    kind: str
    build: BuildSchedule
    records_rollouts: bool = False
    """Whether a local collector records on-policy rollouts for it as the envs step."""


_lock = threading.Lock()
_kinds: dict[str, ScheduleKind] = {}


def register_schedule(kind: str, build: BuildSchedule, *, records_rollouts: bool = False) -> None:
    """Say how learners of ``kind`` are scheduled; registering a kind twice fails."""
    with _lock:
        if kind in _kinds:
            raise RegistryError(f"learner kind {kind!r} already has a schedule")
        _kinds[kind] = ScheduleKind(kind, build, records_rollouts)


def schedule_kind(kind: str) -> ScheduleKind:
    """The schedule registered for ``kind``, or a :class:`RegistryError` naming those that are."""
    with _lock:
        found = _kinds.get(kind)
        if found is None:
            raise RegistryError(
                f"no schedule registered for learner kind {kind!r}; registered: "
                f"{', '.join(sorted(_kinds))} (autotelic.runtime.loop.kinds.register_schedule)"
            )
        return found


def off_policy(run: Run, replay_rng: np.random.Generator) -> Schedule:
    """Replayed updates at a ratio of env steps (see the module docstring)."""
    s = run.settings
    config = s.algorithm
    assert isinstance(config, OffPolicyConfig)  # the kind says so: this narrows the type
    sampler = ReplaySampler.from_config(
        s.replay,
        run.store,
        run.goal_space,
        n_step=config.n_step,
        gamma=config.gamma,
        time_limit=s.run.time_limit,
        rng=replay_rng,
    )
    return OffPolicySchedule(
        config,
        run.learner_loop,
        sampler,
        max_lag_updates=s.collector.max_lag_updates,
        env_steps=run.collection.env_steps,
        when_behind=when_learner_behind(s),
    )


def on_policy(run: Run, replay_rng: np.random.Generator) -> Schedule:
    """An update on every ``steps_per_update`` steps the collection recorded."""
    config = run.settings.algorithm
    assert isinstance(config, OnPolicyConfig)
    recorder = run.collection.recorder
    if recorder is None:
        raise RuntimeError("an on-policy learner needs a collection that records rollouts")
    collection = run.collection
    return OnPolicySchedule(
        run.learner_loop, recorder, config.steps_per_update, lambda: collection.prompts
    )


register_schedule("off_policy", off_policy)
register_schedule("on_policy", on_policy, records_rollouts=True)
