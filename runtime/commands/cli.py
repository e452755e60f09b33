"""The ``autotelic`` command line: run the service, talk to it, inspect a run."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import logging
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
import yaml

from autotelic import __version__
from autotelic.core.errors import UserError
from autotelic.runtime.transport.messages import Topics
from autotelic.runtime.transport.mqtt_config import MQTTConfig

if TYPE_CHECKING:
    from autotelic.runtime.config import Settings
    from autotelic.runtime.evaluation.evaluate import EvalResult

_USER_ERRNOS = frozenset({13, 1, 30, 28, 122, 98, 99, 111, 113, 2})
"""EACCES, EPERM, EROFS, ENOSPC, EDQUOT, EADDRINUSE, EADDRNOTAVAIL, ECONNREFUSED,
EHOSTUNREACH, ENOENT: an operating-system refusal a user can fix."""


def _user_error(err: BaseException) -> str | None:
    """One line for an error a user caused (None: a bug, whose traceback is wanted)."""
    if _is_project_error(err):
        return " ".join(str(err).split())
    if isinstance(err, OSError) and err.errno in _USER_ERRNOS:
        return f"{err.filename}: {err.strerror}" if err.filename else str(err.strerror or err)
    if isinstance(err, ModuleNotFoundError) and err.name:
        return f"cannot import module {err.name!r} (a plug-in in run.plugins, or a package)"
    return None


class _OneLineErrors(typer.Typer):
    """The command line: an error a user can cause ends the command with one line on
    stderr and exit status 2, not a traceback of a hundred lines whose last one is the
    message. ``AUTOTELIC_DEBUG=1`` shows the traceback."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        import os

        try:
            return super().__call__(*args, **kwargs)
        except Exception as err:
            line = _user_error(err)
            if line is None or os.environ.get("AUTOTELIC_DEBUG"):
                raise
            typer.echo(f"error: {line} (AUTOTELIC_DEBUG=1 shows the traceback)", err=True)
            sys.exit(2)


app = _OneLineErrors(
    name="autotelic",
    help="An LLM agent that sets its own goals in text environments and learns online.",
    no_args_is_help=True,
    add_completion=False,
)
config_app = typer.Typer(help="Show the effective configuration.", no_args_is_help=True)
replay_app = typer.Typer(help="Inspect a run's episode store.", no_args_is_help=True)
app.add_typer(config_app, name="config")
app.add_typer(replay_app, name="replay")

ConfigOption = typer.Option(
    None,
    "--config",
    "-c",
    help="YAML or TOML configuration file, or the name of one shipped with the package "
    "(cpu: SAC-GLAM + HER with the tiny model, for a CPU).",
)
RunOption = typer.Option(Path("runs/default"), "--run", help="Run directory.")
BrokerOption = typer.Option(
    None, "--broker", help="Broker URL (default: the one the run in --run published)."
)
AgentOption = typer.Option(None, "--agent", help="Agent name (default: from --run).")
TopicRootOption = typer.Option(
    None, "--topic-root", help="First MQTT topic level (default: from --run, else autotelic)."
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"autotelic {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(
        False,
        "--version",
        help="Print the version and exit.",
        callback=_print_version,
        is_eager=True,
    ),
) -> None:
    """An LLM agent that sets its own goals in text environments and learns online."""


SetOption = typer.Option(
    None,
    "--set",
    "-s",
    metavar="KEY=VALUE",
    help="Override one setting, e.g. --set algorithm.batch_size=32 (repeatable; the value "
    "is read as YAML; wins over the file and AUTOTELIC_* variables).",
)
RunDirOption = typer.Option(
    None, "--run-dir", help="Run directory (run.dir); wins over --set and the file."
)
SeedOption = typer.Option(
    None,
    "--seed",
    help="run.seed, which also seeds the model, curriculum and algorithm unless they set "
    "their own; wins over --set and the file.",
)


