"""Hardware profiles: what ``run.profile`` changes in the fields a configuration leaves unset.

How collection and learning share time depends on the hardware. On a CPU, one SAC
update of the paper's 256 transitions with SmolLM2 takes minutes while collection
makes ~10 env steps a second; the ``cpu`` profile keeps the paper's *replay ratio*
(transitions learned per env step) with smaller, more frequent updates, and lets
collection go on while the learner is behind (``collector.when_learner_behind:
skip``). The measurements that chose it are in docs/performance.md.
"""

from __future__ import annotations

import logging
from typing import Any, Literal, TypeVar

from autotelic.core import OffPolicyConfig
from autotelic.runtime.loop.config import RunSettings
from autotelic.runtime.loop.coordination import WhenBehind

log = logging.getLogger(__name__)

Profile = Literal["cpu", "paper"]
S = TypeVar("S", bound=RunSettings)

CPU_PROFILE: dict[str, Any] = {"batch_size": 16, "update_every": 4}
"""Off-policy settings of the ``cpu`` profile, for fields the configuration leaves unset.

16 transitions every 4 env steps replays 4 transitions per env step, as the
paper's 256 every 64 do, in updates short enough (4-5 s for SmolLM2 in bfloat16 on
one core of a quiet 2-core machine, against 26 s for 64) that the progress line
shows updates in every 10-second interval.
"""


CPU_EVAL_INTERVAL = 2_000
"""``eval.interval_env_steps`` of the ``cpu`` profile when the configuration leaves it
unset. At the 5-10 env steps/s of a 2-core laptop (docs/performance.md) an evaluation
(about 500 env steps at the defaults, capped at eval.max_cost_fraction of the training
steps) then finishes after about 5,000 training steps, some ten minutes into a first
session; at 10,000 the first point came after half an hour.
"""


def resolve_profile(settings: RunSettings) -> Profile:
    """``run.profile``, with ``auto`` decided: ``cpu`` for a concurrent run on the CPU
    (where a slow learner would freeze collection); ``paper`` otherwise, since serial
    runs are experiments and keep exactly what they configure."""
    chosen = settings.run.profile
    if chosen != "auto":
        return chosen
    on_cpu = settings.model.device.split(":")[0] == "cpu"
    return "cpu" if on_cpu and settings.run.mode == "concurrent" else "paper"


def apply_profile(settings: S) -> S:
    """``settings`` with the hardware profile applied to the fields it decides.

    The profile never overrides a field the configuration sets: only algorithm
    fields left at their defaults change, and ``collector.when_learner_behind``
    when it is ``auto``. Each change is logged; the run directory's
    ``config.yaml`` records the values used.
    """
    profile = resolve_profile(settings)
    algorithm = settings.algorithm
    changes: list[str] = []
    if profile == "cpu" and isinstance(algorithm, OffPolicyConfig):
        # Without an `algorithm` section nothing in it was set (its default is validated
        # again, which marks every field as set); with one, pydantic knows what it gave.
        given = algorithm.model_fields_set if "algorithm" in settings.model_fields_set else set()
        unset = {
            key: value
            for key, value in CPU_PROFILE.items()
            if key not in given and getattr(algorithm, key) != value
        }
        changes += [f"algorithm.{k} {getattr(algorithm, k)} -> {v}" for k, v in unset.items()]
        algorithm = algorithm.model_copy(update=unset)
    collector = settings.collector
    if collector.when_learner_behind == "auto":
        when = when_learner_behind(settings)
        collector = collector.model_copy(update={"when_learner_behind": when})
        changes.append(f"collector.when_learner_behind auto -> {when}")
    evaluation = settings.eval
    if profile == "cpu" and "interval_env_steps" not in evaluation.model_fields_set:
        changes.append(
            f"eval.interval_env_steps {evaluation.interval_env_steps} -> {CPU_EVAL_INTERVAL}"
        )
        evaluation = evaluation.model_copy(update={"interval_env_steps": CPU_EVAL_INTERVAL})
    run = settings.run.model_copy(update={"profile": profile})
    if changes:
        log.info(
            "profile %s (run.profile %s): %s; set a field to keep your own value",
            profile,
            settings.run.profile,
            ", ".join(changes),
        )
    return settings.model_copy(
        update={"algorithm": algorithm, "collector": collector, "run": run, "eval": evaluation}
    )


def when_learner_behind(settings: RunSettings) -> WhenBehind:
    """``collector.when_learner_behind``, with ``auto`` decided by the profile."""
    chosen = settings.collector.when_learner_behind
    if chosen != "auto":
        return chosen
    return "skip" if resolve_profile(settings) == "cpu" else "wait"
