"""Registries: environments, algorithms and backends register themselves; the runtime
looks them up.

``register_env`` and ``register_algorithm`` map an id or a name to a spec: a one-line
description, the pydantic model of its configuration section, and how to build it. The
configuration's ``env`` and ``algorithm`` sections are validated into the model their
``id`` / ``name`` selects, and an unknown one is refused with the list of registered ones.
``register_backend`` maps a ``run.backend`` name to the parts it supplies to a run (the
goal service, the collection, the driver: everything in this process, or collectors
elsewhere), so the runtime never names a backend: the Ray backend registers itself from
:mod:`autotelic.distributed`.

Plug-ins are modules that register on import. :func:`load_plugins` imports the
built-in ones, those installed under the ``autotelic.plugins`` entry-point
group, and any the configuration lists in ``run.plugins``.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

from autotelic.core.env import EnvConfig, TextEnvBatch
from autotelic.core.errors import UserError
from autotelic.core.goals import GoalSpace, Split
from autotelic.core.learner import (
    AlgorithmConfig,
    Learner,
    LearnerKind,
    OffPolicyConfig,
    OnPolicyConfig,
)
from autotelic.core.vocabulary import TextVocabulary

BUILTIN_PLUGINS = (
    "autotelic.envs",
    "autotelic.learners.algorithms",
    "autotelic.runtime.loop.backends",
    "autotelic.distributed.plugin",
)
ENTRY_POINT_GROUP = "autotelic.plugins"

MakeBatch = Callable[..., TextEnvBatch]
"""``make(config, *, num_envs, split) -> TextEnvBatch``; ``split`` None: as configured."""
MakeGoalSpace = Callable[[Any], GoalSpace]
"""``goal_space(config) -> GoalSpace``."""
MakeVocabulary = Callable[[], TextVocabulary]
"""``vocabulary() -> TextVocabulary``: every word the env's text may use, whatever its
configuration (a tokenizer built from it must not change with a run's settings)."""
BuildLearner = Callable[[Any, Any], Learner]
"""``build(model_config, algorithm_config) -> Learner``."""
SupplyParts = Callable[[Any], Any]
"""``parts(settings) -> RunParts``: what a backend supplies to the runtime's run
(:class:`autotelic.runtime.loop.parts.RunParts`). Typed loosely because core knows
neither the settings nor the run; the runtime checks what it gets."""
ProcessEnvironment = Callable[[Any], Mapping[str, str]]
"""Settings -> the environment variables the service process must run with."""


class RegistryError(UserError, ValueError):
    """An unknown or conflicting id or name; the message lists what is registered."""


@dataclass(frozen=True)
class EnvSpec:
    """A registered environment."""

    id: str
    description: str
    config: type[EnvConfig]
    make: MakeBatch
    goal_space: MakeGoalSpace
    vocabulary: MakeVocabulary | None = None
    """The words of the env's text, for word-level tokenizers (None: not declared)."""

    def make_batch(
        self, config: EnvConfig, *, num_envs: int | None = None, split: Split | None = None
    ) -> TextEnvBatch:
        """``num_envs`` envs (default: the config's), set up for the goals of ``split``
        (None: as configured; evaluation asks for each split)."""
        n = config.num_envs if num_envs is None else num_envs
        return self.make(config, num_envs=n, split=split)


@dataclass(frozen=True)
class AlgorithmSpec:
    """A registered learning algorithm."""

    name: str
    description: str
    config: type[AlgorithmConfig]
    build: BuildLearner

    @property
    def kind(self) -> LearnerKind:
        """How the runtime feeds it: from replay, or with fresh rollouts."""
        return "off_policy" if issubclass(self.config, OffPolicyConfig) else "on_policy"


@dataclass(frozen=True)
class BackendSpec:
    """A registered backend: what ``run.backend`` names."""

    name: str
    description: str
    parts: SupplyParts
    modes: tuple[str, ...] = ("concurrent", "serial")
    """The ``run.mode`` values it runs (a backend of several processes is never serial)."""
    process_environment: ProcessEnvironment | None = None
    """Variables the service process needs before anything starts (e.g. a preloaded
    library); ``autotelic run`` re-executes itself once with them when they differ."""


_lock = threading.Lock()
_envs: dict[str, EnvSpec] = {}
_algorithms: dict[str, AlgorithmSpec] = {}
_backends: dict[str, BackendSpec] = {}
_defaults: dict[str, str] = {}
_loaded: set[str] = set()
_plugins_lock = threading.RLock()
"""Held while plug-ins load: a thread that finds a module marked as loading must wait for
its registrations, not go on without them (two threads reading their first settings at
once saw no default environment). Re-entrant: a plug-in may look a name up as it loads."""


def register_env(
    id: str,
    *,
    config: type[EnvConfig],
    make: MakeBatch,
    goal_space: MakeGoalSpace,
    description: str,
    default: bool = False,
    vocabulary: MakeVocabulary | None = None,
) -> EnvSpec:
    """Register an environment; registering the same id again with another spec fails.

    ``vocabulary`` declares the words its text uses, so the ``tiny-words`` model's
    tokenizer fits it (see :mod:`autotelic.core.vocabulary`).
    """
    spec = EnvSpec(id, description, config, make, goal_space, vocabulary)
    _check_discriminator(config, "id", id)
    _put(_envs, id, spec, "environment")
    if default:
        _defaults.setdefault("env", id)
    return spec


def register_algorithm(
    name: str,
    *,
    config: type[AlgorithmConfig],
    build: BuildLearner,
    description: str,
    default: bool = False,
) -> AlgorithmSpec:
    """Register an algorithm; its config subclasses OffPolicyConfig or OnPolicyConfig."""
    if not issubclass(config, OffPolicyConfig | OnPolicyConfig):
        raise RegistryError(
            f"algorithm {name!r}: its config must subclass OffPolicyConfig (learns from "
            "replay) or OnPolicyConfig (learns from rollouts)"
        )
    _check_discriminator(config, "name", name)
    spec = AlgorithmSpec(name, description, config, build)
    _put(_algorithms, name, spec, "algorithm")
    if default:
        _defaults.setdefault("algorithm", name)
    return spec


def register_backend(
    name: str,
    *,
    parts: SupplyParts,
    description: str,
    modes: tuple[str, ...] = ("concurrent", "serial"),
    process_environment: ProcessEnvironment | None = None,
) -> BackendSpec:
    """Register a backend by the parts it supplies to a run. ``parts`` should import its
    heavy modules (Ray, torch) itself, so that validating a configuration that names it
    stays cheap."""
    if not modes:
        raise RegistryError(f"backend {name!r} must run in at least one run.mode")
    spec = BackendSpec(name, description, parts, tuple(modes), process_environment)
    _put(_backends, name, spec, "backend")
    return spec


def _check_discriminator(config: type[Any], field: str, value: str) -> None:
    info = config.model_fields.get(field)
    if info is None or info.default != value:
        raise RegistryError(
            f"{config.__name__}.{field} must default to {value!r}, the key it is registered under"
        )


def _put(table: dict[str, Any], key: str, spec: Any, kind: str) -> None:
    with _lock:
        old = table.get(key)
        if old is not None and old != spec:
            raise RegistryError(f"{kind} {key!r} is already registered")
        table[key] = spec


def env_spec(env_id: str) -> EnvSpec:
    """The spec registered under ``env_id``, or a :class:`RegistryError` listing the ids."""
    spec: EnvSpec = _lookup(_envs, env_id, "environment")
    return spec


def algorithm_spec(name: str) -> AlgorithmSpec:
    """The spec registered under ``name``, or a :class:`RegistryError` listing the names."""
    spec: AlgorithmSpec = _lookup(_algorithms, name, "algorithm")
    return spec


def backend_spec(name: str) -> BackendSpec:
    """The backend registered under ``name``, or a :class:`RegistryError` listing the names."""
    spec: BackendSpec = _lookup(_backends, name, "backend")
    return spec


def _lookup(table: Mapping[str, Any], key: str, kind: str) -> Any:
    """``table[key]`` once the plug-ins are loaded, or an error naming what is registered."""
    load_plugins()
    spec = table.get(key)
    if spec is None:
        raise RegistryError(
            f"unknown {kind} {key!r}; registered: {', '.join(sorted(table)) or 'none'}"
        )
    return spec


def registered_envs() -> list[EnvSpec]:
    load_plugins()
    return [_envs[k] for k in sorted(_envs)]


def registered_algorithms() -> list[AlgorithmSpec]:
    load_plugins()
    return [_algorithms[k] for k in sorted(_algorithms)]


def registered_backends() -> list[BackendSpec]:
    load_plugins()
    return [_backends[k] for k in sorted(_backends)]


def env_config(data: Any) -> EnvConfig:
    """Validate an ``env`` section into the model its ``id`` selects (default env if none)."""
    config: EnvConfig = _section(data, "id", "env", env_spec, lambda s: s.config)
    return config


def algorithm_config(data: Any) -> AlgorithmConfig:
    """Validate an ``algorithm`` section into the model its ``name`` selects."""
    config: AlgorithmConfig = _section(
        data, "name", "algorithm", algorithm_spec, lambda s: s.config
    )
    return config


def _section(
    data: Any,
    key: str,
    kind: str,
    lookup: Callable[[str], Any],
    model_of: Callable[[Any], type[Any]],
) -> Any:
    if isinstance(data, EnvConfig | AlgorithmConfig):
        data = data.model_dump()
    if not isinstance(data, Mapping):
        raise ValueError(f"expected a mapping with a {key!r}, got {type(data).__name__}")
    load_plugins()
    chosen = data.get(key) or _defaults.get(kind)
    if chosen is None:
        raise RegistryError(f"no {kind} {key} given and no default {kind} is registered")
    model = model_of(lookup(str(chosen)))
    return model.model_validate({**data, key: chosen})


def load_plugins(modules: Iterable[str] = ()) -> None:
    """Import the built-in plug-ins, installed entry points and ``modules`` (once each)."""
    wanted = [*BUILTIN_PLUGINS, *modules]
    with _plugins_lock:
        if "entry-points" not in _loaded:
            _loaded.add("entry-points")
            for ep in entry_points(group=ENTRY_POINT_GROUP):
                wanted.append(ep.value)
        for name in wanted:
            if name in _loaded:
                continue
            _loaded.add(name)
            try:
                importlib.import_module(name)
            except ImportError as err:
                _loaded.discard(name)
                raise RegistryError(f"cannot import plug-in module {name!r}: {err}") from err
