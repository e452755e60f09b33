"""Update-to-data throttle and safe points, with real threads."""

from __future__ import annotations

import threading
import time

import pytest

from autotelic.runtime.coordination import SafePoints, UpdateThrottle


def test_updates_owed_follow_the_ratio_after_learning_starts():
    throttle = UpdateThrottle(ratio=1 / 64, learning_starts=256)
    throttle.record_steps(255)
    assert throttle.owed() == 0
    throttle.record_steps(1)
    assert throttle.owed() == 1
    throttle.record_update()
    throttle.record_steps(63)
    assert throttle.owed() == 0
    throttle.record_steps(1)
    assert throttle.owed() == 1
    throttle.record_steps(640)
    assert throttle.owed() == 11


def test_invalid_ratio_is_rejected():
    with pytest.raises(ValueError, match="ratio"):
        UpdateThrottle(ratio=0, learning_starts=0)


def test_back_pressure_both_ways_with_threads():
    """A fast collector and a slow learner stay within the allowed lag of each other."""
    throttle = UpdateThrottle(ratio=0.5, learning_starts=0, max_lag_updates=3)
    worst_lag = 0
    stop = threading.Event()

    def collector() -> None:
        nonlocal worst_lag
        for _ in range(200):
            assert throttle.wait_for_room(timeout=10)
            throttle.record_steps(1)
            worst_lag = max(worst_lag, throttle.target() - throttle.updates)
        stop.set()

    def learner() -> None:
        while not stop.is_set() or throttle.owed():
            if throttle.wait_for_work(timeout=0.05):
                time.sleep(0.001)
                throttle.record_update()
                assert throttle.updates <= throttle.target()  # never ahead of the data

    threads = [threading.Thread(target=collector), threading.Thread(target=learner)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert throttle.env_steps == 200
    assert throttle.updates == throttle.target() == 101
    assert worst_lag <= 3 + 1  # one step of slack: the check precedes the step


def test_stop_releases_waiters():
    throttle = UpdateThrottle(ratio=1.0, learning_starts=10**9)
    result: list[bool] = []
    t = threading.Thread(target=lambda: result.append(throttle.wait_for_work(timeout=30)))
    t.start()
    time.sleep(0.05)
    throttle.stop()
    t.join(timeout=5)
    assert result == [False]


def test_safe_points_pause_every_worker_between_iterations():
    points = SafePoints()
    counters = {"a": 0, "b": 0}
    running = threading.Event()
    running.set()

    def worker(name: str) -> None:
        points.register(name)
        while running.is_set():
            points.checkpoint(name)
            counters[name] += 1
            time.sleep(0.001)
        points.unregister(name)

    threads = [threading.Thread(target=worker, args=(n,)) for n in counters]
    for t in threads:
        t.start()
    time.sleep(0.05)
    assert points.pause(timeout=10)
    frozen = dict(counters)
    time.sleep(0.05)
    assert counters == frozen  # nobody moves while paused
    points.resume()
    deadline = time.monotonic() + 10  # a loaded machine may take a while to schedule them
    while not all(counters[n] > frozen[n] for n in counters) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert all(counters[n] > frozen[n] for n in counters)
    running.clear()
    for t in threads:
        t.join(timeout=5)
    assert points.pause(timeout=1)  # no workers left: trivially paused
    points.resume()
