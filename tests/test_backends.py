"""Backends register like environments and algorithms: the configuration checks
``run.backend`` against the registry, the run is composed of the parts the named backend
supplies, and runtime/ imports nothing of distributed/ (Ray registers itself)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from autotelic.core import RegistryError, backend_spec, registered_backends
from autotelic.runtime.config import ConfigError, load_settings
from autotelic.runtime.loop.agent import Agent
from autotelic.runtime.service import build_agent
from tests.toy_backend import EveryStep, ToyParts

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


def test_a_plugin_backend_supplies_its_own_parts_to_the_run(tmp_path: Path) -> None:
    """A backend is the parts it supplies: the toy's goal daemon, collector, schedule and
    driver run the service's agent, which nobody subclassed."""
    run = {**RUN, "dir": str(tmp_path / "run"), "mode": "serial", "max_env_steps": 40}
    settings = load_settings(None, **{**TOY, "run": {**run, "backend": "toy-inline"}})
    agent = build_agent(settings)
    try:
        assert type(agent) is Agent and isinstance(agent.parts, ToyParts)
        assert isinstance(agent.schedule, EveryStep)
        agent.run_serial()
        driver = agent.parts.counting
        assert driver is not None and driver.steps == agent.snapshot().env_steps // 2 >= 20
        # The toy schedule learns on every step once 16 transitions are stored.
        assert 0 < agent.learner.num_updates < driver.steps
        assert len(agent.store) == agent.collection.episodes > 0
        (actor,) = agent.status().actors or ()
        assert (actor.node, actor.env_steps) == ("toy", driver.steps)
    finally:
        agent.close()
    assert agent.parts.closed
    # Started as a service would start it: the toy driver's one worker thread.
    resumed = build_agent(load_settings(
        None, **{**TOY, "run": {**run, "backend": "toy-inline", "max_env_steps": 80}}
    ))  # fmt: skip
    try:
        threads = resumed.start_threads()
        assert [t.name for t in threads] == ["toy-loop"]
        for t in threads:
            t.join(timeout=120)
        assert not threads[0].is_alive() and resumed.error is None
        assert resumed.snapshot().env_steps >= 80
    finally:
        resumed.close()
    with pytest.raises(ConfigError, match=r"run\.backend toy-inline needs run\.mode serial"):
        load_settings(
            None, **{**TOY, "run": {**run, "backend": "toy-inline", "mode": "concurrent"}}
        )
    broken = load_settings(None, **{**TOY, "run": {**run, "backend": "toy-broken"}})
    with pytest.raises(RegistryError, match=r"backend 'toy-broken' supplied a object, not run"):
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
