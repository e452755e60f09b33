"""bench/first_curve.py reads what the service serves: an evaluation handed to the service's
Prometheus adapter comes back, through a real scrape, as the figures the benchmark times."""

from __future__ import annotations

import pytest

from autotelic.runtime.telemetry.events import EvalCell, EvalFigures
from autotelic.runtime.telemetry.metrics import Metrics, MetricsServer, PrometheusEvents
from bench.first_curve import one, scrape, train_greedy


def test_the_benchmark_reads_an_evaluation_from_a_real_scrape() -> None:
    metrics = Metrics()
    server = MetricsServer(metrics)
    events = PrometheusEvents(metrics)
    try:
        before = scrape(server.url)
        assert one(before, "autotelic_evaluations_total") == 0.0
        cells = (
            EvalCell("train", "greedy", "grasp", 0.75, 3.0),
            EvalCell("train", "greedy", "grow_plant", 0.25, 5.0),
            EvalCell("train", "sampled", "grasp", 1.0, 3.0),  # another way of acting
            EvalCell("test", "greedy", "grasp", 0.0, 3.0),  # another split
        )
        events.evaluation_done(EvalFigures(4000, 17, 0.0, cells))
        seen = scrape(server.url)
    finally:
        server.close()
    assert one(seen, "autotelic_evaluations_total") == 1.0
    assert one(seen, "autotelic_eval_measured_env_steps") == 4000.0
    assert train_greedy(seen) == pytest.approx(0.5)  # the mean of the two training cells
