"""The thin commands never load torch or transformers: each runs in a fresh interpreter
that reports, as it exits, which of the two it imported."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from autotelic.storage import EpisodeStore, RunLayout
from tests.runtime_fixtures import Mosquitto
from tests.storage_fixtures import playground_episode

PROBE = """
import atexit, sys
atexit.register(lambda: print("HEAVY", sorted(m for m in ("torch", "transformers")
                                               if m in sys.modules), file=sys.stderr))
from autotelic.runtime.commands.cli import app
sys.argv = ["autotelic", *sys.argv[1:]]
app()
"""


def run_thin(args: str, cwd: Path) -> tuple[int, str, str]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *shlex.split(args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
        check=False,
    )
    return done.returncode, done.stdout, done.stderr


@pytest.fixture
def run_dir(tmp_path: Path, mosquitto: Mosquitto) -> Path:
    """A run directory as a service leaves it: a store with episodes, and the endpoints
    of a broker that answers (with no agent behind it)."""
    layout = RunLayout(tmp_path / "run")
    layout.root.mkdir()
    store = EpisodeStore(layout.store)
    try:
        store.put_many([playground_episode(seed) for seed in range(3)])
    finally:
        store.close()
    endpoints = {"agent": "thin", "mqtt": mosquitto.url, "topic_prefix": "autotelic/thin"}
    layout.endpoints.write_text(json.dumps(endpoints))
    return layout.root


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        ("config show", 0, "run:"),
        ("envs", 0, "autotelic/PlaygroundText-v0"),
        ("algorithms", 0, "sac"),
        ("replay stats --run {run}", 0, "3"),
        ("status --run {run} --timeout 1", 1, "no status from agent 'thin'"),
        ('inject --run {run} --timeout 1 "Grasp cow"', 2, "no reply from agent 'thin'"),
    ],
)
def test_a_thin_command_does_its_work_without_torch_or_transformers(
    args: str, code: int, says: str, run_dir: Path, tmp_path: Path
) -> None:
    returned, out, err = run_thin(args.format(run=run_dir), tmp_path)
    heavy = [line for line in err.splitlines() if line.startswith("HEAVY")]
    assert heavy == ["HEAVY []"], err
    assert returned == code, err
    assert says in out + err
