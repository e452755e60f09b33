"""The client commands' handling of bad connection details (no broker needed)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from autotelic.runtime.cli import app


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
