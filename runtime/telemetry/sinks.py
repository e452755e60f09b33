"""The sinks of the run's event stream, registered by name as envs and algorithms are.

A sink is registered with :func:`register_sink` under a name and an opener that builds it
for one run (:class:`SinkContext`: the ``tracking:`` section, the run directory, the
update count the run resumes at). The ``tracking:`` section enables the built-in ones by
their switches (``csv``, ``tensorboard``, ``wandb``, ``mlflow``) and any other by name
(``tracking.sinks: [name]``), so a plug-in's sink (from ``run.plugins`` or the
``autotelic.plugins`` entry points) is one registration and one line of configuration,
with no change to the runtime. :func:`open_sinks` opens what a section asks for, in one
order, and closes those already open when one fails, so a run that stops leaves no
tracker run open.

An opener returns either a :class:`~autotelic.runtime.telemetry.events.RunEvents` (it sees
every event) or a plain :class:`~autotelic.runtime.telemetry.tracking.Sink`
(``record``/``close``: the learner's stats, evaluations and readings as ``key -> float``).
A plain sink records only the updates whose count crosses a multiple of
``tracking.every_updates``.

The context also holds the run's full configuration (``hyperparameters``, as the run's
``config.yaml`` holds it): TensorBoard, W&B and MLflow record it as the run's
hyperparameters, so a tracker's run says what produced it.
"""

from __future__ import annotations

import contextlib
import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autotelic.core import RegistryError
from autotelic.runtime.telemetry.config import TrackingConfig
from autotelic.runtime.telemetry.events import EventStream, RunEvents, StatsEvents
from autotelic.runtime.telemetry.progress import ProgressLine, Snapshot
from autotelic.runtime.telemetry.trackers import MlflowSink, WandbSink
from autotelic.runtime.telemetry.tracking import (
    STATS_CSV,
    TENSORBOARD_DIR,
    CsvSink,
    Every,
    Sink,
    TensorBoardSink,
)


@dataclass(frozen=True)
class SinkContext:
    """What an opener builds its sink for: one run, resuming at ``start_step`` updates and
    ``start_env_steps`` env steps (the checkpoint's counts; 0 for a new run)."""

    config: TrackingConfig
    run_dir: Path
    start_step: int
    start_env_steps: int = 0
    hyperparameters: Mapping[str, Any] = field(default_factory=dict)
    """The run's full configuration, nested by section (``dump_settings``'s plain data)."""


OpenSink = Callable[[SinkContext], "RunEvents | Sink"]
"""``open(context) -> RunEvents | Sink``: a sink for one run."""


@dataclass(frozen=True)
class SinkSpec:
    """A registered sink."""

    name: str
    open: OpenSink
    description: str


_sinks: dict[str, SinkSpec] = {}


def register_sink(name: str, open: OpenSink, *, description: str = "") -> None:
    """Make the sink ``name`` available to every run's ``tracking:`` section. Registering
    the same name again with the same opener does nothing (a module imported twice);
    another opener under a taken name is refused."""
    known = _sinks.get(name)
    if known is not None and known.open is not open:
        raise RegistryError(f"a sink named {name!r} is registered already")
    _sinks[name] = SinkSpec(name, open, description)


