"""A configuration ships with the package: ``autotelic run --config cpu`` works from a
wheel, where no checkout (bench/, examples/) is at hand; a short run with it ends with an
evaluation, so its curve has a point. On a machine without a GPU it is also what a new
run starts from when nothing names a configuration or a model."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from autotelic.runtime.commands.cli import app
from autotelic.runtime.startup import (
    MODEL_PATH_VARIABLE,
    PACKAGED_CONFIGS,
    config_path,
    gpu_present,
    packaged_configs,
    run_settings,
)

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


def test_without_a_gpu_a_new_run_that_names_nothing_starts_from_the_cpu_configuration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`autotelic run` with no configuration on a CPU machine: the packaged cpu settings
    (a curve that rises within minutes), under the flags; naming a model or a file, or a
    run that exists, keeps what was named (SmolLM2 is the library's default)."""
    if gpu_present():
        pytest.skip("a GPU is present: the library's defaults apply")
    monkeypatch.delenv(MODEL_PATH_VARIABLE, raising=False)
    new = {"run": {"dir": str(tmp_path / "new")}, "algorithm": {"batch_size": 32}}
    notes: list[str] = []
    chosen = run_settings(None, new, notes)
    assert (chosen.model.path, chosen.run.mode) == ("tiny-words", "serial")
    assert len(notes) == 1 and "no GPU and no configuration" in notes[0]  # the log says so
    assert chosen.eval.interval_env_steps == 2000
    assert getattr(chosen.algorithm, "batch_size", None) == 32  # the flag still wins

    named = run_settings(None, {**new, "model": {"path": "smollm2"}}, notes)
    assert (named.model.path, named.run.mode) == ("smollm2", "concurrent")
    assert len(notes) == 1
    monkeypatch.setenv(MODEL_PATH_VARIABLE, "smollm2")
    assert run_settings(None, new).model.path == "smollm2"
    monkeypatch.delenv(MODEL_PATH_VARIABLE)

    own = tmp_path / "own.yaml"
    own.write_text(yaml.safe_dump({"env": {"num_envs": 2}}))
    from_file = run_settings(own, new)
    assert (from_file.model.path, from_file.run.mode) == ("smollm2", "concurrent")

    shown = CliRunner().invoke(app, ["config", "show", "--run-dir", str(tmp_path / "shown")])
    assert shown.exit_code == 0, shown.output
    assert yaml.safe_load(shown.stdout)["model"]["path"] == "tiny-words"  # what run would use