def _settings(
    config: Path | None,
    sets: list[str] | None = None,
    run_dir: Path | None = None,
    seed: int | None = None,
    *,
    resume: bool = False,
    notes: list[str] | None = None,
) -> Any:
    """The effective settings, strongest first: --run-dir/--seed, --set, AUTOTELIC_*
    variables, the file, the defaults; a bad one exits 2 with the field named. With
    ``resume``, a run directory that holds a run takes that run's own config.yaml in place
    of the defaults (:func:`~autotelic.runtime.startup.run_settings`, which adds to ``notes``
    a line naming the defaults it chose)."""
    from autotelic.runtime.config import ConfigError, deep_merge, load_settings, parse_overrides
    from autotelic.runtime.startup import config_path

    config = config_path(config)  # a packaged configuration by name: --config cpu
    try:
        flags = {k: v for k, v in (("dir", run_dir), ("seed", seed)) if v is not None}
        overrides = deep_merge(parse_overrides(sets or []), {"run": flags} if flags else {})
        if resume:
            from autotelic.runtime.startup import run_settings

            return run_settings(config, overrides, notes)
        return load_settings(config, **overrides)
    except ConfigError as err:
        typer.echo(str(err), err=True)
        raise typer.Exit(2) from None


@app.command()
def run(
    config: Path | None = ConfigOption,
    sets: list[str] | None = SetOption,
    run_dir: Path | None = RunDirOption,
    seed: int | None = SeedOption,
    log_level: str = "INFO",
) -> None:
    """Start the agent as a service (stop it with Ctrl-C or SIGTERM; it resumes on restart,
    with the run's own config.yaml: options given then change only what they name)."""
    notes: list[str] = []
    settings = _settings(config, sets, run_dir, seed, resume=True, notes=notes)
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    from autotelic.runtime.extras import require_models
    from autotelic.runtime.service import serve
    from autotelic.runtime.startup import check_startup

    with _fail_cleanly():
        check_startup(settings)  # run dir, free space, model path: before anything loads
        for note in notes:  # which defaults were chosen (no GPU): once the checks passed
            logging.getLogger("autotelic.runtime.startup").info("%s", note)
        _enter_backend_environment(settings)
        require_models(settings)  # before anything starts: one line naming the install
        code = asyncio.run(serve(settings))
    raise typer.Exit(code)


REEXEC_VARIABLE = "AUTOTELIC_REEXECUTED"
"""Set in the re-executed process: a second mismatch is an error, not a loop."""


def _enter_backend_environment(settings: Settings) -> None:
    """Re-execute this command once with the variables its backend needs (the Ray
    backend's bind shim), before any thread, socket or file is opened: only a process
    started with a preloaded library has it, and every process it starts inherits it."""
    import os

    from autotelic.core import backend_spec

    wanted = backend_spec(settings.run.backend).process_environment
    env = dict(wanted(settings)) if wanted is not None else {}
    if all(os.environ.get(k) == v for k, v in env.items()):
        return
    if os.environ.get(REEXEC_VARIABLE):
        names = ", ".join(sorted(env))
        raise RuntimeError(f"the re-executed service still lacks its environment ({names})")
    sys.stdout.flush()
    sys.stderr.flush()
    argv = [sys.executable, *sys.orig_argv[1:]]
    os.execve(sys.executable, argv, {**os.environ, **env, REEXEC_VARIABLE: "1"})


@config_app.command("show")
def config_show(
    config: Path | None = ConfigOption,
    sets: list[str] | None = SetOption,
    run_dir: Path | None = RunDirOption,
    seed: int | None = SeedOption,
    as_json: bool = typer.Option(False, "--json", help="JSON instead of YAML."),
) -> None:
    """Print the effective configuration (flags + --set + AUTOTELIC_* variables + file +
    defaults, or the run's own config.yaml where the run directory holds one), exactly what
    `autotelic run` with the same options would use."""
    from autotelic.runtime.config import dump_settings

    data = dump_settings(_settings(config, sets, run_dir, seed, resume=True))
    typer.echo(json.dumps(data, indent=2) if as_json else yaml.safe_dump(data, sort_keys=False))


