"""Checkpoints: atomic save, verified manifest, fallback past broken ones, safe loading."""

from __future__ import annotations

import json
import os
import pickle
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from autotelic.storage import (
    CheckpointManager,
    CheckpointWarning,
    SchemaVersionError,
)
from autotelic.storage.checkpoints import MANIFEST, _sha256

ROOT = Path(__file__).resolve().parents[1]


def _state(seed: int) -> dict[str, Any]:
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.randn(3, 4)).sum().backward()
    optimizer.step()
    return {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "learner": {"log_alpha": torch.tensor(-3.0 + seed), "updates": seed, "betas": (0.9, 0.99)},
        "curriculum": {"goals": {"Grasp cow": [0.1, 0.5]}, "seed": seed, "ünï": None},
    }


def _assert_same(a, b) -> None:
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and torch.equal(a, b)
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys()
        for k in a:
            _assert_same(a[k], b[k])
    elif isinstance(a, list | tuple):
        assert type(a) is type(b) and len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            _assert_same(x, y)
    else:
        assert a == b


def test_save_and_load_round_trip_every_part(tmp_path):
    manager = CheckpointManager(tmp_path)
    state = _state(1)
    saved = manager.save(state, step=1200, metadata={"policy_version": 7, "env_steps": 76800})
    assert saved.path.name == "ckpt-000000001200"
    assert sorted(p.name for p in saved.path.iterdir()) == [
        "curriculum.json",
        "learner.pt",
        MANIFEST,
        "model.pt",
        "optimizer.pt",
    ]
    manifest = json.loads((saved.path / MANIFEST).read_text())
    assert manifest["step"] == 1200 and manifest["metadata"]["policy_version"] == 7
    for entry in manifest["files"].values():
        assert entry["size"] == (saved.path / entry["file"]).stat().st_size
        assert entry["sha256"] == _sha256(saved.path / entry["file"])
    loaded = CheckpointManager(tmp_path).load()  # a fresh manager, as after a restart
    assert loaded is not None and loaded.step == 1200 and loaded.metadata["env_steps"] == 76800
    _assert_same(state, loaded.state)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    model.load_state_dict(loaded.state["model"])
    torch.optim.Adam(model.parameters()).load_state_dict(loaded.state["optimizer"])


def test_latest_is_the_newest_and_old_ones_are_pruned_to_keep(tmp_path):
    manager = CheckpointManager(tmp_path, keep=2)
    assert manager.latest() is None and manager.load() is None
    for step in (10, 30, 20, 40):
        manager.save(_state(step), step=step)
    assert [c.step for c in manager.checkpoints()] == [40, 30]
    latest = manager.latest()
    assert latest is not None and latest.step == 40
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt-000000000030", "ckpt-000000000040"]


def test_saving_the_same_step_again_replaces_it(tmp_path):
    manager = CheckpointManager(tmp_path)
    manager.save(_state(1), step=5)
    manager.save(_state(2), step=5, metadata={"again": True})
    loaded = manager.load()
    assert loaded is not None and loaded.metadata == {"again": True}
    _assert_same(_state(2)["model"], loaded.state["model"])
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt-000000000005"]


