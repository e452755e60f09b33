"""Every error a user can cause ends ``autotelic run`` with one line on stderr and exit
status 2: a configuration file with a syntax error (naming its line and column), one that
cannot be read, a full disk at start. Each runs the command line in a subprocess, as a
user does; what the run directory holds afterwards is checked too."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from autotelic.core.errors import CheckpointError, UserError
from autotelic.learners.base import CheckpointError as LearnerCheckpointError
from autotelic.storage import CheckpointError as StorageCheckpointError
from autotelic.storage import StorageError
from tests.tmpfs_fixtures import mounted_tmpfs

AUTOTELIC = str(Path(sys.executable).parent / "autotelic")


def autotelic(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "AUTOTELIC_DEBUG"}
    return subprocess.run(
        [AUTOTELIC, *args], check=False, cwd=cwd, env=env, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    """The whole of stderr, which must be one line, with exit status 2."""
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr[-2000:]
    return lines[0]


def test_a_yaml_syntax_error_names_its_line_and_column(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("run:\n  seed: 1\nmodel:\n  path: [tiny-words\n")
    line = one_line(autotelic("run", "-c", "bad.yaml", cwd=tmp_path))
    assert line.startswith("bad.yaml: YAML syntax error at line 5, column 1:"), line
    assert not (tmp_path / "runs").exists()


def test_a_toml_syntax_error_names_its_line_and_column(tmp_path: Path) -> None:
    (tmp_path / "bad.toml").write_text('[run]\nseed = 1\n[model]\npath = "tiny-words\n')
    line = one_line(autotelic("config", "show", "-c", "bad.toml", cwd=tmp_path))
    assert line.startswith("bad.toml: TOML syntax error at line 4, column "), line


def test_a_config_file_that_cannot_be_read_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "folder.yaml").mkdir()
    line = one_line(autotelic("run", "-c", "folder.yaml", cwd=tmp_path))
    assert line == "cannot read config file folder.yaml: Is a directory"
    (tmp_path / "latin.yaml").write_bytes("run:\n  agent: caf\xe9\n".encode("latin-1"))
    line = one_line(autotelic("run", "-c", "latin.yaml", cwd=tmp_path))
    assert line == "cannot read config file latin.yaml: not UTF-8 text (byte 17)"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MiB tmpfs, mounted for this test only."""
    with mounted_tmpfs(tmp_path / "disk", "size=16m") as disk:
        yield disk


def fill(disk: Path) -> None:
    """Write until the disk refuses."""
    fd = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        while True:
            os.write(fd, b"\0" * (1 << 16))
    except OSError as err:
        if err.errno != errno.ENOSPC:
            raise
    finally:
        os.close(fd)


def test_a_full_disk_at_start_is_one_line_and_leaves_no_run(small_disk: Path) -> None:
    fill(small_disk)
    result = autotelic(
        "run", "--run-dir", str(small_disk / "run"), "--set", "model.path=tiny-words",
        cwd=small_disk.parent,
    )  # fmt: skip
    line = one_line(result)
    assert line.startswith(f"error: No space left on device for run directory {small_disk}/run")
    assert not (small_disk / "run").exists()


def test_the_cli_knows_user_errors_by_one_base_and_checkpoints_by_one_class() -> None:
    """What the command line catches is the core's UserError; the storage layer and the
    learners raise the same CheckpointError, so whoever restores a run catches one class."""
    assert StorageCheckpointError is CheckpointError is LearnerCheckpointError
    assert issubclass(CheckpointError, UserError)
    assert issubclass(StorageError, UserError)
    cli = (Path(__file__).resolve().parents[1] / "runtime/commands/cli.py").read_text()
    assert "_USER_ERRORS" not in cli