@config_app.command("schema")
def config_schema(
    as_json: bool = typer.Option(False, "--json", help="JSON: key, type, default, description."),
) -> None:
    """Print every setting: dotted key, type, default and description (from the models;
    env and algorithm fields per registered id and name)."""
    from autotelic.runtime.config import field_reference

    rows = field_reference()
    if as_json:
        keys = ("key", "type", "default", "description")
        typer.echo(json.dumps([dict(zip(keys, row, strict=True)) for row in rows], indent=2))
        return
    for key, kind, default, description in rows:
        typer.echo(f"{key}: {kind} = {default}\n    {description}")


PluginOption = typer.Option(
    None,
    "--plugin",
    "-p",
    help="Module to import first, registering its environments and algorithms (repeatable).",
)


def _load_plugins(plugins: list[str] | None, config: Path | None) -> None:
    """Import the --plugin modules and those of the file's run.plugins, so a listing shows
    what a run with them would find; one that cannot be imported exits 2 naming it."""
    from autotelic.core.registry import RegistryError, load_plugins

    modules = list(plugins or [])
    if config is not None:
        modules += _settings(config).run.plugins
    try:
        load_plugins(modules)
    except RegistryError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from None


@app.command()
def envs(plugins: list[str] | None = PluginOption, config: Path | None = ConfigOption) -> None:
    """List the registered text environments (id and a one-line description), with those
    of --plugin modules and of the --config file's run.plugins."""
    from autotelic.core import registered_envs

    _load_plugins(plugins, config)
    specs = registered_envs()
    width = max(len(s.id) for s in specs)
    for spec in specs:
        typer.echo(f"{spec.id:{width}}  {spec.description}")


@app.command()
def algorithms(
    plugins: list[str] | None = PluginOption, config: Path | None = ConfigOption
) -> None:
    """List the registered learning algorithms (name, kind and a one-line description),
    with those of --plugin modules and of the --config file's run.plugins."""
    from autotelic.core import registered_algorithms

    _load_plugins(plugins, config)
    for spec in registered_algorithms():
        typer.echo(f"{spec.name:8} {spec.kind:10} {spec.description}")


# -- talking to a running service -----------------------------------------------------------


def _connection(
    run_dir: Path, broker: str | None, agent: str | None, root: str | None
) -> tuple[MQTTConfig, Topics]:
    """The broker and the agent's topics: from the flags, else from the run's endpoints file."""
    endpoints = {} if None not in (broker, agent, root) else _endpoints(run_dir, broker)
    url = broker or endpoints.get("mqtt")
    if not url:
        typer.echo("the run publishes no MQTT endpoint; give --broker", err=True)
        raise typer.Exit(2)
    prefix = str(endpoints.get("topic_prefix") or "")
    root = root or (prefix.rsplit("/", 1)[0] if "/" in prefix else None)
    name = agent or str(endpoints.get("agent", "default"))
    config = _broker_config(str(url), root)
    try:
        topics = Topics(name, config.topic_root)
    except ValueError as err:
        typer.echo(str(err), err=True)
        raise typer.Exit(2) from None
    return config, topics


def _endpoints(run_dir: Path, broker: str | None) -> dict[str, Any]:
    """What the run in ``run_dir`` published; without one, exit unless a broker was given."""
    from autotelic.storage import RunLayout

    try:
        return RunLayout(run_dir).read_endpoints()
    except FileNotFoundError as err:
        if broker is None:
            typer.echo(f"{err}\nGive --broker (and --agent) instead.", err=True)
            raise typer.Exit(2) from None
        return {}


def _broker_config(url: str, root: str | None) -> MQTTConfig:
    """The broker settings the service would read from ``url`` (and the topic root, when
    known); a URL it would refuse exits with the reason."""
    from pydantic import ValidationError

    try:
        return MQTTConfig(url=url) if root is None else MQTTConfig(url=url, topic_root=root)
    except ValidationError as err:
        typer.echo(f"bad broker URL: {err.errors()[0]['msg']}", err=True)
        raise typer.Exit(2) from None


