"""``autotelic inject`` of a goal the goal space knows to be infeasible: accepted, and said."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from autotelic.runtime.commands.cli import _feasibility, app
from autotelic.runtime.config import deep_merge, dump_settings, load_settings
from autotelic.storage import RunLayout
from tests.runtime_fixtures import TINY_SERVICE, Mosquitto, ServiceProcess


def write_run(run: Path, env_id: str) -> Path:
    run.mkdir(parents=True)
    settings = load_settings(None, env={"id": env_id})
    RunLayout(run).config.write_text(yaml.safe_dump(dump_settings(settings)))
    return run


@pytest.mark.parametrize(
    ("goal", "expected"),
    [("Grow chair", False), ("grow  the chair", None), ("Grow carrot", True), ("Grasp sofa", True)],
)
def test_the_runs_goal_space_says_which_goals_are_infeasible(
    tmp_path: Path, goal: str, expected: bool | None
) -> None:
    run = write_run(tmp_path / "run", "autotelic/PlaygroundText-v0")
    assert _feasibility(run, goal) is expected


def test_without_a_run_feasibility_is_unknown(tmp_path: Path) -> None:
    assert _feasibility(tmp_path / "nowhere", "Grow chair") is None


@pytest.mark.slow  # a real service: about 25 s
def test_an_infeasible_goal_is_accepted_with_a_note_and_a_feasible_one_without(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    config = deep_merge(TINY_SERVICE, {"mqtt": {"url": mosquitto.url}, "eval": {"enabled": False}})
    service = ServiceProcess(tmp_path, config)
    service.start()
    try:
        service.wait_connected()
        runner = CliRunner()
        run = ["--run", str(service.run_dir), "--timeout", "20"]
        impossible = runner.invoke(app, ["inject", "Grow chair", *run])
        possible = runner.invoke(app, ["inject", "Grow carrot", *run])
    finally:
        service.terminate()
    assert impossible.exit_code == 0, impossible.output
    assert impossible.output.startswith("accepted: 'Grow chair' x1")
    assert "note: the goal space knows 'Grow chair' is infeasible" in impossible.output
    assert possible.exit_code == 0, possible.output
    assert "infeasible" not in possible.output
