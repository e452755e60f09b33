"""The service's configuration: one pydantic model tree, from a file and the environment.

Sources, strongest first: ``AUTOTELIC_*`` environment variables (nested fields
joined by ``__``, e.g. ``AUTOTELIC_MQTT__URL``), then the YAML or TOML file given
with ``--config``, then the defaults, which run out of the box on a laptop CPU:
the packaged SmolLM2, the default registered environment (Playground-Text) and
algorithm (SAC-GLAM), a run directory under the current folder, metrics on
127.0.0.1 and an embedded MQTT broker.

``env`` and ``algorithm`` are unions discriminated by ``env.id`` and
``algorithm.name``: each is validated into the options model its environment or
algorithm registered (:mod:`autotelic.core.registry`), so an unknown one is
refused with the list of registered ones and each has its own fields. A file
written in the layout used before 0.2 (``run.learner`` with ``sac:``/``ppo:``
sections, ``env.playground``) is read and converted, with a warning.
"""

from __future__ import annotations

import contextvars
import difflib
import logging
import os
import re
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializeAsAny,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import to_jsonable_python
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
    YamlConfigSettingsSource,
)

from autotelic.core import AlgorithmConfig, EnvConfig, OffPolicyConfig
from autotelic.core.errors import UserError
from autotelic.core.registry import (
    RegistryError,
    algorithm_config,
    backend_spec,
    env_config,
    load_plugins,
    registered_algorithms,
    registered_envs,
)
from autotelic.goals import CurriculumConfig
from autotelic.learners.model_config import WORDS, ModelConfig
from autotelic.runtime.evaluation.config import EvalConfig
from autotelic.runtime.loop.config import CheckpointConfig, CollectorConfig, RunConfig
from autotelic.runtime.telemetry.config import MetricsConfig, TrackingConfig
from autotelic.runtime.transport.mqtt_config import MQTTConfig
from autotelic.storage.config import ReplayConfig

log = logging.getLogger(__name__)

CONFIG_FILE_ENV = "AUTOTELIC_CONFIG_FILE"

_CONFIG_FILE: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "autotelic_config_file", default=None
)
"""The file :func:`load_settings` was given, for the settings sources it builds: a context
variable, so two threads loading two files at once each read their own (the process's
environment, which ``AUTOTELIC_CONFIG_FILE`` lives in, is shared by every thread)."""


class ServiceConfig(BaseModel):
    """Running as a service: what it prints and how long it may take to stop."""

    model_config = ConfigDict(extra="forbid")

    mqtt_enabled: bool = Field(True, description="Connect to (or embed) an MQTT broker.")
    progress_interval_s: float = Field(
        10.0, gt=0, description="Seconds between progress lines on the console."
    )
    stop_timeout_s: float = Field(
        25.0, gt=0, description="Longest a clean stop may take before workers are abandoned."
    )