@app.command()
def inject(
    goal: str = typer.Argument(..., help="Goal text, e.g. 'Grow carrot'."),
    episodes: int = typer.Option(1, "--episodes", "-n", help="Episodes to run for it."),
    priority: int = typer.Option(0, help="Higher is served first."),
    ttl: float | None = typer.Option(None, help="Seconds before unserved episodes expire."),
    wait: bool = typer.Option(False, "--wait", help="Print each episode's result until done."),
    timeout: float = typer.Option(30.0, help="Seconds to wait for the acceptance."),
    run_dir: Path = RunOption,
    broker: str | None = BrokerOption,
    agent: str | None = AgentOption,
    topic_root: str | None = TopicRootOption,
) -> None:
    """Ask a running agent to practise a goal; prints the acceptance (or why not)."""
    from autotelic.runtime.transport.client import inject_goal

    config, topics = _connection(run_dir, broker, agent, topic_root)
    request = {
        "goal": goal,
        "episodes": episodes,
        "priority": priority,
        "request_id": uuid.uuid4().hex,
    }
    if ttl is not None:
        request["ttl_s"] = ttl
    feasible = _feasibility(run_dir, goal)
    code = asyncio.run(
        inject_goal(
            config, topics, request, wait=wait, timeout=timeout, out=typer.echo, feasible=feasible
        )
    )
    raise typer.Exit(code)


def _feasibility(run_dir: Path, goal: str) -> bool | None:
    """What the goal space of the run in ``run_dir`` (its effective config.yaml) says of
    ``goal``: False when no episode can achieve it. None when there is no such run or it
    cannot tell; the agent's own answer, when its acceptance carries one, wins."""
    from autotelic.storage import RunLayout

    path = RunLayout(run_dir).config
    if not path.is_file():
        return None
    try:
        from autotelic.core.registry import env_config, env_spec, load_plugins

        data = yaml.safe_load(path.read_text()) or {}
        load_plugins((data.get("run") or {}).get("plugins") or [])
        env = env_config(data.get("env") or {})
        space = env_spec(env.id).goal_space(env)
        return space.feasible(space.parse(goal).text)
    except (OSError, ValueError, yaml.YAMLError):  # a goal it will reject, an unreadable run
        return None


@app.command()
def status(
    run_dir: Path = RunOption,
    broker: str | None = BrokerOption,
    agent: str | None = AgentOption,
    topic_root: str | None = TopicRootOption,
    timeout: float = typer.Option(5.0, help="Seconds to wait for the retained status."),
) -> None:
    """Print the agent's retained status (online or offline, counters)."""
    from autotelic.runtime.transport.client import read_status

    config, topics = _connection(run_dir, broker, agent, topic_root)
    found = asyncio.run(read_status(config, topics, timeout))
    if found is None:
        typer.echo(f"no status from agent {topics.agent!r} on {config.url}", err=True)
        raise typer.Exit(1)
    typer.echo(json.dumps(found, indent=2))


# -- inspecting a run ------------------------------------------------------------------------


@contextlib.contextmanager
def _fail_cleanly() -> Iterator[None]:
    """Turn the errors a user can cause (wrong folder, damaged store) into one line, exit 2.

    Known by their base, :class:`~autotelic.core.errors.UserError`, which lives in core, so
    that a thin command imports neither the service nor the agent (nor torch) to
    recognise their errors."""
    import os

    try:
        yield
    except Exception as err:
        known = isinstance(err, FileNotFoundError) or _is_project_error(err)
        if not known or os.environ.get("AUTOTELIC_DEBUG"):
            raise
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from None


def _is_project_error(err: BaseException) -> bool:
    """Whether ``err`` is one of the project's errors that tell a user what to change."""
    return isinstance(err, UserError)


