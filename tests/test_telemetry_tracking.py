"""One open metrics path: a plug-in algorithm's own stat, which nothing in autotelic
names, reaches Prometheus (a real scrape), learner_stats.csv and TensorBoard event
files (read back with TensorBoard's own reader), drawn against env steps with the update
count as a series of its own, the run's configuration as TensorBoard hyperparameters, and
a restart continues the run."""

from __future__ import annotations

import json
import re
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from autotelic.runtime.config import deep_merge, load_settings
from autotelic.runtime.extras import MissingPackageError
from autotelic.runtime.loop.agent import Agent
from autotelic.runtime.telemetry.config import TrackingConfig
from autotelic.runtime.telemetry.events import EventStream
from autotelic.runtime.telemetry.metrics import (
    MAX_STAT_KEYS,
    Metrics,
    MetricsServer,
    PrometheusEvents,
    PrometheusSink,
)
from autotelic.runtime.telemetry.run_logs import read_rows
from autotelic.runtime.telemetry.sinks import open_sinks
from autotelic.runtime.telemetry.tracking import (
    ENV_STEPS,
    STATS_CSV,
    TENSORBOARD_DIR,
    UPDATES,
    Every,
    TensorBoardSink,
)

TOY = {
    "run": {"plugins": ["tests.toy_plugin"], "torch_threads": 1, "mode": "serial"},
    "env": {"id": "toy/NumberLine-v0", "num_envs": 4},
    "algorithm": {"name": "toy-q", "batch_size": 32, "learning_starts": 64, "update_every": 4},
    "replay": {"capacity_transitions": 5000, "durable": False},
    "curriculum": {"discover": False},
    "eval": {"enabled": False},
    "tracking": {"tensorboard": True},
}
EVALUATE = {
    "enabled": True,
    "interval_env_steps": 200,
    "episodes_per_category": 2,
    "max_cost_fraction": 1.0,
    "splits": ["train"],
    "acting": ["greedy"],
}
"""Small evaluations of the toy pair: every 200 env steps, train goals, greedy."""
KEY = "table_size"
"""The toy learner's own stat (tests/toy_plugin.py)."""


def toy_settings(run_dir: Path, steps: int, **extra: Any) -> Any:
    base = deep_merge(TOY, {"run": {"dir": str(run_dir), "max_env_steps": steps, "seed": 3}})
    return load_settings(None, **deep_merge(base, extra))


