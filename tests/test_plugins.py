"""Bring your own environment and algorithm: a toy pair defined in tests/ runs through
the serial agent and the real service, and the core names no environment or algorithm."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from autotelic.core import algorithm_spec, env_spec, registered_envs
from autotelic.runtime.config import ConfigError, deep_merge, load_settings
from autotelic.runtime.evaluation.evaluate import evaluate
from autotelic.runtime.loop.agent import Agent
from autotelic.runtime.loop.schedules import OffPolicySchedule
from autotelic.runtime.transport.messages import Topics
from tests.runtime_fixtures import TINY_SERVICE, Mosquitto, Probe, ServiceProcess

ROOT = Path(__file__).resolve().parents[1]
TOY = {
    "run": {"plugins": ["tests.toy_plugin"], "torch_threads": 1},
    "env": {"id": "toy/NumberLine-v0", "num_envs": 4},
    "algorithm": {"name": "toy-q", "batch_size": 32, "learning_starts": 64, "update_every": 4},
    "replay": {"capacity_transitions": 5000, "durable": False},
    "curriculum": {"discover": False},
}


def toy_settings(tmp_path: Path, **extra: Any) -> Any:
    base = deep_merge(TOY, {"run": {"dir": str(tmp_path / "run"), "mode": "serial"}})
    return load_settings(None, **deep_merge(base, extra))


def test_plugins_named_in_the_configuration_register_before_validation(tmp_path: Path) -> None:
    settings = toy_settings(tmp_path)
    assert settings.env.id == "toy/NumberLine-v0"
    assert type(settings.algorithm).__name__ == "ToyQConfig"
    assert algorithm_spec("toy-q").kind == "off_policy"
    assert "toy/NumberLine-v0" in [s.id for s in registered_envs()]
    with pytest.raises(ConfigError, match=r"cannot import plug-in module 'tests\.nowhere'"):
        load_settings(None, run={"plugins": ["tests.nowhere"]})
    with pytest.raises(ConfigError, match=r"env.horizon: Input should be greater than or equal"):
        toy_settings(tmp_path, env={"horizon": 0})


def test_the_serial_agent_stores_relabels_and_learns_on_the_toy_pair(tmp_path: Path) -> None:
    agent = Agent(toy_settings(tmp_path, run={"max_env_steps": 3000, "seed": 1}))
    try:
        agent.run_serial()
        episodes = list(agent.store.iter_episodes())
        assert {e.env_id for e in episodes} == {"toy/NumberLine-v0"}
        assert all(s.achieved_goals == [s.observation and s.achieved_goals[0]] for e in episodes
                   for s in e.steps)  # fmt: skip
        assert agent.learner.num_updates > 500
        assert agent.learner_loop.last["relabeled_share"] > 0.3  # HER relabels toy goals
        spec = env_spec("toy/NumberLine-v0")
        rates = {
            split: evaluate(agent.learner, spec, agent.settings.env, split=split, greedy=True,
                            episodes_per_goal=4).overall
            for split in ("train", "test")
        }  # fmt: skip
        # Uniform wandering reaches a cell within 8 steps about 40% of the time.
        assert rates["train"] > 0.75
        # Held-out cells never train (never pursued, never a relabel): the tabular learner
        # knows nothing of them, so they stay where an untrained policy is.
        held_out = set(spec.goal_space(agent.settings.env).goals("test"))
        schedule = agent.schedule
        assert isinstance(schedule, OffPolicySchedule)
        assert not held_out & set(schedule.sampler.sample(512).goals)
        assert rates["test"] < rates["train"] - 0.3
    finally:
        agent.close()


@pytest.fixture
def toy_service(mosquitto: Mosquitto, tmp_path: Path) -> Iterator[ServiceProcess]:
    config = deep_merge(
        {k: v for k, v in TINY_SERVICE.items() if k not in ("model", "algorithm", "env")},
        deep_merge(TOY, {"run": {"agent": "toy"}, "mqtt": {"url": mosquitto.url}}),
    )
    proc = ServiceProcess(tmp_path, config, env={"PYTHONPATH": str(ROOT)})
    proc.start()
    proc.wait_connected()
    yield proc
    if proc.alive():
        proc.kill()


def test_the_real_service_runs_the_toy_pair_and_serves_its_goals(
    toy_service: ServiceProcess, mosquitto: Mosquitto
) -> None:
    topics = Topics("toy")
    probe = Probe(mosquitto.port, [topics.accepted, topics.rejected, topics.results])
    try:
        probe.publish(topics.inject, '{"goal": "reach 12"}')
        _, rejected, _ = probe.next(topic=topics.rejected, timeout=30)
        assert "cells are 0 to 9" in rejected["reason"]
        probe.publish(topics.inject, '{"goal": "Reach 7", "episodes": 2}')
        _, accepted, _ = probe.next(topic=topics.accepted, timeout=30)
        assert accepted["goal"] == "reach 7"
        results: list[dict[str, Any]] = []
        while not results or results[-1]["status"] != "completed":
            _, report, _ = probe.next(topic=topics.results, timeout=60)
            results.append(report)
        assert [r["status"] for r in results] == ["episode", "episode", "completed"]
    finally:
        probe.close()
    toy_service.wait_for(
        lambda: toy_service.metrics().get("autotelic_learner_updates_total", 0) > 5,
        what="toy-q updates",
    )
    # The toy learner's own stat, which nothing in autotelic names, is exported too.
    assert toy_service.metrics()['autotelic_learner_stat{key="table_size"}'] > 0
    assert toy_service.terminate() == 0


SPECIFIC = ("autotelic.envs.", "autotelic.learners.sac", "autotelic.learners.ppo",
            "autotelic.learners.algorithms", "autotelic.testing")  # fmt: skip


def imports_of(folder: str) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / folder).rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
            elif isinstance(node, ast.Import):
                names.update(a.name for a in node.names)
        found[str(path.relative_to(ROOT))] = names
    return found


@pytest.mark.parametrize("folder", ["core", "runtime", "storage", "goals", "distributed"])
def test_the_generic_layers_import_no_specific_environment_or_algorithm(folder: str) -> None:
    offending = {
        path: sorted(n for n in names if n.startswith(SPECIFIC))
        for path, names in imports_of(folder).items()
    }
    assert {p: n for p, n in offending.items() if n} == {}


@pytest.mark.parametrize(
    ("folder", "allowed"),
    [("core", ("autotelic.core",)), ("storage", ("autotelic.core", "autotelic.storage",
                                                  "autotelic.processes", "autotelic.files"))],
)  # fmt: skip
def test_the_bottom_layers_depend_on_nothing_above_them(
    folder: str, allowed: tuple[str, ...]
) -> None:
    above = {
        path: sorted(n for n in names if n.startswith("autotelic") and not n.startswith(allowed))
        for path, names in imports_of(folder).items()
    }
    assert {p: n for p, n in above.items() if n} == {}


def test_no_learner_module_imports_an_environment() -> None:
    """What a learner needs of an environment (a tokenizer's vocabulary, its corpus) comes
    through core's vocabulary contract and the registry."""
    offending = {
        path: sorted(n for n in names if n == "autotelic.envs" or n.startswith("autotelic.envs."))
        for path, names in imports_of("learners").items()
    }
    assert {p: n for p, n in offending.items() if n} == {}


BELOW_RUNTIME = ("core", "storage", "goals", "learners", "envs", "runtime/telemetry",
                 "runtime/evaluation", "runtime/transport", "runtime/loop")  # fmt: skip
"""Every layer below the runtime's top: each owns its settings section, and the root
configuration (``runtime/config.py``) composes them, never the other way round. The loop
takes the sections it reads (``loop/config.py``'s ``RunSettings``), not the root."""


@pytest.mark.parametrize("folder", BELOW_RUNTIME)
def test_no_layer_below_the_runtime_imports_the_root_configuration(folder: str) -> None:
    offending = {
        path: sorted(n for n in names if n.startswith("autotelic.runtime.config"))
        for path, names in imports_of(folder).items()
    }
    assert {p: n for p, n in offending.items() if n} == {}


R = "autotelic.runtime."
REPORTING = tuple(
    R + "telemetry." + m for m in ("events", "tracking", "sinks", "run_logs", "progress")
)
"""What the loop and the evaluator may use of telemetry: the event stream they report to,
the sink registry, the plain sinks and the run's own logs; never a metric system
(``telemetry.metrics``)."""

RUNTIME_LAYERS = {
    # folder under runtime/ -> the runtime modules its files may import besides its own
    "telemetry": (R + "extras",),
    "loop": (R + "evaluation", R + "telemetry.config", *REPORTING),
    "evaluation": REPORTING,
    "transport": (R + "transport", R + "loop.control", R + "evaluation", R + "telemetry.events"),
}  # fmt: skip
"""The runtime's layers: the loop reports events and runs evaluations but knows no metric
system, no transport, no command, not the service and not the root configuration;
transports adapt the loop's control interface (``loop.control``: inject, status, subscribe)
and evaluation reports; only ``service.py`` and the commands wire everything together."""


@pytest.mark.parametrize("folder", sorted(RUNTIME_LAYERS))
def test_each_runtime_layer_imports_only_those_below_it(folder: str) -> None:
    allowed = (R + folder, *RUNTIME_LAYERS[folder])
    above = {
        path: sorted(n for n in names if n.startswith(R) and not n.startswith(allowed))
        for path, names in imports_of(f"runtime/{folder}").items()
    }
    assert {p: n for p, n in above.items() if n} == {}


def test_the_runtime_is_split_into_the_layers_the_rule_names() -> None:
    """A new folder under runtime/ needs its rule above; a loose module at the top is the
    configuration, the service that wires the layers (and what it checks before a start),
    or a helper every layer shares."""
    folders = {p.name for p in (ROOT / "runtime").iterdir() if (p / "__init__.py").exists()}
    assert folders == {*RUNTIME_LAYERS, "commands"}
    loose = {p.stem for p in (ROOT / "runtime").glob("*.py")}
    assert loose == {"__init__", "config", "service", "extras", "startup"}


AGENT_INSIDES = {"daemon", "listeners", "report_listeners", "collector", "collection", "parts"}
"""What the service and the transports used to reach into; they now go through the control
interface (``runtime/loop/control.py``: inject, status, subscribe, owed_results, acknowledge)."""


def attributes_of(path: Path) -> set[str]:
    return {n.attr for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Attribute)}


def test_the_service_and_the_transports_control_the_run_through_its_interface() -> None:
    files = [ROOT / "runtime" / "service.py", *(ROOT / "runtime" / "transport").glob("*.py")]
    reaching = {str(p.relative_to(ROOT)): attributes_of(p) & AGENT_INSIDES for p in files}
    assert {p: names for p, names in reaching.items() if names} == {}
