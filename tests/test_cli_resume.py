"""``autotelic run`` on a run directory that holds a run: it resumes with the run's own
config.yaml, options given on the restart change only what they name, and a restart the
checkpoint refuses, or a start-up check that fails, writes nothing of the run.

Every command runs in a subprocess, as a user starts it."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

AUTOTELIC = str(Path(sys.executable).parent / "autotelic")
SERIAL = {
    "model": {"path": "tiny-words"},
    "run": {"mode": "serial", "max_env_steps": 64, "torch_threads": 1},
    "service": {"mqtt_enabled": False},
    "metrics": {"enabled": False},
    "eval": {"enabled": False},
    "env": {"num_envs": 4},
    "algorithm": {
        "learning_starts": 32,
        "batch_size": 16,
        "update_every": 8,
        "critic_hidden": [32],
        "critic_lr": 0.0007,
    },
}


def autotelic(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The command line in a fresh interpreter; user errors must not need the traceback."""
    env = {k: v for k, v in os.environ.items() if k != "AUTOTELIC_DEBUG"}
    return subprocess.run(
        [AUTOTELIC, *args],
        check=False,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def fingerprint(run: Path) -> dict[str, str]:
    """Every file of a run by relative path and SHA-256: what "nothing written" compares."""
    return {
        str(p.relative_to(run)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(run.rglob("*"))
        if p.is_file() and p.name != "lock.mdb"  # LMDB's reader table, touched by any open
    }


@pytest.fixture(scope="module")
def first_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A short serial tiny-words run with a config file, stopped at 64 env steps."""
    where = tmp_path_factory.mktemp("resume")
    config = where / "first.yaml"
    config.write_text(yaml.safe_dump(SERIAL))
    done = autotelic("run", "-c", str(config), "--run-dir", "r1", cwd=where)
    assert done.returncode == 0, done.stderr[-3000:]
    assert any((where / "r1" / "checkpoints").glob("ckpt-*"))
    return where / "r1"


def saved(run: Path) -> dict[str, object]:
    data: dict[str, object] = yaml.safe_load((run / "config.yaml").read_text())
    return data


def test_a_restart_the_checkpoint_refuses_writes_nothing_of_the_run(first_run: Path) -> None:
    before = fingerprint(first_run)
    refused = autotelic(
        "run", "--run-dir", str(first_run), "--set", "model.path=tiny-causal", cwd=first_run.parent
    )
    assert refused.returncode == 2
    lines = refused.stderr.strip().splitlines()
    assert lines[-1].startswith("error: ") and "frozen base weights" in lines[-1]
    assert "Traceback" not in refused.stderr
    assert fingerprint(first_run) == before
    assert saved(first_run)["model"]["path"] == "tiny-words"  # type: ignore[index]


def test_a_restart_uses_the_runs_own_config_and_changes_only_what_it_names(
    first_run: Path,
) -> None:
    """No --config on the restart: the run's critic_lr (not the default) and everything else stay;
    the one --set changes run.max_env_steps and the run goes on from its checkpoint."""
    restart = autotelic(
        "run",
        "--run-dir",
        str(first_run),
        "--set",
        "run.max_env_steps=96",
        cwd=first_run.parent,
    )
    assert restart.returncode == 0, restart.stderr[-3000:]
    config = saved(first_run)
    assert config["run"]["max_env_steps"] == 96  # type: ignore[index]
    assert config["algorithm"]["critic_lr"] == 0.0007  # type: ignore[index]
    assert config["model"]["path"] == "tiny-words"  # type: ignore[index]
    assert config["service"]["mqtt_enabled"] is False  # type: ignore[index]
    steps = sorted(int(p.name.split("-")[1]) for p in (first_run / "checkpoints").glob("ckpt-*"))
    assert steps[-1] >= 96
    shown = autotelic("config", "show", "--run-dir", str(first_run), cwd=first_run.parent)
    assert shown.returncode == 0, shown.stderr
    assert yaml.safe_load(shown.stdout)["algorithm"]["critic_lr"] == 0.0007


def test_a_bad_model_path_stops_before_loading_and_leaves_no_run(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    result = autotelic("run", "--run-dir", "fresh", "--set", f"model.path={missing}", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: model path")
    assert not (tmp_path / "fresh").exists()


def test_a_run_directory_that_is_a_file_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("not a run")
    result = autotelic("run", "--run-dir", "taken", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == (
        "error: run directory taken is a file, not a directory; choose another run.dir\n"
    )
    assert (tmp_path / "taken").read_text() == "not a run"