@app.command("eval")
def evaluate_run(
    run_dir: Path = RunOption,
    episodes_per_goal: int = typer.Option(2, help="Episodes per goal and split."),
    seed: int = typer.Option(12345, help="Seed of the evaluation scenes."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Success per goal category of the run's latest checkpoint, on training and held-out
    objects, greedy and sampled, with the episodes behind each figure; progress (episodes
    done of all, rate, time left) goes to stderr while it runs."""
    from autotelic.runtime.commands.offline import evaluate_checkpoint
    from autotelic.runtime.telemetry.progress import count_progress

    with _fail_cleanly():
        results = evaluate_checkpoint(
            run_dir,
            episodes_per_goal=episodes_per_goal,
            seed=seed,
            progress=count_progress("eval episodes"),
        )
    if as_json:
        typer.echo(json.dumps([r.__dict__ for r in results], indent=2))
        return
    for line in _eval_table(results):
        typer.echo(line)


@app.command("export")
def export_model(
    run_dir: Path = RunOption,
    out: Path = typer.Option(
        ..., "--out", "-o", help="Folder to write (absent or empty): the exported model."
    ),
) -> None:
    """Write the policy of the run's latest checkpoint as a plain Hugging Face model folder
    (config, safetensors weights, tokenizer; LoRA merged), which transformers loads with no
    autotelic or peft and which `model.path` accepts; autotelic.json in it records the
    prompt format and the settings that score candidates as the run did."""
    from autotelic.learners.model_config import EXPORT_INFO, ModelError
    from autotelic.runtime.commands.offline import export_checkpoint

    with _fail_cleanly():
        try:
            written = export_checkpoint(run_dir, out)
        except ModelError as err:  # a folder in the way, a base model that is missing
            typer.echo(f"error: {err}", err=True)
            raise typer.Exit(2) from None
    info = json.loads((written / EXPORT_INFO).read_text())
    settings = ", ".join(f"{k}: {v}" for k, v in info["model_settings"].items())
    typer.echo(
        f"exported checkpoint step {info['source']['checkpoint_step']} to {written}; "
        f"use it as model.path: {written} with {settings}"
    )


def _eval_table(results: list[EvalResult]) -> list[str]:
    """One row per split and way of acting: its episodes, then per category the success
    rate and (n=) the episodes it is measured on, so a 1.00 of two episodes reads as such."""
    categories = sorted({c for r in results for c in r.success})
    lines = [
        f"{'split':6} {'acting':8} {'episodes':>8} " + " ".join(f"{c:>16}" for c in categories)
    ]
    for r in results:
        cells = " ".join(
            f"{r.success[c]:.2f} (n={r.counts.get(c, 0)})".rjust(16)
            if c in r.success
            else f"{'-':>16}"
            for c in categories
        )
        lines.append(f"{r.split:6} {r.acting:8} {r.episodes:>8} {cells}")
    return lines


class GoalOrder(enum.StrEnum):
    """How ``autotelic goals`` sorts its table."""

    lp = "lp"
    competence = "competence"
    attempts = "attempts"
    goal = "goal"


@app.command()
def goals(
    run_dir: Path = RunOption,
    as_json: bool = typer.Option(False, "--json", help="Print JSON (every figure)."),
    sort: GoalOrder = typer.Option(GoalOrder.lp, "--sort", help="Order of the table's rows."),
) -> None:
    """Each goal's competence and learning progress as the curriculum estimates them, from
    the run's newest checkpoint (safe while the service runs)."""
    from autotelic.runtime.commands.goals_report import goals_report

    with _fail_cleanly():
        report = goals_report(run_dir)
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
        return
    stats = report.stats
    typer.echo(
        f"{report.checkpoint.path.name}: {report.env_steps:,} env steps, "
        f"{stats.episodes:,} episodes, estimator {stats.estimator}, "
        f"exploration {stats.epsilon:.2f}"
    )
    rows = list(stats.goals or [])
    keys = {
        GoalOrder.lp: lambda g: (-g.lp, g.goal),
        GoalOrder.competence: lambda g: (-g.competence, g.goal),
        GoalOrder.attempts: lambda g: (-g.attempts, g.goal),
        GoalOrder.goal: lambda g: (0.0, g.goal),
    }
    rows.sort(key=keys[sort])
    width = max([len("goal"), *(len(g.goal) for g in rows)])
    cat_width = max([len("category"), *(len(g.category) for g in rows)])
    typer.echo(
        f"{'goal':{width}}  {'category':{cat_width}}  {'source':10}  {'competence':>10}  "
        f"{'LP':>7}  {'p(next)':>7}  {'attempts':>8}  {'successes':>9}"
    )
    for g in rows:
        typer.echo(
            f"{g.goal:{width}}  {g.category:{cat_width}}  {g.source:10}  {g.competence:>10.3f}  "
            f"{g.lp:>7.3f}  {g.probability:>7.3f}  {g.attempts:>8}  {g.successes:>9}"
        )


@app.command()
def plot(
    run_dir: Path = RunOption,
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Folder for the PNG files (default: <run>/plots)."
    ),
) -> None:
    """PNG learning curves from the run directory alone: evaluation success per category
    and split, learning progress, losses, throughput (safe while the service runs)."""
    from autotelic.runtime.commands.plot import plot_notes, plot_run

    with _fail_cleanly():
        written = plot_run(run_dir, out)
    for path in written:
        typer.echo(str(path))
    for note in plot_notes(run_dir):  # why a figure is absent
        typer.echo(note, err=True)


@replay_app.command("stats")
def replay_stats(run_dir: Path = RunOption) -> None:
    """Episodes, transitions and disk use of a run's store (safe while the service runs);
    exits 1 when a record is unreadable."""
    from autotelic.runtime.commands.offline import StoreReport, open_store_readonly

    with _fail_cleanly(), open_store_readonly(run_dir) as store:
        stats = store.stats(check=True)
    typer.echo(json.dumps(stats.model_dump(), indent=2))
    if stats.unreadable_episodes:
        report = StoreReport(store.path, stats.episodes, stats.unreadable_episodes)
        typer.echo(f"error: {report.summary()}", err=True)
        raise typer.Exit(1)


@replay_app.command("export")
def replay_export(
    run_dir: Path = RunOption,
    out: Path = typer.Option(..., "--out", "-o", help="JSON-lines file to write ('-': stdout)."),
) -> None:
    """Write every stored episode as one JSON object per line (safe while the service runs);
    from a damaged store, every readable one, exiting 1 with the list of the others.
    Progress (episodes read of all, rate, time left) goes to stderr."""
    from autotelic.runtime.commands.offline import export_run
    from autotelic.runtime.telemetry.progress import count_progress

    with _fail_cleanly(), contextlib.ExitStack() as stack:
        sink = sys.stdout if str(out) == "-" else stack.enter_context(out.open("w"))
        report = export_run(run_dir, sink, progress=count_progress("episodes read"))
    typer.echo(f"exported {report.episodes} episodes", err=True)
    if report.damaged:
        typer.echo(f"error: {report.summary()}", err=True)
        raise typer.Exit(1)


@replay_app.command("verify")
def replay_verify(run_dir: Path = RunOption) -> None:
    """Read and decode every record of a run's store and say what is unreadable (exit 1);
    nothing is written (safe while the service runs). Progress goes to stderr."""
    from autotelic.runtime.commands.offline import verify_run
    from autotelic.runtime.telemetry.progress import count_progress

    with _fail_cleanly():
        report = verify_run(run_dir, progress=count_progress("episodes read"))
    typer.echo(report.summary(), err=report.damaged)
    raise typer.Exit(1 if report.damaged else 0)


@replay_app.command("salvage")
def replay_salvage(
    run_dir: Path = RunOption,
    out: Path = typer.Option(..., "--out", "-o", help="Folder for the new store (<out>/store)."),
) -> None:
    """Copy every readable episode, the goal registry and the injections of a damaged store
    into a new one (the damaged files are only read)."""
    from autotelic.runtime.commands.offline import salvage_run
    from autotelic.storage import RunLayout

    with _fail_cleanly():
        report = salvage_run(run_dir, out)
    lost = f"; lost: {len(report.unreadable)} episodes" if report.unreadable else ""
    typer.echo(
        f"salvaged {report.episodes} episodes and {report.state_keys} state keys into "
        f"{report.destination}{lost}. To use it: move {RunLayout(run_dir).store} aside and "
        f"put {report.destination} in its place"
    )
