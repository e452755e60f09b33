"""Backends register like environments and algorithms: the configuration checks
``run.backend`` against the registry, the service builds whatever the named backend
builds, and runtime/ imports nothing of distributed/ (Ray registers itself)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from autotelic.core import backend_spec, registered_backends
from autotelic.runtime.config import ConfigError, load_settings
from autotelic.runtime.service import ServiceError, build_agent

ROOT = Path(__file__).resolve().parents[1]
RUN: dict[str, Any] = {"plugins": ["tests.toy_plugin", "tests.toy_backend"], "torch_threads": 1}
TOY: dict[str, Any] = {
    "env": {"id": "toy/NumberLine-v0", "num_envs": 2},
    "algorithm": {"name": "toy-q", "batch_size": 8, "learning_starts": 16, "update_every": 4},
    "replay": {"capacity_transitions": 1000, "durable": False},
    "curriculum": {"discover": False},
}


def test_the_built_in_backends_register_without_importing_ray() -> None:
    assert {"local", "ray"} <= {spec.name for spec in registered_backends()}
    assert backend_spec("ray").modes == ("concurrent",)
    check = (
        "import sys; from autotelic.runtime.config import load_settings; "
        "assert load_settings(None, run={'backend': 'ray'}).run.backend == 'ray'; "
        "print(sorted(m for m in ('ray', 'torch') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", check], capture_output=True, text=True, cwd=ROOT, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_an_unknown_backend_is_refused_with_the_registered_ones() -> None:
    with pytest.raises(ConfigError, match=r"unknown backend 'nope'; registered: local, ray"):
        load_settings(None, run={"backend": "nope"})
    with pytest.raises(ConfigError, match=r"run\.backend ray needs run\.mode concurrent"):
        load_settings(None, run={"backend": "ray", "mode": "serial"})


def test_a_plugin_backend_builds_the_agent_of_the_service(tmp_path: Path) -> None:
    run = {**RUN, "dir": str(tmp_path / "run"), "mode": "serial", "max_env_steps": 40}
    settings = load_settings(None, **{**TOY, "run": {**run, "backend": "toy-inline"}})
    agent = build_agent(settings)
    try:
        assert type(agent).__name__ == "InlineAgent"
        agent.run_serial()
        assert agent.snapshot().env_steps >= 40
    finally:
        agent.close()
    with pytest.raises(ConfigError, match=r"run\.backend toy-inline needs run\.mode serial"):
        load_settings(
            None, **{**TOY, "run": {**run, "backend": "toy-inline", "mode": "concurrent"}}
        )
    broken = load_settings(None, **{**TOY, "run": {**run, "backend": "toy-broken"}})
    with pytest.raises(ServiceError, match=r"backend 'toy-broken' built a object, not an Agent"):
        build_agent(broken)


def test_the_runtime_imports_nothing_of_the_distributed_backend() -> None:
    offending = {}
    for path in sorted((ROOT / "runtime").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else ([node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            )
            bad = [n for n in names if n.startswith("autotelic.distributed")]
            if bad:
                offending[str(path.relative_to(ROOT))] = bad
    assert offending == {}
