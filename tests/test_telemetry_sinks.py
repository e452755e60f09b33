"""One event stream, sinks registered by name: a sink added from Python and one named in
the configuration (registered, nothing else) both receive the learner's stats, every
evaluation and the curriculum's figures of a real serial run of the toy pair."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import pytest

from autotelic.core import RegistryError
from autotelic.runtime.loop.agent import Agent
from autotelic.runtime.telemetry.config import TrackingConfig
from autotelic.runtime.telemetry.events import EvalFigures, RunEvents
from autotelic.runtime.telemetry.progress import Snapshot
from autotelic.runtime.telemetry.sinks import (
    SinkContext,
    enabled_sinks,
    open_sinks,
    register_sink,
    registered_sinks,
)
from tests.test_telemetry_tracking import EVALUATE, KEY, toy_settings


class Recorder:
    """A plain sink: ``record`` and ``close``, as an experiment tracker's adapter is."""

    opened: ClassVar[list[Recorder]] = []

    def __init__(self, context: SinkContext | None = None) -> None:
        self.context = context
        self.records: list[tuple[int, dict[str, float]]] = []
        self.closed = False
        Recorder.opened.append(self)

    def record(self, step: int, values: Mapping[str, float]) -> None:
        self.records.append((step, dict(values)))

    def close(self) -> None:
        self.closed = True

    def keys(self) -> set[str]:
        return {k for _, values in self.records for k in values}


class Evaluations(RunEvents):
    """An events sink: it overrides the event it shows and sees it as plain figures."""

    def __init__(self) -> None:
        self.figures: list[EvalFigures] = []

    def evaluation_done(self, figures: EvalFigures) -> None:
        self.figures.append(figures)


register_sink("test-recorder", Recorder, description="records in memory (tests)")


def test_a_sink_from_python_and_one_from_configuration_see_every_figure(tmp_path: Path) -> None:
    Recorder.opened.clear()
    settings = toy_settings(
        tmp_path / "run",
        500,
        eval=EVALUATE,
        tracking={"tensorboard": False, "sinks": ["test-recorder"]},
    )
    agent = Agent(settings)
    from_python, evaluations = Recorder(), Evaluations()
    agent.events.add(from_python)
    agent.events.add(evaluations)
    try:
        agent.run_serial()
        agent.refresh_gauges()  # what the service does every second: the curriculum's figures
        updates = agent.learner.num_updates
    finally:
        agent.close()
    [from_config] = [r for r in Recorder.opened if r.context is not None]
    assert from_config.context is not None and from_config.context.run_dir == agent.run_dir
    assert updates > 10
    for sink in (from_config, from_python):
        keys = sink.keys()
        assert {KEY, "critic_loss", "policy_version"} <= keys  # the learner's stats
        assert "eval/train/greedy/success" in keys  # every evaluation
        assert any(k.startswith("curriculum/") and k.endswith("/success_rate") for k in keys)
        assert "replay/transitions" in keys
        learned = [step for step, values in sink.records if KEY in values]
        assert learned == list(range(1, updates + 1))
        assert sink.closed
    assert from_config.records == from_python.records  # the same stream, the same figures
    assert len(evaluations.figures) >= 2
    assert all(f.cells and f.cells[0].split == "train" for f in evaluations.figures)


def test_sinks_are_chosen_by_registered_name(tmp_path: Path) -> None:
    names = {s.name for s in registered_sinks()}
    assert {"console", "csv", "tensorboard", "wandb", "mlflow", "test-recorder"} <= names
    config = TrackingConfig(console=False, csv=True, sinks=["test-recorder"], every_updates=2)
    assert enabled_sinks(config) == ["csv", "test-recorder"]
    stream = open_sinks(config, tmp_path, start_step=0)
    for step in range(1, 5):
        stream.learner_stats(step, {"loss": float(step)})
    stream.close()
    recorder = Recorder.opened[-1]
    assert [s for s, _ in recorder.records] == [2, 4]  # plain sinks thinned like the files
    assert (tmp_path / "learner_stats.csv").exists()
    with pytest.raises(RegistryError, match="test-recorder"):
        open_sinks(TrackingConfig(sinks=["test-recorde"]), tmp_path, start_step=0)
    with pytest.raises(RegistryError, match="registered already"):
        register_sink("csv", Recorder)


def test_the_stream_folds_what_each_sink_keeps_across_a_restart() -> None:
    class Keeps(RunEvents):
        def checkpoint_state(self, restored: Mapping[str, Any]) -> Mapping[str, Any]:
            return {**restored, "kept": 1}

    from autotelic.runtime.telemetry.events import EventStream

    stream = EventStream([RunEvents(), Keeps(), Recorder()])
    assert stream.checkpoint_state({"before": 2}) == {"before": 2, "kept": 1}


def test_the_console_is_a_sink_of_the_progress_event(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The service hands the stream the run's counters at each progress interval; the
    console sink, on by default, prints its line then, and only then."""
    stream = open_sinks(TrackingConfig(csv=False), tmp_path, start_step=0)
    stream.learner_stats(1, {"loss": 1.0})
    stream.episode_stored("grasp", "curriculum", True, 7)
    assert capsys.readouterr().err == ""
    stream.progress(Snapshot(env_steps=1200, episodes=40, successes=10, updates=9,
                             policy_version=9, replay_transitions=1200))  # fmt: skip
    line = capsys.readouterr().err
    assert "steps 1,200" in line and "episodes 40" in line and "updates 9" in line
    stream.close()
    quiet = open_sinks(TrackingConfig(csv=False, console=False), tmp_path, start_step=0)
    quiet.progress(Snapshot(1, 1, 1, 1, 1, 1))
    assert capsys.readouterr().err == ""


def test_the_progress_line_says_how_far_the_learner_falls_behind_the_ratio_set(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With the run's algorithm.update_every, the console line gives the env steps per
    update measured over the interval, and says when fewer than 90% of the updates asked
    were made; nothing before learning starts."""
    config = {"algorithm": {"update_every": 8, "learning_starts": 500}}
    stream = open_sinks(TrackingConfig(csv=False), tmp_path, start_step=0, hyperparameters=config)
    start = Snapshot(env_steps=400, episodes=10, successes=0, updates=0, policy_version=0,
                     replay_transitions=400)  # fmt: skip
    stream.progress(Snapshot(800, 20, 1, 0, 0, 800, started_from=start))
    assert "steps/update" not in capsys.readouterr().err  # learning had not started
    stream.progress(Snapshot(1600, 40, 5, 100, 100, 1600))
    assert capsys.readouterr().err.rstrip().endswith("| 8.0 steps/update (asked 8)")
    stream.progress(Snapshot(2400, 60, 9, 130, 130, 2400))
    line = capsys.readouterr().err
    assert line.rstrip().endswith("| 26.7 steps/update (asked 8): learner behind")
    stream.progress(Snapshot(2480, 61, 9, 130, 130, 2480))
    assert capsys.readouterr().err.rstrip().endswith("| no update (asked 8): learner behind")
    stream.close()
