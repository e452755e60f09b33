"""A concurrent run whose learner cannot keep the update-to-data ratio says so in its
log: how many updates were done of those asked, and what keeps the ratio."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from autotelic.runtime.config import deep_merge, load_settings
from autotelic.runtime.loop.agent import Agent
from autotelic.runtime.loop.schedules import OffPolicySchedule
from autotelic.runtime.service import RatioReport
from tests.runtime_fixtures import TINY_SERVICE


def test_the_log_says_how_far_the_learner_falls_behind_the_ratio(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """One update of 128 transitions per env step, 8 envs stepping together, no lag
    allowed, and the skip policy: the learner falls behind and the owed updates are
    skipped, which the report counts from the run's own throttle."""
    extra = {
        "run": {"dir": str(tmp_path / "run"), "mode": "concurrent", "max_env_steps": 400},
        "env": {"num_envs": 8},
        "algorithm": {"update_every": 1, "batch_size": 128, "learning_starts": 32},
        "collector": {"when_learner_behind": "skip", "max_lag_updates": 0},
        "eval": {"enabled": False},
    }
    settings = load_settings(None, **deep_merge(TINY_SERVICE, extra))
    agent = Agent(settings)
    threads = agent.start_threads()
    for t in threads:
        t.join(timeout=300)
    try:
        assert agent.error is None
        assert isinstance(agent.schedule, OffPolicySchedule)
        throttle = agent.schedule.throttle
        assert throttle.skipped > 0  # the learner did fall behind: what is reported
        report = RatioReport()
        with caplog.at_level(logging.WARNING, logger="autotelic.runtime.service"):
            line = report.check(agent)
        assert line is not None and line in caplog.text
        done, skipped = throttle.updates, throttle.skipped
        assert f"{done:,} updates done of {done + skipped:,} asked" in line
        assert f"{skipped:,} skipped" in line and "algorithm.update_every=1" in line
        assert report.check(agent) is None  # nothing new to say
    finally:
        agent.checkpoint(pause=True)
        agent.close()


def test_a_run_that_keeps_the_ratio_reports_nothing(tmp_path: Path) -> None:
    extra = {"run": {"dir": str(tmp_path / "run"), "max_env_steps": 64, "mode": "serial"}}
    settings = load_settings(None, **deep_merge(TINY_SERVICE, extra))
    agent = Agent(settings)
    try:
        agent.run_serial()
        assert RatioReport().check(agent) is None
    finally:
        agent.close()