def sink_spec(name: str) -> SinkSpec:
    """The registered sink ``name``; an unknown name is refused with the registered ones."""
    try:
        return _sinks[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(_sinks), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise RegistryError(
            f"unknown sink {name!r}{hint}; registered: {', '.join(sorted(_sinks))}"
        ) from None


def registered_sinks() -> list[SinkSpec]:
    """Every registered sink, by name."""
    return [_sinks[k] for k in sorted(_sinks)]


BUILT_IN = ("console", "tensorboard", "wandb", "mlflow", "csv")
"""The sinks the ``tracking:`` section switches on by a field of their name, opened in
this order (those needing an optional package first), before ``tracking.sinks``."""


def enabled_sinks(config: TrackingConfig) -> list[str]:
    """The names ``config`` enables, in the order they open."""
    names = [name for name in BUILT_IN if getattr(config, name)]
    return [*names, *(n for n in config.sinks if n not in names)]


def open_sinks(
    config: TrackingConfig,
    run_dir: Path,
    *,
    start_step: int,
    start_env_steps: int = 0,
    hyperparameters: Mapping[str, Any] | None = None,
    step: Callable[[], int] = lambda: 0,
    env_steps: Callable[[], int] = lambda: 0,
    into: EventStream | None = None,
) -> EventStream:
    """The sinks ``config`` enables, in ``run_dir``, resuming at ``start_step`` updates and
    ``start_env_steps`` env steps, added to ``into`` (a new stream when None); ``step``
    reads the learner's update count and ``env_steps`` the training env steps taken;
    ``hyperparameters`` is the run's configuration the trackers record. Unknown names are
    refused before anything opens; when one fails to open (a package is missing), those
    this call opened are closed before the error is raised."""
    specs = [sink_spec(name) for name in enabled_sinks(config)]
    stream = into if into is not None else EventStream(step=step, env_steps=env_steps)
    context = SinkContext(config, run_dir, start_step, start_env_steps, hyperparameters or {})
    opened: list[RunEvents] = []
    try:
        for spec in specs:
            sink = spec.open(context)
            if not isinstance(sink, RunEvents):
                every = Every(sink, config.every_updates, start_step=start_step)
                sink = StatsEvents(every, stream.step, stream.env_steps_taken)
            opened.append(sink)
    except BaseException:
        with contextlib.suppress(Exception):  # the error that stopped the opening is raised
            EventStream(opened).close()
        raise
    for sink in opened:
        stream.add(sink)
    return stream


class ConsoleEvents(RunEvents):
    """The progress line on the console, at each ``progress`` event (the service's); with
    the run's ``algorithm.update_every``, it also shows the update-to-data ratio measured
    against the one set (:class:`~autotelic.runtime.telemetry.progress.ProgressLine`)."""

    def __init__(self, hyperparameters: Mapping[str, Any] | None = None) -> None:
        algorithm = (hyperparameters or {}).get("algorithm") or {}
        update_every = algorithm.get("update_every")
        self.line = ProgressLine(
            update_every=update_every if isinstance(update_every, int) else None,
            learning_starts=int(algorithm.get("learning_starts") or 0),
        )

    def progress(self, snapshot: Snapshot) -> None:
        self.line.emit(snapshot)


register_sink(
    "console",
    lambda c: ConsoleEvents(c.hyperparameters),
    description="the progress line on the console, at each service.progress_interval_s",
)
register_sink(
    "csv",
    lambda c: CsvSink(c.run_dir / STATS_CSV),
    description="<run>/learner_stats.csv: time,step,key,value, one row per key",
)
register_sink(
    "tensorboard",
    lambda c: TensorBoardSink(
        c.run_dir / TENSORBOARD_DIR,
        start_env_steps=c.start_env_steps,
        hyperparameters=c.hyperparameters,
    ),
    description="TensorBoard event files under <run>/tensorboard, at env steps, with the "
    "configuration as hyperparameters (the tensorboard extra)",
)
register_sink(
    "wandb",
    lambda c: WandbSink(
        c.run_dir,
        project=c.config.wandb_project,
        mode=c.config.wandb_mode,
        start_step=c.start_step,
        hyperparameters=c.hyperparameters,
    ),
    description="one W&B run, resumed by the id in <run>/wandb_run_id (the wandb extra)",
)
register_sink(
    "mlflow",
    lambda c: MlflowSink(
        c.run_dir,
        experiment=c.config.mlflow_experiment,
        tracking_uri=c.config.mlflow_tracking_uri,
        hyperparameters=c.hyperparameters,
    ),
    description="one MLflow run, resumed by the id in <run>/mlflow_run_id (the mlflow extra)",
)
