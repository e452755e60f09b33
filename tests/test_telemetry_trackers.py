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

from autotelic.runtime.extras import MissingPackageError
from autotelic.runtime.telemetry.config import TrackingConfig
from autotelic.runtime.telemetry.sinks import open_sinks
from autotelic.runtime.telemetry.trackers import (
    ALLOW_FILE_STORE,
    MLFLOW_RUN_ID,
    WANDB_RUN_ID,
    MlflowSink,
    WandbSink,
)
from autotelic.runtime.telemetry.tracking import STATS_CSV

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
    pytest.importorskip("wandb")
    pytest.importorskip("mlflow")
    run_dir = tmp_path / "run"
    config = TrackingConfig(csv=False, wandb=True, mlflow=True, every_updates=2)
    stream = open_sinks(config, run_dir, start_step=0)
    for step in range(1, 7):
        stream.learner_stats(step, {PLUGIN_KEY: float(step)})
    stream.close()
    [log_file] = wandb_files(run_dir)
    assert [s for s, _ in wandb_history(log_file, PLUGIN_KEY)] == [2, 4, 6]
    resumed = MlflowSink(run_dir, experiment=config.mlflow_experiment)
    assert [s for s, _ in mlflow_history(resumed, PLUGIN_KEY)] == [2, 4, 6]
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
