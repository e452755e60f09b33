"""Periodic evaluation in the real service (`autotelic run` in a subprocess, tiny model, real
Mosquitto): cadence, gauges against the CSV, nothing stored, the cost bound counted in env
steps, MQTT, the offline commands while it runs, and a kill -9."""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from autotelic.core import env_spec
from autotelic.runtime.commands.cli import app
from autotelic.runtime.config import deep_merge
from autotelic.runtime.evaluation.evaluate import plan_episodes
from autotelic.runtime.telemetry.run_logs import read_rows
from autotelic.runtime.transport.messages import Topics
from autotelic.storage import EpisodeStore, RunLayout
from tests.runtime_fixtures import TINY_SERVICE, Mosquitto, Probe, ServiceProcess

AGENT = "evaluated"
TOPICS = Topics(AGENT)
INTERVAL = 400
FRACTION = 0.5
EVAL = {
    "interval_env_steps": INTERVAL,
    "episodes_per_category": 1,
    "max_cost_fraction": FRACTION,
    "num_envs": 8,
    "seed": 99,
}
"""An evaluation here takes at most about 4 x 45 env steps: within the 200 an interval pays for."""


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    mosquitto = Mosquitto(tmp_path_factory.mktemp("mosquitto"))
    mosquitto.start()
    yield mosquitto
    mosquitto.stop()


@pytest.fixture(scope="module")
def service(
    broker: Mosquitto, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceProcess]:
    config = deep_merge(
        TINY_SERVICE,
        {"run": {"agent": AGENT}, "mqtt": {"url": broker.url}, "eval": EVAL},
    )
    proc = ServiceProcess(tmp_path_factory.mktemp("evaluated"), config)
    proc.start()
    proc.wait_for(lambda: len(by_evaluation(proc)) >= 3, timeout=300, what="three evaluations")
    yield proc
    if proc.alive():
        proc.kill()


def by_evaluation(service: ServiceProcess) -> dict[int, list[dict[str, str]]]:
    grouped: dict[int, list[dict[str, str]]] = {}
    for row in read_rows(RunLayout(service.run_dir).evaluations):
        grouped.setdefault(int(row["evaluation"]), []).append(row)
    return grouped


def test_evaluation_rows_appear_once_per_interval_of_training_env_steps(
    service: ServiceProcess,
) -> None:
    grouped = by_evaluation(service)
    for index, rows in grouped.items():
        first = rows[0]
        assert int(first["env_steps"]) // INTERVAL == index + 1  # one per interval, none skipped
        assert {r["env_steps"] for r in rows} == {first["env_steps"]}  # one moment per evaluation
        assert int(first["env_steps"]) <= int(first["env_steps_end"])
        assert int(first["policy_version"]) <= int(first["policy_version_end"])
        assert {(r["split"], r["acting"]) for r in rows} == {
            (s, a) for s in ("train", "test") for a in ("greedy", "sampled")
        }
        assert len(rows) == 16 and all(r["episodes"] == "1" for r in rows)


def test_the_gauges_show_the_last_evaluation_of_the_csv(service: ServiceProcess) -> None:
    for _ in range(20):  # an evaluation may finish between the two reads: read again
        metrics = service.metrics()
        grouped = by_evaluation(service)
        rows = grouped[max(grouped)]
        if metrics["autotelic_eval_measured_env_steps"] == float(rows[0]["env_steps"]):
            break
    else:
        pytest.fail("the gauges never matched the CSV's last evaluation")
    assert metrics["autotelic_eval_measured_policy_version"] == float(rows[0]["policy_version"])
    for r in rows:
        labels = f'acting="{r["acting"]}",category="{r["category"]}",split="{r["split"]}"'
        assert metrics[f"autotelic_eval_success_ratio{{{labels}}}"] == float(r["success"])
        mean_steps = int(r["steps"]) / int(r["episodes"])
        assert metrics[f"autotelic_eval_episode_steps{{{labels}}}"] == mean_steps
    assert metrics["autotelic_evaluations_total"] >= len(grouped)


def test_evaluation_episodes_are_not_in_the_episode_store(service: ServiceProcess) -> None:
    spec = env_spec("autotelic/PlaygroundText-v0")
    space = spec.goal_space(spec.config.model_validate({"id": spec.id}))
    planned = {
        (e.goal, e.seed) for split in ("train", "test") for e in plan_episodes(space, split, 1, 99)
    }
    with EpisodeStore(service.run_dir / "store", readonly=True) as store:
        stored = list(store.iter_episodes())
        transitions = store.num_transitions
    trained = service.metrics()["autotelic_env_steps_total"]
    assert stored and not planned & {(e.goal, e.scene_seed) for e in stored}
    assert transitions <= trained  # with the evaluation's steps it would not be
    assert service.metrics()["autotelic_eval_env_steps_total"] > 0


