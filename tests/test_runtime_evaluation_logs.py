"""The run's append-only CSV logs: a crash never loses a written row, a cut-off row is never
read, and a file keeps the columns it was started with."""

from __future__ import annotations

import multiprocessing
import os
import signal
from pathlib import Path

from autotelic.runtime.telemetry.run_logs import CsvLog, read_rows

FIELDS = ("evaluation", "split", "success")


def test_rows_are_read_back_as_written_with_missing_values_empty(tmp_path: Path) -> None:
    log = CsvLog(tmp_path / "e.csv", FIELDS)
    log.append([{"evaluation": 0, "split": "train", "success": 0.25}, {"evaluation": 0}])
    log.append([])
    log.close()
    assert read_rows(tmp_path / "e.csv") == [
        {"evaluation": "0", "split": "train", "success": "0.25"},
        {"evaluation": "0", "split": "", "success": ""},
    ]
    assert read_rows(tmp_path / "missing.csv") == []


def test_a_row_cut_short_is_not_read_and_is_cut_off_before_the_next_append(
    tmp_path: Path,
) -> None:
    path = tmp_path / "e.csv"
    log = CsvLog(path, FIELDS)
    log.append([{"evaluation": 0, "split": "train", "success": 1.0}])
    log.close()
    with path.open("ab") as f:
        f.write(b"1,te")  # a kill -9 in the middle of a write
    assert read_rows(path) == [{"evaluation": "0", "split": "train", "success": "1.0"}]
    again = CsvLog(path, FIELDS)
    again.append([{"evaluation": 1, "split": "test", "success": 0.5}])
    again.close()
    assert path.read_text() == "evaluation,split,success\n0,train,1.0\n1,test,0.5\n"


def test_a_line_with_the_wrong_number_of_fields_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "e.csv"
    path.write_text("evaluation,split,success\n0,train,1.0\n0,train\n1,test,0.0,extra\n2,test,0\n")
    assert [r["evaluation"] for r in read_rows(path)] == ["0", "2"]


def test_a_file_started_with_other_columns_keeps_its_header(tmp_path: Path) -> None:
    path = tmp_path / "e.csv"
    path.write_text("split,evaluation\ntrain,0\n")
    log = CsvLog(path, FIELDS)
    assert log.fields == ["split", "evaluation"]
    log.append([{"evaluation": 1, "split": "test", "success": 0.5}])
    log.close()
    assert path.read_text() == "split,evaluation\ntrain,0\ntest,1\n"


def test_a_file_whose_header_was_cut_short_starts_again(tmp_path: Path) -> None:
    path = tmp_path / "e.csv"
    path.write_bytes(b"evaluat")
    CsvLog(path, FIELDS).close()
    assert path.read_text() == "evaluation,split,success\n"


def _append_forever(path: str) -> None:
    log = CsvLog(Path(path), FIELDS)
    i = 0
    while True:
        log.append([{"evaluation": i, "split": "train", "success": 0.5}] * 3)
        i += 1


def test_rows_appended_before_a_kill_9_are_all_there_and_complete(tmp_path: Path) -> None:
    """A writer process killed at a random moment: every row that is there is whole, in order."""
    path = tmp_path / "e.csv"
    ctx = multiprocessing.get_context("spawn")
    proc = ctx.Process(target=_append_forever, args=(str(path),))
    proc.start()
    while len(read_rows(path)) < 30:
        proc.join(0.05)
    assert proc.pid is not None
    seen = len(read_rows(path))
    os.kill(proc.pid, signal.SIGKILL)
    proc.join()
    rows = read_rows(path)
    indices = [int(r["evaluation"]) for r in rows]
    assert indices == sorted(indices) and len(indices) >= seen >= 30
    assert all(
        r == {"evaluation": r["evaluation"], "split": "train", "success": "0.5"} for r in rows
    )
    CsvLog(path, FIELDS).close()  # a restart cuts whatever partial line there was
    assert path.read_bytes().endswith(b"\n")
    assert read_rows(path) == rows
