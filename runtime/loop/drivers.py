"""The local drivers: how a run in this process advances, serially or concurrently.

Both drive the same parts (the collection, the schedule, the evaluator) and differ only
in threads. The serial driver does everything in one thread, deterministically (tests
and experiments: a seed reproduces its curve). The concurrent driver runs a collector
thread and, when the schedule learns apart from collection, a learner thread, with the
evaluator in a thread of its own. A backend that collects elsewhere brings its own
driver (the Ray backend's, :mod:`autotelic.distributed.driver`).

:func:`start_workers` starts any driver's workers as guarded threads: a worker that
raises stops the run (``fail``) rather than dying alone.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from autotelic.runtime.loop.coordination import SafePoints
from autotelic.runtime.loop.parts import Run, Worker

log = logging.getLogger(__name__)


def collect_then_learn(run: Run) -> None:
    """One collection step, the learning it made due and the evaluation between steps."""
    run.collection.step()
    run.schedule.after_collect()
    if run.evaluator is not None:
        run.evaluator.advance()


def evaluator_workers(run: Run) -> list[Worker]:
    """The evaluator's side thread of a concurrent run, when evaluation is on."""
    evaluator = run.evaluator
    if evaluator is None:
        return []
    return [Worker("evaluator", lambda: evaluator.run(run.stopping), safe_points=False,
                   daemon=True)]  # fmt: skip


class LocalDriver:
    """What both local drivers do alike: the serial unit of work, in the caller's thread."""

    def __init__(self, run: Run) -> None:
        self.run = run

    def step(self) -> None:
        collect_then_learn(self.run)


class SerialDriver(LocalDriver):
    """Collect and learn in turn, in one thread."""

    def workers(self) -> list[Worker]:
        return [Worker("serial", self._forever)]

    def _forever(self) -> None:
        while not self.run.done:
            self.run.points.checkpoint("serial")
            self.step()
        self.run.stop()


class ConcurrentDriver(LocalDriver):
    """A collector thread and, for a schedule that learns apart, a learner thread."""

    def workers(self) -> list[Worker]:
        workers = [Worker("collector", self._collect_forever)]
        if self.run.schedule.learner_thread:
            workers.append(Worker("learner", self._learn_forever, daemon=True))
        return workers + evaluator_workers(self.run)

    def _collect_forever(self) -> None:
        run = self.run
        inline = not run.schedule.learner_thread
        while not run.done:
            run.points.checkpoint("collector")
            if run.schedule.may_collect(timeout=0.5):
                run.collection.step()
                if inline:
                    run.schedule.after_collect()
        run.stop()

    def _learn_forever(self) -> None:
        learn_forever(self.run)


def learn_forever(run: Run, after: Callable[[bool], None] | None = None) -> None:
    """The learner thread: an update whenever one is due, until the run stops; ``after``
    hears whether each wait ended in an update."""
    while not run.stopping.is_set():
        run.points.checkpoint("learner")
        learned = run.schedule.learn_once(timeout=0.5)
        if after is not None:
            after(learned)


def start_workers(
    workers: list[Worker], points: SafePoints, fail: Callable[[BaseException], None]
) -> list[threading.Thread]:
    """Start each worker as a guarded thread; those at safe points register there first."""
    threads = []
    for worker in workers:
        thread = threading.Thread(
            target=_guarded(worker, points, fail), name=worker.name, daemon=worker.daemon
        )
        if worker.safe_points:
            points.register(worker.name)
        thread.start()
        threads.append(thread)
    return threads


def _guarded(
    worker: Worker, points: SafePoints, fail: Callable[[BaseException], None]
) -> Callable[[], None]:
    def run() -> None:
        try:
            worker.body()
        except BaseException as err:  # reported by the supervisor, which stops the run
            log.exception("%s thread failed", worker.name)
            fail(err)
        finally:
            points.unregister(worker.name)

    return run
