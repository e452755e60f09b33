"""Scale-out on Ray: collector actors, the goal daemon as a shared named actor, one learner.

``run.backend: ray`` (docs/scale.md) swaps the local collector thread for collector
actors on a Ray cluster. Each actor steps its own env batch with its own copy of the
policy (:mod:`autotelic.distributed.actors.collector`); after learner updates only the
trainable weights travel to them, by policy version, through Ray's object store
(:mod:`autotelic.distributed.weights`). The goal daemon runs as a named actor that
every collector (and other runs) draws goals from
(:mod:`autotelic.distributed.goal_actor`). The learner, the episode store and replay
stay in the service process, the one store writer (:mod:`autotelic.distributed.backend`).

Everything here reuses the runtime's collector, committer, schedules and daemon. The
runtime never imports this package: the backend registers itself
(:mod:`autotelic.distributed.plugin`, a built-in plug-in that imports no Ray), and Ray
is imported when a Ray run builds its agent.
"""

import os

# Ray's C++ crash handler also catches the SIGTERM that stops the service: it prints a
# stack dump, and the process then ends with SIGABRT after a clean shutdown (exit -6, not
# 0). The service handles SIGTERM itself. Read when ray is imported, so set before that.
os.environ.setdefault("RAY_DISABLE_FAILURE_SIGNAL_HANDLER", "1")
