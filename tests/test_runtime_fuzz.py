"""10,000 fuzzed goal requests against the live service (slow): every verdict is the one
the request parser and the goal space give, and the service keeps running and learning."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autotelic.runtime.config import deep_merge
from autotelic.runtime.transport.messages import Topics
from tests.runtime_fixtures import TINY_SERVICE, Mosquitto, Probe, ServiceProcess
from tests.test_runtime_service import expected_verdict, payloads

AGENT = "fuzz"
TOPICS = Topics(AGENT)
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServiceProcess, Probe]]:
    broker = Mosquitto(tmp_path_factory.mktemp("broker"))
    broker.start()
    config = deep_merge(TINY_SERVICE, {"run": {"agent": AGENT}, "mqtt": {"url": broker.url}})
    service = ServiceProcess(tmp_path_factory.mktemp("service"), config)
    service.start()
    service.wait_connected()
    probe = Probe(broker.port, [TOPICS.accepted, TOPICS.rejected])
    yield service, probe
    probe.close()
    if service.alive():
        service.kill()
    broker.stop()


def test_ten_thousand_fuzzed_requests_get_the_right_verdict_and_the_service_learns_on(
    live: tuple[ServiceProcess, Probe],
) -> None:
    """One test: the check after the fuzz needs the fuzz, so it may not run alone or first."""
    service, probe = live
    counts = {"accepted": 0, "rejected": 0}

    @settings(
        max_examples=500, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True
    )
    @given(batch=st.lists(payloads, min_size=20, max_size=20))
    def in_order(batch: list[bytes]) -> None:
        probe.drain()
        for payload in batch:
            probe.publish(TOPICS.inject, payload, wait=False)
        for payload in batch:
            topic, reply, _ = probe.next(timeout=60)
            accepted = topic == TOPICS.accepted
            assert accepted == expected_verdict(payload), (payload[:200], reply)
            if not accepted:
                assert isinstance(reply["reason"], str) and len(reply["reason"]) > 5
            counts["accepted" if accepted else "rejected"] += 1

    in_order()
    assert sum(counts.values()) == 10_000 and min(counts.values()) > 1000
    metrics = service.metrics()
    assert metrics['autotelic_injected_goals_total{status="rejected"}'] >= counts["rejected"]
    before = metrics["autotelic_env_steps_total"]
    service.wait_for(
        lambda: service.metrics()["autotelic_env_steps_total"] > before + 100, what="more steps"
    )
    assert service.terminate() == 0
