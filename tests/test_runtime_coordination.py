"""Update-to-data throttle and safe points, with real threads."""

from __future__ import annotations

import threading
import time

import pytest

from autotelic.runtime.loop.coordination import SafePoints, TimeShares, UpdateThrottle


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


def test_invalid_lag_policy_is_rejected():
    with pytest.raises(ValueError, match="when_behind"):
        UpdateThrottle(ratio=1.0, learning_starts=0, when_behind="auto")  # type: ignore[arg-type]


def test_skip_never_blocks_the_collector_and_bounds_the_backlog():
    """Under 'skip' a learner that never updates neither stops collection nor builds an
    unbounded backlog: the updates owed beyond the lag are skipped."""
    throttle = UpdateThrottle(ratio=0.5, learning_starts=0, max_lag_updates=3, when_behind="skip")
    for _ in range(100):
        assert throttle.wait_for_room(timeout=0)  # returns at once, every time
        throttle.record_steps(2)
        assert throttle.owed() <= 3 + 1  # one collection step of slack, as under 'wait'
    assert throttle.target() == 101 and throttle.updates == 0
    assert throttle.skipped > 90  # forgiven, not owed
    # The learner then works off what is left and finds nothing more owed.
    while throttle.owed():
        assert throttle.wait_for_work(timeout=0)
        throttle.record_update()
    assert throttle.updates <= 4 and throttle.lag() == 0
    assert not throttle.wait_for_work(timeout=0)


def test_wait_blocks_the_collector_when_the_learner_is_behind():
    throttle = UpdateThrottle(ratio=0.5, learning_starts=0, max_lag_updates=1, when_behind="wait")
    throttle.record_steps(4)  # target 3, nothing done
    assert not throttle.wait_for_room(timeout=0)
    throttle.record_update()
    assert not throttle.wait_for_room(timeout=0)  # backlog 2 > 1
    throttle.record_update()
    assert throttle.wait_for_room(timeout=0)  # backlog 1 <= 1
    assert throttle.skipped == 0


def test_micro_batch_progress_gives_the_collector_room_before_the_update_ends():
    """A learner that reports progress after each micro-batch lets a waiting collector go on
    mid-update; without reports it would wait for the whole update."""
    throttle = UpdateThrottle(ratio=1.0, learning_starts=0, max_lag_updates=1, when_behind="wait")
    throttle.record_steps(2)  # target 3, backlog 3 > 1
    assert not throttle.wait_for_room(timeout=0)
    throttle.record_update()  # backlog 2
    assert not throttle.wait_for_room(timeout=0)
    woke = threading.Event()
    waiter = threading.Thread(target=lambda: woke.set() if throttle.wait_for_room(30) else None)
    waiter.start()
    throttle.record_progress(0.5)
    assert not woke.wait(0.2)  # 1.5 behind: still waiting
    throttle.record_progress(1.0)  # the update in hand is done but not yet applied
    waiter.join(timeout=10)
    assert woke.is_set()
    assert throttle.lag() == 1.0 and throttle.updates == 1
    throttle.record_update()  # applying it resets the share
    assert throttle.progress == 0.0 and throttle.lag() == 1.0


def test_restore_owes_at_most_the_lag_bound():
    """A restart does not bring back the updates a 'skip' run forgave (they are not saved):
    resumed under either policy, the learner owes at most max_lag_updates."""
    for policy in ("skip", "wait"):
        throttle = UpdateThrottle(
            ratio=1.0,
            learning_starts=0,
            max_lag_updates=2,
            when_behind=policy,
        )
        throttle.record_progress(0.5)
        throttle.restore(env_steps=1000, updates=4)
        assert (throttle.progress, throttle.owed(), throttle.lag()) == (0.0, 2, 2.0)
        throttle.restore(env_steps=5, updates=4)  # within the bound: owed as counted
        assert (throttle.skipped, throttle.owed()) == (0, 2)


def test_time_shares_add_up_across_threads():
    shares = TimeShares()

    def work() -> None:
        for _ in range(5):
            with shares.timing("learning"):
                time.sleep(0.002)
        shares.add("collector_waiting", 1.5)

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    seen = shares.snapshot()
    assert seen["collector_waiting"] == pytest.approx(4.5)
    assert seen["learning"] >= 15 * 0.002  # sleeps never end early
    with pytest.raises(RuntimeError), shares.timing("failing"):
        raise RuntimeError("counted anyway")
    assert "failing" in shares.snapshot()


def test_time_shares_count_an_activity_still_in_progress():
    """A window that ends mid-update is credited with the part already spent."""
    shares = TimeShares()
    inside, leave = threading.Event(), threading.Event()

    def long_update() -> None:
        with shares.timing("learning"):
            inside.set()
            leave.wait(10)

    t = threading.Thread(target=long_update)
    t.start()
    assert inside.wait(10)
    time.sleep(0.02)
    first = shares.snapshot()["learning"]
    time.sleep(0.02)
    second = shares.snapshot()["learning"]
    assert 0.02 <= first < second  # grows while it runs
    leave.set()
    t.join(timeout=10)
    done = shares.snapshot()["learning"]
    assert done >= second and shares.snapshot()["learning"] == done  # closed: stops growing
