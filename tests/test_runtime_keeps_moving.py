"""A concurrent run keeps collecting while its learner is slow, and the cpu profile.

The learner is made slow on purpose: ``gated-sac``, registered here as a user's
plug-in would be, is SAC-GLAM whose every update waits at a gate the test holds
closed. The real Agent (collector, LMDB store, replay, curriculum, tiny model)
runs its collector and learner threads; the tests watch the counters, with
timeouts only as safety nets (nothing here asserts a duration).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

import pytest
from pydantic import ConfigDict, Field

from autotelic.core import Lock, TransitionBatch, register_algorithm
from autotelic.learners.models import ModelConfig, load_model
from autotelic.learners.sac import SACConfig, SACLearner
from autotelic.runtime.config import Settings, deep_merge, load_settings
from autotelic.runtime.loop.agent import Agent
from autotelic.runtime.loop.learner_loop import LearnerLoop
from autotelic.runtime.loop.profiles import (
    CPU_PROFILE,
    apply_profile,
    resolve_profile,
    when_learner_behind,
)
from autotelic.runtime.loop.schedules import OffPolicySchedule
from tests.learners_fixtures import playground_observations, transition_batch

SAFETY_S = 120.0
"""How long a test waits for what must happen before calling it a failure."""


class GatedSACConfig(SACConfig):
    """SAC-GLAM options, registered under another name."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Literal["gated-sac"] = Field(  # type: ignore[assignment]
        "gated-sac", description="SAC-GLAM whose updates wait at a gate (tests)."
    )


class GatedSAC(SACLearner):
    """SAC-GLAM whose updates wait until the test opens the gate: as slow as it likes."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.entered = threading.Event()
        self.gate = threading.Event()

    def update(
        self,
        batch: TransitionBatch,
        *,
        write_lock: Lock | None = None,
        progress: Callable[[float], None] | None = None,
    ) -> dict[str, float]:
        self.entered.set()
        assert self.gate.wait(SAFETY_S), "the test never opened the gate"
        return super().update(batch, write_lock=write_lock, progress=progress)


register_algorithm(
    "gated-sac",
    config=GatedSACConfig,
    build=lambda model, config: GatedSAC(load_model(model), config),
    description="SAC-GLAM with gated updates (tests)",
)


def settings_for(tmp_path: Path, **extra: Any) -> Settings:
    base = {
        "run": {"dir": str(tmp_path / "run"), "mode": "concurrent", "torch_threads": 1},
        "model": {"path": "tiny-causal"},
        "env": {"num_envs": 4},
        "algorithm": {
            "name": "gated-sac",
            "batch_size": 8,
            "learning_starts": 16,
            "update_every": 4,
            "critic_hidden": [32, 32],
        },
        "replay": {"capacity_transitions": 10000, "durable": False},
        "collector": {"max_lag_updates": 2},
    }
    return load_settings(None, **deep_merge(base, extra))


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + SAFETY_S
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.01)


@pytest.fixture
def running() -> Iterator[Callable[[Settings], tuple[Agent, GatedSAC]]]:
    """Start an agent's threads; stop and close it afterwards, gate open."""
    started: list[tuple[Agent, GatedSAC, list[threading.Thread]]] = []

    def start(settings: Settings) -> tuple[Agent, GatedSAC]:
        agent = Agent(settings)
        learner = agent.learner
        assert isinstance(learner, GatedSAC)
        started.append((agent, learner, agent.start_threads()))
        return agent, learner

    yield start
    for agent, learner, threads in started:
        learner.gate.set()
        agent.stop()
        for t in threads:
            t.join(timeout=SAFETY_S)
        agent.close()
        assert agent.error is None, agent.error


def test_collection_goes_on_while_an_update_runs(tmp_path: Path, running) -> None:
    """'skip' (what a concurrent CPU run gets): while the learner is stuck in its first
    update, the collector takes dozens of steps; the backlog stays bounded; once the
    gate opens, updates follow."""
    agent, learner = running(settings_for(tmp_path))
    schedule = agent.schedule
    assert isinstance(schedule, OffPolicySchedule)
    throttle = schedule.throttle
    assert throttle.when_behind == "skip"
    assert learner.entered.wait(SAFETY_S)
    stuck_at = agent.collector.env_steps
    wait_until(lambda: agent.collector.env_steps >= stuck_at + 40 * 4, "collection mid-update")
    assert learner.num_updates == 0, "the update is still held at the gate"
    assert throttle.skipped > 0 and throttle.owed() <= 2 + 1
    assert not throttle.collector_blocked
    learner.gate.set()
    wait_until(lambda: learner.num_updates >= 3, "updates after the gate opened")
    assert agent.error is None