def scrape(url: str) -> dict[str, float]:
    """Every sample the endpoint serves, keyed 'name{label="v",...}'."""
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            out[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return out


def event_steps(log_dir: Path, tag: str) -> list[tuple[int, float]]:
    """(step, value) of ``tag`` as TensorBoard reads the directory (orphans purged)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(log_dir))
    accumulator.Reload()
    return [(e.step, e.value) for e in accumulator.Scalars(tag)]


def csv_steps(run_dir: Path, key: str) -> list[int]:
    return [int(r["step"]) for r in read_rows(run_dir / STATS_CSV) if r["key"] == key]


def csv_env_steps(run_dir: Path) -> dict[int, float]:
    """The env-step count each update's record carries in the CSV (its first row)."""
    out: dict[int, float] = {}
    for r in read_rows(run_dir / STATS_CSV):
        if r["key"] == ENV_STEPS:
            out.setdefault(int(r["step"]), float(r["value"]))
    return out


def test_a_plug_in_stat_reaches_prometheus_the_csv_and_tensorboard(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    metrics = Metrics()
    server = MetricsServer(metrics)
    agent = Agent(toy_settings(tmp_path / "run", 400), PrometheusEvents(metrics))
    try:
        agent.run_serial()
        last, updates = agent.learner_loop.last, agent.learner.num_updates
        seen = scrape(server.url)
    finally:
        agent.close()
        server.close()
    assert updates > 20 and last[KEY] > 0
    assert seen[f'autotelic_learner_stat{{key="{KEY}"}}'] == last[KEY]
    assert seen['autotelic_learner_stat{key="critic_loss"}'] == last["critic_loss"]
    # The dashboard's named gauges and the update counter still fill (ops/grafana).
    assert seen["autotelic_critic_loss"] == last["critic_loss"]
    assert seen["autotelic_policy_version"] == agent.learner.policy_version
    assert seen["autotelic_learner_updates_total"] == updates
    assert csv_steps(tmp_path / "run", KEY) == list(range(1, updates + 1))
    rows = [r for r in read_rows(tmp_path / "run" / STATS_CSV) if r["key"] != ENV_STEPS]
    assert float(rows[-1]["value"]) == last[rows[-1]["key"]]
    # TensorBoard draws every stat against env steps, the update count its own series.
    at = csv_env_steps(tmp_path / "run")
    events = event_steps(tmp_path / "run" / TENSORBOARD_DIR, KEY)
    assert [s for s, _ in events] == [at[u] for u in range(1, updates + 1)]
    assert events[-1][1] == last[KEY]
    assert event_steps(tmp_path / "run" / TENSORBOARD_DIR, UPDATES) == [
        (at[u], float(u)) for u in range(1, updates + 1)
    ]
    xs = [s for s, _ in events]
    learning_starts = toy_settings(tmp_path / "x", 1).algorithm.learning_starts
    assert xs == sorted(xs) and learning_starts <= xs[0] < xs[-1]


def test_a_restart_continues_the_tensorboard_run_from_the_checkpoint(tmp_path: Path) -> None:
    """The first start checkpoints, learns on and is then 'killed' (closed without a
    checkpoint); the second resumes in the same log directory at the checkpoint's update
    count and at the env steps the store holds (the killed start's finished episodes
    stay), and TensorBoard reads one run whose env steps each have one value: what the
    killed start logged past those env steps is purged, and the update count series
    shows the learner going back to its checkpoint."""
    pytest.importorskip("tensorboard")
    run_dir = tmp_path / "run"
    first = Agent(toy_settings(run_dir, 300, tracking={"every_updates": 5}))
    try:
        first.run_serial()  # checkpoints at the end
        saved = first.learner.num_updates
        while first.learner.num_updates < saved + 20:
            first.step_once()
        lost = first.learner.num_updates
    finally:
        first.close()
    second = Agent(toy_settings(run_dir, 600, tracking={"every_updates": 5}))
    try:
        assert second.learner.num_updates == saved
        second.run_serial()
        final = second.learner.num_updates
    finally:
        second.close()
    assert len(list((run_dir / TENSORBOARD_DIR).glob("events.out.tfevents.*"))) == 2
    updates = event_steps(run_dir / TENSORBOARD_DIR, UPDATES)
    xs = [x for x, _ in updates]
    assert xs == sorted(set(xs))  # one value per env step
    assert [x for x, _ in event_steps(run_dir / TENSORBOARD_DIR, KEY)] == xs
    counts = [int(u) for _, u in updates]
    back = next(i for i in range(1, len(counts)) if counts[i] < counts[i - 1])
    assert saved <= counts[back - 1] < lost  # the killed start's last, not purged
    assert counts[:back] == list(range(5, counts[back - 1] + 1, 5))
    assert counts[back:] == list(range(saved + 5 - saved % 5, final + 1, 5))
    assert saved < lost < final
    # The CSV keeps both starts' rows (append-only): the killed tail, then the run that
    # went on from the checkpoint.
    in_csv = csv_steps(run_dir, KEY)
    assert in_csv == [*range(5, lost + 1, 5), *range(saved + 5 - saved % 5, final + 1, 5)]


def test_the_fan_out_passes_every_key_and_drops_only_non_numbers(tmp_path: Path) -> None:
    class Kept:
        def __init__(self) -> None:
            self.records: list[tuple[int, dict[str, float]]] = []
            self.closed = False

        def record(self, step: int, values: Any) -> None:
            self.records.append((step, dict(values)))

        def close(self) -> None:
            self.closed = True

    kept, sparse = Kept(), Kept()
    taken = [100]
    stream = EventStream([kept], step=lambda: 7, env_steps=lambda: taken[0])
    stream.add(Every(sparse, 3, start_step=7))
    for step in range(8, 14):
        taken[0] += 4
        stream.learner_stats(step, {"any_name": step, "np": 1.5, "text": "not a number"})
    stream.close()
    assert kept.records[0] == (8, {"any_name": 8.0, "np": 1.5, ENV_STEPS: 104.0})
    assert [s for s, _ in kept.records] == [8, 9, 10, 11, 12, 13]
    assert [s for s, _ in sparse.records] == [9, 12]  # the multiples of 3 after the start
    assert [r[ENV_STEPS] for _, r in sparse.records] == [108.0, 120.0]  # each its own
    assert kept.closed and sparse.closed


def test_prometheus_keeps_a_bounded_set_of_keys() -> None:
    metrics = Metrics()
    sink = PrometheusSink(metrics, start_step=0)
    sink.record(1, {f"k{i}": float(i) for i in range(MAX_STAT_KEYS + 10)})
    families = {f.name: f for f in metrics.registry.collect()}
    assert len(families["autotelic_learner_stat"].samples) == MAX_STAT_KEYS


def test_tensorboard_without_its_package_is_one_line_naming_the_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails
    with pytest.raises(MissingPackageError, match=r"pip install 'tensorboard>=2\.16,<3'"):
        TensorBoardSink(tmp_path / "tb")
    with pytest.raises(MissingPackageError):
        open_sinks(TrackingConfig(tensorboard=True), tmp_path, start_step=0)
    assert not (tmp_path / STATS_CSV).exists()  # nothing opened before the error


def test_the_documented_sink_plugs_in(tmp_path: Path) -> None:
    """docs/architecture.md's adapter example is a sink the fan-out takes as it is."""
    doc = (Path(__file__).resolve().parents[1] / "docs" / "architecture.md").read_text()
    block = re.search(r"```python\n(.*?class JsonLinesSink.*?)```", doc, flags=re.DOTALL)
    assert block is not None
    scope: dict[str, Any] = {"__name__": "sink_example"}
    exec(compile(block[1], "docs/architecture.md", "exec"), scope)
    stream = EventStream()
    stream.add(scope["JsonLinesSink"](tmp_path / "stats.jsonl"))
    stream.learner_stats(1, {"clip_fraction": 0.25})
    stream.close()
    lines = (tmp_path / "stats.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == [
        {"step": 1, "clip_fraction": 0.25, ENV_STEPS: 0.0}  # no collector: no env steps
    ]


def test_each_evaluation_reaches_the_csv_and_tensorboard_at_the_learners_step(
    tmp_path: Path,
) -> None:
    """The run's own figures take the open path too: an evaluation's success per split,
    way of acting and category, and its mean, are stats of the file sinks."""
    pytest.importorskip("tensorboard")
    agent = Agent(toy_settings(tmp_path / "run", 600, eval=EVALUATE))
    try:
        agent.run_serial()
    finally:
        agent.close()
    evaluations = read_rows(tmp_path / "run" / "evaluations.csv")
    assert {int(r["evaluation"]) for r in evaluations} >= {0, 1}
    rows = [r for r in read_rows(tmp_path / "run" / STATS_CSV) if r["key"].startswith("eval/")]
    means = [float(r["value"]) for r in rows if r["key"] == "eval/train/greedy/success"]
    assert len(means) == len({int(r["evaluation"]) for r in evaluations})
    first = [r for r in evaluations if r["evaluation"] == "0"]
    cells = {r["category"]: float(r["success"]) for r in first}
    assert means[0] == pytest.approx(sum(cells.values()) / len(cells))
    for category, success in cells.items():
        key = f"eval/train/greedy/{category}/success"
        assert next(float(r["value"]) for r in rows if r["key"] == key) == pytest.approx(success)
    tagged = event_steps(tmp_path / "run" / TENSORBOARD_DIR, "eval/train/greedy/success")
    assert [v for _, v in tagged] == pytest.approx(means)
    # Each at the env steps of the policy it evaluated, as evaluations.csv and plot have it.
    at = sorted({(int(r["evaluation"]), int(r["env_steps"])) for r in evaluations})
    assert [step for step, _ in tagged] == [steps for _, steps in at]
    assert [step for _, step in at] == [200 * (i + 1) for i in range(len(at))]