class RayConfig(BaseModel):
    """The Ray backend (``run.backend: ray``): which cluster, which actors, what they use.

    The learner, the episode store and replay stay in the service process (the Ray
    driver): one writer, on the device ``model.device`` names there. Start the service
    on the node that should learn (the GPU head node, docs/scale.md).
    """

    model_config = ConfigDict(extra="forbid")

    address: str | None = Field(
        None,
        description="Cluster to join, 'host:port' of its head's GCS (as `ray start --head` "
        "printed) or 'auto' (the cluster this node belongs to). None: start a private "
        "single-node cluster inside the service.",
    )
    node_ip_address: str | None = Field(
        None,
        description="This node's address as the cluster knows it (Ray's "
        "_node_ip_address); set it when the node was started with --node-ip-address, "
        "e.g. a loopback address in tests. None: Ray's choice.",
    )
    bind_own_address: bool = Field(
        True,
        description="Bind every listener of the processes autotelic starts (the service "
        "as Ray driver, a private cluster's nodes) to the node's address instead of all "
        "interfaces, through a preloaded bind shim (Linux; built once with cc).",
    )
    num_collectors: int = Field(
        2, ge=1, le=1024, description="Collector actors, each with its own env batch."
    )
    envs_per_collector: int | None = Field(
        None,
        ge=1,
        le=4096,
        description="Envs each collector actor steps (None: env.num_envs, so the cluster "
        "steps num_collectors * env.num_envs).",
    )
    collector_num_cpus: float = Field(
        1.0, ge=0.0, description="CPUs Ray reserves for each collector actor."
    )
    collector_num_gpus: float = Field(
        0.0, ge=0.0, description="GPUs Ray reserves for each collector actor."
    )
    collector_resources: dict[str, float] = Field(
        default_factory=dict,
        description="Custom Ray resources each collector actor needs, e.g. {collector: 1} "
        "with `ray start --resources='{\"collector\": 8}'` on the collector nodes only, "
        "so that collectors stay off the learner's node.",
    )
    collector_device: str = Field(
        "cpu",
        description="torch device of each collector's policy copy ('cuda' with "
        "collector_num_gpus > 0).",
    )
    collector_torch_threads: int = Field(
        1, ge=1, description="torch threads in each collector actor."
    )
    steps_per_call: int = Field(
        4,
        ge=1,
        le=10_000,
        description="Batch steps a collector takes per call before its finished episodes "
        "travel to the store writer (fewer calls; episodes wait at most this long).",
    )
    max_restarts: int = Field(
        -1,
        ge=-1,
        description="Times Ray restarts a collector actor whose process died (-1: always).",
    )
    goal_daemon_name: str | None = Field(
        None,
        description="Name of the goal-daemon actor. Runs that give the same name (and "
        "namespace) draw from one curriculum; the first creates it. None: "
        "'autotelic-goals-<run.agent>'.",
    )
    goal_daemon_detached: bool = Field(
        False,
        description="Keep the goal-daemon actor alive after the run that created it ends "
        "(Ray's detached lifetime), for curricula shared by runs that come and go.",
    )
    namespace: str = Field("autotelic", description="Ray namespace of the named goal-daemon actor.")
    goal_daemon_dir: Path | None = Field(
        None,
        description="Where the goal-daemon actor keeps its registry and injection queue "
        "(LMDB, on the driver's node). None: <run.dir>/goals.",
    )
    learner: Literal["driver"] = Field(
        "driver",
        description="Where the learner runs: 'driver', the service process, on the node "
        "where `autotelic run` starts, on model.device (a GPU when it says cuda).",
    )
    weights_every_updates: int = Field(
        1,
        ge=1,
        description="Publish the trainable weights to the collectors after every this many "
        "learner updates (each publication is one object in Ray's object store).",
    )


