"""Errors a user can cause end a command with one line, not a traceback.

Each case runs the real command in a child process and reads its stderr as an operator
would: the line names what is wrong, and no traceback comes with it unless
``AUTOTELIC_DEBUG=1`` asks for one.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from autotelic.runtime.commands.cli import _user_error
from tests.tmpfs_fixtures import mounted_tmpfs


def _run(config: dict[str, object], workdir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return subprocess.run(
        [sys.executable, "-m", "autotelic", "run", "-c", str(path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, **env},
        cwd=workdir,
    )


def _quiet(run_dir: Path, **extra: object) -> dict[str, object]:
    return {
        "run": {"dir": str(run_dir)},
        "metrics": {"port": 0},
        "service": {"mqtt_enabled": False},
        **extra,
    }


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def test_a_missing_model_path_is_one_line(tmp_path: Path) -> None:
    done = _run(_quiet(tmp_path / "run", model={"path": str(tmp_path / "no-model")}), tmp_path)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.splitlines()) <= 3
    (line,) = _error_lines(done.stderr)
    assert f"model path '{tmp_path / 'no-model'}' is not a Hugging Face model folder" in line


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    config = _quiet(tmp_path / "run", model={"path": str(tmp_path / "no-model")})
    done = _run(config, tmp_path, AUTOTELIC_DEBUG="1")
    assert done.returncode == 1
    assert "Traceback" in done.stderr and "ModelError" in done.stderr


@pytest.fixture
def read_only_dir(tmp_path: Path) -> Iterator[Path]:
    """A read-only file system (a tmpfs mounted ro); needs the right to mount."""
    with mounted_tmpfs(tmp_path / "ro", "ro,size=1m") as where:
        yield where


def test_a_read_only_run_directory_is_one_line(tmp_path: Path, read_only_dir: Path) -> None:
    config = _quiet(read_only_dir / "run", model={"path": "tiny-causal"})
    done = _run(config, tmp_path)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.splitlines()) <= 3
    (line,) = _error_lines(done.stderr)
    assert "Read-only file system" in line and str(read_only_dir) in line


def test_a_checkpoint_fallback_is_logged_in_the_log_format(tmp_path: Path) -> None:
    code = """
import logging, sys
from pathlib import Path
import torch
from autotelic.storage import CheckpointManager
logging.basicConfig(level="INFO", format="%(levelname)s %(name)s: %(message)s")
manager = CheckpointManager(Path(sys.argv[1]))
manager.save({"w": torch.zeros(3)}, step=1)
newest = manager.save({"w": torch.ones(3)}, step=2)
data = (newest.path / "w.pt").read_bytes()
(newest.path / "w.pt").write_bytes(data[: len(data) // 2])
latest = CheckpointManager(Path(sys.argv[1])).latest()
print(latest.step)
"""
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "ckpt")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "1"
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("WARNING autotelic.storage.checkpoints: skipping checkpoint")
    assert "ckpt-000000000002" in lines[0] and "CheckpointWarning" not in done.stderr


def test_which_errors_are_a_users_and_which_are_bugs() -> None:
    from autotelic.runtime.config import ConfigError
    from autotelic.storage.errors import StoreDamagedError

    read_only = OSError(errno.EROFS, "Read-only file system", "/srv/run")
    assert _user_error(read_only) == "/srv/run: Read-only file system"
    assert _user_error(OSError(errno.EADDRINUSE, "Address already in use")) == (
        "Address already in use"
    )
    assert _user_error(ConfigError("bad\n  field")) == "bad field"
    damaged = StoreDamagedError(Path("/srv/run/store"), "truncated")
    assert _user_error(damaged) == str(damaged)
    assert "--run /srv/run --out" in str(damaged)
    assert _user_error(ModuleNotFoundError("no", name="my_plugin")) is not None
    assert _user_error(RuntimeError("a bug")) is None
    assert _user_error(OSError(errno.EIO, "Input/output error")) is None
    assert _user_error(KeyError("x")) is None
