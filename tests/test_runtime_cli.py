"""The client commands: where they find the agent, and bad connection details."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from autotelic.runtime.commands.cli import app
from autotelic.storage import RunLayout
from tests.runtime_fixtures import Mosquitto, Probe


@pytest.mark.parametrize("command", [["status"], ["inject", "Grow carrot"]])
def test_a_broker_url_the_service_would_refuse_is_refused_with_the_reason(
    command: list[str],
) -> None:
    result = CliRunner().invoke(
        app, [*command, "--broker", "http://127.0.0.1:1883", "--agent", "a"]
    )
    assert result.exit_code == 2
    assert "url scheme must be mqtt or mqtts, got 'http'" in result.output


def test_without_a_run_or_a_broker_the_client_says_what_to_give(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["status", "--run", str(tmp_path / "nowhere")])
    assert result.exit_code == 2
    assert "Give --broker (and --agent) instead." in result.output


def test_status_finds_an_agent_under_a_configured_topic_root(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    """A service with ``mqtt.topic_root: lab`` is reached through its run's endpoints file
    or ``--topic-root``; the default root would miss it."""
    probe = Probe(mosquitto.port, [])
    status = {"state": "online", "agent": "a7", "env_steps": 42}
    probe.client.publish("lab/a7/status", json.dumps(status), qos=1, retain=True).wait_for_publish(
        timeout=10
    )
    probe.close()
    run = tmp_path / "run"
    run.mkdir()
    endpoints = {"agent": "a7", "mqtt": mosquitto.url, "topic_prefix": "lab/a7"}
    RunLayout(run).endpoints.write_text(json.dumps(endpoints))
    runner = CliRunner()

    from_run = runner.invoke(app, ["status", "--run", str(run)])
    assert from_run.exit_code == 0, from_run.output
    assert json.loads(from_run.output)["env_steps"] == 42

    flags = ["status", "--broker", mosquitto.url, "--agent", "a7", "--timeout", "2"]
    assert runner.invoke(app, [*flags, "--topic-root", "lab"]).exit_code == 0
    missed = runner.invoke(app, flags)
    assert missed.exit_code == 1 and "no status from agent 'a7'" in missed.output