def test_evaluation_spends_at_most_its_share_of_the_training_env_steps(
    service: ServiceProcess,
) -> None:
    spent = 0
    for rows in by_evaluation(service).values():  # one life of the service: the budget's span
        spent += sum(int(r["steps"]) for r in rows)
        assert spent <= FRACTION * int(rows[0]["env_steps_end"])
    metrics = service.metrics()
    trained = metrics["autotelic_env_steps_total"] + 4  # a collector step counted meanwhile
    assert metrics["autotelic_eval_env_steps_total"] <= FRACTION * trained


def test_each_evaluation_is_published_retained_on_mqtt(
    service: ServiceProcess, broker: Mosquitto
) -> None:
    late = Probe(broker.port, [TOPICS.evaluations])  # subscribes after: gets the retained one
    try:
        _, message, retained = late.next(topic=TOPICS.evaluations, timeout=30)
    finally:
        late.close()
    assert retained
    rows = by_evaluation(service)[message["evaluation"]]
    assert message["env_steps"] == int(rows[0]["env_steps"])
    assert message["policy_version"] == int(rows[0]["policy_version"])
    assert message["eval_env_steps"] == sum(int(r["steps"]) for r in rows)
    published = {(m["split"], m["acting"], m["category"]): m for m in message["results"]}
    assert set(published) == {(r["split"], r["acting"], r["category"]) for r in rows}
    for r in rows:
        m = published[(r["split"], r["acting"], r["category"])]
        assert (m["success"], m["episodes"]) == (float(r["success"]), int(r["episodes"]))


def test_per_goal_competence_is_read_while_the_service_runs(service: ServiceProcess) -> None:
    service.wait_for(
        lambda: any((service.run_dir / "checkpoints").glob("ckpt-*")), what="a checkpoint"
    )
    result = CliRunner().invoke(app, ["goals", "--run", str(service.run_dir), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert service.alive()
    assert len(data["goals"]) >= 42 and data["episodes"] > 0
    assert sum(g["attempts"] for g in data["goals"]) > 0
    assert all(0.0 <= g["competence"] <= 1.0 and g["lp"] >= 0.0 for g in data["goals"])
    assert math.isclose(sum(g["probability"] for g in data["goals"]), 1.0, rel_tol=1e-6)


def test_plot_works_while_the_service_runs(service: ServiceProcess, tmp_path: Path) -> None:
    service.wait_for(lambda: len(read_rows(RunLayout(service.run_dir).progress)) >= 2)
    result = CliRunner().invoke(app, ["plot", "--run", str(service.run_dir), "-o", str(tmp_path)])
    assert result.exit_code == 0, result.output
    names = sorted(Path(line).name for line in result.output.splitlines())
    assert names == ["evaluation.png", "learning_progress.png", "losses.png", "throughput.png"]
    for name in names:
        header = (tmp_path / name).read_bytes()[:24]
        assert header[:8] == b"\x89PNG\r\n\x1a\n" and (tmp_path / name).stat().st_size > 10_000
        width, height = struct.unpack(">II", header[16:24])
        assert width >= 1000 and height >= 360


def test_a_kill_9_loses_no_evaluation_row_and_a_restart_continues_the_history(
    service: ServiceProcess,
) -> None:
    path = RunLayout(service.run_dir).evaluations
    seen = read_rows(path)
    service.kill()
    kept = read_rows(path)
    assert kept[: len(seen)] == seen  # everything written before the kill is there
    with path.open("ab") as f:
        f.write(b"1800000000.5,77,123")  # what a kill in the middle of a write leaves
    last = max(int(r["evaluation"]) for r in kept)
    last_steps = int(next(r["env_steps"] for r in kept if int(r["evaluation"]) == last))

    service.start()
    shown = service.metrics().get("autotelic_eval_measured_env_steps")
    known = {float(r["env_steps"]) for r in read_rows(path) if int(r["evaluation"]) >= last}
    assert shown in known  # the last evaluation's gauges are back before any new one
    service.wait_for(lambda: max(by_evaluation(service)) > last, timeout=300, what="evaluation")
    after = read_rows(path)
    assert after[: len(kept)] == kept
    new = after[len(kept) :]
    assert new and int(new[0]["evaluation"]) == last + 1
    assert int(new[0]["env_steps"]) // INTERVAL > last_steps // INTERVAL
    assert b"1800000000.5,77,123" not in path.read_bytes()
    assert service.terminate() == 0
    service.start()  # the module's service runs on for the tests after this one