def _break(path: Path, how: str) -> None:
    model = path / "model.pt"
    if how == "truncated":
        data = model.read_bytes()
        model.write_bytes(data[: len(data) // 2])
    elif how == "flipped":
        flipped = bytearray(model.read_bytes())
        flipped[len(flipped) // 3] ^= 0x01
        model.write_bytes(bytes(flipped))
    elif how == "no manifest":
        (path / MANIFEST).unlink()
    elif how == "garbage manifest":
        (path / MANIFEST).write_text("{not json")
    elif how == "missing part":
        model.unlink()


@pytest.mark.parametrize(
    "how", ["truncated", "flipped", "no manifest", "garbage manifest", "missing part"]
)
def test_a_broken_newest_checkpoint_is_skipped_with_a_warning(tmp_path, how):
    manager = CheckpointManager(tmp_path, keep=3)
    manager.save(_state(1), step=100)
    newest = manager.save(_state(2), step=200)
    _break(newest.path, how)
    fresh = CheckpointManager(tmp_path)
    with pytest.warns(CheckpointWarning, match="ckpt-000000000200"):
        latest = fresh.latest()
    assert latest is not None and latest.step == 100
    with pytest.warns(CheckpointWarning):
        loaded = fresh.load()
    assert loaded is not None
    _assert_same(_state(1)["model"], loaded.state["model"])


def test_a_leftover_partial_save_is_ignored_and_cleaned(tmp_path):
    manager = CheckpointManager(tmp_path)
    manager.save(_state(1), step=1)
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    partial = tmp_path / f".tmp-2-{int(dead.stdout)}-abc123"
    partial.mkdir()
    (partial / "model.pt").write_bytes(b"half a checkpoint")
    latest = CheckpointManager(tmp_path).latest()
    assert latest is not None and latest.step == 1
    assert not partial.exists()


def test_unsafe_parts_are_refused_when_saving_not_when_resuming(tmp_path):
    manager = CheckpointManager(tmp_path)
    with pytest.raises(
        ValueError, match=r"part 'learner' holds .*numpy.*weights_only=True refuses"
    ):
        manager.save({"learner": {"buffer": np.zeros(3)}}, step=1)
    with pytest.raises(ValueError, match=r"part name '\.\./x'"):
        manager.save({"../x": 1}, step=1)
    with pytest.raises(ValueError, match="metadata must be JSON"):
        manager.save({"a": 1}, step=1, metadata={"t": torch.zeros(1)})
    with pytest.raises(ValueError, match="step must be a non-negative int"):
        manager.save({"a": 1}, step=-1)
    assert list(tmp_path.iterdir()) == []  # nothing half-written left behind


class _RunsCode:
    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))

    marker = ""


def test_loading_cannot_run_code_from_a_tampered_checkpoint(tmp_path):
    manager = CheckpointManager(tmp_path)
    saved = manager.save(_state(1), step=1)
    marker = tmp_path / "pwned"
    _RunsCode.marker = str(marker)
    evil = saved.path / "model.pt"
    with evil.open("wb") as f:
        pickle.dump({"weight": _RunsCode()}, f, protocol=2)
    # The attacker also fixes the manifest, so the checksums pass.
    manifest = json.loads((saved.path / MANIFEST).read_text())
    manifest["files"]["model"].update(size=evil.stat().st_size, sha256=_sha256(evil))
    (saved.path / MANIFEST).write_text(json.dumps(manifest))
    fresh = CheckpointManager(tmp_path)
    with pytest.raises(pickle.UnpicklingError):
        fresh.load()
    assert not marker.exists()


def test_a_checkpoint_from_a_newer_format_is_a_clear_error(tmp_path):
    saved = CheckpointManager(tmp_path).save({"a": 1}, step=3)
    manifest = json.loads((saved.path / MANIFEST).read_text())
    manifest["format"] = 9
    (saved.path / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(SchemaVersionError, match="schema version 9"):
        CheckpointManager(tmp_path).latest()


_SAVER = """
import sys, torch
from autotelic.storage import CheckpointManager
manager = CheckpointManager(sys.argv[1], keep=2)
latest = manager.latest()
step = 0 if latest is None else latest.step + 1
big = torch.arange(400_000, dtype=torch.float32)
while True:
    manager.save({"model": {"w": big + step}, "curriculum": {"step": step}}, step=step)
    print(step, flush=True)
    step += 1
"""


def _kill_saves(tmp_path: Path, kills: int, seed: int) -> None:
    rng = random.Random(seed)
    acknowledged = -1
    for _ in range(kills):
        proc = subprocess.Popen(
            [sys.executable, "-c", _SAVER, str(tmp_path)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        for _ in range(rng.randint(1, 4)):
            line = proc.stdout.readline()
            if line.endswith("\n"):
                acknowledged = int(line)
        time.sleep(rng.uniform(0, 0.05))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        manager = CheckpointManager(tmp_path, keep=2)
        latest = manager.latest()
        assert latest is not None and latest.step >= acknowledged
        loaded = manager.load(latest)
        assert loaded is not None
        assert torch.equal(
            loaded.state["model"]["w"], torch.arange(400_000, dtype=torch.float32) + latest.step
        )
        assert loaded.state["curriculum"] == {"step": latest.step}
        assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp")]


def test_kill_9_during_saves_leaves_a_complete_latest_checkpoint(tmp_path):
    _kill_saves(tmp_path, kills=3, seed=1)


@pytest.mark.slow
def test_kill_9_during_saves_many_times(tmp_path):
    _kill_saves(tmp_path, kills=25, seed=2)
