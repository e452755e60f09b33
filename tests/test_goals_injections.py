"""Injected goals: served first, by priority then arrival, counted, expired, reported, kept."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autotelic.goals import (
    CurriculumConfig,
    GoalDaemon,
    InjectionConfig,
    InjectionQueue,
    InjectionRejected,
    MemoryStateStore,
    NoGoalsError,
)
from tests.goals_fixtures import PLAYGROUND, ManualClock, Reports

GOALS = ["Grasp cow", "Grow carrot", "Grow lion"]


def make(
    store: MemoryStateStore | None = None, clock: ManualClock | None = None, **config: object
) -> tuple[GoalDaemon, Reports, ManualClock]:
    reports = Reports()
    clock = clock or ManualClock()
    settings = {"configured_goals": GOALS, **config}
    daemon = GoalDaemon(
        CurriculumConfig.model_validate(settings),
        store=store,
        clock=clock,
        on_report=reports,
        goal_space=PLAYGROUND,
    )
    return daemon, reports, clock


def finish(daemon: GoalDaemon, n: int, success: bool = True) -> list[str | None]:
    """Run ``n`` episodes; returns the injection id of each (None when self-chosen)."""
    ids = []
    for assignment in daemon.next_goals(n):
        daemon.report(assignment.outcome(success=success, steps=3))
        ids.append(assignment.injection_id)
    return ids


def test_injected_goal_preempts_self_chosen_goals_and_respects_its_count() -> None:
    daemon, reports, _ = make()
    injection = daemon.inject("grow  COW", episodes=3)
    assert (injection.goal, injection.category, injection.episodes) == (
        "Grow cow",
        "grow_herbivore",
        3,
    )
    assert len(injection.id) == 32
    batch = daemon.next_goals(5)
    assert [a.injection_id for a in batch[:3]] == [injection.id] * 3
    assert all(a.goal == "Grow cow" and a.source == "injected" for a in batch[:3])
    assert all(a.injection_id is None and a.goal in GOALS for a in batch[3:])
    assert all(a.injection_id is None for a in daemon.next_goals(20))
    assert daemon.stats().injected_episodes_pending == 0
    # The goal is known from now on, as an injected one.
    assert {r.text: r.source for r in daemon.goals()}["Grow cow"] == "injected"


def test_priorities_first_then_arrival_order() -> None:
    daemon, _, _ = make()
    low = daemon.inject("Grasp lion", priority=-1)
    first = daemon.inject("Grow potato", episodes=2)
    high = daemon.inject("Grow deer", priority=5)
    second = daemon.inject("Grow berry")
    order = [a.injection_id for a in daemon.next_goals(6)]
    assert order[:5] == [high.id, first.id, first.id, second.id, low.id]
    assert order[5] is None


def test_every_outcome_is_reported_then_completion() -> None:
    daemon, reports, clock = make()
    injection = daemon.inject("Grow carrot", episodes=3)
    outcomes = [True, False, True]
    for episode_id, success in enumerate(outcomes):
        (assignment,) = daemon.next_goals(1)
        clock.advance(1)
        daemon.report(
            assignment.outcome(
                success=success,
                steps=4 + episode_id,
                achieved_goals=["Grow carrot"] if success else [],
                episode_id=100 + episode_id,
            )
        )
    mine = reports.of(injection.id)
    assert [r.status for r in mine] == ["episode", "episode", "episode", "completed"]
    episodes = mine[:3]
    assert [r.episode_index for r in episodes] == [0, 1, 2]
    assert [r.success for r in episodes] == outcomes
    assert [r.steps for r in episodes] == [4, 5, 6]
    assert [r.episode_id for r in episodes] == [100, 101, 102]
    assert [r.episodes_done for r in episodes] == [1, 2, 3]
    assert episodes[0].achieved_goals == ("Grow carrot",)
    final = mine[3]
    assert (final.episodes_requested, final.episodes_done, final.successes) == (3, 3, 2)
    assert final.to_dict()["status"] == "completed"
    assert daemon.injection(injection.id) is None  # finished


def test_expiry_drops_unserved_episodes_and_reports_once() -> None:
    daemon, reports, clock = make()
    doomed = daemon.inject("Grow cow", episodes=5, ttl=10.0)
    timed = daemon.inject("Grow lion", episodes=2, expires_at=clock.now + 100)
    (running,) = daemon.next_goals(1)
    assert running.injection_id == doomed.id
    clock.advance(10.5)
    batch = daemon.next_goals(3)
    assert [a.injection_id for a in batch] == [timed.id, timed.id, None]
    expired = [r for r in reports if r.status == "expired"]
    assert [r.injection_id for r in expired] == [doomed.id]
    assert (expired[0].episodes_requested, expired[0].episodes_done) == (5, 0)
    # The episode already running still reports; no second final status.
    daemon.report(running.outcome(success=True, steps=7))
    late = reports.of(doomed.id)
    assert [r.status for r in late] == ["expired", "episode"]
    assert daemon.injection(doomed.id) is None
    # The absolute expiry of the other one passes with nothing left unserved: it completes.
    clock.advance(200)
    for a in batch[:2]:
        daemon.report(a.outcome(success=False, steps=15))
    assert [r.status for r in reports.of(timed.id)] == ["episode", "episode", "completed"]


def test_expiry_without_collector_calls() -> None:
    daemon, reports, clock = make()
    injection = daemon.inject("Grow cow", ttl=1)
    assert daemon.expire_injections() == []
    clock.advance(2)
    (report,) = daemon.expire_injections()
    assert (report.injection_id, report.status) == (injection.id, "expired")
    assert list(reports) == [report]
    assert daemon.stats().injections_active == 0


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"goal": "Grow unicorn"}, "unknown object 'unicorn'"),
        ({"goal": "Grow carrot seed"}, "growth stage"),
        ({"goal": ""}, "empty goal"),
        ({"goal": "Grow carrot", "episodes": 0}, "episodes must be between 1 and 50"),
        ({"goal": "Grow carrot", "episodes": 51}, "episodes must be between 1 and 50"),
        ({"goal": "Grow carrot", "episodes": True}, "episodes must be an integer"),
        ({"goal": "Grow carrot", "episodes": 2.0}, "episodes must be an integer"),
        ({"goal": "Grow carrot", "priority": "high"}, "priority must be an integer"),
        ({"goal": "Grow carrot", "ttl": 0}, "ttl must be > 0"),
        ({"goal": "Grow carrot", "ttl": float("inf")}, "ttl must be a finite"),
        ({"goal": "Grow carrot", "ttl": "soon"}, "ttl must be a finite"),
        ({"goal": "Grow carrot", "expires_at": 5.0}, "not in the future"),
        ({"goal": "Grow carrot", "expires_at": "tomorrow"}, "expiry must be a time"),
        ({"goal": "Grow carrot", "expires_at": True}, "expiry must be a time"),
        ({"goal": "Grow carrot", "expires_at": float("nan")}, "expiry must be a finite time"),
        ({"goal": "Grow carrot", "expires_at": 2e9, "ttl": 5}, "not both"),
    ],
)
def test_bad_injections_are_rejected_with_reasons(kwargs: dict[str, object], fragment: str) -> None:
    daemon, reports, _ = make(injections=InjectionConfig(max_episodes=50))
    with pytest.raises(InjectionRejected) as caught:
        daemon.inject(**kwargs)  # type: ignore[arg-type]
    assert fragment in caught.value.reason
    assert daemon.stats().injections_active == 0
    assert "Grow unicorn" not in [r.text for r in daemon.goals()]


@pytest.mark.parametrize(
    ("expires_at", "fragment"),
    [("tomorrow", "expiry must be a time"), (float("inf"), "finite"), (5.0, "not in the future")],
)
def test_the_queue_itself_checks_the_expiry(expires_at: object, fragment: str) -> None:
    queue = InjectionQueue()
    goal = PLAYGROUND.parse("Grow carrot")
    with pytest.raises(InjectionRejected, match=fragment):
        queue.submit(goal, episodes=1, priority=0, expires_at=expires_at, now=10.0)  # type: ignore[arg-type]
    assert len(queue) == 0


def test_full_queue_rejects_more() -> None:
    daemon, _, _ = make(injections=InjectionConfig(max_pending=2))
    daemon.inject("Grow cow")
    daemon.inject("Grow cow")
    with pytest.raises(InjectionRejected, match="queue full"):
        daemon.inject("Grow cow")


def test_accepted_injections_survive_a_restart() -> None:
    store, clock = MemoryStateStore(), ManualClock()
    daemon, _, _ = make(store, clock)
    kept = daemon.inject("Grow cow", episodes=3, priority=2, ttl=60)
    other = daemon.inject("Grasp lion")
    in_flight = daemon.next_goals(2)
    daemon.report(in_flight[0].outcome(success=True, steps=5))  # one of Grow cow done
    # Crash: the second Grow cow episode was running and is lost.
    restarted, reports, _ = make(store, clock)
    restored = restarted.injection(kept.id)
    assert restored is not None
    assert (restored.done, restored.successes, restored.expires_at) == (1, 1, kept.expires_at)
    batch = restarted.next_goals(4)
    assert [a.injection_id for a in batch[:3]] == [kept.id, kept.id, other.id]
    for a in batch[:3]:
        restarted.report(a.outcome(success=False, steps=10))
    statuses = [(r.injection_id, r.status) for r in reports if r.status != "episode"]
    assert statuses == [(kept.id, "completed"), (other.id, "completed")]
    assert reports.of(kept.id)[-1].successes == 1


def test_an_old_checkpoint_does_not_revive_finished_injections() -> None:
    store = MemoryStateStore()
    daemon, _, _ = make(store)
    injection = daemon.inject("Grow cow")
    checkpoint = daemon.state_dict()
    finish(daemon, 1)
    restarted, _, _ = make(store)
    restarted.load_state_dict(checkpoint)
    assert restarted.injection(injection.id) is None
    assert [a.injection_id for a in restarted.next_goals(3)] == [None] * 3


def test_outcome_for_unknown_injection_is_ignored_and_callback_errors_do_not_spread(
    caplog: pytest.LogCaptureFixture,
) -> None:
    daemon, reports, _ = make()

    def broken(_: object) -> None:
        raise RuntimeError("publisher down")

    daemon.add_report_callback(broken)
    injection = daemon.inject("Grow cow")
    (assignment,) = daemon.next_goals(1)
    daemon.report(assignment.outcome(success=True, steps=6))
    assert [r.status for r in reports.of(injection.id)] == ["episode", "completed"]
    assert "publisher down" in caplog.text
    daemon.report(assignment.outcome(success=True, steps=6))  # a duplicate: no new report
    assert len(reports.of(injection.id)) == 2


def test_empty_registry_serves_injections_and_explains_otherwise() -> None:
    daemon, _, _ = make(configured_goals=[])
    with pytest.raises(NoGoalsError, match="inject a goal"):
        daemon.next_goals(1)
    injection = daemon.inject("Grow cow", episodes=2)
    assert [a.injection_id for a in daemon.next_goals(2)] == [injection.id] * 2
    assert daemon.next_goals(1)[0].goal == "Grow cow"  # known now, as an injected goal


def test_concurrent_injections_and_collection_lose_nothing() -> None:
    """MQTT injects from one thread while the collector works from another."""
    daemon, reports, _ = make()
    injected: list[str] = []
    total_injections, episodes_each = 60, 3

    def injector() -> None:
        for i in range(total_injections):
            injected.append(daemon.inject("Grow carrot", episodes=episodes_each, priority=i % 3).id)

    def collector(stop: threading.Event) -> None:
        while not stop.is_set() or daemon.stats().injected_episodes_pending:
            finish(daemon, 4)

    stop = threading.Event()
    threads = [threading.Thread(target=injector), threading.Thread(target=collector, args=(stop,))]
    for t in threads:
        t.start()
    threads[0].join()
    stop.set()
    threads[1].join(timeout=60)
    assert not threads[1].is_alive()
    assert daemon.stats().injections_active == 0
    for injection_id in injected:
        statuses = [r.status for r in reports.of(injection_id)]
        assert statuses == ["episode"] * episodes_each + ["completed"]


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(-3, 3), st.integers(1, 4), st.sampled_from(GOALS)),
        min_size=1,
        max_size=12,
    ),
    st.integers(1, 7),
    st.lists(st.booleans(), min_size=1, max_size=8),
)
def test_serving_order_counts_and_reports_hold_for_any_mix(
    requests: list[tuple[int, int, str]], batch: int, successes: list[bool]
) -> None:
    daemon, reports, _ = make()
    ids = [
        daemon.inject(goal, episodes=episodes, priority=priority).id
        for priority, episodes, goal in requests
    ]
    expected = [
        ids[i]
        for i in sorted(range(len(requests)), key=lambda i: -requests[i][0])  # stable: FIFO
        for _ in range(requests[i][1])
    ]
    served: list[str | None] = []
    step = 0
    while len(served) < len(expected):
        for assignment in daemon.next_goals(batch):
            served.append(assignment.injection_id)
            daemon.report(assignment.outcome(success=successes[step % len(successes)], steps=1))
            step += 1
    assert served[: len(expected)] == expected
    assert all(s is None for s in served[len(expected) :])
    for injection_id, (_, episodes, _) in zip(ids, requests, strict=True):
        mine = reports.of(injection_id)
        assert [r.status for r in mine] == ["episode"] * episodes + ["completed"]
        assert [r.episode_index for r in mine[:-1]] == list(range(episodes))
        assert mine[-1].successes == sum(bool(r.success) for r in mine[:-1])