def test_wait_stops_collection_at_the_lag_bound_until_the_learner_catches_up(
    tmp_path: Path,
    running,
) -> None:
    """'wait' (the paper profile): the collector stops once the learner is max_lag_updates
    behind, at a bounded number of steps, and goes on when the update completes."""
    settings = settings_for(tmp_path, collector={"when_learner_behind": "wait"})
    agent, learner = running(settings)
    schedule = agent.schedule
    assert isinstance(schedule, OffPolicySchedule)
    throttle = schedule.throttle
    assert learner.entered.wait(SAFETY_S)
    wait_until(lambda: throttle.collector_blocked, "the collector to wait")
    # It stepped only while the backlog was <= 2 updates; the episodes its last step
    # finished (4 envs, at most 15 steps each) add at most 15 updates of 4 steps.
    assert 2 < throttle.lag() <= 2 + 15 + 1
    assert learner.num_updates == 0 and throttle.skipped == 0
    blocked_at = agent.collector.env_steps
    learner.gate.set()
    wait_until(lambda: agent.collector.env_steps > blocked_at + 8, "collection after the update")
    assert learner.num_updates >= 1


def test_sac_reports_micro_batch_progress_through_the_learner_loop() -> None:
    """What the 'wait' policy credits mid-update: SAC-GLAM's update hears the share done
    after each micro-batch, through the runtime's learner loop."""
    goals, observations, candidates = playground_observations(8, seed=3)
    batch = transition_batch(
        goals,
        observations,
        candidates,
        [0] * 8,
        [0.0] * 8,
        [0.99] * 8,
        observations,
        candidates,
        [False] * 8,
    )

    class FixedBatch:
        def sample(self, batch_size: int) -> TransitionBatch:
            assert batch_size == 8
            return batch

    learner = SACLearner(
        load_model(ModelConfig(path="tiny-causal")),
        SACConfig(critic_hidden=(32, 32), micro_batch_size=3),
    )
    seen: list[float] = []
    loop = LearnerLoop(learner)
    loop.train_step(FixedBatch(), 8, progress=seen.append)  # type: ignore[arg-type]
    assert seen == pytest.approx([3 / 8, 6 / 8, 1.0])
    assert learner.num_updates == 1 and loop.transitions_learned == 8


# ---------------------------------------------------------------- the cpu profile


def test_auto_profile_gives_a_concurrent_cpu_run_short_updates_and_skip() -> None:
    settings = load_settings(None)  # the defaults: concurrent, on the CPU
    assert resolve_profile(settings) == "cpu" and when_learner_behind(settings) == "skip"
    applied = apply_profile(settings)
    assert applied.run.profile == "cpu"
    assert applied.collector.when_learner_behind == "skip"
    for key, value in CPU_PROFILE.items():
        assert getattr(applied.algorithm, key) == value
    paper, cpu = settings.algorithm, applied.algorithm
    assert isinstance(paper, SACConfig) and isinstance(cpu, SACConfig)
    # Same replay ratio as the paper's settings: transitions learned per env step.
    assert cpu.batch_size / cpu.update_every == paper.batch_size / paper.update_every
    # Everything else is the algorithm's own default.
    others = set(type(paper).model_fields) - set(CPU_PROFILE)
    assert {k: getattr(applied.algorithm, k) for k in others} == {
        k: getattr(paper, k) for k in others
    }


@pytest.mark.parametrize(
    ("overrides", "profile", "batch_size", "when"),
    [
        ({"run": {"mode": "serial"}}, "paper", 256, "wait"),  # experiments keep their settings
        ({"run": {"profile": "paper"}}, "paper", 256, "wait"),
        ({"algorithm": {"name": "sac", "batch_size": 64}}, "cpu", 64, "skip"),  # set: kept
        ({"collector": {"when_learner_behind": "wait"}}, "cpu", 16, "wait"),
        ({"run": {"mode": "serial", "profile": "cpu"}}, "cpu", 16, "skip"),
    ],
)
def test_the_profile_never_overrides_what_the_configuration_sets(
    overrides: dict[str, Any], profile: str, batch_size: int, when: str
) -> None:
    applied = apply_profile(load_settings(None, **overrides))
    assert applied.run.profile == profile
    assert isinstance(applied.algorithm, SACConfig)
    assert applied.algorithm.batch_size == batch_size
    assert applied.collector.when_learner_behind == when


def test_a_cuda_run_keeps_the_paper_settings() -> None:
    """'auto' decides from model.device alone, so this needs no GPU."""
    settings = load_settings(None).model_copy(
        update={"model": ModelConfig(device="cuda")}  # validation checks the name only
    )
    applied = apply_profile(settings)
    assert applied.run.profile == "paper"
    assert isinstance(applied.algorithm, SACConfig) and applied.algorithm.batch_size == 256
    assert applied.collector.when_learner_behind == "wait"


def test_the_agent_runs_and_records_the_profiled_settings(tmp_path: Path) -> None:
    """The run directory's config.yaml holds the values the run used."""
    import yaml

    settings = settings_for(tmp_path, algorithm={"name": "sac", "update_every": 4})
    settings = settings.model_copy(
        update={"algorithm": SACConfig(learning_starts=16, critic_hidden=(32, 32))}
    )
    agent = Agent(settings)
    try:
        written = yaml.safe_load(agent.layout.config.read_text())
    finally:
        agent.close()
    assert written["run"]["profile"] == "cpu"
    assert written["collector"]["when_learner_behind"] == "skip"
    assert written["algorithm"]["batch_size"] == CPU_PROFILE["batch_size"]
    assert written["algorithm"]["update_every"] == CPU_PROFILE["update_every"]
