"""The W&B and MLflow sinks, with the real packages and nothing on the network: any key
reaches the tracker's own files (read back with the tracker's own reader), a restart
resumes the same tracker run, and a missing package is one line naming the install."""

from __future__ import annotations

import importlib
import json
import logging
import math
import struct
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from autotelic.runtime.extras import MissingPackageError
from autotelic.runtime.loop.agent import Agent
from autotelic.runtime.telemetry.config import TrackingConfig
from autotelic.runtime.telemetry.run_logs import read_rows
from autotelic.runtime.telemetry.sinks import open_sinks
from autotelic.runtime.telemetry.trackers import (
    ALLOW_FILE_STORE,
    MLFLOW_RUN_ID,
    WANDB_RUN_ID,
    MlflowSink,
    WandbSink,
)
from autotelic.runtime.telemetry.tracking import (
    ENV_STEPS,
    EVAL_ENV_STEPS,
    STATS_CSV,
    TENSORBOARD_DIR,
    UPDATES,
    flat_hyperparameters,
)
from tests.test_telemetry_tracking import EVALUATE, KEY, toy_settings

PLUGIN_KEY = "toy/table_size"
"""A stat no module of autotelic names, as a plug-in algorithm would report it."""


@pytest.fixture(autouse=True)
def offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both trackers offline, with every file they write under ``tmp_path``."""
    home = tmp_path / "tracker-home"
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DISABLE_GIT", "true")
    monkeypatch.setenv("WANDB_DISABLE_CODE", "true")
    for name in ("DIR", "CONFIG_DIR", "CACHE_DIR", "DATA_DIR", "ARTIFACT_DIR"):
        monkeypatch.setenv(f"WANDB_{name}", str(home / name.lower()))
    for name in ("WANDB_API_KEY", "WANDB_BASE_URL", "WANDB_ENTITY", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(name, raising=False)
    # Set, then removed: monkeypatch restores the variable the sink sets itself.
    monkeypatch.setenv(ALLOW_FILE_STORE, "")
    monkeypatch.delenv(ALLOW_FILE_STORE)


# --- W&B: its offline transaction log, read back ------------------------------------

BLOCK = 32 * 1024
"""A .wandb file is a LevelDB-style log: 32 KiB blocks of records, each chunk with a
7-byte header (crc32c, length, type), after a 7-byte W&B header (':W&B', magic, version)."""
FULL, LAST = 1, 4


def wandb_records(path: Path) -> Iterator[Any]:
    """The protobuf records of one offline run file, in the order W&B wrote them."""
    # Imported by name: the module picks its classes by protobuf version at import, which
    # a type checker cannot follow.
    proto: Any = importlib.import_module("wandb.proto.wandb_internal_pb2")
    data = path.read_bytes()
    assert data[:4] == b":W&B"
    pos, pending = 7, b""
    while pos + 7 <= len(data):
        left = BLOCK - pos % BLOCK
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if left < 7 or (length == 0 and kind == 0):  # a block's zero-padded tail
            pos += left
            continue
        pending += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (FULL, LAST):
            record = proto.Record()
            record.ParseFromString(pending)
            pending = b""
            yield record


def wandb_files(run_dir: Path) -> list[Path]:
    """Each start's offline run file, oldest first (by the start time W&B records: two
    starts within a second have folders named alike but for a suffix), once each is
    complete."""
    files = sorted(run_dir.glob("wandb/offline-run-*/run-*.wandb"))
    for path in files:
        wait_until_finished(path)
    return sorted(files, key=started_at)


def wait_until_finished(path: Path, timeout_s: float = 60.0) -> None:
    """Wait for the run's exit record: W&B's core process writes the file in blocks, and
    the last one lands a moment after ``finish()`` returns."""
    deadline = time.monotonic() + timeout_s
    while not wandb_finished(path):
        assert time.monotonic() < deadline, f"{path} has no exit record after {timeout_s} s"
        time.sleep(0.05)


def started_at(path: Path) -> int:
    runs = [r.run for r in wandb_records(path) if r.WhichOneof("record_type") == "run"]
    return int(runs[0].start_time.ToNanoseconds())


def wandb_history(path: Path, key: str) -> list[tuple[int, float]]:
    """(step, value) of ``key`` in one offline run file."""
    out = []
    for record in wandb_records(path):
        if record.WhichOneof("record_type") != "history":
            continue
        items = {
            item.key or "/".join(item.nested_key): item.value_json for item in record.history.item
        }
        if key in items:
            out.append((record.history.step.num, float(json.loads(items[key]))))
    return out


def wandb_run_ids(path: Path) -> set[str]:
    return {r.run.run_id for r in wandb_records(path) if r.WhichOneof("record_type") == "run"}


def wandb_finished(path: Path) -> bool:
    return any(r.WhichOneof("record_type") == "exit" for r in wandb_records(path))


def test_wandb_offline_keeps_every_key_with_the_update_count_as_step(tmp_path: Path) -> None:
    pytest.importorskip("wandb")
    run_dir = tmp_path / "run"
    sink = WandbSink(run_dir, project="autotelic-test", start_step=0)
    for step in (1, 2, 3):
        loss = math.nan if step == 2 else 0.5 * step
        sink.record(step, {"critic_loss": loss, PLUGIN_KEY: float(10 * step)})
    sink.close()
    [log_file] = wandb_files(run_dir)
    assert wandb_run_ids(log_file) == {(run_dir / WANDB_RUN_ID).read_text().strip()}
    assert wandb_history(log_file, PLUGIN_KEY) == [(1, 10.0), (2, 20.0), (3, 30.0)]
    losses = wandb_history(log_file, "critic_loss")
    assert [s for s, _ in losses] == [1, 2, 3] and math.isnan(losses[1][1])  # W&B keeps NaN


def test_a_restart_resumes_the_same_wandb_run_after_the_checkpoint(tmp_path: Path) -> None:
    """The first start logs 1..5 and stops; the second resumes from a checkpoint at 3 in
    the same run directory: same run id, and only steps past the checkpoint logged."""
    pytest.importorskip("wandb")
    run_dir = tmp_path / "run"
    first = WandbSink(run_dir, project="autotelic-test", start_step=0)
    for step in range(1, 6):
        first.record(step, {PLUGIN_KEY: float(step)})
    first.close()
    second = WandbSink(run_dir, project="autotelic-test", start_step=3)
    assert second.run_id == first.run_id
    for step in range(3, 8):  # step 3 is the checkpoint's, which the first start logged
        second.record(step, {PLUGIN_KEY: 100.0 + step})
    second.close()
    before, after = wandb_files(run_dir)
    assert wandb_run_ids(before) == wandb_run_ids(after) == {first.run_id}  # one W&B run
    assert [s for s, _ in wandb_history(before, PLUGIN_KEY)] == [1, 2, 3, 4, 5]
    assert wandb_history(after, PLUGIN_KEY) == [(4, 104.0), (5, 105.0), (6, 106.0), (7, 107.0)]


# --- MLflow: its file store, read back with its client -------------------------------


def mlflow_history(sink: MlflowSink, key: str) -> list[tuple[int, float]]:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=sink.tracking_uri)
    return sorted((m.step, m.value) for m in client.get_metric_history(sink.run_id, key))


def test_mlflow_keeps_every_finite_key_in_a_file_store_in_the_run_directory(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pytest.importorskip("mlflow")
    run_dir = tmp_path / "run"
    sink = MlflowSink(run_dir, experiment="autotelic-test")
    assert sink.tracking_uri == (run_dir / "mlruns").resolve().as_uri()
    refused = "x" * 300  # longer than MLflow takes for a name
    with caplog.at_level(logging.WARNING):
        for step in (1, 2, 3):
            loss = math.inf if step == 2 else 0.5 * step
            sink.record(step, {"critic_loss": loss, PLUGIN_KEY: float(10 * step), refused: 1.0})
    sink.close()
    assert (run_dir / MLFLOW_RUN_ID).read_text().strip() == sink.run_id
    assert mlflow_history(sink, PLUGIN_KEY) == [(1, 10.0), (2, 20.0), (3, 30.0)]
    assert mlflow_history(sink, "critic_loss") == [(1, 0.5), (3, 1.5)]  # inf left out
    assert sum("MLflow rejects" in r.getMessage() for r in caplog.records) == 1  # once


def test_a_restart_resumes_the_same_mlflow_run(tmp_path: Path) -> None:
    pytest.importorskip("mlflow")
    from mlflow import MlflowClient

    run_dir = tmp_path / "run"
    first = MlflowSink(run_dir, experiment="autotelic-test")
    for step in (1, 2, 3):
        first.record(step, {PLUGIN_KEY: float(step)})
    first.close()
    client = MlflowClient(tracking_uri=first.tracking_uri)
    assert client.get_run(first.run_id).info.status == "FINISHED"
    second = MlflowSink(run_dir, experiment="autotelic-test")
    assert second.run_id == first.run_id
    assert client.get_run(first.run_id).info.status == "RUNNING"
    for step in (4, 5):
        second.record(step, {PLUGIN_KEY: float(step)})
    second.close()
    assert mlflow_history(second, PLUGIN_KEY) == [(s, float(s)) for s in range(1, 6)]
    experiment = client.get_experiment_by_name("autotelic-test")
    assert experiment is not None
    assert len(client.search_runs([experiment.experiment_id])) == 1  # one MLflow run


def test_a_configured_mlflow_store_is_used_instead_of_the_run_directory(tmp_path: Path) -> None:
    """A plain path is a file store too (MLflow 3 opens it only with the opt-in)."""
    pytest.importorskip("mlflow")
    store = tmp_path / "shared-store"
    sink = MlflowSink(tmp_path / "run", experiment="autotelic-test", tracking_uri=str(store))
    sink.record(1, {PLUGIN_KEY: 1.0})
    sink.close()
    assert mlflow_history(sink, PLUGIN_KEY) == [(1, 1.0)]
    assert store.is_dir() and not (tmp_path / "run" / "mlruns").exists()
    assert (tmp_path / "run" / MLFLOW_RUN_ID).read_text().strip() == sink.run_id


# --- Wiring and missing packages -----------------------------------------------------


def test_the_tracking_section_opens_both_trackers_thinned_like_the_files(tmp_path: Path) -> None:
    """Thinned by the update count; W&B's step is that count, MLflow's the env steps."""
    pytest.importorskip("wandb")
    pytest.importorskip("mlflow")
    run_dir = tmp_path / "run"
    config = TrackingConfig(csv=False, wandb=True, mlflow=True, every_updates=2)
    taken = [0]
    stream = open_sinks(config, run_dir, start_step=0, env_steps=lambda: taken[0])
    for step in range(1, 7):
        taken[0] += 16
        stream.learner_stats(step, {PLUGIN_KEY: float(step)})
    stream.close()
    [log_file] = wandb_files(run_dir)
    assert [s for s, _ in wandb_history(log_file, PLUGIN_KEY)] == [2, 4, 6]
    assert [v for _, v in wandb_history(log_file, ENV_STEPS)] == [32.0, 64.0, 96.0]
    resumed = MlflowSink(run_dir, experiment=config.mlflow_experiment)
    assert mlflow_history(resumed, PLUGIN_KEY) == [(32, 2.0), (64, 4.0), (96, 6.0)]
    assert mlflow_history(resumed, UPDATES) == [(32, 2.0), (64, 4.0), (96, 6.0)]
    resumed.close()


@pytest.mark.parametrize(
    ("module", "option", "sink", "install"),
    [
        ("wandb", "wandb", WandbSink, r"pip install 'wandb>=0\.19\.10,<1'"),
        ("mlflow", "mlflow", MlflowSink, r"pip install 'mlflow-skinny>=2\.16,<4'"),
    ],
    ids=["wandb", "mlflow"],
)
def test_a_missing_tracker_package_is_one_line_naming_the_install(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    module: str,
    option: str,
    sink: Any,
    install: str,
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # import fails
    kwargs = {"project": "p"} if sink is WandbSink else {"experiment": "e"}
    with pytest.raises(MissingPackageError, match=install) as raised:
        sink(tmp_path / "run", **kwargs)
    assert "\n" not in str(raised.value)
    with pytest.raises(MissingPackageError, match=rf"tracking\.{option} needs"):
        open_sinks(TrackingConfig(**{option: True}), tmp_path, start_step=0)
    assert not (tmp_path / STATS_CSV).exists()  # nothing opened before the error


def test_a_tracker_that_fails_to_open_closes_those_opened_before_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """W&B opens before MLflow; MLflow missing stops the run with W&B's run finished."""
    pytest.importorskip("wandb")
    monkeypatch.setitem(sys.modules, "mlflow", None)
    with pytest.raises(MissingPackageError, match=r"tracking\.mlflow needs"):
        open_sinks(TrackingConfig(wandb=True, mlflow=True), tmp_path, start_step=0)
    [log_file] = wandb_files(tmp_path)  # waits for the exit record that finish() writes
    assert wandb_run_ids(log_file) == {(tmp_path / WANDB_RUN_ID).read_text().strip()}


