"""A run directory written before the contracts (autotelic 0.1 layout) still opens."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from autotelic.runtime.commands.offline import evaluate_checkpoint
from autotelic.runtime.config import load_settings
from autotelic.runtime.loop.agent import Agent

LEGACY = Path(__file__).parent / "data" / "run_v0.1"
"""Written by the 0.1 runtime: tiny model, 60 env steps, 8 episodes, 5 SAC updates."""


def copy_of_the_legacy_run(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    shutil.copytree(LEGACY, run)
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["run"]["dir"] = str(run)
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    return run


def test_its_configuration_reads_in_the_current_layout(tmp_path: Path) -> None:
    run = copy_of_the_legacy_run(tmp_path)
    settings = load_settings(run / "config.yaml")
    assert settings.algorithm.name == "sac"
    assert getattr(settings.algorithm, "batch_size", None) == 8
    assert settings.env.id == "autotelic/PlaygroundText-v0"
    assert getattr(settings.env, "n_objects", None) == 4 and settings.env.num_envs == 2


def test_the_agent_resumes_its_counters_policy_and_episodes(tmp_path: Path) -> None:
    run = copy_of_the_legacy_run(tmp_path)
    settings = load_settings(run / "config.yaml", run={"max_env_steps": 80})
    agent = Agent(settings)
    try:
        assert agent.restarts == 1
        assert (agent.collector.env_steps, agent.collector.episodes) == (60, 8)
        assert agent.learner.num_updates == 5
        assert len(agent.store) == 8
        assert agent.daemon.stats().episodes == 8  # the curriculum came back with the policy
        agent.run_serial()
        assert agent.collector.env_steps >= 80 and len(agent.store) > 8
    finally:
        agent.close()


def test_its_checkpoint_evaluates(tmp_path: Path) -> None:
    run = copy_of_the_legacy_run(tmp_path)
    results = evaluate_checkpoint(run, episodes_per_goal=1)
    assert [(r.split, r.greedy) for r in results] == [
        ("train", True),
        ("train", False),
        ("test", True),
        ("test", False),
    ]
    assert all(r.episodes > 0 and set(r.success) for r in results)
