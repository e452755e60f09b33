"""Counters that resume: Prometheus counters and the progress line after a restart."""

from __future__ import annotations

import io
import json
import re
import time
from pathlib import Path
from typing import Any

import pytest

from autotelic.runtime.config import Settings, deep_merge, load_settings
from autotelic.runtime.loop.agent import Agent
from autotelic.runtime.telemetry.metrics import Metrics, PrometheusEvents
from autotelic.runtime.telemetry.progress import ProgressLine
from autotelic.runtime.telemetry.run_logs import ProgressLog, read_rows
from autotelic.runtime.transport.broker import free_port
from autotelic.runtime.transport.messages import Topics
from autotelic.storage import CheckpointManager, RunLayout
from tests.runtime_fixtures import TINY_SERVICE, Mosquitto, Probe, Prometheus, ServiceProcess

RESUMED = (
    "autotelic_episodes_total",
    "autotelic_checkpoints_total",
    "autotelic_injected_goals_total",
    "autotelic_evaluations_total",
    "autotelic_env_steps_total",
    "autotelic_learner_updates_total",
)


def settings_for(run_dir: Path, max_env_steps: int) -> Settings:
    extra = {
        "run": {"dir": str(run_dir), "mode": "serial", "max_env_steps": max_env_steps},
        "eval": {
            "interval_env_steps": 40,
            "episodes_per_category": 1,
            "max_cost_fraction": 1.0,
            "splits": ["train"],
            "acting": ["greedy"],
        },
    }
    return load_settings(None, **deep_merge(TINY_SERVICE, extra))


def counters(metrics: Metrics) -> dict[str, float]:
    """Every ``*_total`` sample of the resumed counters, keyed by name and labels."""
    out: dict[str, float] = {}
    for family in metrics.registry.collect():
        for s in family.samples:
            if s.name in RESUMED:
                labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
                out[f"{s.name}{{{labels}}}"] = s.value
    return out


def episodes_total(values: dict[str, float]) -> float:
    return sum(v for k, v in values.items() if k.startswith("autotelic_episodes_total"))


def test_a_restarted_agent_continues_every_counter_from_its_checkpoint(tmp_path: Path) -> None:
    """Counters of a run killed after its checkpoint (episodes stored after it included)
    start the next process where they were, not at 0."""
    first = Agent(settings_for(tmp_path, 160), PrometheusEvents(metrics := Metrics()))
    assert first.inject("Grasp carrot", episodes=1).goal == "Grasp carrot"
    metrics.injected_goals.labels(status="accepted").inc()  # what the MQTT bridge counts
    first.run_serial()  # ends with a checkpoint
    saved = counters(metrics)
    for _ in range(25):  # episodes stored after the checkpoint, then a "kill"
        first.step_once()
    stored_after = first.collection.episodes - int(episodes_total(saved))
    at_kill = counters(metrics)
    first.close()
    assert stored_after > 0

    second = Agent(settings_for(tmp_path, 480), PrometheusEvents(resumed := Metrics()))
    now = counters(resumed)
    second.close()
    assert saved["autotelic_injected_goals_total{status=completed}"] == 1
    assert saved["autotelic_checkpoints_total{}"] == 1
    assert saved["autotelic_evaluations_total{}"] >= 1
    for key in ("injected_goals_total{status=", "checkpoints_total"):
        assert {k: v for k, v in now.items() if key in k} == {
            k: v for k, v in saved.items() if key in k
        }
    # Evaluations are durable in evaluations.csv: those after the checkpoint count too.
    evaluations = "autotelic_evaluations_total{}"
    assert now[evaluations] == at_kill[evaluations] > saved[evaluations]
    assert episodes_total(now) == episodes_total(saved) + stored_after
    assert episodes_total(now) == second.collection.episodes
    assert now["autotelic_env_steps_total{}"] == second.collection.env_steps