# --- The run's configuration as hyperparameters, figures against env steps ----------


def tensorboard_hyperparameters(log_dir: Path) -> dict[str, Any]:
    """The hyperparameters TensorBoard's HParams dashboard reads for the run (the last
    start's session), by name."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    accumulator = EventAccumulator(str(log_dir))
    accumulator.Reload()
    content = accumulator.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    start = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info
    return {name: getattr(value, value.WhichOneof("kind")) for name, value in start.hparams.items()}


def tensorboard_text(log_dir: Path, tag: str) -> str:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(log_dir), size_guidance={"tensors": 0})
    accumulator.Reload()
    [event] = accumulator.Tensors(f"{tag}/text_summary")
    return str(event.tensor_proto.string_val[0].decode())


def wandb_config(path: Path) -> dict[str, Any]:
    """The run config an offline run file holds (its run record's, and any later config
    record's), W&B's own ``_wandb`` key left out."""
    out: dict[str, Any] = {}
    for record in wandb_records(path):
        kind = record.WhichOneof("record_type")
        updates = record.run.config.update if kind == "run" else record.config.update
        if kind in ("run", "config"):
            for item in updates:
                out[item.key] = json.loads(item.value_json)
    out.pop("_wandb", None)
    return out


def wandb_axes(path: Path) -> dict[str, str]:
    """The x axis (``step_metric``) W&B was told for each key."""
    return {
        r.metric.name: r.metric.step_metric
        for r in wandb_records(path)
        if r.WhichOneof("record_type") == "metric" and r.metric.step_metric
    }


def test_trackers_get_the_full_configuration_and_draw_on_env_steps(tmp_path: Path) -> None:
    """A real serial run of the toy pair with TensorBoard, W&B and MLflow on: each holds
    the run's whole config.yaml as hyperparameters (read back with its own reader), and
    draws the learner's stats and every evaluation against env steps, with the update
    count as a series of its own."""
    pytest.importorskip("tensorboard")
    pytest.importorskip("wandb")
    pytest.importorskip("mlflow")
    from mlflow import MlflowClient

    run_dir = tmp_path / "run"
    trackers = {"tensorboard": True, "wandb": True, "mlflow": True}
    agent = Agent(toy_settings(run_dir, 600, eval=EVALUATE, tracking=trackers))
    try:
        agent.run_serial()
        updates = agent.learner.num_updates
    finally:
        agent.close()
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    flat = flat_hyperparameters(config)
    assert flat["algorithm.batch_size"] == 32 and flat["eval.splits"] == '["train"]'
    assert len(flat) > 50  # every field, not a chosen few

    assert tensorboard_hyperparameters(run_dir / TENSORBOARD_DIR) == flat
    text = tensorboard_text(run_dir / TENSORBOARD_DIR, "config")
    assert yaml.safe_load("\n".join(line[4:] for line in text.splitlines())) == config

    client = MlflowClient(tracking_uri=(run_dir / "mlruns").resolve().as_uri())
    run_id = (run_dir / MLFLOW_RUN_ID).read_text().strip()
    assert client.get_run(run_id).data.params == {k: str(v) for k, v in flat.items()}
    artifact = Path(client.download_artifacts(run_id, "config.yaml", str(tmp_path / "dl")))
    assert yaml.safe_load(artifact.read_text()) == config

    [log_file] = wandb_files(run_dir)
    assert wandb_config(log_file) == config

    # Against env steps: the stats at the count read with them, each evaluation at its own.
    at: dict[int, float] = {}
    for r in read_rows(run_dir / STATS_CSV):
        if r["key"] == ENV_STEPS:
            at.setdefault(int(r["step"]), float(r["value"]))
    evaluated = sorted({(int(r["evaluation"]), int(r["env_steps"]))
                        for r in read_rows(run_dir / "evaluations.csv")})  # fmt: skip
    assert len(evaluated) >= 2
    history = sorted(client.get_metric_history(run_id, UPDATES), key=lambda m: m.value)
    assert [(m.step, m.value) for m in history] == [(at[u], u) for u in range(1, updates + 1)]
    mean = client.get_metric_history(run_id, "eval/train/greedy/success")
    assert sorted(m.step for m in mean) == [steps for _, steps in evaluated]
    axes = wandb_axes(log_file)
    assert axes[UPDATES] == axes[KEY] == ENV_STEPS
    assert axes["eval/train/greedy/success"] == EVAL_ENV_STEPS
    rows = [r for r in wandb_records(log_file) if r.WhichOneof("record_type") == "history"]
    seen = {
        item.key or "/".join(item.nested_key): json.loads(item.value_json)
        for r in rows
        for item in r.history.item
    }
    assert {UPDATES, ENV_STEPS, EVAL_ENV_STEPS, "eval/train/greedy/success"} <= seen.keys()


def test_a_restart_with_a_changed_value_keeps_mlflows_first_param_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """MLflow never changes a param: the second start adds the keys the run lacks, keeps
    the first value of a changed one with a warning naming it, and its config.yaml
    artifact holds the new start's configuration in full."""
    pytest.importorskip("mlflow")
    run_dir = tmp_path / "run"
    first = MlflowSink(run_dir, experiment="e", hyperparameters={"run": {"max_env_steps": 1000}})
    first.close()
    again = {"run": {"max_env_steps": 5000}, "model": {"path": "tiny-words", "vocabulary": []}}
    with caplog.at_level(logging.WARNING):
        second = MlflowSink(run_dir, experiment="e", hyperparameters=again)
    second.close()
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=second.tracking_uri)
    params = client.get_run(second.run_id).data.params
    assert params == {"run.max_env_steps": "1000", "model.path": "tiny-words",
                      "model.vocabulary": "[]"}  # fmt: skip
    assert any("run.max_env_steps changed" in r.getMessage() for r in caplog.records)
    artifact = Path(client.download_artifacts(second.run_id, "config.yaml", str(tmp_path / "a")))
    assert yaml.safe_load(artifact.read_text()) == again


def test_wandb_keeps_a_record_that_comes_at_the_step_it_just_logged(tmp_path: Path) -> None:
    """An evaluation or the readings arrive at the update count the learner's stats of
    that step were just logged at: W&B merges them into that step's row (it would drop
    only a lower step)."""
    pytest.importorskip("wandb")
    run_dir = tmp_path / "run"
    sink = WandbSink(run_dir, project="autotelic-test")
    sink.record(1, {"critic_loss": 0.5, ENV_STEPS: 16.0})
    sink.record(2, {"critic_loss": 0.4, ENV_STEPS: 32.0})
    sink.record(2, {"eval/train/greedy/success": 0.25, EVAL_ENV_STEPS: 24.0})
    sink.close()
    [log_file] = wandb_files(run_dir)
    assert wandb_history(log_file, "eval/train/greedy/success") == [(2, 0.25)]
    assert wandb_history(log_file, "critic_loss") == [(1, 0.5), (2, 0.4)]
    assert wandb_history(log_file, UPDATES) == [(1, 1.0), (2, 2.0)]
