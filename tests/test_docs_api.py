"""The example of docs/api.md runs as printed and prints what a run did."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[1] / "docs" / "api.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.DOTALL)


def test_the_documented_run_trains_evaluates_and_reads_its_counters(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)  # the example's run directory is relative
    exec(compile(python_blocks()[1], str(DOC), "exec"), {"__name__": "api_example"})
    lines = capsys.readouterr().out.splitlines()
    counts = re.fullmatch(r"(\d+) env steps, (\d+) episodes, (\d+) updates", lines[0])
    assert counts is not None, lines
    steps, episodes, updates = (int(x) for x in counts.groups())
    assert steps >= 120 and episodes > 5 and updates > 0
    categories = [
        re.fullmatch(r"(\w+): (\d\.\d\d) of (\d+) episodes", line) for line in lines[1:-1]
    ]
    assert categories and all(m is not None and int(m[3]) > 0 for m in categories)
    assert lines[-1] == f"autotelic_env_steps_total = {steps}"
    assert (tmp_path / "runs/api-example/config.yaml").is_file()
    assert any((tmp_path / "runs/api-example/checkpoints").iterdir())


def test_the_settings_block_is_the_call_the_page_describes() -> None:
    first = python_blocks()[0]
    assert "load_settings(" in first and 'algorithm={"batch_size": 32}' in first
