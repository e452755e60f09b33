"""`autotelic plot`: PNG learning curves from a run directory alone, and its errors."""

from __future__ import annotations

import math
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from autotelic.runtime.commands.cli import app
from autotelic.runtime.config import deep_merge, load_settings
from autotelic.runtime.loop.agent import Agent
from autotelic.runtime.telemetry.run_logs import ProgressLog, read_rows
from autotelic.storage import RunLayout
from tests.runtime_fixtures import TINY_SERVICE

EXPECTED = {  # file -> (width, height): 100 dpi, 5 x 3.6 inches per panel, 3 panels a row
    "evaluation.png": (1500, 720),  # 4 Playground categories with goals + their mean
    "learning_progress.png": (1000, 360),
    "losses.png": (1500, 720),
    "throughput.png": (1500, 360),
}


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()[:24]
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", f"{path} is not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A serial run that evaluates every 120 steps and logs progress every 40, as the
    service does at each progress interval."""
    run = tmp_path_factory.mktemp("plot") / "run"
    settings = load_settings(
        None,
        **deep_merge(
            TINY_SERVICE,
            {
                "run": {"dir": str(run), "mode": "serial", "max_env_steps": 480},
                "eval": {
                    "interval_env_steps": 120,
                    "episodes_per_category": 1,
                    "max_cost_fraction": 1.0,
                },
            },
        ),
    )
    agent = Agent(settings)
    progress = ProgressLog(agent.layout.progress, agent.goal_space.categories())
    try:
        agent.run_serial(hooks=[(40, progress.record)])
    finally:
        progress.close()
        agent.close()
    yield run


def test_plot_writes_every_png_from_the_run_directory(run_dir: Path, tmp_path: Path) -> None:
    layout = RunLayout(run_dir)
    progress = read_rows(layout.progress)
    assert len(progress) == 12 and progress[-1]["env_steps"] == "480"
    assert math.isfinite(float(progress[-1]["critic_loss"]))
    assert {"lp:grasp", "success_rate:grow_plant"} <= set(progress[0])
    result = CliRunner().invoke(app, ["plot", "--run", str(run_dir)])
    assert result.exit_code == 0, result.output
    written = {Path(line).name: Path(line) for line in result.output.splitlines()}
    assert set(written) == set(EXPECTED)
    for name, path in written.items():
        assert path.parent == layout.plots
        assert path.stat().st_size > 10_000, name  # drawn, not blank
        assert png_size(path) == EXPECTED[name], name
    elsewhere = CliRunner().invoke(app, ["plot", "--run", str(run_dir), "-o", str(tmp_path)])
    assert elsewhere.exit_code == 0, elsewhere.output
    assert sorted(p.name for p in tmp_path.glob("*.png")) == sorted(EXPECTED)


def test_plot_refuses_a_directory_that_is_not_a_run(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["plot", "--run", str(tmp_path)])
    assert result.exit_code == 2
    assert f"error: {tmp_path} is not a run directory (no config.yaml)" in result.output
    assert not list(tmp_path.rglob("*.png"))


def test_plot_says_when_a_run_has_nothing_to_plot_yet(tmp_path: Path) -> None:
    RunLayout(tmp_path).config.write_text("run: {}\n")
    result = CliRunner().invoke(app, ["plot", "--run", str(tmp_path)])
    assert result.exit_code == 2
    assert "nothing to plot in" in result.output and "evaluations.csv" in result.output


def test_the_service_modules_do_not_import_matplotlib() -> None:
    code = (
        "import sys, autotelic.runtime.service, autotelic.runtime.commands.cli, "
        "autotelic.runtime.evaluation.periodic; "
        "sys.exit('matplotlib' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False, timeout=120).returncode == 0