class Settings(BaseSettings):
    """Everything ``autotelic run`` reads."""

    model_config = SettingsConfigDict(
        env_prefix="AUTOTELIC_",
        env_nested_delimiter="__",
        extra="forbid",
    )

    run: RunConfig = Field(default_factory=RunConfig, description="The run.")
    env: SerializeAsAny[EnvConfig] = Field(
        default_factory=lambda: env_config({}),
        description="The environments: `id` picks a registered one, its options follow.",
    )
    model: ModelConfig = Field(default_factory=ModelConfig, description="The LLM policy.")
    algorithm: SerializeAsAny[AlgorithmConfig] = Field(
        default_factory=lambda: algorithm_config({}),
        description="The learning algorithm: `name` picks a registered one, its options follow.",
    )
    replay: ReplayConfig = Field(default_factory=ReplayConfig, description="Store and replay.")
    curriculum: CurriculumConfig = Field(
        default_factory=CurriculumConfig, description="Goal curriculum."
    )
    collector: CollectorConfig = Field(default_factory=CollectorConfig, description="Collection.")
    mqtt: MQTTConfig = Field(default_factory=MQTTConfig, description="MQTT broker.")
    metrics: MetricsConfig = Field(default_factory=MetricsConfig, description="Prometheus.")
    tracking: TrackingConfig = Field(
        default_factory=TrackingConfig,
        description="Where every learner stat goes: learner_stats.csv, TensorBoard.",
    )
    checkpoint: CheckpointConfig = Field(
        default_factory=CheckpointConfig, description="Checkpoints."
    )
    service: ServiceConfig = Field(default_factory=ServiceConfig, description="Service.")
    eval: EvalConfig = Field(
        default_factory=EvalConfig, description="Periodic evaluation while training."
    )
    ray: RayConfig = Field(default_factory=RayConfig, description="Ray backend (run.backend: ray).")

    @model_validator(mode="before")
    @classmethod
    def _plugins_and_legacy_layout(cls, data: Any) -> Any:
        """Register the configured plug-ins before ``env`` and ``algorithm`` are looked up."""
        if not isinstance(data, dict):
            return data
        data = migrate_legacy(data)
        run = data.get("run")
        plugins = run.get("plugins", []) if isinstance(run, dict) else getattr(run, "plugins", [])
        load_plugins(plugins or [])
        return data

    @field_validator("env", mode="before")
    @classmethod
    def _env_by_id(cls, value: Any) -> EnvConfig:
        return env_config(value)

    @field_validator("algorithm", mode="before")
    @classmethod
    def _algorithm_by_name(cls, value: Any) -> AlgorithmConfig:
        if isinstance(value, AlgorithmConfig):
            # Only what was set travels on, so a seed left unset is still derived from
            # run.seed (_derive_seeds) after the section is validated again.
            value = {**value.model_dump(exclude_unset=True), "name": value.name}
        return algorithm_config(value)

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        modes = backend_spec(self.run.backend).modes
        if self.run.mode not in modes:
            raise ValueError(
                f"run.backend {self.run.backend} needs run.mode {' or '.join(modes)} "
                f"(not {self.run.mode})"
            )
        starts = getattr(self.algorithm, "learning_starts", 0)
        if (
            isinstance(self.algorithm, OffPolicyConfig)
            and self.replay.capacity_transitions < starts
        ):
            raise ValueError(
                "replay.capacity_transitions must be >= algorithm.learning_starts "
                f"({self.replay.capacity_transitions} < {starts})"
            )
        return self

    @model_validator(mode="after")
    def _derive_seeds(self) -> Settings:
        """One ``run.seed`` seeds the whole run, as SB3's ``seed=`` does: each component
        seed left unset takes it, so ``--seed 3`` alone gives a new run; one set explicitly
        (file, environment or ``--set``) wins."""
        seed = self.run.seed
        if "seed" not in self.model.model_fields_set:
            self.model = self.model.model_copy(update={"seed": seed})
        if "seed" not in self.curriculum.model_fields_set:
            self.curriculum = self.curriculum.model_copy(update={"seed": seed})
        algo = self.algorithm
        if "seed" in type(algo).model_fields and "seed" not in algo.model_fields_set:
            self.algorithm = algo.model_copy(update={"seed": seed})
        return self

    @model_validator(mode="after")
    def _word_vocabulary(self) -> Settings:
        """A word-level tiny model reads the run's environment: its vocabulary is fixed
        here, in the effective configuration, so a resumed run gets the same ids."""
        if self.model.path == WORDS and not self.model.vocabulary:
            self.model = self.model.model_copy(update={"vocabulary": (self.env.id,)})
        return self

    def dump(self) -> dict[str, Any]:
        """The effective configuration as plain data, secrets masked: what the run
        directory's ``config.yaml`` holds (:func:`dump_settings`)."""
        return dump_settings(self)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = _CONFIG_FILE.get() or os.environ.get(CONFIG_FILE_ENV)
        if path:
            suffix = Path(path).suffix.lower()
            if suffix in (".yaml", ".yml"):
                sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=path))
            elif suffix == ".toml":
                sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)


_LEGACY_DROPPED = {("curriculum", "persist_every")}
"""Fields of the old layout that no longer exist (the curriculum's learning state is now
saved only with checkpoints)."""


