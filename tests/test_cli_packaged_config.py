"""A configuration ships with the package: ``autotelic run --config cpu`` works from a
wheel, where no checkout (bench/, examples/) is at hand; a short run with it ends with an
evaluation, so its curve has a point."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml
from typer.testing import CliRunner

from autotelic.runtime.commands.cli import app
from autotelic.runtime.startup import PACKAGED_CONFIGS, config_path, packaged_configs

ROOT = Path(__file__).resolve().parents[1]
AUTOTELIC = str(Path(sys.executable).parent / "autotelic")


def test_the_cpu_configuration_is_found_by_name_and_is_valid() -> None:
    assert "cpu" in packaged_configs()
    assert config_path(Path("cpu")) == PACKAGED_CONFIGS / "cpu.yaml"
    assert config_path(Path("cpu.yaml")) == PACKAGED_CONFIGS / "cpu.yaml"
    assert config_path(Path("elsewhere/cpu")) == Path("elsewhere/cpu")  # a path stays a path
    shown = CliRunner().invoke(app, ["config", "show", "--config", "cpu", "--run-dir", "r"])
    assert shown.exit_code == 0, shown.output
    settings = yaml.safe_load(shown.stdout)
    assert settings["model"]["path"] == "tiny-words"
    assert settings["run"]["mode"] == "serial"
    assert settings["algorithm"]["name"] == "sac" and settings["eval"]["enabled"] is True


def test_the_wheel_ships_the_packaged_configurations() -> None:
    """The package data names them (the slow wheel test installs and runs one)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    data = project["tool"]["setuptools"]["package-data"]
    assert "configs/*.yaml" in data["autotelic.runtime"]
    assert project["tool"]["setuptools"]["package-dir"]["autotelic.runtime"] == "runtime"
    assert (ROOT / "runtime" / "configs" / "cpu.yaml") == PACKAGED_CONFIGS / "cpu.yaml"


def test_a_short_run_with_the_cpu_configuration_ends_with_an_evaluation(tmp_path: Path) -> None:
    """600 env steps, far before the first periodic evaluation at 2,000: the run is
    evaluated at its end all the same."""
    sets = {
        "run.max_env_steps": "600",
        "run.torch_threads": "1",
        "service.mqtt_enabled": "false",
        "metrics.enabled": "false",
        "eval.episodes_per_category": "1",
    }
    args = [a for k, v in sets.items() for a in ("--set", f"{k}={v}")]
    env = {k: v for k, v in os.environ.items() if k != "AUTOTELIC_DEBUG"}
    done = subprocess.run(
        [AUTOTELIC, "run", "--config", "cpu", "--run-dir", "r", "--seed", "1", *args],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    with (tmp_path / "r" / "evaluations.csv").open() as f:
        rows = list(csv.DictReader(f))
    (at,) = {int(r["env_steps"]) for r in rows}
    assert 600 <= at < 2000  # the end of the run (16 envs step together), not a periodic one
    assert {r["split"] for r in rows} == {"train", "test"}
