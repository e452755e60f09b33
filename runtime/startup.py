"""What ``autotelic run`` settles before anything of a run is loaded or written.

A restarted run is the run it was: its settings come from its own ``config.yaml``, and
what the restart names (``--config``, ``--set``, ``--seed``, ``AUTOTELIC_*`` variables)
changes those fields only. The checks a user can fail (a run directory that is a file or
cannot be written, a full disk, a model path that names nothing) run before the model
loads, so they answer in a second instead of after the load; and a start that fails on a
run directory it created itself leaves no directory behind.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from autotelic.core.errors import UserError
from autotelic.storage import RunLayout
from autotelic.storage.errors import LOW_SPACE_BYTES

if TYPE_CHECKING:
    from autotelic.runtime.config import Settings

log = logging.getLogger(__name__)

MIN_FREE_BYTES = LOW_SPACE_BYTES
"""Free space under which a run does not start: the space under which the store already
puts a failed write down to a full disk, so a start refused here would have failed on its
first writes."""


class StartupError(UserError, RuntimeError):
    """The run cannot start as configured; the message says what to change."""


# -- which settings a start uses -------------------------------------------------------------

PACKAGED_CONFIGS = Path(__file__).resolve().parent / "configs"
"""Configurations that ship with the package (``runtime/configs/*.yaml``), which
``--config NAME`` finds by name where no file of that name exists: a user of the wheel has
no checkout to take an example from."""


def packaged_configs() -> list[str]:
    """The names ``--config`` takes for the packaged configurations."""
    return sorted(p.stem for p in PACKAGED_CONFIGS.glob("*.yaml"))


def config_path(config: Path | None) -> Path | None:
    """``config`` as given, or, when no such file exists and it is a bare name (``cpu``,
    ``cpu.yaml``), the packaged configuration of that name."""
    if config is None or config.exists() or config.parent != Path():
        return config
    packaged = PACKAGED_CONFIGS / f"{config.name.removesuffix('.yaml')}.yaml"
    return packaged if packaged.is_file() else config


CPU_DEFAULT = "cpu"
"""The packaged configuration a new run on a machine without a GPU starts from when
nothing names a configuration or a model (:func:`cpu_default`)."""
MODEL_PATH_VARIABLE = "AUTOTELIC_MODEL__PATH"


NVIDIA_DRIVER_FILES = (
    Path("/proc/driver/nvidia/version"),
    Path("/dev/nvidiactl"),
    Path("/dev/nvidia0"),
)
"""Where a machine with an NVIDIA driver shows it; without any, no CUDA device can exist."""


def gpu_present() -> bool:
    """Whether torch sees a CUDA device (a CPU build of torch sees none).

    Without an NVIDIA driver the answer is no and torch is not imported: the thin
    commands (``config show``) that ask this stay a fraction of a second."""
    if not any(path.exists() for path in NVIDIA_DRIVER_FILES):
        return False
    import torch

    return bool(torch.cuda.is_available())


def cpu_default(config: Path | None, overrides: dict[str, Any]) -> Path | None:
    """The packaged ``cpu`` configuration when a new run names no configuration file and
    no model (neither ``--set model.path=...`` nor ``AUTOTELIC_MODEL__PATH``) on a machine
    without a GPU; None otherwise.

    Why: the library's defaults (the packaged SmolLM2, concurrent) take 2-3 env steps a
    second on a laptop CPU, so a first session sees no evaluation for a quarter of an
    hour and a flat curve for hours; the ``cpu`` configuration (the tiny word-level
    model, serial, an evaluation every 2,000 env steps) shows its evaluation curve rise
    within minutes (docs/performance.md, "The default on a CPU"). Naming a model keeps
    the library's defaults, SmolLM2 included: ``--set model.path=smollm2``.
    """
    if config is not None or os.environ.get(MODEL_PATH_VARIABLE):
        return None
    model = overrides.get("model")
    if isinstance(model, dict) and "path" in model:
        return None
    if gpu_present():
        return None
    return PACKAGED_CONFIGS / f"{CPU_DEFAULT}.yaml"


def run_settings(
    config: Path | None, overrides: dict[str, Any], notes: list[str] | None = None
) -> Settings:
    """The settings ``autotelic run`` (and ``config show``) use.

    A new run: the file, the variables and ``overrides`` over the defaults, as
    :func:`~autotelic.runtime.config.load_settings` reads them; without a file or a
    model named, on a machine without a GPU, the packaged ``cpu`` configuration stands
    for the file (:func:`cpu_default`), and a line saying so joins ``notes`` (the caller
    logs it once the start-up checks passed, so that a start refused is still one line).
    An existing run (its
    directory holds ``config.yaml``): that file instead of the defaults, with the keys of
    ``config`` (when given) and ``overrides`` on top, so that a restart with
    ``--set run.max_env_steps=...`` changes that and nothing else.
    """
    from autotelic.runtime.config import MASKED, deep_merge, load_settings, read_config_file

    settings = load_settings(config, **overrides)
    own = RunLayout(settings.run.dir).config
    if not own.is_file():
        default = cpu_default(config, overrides)
        if default is None:
            return settings
        if notes is not None:
            notes.append(
                f"no GPU and no configuration: starting from the packaged {CPU_DEFAULT!r} "
                "configuration (model.path: tiny-words, serial, an evaluation every 2,000 env "
                "steps) so that the evaluation curve rises within minutes; --set "
                "model.path=smollm2 or --config FILE keeps the library's defaults"
            )
        return load_settings(default, **overrides)
    saved = read_config_file(own)
    mqtt = saved.get("mqtt")
    if isinstance(mqtt, dict) and mqtt.get("password") == MASKED:
        del mqtt["password"]  # never saved: it comes from where it came from at the start
    named = read_config_file(config) if config is not None else {}
    merged = deep_merge(saved, named)
    # The directory the run is in now, wherever its config.yaml says it was started.
    pinned = deep_merge(overrides, {"run": {"dir": str(settings.run.dir)}})
    with tempfile.TemporaryDirectory(prefix="autotelic-resume-") as scratch:
        combined = Path(scratch) / "config.yaml"
        combined.write_text(yaml.safe_dump(merged, sort_keys=False))
        resumed = load_settings(combined, **pinned)
    log.debug("resuming %s with its own config.yaml", own)
    return resumed


# -- checks before the model loads -----------------------------------------------------------


def check_startup(settings: Settings) -> None:
    """Every check a start can fail before it loads the model or writes a file: the run
    directory, the free space under it, and the model path. Raises :class:`UserError`."""
    check_run_dir(settings.run.dir)
    check_free_space(settings.run.dir)
    check_model_path(settings)


def check_run_dir(run_dir: Path) -> None:
    """The run directory is a directory (or can be made one) that this user may write."""
    if run_dir.exists() and not run_dir.is_dir():
        raise StartupError(
            f"run directory {run_dir} is a file, not a directory; choose another run.dir"
        )
    existing = _nearest_existing(run_dir)
    if not existing.is_dir():
        raise StartupError(
            f"run directory {run_dir} cannot be created: {existing} is a file, not a directory"
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise StartupError(
            f"cannot write to {existing}: {_why_not_writable(existing)}; choose another run.dir"
        )
    layout = RunLayout(run_dir)
    for part in (layout.store, layout.checkpoints, layout.config):
        if part.exists() and not os.access(part, os.R_OK | os.W_OK):
            raise StartupError(f"cannot read and write {part}: {_why_not_writable(part)}")


def _why_not_writable(path: Path) -> str:
    """What the system would say to a write under ``path``: a read-only file system, or
    a permission."""
    read_only = os.statvfs(path).f_flag & os.ST_RDONLY
    return os.strerror(errno.EROFS if read_only else errno.EACCES)


def check_free_space(run_dir: Path, minimum: int = MIN_FREE_BYTES) -> None:
    """Enough free space under the run directory to start (a full disk stops here, with
    one line, rather than with a failed write in the store)."""
    free = shutil.disk_usage(_nearest_existing(run_dir)).free
    if free < minimum:
        raise StartupError(
            f"{os.strerror(errno.ENOSPC)} for run directory {run_dir}: "
            f"{free / 2**20:.1f} MiB free, a run needs at least {minimum / 2**20:.0f} MiB"
        )


def check_model_path(settings: Settings) -> None:
    """``model.path`` names a model that can be loaded: a tiny model, the packaged one
    (its package is checked by :func:`~autotelic.runtime.extras.require_models`), a local
    Hugging Face folder, or a Hugging Face id in the local cache. Nothing is loaded."""
    from autotelic.learners.model_config import PACKAGED, TINY_NAMES

    path = settings.model.path
    if path in TINY_NAMES or path == PACKAGED:
        return
    if (Path(path).expanduser() / "config.json").is_file():
        return  # a local folder: the common case, answered without importing torch
    from autotelic.learners.models import resolve_model_dir

    resolve_model_dir(settings.model)  # a folder or a cached hub id: a path lookup, no load


def _nearest_existing(path: Path) -> Path:
    """``path`` or its closest ancestor that exists."""
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


# -- leaving nothing behind ------------------------------------------------------------------


@contextlib.contextmanager
def removed_on_failure(run_dir: Path) -> Iterator[None]:
    """Remove ``run_dir`` if the block fails and the directory did not exist (or was empty)
    before it: a start that never got going leaves no half-made run for the next one to
    resume. A directory that held anything before is never touched."""
    existed = run_dir.is_dir()
    fresh = not run_dir.exists() or (existed and not any(run_dir.iterdir()))
    try:
        yield
    except BaseException:
        if fresh and run_dir.is_dir():
            shutil.rmtree(run_dir, ignore_errors=True)
            if existed:  # the empty folder the user made stays
                run_dir.mkdir(exist_ok=True)
        raise