def migrate_legacy(data: dict[str, Any]) -> dict[str, Any]:
    """Convert the layout used before 0.2 (``run.learner`` + ``sac:``/``ppo:``,
    ``env.playground``) into ``algorithm:`` and a flat ``env:``; other input is unchanged."""
    run = data.get("run")
    old = isinstance(run, dict) and "learner" in run
    old = old or "sac" in data or "ppo" in data
    env = data.get("env")
    old_env = isinstance(env, dict) and isinstance(env.get("playground"), dict)
    if not (old or old_env):
        return data
    data = {k: (dict(v) if isinstance(v, dict) else v) for k, v in data.items()}
    if old:
        # 0.1 bootstrapped time limits and had no reserve for unsolved goals: keep both.
        data["run"] = {"time_limit": "bootstrap", **(data.get("run") or {})}
        curriculum = dict(data.get("curriculum") or {})
        curriculum["sampler"] = {"unsolved_share": 0.0, **(curriculum.get("sampler") or {})}
        data["curriculum"] = curriculum
        name = data["run"].pop("learner", "sac")
        chosen = data.get(name)
        section: dict[str, Any] = chosen if isinstance(chosen, dict) else {}
        data.pop("sac", None)
        data.pop("ppo", None)
        data["algorithm"] = {**section, "name": name}
    if old_env:
        env = data["env"]
        data["env"] = {**{k: v for k, v in env.items() if k != "playground"}, **env["playground"]}
    for part, field in _LEGACY_DROPPED:
        if isinstance(data.get(part), dict):
            data[part] = {k: v for k, v in data[part].items() if k != field}
    log.warning(
        "configuration in the layout used before autotelic 0.2 (run.learner, sac:/ppo:, "
        "env.playground): read as algorithm: and env:; `autotelic config show` prints it "
        "in the current layout"
    )
    return data


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``extra`` laid over it, nested sections merged key by key."""
    out = dict(base)
    for key, value in extra.items():
        nested = isinstance(value, dict) and isinstance(out.get(key), dict)
        out[key] = deep_merge(out[key], value) if nested else value
    return out


class ConfigError(UserError, ValueError):
    """A configuration that cannot be used; the message names every bad field."""


def load_settings(path: Path | str | None = None, **overrides: Any) -> Settings:
    """Read the configuration file (if any) and the environment, then apply ``overrides``.

    Raises :class:`ConfigError` naming each bad field, its value and what is allowed.
    """
    token = None
    if path is not None:
        file = Path(path)
        if not file.exists():
            raise ConfigError(f"config file {file} does not exist")
        if file.suffix.lower() not in (".yaml", ".yml", ".toml"):
            raise ConfigError(f"config file {file} must be .yaml, .yml or .toml")
        read_config_file(file)  # unreadable or malformed: one line, with line and column
        token = _CONFIG_FILE.set(str(file))
    try:
        return Settings(**overrides)
    except ValidationError as err:
        raise ConfigError(describe_errors(err)) from None
    except RegistryError as err:
        raise ConfigError(str(err)) from None
    except (OSError, ValueError) as err:  # unreadable or unparsable file
        raise ConfigError(f"cannot read config: {err}") from None
    finally:
        if token is not None:
            _CONFIG_FILE.reset(token)


MASKED = "**********"
"""What :func:`dump_settings` writes in place of a secret."""


def read_config_file(path: Path | str) -> dict[str, Any]:
    """A YAML or TOML configuration file as data, in the current layout.

    Raises :class:`ConfigError` with one line for a file that cannot be read (naming the
    reason), that is not UTF-8, or whose syntax is wrong (naming the line and column), so
    that a typo in a file reads like a typo in a setting rather than a parser's traceback.
    """
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"cannot read config file {file}: {err.strerror or err}") from None
    except UnicodeDecodeError as err:
        raise ConfigError(
            f"cannot read config file {file}: not UTF-8 text (byte {err.start})"
        ) from None
    data: Any
    if file.suffix.lower() == ".toml":
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"{file}: TOML syntax error{_toml_position(err)}") from None
    else:
        try:
            data = yaml.safe_load(text)
        except yaml.MarkedYAMLError as err:
            raise ConfigError(f"{file}: YAML syntax error{_yaml_position(err)}") from None
        except yaml.YAMLError as err:
            raise ConfigError(f"{file}: YAML syntax error: {' '.join(str(err).split())}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{file}: expected sections (run:, model:, ...) at the top, got {type(data).__name__}"
        )
    return migrate_legacy(data)


def _yaml_position(err: yaml.MarkedYAMLError) -> str:
    """`` at line L, column C: problem`` (1-based, as editors count) from a YAML error."""
    mark = err.problem_mark or err.context_mark
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    what = " ".join(x for x in (err.context, err.problem) if x)
    return f"{where}: {what}" if what else where


def _toml_position(err: tomllib.TOMLDecodeError) -> str:
    """`` at line L, column C: message`` from a TOML error (whose message ends with the
    position as ``(at line L, column C)`` before Python 3.14)."""
    message = str(err)
    found = re.search(r"\s*\(at line (\d+), column (\d+)\)$", message)
    if found is None:
        return f": {message}"
    return f" at line {found.group(1)}, column {found.group(2)}: {message[: found.start()]}"


def describe_errors(err: ValidationError) -> str:
    """One line per bad field: where, what was given, and pydantic's reason; an unknown
    key also gets the closest known one (a typo is the usual cause). A single bad field
    makes a single line, so a command line error reads as one."""
    lines = []
    for e in err.errors(include_url=False):
        where = ".".join(str(x) for x in e["loc"]) or "config"
        given = e.get("input")
        shown = "" if isinstance(given, dict) else f" (got {given!r})"
        if e["type"] == "extra_forbidden":
            shown = f" (no such setting{_did_you_mean(e['loc'])})"
        lines.append(f"{where}: {e['msg']}{shown}")
    if len(lines) == 1:
        return f"invalid configuration: {lines[0]}"
    return "invalid configuration:\n  " + "\n  ".join(lines)


def _did_you_mean(loc: tuple[int | str, ...]) -> str:
    """``; did you mean section.key?`` for the known key closest to the unknown one."""
    names = _known_keys(loc[:-1])
    if str(loc[-1]) in names:  # a key of another env or algorithm than the chosen one
        return f" of this {loc[0]}" if loc[0] in ("env", "algorithm") else ""
    match = difflib.get_close_matches(str(loc[-1]), names, n=1, cutoff=0.6)
    if not match:
        return ""
    return "; did you mean " + ".".join([*(str(x) for x in loc[:-1]), match[0]]) + "?"


def _known_keys(section: tuple[int | str, ...]) -> list[str]:
    """The keys allowed at ``section`` of the configuration tree; for ``env`` and
    ``algorithm`` those of every registered environment or algorithm."""
    models: list[type[BaseModel]] = [Settings]
    for depth, part in enumerate(section):
        if depth == 0 and part in ("env", "algorithm"):
            specs = registered_envs() if part == "env" else registered_algorithms()
            models = [spec.config for spec in specs]
            continue
        key = str(part)
        inner = [m.model_fields[key].annotation for m in models if key in m.model_fields]
        models = [t for t in inner if isinstance(t, type) and issubclass(t, BaseModel)]
    return sorted({name for m in models for name in m.model_fields})


def parse_overrides(assignments: Iterable[str]) -> dict[str, Any]:
    """``--set`` pairs (``algorithm.batch_size=32``) as nested data for :func:`load_settings`.

    Each value is read as YAML (``32`` an int, ``0.5`` a float, ``true`` a bool, ``null``
    or nothing None, ``[train, test]`` a list, anything else a string), so the settings
    models type and validate it exactly as they do a file's. A later pair for the same key
    wins. Raises :class:`ConfigError` for a pair that is not ``KEY=VALUE``.
    """
    data: dict[str, Any] = {}
    for item in assignments:
        key, sep, text = item.partition("=")
        path = key.strip().split(".")
        if not sep or not all(path):
            raise ConfigError(
                f"--set {item!r}: expected KEY=VALUE with a dotted KEY, "
                "e.g. --set algorithm.batch_size=32"
            )
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise ConfigError(f"--set {item!r}: the value is not valid YAML ({err})") from None
        _put_nested(data, path, value, item)
    return data


def _put_nested(data: dict[str, Any], path: list[str], value: Any, item: str) -> None:
    node = data
    for depth, part in enumerate(path[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            where = ".".join(path[: depth + 1])
            raise ConfigError(f"--set {item!r}: {where} was set to a value, not a section")
        node = child
    node[path[-1]] = value


def dump_settings(settings: Settings) -> dict[str, Any]:
    """The effective configuration as plain data, secrets masked."""
    data: dict[str, Any] = settings.model_dump(mode="json")
    if data["mqtt"].get("password"):
        data["mqtt"]["password"] = MASKED
    return data


def field_reference() -> list[tuple[str, str, str, str]]:
    """(dotted key, type, default, description) of every setting, in the models' order:
    what ``autotelic config schema`` prints, generated from the models themselves so it
    never drifts from what validation accepts. ``env`` and ``algorithm`` list each
    registered environment's and algorithm's own fields under their id or name."""
    rows: list[tuple[str, str, str, str]] = []
    for name, info in Settings.model_fields.items():
        if name == "env":
            for env in registered_envs():
                _model_rows(env.config, f"env[{env.id}]", rows)
        elif name == "algorithm":
            for algorithm in registered_algorithms():
                _model_rows(algorithm.config, f"algorithm[{algorithm.name}]", rows)
        elif isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel):
            _model_rows(info.annotation, name, rows)
    return rows


def _model_rows(model: type[BaseModel], prefix: str, rows: list[tuple[str, str, str, str]]) -> None:
    for name, info in model.model_fields.items():
        kind = info.annotation
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            _model_rows(kind, f"{prefix}.{name}", rows)
            continue
        default = info.get_default(call_default_factory=True)
        shown = "(required)" if info.is_required() else _plain(default)
        rows.append((f"{prefix}.{name}", _type_name(kind), shown, info.description or ""))


def _type_name(kind: Any) -> str:
    """``int``, ``int | None``, ``Literal['a', 'b']``: the annotation as a user writes it."""
    if isinstance(kind, type):
        return kind.__name__
    return str(kind).replace("typing.", "").replace("pathlib.", "")


def _plain(value: Any) -> str:
    """A default as YAML would show it (``null``, ``true``, ``[train, test]``)."""
    plain = to_jsonable_python(value)  # paths, enums, tuples, models as JSON would have them
    text: str = yaml.safe_dump(plain, default_flow_style=True, width=10_000).strip()
    return text.removesuffix("\n...").removesuffix("...").strip()
