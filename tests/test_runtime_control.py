"""The control interface (``runtime/loop/control.py``): what a service or a transport asks
of a run and hears from it, with no transport and whatever the backend; and the schedule
each learner kind registered (``runtime/loop/kinds.py``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from autotelic.core import RegistryError
from autotelic.runtime.config import deep_merge, load_settings
from autotelic.runtime.loop.agent import Agent
from autotelic.runtime.loop.control import Control, EvalReport, FinishedEpisode, InjectionReport
from autotelic.runtime.loop.kinds import register_schedule, schedule_kind
from autotelic.runtime.loop.schedules import OffPolicySchedule

TOY: dict[str, Any] = {
    "run": {"plugins": ["tests.toy_plugin"], "torch_threads": 1, "mode": "serial", "seed": 2},
    "env": {"id": "toy/NumberLine-v0", "num_envs": 2},
    "algorithm": {"name": "toy-q", "batch_size": 8, "learning_starts": 16, "update_every": 4},
    "replay": {"capacity_transitions": 1000, "durable": False},
    "curriculum": {"discover": False},
    "eval": {"interval_env_steps": 40, "episodes_per_category": 2},
    "service": {"mqtt_enabled": True},
}


def test_a_subscriber_hears_episodes_injection_reports_and_evaluations(tmp_path: Path) -> None:
    run = {"dir": str(tmp_path / "run"), "max_env_steps": 120}
    agent = Agent(load_settings(None, **deep_merge(TOY, {"run": run})))
    control: Control = agent  # the agent is the control interface
    episodes: list[FinishedEpisode] = []
    reports: list[InjectionReport] = []
    evaluations: list[EvalReport] = []
    try:
        control.subscribe(episodes=episodes.append, reports=reports.append)
        control.subscribe(evaluations=evaluations.append)
        accepted = control.inject("Reach 8", episodes=2)
        assert (accepted.goal, accepted.episodes) == ("reach 8", 2)
        agent.run_serial()
        assert len(episodes) == len(agent.store) == agent.collection.episodes > 0
        mine = [r for r in reports if r.injection_id == accepted.injection_id]
        assert [r.status for r in mine] == ["episode", "episode", "completed"]
        assert evaluations and evaluations[-1].env_steps <= agent.collection.env_steps
        # The daemon keeps each result until it is acknowledged (the MQTT relay's on_ack).
        owed = control.owed_results()
        assert {r["message_id"] for r in owed} == {r.message_id for r in mine}
        assert all(control.acknowledge(r["message_id"]) for r in owed)
        assert control.owed_results() == []
        assert control.status().results_pending == 0
    finally:
        agent.close()


def test_each_learner_kind_has_its_registered_schedule(tmp_path: Path) -> None:
    assert schedule_kind("off_policy").records_rollouts is False
    assert schedule_kind("on_policy").records_rollouts is True
    with pytest.raises(
        RegistryError, match=r"no schedule registered for learner kind 'model_based'"
    ):
        schedule_kind("model_based")
    with pytest.raises(RegistryError, match=r"'off_policy' already has a schedule"):
        register_schedule("off_policy", schedule_kind("off_policy").build)
    agent = Agent(load_settings(None, **deep_merge(TOY, {"run": {"dir": str(tmp_path / "r")}})))
    try:
        assert isinstance(agent.schedule, OffPolicySchedule) and agent.recorder is None
    finally:
        agent.close()
