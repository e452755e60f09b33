"""The default service (the packaged SmolLM2) exits 0 when stopped mid-learning (slow).

An update of SmolLM2 on a CPU takes seconds; stopped during one, the service used to
leave the learner thread inside torch at interpreter exit, and the process aborted
(exit 134, "terminate called without an active exception"). Each stop here comes right
after the first updates, when one is most likely in flight.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.runtime_fixtures import ServiceProcess

pytestmark = pytest.mark.slow

DEFAULT_LEARNING_SOON = {
    "env": {"num_envs": 2},
    "algorithm": {"batch_size": 16, "learning_starts": 16, "update_every": 8},
    "metrics": {"port": 0},
    "mqtt": {"embedded_port": 0},
    "service": {"progress_interval_s": 5},
}


@pytest.mark.timeout(1200)
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_the_default_service_exits_0_when_stopped_after_its_first_updates(
    tmp_path: Path, stop: signal.Signals
) -> None:
    service = ServiceProcess(tmp_path, DEFAULT_LEARNING_SOON)
    service.start(timeout=900)
    service.wait_for(
        lambda: service.metrics().get("autotelic_learner_updates_total", 0) >= 1,
        timeout=900,
        what="the first update",
    )
    assert service.proc is not None
    service.proc.send_signal(stop)
    code = service.proc.wait(timeout=120)
    log = service.log.read_text(errors="replace")
    assert code == 0, service.tail()
    assert "terminate called" not in log and "Traceback" not in log
    assert (service.run_dir / "checkpoints").is_dir()