def test_the_first_progress_line_and_row_after_a_resume_show_no_burst(tmp_path: Path) -> None:
    """Without the restored counters as baseline, the first line would read e.g.
    ``steps 520 (51.5/s)`` for steps an earlier process took."""
    earlier = Agent(settings_for(tmp_path, 80))
    earlier.run_serial()
    earlier.close()
    agent = Agent(settings_for(tmp_path, 400))
    start = agent.snapshot()
    assert start.started_from is not None and start.started_from.env_steps >= 80
    made = time.monotonic()
    line, log = ProgressLine(io.StringIO()), ProgressLog(tmp_path / "p.csv", ["grasp"])
    began = time.monotonic()
    for _ in range(5):
        agent.step_once()
    stepping = time.monotonic() - began
    shown = line.render(agent.snapshot())
    log.record(agent)
    total = time.monotonic() - made
    log.close()
    agent.close()
    steps = agent.collection.env_steps - start.env_steps
    assert steps == 5 * 4 and shown.startswith(f"steps {agent.collection.env_steps:,} (")
    line_rate = float(re.findall(r"\(([\d.]+)/s\)", shown)[0])
    row_rate = float(read_rows(tmp_path / "p.csv")[0]["env_steps_per_s"])
    for rate in (line_rate, row_rate):
        # This process's 20 steps over the time they took (counting from 0: 5x more).
        assert steps / total * 0.99 <= rate <= steps / stepping * 1.01 + 0.05


RESUMED_SERIES = (
    'autotelic_injected_goals_total{status="accepted"}',
    'autotelic_injected_goals_total{status="completed"}',
    "autotelic_checkpoints_total",
)


@pytest.mark.slow  # two service starts and a Prometheus: about a minute
def test_counters_continue_after_a_kill_9_as_prometheus_scrapes_them(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    """The service is killed right after a checkpoint; restarted, its counters carry on
    from that checkpoint, and Prometheus sees no counter reset across the two processes."""
    port = free_port()
    config = deep_merge(
        TINY_SERVICE,
        {
            "run": {"agent": "counters"},
            "mqtt": {"url": mosquitto.url},
            "metrics": {"port": port},
            "checkpoint": {"interval_s": 3},
            "eval": {"enabled": False},
        },
    )
    service = ServiceProcess(tmp_path, config)
    prometheus = Prometheus(tmp_path, [f"127.0.0.1:{port}"])
    service.start()
    prometheus.start()
    try:
        service.wait_connected()
        probe = Probe(mosquitto.port, [])
        probe.publish(Topics("counters").inject, json.dumps({"goal": "Grasp carrot"}))
        probe.close()
        done = 'autotelic_injected_goals_total{status="completed"}'
        service.wait_for(lambda: service.metrics().get(done, 0) >= 1, what="the injection")
        after = service.metrics()["autotelic_checkpoints_total"] + 1
        service.wait_for(
            lambda: service.metrics()["autotelic_checkpoints_total"] >= after, what="a checkpoint"
        )
        service.kill()
        loaded = CheckpointManager(RunLayout(service.run_dir).checkpoints).load()
        assert loaded is not None
        saved = series(loaded.state["counters"]["metrics"])
        service.start()
        now = service.metrics()
        time.sleep(4)  # a few more scrapes of the new process
        for name in RESUMED_SERIES:
            assert now[name] >= saved[name] >= 1, name
        assert saved["autotelic_checkpoints_total"] >= after
        assert episodes(now) >= episodes(saved) > 0
        for family in ("autotelic_episodes_total", "autotelic_injected_goals_total"):
            found = prometheus.query(f"resets({family}[5m]) > 0")
            assert not found, f"{family} was reset: {found}"
        assert not prometheus.query("resets(autotelic_checkpoints_total[5m]) > 0")
        assert prometheus.query("autotelic_checkpoints_total")  # it did scrape
    finally:
        prometheus.stop()
        if service.alive():
            service.kill()


def series(state: dict[str, list[list[Any]]]) -> dict[str, float]:
    """A checkpoint's counter state keyed like :meth:`ServiceProcess.metrics`."""
    out: dict[str, float] = {}
    for name, rows in state.items():
        for labels, value in rows:
            inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
            out[f"autotelic_{name}_total" + (f"{{{inner}}}" if inner else "")] = value
    return out


def episodes(values: dict[str, float]) -> float:
    return sum(v for k, v in values.items() if k.startswith("autotelic_episodes_total{"))
