"""The daemon's durable outbox of injection results, on a real LMDB episode store:
owed results survive a reopen, acknowledged ones are gone, ids are stable."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from autotelic.goals import CurriculumConfig, GoalDaemon, MemoryStateStore
from autotelic.goals.daemon import INJECTIONS_KEY, RESULTS_PREFIX
from autotelic.storage import EpisodeStore
from tests.goals_fixtures import PLAYGROUND, ManualClock, Reports

CONFIG = CurriculumConfig(configured_goals=["Grasp lamp"], seed=3)


def run_injected(daemon: GoalDaemon, episodes: int) -> None:
    """Serve ``episodes`` goals and report each outcome, as the collector does."""
    for n in range(episodes):
        (assignment,) = daemon.next_goals(1)
        daemon.report(
            assignment.outcome(success=n % 2 == 0, steps=2, achieved_goals=[], episode_id=n)
        )


def test_owed_results_survive_reopening_the_store_and_acknowledged_ones_are_gone(
    tmp_path: Path,
) -> None:
    path = tmp_path / "store"
    reports = Reports()
    with EpisodeStore(path) as store:
        daemon = GoalDaemon(
            CONFIG, goal_space=PLAYGROUND, store=store, on_report=reports, keep_results=True
        )
        injection = daemon.inject("Grasp cow", 3)
        run_injected(daemon, 3)
        ids = [r.message_id for r in reports.of(injection.id)]
        assert ids == [f"{injection.id}:{n}" for n in range(4)]  # 3 episodes, then completed
        assert [r.status for r in reports] == ["episode"] * 3 + ["completed"]
        assert daemon.results_pending == 4
        assert [d["message_id"] for d in daemon.owed_results()] == ids
        assert daemon.acknowledge(ids[0]) and daemon.acknowledge(ids[2])
        assert not daemon.acknowledge(ids[0])  # a second acknowledgement changes nothing
        assert daemon.results_pending == 2
        # The process dies here: nothing is flushed or closed by the daemon.

    with EpisodeStore(path) as store:
        again = GoalDaemon(CONFIG, goal_space=PLAYGROUND, store=store, keep_results=True)
        owed = again.owed_results()
        assert [d["message_id"] for d in owed] == [ids[1], ids[3]]  # oldest first, same ids
        assert owed == [reports[1].to_dict(), reports[3].to_dict()]  # exactly what was published
        assert again.results_pending == 2 and again.injection(injection.id) is None
        # New results go after the owed ones and never reuse their keys.
        later = again.inject("Grasp lamp", 1)
        run_injected(again, 1)
        assert [d["message_id"] for d in again.owed_results()] == [
            ids[1],
            ids[3],
            f"{later.id}:0",
            f"{later.id}:1",
        ]
        assert len(store.state_keys(RESULTS_PREFIX)) == 4
        for data in again.owed_results():
            assert again.acknowledge(data["message_id"])

    with EpisodeStore(path, readonly=True) as store:
        assert store.state_keys(RESULTS_PREFIX) == []
    with EpisodeStore(path) as store:
        reopened = GoalDaemon(CONFIG, goal_space=PLAYGROUND, store=store, keep_results=True)
        assert reopened.results_pending == 0 and reopened.owed_results() == []


def test_an_expired_injection_owes_its_expiry_and_the_outcomes_still_running(
    tmp_path: Path,
) -> None:
    clock = ManualClock()
    with EpisodeStore(tmp_path / "store") as store:
        daemon = GoalDaemon(
            CONFIG, goal_space=PLAYGROUND, store=store, clock=clock, keep_results=True
        )
        injection = daemon.inject("Grasp cow", 5, ttl=10)
        (running,) = daemon.next_goals(1)
        clock.advance(11)
        assert [r.status for r in daemon.expire_injections()] == ["expired"]
        daemon.report(running.outcome(success=True, steps=1, achieved_goals=[], episode_id=0))
        owed = daemon.owed_results()
        assert [(d["status"], d["message_id"]) for d in owed] == [
            ("expired", f"{injection.id}:5"),
            ("episode", f"{injection.id}:0"),
        ]


class SpyStore(MemoryStateStore):
    """Records each write: which keys it put and deleted, in one call."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[tuple[set[str], set[str]]] = []

    def put_state(self, key: str, value: Any) -> None:
        self.writes.append(({key}, set()))
        super().put_state(key, value)

    def put_states(self, values: Any, delete: Any = ()) -> None:
        self.writes.append((set(values), set(delete)))
        super().put_states(values, delete)


def test_an_outcome_and_the_results_it_owes_are_written_in_one_step() -> None:
    store = SpyStore()
    daemon = GoalDaemon(CONFIG, goal_space=PLAYGROUND, store=store, keep_results=True)
    daemon.inject("Grasp cow", 2)
    store.writes.clear()
    run_injected(daemon, 2)
    results = store.state_keys(RESULTS_PREFIX)
    assert len(results) == 3
    # First outcome: the queue and its episode result together; second: the queue, its
    # result and the completion together. The queue is never written apart from them.
    assert store.writes == [
        ({INJECTIONS_KEY, results[0]}, set()),
        ({INJECTIONS_KEY, results[1], results[2]}, set()),
    ]
    daemon.acknowledge(daemon.owed_results()[1]["message_id"])
    assert store.writes[-1] == (set(), {results[1]})


def test_without_keep_results_nothing_is_owed() -> None:
    store = MemoryStateStore()
    daemon = GoalDaemon(CONFIG, goal_space=PLAYGROUND, store=store)
    injection = daemon.inject("Grasp cow", 1)
    run_injected(daemon, 1)
    assert daemon.results_pending == 0 and daemon.owed_results() == []
    assert store.state_keys(RESULTS_PREFIX) == []
    assert not daemon.acknowledge(f"{injection.id}:0")
