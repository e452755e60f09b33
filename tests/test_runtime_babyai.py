"""BabyAI-Text through the whole runtime: collection, LMDB, relabeling, the curriculum over
BabyAI missions, MQTT injection with reasons, evaluation on both splits, replay export,
for SAC-GLAM and PPO-GLAM."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from autotelic.goals import InjectionRejected
from autotelic.runtime.commands.cli import app
from autotelic.runtime.config import deep_merge, load_settings
from autotelic.runtime.loop.agent import Agent
from autotelic.runtime.transport.messages import Topics
from tests.runtime_fixtures import TINY_PPO, TINY_SERVICE, Mosquitto, Probe, ServiceProcess

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "babyai.yaml"
FAMILIES = {"go_to", "pick_up"}


def babyai_settings(tmp_path: Path, algorithm: dict[str, Any] | None = None, **extra: Any) -> Any:
    config = deep_merge(yaml.safe_load(EXAMPLE.read_text()), TINY_SERVICE)
    config = deep_merge(config, {"run": {"dir": str(tmp_path / "run"), "mode": "serial"}})
    config = deep_merge(config, {"collector": {"exploration_epsilon": 0.3}})
    config = deep_merge(config, {"env": {"go_to_horizon": 24, "pick_up_horizon": 24}})
    if algorithm is not None:
        config["algorithm"] = algorithm
    return load_settings(None, **deep_merge(config, extra))


def test_sac_collects_stores_relabels_and_evaluates_babyai_missions(tmp_path: Path) -> None:
    agent = Agent(babyai_settings(tmp_path, run={"max_env_steps": 600}))
    try:
        assert {agent.goal_space.parse(g.text).category for g in agent.daemon.goals()} == FAMILIES
        reply = agent.inject("Pick up a RED ball", episodes=1, priority=3)
        assert reply.goal == "pick up the red ball"
        with pytest.raises(InjectionRejected, match="unknown colour 'plaid'"):
            agent.inject("pick up the plaid ball")
        agent.run_serial()
        episodes = list(agent.store.iter_episodes())
        assert episodes and {e.env_id for e in episodes} == {"autotelic/BabyAIText-v0"}
        assert [e.goal for e in episodes if e.goal_source == "injected"] == ["pick up the red ball"]
        achieved = [g for e in episodes for s in e.steps for g in s.achieved_goals]
        assert achieved and all(agent.goal_space.parse(g) for g in achieved)
        assert agent.learner.num_updates > 10
        assert agent.learner_loop.last["relabeled_share"] > 0.0
    finally:
        agent.close()
    runner = CliRunner()
    run = ["--run", str(tmp_path / "run")]
    evaluated = runner.invoke(app, ["eval", *run, "--episodes-per-goal", "1", "--json"])
    assert evaluated.exit_code == 0, evaluated.output
    results = json.loads(evaluated.stdout)  # progress lines go to stderr
    assert {(r["split"], r["greedy"]) for r in results} == {
        (s, g) for s in ("train", "test") for g in (True, False)
    }
    assert all(set(r["success"]) == FAMILIES for r in results)
    out = tmp_path / "episodes.jsonl"
    exported = runner.invoke(app, ["replay", "export", *run, "-o", str(out)])
    assert exported.exit_code == 0, exported.output
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == len(episodes) and lines[0]["env_id"] == "autotelic/BabyAIText-v0"


def test_ppo_learns_from_babyai_rollouts(tmp_path: Path) -> None:
    agent = Agent(babyai_settings(tmp_path, TINY_PPO, run={"max_env_steps": 200}))
    try:
        agent.run_serial()
        assert agent.learner.num_updates >= 2 and agent.learner_loop.last["steps"] == 64
    finally:
        agent.close()


@pytest.fixture
def babyai_service(mosquitto: Mosquitto, tmp_path: Path) -> Iterator[ServiceProcess]:
    config = deep_merge(yaml.safe_load(EXAMPLE.read_text()), TINY_SERVICE)
    config = deep_merge(config, {"mqtt": {"url": mosquitto.url}})
    del config["run"]["dir"]  # the test's own run directory
    proc = ServiceProcess(tmp_path, config)
    proc.start()
    proc.wait_connected()
    yield proc
    if proc.alive():
        proc.kill()


def test_the_service_runs_babyai_and_answers_injections_over_mqtt(
    babyai_service: ServiceProcess, mosquitto: Mosquitto
) -> None:
    topics = Topics("babyai")
    probe = Probe(mosquitto.port, [topics.accepted, topics.rejected, topics.results])
    try:
        probe.publish(topics.inject, '{"goal": "pick up the plaid ball"}')
        _, rejected, _ = probe.next(topic=topics.rejected, timeout=30)
        assert "unknown colour 'plaid'" in rejected["reason"]
        probe.publish(topics.inject, '{"goal": "pick up the red ball", "priority": 5}')
        _, accepted, _ = probe.next(topic=topics.accepted, timeout=30)
        assert accepted["goal"] == "pick up the red ball"
        _, result, _ = probe.next(topic=topics.results, timeout=120)
        assert result["status"] == "episode" and result["goal"] == "pick up the red ball"
    finally:
        probe.close()
    assert babyai_service.terminate() == 0
