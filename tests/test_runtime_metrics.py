"""Rates derived from counters: what the throughput gauges show."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Gauge

from autotelic.runtime.telemetry.metrics import RateMeter


def test_rate_meter_measures_from_its_first_mark_not_from_zero() -> None:
    """A run resumed at 10,000 steps must not report 10,000 steps as one burst of speed."""
    gauge = Gauge("rate", "test rate", registry=CollectorRegistry())
    meter = RateMeter(gauge, every=0.0)
    before = time.monotonic()
    meter.update(10_000)
    assert gauge._value.get() == 0.0  # only a mark so far
    time.sleep(0.05)
    meter.update(10_010)
    after = time.monotonic()
    rate = gauge._value.get()
    assert 10 / (after - before) <= rate <= 10 / 0.05


def test_rate_meter_waits_for_a_full_window() -> None:
    gauge = Gauge("rate", "test rate", registry=CollectorRegistry())
    meter = RateMeter(gauge, every=60.0)
    meter.update(0)
    meter.update(500)
    assert gauge._value.get() == 0.0
